#include "model/batch_plan.h"

#include "kv/paged_cache.h"

llt_status llt_batch_runs(const llt_model *m, const llt_batch *b, llt_run *runs, int32_t *n_runs,
                          llt_error *err) {
    const llt_kv_cache *c = m->kv;
    int32_t n = 0;
    for (int32_t i = 0; i < b->n_tokens; i++) {
        int32_t t = b->tokens[i], sq = b->seq_ids[i];
        LLT_CHECK(t >= 0 && t < m->cfg.vocab_size, err, LLT_ERR_INVALID_ARG,
                  "batch: token %d at row %d is outside the vocabulary [0, %d)", (int)t, (int)i,
                  (int)m->cfg.vocab_size);
        LLT_CHECK(sq >= 0 && sq < c->o.max_seqs && c->seqs[sq].live, err, LLT_ERR_INVALID_ARG,
                  "batch: row %d names sequence %d, which is not live", (int)i, (int)sq);
        if (n > 0 && runs[n - 1].seq == sq) {
            runs[n - 1].n++;
            continue;
        }
        for (int32_t j = 0; j < n; j++)
            LLT_CHECK(runs[j].seq != sq, err, LLT_ERR_INVALID_ARG,
                      "batch: rows of sequence %d are not consecutive (row %d)", (int)sq, (int)i);
        runs[n++] = (llt_run){sq, i, 1, c->seqs[sq].len};
    }
    *n_runs = n;
    return LLT_OK;
}

llt_status llt_batch_reserve(llt_model *m, const llt_run *runs, int32_t n_runs, int32_t max_ctx,
                             llt_error *err) {
    for (int32_t i = 0; i < n_runs; i++)
        LLT_CHECK(runs[i].pos0 + runs[i].n <= max_ctx, err, LLT_ERR_INVALID_ARG,
                  "batch: sequence %d would reach %d tokens, beyond the context of %d", (int)runs[i].seq,
                  (int)(runs[i].pos0 + runs[i].n), (int)max_ctx);
    for (int32_t i = 0; i < n_runs; i++) {
        llt_status s = llt_kv_reserve(m->kv, runs[i].seq, runs[i].n, err);
        if (s != LLT_OK) { /* all or nothing: give back what earlier runs reserved */
            for (int32_t j = 0; j < i; j++) llt_kv_unreserve(m->kv, runs[j].seq);
            return s;
        }
    }
    return LLT_OK;
}
