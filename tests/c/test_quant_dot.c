/* test_quant_dot.c: the CPU block kernels (backend/cpu/quant_dot.c), every variant the CPU has
 * (scalar, AVX2, AVX-512), against a float64 dot product of the same rows decoded by the
 * reference decoders (base/quant.c, themselves pinned to llama.cpp's gguf-py by
 * test_quant_blocks.py and test_quant_models.c). Random blocks: random quants, high bits and
 * packed scales, f16 scales drawn from a sane range; row counts and token counts that are not
 * multiples of the kernels' tiles. Tolerance: 1e-5 of sum |w| |x| (float32 accumulation).
 * Decode products (at most QINT_MAX_TOKENS tokens) quantise x to 16 bits
 * per 32 elements (quant_dot_int.c): those are held to 1e-5 against x as quantised (the integer
 * arithmetic is exact), and to the quantisation's own bound against x itself. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/quant_dot.h"
#include "backend/cpu/quant_dot_int.h"
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

/* x as quant_dot_int.c sees it: per 32 elements d = max|x| / 32767, q = round-to-even(x 32767 / max);
 * xh = d q, and dh[block] = d. */
static void quantize_like_x8(const float *x, int64_t len, float *xh, float *dh) {
    for (int64_t b = 0; b < len / 32; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fabsf(x[32 * b + i]) > amax ? fabsf(x[32 * b + i]) : amax;
        float d = amax / 32767.0f, id = amax > 0 ? 32767.0f / amax : 0.0f;
        for (int i = 0; i < 32; i++) xh[32 * b + i] = d * nearbyintf(x[32 * b + i] * id);
        dh[b] = d;
    }
}

/* float64 reference of y = W x: want, sum |w x| (mag), and sum |w| d/2 (the bound of x's
 * 16-bit rounding) when dh is given. */
static void reference(const float *wf, const float *x, const float *dh, int64_t rows, int64_t cols, int64_t n,
                      double *want, double *mag, double *qerr) {
    for (int64_t tk = 0; tk < n; tk++)
        for (int64_t r = 0; r < rows; r++) {
            double s = 0, a = 0, q = 0;
            for (int64_t c = 0; c < cols; c++) {
                double wv = wf[r * cols + c];
                s += wv * x[tk * cols + c];
                a += fabs(wv * x[tk * cols + c]);
                if (dh) q += fabs(wv) * dh[(tk * cols + c) / 32] / 2;
            }
            want[tk * rows + r] = s, mag[tk * rows + r] = a;
            if (qerr) qerr[tk * rows + r] = q;
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
    reference(wf, x, NULL, rows, cols, n, want, mag, NULL);
    /* the same against x rounded to 8 bits, for the decode kernels that do that */
    float *xh = malloc((size_t)(n * cols) * 4), *dh = malloc((size_t)(n * cols / 32 + 1) * 4);
    double *want8 = malloc((size_t)(n * rows) * 8), *mag8 = malloc((size_t)(n * rows) * 8);
    double *qerr = malloc((size_t)(n * rows) * 8);
    for (int64_t tk = 0; tk < n; tk++) quantize_like_x8(x + tk * cols, cols, xh + tk * cols, dh + tk * cols / 32);
    reference(wf, xh, dh, rows, cols, n, want8, mag8, qerr);
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
        bool x8 = v > 0 && llt_cpu_qint_applies(t, cols, n);
        double worst = 0, worst_bound = 0;
        for (int64_t i = 0; i < n * rows; i++) {
            double d = x8 ? fabs(y[i] - want8[i]) / (mag8[i] + 1e-30) : fabs(y[i] - want[i]) / (mag[i] + 1e-30);
            worst = d > worst || d != d ? d : worst;
            if (x8) { /* against x itself: within the rounding bound (+ float32 accumulation) */
                double b = fabs(y[i] - want[i]) / (qerr[i] + 1e-5 * mag[i] + 1e-30);
                worst_bound = b > worst_bound || b != b ? b : worst_bound;
            }
        }
        CHECK_MSG(worst <= 1e-5, "%s %s%s rows %lld cols %lld tokens %lld: error %.3g of sum|w||x|",
                  llt_dtype_name(t), names[v], x8 ? " (16-bit x)" : "", (long long)rows, (long long)cols,
                  (long long)n, worst);
        CHECK_MSG(worst_bound <= 1.0, "%s %s 16-bit x: error %.3g of its bound", llt_dtype_name(t), names[v],
                  worst_bound);
    }
    free(wq), free(wf), free(x), free(y), free(want), free(mag);
    free(xh), free(dh), free(want8), free(mag8), free(qerr);
}

static void test_kernels_match_reference(void) {
    static const llt_dtype types[] = {LLT_DTYPE_Q8_0, LLT_DTYPE_Q4_0, LLT_DTYPE_Q4_1, LLT_DTYPE_Q5_0,
                                      LLT_DTYPE_Q4_K, LLT_DTYPE_Q5_K, LLT_DTYPE_Q6_K};
    static const int64_t tokens[] = {1, 2, 3, 4, 17, 40};
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
