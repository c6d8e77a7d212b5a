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

enum { CHUNK_ROWS = 128, MIN_PARALLEL_MACS = 1 << 16 };

/* Working buffers for CHUNK_ROWS rows (shapes per row in comments). */
typedef struct cpu_state {
    float *x;          /* [rows, H] residual stream */
    float *xb;         /* [rows, H] normalised input of a block */
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
    s->x = malloc(R * H * 4), s->xb = malloc(R * H * 4), s->ob = malloc(R * H * 4);
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
    size_t es = llt_dtype_get(m->tok_embd.dtype)->block_bytes;
    for (int32_t r = 0; r < ch->nr; r++) {
        const uint8_t *row = (const uint8_t *)m->tok_embd.data + (size_t)b->tokens[ch->r0 + r] * H * es;
        llt_dequantize(m->tok_embd.dtype, row, s->x + r * H, H, NULL);
    }
}

static void norm_rows(const float *x, const llt_weight *w, float *y, int32_t nr, int64_t d, float eps) {
    for (int32_t r = 0; r < nr; r++) llt_cpu_rmsnorm_row(x + r * d, w, y + r * d, d, eps);
}

/* Multiply-adds of the chunk's attention (scores and weighted sum): small steps run on the
 * calling thread, since waking the pool costs more than they do. */
static int64_t attention_macs(const chunk *ch, const llt_config *c) {
    int64_t keys = 0;
    for (int32_t r = 0; r < ch->nr; r++) keys += ch->pos[r] + 1;
    return 2 * keys * c->n_heads * c->head_dim;
}

static llt_status attention_block(llt_model *m, cpu_state *s, const chunk *ch, int32_t l, llt_error *err) {
    const llt_config *c = &m->cfg;
    const llt_layer *L = &m->layers[l];
    const int64_t H = c->hidden_size, qd = (int64_t)c->n_heads * c->head_dim;
    const int64_t kvd = (int64_t)c->n_kv_heads * c->head_dim;
    norm_rows(s->x, &L->attn_norm, s->xb, ch->nr, H, c->rms_norm_eps);
    llt_matmul_job qkv[3] = {{&L->wq, s->q}, {&L->wk, s->k}, {&L->wv, s->v}};
    llt_cpu_matmul_multi(m->pool, qkv, 3, s->xb, ch->nr);
    for (int32_t r = 0; r < ch->nr; r++) {
        llt_rotary_apply(s->q + r * qd, c->n_heads, c->head_dim, s->rope_sin, s->rope_cos, ch->pos[r]);
        llt_rotary_apply(s->k + r * kvd, c->n_kv_heads, c->head_dim, s->rope_sin, s->rope_cos, ch->pos[r]);
        llt_kv_write_f32(m->kv, l, ch->seq[r], ch->pos[r], s->k + r * kvd, s->v + r * kvd);
    }
    llt_attn_ctx ax = {.c = m->kv, .layer = l, .seqs = s->aseq, .n_seqs = ch->n_aseq, .q = s->q,
                       .out = s->att, .n_heads = c->n_heads, .scale = 1.0f / sqrtf((float)c->head_dim),
                       .scratch = s->attn_scratch, .scratch_stride = s->attn_stride, .row_seq = s->row_seq};
    LLT_TRY(llt_cpu_attention_prepare(&ax, err));
    if (m->pool && attention_macs(ch, c) >= MIN_PARALLEL_MACS)
        llt_pool_for(m->pool, ax.n_units, llt_cpu_attention_task, &ax);
    else llt_cpu_attention_task(&ax, 0, ax.n_units, 0);
    llt_cpu_matmul(m->pool, &L->wo, s->att, s->ob, ch->nr);
    llt_cpu_add(s->x, s->ob, ch->nr * H);
    return LLT_OK;
}

static void ffn_block(llt_model *m, cpu_state *s, const chunk *ch, int32_t l) {
    const llt_config *c = &m->cfg;
    const llt_layer *L = &m->layers[l];
    const int64_t H = c->hidden_size, I = c->intermediate_size;
    norm_rows(s->x, &L->ffn_norm, s->xb, ch->nr, H, c->rms_norm_eps);
    llt_matmul_job gu[2] = {{&L->w_gate, s->hb}, {&L->w_up, s->hb2}};
    llt_cpu_matmul_multi(m->pool, gu, 2, s->xb, ch->nr);
    llt_cpu_swiglu(s->hb, s->hb2, ch->nr * I);
    llt_cpu_matmul(m->pool, &L->w_down, s->hb, s->ob, ch->nr);
    llt_cpu_add(s->x, s->ob, ch->nr * H);
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

/* Final norm, optional copies, and the head for the rows that want logits; returns rows out. */
static int32_t head_rows(llt_model *m, cpu_state *s, const llt_batch *b, const chunk *ch, float *logits,
                         int32_t out_row, float *final_norm) {
    const int64_t H = m->cfg.hidden_size;
    norm_rows(s->x, &m->out_norm, s->xb, ch->nr, H, m->cfg.rms_norm_eps);
    if (final_norm) memcpy(final_norm + (int64_t)ch->r0 * H, s->xb, (size_t)(ch->nr * H) * 4);
    int32_t n = 0; /* compact the wanted rows to the front of xb, in order */
    for (int32_t r = 0; r < ch->nr; r++)
        if (wants_logits(b, ch->r0 + r)) {
            if (n != r) memcpy(s->xb + n * H, s->xb + r * H, (size_t)H * 4);
            n++;
        }
    if (n && logits) llt_cpu_matmul(m->pool, &m->output, s->xb, logits + (int64_t)out_row * m->cfg.vocab_size, n);
    return n;
}

static llt_status run_chunk(llt_model *m, const llt_batch *b, const chunk *ch, float *logits,
                            int32_t *out_row, float *hidden, float *final_norm, llt_error *err) {
    cpu_state *s = m->backend_state;
    const int64_t H = m->cfg.hidden_size;
    embed_rows(m, s, b, ch);
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        LLT_TRY(attention_block(m, s, ch, l, err));
        ffn_block(m, s, ch, l);
        if (hidden)
            memcpy(hidden + ((int64_t)l * b->n_tokens + ch->r0) * H, s->x, (size_t)(ch->nr * H) * 4);
    }
    *out_row += head_rows(m, s, b, ch, logits, *out_row, final_norm);
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

const llt_backend llt_backend_cpu = {"cpu", cpu_init, cpu_decode, cpu_free};
