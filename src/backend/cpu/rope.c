/* rope.c: rotary position embeddings in the adjacent-pair layout.
 * Pair i of a head is (2i, 2i+1), rotated by the angle pos * inv_freq_i with
 * inv_freq_i = base^(-2i/d). Angles are computed in double and rounded once, so tables are
 * exact to float precision even at positions in the hundreds of thousands. */
#include <math.h>

#include "backend/cpu/ops.h"

enum { MAX_HALF = 1024 }; /* head_dim up to 2048 */
static const double k_two_pi = 6.283185307179586476925286766559;

static llt_status check_dims(float base, int32_t dim, llt_error *err) {
    LLT_CHECK(dim > 0 && dim % 2 == 0 && dim / 2 <= MAX_HALF, err, LLT_ERR_INVALID_ARG,
              "rotary table: head_dim must be even, in [2, %d], got %d", 2 * MAX_HALF, (int)dim);
    LLT_CHECK(base > 1.0f && isfinite(base), err, LLT_ERR_INVALID_ARG,
              "rotary table: rope_freq_base must be > 1, got %g", (double)base);
    return LLT_OK;
}

static llt_status check_table_args(float base, int32_t dim, int32_t max_pos, const float *s,
                                   const float *c, llt_error *err) {
    LLT_TRY(check_dims(base, dim, err));
    LLT_CHECK(max_pos > 0, err, LLT_ERR_INVALID_ARG, "rotary table: max_pos must be positive, got %d",
              (int)max_pos);
    LLT_CHECK(s && c, err, LLT_ERR_INVALID_ARG, "rotary table: NULL output buffer");
    return LLT_OK;
}

static void fill_table(const double *inv_freq, double pos_scale, int32_t dim, int32_t max_pos,
                       float *sin_out, float *cos_out) {
    int32_t half = dim / 2;
    for (int32_t p = 0; p < max_pos; p++)
        for (int32_t i = 0; i < half; i++) {
            double a = (double)p * pos_scale * inv_freq[i];
            sin_out[(int64_t)p * half + i] = (float)sin(a);
            cos_out[(int64_t)p * half + i] = (float)cos(a);
        }
}

llt_status llt_rotary_build(float base, int32_t dim, int32_t max_pos, float *sin_out,
                            float *cos_out, llt_error *err) {
    LLT_TRY(check_table_args(base, dim, max_pos, sin_out, cos_out, err));
    double inv_freq[MAX_HALF];
    for (int32_t i = 0; i < dim / 2; i++) inv_freq[i] = pow((double)base, -2.0 * i / dim);
    fill_table(inv_freq, 1.0, dim, max_pos, sin_out, cos_out);
    return LLT_OK;
}

/* Llama 3 scaling: wavelengths longer than original_max / low_freq_factor are stretched by
 * `factor`, shorter than original_max / high_freq_factor are kept, the band between is a
 * linear blend in (original_max / wavelength). */
static llt_status llama3_scale(const llt_config *cfg, double *inv_freq, int32_t half, llt_error *err) {
    double factor = cfg->rope_factor, lo = cfg->rope_low_freq_factor, hi = cfg->rope_high_freq_factor;
    double orig = cfg->rope_original_max_pos;
    LLT_CHECK(factor > 0 && orig > 0 && lo > 0 && hi > lo, err, LLT_ERR_INVALID_ARG,
              "rope_scaling llama3: need factor > 0, original_max_position_embeddings > 0 and "
              "0 < low_freq_factor < high_freq_factor, got factor %g, original %g, low %g, high %g",
              factor, orig, lo, hi);
    double lo_wavelen = orig / lo, hi_wavelen = orig / hi;
    for (int32_t i = 0; i < half; i++) {
        double wavelen = k_two_pi / inv_freq[i];
        if (wavelen < hi_wavelen) continue;
        if (wavelen > lo_wavelen) {
            inv_freq[i] /= factor;
            continue;
        }
        double smooth = (orig / wavelen - lo) / (hi - lo);
        inv_freq[i] = (1.0 - smooth) * inv_freq[i] / factor + smooth * inv_freq[i];
    }
    return LLT_OK;
}

llt_status llt_rotary_inv_freq(const llt_config *cfg, double *inv_freq, llt_error *err) {
    int32_t dim = cfg->head_dim;
    LLT_TRY(check_dims(cfg->rope_freq_base, dim, err));
    for (int32_t i = 0; i < dim / 2; i++) inv_freq[i] = pow((double)cfg->rope_freq_base, -2.0 * i / dim);
    if (cfg->rope_scaling == LLT_ROPE_SCALING_LLAMA3) LLT_TRY(llama3_scale(cfg, inv_freq, dim / 2, err));
    return LLT_OK;
}

llt_status llt_rotary_build_cfg(const llt_config *cfg, int32_t max_pos, float *sin_out,
                                float *cos_out, llt_error *err) {
    LLT_TRY(check_table_args(cfg->rope_freq_base, cfg->head_dim, max_pos, sin_out, cos_out, err));
    double inv_freq[MAX_HALF];
    LLT_TRY(llt_rotary_inv_freq(cfg, inv_freq, err));
    /* Linear scaling (rope_freq_scale = 1 / factor) compresses positions; llama3 does not use it. */
    double pos_scale = cfg->rope_scaling == LLT_ROPE_SCALING_LLAMA3 ? 1.0 : (double)cfg->rope_freq_scale;
    LLT_CHECK(pos_scale > 0 && isfinite(pos_scale), err, LLT_ERR_INVALID_ARG,
              "rotary table: rope_freq_scale must be positive, got %g", pos_scale);
    fill_table(inv_freq, pos_scale, cfg->head_dim, max_pos, sin_out, cos_out);
    return LLT_OK;
}

void llt_rotary_apply(float *t, int32_t n_heads, int32_t head_dim, const float *sin_cache,
                      const float *cos_cache, int32_t pos) {
    llt_rotary_apply_cols(t, 0, (int64_t)n_heads * head_dim, head_dim, sin_cache, cos_cache, pos);
}

void llt_rotary_apply_cols(float *t, int64_t c0, int64_t c1, int32_t head_dim, const float *sin_cache,
                           const float *cos_cache, int32_t pos) {
    int32_t half = head_dim / 2;
    const float *s = sin_cache + (int64_t)pos * half, *c = cos_cache + (int64_t)pos * half;
    for (int64_t f = c0; f + 1 < c1; f += 2) {
        int32_t i = (int32_t)(f % head_dim) / 2;
        float x0 = t[f], x1 = t[f + 1];
        t[f] = x0 * c[i] - x1 * s[i];
        t[f + 1] = x0 * s[i] + x1 * c[i];
    }
}
