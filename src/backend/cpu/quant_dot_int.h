/* quant_dot_int.h: decode products on GGML blocks (every type quant_dot.c computes on) in
 * integer arithmetic, the activations quantised to 16 bits (quant_dot_int.c); quant_dot.c
 * routes to them. */
#ifndef LLT_BACKEND_CPU_QUANT_DOT_INT_H
#define LLT_BACKEND_CPU_QUANT_DOT_INT_H

#include "backend/cpu/ops.h"
#include "base/dtype.h"

enum { QINT_MAX_TOKENS = 4 }; /* more tokens: the float path, whose block decode is shared */

/* Whether a product of n tokens over cols columns of type t runs here: the type, few tokens,
 * AVX2, and LLT_CPU_QUANT_INT not "0" (which keeps float activations everywhere). */
bool llt_cpu_qint_applies(llt_dtype t, int64_t cols, int64_t n);
/* y[t * w->rows + r] for rows [r0, r1), tokens [0, n), where llt_cpu_qint_applies; vnni: use
 * AVX-512 VNNI where the CPU has it (the same integers as the AVX2 form). */
void llt_cpu_qint_rows(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0, int64_t r1,
                       bool vnni);

#endif
