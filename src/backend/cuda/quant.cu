/* quant.cu: linear layers on GGML-block weights (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K)
 * kept as blocks on the device.
 *
 * Layout (llt_cuda_qmat, cuda_backend.h): each block is split at upload into its payload (the
 * quants: 16/32/128/160/192 bytes, so 16-byte aligned and read with 16-byte streaming loads)
 * and its scales (2..18 bytes), two arrays per segment: the resident bytes are the file's.
 *
 * Decode (m = 1): a GEMV that reads each payload chunk (16 bytes = 16 or 32 weights) once.
 * A chunk is up to two runs of 16 consecutive weights, each run with one scale s and one bias:
 * w_i = s * q_i - bias, q_i a small unsigned integer, so
 *     sum_i w_i x_i = s * sum_i q_i x_i - bias * sum_i x_i.
 * q_i becomes a float with one byte permute (bits 0x3F, 0x80 | q, 0, 0 are 1 + q / 128; Q8_0's
 * quants up to 255: 0x4B0000qq = 2^23 + q, minus 2^23), so there are no int-to-float
 * conversions; accumulation is float32. x (f16) sits in shared
 * memory (padded against bank conflicts), staged (and RMS-normalised) by the float GEMV's own
 * prologue, and the epilogues
 * (residual add, SwiGLU, rotary + KV write) are the float GEMV's (gemv_parts.cuh). A warp
 * owns 2 rows that share each x read.
 * Prefill (m > 1) and batched decode: the matrix is dequantised into a scratch matrix (f16)
 * and multiplied by cuBLASLt (the float path's BLAS branch), the head in row chunks that fit
 * the scratch. */
#include <string.h>

#include "backend/cuda/gemv_parts.cuh"

extern "C" {
#include "base/dtype.h"
}

/* ---- block geometry ---------------------------------------------------------------------- */

struct qgeo {
    int be, bb;            /* elements, bytes of a file block */
    int pay_off, pay;      /* payload: bytes [pay_off, pay_off + pay) of the block */
    int meta_off, meta;    /* scales: bytes [meta_off, meta_off + meta) */
    int chunks;            /* 16-byte payload chunks per block */
};

static __host__ __device__ inline qgeo geo_of(int t) {
    switch (t) {
    case LLT_DTYPE_Q8_0: return {32, 34, 2, 32, 0, 2, 2};
    case LLT_DTYPE_Q4_0: return {32, 18, 2, 16, 0, 2, 1};
    case LLT_DTYPE_Q4_1: return {32, 20, 4, 16, 0, 4, 1};
    case LLT_DTYPE_Q5_0: return {32, 22, 6, 16, 0, 6, 1};
    case LLT_DTYPE_Q4_K: return {256, 144, 16, 128, 0, 16, 8};
    case LLT_DTYPE_Q5_K: return {256, 176, 16, 160, 0, 16, 8};
    case LLT_DTYPE_Q6_K: return {256, 210, 0, 192, 192, 18, 8};
    default: return {0, 0, 0, 0, 0, 0, 0};
    }
}

extern "C" int32_t llt_cuda_q_pay_bytes(llt_dtype t) { return geo_of(t).pay; }
extern "C" int32_t llt_cuda_q_meta_bytes(llt_dtype t) { return geo_of(t).meta; }

extern "C" void llt_cuda_q_split(llt_dtype t, const void *src, int64_t n_blocks, uint8_t *pay, uint8_t *meta) {
    const qgeo g = geo_of(t);
    const uint8_t *s = (const uint8_t *)src;
    for (int64_t b = 0; b < n_blocks; b++, s += g.bb) {
        memcpy(pay + b * g.pay, s + g.pay_off, (size_t)g.pay);
        memcpy(meta + b * g.meta, s + g.meta_off, (size_t)g.meta);
    }
}

/* ---- one chunk -> two runs ---------------------------------------------------------------- */

/* Run r of a chunk: 16 unsigned quants (one per byte of q), value = s * q - bias, for the 16
 * elements starting at element x0 of the row. Q8_0 chunks hold one run (n_runs 1). */
struct qrun2 {
    uint4 q[2];
    float s[2], bias[2];
    int x0[2];
    int n_runs;
};

__device__ __forceinline__ float h2f_at(const uint8_t *p) {
    return __half2float(__ushort_as_half((unsigned short)(p[0] | (p[1] << 8))));
}

__device__ __forceinline__ uint4 lo4(uint4 v) {
    return make_uint4(v.x & 0x0f0f0f0fu, v.y & 0x0f0f0f0fu, v.z & 0x0f0f0f0fu, v.w & 0x0f0f0f0fu);
}
__device__ __forceinline__ uint4 hi4(uint4 v) {
    return make_uint4((v.x >> 4) & 0x0f0f0f0fu, (v.y >> 4) & 0x0f0f0f0fu, (v.z >> 4) & 0x0f0f0f0fu,
                      (v.w >> 4) & 0x0f0f0f0fu);
}
/* bits 0..3 of h -> bit 4 of bytes 0..3 */
__device__ __forceinline__ unsigned spread4(unsigned h) {
    return ((h & 1u) << 4) | ((h & 2u) << 11) | ((h & 4u) << 18) | ((h & 8u) << 25);
}
/* bit b of every byte of v -> bit `to` of that byte (b <= 7) */
__device__ __forceinline__ uint4 bit_of_bytes(uint4 v, int b, unsigned mask, int to) {
    return make_uint4(((v.x >> b) & mask) << to, ((v.y >> b) & mask) << to, ((v.z >> b) & mask) << to,
                      ((v.w >> b) & mask) << to);
}
__device__ __forceinline__ uint4 or4(uint4 a, uint4 b) {
    return make_uint4(a.x | b.x, a.y | b.y, a.z | b.z, a.w | b.w);
}

/* Byte i (run time, 0..11) of the 12 scale bytes held in words a, b, c (registers: no stack). */
__device__ __forceinline__ int sbyte(unsigned a, unsigned b, unsigned c, int i) {
    unsigned w = i < 4 ? a : i < 8 ? b : c;
    return (int)((w >> (8 * (i & 3))) & 0xffu);
}

/* Q4_K / Q5_K sub-block j's 6-bit scale and min from the 12 packed bytes (words a, b, c). */
__device__ __forceinline__ void k_scale_min(unsigned a, unsigned b, unsigned c, int j, int &s, int &m) {
    if (j < 4) {
        s = sbyte(a, b, c, j) & 63, m = sbyte(a, b, c, j + 4) & 63;
    } else {
        s = (sbyte(a, b, c, j + 4) & 0xf) | ((sbyte(a, b, c, j - 4) >> 6) << 4);
        m = (sbyte(a, b, c, j + 4) >> 4) | ((sbyte(a, b, c, j) >> 6) << 4);
    }
}

/* Chunk c of a row whose payload starts at pay and scales at meta. */
template <int TYPE>
__device__ __forceinline__ qrun2 load_chunk(const uint8_t *pay, const uint8_t *meta, int c) {
    qrun2 r;
    if (TYPE == LLT_DTYPE_Q8_0) {
        const int b = c >> 1, h = c & 1;
        uint4 v = ld_stream16(pay + (size_t)b * 32 + 16 * h);
        r.q[0] = make_uint4(v.x ^ 0x80808080u, v.y ^ 0x80808080u, v.z ^ 0x80808080u, v.w ^ 0x80808080u);
        float d = h2f_at(meta + (size_t)b * 2);
        r.s[0] = d, r.bias[0] = 128.0f * d, r.x0[0] = 32 * b + 16 * h, r.n_runs = 1;
        return r;
    }
    if (TYPE == LLT_DTYPE_Q4_0 || TYPE == LLT_DTYPE_Q4_1 || TYPE == LLT_DTYPE_Q5_0) {
        const int b = c;
        uint4 v = ld_stream16(pay + (size_t)b * 16);
        r.q[0] = lo4(v), r.q[1] = hi4(v);
        r.x0[0] = 32 * b, r.x0[1] = 32 * b + 16, r.n_runs = 2;
        if (TYPE == LLT_DTYPE_Q4_0) {
            float d = h2f_at(meta + (size_t)b * 2);
            r.s[0] = r.s[1] = d, r.bias[0] = r.bias[1] = 8.0f * d;
        } else if (TYPE == LLT_DTYPE_Q4_1) {
            float d = h2f_at(meta + (size_t)b * 4), m = h2f_at(meta + (size_t)b * 4 + 2);
            r.s[0] = r.s[1] = d, r.bias[0] = r.bias[1] = -m;
        } else {
            const uint8_t *mp = meta + (size_t)b * 6;
            float d = h2f_at(mp);
            unsigned qh = (unsigned)mp[2] | (unsigned)mp[3] << 8 | (unsigned)mp[4] << 16 | (unsigned)mp[5] << 24;
            uint4 h0 = make_uint4(spread4(qh), spread4(qh >> 4), spread4(qh >> 8), spread4(qh >> 12));
            uint4 h1 = make_uint4(spread4(qh >> 16), spread4(qh >> 20), spread4(qh >> 24), spread4(qh >> 28));
            r.q[0] = or4(r.q[0], h0), r.q[1] = or4(r.q[1], h1);
            r.s[0] = r.s[1] = d, r.bias[0] = r.bias[1] = 16.0f * d;
        }
        return r;
    }
    if (TYPE == LLT_DTYPE_Q4_K || TYPE == LLT_DTYPE_Q5_K) {
        const int b = c >> 3, j = c & 7, g = j >> 1, l0 = 16 * (j & 1);
        const int P = TYPE == LLT_DTYPE_Q4_K ? 128 : 160, qs_off = TYPE == LLT_DTYPE_Q4_K ? 0 : 32;
        const uint8_t *pb = pay + (size_t)b * P;
        uint4 v = ld_stream16(pb + qs_off + 16 * j);
        uint4 hdr = __ldg(reinterpret_cast<const uint4 *>(meta + (size_t)b * 16));
        r.q[0] = lo4(v), r.q[1] = hi4(v);
        if (TYPE == LLT_DTYPE_Q5_K) {
            uint4 qh = __ldg(reinterpret_cast<const uint4 *>(pb + l0));
            r.q[0] = or4(r.q[0], bit_of_bytes(qh, 2 * g, 0x01010101u, 4));
            r.q[1] = or4(r.q[1], bit_of_bytes(qh, 2 * g + 1, 0x01010101u, 4));
        }
        float d = __half2float(__ushort_as_half((unsigned short)(hdr.x & 0xffffu)));
        float dmin = __half2float(__ushort_as_half((unsigned short)(hdr.x >> 16)));
        int s0, m0, s1, m1;
        k_scale_min(hdr.y, hdr.z, hdr.w, 2 * g, s0, m0);
        k_scale_min(hdr.y, hdr.z, hdr.w, 2 * g + 1, s1, m1);
        r.s[0] = d * (float)s0, r.bias[0] = dmin * (float)m0;
        r.s[1] = d * (float)s1, r.bias[1] = dmin * (float)m1;
        r.x0[0] = 256 * b + 64 * g + l0, r.x0[1] = 256 * b + 64 * g + 32 + l0, r.n_runs = 2;
        return r;
    }
    /* Q6_K: chunk j of block b is ql bytes [16j, 16j + 16): half h, quadrants kk (low nibbles)
     * and kk + 2 (high nibbles), lanes l0 .. l0 + 15 */
    const int b = c >> 3, j = c & 7, h = j >> 2, kk = (j >> 1) & 1, l0 = 16 * (j & 1);
    const uint8_t *pb = pay + (size_t)b * 192;
    uint4 v = ld_stream16(pb + 16 * j);
    uint4 qh = ld_stream16(pb + 128 + 32 * h + l0);
    r.q[0] = or4(lo4(v), bit_of_bytes(qh, 2 * kk, 0x03030303u, 4));
    r.q[1] = or4(hi4(v), bit_of_bytes(qh, 2 * (kk + 2), 0x03030303u, 4));
    const uint8_t *mb = meta + (size_t)b * 18;
    float d = h2f_at(mb + 16);
    float sa = d * (float)(int8_t)mb[8 * h + 2 * kk + (l0 >> 4)];
    float sb = d * (float)(int8_t)mb[8 * h + 2 * (kk + 2) + (l0 >> 4)];
    r.s[0] = sa, r.bias[0] = 32.0f * sa, r.s[1] = sb, r.bias[1] = 32.0f * sb;
    r.x0[0] = 256 * b + 128 * h + 32 * kk + l0, r.x0[1] = 256 * b + 128 * h + 32 * (kk + 2) + l0;
    r.n_runs = 2;
    return r;
}

/* 2^23 + byte i of w, as float bits: one permute */
__device__ __forceinline__ float qbyte(unsigned w, int i) {
    return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540 + i)) - 8388608.0f;
}

/* For quants below 128: byte i of w (with bit 7 set) as the float 1 + q / 128, one permute:
 * 0x3F, 0x80 | q, 0, 0 are the bits of 1 + q * 2^-7. Then sum (1 + q/128) x = sum x + sum q x / 128,
 * and s * sum q x = 128 s * sum (1 + q/128) x - 128 s * sum x: no subtraction per element, and
 * the two sums are of the same size (no cancellation beyond a few bits). */
__device__ __forceinline__ float qbyte7(unsigned w, int i) {
    return __uint_as_float(__byte_perm(w, 0x3F000000u, 0x7044 | (i << 8)));
}

/* sum (1 + q_i / 128) x_i over a run of 16 (q_i < 128) */
__device__ __forceinline__ float run_dot7(const uint4 &q, const float *x) {
    const unsigned w[4] = {q.x | 0x80808080u, q.y | 0x80808080u, q.z | 0x80808080u, q.w | 0x80808080u};
    float a = 0.0f, b = 0.0f;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        a = fmaf(qbyte7(w[k], 0), x[4 * k], a);
        b = fmaf(qbyte7(w[k], 1), x[4 * k + 1], b);
        a = fmaf(qbyte7(w[k], 2), x[4 * k + 2], a);
        b = fmaf(qbyte7(w[k], 3), x[4 * k + 3], b);
    }
    return a + b;
}

/* sum q_i x_i over a run of 16 */
__device__ __forceinline__ float run_dot(const uint4 &q, const float *x) {
    const unsigned w[4] = {q.x, q.y, q.z, q.w};
    float a = 0.0f, b = 0.0f;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        a = fmaf(qbyte(w[k], 0), x[4 * k], a);
        b = fmaf(qbyte(w[k], 1), x[4 * k + 1], b);
        a = fmaf(qbyte(w[k], 2), x[4 * k + 2], a);
        b = fmaf(qbyte(w[k], 3), x[4 * k + 3], b);
    }
    return a + b;
}

/* ---- the GEMV ------------------------------------------------------------------------------ */

struct qrow {
    int type;
    const uint8_t *pay, *meta;
};

__device__ __forceinline__ qrow row_of(const llt_cuda_qmat &q, int v) {
    int s = 0, r = v;
    if (q.interleave) {
        s = v & 1, r = v >> 1;
    } else {
        while (s + 1 < q.n_seg && r >= q.seg[s].rows) r -= q.seg[s].rows, s++;
    }
    const qgeo g = geo_of(q.seg[s].type);
    const size_t nb = (size_t)(q.k / g.be);
    return {q.seg[s].type, q.seg[s].pay + (size_t)r * nb * g.pay, q.seg[s].meta + (size_t)r * nb * g.meta};
}

/* acc[A + r][t] += row r . x[t] for RR rows of one type (rows r0, r1); x rows of k elements in
 * shared memory. A: the first accumulator row (compile time, so acc stays in registers). */
template <int TYPE, int NT, int RR, int A>
__device__ __forceinline__ void rows_dot(const qrow r0, const qrow r1, const __half *xs, int k, int m, int lane,
                                         float (&acc)[2][NT]) {
    const qgeo g = geo_of(TYPE);
    const int n_chunks = k / g.be * g.chunks;
#pragma unroll 2
    for (int c = lane; c < n_chunks; c += 32) {
        qrun2 w[RR];
#pragma unroll
        for (int r = 0; r < RR; r++) w[r] = load_chunk<TYPE>(r ? r1.pay : r0.pay, r ? r1.meta : r0.meta, c);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t >= m) break;
#pragma unroll
            for (int u = 0; u < 2; u++) {
                if (u >= w[0].n_runs) break;
                float xf[16];
                const int e = w[0].x0[u]; /* runs of 16 never cross the padding after each 64 */
                const uint4 *xp = reinterpret_cast<const uint4 *>(xs + (size_t)t * gemv_padded(k) + e + (e >> 6) * 8);
                unpack8<__half>(xp[0], xf), unpack8<__half>(xp[1], xf + 8);
                float xsum = 0.0f;
#pragma unroll
                for (int i = 0; i < 16; i++) xsum += xf[i];
#pragma unroll
                for (int r = 0; r < RR; r++) {
                    if (TYPE == LLT_DTYPE_Q8_0) { /* quants up to 255 */
                        acc[A + r][t] += w[r].s[u] * run_dot(w[r].q[u], xf) - w[r].bias[u] * xsum;
                    } else {
                        const float s128 = 128.0f * w[r].s[u];
                        acc[A + r][t] += s128 * run_dot7(w[r].q[u], xf) - (s128 + w[r].bias[u]) * xsum;
                    }
                }
            }
        }
    }
}

template <int NT, int RR, int A>
__device__ __forceinline__ void rows_dot_any(int type, const qrow r0, const qrow r1, const __half *xs, int k,
                                             int m, int lane, float (&acc)[2][NT]) {
    switch (type) {
    case LLT_DTYPE_Q8_0: rows_dot<LLT_DTYPE_Q8_0, NT, RR, A>(r0, r1, xs, k, m, lane, acc); break;
    case LLT_DTYPE_Q4_0: rows_dot<LLT_DTYPE_Q4_0, NT, RR, A>(r0, r1, xs, k, m, lane, acc); break;
    case LLT_DTYPE_Q4_1: rows_dot<LLT_DTYPE_Q4_1, NT, RR, A>(r0, r1, xs, k, m, lane, acc); break;
    case LLT_DTYPE_Q5_0: rows_dot<LLT_DTYPE_Q5_0, NT, RR, A>(r0, r1, xs, k, m, lane, acc); break;
    case LLT_DTYPE_Q4_K: rows_dot<LLT_DTYPE_Q4_K, NT, RR, A>(r0, r1, xs, k, m, lane, acc); break;
    case LLT_DTYPE_Q5_K: rows_dot<LLT_DTYPE_Q5_K, NT, RR, A>(r0, r1, xs, k, m, lane, acc); break;
    default: rows_dot<LLT_DTYPE_Q6_K, NT, RR, A>(r0, r1, xs, k, m, lane, acc); break;
    }
}

enum { QR = 2, QWARPS = 8 }; /* rows per warp, warps per block */

template <int NT, int PRO, int EPI>
__global__ void __launch_bounds__(256, 3) qgemv_kernel(const gemv_params p, const llt_cuda_qmat q) {
    extern __shared__ __align__(16) unsigned char smem[];
    __half *xs = reinterpret_cast<__half *>(smem);
    float *red = reinterpret_cast<float *>(smem + (size_t)NT * gemv_padded(p.k) * sizeof(__half));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int row0 = (blockIdx.x * QWARPS + warp) * QR;
    if (PRO == PRO_NORM)
        for (int i = threadIdx.x * 32; i < p.k; i += blockDim.x * 32) prefetch_l1(p.norm_w + i);
    const qkv_pre pre = qkv_preload<NT, QR, EPI>(p, row0, lane);
    pdl_wait();
    if (p.early_trigger) pdl_trigger();
    gemv_stage_x<__half, NT, PRO, 1>(p, xs, red);
    __syncthreads();
    if (row0 >= p.n) return;

    float acc[QR][NT];
#pragma unroll
    for (int r = 0; r < QR; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;
    const qrow r0 = row_of(q, row0), r1 = row_of(q, min(row0 + 1, p.n - 1));
    if (r0.type == r1.type) {
        rows_dot_any<NT, QR, 0>(r0.type, r0, r1, xs, p.k, p.m, lane, acc);
    } else { /* gate and up of different types: one row at a time */
        rows_dot_any<NT, 1, 0>(r0.type, r0, r0, xs, p.k, p.m, lane, acc);
        rows_dot_any<NT, 1, 1>(r1.type, r1, r1, xs, p.k, p.m, lane, acc);
    }
    if (!p.early_trigger) pdl_trigger();
#pragma unroll
    for (int r = 0; r < QR; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = warp_sum(acc[r][t]);
    if (EPI == EPI_STORE || EPI == EPI_ADD) {
#pragma unroll
        for (int r = 0; r < QR; r++)
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (lane == r * NT + t && t < p.m && row0 + r < p.n)
                    gemv_store1<__half, EPI>(p, row0 + r, t, acc[r][t]);
    } else {
#pragma unroll
        for (int t = 0; t < NT; t++)
            if (lane == t && t < p.m && row0 + 1 < p.n)
                gemv_store2<__half, EPI>(p, row0, t, acc[0][t], acc[1][t], pre);
    }
}

typedef void (*qgemv_fn)(const gemv_params, const llt_cuda_qmat);

template <int NT>
static qgemv_fn qgemv_pick(int combo) {
    switch (combo) {
    case COMBO_ACT_STORE: return qgemv_kernel<NT, PRO_ACT, EPI_STORE>;
    case COMBO_ACT_ADD: return qgemv_kernel<NT, PRO_ACT, EPI_ADD>;
    case COMBO_NORM_STORE: return qgemv_kernel<NT, PRO_NORM, EPI_STORE>;
    case COMBO_NORM_SWIGLU: return qgemv_kernel<NT, PRO_NORM, EPI_SWIGLU>;
    default: return qgemv_kernel<NT, PRO_NORM, EPI_QKV>;
    }
}

static size_t qgemv_smem(int nt, int k) { return (size_t)nt * gemv_padded(k) * 2 + 32 * sizeof(float); }

static llt_status qgemv_launch(llt_cuda_ctx *c, const llt_cuda_linear *a, llt_error *err) {
    const int combo = combo_of(a);
    qgemv_fn fn = qgemv_pick<1>(combo);
    size_t smem = qgemv_smem(1, a->k);
    LLT_TRY(llt_smem_optin(c, fn, smem, err));
    gemv_params p = gemv_params_of(a);
    p.ks = 1, p.prefetch = 0, p.early_trigger = c->early_trigger || combo == COMBO_NORM_QKV;
    const int rows_per_block = QR * QWARPS;
    const unsigned blocks = (unsigned)((a->n + rows_per_block - 1) / rows_per_block);
    return llt_launch(c, fn, dim3(blocks), dim3(32 * QWARPS), smem, err, p, *a->qw);
}

/* ---- dequantisation (prefill scratch, embedding gather) ----------------------------------- */

__device__ __forceinline__ void store16(float *o, const float *f) {
#pragma unroll
    for (int e = 0; e < 4; e++)
        reinterpret_cast<float4 *>(o)[e] = make_float4(f[4 * e], f[4 * e + 1], f[4 * e + 2], f[4 * e + 3]);
}
template <typename T>
__device__ __forceinline__ void store16(T *o, const float *f) {
    reinterpret_cast<uint4 *>(o)[0] = pack8<T>(f), reinterpret_cast<uint4 *>(o)[1] = pack8<T>(f + 8);
}

/* One thread per chunk of virtual rows [row0, row0 + rows): dst [rows, k] = values. */
template <typename T>
__global__ void q_dequant_kernel(const llt_cuda_qmat q, int row0, int rows, T *dst) {
    pdl_wait();
    const int per_row = q.k / 16; /* upper bound of chunks per row (Q8_0: k / 16) */
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * per_row) return;
    const int r = (int)(i / per_row), c = (int)(i % per_row);
    const qrow qr = row_of(q, row0 + r);
    const qgeo g = geo_of(qr.type);
    if (c >= q.k / g.be * g.chunks) return;
    qrun2 w;
    switch (qr.type) {
    case LLT_DTYPE_Q8_0: w = load_chunk<LLT_DTYPE_Q8_0>(qr.pay, qr.meta, c); break;
    case LLT_DTYPE_Q4_0: w = load_chunk<LLT_DTYPE_Q4_0>(qr.pay, qr.meta, c); break;
    case LLT_DTYPE_Q4_1: w = load_chunk<LLT_DTYPE_Q4_1>(qr.pay, qr.meta, c); break;
    case LLT_DTYPE_Q5_0: w = load_chunk<LLT_DTYPE_Q5_0>(qr.pay, qr.meta, c); break;
    case LLT_DTYPE_Q4_K: w = load_chunk<LLT_DTYPE_Q4_K>(qr.pay, qr.meta, c); break;
    case LLT_DTYPE_Q5_K: w = load_chunk<LLT_DTYPE_Q5_K>(qr.pay, qr.meta, c); break;
    default: w = load_chunk<LLT_DTYPE_Q6_K>(qr.pay, qr.meta, c); break;
    }
    T *out = dst + (size_t)r * q.k;
#pragma unroll
    for (int u = 0; u < 2; u++) {
        if (u >= w.n_runs) break;
        const unsigned ws[4] = {w.q[u].x, w.q[u].y, w.q[u].z, w.q[u].w};
        float f[16];
#pragma unroll
        for (int e = 0; e < 16; e++) f[e] = w.s[u] * qbyte(ws[e / 4], e % 4) - w.bias[u];
        store16(out + w.x0[u], f);
    }
    pdl_trigger();
}

template <typename T>
static llt_status q_dequant_t(llt_cuda_ctx *c, const llt_cuda_qmat *q, int32_t row0, int32_t rows, T *dst,
                              llt_error *err) {
    const long long n = (long long)rows * (q->k / 16);
    return llt_launch(c, q_dequant_kernel<T>, dim3((unsigned)((n + 255) / 256)), dim3(256), 0, err, *q, (int)row0,
                      (int)rows, dst);
}

extern "C" llt_status llt_cuda_q_dequant(llt_cuda_ctx *c, const llt_cuda_qmat *q, int32_t row0, int32_t rows,
                                         llt_dtype dt, void *dst, llt_error *err) {
    LLT_CHECK(q->k % 256 == 0 || q->k % 32 == 0, err, LLT_ERR_INVALID_ARG, "cuda dequant: k %d", (int)q->k);
    if (dt == LLT_DTYPE_F32) return q_dequant_t(c, q, row0, rows, (float *)dst, err);
    if (dt == LLT_DTYPE_BF16) return q_dequant_t(c, q, row0, rows, (__nv_bfloat16 *)dst, err);
    return q_dequant_t(c, q, row0, rows, (__half *)dst, err);
}

/* The embedding gather: row tok[t] of q into x[t] (float32), one thread per chunk. */
__global__ void q_embed_kernel(const llt_cuda_qmat q, const int32_t *tok, float *x, int n) {
    pdl_wait();
    const int per_row = q.k / 16;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (long long)n * per_row) {
        const int t = (int)(i / per_row), c = (int)(i % per_row);
        const qrow qr = row_of(q, tok[t]);
        const qgeo g = geo_of(qr.type);
        if (c < q.k / g.be * g.chunks) {
            qrun2 w;
            switch (qr.type) {
            case LLT_DTYPE_Q8_0: w = load_chunk<LLT_DTYPE_Q8_0>(qr.pay, qr.meta, c); break;
            case LLT_DTYPE_Q4_0: w = load_chunk<LLT_DTYPE_Q4_0>(qr.pay, qr.meta, c); break;
            case LLT_DTYPE_Q4_1: w = load_chunk<LLT_DTYPE_Q4_1>(qr.pay, qr.meta, c); break;
            case LLT_DTYPE_Q5_0: w = load_chunk<LLT_DTYPE_Q5_0>(qr.pay, qr.meta, c); break;
            case LLT_DTYPE_Q4_K: w = load_chunk<LLT_DTYPE_Q4_K>(qr.pay, qr.meta, c); break;
            case LLT_DTYPE_Q5_K: w = load_chunk<LLT_DTYPE_Q5_K>(qr.pay, qr.meta, c); break;
            default: w = load_chunk<LLT_DTYPE_Q6_K>(qr.pay, qr.meta, c); break;
            }
#pragma unroll
            for (int u = 0; u < 2; u++) {
                if (u >= w.n_runs) break;
                const unsigned ws[4] = {w.q[u].x, w.q[u].y, w.q[u].z, w.q[u].w};
#pragma unroll
                for (int e = 0; e < 16; e++)
                    x[(size_t)t * q.k + w.x0[u] + e] = w.s[u] * qbyte(ws[e / 4], e % 4) - w.bias[u];
            }
        }
    }
    pdl_trigger();
}

extern "C" llt_status llt_cuda_q_embed(llt_cuda_ctx *c, const llt_cuda_qmat *q, const int32_t *tok, float *x,
                                       int32_t n, llt_error *err) {
    const long long total = (long long)n * (q->k / 16);
    return llt_launch(c, q_embed_kernel, dim3((unsigned)((total + 255) / 256)), dim3(256), 0, err, *q, tok, x,
                      (int)n);
}

/* ---- random blocks (benchmarks) ------------------------------------------------------------ */

__device__ __forceinline__ unsigned hash32(unsigned long long x) {
    x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33, x *= 0xc4ceb9fe1a85ec53ull, x ^= x >> 33;
    return (unsigned)x;
}

__global__ void q_random_bytes(uint8_t *p, long long n, unsigned long long seed) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        p[i] = (uint8_t)hash32(seed ^ (unsigned long long)i);
}

/* f16 block scales: d (and the second f16: min / dmin) of every block's meta */
__global__ void q_set_scales(uint8_t *meta, long long blocks, int stride, int d_at, unsigned short d, int m_at,
                             unsigned short mv) {
    for (long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x; b < blocks;
         b += (long long)gridDim.x * blockDim.x) {
        uint8_t *p = meta + b * stride;
        p[d_at] = (uint8_t)d, p[d_at + 1] = (uint8_t)(d >> 8);
        if (m_at >= 0) p[m_at] = (uint8_t)mv, p[m_at + 1] = (uint8_t)(mv >> 8);
    }
}

extern "C" llt_status llt_cuda_q_fill_random(llt_cuda_ctx *c, const llt_cuda_qseg *s, int32_t k, uint64_t seed,
                                            float scale, llt_error *err) {
    const qgeo g = geo_of(s->type);
    LLT_CHECK(g.be && k % g.be == 0, err, LLT_ERR_INVALID_ARG, "cuda random blocks: %s rows of %d",
              llt_dtype_name(s->type), (int)k);
    const long long blocks = (long long)s->rows * (k / g.be);
    q_random_bytes<<<1024, 256, 0, c->stream>>>(s->pay, blocks * g.pay, (unsigned long long)seed * 2 + 1);
    q_random_bytes<<<1024, 256, 0, c->stream>>>(s->meta, blocks * g.meta, (unsigned long long)seed * 2 + 2);
    float d = scale, mv = 0.0f;
    int d_at = 0, m_at = -1;
    switch (s->type) { /* the largest quant times the largest sub-scale maps to about scale */
    case LLT_DTYPE_Q8_0: d = scale / 127; break;
    case LLT_DTYPE_Q4_0: d = scale / 8; break;
    case LLT_DTYPE_Q4_1: d = 2 * scale / 15, mv = -scale, m_at = 2; break;
    case LLT_DTYPE_Q5_0: d = scale / 16; break;
    case LLT_DTYPE_Q4_K: d = 2 * scale / (63 * 15), mv = scale / 63, m_at = 2; break;
    case LLT_DTYPE_Q5_K: d = 2 * scale / (63 * 31), mv = scale / 63, m_at = 2; break;
    default: d = scale / (127 * 32), d_at = 16; break; /* Q6_K: d after the 16 int8 scales */
    }
    q_set_scales<<<1024, 256, 0, c->stream>>>(s->meta, blocks, g.meta, d_at, llt_f32_to_f16(d), m_at,
                                              llt_f32_to_f16(mv));
    CUDA_LAUNCH_CHECK("q_random", err);
    return LLT_OK;
}

/* ---- the linear layer ------------------------------------------------------------------------ */

/* Larger m: dequantise into the scratch (row chunks that fit it) and run the float BLAS path. */
static llt_status qlinear_blas(llt_cuda_ctx *c, const llt_cuda_linear *a, llt_error *err) {
    const size_t row_bytes = (size_t)a->k * 2;
    LLT_CHECK(a->deq && a->deq_bytes >= row_bytes * 2, err, LLT_ERR_INVALID_ARG,
              "cuda quant linear: no dequantisation scratch for m %d (n %d, k %d)", a->m, a->n, a->k);
    int32_t per = (int32_t)(a->deq_bytes / row_bytes);
    if (a->out != LLT_LIN_OUT_STORE && a->out != LLT_LIN_OUT_ADD)
        LLT_CHECK(per >= a->n, err, LLT_ERR_INVALID_ARG,
                  "cuda quant linear: scratch of %zu bytes < the %d x %d matrix a fused output needs",
                  a->deq_bytes, a->n, a->k);
    for (int32_t r0 = 0; r0 < a->n; r0 += per) {
        int32_t rows = a->n - r0 < per ? a->n - r0 : per;
        LLT_TRY(llt_cuda_q_dequant(c, a->qw, r0, rows, a->dtype, a->deq, err));
        llt_cuda_linear f = *a;
        f.qw = NULL, f.w = a->deq, f.n = rows, f.y = a->y ? a->y + r0 : NULL;
        LLT_TRY(llt_cuda_linear_run(c, &f, LLT_CUDA_PATH_BLAS, err));
    }
    return LLT_OK;
}

extern "C" llt_status llt_cuda_qlinear_run(llt_cuda_ctx *c, const llt_cuda_linear *a, llt_cuda_path path,
                                           llt_error *err) {
    const llt_cuda_qmat *q = a->qw;
    LLT_CHECK(q->n == a->n && q->k == a->k && a->m > 0 && a->x, err, LLT_ERR_INVALID_ARG,
              "cuda quant linear: matrix %d x %d, layer n %d k %d m %d", (int)q->n, (int)q->k, a->n, a->k, a->m);
    /* one token row: the block GEMV (batched rows take the BLAS path: compiling the GEMV for
     * 2-4 rows as well tripled the build time of this file) */
    const bool gemv = a->m == 1 && combo_of(a) >= 0 && a->dtype == LLT_DTYPE_F16 && a->k % 32 == 0 &&
                      qgemv_smem(1, a->k) <= c->smem_optin && a->n % 2 == 0;
    if (path == LLT_CUDA_PATH_GEMV && !gemv)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "cuda quant linear: no GEMV for m %d, k %d, %s", a->m, a->k,
                           llt_dtype_name(a->dtype));
    if (path == LLT_CUDA_PATH_BLAS || !gemv) return qlinear_blas(c, a, err);
    return qgemv_launch(c, a, err);
}
