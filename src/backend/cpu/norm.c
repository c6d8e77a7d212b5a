/* norm.c: RMSNorm, y = x / sqrt(mean(x^2) + eps) * w.
 * The sum of squares is accumulated in double: it costs nothing next to the matmuls and keeps
 * the normalisation exact to float rounding whatever the width of the row. */
#include <math.h>

#include "backend/cpu/ops.h"
#include "base/dtype.h"

static float inv_rms(const float *x, int64_t d, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < d; i++) ss += (double)x[i] * x[i];
    return (float)(1.0 / sqrt(ss / (double)d + (double)eps));
}

void llt_rmsnorm_f32(const float *x, const float *w, float *y, int64_t n, int64_t d, float eps) {
    for (int64_t r = 0; r < n; r++) {
        float s = inv_rms(x + r * d, d, eps);
        for (int64_t i = 0; i < d; i++) y[r * d + i] = x[r * d + i] * s * w[i];
    }
}

void llt_cpu_rmsnorm_row(const float *x, const llt_weight *w, float *y, int64_t d, float eps) {
    float s = inv_rms(x, d, eps);
    if (w->dtype == LLT_DTYPE_F32) {
        const float *wf = w->data;
        for (int64_t i = 0; i < d; i++) y[i] = x[i] * s * wf[i];
        return;
    }
    const uint16_t *wh = w->data; /* F16 / BF16 norm weights */
    bool bf = w->dtype == LLT_DTYPE_BF16;
    for (int64_t i = 0; i < d; i++) y[i] = x[i] * s * (bf ? llt_bf16_to_f32(wh[i]) : llt_f16_to_f32(wh[i]));
}
