/* forward.cu: the CUDA backend (llt_backend_cuda): init uploads the weights once and creates
 * the KV cache in device memory; a decode step runs wholly on the device.
 *
 * Per step (rows of one or several sequences, in chunks of at most max_rows = the load's
 * batch_rows, each with at most CUDA_OUT_ROWS rows that want logits):
 *   host: check the batch, reserve KV pages (bookkeeping stays on the host, kv/paged_cache.c),
 *         write tokens, positions, cache slots, block tables into a pinned staging buffer;
 *   device: one H2D copy of that buffer, embedding, per layer
 *             QKV (RMSNorm in, rotary + KV write out)  -> paged attention
 *             -> Wo (+ residual)  -> gate/up (RMSNorm in, SwiGLU out)  -> down (+ residual),
 *           final RMSNorm + output head for the rows that want logits (or sampling on the
 *           device), one D2H copy.
 * Decode steps (one row per sequence) are captured as a CUDA graph per (rows, outputs, mode)
 * on their second occurrence (the first runs eagerly so that autotuning can time kernels)
 * and replayed afterwards: everything that changes between steps is read from the staging
 * buffer's device copy, which the graph itself refreshes.
 * Layer split over several devices (model.cuh, split.cu): each device runs its segment of
 * layers on its own stream (one graph per segment), the embedding on the first, the head on
 * the last; between segments the residual rows move to the next device (cuda_split_send). */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/model.cuh"

extern "C" {
#include "backend/backend.h"
#include "base/dtype.h"
#include "base/quant.h"
#include "model/batch_plan.h"
}

static bool env_is_off(const char *name) {
    const char *v = getenv(name);
    return v && (strcmp(v, "0") == 0 || strcmp(v, "off") == 0);
}

/* ---- devices / dtype ---------------------------------------------------------------------- */

static llt_status parse_devices(const char *dev, cuda_state *st, llt_error *err) {
    st->n_dev = 0;
    const char *p = dev && *dev ? dev : "cuda";
    while (*p) {
        LLT_CHECK(strncmp(p, "cuda", 4) == 0, err, LLT_ERR_INVALID_ARG,
                  "device '%s': expected cuda, cuda:N or a comma list of them", dev);
        p += 4;
        long id = 0;
        if (*p == ':') {
            char *end = NULL;
            id = strtol(p + 1, &end, 10);
            LLT_CHECK(end != p + 1 && id >= 0 && id < 1024, err, LLT_ERR_INVALID_ARG,
                      "device '%s': bad device index", dev);
            p = end;
        }
        LLT_CHECK(st->n_dev < LLT_MAX_DEVICES, err, LLT_ERR_INVALID_ARG, "device '%s': more than %d devices",
                  dev, LLT_MAX_DEVICES);
        st->dev_id[st->n_dev++] = (int32_t)id;
        if (*p == ',') p++;
        else LLT_CHECK(*p == '\0', err, LLT_ERR_INVALID_ARG, "device '%s': unexpected '%s'", dev, p);
    }
    return LLT_OK;
}

static llt_status pick_dtype(const llt_model *m, const llt_load_opts *o, llt_dtype *dt, llt_error *err) {
    llt_dtype t = o ? o->dtype : LLT_DTYPE_COUNT;
    if (t == LLT_DTYPE_COUNT)
        t = m->cfg.dtype == LLT_DTYPE_F16 || m->cfg.dtype == LLT_DTYPE_BF16 ? m->cfg.dtype : LLT_DTYPE_F16;
    LLT_CHECK(llt_cuda_dtype_ok(t), err, LLT_ERR_UNSUPPORTED,
              "cuda backend: compute dtype %s (expected f16 or bf16)", llt_dtype_name(t));
    *dt = t;
    return LLT_OK;
}

/* ---- buffers ------------------------------------------------------------------------------ */

/* Device d's memory, counted as its workspace. */
static llt_status dalloc(cuda_state *st, int d, size_t bytes, void **p, llt_error *err) {
    st->wsbytes[d] += bytes;
    return llt_cuda_alloc(st->ctx[d], bytes, p, err);
}

static llt_status alloc_dev(llt_model *m, cuda_state *st, int d, llt_error *err) {
    const llt_config *c = &m->cfg;
    const size_t R = (size_t)st->max_rows, H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    const size_t qr = (size_t)c->n_heads * c->head_dim, kvr = (size_t)c->n_kv_heads * c->head_dim;
    const size_t es = dt_size(st->dt), B = (size_t)st->max_blocks;
    cuda_dev_buf *b = &st->buf[d];
    LLT_TRY(dalloc(st, d, R * H * 4, (void **)&b->x, err));
    LLT_TRY(dalloc(st, d, R * (H > I ? H : I) * es, &b->xn, err));
    LLT_TRY(dalloc(st, d, R * (qr + 2 * kvr) * 4, (void **)&b->qkv, err));
    LLT_TRY(dalloc(st, d, R * qr * 4, (void **)&b->q, err));
    LLT_TRY(dalloc(st, d, R * qr * es, &b->att, err));
    LLT_TRY(dalloc(st, d, R * 2 * I * es, &b->gu, err));
    LLT_TRY(dalloc(st, d, R * I * es, &b->act, err));
    size_t work = (size_t)llt_cuda_attn_work_floats(st->max_rows + 2 * st->ctx[d]->n_sm, 1, c->n_heads,
                                                    c->head_dim);
    LLT_TRY(dalloc(st, d, work * 4, (void **)&b->attn_work, err));
    work = (size_t)llt_cuda_attn_prefill_work_floats(st->max_rows, c->n_heads, c->head_dim);
    LLT_TRY(dalloc(st, d, work * 4, (void **)&b->attn_pf, err));
    LLT_TRY(dalloc(st, d, R * (size_t)c->n_kv_heads * 4, (void **)&b->attn_cnt, err));
    CUDA_TRY(cudaMemset(b->attn_cnt, 0, R * (size_t)c->n_kv_heads * 4), err);
    LLT_TRY(dalloc(st, d, (6 * R + R * B) * 4, (void **)&b->step_d, err));
    if (st->deq_need) {
        /* also x's image for the quantised prefill kernel (quant.cu, qgemm_run): R rows rounded
         * up to 256, of the widest k */
        const size_t xi = (R + 255) / 256 * 256 * (H > I ? H : I) * es;
        b->deq_bytes = st->deq_need > xi ? st->deq_need : xi;
        LLT_TRY(dalloc(st, d, b->deq_bytes, &b->deq, err));
    }
    if (st->kv_f8) {
        LLT_TRY(dalloc(st, d, R * kvr * es, &b->kst, err));
        LLT_TRY(dalloc(st, d, R * kvr * es, &b->vst, err));
        LLT_TRY(dalloc(st, d, R * 4, (void **)&b->ident, err));
        int32_t *ident = (int32_t *)malloc(R * 4);
        LLT_CHECK(ident, err, LLT_ERR_NOMEM, "cuda backend: out of host memory");
        for (int32_t i = 0; i < st->max_rows; i++) ident[i] = i;
        llt_status s = llt_cuda_upload(st->ctx[d], b->ident, ident, R * 4, err);
        free(ident);
        LLT_TRY(s);
        if (llt_cuda_flash_prefill_f8_wide(st->ctx[d], c->head_dim)) { /* a sequence's keys at most */
            const int64_t cap = (int64_t)m->kv->o.max_pages * m->kv->o.page_size, ctx = llt_model_max_ctx(m);
            b->f8_keys = (int32_t)(ctx < cap ? ctx : cap);
            LLT_TRY(dalloc(st, d, (size_t)b->f8_keys * kvr * es, &b->f8k16, err));
            LLT_TRY(dalloc(st, d, (size_t)b->f8_keys * kvr * es, &b->f8v16, err));
        }
        const char *fe = getenv("LLT_CUDA_KV8_FUSE");
        if (!(fe && strcmp(fe, "0") == 0)) {
            LLT_TRY(dalloc(st, d, 4 * 2 * (size_t)c->n_kv_heads * 4, (void **)&b->kv8_cnt, err));
            CUDA_TRY(cudaMemset(b->kv8_cnt, 0, 4 * 2 * (size_t)c->n_kv_heads * 4), err);
        }
    }
    CUDA_TRY(cudaEventCreateWithFlags(&b->done, cudaEventDisableTiming), err);
    return LLT_OK;
}

static llt_status alloc_buffers(llt_model *m, cuda_state *st, llt_error *err) {
    const size_t R = (size_t)st->max_rows, V = (size_t)m->cfg.vocab_size, B = (size_t)st->max_blocks;
    const int last = st->n_dev - 1;
    for (int d = 0; d < st->n_dev; d++) LLT_TRY(alloc_dev(m, st, d, err));
    LLT_TRY(dalloc(st, last, (R < (size_t)CUDA_OUT_ROWS ? R : (size_t)CUDA_OUT_ROWS) * V * 4, (void **)&st->logits, err));
    LLT_TRY(dalloc(st, last, R * 4, (void **)&st->tok_d, err));
    /* portable: every device's stream copies the step inputs from it */
    CUDA_TRY(cudaHostAlloc((void **)&st->step_h, (6 * R + R * B) * 4, cudaHostAllocPortable), err);
    CUDA_TRY(cudaHostAlloc((void **)&st->logits_h, (size_t)CUDA_GRAPH_MAX_ROWS * V * 4, cudaHostAllocPortable), err);
    CUDA_TRY(cudaHostAlloc((void **)&st->tok_h, R * 4, cudaHostAllocPortable), err);
    return LLT_OK;
}

static llt_status rope_upload(llt_model *m, cuda_state *st, llt_error *err) {
    st->rope_max = llt_model_max_ctx(m);
    size_t n = (size_t)st->rope_max * (m->cfg.head_dim / 2);
    float *cs = (float *)malloc(n * 4), *sn = (float *)malloc(n * 4);
    llt_status s = cs && sn ? LLT_OK : llt_err_set(err, LLT_ERR_NOMEM, "cuda: out of host memory (rope)");
    if (s == LLT_OK) s = cuda_rope_table(&m->cfg, st->rope_max, cs, sn, err);
    for (int d = 0; s == LLT_OK && d < st->n_dev; d++) {
        cuda_dev_buf *b = &st->buf[d];
        s = dalloc(st, d, n * 4, (void **)&b->rope_cos, err);
        if (s == LLT_OK) s = dalloc(st, d, n * 4, (void **)&b->rope_sin, err);
        if (s == LLT_OK) s = llt_cuda_upload(st->ctx[d], b->rope_cos, cs, n * 4, err);
        if (s == LLT_OK) s = llt_cuda_upload(st->ctx[d], b->rope_sin, sn, n * 4, err);
    }
    free(cs);
    free(sn);
    return s;
}

static void dev_free(cuda_state *st, int d) {
    cuda_dev_buf *b = &st->buf[d];
    cudaSetDevice(st->ctx[d]->device);
    cudaStreamSynchronize(st->ctx[d]->stream);
    void *dev[] = {b->x, b->xn, b->qkv, b->q, b->att, b->gu, b->act, b->attn_work, b->attn_cnt, b->step_d,
                   b->rope_cos, b->rope_sin, b->kst, b->vst, b->ident, b->kv8_cnt, b->attn_pf, b->f8k16, b->f8v16};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) cudaFree(dev[i]);
    if (b->x_host) cudaFreeHost(b->x_host);
    if (b->done) cudaEventDestroy(b->done);
    if (d == st->n_dev - 1) {
        if (st->logits) cudaFree(st->logits);
        if (st->tok_d) cudaFree(st->tok_d);
    }
}

static void state_free(cuda_state *st) {
    if (!st) return;
    for (int i = 0; i < st->n_graphs; i++)
        for (int d = 0; d < st->n_dev; d++)
            if (st->graphs[i].exec[d]) cudaGraphExecDestroy(st->graphs[i].exec[d]);
    for (int d = 0; d < st->n_dev; d++)
        if (st->ctx[d]) dev_free(st, d);
    if (st->step_h) cudaFreeHost(st->step_h);
    if (st->logits_h) cudaFreeHost(st->logits_h);
    if (st->tok_h) cudaFreeHost(st->tok_h);
    cuda_weights_free(st);
    for (int d = 0; d < st->n_dev; d++) llt_cuda_ctx_free(st->ctx[d]);
    free(st);
}

static void cuda_free(llt_model *m) {
    cuda_state *st = (cuda_state *)m->backend_state;
    llt_kv_cache_free(m->kv); /* the pools are device memory: release before the contexts */
    m->kv = NULL;
    state_free(st);
    m->backend_state = NULL;
}

static llt_status kv_create(llt_model *m, cuda_state *st, const llt_load_opts *o, llt_error *err) {
    llt_kv_cache_opts ko;
    llt_model_kv_opts(m, o, &ko);
    const char *e = getenv("LLT_CUDA_KV");
    const llt_dtype asked = o ? o->kv_dtype : LLT_DTYPE_COUNT; /* the load's kv_dtype, over the env */
    /* the cache holds the compute dtype or e4m3: another dtype asked for is refused, not ignored */
    LLT_CHECK(asked == LLT_DTYPE_COUNT || asked == LLT_DTYPE_F8_E4M3 || asked == st->dt, err, LLT_ERR_UNSUPPORTED,
              "cuda backend: kv_dtype %s with %s compute (the CUDA KV cache holds the compute dtype or "
              "f8_e4m3: use kv_dtype %s or f8, or compute dtype %s)",
              llt_dtype_name(asked), llt_dtype_name(st->dt), llt_dtype_name(st->dt), llt_dtype_name(asked));
    st->kv_f8 = asked != LLT_DTYPE_COUNT
                    ? asked == LLT_DTYPE_F8_E4M3
                    : m->cfg.kv_dtype == LLT_DTYPE_F8_E4M3 || (e && (strcmp(e, "f8") == 0 || strcmp(e, "f8_e4m3") == 0));
    const char *qd = getenv("LLT_CUDA_QDUP");
    st->qdup = qd && *qd ? atoi(qd) : 0;
    const int32_t G = m->cfg.n_heads / m->cfg.n_kv_heads;
    LLT_CHECK(!st->kv_f8 || ((ko.head_dim == 32 || ko.head_dim == 64 || ko.head_dim == 128) && G <= 16), err,
              LLT_ERR_UNSUPPORTED, "cuda backend: an f8 KV cache needs head_dim 32, 64 or 128 (got %d) and at most 16 query heads per kv "
              "head (got %d)",
              ko.head_dim, G);
    ko.kv_dtype = st->kv_f8 ? LLT_DTYPE_F8_E4M3 : st->dt; /* pages in the compute dtype, or e4m3 */
    int64_t elems = (int64_t)ko.max_pages * ko.page_size * ko.n_kv_heads * ko.head_dim;
    /* the attention kernels index a layer's pool with 32-bit offsets */
    LLT_CHECK(elems <= INT32_MAX, err, LLT_ERR_UNSUPPORTED,
              "cuda backend: a KV pool of %d pages x %d tokens x %d x %d elements exceeds 2^31", ko.max_pages,
              ko.page_size, ko.n_kv_heads, ko.head_dim);
    cuda_storage_init(st, &st->storage);
    LLT_TRY(llt_kv_cache_create_with(&ko, &st->storage, &m->kv, err));
    st->max_blocks = (llt_model_max_ctx(m) + ko.page_size - 1) / ko.page_size;
    st->max_rows = o && o->batch_rows > 0 ? o->batch_rows : LLT_DEFAULT_BATCH_ROWS;
    return LLT_OK;
}

/* random_seed: NULL = upload the host weights, else generate random weights on the device. */
static llt_status init_impl(llt_model *m, const llt_load_opts *o, const uint64_t *random_seed,
                            llt_error *err) {
    cuda_state *st = (cuda_state *)calloc(1, sizeof *st);
    LLT_CHECK(st, err, LLT_ERR_NOMEM, "cuda backend: out of host memory");
    m->backend_state = st;
    st->model = m;
    st->use_graphs = !env_is_off("LLT_CUDA_GRAPHS");
    llt_status s = parse_devices(o ? o->device : NULL, st, err);
    if (s == LLT_OK) s = pick_dtype(m, o, &st->dt, err);
    for (int d = 0; s == LLT_OK && d < st->n_dev; d++) s = llt_cuda_ctx_create(st->dev_id[d], &st->ctx[d], err);
    if (s == LLT_OK) s = cuda_split_plan(m, st, o, err);
    if (s == LLT_OK) {
        const bool blocks = m->keep_quant && llt_dtype_is_block(m->cfg.dtype);
        LLT_INFO("cuda: %s%s, %s%s weights%s", st->ctx[0]->name, st->n_dev > 1 ? " and others (layer split)" : "",
                 blocks ? llt_dtype_name(m->cfg.dtype) : llt_dtype_name(st->dt),
                 blocks ? (st->dt == LLT_DTYPE_BF16 ? " block (bf16 compute)" : " block (f16 compute)") : "",
                 random_seed ? " (random, generated on the device)" : "");
        s = cuda_weights_upload(m, st, random_seed, err);
    }
    if (s == LLT_OK) s = kv_create(m, st, o, err);
    if (s == LLT_OK) s = rope_upload(m, st, err);
    if (s == LLT_OK) s = alloc_buffers(m, st, err);
    if (s == LLT_OK) s = cuda_split_links(st, (size_t)st->max_rows * m->cfg.hidden_size * 4, err);
    for (int d = 0; s == LLT_OK && d < st->n_dev; d++) s = llt_cuda_sync(st->ctx[d], err);
    if (s == LLT_OK) cuda_split_report(m, st);
    if (s == LLT_OK) s = cudaSetDevice(st->ctx[0]->device) == cudaSuccess
                             ? LLT_OK
                             : llt_err_set(err, LLT_ERR_DEVICE, "cuda: cannot select device %d", st->dev_id[0]);
    if (s != LLT_OK) cuda_free(m);
    return s;
}

static llt_status cuda_init(llt_model *m, const llt_load_opts *o, llt_error *err) {
    return init_impl(m, o, NULL, err);
}

/* ---- batch -> runs ------------------------------------------------------------------------- */

typedef llt_run run; /* model/batch_plan.h */


static bool wants_logits(const llt_batch *b, int32_t i) {
    if (b->want_logits) return b->want_logits[i] != 0;
    return i + 1 == b->n_tokens || b->seq_ids[i + 1] != b->seq_ids[i];
}

/* ---- one chunk ---------------------------------------------------------------------------- */

/* Rows [r0, r0 + nr) of the batch. */
typedef struct chunk {
    int32_t r0, nr, n_tables, n_out, max_run;
    int32_t max_len;           /* keys the longest row sees (its position + 1) */
    run runs[LLT_MAX_BATCH_ROWS]; /* this chunk's part of each sequence: row0 chunk-relative */
    size_t bytes;              /* of the step inputs */
} chunk;

/* A device's view of its copy of the step inputs (layout of cuda_state.step_h). */
typedef struct dview {
    int32_t *tok, *pos, *slot, *row_bt, *out_rows, *bt;
    float *u;
} dview;

static dview view_of(const cuda_state *st, const chunk *ch, int d) {
    int32_t *p = st->buf[d].step_d, nr = ch->nr;
    dview v;
    v.tok = p, v.pos = p + nr, v.slot = p + 2 * nr, v.row_bt = p + 3 * nr, v.out_rows = p + 4 * nr;
    v.u = (float *)(p + 5 * nr), v.bt = p + 6 * nr;
    return v;
}

static llt_status chunk_build(llt_model *m, cuda_state *st, const llt_batch *b, const run *runs,
                              int32_t n_runs, const float *u_in, int32_t out_base, chunk *ch,
                              llt_error *err) {
    const int32_t nr = ch->nr, B = st->max_blocks, ps = m->kv->o.page_size;
    int32_t *h = st->step_h, *bt = h + 6 * nr;
    ch->n_tables = ch->n_out = ch->max_run = ch->max_len = 0;
    for (int32_t i = 0; i < n_runs; i++) {
        int32_t lo = runs[i].row0 > ch->r0 ? runs[i].row0 : ch->r0;
        int32_t hi = runs[i].row0 + runs[i].n < ch->r0 + nr ? runs[i].row0 + runs[i].n : ch->r0 + nr;
        if (lo >= hi) continue;
        const llt_kv_seq *s = &m->kv->seqs[runs[i].seq];
        LLT_CHECK(s->n_blocks <= B, err, LLT_ERR_INVALID_ARG, "batch: sequence %d has %d blocks (max %d)",
                  (int)runs[i].seq, (int)s->n_blocks, (int)B);
        int32_t t = ch->n_tables++;
        memcpy(bt + (size_t)t * B, s->blocks, (size_t)s->n_blocks * 4);
        int32_t p0 = runs[i].pos0 + (lo - runs[i].row0);
        run *cr = &ch->runs[t];
        cr->seq = runs[i].seq, cr->row0 = lo - ch->r0, cr->n = hi - lo, cr->pos0 = p0;
        if (hi - lo > ch->max_run) ch->max_run = hi - lo;
        if (p0 + (hi - lo) > ch->max_len) ch->max_len = p0 + (hi - lo);
        for (int32_t r = lo; r < hi; r++) {
            int32_t k = r - ch->r0, p = p0 + (r - lo);
            h[k] = b->tokens[r], h[nr + k] = p;
            h[2 * nr + k] = s->blocks[p / ps] * ps + p % ps;
            h[3 * nr + k] = t;
        }
    }
    for (int32_t k = 0; k < nr; k++)
        if (wants_logits(b, ch->r0 + k)) {
            float u = u_in ? u_in[out_base + ch->n_out] : 0.0f;
            memcpy(&h[5 * nr + ch->n_out], &u, 4);
            h[4 * nr + ch->n_out++] = k;
        }
    ch->bytes = (size_t)(6 * nr + ch->n_tables * B) * 4;
    return LLT_OK;
}

typedef struct step_out {
    step_mode mode;
    float temperature, top_p;
    float *hidden, *final_norm; /* host, eager only */
    int32_t n_tokens;           /* whole batch (hidden layout) */
} step_out;

static llt_cuda_linear lin_base(const cuda_state *st, int32_t nr) {
    llt_cuda_linear a;
    memset(&a, 0, sizeof a);
    a.dtype = st->dt, a.m = nr;
    return a;
}

/* A matrix kept in GGML blocks (quant.cu): q NULL leaves the float matrix a.w. */
static void lin_blocks(llt_cuda_linear *a, const llt_cuda_qmat *q, const cuda_dev_buf *b) {
    a->qw = q, a->deq = b->deq, a->deq_bytes = b->deq_bytes;
}

static llt_status attn_block(llt_model *m, cuda_state *st, const chunk *ch, const dview *v, int d, int32_t l,
                             llt_error *err) {
    const llt_config *c = &m->cfg;
    llt_cuda_ctx *x = st->ctx[d];
    cuda_dev_buf *b = &st->buf[d];
    const int32_t H = c->hidden_size, hd = c->head_dim, qr = c->n_heads * hd, kvr = c->n_kv_heads * hd;
    llt_cuda_linear a = lin_base(st, ch->nr);
    a.w = st->lw[l].qkv, a.n = qr + 2 * kvr, a.k = H;
    a.in = LLT_LIN_IN_NORM, a.x = b->x, a.ldx = H, a.norm_w = st->lw[l].attn_norm, a.eps = c->rms_norm_eps;
    a.out = LLT_LIN_OUT_QKV, a.q = b->q, a.q_rows = qr, a.kv_rows = kvr, a.head_dim = hd;
    a.k_pool = m->kv->k_pool[l], a.v_pool = m->kv->v_pool[l], a.slot = v->slot, a.pos = v->pos;
    a.rope_cos = b->rope_cos, a.rope_sin = b->rope_sin, a.tmp_x = b->xn, a.tmp_y = b->qkv;
    lin_blocks(&a, st->lw[l].qkv_q, b);
    if (st->kv_f8) { /* staged, then quantised (in the GEMV's epilogue or by the store kernel) */
        a.k8_pool = a.k_pool, a.v8_pool = a.v_pool, a.slot8 = v->slot, a.page_size8 = m->kv->o.page_size;
        a.cnt8 = b->kv8_cnt, a.k_pool = b->kst, a.v_pool = b->vst, a.slot = b->ident;
    }
    LLT_TRY(llt_cuda_linear_run(x, &a, LLT_CUDA_PATH_AUTO, err));
    if (st->qdup & 1) LLT_TRY(llt_cuda_linear_run(x, &a, LLT_CUDA_PATH_AUTO, err));
    llt_cuda_attn at;
    memset(&at, 0, sizeof at);
    at.dtype = st->dt, at.q = b->q, at.out = b->att, at.k_pool = m->kv->k_pool[l], at.v_pool = m->kv->v_pool[l];
    at.bt = v->bt, at.row_bt = v->row_bt, at.pos = v->pos, at.rows = ch->nr;
    at.n_heads = c->n_heads, at.n_kv = c->n_kv_heads, at.hd = hd, at.page_size = m->kv->o.page_size;
    at.max_blocks = st->max_blocks, at.work = b->attn_work, at.counters = b->attn_cnt, at.max_len = ch->max_len;
    at.kv_f8 = st->kv_f8, at.pf_work = b->attn_pf, at.f8_k16 = b->f8k16, at.f8_v16 = b->f8v16, at.f8_keys = b->f8_keys;
    if (ch->max_run <= 4) {
        LLT_TRY(llt_cuda_attention_decode(x, &at, err));
    } else {
        /* A mixed step (the scheduler puts decode rows first, then prefill chunks): the leading
         * short runs in one decode launch over their rows, then one prefill launch per longer
         * run. One prefill launch per decode row cost 256 x 32 launches per step at 256 rows. */
        int32_t i0 = 0, n_dec = 0, dec_len = 0;
        for (; i0 < ch->n_tables && ch->runs[i0].n <= 4 && ch->runs[i0].row0 == n_dec; i0++) {
            n_dec += ch->runs[i0].n;
            int32_t end = ch->runs[i0].pos0 + ch->runs[i0].n;
            dec_len = end > dec_len ? end : dec_len;
        }
        if (n_dec > 0) {
            llt_cuda_attn dec = at; /* rows [0, n_dec) */
            dec.rows = n_dec, dec.max_len = dec_len;
            LLT_TRY(llt_cuda_attention_decode(x, &dec, err));
        }
        for (int32_t i = i0; i < ch->n_tables; i++)
            LLT_TRY(llt_cuda_attention_prefill(x, &at, ch->runs[i].row0, ch->runs[i].n, ch->runs[i].pos0, err));
    }
    llt_cuda_linear o = lin_base(st, ch->nr);
    o.w = st->lw[l].wo, o.n = H, o.k = qr, o.in = LLT_LIN_IN_ACT, o.x = b->att, o.ldx = qr;
    o.out = LLT_LIN_OUT_ADD, o.y = b->x, o.ldy = H;
    lin_blocks(&o, st->lw[l].wo_q, b);
    if (st->qdup & 2) LLT_TRY(llt_cuda_linear_run(x, &o, LLT_CUDA_PATH_AUTO, err));
    return llt_cuda_linear_run(x, &o, LLT_CUDA_PATH_AUTO, err);
}

static llt_status ffn_block(llt_model *m, cuda_state *st, const chunk *ch, int d, int32_t l, llt_error *err) {
    const llt_config *c = &m->cfg;
    llt_cuda_ctx *x = st->ctx[d];
    cuda_dev_buf *b = &st->buf[d];
    const int32_t H = c->hidden_size, I = c->intermediate_size;
    llt_cuda_linear a = lin_base(st, ch->nr);
    a.w = st->lw[l].gu, a.n = 2 * I, a.k = H;
    a.in = LLT_LIN_IN_NORM, a.x = b->x, a.ldx = H, a.norm_w = st->lw[l].ffn_norm, a.eps = c->rms_norm_eps;
    a.out = LLT_LIN_OUT_SWIGLU, a.o = b->act, a.ldo = I, a.tmp_x = b->xn, a.tmp_y = b->gu;
    lin_blocks(&a, st->lw[l].gu_q, b);
    LLT_TRY(llt_cuda_linear_run(x, &a, LLT_CUDA_PATH_AUTO, err));
    if (st->qdup & 4) LLT_TRY(llt_cuda_linear_run(x, &a, LLT_CUDA_PATH_AUTO, err));
    llt_cuda_linear dn = lin_base(st, ch->nr);
    dn.w = st->lw[l].down, dn.n = H, dn.k = I, dn.in = LLT_LIN_IN_ACT, dn.x = b->act, dn.ldx = I;
    dn.out = LLT_LIN_OUT_ADD, dn.y = b->x, dn.ldy = H;
    lin_blocks(&dn, st->lw[l].down_q, b);
    if (st->qdup & 8) LLT_TRY(llt_cuda_linear_run(x, &dn, LLT_CUDA_PATH_AUTO, err));
    return llt_cuda_linear_run(x, &dn, LLT_CUDA_PATH_AUTO, err);
}

/* Final norm + output head on the last device (then sampling, or logits to the host). */
static llt_status head_block(llt_model *m, cuda_state *st, const chunk *ch, const dview *v, const step_out *so,
                             llt_error *err) {
    const llt_config *c = &m->cfg;
    const int d = st->n_dev - 1;
    llt_cuda_ctx *x = st->ctx[d];
    cuda_dev_buf *b = &st->buf[d];
    if (so->final_norm) {
        LLT_TRY(llt_cuda_rmsnorm(x, st->dt, b->x, NULL, NULL, st->out_norm, b->xn, ch->nr, c->hidden_size,
                                 c->rms_norm_eps, err));
        LLT_TRY(llt_cuda_download_f32(x, so->final_norm + (size_t)ch->r0 * c->hidden_size, st->dt, b->xn,
                                      (int64_t)ch->nr * c->hidden_size, err));
    }
    if (ch->n_out == 0) return LLT_OK;
    llt_cuda_linear a = lin_base(st, ch->n_out);
    a.w = st->out_w, a.n = c->vocab_size, a.k = c->hidden_size;
    a.in = LLT_LIN_IN_NORM, a.x = b->x, a.ldx = c->hidden_size, a.x_rows = v->out_rows;
    a.norm_w = st->out_norm, a.eps = c->rms_norm_eps, a.out = LLT_LIN_OUT_STORE;
    a.y = st->logits, a.ldy = c->vocab_size, a.tmp_x = b->xn;
    lin_blocks(&a, st->out_q, b);
    LLT_TRY(llt_cuda_linear_run(x, &a, LLT_CUDA_PATH_AUTO, err));
    if (so->mode == STEP_TOKENS) {
        if (so->temperature > 0.0f)
            LLT_TRY(llt_cuda_sample(x, st->logits, c->vocab_size, ch->n_out, c->vocab_size, so->temperature,
                                    so->top_p, v->u, st->tok_d, err));
        else
            LLT_TRY(llt_cuda_argmax(x, st->logits, c->vocab_size, ch->n_out, c->vocab_size, st->tok_d, err));
        CUDA_TRY(cudaMemcpyAsync(st->tok_h, st->tok_d, (size_t)ch->n_out * 4, cudaMemcpyDeviceToHost, x->stream),
                 err);
    } else { /* the first CUDA_GRAPH_MAX_ROWS rows; chunk_outputs brings the rest */
        CUDA_TRY(cudaMemcpyAsync(st->logits_h, st->logits,
                                 (size_t)(ch->n_out < CUDA_GRAPH_MAX_ROWS ? ch->n_out : CUDA_GRAPH_MAX_ROWS) *
                                     c->vocab_size * 4,
                                 cudaMemcpyDeviceToHost, x->stream),
                 err);
    }
    return LLT_OK;
}

/* Everything device d does for a chunk, in its stream's order (capturable): its copy of the
 * step inputs, the embedding (first device), its layers, the head (last device). The rows
 * of x arrive from the previous device before (cuda_split_send, outside any graph). */
static llt_status enqueue_segment(llt_model *m, cuda_state *st, const chunk *ch, const step_out *so, int d,
                                  llt_error *err) {
    const llt_config *c = &m->cfg;
    llt_cuda_ctx *x = st->ctx[d];
    cuda_dev_buf *b = &st->buf[d];
    dview v = view_of(st, ch, d);
    CUDA_TRY(cudaMemcpyAsync(b->step_d, st->step_h, ch->bytes, cudaMemcpyHostToDevice, x->stream), err);
    if (d == 0 && st->embd_q) LLT_TRY(llt_cuda_q_embed(x, st->embd_q, v.tok, b->x, ch->nr, err));
    else if (d == 0) LLT_TRY(llt_cuda_embed(x, st->dt, st->embd, v.tok, b->x, ch->nr, c->hidden_size, err));
    for (int32_t l = st->layer0[d]; l < st->layer0[d + 1]; l++) {
        LLT_TRY(attn_block(m, st, ch, &v, d, l, err));
        LLT_TRY(ffn_block(m, st, ch, d, l, err));
        if (so->hidden)
            CUDA_TRY(cudaMemcpyAsync(so->hidden + ((size_t)l * so->n_tokens + ch->r0) * c->hidden_size, b->x,
                                     (size_t)ch->nr * c->hidden_size * 4, cudaMemcpyDeviceToHost, x->stream),
                     err);
    }
    if (d == st->n_dev - 1) return head_block(m, st, ch, &v, so, err);
    return LLT_OK;
}

/* ---- graphs ------------------------------------------------------------------------------- */

static void graph_clear(cuda_state *st, cuda_graph *g) {
    for (int d = 0; d < st->n_dev; d++)
        if (g->exec[d]) cudaGraphExecDestroy(g->exec[d]), g->exec[d] = NULL;
}

static cuda_graph *graph_slot(cuda_state *st, const chunk *ch, const step_out *so) {
    const int depth = llt_cuda_attn_depth_class(ch->max_len); /* the decode launch differs */
    for (int i = 0; i < st->n_graphs; i++) {
        cuda_graph *g = &st->graphs[i];
        if (g->rows == ch->nr && g->n_out == ch->n_out && g->mode == so->mode && g->depth == depth &&
            (so->mode == STEP_LOGITS || (g->temperature == so->temperature && g->top_p == so->top_p))) {
            g->used = ++st->graph_tick;
            return g;
        }
    }
    int i = 0;
    if (st->n_graphs < CUDA_MAX_GRAPHS) {
        i = st->n_graphs++;
    } else { /* full: the least recently used shape makes room */
        for (int k = 1; k < CUDA_MAX_GRAPHS; k++)
            if (st->graphs[k].used < st->graphs[i].used) i = k;
    }
    cuda_graph *g = &st->graphs[i];
    graph_clear(st, g);
    memset(g, 0, sizeof *g);
    g->used = ++st->graph_tick;
    g->rows = ch->nr, g->n_out = ch->n_out, g->mode = so->mode, g->depth = depth;
    g->temperature = so->temperature, g->top_p = so->top_p;
    return g;
}

/* Device d's segment captured on its stream. */
static llt_status capture_segment(llt_model *m, cuda_state *st, const chunk *ch, const step_out *so, int d,
                                  cudaGraphExec_t *exec, llt_error *err) {
    llt_cuda_ctx *x = st->ctx[d];
    CUDA_TRY(cudaSetDevice(x->device), err);
    CUDA_TRY(cudaStreamBeginCapture(x->stream, cudaStreamCaptureModeRelaxed), err);
    x->capturing = true;
    llt_status s = enqueue_segment(m, st, ch, so, d, err);
    x->capturing = false;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(x->stream, &graph);
    if (s == LLT_OK && e != cudaSuccess)
        s = llt_err_set(err, LLT_ERR_DEVICE, "cudaStreamEndCapture: %s", cudaGetErrorString(e));
    if (s == LLT_OK) {
        e = cudaGraphInstantiate(exec, graph, 0);
        if (e != cudaSuccess) {
            *exec = NULL;
            s = llt_err_set(err, LLT_ERR_DEVICE, "cudaGraphInstantiate: %s", cudaGetErrorString(e));
        }
    }
    if (graph) cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    return s;
}

static llt_status graph_capture(llt_model *m, cuda_state *st, const chunk *ch, const step_out *so,
                                cuda_graph *g, llt_error *err) {
    for (int d = 0; d < st->n_dev; d++) {
        llt_status s = capture_segment(m, st, ch, so, d, &g->exec[d], err);
        if (s != LLT_OK) {
            graph_clear(st, g);
            return s;
        }
    }
    return LLT_OK;
}

/* Runs a chunk: device by device, each segment from its graph (captured on the second
 * occurrence of a decode shape) or eagerly. */
static llt_status run_chunk(llt_model *m, cuda_state *st, const chunk *ch, const step_out *so,
                            llt_error *err) {
    bool graphable = st->use_graphs && ch->max_run == 1 && ch->nr <= CUDA_GRAPH_MAX_ROWS && !so->hidden &&
                     !so->final_norm;
    cuda_graph *g = graphable ? graph_slot(st, ch, so) : NULL;
    if (g && !g->exec[0] && ++g->seen >= 2) {
        llt_error e2;
        if (graph_capture(m, st, ch, so, g, &e2) != LLT_OK) {
            LLT_WARN("cuda: graph capture failed, running without graphs: %s", e2.msg);
            st->use_graphs = false;
            g = NULL;
        }
    }
    if (g && !g->exec[0]) g = NULL;
    const size_t x_bytes = (size_t)ch->nr * m->cfg.hidden_size * 4;
    for (int d = 0; d < st->n_dev; d++) {
        if (d > 0) LLT_TRY(cuda_split_send(st, d, x_bytes, err));
        else CUDA_TRY(cudaSetDevice(st->ctx[0]->device), err);
        if (g) CUDA_TRY(cudaGraphLaunch(g->exec[d], st->ctx[d]->stream), err);
        else LLT_TRY(enqueue_segment(m, st, ch, so, d, err));
    }
    return LLT_OK;
}

/* Waits for the chunk and copies its outputs to the caller. */
static llt_status chunk_outputs(llt_model *m, cuda_state *st, const chunk *ch, const step_out *so,
                                float *logits, int32_t *tokens, int32_t out_row, llt_error *err) {
    llt_cuda_ctx *x = st->ctx[st->n_dev - 1]; /* its stream ends the chunk (events order the others) */
    const size_t V = (size_t)m->cfg.vocab_size;
    CUDA_TRY(cudaStreamSynchronize(x->stream), err);
    CUDA_TRY(cudaGetLastError(), err);
    if (ch->n_out == 0) return LLT_OK;
    if (so->mode == STEP_TOKENS) {
        memcpy(tokens + out_row, st->tok_h, (size_t)ch->n_out * 4);
    } else if (st->logits_dev) { /* stays on the GPU: device to device */
        CUDA_TRY(cudaMemcpyAsync(st->logits_dev + (size_t)out_row * V, st->logits, (size_t)ch->n_out * V * 4,
                                 cudaMemcpyDefault, x->stream),
                 err);
        CUDA_TRY(cudaStreamSynchronize(x->stream), err);
    } else if (logits) {
        memcpy(logits + (size_t)out_row * V, st->logits_h, (size_t)(ch->n_out < CUDA_GRAPH_MAX_ROWS ? ch->n_out : CUDA_GRAPH_MAX_ROWS) * V * 4);
        /* rows past the pinned buffer's CUDA_GRAPH_MAX_ROWS go through it in pieces (a copy
         * straight into pageable memory is staged by the driver, and slow) */
        for (int32_t r = CUDA_GRAPH_MAX_ROWS; r < ch->n_out; r += CUDA_GRAPH_MAX_ROWS) {
            int32_t n = ch->n_out - r < CUDA_GRAPH_MAX_ROWS ? ch->n_out - r : CUDA_GRAPH_MAX_ROWS;
            LLT_TRY(llt_cuda_download(x, st->logits_h, st->logits + (size_t)r * V, (size_t)n * V * 4, err));
            memcpy(logits + (size_t)(out_row + r) * V, st->logits_h, (size_t)n * V * 4);
        }
    }
    return LLT_OK;
}

/* ---- the step ------------------------------------------------------------------------------ */

static llt_status step(llt_model *m, const llt_batch *b, const step_out *so, const float *u,
                       float *logits, int32_t *tokens, int32_t *n_rows, llt_error *err) {
    LLT_CHECK(m && m->backend_state && m->kv, err, LLT_ERR_STATE, "cuda backend: model not initialised");
    LLT_CHECK(b && b->n_tokens > 0 && b->tokens && b->seq_ids, err, LLT_ERR_INVALID_ARG,
              "batch: empty or missing tokens / seq_ids");
    cuda_state *st = (cuda_state *)m->backend_state;
    CUDA_TRY(cudaSetDevice(st->ctx[0]->device), err);
    run *runs = (run *)malloc((size_t)b->n_tokens * sizeof *runs);
    chunk *ch = (chunk *)malloc(sizeof *ch);
    llt_status s = runs && ch ? LLT_OK : llt_err_set(err, LLT_ERR_NOMEM, "batch: out of memory");
    int32_t n_runs = 0, out_row = 0;
    if (s == LLT_OK) s = llt_batch_runs(m, b, runs, &n_runs, err);
    if (s == LLT_OK) s = llt_batch_reserve(m, runs, n_runs, st->rope_max, err);
    bool reserved = s == LLT_OK;
    step_out sb = *so;
    sb.n_tokens = b->n_tokens;
    for (int32_t r0 = 0; s == LLT_OK && r0 < b->n_tokens; r0 += ch->nr) {
        /* at most max_rows rows, of which at most CUDA_OUT_ROWS want logits */
        int32_t nr = 0, outs = 0;
        while (r0 + nr < b->n_tokens && nr < st->max_rows &&
               (outs < CUDA_OUT_ROWS || !wants_logits(b, r0 + nr)))
            outs += wants_logits(b, r0 + nr++);
        ch->r0 = r0, ch->nr = nr;
        s = chunk_build(m, st, b, runs, n_runs, u, out_row, ch, err);
        if (s == LLT_OK) s = run_chunk(m, st, ch, &sb, err);
        if (s == LLT_OK) s = chunk_outputs(m, st, ch, &sb, logits, tokens, out_row, err);
        out_row += ch->n_out;
    }
    if (reserved)
        for (int32_t i = 0; i < n_runs; i++) {
            if (s == LLT_OK) llt_kv_commit(m->kv, runs[i].seq, runs[i].n);
            else llt_kv_unreserve(m->kv, runs[i].seq);
        }
    if (n_rows) *n_rows = s == LLT_OK ? out_row : 0;
    free(runs);
    free(ch);
    return s;
}

static llt_status cuda_decode(llt_model *m, const llt_batch *b, float *logits, int32_t *n_rows,
                              float *hidden, float *final_norm, llt_error *err) {
    step_out so;
    memset(&so, 0, sizeof so);
    so.mode = STEP_LOGITS, so.hidden = hidden, so.final_norm = final_norm;
    return step(m, b, &so, NULL, logits, NULL, n_rows, err);
}

extern "C" llt_status llt_cuda_decode_tokens(llt_model *m, const llt_batch *b, float temperature, float top_p,
                                             const float *u, int32_t *tokens_out, int32_t *n_rows,
                                             llt_error *err) {
    LLT_CHECK(m && m->backend == &llt_backend_cuda, err, LLT_ERR_INVALID_ARG,
              "cuda decode: the model does not run on the CUDA backend");
    LLT_CHECK(tokens_out && (temperature <= 0.0f || u), err, LLT_ERR_INVALID_ARG,
              "cuda decode: NULL output, or sampling without uniform draws");
    step_out so;
    memset(&so, 0, sizeof so);
    so.mode = STEP_TOKENS, so.temperature = temperature > 0.0f ? temperature : 0.0f;
    so.top_p = top_p > 0.0f && top_p < 1.0f ? top_p : 1.0f;
    return step(m, b, &so, u, NULL, tokens_out, n_rows, err);
}

/* ---- model-level helpers ----------------------------------------------------------------- */

extern "C" llt_status llt_cuda_model_forward_device(llt_model *m, const int32_t *ids, size_t n,
                                                    float *logits_dev, llt_error *err) {
    LLT_CHECK(m && m->backend == &llt_backend_cuda && m->backend_state && logits_dev, err, LLT_ERR_INVALID_ARG,
              "cuda forward: the model does not run on the CUDA backend, or NULL logits");
    cuda_state *st = (cuda_state *)m->backend_state;
    st->logits_dev = logits_dev;
    llt_status s = llt_model_forward(m, ids, n, NULL, NULL, NULL, err);
    st->logits_dev = NULL;
    return s;
}

extern "C" const llt_kv_storage *llt_cuda_kv_storage(llt_model *m) {
    if (!m || m->backend != &llt_backend_cuda || !m->backend_state) return NULL;
    return &((cuda_state *)m->backend_state)->storage;
}

extern "C" llt_cuda_ctx *llt_cuda_model_ctx(llt_model *m) {
    if (!m || m->backend != &llt_backend_cuda || !m->backend_state) return NULL;
    return ((cuda_state *)m->backend_state)->ctx[0];
}

extern "C" llt_dtype llt_cuda_model_dtype(const llt_model *m) {
    if (!m || m->backend != &llt_backend_cuda || !m->backend_state) return LLT_DTYPE_COUNT;
    return ((const cuda_state *)m->backend_state)->dt;
}

extern "C" llt_dtype llt_cuda_model_weights_dtype(const llt_model *m) {
    if (!m || m->backend != &llt_backend_cuda || !m->backend_state) return LLT_DTYPE_COUNT;
    const cuda_state *st = (const cuda_state *)m->backend_state;
    /* qmats[0]: layer 0's (wq, wk, wv), n_seg > 0 when kept as blocks (weights.cu) */
    return st->qmats && st->qmats[0].n_seg > 0 ? st->qmats[0].seg[0].type : st->dt;
}

extern "C" uint64_t llt_cuda_model_weight_bytes(const llt_model *m) {
    const cuda_state *st = m->backend == &llt_backend_cuda ? (const cuda_state *)m->backend_state : NULL;
    if (st && st->step_bytes) return st->step_bytes; /* as stored: GGML blocks count their real bytes */
    const llt_config *c = &m->cfg;
    uint64_t es = 2, H = (uint64_t)c->hidden_size, I = (uint64_t)c->intermediate_size;
    uint64_t qr = (uint64_t)c->n_heads * c->head_dim, kvr = (uint64_t)c->n_kv_heads * c->head_dim;
    uint64_t layer = ((qr + 2 * kvr) * H + H * qr + 3 * I * H) * es + 2 * H * 4;
    return layer * (uint64_t)c->n_layers + (uint64_t)c->vocab_size * H * es + H * 4;
}

static void weight_desc(llt_weight *w, llt_dtype dt, int64_t rows, int64_t cols) {
    w->dtype = dt, w->rows = rows, w->cols = cols, w->data = NULL, w->dev = NULL;
}

/* wdt: a GGML block dtype for the matrices (COUNT: dt); matrices whose rows are not whole
 * blocks stay dt, as llama-quantize falls back for them */
static void random_descs(llt_model *m, llt_dtype dt, llt_dtype wdt) {
    const llt_config *c = &m->cfg;
    int64_t H = c->hidden_size, I = c->intermediate_size, qr = (int64_t)c->n_heads * c->head_dim;
    int64_t kvr = (int64_t)c->n_kv_heads * c->head_dim;
    const int be = wdt != LLT_DTYPE_COUNT ? llt_dtype_get(wdt)->block_elems : 1;
    const llt_dtype dH = wdt != LLT_DTYPE_COUNT && H % be == 0 ? wdt : dt;
    const llt_dtype dQ = wdt != LLT_DTYPE_COUNT && qr % be == 0 ? wdt : dt;
    const llt_dtype dI = wdt != LLT_DTYPE_COUNT && I % be == 0 ? wdt : dt;
    weight_desc(&m->tok_embd, dH, c->vocab_size, H);
    weight_desc(&m->output, dH, c->vocab_size, H);
    weight_desc(&m->out_norm, LLT_DTYPE_F32, 1, H);
    for (int32_t l = 0; l < c->n_layers; l++) {
        llt_layer *L = &m->layers[l];
        weight_desc(&L->attn_norm, LLT_DTYPE_F32, 1, H);
        weight_desc(&L->ffn_norm, LLT_DTYPE_F32, 1, H);
        weight_desc(&L->wq, dH, qr, H);
        weight_desc(&L->wk, dH, kvr, H);
        weight_desc(&L->wv, dH, kvr, H);
        weight_desc(&L->wo, dQ, H, qr);
        weight_desc(&L->w_gate, dH, I, H);
        weight_desc(&L->w_up, dH, I, H);
        weight_desc(&L->w_down, dI, H, I);
        L->device = 0;
    }
}

extern "C" llt_status llt_cuda_model_random(const llt_config *cfg, uint64_t seed, const llt_load_opts *opts,
                                            llt_model **out, llt_error *err) {
    LLT_CHECK(cfg && out, err, LLT_ERR_INVALID_ARG, "cuda random model: NULL argument");
    *out = NULL;
    llt_config c = *cfg;
    if (c.head_dim <= 0 && c.n_heads > 0) c.head_dim = c.hidden_size / c.n_heads;
    LLT_TRY(llt_config_validate(&c, err));
    llt_model *m = (llt_model *)calloc(1, sizeof *m);
    LLT_CHECK(m, err, LLT_ERR_NOMEM, "cuda random model: out of memory");
    m->cfg = c;
    llt_tensors_init(&m->tensors);
    m->layers = (llt_layer *)calloc((size_t)c.n_layers, sizeof *m->layers);
    m->backend = &llt_backend_cuda;
    llt_status s = m->layers ? LLT_OK : llt_err_set(err, LLT_ERR_NOMEM, "cuda random model: out of memory");
    llt_dtype dt = LLT_DTYPE_F16;
    /* a GGML block dtype: random blocks in that type, f16 compute */
    llt_load_opts o2;
    if (opts) o2 = *opts;
    else llt_load_opts_init(&o2);
    const llt_dtype wdt = llt_dtype_is_block(o2.dtype) ? o2.dtype : LLT_DTYPE_COUNT;
    if (wdt != LLT_DTYPE_COUNT) o2.dtype = LLT_DTYPE_COUNT, m->keep_quant = true, m->cfg.dtype = wdt;
    if (s == LLT_OK) s = pick_dtype(m, &o2, &dt, err);
    if (s == LLT_OK) s = llt_model_take_opts(m, &o2, err);
    if (s == LLT_OK) {
        random_descs(m, dt, wdt);
        snprintf(m->path, sizeof m->path, "random:%llu", (unsigned long long)seed);
        s = init_impl(m, &o2, &seed, err);
    }
    if (s != LLT_OK) {
        free(m->layers);
        free(m);
        return s;
    }
    *out = m;
    return LLT_OK;
}

static llt_status cuda_decode_greedy(llt_model *m, const llt_batch *b, int32_t *tokens, int32_t *n_rows,
                                     llt_error *err) {
    return llt_cuda_decode_tokens(m, b, 0.0f, 1.0f, NULL, tokens, n_rows, err);
}

extern "C" const llt_backend llt_backend_cuda = {"cuda", cuda_init, cuda_decode, cuda_free, cuda_decode_greedy};
