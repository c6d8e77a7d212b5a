/* random.c: a model of any shape with random weights (benchmarks and tests).
 * Deterministic from the seed: tensor i's values come from a generator seeded by (seed, i),
 * so the same config and seed give the same bytes whatever the machine. Matrices are
 * uniform in [-1/sqrt(cols), 1/sqrt(cols)) so activations keep their scale through the
 * layers; norm weights are 1 +- 0.1. Tensors use the GGUF names and the dtype asked for
 * (opts->dtype, else the config's dtype, else F32). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
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
    size_t es = llt_dtype_get(j->dt)->block_bytes;
    for (int64_t b = begin; b < end; b++) {
        int64_t i0 = b * FILL_BLOCK, len = j->n - i0 < FILL_BLOCK ? j->n - i0 : FILL_BLOCK;
        fill_random(j->dt, j->dst + (size_t)i0 * es, len, j->seed ^ mix64((uint64_t)b), j->center, j->scale);
    }
}

static llt_status add_random(llt_model *m, llt_threadpool *pool, const char *name, int64_t rows,
                             int64_t cols, llt_dtype dt, uint64_t seed, llt_error *err) {
    int64_t shape[2] = {rows, cols};
    bool vec = rows == 1;
    size_t bytes = (size_t)(rows * cols) * llt_dtype_get(dt)->block_bytes;
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
    return d == LLT_DTYPE_F16 || d == LLT_DTYPE_BF16 ? d : LLT_DTYPE_F32;
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
