/* act.c: element-wise ops of the decode step (SwiGLU gate, residual add). */
#include <math.h>

#include "backend/cpu/ops.h"

/* SwiGLU: silu(g) * u with silu(g) = g / (1 + e^-g); the FFN's w2 input. */
void llt_cpu_swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void llt_cpu_add(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}
