/* scheduler.c: continuous batching (see scheduler.h for the contract).
 *
 * One loop: admit waiting prompts -> build one batch (decode rows first, then prefill chunks
 * within the token budget) -> llt_model_decode -> sample the rows that produced logits.
 * A refused step (LLT_ERR_FULL, nothing appended) preempts the youngest sequence and the loop
 * goes round again; admission then waits until some sequence leaves, so a preempted prompt
 * does not bounce in and out. */
#include "engine/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "kv/paged_cache.h"
#include "model/model.h"

typedef enum job_state { JOB_WAITING = 0, JOB_RUNNING, JOB_DONE } job_state;

typedef struct job {
    int32_t *ids;        /* [cap]: the prompt, then the generated tokens */
    int32_t n_ids, cap, n_gen;
    int32_t n_fed;       /* ids[0, n_fed) are in the KV cache */
    int32_t seq;         /* KV sequence while running, else -1 */
    int64_t born;        /* admission tick: the largest is the youngest */
    bool requeued;       /* preempted: joins again before prompts that never ran */
    job_state state;
    llt_sampler *sampler;
} job;

typedef struct sched {
    llt_model *m;
    llt_kv_cache *kv;
    const llt_tokenizer *tok;
    const llt_config *cfg;
    const llt_sched_opts *o;
    llt_sched_token_fn fn;
    void *user;
    job *jobs;
    int32_t n, parallel, n_running, n_done, step_cap;
    int32_t max_ctx;     /* positions a sequence may use (llt_model_max_ctx) */
    int32_t max_new;     /* max_new_tokens; < 0 = until the context is full */
    int64_t tick;
    bool hold;           /* no admission until a sequence leaves (set by a preemption) */
    int32_t n_too_big, first_too_big;
    /* one step's batch: tokens, seq_ids, want [step_cap + parallel]; take [n]; rows [parallel] */
    int32_t *tokens, *seq_ids, *take, *row_job, n_tok, n_rows;
    int8_t *want;
    int32_t n_decode_rows;
    float *logits;       /* [parallel, vocab] */
    llt_sched_stats st;
} sched;

static int32_t pages_for(const sched *s, int32_t n) {
    int32_t ps = s->kv->o.page_size;
    return (int32_t)(((int64_t)n + ps - 1) / ps);
}

static bool is_eog(const sched *s, int32_t t) {
    if (s->tok) return llt_tokenizer_is_eog(s->tok, t);
    for (int32_t i = 0; i < s->cfg->n_eos; i++)
        if (s->cfg->eos_token_ids[i] == t) return true;
    return t == s->cfg->eos_token_id && t >= 0;
}

/* ---- setup / teardown ---------------------------------------------------------------- */

static llt_status init_job(sched *s, int32_t i, const int32_t *ids, int32_t n, llt_error *err) {
    job *j = &s->jobs[i];
    j->seq = -1;
    LLT_CHECK(ids && n > 0, err, LLT_ERR_INVALID_ARG, "batch: prompt %d has no tokens", i);
    LLT_CHECK(n <= s->max_ctx, err, LLT_ERR_INVALID_ARG,
              "batch: prompt %d has %d tokens, the context holds %d", i, n, s->max_ctx);
    /* room for the whole output when it is bounded, else it grows */
    int64_t cap = (int64_t)n + (s->max_new >= 0 ? s->max_new : 256);
    j->cap = (int32_t)(cap < (int64_t)s->max_ctx + 1 ? cap : (int64_t)s->max_ctx + 1);
    j->ids = malloc(sizeof(int32_t) * (size_t)j->cap);
    LLT_CHECK(j->ids, err, LLT_ERR_NOMEM, "batch: out of memory for prompt %d", i);
    memcpy(j->ids, ids, sizeof(int32_t) * (size_t)n);
    j->n_ids = n;
    llt_sampler_params sp = s->o->sampler;
    sp.seed += (uint64_t)i;
    LLT_TRY(llt_sampler_create(&sp, s->cfg->vocab_size, &j->sampler, err));
    if (s->max_new == 0) j->state = JOB_DONE, s->n_done++;
    return LLT_OK;
}

static llt_status init_sched(sched *s, llt_error *err) {
    int32_t want = s->o->parallel > 0 ? s->o->parallel : 1;
    s->parallel = want < s->kv->o.max_seqs ? want : s->kv->o.max_seqs;
    if (s->parallel < want)
        LLT_WARN("batch: --parallel %d clamped to the KV cache's %d sequence slots", want,
                 s->parallel);
    s->step_cap = s->o->max_step_tokens > 0 ? s->o->max_step_tokens : 256;
    size_t cap = (size_t)s->step_cap + (size_t)s->parallel;
    s->jobs = calloc((size_t)s->n, sizeof(job));
    s->take = calloc((size_t)s->n, sizeof(int32_t));
    s->tokens = malloc(sizeof(int32_t) * cap);
    s->seq_ids = malloc(sizeof(int32_t) * cap);
    s->want = malloc(cap);
    s->row_job = malloc(sizeof(int32_t) * (size_t)s->parallel);
    s->logits = malloc(sizeof(float) * (size_t)s->parallel * (size_t)s->cfg->vocab_size);
    LLT_CHECK(s->jobs && s->take && s->tokens && s->seq_ids && s->want && s->row_job && s->logits,
              err, LLT_ERR_NOMEM, "batch: out of memory for %d prompts, %d in flight", s->n,
              s->parallel);
    s->first_too_big = -1;
    s->max_ctx = llt_model_max_ctx(s->m);
    s->max_new = s->o->max_new_tokens;
    return LLT_OK;
}

static void free_sched(sched *s) {
    for (int32_t i = 0; s->jobs && i < s->n; i++) {
        if (s->jobs[i].seq >= 0) llt_kv_seq_free(s->kv, s->jobs[i].seq);
        llt_sampler_free(s->jobs[i].sampler);
        free(s->jobs[i].ids);
    }
    free(s->jobs), free(s->take), free(s->tokens), free(s->seq_ids), free(s->want);
    free(s->row_job), free(s->logits);
}

/* ---- admission, completion, preemption ----------------------------------------------- */

/* The next prompt to join: preempted ones first (oldest first), then by index. */
static job *next_waiting(sched *s) {
    job *best = NULL;
    for (int32_t i = 0; i < s->n; i++) {
        job *j = &s->jobs[i];
        if (j->state != JOB_WAITING) continue;
        if (!best || (j->requeued && (!best->requeued || j->born < best->born))) best = j;
    }
    return best;
}

static llt_status admit(sched *s, llt_error *err) {
    while (!s->hold && s->n_running < s->parallel) {
        job *j = next_waiting(s);
        if (!j) break;
        /* its prompt's pages plus one page of headroom per sequence already running */
        if (s->n_running > 0 && llt_kv_pages_free(s->kv) < pages_for(s, j->n_ids) + s->n_running)
            break;
        llt_status st = llt_kv_seq_create(s->kv, &j->seq, err);
        if (st == LLT_ERR_FULL && s->n_running > 0) break; /* slots held elsewhere */
        LLT_TRY(st);
        j->state = JOB_RUNNING;
        j->n_fed = 0;
        j->born = s->tick++;
        s->n_running++;
    }
    return LLT_OK;
}

static void finish(sched *s, job *j) {
    if (j->seq >= 0) llt_kv_seq_free(s->kv, j->seq);
    if (j->state == JOB_RUNNING) s->n_running--;
    j->seq = -1;
    j->state = JOB_DONE;
    s->n_done++;
    s->hold = false;
}

static job *youngest(sched *s) {
    job *y = NULL;
    for (int32_t i = 0; i < s->n; i++)
        if (s->jobs[i].state == JOB_RUNNING && (!y || s->jobs[i].born > y->born)) y = &s->jobs[i];
    return y;
}

/* A refused step: free the youngest sequence's pages and requeue it for recomputation; when
 * it is alone it can never fit, so it stops with what it has. */
static void on_full(sched *s, const llt_error *why) {
    job *y = youngest(s);
    s->st.n_full++;
    if (s->n_running == 1) {
        int32_t idx = (int32_t)(y - s->jobs);
        LLT_WARN("batch: prompt %d does not fit in the KV pool even alone, stopped after %d "
                 "tokens (%s)", idx, y->n_gen, why ? why->msg : "");
        if (s->n_too_big++ == 0) s->first_too_big = idx;
        finish(s, y);
        return;
    }
    llt_kv_seq_free(s->kv, y->seq);
    y->seq = -1;
    y->state = JOB_WAITING;
    y->requeued = true;
    y->n_fed = 0;
    s->n_running--;
    s->hold = true;
    s->st.n_preempted++;
}

/* ---- one step ------------------------------------------------------------------------ */

static void add_tokens(sched *s, int32_t i, int32_t t) {
    job *j = &s->jobs[i];
    for (int32_t k = 0; k < t; k++) {
        s->tokens[s->n_tok] = j->ids[j->n_fed + k];
        s->seq_ids[s->n_tok] = j->seq;
        s->want[s->n_tok] = (int8_t)(k == t - 1 && j->n_fed + t == j->n_ids);
        if (s->want[s->n_tok]) s->row_job[s->n_rows++] = i;
        s->n_tok++;
    }
    s->take[i] = t;
}

/* Decode rows (one token left to feed) first, then prefill chunks within the budget. */
static void build(sched *s) {
    s->n_tok = s->n_rows = 0;
    s->n_decode_rows = 0;
    memset(s->take, 0, sizeof(int32_t) * (size_t)s->n);
    for (int32_t i = 0; i < s->n; i++) {
        job *j = &s->jobs[i];
        if (j->state == JOB_RUNNING && j->n_ids - j->n_fed == 1 && j->n_gen > 0)
            add_tokens(s, i, 1), s->n_decode_rows++;
    }
    for (int32_t i = 0; i < s->n; i++) {
        job *j = &s->jobs[i];
        int32_t left = s->step_cap - s->n_tok, rem = j->n_ids - j->n_fed;
        if (j->state != JOB_RUNNING || s->take[i] || left <= 0) continue;
        add_tokens(s, i, rem < left ? rem : left);
    }
}

/* Appends t to j's tokens, growing them when the output is unbounded. */
static llt_status push(job *j, int32_t t, llt_error *err) {
    if (j->n_ids == j->cap) {
        /* Check that the capacity can grow before realloc: a same-size realloc may still move
         * the block, and refusing it afterwards would leave j->ids dangling. */
        LLT_CHECK(j->cap > 0 && j->cap < INT32_MAX, err, LLT_ERR_NOMEM,
                  "batch: cannot hold more than %d tokens", j->cap);
        int32_t cap = j->cap <= INT32_MAX / 2 ? j->cap * 2 : INT32_MAX;
        int32_t *ids = realloc(j->ids, sizeof(int32_t) * (size_t)cap);
        LLT_CHECK(ids, err, LLT_ERR_NOMEM, "batch: out of memory for %d tokens", cap);
        j->ids = ids, j->cap = cap;
    }
    j->ids[j->n_ids++] = t;
    return LLT_OK;
}

/* Samples job i's next token from its logits row; streams it; finishes the job when done:
 * an end-of-generation token (not part of the output), max_new_tokens, the callback, or a
 * full context (the last token is output but never fed, as llt_generate does). */
static llt_status sample(sched *s, int32_t i, float *logits, llt_error *err) {
    job *j = &s->jobs[i];
    int32_t t = llt_sampler_sample(j->sampler, logits);
    bool eog = !s->o->ignore_eog && is_eog(s, t);
    int stop = s->fn ? s->fn(i, t, eog, s->user) : 0;
    if (eog) {
        finish(s, j);
        return LLT_OK;
    }
    LLT_TRY(push(j, t, err));
    j->n_gen++;
    s->st.n_generated++;
    if (stop || (s->max_new >= 0 && j->n_gen >= s->max_new) || j->n_ids > s->max_ctx)
        finish(s, j);
    return LLT_OK;
}

static llt_status step(sched *s, llt_error *err) {
    llt_batch b = {s->n_tok, s->tokens, s->seq_ids, s->want};
    int32_t rows = 0;
    double t0 = llt_time_now();
    llt_status st = llt_model_decode(s->m, &b, s->logits, &rows, err);
    if (st == LLT_ERR_FULL) {
        on_full(s, err);
        return LLT_OK;
    }
    LLT_TRY(st);
    LLT_CHECK(rows == s->n_rows, err, LLT_ERR_STATE,
              "batch: the forward pass returned %d logits rows, expected %d", rows, s->n_rows);
    *(s->n_decode_rows ? &s->st.gen_s : &s->st.prompt_s) += llt_time_now() - t0;
    s->st.n_steps++;
    s->st.max_running = s->n_running > s->st.max_running ? s->n_running : s->st.max_running;
    s->st.n_prompt_tokens += s->n_tok - s->n_decode_rows;
    for (int32_t i = 0; i < s->n; i++) s->jobs[i].n_fed += s->take[i];
    for (int32_t r = 0; r < rows; r++)
        LLT_TRY(sample(s, s->row_job[r], s->logits + (int64_t)r * s->cfg->vocab_size, err));
    return LLT_OK;
}

/* ---- the loop ------------------------------------------------------------------------ */

static llt_status run_loop(sched *s, llt_error *err) {
    while (s->n_done < s->n) {
        LLT_TRY(admit(s, err));
        build(s);
        LLT_CHECK(s->n_tok > 0, err, LLT_ERR_STATE,
                  "batch: no sequence can run (%d waiting, KV cache slots all taken)",
                  s->n - s->n_done);
        LLT_TRY(step(s, err));
    }
    if (s->n_too_big)
        return llt_err_set(err, LLT_ERR_FULL,
                           "batch: %d prompt(s) (first: %d) did not fit in the KV pool even "
                           "alone (max_pages %d of %d tokens): raise --max_pages",
                           s->n_too_big, s->first_too_big, s->kv->o.max_pages,
                           s->kv->o.page_size);
    return LLT_OK;
}

llt_status llt_sched_run(llt_model *m, const int32_t *const *prompts, const int32_t *n_prompt,
                         int32_t n, const llt_sched_opts *o, llt_sched_token_fn fn, void *user,
                         llt_sched_stats *stats, llt_error *err) {
    LLT_CHECK(m && o && n >= 0 && (n == 0 || (prompts && n_prompt)), err, LLT_ERR_INVALID_ARG,
              "batch: NULL argument or negative prompt count %d", n);
    sched s = {0};
    s.m = m, s.o = o, s.fn = fn, s.user = user, s.n = n;
    s.kv = llt_model_kv_cache(m);
    s.cfg = llt_model_config(m);
    s.tok = llt_model_tokenizer(m);
    LLT_CHECK(s.kv, err, LLT_ERR_STATE, "batch: the model has no KV cache");
    llt_status st = init_sched(&s, err);
    for (int32_t i = 0; st == LLT_OK && i < n; i++)
        st = init_job(&s, i, prompts[i], n_prompt[i], err);
    if (st == LLT_OK) st = run_loop(&s, err);
    if (stats) *stats = s.st;
    free_sched(&s);
    return st;
}
