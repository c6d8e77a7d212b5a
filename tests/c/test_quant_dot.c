/* test_quant_dot.c: the CPU block kernels (backend/cpu/quant_dot.c), every variant the CPU has
 * (scalar, AVX2, AVX-512), against a float64 dot product of the same rows decoded by the
 * reference decoders (base/quant.c, themselves pinned to llama.cpp's gguf-py by
 * test_quant_blocks.py and test_quant_models.c). Random blocks: random quants, high bits and
 * packed scales, f16 scales drawn from a sane range; row counts and token counts that are not
 * multiples of the kernels' tiles. Tolerance: 1e-5 of sum |w| |x| (float32 accumulation). */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/quant_dot.h"
#include "base/dtype.h"
#include "base/quant.h"
#include "testlib.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float next_unit(void) { return (float)(next_u32() % 20001) / 10000.0f - 1.0f; }

/* Random bytes, then every f16 scale field overwritten with a finite value in [-0.1, 0.1]
 * (random bits would make infinities and NaNs, which no quantiser writes). */
static void fill_blocks(llt_dtype t, uint8_t *p, int64_t n_blocks) {
    const llt_dtype_info *di = llt_dtype_get(t);
    for (int64_t i = 0; i < n_blocks * di->block_bytes; i++) p[i] = (uint8_t)next_u32();
    int f16_at[2] = {0, -1};
    if (t == LLT_DTYPE_Q4_1 || t == LLT_DTYPE_Q4_K || t == LLT_DTYPE_Q5_K) f16_at[1] = 2;
    if (t == LLT_DTYPE_Q6_K) f16_at[0] = 208;
    for (int64_t b = 0; b < n_blocks; b++)
        for (int k = 0; k < 2; k++)
            if (f16_at[k] >= 0) {
                uint16_t h = llt_f32_to_f16(0.1f * next_unit());
                memcpy(p + b * di->block_bytes + f16_at[k], &h, 2);
            }
}

static void check_type(llt_dtype t, int64_t rows, int64_t cols, int64_t n) {
    const llt_dtype_info *di = llt_dtype_get(t);
    int64_t nb = rows * cols / di->block_elems;
    uint8_t *wq = malloc((size_t)(nb * di->block_bytes));
    float *wf = malloc((size_t)(rows * cols) * 4), *x = malloc((size_t)(n * cols) * 4);
    float *y = malloc((size_t)(n * rows) * 4);
    double *want = malloc((size_t)(n * rows) * 8), *mag = malloc((size_t)(n * rows) * 8);
    fill_blocks(t, wq, nb);
    for (int64_t i = 0; i < n * cols; i++) x[i] = next_unit();
    llt_error e;
    CHECK_OK(llt_dequantize(t, wq, wf, rows * cols, &e), &e);
    for (int64_t tk = 0; tk < n; tk++)
        for (int64_t r = 0; r < rows; r++) {
            double s = 0, a = 0;
            for (int64_t c = 0; c < cols; c++) {
                s += (double)wf[r * cols + c] * x[tk * cols + c];
                a += fabs((double)wf[r * cols + c] * x[tk * cols + c]);
            }
            want[tk * rows + r] = s, mag[tk * rows + r] = a;
        }
    llt_weight w = {.dtype = t, .rows = rows, .cols = cols, .data = wq};
    static const llt_quant_isa isas[] = {LLT_QUANT_ISA_SCALAR, LLT_QUANT_ISA_AVX2, LLT_QUANT_ISA_AVX512};
    static const char *const names[] = {"scalar", "avx2", "avx512"};
    for (int v = 0; v < 3; v++) {
        llt_quant_isa isa = llt_cpu_quant_isa(isas[v]);
        if (isa != isas[v]) continue; /* this CPU lacks it: the resolved variant runs under its own name */
        memset(y, 0xff, (size_t)(n * rows) * 4);
        /* two calls over split row ranges, as the thread pool does */
        llt_cpu_quant_rows(&w, x, n, y, 0, rows / 2, isa);
        llt_cpu_quant_rows(&w, x, n, y, rows / 2, rows, isa);
        double worst = 0;
        for (int64_t i = 0; i < n * rows; i++) {
            double d = fabs(y[i] - want[i]) / (mag[i] + 1e-30);
            worst = d > worst || d != d ? d : worst;
        }
        CHECK_MSG(worst <= 1e-5, "%s %s rows %lld cols %lld tokens %lld: error %.3g of sum|w||x|",
                  llt_dtype_name(t), names[v], (long long)rows, (long long)cols, (long long)n, worst);
    }
    free(wq), free(wf), free(x), free(y), free(want), free(mag);
}

static void test_kernels_match_reference(void) {
    static const llt_dtype types[] = {LLT_DTYPE_Q8_0, LLT_DTYPE_Q4_0, LLT_DTYPE_Q4_1, LLT_DTYPE_Q5_0,
                                      LLT_DTYPE_Q4_K, LLT_DTYPE_Q5_K, LLT_DTYPE_Q6_K};
    static const int64_t tokens[] = {1, 2, 17, 40};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        for (size_t k = 0; k < sizeof tokens / sizeof tokens[0]; k++) check_type(types[i], 7, 512, tokens[k]);
    fprintf(stderr, "  variants on this CPU: scalar%s%s\n",
            llt_cpu_quant_isa(LLT_QUANT_ISA_AVX2) == LLT_QUANT_ISA_AVX2 ? ", avx2" : "",
            llt_cpu_quant_isa(LLT_QUANT_ISA_AVX512) == LLT_QUANT_ISA_AVX512 ? ", avx512" : "");
}

int main(void) {
    RUN(test_kernels_match_reference);
    return tl_done("test_quant_dot");
}
