/* test_cuda_quant: the CUDA kernels on GGML-block weights (backend/cuda/quant.cu).
 *  1. ops: for every block type, random blocks on the device; the block GEMV (m = 1: plain
 *     store, residual add, RMSNorm prologue, SwiGLU over interleaved gate/up segments of two
 *     different types) and the dequantise + cuBLASLt path (m = 2, 4, 8) against the CPU block
 *     kernel (backend/cpu/quant_dot.c, itself pinned to llama.cpp's gguf-py by
 *     test_quant_models) on the same blocks and the same f16-rounded inputs; stacked segments
 *     of two types; one-type matrices take the streamed GEMV (LLT_CUDA_QTMA=0: the register
 *     GEMV), mixed ones the register GEMV. Bound: 2e-3 of sum |w| |x| for the GEMV (x held as two int8 parts per
 *     group of 16: at most 1/64516 of the group's largest |x| per element; float32
 *     accumulation), 4e-3 for the BLAS path (weights rounded to f16 once: 2^-11 each);
 *  2. models: each llama-quantize'd fixture file on the GPU against gguf-py's float64 logits
 *     (2e-2 of the largest logit, top-1 equal where the reference's gap exceeds that), with
 *     its weights resident in blocks at most 1.05x the file's tensor bytes.
 * Outputs are poisoned (NaN) before each run. Exits 77 without a CUDA build or device. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testlib.h"

#ifndef LLT_HAVE_CUDA
int main(void) {
    printf("SKIPPED: no CUDA device (this build has no CUDA backend)\n");
    return 77;
}
#else

#include "backend/cpu/quant_dot.h"
#include "backend/cuda/cuda_backend.h"
#include "base/dtype.h"
#include "base/quant.h"
#include "formats/safetensors.h"
#include "model/model.h"

static llt_cuda_ctx *g_ctx;
static uint64_t g_rng = 0x5eed5eedull;
static uint32_t next_u32(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static float frand(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() % 1000001) / 1e6f; }
static float round_f16(float v) { return llt_f16_to_f32(llt_f32_to_f16(v)); }

static void *dev_alloc(size_t bytes) {
    void *p = NULL;
    llt_error err = {0};
    CHECK_OK(llt_cuda_alloc(g_ctx, bytes ? bytes : 16, &p, &err), &err);
    return p;
}
static void *dev_copy(const void *h, size_t bytes) {
    void *d = dev_alloc(bytes);
    llt_error err = {0};
    CHECK_OK(llt_cuda_upload(g_ctx, d, h, bytes, &err), &err);
    return d;
}
static void *dev_f(llt_dtype dt, const float *h, int64_t n) {
    void *d = dev_alloc((size_t)n * (dt == LLT_DTYPE_F32 ? 4 : 2));
    llt_error err = {0};
    CHECK_OK(llt_cuda_upload_convert(g_ctx, dt, d, LLT_DTYPE_F32, h, n, &err), &err);
    return d;
}
static float *host_f(llt_dtype dt, const void *d, int64_t n) {
    float *h = malloc((size_t)n * 4);
    llt_error err = {0};
    CHECK_OK(llt_cuda_download_f32(g_ctx, h, dt, d, n, &err), &err);
    return h;
}

/* Random host blocks with sane f16 scales (as test_quant_dot does). */
static uint8_t *rand_blocks(llt_dtype t, int64_t rows, int64_t cols) {
    const llt_dtype_info *di = llt_dtype_get(t);
    int64_t nb = rows * cols / di->block_elems;
    uint8_t *p = malloc((size_t)(nb * di->block_bytes));
    for (int64_t i = 0; i < nb * di->block_bytes; i++) p[i] = (uint8_t)next_u32();
    int at[2] = {0, -1};
    if (t == LLT_DTYPE_Q4_1 || t == LLT_DTYPE_Q4_K || t == LLT_DTYPE_Q5_K) at[1] = 2;
    if (t == LLT_DTYPE_Q6_K) at[0] = 208;
    for (int64_t b = 0; b < nb; b++)
        for (int k = 0; k < 2; k++)
            if (at[k] >= 0) { /* Q6_K's int8 sub-scales reach 128 x 32: a smaller d keeps |w| near Q4_K's */
                float lim = t == LLT_DTYPE_Q6_K ? 0.05f / 64 : 0.05f;
                uint16_t h = llt_f32_to_f16(frand(-lim, lim));
                memcpy(p + b * di->block_bytes + at[k], &h, 2);
            }
    return p;
}

/* One segment on the device from host blocks. */
static llt_cuda_qseg dev_seg(llt_dtype t, const uint8_t *blocks, int64_t rows, int64_t cols) {
    int64_t nb = rows * cols / llt_dtype_get(t)->block_elems;
    size_t pay = (size_t)llt_cuda_q_pay_bytes(t), meta = (size_t)llt_cuda_q_meta_bytes(t);
    uint8_t *hp = malloc((size_t)nb * pay), *hm = malloc((size_t)nb * meta);
    llt_cuda_q_split(t, blocks, nb, hp, hm);
    /* the meta array with the slack the streamed GEMV may read (LLT_CUDA_Q_META_SLACK) */
    uint8_t *md = dev_alloc((size_t)nb * meta + LLT_CUDA_Q_META_SLACK);
    llt_error err = {0};
    CHECK_OK(llt_cuda_upload(g_ctx, md, hm, (size_t)nb * meta, &err), &err);
    llt_cuda_qseg s = {t, (int32_t)rows, dev_copy(hp, (size_t)nb * pay), md};
    free(hp), free(hm);
    return s;
}

/* Bytes of the dequantisation scratch for an n x k layer at m tokens: the matrix in f16, or x's
 * image for the prefill kernel (m rounded up to 256 tokens) where that is larger, as the model
 * sizes it (forward.cu) */
static size_t deq_bytes(int n, int k, int m) {
    const size_t w = (size_t)n * k * 2, xi = (size_t)((m + 255) / 256 * 256) * k * 2;
    return w > xi ? w : xi;
}

/* ---- 1. ops -------------------------------------------------------------------------------- */

/* ref[t * n + v] and |.|-sums for virtual row v of (seg a[, seg b interleaved]). */
static void cpu_ref(const llt_weight *wa, const llt_weight *wb, const float *x, int m, int n, double *ref,
                    double *mag) {
    int64_t k = wa->cols;
    float *y = malloc((size_t)m * wa->rows * 4), *y2 = malloc((size_t)m * wa->rows * 4);
    llt_cpu_quant_rows(wa, x, m, y, 0, wa->rows, LLT_QUANT_ISA_SCALAR);
    if (wb) llt_cpu_quant_rows(wb, x, m, y2, 0, wb->rows, LLT_QUANT_ISA_SCALAR);
    float *fa = malloc((size_t)(wa->rows * k) * 4), *fb = wb ? malloc((size_t)(wb->rows * k) * 4) : NULL;
    llt_dequantize(wa->dtype, wa->data, fa, wa->rows * k, NULL);
    if (wb) llt_dequantize(wb->dtype, wb->data, fb, wb->rows * k, NULL);
    for (int t = 0; t < m; t++)
        for (int v = 0; v < n; v++) {
            const float *wr = wb ? (v % 2 ? fb : fa) + (int64_t)(v / 2) * k : fa + (int64_t)v * k;
            double a = 0;
            for (int64_t i = 0; i < k; i++) a += fabs((double)wr[i] * x[t * k + i]);
            ref[t * n + v] = wb ? (v % 2 ? y2 : y)[t * wa->rows + v / 2] : y[t * wa->rows + v];
            mag[t * n + v] = a;
        }
    free(y), free(y2), free(fa), free(fb);
}

static double worst_err(const float *got, const double *ref, const double *mag, int64_t n) {
    double w = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - ref[i]) / (mag[i] + 1e-20);
        if (e > w || e != e) w = e;
    }
    return w;
}

/* STORE / ADD (ACT input) and NORM + STORE through each path for one type. */
static const int k_ms[] = {1, 2, 4, 8};

static void check_plain_ms(llt_dtype t, int n, int k, const int *ms, int nms) {
    uint8_t *hb = rand_blocks(t, n, k);
    llt_cuda_qmat q = {n, k, 1, 0, {dev_seg(t, hb, n, k)}};
    llt_weight w = {.dtype = t, .rows = n, .cols = k, .data = hb};
    int mmax = 1;
    for (int mi = 0; mi < nms; mi++) mmax = ms[mi] > mmax ? ms[mi] : mmax;
    const size_t dqb = deq_bytes(n, k, mmax);
    void *deq = dev_alloc(dqb);
    for (int mi = 0; mi < nms; mi++) {
        const int m = ms[mi];
        float *x = malloc((size_t)m * k * 4), *nw = malloc((size_t)k * 4), *xn = malloc((size_t)m * k * 4);
        float *xr = malloc((size_t)m * k * 4); /* NORM: x's rows reversed, picked back by x_rows */
        int32_t *rows = malloc((size_t)m * 4);
        for (int64_t i = 0; i < (int64_t)m * k; i++) x[i] = round_f16(frand(-1, 1));
        for (int i = 0; i < k; i++) nw[i] = frand(0.5f, 1.5f);
        for (int tk = 0; tk < m; tk++) {
            rows[tk] = m - 1 - tk;
            memcpy(xr + (size_t)(m - 1 - tk) * k, x + (size_t)tk * k, (size_t)k * 4);
        }
        int32_t *rows_dev = dev_copy(rows, (size_t)m * 4);
        double *ref = malloc((size_t)m * n * 8), *mag = malloc((size_t)m * n * 8);
        for (int mode = 0; mode < 3; mode++) { /* 0 ACT+STORE, 1 ACT+ADD, 2 NORM+STORE */
            const float *xin = x;
            if (mode == 2) { /* the GPU normalises in float and rounds to f16, as here */
                for (int tk = 0; tk < m; tk++) {
                    double ss = 0;
                    for (int i = 0; i < k; i++) ss += (double)x[tk * k + i] * x[tk * k + i];
                    float inv = (float)(1.0 / sqrt(ss / k + 1e-5));
                    for (int i = 0; i < k; i++) xn[tk * k + i] = round_f16(x[tk * k + i] * inv * nw[i]);
                }
                xin = xn;
            }
            cpu_ref(&w, NULL, xin, m, n, ref, mag);
            float *y0 = malloc((size_t)m * n * 4);
            for (int64_t i = 0; i < (int64_t)m * n; i++) y0[i] = mode == 1 ? frand(-1, 1) : NAN;
            for (int64_t i = 0; mode == 1 && i < (int64_t)m * n; i++) ref[i] += y0[i];
            llt_cuda_linear a;
            memset(&a, 0, sizeof a);
            a.dtype = LLT_DTYPE_F16, a.n = n, a.k = k, a.m = m, a.qw = &q, a.deq = deq, a.deq_bytes = dqb;
            a.in = mode == 2 ? LLT_LIN_IN_NORM : LLT_LIN_IN_ACT;
            a.x = mode == 2 ? dev_f(LLT_DTYPE_F32, xr, (int64_t)m * k) : dev_f(LLT_DTYPE_F16, x, (int64_t)m * k);
            a.ldx = k, a.norm_w = mode == 2 ? dev_f(LLT_DTYPE_F32, nw, k) : NULL, a.eps = 1e-5f;
            a.x_rows = mode == 2 ? rows_dev : NULL;
            a.out = mode == 1 ? LLT_LIN_OUT_ADD : LLT_LIN_OUT_STORE;
            a.y = dev_f(LLT_DTYPE_F32, y0, (int64_t)m * n), a.ldy = n;
            a.tmp_x = dev_alloc((size_t)m * k * 2);
            llt_error err = {0};
            CHECK_OK(llt_cuda_linear_run(g_ctx, &a, LLT_CUDA_PATH_AUTO, &err), &err);
            float *got = host_f(LLT_DTYPE_F32, a.y, (int64_t)m * n);
            double e = worst_err(got, ref, mag, (int64_t)m * n), bound = m == 1 ? 2e-3 : 4e-3;
            CHECK_MSG(e <= bound, "%s n %d k %d m %d mode %d: error %.3g of sum|w||x| (bound %g)",
                      llt_dtype_name(t), n, k, m, mode, e, bound);
            free(got), free(y0);
            llt_cuda_release(g_ctx, (void *)a.x), llt_cuda_release(g_ctx, a.y), llt_cuda_release(g_ctx, a.tmp_x);
            if (a.norm_w) llt_cuda_release(g_ctx, (void *)a.norm_w);
        }
        free(x), free(nw), free(xn), free(xr), free(rows), free(ref), free(mag);
        llt_cuda_release(g_ctx, rows_dev);
    }
    llt_cuda_release(g_ctx, q.seg[0].pay), llt_cuda_release(g_ctx, q.seg[0].meta), llt_cuda_release(g_ctx, deq);
    free(hb);
}

static void check_plain(llt_dtype t, int n, int k) { check_plain_ms(t, n, k, k_ms, 4); }

/* SwiGLU over interleaved (gate, up) segments of two types; act = silu(gate) * up in f16. */
static void check_swiglu_x(llt_dtype tg, llt_dtype tu, int rows, int k, int m, float xs) {
    uint8_t *hg = rand_blocks(tg, rows, k), *hu = rand_blocks(tu, rows, k);
    llt_cuda_qmat q = {2 * rows, k, 2, 1, {dev_seg(tg, hg, rows, k), dev_seg(tu, hu, rows, k)}};
    llt_weight wg = {.dtype = tg, .rows = rows, .cols = k, .data = hg}, wu = {.dtype = tu, .rows = rows, .cols = k, .data = hu};
    float *x = malloc((size_t)m * k * 4);
    for (int64_t i = 0; i < (int64_t)m * k; i++) x[i] = round_f16(frand(-xs, xs));
    const int n = 2 * rows;
    double *ref = malloc((size_t)m * n * 8), *mag = malloc((size_t)m * n * 8);
    cpu_ref(&wg, &wu, x, m, n, ref, mag);
    llt_cuda_linear a;
    memset(&a, 0, sizeof a);
    a.dtype = LLT_DTYPE_F16, a.n = n, a.k = k, a.m = m, a.qw = &q;
    a.deq_bytes = deq_bytes(n, k, m), a.deq = dev_alloc(a.deq_bytes);
    a.in = LLT_LIN_IN_ACT, a.x = dev_f(LLT_DTYPE_F16, x, (int64_t)m * k), a.ldx = k;
    a.out = LLT_LIN_OUT_SWIGLU, a.ldo = rows, a.tmp_y = dev_alloc((size_t)m * n * 4);
    float *nan = malloc((size_t)m * rows * 4);
    for (int64_t i = 0; i < (int64_t)m * rows; i++) nan[i] = NAN;
    a.o = dev_f(LLT_DTYPE_F16, nan, (int64_t)m * rows);
    llt_error err = {0};
    CHECK_OK(llt_cuda_linear_run(g_ctx, &a, LLT_CUDA_PATH_AUTO, &err), &err);
    float *got = host_f(LLT_DTYPE_F16, a.o, (int64_t)m * rows);
    double worst = 0;
    for (int t = 0; t < m; t++)
        for (int i = 0; i < rows; i++) {
            double g = ref[t * n + 2 * i], u = ref[t * n + 2 * i + 1];
            double want = g / (1 + exp(-g)) * u;
            /* first order: d(silu(g) u) = silu'(g) u dg + silu(g) du, |silu'| <= 1.1 */
            const double b = m == 1 ? 2e-3 : 4e-3; /* the products' bounds, as in check_plain */
            double tol = 1.1 * fabs(u) * b * mag[t * n + 2 * i] + fabs(g) * b * mag[t * n + 2 * i + 1] +
                         fabs(want) / 1024 + 1e-6;
            double e = fabs(got[t * rows + i] - want) / tol;
            if (e > worst || e != e) worst = e;
        }
    CHECK_MSG(worst <= 1.0, "swiglu %s/%s m %d: error %.3g of its bound", llt_dtype_name(tg), llt_dtype_name(tu), m, worst);
    free(got), free(nan), free(x), free(ref), free(mag), free(hg), free(hu);
    llt_cuda_release(g_ctx, (void *)a.x), llt_cuda_release(g_ctx, a.o), llt_cuda_release(g_ctx, a.deq);
    llt_cuda_release(g_ctx, a.tmp_y);
    for (int s = 0; s < 2; s++) llt_cuda_release(g_ctx, q.seg[s].pay), llt_cuda_release(g_ctx, q.seg[s].meta);
}

static void check_swiglu(llt_dtype tg, llt_dtype tu, int rows, int k, int m) { check_swiglu_x(tg, tu, rows, k, m, 1.0f); }

/* Two stacked segments of different types (QKV with V in another type), plain store: m = 1 the
 * GEMV that finds each warp's type at run time; m > 64 the prefill kernel a segment at a time. */
static void check_stacked_m(llt_dtype ta, int na, llt_dtype tb, int nb, int k, int m) {
    uint8_t *ha = rand_blocks(ta, na, k), *hb = rand_blocks(tb, nb, k);
    const int n = na + nb;
    llt_cuda_qmat q = {n, k, 2, 0, {dev_seg(ta, ha, na, k), dev_seg(tb, hb, nb, k)}};
    llt_weight wa = {.dtype = ta, .rows = na, .cols = k, .data = ha}, wb = {.dtype = tb, .rows = nb, .cols = k, .data = hb};
    float *x = malloc((size_t)m * k * 4);
    for (int64_t i = 0; i < (int64_t)m * k; i++) x[i] = round_f16(frand(-1, 1));
    double *ra = malloc((size_t)m * na * 8), *ma = malloc((size_t)m * na * 8);
    double *rb = malloc((size_t)m * nb * 8), *mb = malloc((size_t)m * nb * 8);
    cpu_ref(&wa, NULL, x, m, na, ra, ma);
    cpu_ref(&wb, NULL, x, m, nb, rb, mb);
    double *ref = malloc((size_t)m * n * 8), *mag = malloc((size_t)m * n * 8);
    for (int t = 0; t < m; t++) {
        memcpy(ref + (size_t)t * n, ra + (size_t)t * na, (size_t)na * 8), memcpy(mag + (size_t)t * n, ma + (size_t)t * na, (size_t)na * 8);
        memcpy(ref + (size_t)t * n + na, rb + (size_t)t * nb, (size_t)nb * 8);
        memcpy(mag + (size_t)t * n + na, mb + (size_t)t * nb, (size_t)nb * 8);
    }
    free(ra), free(ma), free(rb), free(mb);
    float *nan = malloc((size_t)m * n * 4);
    for (int64_t i = 0; i < (int64_t)m * n; i++) nan[i] = NAN;
    llt_cuda_linear a;
    memset(&a, 0, sizeof a);
    a.dtype = LLT_DTYPE_F16, a.n = n, a.k = k, a.m = m, a.qw = &q;
    a.deq_bytes = deq_bytes(n, k, m), a.deq = dev_alloc(a.deq_bytes);
    a.in = LLT_LIN_IN_ACT, a.x = dev_f(LLT_DTYPE_F16, x, (int64_t)m * k), a.ldx = k;
    a.out = LLT_LIN_OUT_STORE, a.y = dev_f(LLT_DTYPE_F32, nan, (int64_t)m * n), a.ldy = n;
    llt_error err = {0};
    CHECK_OK(llt_cuda_linear_run(g_ctx, &a, m == 1 ? LLT_CUDA_PATH_GEMV : LLT_CUDA_PATH_AUTO, &err), &err);
    float *got = host_f(LLT_DTYPE_F32, a.y, (int64_t)m * n);
    double e = worst_err(got, ref, mag, (int64_t)m * n), bound = m == 1 ? 2e-3 : 4e-3;
    CHECK_MSG(e <= bound, "stacked %s (%d rows) + %s (%d rows), k %d, m %d: error %.3g of sum|w||x| (bound %g)",
              llt_dtype_name(ta), na, llt_dtype_name(tb), nb, k, m, e, bound);
    free(got), free(nan), free(x), free(ref), free(mag), free(ha), free(hb);
    llt_cuda_release(g_ctx, (void *)a.x), llt_cuda_release(g_ctx, a.y), llt_cuda_release(g_ctx, a.deq);
    for (int s = 0; s < 2; s++) llt_cuda_release(g_ctx, q.seg[s].pay), llt_cuda_release(g_ctx, q.seg[s].meta);
}

static void check_stacked(llt_dtype ta, int na, llt_dtype tb, int nb, int k) { check_stacked_m(ta, na, tb, nb, k, 1); }

static const llt_dtype k_types[] = {LLT_DTYPE_Q8_0, LLT_DTYPE_Q4_0, LLT_DTYPE_Q4_1, LLT_DTYPE_Q5_0,
                                    LLT_DTYPE_Q4_K, LLT_DTYPE_Q5_K, LLT_DTYPE_Q6_K};

/* The dequantisation kernel alone (prefill / batched scratch, f16) against the CPU's
 * dequantisation of the same blocks, rows [row0, row0 + rows) of a plain or interleaved
 * matrix. Bound per element: 2^-9 of the largest |w| of its 256-element window (the f16
 * result, and for Q4_K / Q6_K the scale and min, rounded to f16: at most four f16 roundings
 * of quantities no larger than the window's largest |w| and 15 s). */
static void check_dequant(llt_dtype ta, llt_dtype tb, int n, int k, int row0, int rows) {
    const int il = ta != tb, na = il ? n / 2 : n;
    uint8_t *ha = rand_blocks(ta, na, k), *hb = il ? rand_blocks(tb, n - na, k) : NULL;
    llt_cuda_qmat q = {n, k, il ? 2 : 1, il, {dev_seg(ta, ha, na, k)}};
    if (il) q.seg[1] = dev_seg(tb, hb, n - na, k);
    float *fa = malloc((size_t)na * k * 4), *fb = il ? malloc((size_t)(n - na) * k * 4) : NULL;
    llt_dequantize(ta, ha, fa, (int64_t)na * k, NULL);
    if (il) llt_dequantize(tb, hb, fb, (int64_t)(n - na) * k, NULL);
    void *d = dev_alloc((size_t)rows * k * 2);
    llt_error err = {0};
    CHECK_OK(llt_cuda_q_dequant(g_ctx, &q, row0, rows, LLT_DTYPE_F16, d, &err), &err);
    float *got = host_f(LLT_DTYPE_F16, d, (int64_t)rows * k);
    int bad = 0;
    for (int r = 0; r < rows && bad < 5; r++) {
        const int v = row0 + r;
        const float *ref = il ? (v % 2 ? fb : fa) + (int64_t)(v / 2) * k : fa + (int64_t)v * k;
        for (int w = 0; w < k; w += 256) {
            float amax = 0;
            for (int i = w; i < w + 256 && i < k; i++) amax = fmaxf(amax, fabsf(ref[i]));
            for (int i = w; i < w + 256 && i < k; i++) {
                const float g = got[(int64_t)r * k + i];
                if (!(fabsf(g - ref[i]) <= amax / 512 + 1e-30f) && bad++ < 5)
                    CHECK_MSG(0, "dequant %s/%s n %d k %d row %d col %d: %g, reference %g (window max %g)",
                              llt_dtype_name(ta), llt_dtype_name(tb), n, k, v, i, g, ref[i], amax);
            }
        }
    }
    CHECK(bad == 0);
    free(got), free(fa), free(fb), free(ha), free(hb);
    llt_cuda_release(g_ctx, d);
    for (int sg = 0; sg < q.n_seg; sg++) llt_cuda_release(g_ctx, q.seg[sg].pay), llt_cuda_release(g_ctx, q.seg[sg].meta);
}

static void test_ops(void) {
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++) {
        check_plain(k_types[i], 70, 512);  /* n not a multiple of a block's rows */
        check_plain(k_types[i], 32, 1280); /* k of five superblocks */
    }
    /* more row groups than blocks when the grid is capped (LLT_CUDA_QGEMV_BPS=1): the loop */
    check_plain(LLT_DTYPE_Q4_K, 4224, 256);
    /* k of a 7B FFN row: the streamed GEMV's pieces (a partial last one; scales copied from
     * unaligned offsets for Q6_K and Q5_0) and more items per warp than ring stages */
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++) check_plain(k_types[i], 40, 11008);
    check_stacked(LLT_DTYPE_Q4_K, 64, LLT_DTYPE_Q6_K, 38, 512);
    check_stacked(LLT_DTYPE_Q8_0, 32, LLT_DTYPE_Q5_K, 30, 768);
    check_swiglu(LLT_DTYPE_Q4_K, LLT_DTYPE_Q4_K, 48, 512, 1);
    check_swiglu(LLT_DTYPE_Q4_K, LLT_DTYPE_Q6_K, 48, 512, 1);
    check_swiglu(LLT_DTYPE_Q8_0, LLT_DTYPE_Q5_0, 48, 512, 4);
    check_swiglu(LLT_DTYPE_Q4_K, LLT_DTYPE_Q6_K, 48, 512, 8);
    /* batches up to 64 token rows (the small-batch kernel up to 32 rows, and up to 64 off sm_90
     * or with LLT_CUDA_QGEMM_MINM=65; on sm_90 from 33 rows the prefill kernel's 64-token blocks;
     * partial token tiles, rows past n, k split over blocks with atomic adds, k of a 7B FFN row) */
    static const int mb[] = {3, 17, 64};
    check_plain_ms(LLT_DTYPE_Q4_K, 200, 1024, mb, 3);
    check_plain_ms(LLT_DTYPE_Q4_K, 48, 11008, mb + 2, 1);
    check_plain_ms(LLT_DTYPE_Q8_0, 64, 512, mb + 2, 1);
    /* the same kernel over Q8_0 / Q6_K blocks (the default LLT_CUDA_QMMA_TYPES; =q4_k: the
     * BLAS path): every token tile count, the direct k split and stream-K, k of a 7B FFN row */
    static const int mq[] = {2, 7, 32, 64};
    check_plain_ms(LLT_DTYPE_Q8_0, 200, 1024, mq, 4);
    check_plain_ms(LLT_DTYPE_Q6_K, 200, 1024, mq, 4);
    check_plain_ms(LLT_DTYPE_Q8_0, 48, 11008, mq + 3, 1);
    check_plain_ms(LLT_DTYPE_Q6_K, 48, 11008, mq + 3, 1);
    check_swiglu_x(LLT_DTYPE_Q8_0, LLT_DTYPE_Q8_0, 64, 4096, 33, 0.01f);
    check_swiglu_x(LLT_DTYPE_Q6_K, LLT_DTYPE_Q6_K, 48, 512, 5, 0.03f);
    check_swiglu_x(LLT_DTYPE_Q6_K, LLT_DTYPE_Q6_K, 64, 4096, 40, 0.01f); /* sm_90: k split, float32 product */
    /* x small enough that silu(gate) up of two Q4_K products stays inside f16 (|w| reaches 50) */
    check_swiglu_x(LLT_DTYPE_Q4_K, LLT_DTYPE_Q4_K, 80, 768, 64, 0.03f);
    check_swiglu_x(LLT_DTYPE_Q4_K, LLT_DTYPE_Q4_K, 48, 512, 5, 0.03f);
    check_swiglu_x(LLT_DTYPE_Q4_K, LLT_DTYPE_Q4_K, 64, 4096, 33, 0.01f); /* k split: float32 product */
    /* the dequantisation kernel (prefill scratch) alone, every type; rows from an offset, k not a
     * multiple of 256 (Q8_0, Q4_0), interleaved segments of two types; and m past the small-batch
     * kernel (dequantise + cuBLASLt) */
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++) {
        check_dequant(k_types[i], k_types[i], 70, 1280, 0, 70);
        check_dequant(k_types[i], k_types[i], 41, 11008, 5, 33);
    }
    check_dequant(LLT_DTYPE_Q8_0, LLT_DTYPE_Q8_0, 24, 96, 3, 20);
    check_dequant(LLT_DTYPE_Q4_0, LLT_DTYPE_Q4_0, 24, 160, 0, 24);
    check_dequant(LLT_DTYPE_Q4_K, LLT_DTYPE_Q6_K, 64, 768, 2, 60);
    check_dequant(LLT_DTYPE_Q8_0, LLT_DTYPE_Q4_K, 32, 512, 0, 32);
    /* m past the small-batch kernel: the prefill kernel (qgemm_kernel, on sm_90; elsewhere
     * dequantise + cuBLASLt): a row block partly past n (200 = 128 + 72: its second warpgroup's
     * rows partly too), a warpgroup wholly past n (n 40), a partial token tile and two of them,
     * k split over blocks with atomic adds (few row blocks: STORE zeroes y first, ADD adds into
     * it), k of a 7B FFN row, SwiGLU's f16 product */
    static const int mpre[] = {80, 300};
    check_plain_ms(LLT_DTYPE_Q4_K, 200, 1024, mpre, 2);
    check_plain_ms(LLT_DTYPE_Q8_0, 200, 1024, mpre, 2);
    check_plain_ms(LLT_DTYPE_Q6_K, 200, 1024, mpre, 2);
    check_plain_ms(LLT_DTYPE_Q4_K, 40, 11008, mpre + 1, 1);
    check_plain_ms(LLT_DTYPE_Q6_K, 264, 2048, mpre + 1, 1);
    check_swiglu_x(LLT_DTYPE_Q4_K, LLT_DTYPE_Q4_K, 80, 768, 300, 0.03f);
    check_swiglu_x(LLT_DTYPE_Q8_0, LLT_DTYPE_Q8_0, 64, 4096, 257, 0.01f);
    check_swiglu_x(LLT_DTYPE_Q6_K, LLT_DTYPE_Q6_K, 48, 512, 130, 0.03f);
    check_stacked_m(LLT_DTYPE_Q4_K, 192, LLT_DTYPE_Q6_K, 70, 1024, 300); /* a launch a segment */
    check_stacked_m(LLT_DTYPE_Q8_0, 64, LLT_DTYPE_Q5_K, 30, 768, 100);   /* Q5_K: dequantise + cuBLASLt */
    static const int mbig[] = {80};
    check_plain_ms(LLT_DTYPE_Q4_K, 70, 512, mbig, 1);
    check_plain_ms(LLT_DTYPE_Q6_K, 40, 1024, mbig, 1);
    check_plain_ms(LLT_DTYPE_Q8_0, 40, 1024, mbig, 1);
}

/* An n x k one-segment matrix of random device blocks of type t (the benches) */
static llt_cuda_qmat rand_dev_qmat(llt_dtype t, int n, int k) {
    const int64_t nb = (int64_t)n * k / llt_dtype_get(t)->block_elems;
    llt_cuda_qseg sg = {t, n, dev_alloc((size_t)nb * llt_cuda_q_pay_bytes(t)),
                        dev_alloc((size_t)nb * llt_cuda_q_meta_bytes(t) + LLT_CUDA_Q_META_SLACK)};
    llt_error err = {0};
    CHECK_OK(llt_cuda_q_fill_random(g_ctx, &sg, k, 7, 1.0f, &err), &err);
    llt_cuda_qmat q = {n, k, 1, 0, {sg}};
    return q;
}

/* Mean time of one step(arg) on the device in us: 20 runs after 3 warm-ups (the benches) */
static double bench_us(llt_status (*step)(const void *, llt_error *), const void *arg) {
    llt_error err = {0};
    const int reps = 20;
    double t0 = 0;
    for (int it = 0; it < reps + 3; it++) {
        if (it == 3) {
            CHECK_OK(llt_cuda_sync(g_ctx, &err), &err);
            struct timespec ts0;
            clock_gettime(CLOCK_MONOTONIC, &ts0);
            t0 = ts0.tv_sec + 1e-9 * ts0.tv_nsec;
        }
        CHECK_OK(step(arg, &err), &err);
    }
    CHECK_OK(llt_cuda_sync(g_ctx, &err), &err);
    struct timespec ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    return (ts1.tv_sec + 1e-9 * ts1.tv_nsec - t0) / reps * 1e6;
}

typedef struct {
    const llt_cuda_qmat *q;
    int n;
    void *d;
} bench_deq_args;
static llt_status bench_deq_step(const void *arg, llt_error *err) {
    const bench_deq_args *b = (const bench_deq_args *)arg;
    return llt_cuda_q_dequant(g_ctx, b->q, 0, b->n, LLT_DTYPE_F16, b->d, err);
}
static llt_status bench_linear_step(const void *arg, llt_error *err) {
    return llt_cuda_linear_run(g_ctx, (const llt_cuda_linear *)arg, LLT_CUDA_PATH_AUTO, err);
}

/* LLT_TEST_ONLY=bench_dequant: the dequantisation kernel's time on 7B-shaped matrices of random
 * device blocks (not a check: prints us and GB/s of payload + scales read and f16 written). */
static void bench_dequant(void) {
    static const llt_dtype ts[] = {LLT_DTYPE_Q4_K, LLT_DTYPE_Q6_K, LLT_DTYPE_Q8_0};
    static const int shp[][2] = {{22016, 4096}, {4096, 11008}, {12288, 4096}};
    for (size_t ti = 0; ti < 3; ti++)
        for (int si = 0; si < 3; si++) {
            const llt_dtype t = ts[ti];
            const int n = shp[si][0], k = shp[si][1];
            const llt_dtype_info *di = llt_dtype_get(t);
            const int64_t nb = (int64_t)n * k / di->block_elems;
            llt_cuda_qmat q = rand_dev_qmat(t, n, k);
            const llt_cuda_qseg sg = q.seg[0];
            void *d = dev_alloc((size_t)n * k * 2);
            const bench_deq_args ba = {&q, n, d};
            const double us = bench_us(bench_deq_step, &ba);
            const double bytes = (double)nb * di->block_bytes + (double)n * k * 2;
            printf("bench_dequant %s n %d k %d: %.1f us, %.0f GB/s\n", llt_dtype_name(t), n, k, us, bytes / us / 1e3);
            llt_cuda_release(g_ctx, d), llt_cuda_release(g_ctx, sg.pay), llt_cuda_release(g_ctx, sg.meta);
        }
}

/* LLT_TEST_ONLY=bench_qgemm: the product at m = 512 (LLT_BENCH_M) on 7B-shaped matrices of random
 * device blocks, STORE into float32, through whichever path the environment leaves on (the
 * prefill kernel; LLT_CUDA_QGEMM=0: dequantise + cuBLASLt), and once a shape on f16 weights (the
 * float path). Not a check: prints us and TFLOP/s. */
static void bench_qgemm(void) {
    static const llt_dtype ts[] = {LLT_DTYPE_Q4_K, LLT_DTYPE_Q8_0, LLT_DTYPE_Q6_K};
    static const int shp[][2] = {{22016, 4096}, {4096, 11008}, {12288, 4096}, {4096, 4096}};
    const char *mv = getenv("LLT_BENCH_M");
    const int m = mv && atoi(mv) > 0 ? atoi(mv) : 512;
    const char *only_t = getenv("LLT_BENCH_QTYPE"); /* one type (e.g. q8_0: a profiler's launch counts) */
    for (size_t ti = 0; ti < 3; ti++)
        for (int si = 0; si < 4; si++) {
            const llt_dtype t = ts[ti];
            const int n = shp[si][0], k = shp[si][1];
            if (only_t && strcmp(only_t, llt_dtype_name(t)) != 0) continue;
            llt_cuda_qmat q = rand_dev_qmat(t, n, k);
            const llt_cuda_qseg sg = q.seg[0];
            llt_error err = {0};
            llt_cuda_linear a;
            memset(&a, 0, sizeof a);
            a.dtype = LLT_DTYPE_F16, a.n = n, a.k = k, a.m = m, a.qw = &q;
            a.deq_bytes = (size_t)n * k * 2, a.deq = dev_alloc(a.deq_bytes);
            a.in = LLT_LIN_IN_ACT, a.x = dev_alloc((size_t)m * k * 2), a.ldx = k;
            CHECK_OK(llt_cuda_fill_uniform(g_ctx, LLT_DTYPE_F16, (void *)a.x, (int64_t)m * k, 11, -1.0f, 1.0f, &err),
                     &err);
            a.out = LLT_LIN_OUT_STORE, a.y = dev_alloc((size_t)m * n * 4), a.ldy = n;
            const double us = bench_us(bench_linear_step, &a);
            printf("bench_qgemm %s m %d n %d k %d: %.1f us, %.1f TFLOP/s\n", llt_dtype_name(t), m, n, k, us,
                   2.0 * m * n * k / us / 1e6);
            if (ti == 0) { /* the same product on f16 weights (the float path), for comparison */
                CHECK_OK(llt_cuda_fill_uniform(g_ctx, LLT_DTYPE_F16, a.deq, (int64_t)n * k, 12, -0.05f, 0.05f, &err),
                         &err);
                a.qw = NULL, a.w = a.deq;
                const double uf = bench_us(bench_linear_step, &a);
                printf("bench_qgemm f16 m %d n %d k %d: %.1f us, %.1f TFLOP/s\n", m, n, k, uf, 2.0 * m * n * k / uf / 1e6);
            }
            llt_cuda_release(g_ctx, (void *)a.x), llt_cuda_release(g_ctx, a.y), llt_cuda_release(g_ctx, a.deq);
            llt_cuda_release(g_ctx, sg.pay), llt_cuda_release(g_ctx, sg.meta);
        }
}

/* ---- 2. models ------------------------------------------------------------------------------ */

static void check_model(const char *type) {
    char p[256];
    snprintf(p, sizeof p, "quant/qtiny-%s.reference.safetensors", type);
    llt_tensor_table ref;
    llt_tensors_init(&ref);
    llt_error e = {0};
    CHECK_OK(llt_safetensors_load(tl_fixture(p), &ref, NULL, &e), &e);
    const llt_tensor *ids = llt_tensors_find(&ref, "input_ids"), *lg = llt_tensors_find(&ref, "logits");
    if (!ids || !lg) {
        CHECK(0);
        llt_tensors_free(&ref);
        return;
    }
    int32_t T = (int32_t)ids->shape[0], V = (int32_t)lg->shape[1];
    int32_t *tok = malloc((size_t)T * 4);
    for (int32_t i = 0; i < T; i++) tok[i] = (int32_t)((const int64_t *)ids->data)[i];
    snprintf(p, sizeof p, "quant/qtiny-%s.gguf", type);
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.device = "cuda";
    llt_model *m = NULL;
    CHECK_OK(llt_model_load(tl_fixture(p), &o, &m, &e), &e);
    if (m) {
        uint64_t file = 0; /* the file's tensor bytes */
        for (size_t i = 0; i < m->tensors.n; i++) file += m->tensors.t[i].nbytes;
        uint64_t res = llt_cuda_model_resident_bytes(m);
        CHECK_MSG(res > 0 && res <= file * 105 / 100, "%s: weights resident %llu bytes, file tensors %llu",
                  type, (unsigned long long)res, (unsigned long long)file);
        float *logits = malloc((size_t)T * V * 4);
        for (int pass = 0; pass < 2; pass++) { /* prefill (BLAS path), then token by token (GEMV) */
            for (int64_t i = 0; i < (int64_t)T * V; i++) logits[i] = NAN;
            if (pass == 0) CHECK_OK(llt_model_forward(m, tok, (size_t)T, logits, NULL, NULL, &e), &e);
            int32_t seq = -1;
            if (pass == 1) CHECK_OK(llt_kv_seq_create(llt_model_kv_cache(m), &seq, &e), &e);
            for (int32_t t = 0; pass == 1 && seq >= 0 && t < T; t++) { /* one row per step: the GEMV */
                llt_batch b = {1, tok + t, &seq, NULL};
                int32_t rows = 0;
                CHECK_OK(llt_model_decode(m, &b, logits + (int64_t)t * V, &rows, &e), &e);
            }
            if (seq >= 0) llt_kv_seq_free(llt_model_kv_cache(m), seq);
            int32_t rows = T;
            double err = tl_rel_err(logits, lg->data, (size_t)rows * V);
            CHECK_MSG(err <= 2e-2, "%s pass %d: logits rel err %.3g > 2e-2", type, pass, err);
            fprintf(stderr, "  %-7s %s: logits rel err %.2g (of 2e-2), resident %.3f MB of %.3f MB file tensors\n",
                    type, pass ? "decode " : "prefill", err, res / 1e6, file / 1e6);
        }
        free(logits);
        llt_model_free(m);
    }
    free(tok);
    llt_tensors_free(&ref);
}

static void test_models(void) {
    static const char *const types[] = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q4_K_M", "Q5_K_M", "Q6_K"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) check_model(types[i]);
}

int main(void) {
    if (llt_cuda_device_count() == 0) {
        printf("SKIPPED: no CUDA device\n");
        return 77;
    }
    setenv("XDG_CACHE_HOME", tl_tmpdir(), 1);
    llt_error err = {0};
    CHECK_OK(llt_cuda_ctx_create(0, &g_ctx, &err), &err);
    if (!g_ctx) return tl_done("test_cuda_quant");
    const char *only = getenv("LLT_TEST_ONLY");
    if (!only || strstr(only, "test_ops")) RUN(test_ops);
    if (!only || strstr(only, "test_models")) RUN(test_models);
    if (only && strstr(only, "bench_dequant")) RUN(bench_dequant);
    if (only && strstr(only, "bench_qgemm")) RUN(bench_qgemm);
    llt_cuda_ctx_free(g_ctx);
    return tl_done("test_cuda_quant");
}
#endif
