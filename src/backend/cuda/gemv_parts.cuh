/* gemv_parts.cuh: what the float GEMV (gemm.cu) and the GGML-block GEMV (quant.cu) share: the
 * kernel parameters, the prologue that stages x rows in shared memory (optionally
 * RMS-normalising float32 residual rows) and the epilogues (store, residual add, SwiGLU over
 * (gate, up) row pairs, rotary + KV-page write for QKV). Only the weight loads differ. */
#ifndef LLT_BACKEND_CUDA_GEMV_PARTS_CUH
#define LLT_BACKEND_CUDA_GEMV_PARTS_CUH

#include "backend/cuda/kv_fp8.cuh"
#include "backend/cuda/ops.cuh"

enum { PRO_ACT = 0, PRO_NORM = 1 };
enum { EPI_STORE = 0, EPI_ADD = 1, EPI_SWIGLU = 2, EPI_QKV = 3 };
/* (prologue, epilogue) pairs that are compiled; others take the BLAS path. */
enum { COMBO_ACT_STORE = 0, COMBO_ACT_ADD, COMBO_NORM_STORE, COMBO_NORM_SWIGLU, COMBO_NORM_QKV, N_COMBO };
enum { GEMV_MAX_M = 4, PATH_BLAS = 100 };

struct gemv_params {
    const void *w;
    int n, k, m;
    const void *x;
    int ldx;
    const int *x_rows;
    const float *norm_w;
    float eps;
    float *y;
    int ldy;
    void *o;
    int ldo;
    float *q;
    int q_rows, kv_rows, hd;
    void *kc, *vc;
    const int *slot, *pos;
    const float *cs, *sn;
    int ks;            /* k slices per row group (split-K inside the block) */
    int prefetch;      /* before the PDL wait: 2 first loads into registers, 1 into L2, 0 none */
    int early_trigger; /* let the next kernel launch at our start (else after the main loop) */
    /* f8 KV cache, fused (float GEMV's QKV; k8 NULL otherwise): kc / vc, slot stage the K/V rows
     * by token; the warp that completes a (token, kv head) row quantises it into the e4m3 pages
     * k8 / v8 at slot8[t] (qkv_f8_finish) */
    void *k8, *v8;
    const int *slot8;
    int *cnt8; /* [GEMV_MAX_M][kv heads][2] rows counted, left at zero */
    int ps8;
    long long pb8, so8; /* bytes per page, offset of the scales in a page */
};

/* ---- prologue: x rows -> shared memory xs [NT][k] (dtype) ---------------------------- */

/* PAD (the block GEMV): 16 bytes of padding after every 64 elements (8 chunks of 8), so that
 * lanes reading runs of 16 at strides of 64 elements hit different banks; row t then starts at
 * t * gemv_padded(k). */
__host__ __device__ __forceinline__ int gemv_padded(int k) { return k + k / 8; }

template <typename T, int NT, int PRO, int PAD = 0>
__device__ __forceinline__ void gemv_stage_x(const gemv_params &p, T *xs, float *red) {
    const int nch = p.k / 8;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        uint4 *dst = reinterpret_cast<uint4 *>(xs + (size_t)t * (PAD ? gemv_padded(p.k) : p.k));
#define XS_AT(i) dst[PAD ? (i) + ((i) >> 3) : (i)]
        if (PRO == PRO_ACT) {
            const uint4 *src = reinterpret_cast<const uint4 *>((const T *)p.x + (size_t)t * p.ldx);
            for (int i = threadIdx.x; i < nch; i += blockDim.x)
                XS_AT(i) = t < p.m ? src[i] : make_uint4(0, 0, 0, 0);
        } else {
            int row = p.x_rows ? p.x_rows[t < p.m ? t : 0] : t;
            const float4 *src = reinterpret_cast<const float4 *>((const float *)p.x + (size_t)row * p.ldx);
            float ss = 0.0f;
            if (t < p.m)
                for (int i = threadIdx.x; i < p.k / 4; i += blockDim.x) {
                    float4 v = src[i];
                    ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
                }
            float inv = rsqrtf(block_sum(ss, red) / (float)p.k + p.eps);
            const float4 *nw = reinterpret_cast<const float4 *>(p.norm_w);
            for (int i = threadIdx.x; i < nch; i += blockDim.x) {
                float f[8];
                if (t < p.m) {
                    float4 a = src[2 * i], b = src[2 * i + 1], wa = nw[2 * i], wb = nw[2 * i + 1];
                    f[0] = a.x * inv * wa.x, f[1] = a.y * inv * wa.y, f[2] = a.z * inv * wa.z;
                    f[3] = a.w * inv * wa.w, f[4] = b.x * inv * wb.x, f[5] = b.y * inv * wb.y;
                    f[6] = b.z * inv * wb.z, f[7] = b.w * inv * wb.w;
                } else {
#pragma unroll
                    for (int j = 0; j < 8; j++) f[j] = 0.0f;
                }
                XS_AT(i) = pack8<T>(f);
            }
        }
    }
}
#undef XS_AT

/* ---- epilogues ------------------------------------------------------------------------- */

template <typename T, int EPI>
__device__ __forceinline__ void gemv_store1(const gemv_params &p, int row, int t, float v) {
    float *y = p.y + (size_t)t * p.ldy + row;
    if (EPI == EPI_STORE) *y = v;
    else *y += v;
}

/* What the QKV epilogue of a lane needs besides the products: the rotation (cos, sin) of its
 * pair at its token's position and the token's cache slot. Positions and slots are step
 * inputs (copied before the step's first kernel) and the tables constants, so they are read
 * before the PDL wait: the epilogue then has no load left on its critical path. */
struct qkv_pre {
    float c, s;
    int slot;
};

/* The lane that stores pair (row0 + r, row0 + r + 1) of token t is lane (r / 2) * NT + t. */
template <int NT, int R, int EPI>
__device__ __forceinline__ qkv_pre qkv_preload(const gemv_params &p, int row0, int lane) {
    qkv_pre q = {1.0f, 0.0f, 0};
    const int r = (lane / NT) * 2, t = lane % NT, row = row0 + r;
    if (EPI != EPI_QKV || lane >= (R / 2) * NT || t >= p.m || row + 1 >= p.n) return q;
    if (row < p.q_rows + p.kv_rows) {
        const int half = p.hd / 2, j = (row % p.hd) / 2, ps = p.pos[t];
        q.c = p.cs[(size_t)ps * half + j], q.s = p.sn[(size_t)ps * half + j];
    }
    if (row >= p.q_rows) q.slot = p.slot[t];
    return q;
}

/* Rows (row, row + 1) are a pair: (gate, up) for SwiGLU, a rotary pair for QKV. */
template <typename T, int EPI>
__device__ __forceinline__ void gemv_store2(const gemv_params &p, int row, int t, float a, float b,
                                            const qkv_pre &pre) {
    if (EPI == EPI_SWIGLU) {
        float s = a / (1.0f + __expf(-a));
        ((T *)p.o)[(size_t)t * p.ldo + row / 2] = from_f32<T>(s * b);
        return;
    }
    if (row < p.q_rows + p.kv_rows) {
        float a2 = a * pre.c - b * pre.s, b2 = a * pre.s + b * pre.c;
        a = a2, b = b2;
    }
    if (row < p.q_rows) {
        float *q = p.q + (size_t)t * p.q_rows + row;
        q[0] = a, q[1] = b;
        return;
    }
    bool is_k = row < p.q_rows + p.kv_rows;
    int col = row - p.q_rows - (is_k ? 0 : p.kv_rows);
    T *dst = (T *)(is_k ? p.kc : p.vc) + (size_t)pre.slot * p.kv_rows + col;
    dst[0] = from_f32<T>(a), dst[1] = from_f32<T>(b);
}

/* After gemv_store2 (p.k8 set): a warp's R staged rows lie in one kv head (R divides hd); it
 * counts them per (token, head, K or V) and the warp that brings the count to hd quantises the
 * row (kv_fp8.cuh) and zeroes the counter: the f8 store without a kernel of its own. Fence
 * before the count (the staged values visible to the last warp), fence after it (threadfence
 * reduction, with release / acquire fences). */
template <typename T, int NT, int R>
__device__ __forceinline__ void qkv_f8_finish(const gemv_params &p, int row0, int lane) {
    if (row0 < p.q_rows || row0 >= p.n) return;
    const bool is_k = row0 < p.q_rows + p.kv_rows;
    const int col = row0 - p.q_rows - (is_k ? 0 : p.kv_rows), h = col / p.hd, nkv = p.kv_rows / p.hd;
    fence_acq_rel_gpu();
    __syncwarp();
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if (t >= p.m) break;
        int *cnt = p.cnt8 + (t * nkv + h) * 2 + (is_k ? 0 : 1), old = 0;
        if (lane == 0) old = atomicAdd(cnt, R);
        old = __shfl_sync(0xffffffffu, old, 0);
        if (old + R != p.hd) continue;
        fence_acq_rel_gpu();
        const int s = p.slot8[t];
        unsigned char *page = (unsigned char *)(is_k ? p.k8 : p.v8) + (size_t)(s / p.ps8) * p.pb8;
        const size_t row = (size_t)(s % p.ps8) * nkv + h;
        kv8_row<T>((const T *)(is_k ? p.kc : p.vc) + (size_t)t * p.kv_rows + (size_t)h * p.hd, p.hd,
                   page + row * p.hd, (float *)(page + p.so8) + row);
        if (lane == 0) *cnt = 0;
    }
}

__device__ __forceinline__ void prefetch_l1(const void *p) {
    asm volatile("prefetch.global.L1 [%0];" ::"l"(p));
}

static inline int combo_of(const llt_cuda_linear *a) {
    if (a->in == LLT_LIN_IN_ACT)
        return a->out == LLT_LIN_OUT_STORE ? COMBO_ACT_STORE : a->out == LLT_LIN_OUT_ADD ? COMBO_ACT_ADD : -1;
    switch (a->out) {
    case LLT_LIN_OUT_STORE: return COMBO_NORM_STORE;
    case LLT_LIN_OUT_SWIGLU: return COMBO_NORM_SWIGLU;
    case LLT_LIN_OUT_QKV: return COMBO_NORM_QKV;
    default: return -1;
    }
}

static inline gemv_params gemv_params_of(const llt_cuda_linear *a) {
    gemv_params p;
    memset(&p, 0, sizeof p);
    p.w = a->w, p.n = a->n, p.k = a->k, p.m = a->m;
    p.x = a->x, p.ldx = a->ldx, p.x_rows = a->x_rows, p.norm_w = a->norm_w, p.eps = a->eps;
    p.y = a->y, p.ldy = a->ldy, p.o = a->o, p.ldo = a->ldo;
    p.q = a->q, p.q_rows = a->q_rows, p.kv_rows = a->kv_rows, p.hd = a->head_dim;
    p.kc = a->k_pool, p.vc = a->v_pool, p.slot = a->slot, p.pos = a->pos;
    p.cs = a->rope_cos, p.sn = a->rope_sin;
    return p;
}

#endif
