/* scheduler.h: continuous batching over the model's paged KV cache, on token ids.
 *
 * A scheduler holds jobs (a prompt and how to continue it). Each llt_sched_step is ONE
 * llt_model_decode over the running jobs: decode rows (one token per generating job) plus
 * prefill chunks of newly joined prompts, within a budget of max_step_tokens. Jobs are added
 * and cancelled between steps (the server's engine thread does both while others run); a job
 * leaves when it samples an end-of-generation token, reaches its max_new_tokens or the context
 * limit, or its callback asks to stop; a waiting job joins between steps when a sequence slot
 * is free and the pool has pages for its prompt.
 *
 * Prefix caching (opts.prefix_cache): a joining prompt first takes the full KV pages that an
 * earlier job left with the same leading tokens (kv/prefix_cache.c) and prefills only the
 * rest; every job publishes its full pages as they are written.
 *
 * Pool exhaustion: a step that does not fit fails with LLT_ERR_FULL having appended nothing;
 * the scheduler then preempts the youngest running job (frees its pages, requeues it at the
 * front) and retries. A preempted job is recomputed from its prompt + the tokens it generated
 * so far, keeping its sampler, so its output is what it would have been. A job that does not
 * fit even alone is stopped (LLT_FINISH_NO_SPACE; its tokens so far are kept).
 *
 * llt_sched_run runs a fixed set of prompts to the end (llt_generate_batch, engine/batch.c,
 * puts text on top: encoding, streaming decode). */
#ifndef LLT_ENGINE_SCHEDULER_H
#define LLT_ENGINE_SCHEDULER_H

#include "base/error.h"

typedef struct llt_sched llt_sched;

typedef enum llt_finish {
    LLT_FINISH_EOG = 0,     /* end-of-generation token (not part of the output) */
    LLT_FINISH_LENGTH,      /* max_new_tokens reached */
    LLT_FINISH_CONTEXT,     /* the context is full */
    LLT_FINISH_STOPPED,     /* the callback returned non-zero */
    LLT_FINISH_NO_SPACE,    /* does not fit in the KV pool even alone */
    LLT_FINISH_CANCELLED    /* llt_sched_cancel / llt_sched_free (no done callback) */
} llt_finish;

/* One sampled token as the job's callback sees it. */
typedef struct llt_sched_token {
    int32_t token;
    bool eog;                    /* ends generation; not part of the output */
    /* with n_logprobs >= 0: log-softmax of the model's raw logits (before temperature,
     * penalties and filters) at token, and the n_top most likely tokens, best first */
    float logprob;
    int32_t n_top;
    const int32_t *top_ids;
    const float *top_logprobs;
} llt_sched_token;

/* Returns non-zero to stop the job (it then finishes with LLT_FINISH_STOPPED). */
typedef int (*llt_sched_job_fn)(void *user, const llt_sched_token *t);
/* Called once when a job ends by itself (not when cancelled): why, and tokens generated. */
typedef void (*llt_sched_done_fn)(void *user, llt_finish why, int32_t n_generated);

typedef struct llt_sched_job_opts {
    int32_t max_new_tokens;      /* < 0: until the context is full */
    llt_sampler_params sampler;
    float presence_penalty;      /* OpenAI's: subtracted once from each token already output */
    float frequency_penalty;     /* subtracted per occurrence in the output */
    int32_t n_logprobs;          /* -1: none; k >= 0: the token's logprob and the top k */
    bool ignore_eog;             /* end-of-generation tokens are ordinary output */
    int64_t after;               /* a job whose prompt pages this one should share (the n
                                  * choices of one request): it joins once that job's prompt
                                  * is prefilled; -1: none */
    llt_sched_job_fn fn;
    llt_sched_done_fn done;
    void *user;
} llt_sched_job_opts;
void llt_sched_job_opts_init(llt_sched_job_opts *o);

typedef struct llt_sched_stats {
    int64_t n_steps;          /* forward passes that succeeded */
    int64_t n_full;           /* steps refused with LLT_ERR_FULL */
    int64_t n_preempted;      /* sequences preempted (then recomputed) */
    int64_t n_prompt_tokens;  /* prompt tokens fed (recomputation included) */
    int64_t n_cached_tokens;  /* prompt tokens taken from the prefix cache instead */
    int64_t n_generated;      /* tokens sampled */
    int32_t max_running;      /* most sequences in one step */
    double prompt_s;          /* wall time of steps with no decode row */
    double gen_s;             /* wall time of steps with at least one decode row */
} llt_sched_stats;

typedef struct llt_sched_create_opts {
    int32_t parallel;         /* sequences in flight (clamped to the cache's max_seqs) */
    int32_t max_step_tokens;  /* tokens per forward step; 0 = 256 */
    bool prefix_cache;
    /* false: steps whose rows are all greedy (no logprobs, no penalties) take only the argmax
     * ids back from a backend that computes them (CUDA); true: always the logits rows */
    bool logits_on_host;
} llt_sched_create_opts;

llt_status llt_sched_create(llt_model *m, const llt_sched_create_opts *o, llt_sched **out,
                            llt_error *err);
/* Cancels every job left (their sequences are freed); NULL is a no-op. */
void llt_sched_free(llt_sched *s);
/* Adds a job: ids[0, n) (1 <= n <= the context) are copied. *id names it for cancel/after. */
llt_status llt_sched_add(llt_sched *s, const int32_t *ids, int32_t n,
                         const llt_sched_job_opts *o, int64_t *id, llt_error *err);
/* Ends a job now (between steps): its pages go back at once, no more callbacks. Unknown or
 * finished ids are ignored. */
void llt_sched_cancel(llt_sched *s, int64_t id);
/* One step. *busy = false when there was nothing to run (no jobs). */
llt_status llt_sched_step(llt_sched *s, bool *busy, llt_error *err);
int32_t llt_sched_n_running(const llt_sched *s);
int32_t llt_sched_n_waiting(const llt_sched *s);
int32_t llt_sched_parallel(const llt_sched *s);
const llt_sched_stats *llt_sched_get_stats(const llt_sched *s);

/* ---- a fixed set of prompts, run to the end ---- */

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

/* prompts[i]: n_prompt[i] token ids (>= 1); prompts[i] NULL with n_prompt[i] 0 skips prompt i
 * (one its caller refused; the others keep their indices and seeds). stats may be NULL.
 * LLT_ERR_FULL (after finishing the others) when a prompt did not fit in the pool even alone. */
llt_status llt_sched_run(llt_model *m, const int32_t *const *prompts, const int32_t *n_prompt,
                         int32_t n, const llt_sched_opts *o, llt_sched_token_fn fn, void *user,
                         llt_sched_stats *stats, llt_error *err);

#endif
