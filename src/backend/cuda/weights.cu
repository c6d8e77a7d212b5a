/* weights.cu: puts a model's weights on the device(s) in the layout of model.cuh.
 * Host weights (F32, F16 or BF16, usually an mmap) are copied in 64 MB pieces through two
 * pinned staging buffers (the copy of one piece overlaps the host copy of the next) and
 * converted to the compute dtype by a kernel that also places rows (Q/K/V one after another,
 * gate/up interleaved). Without host weights (benchmarks of big shapes), each matrix is filled
 * with uniform random values on the device: U(-a, a), a = sqrt(3 / fan_in), so activations keep
 * unit scale through the layers; norm weights U(0.9, 1.1); the embedding U(-1, 1).
 * With a layer split, each device's share is uploaded through staging buffers on that device.
 * Also here: the rotary angle table and the KV-pool storage hooks (each layer's pool on its
 * device). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/model.cuh"

extern "C" {
#include "backend/backend.h"
#include "base/dtype.h"
#include "base/quant.h"
}

enum { STAGE_BYTES = 64 << 20 };

static size_t al256(size_t x) { return (x + 255) & ~(size_t)255; }

typedef struct uploader {
    llt_cuda_ctx *c;
    void *pin[2], *stage[2];
    cudaEvent_t ev[2];
    int cur;
    llt_progress prog;
    uint64_t done, total;
} uploader;

static llt_status up_open(uploader *u, llt_cuda_ctx *c, uint64_t done, uint64_t total, llt_error *err) {
    memset(u, 0, sizeof *u);
    u->c = c, u->done = done, u->total = total;
    CUDA_TRY(cudaSetDevice(c->device), err);
    for (int i = 0; i < 2; i++) {
        CUDA_TRY(cudaHostAlloc(&u->pin[i], STAGE_BYTES, cudaHostAllocDefault), err);
        CUDA_TRY(cudaMalloc(&u->stage[i], STAGE_BYTES), err);
        CUDA_TRY(cudaEventCreateWithFlags(&u->ev[i], cudaEventDisableTiming), err);
        CUDA_TRY(cudaEventRecord(u->ev[i], c->stream), err);
    }
    llt_progress_begin(&u->prog, "uploading weights", true);
    return LLT_OK;
}

static void up_close(uploader *u) {
    if (u->c) cudaSetDevice(u->c->device), cudaStreamSynchronize(u->c->stream);
    for (int i = 0; i < 2; i++) {
        if (u->pin[i]) cudaFreeHost(u->pin[i]);
        if (u->stage[i]) cudaFree(u->stage[i]);
        if (u->ev[i]) cudaEventDestroy(u->ev[i]);
    }
    llt_progress_end(&u->prog);
}

/* Bytes of w as the host holds it (GGML blocks: whole blocks). */
static uint64_t tensor_bytes(const llt_weight *w) {
    uint64_t n = 0;
    llt_dtype_nbytes(w->dtype, (uint64_t)w->rows * (uint64_t)w->cols, &n);
    return n;
}

/* dst rows (first + r * step) <- w's rows, converted to dd. */
static llt_status up_rows(uploader *u, const llt_weight *w, void *dst, llt_dtype dd, int64_t first,
                          int64_t step, const char *what, llt_error *err) {
    LLT_CHECK(w->data, err, LLT_ERR_INVALID_ARG, "cuda upload: %s has no host data", what);
    const bool blocks = llt_dtype_is_block(w->dtype); /* a float group with a block tensor: dequantised here */
    LLT_CHECK(blocks || w->dtype == LLT_DTYPE_F32 || w->dtype == LLT_DTYPE_F16 || w->dtype == LLT_DTYPE_BF16,
              err, LLT_ERR_UNSUPPORTED, "cuda upload: %s has dtype %s (expected f32, f16, bf16 or GGML blocks)",
              what, llt_dtype_name(w->dtype));
    const llt_dtype sd = blocks ? LLT_DTYPE_F32 : w->dtype;
    size_t row_bytes = (size_t)w->cols * dt_size(sd), src_row = (size_t)tensor_bytes(w) / (size_t)w->rows;
    LLT_CHECK(row_bytes <= STAGE_BYTES, err, LLT_ERR_UNSUPPORTED, "cuda upload: %s rows of %zu bytes",
              what, row_bytes);
    int64_t per = (int64_t)(STAGE_BYTES / row_bytes);
    for (int64_t r0 = 0; r0 < w->rows; r0 += per) {
        int64_t n = w->rows - r0 < per ? w->rows - r0 : per;
        int b = u->cur;
        CUDA_TRY(cudaEventSynchronize(u->ev[b]), err);
        const char *src = (const char *)w->data + (size_t)r0 * src_row;
        if (blocks) LLT_TRY(llt_dequantize(w->dtype, src, (float *)u->pin[b], n * w->cols, err));
        else memcpy(u->pin[b], src, (size_t)n * row_bytes);
        CUDA_TRY(cudaMemcpyAsync(u->stage[b], u->pin[b], (size_t)n * row_bytes, cudaMemcpyHostToDevice,
                                 u->c->stream),
                 err);
        LLT_TRY(llt_cuda_convert_rows(u->c, sd, u->stage[b], dd, dst, n, w->cols, first + r0 * step,
                                      step, err));
        CUDA_TRY(cudaEventRecord(u->ev[b], u->c->stream), err);
        u->cur ^= 1;
        u->done += (uint64_t)n * src_row;
        llt_progress_update(&u->prog, u->done, u->total);
    }
    return LLT_OK;
}

/* ---- layout ----------------------------------------------------------------------------- */

typedef struct wsizes {
    size_t qkv, wo, gu, down, norm, embd, out, out_norm;
} wsizes;

static wsizes sizes_of(const llt_config *c, llt_dtype dt);

size_t cuda_layer_weight_bytes(const llt_config *c, llt_dtype dt) {
    wsizes s = sizes_of(c, dt);
    return s.qkv + s.wo + s.gu + s.down + 2 * s.norm;
}

size_t cuda_vocab_weight_bytes(const llt_config *c, llt_dtype dt) { return sizes_of(c, dt).embd; }

static wsizes sizes_of(const llt_config *c, llt_dtype dt) {
    size_t es = dt_size(dt), H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    size_t qr = (size_t)c->n_heads * c->head_dim, kvr = (size_t)c->n_kv_heads * c->head_dim;
    wsizes s;
    s.qkv = al256((qr + 2 * kvr) * H * es), s.wo = al256(H * qr * es);
    s.gu = al256(2 * I * H * es), s.down = al256(H * I * es), s.norm = al256(H * 4);
    s.embd = al256((size_t)c->vocab_size * H * es), s.out = s.embd, s.out_norm = s.norm;
    return s;
}

static bool model_tied(const llt_model *m) {
    return m->output.data ? m->output.data == m->tok_embd.data : m->cfg.tie_weights || !m->tok_embd.data;
}

/* ---- groups of matrices: float, or GGML blocks (llt_cuda_qmat) ---------------------------- */

/* The tensors one device matrix is made of: (wq, wk, wv), (wo), (gate, up) interleaved, (down),
 * (embedding), (head). */
typedef struct wgroup {
    const llt_weight *w[3];
    int n, interleave;
} wgroup;

static wgroup layer_group(const llt_layer *L, int which) {
    switch (which) {
    case 0: return {{&L->wq, &L->wk, &L->wv}, 3, 0};
    case 1: return {{&L->wo}, 1, 0};
    case 2: return {{&L->w_gate, &L->w_up}, 2, 1};
    default: return {{&L->w_down}, 1, 0};
    }
}

/* Kept as blocks: every tensor a type quant.cu computes with, and the model keeps blocks. */
static bool group_quant(const llt_model *m, const wgroup *g) {
    if (!m->keep_quant) return false;
    for (int i = 0; i < g->n; i++)
        if (!llt_dtype_is_block(g->w[i]->dtype) || llt_cuda_q_pay_bytes(g->w[i]->dtype) == 0 ||
            g->w[i]->cols % llt_dtype_get(g->w[i]->dtype)->block_elems)
            return false;
    return !g->interleave || g->w[0]->rows == g->w[1]->rows;
}

static int64_t seg_blocks(const llt_weight *w) {
    return w->rows * (w->cols / llt_dtype_get(w->dtype)->block_elems);
}

static size_t group_qbytes(const wgroup *g) {
    size_t b = 0;
    for (int i = 0; i < g->n; i++) {
        size_t nb = (size_t)seg_blocks(g->w[i]);
        b += al256(nb * llt_cuda_q_pay_bytes(g->w[i]->dtype)) + al256(nb * llt_cuda_q_meta_bytes(g->w[i]->dtype) + LLT_CUDA_Q_META_SLACK);
    }
    return b;
}

/* Places group g at *at (qm != NULL: as blocks into *qm, else float_bytes at *fp). dry: sizes only. */
static size_t place(const wgroup *g, llt_cuda_qmat *qm, size_t float_bytes, char **at, void **fp, bool dry) {
    size_t bytes = qm ? group_qbytes(g) : float_bytes;
    if (dry) return bytes;
    if (!qm) {
        *fp = *at, *at += bytes;
        return bytes;
    }
    memset(qm, 0, sizeof *qm);
    qm->k = (int32_t)g->w[0]->cols, qm->n_seg = g->n, qm->interleave = g->interleave;
    for (int i = 0; i < g->n; i++) {
        llt_cuda_qseg *sg = &qm->seg[i];
        size_t nb = (size_t)seg_blocks(g->w[i]);
        sg->type = g->w[i]->dtype, sg->rows = (int32_t)g->w[i]->rows;
        sg->pay = (uint8_t *)*at, *at += al256(nb * llt_cuda_q_pay_bytes(sg->type));
        sg->meta = (uint8_t *)*at, *at += al256(nb * llt_cuda_q_meta_bytes(sg->type) + LLT_CUDA_Q_META_SLACK);
        qm->n += sg->rows;
    }
    *fp = NULL;
    return bytes;
}

/* Sizes (dry) or places (not dry) every region; returns nothing, fills need[]. The qmat of
 * layer l group j is st->qmats[4 l + j], the embedding's 4 n_layers, the head's 4 n_layers + 1. */
static void place_all(llt_model *m, cuda_state *st, size_t *need, char **at, bool dry) {
    const llt_config *c = &m->cfg;
    wsizes s = sizes_of(c, st->dt);
    const size_t fl[4] = {s.qkv, s.wo, s.gu, s.down};
    const int last = st->n_dev - 1; /* the head's device, even when it holds no layer */
    for (int32_t l = 0; l < c->n_layers; l++) {
        const int d = m->layers[l].device;
        cuda_layer_w *w = &st->lw[l];
        void **fp[4] = {&w->qkv, &w->wo, &w->gu, &w->down};
        llt_cuda_qmat **qp[4] = {&w->qkv_q, &w->wo_q, &w->gu_q, &w->down_q};
        for (int j = 0; j < 4; j++) {
            wgroup g = layer_group(&m->layers[l], j);
            llt_cuda_qmat *qm = group_quant(m, &g) ? &st->qmats[4 * l + j] : NULL;
            need[d] += place(&g, qm, fl[j], &at[d], fp[j], dry);
            if (!dry) *qp[j] = qm;
        }
        need[d] += 2 * s.norm;
        if (!dry) w->attn_norm = (float *)at[d], at[d] += s.norm, w->ffn_norm = (float *)at[d], at[d] += s.norm;
    }
    wgroup ge = {{&m->tok_embd}, 1, 0}, go = {{&m->output}, 1, 0};
    llt_cuda_qmat *qe = group_quant(m, &ge) ? &st->qmats[4 * c->n_layers] : NULL;
    need[0] += place(&ge, qe, s.embd, &at[0], &st->embd, dry);
    need[last] += s.out_norm;
    if (!dry) st->out_norm = (float *)at[last], at[last] += s.out_norm, st->embd_q = qe;
    if (model_tied(m) && last == 0) {
        if (!dry) st->out_w = st->embd, st->out_q = qe;
        return;
    }
    llt_cuda_qmat *qo = group_quant(m, &go) ? &st->qmats[4 * c->n_layers + 1] : NULL;
    need[last] += place(&go, qo, s.out, &at[last], &st->out_w, dry);
    if (!dry) st->out_q = qo;
}

/* Bump-allocates every region inside one allocation per device. */
static llt_status layout(llt_model *m, cuda_state *st, llt_error *err) {
    size_t need[LLT_MAX_DEVICES] = {0}, none[LLT_MAX_DEVICES] = {0};
    char *at[LLT_MAX_DEVICES] = {0};
    place_all(m, st, need, at, true);
    for (int d = 0; d < st->n_dev; d++) {
        LLT_TRY(llt_cuda_alloc(st->ctx[d], need[d], &st->wmem[d], err));
        st->wbytes[d] = need[d];
        at[d] = (char *)st->wmem[d];
    }
    place_all(m, st, none, at, false);
    return LLT_OK;
}

/* llt_weight.dev: where each weight went (documented in model.cuh). */
static void set_dev_pointers(llt_model *m, cuda_state *st) {
    size_t es = dt_size(st->dt), H = (size_t)m->cfg.hidden_size;
    size_t qr = (size_t)m->cfg.n_heads * m->cfg.head_dim, kvr = (size_t)m->cfg.n_kv_heads * m->cfg.head_dim;
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        llt_layer *L = &m->layers[l];
        cuda_layer_w *w = &st->lw[l];
        if (w->qkv) { /* block groups have no float matrix to point into */
            L->wq.dev = w->qkv;
            L->wk.dev = (char *)w->qkv + qr * H * es;
            L->wv.dev = (char *)w->qkv + (qr + kvr) * H * es;
        }
        L->wo.dev = w->wo, L->w_gate.dev = w->gu, L->w_up.dev = w->gu, L->w_down.dev = w->down;
        L->attn_norm.dev = w->attn_norm, L->ffn_norm.dev = w->ffn_norm;
    }
    m->tok_embd.dev = st->embd, m->output.dev = st->out_w, m->out_norm.dev = st->out_norm;
}

/* ---- filling ------------------------------------------------------------------------------ */

/* A block tensor into its segment: payload and scales split on the host (pinned), two copies. */
static llt_status up_blocks(uploader *u, const llt_weight *w, const llt_cuda_qseg *sg, llt_error *err) {
    const llt_dtype_info *di = llt_dtype_get(w->dtype);
    const int64_t nb_row = w->cols / di->block_elems;
    const size_t pay = (size_t)llt_cuda_q_pay_bytes(w->dtype), meta = (size_t)llt_cuda_q_meta_bytes(w->dtype);
    const size_t row_bytes = (size_t)nb_row * di->block_bytes;
    int64_t per = (int64_t)(STAGE_BYTES / row_bytes);
    for (int64_t r0 = 0; r0 < w->rows; r0 += per) {
        int64_t n = w->rows - r0 < per ? w->rows - r0 : per, nb = n * nb_row;
        int b = u->cur;
        CUDA_TRY(cudaEventSynchronize(u->ev[b]), err);
        uint8_t *pp = (uint8_t *)u->pin[b], *pm = pp + (size_t)nb * pay;
        llt_cuda_q_split(w->dtype, (const char *)w->data + (size_t)r0 * row_bytes, nb, pp, pm);
        CUDA_TRY(cudaMemcpyAsync(sg->pay + (size_t)r0 * nb_row * pay, pp, (size_t)nb * pay,
                                 cudaMemcpyHostToDevice, u->c->stream), err);
        CUDA_TRY(cudaMemcpyAsync(sg->meta + (size_t)r0 * nb_row * meta, pm, (size_t)nb * meta,
                                 cudaMemcpyHostToDevice, u->c->stream), err);
        CUDA_TRY(cudaEventRecord(u->ev[b], u->c->stream), err);
        u->cur ^= 1;
        u->done += (uint64_t)n * row_bytes;
        llt_progress_update(&u->prog, u->done, u->total);
    }
    return LLT_OK;
}

static llt_status up_group_blocks(uploader *u, const wgroup *g, const llt_cuda_qmat *q, llt_error *err) {
    for (int i = 0; i < g->n; i++) {
        LLT_CHECK(g->w[i]->data, err, LLT_ERR_INVALID_ARG, "cuda upload: a block tensor has no host data");
        LLT_TRY(up_blocks(u, g->w[i], &q->seg[i], err));
    }
    return LLT_OK;
}

static llt_status upload_layer(uploader *u, const llt_model *m, int32_t l, cuda_layer_w *w, llt_dtype dt,
                               llt_error *err) {
    const llt_layer *L = &m->layers[l];
    const llt_config *c = &m->cfg;
    int64_t qr = (int64_t)c->n_heads * c->head_dim, kvr = (int64_t)c->n_kv_heads * c->head_dim;
    wgroup g[4] = {layer_group(L, 0), layer_group(L, 1), layer_group(L, 2), layer_group(L, 3)};
    if (w->qkv_q) LLT_TRY(up_group_blocks(u, &g[0], w->qkv_q, err));
    else {
        LLT_TRY(up_rows(u, &L->wq, w->qkv, dt, 0, 1, "wq", err));
        LLT_TRY(up_rows(u, &L->wk, w->qkv, dt, qr, 1, "wk", err));
        LLT_TRY(up_rows(u, &L->wv, w->qkv, dt, qr + kvr, 1, "wv", err));
    }
    if (w->wo_q) LLT_TRY(up_group_blocks(u, &g[1], w->wo_q, err));
    else LLT_TRY(up_rows(u, &L->wo, w->wo, dt, 0, 1, "wo", err));
    if (w->gu_q) LLT_TRY(up_group_blocks(u, &g[2], w->gu_q, err));
    else {
        LLT_TRY(up_rows(u, &L->w_gate, w->gu, dt, 0, 2, "w_gate", err));
        LLT_TRY(up_rows(u, &L->w_up, w->gu, dt, 1, 2, "w_up", err));
    }
    if (w->down_q) LLT_TRY(up_group_blocks(u, &g[3], w->down_q, err));
    else LLT_TRY(up_rows(u, &L->w_down, w->down, dt, 0, 1, "w_down", err));
    LLT_TRY(up_rows(u, &L->attn_norm, w->attn_norm, LLT_DTYPE_F32, 0, 1, "attn_norm", err));
    return up_rows(u, &L->ffn_norm, w->ffn_norm, LLT_DTYPE_F32, 0, 1, "ffn_norm", err);
}

static uint64_t host_bytes(const llt_weight *w) { return tensor_bytes(w); }

/* Device d's share: its layers, the embedding (first), the final norm and head (last). */
static llt_status upload_dev(uploader *u, llt_model *m, cuda_state *st, int d, llt_error *err) {
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        if (m->layers[l].device != d) continue;
        llt_status s = upload_layer(u, m, l, &st->lw[l], st->dt, err);
        if (s != LLT_OK) return llt_err_wrap(err, s, "layer %d: ", (int)l);
    }
    wgroup ge = {{&m->tok_embd}, 1, 0}, go = {{&m->output}, 1, 0};
    if (d == 0 && st->embd_q) LLT_TRY(up_group_blocks(u, &ge, st->embd_q, err));
    else if (d == 0) LLT_TRY(up_rows(u, &m->tok_embd, st->embd, st->dt, 0, 1, "tok_embd", err));
    if (d != st->n_dev - 1) return LLT_OK;
    LLT_TRY(up_rows(u, &m->out_norm, st->out_norm, LLT_DTYPE_F32, 0, 1, "out_norm", err));
    if (st->out_q && st->out_q != st->embd_q) LLT_TRY(up_group_blocks(u, &go, st->out_q, err));
    else if (!st->out_q && st->out_w != st->embd) LLT_TRY(up_rows(u, &m->output, st->out_w, st->dt, 0, 1, "output", err));
    return LLT_OK;
}

static llt_status upload_all(llt_model *m, cuda_state *st, llt_error *err) {
    uint64_t total = host_bytes(&m->tok_embd) + host_bytes(&m->out_norm);
    if (st->out_w != st->embd || st->out_q != st->embd_q) total += host_bytes(&m->output);
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        const llt_layer *L = &m->layers[l];
        const llt_weight *ws[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo,
                                  &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 9; i++) total += host_bytes(ws[i]);
    }
    uint64_t done = 0;
    for (int d = 0; d < st->n_dev; d++) {
        uploader u;
        llt_status s = up_open(&u, st->ctx[d], done, total, err);
        if (s == LLT_OK) s = upload_dev(&u, m, st, d, err);
        done = u.done;
        up_close(&u);
        LLT_TRY(s);
    }
    return LLT_OK;
}

static llt_status fill(llt_cuda_ctx *c, llt_dtype dt, void *p, int64_t n, uint64_t seed, float lo,
                       float hi, llt_error *err) {
    return llt_cuda_fill_uniform(c, dt, p, n, seed, lo, hi, err);
}

static llt_status fill_q(llt_cuda_ctx *c, const llt_cuda_qmat *q, uint64_t seed, float scale, llt_error *err) {
    for (int i = 0; i < q->n_seg; i++) LLT_TRY(llt_cuda_q_fill_random(c, &q->seg[i], q->k, seed * 7 + (uint64_t)i, scale, err));
    return LLT_OK;
}

static llt_status random_all(llt_model *m, cuda_state *st, uint64_t seed, llt_error *err) {
    const llt_config *c = &m->cfg;
    int64_t H = c->hidden_size, I = c->intermediate_size, qr = (int64_t)c->n_heads * c->head_dim;
    int64_t kvr = (int64_t)c->n_kv_heads * c->head_dim;
    float aH = sqrtf(3.0f / (float)H), aQ = sqrtf(3.0f / (float)qr), aI = sqrtf(3.0f / (float)I);
    for (int32_t l = 0; l < c->n_layers; l++) {
        llt_cuda_ctx *x = st->ctx[m->layers[l].device];
        CUDA_TRY(cudaSetDevice(x->device), err);
        cuda_layer_w *w = &st->lw[l];
        uint64_t s = seed * 1000003u + (uint64_t)l * 16;
        if (w->qkv_q) LLT_TRY(fill_q(x, w->qkv_q, s + 1, aH, err));
        else LLT_TRY(fill(x, st->dt, w->qkv, (qr + 2 * kvr) * H, s + 1, -aH, aH, err));
        if (w->wo_q) LLT_TRY(fill_q(x, w->wo_q, s + 2, aQ, err));
        else LLT_TRY(fill(x, st->dt, w->wo, H * qr, s + 2, -aQ, aQ, err));
        if (w->gu_q) LLT_TRY(fill_q(x, w->gu_q, s + 3, aH, err));
        else LLT_TRY(fill(x, st->dt, w->gu, 2 * I * H, s + 3, -aH, aH, err));
        if (w->down_q) LLT_TRY(fill_q(x, w->down_q, s + 4, aI, err));
        else LLT_TRY(fill(x, st->dt, w->down, H * I, s + 4, -aI, aI, err));
        LLT_TRY(fill(x, LLT_DTYPE_F32, w->attn_norm, H, s + 5, 0.9f, 1.1f, err));
        LLT_TRY(fill(x, LLT_DTYPE_F32, w->ffn_norm, H, s + 6, 0.9f, 1.1f, err));
    }
    llt_cuda_ctx *x0 = st->ctx[0], *xl = st->ctx[st->n_dev - 1];
    CUDA_TRY(cudaSetDevice(x0->device), err);
    if (st->embd_q) LLT_TRY(fill_q(x0, st->embd_q, seed + 7, 1.0f, err));
    else LLT_TRY(fill(x0, st->dt, st->embd, (int64_t)c->vocab_size * H, seed + 7, -1.0f, 1.0f, err));
    LLT_TRY(llt_cuda_sync(x0, err));
    CUDA_TRY(cudaSetDevice(xl->device), err);
    LLT_TRY(fill(xl, LLT_DTYPE_F32, st->out_norm, H, seed + 8, 0.9f, 1.1f, err));
    /* random models are tied (model_tied): a head on another device is a copy of the
     * embedding, so a split computes what one device does */
    LLT_CHECK(!st->embd_q || st->n_dev == 1, err, LLT_ERR_UNSUPPORTED,
              "cuda: random block weights over several devices are not supported");
    if (st->out_w != st->embd && model_tied(m))
        CUDA_TRY(cudaMemcpyPeerAsync(st->out_w, xl->device, st->embd, x0->device,
                                     (size_t)c->vocab_size * H * dt_size(st->dt), xl->stream),
                 err);
    else if (st->out_w != st->embd)
        LLT_TRY(fill(xl, st->dt, st->out_w, (int64_t)c->vocab_size * H, seed + 9, -aH, aH, err));
    for (int d = 0; d < st->n_dev; d++) LLT_TRY(llt_cuda_sync(st->ctx[d], err));
    return LLT_OK;
}

/* Bytes one decode step reads (every layer matrix as stored, the norms, the head) and the
 * largest block matrix in the compute dtype (the dequantisation scratch of the BLAS path). */
static void step_bytes(llt_model *m, cuda_state *st) {
    const llt_config *c = &m->cfg;
    wsizes s = sizes_of(c, st->dt);
    const size_t fl[4] = {s.qkv, s.wo, s.gu, s.down};
    uint64_t b = 0;
    size_t deq = 0;
    for (int32_t l = 0; l < c->n_layers; l++) {
        const cuda_layer_w *w = &st->lw[l];
        const llt_cuda_qmat *q[4] = {w->qkv_q, w->wo_q, w->gu_q, w->down_q};
        for (int j = 0; j < 4; j++) {
            wgroup g = layer_group(&m->layers[l], j);
            b += q[j] ? group_qbytes(&g) : fl[j];
            if (q[j] && (size_t)q[j]->n * q[j]->k * dt_size(st->dt) > deq) deq = (size_t)q[j]->n * q[j]->k * dt_size(st->dt);
        }
        b += 2 * (uint64_t)c->hidden_size * 4;
    }
    wgroup go = {{&m->output}, 1, 0};
    b += st->out_q ? group_qbytes(&go) : s.out;
    b += (uint64_t)c->hidden_size * 4;
    if (st->out_q && deq == 0) deq = (size_t)64 << 20; /* only the head in blocks: chunks of it */
    st->step_bytes = b, st->deq_need = deq;
}

llt_status cuda_weights_upload(llt_model *m, cuda_state *st, const uint64_t *random_seed, llt_error *err) {
    st->lw = (cuda_layer_w *)calloc((size_t)m->cfg.n_layers, sizeof *st->lw);
    st->qmats = (llt_cuda_qmat *)calloc((size_t)m->cfg.n_layers * 4 + 2, sizeof *st->qmats);
    LLT_CHECK(st->lw && st->qmats, err, LLT_ERR_NOMEM, "cuda: out of host memory");
    LLT_TRY(layout(m, st, err));
    set_dev_pointers(m, st);
    step_bytes(m, st);
    if (random_seed) return random_all(m, st, *random_seed, err);
    return upload_all(m, st, err);
}

extern "C" uint64_t llt_cuda_model_resident_bytes(const llt_model *m) {
    const cuda_state *st = m && m->backend == &llt_backend_cuda ? (const cuda_state *)m->backend_state : NULL;
    uint64_t b = 0;
    for (int d = 0; st && d < st->n_dev; d++) b += st->wbytes[d];
    return b;
}

void cuda_weights_free(cuda_state *st) {
    for (int d = 0; d < st->n_dev; d++)
        if (st->wmem[d]) cudaSetDevice(st->ctx[d]->device), cudaFree(st->wmem[d]), st->wmem[d] = NULL;
    free(st->lw);
    free(st->qmats);
    st->lw = NULL, st->qmats = NULL;
}

/* ---- rotary table -------------------------------------------------------------------------- */

/* inv_freq_i = base^(-2i/d); llama3 scaling stretches long wavelengths by `factor` and blends
 * the band between; linear scaling multiplies positions by rope_freq_scale. Double precision,
 * rounded once. */
llt_status cuda_rope_table(const llt_config *cfg, int32_t max_pos, float *cos_out, float *sin_out,
                           llt_error *err) {
    const int32_t half = cfg->head_dim / 2;
    const double two_pi = 6.283185307179586476925286766559;
    LLT_CHECK(half > 0 && cfg->rope_freq_base > 1.0f, err, LLT_ERR_INVALID_ARG,
              "cuda rope: head_dim %d, rope_freq_base %g", (int)cfg->head_dim, (double)cfg->rope_freq_base);
    bool l3 = cfg->rope_scaling == LLT_ROPE_SCALING_LLAMA3;
    double pos_scale = l3 ? 1.0 : (double)cfg->rope_freq_scale;
    double factor = cfg->rope_factor, lo = cfg->rope_low_freq_factor, hi = cfg->rope_high_freq_factor;
    double orig = cfg->rope_original_max_pos;
    if (l3)
        LLT_CHECK(factor > 0 && orig > 0 && lo > 0 && hi > lo, err, LLT_ERR_INVALID_ARG,
                  "cuda rope: llama3 scaling needs factor, original max, 0 < low < high (got %g, %g, %g, %g)",
                  factor, orig, lo, hi);
    for (int32_t i = 0; i < half; i++) {
        double f = pow((double)cfg->rope_freq_base, -2.0 * i / cfg->head_dim);
        if (l3) {
            double wavelen = two_pi / f;
            if (wavelen > orig / lo) f /= factor;
            else if (wavelen >= orig / hi) {
                double sm = (orig / wavelen - lo) / (hi - lo);
                f = (1.0 - sm) * f / factor + sm * f;
            }
        }
        for (int32_t p = 0; p < max_pos; p++) {
            double a = (double)p * pos_scale * f;
            cos_out[(size_t)p * half + i] = (float)cos(a);
            sin_out[(size_t)p * half + i] = (float)sin(a);
        }
    }
    return LLT_OK;
}

/* ---- KV pool storage on the device ---------------------------------------------------------------- */

static int layer_dev(const cuda_state *st, int32_t layer) {
    const llt_model *m = st->model;
    return m && layer >= 0 && layer < m->cfg.n_layers ? m->layers[layer].device : 0;
}

/* The context whose device holds a pool (its layer's), for copies ordered on its stream. */
static llt_cuda_ctx *pool_ctx(const cuda_state *st, const void *pool) {
    const llt_model *m = st->model;
    for (int32_t l = 0; m && m->kv && l < m->cfg.n_layers; l++)
        if (m->kv->k_pool[l] == pool || m->kv->v_pool[l] == pool) return st->ctx[layer_dev(st, l)];
    return st->ctx[0];
}

static void *st_alloc(int32_t layer, size_t bytes, void *user) {
    cuda_state *st = (cuda_state *)user;
    int d = layer_dev(st, layer);
    llt_cuda_ctx *c = st->ctx[d];
    void *p = NULL;
    if (cudaSetDevice(c->device) != cudaSuccess || cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    /* zeroed once: a page slot never written is never read, but zeros keep tools quiet */
    if (cudaMemset(p, 0, bytes) != cudaSuccess) {
        cudaFree(p);
        return NULL;
    }
    st->kvbytes[d] += bytes;
    return p;
}

static void st_release(void *pool, void *user) {
    (void)user;
    cudaPointerAttributes pa;
    if (pool && cudaPointerGetAttributes(&pa, pool) == cudaSuccess && pa.device >= 0) cudaSetDevice(pa.device);
    (void)cudaGetLastError();
    cudaFree(pool);
}

static llt_status st_copy_page(void *pool, int32_t dst, int32_t src, size_t page_bytes, void *user,
                               llt_error *err) {
    llt_cuda_ctx *c = pool_ctx((cuda_state *)user, pool);
    /* ordered on the pool's device stream: before the step that writes into the copy */
    CUDA_TRY(cudaSetDevice(c->device), err);
    CUDA_TRY(cudaMemcpyAsync((char *)pool + (size_t)dst * page_bytes, (char *)pool + (size_t)src * page_bytes,
                             page_bytes, cudaMemcpyDeviceToDevice, c->stream),
             err);
    return LLT_OK;
}

static llt_status st_upload(void *pool, size_t offset, const void *src, size_t bytes, void *user,
                            llt_error *err) {
    llt_cuda_ctx *c = pool_ctx((cuda_state *)user, pool);
    CUDA_TRY(cudaSetDevice(c->device), err);
    CUDA_TRY(cudaMemcpyAsync((char *)pool + offset, src, bytes, cudaMemcpyHostToDevice, c->stream), err);
    CUDA_TRY(cudaStreamSynchronize(c->stream), err);
    return LLT_OK;
}

void cuda_storage_init(cuda_state *st, llt_kv_storage *s) {
    memset(s, 0, sizeof *s);
    s->alloc = st_alloc;
    s->release = st_release;
    s->copy_page = st_copy_page;
    s->upload = st_upload;
    s->user = st;
}
