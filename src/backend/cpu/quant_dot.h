/* quant_dot.h: CPU matrix products on GGML-block weights kept as stored (quant_dot.c). */
#ifndef LLT_BACKEND_CPU_QUANT_DOT_H
#define LLT_BACKEND_CPU_QUANT_DOT_H

#include "backend/cpu/ops.h"

/* Kernel variants; AUTO = the widest the CPU has. An explicit variant the CPU lacks falls back
 * to the next narrower one (AVX512 -> AVX2 -> scalar). */
typedef enum llt_quant_isa {
    LLT_QUANT_ISA_AUTO = 0,
    LLT_QUANT_ISA_SCALAR,
    LLT_QUANT_ISA_AVX2,
    LLT_QUANT_ISA_AVX512
} llt_quant_isa;

/* Block types these kernels compute with (the rest are dequantised when bound). */
bool llt_cpu_quant_supported(llt_dtype t);
/* The variant `want` resolves to on this CPU. */
llt_quant_isa llt_cpu_quant_isa(llt_quant_isa want);

/* y[t * w->rows + r] = dot(row r of w, x[t * w->cols ...]) for rows [r0, r1), tokens [0, n);
 * w->dtype must be supported, w->cols a whole number of blocks; isa already resolved. */
void llt_cpu_quant_rows(const llt_weight *w, const float *x, int64_t n, float *y, int64_t r0, int64_t r1,
                        llt_quant_isa isa);

#endif
