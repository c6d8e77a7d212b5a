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

/* dst rows (first + r * step) <- w's rows, converted to dd. */
static llt_status up_rows(uploader *u, const llt_weight *w, void *dst, llt_dtype dd, int64_t first,
                          int64_t step, const char *what, llt_error *err) {
    LLT_CHECK(w->data, err, LLT_ERR_INVALID_ARG, "cuda upload: %s has no host data", what);
    LLT_CHECK(w->dtype == LLT_DTYPE_F32 || w->dtype == LLT_DTYPE_F16 || w->dtype == LLT_DTYPE_BF16,
              err, LLT_ERR_UNSUPPORTED, "cuda upload: %s has dtype %s (expected f32, f16 or bf16)",
              what, llt_dtype_name(w->dtype));
    size_t row_bytes = (size_t)w->cols * dt_size(w->dtype);
    LLT_CHECK(row_bytes <= STAGE_BYTES, err, LLT_ERR_UNSUPPORTED, "cuda upload: %s rows of %zu bytes",
              what, row_bytes);
    int64_t per = (int64_t)(STAGE_BYTES / row_bytes);
    for (int64_t r0 = 0; r0 < w->rows; r0 += per) {
        int64_t n = w->rows - r0 < per ? w->rows - r0 : per;
        int b = u->cur;
        CUDA_TRY(cudaEventSynchronize(u->ev[b]), err);
        memcpy(u->pin[b], (const char *)w->data + (size_t)r0 * row_bytes, (size_t)n * row_bytes);
        CUDA_TRY(cudaMemcpyAsync(u->stage[b], u->pin[b], (size_t)n * row_bytes, cudaMemcpyHostToDevice,
                                 u->c->stream),
                 err);
        LLT_TRY(llt_cuda_convert_rows(u->c, w->dtype, u->stage[b], dd, dst, n, w->cols, first + r0 * step,
                                      step, err));
        CUDA_TRY(cudaEventRecord(u->ev[b], u->c->stream), err);
        u->cur ^= 1;
        u->done += (uint64_t)n * row_bytes;
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

/* Bump-allocates every region inside one allocation per device. */
static llt_status layout(llt_model *m, cuda_state *st, llt_error *err) {
    const llt_config *c = &m->cfg;
    wsizes s = sizes_of(c, st->dt);
    size_t need[LLT_MAX_DEVICES] = {0};
    int last = st->n_dev - 1; /* the head's device, even when it holds no layer */
    for (int32_t l = 0; l < c->n_layers; l++)
        need[m->layers[l].device] += s.qkv + s.wo + s.gu + s.down + 2 * s.norm;
    need[0] += s.embd;
    need[last] += s.out_norm + (model_tied(m) && last == 0 ? 0 : s.out);
    for (int d = 0; d < st->n_dev; d++) {
        LLT_TRY(llt_cuda_alloc(st->ctx[d], need[d], &st->wmem[d], err));
        st->wbytes[d] = need[d];
    }
    char *at[LLT_MAX_DEVICES];
    for (int d = 0; d < st->n_dev; d++) at[d] = (char *)st->wmem[d];
    for (int32_t l = 0; l < c->n_layers; l++) {
        int d = m->layers[l].device;
        cuda_layer_w *w = &st->lw[l];
        w->qkv = at[d], at[d] += s.qkv;
        w->wo = at[d], at[d] += s.wo;
        w->gu = at[d], at[d] += s.gu;
        w->down = at[d], at[d] += s.down;
        w->attn_norm = (float *)at[d], at[d] += s.norm;
        w->ffn_norm = (float *)at[d], at[d] += s.norm;
    }
    st->embd = at[0], at[0] += s.embd;
    st->out_norm = (float *)at[last], at[last] += s.out_norm;
    if (model_tied(m) && last == 0) st->out_w = st->embd;
    else st->out_w = at[last], at[last] += s.out;
    return LLT_OK;
}

/* llt_weight.dev: where each weight went (documented in model.cuh). */
static void set_dev_pointers(llt_model *m, cuda_state *st) {
    size_t es = dt_size(st->dt), H = (size_t)m->cfg.hidden_size;
    size_t qr = (size_t)m->cfg.n_heads * m->cfg.head_dim, kvr = (size_t)m->cfg.n_kv_heads * m->cfg.head_dim;
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        llt_layer *L = &m->layers[l];
        cuda_layer_w *w = &st->lw[l];
        L->wq.dev = w->qkv;
        L->wk.dev = (char *)w->qkv + qr * H * es;
        L->wv.dev = (char *)w->qkv + (qr + kvr) * H * es;
        L->wo.dev = w->wo, L->w_gate.dev = w->gu, L->w_up.dev = w->gu, L->w_down.dev = w->down;
        L->attn_norm.dev = w->attn_norm, L->ffn_norm.dev = w->ffn_norm;
    }
    m->tok_embd.dev = st->embd, m->output.dev = st->out_w, m->out_norm.dev = st->out_norm;
}

/* ---- filling ------------------------------------------------------------------------------ */

static llt_status upload_layer(uploader *u, const llt_model *m, int32_t l, cuda_layer_w *w, llt_dtype dt,
                               llt_error *err) {
    const llt_layer *L = &m->layers[l];
    const llt_config *c = &m->cfg;
    int64_t qr = (int64_t)c->n_heads * c->head_dim, kvr = (int64_t)c->n_kv_heads * c->head_dim;
    LLT_TRY(up_rows(u, &L->wq, w->qkv, dt, 0, 1, "wq", err));
    LLT_TRY(up_rows(u, &L->wk, w->qkv, dt, qr, 1, "wk", err));
    LLT_TRY(up_rows(u, &L->wv, w->qkv, dt, qr + kvr, 1, "wv", err));
    LLT_TRY(up_rows(u, &L->wo, w->wo, dt, 0, 1, "wo", err));
    LLT_TRY(up_rows(u, &L->w_gate, w->gu, dt, 0, 2, "w_gate", err));
    LLT_TRY(up_rows(u, &L->w_up, w->gu, dt, 1, 2, "w_up", err));
    LLT_TRY(up_rows(u, &L->w_down, w->down, dt, 0, 1, "w_down", err));
    LLT_TRY(up_rows(u, &L->attn_norm, w->attn_norm, LLT_DTYPE_F32, 0, 1, "attn_norm", err));
    return up_rows(u, &L->ffn_norm, w->ffn_norm, LLT_DTYPE_F32, 0, 1, "ffn_norm", err);
}

static uint64_t host_bytes(const llt_weight *w) {
    return (uint64_t)w->rows * (uint64_t)w->cols * dt_size(w->dtype);
}

/* Device d's share: its layers, the embedding (first), the final norm and head (last). */
static llt_status upload_dev(uploader *u, llt_model *m, cuda_state *st, int d, llt_error *err) {
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        if (m->layers[l].device != d) continue;
        llt_status s = upload_layer(u, m, l, &st->lw[l], st->dt, err);
        if (s != LLT_OK) return llt_err_wrap(err, s, "layer %d: ", (int)l);
    }
    if (d == 0) LLT_TRY(up_rows(u, &m->tok_embd, st->embd, st->dt, 0, 1, "tok_embd", err));
    if (d != st->n_dev - 1) return LLT_OK;
    LLT_TRY(up_rows(u, &m->out_norm, st->out_norm, LLT_DTYPE_F32, 0, 1, "out_norm", err));
    if (st->out_w != st->embd) LLT_TRY(up_rows(u, &m->output, st->out_w, st->dt, 0, 1, "output", err));
    return LLT_OK;
}

static llt_status upload_all(llt_model *m, cuda_state *st, llt_error *err) {
    uint64_t total = host_bytes(&m->tok_embd) + host_bytes(&m->out_norm);
    if (st->out_w != st->embd) total += host_bytes(&m->output);
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
        LLT_TRY(fill(x, st->dt, w->qkv, (qr + 2 * kvr) * H, s + 1, -aH, aH, err));
        LLT_TRY(fill(x, st->dt, w->wo, H * qr, s + 2, -aQ, aQ, err));
        LLT_TRY(fill(x, st->dt, w->gu, 2 * I * H, s + 3, -aH, aH, err));
        LLT_TRY(fill(x, st->dt, w->down, H * I, s + 4, -aI, aI, err));
        LLT_TRY(fill(x, LLT_DTYPE_F32, w->attn_norm, H, s + 5, 0.9f, 1.1f, err));
        LLT_TRY(fill(x, LLT_DTYPE_F32, w->ffn_norm, H, s + 6, 0.9f, 1.1f, err));
    }
    llt_cuda_ctx *x0 = st->ctx[0], *xl = st->ctx[st->n_dev - 1];
    CUDA_TRY(cudaSetDevice(x0->device), err);
    LLT_TRY(fill(x0, st->dt, st->embd, (int64_t)c->vocab_size * H, seed + 7, -1.0f, 1.0f, err));
    LLT_TRY(llt_cuda_sync(x0, err));
    CUDA_TRY(cudaSetDevice(xl->device), err);
    LLT_TRY(fill(xl, LLT_DTYPE_F32, st->out_norm, H, seed + 8, 0.9f, 1.1f, err));
    /* random models are tied (model_tied): a head on another device is a copy of the
     * embedding, so a split computes what one device does */
    if (st->out_w != st->embd && model_tied(m))
        CUDA_TRY(cudaMemcpyPeerAsync(st->out_w, xl->device, st->embd, x0->device,
                                     (size_t)c->vocab_size * H * dt_size(st->dt), xl->stream),
                 err);
    else if (st->out_w != st->embd)
        LLT_TRY(fill(xl, st->dt, st->out_w, (int64_t)c->vocab_size * H, seed + 9, -aH, aH, err));
    for (int d = 0; d < st->n_dev; d++) LLT_TRY(llt_cuda_sync(st->ctx[d], err));
    return LLT_OK;
}

llt_status cuda_weights_upload(llt_model *m, cuda_state *st, const uint64_t *random_seed, llt_error *err) {
    st->lw = (cuda_layer_w *)calloc((size_t)m->cfg.n_layers, sizeof *st->lw);
    LLT_CHECK(st->lw, err, LLT_ERR_NOMEM, "cuda: out of host memory");
    LLT_TRY(layout(m, st, err));
    set_dev_pointers(m, st);
    if (random_seed) return random_all(m, st, *random_seed, err);
    return upload_all(m, st, err);
}

void cuda_weights_free(cuda_state *st) {
    for (int d = 0; d < st->n_dev; d++)
        if (st->wmem[d]) cudaSetDevice(st->ctx[d]->device), cudaFree(st->wmem[d]), st->wmem[d] = NULL;
    free(st->lw);
    st->lw = NULL;
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
