/* random.c: a model of any shape with random weights (benchmarks and tests).
 * Deterministic from the seed: tensor i's values come from a generator seeded by (seed, i),
 * so the same config and seed give the same bytes whatever the machine. Matrices are
 * uniform in [-1/sqrt(cols), 1/sqrt(cols)) so activations keep their scale through the
 * layers; norm weights are 1 +- 0.1. Tensors use the GGUF names and the dtype asked for
 * (opts->dtype, else the config's dtype, else F32); a GGML block dtype (Q4_K, ...) fills the
 * matrices with random blocks (norms stay F32), so quantised kernels can be benchmarked without
 * a downloaded file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "base/quant.h"
#include "base/log.h"
#include "base/threadpool.h"
#include "model/model.h"

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

enum { FILL_BLOCK = 1 << 16 }; /* elements per independently seeded block */

/* Fills n values of dt: center + scale * uniform[-1, 1). */
static void fill_random(llt_dtype dt, void *dst, int64_t n, uint64_t seed, float center, float scale) {
    uint64_t s = mix64(seed) | 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        float v = center + scale * ((float)(s >> 40) * (1.0f / 8388608.0f) - 1.0f);
        if (dt == LLT_DTYPE_F32) ((float *)dst)[i] = v;
        else ((uint16_t *)dst)[i] = dt == LLT_DTYPE_BF16 ? llt_f32_to_bf16(v) : llt_f32_to_f16(v);
    }
}

/* Random GGML blocks of n elements (n a whole number of blocks): random quants, high bits and
 * packed sub-block scales, and f16 block scales chosen so that values span about +-scale (the
 * largest quant times the largest sub-block scale maps to scale). */
static void fill_random_blocks(llt_dtype dt, uint8_t *dst, int64_t n, uint64_t seed, float scale) {
    const llt_dtype_info *di = llt_dtype_get(dt);
    uint64_t s = mix64(seed) | 1;
    for (int64_t i = 0; i < n / di->block_elems * di->block_bytes; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        dst[i] = (uint8_t)(s >> 32);
    }
    float d = scale, dmin = 0; /* f16 fields: d at 0 (Q6_K: at 208), a second at 2 */
    int d_at = 0, m_at = -1;
    switch (dt) {
    case LLT_DTYPE_Q8_0: d = scale / 127; break;
    case LLT_DTYPE_Q4_0: d = scale / 8; break;
    case LLT_DTYPE_Q4_1: d = 2 * scale / 15, dmin = -scale, m_at = 2; break;
    case LLT_DTYPE_Q5_0: d = scale / 16; break;
    case LLT_DTYPE_Q4_K: d = 2 * scale / (63 * 15), dmin = scale / 63, m_at = 2; break;
    case LLT_DTYPE_Q5_K: d = 2 * scale / (63 * 31), dmin = scale / 63, m_at = 2; break;
    default: d = scale / (127 * 32), d_at = 208; break; /* Q6_K */
    }
    uint16_t hd = llt_f32_to_f16(d), hm = llt_f32_to_f16(dmin);
    for (int64_t b = 0; b < n / di->block_elems; b++) {
        memcpy(dst + b * di->block_bytes + d_at, &hd, 2);
        if (m_at >= 0) memcpy(dst + b * di->block_bytes + m_at, &hm, 2);
    }
}

typedef struct fill_job {
    llt_dtype dt;
    uint8_t *dst;
    int64_t n;
    uint64_t seed;
    float center, scale;
} fill_job;

/* Block b has its own seed, so the bytes do not depend on how blocks spread over threads. */
static void fill_blocks(void *ctx, int64_t begin, int64_t end, int32_t thread) {
    (void)thread;
    const fill_job *j = ctx;
    const llt_dtype_info *di = llt_dtype_get(j->dt);
    for (int64_t b = begin; b < end; b++) {
        int64_t i0 = b * FILL_BLOCK, len = j->n - i0 < FILL_BLOCK ? j->n - i0 : FILL_BLOCK;
        uint8_t *at = j->dst + (size_t)(i0 / di->block_elems) * di->block_bytes; /* FILL_BLOCK: whole blocks */
        if (llt_dtype_is_block(j->dt)) fill_random_blocks(j->dt, at, len, j->seed ^ mix64((uint64_t)b), j->scale);
        else fill_random(j->dt, at, len, j->seed ^ mix64((uint64_t)b), j->center, j->scale);
    }
}

static llt_status add_random(llt_model *m, llt_threadpool *pool, const char *name, int64_t rows,
                             int64_t cols, llt_dtype dt, uint64_t seed, llt_error *err) {
    int64_t shape[2] = {rows, cols};
    bool vec = rows == 1;
    if (vec && llt_dtype_is_block(dt)) dt = LLT_DTYPE_F32; /* norms stay float, as in quantised files */
    if (llt_dtype_is_block(dt) && cols % llt_dtype_get(dt)->block_elems) /* as llama-quantize falls back */
        dt = cols % 32 == 0 ? LLT_DTYPE_Q8_0 : LLT_DTYPE_F16;
    uint64_t nbytes = 0;
    LLT_CHECK(llt_dtype_nbytes(dt, (uint64_t)(rows * cols), &nbytes), err, LLT_ERR_INVALID_ARG,
              "random model: '%s' [%lld, %lld] is not a whole number of %s blocks", name, (long long)rows,
              (long long)cols, llt_dtype_name(dt));
    size_t bytes = (size_t)nbytes;
    void *d = malloc(bytes);
    LLT_CHECK(d, err, LLT_ERR_NOMEM, "random model: out of memory for '%s' (%zu bytes)", name, bytes);
    float scale = vec ? 0.1f : 1.0f / sqrtf((float)cols);
    fill_job job = {dt, d, rows * cols, seed ^ mix64((uint64_t)m->tensors.n + 1), vec ? 1.0f : 0.0f, scale};
    llt_pool_for(pool, (job.n + FILL_BLOCK - 1) / FILL_BLOCK, fill_blocks, &job);
    llt_status s = llt_tensors_add(&m->tensors, name, strlen(name), dt, vec ? 1 : 2, vec ? shape + 1 : shape,
                                   d, bytes, true, err);
    if (s != LLT_OK) free(d);
    return s;
}

static llt_status add_all(llt_model *m, llt_threadpool *p, llt_dtype dt, uint64_t seed, llt_error *err) {
    const llt_config *c = &m->cfg;
    const int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    const int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t shapes[9][2] = {{1, H}, {qd, H}, {kvd, H}, {kvd, H}, {H, qd},
                                  {1, H}, {I, H},  {I, H},   {H, I}};
    LLT_TRY(add_random(m, p, llt_weights_global_name(LLT_NAMES_GGUF, 0), V, H, dt, seed, err));
    LLT_TRY(add_random(m, p, llt_weights_global_name(LLT_NAMES_GGUF, 1), 1, H, dt, seed, err));
    if (!c->tie_weights) LLT_TRY(add_random(m, p, llt_weights_global_name(LLT_NAMES_GGUF, 2), V, H, dt, seed, err));
    char name[128];
    for (int32_t l = 0; l < c->n_layers; l++)
        for (int f = 0; f < 9; f++)
            LLT_TRY(add_random(m, p, llt_weights_layer_name(LLT_NAMES_GGUF, f, l, name, sizeof name),
                               shapes[f][0], shapes[f][1], dt, seed, err));
    return LLT_OK;
}

static llt_dtype pick_dtype(const llt_config *cfg, const llt_load_opts *o) {
    llt_dtype d = o && o->dtype != LLT_DTYPE_COUNT ? o->dtype : cfg->dtype;
    return d == LLT_DTYPE_F16 || d == LLT_DTYPE_BF16 || llt_dtype_is_block(d) ? d : LLT_DTYPE_F32;
}

llt_status llt_model_random(const llt_config *cfg, uint64_t seed, const llt_load_opts *opts,
                            llt_model **out, llt_error *err) {
    LLT_CHECK(cfg && out, err, LLT_ERR_INVALID_ARG, "llt_model_random: NULL config or output");
    *out = NULL;
    LLT_TRY(llt_config_validate(cfg, err));
    llt_model *m = calloc(1, sizeof *m);
    LLT_CHECK(m, err, LLT_ERR_NOMEM, "llt_model_random: out of memory");
    llt_tensors_init(&m->tensors);
    m->cfg = *cfg;
    m->cfg.dtype = pick_dtype(cfg, opts);
    snprintf(m->path, sizeof m->path, "random:%llu", (unsigned long long)seed);
    double t0 = llt_time_now();
    llt_threadpool *pool = NULL;
    llt_status s = llt_pool_create(opts ? opts->n_threads : 0, &pool, err);
    if (s == LLT_OK) s = add_all(m, pool, m->cfg.dtype, seed, err);
    llt_pool_free(pool);
    if (s == LLT_OK) s = llt_model_finish(m, LLT_NAMES_GGUF, opts, err);
    if (s != LLT_OK) {
        llt_model_free(m);
        return s;
    }
    LLT_INFO("random model (%s, seed %llu) built in %.2f s on %s: %s", llt_dtype_name(m->cfg.dtype),
             (unsigned long long)seed, llt_time_now() - t0, m->device, m->device_why);
    *out = m;
    return LLT_OK;
}
