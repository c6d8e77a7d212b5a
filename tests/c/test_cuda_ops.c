/* test_cuda_ops: every CUDA op against the CPU op on random inputs (several shapes, odd sizes
 * included), f16 and bf16, each path (streaming GEMV with its fused prologue/epilogues,
 * cuBLASLt + separate kernels, and the measured choice).
 *
 * Inputs are rounded to the dtype before both sides see them, so the reference computes on
 * exactly the values the GPU holds; errors are max|gpu - ref| / max|ref| with bounds in units
 * of u, the dtype's unit roundoff (f16 2^-11, bf16 2^-8), each bound stated with its reason
 * next to the check. Outputs are poisoned (NaN) before each run so an unwritten element fails.
 * Exits 77 ("SKIPPED") without a CUDA build or device: ctest reports it as skipped. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#ifndef LLT_HAVE_CUDA
int main(void) {
    printf("SKIPPED: no CUDA device (this build has no CUDA backend)\n");
    return 77;
}
#else

#include "backend/cpu/attention.h"
#include "backend/cpu/ops.h"
#include "backend/cuda/cuda_backend.h"
#include "base/dtype.h"
#include "base/log.h"
#include "kv/paged_cache.h"
#include <stdbool.h>

static llt_cuda_ctx *g_ctx;
static const llt_dtype k_dts[2] = {LLT_DTYPE_F16, LLT_DTYPE_BF16};

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t g_rng = 0x1234567u;
static float frand(float lo, float hi) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}
static float *rand_vec(int64_t n, float lo, float hi) {
    float *v = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) v[i] = frand(lo, hi);
    return v;
}
static float round_dt(llt_dtype dt, float v) {
    return dt == LLT_DTYPE_F16 ? llt_f16_to_f32(llt_f32_to_f16(v)) : llt_bf16_to_f32(llt_f32_to_bf16(v));
}
static void round_vec(llt_dtype dt, float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) v[i] = round_dt(dt, v[i]);
}
/* unit roundoff of the dtype */
static double unit(llt_dtype dt) { return dt == LLT_DTYPE_F16 ? 1.0 / 2048 : 1.0 / 256; }

static void *dev_alloc(size_t bytes) {
    void *p = NULL;
    llt_error err = {0};
    CHECK_OK(llt_cuda_alloc(g_ctx, bytes, &p, &err), &err);
    return p;
}
/* host float32 -> device dtype (F32 keeps floats) */
static void *dev_from(llt_dtype dt, const float *h, int64_t n) {
    void *d = dev_alloc((size_t)n * (dt == LLT_DTYPE_F32 ? 4 : 2));
    llt_error err = {0};
    CHECK_OK(llt_cuda_upload_convert(g_ctx, dt, d, LLT_DTYPE_F32, h, n, &err), &err);
    return d;
}
/* f8 K and V pools of `blocks` pages for the decode timings: 64 pages of random e4m3 values (NaN
 * codes avoided) with scale 1/16, repeated */
static void f8_pools_make(int ps, int nkv, int hd, int blocks, void **dk8, void **dv8) {
    llt_error err = {0};
    const size_t pb8 = llt_kv_f8_page_bytes(ps, nkv, hd), so8 = llt_kv_f8_scales_offset(ps, nkv, hd);
    uint8_t *tmpl8 = malloc(64 * pb8);
    for (size_t pg = 0; pg < 64; pg++) {
        for (size_t i = 0; i < so8; i++) tmpl8[pg * pb8 + i] = llt_f32_to_e4m3(frand(-448, 448));
        for (size_t i = 0; i < (pb8 - so8) / 4; i++) ((float *)(tmpl8 + pg * pb8 + so8))[i] = 1.0f / 16;
    }
    *dk8 = dev_alloc((size_t)blocks * pb8), *dv8 = dev_alloc((size_t)blocks * pb8);
    for (int pg = 0; pg < blocks; pg += 64) {
        CHECK_OK(llt_cuda_upload(g_ctx, (char *)*dk8 + (size_t)pg * pb8, tmpl8, 64 * pb8, &err), &err);
        CHECK_OK(llt_cuda_upload(g_ctx, (char *)*dv8 + (size_t)pg * pb8, tmpl8, 64 * pb8, &err), &err);
    }
    free(tmpl8);
}
static void *dev_nan(llt_dtype dt, int64_t n) {
    float *h = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) h[i] = NAN;
    void *d = dev_from(dt, h, n);
    free(h);
    return d;
}
static float *host_from(llt_dtype dt, const void *d, int64_t n) {
    float *h = malloc((size_t)n * 4);
    llt_error err = {0};
    CHECK_OK(llt_cuda_download_f32(g_ctx, h, dt, d, n, &err), &err);
    return h;
}
static void dfree(void *p) { llt_cuda_release(g_ctx, p); }

static const char *path_name(llt_cuda_path p) {
    return p == LLT_CUDA_PATH_GEMV ? "gemv" : p == LLT_CUDA_PATH_BLAS ? "blas" : "auto";
}

/* ---- linear layers ------------------------------------------------------------------------- */

typedef struct lin_case {
    int m, n, k;
} lin_case;

static const lin_case k_lin[] = {{1, 64, 64},   {1, 4096, 1024}, {2, 300, 136}, {3, 130, 72},
                                 {4, 1000, 512}, {1, 32000, 256}, {5, 78, 40},   {17, 256, 172},
                                 {64, 512, 256}, {1, 64, 172},    {4, 2, 8}};

static bool gemv_ok(int m, int k) { return m <= 4 && k % 8 == 0; }

static void silu_mul(const float *gu_ref, float *o, int m, int n) {
    for (int t = 0; t < m; t++)
        for (int i = 0; i < n / 2; i++) {
            float g = gu_ref[(size_t)t * n + 2 * i], u = gu_ref[(size_t)t * n + 2 * i + 1];
            o[(size_t)t * (n / 2) + i] = g / (1.0f + expf(-g)) * u;
        }
}

/* One (shape, dtype, in, out, path): runs the op and checks it. */
static void lin_check(llt_dtype dt, const lin_case *lc, llt_cuda_lin_in in, llt_cuda_lin_out out,
                      llt_cuda_path path) {
    const int m = lc->m, n = lc->n, k = lc->k;
    float *w = rand_vec((int64_t)n * k, -1.0f / sqrtf(k), 1.0f / sqrtf(k));
    round_vec(dt, w, (int64_t)n * k);
    float *x = rand_vec((int64_t)m * k, -2.0f, 2.0f), *nw = rand_vec(k, 0.5f, 1.5f);
    float *xin = malloc((size_t)m * k * 4), *ref = malloc((size_t)m * n * 4);
    if (in == LLT_LIN_IN_ACT) {
        round_vec(dt, x, (int64_t)m * k);
        memcpy(xin, x, (size_t)m * k * 4);
    } else {
        llt_rmsnorm_f32(x, nw, xin, m, k, 1e-5f);
        round_vec(dt, xin, (int64_t)m * k);
    }
    llt_gemm_f32(xin, w, ref, m, n, k);
    float *y0 = rand_vec((int64_t)m * n, -1, 1);
    void *dw = dev_from(dt, w, (int64_t)n * k);
    void *dx = dev_from(in == LLT_LIN_IN_ACT ? dt : LLT_DTYPE_F32, x, (int64_t)m * k);
    void *dnw = dev_from(LLT_DTYPE_F32, nw, k);
    void *dy = out == LLT_LIN_OUT_ADD ? dev_from(LLT_DTYPE_F32, y0, (int64_t)m * n) : dev_nan(LLT_DTYPE_F32, (int64_t)m * n);
    void *dout = dev_nan(dt, (int64_t)m * (n / 2 > 0 ? n / 2 : 1));
    void *tx = dev_alloc((size_t)m * k * 2), *ty = dev_alloc((size_t)m * n * 4);
    llt_cuda_linear a = {.dtype = dt, .w = dw, .n = n, .k = k, .m = m, .in = in, .x = dx, .ldx = k,
                         .norm_w = dnw, .eps = 1e-5f, .out = out, .y = dy, .ldy = n, .o = dout,
                         .ldo = n / 2, .tmp_x = tx, .tmp_y = ty};
    llt_error err = {0};
    CHECK_OK(llt_cuda_linear_run(g_ctx, &a, path, &err), &err);
    double e = 0, bound;
    if (out == LLT_LIN_OUT_SWIGLU) {
        float *oref = malloc((size_t)m * (n / 2) * 4), *got = host_from(dt, dout, (int64_t)m * (n / 2));
        silu_mul(ref, oref, m, n);
        e = tl_rel_err(got, oref, (size_t)m * (n / 2));
        /* input rounding (2u, see NORM below) + the BLAS path rounds gate/up to the dtype (u)
         * + the output is rounded (u) */
        bound = 4 * unit(dt);
        free(oref), free(got);
    } else {
        float *got = host_from(LLT_DTYPE_F32, dy, (int64_t)m * n);
        if (out == LLT_LIN_OUT_ADD)
            for (int64_t i = 0; i < (int64_t)m * n; i++) ref[i] += y0[i];
        e = tl_rel_err(got, ref, (size_t)m * n);
        /* ACT: identical dtype inputs, float32 accumulation in another order: ~k * 2^-24.
         * NORM: the normalised row is rounded to the dtype on both sides, but a different
         * rsqrt / summation order can move an element's rounding by one unit: 2u. */
        bound = in == LLT_LIN_IN_ACT ? 1e-4 : 2 * unit(dt);
        free(got);
    }
    CHECK_MSG(e <= bound, "%s m %d n %d k %d in %d out %d path %s: rel err %.3g > %.3g", llt_dtype_name(dt), m, n,
              k, (int)in, (int)out, path_name(path), e, bound);
    dfree(dw), dfree(dx), dfree(dnw), dfree(dy), dfree(dout), dfree(tx), dfree(ty);
    free(w), free(x), free(nw), free(xin), free(ref), free(y0);
}

static void lin_modes(llt_dtype dt, const lin_case *lc, llt_cuda_path path) {
    lin_check(dt, lc, LLT_LIN_IN_ACT, LLT_LIN_OUT_STORE, path);
    lin_check(dt, lc, LLT_LIN_IN_ACT, LLT_LIN_OUT_ADD, path);
    lin_check(dt, lc, LLT_LIN_IN_NORM, LLT_LIN_OUT_STORE, path);
    if (lc->n % 2 == 0) lin_check(dt, lc, LLT_LIN_IN_NORM, LLT_LIN_OUT_SWIGLU, path);
}

static void test_linear(void) {
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof k_lin / sizeof k_lin[0]; i++) {
            const lin_case *lc = &k_lin[i];
            lin_modes(k_dts[d], lc, LLT_CUDA_PATH_AUTO);
            lin_modes(k_dts[d], lc, LLT_CUDA_PATH_BLAS);
            if (!gemv_ok(lc->m, lc->k)) continue;
            for (int cfg = 0; cfg < llt_cuda_gemv_configs(); cfg++) { /* every configuration */
                llt_cuda_set_gemv_config(g_ctx, cfg);
                lin_modes(k_dts[d], lc, LLT_CUDA_PATH_GEMV);
            }
            llt_cuda_set_gemv_config(g_ctx, 0);
        }
}

/* The QKV product's host side (m <= 4 tokens, n = (nh + 2 nkv) hd rows): random weights
 * rounded to dt, input x and norm weights nw, the rotary tables (sn, cs) for QKV_MAX_POS
 * positions, a random position per token, and ref = norm -> gemm with Q and K rotated there. */
enum { QKV_MAX_POS = 300 };
typedef struct qkv_ref {
    float *w, *x, *nw, *ref, *sn, *cs;
    int32_t pos[4];
} qkv_ref;

static void qkv_ref_make(qkv_ref *r, llt_dtype dt, int m, int k, int nh, int nkv, int hd) {
    const int qr = nh * hd, n = qr + 2 * nkv * hd;
    r->w = rand_vec((int64_t)n * k, -1.0f / sqrtf(k), 1.0f / sqrtf(k));
    round_vec(dt, r->w, (int64_t)n * k);
    r->x = rand_vec((int64_t)m * k, -2, 2), r->nw = rand_vec(k, 0.5f, 1.5f);
    float *xin = malloc((size_t)m * k * 4);
    r->ref = malloc((size_t)m * n * 4);
    llt_rmsnorm_f32(r->x, r->nw, xin, m, k, 1e-6f);
    round_vec(dt, xin, (int64_t)m * k);
    llt_gemm_f32(xin, r->w, r->ref, m, n, k);
    free(xin);
    r->sn = malloc((size_t)QKV_MAX_POS * hd / 2 * 4), r->cs = malloc((size_t)QKV_MAX_POS * hd / 2 * 4);
    llt_error err = {0};
    CHECK_OK(llt_rotary_build(10000.0f, hd, QKV_MAX_POS, r->sn, r->cs, &err), &err);
    for (int t = 0; t < m; t++) {
        r->pos[t] = (int32_t)frand(0, QKV_MAX_POS - 1);
        llt_rotary_apply(r->ref + (size_t)t * n, nh, hd, r->sn, r->cs, r->pos[t]);
        llt_rotary_apply(r->ref + (size_t)t * n + qr, nkv, hd, r->sn, r->cs, r->pos[t]);
    }
}

static void qkv_ref_free(qkv_ref *r) {
    free(r->w), free(r->x), free(r->nw), free(r->ref), free(r->sn), free(r->cs);
}

/* QKV with rotary and the KV write, against norm -> gemm -> llt_rotary_apply. */
static void qkv_check(llt_dtype dt, int m, int k, int nh, int nkv, int hd, llt_cuda_path path) {
    const int qr = nh * hd, kvr = nkv * hd, n = qr + 2 * kvr, max_pos = QKV_MAX_POS, slots = 16;
    qkv_ref R;
    qkv_ref_make(&R, dt, m, k, nh, nkv, hd);
    float *w = R.w, *x = R.x, *nw = R.nw, *ref = R.ref, *sn = R.sn, *cs = R.cs;
    const int32_t *pos = R.pos;
    llt_error err = {0};
    int32_t slot[4];
    for (int t = 0; t < m; t++) slot[t] = (t * 5 + 3) % slots;
    void *dw = dev_from(dt, w, (int64_t)n * k), *dx = dev_from(LLT_DTYPE_F32, x, (int64_t)m * k);
    void *dnw = dev_from(LLT_DTYPE_F32, nw, k), *dq = dev_nan(LLT_DTYPE_F32, (int64_t)m * qr);
    void *dk = dev_nan(dt, (int64_t)slots * kvr), *dv = dev_nan(dt, (int64_t)slots * kvr);
    void *dsn = dev_from(LLT_DTYPE_F32, sn, (int64_t)max_pos * hd / 2), *dcs = dev_from(LLT_DTYPE_F32, cs, (int64_t)max_pos * hd / 2);
    void *dpos = dev_alloc(16), *dslot = dev_alloc(16);
    CHECK_OK(llt_cuda_upload(g_ctx, dpos, pos, (size_t)m * 4, &err), &err);
    CHECK_OK(llt_cuda_upload(g_ctx, dslot, slot, (size_t)m * 4, &err), &err);
    void *tx = dev_alloc((size_t)m * k * 2), *ty = dev_alloc((size_t)m * n * 4);
    llt_cuda_linear a = {.dtype = dt, .w = dw, .n = n, .k = k, .m = m, .in = LLT_LIN_IN_NORM, .x = dx, .ldx = k,
                         .norm_w = dnw, .eps = 1e-6f, .out = LLT_LIN_OUT_QKV, .q = dq, .q_rows = qr,
                         .kv_rows = kvr, .head_dim = hd, .k_pool = dk, .v_pool = dv, .slot = dslot,
                         .pos = dpos, .rope_cos = dcs, .rope_sin = dsn, .tmp_x = tx, .tmp_y = ty};
    CHECK_OK(llt_cuda_linear_run(g_ctx, &a, path, &err), &err);
    float *q = host_from(LLT_DTYPE_F32, dq, (int64_t)m * qr), *kp = host_from(dt, dk, (int64_t)slots * kvr);
    float *vp = host_from(dt, dv, (int64_t)slots * kvr);
    float *qref = malloc((size_t)m * qr * 4), *kg = malloc((size_t)m * kvr * 4), *kref = malloc((size_t)m * kvr * 4);
    float *vg = malloc((size_t)m * kvr * 4), *vref = malloc((size_t)m * kvr * 4);
    int untouched_ok = 1;
    for (int t = 0; t < m; t++) {
        memcpy(qref + (size_t)t * qr, ref + (size_t)t * n, (size_t)qr * 4);
        memcpy(kref + (size_t)t * kvr, ref + (size_t)t * n + qr, (size_t)kvr * 4);
        memcpy(vref + (size_t)t * kvr, ref + (size_t)t * n + qr + kvr, (size_t)kvr * 4);
        memcpy(kg + (size_t)t * kvr, kp + (size_t)slot[t] * kvr, (size_t)kvr * 4);
        memcpy(vg + (size_t)t * kvr, vp + (size_t)slot[t] * kvr, (size_t)kvr * 4);
    }
    for (int s = 0; s < slots; s++) { /* slots nobody wrote keep their poison */
        int used = 0;
        for (int t = 0; t < m; t++) used |= slot[t] == s;
        if (!used) untouched_ok &= isnan(kp[(size_t)s * kvr]) && isnan(vp[(size_t)s * kvr + kvr - 1]);
    }
    CHECK_MSG(untouched_ok, "qkv: a KV slot not addressed by any token was written");
    /* q is float32 after the rotation: only the input rounding (2u, as NORM above);
     * k and v are stored in the dtype: one more rounding (3u) */
    double eq = tl_rel_err(q, qref, (size_t)m * qr), ek = tl_rel_err(kg, kref, (size_t)m * kvr);
    double ev = tl_rel_err(vg, vref, (size_t)m * kvr);
    CHECK_MSG(eq <= 2 * unit(dt) && ek <= 3 * unit(dt) && ev <= 3 * unit(dt),
              "qkv %s m %d k %d heads %d/%d hd %d path %s: q %.3g k %.3g v %.3g", llt_dtype_name(dt), m, k, nh,
              nkv, hd, path_name(path), eq, ek, ev);
    void *ptrs[] = {dw, dx, dnw, dq, dk, dv, dsn, dcs, dpos, dslot, tx, ty};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) dfree(ptrs[i]);
    qkv_ref_free(&R);
    free(q), free(kp), free(vp), free(qref), free(kg), free(kref), free(vg), free(vref);
}

static void test_qkv(void) {
    const int shapes[][5] = {{1, 64, 8, 4, 8}, {2, 128, 4, 2, 32}, {3, 512, 8, 2, 64}, {4, 256, 2, 1, 128}, {1, 136, 6, 2, 10}};
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            const int *s = shapes[i];
            qkv_check(k_dts[d], s[0], s[1], s[2], s[3], s[4], LLT_CUDA_PATH_AUTO);
            qkv_check(k_dts[d], s[0], s[1], s[2], s[3], s[4], LLT_CUDA_PATH_BLAS);
            for (int cfg = 0; gemv_ok(s[0], s[1]) && cfg < llt_cuda_gemv_configs(); cfg++) {
                llt_cuda_set_gemv_config(g_ctx, cfg);
                qkv_check(k_dts[d], s[0], s[1], s[2], s[3], s[4], LLT_CUDA_PATH_GEMV);
            }
            llt_cuda_set_gemv_config(g_ctx, 0);
        }
}

/* ---- element-wise ops ------------------------------------------------------------------------ */

static void test_rmsnorm(void) {
    const int shapes[][2] = {{1, 64}, {3, 100}, {17, 4096}, {2, 5001}};
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < 4; i++)
            for (int with_add = 0; with_add < 2; with_add++) {
                llt_dtype dt = k_dts[d];
                int n = shapes[i][0], dim = shapes[i][1];
                float *x = rand_vec((int64_t)n * dim, -3, 3), *add = rand_vec((int64_t)n * dim, -1, 1);
                float *w = rand_vec(dim, 0.5f, 1.5f), *ref = malloc((size_t)n * dim * 4);
                void *dx = dev_from(LLT_DTYPE_F32, x, (int64_t)n * dim), *dadd = dev_from(LLT_DTYPE_F32, add, (int64_t)n * dim);
                void *dw = dev_from(LLT_DTYPE_F32, w, dim), *dy = dev_nan(dt, (int64_t)n * dim);
                llt_error err = {0};
                CHECK_OK(llt_cuda_rmsnorm(g_ctx, dt, dx, with_add ? dadd : NULL, NULL, dw, dy, n, dim, 1e-5f, &err), &err);
                if (with_add)
                    for (int64_t j = 0; j < (int64_t)n * dim; j++) x[j] += add[j];
                llt_rmsnorm_f32(x, w, ref, n, dim, 1e-5f);
                float *y = host_from(dt, dy, (int64_t)n * dim), *xs = host_from(LLT_DTYPE_F32, dx, (int64_t)n * dim);
                /* the residual sum is the same float addition on both sides: exact */
                CHECK_MSG(memcmp(xs, x, (size_t)n * dim * 4) == 0, "rmsnorm: residual add differs");
                /* one rounding of the output (u) + float32 sum order / rsqrt: 2u */
                double e = tl_rel_err(y, ref, (size_t)n * dim);
                CHECK_MSG(e <= 2 * unit(dt), "rmsnorm %s %dx%d add %d: %.3g", llt_dtype_name(dt), n, dim, with_add, e);
                dfree(dx), dfree(dadd), dfree(dw), dfree(dy);
                free(x), free(add), free(w), free(ref), free(y), free(xs);
            }
}

static void test_rope_kv(void) {
    const int shapes[][4] = {{1, 4, 2, 8}, {3, 8, 8, 64}, {2, 32, 8, 128}, {5, 6, 2, 10}};
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < 4; i++) {
            llt_dtype dt = k_dts[d];
            int m = shapes[i][0], nh = shapes[i][1], nkv = shapes[i][2], hd = shapes[i][3];
            int qr = nh * hd, kvr = nkv * hd, ld = qr + 2 * kvr + 3, max_pos = 64, slots = 8;
            float *qkv = rand_vec((int64_t)m * ld, -2, 2);
            float *sn = malloc((size_t)max_pos * hd / 2 * 4), *cs = malloc((size_t)max_pos * hd / 2 * 4);
            llt_error err = {0};
            CHECK_OK(llt_rotary_build(500000.0f, hd, max_pos, sn, cs, &err), &err);
            int32_t pos[5], slot[5];
            for (int t = 0; t < m; t++) pos[t] = (t * 17 + 5) % max_pos, slot[t] = (slots - 1 - t) % slots;
            void *dqkv = dev_from(LLT_DTYPE_F32, qkv, (int64_t)m * ld), *dq = dev_nan(LLT_DTYPE_F32, (int64_t)m * qr);
            void *dk = dev_nan(dt, (int64_t)slots * kvr), *dv = dev_nan(dt, (int64_t)slots * kvr);
            void *dsn = dev_from(LLT_DTYPE_F32, sn, (int64_t)max_pos * hd / 2), *dcs = dev_from(LLT_DTYPE_F32, cs, (int64_t)max_pos * hd / 2);
            void *dpos = dev_alloc(32), *dslot = dev_alloc(32);
            CHECK_OK(llt_cuda_upload(g_ctx, dpos, pos, (size_t)m * 4, &err), &err);
            CHECK_OK(llt_cuda_upload(g_ctx, dslot, slot, (size_t)m * 4, &err), &err);
            CHECK_OK(llt_cuda_rope_kv(g_ctx, dt, dqkv, ld, m, nh, nkv, hd, dpos, dslot, dcs, dsn, dq, dk, dv, &err), &err);
            float *q = host_from(LLT_DTYPE_F32, dq, (int64_t)m * qr), *kp = host_from(dt, dk, (int64_t)slots * kvr);
            float *vp = host_from(dt, dv, (int64_t)slots * kvr);
            double eq = 0, ek = 0, ev = 0;
            for (int t = 0; t < m; t++) {
                float *r = qkv + (size_t)t * ld;
                llt_rotary_apply(r, nh, hd, sn, cs, pos[t]);
                llt_rotary_apply(r + qr, nkv, hd, sn, cs, pos[t]);
                double a = tl_rel_err(q + (size_t)t * qr, r, (size_t)qr);
                double b = tl_rel_err(kp + (size_t)slot[t] * kvr, r + qr, (size_t)kvr);
                double c = tl_rel_err(vp + (size_t)slot[t] * kvr, r + qr + kvr, (size_t)kvr);
                eq = a > eq ? a : eq, ek = b > ek ? b : ek, ev = c > ev ? c : ev;
            }
            /* q: float32 with the same table: a few float ulps; k, v: one rounding (u) */
            CHECK_MSG(eq <= 1e-5 && ek <= unit(dt) && ev <= unit(dt), "rope %s m %d %d/%d hd %d: q %.3g k %.3g v %.3g",
                      llt_dtype_name(dt), m, nh, nkv, hd, eq, ek, ev);
            void *ptrs[] = {dqkv, dq, dk, dv, dsn, dcs, dpos, dslot};
            for (size_t j = 0; j < 8; j++) dfree(ptrs[j]);
            free(qkv), free(sn), free(cs), free(q), free(kp), free(vp);
        }
}

static void test_swiglu_embed(void) {
    for (int d = 0; d < 2; d++) {
        llt_dtype dt = k_dts[d];
        const int ms[2] = {1, 5}, is[2] = {7, 1000};
        for (int c = 0; c < 2; c++) {
            int m = ms[c], inter = is[c];
            float *gu = rand_vec((int64_t)m * 2 * inter, -4, 4);
            round_vec(dt, gu, (int64_t)m * 2 * inter);
            float *g = malloc((size_t)m * inter * 4), *u = malloc((size_t)m * inter * 4);
            for (int64_t j = 0; j < (int64_t)m * inter; j++) g[j] = gu[2 * j], u[j] = gu[2 * j + 1];
            llt_cpu_swiglu(g, u, (int64_t)m * inter);
            void *dgu = dev_from(dt, gu, (int64_t)m * 2 * inter), *dout = dev_nan(dt, (int64_t)m * inter);
            llt_error err = {0};
            CHECK_OK(llt_cuda_swiglu(g_ctx, dt, dgu, 2 * inter, dout, inter, m, inter, &err), &err);
            float *got = host_from(dt, dout, (int64_t)m * inter);
            /* one output rounding (u) + the fast exp (a few float ulps): 2u */
            double e = tl_rel_err(got, g, (size_t)m * inter);
            CHECK_MSG(e <= 2 * unit(dt), "swiglu %s %dx%d: %.3g", llt_dtype_name(dt), m, inter, e);
            dfree(dgu), dfree(dout);
            free(gu), free(g), free(u), free(got);
        }
        /* embedding: a gather of dtype values into float32 is exact */
        int V = 50, dim = 72, m = 5;
        int32_t tok[5] = {0, 49, 7, 7, 23};
        float *tab = rand_vec((int64_t)V * dim, -1, 1);
        round_vec(dt, tab, (int64_t)V * dim);
        void *dtab = dev_from(dt, tab, (int64_t)V * dim), *dtok = dev_alloc(sizeof tok), *dx = dev_nan(LLT_DTYPE_F32, (int64_t)m * dim);
        llt_error err = {0};
        CHECK_OK(llt_cuda_upload(g_ctx, dtok, tok, sizeof tok, &err), &err);
        CHECK_OK(llt_cuda_embed(g_ctx, dt, dtab, dtok, dx, m, dim, &err), &err);
        float *x = host_from(LLT_DTYPE_F32, dx, (int64_t)m * dim);
        int same = 1;
        for (int t = 0; t < m; t++) same &= memcmp(x + (size_t)t * dim, tab + (size_t)tok[t] * dim, (size_t)dim * 4) == 0;
        CHECK_MSG(same, "embed %s: rows differ from the table", llt_dtype_name(dt));
        dfree(dtab), dfree(dtok), dfree(dx);
        free(tab), free(x);
    }
}

/* ---- paged attention ---------------------------------------------------------------------------- */

/* Deterministic K/V value of (seq, pos, element): independent of the page size, so every page
 * size sees the same data. */
static float kv_val(int seq, int pos, int i, int which) {
    uint64_t h = (uint64_t)seq * 1000003u ^ (uint64_t)pos * 7919u ^ (uint64_t)i * 104729u ^ (uint64_t)which * 15485863u;
    h ^= h >> 33, h *= 0xff51afd7ed558ccdull, h ^= h >> 33;
    return (float)((h >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

typedef struct attn_case {
    int nh, nkv, hd, L, n_q;
} attn_case;

/* attn_run_kv's data with every score far below 0: queries -1 + [-1, 1], keys 3 + [-1, 1], so
 * q.k / sqrt(hd) lies around -3 sqrt(hd) (-24 at hd 64: 2^-35 in the exp2 domain, zero in f16) */
static bool g_neg_scores;

/* Builds a host cache with two sequences of length L whose pages interleave, runs the CPU op
 * and both GPU kernels; outputs (decode, prefill) float32 [2 * n_q, nh * hd]. */
/* One (token, kv head) row quantised as the f8 cache holds it (scale amax / 448): the e4m3
 * bytes into q8, the scale into *scale, the dequantised values back into x. */
static void f8_row(float *x, int hd, uint8_t *q8, float *scale) {
    float amax = 0;
    for (int d = 0; d < hd; d++) amax = fabsf(x[d]) > amax ? fabsf(x[d]) : amax;
    *scale = amax / 448.0f > 0 ? amax / 448.0f : 1.0f;
    for (int d = 0; d < hd; d++) q8[d] = llt_f32_to_e4m3(x[d] / *scale), x[d] = llt_e4m3_to_f32(q8[d]) * *scale;
}

/* f8 mode: the GPU pools hold e4m3 pages (paged_cache.h layout) of the K/V values, the CPU
 * reference the dequantised values in float32; *f8_err (if not NULL) gets the error of the
 * f8 prefill output against the reference over the unquantised values. */
static void attn_run_kv(llt_dtype dt, const attn_case *ac, int ps, bool f8, float **dec_out, float **pf_out,
                        double *f8_err) {
    const int nh = ac->nh, nkv = ac->nkv, hd = ac->hd, L = ac->L, n_q = ac->n_q, rows = 2 * n_q;
    const int kvr = nkv * hd, blocks = (L + ps - 1) / ps;
    llt_kv_cache_opts o = {.n_layers = 1, .n_kv_heads = nkv, .head_dim = hd, .page_size = ps,
                           .max_pages = 2 * blocks + 2, .max_seqs = 2, .kv_dtype = f8 ? LLT_DTYPE_F32 : dt};
    const size_t pb8 = llt_kv_f8_page_bytes(ps, nkv, hd), so8 = llt_kv_f8_scales_offset(ps, nkv, hd);
    uint8_t *k8 = f8 ? calloc((size_t)o.max_pages, pb8) : NULL, *v8 = f8 ? calloc((size_t)o.max_pages, pb8) : NULL;
    llt_kv_cache *kx = NULL; /* f8: the unquantised values, for the measured error */
    llt_kv_cache *kc = NULL;
    llt_error err = {0};
    CHECK_OK(llt_kv_cache_create(&o, &kc, &err), &err);
    int32_t s[2];
    CHECK_OK(llt_kv_seq_create(kc, &s[0], &err), &err);
    CHECK_OK(llt_kv_seq_create(kc, &s[1], &err), &err);
    int32_t sx[2];
    if (f8 && f8_err) { /* same page order as kc */
        CHECK_OK(llt_kv_cache_create(&o, &kx, &err), &err);
        CHECK_OK(llt_kv_seq_create(kx, &sx[0], &err), &err);
        CHECK_OK(llt_kv_seq_create(kx, &sx[1], &err), &err);
    }
    for (int p0 = 0; p0 < L; p0 += ps) /* page by page, alternating: interleaved pages */
        for (int j = 0; j < 2; j++) {
            int n = L - p0 < ps ? L - p0 : ps;
            CHECK_OK(llt_kv_reserve(kc, s[j], n, &err), &err);
            if (kx) CHECK_OK(llt_kv_reserve(kx, sx[j], n, &err), &err);
            float *k = malloc((size_t)kvr * 4), *v = malloc((size_t)kvr * 4);
            for (int p = p0; p < p0 + n; p++) {
                for (int i = 0; i < kvr; i++)
                    k[i] = kv_val(j, p, i, 0) + (g_neg_scores ? 3.0f : 0.0f), v[i] = kv_val(j, p, i, 1);
                if (f8) {
                    if (f8_err) llt_kv_write_f32(kx, 0, s[j], p, k, v);
                    size_t page = (size_t)kc->seqs[s[j]].blocks[p / ps], row = (size_t)(p % ps) * nkv;
                    for (int h = 0; h < nkv; h++) {
                        size_t at = page * pb8, r = row + h;
                        f8_row(k + h * hd, hd, k8 + at + r * hd, (float *)(k8 + at + so8) + r);
                        f8_row(v + h * hd, hd, v8 + at + r * hd, (float *)(v8 + at + so8) + r);
                    }
                }
                llt_kv_write_f32(kc, 0, s[j], p, k, v);
            }
            llt_kv_commit(kc, s[j], n);
            if (kx) llt_kv_commit(kx, sx[j], n);
            free(k), free(v);
        }
    g_rng = 99; /* same queries for every page size */
    float *q = rand_vec((int64_t)rows * nh * hd, g_neg_scores ? -2 : -1, g_neg_scores ? 0 : 1);
    round_vec(dt, q, (int64_t)rows * nh * hd); /* the prefill kernel holds Q in the dtype */
    size_t pool = (f8 ? pb8 : kc->page_bytes) * (size_t)o.max_pages;
    void *dk = dev_alloc(pool), *dv = dev_alloc(pool);
    CHECK_OK(llt_cuda_upload(g_ctx, dk, f8 ? k8 : kc->k_pool[0], pool, &err), &err);
    CHECK_OK(llt_cuda_upload(g_ctx, dv, f8 ? v8 : kc->v_pool[0], pool, &err), &err);
    int32_t *bt = calloc((size_t)2 * blocks, 4), *row_bt = malloc((size_t)rows * 4), *pos = malloc((size_t)rows * 4);
    for (int j = 0; j < 2; j++) memcpy(bt + (size_t)j * blocks, kc->seqs[s[j]].blocks, (size_t)blocks * 4);
    for (int r = 0; r < rows; r++) row_bt[r] = r / n_q, pos[r] = L - n_q + r % n_q;
    void *dbt = dev_alloc((size_t)2 * blocks * 4), *drbt = dev_alloc((size_t)rows * 4), *dpos = dev_alloc((size_t)rows * 4);
    CHECK_OK(llt_cuda_upload(g_ctx, dbt, bt, (size_t)2 * blocks * 4, &err), &err);
    CHECK_OK(llt_cuda_upload(g_ctx, drbt, row_bt, (size_t)rows * 4, &err), &err);
    CHECK_OK(llt_cuda_upload(g_ctx, dpos, pos, (size_t)rows * 4, &err), &err);
    /* the long-context kernel's splits; its first version (LLT_CUDA_DECODE_LONG=v1) twice that */
    int splits = llt_cuda_attn_splits(g_ctx, rows, nkv), ls = 2 * llt_cuda_attn_long_splits(g_ctx, rows, nkv);
    void *work = dev_alloc((size_t)llt_cuda_attn_work_floats(rows, splits > ls ? splits : ls, nh, hd) * 4);
    void *cnt = dev_alloc((size_t)rows * nkv * 4);
    void *pfw = dev_alloc((size_t)llt_cuda_attn_prefill_work_floats(rows, nh, hd) * 4);
    unsigned *zeros = calloc((size_t)rows * nkv, 4);
    CHECK_OK(llt_cuda_upload(g_ctx, cnt, zeros, (size_t)rows * nkv * 4, &err), &err);
    void *dq = dev_from(LLT_DTYPE_F32, q, (int64_t)rows * nh * hd);
    void *dout = dev_nan(dt, (int64_t)rows * nh * hd), *dout2 = dev_nan(dt, (int64_t)rows * nh * hd);
    void *dout3 = dev_nan(dt, (int64_t)rows * nh * hd);
    /* f8: the prefill's dequantised copy of a run's keys (the warpgroup kernel on sm_90) */
    void *k16 = f8 ? dev_alloc((size_t)L * kvr * 2) : NULL, *v16 = f8 ? dev_alloc((size_t)L * kvr * 2) : NULL;
    llt_cuda_attn a = {.dtype = dt, .q = dq, .out = dout, .k_pool = dk, .v_pool = dv, .bt = dbt, .row_bt = drbt,
                       .pos = dpos, .rows = rows, .n_heads = nh, .n_kv = nkv, .hd = hd, .page_size = ps,
                       .max_blocks = blocks, .work = work, .counters = cnt, .kv_f8 = f8, .pf_work = pfw,
                       .f8_k16 = k16, .f8_v16 = v16, .f8_keys = L};
    CHECK_OK(llt_cuda_attention_decode(g_ctx, &a, &err), &err);
    float *first = host_from(dt, dout, (int64_t)rows * nh * hd);
    CHECK_OK(llt_cuda_attention_decode(g_ctx, &a, &err), &err); /* counters were reset: same again */
    *dec_out = host_from(dt, dout, (int64_t)rows * nh * hd);
    CHECK_MSG(memcmp(first, *dec_out, (size_t)rows * nh * hd * 4) == 0, "attention decode: a second run differs");
    a.out = dout2;
    /* f8: the copy for runs of any length (by default only from 64 query rows per kv head) */
    const bool rows_forced = f8 && !getenv("LLT_CUDA_PREFILL_F8_ROWS");
    if (rows_forced) setenv("LLT_CUDA_PREFILL_F8_ROWS", "0", 1);
    CHECK_OK(llt_cuda_attention_prefill(g_ctx, &a, 0, n_q, L - n_q, &err), &err);
    CHECK_OK(llt_cuda_attention_prefill(g_ctx, &a, n_q, n_q, L - n_q, &err), &err);
    if (rows_forced) unsetenv("LLT_CUDA_PREFILL_F8_ROWS");
    *pf_out = host_from(dt, dout2, (int64_t)rows * nh * hd);
    float *pf_mma = NULL; /* f8: also the mma.sync kernel (tile by tile), the copy one key short of the run */
    if (f8) {
        a.out = dout3, a.f8_keys = L - 1;
        CHECK_OK(llt_cuda_attention_prefill(g_ctx, &a, 0, n_q, L - n_q, &err), &err);
        CHECK_OK(llt_cuda_attention_prefill(g_ctx, &a, n_q, n_q, L - n_q, &err), &err);
        pf_mma = host_from(dt, dout3, (int64_t)rows * nh * hd);
    }
    /* the long-context decode kernel (split-K on the tensor cores), forced for every length */
    setenv("LLT_CUDA_ATTN_LONG", "1", 1);
    a.out = dout3, a.max_len = L;
    CHECK_OK(llt_cuda_attention_decode(g_ctx, &a, &err), &err);
    unsetenv("LLT_CUDA_ATTN_LONG");
    float *fd = host_from(dt, dout3, (int64_t)rows * nh * hd);
    /* CPU reference on the same pages */
    float *ref = malloc((size_t)rows * nh * hd * 4);
    float *scratch = malloc((size_t)llt_cpu_attention_scratch_floats(kc, nh) * 4);
    for (int j = 0; j < 2; j++)
        llt_cpu_attention(kc, 0, s[j], q + (size_t)j * n_q * nh * hd, n_q, L - n_q, nh, 1.0f / sqrtf((float)hd),
                          ref + (size_t)j * n_q * nh * hd, scratch);
    /* decode: float32 scores and softmax, output rounded once (u) + order: 2u;
     * prefill: P is rounded to the dtype for the tensor cores (u) as well: 3u; f8: every
     * kernel is a flash kernel (3u) and dequantises K / V into the dtype (u): 4u */
    double ed = tl_rel_err(*dec_out, ref, (size_t)rows * nh * hd), ep = tl_rel_err(*pf_out, ref, (size_t)rows * nh * hd);
    double ef = tl_rel_err(fd, ref, (size_t)rows * nh * hd); /* P in the dtype, as prefill: 3u */
    double em = pf_mma ? tl_rel_err(pf_mma, ref, (size_t)rows * nh * hd) : 0;
    if (kx) {
        for (int j = 0; j < 2; j++)
            llt_cpu_attention(kx, 0, sx[j], q + (size_t)j * n_q * nh * hd, n_q, L - n_q, nh, 1.0f / sqrtf((float)hd),
                              ref + (size_t)j * n_q * nh * hd, scratch);
        *f8_err = tl_rel_err(*pf_out, ref, (size_t)rows * nh * hd);
        llt_kv_cache_free(kx);
    }
    free(k8), free(v8);
    CHECK_MSG(ed <= (f8 ? 4 : 2) * unit(dt) && ep <= (f8 ? 4 : 3) * unit(dt) && ef <= (f8 ? 4 : 3) * unit(dt) &&
                  em <= 4 * unit(dt),
              "attention %s%s heads %d/%d hd %d L %d n_q %d page %d: decode %.3g prefill %.3g long decode %.3g "
              "prefill tile by tile %.3g",
              llt_dtype_name(dt), f8 ? " (f8 cache)" : "", nh, nkv, hd, L, n_q, ps, ed, ep, ef, em);
    free(fd), free(pf_mma);
    void *ptrs[] = {dk, dv, dbt, drbt, dpos, work, cnt, dq, dout, dout2, dout3, pfw, k16, v16};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) dfree(ptrs[i]);
    free(bt), free(row_bt), free(pos), free(zeros), free(q), free(first), free(ref), free(scratch);
    llt_kv_cache_free(kc);
}

static void attn_run(llt_dtype dt, const attn_case *ac, int ps, float **dec_out, float **pf_out) {
    attn_run_kv(dt, ac, ps, false, dec_out, pf_out, NULL);
}

/* One case at page sizes 8, 16, 32 and 1024 (each sequence in one contiguous page): each
 * run is checked against the CPU op inside attn_run, and the page sizes against each other. */
static void attn_pages(llt_dtype dt, const attn_case *ac, int n_pages) {
    static const int pages[4] = {8, 16, 32, 1024}; /* 1024 >= L except for the longest contexts */
    size_t n = (size_t)2 * ac->n_q * ac->nh * ac->hd;
    float *dec0 = NULL, *pf0 = NULL;
    for (int p = 0; p < 4; p++) {
        if (n_pages == 2 && p == 1) p = 3;
        if (n_pages == 1 && p == 1) break;
        float *dec = NULL, *pf = NULL;
        attn_run(dt, ac, pages[p], &dec, &pf);
        if (p == 0) {
            dec0 = dec, pf0 = pf;
            continue;
        }
        /* page size changes addressing only: the same arithmetic, bit for bit */
        CHECK_MSG(dec && pf && memcmp(dec, dec0, n * 4) == 0 && memcmp(pf, pf0, n * 4) == 0,
                  "attention %s heads %d/%d hd %d L %d n_q %d: page size %d differs from page size 8",
                  llt_dtype_name(dt), ac->nh, ac->nkv, ac->hd, ac->L, ac->n_q, pages[p]);
        free(dec), free(pf);
    }
    free(dec0), free(pf0);
}

static void test_attention(void) {
    /* hd 64 / 128 with 1, 2, 4 or 8 query heads per kv head take the cluster kernel; the
     * others (hd 32, 80, 10; 3 or 16 heads per kv head) the split kernel */
    const attn_case cases[] = {{4, 4, 64, 1, 1},     {8, 2, 128, 37, 3},  {8, 2, 128, 600, 70}, {4, 1, 32, 200, 5},
                               {32, 8, 128, 300, 1}, {6, 2, 80, 130, 9},  {2, 1, 10, 50, 2},    {16, 2, 64, 257, 65},
                               {32, 4, 64, 640, 1},  {8, 1, 64, 300, 2},  {4, 2, 128, 100, 4},  {16, 2, 128, 513, 1},
                               {16, 1, 64, 70, 1},   {32, 4, 64, 77, 4},  {32, 32, 128, 200, 1}};
    const int n_pages = getenv("LLT_SANITIZER") ? 2 : 4; /* racecheck is slow: 8 and 1024 there */
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) attn_pages(k_dts[d], &cases[i], n_pages);
    /* context lengths around the chunk and split boundaries, up to 4096 (tinyllama's and
     * llama3's head shapes; MQA with 8 heads) */
    const int lens[] = {1, 2, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 255, 257, 511, 1000, 2049, 4096};
    const int n_lens = getenv("LLT_SANITIZER") ? 6 : (int)(sizeof lens / sizeof lens[0]);
    for (int i = 0; i < n_lens; i++) {
        const attn_case a = {32, 4, 64, lens[i], 1}, b = {32, 8, 128, lens[i], 1}, c = {8, 1, 64, lens[i], 1};
        attn_pages(LLT_DTYPE_F16, &a, i % 3 == 0 ? n_pages : 1);
        attn_pages(LLT_DTYPE_BF16, &b, 1);
        attn_pages(LLT_DTYPE_F16, &c, 1);
    }
    /* every cluster size (forced), and the split kernel on shapes the cluster kernel covers */
    const attn_case sized[] = {{32, 4, 64, 640, 1}, {8, 2, 128, 37, 3}, {8, 1, 64, 300, 2}, {4, 4, 64, 5, 2}};
    const char *sizes[] = {"1", "2", "3", "5", "8", "16"};
    for (size_t v = 0; v < sizeof sizes / sizeof sizes[0]; v++) {
        setenv("LLT_CUDA_ATTN_CS", sizes[v], 1);
        for (size_t i = 0; i < sizeof sized / sizeof sized[0]; i++) attn_pages(k_dts[v % 2], &sized[i], 1);
    }
    unsetenv("LLT_CUDA_ATTN_CS");
    setenv("LLT_CUDA_ATTN", "v1", 1);
    for (size_t i = 0; i < sizeof sized / sizeof sized[0]; i++) attn_pages(LLT_DTYPE_F16, &sized[i], 2);
    unsetenv("LLT_CUDA_ATTN");
}

/* One random multi-tile prefill case (200 to 4200 keys, up to 500 queries) under the caller's
 * environment, against the CPU op (attn_run) */
static void ws_random_case(llt_dtype dt, int hd, int G, int nkv, int ps, bool san) {
    int L = 200 + (int)frand(0, san ? 600 : 4000), n_q = 1 + (int)frand(0, 500);
    if (n_q > L) n_q = L;
    attn_case ac = {G * nkv, nkv, hd, L, n_q};
    float *dec = NULL, *pf = NULL;
    uint64_t keep = g_rng;
    attn_run(dt, &ac, ps, &dec, &pf);
    g_rng = keep; /* attn_run reseeds its queries */
    free(dec), free(pf);
}

/* Random shapes for the prefill (and decode) kernels against the CPU op: head_dim 64 / 128,
 * 1, 4 or 8 query heads per kv head, page sizes 16 / 32 / 64, lengths and query counts that
 * are multiples of no tile, f16 and bf16; then a few long contexts up to 131072 keys (few
 * queries: the CPU reference is the slow side). Bounds as in attn_run (prefill 3u). */
static void test_flash_shapes(void) {
    static const int hds[2] = {64, 128}, groups[3] = {1, 4, 8}, pss[3] = {16, 32, 64};
    const bool san = getenv("LLT_SANITIZER") != NULL;
    g_rng = 4242;
    for (int i = 0; i < (san ? 6 : 24); i++) {
        int hd = hds[i % 2], G = groups[(i / 2) % 3], nkv = 1 + (int)frand(0, 2), ps = pss[(i / 6) % 3];
        int L = 1 + (int)frand(0, san ? 300 : 3000), n_q = 1 + (int)frand(0, L < 400 ? L : 400);
        if (n_q > L) n_q = L;
        attn_case ac = {G * nkv, nkv, hd, L, n_q};
        float *dec = NULL, *pf = NULL;
        uint64_t keep = g_rng;
        attn_run(k_dts[i % 2], &ac, ps, &dec, &pf);
        g_rng = keep; /* attn_run reseeds its queries */
        free(dec), free(pf);
    }
    /* rows whose scores all lie far below 0 (g_neg_scores): softmax against a reference
     * maximum of 0 underflows there (every exponential zero in f16), so each kernel must start a
     * row from its first keys' own maximum; the warp-specialised kernel at hd 64 with two and
     * three consumers (their defaults: exponentials against the reference first), with key
     * splits (a split's first tile), at hd 128, bf16, then the mma.sync and synchronous kernels */
    g_neg_scores = true;
    for (int i = 0; i < (san ? 3 : 8); i++) {
        static const char *kinds[8] = {"ws", "ws", "ws", "ws", "ws", "ws", "sync", "mma"};
        const int hd = i == 3 ? 128 : 64, L = 600 + (int)frand(0, san ? 400 : 2400), n_q = 64 + (int)frand(0, 300);
        attn_case ac = {4 * (1 + i % 2), 1 + i % 2, hd, L, n_q};
        float *dec = NULL, *pf = NULL;
        uint64_t keep = g_rng;
        if (i == 7) setenv("LLT_CUDA_PREFILL", "mma", 1);
        else setenv("LLT_CUDA_PREFILL_WG", kinds[i], 1);
        if (i == 1 || i == 2 || i == 5) setenv("LLT_CUDA_PREFILL_WS_NC", "3", 1);
        if (i == 2 || i == 4) setenv("LLT_CUDA_PREFILL_SPLITS", "3", 1);
        attn_run(i == 4 || i == 5 ? LLT_DTYPE_BF16 : LLT_DTYPE_F16, &ac, pss[i % 3], &dec, &pf);
        unsetenv("LLT_CUDA_PREFILL");
        unsetenv("LLT_CUDA_PREFILL_WG");
        unsetenv("LLT_CUDA_PREFILL_WS_NC");
        unsetenv("LLT_CUDA_PREFILL_SPLITS");
        g_rng = keep;
        free(dec), free(pf);
    }
    g_neg_scores = false;
    /* the mma.sync prefill kernel on random shapes (on sm_90 the warpgroup kernel is the
     * default for hd 64 / 128), and the warpgroup kernel with forced key splits */
    for (int i = 0; i < (san ? 2 : 6); i++) {
        int hd = hds[i % 2], G = groups[i % 3], nkv = 1 + i % 2, ps = pss[(i + 1) % 3];
        int L = 1 + (int)frand(0, san ? 300 : 3000), n_q = 1 + (int)frand(0, L < 300 ? L : 300);
        if (n_q > L) n_q = L;
        attn_case ac = {G * nkv, nkv, hd, L, n_q};
        float *dec = NULL, *pf = NULL;
        uint64_t keep = g_rng;
        setenv(i < 3 ? "LLT_CUDA_PREFILL" : "LLT_CUDA_PREFILL_SPLITS", i < 3 ? "mma" : (i == 3 ? "2" : "3"), 1);
        attn_run(k_dts[i % 2], &ac, ps, &dec, &pf);
        unsetenv("LLT_CUDA_PREFILL");
        unsetenv("LLT_CUDA_PREFILL_SPLITS");
        g_rng = keep;
        free(dec), free(pf);
    }
    /* the warpgroup kernels by name (LLT_CUDA_PREFILL_WG: ovl, softmax overlapped with the
     * P V product, sync, pp, the warpgroups in ping-pong, and ws, warp-specialised with a producer
     * warpgroup) on random shapes of many key tiles (causal diagonals, GQA rows past a tile, 16
     * to 4000 keys), then with forced key splits (tiles of a split that start past a row's
     * position: rows with no key yet) */
    static const char *wg_kinds[4] = {"ovl", "sync", "pp", "ws"};
    for (int i = 0; i < (san ? 4 : 16); i++) {
        int hd = hds[i % 2], G = groups[(i / 2) % 3], nkv = 1 + (i / 4) % 2, ps = pss[i % 3];
        int L = 16 + (int)frand(0, san ? 600 : 4000), n_q = 1 + (int)frand(0, L < 500 ? L : 500);
        if (n_q > L) n_q = L;
        attn_case ac = {G * nkv, nkv, hd, L, n_q};
        float *dec = NULL, *pf = NULL;
        uint64_t keep = g_rng;
        setenv("LLT_CUDA_PREFILL_WG", wg_kinds[(san ? i : i / 2) % 4], 1);
        if (i % 8 == 7) setenv("LLT_CUDA_PREFILL_WS_ST", "2", 1); /* ws at hd 128: two stages (default three) */
        if (i >= (san ? 2 : 10)) setenv("LLT_CUDA_PREFILL_SPLITS", i % 3 ? "3" : "2", 1);
        attn_run(k_dts[(i / 4) % 2], &ac, ps, &dec, &pf);
        unsetenv("LLT_CUDA_PREFILL_WG");
        unsetenv("LLT_CUDA_PREFILL_WS_ST");
        unsetenv("LLT_CUDA_PREFILL_SPLITS");
        g_rng = keep;
        free(dec), free(pf);
    }
    /* the warp-specialised kernel's softmax variants (LLT_CUDA_PREFILL_WS_EXP: 0 keeps a row max
     * exceeded by at most 8 and skips O's rescale when none moved, 1 / 2 also a quarter / half of
     * the exponentials by a polynomial, -1 the plain softmax, the default with three hd 64 consumers)
     * on random multi-tile shapes, f16 and bf16, hd 64 and 128, the last three with key splits
     * (rows with no key yet: masked keys through the polynomial) */
    static const char *ws_exps[4] = {"0", "1", "2", "-1"};
    char ws_exp_env[16] = ""; /* a value forced from outside is put back after */
    const char *ws_exp_set = getenv("LLT_CUDA_PREFILL_WS_EXP");
    if (ws_exp_set) snprintf(ws_exp_env, sizeof ws_exp_env, "%s", ws_exp_set);
    for (int i = 0; i < (san ? 4 : 8); i++) {
        setenv("LLT_CUDA_PREFILL_WG", "ws", 1);
        setenv("LLT_CUDA_PREFILL_WS_EXP", ws_exps[i % 4], 1);
        if (i >= 5) setenv("LLT_CUDA_PREFILL_SPLITS", "3", 1);
        ws_random_case(k_dts[(i / 3) % 2], hds[i % 2], groups[i % 3], 1 + i % 2, pss[(i + 2) % 3], san);
        unsetenv("LLT_CUDA_PREFILL_WG");
        unsetenv("LLT_CUDA_PREFILL_WS_EXP");
        unsetenv("LLT_CUDA_PREFILL_SPLITS");
    }
    /* LLT_CUDA_PREFILL_WS_EXP=4: the exponentials against the row's reference max before the
     * tile's max is known; LLT_CUDA_PREFILL_WS_SPEC (how far the tile max may pass it) 8 (the
     * default: these scores never pass it, the fast path alone), 0 (the exact path at every new
     * max) and 0.5 (warps of one warpgroup on different paths), with two and three consumers
     * (LLT_CUDA_PREFILL_WS_NC; three also with the row sums by the tensor cores, _RS=1) and key
     * splits (rows with no key yet: the exact path) */
    static const char *ws_specs[3] = {"8", "0", "0.5"};
    for (int i = 0; i < (san ? 3 : 9); i++) {
        setenv("LLT_CUDA_PREFILL_WG", "ws", 1);
        setenv("LLT_CUDA_PREFILL_WS_EXP", "4", 1);
        setenv("LLT_CUDA_PREFILL_WS_SPEC", ws_specs[i % 3], 1);
        setenv("LLT_CUDA_PREFILL_WS_NC", i / 3 == 1 ? "2" : "3", 1);
        if (i == 0 || i == 2 || i == 6) setenv("LLT_CUDA_PREFILL_WS_RS", "1", 1); /* (hd 64, three consumers) */
        if (i == 1 || i == 7) setenv("LLT_CUDA_PREFILL_WS_RS", "0", 1);       /* (RS is three's default) */
        if (i >= 6) setenv("LLT_CUDA_PREFILL_SPLITS", "3", 1);
        ws_random_case(k_dts[(i / 2) % 2], hds[i % 2], groups[i % 3], 1 + (i / 3) % 2, pss[(i + 1) % 3], san);
        unsetenv("LLT_CUDA_PREFILL_WG");
        unsetenv("LLT_CUDA_PREFILL_WS_EXP");
        unsetenv("LLT_CUDA_PREFILL_WS_SPEC");
        unsetenv("LLT_CUDA_PREFILL_WS_NC");
        unsetenv("LLT_CUDA_PREFILL_WS_RS");
        unsetenv("LLT_CUDA_PREFILL_SPLITS");
    }
    /* LLT_CUDA_PREFILL_WS_EXP=7 (hd 64): 4 with the fast path's check on the packed P, the specs
     * above with three consumers (RS) and two, key splits, then rows of all-negative scores */
    for (int i = 0; i < (san ? 3 : 8); i++) {
        setenv("LLT_CUDA_PREFILL_WG", "ws", 1);
        setenv("LLT_CUDA_PREFILL_WS_EXP", "7", 1);
        setenv("LLT_CUDA_PREFILL_WS_SPEC", ws_specs[i % 3], 1);
        setenv("LLT_CUDA_PREFILL_WS_NC", i < 3 || i == 7 ? "3" : "2", 1);
        if (i == 5 || i == 7) setenv("LLT_CUDA_PREFILL_SPLITS", "3", 1);
        g_neg_scores = i >= 6;
        ws_random_case(k_dts[i % 2], 64, groups[i % 3], 1 + (i / 3) % 2, pss[(i + 2) % 3], san);
        g_neg_scores = false;
        unsetenv("LLT_CUDA_PREFILL_WG");
        unsetenv("LLT_CUDA_PREFILL_WS_EXP");
        unsetenv("LLT_CUDA_PREFILL_WS_SPEC");
        unsetenv("LLT_CUDA_PREFILL_WS_NC");
        unsetenv("LLT_CUDA_PREFILL_SPLITS");
    }
    if (ws_exp_env[0]) setenv("LLT_CUDA_PREFILL_WS_EXP", ws_exp_env, 1);
    /* the warp-specialised kernel's hd 64 variants (LLT_CUDA_PREFILL_WS_NC=3: three consumer
     * warpgroups, 192-row blocks; _RS=1: row sums by the tensor cores; _OV=1: exponentials under the
     * running P V) on random multi-tile shapes, f16 and bf16, the last three with key splits */
    static const char *ws_vars[3] = {"LLT_CUDA_PREFILL_WS_NC", "LLT_CUDA_PREFILL_WS_RS", "LLT_CUDA_PREFILL_WS_OV"};
    for (int i = 0; i < (san ? 3 : 6); i++) {
        setenv(ws_vars[i % 3], i % 3 ? "1" : "3", 1);
        if (i >= 3) setenv("LLT_CUDA_PREFILL_SPLITS", "3", 1);
        if (i == 3) setenv("LLT_CUDA_PREFILL_WS_RS", "0", 1); /* three consumers without RS */
        ws_random_case(k_dts[i % 2], 64, groups[i % 3], 1 + i % 2, pss[(i + 1) % 3], san);
        unsetenv(ws_vars[i % 3]);
        unsetenv("LLT_CUDA_PREFILL_SPLITS");
        unsetenv("LLT_CUDA_PREFILL_WS_RS");
    }
    /* page sizes that are no power of two (the decode kernel divides instead of shifting);
     * the first long-decode version once */
    for (int i = 0; i < 2; i++) {
        attn_case ac = {8, 2, 64 * (1 + i), 333 + 401 * i, 3 + i};
        float *dec = NULL, *pf = NULL;
        attn_run(k_dts[i], &ac, 24 + 24 * i, &dec, &pf);
        free(dec), free(pf);
        setenv("LLT_CUDA_DECODE_LONG", "v1", 1);
        attn_run(k_dts[i], &ac, 16, &dec, &pf);
        unsetenv("LLT_CUDA_DECODE_LONG");
        free(dec), free(pf);
    }
    /* the key-range splits of the prefill kernel (by default only from FA_DEEP = 4096 keys),
     * forced, with 64- and 128-row tiles (4 and 8 warps) */
    static const char *splits[3] = {"2", "3", "auto"}, *warps[2] = {"4", "8"};
    for (int i = 0; i < 6; i++) {
        setenv("LLT_CUDA_PREFILL_SPLITS", splits[i % 3], 1);
        setenv("LLT_CUDA_PREFILL_WARPS", warps[i / 3], 1);
        attn_case ac = {8, 2, 64 * (1 + i % 2), 700 + 333 * (i % 3) + 17 * (i / 3), 130 + 9 * (i / 3)};
        float *dec = NULL, *pf = NULL;
        attn_run(k_dts[i % 2], &ac, pss[i % 3], &dec, &pf);
        free(dec), free(pf);
    }
    unsetenv("LLT_CUDA_PREFILL_SPLITS");
    unsetenv("LLT_CUDA_PREFILL_WARPS");
    if (san) return;
    /* a whole 512-row chunk in the context (the bench's prefill step): below FA_DEEP (4 warps,
     * no splits by default), then past it (8 warps and key splits by default), then past it
     * with the shallow defaults forced */
    const attn_case chunk = {8, 2, 64, 2600, 512}, deep = {8, 2, 64, 4700, 512};
    float *dec = NULL, *pf = NULL;
    attn_run(LLT_DTYPE_F16, &chunk, 64, &dec, &pf);
    free(dec), free(pf);
    setenv("LLT_CUDA_PREFILL_SPLITS", "auto", 1);
    attn_run(LLT_DTYPE_F16, &chunk, 64, &dec, &pf);
    free(dec), free(pf);
    unsetenv("LLT_CUDA_PREFILL_SPLITS");
    attn_run(LLT_DTYPE_BF16, &deep, 16, &dec, &pf);
    free(dec), free(pf);
    setenv("LLT_CUDA_PREFILL_SPLITS", "1", 1);
    setenv("LLT_CUDA_PREFILL_WARPS", "4", 1);
    attn_run(LLT_DTYPE_F16, &deep, 32, &dec, &pf);
    free(dec), free(pf);
    unsetenv("LLT_CUDA_PREFILL_SPLITS");
    unsetenv("LLT_CUDA_PREFILL_WARPS");
    /* the deep chunk through each warpgroup kernel by name (default splits), hd 64 and 128 */
    const attn_case deep128 = {8, 2, 128, 4700, 512};
    for (int i = 0; i < 8; i++) {
        setenv("LLT_CUDA_PREFILL_WG", wg_kinds[i % 4], 1);
        attn_run(k_dts[i / 4], i / 4 ? &deep128 : &deep, 16 << (i % 3), &dec, &pf);
        free(dec), free(pf);
    }
    unsetenv("LLT_CUDA_PREFILL_WG");
    /* long contexts: 32k + 37 and 131072 keys (the llama3.2-1b context) */
    const attn_case longs[] = {{4, 1, 64, 32805, 9}, {8, 1, 128, 40001, 3}, {8, 1, 64, 131072, 5}};
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        attn_run(k_dts[i % 2], &longs[i], pss[i], &dec, &pf);
        free(dec), free(pf);
    }
}

/* The long decode kernel's variants (flash_decode.cu) on random shapes against the CPU op
 * (bounds in attn_run_kv): the f8 cache's kernels, then both block shapes; 32k keys once each
 * (the transposed f8 kernel in its default 8-warp blocks, the staged f8 kernel and the dtype
 * kernel in 4-warp blocks; test_flash_shapes has the dtype kernel's default). */
static void test_flash_decode(void) {
    static const int hds[2] = {64, 128}, groups[3] = {1, 4, 8}, pss[3] = {16, 32, 64};
    const bool san = getenv("LLT_SANITIZER") != NULL;
    g_rng = 5151;
    /* the f8 cache: against the CPU op on the dequantised values (bound in attn_run_kv), and
     * its error against the unquantised cache measured (e4m3 keeps 3 mantissa bits: about
     * 2^-5 relative per element; a bound of 2^-3 on the output only catches a broken path).
     * f8 decode variants: 0-2 and 7 the default (f16 at hd 64 / 128: the transposed kernel;
     * else e4m3 converted in registers, four stages a warp, five at hd 128; 2 and 7 hd 32), 3
     * hd 128 with four stages, 4 hd 64 with five and three blocks an SM (both the register
     * kernel, LLT_CUDA_DECODE_F8=reg), 5 / 6 the tile staged through shared memory (four
     * stages; two stages and three blocks an SM), 8 / 9 / 10 the transposed kernel's other shapes
     * at hd 128, 128, 64, f16 (LLT_CUDA_DECODE_F8SHAPE 0: 4-warp blocks, 2: 32-key tiles, 0; the
     * default is 1) */
    for (int i = 0; i < (san ? 3 : 11); i++) {
        int hd = i == 2 || i == 7 ? 32 : i == 10 ? 64 : i >= 8 ? 128 : hds[i % 2];
        int G = groups[i % 3], nkv = 1 + i % 2;
        int ps = pss[i % 3];
        const llt_dtype dt = k_dts[i >= 8 ? 0 : i % 2];
        int L = 1 + (int)frand(0, san ? 300 : 5000), n_q = 1 + (int)frand(0, 100);
        if (n_q > L) n_q = L;
        attn_case ac = {G * nkv, nkv, hd, L, n_q};
        float *dec = NULL, *pf = NULL;
        double e8 = 0;
        uint64_t keep = g_rng;
        if (i == 3 || i == 4) setenv("LLT_CUDA_DECODE_F8ST", i == 3 ? "4" : "5", 1);
        if (i == 4 || i == 6) setenv("LLT_CUDA_ATTN_LONG_SPB", "3", 1);
        if (i == 6) setenv("LLT_CUDA_DECODE_F8ST", "2", 1);
        if (i == 5 || i == 6) setenv("LLT_CUDA_DECODE_F8", "stage", 1);
        if (i == 3 || i == 4) setenv("LLT_CUDA_DECODE_F8", "reg", 1);
        if (i >= 8) setenv("LLT_CUDA_DECODE_F8SHAPE", i == 9 ? "2" : "0", 1);
        attn_run_kv(dt, &ac, ps, true, &dec, &pf, &e8);
        unsetenv("LLT_CUDA_DECODE_F8ST"), unsetenv("LLT_CUDA_ATTN_LONG_SPB"), unsetenv("LLT_CUDA_DECODE_F8");
        unsetenv("LLT_CUDA_DECODE_F8SHAPE");
        g_rng = keep;
        fprintf(stderr, "  f8 cache %s heads %d/%d hd %d L %d: prefill output vs the unquantised cache %.3g\n",
                llt_dtype_name(dt), G * nkv, nkv, hd, L, e8);
        CHECK_MSG(e8 < 0.125, "f8 cache error %.3g", e8);
        free(dec), free(pf);
    }
    /* the f8 cache where every score lies far below 0 (g_neg_scores, as in test_flash_shapes):
     * its decode kernels and the prefill over the widened copy, hd 64 and 128, f16 */
    g_neg_scores = true;
    for (int i = 0; i < 2; i++) {
        const attn_case an = {8, 2, 64 * (1 + i), 700 + 900 * i, 100};
        float *dn = NULL, *pn = NULL;
        attn_run_kv(LLT_DTYPE_F16, &an, 16 << i, true, &dn, &pn, NULL);
        free(dn), free(pn);
    }
    g_neg_scores = false;
    /* the long decode kernel's block shapes by name (LLT_CUDA_DECODE_NW: one 8-warp block an
     * SM, the default, or two 4-warp blocks; attn_run forces the long kernel for every length) */
    for (int i = 0; i < (san ? 4 : 8); i++) {
        setenv("LLT_CUDA_DECODE_NW", (i / 2) % 2 ? "8" : "4", 1);
        int hd = i % 3 == 2 ? 32 : hds[i % 2], G = groups[i % 3], nkv = 1 + i % 2, ps = pss[(i + 2) % 3];
        int L = 1 + (int)frand(0, san ? 300 : 3000), n_q = 1 + (int)frand(0, 50);
        if (n_q > L) n_q = L;
        attn_case ac = {G * nkv, nkv, hd, L, n_q};
        float *dec = NULL, *pf = NULL;
        uint64_t keep = g_rng;
        attn_run(k_dts[i % 2], &ac, ps, &dec, &pf);
        g_rng = keep;
        free(dec), free(pf);
    }
    unsetenv("LLT_CUDA_DECODE_NW");
    if (san) return;
    const attn_case l8 = {4, 1, 64, 32805, 9}, l16 = {8, 1, 128, 40001, 3};
    float *dec = NULL, *pf = NULL;
    attn_run_kv(LLT_DTYPE_F16, &l8, 16, true, &dec, &pf, NULL);
    free(dec), free(pf);
    setenv("LLT_CUDA_DECODE_F8", "stage", 1);
    attn_run_kv(LLT_DTYPE_BF16, &l8, 32, true, &dec, &pf, NULL);
    unsetenv("LLT_CUDA_DECODE_F8");
    free(dec), free(pf);
    setenv("LLT_CUDA_DECODE_NW", "4", 1);
    attn_run(LLT_DTYPE_BF16, &l16, 32, &dec, &pf);
    unsetenv("LLT_CUDA_DECODE_NW");
    free(dec), free(pf);
}

/* The f8 store kernel against the host's quantisation of the same (dtype-rounded) rows: the
 * same scale (amax / 448, float32) and the same e4m3 bytes (both round to nearest even), at
 * scattered slots; untouched slots stay as they were. */
static void test_kv_store_f8(void) {
    const int nkv = 2, hd = 64, ps = 16, pages = 8, rows = 37;
    const size_t pb = llt_kv_f8_page_bytes(ps, nkv, hd), so = llt_kv_f8_scales_offset(ps, nkv, hd);
    llt_error err = {0};
    for (int d = 0; d < 2; d++) {
        llt_dtype dt = k_dts[d];
        g_rng = 31 + d;
        float *k = rand_vec((int64_t)rows * nkv * hd, -30, 30), *v = rand_vec((int64_t)rows * nkv * hd, -1, 1);
        round_vec(dt, k, (int64_t)rows * nkv * hd), round_vec(dt, v, (int64_t)rows * nkv * hd);
        for (int i = 0; i < hd; i++) v[hd + i] = 0; /* an all-zero row: scale 1 */
        int32_t slot[37];
        for (int r = 0; r < rows; r++) slot[r] = (r * 53 + 7) % (pages * ps);
        uint8_t *hk = calloc(pages, pb), *hv = calloc(pages, pb), *gk, *gv;
        for (int r = 0; r < rows; r++)
            for (int h = 0; h < nkv; h++) {
                size_t at = (size_t)(slot[r] / ps) * pb, row = (size_t)(slot[r] % ps) * nkv + h;
                float kk[64], vv[64];
                memcpy(kk, k + ((size_t)r * nkv + h) * hd, sizeof kk), memcpy(vv, v + ((size_t)r * nkv + h) * hd, sizeof vv);
                f8_row(kk, hd, hk + at + row * hd, (float *)(hk + at + so) + row);
                f8_row(vv, hd, hv + at + row * hd, (float *)(hv + at + so) + row);
            }
        void *dk = dev_alloc(pages * pb), *dv = dev_alloc(pages * pb), *dslot = dev_alloc(sizeof slot);
        uint8_t *zero = calloc(pages, pb);
        CHECK_OK(llt_cuda_upload(g_ctx, dk, zero, pages * pb, &err), &err);
        CHECK_OK(llt_cuda_upload(g_ctx, dv, zero, pages * pb, &err), &err);
        CHECK_OK(llt_cuda_upload(g_ctx, dslot, slot, sizeof slot, &err), &err);
        void *sk = dev_from(dt, k, (int64_t)rows * nkv * hd), *sv = dev_from(dt, v, (int64_t)rows * nkv * hd);
        CHECK_OK(llt_cuda_kv_store_f8(g_ctx, dt, sk, sv, dslot, rows, nkv, hd, ps, dk, dv, &err), &err);
        gk = malloc(pages * pb), gv = malloc(pages * pb);
        CHECK_OK(llt_cuda_download(g_ctx, gk, dk, pages * pb, &err), &err);
        CHECK_OK(llt_cuda_download(g_ctx, gv, dv, pages * pb, &err), &err);
        size_t diff = 0;
        for (size_t i = 0; i < pages * pb; i++) diff += (gk[i] != hk[i]) + (gv[i] != hv[i]);
        CHECK_MSG(diff == 0, "kv f8 store %s: %zu bytes differ from the host's quantisation", llt_dtype_name(dt), diff);
        void *ptrs[] = {dk, dv, dslot, sk, sv};
        for (size_t i = 0; i < 5; i++) dfree(ptrs[i]);
        free(k), free(v), free(hk), free(hv), free(gk), free(gv), free(zero);
    }
}

/* QKV into an f8 cache: the staged K/V rows (dtype) against norm -> gemm -> rotary as in
 * qkv_check (3u), and the e4m3 pages byte for byte against the host's quantisation of those
 * staged rows (f8_row), untouched slots as they were; fused: the float GEMV's epilogue (the
 * counters must be left at zero), else the store kernel after the product. */
static void qkv_f8_check(llt_dtype dt, int m, int k, int nh, int nkv, int hd, llt_cuda_path path, bool fused) {
    const int qr = nh * hd, kvr = nkv * hd, n = qr + 2 * kvr, max_pos = QKV_MAX_POS, ps = 16, pages = 4;
    const size_t pb = llt_kv_f8_page_bytes(ps, nkv, hd), so = llt_kv_f8_scales_offset(ps, nkv, hd);
    qkv_ref R;
    qkv_ref_make(&R, dt, m, k, nh, nkv, hd);
    float *w = R.w, *x = R.x, *nw = R.nw, *ref = R.ref, *sn = R.sn, *cs = R.cs;
    const int32_t *pos = R.pos;
    llt_error err = {0};
    int32_t slot8[4], ident[4] = {0, 1, 2, 3}, cnt[4 * 2 * 8];
    for (int t = 0; t < m; t++) slot8[t] = (t * 37 + 5) % (pages * ps);
    uint8_t *hk = malloc(pages * pb), *hv = malloc(pages * pb);
    for (size_t i = 0; i < pages * pb; i++) hk[i] = (uint8_t)(i * 7 + 1), hv[i] = (uint8_t)(i * 11 + 3);
    void *dw = dev_from(dt, w, (int64_t)n * k), *dx = dev_from(LLT_DTYPE_F32, x, (int64_t)m * k);
    void *dnw = dev_from(LLT_DTYPE_F32, nw, k), *dq = dev_nan(LLT_DTYPE_F32, (int64_t)m * qr);
    void *dk = dev_nan(dt, (int64_t)m * kvr), *dv = dev_nan(dt, (int64_t)m * kvr);
    void *dsn = dev_from(LLT_DTYPE_F32, sn, (int64_t)max_pos * hd / 2), *dcs = dev_from(LLT_DTYPE_F32, cs, (int64_t)max_pos * hd / 2);
    void *dpos = dev_alloc(16), *did = dev_alloc(16), *dslot = dev_alloc(16), *dcnt = dev_alloc(sizeof cnt);
    void *d8k = dev_alloc(pages * pb), *d8v = dev_alloc(pages * pb);
    memset(cnt, 0, sizeof cnt);
    CHECK_OK(llt_cuda_upload(g_ctx, dpos, pos, (size_t)m * 4, &err), &err);
    CHECK_OK(llt_cuda_upload(g_ctx, did, ident, sizeof ident, &err), &err);
    CHECK_OK(llt_cuda_upload(g_ctx, dslot, slot8, (size_t)m * 4, &err), &err);
    CHECK_OK(llt_cuda_upload(g_ctx, dcnt, cnt, sizeof cnt, &err), &err);
    CHECK_OK(llt_cuda_upload(g_ctx, d8k, hk, pages * pb, &err), &err);
    CHECK_OK(llt_cuda_upload(g_ctx, d8v, hv, pages * pb, &err), &err);
    void *tx = dev_alloc((size_t)m * k * 2), *ty = dev_alloc((size_t)m * n * 4);
    llt_cuda_linear a = {.dtype = dt, .w = dw, .n = n, .k = k, .m = m, .in = LLT_LIN_IN_NORM, .x = dx, .ldx = k,
                         .norm_w = dnw, .eps = 1e-6f, .out = LLT_LIN_OUT_QKV, .q = dq, .q_rows = qr,
                         .kv_rows = kvr, .head_dim = hd, .k_pool = dk, .v_pool = dv, .slot = did,
                         .pos = dpos, .rope_cos = dcs, .rope_sin = dsn, .tmp_x = tx, .tmp_y = ty,
                         .k8_pool = d8k, .v8_pool = d8v, .slot8 = dslot, .page_size8 = ps,
                         .cnt8 = fused ? dcnt : NULL};
    CHECK_OK(llt_cuda_linear_run(g_ctx, &a, path, &err), &err);
    float *kg = host_from(dt, dk, (int64_t)m * kvr), *vg = host_from(dt, dv, (int64_t)m * kvr);
    float *kref = malloc((size_t)m * kvr * 4), *vref = malloc((size_t)m * kvr * 4);
    for (int t = 0; t < m; t++) {
        memcpy(kref + (size_t)t * kvr, ref + (size_t)t * n + qr, (size_t)kvr * 4);
        memcpy(vref + (size_t)t * kvr, ref + (size_t)t * n + qr + kvr, (size_t)kvr * 4);
        for (int h = 0; h < nkv; h++) { /* the expected pages: the staged rows quantised */
            size_t at = (size_t)(slot8[t] / ps) * pb, row = (size_t)(slot8[t] % ps) * nkv + h;
            float kk[128], vv[128];
            memcpy(kk, kg + (size_t)t * kvr + (size_t)h * hd, (size_t)hd * 4);
            memcpy(vv, vg + (size_t)t * kvr + (size_t)h * hd, (size_t)hd * 4);
            f8_row(kk, hd, hk + at + row * hd, (float *)(hk + at + so) + row);
            f8_row(vv, hd, hv + at + row * hd, (float *)(hv + at + so) + row);
        }
    }
    double ek = tl_rel_err(kg, kref, (size_t)m * kvr), ev = tl_rel_err(vg, vref, (size_t)m * kvr);
    uint8_t *gk = malloc(pages * pb), *gv = malloc(pages * pb);
    CHECK_OK(llt_cuda_download(g_ctx, gk, d8k, pages * pb, &err), &err);
    CHECK_OK(llt_cuda_download(g_ctx, gv, d8v, pages * pb, &err), &err);
    CHECK_OK(llt_cuda_download(g_ctx, cnt, dcnt, sizeof cnt, &err), &err);
    size_t diff = 0, left = 0;
    for (size_t i = 0; i < pages * pb; i++) diff += (gk[i] != hk[i]) + (gv[i] != hv[i]);
    for (size_t i = 0; i < sizeof cnt / 4; i++) left += cnt[i] != 0;
    CHECK_MSG(ek <= 3 * unit(dt) && ev <= 3 * unit(dt) && diff == 0 && left == 0,
              "qkv f8 %s m %d k %d heads %d/%d hd %d path %s %s: staged k %.3g v %.3g, %zu page bytes differ, "
              "%zu counters not zero",
              llt_dtype_name(dt), m, k, nh, nkv, hd, path_name(path), fused ? "fused" : "store kernel", ek, ev, diff,
              left);
    void *ptrs[] = {dw, dx, dnw, dq, dk, dv, dsn, dcs, dpos, did, dslot, dcnt, d8k, d8v, tx, ty};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) dfree(ptrs[i]);
    qkv_ref_free(&R);
    free(hk), free(hv), free(kg), free(vg), free(kref), free(vref), free(gk), free(gv);
}

static void test_qkv_f8(void) {
    const int shapes[][5] = {{1, 64, 8, 2, 64}, {2, 128, 4, 1, 128}, {4, 256, 8, 8, 32}, {3, 512, 8, 2, 64},
                             {1, 2048, 32, 8, 64}};
    const size_t n_shapes = getenv("LLT_SANITIZER") ? 3 : sizeof shapes / sizeof shapes[0];
    for (int d = 0; d < 2; d++)
        for (size_t i = 0; i < n_shapes; i++) {
            const int *s = shapes[i];
            g_rng = 97 + 13 * i + d;
            qkv_f8_check(k_dts[d], s[0], s[1], s[2], s[3], s[4], LLT_CUDA_PATH_AUTO, true);
            qkv_f8_check(k_dts[d], s[0], s[1], s[2], s[3], s[4], LLT_CUDA_PATH_BLAS, true);
            qkv_f8_check(k_dts[d], s[0], s[1], s[2], s[3], s[4], LLT_CUDA_PATH_GEMV, false);
            for (int cfg = 0; cfg < llt_cuda_gemv_configs(); cfg++) { /* every configuration, fused */
                llt_cuda_set_gemv_config(g_ctx, cfg);
                qkv_f8_check(k_dts[d], s[0], s[1], s[2], s[3], s[4], LLT_CUDA_PATH_GEMV, true);
            }
            llt_cuda_set_gemv_config(g_ctx, 0);
        }
}

/* LLT_ATTN_SPEED=1: prefill attention TFLOP/s on the llama3.2-1b / llama3-8b head shapes
 * (32 query heads, 8 kv heads, hd 64 / 128): one 512-row chunk at depth D, median of 7 timed
 * launches (host clock around a synchronised launch; the kernels run milliseconds), flash
 * kernel and the older WMMA kernel (LLT_CUDA_PREFILL=v1); and batch-1 decode attention at
 * depth D (K/V bytes read per second). FLOPs: 4 hd per (query head, visible key). */
static double time_median(llt_status (*fn)(llt_cuda_attn *, void *), llt_cuda_attn *a, void *arg, int reps) {
    double t[16];
    llt_error err = {0};
    CHECK_OK(fn(a, arg), &err);
    CHECK_OK(llt_cuda_sync(g_ctx, &err), &err);
    for (int r = 0; r < reps; r++) {
        double t0 = llt_time_now();
        CHECK_OK(fn(a, arg), &err);
        CHECK_OK(llt_cuda_sync(g_ctx, &err), &err);
        t[r] = llt_time_now() - t0;
    }
    for (int i = 1; i < reps; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1], t[j - 1] = x;
        }
    return t[reps / 2];
}
static llt_status run_prefill(llt_cuda_attn *a, void *arg) {
    llt_error err = {0};
    int q_pos0 = *(const int *)arg;
    return llt_cuda_attention_prefill(g_ctx, a, 0, a->rows, q_pos0, &err);
}
/* LLT_ATTN_SPEED_BATCH=N ("sets" mode): N launches back to back a timing, so that the host's
 * launch and synchronisation (~10 us around one launch) count once per N */
typedef struct pf_batch {
    int q_pos0, n;
} pf_batch;
static llt_status run_prefill_n(llt_cuda_attn *a, void *arg) {
    const pf_batch *b = arg;
    llt_status st = LLT_OK;
    for (int i = 0; i < b->n && st == LLT_OK; i++) st = run_prefill(a, (void *)&b->q_pos0);
    return st;
}
static llt_status run_decode(llt_cuda_attn *a, void *arg) {
    (void)arg;
    llt_error err = {0};
    return llt_cuda_attention_decode(g_ctx, a, &err);
}
/* FD_REPS launches back to back (decode kernels run tens of microseconds: the host clock and
 * the launch latency would dominate one) */
enum { FD_REPS = 20 };
static llt_status run_decode_n(llt_cuda_attn *a, void *arg) {
    llt_status st = LLT_OK;
    for (int i = 0; i < FD_REPS && st == LLT_OK; i++) st = run_decode(a, arg);
    return st;
}

/* Rotating block tables: launch i of FD_REPS reads the pages of table i % FD_ROT, disjoint
 * page sets where the pool holds them (depth <= pool / FD_ROT), so back-to-back launches read
 * from HBM as the model's layers do, not from the previous launch's lines in L2 (50 MB: an f8
 * layer of 32k keys would fit). */
enum { FD_ROT = 4 };
typedef struct fd_rot {
    const int32_t *bt;
    int stride; /* table entries between rotations */
    int n;      /* tables (FD_ROT; more at short depths, so that they exceed the L2) */
    int reps;   /* launches (FD_REPS, or n where that is more) */
} fd_rot;
static llt_status run_decode_rot(llt_cuda_attn *a, void *arg) {
    const fd_rot *r = arg;
    llt_status st = LLT_OK;
    for (int i = 0; i < r->reps && st == LLT_OK; i++) {
        a->bt = r->bt + (size_t)(i % r->n) * r->stride;
        st = run_decode(a, NULL);
    }
    return st;
}

/* LLT_ATTN_SPEED=decode: the long decode kernel alone under the caller's environment, batch 1,
 * f16 and f8 caches, depths 16384, 32768, 131072 (LLT_ATTN_SPEED_DEPTH: one), hd 64 and 128
 * (LLT_ATTN_SPEED_HD: one); "hot": the same pages every launch (the figures before run 8),
 * "cold": rotating tables (fd_rot) */
static void test_decode_speed(void) {
    int depths[16] = {16384, 32768, 131072}, n_depths = 3;
    const char *dv_ = getenv("LLT_ATTN_SPEED_DEPTH"), *hv = getenv("LLT_ATTN_SPEED_HD");
    if (dv_) { /* a comma-separated list of depths, 1..131072 */
        n_depths = 0;
        for (const char *c = dv_; *c && n_depths < 16;) {
            const int d = atoi(c);
            if (d >= 1 && d <= 131072) depths[n_depths++] = d;
            c = strchr(c, ',');
            if (!c) break;
            c++;
        }
    }
    /* LLT_ATTN_SPEED_NKV: kv heads of the 32 query heads (default 8; 32: llama2-7b) */
    const char *nv = getenv("LLT_ATTN_SPEED_NKV");
    const int nh = 32, nkv = nv && (atoi(nv) == 1 || atoi(nv) == 4 || atoi(nv) == 32) ? atoi(nv) : 8, ps = 16,
              blocks = 131072 / ps;
    llt_error err = {0};
    for (int h = 0; h < 2; h++) {
        const int hd = h ? 128 : 64;
        if (hv && atoi(hv) != hd) continue;
        const int64_t pool = (int64_t)131072 * nkv * hd, piece = 1 << 22;
        void *dk = dev_alloc((size_t)pool * 2), *dv = dev_alloc((size_t)pool * 2);
        g_rng = 7;
        float *r = rand_vec(piece, -1, 1);
        for (int64_t off = 0; off < pool; off += piece) {
            int64_t n = pool - off < piece ? pool - off : piece;
            CHECK_OK(llt_cuda_upload_convert(g_ctx, LLT_DTYPE_F16, (char *)dk + off * 2, LLT_DTYPE_F32, r, n, &err), &err);
            CHECK_OK(llt_cuda_upload_convert(g_ctx, LLT_DTYPE_F16, (char *)dv + off * 2, LLT_DTYPE_F32, r + 1, n - 1, &err), &err);
        }
        free(r);
        void *dk8, *dv8; /* f8 pools */
        f8_pools_make(ps, nkv, hd, blocks, &dk8, &dv8);
        /* FD_ROT tables back to back: entry i is page (i * 7919) mod blocks (scattered pages) */
        int32_t *bt = malloc((size_t)FD_ROT * blocks * 4), zero = 0;
        for (int b = 0; b < FD_ROT * blocks; b++) bt[b] = (int32_t)(((int64_t)b * 7919) % blocks);
        void *dbt = dev_alloc((size_t)FD_ROT * blocks * 4), *drbt = dev_alloc(4), *dpos = dev_alloc(4);
        CHECK_OK(llt_cuda_upload(g_ctx, dbt, bt, (size_t)FD_ROT * blocks * 4, &err), &err);
        CHECK_OK(llt_cuda_upload(g_ctx, drbt, &zero, 4, &err), &err);
        float *q = rand_vec((int64_t)nh * hd, -1, 1);
        void *dq = dev_from(LLT_DTYPE_F32, q, (int64_t)nh * hd), *dout = dev_alloc((size_t)nh * hd * 2);
        void *work = dev_alloc((size_t)llt_cuda_attn_work_floats(1, 256, nh, hd) * 4), *cnt = dev_alloc((size_t)nkv * 4);
        int32_t zk[32] = {0};
        CHECK_OK(llt_cuda_upload(g_ctx, cnt, zk, (size_t)nkv * 4, &err), &err);
        for (int di = 0; di < n_depths; di++) {
            const int D = depths[di], last = D - 1;
            CHECK_OK(llt_cuda_upload(g_ctx, dpos, &last, 4, &err), &err);
            llt_cuda_attn a = {.dtype = LLT_DTYPE_F16, .q = dq, .out = dout, .k_pool = dk, .v_pool = dv, .bt = dbt,
                               .row_bt = drbt, .pos = dpos, .rows = 1, .n_heads = nh, .n_kv = nkv, .hd = hd,
                               .page_size = ps, .max_blocks = blocks, .work = work, .counters = cnt, .max_len = D};
            llt_cuda_attn a8 = a;
            a8.k_pool = dk8, a8.v_pool = dv8, a8.kv_f8 = true;
            fd_rot rot = {.bt = dbt, .stride = D / ps * FD_ROT <= blocks ? D / ps : 0, .n = FD_ROT, .reps = FD_REPS};
            if (D <= 8192) { /* short depths: 64 disjoint tables (>= 64 MB at hd 64, 8 kv heads, 512 keys) */
                rot.stride = (D + ps - 1) / ps, rot.n = 64, rot.reps = 64;
            }
            double tl = time_median(run_decode_n, &a, NULL, 9) / FD_REPS, kv_bytes = 2.0 * D * nkv * hd * 2;
            double tc = time_median(run_decode_rot, &a, &rot, 9) / rot.reps;
            a.bt = dbt;
            double t8 = time_median(run_decode_n, &a8, NULL, 9) / FD_REPS, kv8 = 2.0 * D * nkv * (hd + 4);
            double t8c = time_median(run_decode_rot, &a8, &rot, 9) / rot.reps;
            fprintf(stderr,
                    "  decode only hd %d heads 32/%d depth %6d: f16 %.2f us = %.0f GB/s (hot), %.2f us = "
                    "%.0f GB/s (cold); f8 %.2f us = %.0f GB/s (hot), %.2f us = %.0f GB/s (cold)\n",
                    hd, nkv, D, tl * 1e6, kv_bytes / tl / 1e9, tc * 1e6, kv_bytes / tc / 1e9, t8 * 1e6, kv8 / t8 / 1e9,
                    t8c * 1e6, kv8 / t8c / 1e9);
        }
        void *ptrs[] = {dk, dv, dbt, drbt, dpos, dq, dout, work, cnt, dk8, dv8};
        for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) dfree(ptrs[i]);
        free(bt), free(q);
    }
}

/* LLT_ATTN_SPEED=sets: the prefill chunk at depths >= 16384 (LLT_ATTN_SPEED_HD: one hd,
 * LLT_ATTN_SPEED_DEPTH: one depth) under each of the environment sets in LLT_ATTN_SPEED_SETS
 * (space-separated; a set: NAME=VALUE pairs joined by commas, "-" for none), in turn A B C A B C
 * (three rounds, median of 7 launches each); prints every round's TFLOP/s and % of 790 (the bf16
 * tensor-core rate measured on the H200). */
static void speed_sets(llt_cuda_attn *a, int q_pos0, double flops, int hd, int D, int n_q) {
    char sets[512];
    snprintf(sets, sizeof sets, "%s", getenv("LLT_ATTN_SPEED_SETS") ? getenv("LLT_ATTN_SPEED_SETS") : "-");
    char *names[8];
    int n = 0;
    const char *bv = getenv("LLT_ATTN_SPEED_BATCH");
    const pf_batch nb = {q_pos0, bv && atoi(bv) >= 1 && atoi(bv) <= 64 ? atoi(bv) : 1};
    for (char *t = strtok(sets, " "); t && n < 8; t = strtok(NULL, " ")) names[n++] = t;
    double tf[8][3];
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < n; k++) {
            char set[128], *vars[8];
            int nv = 0;
            snprintf(set, sizeof set, "%s", names[k]);
            for (char *save = NULL, *v = strtok_r(set, ",", &save); v && nv < 8; v = strtok_r(NULL, ",", &save))
                if (strchr(v, '=')) vars[nv++] = v;
            for (int i = 0; i < nv; i++) *strchr(vars[i], '=') = 0, setenv(vars[i], vars[i] + strlen(vars[i]) + 1, 1);
            tf[k][r] = flops * nb.n / time_median(run_prefill_n, a, (void *)&nb, 7) / 1e12;
            for (int i = 0; i < nv; i++) unsetenv(vars[i]);
        }
    for (int k = 0; k < n; k++)
        fprintf(stderr, "  sets hd %d depth %6d rows %d x%d [%s]: %.1f %.1f %.1f TFLOP/s (best %.1f %% of 790)\n", hd, D, n_q, nb.n,
                names[k], tf[k][0], tf[k][1], tf[k][2], 100 * fmax(tf[k][0], fmax(tf[k][1], tf[k][2])) / 790);
}

static void test_flash_speed(void) {
    if (!getenv("LLT_ATTN_SPEED")) return;
    if (strcmp(getenv("LLT_ATTN_SPEED"), "decode") == 0) {
        test_decode_speed();
        return;
    }
    static const int depths[5] = {512, 4096, 16384, 32768, 131072};
    /* LLT_ATTN_SPEED_ROWS: the prefill chunk's rows (default 512; "sets" mode only) */
    const char *rsel = getenv("LLT_ATTN_SPEED_ROWS");
    const bool sets_mode = strcmp(getenv("LLT_ATTN_SPEED"), "sets") == 0;
    const int nh = 32, nkv = 8, ps = 16, Lmax = 131072, blocks = Lmax / ps,
              n_q = sets_mode && rsel && atoi(rsel) >= 1 && atoi(rsel) <= 8192 ? atoi(rsel) : 512;
    const char *hsel = getenv("LLT_ATTN_SPEED_HD");
    llt_error err = {0};
    for (int h = 0; h < 2; h++) {
        const int hd = h ? 128 : 64;
        const int64_t pool = (int64_t)Lmax * nkv * hd, piece = 1 << 22;
        void *dk = dev_alloc((size_t)pool * 2), *dv = dev_alloc((size_t)pool * 2);
        g_rng = 7;
        float *r = rand_vec(piece, -1, 1);
        for (int64_t off = 0; off < pool; off += piece) {
            int64_t n = pool - off < piece ? pool - off : piece;
            CHECK_OK(llt_cuda_upload_convert(g_ctx, LLT_DTYPE_F16, (char *)dk + off * 2, LLT_DTYPE_F32, r, n, &err), &err);
            CHECK_OK(llt_cuda_upload_convert(g_ctx, LLT_DTYPE_F16, (char *)dv + off * 2, LLT_DTYPE_F32, r + 1, n - 1, &err), &err);
        }
        free(r);
        int32_t *bt = malloc((size_t)blocks * 4);
        for (int b = 0; b < blocks; b++) bt[b] = (b * 7919) % blocks; /* scattered pages */
        void *dbt = dev_alloc((size_t)blocks * 4), *drbt = dev_alloc((size_t)n_q * 4), *dpos = dev_alloc(4);
        CHECK_OK(llt_cuda_upload(g_ctx, dbt, bt, (size_t)blocks * 4, &err), &err);
        int32_t *zeros = calloc(n_q, 4);
        CHECK_OK(llt_cuda_upload(g_ctx, drbt, zeros, (size_t)n_q * 4, &err), &err);
        float *q = rand_vec((int64_t)n_q * nh * hd, -1, 1);
        void *dq = dev_from(LLT_DTYPE_F32, q, (int64_t)n_q * nh * hd), *dout = dev_alloc((size_t)n_q * nh * hd * 2);
        void *dk8, *dv8; /* f8 pools, and the prefill's dequantised copy */
        f8_pools_make(ps, nkv, hd, blocks, &dk8, &dv8);
        void *k16 = dev_alloc((size_t)Lmax * nkv * hd * 2), *v16 = dev_alloc((size_t)Lmax * nkv * hd * 2);
        /* 256 splits: the most llt_cuda_attn_long_splits() returns (LLT_CUDA_ATTN_LONG_SPB=8 below
         * asks for twice the default's) */
        void *work = dev_alloc((size_t)llt_cuda_attn_work_floats(1, 256, nh, hd) * 4);
        void *cnt = dev_alloc((size_t)nkv * 4), *pfw = dev_alloc((size_t)llt_cuda_attn_prefill_work_floats(n_q, nh, hd) * 4);
        CHECK_OK(llt_cuda_upload(g_ctx, cnt, zeros, (size_t)nkv * 4, &err), &err);
        for (int di = 0; di < 5; di++) {
            const int D = depths[di], q_pos0 = D - n_q, last = D - 1;
            llt_cuda_attn a = {.dtype = LLT_DTYPE_F16, .q = dq, .out = dout, .k_pool = dk, .v_pool = dv, .bt = dbt,
                               .row_bt = drbt, .pos = dpos, .rows = n_q, .n_heads = nh, .n_kv = nkv, .hd = hd,
                               .page_size = ps, .max_blocks = blocks, .work = work, .counters = cnt,
                               .pf_work = pfw};
            double flops = 4.0 * hd * nh * ((double)n_q * q_pos0 + (double)n_q * (n_q + 1) / 2);
            if (sets_mode) { /* prefill under environment sets, alternated (LLT_ATTN_SPEED_F8: the f8 cache) */
                const char *dsel = getenv("LLT_ATTN_SPEED_DEPTH"); /* (one depth) */
                if (D < 16384 || (hsel && atoi(hsel) != hd) || (dsel && atoi(dsel) != D)) continue;
                llt_cuda_attn a8 = a;
                a8.k_pool = dk8, a8.v_pool = dv8, a8.kv_f8 = true, a8.f8_k16 = k16, a8.f8_v16 = v16, a8.f8_keys = Lmax;
                speed_sets(getenv("LLT_ATTN_SPEED_F8") ? &a8 : &a, q_pos0, flops, hd, D, n_q);
                continue;
            }
            if (strcmp(getenv("LLT_ATTN_SPEED"), "wsexp") == 0) { /* the ws softmax variants only, deep */
                if (D < 16384) continue;
                static const char *ex[5] = {"-1", "0", "1", "2", ""}; /* "": the default (0 at hd 128, -1 at 64) */
                double t[5];
                for (int k = 0; k < 5; k++) {
                    if (ex[k][0]) setenv("LLT_CUDA_PREFILL_WS_EXP", ex[k], 1);
                    else unsetenv("LLT_CUDA_PREFILL_WS_EXP");
                    t[k] = time_median(run_prefill, &a, (void *)&q_pos0, 9);
                }
                unsetenv("LLT_CUDA_PREFILL_WS_EXP");
                fprintf(stderr,
                        "  ws softmax variants hd %d depth %6d, TFLOP/s of a 512-row chunk: WS_EXP=-1 %.1f, default %.1f, "
                        "=0 %.1f, =1 %.1f, =2 %.1f\n",
                        hd, D, flops / t[0] / 1e12, flops / t[4] / 1e12, flops / t[1] / 1e12, flops / t[2] / 1e12,
                        flops / t[3] / 1e12);
                continue;
            }
            double tf = time_median(run_prefill, &a, (void *)&q_pos0, 7);
            setenv("LLT_CUDA_PREFILL_SPLITS", "auto", 1);
            double t1 = time_median(run_prefill, &a, (void *)&q_pos0, 5);
            unsetenv("LLT_CUDA_PREFILL_SPLITS");
            setenv("LLT_CUDA_PREFILL", "mma", 1); /* the mma.sync kernel (the default before sm_90a) */
            double tm = time_median(run_prefill, &a, (void *)&q_pos0, 5);
            unsetenv("LLT_CUDA_PREFILL");
            setenv("LLT_CUDA_PREFILL_WG", "pp", 1); /* the warpgroup kernels by name */
            double two = time_median(run_prefill, &a, (void *)&q_pos0, 7);
            setenv("LLT_CUDA_PREFILL_WG", "sync", 1);
            double tws = time_median(run_prefill, &a, (void *)&q_pos0, 7);
            setenv("LLT_CUDA_PREFILL_WG", "ws", 1); /* warp-specialised (the default); hd 128 also with 2 stages */
            double tsp = time_median(run_prefill, &a, (void *)&q_pos0, 7);
            setenv("LLT_CUDA_PREFILL_WS_ST", "2", 1);
            double tsp2 = hd == 128 ? time_median(run_prefill, &a, (void *)&q_pos0, 7) : 0;
            unsetenv("LLT_CUDA_PREFILL_WS_ST");
            unsetenv("LLT_CUDA_PREFILL_WG");
            setenv("LLT_CUDA_PREFILL", "v1", 1);
            double tv = D <= 4096 ? time_median(run_prefill, &a, (void *)&q_pos0, 3) : 0;
            unsetenv("LLT_CUDA_PREFILL");
            llt_cuda_attn a8 = a;
            a8.k_pool = dk8, a8.v_pool = dv8, a8.kv_f8 = true;
            a8.f8_k16 = k16, a8.f8_v16 = v16, a8.f8_keys = Lmax;
            double t8 = time_median(run_prefill, &a8, (void *)&q_pos0, 7);
            setenv("LLT_CUDA_PREFILL_F8", "mma", 1); /* tile by tile (the f8 default before the copy) */
            double t8m = time_median(run_prefill, &a8, (void *)&q_pos0, 7);
            unsetenv("LLT_CUDA_PREFILL_F8");
            CHECK_OK(llt_cuda_upload(g_ctx, dpos, &last, 4, &err), &err);
            a.rows = 1, a8.rows = 1;
            /* decode (per launch, FD_REPS back to back): the cluster kernel (max_len 0), the
             * long-context kernel from LLT_CUDA_ATTN_LONG keys (default: 2 blocks per SM; 1),
             * its first version (v1), and both on the f8 cache */
            double td = time_median(run_decode_n, &a, NULL, 5) / FD_REPS;
            a.max_len = D, a8.max_len = D;
            double tl = time_median(run_decode_n, &a, NULL, 7) / FD_REPS;
            setenv("LLT_CUDA_FENCE", "sc", 1); /* __threadfence around the splits' counter */
            double tl1 = time_median(run_decode_n, &a, NULL, 7) / FD_REPS;
            unsetenv("LLT_CUDA_FENCE");
            double td8 = time_median(run_decode_n, &a8, NULL, 7) / FD_REPS;
            setenv("LLT_CUDA_DECODE_F8ST", "2", 1), setenv("LLT_CUDA_ATTN_LONG_SPB", "3", 1);
            setenv("LLT_CUDA_DECODE_F8", "stage", 1); /* the staged kernel's two-stage variant */
            double td8b = time_median(run_decode_n, &a8, NULL, 7) / FD_REPS;
            unsetenv("LLT_CUDA_DECODE_F8ST"), unsetenv("LLT_CUDA_ATTN_LONG_SPB"), unsetenv("LLT_CUDA_DECODE_F8");
            setenv("LLT_CUDA_DECODE_MERGE", "v0", 1);
            double tv1 = time_median(run_decode_n, &a8, NULL, 5) / FD_REPS;
            unsetenv("LLT_CUDA_DECODE_MERGE");
            double kv_bytes = 2.0 * D * nkv * hd * 2, kv8 = 2.0 * D * nkv * (hd + 4);
            fprintf(stderr,
                    "  attention speed hd %d heads 32/8 depth %6d: prefill chunk of 512 %.3f ms = %.1f TFLOP/s "
                    "(%.1f %% of 790; wgmma pp %.1f, sync %.1f, ws %.1f (%.1f %%), ws 2 stages %.1f; key splits "
                    "auto %.1f; mma.sync kernel %.1f; WMMA v1 %.1f; f8 cache %.1f, tile by tile %.1f)\n",
                    hd, D, tf * 1e3, flops / tf / 1e12, 100 * flops / tf / 790e12, flops / two / 1e12,
                    flops / tws / 1e12, flops / tsp / 1e12, 100 * flops / tsp / 790e12,
                    tsp2 > 0 ? flops / tsp2 / 1e12 : 0, flops / t1 / 1e12,
                    flops / tm / 1e12, tv > 0 ? flops / tv / 1e12 : 0, flops / t8 / 1e12, flops / t8m / 1e12);
            fprintf(stderr,
                    "  decode speed hd %d heads 32/8 depth %6d: cluster %.1f us = %.0f GB/s of K/V; long kernel "
                    "%.1f us = %.0f GB/s (fence.sc %.1f us), f8 %.1f us = %.0f GB/s (staged, 2 stages, 3 blocks/SM "
                    "%.1f us; general merge %.1f us)\n",
                    hd, D, td * 1e6, kv_bytes / td / 1e9, tl * 1e6, kv_bytes / tl / 1e9, tl1 * 1e6, td8 * 1e6,
                    kv8 / td8 / 1e9, td8b * 1e6, tv1 * 1e6);
        }
        void *ptrs[] = {dk, dv, dbt, drbt, dpos, dq, dout, work, cnt, dk8, dv8, pfw, k16, v16};
        for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) dfree(ptrs[i]);
        free(bt), free(zeros), free(q);
    }
}

/* ---- sampling ------------------------------------------------------------------------------ */

static void test_argmax(void) {
    const int ns[3] = {1, 1000, 32000};
    for (int c = 0; c < 3; c++) {
        int n = ns[c], m = 3;
        float *x = rand_vec((int64_t)m * n, -5, 5);
        if (n > 10) x[n + 9] = x[n + 3] = 9.0f; /* row 1: a tie, the first index wins */
        void *dx = dev_from(LLT_DTYPE_F32, x, (int64_t)m * n), *dout = dev_alloc(16);
        llt_error err = {0};
        CHECK_OK(llt_cuda_argmax(g_ctx, dx, n, m, n, dout, &err), &err);
        int32_t got[3];
        CHECK_OK(llt_cuda_download(g_ctx, got, dout, sizeof got, &err), &err);
        for (int r = 0; r < m; r++) {
            int best = 0;
            for (int j = 1; j < n; j++)
                if (x[(size_t)r * n + j] > x[(size_t)r * n + best]) best = j;
            CHECK_MSG(got[r] == best, "argmax n %d row %d: %d, want %d", n, r, got[r], best);
        }
        dfree(dx), dfree(dout);
        free(x);
    }
}

/* Quantile draws u = (i + 0.5) / N through one logits row: each nucleus token must be picked
 * N * p / mass times (+-1 per boundary), others never. */
static void test_sample(void) {
    const int n = 10, N = 2000;
    const float logits[10] = {1.0f, 3.0f, 0.5f, 2.5f, -1.0f, 3.0f, 0.0f, 2.0f, -3.0f, 1.5f};
    const float temp = 0.8f, top_p = 0.75f;
    float *rows = malloc((size_t)N * n * 4), *u = malloc((size_t)N * 4);
    for (int i = 0; i < N; i++) memcpy(rows + (size_t)i * n, logits, sizeof logits), u[i] = (i + 0.5f) / N;
    double p[10], z = 0;
    for (int j = 0; j < n; j++) z += p[j] = exp((logits[j] - 3.0) / temp);
    int order[10];
    for (int j = 0; j < n; j++) order[j] = j;
    for (int a = 0; a < n; a++) /* by probability, descending */
        for (int b = a + 1; b < n; b++)
            if (p[order[b]] > p[order[a]]) { int t = order[a]; order[a] = order[b]; order[b] = t; }
    bool in[10] = {0};
    double mass = 0;
    for (int a = 0; a < n && mass < top_p * z; a++) in[order[a]] = true, mass += p[order[a]];
    void *dx = dev_from(LLT_DTYPE_F32, rows, (int64_t)N * n), *du = dev_from(LLT_DTYPE_F32, u, N), *dout = dev_alloc((size_t)N * 4);
    llt_error err = {0};
    CHECK_OK(llt_cuda_sample(g_ctx, dx, n, N, n, temp, top_p, du, dout, &err), &err);
    int32_t *got = malloc((size_t)N * 4);
    CHECK_OK(llt_cuda_download(g_ctx, got, dout, (size_t)N * 4, &err), &err);
    int count[10] = {0};
    for (int i = 0; i < N; i++) count[got[i] >= 0 && got[i] < n ? got[i] : 0]++;
    for (int j = 0; j < n; j++) {
        double want = in[j] ? N * p[j] / mass : 0;
        CHECK_MSG(fabs(count[j] - want) <= 2.0, "top-p token %d: %d draws, want %.1f", j, count[j], want);
    }
    /* temperature 0 is argmax (the first of the two 3.0 logits) */
    CHECK_OK(llt_cuda_sample(g_ctx, dx, n, 1, n, 0.0f, top_p, du, dout, &err), &err);
    CHECK_OK(llt_cuda_download(g_ctx, got, dout, 4, &err), &err);
    CHECK(got[0] == 1);
    dfree(dx), dfree(du), dfree(dout);
    free(rows), free(u), free(got);
}

/* ---- errors and utilities ---------------------------------------------------------------------- */

static void test_errors(void) {
    llt_error err = {0};
    llt_cuda_ctx *c = NULL;
    CHECK_ERR(llt_cuda_ctx_create(llt_cuda_device_count() + 3, &c, &err), LLT_ERR_INVALID_ARG, &err, "device");
    void *p = NULL;
    if (!getenv("LLT_SANITIZER")) /* a refused allocation is an API error to compute-sanitizer */
        CHECK_ERR(llt_cuda_alloc(g_ctx, (size_t)1 << 52, &p, &err), LLT_ERR_NOMEM, &err, "cannot allocate");
    llt_cuda_linear a = {.dtype = LLT_DTYPE_F32, .n = 8, .k = 8, .m = 1};
    CHECK_ERR(llt_cuda_linear_run(g_ctx, &a, LLT_CUDA_PATH_AUTO, &err), LLT_ERR_UNSUPPORTED, &err, "f32");
    void *w = dev_alloc(64 * 64 * 2), *x = dev_alloc(64 * 8 * 2), *y = dev_alloc(64 * 8 * 4);
    llt_cuda_linear b = {.dtype = LLT_DTYPE_F16, .w = w, .n = 64, .k = 60, .m = 8, .x = x, .ldx = 60, .y = y, .ldy = 64};
    CHECK_ERR(llt_cuda_linear_run(g_ctx, &b, LLT_CUDA_PATH_GEMV, &err), LLT_ERR_UNSUPPORTED, &err, "GEMV");
    b.out = LLT_LIN_OUT_QKV, b.head_dim = 8, b.q_rows = 16, b.kv_rows = 16, b.m = 1;
    CHECK_ERR(llt_cuda_linear_run(g_ctx, &b, LLT_CUDA_PATH_AUTO, &err), LLT_ERR_INVALID_ARG, &err, "QKV");
    llt_cuda_attn at = {.dtype = LLT_DTYPE_F16, .rows = 1, .n_heads = 3, .n_kv = 2, .hd = 64, .page_size = 16, .max_blocks = 1};
    CHECK_ERR(llt_cuda_attention_decode(g_ctx, &at, &err), LLT_ERR_INVALID_ARG, &err, "kv heads");
    at.n_heads = 2, at.hd = 512;
    CHECK_ERR(llt_cuda_attention_decode(g_ctx, &at, &err), LLT_ERR_UNSUPPORTED, &err, "head_dim");
    CHECK_ERR(llt_cuda_sample(g_ctx, y, 8, 1, 8, 1.0f, 0.9f, NULL, x, &err), LLT_ERR_INVALID_ARG, &err, "uniform");
    dfree(w), dfree(x), dfree(y);
    double gbps = 0;
    CHECK_OK(llt_cuda_copy_bandwidth(g_ctx, 256u << 20, 5, &gbps, &err), &err);
    CHECK_MSG(gbps > 100, "device copy bandwidth %.1f GB/s", gbps);
    fprintf(stderr, "  device %s: copy bandwidth %.0f GB/s (read + write)\n", llt_cuda_ctx_name(g_ctx), gbps);
}

int main(void) {
    if (llt_cuda_device_count() == 0) {
        printf("SKIPPED: no CUDA device\n");
        return 77;
    }
    setenv("XDG_CACHE_HOME", tl_tmpdir(), 1); /* autotune from scratch, not the user's cache */
    llt_error err = {0};
    CHECK_OK(llt_cuda_ctx_create(0, &g_ctx, &err), &err);
    if (!g_ctx) return tl_done("test_cuda_ops");
    /* LLT_TEST_ONLY=name,name runs a subset (sanitizer runs split the work) */
    const char *only = getenv("LLT_TEST_ONLY");
#define RUN_IF(fn) \
    if (!only || strstr(only, #fn)) RUN(fn)
    RUN_IF(test_linear);
    RUN_IF(test_qkv);
    RUN_IF(test_rmsnorm);
    RUN_IF(test_rope_kv);
    RUN_IF(test_swiglu_embed);
    RUN_IF(test_attention);
    RUN_IF(test_flash_shapes);
    RUN_IF(test_flash_decode);
    RUN_IF(test_kv_store_f8);
    RUN_IF(test_qkv_f8);
    RUN_IF(test_flash_speed);
    RUN_IF(test_argmax);
    RUN_IF(test_sample);
    RUN_IF(test_errors);
    CHECK_OK(llt_cuda_sync(g_ctx, &err), &err);
    llt_cuda_ctx_free(g_ctx);
    return tl_done("test_cuda_ops");
}
#endif
