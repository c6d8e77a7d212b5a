/* matmul_kernels.h: the per-ISA row kernels behind llt_cpu_matmul (matmul.c dispatches).
 * A row kernel computes y[t * w->rows + r] = dot(row r of w, x[t * w->cols ...]) for rows
 * [r0, r1) and tokens [0, n); w is F32, F16 or BF16. Each output element must come out the
 * same whatever [r0, r1) it is computed in (results independent of the thread count). */
#ifndef LLT_BACKEND_CPU_MATMUL_KERNELS_H
#define LLT_BACKEND_CPU_MATMUL_KERNELS_H

#include "backend/cpu/ops.h"

/* From this many tokens on, the kernels use the blocked (panel) product instead of dot tiles. */
enum { LLT_MATMUL_MIN_PANEL_TOKENS = 6 };

typedef void (*llt_rows_fn)(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0, int64_t r1);

void llt_cpu_rows_avx512(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0, int64_t r1);

#endif
