/* scheduler.h: continuous batching over the model's paged KV cache, on token ids.
 *
 * Up to `parallel` sequences are in flight; each step is ONE llt_model_decode over all of
 * them: decode rows (one token per generating sequence) plus prefill chunks of newly joined
 * prompts, within a budget of max_step_tokens. A sequence leaves when it samples an
 * end-of-generation token, reaches max_new_tokens or the context limit; a waiting prompt joins
 * between steps when a sequence slot is free and the pool has pages for its prompt.
 *
 * Pool exhaustion: a step that does not fit fails with LLT_ERR_FULL having appended nothing;
 * the scheduler then preempts the youngest running sequence (frees its pages, requeues it at
 * the front) and retries. A preempted sequence is recomputed from its prompt + the tokens it
 * generated so far, keeping its sampler, so its output is what it would have been. A sequence
 * that does not fit even alone is stopped (its tokens so far are kept) and the run returns
 * LLT_ERR_FULL after finishing the others.
 *
 * llt_generate_batch (engine/batch.c) puts text on top: encoding, streaming decode. */
#ifndef LLT_ENGINE_SCHEDULER_H
#define LLT_ENGINE_SCHEDULER_H

#include "base/error.h"

/* Called with each sampled token of prompt `index`, in generation order per prompt (never
 * again for the same token after a preemption). eog: the token ends generation (it is not
 * part of the output). Return non-zero to stop that prompt (the others go on). */
typedef int (*llt_sched_token_fn)(int32_t index, int32_t token, bool eog, void *user);

typedef struct llt_sched_opts {
    int32_t parallel;         /* sequences in flight (clamped to the cache's max_seqs) */
    int32_t max_new_tokens;
    int32_t max_step_tokens;  /* tokens per forward step; 0 = 256 */
    llt_sampler_params sampler; /* prompt i is sampled with seed sampler.seed + i */
    bool ignore_eog;          /* end-of-generation tokens are ordinary output (fixed-length
                               * runs: HF greedy references, benchmarks) */
} llt_sched_opts;

typedef struct llt_sched_stats {
    int64_t n_steps;          /* forward passes that succeeded */
    int64_t n_full;           /* steps refused with LLT_ERR_FULL */
    int64_t n_preempted;      /* sequences preempted (then recomputed) */
    int64_t n_prompt_tokens;  /* prompt tokens fed (recomputation included) */
    int64_t n_generated;      /* tokens sampled */
    int32_t max_running;      /* most sequences in one step */
    double prompt_s;          /* wall time of steps with no decode row */
    double gen_s;             /* wall time of steps with at least one decode row */
} llt_sched_stats;

/* prompts[i]: n_prompt[i] token ids (>= 1). stats may be NULL. */
llt_status llt_sched_run(llt_model *m, const int32_t *const *prompts, const int32_t *n_prompt,
                         int32_t n, const llt_sched_opts *o, llt_sched_token_fn fn, void *user,
                         llt_sched_stats *stats, llt_error *err);

#endif
