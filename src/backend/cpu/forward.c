/* forward.c: the CPU backend's decode step over a batch of tokens of several sequences.
 *
 * Per step: check the batch, reserve KV pages for every sequence (all or nothing), then run
 * the rows in chunks of at most CHUNK_ROWS through
 *   embedding -> per layer: RMSNorm, Q/K/V (one pass over the weights for all rows), RoPE at
 *   each row's position, K/V into the paged cache, paged attention (causal inside the batch),
 *   Wo + residual, RMSNorm, SwiGLU FFN + residual -> final RMSNorm -> output head
 * and commit the new lengths. A row's position is its sequence's length before the step plus
 * its offset among that sequence's rows. Chunks keep the working buffers bounded for long
 * prompts; a later chunk's rows see the earlier chunks' K/V because they are already in the
 * cache. Compute is float32; matmuls and attention run on the model's thread pool. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#include "backend/backend.h"
#include "backend/cpu/attention.h"
#include "backend/cpu/ops.h"
#include "backend/cpu/quant_dot.h"
#include "base/dtype.h"
#include "base/threadpool.h"
#include "kv/paged_cache.h"
#include "model/batch_plan.h"

enum { CHUNK_ROWS = 128 };

/* Working buffers for CHUNK_ROWS rows (shapes per row in comments). */
typedef struct cpu_state {
    float *x;          /* [rows, H] residual stream */
    float *xb;         /* [threads, rows, H] normalised input of a block, one per thread */
    float *q;          /* [rows, n_heads * head_dim] */
    float *k, *v;      /* [rows, n_kv_heads * head_dim] */
    float *att;        /* [rows, n_heads * head_dim] attention output */
    float *ob;         /* [rows, H] projection output before the residual add */
    float *hb, *hb2;   /* [rows, I] FFN gate / up */
    float *rope_sin, *rope_cos; /* [rope_max, head_dim / 2] */
    int32_t rope_max;
    int32_t *row_seq;  /* [rows] for the attention op */
    llt_attn_seq *aseq;/* [rows] per-chunk sequence descriptors */
    float *attn_scratch;
    int64_t attn_stride;
    void *wcopy;       /* the float matrices' copy in huge pages (weights_to_huge_pages), or NULL */
} cpu_state;

/* One sequence's consecutive rows in the whole batch. */
typedef llt_run run; /* model/batch_plan.h */

static void state_free(cpu_state *s) {
    if (!s) return;
    float *bufs[] = {s->x, s->xb, s->q, s->k, s->v, s->att, s->ob, s->hb, s->hb2, s->rope_sin,
                     s->rope_cos, s->attn_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(s->row_seq);
    free(s->aseq);
    free(s->wcopy);
    free(s);
}

static llt_status state_alloc(llt_model *m, cpu_state **out, llt_error *err) {
    const llt_config *c = &m->cfg;
    const int64_t R = CHUNK_ROWS, H = c->hidden_size, I = c->intermediate_size;
    const int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    cpu_state *s = calloc(1, sizeof *s);
    LLT_CHECK(s, err, LLT_ERR_NOMEM, "cpu backend: out of memory");
    s->rope_max = llt_model_max_ctx(m);
    int32_t nt = m->pool ? llt_pool_size(m->pool) : 1;
    s->attn_stride = llt_cpu_attention_scratch_floats(m->kv, c->n_heads);
    s->x = malloc(R * H * 4), s->xb = malloc(nt * R * H * 4), s->ob = malloc(R * H * 4);
    s->q = malloc(R * qd * 4), s->att = malloc(R * qd * 4);
    s->k = malloc(R * kvd * 4), s->v = malloc(R * kvd * 4);
    s->hb = malloc(R * I * 4), s->hb2 = malloc(R * I * 4);
    s->rope_sin = malloc((size_t)s->rope_max * c->head_dim / 2 * 4);
    s->rope_cos = malloc((size_t)s->rope_max * c->head_dim / 2 * 4);
    s->attn_scratch = malloc((size_t)(nt * s->attn_stride) * 4);
    s->row_seq = malloc(R * sizeof *s->row_seq);
    s->aseq = malloc(R * sizeof *s->aseq);
    if (!s->x || !s->xb || !s->ob || !s->q || !s->att || !s->k || !s->v || !s->hb || !s->hb2 ||
        !s->rope_sin || !s->rope_cos || !s->attn_scratch || !s->row_seq || !s->aseq) {
        state_free(s);
        return llt_err_set(err, LLT_ERR_NOMEM, "cpu backend: out of memory for working buffers");
    }
    llt_status st = llt_rotary_build_cfg(c, s->rope_max, s->rope_sin, s->rope_cos, err);
    if (st != LLT_OK) {
        state_free(s);
        return st;
    }
    *out = s;
    return LLT_OK;
}

/* The F32 matrices of the layers and the head copied into one buffer of 2 MiB pages, each
 * matrix 4 KiB aligned; the model's weights then point there. Why: f32 weights are read
 * straight from the file's mapping, 4 KiB page-cache pages at the file's 32-byte
 * alignment, so every 64-byte load spans two cache lines and the hardware prefetchers restart
 * at every 4 KiB; on the dev VM (Zen 5, 2 threads) a row-after-row product streamed a file
 * mapping at 47-56 GB/s and the same bytes in aligned anonymous huge pages at 56-75 (see
 * bench/RESULTS.md, issue 14), and whole decode steps ran 3-14 % faster. Costs one copy at
 * load and the copy's memory beside the page cache (which the kernel may drop); F16 / BF16
 * (converted on load into our own buffers, or half the bytes) are not copied: not measured
 * faster. LLT_CPU_COPY_WEIGHTS=0 keeps the mapping; so does a failed allocation (it is an
 * optimisation). */
enum { WCOPY_ALIGN = 4096, WCOPY_PAGE = 2 << 20 };
static int64_t wcopy_bytes(const llt_weight *w) {
    if (w->dtype != LLT_DTYPE_F32) return 0;
    int64_t n = w->rows * w->cols * 4;
    return (n + WCOPY_ALIGN - 1) / WCOPY_ALIGN * WCOPY_ALIGN;
}

static void weights_to_huge_pages(llt_model *m, cpu_state *s) {
    const char *e = getenv("LLT_CPU_COPY_WEIGHTS");
    if (e && strcmp(e, "0") == 0) return;
    int32_t nw = 0;
    llt_weight **ws = malloc(((size_t)m->cfg.n_layers * 7 + 1) * sizeof *ws);
    if (!ws) return;
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        llt_layer *L = &m->layers[l];
        llt_weight *f[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) ws[nw++] = f[i];
    }
    ws[nw++] = &m->output;
    int64_t total = 0;
    for (int32_t i = 0; i < nw; i++) total += wcopy_bytes(ws[i]);
    total = (total + WCOPY_PAGE - 1) / WCOPY_PAGE * WCOPY_PAGE;
    uint8_t *buf = total > 0 ? aligned_alloc(WCOPY_PAGE, (size_t)total) : NULL;
    if (!buf) {
        free(ws);
        return;
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(buf, (size_t)total, MADV_HUGEPAGE);
#endif
    int64_t off = 0;
    for (int32_t i = 0; i < nw; i++) {
        int64_t n = wcopy_bytes(ws[i]);
        if (!n) continue;
        memcpy(buf + off, ws[i]->data, (size_t)(ws[i]->rows * ws[i]->cols * 4));
        ws[i]->data = buf + off;
        off += n;
    }
    free(ws);
    s->wcopy = buf;
}

static llt_status cpu_init(llt_model *m, const llt_load_opts *o, llt_error *err) {
    llt_kv_cache_opts ko;
    llt_model_kv_opts(m, o, &ko);
    LLT_TRY(llt_kv_cache_create_with(&ko, NULL, &m->kv, err));
    cpu_state *s = NULL;
    llt_status st = state_alloc(m, &s, err);
    if (st != LLT_OK) {
        llt_kv_cache_free(m->kv);
        m->kv = NULL;
        return st;
    }
    weights_to_huge_pages(m, s);
    m->backend_state = s;
    return LLT_OK;
}

static void cpu_free(llt_model *m) {
    state_free(m->backend_state);
    m->backend_state = NULL;
    llt_kv_cache_free(m->kv);
    m->kv = NULL;
}

/* ---- batch checks and KV reservation ------------------------------------------------- */


/* ---- the layers ------------------------------------------------------------------------ */

/* Rows [r0, r0 + nr) of the batch as one chunk. */
typedef struct chunk {
    int32_t r0, nr;
    int32_t pos[CHUNK_ROWS], seq[CHUNK_ROWS];
    int32_t n_aseq;
} chunk;

static void embed_rows(const llt_model *m, cpu_state *s, const llt_batch *b, const chunk *ch) {
    const int64_t H = m->cfg.hidden_size;
    uint64_t row_bytes = 0; /* GGML block types too: a row is a whole number of blocks */
    llt_dtype_nbytes(m->tok_embd.dtype, (uint64_t)H, &row_bytes);
    for (int32_t r = 0; r < ch->nr; r++) {
        const uint8_t *row = (const uint8_t *)m->tok_embd.data + (size_t)b->tokens[ch->r0 + r] * row_bytes;
        llt_dequantize(m->tok_embd.dtype, row, s->x + r * H, H, NULL);
    }
}

static void norm_rows(const float *x, const llt_weight *w, float *y, int32_t nr, int64_t d, float eps) {
    for (int32_t r = 0; r < nr; r++) llt_cpu_rmsnorm_row(x + r * d, w, y + r * d, d, eps);
}

/* ---- one chunk as one pool dispatch ------------------------------------------------------
 * Every thread runs the whole chunk (step_task) and takes its share of each op; the threads
 * meet at a barrier wherever an op reads what others wrote. The small ops ride on the
 * products: each thread normalises the rows itself into its own xb (RMSNorm is O(H) per row,
 * cheaper than a barrier), and a product's epilogue applies rotary and writes K/V, SwiGLU, or
 * the residual add to the rows that thread just computed. Q, K, V and attention go by head
 * groups (a kv head with its query heads, whole on one thread: no barrier between them), so a
 * layer has 4 barriers (5 when the groups do not split evenly: rows of Q/K/V, then (16-row
 * window, kv head) units of attention; an f8 cache one more). What keeps the memory busy up to
 * each barrier: a thread that waits prefetches the start of its next rows; with LLT_CPU_STEAL=1
 * one that runs out of rows takes claims left in the others' shares instead
 * (llt_pool_share_next; a row is computed whole by one thread, so the result is the same). */

typedef struct step {
    llt_model *m;
    cpu_state *s;
    const llt_batch *b;
    const chunk *ch;
    llt_attn_ctx ax;   /* prepared for the chunk; each thread copies it per layer */
    llt_cpu_isa isa;   /* resolved once */
    float *logits, *hidden, *final_norm;
    int32_t out_row, n_threads;
    bool by_groups;    /* Q/K/V and attention split by head groups (qkv_attention_groups) */
    bool kv_f8;        /* an f8 cache: K/V rows written whole after their products (write_kv_f8) */
    bool steal;        /* threads that finish a product early take rows left to the others */
    int64_t prefetch_bytes; /* per thread and barrier (barrier_then) */
} step;

/* An epilogue's view: the step and the layer. */
typedef struct epi {
    const step *st;
    int32_t layer;
} epi;

static void barrier(const step *st) {
    if (st->n_threads > 1) llt_pool_barrier(st->m->pool);
}

/* A thread that reaches a barrier before the others asks for the first bytes it reads after
 * it (the start of its rows of the next product), PREFETCH_LINES a poll, up to prefetch_bytes:
 * the memory would otherwise idle while the last thread finishes, and the next product starts
 * on warm lines. */
enum { PREFETCH_LINES = 16 };
typedef struct ahead {
    const char *p;
    int64_t left;
} ahead;

static bool prefetch_some(void *vctx) {
    ahead *a = vctx;
    for (int i = 0; i < PREFETCH_LINES && a->left > 0; i++, a->p += 64, a->left -= 64) __builtin_prefetch(a->p, 0, 2);
    return a->left > 0;
}

/* The barrier, prefetching bytes [0, min(bytes, prefetch_bytes)) of next while waiting. */
static void barrier_then(const step *st, const void *next, int64_t bytes) {
    if (st->n_threads <= 1) return;
    ahead a = {next, next ? (bytes < st->prefetch_bytes ? bytes : st->prefetch_bytes) : 0};
    llt_pool_barrier_idle(st->m->pool, a.left > 0 ? prefetch_some : NULL, &a);
}

/* This thread's rows of a product: shared (llt_cpu_matmul_shared) or its static part. */
static void matmul(const step *st, uint32_t tag, const llt_matmul_job *jobs, int n_jobs, const float *x, int64_t n,
                   llt_cpu_isa isa, int32_t thread, int32_t nt) {
    if (st->steal) llt_cpu_matmul_shared(st->m->pool, tag, jobs, n_jobs, x, n, isa, thread, nt);
    else llt_cpu_matmul_part(jobs, n_jobs, x, n, isa, thread, nt);
}

/* Where this thread's reads of layer l's first product start (after the last layer: the head). */
static const void *layer_start(const step *st, int32_t l, int32_t thread, int64_t *bytes);

static void epi_rope_q(void *vctx, int64_t r0, int64_t r1) {
    const epi *e = vctx;
    const cpu_state *s = e->st->s;
    const llt_config *c = &e->st->m->cfg;
    const int64_t qd = (int64_t)c->n_heads * c->head_dim;
    for (int32_t t = 0; t < e->st->ch->nr; t++)
        llt_rotary_apply_cols(s->q + t * qd, r0, r1, c->head_dim, s->rope_sin, s->rope_cos, e->st->ch->pos[t]);
}

static void epi_rope_k(void *vctx, int64_t r0, int64_t r1) {
    const epi *e = vctx;
    const cpu_state *s = e->st->s;
    const chunk *ch = e->st->ch;
    const llt_config *c = &e->st->m->cfg;
    const int64_t kvd = (int64_t)c->n_kv_heads * c->head_dim;
    for (int32_t t = 0; t < ch->nr; t++) {
        float *k = s->k + t * kvd;
        llt_rotary_apply_cols(k, r0, r1, c->head_dim, s->rope_sin, s->rope_cos, ch->pos[t]);
        if (!e->st->kv_f8) llt_kv_write_cols(e->st->m->kv, e->layer, ch->seq[t], ch->pos[t], r0, r1 - r0, k + r0, NULL);
    }
}

static void epi_write_v(void *vctx, int64_t r0, int64_t r1) {
    const epi *e = vctx;
    const chunk *ch = e->st->ch;
    const int64_t kvd = (int64_t)e->st->m->cfg.n_kv_heads * e->st->m->cfg.head_dim;
    for (int32_t t = 0; !e->st->kv_f8 && t < ch->nr; t++)
        llt_kv_write_cols(e->st->m->kv, e->layer, ch->seq[t], ch->pos[t], r0, r1 - r0, NULL, e->st->s->v + t * kvd + r0);
}

/* x[t, r] += ob[t, r]: the residual add of Wo and W_down. */
static void epi_residual(void *vctx, int64_t r0, int64_t r1) {
    const epi *e = vctx;
    const cpu_state *s = e->st->s;
    const int64_t H = e->st->m->cfg.hidden_size;
    for (int32_t t = 0; t < e->st->ch->nr; t++) llt_cpu_add(s->x + t * H + r0, s->ob + t * H + r0, r1 - r0);
}

static void epi_swiglu(void *vctx, int64_t r0, int64_t r1) {
    const epi *e = vctx;
    const cpu_state *s = e->st->s;
    const int64_t I = e->st->m->cfg.intermediate_size;
    for (int32_t t = 0; t < e->st->ch->nr; t++) llt_cpu_swiglu(s->hb + t * I + r0, s->hb2 + t * I + r0, r1 - r0);
}

/* An f8 cache: a row's scale needs the whole (token, kv head) row, which an epilogue's columns
 * may split; the rows go in after the products instead: units [u0, u1) of (chunk row, kv head). */
static void write_kv_f8(const step *st, int32_t l, int64_t u0, int64_t u1) {
    const chunk *ch = st->ch;
    const int32_t nkv = st->m->cfg.n_kv_heads, d = st->m->cfg.head_dim;
    const int64_t kvd = (int64_t)nkv * d;
    for (int64_t u = u0; u < u1; u++) {
        const int32_t t = (int32_t)(u / nkv), g = (int32_t)(u % nkv);
        const int64_t off = t * kvd + (int64_t)g * d;
        llt_kv_write_cols(st->m->kv, l, ch->seq[t], ch->pos[t], (int64_t)g * d, d, st->s->k + off, st->s->v + off);
    }
}

/* Keys the step's rows [r0, r1) read: what their attention costs. */
static double window_keys(const llt_attn_ctx *ax, int32_t r0, int32_t r1) {
    double k = 0;
    for (int32_t r = r0; r < r1; r++) {
        const llt_attn_seq *a = &ax->seqs[ax->row_seq[r]];
        k += a->q_pos0 + (r - a->row0) + 1;
    }
    return k;
}

/* Attention split by rows: units of (a window of LLT_CPU_ATTN_TILE rows, kv head group) in that
 * order, each thread a contiguous run of them holding an equal share of the keys read (a prompt
 * chunk's later rows see more keys; a decode step's units cost alike and split as equal runs of
 * heads: neighbouring heads share cache lines, so one thread takes them together). */
static void attention_part(const step *st, int32_t l, int32_t thread) {
    llt_attn_ctx ax = st->ax;
    ax.layer = l;
    const int32_t nkv = st->m->cfg.n_kv_heads, T = LLT_CPU_ATTN_TILE, nt = st->n_threads;
    const double total = window_keys(&ax, 0, ax.n_rows) * nkv;
    double before = 0;
    for (int32_t r0 = 0; r0 < ax.n_rows; r0 += T) {
        const int32_t r1 = ax.n_rows - r0 < T ? ax.n_rows : r0 + T;
        const double c = window_keys(&ax, r0, r1);
        for (int32_t g = 0; g < nkv; g++, before += c) {
            const int32_t owner = (int32_t)((before + c / 2) * nt / total); /* where the unit's middle falls */
            if ((owner < nt ? owner : nt - 1) == thread) llt_cpu_attention_group_rows(&ax, g, r0, r1, thread);
        }
    }
}

/* Head groups [g0, g1) (a kv head and the query heads that share it) whole on this thread:
 * their Q, K, V rows (rotary, K/V into the cache), then their attention for every row of the
 * chunk. Nothing here reads what another thread writes (a group's keys are written and read
 * by its thread only), so the layer needs no barrier between the products and attention. */
/* The next groups for this thread: shared (stealing) or, with st->steal off, its static chunk
 * once (*g0 = -1 on the first call). */
static bool next_groups(const step *st, int32_t thread, uint32_t tag, int64_t nkv, int64_t *g0, int64_t *g1) {
    if (st->steal) return llt_pool_share_next(st->m->pool, thread, tag, nkv, 1, g0, g1);
    if (*g0 >= 0) return false;
    int64_t base = nkv / st->n_threads, rem = nkv % st->n_threads;
    *g0 = base * thread + (thread < rem ? thread : rem), *g1 = *g0 + base + (thread < rem ? 1 : 0);
    return *g0 < *g1;
}

static void qkv_attention_groups(const step *st, int32_t l, const float *xb, int32_t thread, epi *e, uint32_t tag) {
    const llt_config *c = &st->m->cfg;
    const llt_layer *L = &st->m->layers[l];
    cpu_state *s = st->s;
    const int32_t nkv = c->n_kv_heads, G = c->n_heads / nkv, d = c->head_dim, nr = st->ch->nr;
    llt_matmul_job q = {.w = &L->wq, .y = s->q, .epilogue = epi_rope_q, .epi_ctx = e},
                   k = {.w = &L->wk, .y = s->k, .epilogue = epi_rope_k, .epi_ctx = e},
                   v = {.w = &L->wv, .y = s->v, .epilogue = epi_write_v, .epi_ctx = e};
    llt_attn_ctx ax = st->ax;
    ax.layer = l;
    int64_t g0 = -1, g1; /* groups a thread that is done takes from one that is late, one at a time */
    while (next_groups(st, thread, tag, nkv, &g0, &g1)) {
        llt_cpu_matmul_rows(&q, xb, nr, st->isa, g0 * G * d, g1 * G * d);
        llt_cpu_matmul_rows(&k, xb, nr, st->isa, g0 * d, g1 * d);
        llt_cpu_matmul_rows(&v, xb, nr, st->isa, g0 * d, g1 * d);
        for (int32_t r = 0; st->kv_f8 && r < nr; r++) write_kv_f8(st, l, r * nkv + g0, r * nkv + g1);
        for (int64_t g = g0; g < g1; g++) llt_cpu_attention_group_rows(&ax, (int32_t)g, 0, nr, thread);
    }
}

/* Q, K, V of layer l with their epilogues (the split by rows). */
static void qkv_jobs(const step *st, int32_t l, epi *e, llt_matmul_job qkv[3]) {
    const llt_layer *L = &st->m->layers[l];
    qkv[0] = (llt_matmul_job){.w = &L->wq, .y = st->s->q, .epilogue = epi_rope_q, .epi_ctx = e};
    qkv[1] = (llt_matmul_job){.w = &L->wk, .y = st->s->k, .epilogue = epi_rope_k, .epi_ctx = e};
    qkv[2] = (llt_matmul_job){.w = &L->wv, .y = st->s->v, .epilogue = epi_write_v, .epi_ctx = e};
}

/* tag: the run's next split (llt_pool_share_next), the same count on every thread. */
static void layer_part(const step *st, int32_t l, float *xb, int32_t thread, uint32_t *tag) {
    const llt_model *m = st->m;
    const llt_config *c = &m->cfg;
    const llt_layer *L = &m->layers[l];
    cpu_state *s = st->s;
    const int32_t nr = st->ch->nr, nt = st->n_threads;
    epi e = {st, l};
    llt_matmul_job wo = {.w = &L->wo, .y = s->ob, .epilogue = epi_residual, .epi_ctx = &e};
    llt_matmul_job gu = {.w = &L->w_gate, .y = s->hb, .w2 = &L->w_up, .y2 = s->hb2, .epilogue = epi_swiglu, .epi_ctx = &e};
    llt_matmul_job down = {.w = &L->w_down, .y = s->ob, .epilogue = epi_residual, .epi_ctx = &e};
    int64_t n = 0;
    const void *next;
    norm_rows(s->x, &L->attn_norm, xb, nr, c->hidden_size, c->rms_norm_eps);
    if (st->by_groups) {
        qkv_attention_groups(st, l, xb, thread, &e, (*tag)++);
    } else {
        llt_matmul_job qkv[3];
        qkv_jobs(st, l, &e, qkv);
        matmul(st, (*tag)++, qkv, 3, xb, nr, st->isa, thread, nt);
        barrier(st);
        if (st->kv_f8) { /* this thread's share of the rows, then every row in before any attention */
            const int64_t n_u = (int64_t)nr * c->n_kv_heads, base = n_u / nt, rem = n_u % nt;
            const int64_t u0 = base * thread + (thread < rem ? thread : rem);
            write_kv_f8(st, l, u0, u0 + base + (thread < rem ? 1 : 0));
            barrier(st);
        }
        attention_part(st, l, thread);
    }
    next = llt_cpu_matmul_part_start(&wo, 1, thread, nt, &n);
    barrier_then(st, next, n);
    matmul(st, (*tag)++, &wo, 1, s->att, nr, st->isa, thread, nt);
    next = llt_cpu_matmul_part_start(&gu, 1, thread, nt, &n);
    barrier_then(st, next, n);
    norm_rows(s->x, &L->ffn_norm, xb, nr, c->hidden_size, c->rms_norm_eps);
    matmul(st, (*tag)++, &gu, 1, xb, nr, st->isa, thread, nt);
    next = llt_cpu_matmul_part_start(&down, 1, thread, nt, &n);
    barrier_then(st, next, n);
    matmul(st, (*tag)++, &down, 1, s->hb, nr, st->isa, thread, nt);
    next = layer_start(st, l + 1, thread, &n);
    barrier_then(st, next, n);
}

static const void *layer_start(const step *st, int32_t l, int32_t thread, int64_t *bytes) {
    const llt_model *m = st->m;
    if (l >= m->cfg.n_layers) {
        llt_matmul_job head = {.w = &m->output};
        return st->logits ? llt_cpu_matmul_part_start(&head, 1, thread, st->n_threads, bytes) : NULL;
    }
    if (st->by_groups) {
        const int32_t nkv = m->cfg.n_kv_heads, rows = m->cfg.n_heads / nkv * m->cfg.head_dim;
        int64_t g0 = -1, g1; /* the static chunk: where stealing starts too */
        step plain = *st;
        plain.steal = false;
        next_groups(&plain, thread, 0, nkv, &g0, &g1);
        return llt_cpu_matmul_rows_start(&m->layers[l].wq, g0 * rows, g1 * rows, bytes);
    }
    llt_matmul_job qkv[3];
    qkv_jobs(st, l, NULL, qkv);
    return llt_cpu_matmul_part_start(qkv, 3, thread, st->n_threads, bytes);
}

/* Positions and per-chunk attention descriptors of rows [r0, r0 + nr). */
static void chunk_setup(cpu_state *s, const run *runs, int32_t n_runs, int32_t r0, int32_t nr, chunk *ch) {
    ch->r0 = r0, ch->nr = nr, ch->n_aseq = 0;
    for (int32_t i = 0; i < n_runs; i++) {
        int32_t lo = runs[i].row0 > r0 ? runs[i].row0 : r0;
        int32_t hi = runs[i].row0 + runs[i].n < r0 + nr ? runs[i].row0 + runs[i].n : r0 + nr;
        if (lo >= hi) continue;
        int32_t p0 = runs[i].pos0 + (lo - runs[i].row0);
        s->aseq[ch->n_aseq++] = (llt_attn_seq){runs[i].seq, lo - r0, hi - lo, p0};
        for (int32_t r = lo; r < hi; r++) ch->pos[r - r0] = p0 + (r - lo), ch->seq[r - r0] = runs[i].seq;
    }
}

/* want_logits NULL: the last row of each sequence. */
static bool wants_logits(const llt_batch *b, int32_t i) {
    if (b->want_logits) return b->want_logits[i] != 0;
    return i + 1 == b->n_tokens || b->seq_ids[i + 1] != b->seq_ids[i];
}

/* Final norm (each thread into its own xb), the wanted rows compacted to the front of xb, in
 * order, and this thread's share of the head's rows. */
static void head_part(const step *st, float *xb, int32_t thread, uint32_t tag) {
    const llt_model *m = st->m;
    const int64_t H = m->cfg.hidden_size;
    const chunk *ch = st->ch;
    norm_rows(st->s->x, &m->out_norm, xb, ch->nr, H, m->cfg.rms_norm_eps);
    if (st->final_norm && thread == 0) memcpy(st->final_norm + (int64_t)ch->r0 * H, xb, (size_t)(ch->nr * H) * 4);
    int32_t n = 0;
    for (int32_t r = 0; r < ch->nr; r++)
        if (wants_logits(st->b, ch->r0 + r)) {
            if (n != r) memcpy(xb + n * H, xb + r * H, (size_t)H * 4);
            n++;
        }
    if (!n || !st->logits) return;
    llt_matmul_job head = {.w = &m->output, .y = st->logits + (int64_t)st->out_row * m->cfg.vocab_size};
    matmul(st, tag, &head, 1, xb, n, st->isa, thread, st->n_threads);
}

static void step_task(void *vctx, int32_t thread, int32_t n_threads) {
    const step *st = vctx;
    const int64_t H = st->m->cfg.hidden_size;
    float *xb = st->s->xb + (int64_t)thread * CHUNK_ROWS * H;
    uint32_t tag = 0;
    for (int32_t l = 0; l < st->m->cfg.n_layers; l++) {
        layer_part(st, l, xb, thread, &tag);
        if (st->hidden && thread == 0) /* x is next written after another barrier */
            memcpy(st->hidden + ((int64_t)l * st->b->n_tokens + st->ch->r0) * H, st->s->x, (size_t)(st->ch->nr * H) * 4);
    }
    head_part(st, xb, thread, tag);
    if (thread > 0) { /* while the caller samples: the start of this thread's next step, likely the same rows */
        int64_t n = 0;
        const void *next = layer_start(st, 0, thread, &n);
        ahead a = {next, next ? (n < st->prefetch_bytes ? n : st->prefetch_bytes) : 0};
        while (prefetch_some(&a)) {}
    }
    (void)n_threads;
}

/* Threads for a chunk: each should get at least MIN_MACS_PER_THREAD multiply-adds of every
 * layer's products, since below that meeting at the layer's 5 barriers costs more than the
 * split saves (stories260K decodes on 1 thread, stories15M on up to 30). More threads never
 * change the result (rows are split, not sums), only the time. */
enum { MIN_MACS_PER_THREAD = 1 << 15 };
static int32_t chunk_threads(const llt_model *m, int32_t nr) {
    const llt_config *c = &m->cfg;
    int64_t H = c->hidden_size, qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t layer_macs = nr * (H * (2 * qd + 2 * kvd) + 3 * H * c->intermediate_size);
    int64_t want = layer_macs / MIN_MACS_PER_THREAD, have = m->pool ? llt_pool_size(m->pool) : 1;
    return want < 1 ? 1 : want < have ? (int32_t)want : (int32_t)have;
}

/* Environment switches, for measuring each part's worth (each on unless set to 0):
 * LLT_CPU_HEAD_GROUPS (Q/K/V + attention by head groups), LLT_CPU_PREFETCH_KB (prefetch budget
 * at a barrier, default 256); LLT_CPU_STEAL=1 turns stealing rows and groups on. */
static int64_t env_int(const char *name, int64_t dflt) {
    const char *v = getenv(name);
    return v && *v ? atoll(v) : dflt;
}

static void step_options(const llt_model *m, step *st) {
    const int32_t nkv = m->cfg.n_kv_heads, nt = st->n_threads;
    /* off by default: on the dev VM the step ran 1-2 % slower with it when the machine was
     * otherwise idle (threads that stream at the same rate finish together anyway, and the one
     * that waits prefetches instead), 6 % faster while other jobs took the processors */
    st->steal = m->pool && llt_pool_share_ok(m->pool, nkv, 0) && env_int("LLT_CPU_STEAL", 0) != 0;
    /* by head groups when every thread gets its groups (even split, or enough to even out) */
    st->by_groups = (nkv % nt == 0 || (st->steal && nkv >= 4 * nt)) && env_int("LLT_CPU_HEAD_GROUPS", 1) != 0 &&
                    !llt_cpu_quant_supported(m->layers[0].wq.dtype); /* block kernels quantise x per call */
    st->prefetch_bytes = env_int("LLT_CPU_PREFETCH_KB", 256) * 1024;
    st->kv_f8 = m->kv && m->kv->o.kv_dtype == LLT_DTYPE_F8_E4M3;
}

static llt_status run_chunk(llt_model *m, const llt_batch *b, const chunk *ch, float *logits,
                            int32_t *out_row, float *hidden, float *final_norm, llt_error *err) {
    cpu_state *s = m->backend_state;
    const llt_config *c = &m->cfg;
    embed_rows(m, s, b, ch);
    step st = {.m = m, .s = s, .b = b, .ch = ch, .isa = llt_cpu_isa_resolve(LLT_CPU_ISA_AUTO), .logits = logits,
               .hidden = hidden, .final_norm = final_norm, .out_row = *out_row};
    st.ax = (llt_attn_ctx){.c = m->kv, .layer = 0, .seqs = s->aseq, .n_seqs = ch->n_aseq, .q = s->q,
                           .out = s->att, .n_heads = c->n_heads, .scale = 1.0f / sqrtf((float)c->head_dim),
                           .scratch = s->attn_scratch, .scratch_stride = s->attn_stride, .row_seq = s->row_seq};
    LLT_TRY(llt_cpu_attention_prepare(&st.ax, err));
    st.n_threads = chunk_threads(m, ch->nr);
    step_options(m, &st);
    llt_pool_run_n(m->pool, st.n_threads, step_task, &st);
    for (int32_t r = 0; r < ch->nr; r++) *out_row += wants_logits(b, ch->r0 + r);
    return LLT_OK;
}

static llt_status cpu_decode(llt_model *m, const llt_batch *b, float *logits, int32_t *n_rows,
                             float *hidden, float *final_norm, llt_error *err) {
    LLT_CHECK(b && b->n_tokens > 0 && b->tokens && b->seq_ids, err, LLT_ERR_INVALID_ARG,
              "batch: empty or missing tokens / seq_ids");
    cpu_state *s = m->backend_state;
    run *runs = malloc((size_t)b->n_tokens * sizeof *runs);
    chunk *ch = calloc(1, sizeof *ch); /* rows not covered by a run would read zeros */
    llt_status st = runs && ch ? LLT_OK : llt_err_set(err, LLT_ERR_NOMEM, "batch: out of memory");
    int32_t n_runs = 0, out_row = 0;
    if (st == LLT_OK) st = llt_batch_runs(m, b, runs, &n_runs, err);
    if (st == LLT_OK) st = llt_batch_reserve(m, runs, n_runs, s->rope_max, err);
    for (int32_t r0 = 0; st == LLT_OK && r0 < b->n_tokens; r0 += CHUNK_ROWS) {
        int32_t nr = b->n_tokens - r0 < CHUNK_ROWS ? b->n_tokens - r0 : CHUNK_ROWS;
        chunk_setup(s, runs, n_runs, r0, nr, ch);
        st = run_chunk(m, b, ch, logits, &out_row, hidden, final_norm, err);
        if (st != LLT_OK)
            for (int32_t i = 0; i < n_runs; i++) llt_kv_unreserve(m->kv, runs[i].seq);
    }
    if (st == LLT_OK)
        for (int32_t i = 0; i < n_runs; i++) llt_kv_commit(m->kv, runs[i].seq, runs[i].n);
    if (n_rows) *n_rows = st == LLT_OK ? out_row : 0;
    free(runs);
    free(ch);
    return st;
}

const llt_backend llt_backend_cpu = {"cpu", cpu_init, cpu_decode, cpu_free, NULL};
