/* batch_plan.h: the checks and KV reservation every backend does before a step.
 * A batch's rows are grouped into runs, one per sequence (a sequence's rows are consecutive);
 * then pages are reserved for every run, all or nothing. Shared by the CPU and CUDA backends
 * so that both refuse the same batches with the same messages. */
#ifndef LLT_MODEL_BATCH_PLAN_H
#define LLT_MODEL_BATCH_PLAN_H

#include "model/model.h"

typedef struct llt_run {
    int32_t seq;   /* sequence id */
    int32_t row0;  /* first row of the batch */
    int32_t n;     /* rows */
    int32_t pos0;  /* position of the first row = the sequence's length before the step */
} llt_run;

/* Fills runs[] (room for b->n_tokens) and *n_runs; checks token ids against the vocabulary,
 * that every sequence is live and that a sequence's rows are consecutive. */
llt_status llt_batch_runs(const llt_model *m, const llt_batch *b, llt_run *runs, int32_t *n_runs,
                          llt_error *err);
/* Checks the context limit, then reserves KV pages for every run; on any failure (LLT_ERR_FULL
 * included) gives back what it reserved, so nothing changed. */
llt_status llt_batch_reserve(llt_model *m, const llt_run *runs, int32_t n_runs, int32_t max_ctx,
                             llt_error *err);

#endif
