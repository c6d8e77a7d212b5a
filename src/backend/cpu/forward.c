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

#include "backend/backend.h"
#include "backend/cpu/attention.h"
#include "backend/cpu/ops.h"
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

static llt_status cpu_init(llt_model *m, const llt_load_opts *o, llt_error *err) {
    llt_kv_cache_opts ko;
    llt_model_kv_opts(m, o, &ko);
    /* e4m3 pages are written and read by the CUDA kernels only (kv/paged_cache.h) */
    LLT_CHECK(ko.kv_dtype != LLT_DTYPE_F8_E4M3, err, LLT_ERR_UNSUPPORTED,
              "cpu backend: kv_dtype f8_e4m3 is a CUDA KV cache (the CPU cache holds f32, f16 or bf16; "
              "use kv_dtype f16 or bf16, or a CUDA device)");
    LLT_TRY(llt_kv_cache_create_with(&ko, NULL, &m->kv, err));
    cpu_state *s = NULL;
    llt_status st = state_alloc(m, &s, err);
    if (st != LLT_OK) {
        llt_kv_cache_free(m->kv);
        m->kv = NULL;
        return st;
    }
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
 * meet at a barrier wherever an op reads what others wrote (5 per layer). The small ops ride
 * on the products: each thread normalises the rows itself into its own xb (RMSNorm is O(H)
 * per row, cheaper than a barrier), and a product's epilogue applies rotary and writes K/V,
 * SwiGLU, or the residual add to the rows that thread just computed. */

typedef struct step {
    llt_model *m;
    cpu_state *s;
    const llt_batch *b;
    const chunk *ch;
    llt_attn_ctx ax;   /* prepared for the chunk; each thread copies it per layer */
    llt_cpu_isa isa;   /* resolved once */
    float *logits, *hidden, *final_norm;
    int32_t out_row, n_threads;
} step;

/* An epilogue's view: the step and the layer. */
typedef struct epi {
    const step *st;
    int32_t layer;
} epi;

static void barrier(const step *st) {
    if (st->n_threads > 1) llt_pool_barrier(st->m->pool);
}

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
        llt_kv_write_cols(e->st->m->kv, e->layer, ch->seq[t], ch->pos[t], r0, r1 - r0, k + r0, NULL);
    }
}

static void epi_write_v(void *vctx, int64_t r0, int64_t r1) {
    const epi *e = vctx;
    const chunk *ch = e->st->ch;
    const int64_t kvd = (int64_t)e->st->m->cfg.n_kv_heads * e->st->m->cfg.head_dim;
    for (int32_t t = 0; t < ch->nr; t++)
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

static void attention_part(const step *st, int32_t l, int32_t thread) {
    llt_attn_ctx ax = st->ax;
    ax.layer = l;
    int64_t base = ax.n_units / st->n_threads, rem = ax.n_units % st->n_threads;
    int64_t b = base * thread + (thread < rem ? thread : rem), e = b + base + (thread < rem ? 1 : 0);
    if (b < e) llt_cpu_attention_task(&ax, b, e, thread);
}

static void layer_part(const step *st, int32_t l, float *xb, int32_t thread) {
    const llt_model *m = st->m;
    const llt_config *c = &m->cfg;
    const llt_layer *L = &m->layers[l];
    cpu_state *s = st->s;
    const int32_t nr = st->ch->nr, nt = st->n_threads;
    epi e = {st, l};
    norm_rows(s->x, &L->attn_norm, xb, nr, c->hidden_size, c->rms_norm_eps);
    llt_matmul_job qkv[3] = {{.w = &L->wq, .y = s->q, .epilogue = epi_rope_q, .epi_ctx = &e},
                             {.w = &L->wk, .y = s->k, .epilogue = epi_rope_k, .epi_ctx = &e},
                             {.w = &L->wv, .y = s->v, .epilogue = epi_write_v, .epi_ctx = &e}};
    llt_cpu_matmul_part(qkv, 3, xb, nr, st->isa, thread, nt);
    barrier(st);
    attention_part(st, l, thread);
    barrier(st);
    llt_matmul_job wo = {.w = &L->wo, .y = s->ob, .epilogue = epi_residual, .epi_ctx = &e};
    llt_cpu_matmul_part(&wo, 1, s->att, nr, st->isa, thread, nt);
    barrier(st);
    norm_rows(s->x, &L->ffn_norm, xb, nr, c->hidden_size, c->rms_norm_eps);
    llt_matmul_job gu = {.w = &L->w_gate, .y = s->hb, .w2 = &L->w_up, .y2 = s->hb2, .epilogue = epi_swiglu, .epi_ctx = &e};
    llt_cpu_matmul_part(&gu, 1, xb, nr, st->isa, thread, nt);
    barrier(st);
    llt_matmul_job down = {.w = &L->w_down, .y = s->ob, .epilogue = epi_residual, .epi_ctx = &e};
    llt_cpu_matmul_part(&down, 1, s->hb, nr, st->isa, thread, nt);
    barrier(st);
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
static void head_part(const step *st, float *xb, int32_t thread) {
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
    llt_cpu_matmul_part(&head, 1, xb, n, st->isa, thread, st->n_threads);
}

static void step_task(void *vctx, int32_t thread, int32_t n_threads) {
    const step *st = vctx;
    const int64_t H = st->m->cfg.hidden_size;
    float *xb = st->s->xb + (int64_t)thread * CHUNK_ROWS * H;
    for (int32_t l = 0; l < st->m->cfg.n_layers; l++) {
        layer_part(st, l, xb, thread);
        if (st->hidden && thread == 0) /* x is next written after two more barriers */
            memcpy(st->hidden + ((int64_t)l * st->b->n_tokens + st->ch->r0) * H, st->s->x, (size_t)(st->ch->nr * H) * 4);
    }
    head_part(st, xb, thread);
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
