/* scheduler.c: continuous batching (see scheduler.h for the contract).
 *
 * One step: admit waiting jobs -> build one batch (decode rows first, then prefill chunks
 * within the token budget) -> llt_model_decode -> sample the rows that produced logits ->
 * publish full pages to the prefix cache -> drop finished jobs. A refused step (LLT_ERR_FULL,
 * nothing appended) preempts the youngest job and the next step goes round again; admission
 * then waits until some job leaves, so a preempted prompt does not bounce in and out. */
#include "engine/scheduler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "kv/paged_cache.h"
#include "model/model.h"

#define MAX_TOP 32 /* top logprobs per token */

typedef enum job_state { JOB_WAITING = 0, JOB_RUNNING, JOB_DONE } job_state;

typedef struct job {
    int64_t id;
    int32_t *ids;        /* [cap]: the prompt, then the generated tokens */
    int32_t n_ids, cap, n_prompt, n_gen;
    int32_t n_fed;       /* ids[0, n_fed) are in the KV cache */
    int32_t seq;         /* KV sequence while running, else -1 */
    int32_t take;        /* tokens fed in the step being built */
    int64_t born;        /* admission tick: the largest is the youngest */
    bool requeued;       /* preempted: joins again before jobs that never ran */
    job_state state;
    llt_sampler *sampler;
    llt_sched_job_opts o;
} job;

struct llt_sched {
    llt_model *m;
    llt_kv_cache *kv;
    const llt_tokenizer *tok;
    const llt_config *cfg;
    llt_sched_create_opts o;
    job **jobs;          /* [n_jobs] in the order they were added */
    int32_t n_jobs, cap_jobs, parallel, n_running, step_cap, max_ctx;
    int64_t next_id, tick;
    bool hold;           /* no admission until a job leaves (set by a preemption) */
    /* one step's batch: tokens, seq_ids, want [step_cap + parallel]; rows [parallel] */
    int32_t *tokens, *seq_ids, n_tok, n_rows, n_decode_rows;
    job **row_job;
    int8_t *want;
    float *logits;       /* [parallel, vocab] */
    int32_t *greedy_ids; /* [parallel]: the argmax of each row, when the backend computed it */
    float *row_copy;     /* [vocab]: raw logits kept for logprobs */
    int32_t *counts;     /* [vocab] zero between uses: penalties */
    int32_t top_ids[MAX_TOP];
    float top_lp[MAX_TOP];
    llt_sched_stats st;
};

static int32_t pages_for(const llt_sched *s, int32_t n) {
    int32_t ps = s->kv->o.page_size;
    return (int32_t)(((int64_t)n + ps - 1) / ps);
}

static bool is_eog(const llt_sched *s, int32_t t) {
    if (s->tok) return llt_tokenizer_is_eog(s->tok, t);
    for (int32_t i = 0; i < s->cfg->n_eos; i++)
        if (s->cfg->eos_token_ids[i] == t) return true;
    return t == s->cfg->eos_token_id && t >= 0;
}

void llt_sched_job_opts_init(llt_sched_job_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 32;
    o->sampler = (llt_sampler_params){0.0f, 1.0f, 0, 0};
    o->n_logprobs = -1;
    o->after = -1;
}

/* ---- create / free --------------------------------------------------------------------- */

llt_status llt_sched_create(llt_model *m, const llt_sched_create_opts *o, llt_sched **out,
                            llt_error *err) {
    LLT_CHECK(m && o && out, err, LLT_ERR_INVALID_ARG, "scheduler: NULL argument");
    *out = NULL;
    llt_kv_cache *kv = llt_model_kv_cache(m);
    LLT_CHECK(kv, err, LLT_ERR_STATE, "scheduler: the model has no KV cache");
    llt_sched *s = calloc(1, sizeof *s);
    LLT_CHECK(s, err, LLT_ERR_NOMEM, "scheduler: out of memory");
    s->m = m, s->kv = kv, s->o = *o;
    s->cfg = llt_model_config(m);
    s->tok = llt_model_tokenizer(m);
    int32_t want = o->parallel > 0 ? o->parallel : 1;
    s->parallel = want < kv->o.max_seqs ? want : kv->o.max_seqs;
    if (s->parallel < want)
        LLT_WARN("batch: --parallel %d clamped to the KV cache's %d sequence slots", want,
                 s->parallel);
    s->step_cap = o->max_step_tokens > 0 ? o->max_step_tokens : 256;
    s->max_ctx = llt_model_max_ctx(m);
    size_t cap = (size_t)s->step_cap + (size_t)s->parallel, vocab = (size_t)s->cfg->vocab_size;
    s->tokens = malloc(sizeof(int32_t) * cap);
    s->seq_ids = malloc(sizeof(int32_t) * cap);
    s->want = malloc(cap);
    s->row_job = malloc(sizeof(job *) * (size_t)s->parallel);
    s->logits = malloc(sizeof(float) * (size_t)s->parallel * vocab);
    s->greedy_ids = malloc(sizeof(int32_t) * (size_t)s->parallel);
    s->row_copy = malloc(sizeof(float) * vocab);
    s->counts = calloc(vocab, sizeof(int32_t));
    if (!s->tokens || !s->seq_ids || !s->want || !s->row_job || !s->logits || !s->greedy_ids ||
        !s->row_copy || !s->counts) {
        llt_sched_free(s);
        return llt_err_set(err, LLT_ERR_NOMEM, "scheduler: out of memory for %d in flight",
                           want);
    }
    *out = s;
    return LLT_OK;
}

static void job_free(llt_sched *s, job *j) {
    if (j->seq >= 0) llt_kv_seq_free(s->kv, j->seq);
    llt_sampler_free(j->sampler);
    free(j->ids);
    free(j);
}

void llt_sched_free(llt_sched *s) {
    if (!s) return;
    for (int32_t i = 0; i < s->n_jobs; i++) job_free(s, s->jobs[i]);
    free(s->jobs), free(s->tokens), free(s->seq_ids), free(s->want), free(s->row_job);
    free(s->logits), free(s->greedy_ids), free(s->row_copy), free(s->counts);
    free(s);
}

int32_t llt_sched_n_running(const llt_sched *s) { return s ? s->n_running : 0; }
int32_t llt_sched_n_waiting(const llt_sched *s) { return s ? s->n_jobs - s->n_running : 0; }
int32_t llt_sched_parallel(const llt_sched *s) { return s ? s->parallel : 0; }
const llt_sched_stats *llt_sched_get_stats(const llt_sched *s) { return &s->st; }

/* ---- add / cancel ---------------------------------------------------------------------- */

static llt_status check_job(const llt_sched *s, int32_t n, const llt_sched_job_opts *o,
                            llt_error *err) {
    LLT_CHECK(n > 0, err, LLT_ERR_INVALID_ARG, "scheduler: a prompt needs at least one token");
    LLT_CHECK(n <= s->max_ctx, err, LLT_ERR_INVALID_ARG,
              "scheduler: prompt of %d tokens, the context holds %d", n, s->max_ctx);
    LLT_CHECK(o->n_logprobs <= MAX_TOP, err, LLT_ERR_INVALID_ARG,
              "scheduler: %d top logprobs asked, at most %d", o->n_logprobs, MAX_TOP);
    LLT_CHECK(isfinite(o->presence_penalty) && isfinite(o->frequency_penalty), err,
              LLT_ERR_INVALID_ARG, "scheduler: penalties must be finite");
    return LLT_OK;
}

llt_status llt_sched_add(llt_sched *s, const int32_t *ids, int32_t n,
                         const llt_sched_job_opts *o, int64_t *id, llt_error *err) {
    LLT_CHECK(s && ids && o, err, LLT_ERR_INVALID_ARG, "scheduler: NULL argument");
    LLT_TRY(check_job(s, n, o, err));
    if (s->n_jobs == s->cap_jobs) {
        int32_t cap = s->cap_jobs ? s->cap_jobs * 2 : 16;
        job **jobs = realloc(s->jobs, sizeof(job *) * (size_t)cap);
        LLT_CHECK(jobs, err, LLT_ERR_NOMEM, "scheduler: out of memory for %d jobs", cap);
        s->jobs = jobs, s->cap_jobs = cap;
    }
    job *j = calloc(1, sizeof *j);
    /* room for the whole output when it is bounded, else it grows */
    int64_t cap = (int64_t)n + (o->max_new_tokens >= 0 ? o->max_new_tokens : 256);
    if (cap > (int64_t)s->max_ctx + 1) cap = (int64_t)s->max_ctx + 1;
    int32_t *buf = j ? malloc(sizeof(int32_t) * (size_t)cap) : NULL;
    if (!buf) {
        free(j);
        return llt_err_set(err, LLT_ERR_NOMEM, "scheduler: out of memory for %lld tokens",
                           (long long)cap);
    }
    memcpy(buf, ids, sizeof(int32_t) * (size_t)n);
    *j = (job){.id = s->next_id++, .ids = buf, .n_ids = n, .cap = (int32_t)cap, .n_prompt = n,
               .seq = -1, .o = *o};
    llt_status st = llt_sampler_create(&o->sampler, s->cfg->vocab_size, &j->sampler, err);
    if (st != LLT_OK) {
        job_free(s, j);
        return st;
    }
    s->jobs[s->n_jobs++] = j;
    if (id) *id = j->id;
    return LLT_OK;
}

static job *find_job(const llt_sched *s, int64_t id) {
    for (int32_t i = 0; i < s->n_jobs; i++)
        if (s->jobs[i]->id == id) return s->jobs[i];
    return NULL;
}

/* Removes finished jobs, keeping the order of the rest. */
static void sweep(llt_sched *s) {
    int32_t k = 0;
    for (int32_t i = 0; i < s->n_jobs; i++) {
        if (s->jobs[i]->state == JOB_DONE) job_free(s, s->jobs[i]);
        else s->jobs[k++] = s->jobs[i];
    }
    s->n_jobs = k;
}

static void finish(llt_sched *s, job *j, llt_finish why) {
    if (j->state == JOB_DONE) return;
    if (j->seq >= 0) llt_kv_seq_free(s->kv, j->seq);
    if (j->state == JOB_RUNNING) s->n_running--;
    j->seq = -1;
    j->state = JOB_DONE;
    s->hold = false;
    if (why != LLT_FINISH_CANCELLED && j->o.done) j->o.done(j->o.user, why, j->n_gen);
}

void llt_sched_cancel(llt_sched *s, int64_t id) {
    job *j = s ? find_job(s, id) : NULL;
    if (!j) return;
    finish(s, j, LLT_FINISH_CANCELLED);
    sweep(s);
}

/* ---- admission and preemption ---------------------------------------------------------- */

/* A job sharing another's prompt waits until that prompt's pages are published. */
static bool ready(const llt_sched *s, const job *j) {
    if (j->o.after < 0) return true;
    const job *p = find_job(s, j->o.after);
    return !p || p->state == JOB_DONE || (p->state == JOB_RUNNING && p->n_fed >= p->n_prompt - 1);
}

/* The next job to join: preempted ones first (oldest first), then in the order added. */
static job *next_waiting(llt_sched *s) {
    job *best = NULL;
    for (int32_t i = 0; i < s->n_jobs; i++) {
        job *j = s->jobs[i];
        if (j->state != JOB_WAITING || !ready(s, j)) continue;
        if (!best || (j->requeued && (!best->requeued || j->born < best->born))) best = j;
    }
    return best;
}

static llt_status admit(llt_sched *s, llt_error *err) {
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
        j->born = s->tick++;
        s->n_running++;
        j->n_fed = s->o.prefix_cache ? llt_kv_prefix_attach(s->kv, j->seq, j->ids, j->n_ids) : 0;
        s->st.n_cached_tokens += j->n_fed;
        if (j->o.max_new_tokens == 0) finish(s, j, LLT_FINISH_LENGTH);
    }
    return LLT_OK;
}

static job *youngest(llt_sched *s) {
    job *y = NULL;
    for (int32_t i = 0; i < s->n_jobs; i++)
        if (s->jobs[i]->state == JOB_RUNNING && (!y || s->jobs[i]->born > y->born)) y = s->jobs[i];
    return y;
}

/* A refused step: free the youngest sequence's pages and requeue it for recomputation; when
 * it is alone it can never fit, so it stops with what it has. */
static void on_full(llt_sched *s, const llt_error *why) {
    job *y = youngest(s);
    s->st.n_full++;
    if (!y) return;
    if (s->n_running == 1) {
        LLT_WARN("batch: a prompt does not fit in the KV pool even alone, stopped after %d "
                 "tokens (%s)", y->n_gen, why ? why->msg : "");
        finish(s, y, LLT_FINISH_NO_SPACE);
        return;
    }
    LLT_DEBUG("batch: KV pool full, preempting job %lld (%d tokens generated, %d running); it will be "
              "recomputed", (long long)y->id, y->n_gen, s->n_running);
    llt_kv_seq_free(s->kv, y->seq);
    y->seq = -1;
    y->state = JOB_WAITING;
    y->requeued = true;
    y->n_fed = 0;
    s->n_running--;
    s->hold = true;
    s->st.n_preempted++;
}

/* ---- one step -------------------------------------------------------------------------- */

static void add_tokens(llt_sched *s, job *j, int32_t t) {
    for (int32_t k = 0; k < t; k++) {
        s->tokens[s->n_tok] = j->ids[j->n_fed + k];
        s->seq_ids[s->n_tok] = j->seq;
        s->want[s->n_tok] = (int8_t)(k == t - 1 && j->n_fed + t == j->n_ids);
        if (s->want[s->n_tok]) s->row_job[s->n_rows++] = j;
        s->n_tok++;
    }
    j->take = t;
}

/* Decode rows (one token left to feed) first, then prefill chunks within the budget. */
static void build(llt_sched *s) {
    s->n_tok = s->n_rows = s->n_decode_rows = 0;
    for (int32_t i = 0; i < s->n_jobs; i++) {
        job *j = s->jobs[i];
        j->take = 0;
        if (j->state == JOB_RUNNING && j->n_ids - j->n_fed == 1 && j->n_gen > 0)
            add_tokens(s, j, 1), s->n_decode_rows++;
    }
    for (int32_t i = 0; i < s->n_jobs; i++) {
        job *j = s->jobs[i];
        int32_t left = s->step_cap - s->n_tok, rem = j->n_ids - j->n_fed;
        if (j->state != JOB_RUNNING || j->take || left <= 0) continue;
        add_tokens(s, j, rem < left ? rem : left);
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

/* OpenAI's penalties over the tokens generated so far. */
static void apply_penalties(llt_sched *s, const job *j, float *logits) {
    if (j->o.presence_penalty == 0 && j->o.frequency_penalty == 0) return;
    for (int32_t i = j->n_prompt; i < j->n_ids; i++) s->counts[j->ids[i]]++;
    for (int32_t i = j->n_prompt; i < j->n_ids; i++) {
        int32_t t = j->ids[i], c = s->counts[t];
        if (!c) continue; /* already applied for this token */
        logits[t] -= j->o.presence_penalty + j->o.frequency_penalty * (float)c;
        s->counts[t] = 0;
    }
}

/* log-softmax normaliser of raw logits, and the k best tokens (ties: lowest id). */
static double top_logprobs(llt_sched *s, const float *x, int32_t k) {
    int32_t v = s->cfg->vocab_size;
    float mx = -INFINITY;
    for (int32_t i = 0; i < v; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int32_t i = 0; i < v; i++) sum += isfinite(x[i]) ? exp((double)x[i] - mx) : 0.0;
    double lse = mx + log(sum);
    int32_t n = 0;
    for (int32_t i = 0; i < v && k > 0; i++) {
        if (n == k && !(x[i] > x[s->top_ids[n - 1]])) continue;
        int32_t p = n < k ? n++ : n - 1;
        while (p > 0 && x[i] > x[s->top_ids[p - 1]]) s->top_ids[p] = s->top_ids[p - 1], p--;
        s->top_ids[p] = i;
    }
    for (int32_t i = 0; i < n; i++) s->top_lp[i] = (float)(x[s->top_ids[i]] - lse);
    return lse;
}

/* Samples j's next token from its logits row; reports it; finishes the job when done: an
 * end-of-generation token (not part of the output), max_new_tokens, the callback, or a full
 * context (the last token is output but never fed, as llt_generate does). */
static llt_status sample(llt_sched *s, job *j, float *logits, int32_t greedy_id, llt_error *err) {
    llt_sched_token tk = {0};
    double lse = 0;
    if (!logits) {
        tk.token = greedy_id; /* the backend's argmax (run_step checked that j wants no more) */
    } else {
        if (j->o.n_logprobs >= 0) {
            memcpy(s->row_copy, logits, sizeof(float) * (size_t)s->cfg->vocab_size);
            lse = top_logprobs(s, s->row_copy, j->o.n_logprobs);
            tk.n_top = j->o.n_logprobs;
            tk.top_ids = s->top_ids, tk.top_logprobs = s->top_lp;
        }
        apply_penalties(s, j, logits);
        tk.token = llt_sampler_sample(j->sampler, logits);
    }
    tk.eog = !j->o.ignore_eog && is_eog(s, tk.token);
    if (j->o.n_logprobs >= 0) tk.logprob = (float)(s->row_copy[tk.token] - lse);
    int stop = j->o.fn ? j->o.fn(j->o.user, &tk) : 0;
    if (tk.eog) {
        finish(s, j, LLT_FINISH_EOG);
        return LLT_OK;
    }
    LLT_TRY(push(j, tk.token, err));
    j->n_gen++;
    s->st.n_generated++;
    int32_t max_new = j->o.max_new_tokens;
    if (stop) finish(s, j, LLT_FINISH_STOPPED);
    else if (max_new >= 0 && j->n_gen >= max_new) finish(s, j, LLT_FINISH_LENGTH);
    else if (j->n_ids > s->max_ctx) finish(s, j, LLT_FINISH_CONTEXT);
    return LLT_OK;
}

/* Every row greedy with no logprobs or penalties, on a backend that computes the argmax beside
 * the logits: only the ids need to come back. */
static bool all_greedy(const llt_sched *s) {
    if (!llt_model_has_decode_greedy(s->m) || s->o.logits_on_host) return false;
    for (int32_t r = 0; r < s->n_rows; r++) {
        const llt_sched_job_opts *o = &s->row_job[r]->o;
        if (o->sampler.temperature >= 1e-6f || o->n_logprobs >= 0 || o->presence_penalty != 0 ||
            o->frequency_penalty != 0)
            return false;
    }
    return true;
}

static llt_status run_step(llt_sched *s, llt_error *err) {
    llt_batch b = {s->n_tok, s->tokens, s->seq_ids, s->want};
    int32_t rows = 0;
    double t0 = llt_time_now();
    bool greedy = s->n_rows > 0 && all_greedy(s);
    llt_status st = greedy ? llt_model_decode_greedy(s->m, &b, s->greedy_ids, &rows, err)
                           : llt_model_decode(s->m, &b, s->logits, &rows, err);
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
    for (int32_t i = 0; i < s->n_jobs; i++) {
        job *j = s->jobs[i];
        j->n_fed += j->take;
        if (s->o.prefix_cache && j->take) llt_kv_prefix_publish(s->kv, j->seq, j->ids, j->n_fed);
    }
    for (int32_t r = 0; r < rows; r++)
        LLT_TRY(sample(s, s->row_job[r], greedy ? NULL : s->logits + (int64_t)r * s->cfg->vocab_size,
                       greedy ? s->greedy_ids[r] : -1, err));
    return LLT_OK;
}

llt_status llt_sched_step(llt_sched *s, bool *busy, llt_error *err) {
    LLT_CHECK(s && busy, err, LLT_ERR_INVALID_ARG, "scheduler: NULL argument");
    *busy = s->n_jobs > 0;
    if (!*busy) return LLT_OK;
    llt_status st = admit(s, err);
    if (st == LLT_OK) {
        build(s);
        if (s->n_tok > 0) {
            st = run_step(s, err);
        } else if (s->n_running == 0) {
            /* nothing can join: the sequence slots are all held outside the scheduler */
            job *j = next_waiting(s);
            if (j) finish(s, j, LLT_FINISH_NO_SPACE);
        }
    }
    sweep(s);
    return st;
}

/* ---- a fixed set of prompts ------------------------------------------------------------ */

typedef struct run_ctx {
    llt_sched_token_fn fn;
    void *user;
    int32_t n_too_big, first_too_big;
} run_ctx;

typedef struct run_job {
    run_ctx *ctx;
    int32_t index;
} run_job;

static int run_on_token(void *user, const llt_sched_token *t) {
    run_job *r = user;
    return r->ctx->fn ? r->ctx->fn(r->index, t->token, t->eog, r->ctx->user) : 0;
}

static void run_on_done(void *user, llt_finish why, int32_t n_generated) {
    run_job *r = user;
    (void)n_generated;
    if (why == LLT_FINISH_NO_SPACE && r->ctx->n_too_big++ == 0) r->ctx->first_too_big = r->index;
}

static llt_status run_all(llt_sched *s, const int32_t *const *prompts, const int32_t *n_prompt,
                          int32_t n, const llt_sched_opts *o, run_job *rj, llt_error *err) {
    for (int32_t i = 0; i < n; i++) {
        if (!prompts[i] && n_prompt[i] == 0) continue; /* skipped by the caller */
        LLT_CHECK(prompts[i] && n_prompt[i] > 0, err, LLT_ERR_INVALID_ARG,
                  "batch: prompt %d has no tokens", i);
        LLT_CHECK(n_prompt[i] <= s->max_ctx, err, LLT_ERR_INVALID_ARG,
                  "batch: prompt %d has %d tokens, the context holds %d", i, n_prompt[i],
                  s->max_ctx);
    }
    for (int32_t i = 0; i < n && o->max_new_tokens != 0; i++) {
        if (!prompts[i]) continue;
        llt_sched_job_opts jo;
        llt_sched_job_opts_init(&jo);
        jo.max_new_tokens = o->max_new_tokens;
        jo.sampler = o->sampler;
        jo.sampler.seed += (uint64_t)i;
        jo.ignore_eog = o->ignore_eog;
        jo.fn = run_on_token, jo.done = run_on_done, jo.user = &rj[i];
        LLT_TRY(llt_sched_add(s, prompts[i], n_prompt[i], &jo, NULL, err));
    }
    bool busy = true;
    while (busy) LLT_TRY(llt_sched_step(s, &busy, err));
    return LLT_OK;
}

llt_status llt_sched_run(llt_model *m, const int32_t *const *prompts, const int32_t *n_prompt,
                         int32_t n, const llt_sched_opts *o, llt_sched_token_fn fn, void *user,
                         llt_sched_stats *stats, llt_error *err) {
    LLT_CHECK(m && o && n >= 0 && (n == 0 || (prompts && n_prompt)), err, LLT_ERR_INVALID_ARG,
              "batch: NULL argument or negative prompt count %d", n);
    llt_sched_create_opts co = {o->parallel, o->max_step_tokens, true, false};
    llt_sched *s = NULL;
    LLT_TRY(llt_sched_create(m, &co, &s, err));
    run_ctx ctx = {fn, user, 0, -1};
    run_job *rj = calloc((size_t)n + 1, sizeof(run_job));
    llt_status st = rj ? LLT_OK : llt_err_set(err, LLT_ERR_NOMEM, "batch: out of memory");
    for (int32_t i = 0; rj && i < n; i++) rj[i] = (run_job){&ctx, i};
    if (st == LLT_OK) st = run_all(s, prompts, n_prompt, n, o, rj, err);
    if (stats) *stats = s->st;
    llt_kv_cache *kv = s->kv;
    llt_sched_free(s);
    llt_kv_prefix_clear(kv); /* a one-shot run leaves the pool as it found it */
    free(rj);
    if (st == LLT_OK && ctx.n_too_big)
        return llt_err_set(err, LLT_ERR_FULL,
                           "batch: %d prompt(s) (first: %d) did not fit in the KV pool even "
                           "alone (max_pages %d of %d tokens): raise --max_pages",
                           ctx.n_too_big, ctx.first_too_big, kv->o.max_pages, kv->o.page_size);
    return st;
}
