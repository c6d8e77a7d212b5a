/* quant.cu: linear layers on GGML-block weights (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K)
 * kept as blocks on the device.
 *
 * Layout (llt_cuda_qmat, cuda_backend.h): each block is split at upload into its payload (the
 * quants: 16/32/128/160/192 bytes, so 16-byte aligned and read with 16-byte streaming loads)
 * and its scales (2..18 bytes), two arrays per segment: the resident bytes are the file's.
 *
 * Decode (m = 1): a GEMV that reads each payload chunk (16 bytes = 16 or 32 weights) once.
 * A chunk is up to two runs of 16 consecutive weights, each run with one scale s and one bias:
 * w_i = s * q_i - bias, q_i a small unsigned integer. x is quantised per group of 16 in shared
 * memory by the prologue (which also RMS-normalises the float32 residual row where the layer
 * asks) as two int8 parts h, l with x ~ dx (254 h + l), so that
 *     sum_i w_i x_i ~ s dx (254 sum_i q_i h_i + sum_i q_i l_i) - bias dx sum_i (254 h_i + l_i),
 * the sums over q being four dp4a instructions per run and part (half a dp4a per weight, where
 * the float version needed three instructions). x is rounded to
 * 1/64516 of its group's largest |x|: decode logits within 4.3e-4 of the largest logit on the
 * llama-quantize fixtures (one part, 1/254, gave 1.2-1.6e-2 against the bound 2e-2 for 5 %
 * more speed: LLT_CUDA_QTMA_XPARTS=1). A warp owns 2 rows (a gate/up or rotary pair) sharing
 * each x read; the epilogues (residual add, SwiGLU, rotary + KV write) are the float GEMV's
 * (gemv_parts.cuh). Two kernels: the streamed GEMV (one-type matrices; the weights come into
 * shared memory by the bulk-copy engine, see below) and the register GEMV (16-byte loads into
 * registers, several per row in flight; matrices whose segments differ in type, e.g. QKV with
 * a Q6_K V, and LLT_CUDA_QTMA=0).
 * Batched decode and short prompts (m = 2..32; up to 64 off sm_90): the blocks decoded into
 * mma.sync fragments (qmma_kernel); larger m on sm_90: decoded into warpgroup (wgmma) fragments
 * (qgemm_kernel, 64- or 256-token blocks). Elsewhere, and for the types those kernels lack, the matrix is dequantised
 * into a scratch matrix (f16) and multiplied by cuBLASLt (the float path's BLAS branch), the
 * head in row chunks that fit the scratch. */
#include <stdlib.h>
#include <string.h>

#include <type_traits>

#include "backend/cuda/flash_wgmma.cuh"
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

static __host__ __device__ constexpr qgeo geo_of(int t) {
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

/* Q4_K / Q5_K sub-blocks 2g and 2g + 1: 6-bit scales s0, s1 and mins m0, m1 from the 12 packed
 * bytes (words a, b, c). Sub-block j < 4: scale = byte j & 63, min = byte j + 4 & 63; j >= 4:
 * scale = (byte j + 4 & 15) | (byte j - 4 >> 6) << 4, min = (byte j + 4 >> 4) | (byte j >> 6) << 4.
 * The pair's bytes are adjacent: shift them to the low half-word and mask both at once. */
__device__ __forceinline__ void k_scale_min2(unsigned a, unsigned b, unsigned c, int g, int &s0, int &s1, int &m0,
                                             int &m1) {
    const int sh = 16 * (g & 1);
    const unsigned A = a >> sh, B = b >> sh, C = c >> sh;
    unsigned S, M;
    if (g < 2) S = A & 0x3f3fu, M = B & 0x3f3fu;
    else S = (C & 0x0f0fu) | ((A & 0xc0c0u) >> 2), M = ((C >> 4) & 0x0f0fu) | ((B & 0xc0c0u) >> 2);
    s0 = (int)(S & 0xffu), s1 = (int)((S >> 8) & 0xffu), m0 = (int)(M & 0xffu), m1 = (int)((M >> 8) & 0xffu);
}

/* Chunk c of a row as loaded: the payload vector v, the high bits e (Q5_K, Q6_K) and the scale
 * words m0..m3 (as many as the type needs). Loads only: decode_chunk does the arithmetic, so a
 * GEMV can have many chunks in flight in few registers. */
struct qraw {
    uint4 v, e;
    unsigned m0, m1, m2, m3;
};

/* Loads of a chunk's bytes: from global memory (payload streamed, scales cached), or (SM) from
 * a copy in shared memory, where the streamed GEMV's bulk copies put them. */
template <bool SM>
__device__ __forceinline__ uint4 ld_pay16(const uint8_t *p) {
    if (SM) return *reinterpret_cast<const uint4 *>(p);
    return ld_stream16(p);
}
template <bool SM>
__device__ __forceinline__ uint4 ld_c16(const uint8_t *p) {
    if (SM) return *reinterpret_cast<const uint4 *>(p);
    return __ldg(reinterpret_cast<const uint4 *>(p));
}
template <bool SM>
__device__ __forceinline__ unsigned ld_u16(const uint8_t *p) { /* 2-byte aligned */
    if (SM) return *reinterpret_cast<const unsigned short *>(p);
    return __ldg(reinterpret_cast<const unsigned short *>(p));
}
template <bool SM>
__device__ __forceinline__ unsigned ld_u32(const uint8_t *p) { /* 4-byte aligned */
    if (SM) return *reinterpret_cast<const unsigned *>(p);
    return __ldg(reinterpret_cast<const unsigned *>(p));
}
template <bool SM>
__device__ __forceinline__ unsigned ld_u8(const uint8_t *p) {
    if (SM) return *p;
    return __ldg(p);
}

/* Chunk c of the row whose payload starts at pay and scales at meta. */
template <int TYPE, bool SM = false>
__device__ __forceinline__ qraw load_raw(const uint8_t *pay, const uint8_t *meta, int c) {
    qraw r;
    if (TYPE == LLT_DTYPE_Q8_0) {
        r.v = ld_pay16<SM>(pay + (size_t)c * 16);
        r.m0 = ld_u16<SM>(meta + (size_t)(c >> 1) * 2);
    } else if (TYPE == LLT_DTYPE_Q4_0) {
        r.v = ld_pay16<SM>(pay + (size_t)c * 16);
        r.m0 = ld_u16<SM>(meta + (size_t)c * 2);
    } else if (TYPE == LLT_DTYPE_Q4_1) {
        r.v = ld_pay16<SM>(pay + (size_t)c * 16);
        r.m0 = ld_u32<SM>(meta + (size_t)c * 4);
    } else if (TYPE == LLT_DTYPE_Q5_0) {
        r.v = ld_pay16<SM>(pay + (size_t)c * 16);
        const uint8_t *mp = meta + (size_t)c * 6;
        r.m0 = ld_u16<SM>(mp), r.m1 = ld_u16<SM>(mp + 2) | ld_u16<SM>(mp + 4) << 16;
    } else if (TYPE == LLT_DTYPE_Q4_K || TYPE == LLT_DTYPE_Q5_K) {
        const int b = c >> 3, j = c & 7;
        const int P = TYPE == LLT_DTYPE_Q4_K ? 128 : 160, qs_off = TYPE == LLT_DTYPE_Q4_K ? 0 : 32;
        const uint8_t *pb = pay + (size_t)b * P;
        r.v = ld_pay16<SM>(pb + qs_off + 16 * j);
        if (TYPE == LLT_DTYPE_Q5_K) r.e = ld_c16<SM>(pb + 16 * (j & 1));
        const uint4 hdr = ld_c16<SM>(meta + (size_t)b * 16);
        r.m0 = hdr.x, r.m1 = hdr.y, r.m2 = hdr.z, r.m3 = hdr.w;
    } else { /* Q6_K: chunk j of block b is ql bytes [16j, 16j + 16): half h, quadrants kk (low
              * nibbles) and kk + 2 (high nibbles), lanes l0 .. l0 + 15 */
        const int b = c >> 3, j = c & 7, h = j >> 2, kk = (j >> 1) & 1, l0 = 16 * (j & 1);
        const uint8_t *pb = pay + (size_t)b * 192;
        r.v = ld_pay16<SM>(pb + 16 * j);
        r.e = ld_pay16<SM>(pb + 128 + 32 * h + l0);
        const uint8_t *mb = meta + (size_t)b * 18;
        r.m0 = ld_u8<SM>(mb + 8 * h + 2 * kk + (l0 >> 4)), r.m1 = ld_u8<SM>(mb + 8 * h + 2 * (kk + 2) + (l0 >> 4));
        r.m2 = ld_u16<SM>(mb + 16);
    }
    return r;
}

__device__ __forceinline__ float h2f_bits(unsigned h) { return __half2float(__ushort_as_half((unsigned short)h)); }

template <int TYPE>
__device__ __forceinline__ qrun2 decode_chunk(const qraw &w, int c) {
    qrun2 r;
    if (TYPE == LLT_DTYPE_Q8_0) {
        const int b = c >> 1, h = c & 1;
        const uint4 v = w.v;
        r.q[0] = make_uint4(v.x ^ 0x80808080u, v.y ^ 0x80808080u, v.z ^ 0x80808080u, v.w ^ 0x80808080u);
        const float d = h2f_bits(w.m0);
        r.s[0] = d, r.bias[0] = 128.0f * d, r.x0[0] = 32 * b + 16 * h, r.n_runs = 1;
        return r;
    }
    if (TYPE == LLT_DTYPE_Q4_0 || TYPE == LLT_DTYPE_Q4_1 || TYPE == LLT_DTYPE_Q5_0) {
        const int b = c;
        r.q[0] = lo4(w.v), r.q[1] = hi4(w.v);
        r.x0[0] = 32 * b, r.x0[1] = 32 * b + 16, r.n_runs = 2;
        const float d = h2f_bits(w.m0 & 0xffffu);
        if (TYPE == LLT_DTYPE_Q4_0) {
            r.s[0] = r.s[1] = d, r.bias[0] = r.bias[1] = 8.0f * d;
        } else if (TYPE == LLT_DTYPE_Q4_1) {
            const float m = h2f_bits(w.m0 >> 16);
            r.s[0] = r.s[1] = d, r.bias[0] = r.bias[1] = -m;
        } else {
            const unsigned qh = w.m1;
            uint4 h0 = make_uint4(spread4(qh), spread4(qh >> 4), spread4(qh >> 8), spread4(qh >> 12));
            uint4 h1 = make_uint4(spread4(qh >> 16), spread4(qh >> 20), spread4(qh >> 24), spread4(qh >> 28));
            r.q[0] = or4(r.q[0], h0), r.q[1] = or4(r.q[1], h1);
            r.s[0] = r.s[1] = d, r.bias[0] = r.bias[1] = 16.0f * d;
        }
        return r;
    }
    if (TYPE == LLT_DTYPE_Q4_K || TYPE == LLT_DTYPE_Q5_K) {
        const int b = c >> 3, j = c & 7, g = j >> 1, l0 = 16 * (j & 1);
        r.q[0] = lo4(w.v), r.q[1] = hi4(w.v);
        if (TYPE == LLT_DTYPE_Q5_K) {
            r.q[0] = or4(r.q[0], bit_of_bytes(w.e, 2 * g, 0x01010101u, 4));
            r.q[1] = or4(r.q[1], bit_of_bytes(w.e, 2 * g + 1, 0x01010101u, 4));
        }
        const float d = h2f_bits(w.m0 & 0xffffu), dmin = h2f_bits(w.m0 >> 16);
        int s0, m0, s1, m1;
        k_scale_min2(w.m1, w.m2, w.m3, g, s0, s1, m0, m1);
        r.s[0] = d * (float)s0, r.bias[0] = dmin * (float)m0;
        r.s[1] = d * (float)s1, r.bias[1] = dmin * (float)m1;
        r.x0[0] = 256 * b + 64 * g + l0, r.x0[1] = 256 * b + 64 * g + 32 + l0, r.n_runs = 2;
        return r;
    }
    const int b = c >> 3, j = c & 7, h = j >> 2, kk = (j >> 1) & 1, l0 = 16 * (j & 1);
    r.q[0] = or4(lo4(w.v), bit_of_bytes(w.e, 2 * kk, 0x03030303u, 4));
    r.q[1] = or4(hi4(w.v), bit_of_bytes(w.e, 2 * (kk + 2), 0x03030303u, 4));
    const float d = h2f_bits(w.m2);
    const float sa = d * (float)(int8_t)w.m0, sb = d * (float)(int8_t)w.m1;
    r.s[0] = sa, r.bias[0] = 32.0f * sa, r.s[1] = sb, r.bias[1] = 32.0f * sb;
    r.x0[0] = 256 * b + 128 * h + 32 * kk + l0, r.x0[1] = 256 * b + 128 * h + 32 * (kk + 2) + l0;
    r.n_runs = 2;
    return r;
}

/* Chunk c of a row whose payload starts at pay and scales at meta. */
template <int TYPE>
__device__ __forceinline__ qrun2 load_chunk(const uint8_t *pay, const uint8_t *meta, int c) {
    return decode_chunk<TYPE>(load_raw<TYPE>(pay, meta, c), c);
}

/* 2^23 + byte i of w, as float bits: one permute */
__device__ __forceinline__ float qbyte(unsigned w, int i) {
    return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540 + i)) - 8388608.0f;
}

/* ---- the GEMV: 8-bit activations, integer dot products -------------------------------------- */

/* x (the one token row) is quantised per group of 16 elements into shared memory as two int8
 * parts: with e = max |x| / 127 of the group, h = round(x / e) and l = round((x / e - h) 254),
 * so that x = dx (254 h + l) with dx = e / 254, to within dx / 2 = max |x| / 64516 (finer than
 * f16's own rounding). The group keeps (dx, isum = 254 sum h + sum l). A run of 16 unsigned
 * quants q with scale s and bias (w = s q - bias) then gives
 *     sum w x ~ s dx D - bias dx isum,   D = 254 sum q h + sum q l,
 * the two sums being four dp4a instructions each. Where the bias is an integer multiple c s of
 * the scale (Q8_0's 128 s, Q4_0's 8 s, Q5_0's 16 s, Q6_K's 32 s) the difference is taken in
 * integers: s dx (D - c isum). (One int8 part alone, 1/254 of max |x|, gave 1.3-1.6e-2 of the
 * largest logit on the fixture files, against 6e-4 with float activations.) */

/* c with bias = c s; 0: the bias is a float of its own (Q4_1, Q4_K, Q5_K) */
template <int TYPE>
__host__ __device__ constexpr int q_int_bias() {
    return TYPE == LLT_DTYPE_Q8_0   ? 128
           : TYPE == LLT_DTYPE_Q4_0 ? 8
           : TYPE == LLT_DTYPE_Q5_0 ? 16
           : TYPE == LLT_DTYPE_Q6_K ? 32
                                    : 0;
}
/* chunks per row a lane loads before using them (Q5_K and Q6_K load two vectors a chunk) */
template <int TYPE>
__host__ __device__ constexpr int q_unroll() {
    return TYPE == LLT_DTYPE_Q5_K || TYPE == LLT_DTYPE_Q6_K ? 2 : 4;
}

/* the four unsigned bytes of a times the four signed bytes of b, summed, plus c */
__device__ __forceinline__ int dp4a_us(unsigned a, unsigned b, int c) {
    int d;
    asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

/* Shared memory: xq [2][k] int8 (h, then l), xg [k / 16] (dx as bits, isum), 32 floats for the
 * reduction. */
static __host__ __device__ inline size_t qgemv_smem(int k) { return (size_t)2 * k + (size_t)(k / 16) * 8 + 32 * sizeof(float); }

/* 16 ints in [-128, 127] as 16 bytes */
__device__ __forceinline__ uint4 pack16_s8(const int (&v)[16]) {
    unsigned w[4];
#pragma unroll
    for (int e = 0; e < 4; e++)
        w[e] = __byte_perm(__byte_perm((unsigned)v[4 * e], (unsigned)v[4 * e + 1], 0x0040),
                           __byte_perm((unsigned)v[4 * e + 2], (unsigned)v[4 * e + 3], 0x0040), 0x5410);
    return make_uint4(w[0], w[1], w[2], w[3]);
}

/* The prologue: x (f16 activations, or the float32 residual row RMS-normalised with norm_w)
 * quantised into xq / xg, one group of 16 per thread at a time. */
template <int PRO>
__device__ __forceinline__ void stage_xq(const gemv_params &p, int8_t *xq, int2 *xg, float *red, bool two = true) {
    const int ng = p.k / 16;
    const float *xf = NULL;
    float inv = 1.0f;
    if (PRO == PRO_NORM) {
        xf = (const float *)p.x + (size_t)(p.x_rows ? p.x_rows[0] : 0) * p.ldx;
        float ss = 0.0f;
        for (int i = threadIdx.x; i < p.k / 4; i += blockDim.x) {
            float4 v = reinterpret_cast<const float4 *>(xf)[i];
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
        inv = rsqrtf(block_sum(ss, red) / (float)p.k + p.eps);
    }
    for (int gi = threadIdx.x; gi < ng; gi += blockDim.x) {
        float f[16];
        if (PRO == PRO_NORM) {
            const float4 *a = reinterpret_cast<const float4 *>(xf + 16 * gi);
            const float4 *w = reinterpret_cast<const float4 *>(p.norm_w + 16 * gi);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float4 v = a[e], nw = w[e];
                f[4 * e] = v.x * inv * nw.x, f[4 * e + 1] = v.y * inv * nw.y;
                f[4 * e + 2] = v.z * inv * nw.z, f[4 * e + 3] = v.w * inv * nw.w;
            }
        } else {
            const uint4 *a = reinterpret_cast<const uint4 *>((const __half *)p.x + 16 * gi);
            unpack8<__half>(a[0], f), unpack8<__half>(a[1], f + 8);
        }
        float amax = 0.0f;
#pragma unroll
        for (int e = 0; e < 16; e++) amax = fmaxf(amax, fabsf(f[e]));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int qh[16], ql[16], sh = 0, sl = 0;
#pragma unroll
        for (int e = 0; e < 16; e++) {
            const float t = f[e] * id;
            qh[e] = __float2int_rn(t);
            ql[e] = two ? max(-127, min(127, __float2int_rn((t - (float)qh[e]) * 254.0f))) : 0;
            sh += qh[e], sl += ql[e];
        }
        reinterpret_cast<uint4 *>(xq)[gi] = pack16_s8(qh);
        reinterpret_cast<uint4 *>(xq + p.k)[gi] = pack16_s8(ql);
        xg[gi] = make_int2(__float_as_int(amax / (127.0f * 254.0f)), 254 * sh + sl);
    }
}

struct qrow {
    int type;
    const uint8_t *pay, *meta;
};

/* Virtual row v: its segment found with compile-time indices only (a run-time index into the
 * kernel parameter would copy it to local memory). */
__device__ __forceinline__ qrow row_of(const llt_cuda_qmat &q, int v) {
    qrow w = {q.seg[0].type, q.seg[0].pay, q.seg[0].meta};
    int r = v;
    if (q.interleave) {
        r = v >> 1;
        if (v & 1) w = {q.seg[1].type, q.seg[1].pay, q.seg[1].meta};
    } else {
        bool found = false;
#pragma unroll
        for (int s = 0; s < LLT_QSEG_MAX; s++) {
            if (!found && (s + 1 == q.n_seg || r < q.seg[s].rows)) {
                w = {q.seg[s].type, q.seg[s].pay, q.seg[s].meta}, found = true;
            } else if (!found) {
                r -= q.seg[s].rows;
            }
        }
    }
    const qgeo g = geo_of(w.type);
    const size_t nb = (size_t)(q.k / g.be);
    w.pay += (size_t)r * nb * g.pay, w.meta += (size_t)r * nb * g.meta;
    return w;
}

/* acc[r] += row r . x for R rows of type TYPE. A lane owns chunks lane, lane + 32, ... of every
 * row (16-byte loads, 512 contiguous bytes per warp and load) and loads U of them per row before
 * the first use. */
template <int TYPE, int R, int U>
__device__ __forceinline__ void qload(qraw (&raw)[U][R], const qrow (&rw)[R], int c0, int n_chunks) {
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
        for (int r = 0; r < R; r++)
            if (c0 + 32 * u < n_chunks) raw[u][r] = load_raw<TYPE>(rw[r].pay, rw[r].meta, c0 + 32 * u);
}

template <int TYPE>
__device__ __forceinline__ int q_chunks(int k) {
    const qgeo g = geo_of(TYPE);
    return k / g.be * g.chunks;
}

/* acc[r] += the runs of w[r] . x, for R rows of type TYPE (two: x's second int8 part too; else
 * the prologue left it 0). */
template <int TYPE, int R>
__device__ __forceinline__ void qdot_runs(const qrun2 (&w)[R], const int8_t *xq, const int2 *xg, int k,
                                          float (&acc)[R], bool two = true) {
    constexpr int IB = q_int_bias<TYPE>();
#pragma unroll
    for (int v = 0; v < (TYPE == LLT_DTYPE_Q8_0 ? 1 : 2); v++) {
        const int x0 = w[0].x0[v];
        const uint4 xh = *reinterpret_cast<const uint4 *>(xq + x0);
        uint4 xl = make_uint4(0, 0, 0, 0);
        if (two) xl = *reinterpret_cast<const uint4 *>(xq + k + x0);
        const int2 gs = xg[x0 >> 4];
        const float dx = __int_as_float(gs.x), fsum = dx * (float)gs.y;
#pragma unroll
        for (int r = 0; r < R; r++) {
            const uint4 &q = w[r].q[v];
            int dh = dp4a_us(q.x, xh.x, 0);
            dh = dp4a_us(q.y, xh.y, dh), dh = dp4a_us(q.z, xh.z, dh), dh = dp4a_us(q.w, xh.w, dh);
            int d = 254 * dh;
            if (two) {
                int dl = dp4a_us(q.x, xl.x, 0);
                dl = dp4a_us(q.y, xl.y, dl), dl = dp4a_us(q.z, xl.z, dl), dl = dp4a_us(q.w, xl.w, dl);
                d += dl;
            }
            if (IB) acc[r] = fmaf(w[r].s[v] * dx, (float)(d - IB * gs.y), acc[r]);
            else acc[r] = fmaf(w[r].s[v] * dx, (float)d, fmaf(-w[r].bias[v], fsum, acc[r]));
        }
    }
}

/* acc[r] += chunk c (of the row) of raw[r] . x, for R rows of type TYPE. */
template <int TYPE, int R>
__device__ __forceinline__ void qdot_chunk(const qraw (&raw)[R], int c, const int8_t *xq, const int2 *xg, int k,
                                           float (&acc)[R], bool two = true) {
    qrun2 w[R];
#pragma unroll
    for (int r = 0; r < R; r++) w[r] = decode_chunk<TYPE>(raw[r], c);
    qdot_runs<TYPE, R>(w, xq, xg, k, acc, two);
}

/* preloaded: raw already holds the first U chunks of each row (loaded before the PDL wait) */
template <int TYPE, int R, int U>
__device__ __forceinline__ void qdot(const qrow (&rw)[R], const int8_t *xq, const int2 *xg, int k, int lane,
                                     float (&acc)[R], qraw (&raw)[U][R], bool preloaded) {
    const int n_chunks = q_chunks<TYPE>(k);
    for (int c0 = lane; c0 < n_chunks; c0 += 32 * U) {
        if (!preloaded || c0 != lane) qload<TYPE, R, U>(raw, rw, c0, n_chunks);
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (c0 + 32 * u >= n_chunks) break;
            qdot_chunk<TYPE, R>(raw[u], c0 + 32 * u, xq, xg, k, acc);
        }
    }
}

template <int TYPE, int R>
__device__ __forceinline__ void qdot_nopre(const qrow (&rw)[R], const int8_t *xq, const int2 *xg, int k, int lane,
                                           float (&acc)[R]) {
    qraw raw[2][R];
    qdot<TYPE, R, 2>(rw, xq, xg, k, lane, acc, raw, false);
}

/* a matrix of several types (QKV with V in another type): the type is the warp's, found at
 * run time; two chunks per row in flight, so that the union of the bodies fits the registers */
template <int R>
__device__ __forceinline__ void qdot_any(int type, const qrow (&rw)[R], const int8_t *xq, const int2 *xg, int k,
                                         int lane, float (&acc)[R]) {
    switch (type) {
    case LLT_DTYPE_Q8_0: qdot_nopre<LLT_DTYPE_Q8_0, R>(rw, xq, xg, k, lane, acc); break;
    case LLT_DTYPE_Q4_0: qdot_nopre<LLT_DTYPE_Q4_0, R>(rw, xq, xg, k, lane, acc); break;
    case LLT_DTYPE_Q4_1: qdot_nopre<LLT_DTYPE_Q4_1, R>(rw, xq, xg, k, lane, acc); break;
    case LLT_DTYPE_Q5_0: qdot_nopre<LLT_DTYPE_Q5_0, R>(rw, xq, xg, k, lane, acc); break;
    case LLT_DTYPE_Q4_K: qdot_nopre<LLT_DTYPE_Q4_K, R>(rw, xq, xg, k, lane, acc); break;
    case LLT_DTYPE_Q5_K: qdot_nopre<LLT_DTYPE_Q5_K, R>(rw, xq, xg, k, lane, acc); break;
    default: qdot_nopre<LLT_DTYPE_Q6_K, R>(rw, xq, xg, k, lane, acc); break;
    }
}

enum { QR = 2 }; /* rows per warp: a (gate, up) or rotary pair */

/* Rows [row0, row0 + QR) towards L2 (payloads and scales), a 128-byte line per lane at a time. */
__device__ __forceinline__ void qprefetch(const llt_cuda_qmat &q, int row0, int lane) {
#pragma unroll
    for (int r = 0; r < QR; r++) {
        const qrow w = row_of(q, row0 + r);
        const qgeo g = geo_of(w.type);
        const int nb = q.k / g.be, pay = nb * g.pay, meta = nb * g.meta;
        for (int o = lane * 128; o < pay; o += 32 * 128) prefetch_l2(w.pay + o);
        for (int o = lane * 128; o < meta; o += 32 * 128) prefetch_l2(w.meta + o);
    }
}

/* A block of W warps stages x once, then takes row groups blockIdx.x, + gridDim.x, ... of W x QR
 * rows (one group per block unless the grid was capped: LLT_CUDA_QGEMV_BPS). pf bit 0: prefetch
 * a warp's next rows into L2 (the first ones before the PDL wait); bit 1: load the first chunks
 * of its first rows into registers before the PDL wait (one-type matrices). */
template <int TYPE, int PRO, int EPI>
__global__ void __launch_bounds__(512) qgemv_kernel(const gemv_params p, const llt_cuda_qmat q, const int pf) {
    extern __shared__ __align__(16) unsigned char smem[];
    int8_t *xq = reinterpret_cast<int8_t *>(smem);
    int2 *xg = reinterpret_cast<int2 *>(smem + 2 * (size_t)p.k);
    float *red = reinterpret_cast<float *>(smem + 2 * (size_t)p.k + (size_t)(p.k / 16) * 8);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int groups = (p.n + QR * nw - 1) / (QR * nw), first = ((int)blockIdx.x * nw + warp) * QR;
    constexpr int U = TYPE >= 0 ? q_unroll<TYPE>() : 1;
    constexpr int T0 = TYPE >= 0 ? TYPE : LLT_DTYPE_Q8_0;
    qraw raw[U][QR]; /* pf & 2: the first chunks of the warp's first rows, before the PDL wait */
    bool preloaded = false;
    if constexpr (TYPE >= 0) {
        if ((pf & 2) && first < p.n) {
            const qrow rw[QR] = {row_of(q, first), row_of(q, first + 1)};
            qload<T0, QR, U>(raw, rw, lane, q_chunks<T0>(p.k));
            preloaded = true;
        }
    }
    if ((pf & 1) && first < p.n) qprefetch(q, first, lane);
    if (PRO == PRO_NORM)
        for (int i = threadIdx.x * 32; i < p.k; i += blockDim.x * 32) prefetch_l1(p.norm_w + i);
    pdl_wait();
    if (p.early_trigger) pdl_trigger();
    stage_xq<PRO>(p, xq, xg, red);
    __syncthreads();
    for (int gi = blockIdx.x; gi < groups; gi += gridDim.x) {
        const int row0 = (gi * nw + warp) * QR, next = ((gi + (int)gridDim.x) * nw + warp) * QR;
        if (row0 >= p.n) break;
        if ((pf & 1) && next < p.n) qprefetch(q, next, lane);
        const qkv_pre pre = qkv_preload<1, QR, EPI>(p, row0, lane);
        /* n is even, and both rows have one type (qgemv_rows_ok) */
        const qrow rw[QR] = {row_of(q, row0), row_of(q, row0 + 1)};
        float acc[QR] = {0.0f, 0.0f};
        if constexpr (TYPE >= 0) qdot<T0, QR, U>(rw, xq, xg, p.k, lane, acc, raw, preloaded && row0 == first);
        else qdot_any<QR>(rw[0].type, rw, xq, xg, p.k, lane, acc);
#pragma unroll
        for (int r = 0; r < QR; r++) acc[r] = warp_sum(acc[r]);
        if (EPI == EPI_STORE || EPI == EPI_ADD) {
            if (lane < QR) gemv_store1<__half, EPI>(p, row0 + lane, 0, lane ? acc[1] : acc[0]);
        } else if (lane == 0) {
            gemv_store2<__half, EPI>(p, row0, 0, acc[0], acc[1], pre);
        }
    }
    if (!p.early_trigger) pdl_trigger();
}

/* ---- the streamed GEMV: weights through the bulk-copy engine into a ring per warp ---------- */

/* Memory-level parallelism without registers: the bytes a GEMV needs in flight to stream at the
 * HBM rate (~4.2 TB/s x ~1 us ~ 32 KB per SM) are more than the register GEMV holds while it
 * also decodes (it loads, then computes, in turn), and a 7B layer's Q4_K matrices are 9-50 MB,
 * 2-12 us at that rate, so each kernel's first DRAM round trip and x staging are a large share.
 * Here every warp owns a ring of S stages in shared memory; lane 0 copies "items" (a row pair's
 * payload and scales over a piece of k) into them with cp.async.bulk, completing on one
 * mbarrier per stage, and the warp computes from shared memory. The first S items of every
 * warp are requested before the PDL wait, while the previous kernel still runs; after that, a
 * stage is refilled as soon as the warp has read it. The scales of a piece are copied from
 * their 16-byte-aligned floor to the 16-byte ceiling of their end (the arrays carry 16 bytes
 * of slack, weights.cu), and used at their offset inside the copy. What limits it now is the
 * decoding (Nsight Compute: 1.7-2.4 instructions per cycle per SM at 16 warps per SM, Q4_K
 * llama2-7b matrices at 1.3-2.0 TB/s alone), not the bytes in flight (bench/RESULTS.md). */
struct qtma_geo {
    int nb;          /* blocks per row */
    int np, bpp;     /* pieces per row, blocks per piece (the last may hold fewer) */
    int pp, mp;      /* stage bytes for one row's payload, one row's scales */
    int stage, S;    /* bytes per stage (2 pp + 2 mp), stages per warp */
    int two;         /* x as two int8 parts (else one: 1/254 of a group's largest |x|) */
    int xb;          /* bytes of x in shared memory (parts and group scales), then the reduction scratch */
    int ring;        /* offset of the rings (after the barriers) */
    int nup;         /* v2: lane units per x plane (k / unit elements, rounded up to 8) */
    int abl;         /* measurement only (LLT_CUDA_QTMA_ABL, wrong results): bit 0 skips the dot
                      * products, bit 1 the x prologue (bench/RESULTS.md, issue 20) */
};

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint32_t bar, unsigned count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
#endif
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    uint32_t ok = 0;
    while (!ok)
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
                     "selp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(ok)
                     : "r"(bar), "r"(parity)
                     : "memory");
#endif
}
/* bytes (a multiple of 16) from 16-byte-aligned global src to 16-byte-aligned shared dst */
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void *src, uint32_t bytes, uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
#endif
}

/* A warp's walk over its items: row pairs rp = gw, gw + GW, ..., pieces pc = 0 .. np - 1 of each;
 * the rows' payload and scales found once per row pair. The consumer and the producer (lane 0,
 * S items ahead) each keep one. */
struct qcursor {
    int rp, pc;
    const uint8_t *pay[QR], *meta[QR];
};

__device__ __forceinline__ void qcursor_rows(qcursor &c, const llt_cuda_qmat &q, int npairs) {
    if (c.rp >= npairs) return;
#pragma unroll
    for (int j = 0; j < QR; j++) {
        const qrow w = row_of(q, 2 * c.rp + j);
        c.pay[j] = w.pay, c.meta[j] = w.meta;
    }
}

__device__ __forceinline__ void qcursor_next(qcursor &c, const llt_cuda_qmat &q, const qtma_geo &g, int GW,
                                             int npairs) {
    if (++c.pc == g.np) {
        c.pc = 0, c.rp += GW;
        qcursor_rows(c, q, npairs);
    }
}

/* Piece c.pc of row j: its scales' 16-byte floor, their offset from it, the bytes to copy. */
template <int TYPE>
__device__ __forceinline__ void qpiece_meta(const qcursor &c, const qtma_geo &g, int j, const uint8_t *&m16, int &moff,
                                            int &mlen) {
    constexpr qgeo G = geo_of(TYPE);
    const int b0 = c.pc * g.bpp, nbk = min(g.bpp, g.nb - b0);
    const uintptr_t m = (uintptr_t)(c.meta[j] + (size_t)b0 * G.meta), m0 = m & ~(uintptr_t)15;
    m16 = (const uint8_t *)m0, moff = (int)(m - m0);
    mlen = (int)(((m + (uintptr_t)nbk * G.meta + 15) & ~(uintptr_t)15) - m0);
}

template <int TYPE>
__device__ __forceinline__ void qpiece_issue(const qcursor &c, const qtma_geo &g, uint8_t *stage, uint32_t bar) {
    constexpr qgeo G = geo_of(TYPE);
    const int b0 = c.pc * g.bpp, nbk = min(g.bpp, g.nb - b0);
    const uint32_t pb = (uint32_t)(nbk * G.pay), st = smem_u32(stage);
    const uint8_t *m16[QR];
    int moff[QR], mlen[QR];
#pragma unroll
    for (int j = 0; j < QR; j++) qpiece_meta<TYPE>(c, g, j, m16[j], moff[j], mlen[j]);
    mbar_expect_tx(bar, 2 * pb + (uint32_t)(mlen[0] + mlen[1]));
#pragma unroll
    for (int j = 0; j < QR; j++) {
        bulk_copy(st + (uint32_t)(j * g.pp), c.pay[j] + (size_t)b0 * G.pay, pb, bar);
        bulk_copy(st + (uint32_t)(2 * g.pp + j * g.mp), m16[j], (uint32_t)mlen[j], bar);
    }
}

/* Shared memory: x parts and groups (xb bytes), the reduction scratch, the barriers, then the
 * rings. */
static __host__ __device__ inline size_t qtma_ring_off(int xb, int n_stages) {
    const size_t a = (size_t)xb + 32 * sizeof(float) + (size_t)n_stages * 8;
    return (a + 127) & ~(size_t)127;
}

/* ---- v2 (Q4_K, Q8_0): a lane takes a whole unit (a Q4_K sub-block pair, 64 weights in 32
 * payload bytes, one scale decode; a Q8_0 block), x quantised per group of 32 (a Q4_K
 * sub-block, a Q8_0 block: one dx per dot), and x laid out so that the lanes' reads do not
 * share banks: the u-th unit's q-th piece of 16 elements sits at piece slot q * nup + u
 * (planes of nup units, nup a multiple of 8), so the 8 lanes of a quarter-warp read 8
 * consecutive slots. The payload of a unit is two 16-byte halves, 32 bytes apart between
 * lanes: lanes with bit 2 set read their second half first (x pieces to match), so that a
 * quarter-warp's reads fall on distinct banks too. Q4_K high nibbles stay in place (16 q): the
 * 1/16 goes into the scale. Q8_0 quants are signed: no bias term. Group scales per group of 32:
 * (dx, dx * isum) floats. */
template <int TYPE>
__host__ __device__ constexpr int v2_ppu() { /* pieces of 16 elements per unit */
    return TYPE == LLT_DTYPE_Q4_K ? 4 : 2;
}
template <int TYPE>
__host__ __device__ constexpr bool v2_has() {
    return TYPE == LLT_DTYPE_Q4_K || TYPE == LLT_DTYPE_Q8_0;
}
static inline int v2_nup(int k, int ppu) { return (k / (16 * ppu) + 7) & ~7; }
static inline int v2_xbytes(int k, int ppu) { return 2 * ppu * v2_nup(k, ppu) * 16 + (k / 32) * 8; }

/* 8 ints in [-128, 127] as 8 bytes */
__device__ __forceinline__ uint2 pack8_s8(const int (&v)[8]) {
    unsigned w[2];
#pragma unroll
    for (int e = 0; e < 2; e++)
        w[e] = __byte_perm(__byte_perm((unsigned)v[4 * e], (unsigned)v[4 * e + 1], 0x0040),
                           __byte_perm((unsigned)v[4 * e + 2], (unsigned)v[4 * e + 3], 0x0040), 0x5410);
    return make_uint2(w[0], w[1]);
}

/* The v2 prologue: four threads per group of 32 (8 elements each), planes h then l. */
template <int PRO, int PPU>
__device__ __forceinline__ void stage_x32(const gemv_params &p, uint8_t *xs, float2 *xg, float *red, int nup,
                                          bool two, const float4 (&nw0)[2]) {
    const float *xf = NULL;
    float inv = 1.0f;
    const int nt = p.k / 8, plane = PPU * nup * 16;
    /* one pass (k <= 8 threads): x read once, the norm weights already in nw0 (read before the
     * PDL wait), the sum of squares from the same registers */
    const bool one = PRO == PRO_NORM && nt <= (int)blockDim.x;
    float4 xr[2] = {make_float4(0, 0, 0, 0), make_float4(0, 0, 0, 0)};
    if (PRO == PRO_NORM) {
        xf = (const float *)p.x + (size_t)(p.x_rows ? p.x_rows[0] : 0) * p.ldx;
        float ss = 0.0f;
        if (one) {
            if ((int)threadIdx.x < nt)
                xr[0] = reinterpret_cast<const float4 *>(xf)[2 * threadIdx.x],
                xr[1] = reinterpret_cast<const float4 *>(xf)[2 * threadIdx.x + 1];
#pragma unroll
            for (int e = 0; e < 2; e++) ss += xr[e].x * xr[e].x + xr[e].y * xr[e].y + xr[e].z * xr[e].z + xr[e].w * xr[e].w;
        } else {
            for (int i = threadIdx.x; i < p.k / 4; i += blockDim.x) {
                float4 v = reinterpret_cast<const float4 *>(xf)[i];
                ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
            }
        }
        inv = rsqrtf(block_sum(ss, red) / (float)p.k + p.eps);
    }
    for (int base = 0; base < nt; base += blockDim.x) { /* whole warps iterate together */
        const int t = base + (int)threadIdx.x, G = t >> 2, sub = t & 3;
        const bool ok = t < nt;
        float f[8];
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = 0.0f;
        if (ok) {
            if (PRO == PRO_NORM && one) {
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float4 v = xr[e], nw = nw0[e];
                    f[4 * e] = v.x * inv * nw.x, f[4 * e + 1] = v.y * inv * nw.y;
                    f[4 * e + 2] = v.z * inv * nw.z, f[4 * e + 3] = v.w * inv * nw.w;
                }
            } else if (PRO == PRO_NORM) {
                const float4 *a = reinterpret_cast<const float4 *>(xf + 8 * t);
                const float4 *w = reinterpret_cast<const float4 *>(p.norm_w + 8 * t);
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float4 v = a[e], nw = w[e];
                    f[4 * e] = v.x * inv * nw.x, f[4 * e + 1] = v.y * inv * nw.y;
                    f[4 * e + 2] = v.z * inv * nw.z, f[4 * e + 3] = v.w * inv * nw.w;
                }
            } else {
                unpack8<__half>(reinterpret_cast<const uint4 *>((const __half *)p.x)[t], f);
            }
        }
        float amax = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++) amax = fmaxf(amax, fabsf(f[e]));
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int qh[8], ql[8], s = 0;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            const float v = f[e] * id;
            qh[e] = __float2int_rn(v);
            ql[e] = two ? max(-127, min(127, __float2int_rn((v - (float)qh[e]) * 254.0f))) : 0;
            s += 254 * qh[e] + ql[e];
        }
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        if (ok) {
            const int piece = 2 * G + (sub >> 1), u = piece / PPU, q = piece % PPU;
            uint8_t *d = xs + ((size_t)q * nup + u) * 16 + 8 * (sub & 1);
            *reinterpret_cast<uint2 *>(d) = pack8_s8(qh);
            *reinterpret_cast<uint2 *>(d + plane) = pack8_s8(ql);
            if (sub == 0) {
                const float dx = amax / (127.0f * 254.0f);
                xg[G] = make_float2(dx, dx * (float)s);
            }
        }
    }
}

__device__ __forceinline__ int dp4a_ss(unsigned a, unsigned b, int c) {
    int d;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
template <bool SIGNED>
__device__ __forceinline__ int dot16(const uint4 &q, const uint4 &x, int c) {
    if (SIGNED) {
        c = dp4a_ss(q.x, x.x, c), c = dp4a_ss(q.y, x.y, c), c = dp4a_ss(q.z, x.z, c);
        return dp4a_ss(q.w, x.w, c);
    }
    c = dp4a_us(q.x, x.x, c), c = dp4a_us(q.y, x.y, c), c = dp4a_us(q.z, x.z, c);
    return dp4a_us(q.w, x.w, c);
}
__device__ __forceinline__ uint4 and4(const uint4 &v, unsigned m) {
    return make_uint4(v.x & m, v.y & m, v.z & m, v.w & m);
}

/* acc[r] += the item's units . x: R rows whose piece payloads start at pay[r] and scales at
 * meta[r] (shared memory), nu units, the first of them unit ub of the row. */
template <int TYPE, int R>
__device__ __forceinline__ void v2_dot_item(const uint8_t *const (&pay)[R], const uint8_t *const (&meta)[R], int nu,
                                            int ub, const uint8_t *xs, const float2 *xg, int nup, bool two,
                                            int lane, float (&acc)[R]) {
    constexpr int PPU = v2_ppu<TYPE>();
    const int plane = PPU * nup * 16, sw = (lane >> 2) & 1;
    const uint4 *xh = reinterpret_cast<const uint4 *>(xs), *xl = reinterpret_cast<const uint4 *>(xs + plane);
    for (int u = lane; u < nu; u += 32) {
        const int ug = ub + u;
        if (TYPE == LLT_DTYPE_Q8_0) {
            const uint4 h0 = xh[sw * nup + ug], h1 = xh[(sw ^ 1) * nup + ug];
            uint4 l0 = make_uint4(0, 0, 0, 0), l1 = l0;
            if (two) l0 = xl[sw * nup + ug], l1 = xl[(sw ^ 1) * nup + ug];
            const float dx = xg[ug].x;
#pragma unroll
            for (int r = 0; r < R; r++) {
                const uint8_t *pw = pay[r] + 32 * u;
                const uint4 w0 = *reinterpret_cast<const uint4 *>(pw + 16 * sw);
                const uint4 w1 = *reinterpret_cast<const uint4 *>(pw + 16 * (sw ^ 1));
                const float d = h2f_bits(*reinterpret_cast<const unsigned short *>(meta[r] + 2 * u));
                int D = 254 * dot16<true>(w1, h1, dot16<true>(w0, h0, 0));
                if (two) D += dot16<true>(w1, l1, dot16<true>(w0, l0, 0));
                acc[r] = fmaf(d * dx, (float)D, acc[r]);
            }
        } else { /* Q4_K: unit = sub-blocks 2g (low nibbles: pieces 0, 1) and 2g + 1 (high: 2, 3) */
            const int bl = u >> 2, g = u & 3;
            const uint4 ha = xh[sw * nup + ug], hb = xh[(2 + sw) * nup + ug];
            const uint4 hc = xh[(sw ^ 1) * nup + ug], hd = xh[(3 - sw) * nup + ug];
            uint4 la = make_uint4(0, 0, 0, 0), lb = la, lc = la, ld = la;
            if (two) la = xl[sw * nup + ug], lb = xl[(2 + sw) * nup + ug], lc = xl[(sw ^ 1) * nup + ug], ld = xl[(3 - sw) * nup + ug];
            const float4 gs = reinterpret_cast<const float4 *>(xg)[ug]; /* (dx, fsum) of both sub-blocks */
#pragma unroll
            for (int r = 0; r < R; r++) {
                const uint8_t *pw = pay[r] + 128 * bl + 32 * g;
                const uint4 w0 = *reinterpret_cast<const uint4 *>(pw + 16 * sw);
                const uint4 w1 = *reinterpret_cast<const uint4 *>(pw + 16 * (sw ^ 1));
                const uint4 hdr = *reinterpret_cast<const uint4 *>(meta[r] + 16 * bl);
                const uint4 a0 = and4(w0, 0x0f0f0f0fu), a1 = and4(w1, 0x0f0f0f0fu);
                const uint4 b0 = and4(w0, 0xf0f0f0f0u), b1 = and4(w1, 0xf0f0f0f0u);
                int Dlo = 254 * dot16<false>(a1, hc, dot16<false>(a0, ha, 0));
                int Dhi = 254 * dot16<false>(b1, hd, dot16<false>(b0, hb, 0));
                if (two) {
                    Dlo += dot16<false>(a1, lc, dot16<false>(a0, la, 0));
                    Dhi += dot16<false>(b1, ld, dot16<false>(b0, lb, 0));
                }
                int s0, s1, m0, m1;
                k_scale_min2(hdr.y, hdr.z, hdr.w, g, s0, s1, m0, m1);
                const float d = h2f_bits(hdr.x & 0xffffu), dmin = h2f_bits(hdr.x >> 16);
                float t = fmaf(d * (float)s0 * gs.x, (float)Dlo, acc[r]);
                t = fmaf(d * (float)s1 * (0.0625f * gs.z), (float)Dhi, t);
                t = fmaf(-dmin * (float)m0, gs.y, t);
                acc[r] = fmaf(-dmin * (float)m1, gs.w, t);
            }
        }
    }
}

template <int TYPE, int PRO, int EPI, bool V2>
__global__ void __launch_bounds__(512) qgemv_tma_kernel(const gemv_params p, const llt_cuda_qmat q, const qtma_geo g) {
    extern __shared__ __align__(16) unsigned char smem[];
    int8_t *xq = reinterpret_cast<int8_t *>(smem);
    int2 *xg = reinterpret_cast<int2 *>(smem + 2 * (size_t)p.k); /* v1 */
    float2 *xg2 = reinterpret_cast<float2 *>(smem + g.xb - (p.k / 32) * 8); /* v2 */
    float *red = reinterpret_cast<float *>(smem + g.xb);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int S = g.S;
    unsigned long long *bars = reinterpret_cast<unsigned long long *>(red + 32) + warp * S;
    uint8_t *ring = smem + g.ring + (size_t)warp * S * g.stage;
    const int nw = blockDim.x >> 5;
    const int gw = (int)blockIdx.x * nw + warp, GW = (int)gridDim.x * nw, npairs = p.n / 2;
    const int n_items = gw < npairs ? ((npairs - 1 - gw) / GW + 1) * g.np : 0;
    const uint32_t bar0 = smem_u32(bars);
    qcursor cc = {gw, 0, {NULL, NULL}, {NULL, NULL}};
    qcursor_rows(cc, q, npairs);
    qcursor pc = cc; /* the producer's, S items ahead after the first requests */
    if (lane == 0) {
        for (int s = 0; s < S; s++) mbar_init(bar0 + 8 * s, 1);
        for (int i = 0; i < S && i < n_items; i++) {
            qpiece_issue<TYPE>(pc, g, ring + (size_t)i * g.stage, bar0 + 8 * i);
            qcursor_next(pc, q, g, GW, npairs);
        }
    }
    float4 nw0[2] = {make_float4(0, 0, 0, 0), make_float4(0, 0, 0, 0)}; /* v2: this thread's norm weights */
    if (PRO == PRO_NORM) {
        if (V2 && (int)threadIdx.x < p.k / 8 && p.k / 8 <= (int)blockDim.x)
            nw0[0] = reinterpret_cast<const float4 *>(p.norm_w)[2 * threadIdx.x],
            nw0[1] = reinterpret_cast<const float4 *>(p.norm_w)[2 * threadIdx.x + 1];
        else
            for (int i = threadIdx.x * 32; i < p.k; i += blockDim.x * 32) prefetch_l1(p.norm_w + i);
    }
    pdl_wait();
    /* the grid is one wave: the next kernel's blocks may come in and request their weights */
    if (p.early_trigger) pdl_trigger();
    const bool two = g.two;
    if (g.abl & 2) {
    } else if constexpr (V2) stage_x32<PRO, v2_ppu<TYPE>()>(p, reinterpret_cast<uint8_t *>(xq), xg2, red, g.nup, two, nw0);
    else stage_xq<PRO>(p, xq, xg, red, two);
    __syncthreads();
    constexpr qgeo G = geo_of(TYPE);
    constexpr int U = 2; /* chunks per row read from shared memory before the first use */
    float acc[QR] = {0.0f, 0.0f};
    qkv_pre pre = {1.0f, 0.0f, 0};
    for (int i = 0, st = 0, ph = 0; i < n_items; i++) {
        if (cc.pc == 0) pre = qkv_preload<1, QR, EPI>(p, 2 * cc.rp, lane);
        const int b0 = cc.pc * g.bpp, nbk = min(g.bpp, g.nb - b0);
        const uint8_t *sp = ring + (size_t)st * g.stage, *m16;
        int moff[QR], mlen;
#pragma unroll
        for (int j = 0; j < QR; j++) qpiece_meta<TYPE>(cc, g, j, m16, moff[j], mlen);
        const qrow rs[QR] = {{TYPE, sp, sp + 2 * g.pp + moff[0]}, {TYPE, sp + g.pp, sp + 2 * g.pp + g.mp + moff[1]}};
        const int nch = nbk * G.chunks, cb = b0 * G.chunks;
        mbar_wait(bar0 + 8 * st, (uint32_t)ph);
        if (g.abl & 1) {
        } else if constexpr (V2) {
            const uint8_t *const pays[QR] = {rs[0].pay, rs[1].pay}, *const metas[QR] = {rs[0].meta, rs[1].meta};
            constexpr int UPB = TYPE == LLT_DTYPE_Q4_K ? 4 : 1; /* units per block */
            v2_dot_item<TYPE, QR>(pays, metas, nbk * UPB, b0 * UPB, reinterpret_cast<const uint8_t *>(xq), xg2, g.nup,
                                  two, lane, acc);
        } else
        for (int c0 = lane; c0 < nch; c0 += 32 * U) {
            qraw raw[U][QR];
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int r = 0; r < QR; r++)
                    if (c0 + 32 * u < nch) raw[u][r] = load_raw<TYPE, true>(rs[r].pay, rs[r].meta, c0 + 32 * u);
#pragma unroll
            for (int u = 0; u < U; u++) {
                if (c0 + 32 * u >= nch) break;
                qdot_chunk<TYPE, QR>(raw[u], cb + c0 + 32 * u, xq, xg, p.k, acc, two);
            }
        }
        __syncwarp();
        if (lane == 0 && i + S < n_items) {
            qpiece_issue<TYPE>(pc, g, ring + (size_t)st * g.stage, bar0 + 8 * st);
            qcursor_next(pc, q, g, GW, npairs);
        }
        if (b0 + nbk == g.nb) { /* the row pair is complete */
            const int row0 = 2 * cc.rp;
#pragma unroll
            for (int r = 0; r < QR; r++) acc[r] = warp_sum(acc[r]);
            if (EPI == EPI_STORE || EPI == EPI_ADD) {
                if (lane < QR) gemv_store1<__half, EPI>(p, row0 + lane, 0, lane ? acc[1] : acc[0]);
            } else if (lane == 0) {
                gemv_store2<__half, EPI>(p, row0, 0, acc[0], acc[1], pre);
            }
            acc[0] = acc[1] = 0.0f;
        }
        qcursor_next(cc, q, g, GW, npairs);
        if (++st == S) st = 0, ph ^= 1;
    }
    if (!p.early_trigger) pdl_trigger();
}

/* Pieces of about `piece` payload bytes per row, in whole blocks. */
static qtma_geo qtma_geo_of(int type, int k, int piece, int stages) {
    const qgeo G = geo_of(type);
    qtma_geo g;
    g.nb = k / G.be;
    g.np = (g.nb * G.pay + piece - 1) / piece;
    if (g.np < 1) g.np = 1;
    g.bpp = (g.nb + g.np - 1) / g.np;
    g.np = (g.nb + g.bpp - 1) / g.bpp;
    g.pp = g.bpp * G.pay;
    g.mp = ((g.bpp * G.meta + 15) & ~15) + 16;
    g.stage = 2 * g.pp + 2 * g.mp;
    g.S = stages;
    g.two = 1;
    g.nup = 0, g.abl = 0;
    g.xb = (int)(2 * (size_t)k + (size_t)(k / 16) * 8);
    g.ring = 0;
    return g;
}

/* v2's x layout for a matrix of type with w warps of S stages (a v1 geometry otherwise). */
static void qtma_geo_x(qtma_geo &g, int type, int k, bool v2, int warps) {
    if (v2) {
        const int ppu = type == LLT_DTYPE_Q4_K ? 4 : 2;
        g.nup = v2_nup(k, ppu), g.xb = v2_xbytes(k, ppu);
    }
    g.ring = (int)qtma_ring_off(g.xb, warps * g.S);
}

typedef void (*qgemv_fn)(const gemv_params, const llt_cuda_qmat, const int);
typedef void (*qtma_fn)(const gemv_params, const llt_cuda_qmat, const qtma_geo);

/* The two GEMVs as kernel families K::get<TYPE, PRO, EPI>() (TYPE -1: several types; the
 * streamed GEMV has none for that). */
struct qgemv_reg {
    template <int TYPE, int PRO, int EPI>
    static qgemv_fn get() { return qgemv_kernel<TYPE, PRO, EPI>; }
};
struct qgemv_tma {
    template <int TYPE, int PRO, int EPI>
    static qtma_fn get() {
        if constexpr (TYPE < 0) return NULL;
        else return qgemv_tma_kernel<TYPE, PRO, EPI, false>;
    }
};
struct qgemv_tma2 {
    template <int TYPE, int PRO, int EPI>
    static qtma_fn get() {
        if constexpr (TYPE < 0 || !v2_has<TYPE>()) return NULL;
        else return qgemv_tma_kernel<TYPE, PRO, EPI, true>;
    }
};

template <class K, int TYPE>
static auto qgemv_pick_combo(int combo) {
    switch (combo) {
    case COMBO_ACT_STORE: return K::template get<TYPE, PRO_ACT, EPI_STORE>();
    case COMBO_ACT_ADD: return K::template get<TYPE, PRO_ACT, EPI_ADD>();
    case COMBO_NORM_STORE: return K::template get<TYPE, PRO_NORM, EPI_STORE>();
    case COMBO_NORM_SWIGLU: return K::template get<TYPE, PRO_NORM, EPI_SWIGLU>();
    default: return K::template get<TYPE, PRO_NORM, EPI_QKV>();
    }
}

/* type: the matrix's one block type, or -1 for several */
template <class K>
static auto qgemv_pick(int type, int combo) {
    switch (type) {
    case LLT_DTYPE_Q8_0: return qgemv_pick_combo<K, LLT_DTYPE_Q8_0>(combo);
    case LLT_DTYPE_Q4_0: return qgemv_pick_combo<K, LLT_DTYPE_Q4_0>(combo);
    case LLT_DTYPE_Q4_1: return qgemv_pick_combo<K, LLT_DTYPE_Q4_1>(combo);
    case LLT_DTYPE_Q5_0: return qgemv_pick_combo<K, LLT_DTYPE_Q5_0>(combo);
    case LLT_DTYPE_Q4_K: return qgemv_pick_combo<K, LLT_DTYPE_Q4_K>(combo);
    case LLT_DTYPE_Q5_K: return qgemv_pick_combo<K, LLT_DTYPE_Q5_K>(combo);
    case LLT_DTYPE_Q6_K: return qgemv_pick_combo<K, LLT_DTYPE_Q6_K>(combo);
    default: return qgemv_pick_combo<K, -1>(combo);
    }
}

/* The matrix's one type, or -1 when its segments differ. */
static int qmat_type(const llt_cuda_qmat *q) {
    for (int s = 1; s < q->n_seg; s++)
        if (q->seg[s].type != q->seg[0].type) return -1;
    return q->seg[0].type;
}

/* The GEMV's row pairs must not mix types: interleaved segments (gate, up) of one type, and
 * stacked segments (QKV) of even row counts. */
static bool qgemv_rows_ok(const llt_cuda_qmat *q) {
    if (q->interleave) return qmat_type(q) >= 0;
    for (int s = 0; s < q->n_seg; s++)
        if (q->seg[s].rows % 2) return false;
    return true;
}

static int env_int(const char *name, int def, int lo, int hi) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    int x = atoi(v);
    return x < lo ? lo : x > hi ? hi : x;
}

static llt_status qgemv_launch(llt_cuda_ctx *c, const llt_cuda_linear *a, llt_error *err) {
    /* the register GEMV's launch shape: warps per block, blocks per SM at most (0: one row group
     * per block), the prefetch bits (1 L2, 2 registers). llama2-7b q4_k decode on the H200
     * (bench/RESULTS.md), one-part x: 8 / 0 / off 375 tok/s, 8 / 0 / L2 338, 8 / 2 / L2 391,
     * 16 / 1 / L2 395; two-part x: 16 / 1 / registers 363, 8 / 2 / registers 365. */
    static const int warps = env_int("LLT_CUDA_QGEMV_WARPS", 16, 1, 16);
    static const int bps = env_int("LLT_CUDA_QGEMV_BPS", 1, 0, 16);
    static const int pf = env_int("LLT_CUDA_QGEMV_PF", 2, 0, 3);
    /* the streamed GEMV (one-type matrices): warps per block, stages per warp, payload bytes
     * per row and stage, x parts, blocks per SM, the early PDL trigger. llama2-7b q4_k decode
     * on the H200 (bench/RESULTS.md): 16 / 2 / 2048 426-433 tok/s; 16 / 2 / 1024 423, 8 / 4 /
     * 1024 277, 12 / 3 / 1024 365, 2 blocks of 8 / 2 / 1024 419; one x part 451. More warps
     * per SM is what pays: the decoding, not the copies, is the limit. */
    static const int tma = env_int("LLT_CUDA_QTMA", 1, 0, 1);
    static const int t_warps = env_int("LLT_CUDA_QTMA_WARPS", 16, 1, 16);
    static const int t_stages = env_int("LLT_CUDA_QTMA_STAGES", 2, 1, 16);
    static const int t_piece = env_int("LLT_CUDA_QTMA_PIECE", 2048, 256, 16384);
    static const int t_parts = env_int("LLT_CUDA_QTMA_XPARTS", 2, 1, 2);
    static const int t_bps = env_int("LLT_CUDA_QTMA_BPS", 1, 1, 8);
    static const int t_early = env_int("LLT_CUDA_QTMA_EARLY", 1, 0, 1);
    /* v2 (Q4_K, Q8_0): a lane per sub-block pair / block, bank-conflict-free x */
    static const int t_v2 = env_int("LLT_CUDA_QTMA_V2", 1, 0, 1);
    static const int t_abl = env_int("LLT_CUDA_QTMA_ABL", 0, 0, 3);
    const int combo = combo_of(a), type = qmat_type(a->qw);
    if (tma && type >= 0) {
        qtma_geo g = qtma_geo_of(type, a->k, t_piece, t_stages);
        g.two = t_parts == 2, g.abl = t_abl;
        const bool v2 = t_v2 && (type == LLT_DTYPE_Q4_K || type == LLT_DTYPE_Q8_0) && a->k % 64 == 0;
        qtma_geo_x(g, type, a->k, v2, t_warps);
        const size_t smem = (size_t)g.ring + (size_t)t_warps * g.S * g.stage;
        if (smem <= c->smem_optin) {
            qtma_fn fn = v2 ? qgemv_pick<qgemv_tma2>(type, combo) : qgemv_pick<qgemv_tma>(type, combo);
            LLT_TRY(llt_smem_optin(c, fn, smem, err));
            const int pairs = a->n / 2, need = (pairs + t_warps - 1) / t_warps;
            const int blocks = need < t_bps * c->n_sm ? need : t_bps * c->n_sm;
            gemv_params p = gemv_params_of(a);
            p.early_trigger = t_early || c->early_trigger || combo == COMBO_NORM_QKV;
            return llt_launch(c, fn, dim3((unsigned)blocks), dim3(32 * t_warps), smem, err, p, *a->qw, g);
        }
    }
    qgemv_fn fn = qgemv_pick<qgemv_reg>(type, combo);
    const size_t smem = qgemv_smem(a->k);
    LLT_TRY(llt_smem_optin(c, fn, smem, err));
    gemv_params p = gemv_params_of(a);
    p.ks = 1, p.prefetch = 0, p.early_trigger = c->early_trigger || combo == COMBO_NORM_QKV;
    const int groups = (a->n + QR * warps - 1) / (QR * warps);
    const int blocks = bps > 0 && groups > bps * c->n_sm ? bps * c->n_sm : groups;
    return llt_launch(c, fn, dim3((unsigned)blocks), dim3(32 * warps), smem, err, p, *a->qw, pf);
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

/* The values of one row of type TYPE into out [k]: the block's threads over its chunks. */
template <int TYPE, typename T>
__device__ __forceinline__ void q_dequant_row(const qrow &qr, int k, T *out) {
    const qgeo g = geo_of(TYPE);
    const int n = k / g.be * g.chunks;
    for (int c = threadIdx.x; c < n; c += blockDim.x) {
        const qrun2 w = load_chunk<TYPE>(qr.pay, qr.meta, c);
#pragma unroll
        for (int u = 0; u < (TYPE == LLT_DTYPE_Q8_0 ? 1 : 2); u++) {
            const unsigned ws[4] = {w.q[u].x, w.q[u].y, w.q[u].z, w.q[u].w};
            float f[16];
#pragma unroll
            for (int e = 0; e < 16; e++) f[e] = w.s[u] * qbyte(ws[e / 4], e % 4) - w.bias[u];
            store16(out + w.x0[u], f);
        }
    }
}

/* One block per virtual row of [row0, row0 + gridDim.x): dst [rows, k] = values (no per-thread
 * row / chunk divisions, the row's segment and type found once). */
template <typename T>
__global__ void q_dequant_kernel(const llt_cuda_qmat q, int row0, T *dst) {
    pdl_wait();
    const qrow qr = row_of(q, row0 + (int)blockIdx.x);
    T *out = dst + (size_t)blockIdx.x * q.k;
    switch (qr.type) {
    case LLT_DTYPE_Q8_0: q_dequant_row<LLT_DTYPE_Q8_0>(qr, q.k, out); break;
    case LLT_DTYPE_Q4_0: q_dequant_row<LLT_DTYPE_Q4_0>(qr, q.k, out); break;
    case LLT_DTYPE_Q4_1: q_dequant_row<LLT_DTYPE_Q4_1>(qr, q.k, out); break;
    case LLT_DTYPE_Q5_0: q_dequant_row<LLT_DTYPE_Q5_0>(qr, q.k, out); break;
    case LLT_DTYPE_Q4_K: q_dequant_row<LLT_DTYPE_Q4_K>(qr, q.k, out); break;
    case LLT_DTYPE_Q5_K: q_dequant_row<LLT_DTYPE_Q5_K>(qr, q.k, out); break;
    default: q_dequant_row<LLT_DTYPE_Q6_K>(qr, q.k, out); break;
    }
    pdl_trigger();
}

/* v2: a warp per row, rows spread over the warps of a grid of a few blocks per SM; a lane loads
 * U chunks (16-byte loads, a warp's 512 consecutive payload bytes each) before decoding any, so
 * that each SM keeps ~100 KB of loads in flight (v1: one chunk per thread of a block per row,
 * short-lived blocks: 1.56 TB/s of reads + writes, 61 % occupancy under Nsight Compute). */
template <int TYPE, typename T>
__device__ __forceinline__ void q_dequant_warp_row(const qrow &qr, int k, T *out, int lane) {
    constexpr qgeo g = geo_of(TYPE);
    constexpr int U = 4;
    const int n = k / g.be * g.chunks;
    for (int c0 = lane; c0 < n; c0 += 32 * U) {
        qraw raw[U];
#pragma unroll
        for (int u = 0; u < U; u++)
            if (c0 + 32 * u < n) raw[u] = load_raw<TYPE>(qr.pay, qr.meta, c0 + 32 * u);
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (c0 + 32 * u >= n) break;
            const qrun2 w = decode_chunk<TYPE>(raw[u], c0 + 32 * u);
#pragma unroll
            for (int v = 0; v < (TYPE == LLT_DTYPE_Q8_0 ? 1 : 2); v++) {
                const unsigned ws[4] = {w.q[v].x, w.q[v].y, w.q[v].z, w.q[v].w};
                float f[16];
#pragma unroll
                for (int e = 0; e < 16; e++) f[e] = w.s[v] * qbyte(ws[e / 4], e % 4) - w.bias[v];
                store16(out + w.x0[v], f);
            }
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(256) q_dequant2_kernel(const llt_cuda_qmat q, int row0, int rows, T *dst) {
    pdl_wait();
    const int lane = threadIdx.x & 31;
    const int W = (int)(gridDim.x * blockDim.x) >> 5;
    for (int r = (int)(blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += W) {
        const qrow qr = row_of(q, row0 + r);
        T *out = dst + (size_t)r * q.k;
        switch (qr.type) {
        case LLT_DTYPE_Q8_0: q_dequant_warp_row<LLT_DTYPE_Q8_0>(qr, q.k, out, lane); break;
        case LLT_DTYPE_Q4_0: q_dequant_warp_row<LLT_DTYPE_Q4_0>(qr, q.k, out, lane); break;
        case LLT_DTYPE_Q4_1: q_dequant_warp_row<LLT_DTYPE_Q4_1>(qr, q.k, out, lane); break;
        case LLT_DTYPE_Q5_0: q_dequant_warp_row<LLT_DTYPE_Q5_0>(qr, q.k, out, lane); break;
        case LLT_DTYPE_Q4_K: q_dequant_warp_row<LLT_DTYPE_Q4_K>(qr, q.k, out, lane); break;
        case LLT_DTYPE_Q5_K: q_dequant_warp_row<LLT_DTYPE_Q5_K>(qr, q.k, out, lane); break;
        default: q_dequant_warp_row<LLT_DTYPE_Q6_K>(qr, q.k, out, lane); break;
        }
    }
    pdl_trigger();
}

__device__ __forceinline__ unsigned h2_bits(__half2 h) { return *reinterpret_cast<unsigned *>(&h); }
__device__ __forceinline__ __half2 bits_h2(unsigned u) { return *reinterpret_cast<__half2 *>(&u); }

/* four nibbles (one per byte of nib, high bits clear) -> f16 pairs s q - b of bytes (0, 1), (2, 3) */
__device__ __forceinline__ void q4_pairs(unsigned nib, __half2 s, __half2 nb, unsigned &p01, unsigned &p23) {
    const __half2 k1024 = bits_h2(0x64006400u);
    const __half2 a = __hsub2(bits_h2(__byte_perm(nib, 0x64646464u, 0x4140)), k1024);
    const __half2 b = __hsub2(bits_h2(__byte_perm(nib, 0x64646464u, 0x4342)), k1024);
    p01 = h2_bits(__hfma2(a, s, nb)), p23 = h2_bits(__hfma2(b, s, nb));
}

/* v3 (f16 scratch; Q4_K, Q6_K, Q8_0): a warp per row; lane L makes elements [8 L, 8 L + 8) of
 * every 256-element window of the row (a super-block, or 8 Q8_0 blocks) and writes them with
 * one 16-byte store, so that each store instruction of the warp covers 512 contiguous bytes
 * (v1 / v2: a lane's two runs 64 bytes apart, half a sector per instruction); the weights are
 * made two at a time in f16x2 (1024 + q by a byte permute, minus 1024 + bias, times the scale:
 * 3 instructions per pair, v1 7 in float32); U windows' loads are issued before any is used.
 * Q4_K rounds s and the min to f16 before the fma (as the small-batch kernel does), Q6_K the
 * sub-block scale; Q8_0 is exact to f16's rounding of q d. */
__device__ __forceinline__ uint2 ld_stream8(const void *p) {
    uint2 v;
    asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "l"(p));
    return v;
}
/* bytes of q (each < 2048 - c after adding) -> f16 pairs (q - c) s of bytes (0, 1), (2, 3) */
__device__ __forceinline__ void qi_pairs(unsigned q, __half2 kc, __half2 s, unsigned &p01, unsigned &p23) {
    p01 = h2_bits(__hmul2(__hsub2(bits_h2(__byte_perm(q, 0x64646464u, 0x4140)), kc), s));
    p23 = h2_bits(__hmul2(__hsub2(bits_h2(__byte_perm(q, 0x64646464u, 0x4342)), kc), s));
}
struct qd3_raw {
    uint2 a, b;     /* payload bytes (Q6_K: ql in a, qh in b) */
    unsigned m[4];  /* scales as needed */
};
template <int TYPE>
__device__ __forceinline__ qd3_raw qd3_load(const qrow &qr, int w, int lane, int k) {
    qd3_raw r;
    if (TYPE == LLT_DTYPE_Q4_K) {
        const int g = lane >> 3, i = lane & 3;
        r.a = ld_stream8(qr.pay + (size_t)w * 128 + 32 * g + 8 * i);
        const uint4 h = __ldg(reinterpret_cast<const uint4 *>(qr.meta + (size_t)w * 16));
        r.m[0] = h.x, r.m[1] = h.y, r.m[2] = h.z, r.m[3] = h.w;
    } else if (TYPE == LLT_DTYPE_Q6_K) {
        const int h = lane >> 4, Q = (lane >> 2) & 3, l0 = 8 * (lane & 3);
        const uint8_t *pb = qr.pay + (size_t)w * 192, *mb = qr.meta + (size_t)w * 18;
        r.a = ld_stream8(pb + 64 * h + 32 * (Q & 1) + l0);
        r.b = ld_stream8(pb + 128 + 32 * h + l0);
        r.m[0] = __ldg(mb + 8 * h + (l0 >> 4) + 2 * Q);
        r.m[1] = __ldg(reinterpret_cast<const unsigned short *>(mb + 16));
    } else { /* Q8_0: block 8 w + lane / 4, its bytes [8 (lane & 3), + 8) */
        const int b = 8 * w + (lane >> 2);
        if (32 * b < k) {
            r.a = ld_stream8(qr.pay + (size_t)b * 32 + 8 * (lane & 3));
            r.m[0] = __ldg(reinterpret_cast<const unsigned short *>(qr.meta + (size_t)b * 2));
        }
    }
    return r;
}
template <int TYPE>
__device__ __forceinline__ uint4 qd3_decode(const qd3_raw &r, int lane) {
    uint4 o;
    if (TYPE == LLT_DTYPE_Q4_K) {
        const int g = lane >> 3, hi = (lane >> 2) & 1;
        int s0, s1, m0, m1;
        k_scale_min2(r.m[1], r.m[2], r.m[3], g, s0, s1, m0, m1);
        const float d = h2f_bits(r.m[0] & 0xffffu), dm = h2f_bits(r.m[0] >> 16);
        const __half2 s = __float2half2_rn(d * (float)(hi ? s1 : s0)), nb = __float2half2_rn(-dm * (float)(hi ? m1 : m0));
        const unsigned sh = 4 * hi;
        q4_pairs((r.a.x >> sh) & 0x0f0f0f0fu, s, nb, o.x, o.y);
        q4_pairs((r.a.y >> sh) & 0x0f0f0f0fu, s, nb, o.z, o.w);
    } else if (TYPE == LLT_DTYPE_Q6_K) {
        const int Q = (lane >> 2) & 3;
        const unsigned sl = 4 * (Q >> 1), sh = 2 * Q;
        const __half2 s = __float2half2_rn(h2f_bits(r.m[1]) * (float)(int8_t)r.m[0]);
        const __half2 kc = bits_h2(0x64206420u); /* 1024 + 32 */
        qi_pairs(((r.a.x >> sl) & 0x0f0f0f0fu) | (((r.b.x >> sh) & 0x03030303u) << 4), kc, s, o.x, o.y);
        qi_pairs(((r.a.y >> sl) & 0x0f0f0f0fu) | (((r.b.y >> sh) & 0x03030303u) << 4), kc, s, o.z, o.w);
    } else {
        const __half2 s = bits_h2(r.m[0] | r.m[0] << 16), kc = bits_h2(0x64806480u); /* 1024 + 128 */
        qi_pairs(r.a.x ^ 0x80808080u, kc, s, o.x, o.y);
        qi_pairs(r.a.y ^ 0x80808080u, kc, s, o.z, o.w);
    }
    return o;
}
template <int TYPE>
__device__ __forceinline__ void q_dequant3_row(const qrow &qr, int k, __half *out, int lane) {
    constexpr int U = TYPE == LLT_DTYPE_Q8_0 ? 8 : 4;
    const int nw = (k + 255) / 256;
    for (int w0 = 0; w0 < nw; w0 += U) {
        qd3_raw raw[U];
#pragma unroll
        for (int u = 0; u < U; u++)
            if (w0 + u < nw) raw[u] = qd3_load<TYPE>(qr, w0 + u, lane, k);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int e = 256 * (w0 + u) + 8 * lane;
            if (w0 + u < nw && e < k) *reinterpret_cast<uint4 *>(out + e) = qd3_decode<TYPE>(raw[u], lane);
        }
    }
}
__global__ void __launch_bounds__(256) q_dequant3_kernel(const llt_cuda_qmat q, int row0, int rows, __half *dst) {
    pdl_wait();
    const int lane = threadIdx.x & 31;
    const int W = (int)(gridDim.x * blockDim.x) >> 5;
    for (int r = (int)(blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += W) {
        const qrow qr = row_of(q, row0 + r);
        __half *out = dst + (size_t)r * q.k;
        switch (qr.type) {
        case LLT_DTYPE_Q4_K: q_dequant3_row<LLT_DTYPE_Q4_K>(qr, q.k, out, lane); break;
        case LLT_DTYPE_Q6_K: q_dequant3_row<LLT_DTYPE_Q6_K>(qr, q.k, out, lane); break;
        default: q_dequant3_row<LLT_DTYPE_Q8_0>(qr, q.k, out, lane); break;
        }
    }
    pdl_trigger();
}
template <typename T> struct qd3_half { static constexpr bool v = false; };
template <> struct qd3_half<__half> { static constexpr bool v = true; };
/* every segment of a type v3 decodes */
static bool qdeq3_types(const llt_cuda_qmat *q) {
    for (int s = 0; s < q->n_seg; s++) {
        const llt_dtype t = q->seg[s].type;
        if (t != LLT_DTYPE_Q4_K && t != LLT_DTYPE_Q6_K && t != LLT_DTYPE_Q8_0) return false;
    }
    return q->k % 32 == 0;
}

template <typename T>
static llt_status q_dequant_t(llt_cuda_ctx *c, const llt_cuda_qmat *q, int32_t row0, int32_t rows, T *dst,
                              llt_error *err) {
    /* LLT_CUDA_QDEQ_V2: the warp-per-row kernel with that many blocks of 8 warps per SM at most */
    static const int v2 = env_int("LLT_CUDA_QDEQ_V2", 0, 0, 16);
    /* LLT_CUDA_QDEQ_V3: blocks of 8 warps per SM for the v3 kernel (f16 scratch, Q4_K / Q6_K /
     * Q8_0 matrices); 0 = off */
    static const int v3 = env_int("LLT_CUDA_QDEQ_V3", 4, 0, 16);
    if (rows <= 0) return LLT_OK;
    if (v3 && qd3_half<T>::v && qdeq3_types(q)) {
        const int need = (rows + 7) / 8, cap = v3 * c->n_sm;
        return llt_launch(c, q_dequant3_kernel, dim3((unsigned)(need < cap ? need : cap)), dim3(256), 0, err, *q,
                          (int)row0, (int)rows, reinterpret_cast<__half *>(dst));
    }
    if (v2) {
        const int need = (rows + 7) / 8, cap = v2 * c->n_sm;
        return llt_launch(c, q_dequant2_kernel<T>, dim3((unsigned)(need < cap ? need : cap)), dim3(256), 0, err, *q,
                          (int)row0, (int)rows, dst);
    }
    return llt_launch(c, q_dequant_kernel<T>, dim3((unsigned)rows), dim3(128), 0, err, *q, (int)row0, dst);
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

/* ---- small batches on tensor cores (Q4_K, Q8_0, Q6_K: LLT_CUDA_QMMA_TYPES; m = 2..64) ------- */

/* y[t][r] = W[r] . x[t] for up to 64 token rows without a dequantised copy of W (the BLAS path
 * writes and re-reads 3.5x the block bytes as f16 per step). A warp owns 16 rows and decodes its
 * Q4_K blocks straight into mma.sync m16n8k16 A fragments (f16: 1024 + q by a byte permute,
 * minus 1024, times the sub-block scale minus the min, two elements per instruction); x comes
 * into shared memory one super-block (256 k) of every token at a time by cp.async, QMMA_STAGES
 * deep, and is the B operand (8 tokens per mma). The k order inside a super-block is permuted
 * (the dot product does not care): for mma s (0..15) the lane quad t holds elements
 * 64 t + 4 s + {0, 1} (slots 2t, 2t+1) and + {2, 3} (slots 2t+8, 2t+9), so lane quad t needs
 * exactly payload chunks 2t, 2t+1 of each of its two rows (sub-blocks 2t: low nibbles, 2t+1:
 * high nibbles) and 16 contiguous x bytes per token and pair of mmas. x units are swizzled so
 * that those 16-byte reads are free of bank conflicts. Q8_0 and Q6_K fill the same fragments
 * through their own block decoders (qmd below: the kernel body is one template). Rows of few blocks (n <= 4096) split k
 * over blockIdx.y and add into a float32 output with atomics (zeroed first unless ADD). */
#define QMMA_WARPS 8
#define QMMA_STAGES 3
#define QM_AHEAD 4

__device__ __forceinline__ void qm_cp16(unsigned dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void qm_cp4(unsigned dst, const void *src) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src));
}
/* keeps a register live (and unmodified by the compiler) until here: A fragments that
 * asynchronous warpgroup products still read (qgemm_kernel) */
__device__ __forceinline__ void qwg_keep(unsigned &r) { asm volatile("" : "+r"(r)::"memory"); }
__device__ __forceinline__ void qm_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void qm_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
__device__ __forceinline__ void qm_mma(float (&d)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0,
                                       unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* Block decoders of the small-batch kernel: lane quad t of a warp holds elements [64 t, 64 t + 64)
 * of every 256-element window (a super-block, or 8 Q8_0 blocks) of its two rows; for mma s
 * (0..15) it needs the f16 pairs of elements 64 t + 4 s + {0, 1} (a01) and + {2, 3} (a23).
 * raw: one row's loads for a window (issued before any use); sc: its scales as f16 pairs;
 * PAY / META: bytes of a window; pf: what lane quad t asks the L2 for (t & 1: the second line);
 * refill<B>: window kb's loads of the registers that slab B (mmas 4 B .. 4 B + 3) is the last to
 * read; the four together (qmd_load) are a whole window's. */
/* a weight's 16-byte load in the tensor-core kernels: L1 = false bypasses L1 (ld_stream16); true
 * allocates in L1 (a lane quad's four loads of a row each use half of four 32-byte sectors, the
 * other halves come with the next load: with L1 those are hits, not a second L2 request) */
template <bool L1> __device__ __forceinline__ uint4 qld16(const void *p) {
    if constexpr (L1) return __ldg(reinterpret_cast<const uint4 *>(p));
    else return ld_stream16(p);
}
/* word i (0..3) of a 16-byte load, i known at compile time once unrolled */
__device__ __forceinline__ unsigned u4_word(const uint4 &v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }
template <int TYPE> struct qmd;
template <> struct qmd<LLT_DTYPE_Q4_K> { /* chunk t of the payload: sub-blocks 2t (low nibbles), 2t + 1 */
    static constexpr int PAY = 128, META = 16;
    struct raw {
        uint4 p0, p1, meta;
    };
    struct sc {
        __half2 sl, bl, sh, bh;
    };
    static __device__ __forceinline__ sc prep(const raw &r, int t) {
        const uint4 mt = r.meta;
        int s0, s1, m0, m1;
        k_scale_min2(mt.y, mt.z, mt.w, t, s0, s1, m0, m1);
        const float d = h2f_bits(mt.x & 0xffffu), dm = h2f_bits(mt.x >> 16);
        return {__float2half2_rn(d * (float)s0), __float2half2_rn(-dm * (float)m0), __float2half2_rn(d * (float)s1),
                __float2half2_rn(-dm * (float)m1)};
    }
    static __device__ __forceinline__ void pair(const raw &r, const sc &c, int t, int s, unsigned &a01, unsigned &a23) {
        const int wi = s & 7; /* word wi of chunks 2t, 2t + 1 */
        const unsigned w = u4_word(wi < 4 ? r.p0 : r.p1, wi & 3);
        if (s < 8) q4_pairs(w & 0x0f0f0f0fu, c.sl, c.bl, a01, a23);
        else q4_pairs((w >> 4) & 0x0f0f0f0fu, c.sh, c.bh, a01, a23);
    }
    static __device__ __forceinline__ const uint8_t *pf(const uint8_t *pay, const uint8_t *meta, int t, int &stride) {
        stride = (t & 1) ? META : PAY; /* a lane quad's 128 bytes of a row are one line; t odd: the scales */
        return (t & 1) ? meta : pay;
    }
    template <int B, bool L1 = false> /* the scales after slab 0 (prep read them before it), p0 after 2, p1 after 3 */
    static __device__ __forceinline__ void refill(raw &r, const uint8_t *pay, const uint8_t *meta, int kb, int t) {
        const uint8_t *pb = pay + (size_t)kb * PAY + 32 * t;
        if (B == 0) r.meta = __ldg(reinterpret_cast<const uint4 *>(meta + (size_t)kb * META));
        if (B == 2) r.p0 = qld16<L1>(pb);
        if (B == 3) r.p1 = qld16<L1>(pb + 16);
    }
};
template <> struct qmd<LLT_DTYPE_Q8_0> { /* blocks 2t (mmas 0..7) and 2t + 1 (8..15) of the window */
    static constexpr int PAY = 256, META = 16;
    struct raw {
        uint4 p[4];
        unsigned d; /* the two blocks' f16 scales */
    };
    struct sc {
        __half2 d0, d1;
    };
    static __device__ __forceinline__ sc prep(const raw &r, int) {
        return {bits_h2((r.d & 0xffffu) | r.d << 16), bits_h2((r.d >> 16) | (r.d & 0xffff0000u))};
    }
    /* step s's four quants, offset to unsigned (the pairs' f16 bias is 1024 + 128) */
    static __device__ __forceinline__ unsigned qs(const raw &r, int s) { return u4_word(r.p[s >> 2], s & 3) ^ 0x80808080u; }
    static __device__ __forceinline__ void pair(const raw &r, const sc &c, int, int s, unsigned &a01, unsigned &a23) {
        qi_pairs(qs(r, s), bits_h2(0x64806480u), s < 8 ? c.d0 : c.d1, a01, a23);
    }
    static __device__ __forceinline__ const uint8_t *pf(const uint8_t *pay, const uint8_t *, int t, int &stride) {
        stride = PAY; /* the window's two payload lines (the scales: one line per 8 windows) */
        return pay + 128 * (t & 1);
    }
    template <int B, bool L1 = false> /* slab B used p[B] alone (and prep the scales before slab 0) */
    static __device__ __forceinline__ void refill(raw &r, const uint8_t *pay, const uint8_t *meta, int kb, int t) {
        if (B == 0) r.d = __ldg(reinterpret_cast<const unsigned *>(meta + (size_t)kb * META + 4 * t));
        r.p[B] = qld16<L1>(pay + (size_t)kb * PAY + 64 * t + 16 * B);
    }
};
template <> struct qmd<LLT_DTYPE_Q6_K> { /* half h = t / 2: ql bytes [64 h, + 64) (t odd: high
                                          * nibbles), qh bytes [32 h, + 32) (bits 4 (t & 1) + 2 (s >= 8)) */
    static constexpr int PAY = 192, META = 18;
    struct raw {
        uint4 l[4], h[2];
        unsigned s4, d; /* 4 int8 sub-block scales [8 h + 4 (t & 1), + 4), d */
    };
    struct sc {
        __half2 s[4];
    };
    static __device__ __forceinline__ sc prep(const raw &r, int) {
        const float d = h2f_bits(r.d);
        sc c;
#pragma unroll
        for (int i = 0; i < 4; i++) c.s[i] = __float2half2_rn(d * (float)(int8_t)(r.s4 >> 8 * i));
        return c;
    }
    static __device__ __forceinline__ void pair(const raw &r, const sc &c, int t, int s, unsigned &a01, unsigned &a23) {
        const uint4 &lc = r.l[s >> 2], &hc = r.h[(s & 7) >> 2];
        const unsigned lw = (s & 3) == 0 ? lc.x : (s & 3) == 1 ? lc.y : (s & 3) == 2 ? lc.z : lc.w;
        const unsigned hw = (s & 3) == 0 ? hc.x : (s & 3) == 1 ? hc.y : (s & 3) == 2 ? hc.z : hc.w;
        const int od = t & 1;
        const unsigned q = ((lw >> 4 * od) & 0x0f0f0f0fu) | (((hw >> (4 * od + 2 * (s >> 3))) & 0x03030303u) << 4);
        qi_pairs(q, bits_h2(0x64206420u), c.s[2 * (s >> 3) + ((s & 7) >> 2)], a01, a23); /* 1024 + 32 */
    }
    static __device__ __forceinline__ const uint8_t *pf(const uint8_t *pay, const uint8_t *, int t, int &stride) {
        stride = PAY; /* ql of half 0, then ql of half 1 + qh (the scales share the payload's line rate) */
        return pay + 128 * (t & 1);
    }
    template <int B, bool L1 = false> /* slab B was the last to use l[B] (the scales: prep, before slab 0; h[0]: slabs 0, 2; h[1]: 1, 3) */
    static __device__ __forceinline__ void refill(raw &r, const uint8_t *pay, const uint8_t *meta, int kb, int t) {
        const int h = t >> 1;
        const uint8_t *pb = pay + (size_t)kb * PAY, *mb = meta + (size_t)kb * META;
        if (B == 0) {
            const unsigned short *ms = reinterpret_cast<const unsigned short *>(mb + 8 * h + 4 * (t & 1)); /* 2-aligned */
            r.s4 = __ldg(ms) | (unsigned)__ldg(ms + 1) << 16;
            r.d = __ldg(reinterpret_cast<const unsigned short *>(mb + 16));
        }
        r.l[B] = qld16<L1>(pb + 64 * h + 16 * B);
        if (B == 2) r.h[0] = qld16<L1>(pb + 128 + 32 * h);
        if (B == 3) r.h[1] = qld16<L1>(pb + 144 + 32 * h);
    }
};

/* Q8_0 with the scales' f16 pairs made where each step uses them (one PRMT) instead of held in
 * registers across the window: qgemm_kernel's VAR bit 1, the 64-token blocks (two blocks a
 * multiprocessor, 128 registers: spills 32 -> 16 bytes; H100 q8_0 m = 64 kernels 1-4 % faster) */
struct qmd8p : qmd<LLT_DTYPE_Q8_0> {
    struct sc {};
    static __device__ __forceinline__ sc prep(const raw &, int) { return {}; }
    static __device__ __forceinline__ void pair(const raw &r, const sc &, int, int s, unsigned &a01, unsigned &a23) {
        qi_pairs(qs(r, s), bits_h2(0x64806480u), bits_h2(__byte_perm(r.d, 0u, s < 8 ? 0x1010u : 0x3232u)), a01, a23);
    }
};

/* one row's loads for window kb: every slab's refill */
template <typename D, bool L1 = false>
__device__ __forceinline__ typename D::raw qmd_load(const uint8_t *pay, const uint8_t *meta, int kb, int t) {
    typename D::raw r;
    D::template refill<0, L1>(r, pay, meta, kb, t), D::template refill<1, L1>(r, pay, meta, kb, t);
    D::template refill<2, L1>(r, pay, meta, kb, t), D::template refill<3, L1>(r, pay, meta, kb, t);
    return r;
}

struct qm_args {
    const __half *x;
    int ldx, m, kb_per; /* super-blocks per split */
    void *y;
    int ldy;
    int half_out, add, atomic;
    int units; /* > 0: stream-K, block b takes work units [b U / G, (b + 1) U / G) of U = row blocks x super-blocks */
    int roll;  /* qgemm_kernel at TN >= 128: the next window's loads slab by slab (qmd::refill), else all after
                * the last slab (LLT_CUDA_QGEMM_ROLL=0; the 64-token blocks always: with the rolling loads 64
                * sequences of llama2-7b q8_0 ran 7 % slower on the H100, bench/RESULTS.md issue 20) */
};

/* RW row tiles of 16 per warp: RW = 2 reuses each x fragment read from shared memory for two
 * tiles (half the shared-memory reads per mma; one block per SM for the registers). */
template <int TYPE, int NT, int RW, bool PF, bool BH, int W>
__device__ __forceinline__ void qm_segment(const llt_cuda_qmat &q, const qm_args &a, uint8_t *qm_smem, int rb, int kb0,
                                           int kb1, bool first) {
    constexpr int TOK = 8 * NT, STAGE = TOK * 512, RR = 2 * RW;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int n = q.n;
    const int r0 = rb * (16 * RW * W) + warp * 16 * RW;
    qrow wr[RR]; /* rows r0 + 16 (i / 2) + g + 8 (i & 1) */
#pragma unroll
    for (int i = 0; i < RR; i++) wr[i] = row_of(q, min(r0 + 16 * (i >> 1) + g + 8 * (i & 1), n - 1));
    const bool live = r0 < n; /* whole warps past n only stage x */
    const unsigned sbase = (unsigned)__cvta_generic_to_shared(qm_smem);
    using D = qmd<TYPE>;
    typename D::raw cur[RR];
    if (live && kb0 < kb1)
#pragma unroll
        for (int i = 0; i < RR; i++) cur[i] = qmd_load<D>(wr[i].pay, wr[i].meta, kb0, t);
    /* the register loads run one super-block ahead; the L2 gets the payload QM_AHEAD ahead (the
     * decoder says which line lane quad t asks for) */
    const qrow pr = (t >> 1) ? wr[1] : wr[0], pr2 = (t >> 1) ? wr[RR - 1] : wr[RR - 2];
    int pfs;
    const uint8_t *pf = D::pf(pr.pay, pr.meta, t, pfs), *pf2 = D::pf(pr2.pay, pr2.meta, t, pfs);
    if (live)
        for (int kb = kb0 + 1; kb < kb0 + QM_AHEAD && kb < kb1; kb++) {
            prefetch_l2(pf + (size_t)kb * pfs);
            if (RW == 2) prefetch_l2(pf2 + (size_t)kb * pfs);
        }
    if (first) pdl_wait(); /* x (and y for ADD) come from the previous kernel */
    auto stage = [&](int kb, int buf) {
        for (int u = tid; u < TOK * 32; u += 32 * W) {
            const int tok = u >> 5, v = u & 31, vt = v >> 3;
            const int p = (vt << 3) | ((v & 7) ^ vt ^ ((tok & 1) << 2));
            const __half *src = a.x + (size_t)min(tok, a.m - 1) * a.ldx + (size_t)kb * 256 + v * 8;
            qm_cp16(sbase + buf * STAGE + tok * 512 + p * 16, src);
        }
    };
#pragma unroll
    for (int s = 0; s < QMMA_STAGES - 1; s++) {
        if (kb0 + s < kb1) stage(kb0 + s, s);
        qm_commit();
    }
    float acc[RW][NT][4];
#pragma unroll
    for (int w = 0; w < RW; w++)
#pragma unroll
        for (int j = 0; j < NT; j++) acc[w][j][0] = acc[w][j][1] = acc[w][j][2] = acc[w][j][3] = 0.0f;
    for (int kb = kb0; kb < kb1; kb++) {
        const int i = kb - kb0;
        qm_wait<QMMA_STAGES - 2>();
        __syncthreads(); /* stage i landed for all; stage i - 1 is free */
        if (kb + QMMA_STAGES - 1 < kb1) stage(kb + QMMA_STAGES - 1, (i + QMMA_STAGES - 1) % QMMA_STAGES);
        qm_commit();
        if (!live) continue;
        if (kb + QM_AHEAD < kb1) {
            prefetch_l2(pf + (size_t)(kb + QM_AHEAD) * pfs);
            if (RW == 2) prefetch_l2(pf2 + (size_t)(kb + QM_AHEAD) * pfs);
        }
        typename D::raw nxt[RR];
        if (!PF && kb > kb0)
#pragma unroll
            for (int r = 0; r < RR; r++) cur[r] = qmd_load<D>(wr[r].pay, wr[r].meta, kb, t);
        if (PF && kb + 1 < kb1)
#pragma unroll
            for (int r = 0; r < RR; r++) nxt[r] = qmd_load<D>(wr[r].pay, wr[r].meta, kb + 1, t);
        typename D::sc sc[RR];
#pragma unroll
        for (int r = 0; r < RR; r++) sc[r] = D::prep(cur[r], t);
        const uint8_t *xs = qm_smem + (i % QMMA_STAGES) * STAGE + g * 512;
#pragma unroll
        for (int u = 0; u < 8; u++) { /* mmas 2u, 2u + 1: elements 64 t + 8 u + [0, 8) */
            const int p = (t << 3) | (u ^ t ^ ((g & 1) << 2));
            unsigned a01[2][RR], a23[2][RR]; /* both mmas' A fragments first */
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int r = 0; r < RR; r++) D::pair(cur[r], sc[r], t, 2 * u + h, a01[h][r], a23[h][r]);
            /* BH: x fragments in two halves of the token tiles (half the registers for them;
             * the empty asm keeps the second half's reads after the first half's mmas) */
            constexpr int JN = BH ? NT / 2 : NT;
#pragma unroll
            for (int jh = 0; jh < NT / JN; jh++) {
                uint4 bq[JN];
#pragma unroll
                for (int jj = 0; jj < JN; jj++)
                    bq[jj] = *reinterpret_cast<const uint4 *>(xs + (jh * JN + jj) * 8 * 512 + p * 16);
#pragma unroll
                for (int h = 0; h < 2; h++)
#pragma unroll
                    for (int w = 0; w < RW; w++)
#pragma unroll
                        for (int jj = 0; jj < JN; jj++)
                            qm_mma(acc[w][jh * JN + jj], a01[h][2 * w], a01[h][2 * w + 1], a23[h][2 * w],
                                   a23[h][2 * w + 1], h ? bq[jj].z : bq[jj].x, h ? bq[jj].w : bq[jj].y);
                if (BH) asm volatile("" ::: "memory");
            }
        }
        if (PF && kb + 1 < kb1)
#pragma unroll
            for (int r = 0; r < RR; r++) cur[r] = nxt[r];
    }
    qm_wait<0>();
    __syncthreads(); /* the stages are free for the next segment */
    if (live) {
#pragma unroll
        for (int w = 0; w < RW; w++)
#pragma unroll
            for (int j = 0; j < NT; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int tok = 8 * j + 2 * t + (e & 1), row = r0 + 16 * w + g + 8 * (e >> 1);
                    if (tok >= a.m || row >= n) continue;
                    const size_t o = (size_t)tok * a.ldy + row;
                    if (a.half_out) reinterpret_cast<__half *>(a.y)[o] = __float2half_rn(acc[w][j][e]);
                    else if (a.atomic) atomicAdd(reinterpret_cast<float *>(a.y) + o, acc[w][j][e]);
                    else if (a.add) reinterpret_cast<float *>(a.y)[o] += acc[w][j][e];
                    else reinterpret_cast<float *>(a.y)[o] = acc[w][j][e];
                }
    }
}

/* W warps a block: 8 (two blocks per SM at RW = 1: 128 registers), or 12 (one block: 168) */
template <int TYPE, int NT, int RW, bool PF, bool BH, int W>
__global__ void __launch_bounds__(32 * W, RW == 1 && W == 8 ? 2 : 1) qmma_kernel(const llt_cuda_qmat q, const qm_args a) {
    extern __shared__ __align__(16) uint8_t qm_smem[];
    const int nkb = q.k / 256;
    if (NT < 8 && a.units <= 0) { /* one k split (measured faster at m 16 than through the loop) */
        const int kb0 = blockIdx.y * a.kb_per;
        qm_segment<TYPE, NT, RW, PF, BH, W>(q, a, qm_smem, blockIdx.x, kb0, min(nkb, kb0 + a.kb_per), true);
        pdl_trigger();
        return;
    }
    /* work units u = row block x nkb + super-block: this block's [u, u1), one segment per row
     * block it touches */
    int u, u1;
    if (a.units <= 0) {
        const int kb0 = blockIdx.y * a.kb_per;
        u = blockIdx.x * nkb + kb0, u1 = blockIdx.x * nkb + min(nkb, kb0 + a.kb_per);
    } else {
        const long long U = a.units, G = gridDim.x;
        u = (int)(U * blockIdx.x / G), u1 = (int)(U * (blockIdx.x + 1) / G);
    }
    for (bool first = true; u < u1; first = false) {
        const int rb = u / nkb, kb0 = u - rb * nkb, kb1 = min(nkb, kb0 + (u1 - u));
        qm_segment<TYPE, NT, RW, PF, BH, W>(q, a, qm_smem, rb, kb0, kb1, first);
        u += kb1 - kb0;
    }
    pdl_trigger();
}

/* ---- prefill on warpgroup tensor cores (sm_90a wgmma): qgemm_kernel ------------------------------
 * y[t][r] = W[r] . x[t] for m > 64 token rows straight from the blocks, with no f16 copy of W in
 * memory (the dequantise + cuBLASLt path writes 2 bytes per weight and reads them back: a third
 * of a 7B's prefill, bench/RESULTS.md issue 20). A block of two warpgroups owns 128 rows (each
 * warpgroup 64) and TN = 256 tokens (64 at m <= 64); its warps decode their rows' blocks into wgmma A
 * fragments in registers (the qmd decoders of the small-batch kernel: the A-from-registers layout
 * of a warpgroup is mma.sync's per warp) and x is B, K-major in shared memory with the 128-byte
 * swizzle, in the decoders' k order (lane quad t: elements 64 t + 4 s + {0, 1} in slots 2t, 2t+1
 * of step s, + {2, 3} in slots 2t + 8, 2t + 9). A slab is 4 steps (64 k) of the 256 tokens, 32 KB:
 * by default one bulk copy of x's image (qg_xperm_kernel writes x in that order and swizzle
 * first: 4-byte copies from the kernel's own threads ran at half the speed, bench/RESULTS.md
 * issue 20), else filled by 4-byte cp.async (XP false; lane l of a warp: bytes 128 (l / 8) + 4
 * (l % 8) of the token's 128-byte piece, to chunk l % 8 at 4 (l / 8) of its row, chunk swizzled
 * by the token). QG_ST slabs in flight, QG_ST - 2 ahead of the products, one slab's products
 * (two m64n128k16 per step) left running while the next slab decodes. The weights' register loads
 * run a window (256 k) ahead: with 256-token blocks a slab's registers are reloaded with the next
 * window's as soon as it is decoded (qmd::refill: the loads then have a whole window of products
 * to land in; m = 512 on the H100 up to 8 % faster, bench/RESULTS.md issue 20), else all of them
 * after the window's last slab. k splits over blockIdx.z add with atomics (y zeroed first unless
 * ADD). */
#define QG_ST 4

/* y [m, n] (row stride ldy, float32) zeroed by the image kernels below before a launch with k
 * splits adds into it with atomics (no memset node of its own); y NULL: nothing to zero. Rows
 * r0, r0 + rstep, ... of this block. */
struct qg_zero {
    float *y;
    int ldy, n, m;
};
__device__ __forceinline__ void qg_zero_out(const qg_zero z, int r0, int rstep) {
    if (!z.y) return;
    for (int r = r0; r < z.m; r += rstep)
        for (int i = threadIdx.x; i < z.n; i += blockDim.x) z.y[(size_t)r * z.ldy + i] = 0.0f;
}

/* chunk c (of 8) of x's slab-L piece: its four element pairs, lane quads t = 0..3 64 elements apart */
__device__ __forceinline__ int qg_chunk_elem(int L, int c) { return (L >> 2) * 256 + 16 * (L & 3) + 4 * (c >> 1) + 2 * (c & 1); }

/* x in the kernel's shared-memory image (qg_xperm_kernel): [token tile][slab][TN tokens][128 B],
 * chunk c of a token's 128 bytes at c ^ (token & 7), tokens past m zero; one bulk copy a slab */
__global__ void qg_xperm_kernel(const __half *x, int ldx, int m, int k, uint4 *xp, long long chunks, int tshift,
                                const qg_zero z) {
    pdl_wait();
    const int nsl = k / 64;
    for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < chunks; o += (long long)gridDim.x * blockDim.x) {
        const int p = (int)(o & 7), tl = (int)((o >> 3) & ((1 << tshift) - 1));
        const long long st = o >> (3 + tshift); /* tile * nsl + slab */
        const int L = (int)(st % nsl), tok = (int)(st / nsl) * (1 << tshift) + tl, c = p ^ (tl & 7);
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (tok < m) {
            const unsigned *src = reinterpret_cast<const unsigned *>(x + (size_t)tok * ldx + qg_chunk_elem(L, c));
            v = make_uint4(src[0], src[32], src[64], src[96]); /* lane quads t = 0..3: 64 t elements apart */
        }
        xp[o] = v;
    }
    qg_zero_out(z, blockIdx.x, gridDim.x);
    pdl_trigger();
}

/* NORM input straight into x's image: block b = padded token b (token tb of its tile) takes
 * RMSNorm of float32 row x_rows[b] of x (NULL: row b), rounded to f16 as llt_cuda_rmsnorm
 * rounds it, in the image's order (tokens past m zero): one launch, and no f16 copy of the
 * normalised rows, where the RMSNorm kernel and qg_xperm_kernel took two */
__global__ void __launch_bounds__(256) qg_norm_xperm_kernel(const float *x, int ldx, const int *x_rows, const float *w,
                                                            float eps, int m, int k, uint4 *xp, int tshift,
                                                            const qg_zero z) {
    __shared__ float red[32];
    pdl_wait();
    const int b = blockIdx.x, tb = b & ((1 << tshift) - 1), nsl = k / 64;
    const float *xr = NULL;
    float inv = 0.0f;
    if (b < m) { /* uniform over the block (block_sum) */
        xr = x + (size_t)(x_rows ? x_rows[b] : b) * ldx;
        float ss = 0.0f;
        for (int i = threadIdx.x; i < k; i += blockDim.x) ss += xr[i] * xr[i];
        inv = rsqrtf(block_sum(ss, red) / (float)k + eps);
    }
    uint4 *dst = xp + ((size_t)(b >> tshift) * nsl << tshift | tb) * 8; /* slab 0 of this token */
    for (int o = threadIdx.x; o < nsl * 8; o += blockDim.x) {
        const int L = o >> 3, p = o & 7, e = qg_chunk_elem(L, p ^ (tb & 7));
        unsigned u[4] = {0u, 0u, 0u, 0u};
        if (xr)
#pragma unroll
            for (int t = 0; t < 4; t++) {
                const int i = e + 64 * t;
                const __half2 h = __halves2half2(__float2half_rn(xr[i] * inv * w[i]), __float2half_rn(xr[i + 1] * inv * w[i + 1]));
                u[t] = *reinterpret_cast<const unsigned *>(&h);
            }
        dst[((size_t)L << tshift) * 8 + p] = make_uint4(u[0], u[1], u[2], u[3]);
    }
    qg_zero_out(z, b, gridDim.x);
    pdl_trigger();
}

template <int TYPE, bool XP, int TN, int MB, int VAR = 0>
__global__ void __launch_bounds__(256, MB) qgemm_kernel(const llt_cuda_qmat q, const qm_args a,
                                                                     const uint8_t *xp) {
    constexpr int SLAB = TN * 128, NH = TN >= 128 ? TN / 128 : 1, AW = TN >= 128 ? 64 : TN / 2;
    extern __shared__ __align__(16) uint8_t qg_smem[]; /* 1024-aligned by hand (the swizzle atoms) */
    __shared__ __align__(8) uint64_t qg_bar[QG_ST];
    const unsigned sraw = (unsigned)__cvta_generic_to_shared(qg_smem), sbase = (sraw + 1023u) & ~1023u;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int n = q.n, nkb = q.k / 256, tok0 = blockIdx.y * TN;
    const int kb0 = blockIdx.z * a.kb_per, kb1 = min(nkb, kb0 + a.kb_per), nsl = 4 * (kb1 - kb0);
    const int r0 = blockIdx.x * 128 + warp * 16;
    const bool live = blockIdx.x * 128 + (warp >> 2) * 64 < n; /* uniform over the warpgroup (wgmma is) */
    qrow wr[2];
#pragma unroll
    for (int i = 0; i < 2; i++) wr[i] = row_of(q, min(r0 + g + 8 * i, n - 1));
    /* VAR: bit 0 the weights' loads allocate in L1 (qld16: the 256-token blocks), bit 1 Q8_0's
     * scales made at each use (qmd8p: the 64-token blocks); LLT_CUDA_QGEMM_VAR=0 neither */
    constexpr bool L1 = VAR & 1;
    using D = std::conditional_t<(VAR & 2) && TYPE == LLT_DTYPE_Q8_0, qmd8p, qmd<TYPE>>;
    const bool roll = TN >= 128 && a.roll; /* the next window's loads slab by slab (qm_args::roll) */
    typename D::raw cur[2];
    if (live && kb0 < kb1)
#pragma unroll
        for (int i = 0; i < 2; i++) cur[i] = qmd_load<D, L1>(wr[i].pay, wr[i].meta, kb0, t);
    const qrow pr = (t >> 1) ? wr[1] : wr[0];
    int pfs;
    const uint8_t *pf = D::pf(pr.pay, pr.meta, t, pfs);
    if (live)
        for (int kb = kb0 + 1; kb < kb0 + QM_AHEAD && kb < kb1; kb++) prefetch_l2(pf + (size_t)kb * pfs);
    if (XP && tid == 0)
#pragma unroll
        for (int i = 0; i < QG_ST; i++) mbar_init(smem_u32(&qg_bar[i]), 1);
    if (XP) __syncthreads();
    pdl_wait(); /* x (and y for ADD) come from the previous kernel */
    const int lx = lane & 7, lt = lane >> 3;
    auto stage = [&](int sl, int buf) { /* slab sl of this block's k range: warp w takes tokens w, w + 8, ... */
        if (XP) { /* one bulk copy of the slab's image (thread 0) */
            if (tid == 0) {
                const uint32_t bar = smem_u32(&qg_bar[buf]);
                mbar_expect_tx(bar, SLAB);
                bulk_copy(sbase + buf * SLAB, xp + ((size_t)blockIdx.y * (q.k / 64) + (size_t)(4 * kb0 + sl)) * SLAB,
                          SLAB, bar);
            }
            return;
        }
        const int kb = kb0 + (sl >> 2), b = sl & 3;
        const unsigned d0 = sbase + buf * SLAB + 4 * lt;
#pragma unroll 8
        for (int i = warp; i < TN; i += 8) {
            const int tok = min(tok0 + i, a.m - 1);
            const char *src = reinterpret_cast<const char *>(a.x + (size_t)tok * a.ldx + (size_t)kb * 256) + 128 * lt +
                              4 * lx + 32 * b;
            qm_cp4(d0 + i * 128 + ((lx ^ (i & 7)) << 4), src);
        }
    };
#pragma unroll
    for (int s = 0; s < QG_ST - 2; s++) {
        if (s < nsl) stage(s, s);
        if (!XP) qm_commit();
    }
    float acc[NH][AW]; /* NH m64n128 accumulators (TN = 64: one m64n64) */
#pragma unroll
    for (int h = 0; h < NH; h++)
#pragma unroll
        for (int i = 0; i < AW; i++) acc[h][i] = 0.0f;
    unsigned af[2][4][4]; /* A fragments of two slabs: the one decoding, the one whose products run */
#pragma unroll
    for (int b = 0; b < 2; b++)
#pragma unroll
        for (int j = 0; j < 4; j++) af[b][j][0] = af[b][j][1] = af[b][j][2] = af[b][j][3] = 0u;
    typename D::sc sc[2];
    /* slab sl with the A registers af[P] (P = sl & 1, a compile-time index: a run-time one would
     * put af in local memory) */
    auto slab = [&](int sl, auto P) {
        wg_wait<1>(); /* this warpgroup's products of slab sl - 2 are done (its buffer and A registers) */
#pragma unroll
        for (int b = 0; b < 2; b++)
#pragma unroll
            for (int j = 0; j < 4; j++) qwg_keep(af[b][j][0]), qwg_keep(af[b][j][1]), qwg_keep(af[b][j][2]), qwg_keep(af[b][j][3]);
        if (!XP) {
            qm_wait<QG_ST - 3>();
            wg_fence_proxy(); /* this thread's copies of slab sl -> visible to the tensor cores */
        }
        __syncthreads(); /* every thread's; both warpgroups are done with slab sl - 2 */
        if (sl + QG_ST - 2 < nsl) stage(sl + QG_ST - 2, (sl + QG_ST - 2) % QG_ST);
        if (!XP) qm_commit();
        if (XP) mbar_wait(smem_u32(&qg_bar[sl % QG_ST]), (unsigned)(sl / QG_ST) & 1u); /* slab sl has landed */
        if (!live) return;
        const int kb = kb0 + (sl >> 2), b = sl & 3;
        if (b == 0) {
            if (kb + QM_AHEAD < kb1) prefetch_l2(pf + (size_t)(kb + QM_AHEAD) * pfs);
#pragma unroll
            for (int r = 0; r < 2; r++) sc[r] = D::prep(cur[r], t);
        }
        unsigned(&A)[4][4] = af[decltype(P)::value];
        /* the slab's 4 steps: b is run-time, so the decoders' step index is 4 b + j */
#define QG_DECODE(B)                                                                                                   \
    _Pragma("unroll") for (int j = 0; j < 4; j++) {                                                                    \
        unsigned a01[2], a23[2];                                                                                       \
        _Pragma("unroll") for (int r = 0; r < 2; r++) D::pair(cur[r], sc[r], t, 4 * (B) + j, a01[r], a23[r]);         \
        A[j][0] = a01[0], A[j][1] = a01[1], A[j][2] = a23[0], A[j][3] = a23[1];                                        \
    }                                                                                                                  \
    if (roll && kb + 1 < kb1)                                                                                          \
        _Pragma("unroll") for (int r = 0; r < 2; r++) D::template refill<B, L1>(cur[r], wr[r].pay, wr[r].meta, kb + 1, t);
        switch (b) {
        case 0: QG_DECODE(0) break;
        case 1: QG_DECODE(1) break;
        case 2: QG_DECODE(2) break;
        default: QG_DECODE(3) break;
        }
#undef QG_DECODE
        if (!roll && b == 3 && kb + 1 < kb1) /* the next window's loads, once this one is decoded */
#pragma unroll
            for (int r = 0; r < 2; r++) cur[r] = qmd_load<D, L1>(wr[r].pay, wr[r].meta, kb + 1, t);
        const uint64_t xd = wg_desc(sbase + (sl % QG_ST) * SLAB, 16, 1024);
        wg_fence();
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if constexpr (TN >= 128) {
#pragma unroll
                for (int h = 0; h < NH; h++) wg_mma_n128_f16(acc[h], A[j], wg_desc_at(xd, h * 16384 + j * 32), 1);
            } else {
                wg_mma_n64_f16(acc[0], A[j], wg_desc_at(xd, j * 32), 1);
            }
        }
        wg_commit();
    };
    for (int sl = 0; sl < nsl; sl += 2) {
        slab(sl, std::integral_constant<int, 0>());
        if (sl + 1 < nsl) slab(sl + 1, std::integral_constant<int, 1>());
    }
    wg_wait<0>();
#pragma unroll
    for (int h = 0; h < NH; h++)
#pragma unroll
        for (int i = 0; i < AW; i++) wg_reg_fence(acc[h][i]);
    if (!XP) qm_wait<0>();
    if (live) {
#pragma unroll
        for (int h = 0; h < NH; h++)
#pragma unroll
            for (int j = 0; j < AW / 4; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int tok = tok0 + 128 * h + 8 * j + 2 * t + (e & 1), row = r0 + g + 8 * (e >> 1);
                    if (tok >= a.m || row >= n) continue;
                    const float v = acc[h][4 * j + e];
                    const size_t o = (size_t)tok * a.ldy + row;
                    if (a.half_out) reinterpret_cast<__half *>(a.y)[o] = __float2half_rn(v);
                    else if (a.atomic) atomicAdd(reinterpret_cast<float *>(a.y) + o, v);
                    else if (a.add) reinterpret_cast<float *>(a.y)[o] += v;
                    else reinterpret_cast<float *>(a.y)[o] = v;
                }
    }
    pdl_trigger();
}

/* The types the kernel takes (bit per llt_dtype): LLT_CUDA_QMMA_TYPES, a comma list of q4_k,
 * q8_0, q6_k (default all three; a type left out goes dequantise + cuBLASLt above one row). At
 * 64 sequences of llama2-7b on the H200: q8_0 5543 tok/s against 4180 by cuBLASLt, q6_k 5152
 * against 4143 (bench/RESULTS.md, issue 20). */
static unsigned qmma_types_parse(const char *v) {
    static const llt_dtype ts[] = {LLT_DTYPE_Q4_K, LLT_DTYPE_Q8_0, LLT_DTYPE_Q6_K};
    unsigned mask = 0;
    while (v && *v) {
        const size_t len = strcspn(v, ",");
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            if (strlen(llt_dtype_name(ts[i])) == len && strncmp(v, llt_dtype_name(ts[i]), len) == 0) mask |= 1u << ts[i];
        v += len + (v[len] == ',');
    }
    return mask;
}
static unsigned qmma_types(void) {
    static const char *env = getenv("LLT_CUDA_QMMA_TYPES");
    static const unsigned mask = qmma_types_parse(env ? env : "q4_k,q8_0,q6_k");
    return mask;
}

/* Whether the tensor-core kernel takes this layer: every segment of one type the kernel takes,
 * f16 compute, m <= the cap, 16-byte aligned rows of x. LLT_CUDA_QMMA=0 off,
 * LLT_CUDA_QMMA_MAXM: the largest m. */
static bool qmma_ok(const llt_cuda_linear *a) {
    static const int on = env_int("LLT_CUDA_QMMA", 1, 0, 1), maxm = env_int("LLT_CUDA_QMMA_MAXM", 64, 2, 64);
    if (!on || a->dtype != LLT_DTYPE_F16 || a->m < 2 || a->m > maxm || a->k % 256 != 0) return false;
    const llt_dtype t = a->qw->seg[0].type;
    if (t >= 32 || !(qmma_types() >> t & 1)) return false;
    for (int s = 1; s < a->qw->n_seg; s++)
        if (a->qw->seg[s].type != t) return false;
    if (a->in == LLT_LIN_IN_NORM) return a->tmp_x != NULL;
    return (uintptr_t)a->x % 16 == 0 && a->ldx % 8 == 0;
}

/* Splits of nkb super-blocks along k (1..16, each split `per` super-blocks, none empty) of the
 * least cost(s, per); force (an LLT_CUDA_*_SPLIT switch) > 0 takes that many instead. */
template <typename F> static int ksplit_best(int nkb, int force, F cost) {
    if (force) return force < nkb ? force : nkb;
    int best = 1;
    double bc = 1e30;
    for (int s = 1; s <= 16 && s <= nkb; s++) {
        const int per = (nkb + s - 1) / s;
        if ((nkb + per - 1) / per != s) continue;
        const double v = cost(s, per);
        if (v < bc) bc = v, best = s;
    }
    return best;
}

/* Blocks along k for n rows. Cost model, in super-blocks of one block's work: a block alone on
 * an SM runs at ~60 % of what two resident blocks get out of it, so a grid of B blocks takes
 * (per + 0.5) x (B <= SMs ? 1.6 : ceil(B / SMs)), the 0.5 for a block's pipeline start and
 * atomics. E.g. a 7B gate/up (172 row blocks) takes 2 splits, O (32) 8, QKV (96) 4, the head 1.
 * LLT_CUDA_QMMA_SPLIT forces one. */
static int qmma_split(const llt_cuda_ctx *c, int32_t n, int32_t k, int rw) {
    static const int force = env_int("LLT_CUDA_QMMA_SPLIT", 0, 0, 64);
    const int nkb = k / 256, bx = (n + 16 * rw * QMMA_WARPS - 1) / (16 * rw * QMMA_WARPS); /* k splits: 8 warps */
    return ksplit_best(nkb, force, [&](int s, int per) {
        const int b = bx * s;
        const double waves = (double)((b + c->n_sm - 1) / c->n_sm);
        return (per + 0.5) * (rw == 2 ? waves : b <= c->n_sm ? 1.6 : waves);
    });
}

/* o [m, ldo] (f16) = silu(gate) * up from the float32 product [m, n] (columns gate_i, up_i) */
__global__ void qm_swiglu_kernel(const float *gu, int n, __half *o, int ldo, int m) {
    pdl_wait();
    const int inter = n / 2;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < m * inter; i += gridDim.x * blockDim.x) {
        const int t = i / inter, j = i - t * inter;
        const float2 v = reinterpret_cast<const float2 *>(gu + (size_t)t * n)[j];
        o[(size_t)t * ldo + j] = __float2half_rn(v.x / (1.0f + __expf(-v.x)) * v.y);
    }
    pdl_trigger();
}
/* its launch over a->o from gu, the [m, n] float32 product of a k-split gate/up */
static llt_status qm_swiglu_f32(llt_cuda_ctx *c, const llt_cuda_linear *a, const float *gu, llt_error *err) {
    const int tot = a->m * (a->n / 2), blocks = (tot + 255) / 256 < 4096 ? (tot + 255) / 256 : 4096;
    return llt_launch(c, qm_swiglu_kernel, dim3((unsigned)blocks), dim3(256), 0, err, gu, (int)a->n, (__half *)a->o,
                      (int)a->ldo, (int)a->m);
}

/* row tiles per warp for m token rows: LLT_CUDA_QMMA_RW=2 takes two for m > 32 (Q4_K; the
 * variants of this and the next two switches are compiled for Q4_K only) */
static int qmma_rw(const llt_cuda_linear *a) {
    static const int rw = env_int("LLT_CUDA_QMMA_RW", 1, 1, 2);
    return a->m > 32 && a->qw->seg[0].type == LLT_DTYPE_Q4_K ? rw : 1;
}
/* warps a block: LLT_CUDA_QMMA_W=12 takes 12 (one block per SM, no spills) at m > 32 with stream-K */
static int qmma_warps(const llt_cuda_linear *a, int rw) {
    static const int w = env_int("LLT_CUDA_QMMA_W", 8, 8, 12);
    return a->m > 32 && rw == 1 && w == 12 && a->qw->seg[0].type == LLT_DTYPE_Q4_K ? 12 : 8;
}

/* Stream-K (m > 32 by default; LLT_CUDA_QMMA_SK=0 never, =1 every m): one wave of blocks (2 per
 * SM, 1 with two row tiles) shares the row blocks x super-blocks evenly, each adding its partial
 * sums with atomics, so that no partial wave of k splits is left (Nsight Compute: the split
 * grids ran 1.30 / 1.45 waves for a 7B gate/up / QKV at m = 64). Returns the grid, 0 when off. */
static int qmma_sk(const llt_cuda_ctx *c, int32_t m, int32_t n, int32_t k, int rw, int wp) {
    /* default: m > 32 (measured: 64 sequences faster, 16 slower); 0 never, 1 every m */
    static const int on = env_int("LLT_CUDA_QMMA_SK", -1, -1, 1);
    if (on == 0 || (on < 0 && m <= 32)) return 0;
    const int bx = (n + 16 * rw * wp - 1) / (16 * rw * wp), units = bx * (k / 256);
    const int slots = (rw == 1 && wp == 8 ? 2 : 1) * c->n_sm;
    return units < slots ? units : slots;
}

/* y (float32, or f16 when half_out) [m, ldy] (=, or += when add) x [m, ldx] . rows of a->qw,
 * k split into `split` ranges, or stream-K over sk blocks (float32 outputs only) */
static llt_status qmma_run(llt_cuda_ctx *c, const llt_cuda_linear *a, const void *x, int32_t ldx, void *y,
                           int32_t ldy, bool half_out, bool add, int split, int sk, llt_error *err) {
    const int nt = a->m <= 8 ? 1 : a->m <= 16 ? 2 : a->m <= 32 ? 4 : 8, rw = qmma_rw(a);
    const int wp = sk > 0 && !half_out ? qmma_warps(a, rw) : 8;
    const int nkb = a->k / 256, bx = (a->n + 16 * rw * wp - 1) / (16 * rw * wp);
    static const int pf = env_int("LLT_CUDA_QMMA_PF", 0, 0, 1), bh = env_int("LLT_CUDA_QMMA_BH", 0, 0, 1);
    const llt_dtype type = a->qw->seg[0].type;
    if (half_out) split = 1, sk = 0;
    if (split < 1) split = 1;
    if (split > nkb) split = nkb;
    const int per = (nkb + split - 1) / split;
    split = (nkb + per - 1) / per;
    const bool atomic = split > 1 || sk > 0;
    if (atomic && !add) {
        if (ldy == a->n) CUDA_TRY(cudaMemsetAsync(y, 0, (size_t)a->m * a->n * 4, c->stream), err);
        else CUDA_TRY(cudaMemset2DAsync(y, (size_t)ldy * 4, 0, (size_t)a->n * 4, (size_t)a->m, c->stream), err);
    }
    const qm_args qa = {(const __half *)x, ldx,       a->m,          per,           y, ldy, half_out ? 1 : 0,
                        add ? 1 : 0,       atomic ? 1 : 0, sk > 0 ? bx * nkb : 0, 0};
    const size_t smem = (size_t)QMMA_STAGES * 8 * nt * 512;
    const dim3 grid(sk > 0 ? (unsigned)sk : (unsigned)bx, sk > 0 ? 1u : (unsigned)split), block(32 * wp);
#define QMMA_GO(T, NT, RW, PF, BH, W)                                                                                  \
    do {                                                                                                               \
        LLT_TRY(llt_smem_optin(c, qmma_kernel<T, NT, RW, PF, BH, W>, smem, err));                                      \
        return llt_launch(c, qmma_kernel<T, NT, RW, PF, BH, W>, grid, block, smem, err, *a->qw, qa);                   \
    } while (0)
    /* Q8_0 / Q6_K: the default configurations only; P: a register copy of the next window at
     * m <= 32 (Q6_K without: its 6 loads a row and window spilled 280-700 bytes with it) */
#define QMMA_DEFAULTS(T, P)                                                                                            \
    switch (nt) {                                                                                                      \
    case 1: QMMA_GO(T, 1, 1, P, false, 8);                                                                             \
    case 2: QMMA_GO(T, 2, 1, P, false, 8);                                                                             \
    case 4: QMMA_GO(T, 4, 1, P, false, 8);                                                                             \
    default: QMMA_GO(T, 8, 1, false, false, 8);                                                                        \
    }
    if (type == LLT_DTYPE_Q8_0) QMMA_DEFAULTS(LLT_DTYPE_Q8_0, true);
    if (type == LLT_DTYPE_Q6_K) QMMA_DEFAULTS(LLT_DTYPE_Q6_K, false);
    if (nt == 8 && rw == 2) QMMA_GO(LLT_DTYPE_Q4_K, 8, 2, true, false, 8);
    if (nt == 8 && wp == 12) QMMA_GO(LLT_DTYPE_Q4_K, 8, 1, false, false, 12);
    if (nt == 8 && pf) QMMA_GO(LLT_DTYPE_Q4_K, 8, 1, true, false, 8); /* LLT_CUDA_QMMA_PF=1: a register copy of the next super-block (spills at 128) */
    if (nt == 8 && bh) QMMA_GO(LLT_DTYPE_Q4_K, 8, 1, false, true, 8); /* LLT_CUDA_QMMA_BH=1: x fragments in two halves */
    QMMA_DEFAULTS(LLT_DTYPE_Q4_K, true);
#undef QMMA_DEFAULTS
#undef QMMA_GO
}

/* NORM input of the tensor-core paths: x (tmp_x, ldx k) = RMSNorm of the float32 rows, once */
static llt_status qlin_norm_input(llt_cuda_ctx *c, const llt_cuda_linear *a, const void **x, int32_t *ldx,
                                  llt_error *err) {
    if (a->in != LLT_LIN_IN_NORM) return LLT_OK;
    LLT_CHECK(a->ldx >= a->k, err, LLT_ERR_INVALID_ARG, "cuda quant linear: NORM input, ldx %d < k %d", a->ldx, a->k);
    LLT_TRY(llt_cuda_rmsnorm(c, a->dtype, (float *)a->x, NULL, a->x_rows, a->norm_w, a->tmp_x, a->m, a->k, a->eps,
                             err));
    *x = a->tmp_x, *ldx = a->k;
    return LLT_OK;
}

static llt_status qlinear_mma(llt_cuda_ctx *c, const llt_cuda_linear *a, llt_error *err) {
    const void *x = a->x;
    int32_t ldx = a->ldx;
    LLT_TRY(qlin_norm_input(c, a, &x, &ldx, err));
    const int rw = qmma_rw(a), split = qmma_split(c, a->n, a->k, rw);
    const int sk = qmma_sk(c, a->m, a->n, a->k, rw, qmma_warps(a, rw));
    if (a->out == LLT_LIN_OUT_SWIGLU) {
        /* split: the float32 product in the dequantisation scratch (unused on this path) */
        if ((split > 1 || sk > 0) && a->deq && a->deq_bytes >= (size_t)a->m * a->n * 4 && a->n % 2 == 0) {
            LLT_TRY(qmma_run(c, a, x, ldx, a->deq, a->n, false, false, split, sk, err));
            return qm_swiglu_f32(c, a, (const float *)a->deq, err);
        }
        LLT_CHECK(a->tmp_y, err, LLT_ERR_INVALID_ARG, "cuda quant linear: SWIGLU needs tmp_y");
        LLT_TRY(qmma_run(c, a, x, ldx, a->tmp_y, a->n, true, false, 1, 0, err));
        return llt_cuda_swiglu(c, a->dtype, a->tmp_y, a->n, a->o, a->ldo, a->m, a->n / 2, err);
    }
    if (a->out == LLT_LIN_OUT_QKV) {
        LLT_CHECK(a->tmp_y, err, LLT_ERR_INVALID_ARG, "cuda quant linear: QKV needs tmp_y");
        LLT_TRY(qmma_run(c, a, x, ldx, a->tmp_y, a->n, false, false, split, sk, err));
        return llt_cuda_rope_kv(c, a->dtype, (const float *)a->tmp_y, a->n, a->m, a->q_rows / a->head_dim,
                                a->kv_rows / a->head_dim, a->head_dim, a->pos, a->slot, a->rope_cos, a->rope_sin, a->q,
                                a->k_pool, a->v_pool, err);
    }
    LLT_CHECK(a->out == LLT_LIN_OUT_STORE || a->out == LLT_LIN_OUT_ADD, err, LLT_ERR_INVALID_ARG,
              "cuda quant linear: unknown output mode %d", (int)a->out);
    return qmma_run(c, a, x, ldx, a->y, a->ldy, false, a->out == LLT_LIN_OUT_ADD, split, sk, err);
}

/* The prefill kernel (qgemm_kernel) takes the layer: an sm_90 device (its sm_90a code), f16
 * compute, m at least LLT_CUDA_QGEMM_MINM (default 33: below, and on other devices up to 64, the
 * small-batch kernel; at 64 sequences of llama2-7b on the H100 the 64-token blocks ran q4_k
 * 6417 tok/s against the small-batch kernel's 6040, q8_0 5875 / 5446, q6_k 5338 / 5107,
 * bench/RESULTS.md issue 20), 16-byte aligned rows of x, every segment of a type the small-batch kernel takes (LLT_CUDA_QMMA_TYPES);
 * stacked segments may differ in type (a Q4_K_M file's QKV with V in Q6_K: one launch a segment),
 * interleaved ones (gate/up) may not. LLT_CUDA_QGEMM=0: dequantise + cuBLASLt instead. */
static int qgemm_tn(int32_t m);
static size_t qgemm_image_bytes(int32_t m, int32_t k);
static bool qgemm_ok(const llt_cuda_ctx *c, const llt_cuda_linear *a) {
    static const int on = env_int("LLT_CUDA_QGEMM", 1, 0, 1), minm = env_int("LLT_CUDA_QGEMM_MINM", 33, 2, 1 << 30);
    if (!on || a->dtype != LLT_DTYPE_F16 || a->m < minm || a->k % 256 != 0) return false;
    for (int s = 0; s < a->qw->n_seg; s++) {
        const llt_dtype t = a->qw->seg[s].type;
        if (t >= 32 || !(qmma_types() >> t & 1) || (a->qw->interleave && t != a->qw->seg[0].type)) return false;
    }
    if (a->in == LLT_LIN_IN_NORM ? a->tmp_x == NULL : ((uintptr_t)a->x % 16 != 0 || a->ldx % 8 != 0)) return false;
    if (qgemm_tn(a->m) == 64 && !(a->deq && a->deq_bytes >= qgemm_image_bytes(a->m, a->k)))
        return false; /* x's image (qgemm_run) */
    return c->sm90;
}

/* tokens a block of the prefill kernel takes: 64 at m <= 64 (batched decode), else 256;
 * LLT_CUDA_QGEMM_TN=64 / 256 forces one (tests) */
static int qgemm_tn(int32_t m) {
    static const int force = env_int("LLT_CUDA_QGEMM_TN", 0, 0, 256);
    if (force == 64 || force == 256) return force;
    return m <= 64 ? 64 : 256;
}

/* bytes of x's image (qg_xperm_kernel): m rounded up to whole token blocks, k f16 each */
static size_t qgemm_image_bytes(int32_t m, int32_t k) {
    const int tn = qgemm_tn(m);
    return (size_t)((m + tn - 1) / tn) * tn * k * 2;
}

/* blocks of the prefill kernel an SM: the 64-token blocks two, but Q6_K's (its decoder's
 * registers spill at 128; two with the spills ran 64 sequences of llama2-7b 2 % slower on the
 * H100, bench/RESULTS.md issue 20) */
static int qgemm_mb(int tn, llt_dtype type) { return tn == 64 && type != LLT_DTYPE_Q6_K ? 2 : 1; }

/* k splits of the prefill kernel for B = row blocks x token tiles blocks (slots of them at once): the fewest
 * waves times super-blocks per block, plus one for a block's start and end. E.g. a 7B's O and
 * down at 512 tokens (64 blocks) take 2, gate/up (344) 1. LLT_CUDA_QGEMM_SPLIT forces one. */
static int qgemm_split(const llt_cuda_ctx *c, int64_t blocks, int nkb, int slots) {
    static const int force = env_int("LLT_CUDA_QGEMM_SPLIT", 0, 0, 64);
    return ksplit_best(nkb, force, [&](int s, int per) { return (double)((blocks * s + slots - 1) / slots) * (per + 1); });
}

/* super-blocks of k a block of one launch over q takes (fewer than q.k / 256: k splits whose
 * products add into y with atomics; an f16 output is never split) */
static int qgemm_per(const llt_cuda_ctx *c, const llt_cuda_qmat &q, int32_t m, bool half_out) {
    const int tn = qgemm_tn(m), nkb = q.k / 256, bx = (q.n + 127) / 128, by = (m + tn - 1) / tn;
    const int split = half_out ? 1 : qgemm_split(c, (int64_t)bx * by, nkb, qgemm_mb(tn, q.seg[0].type) * c->n_sm);
    return (nkb + split - 1) / split;
}

/* One launch of the prefill kernel over the rows of q into columns [0, q.n) of y (y already
 * offset to the first), per super-blocks of k a block (qgemm_per); xp: x's image, or NULL (the
 * kernel gathers x itself); zeroed: y's columns are already zero (the image kernel's qg_zero) */
static llt_status qgemm_launch(llt_cuda_ctx *c, const llt_cuda_qmat &q, int32_t m, const void *x, int32_t ldx,
                               const uint8_t *xp, void *y, int32_t ldy, bool half_out, bool add, int per, bool zeroed,
                               llt_error *err) {
    const int tn = qgemm_tn(m), nkb = q.k / 256, bx = (q.n + 127) / 128, by = (m + tn - 1) / tn;
    const int split = (nkb + per - 1) / per;
    const bool atomic = split > 1;
    if (atomic && !add && !zeroed) {
        if (ldy == q.n) CUDA_TRY(cudaMemsetAsync(y, 0, (size_t)m * q.n * 4, c->stream), err);
        else CUDA_TRY(cudaMemset2DAsync(y, (size_t)ldy * 4, 0, (size_t)q.n * 4, (size_t)m, c->stream), err);
    }
    static const int roll = env_int("LLT_CUDA_QGEMM_ROLL", 1, 0, 1);
    const qm_args qa = {(const __half *)x, ldx, m, per, y, ldy, half_out ? 1 : 0, add ? 1 : 0, atomic ? 1 : 0, 0, roll};
    const dim3 grid((unsigned)bx, (unsigned)by, (unsigned)split), block(256);
    const llt_dtype type = q.seg[0].type;
    static const int var = env_int("LLT_CUDA_QGEMM_VAR", 3, 0, 3); /* qgemm_kernel's VAR bits, 0: neither */
#define QG_GO2(T, XP, TN, MB, V)                                                                                       \
    do {                                                                                                               \
        const size_t smem = (size_t)QG_ST * TN * 128 + 1024;                                                           \
        LLT_TRY(llt_smem_optin(c, qgemm_kernel<T, XP, TN, MB, V>, smem, err));                                         \
        return llt_launch(c, qgemm_kernel<T, XP, TN, MB, V>, grid, block, smem, err, q, qa, xp);                        \
    } while (0)
#define QG_GO(T, MB64)                                                                                                 \
    do {                                                                                                               \
        if (tn == 64 && (var & 2)) QG_GO2(T, true, 64, MB64, T == LLT_DTYPE_Q8_0 ? 2 : 0); /* Q8_0's alone */         \
        if (tn == 64) QG_GO2(T, true, 64, MB64, 0);                                                                    \
        if (xp && (var & 1)) QG_GO2(T, true, 256, 1, 1);                                                               \
        if (xp) QG_GO2(T, true, 256, 1, 0);                                                                            \
        QG_GO2(T, false, 256, 1, 0);                                                                                   \
    } while (0)
    if (type == LLT_DTYPE_Q8_0) QG_GO(LLT_DTYPE_Q8_0, 2);
    if (type == LLT_DTYPE_Q6_K) QG_GO(LLT_DTYPE_Q6_K, 1);
    QG_GO(LLT_DTYPE_Q4_K, 2);
#undef QG_GO
#undef QG_GO2
}

/* y (float32, or f16 when half_out) [m, ldy] (=, or += when add) x . rows of a->qw on the
 * prefill kernel, x = a->x, or its RMSNorm for a NORM input: x's image made once (into the
 * dequantisation scratch, unused on this path; a NORM input normalised straight into it), which
 * also zeroes y where k splits add into it; then one launch, or one a segment where stacked
 * segments differ in type. LLT_CUDA_QGEMM_XP=0 or a scratch too small: no image, the kernel
 * gathers x by 4-byte cp.async itself (a NORM input through tmp_x first). */
static llt_status qgemm_run(llt_cuda_ctx *c, const llt_cuda_linear *a, void *y, int32_t ldy, bool half_out, bool add,
                            llt_error *err) {
    static const int xpon = env_int("LLT_CUDA_QGEMM_XP", 1, 0, 1);
    const int tn = qgemm_tn(a->m), tshift = tn == 64 ? 6 : 8;
    const long long chunks = (long long)(qgemm_image_bytes(a->m, a->k) / 16);
    const uint8_t *xp = (xpon || tn == 64) && a->deq && a->deq_bytes >= (size_t)chunks * 16 ? (const uint8_t *)a->deq : NULL;
    LLT_CHECK(xp || tn != 64, err, LLT_ERR_INVALID_ARG, "cuda quant linear: scratch of %zu bytes < x's image (m %d, k %d)",
              a->deq_bytes, a->m, a->k);
    /* the launches: the whole matrix, or a segment each */
    const llt_cuda_qmat &q = *a->qw;
    bool one = true;
    for (int s = 1; s < q.n_seg; s++) one = one && q.seg[s].type == q.seg[0].type;
    const int nl = one || q.interleave ? 1 : q.n_seg;
    llt_cuda_qmat lq[LLT_QSEG_MAX];
    int per[LLT_QSEG_MAX];
    bool split = false;
    for (int s = 0; s < nl; s++) {
        if (nl == 1) lq[s] = q;
        else {
            memset(&lq[s], 0, sizeof lq[s]);
            lq[s].n = q.seg[s].rows, lq[s].k = q.k, lq[s].n_seg = 1, lq[s].seg[0] = q.seg[s];
        }
        per[s] = qgemm_per(c, lq[s], a->m, half_out);
        split = split || per[s] < q.k / 256;
    }
    const bool zero = xp && split && !add;
    const qg_zero z = {zero ? (float *)y : NULL, (int)ldy, (int)a->n, (int)a->m};
    const void *x = a->x;
    int32_t ldx = a->ldx;
    if (a->in == LLT_LIN_IN_NORM && xp) {
        LLT_CHECK(a->ldx >= a->k, err, LLT_ERR_INVALID_ARG, "cuda quant linear: NORM input, ldx %d < k %d", a->ldx, a->k);
        const int padded = (a->m + tn - 1) / tn * tn;
        LLT_TRY(llt_launch(c, qg_norm_xperm_kernel, dim3((unsigned)padded), dim3(256), 0, err, (const float *)a->x,
                           (int)a->ldx, (const int *)a->x_rows, a->norm_w, a->eps, (int)a->m, (int)a->k, (uint4 *)a->deq,
                           tshift, z));
    } else {
        LLT_TRY(qlin_norm_input(c, a, &x, &ldx, err));
        if (xp) {
            const long long blocks = (chunks + 255) / 256, cap = 8LL * c->n_sm;
            LLT_TRY(llt_launch(c, qg_xperm_kernel, dim3((unsigned)(blocks < cap ? blocks : cap)), dim3(256), 0, err,
                               (const __half *)x, (int)ldx, (int)a->m, (int)a->k, (uint4 *)a->deq, chunks, tshift, z));
        }
    }
    const size_t esz = half_out ? 2 : 4;
    int32_t r0 = 0;
    for (int s = 0; s < nl; s++) {
        LLT_TRY(qgemm_launch(c, lq[s], a->m, x, ldx, xp, (char *)y + (size_t)r0 * esz, ldy, half_out, add, per[s], zero,
                             err));
        r0 += lq[s].n;
    }
    return LLT_OK;
}

/* m > 32 on the prefill kernel (sm_90): the product into y (STORE / ADD), tmp_y (float32 for
 * QKV, f16 for SWIGLU) and the float path's epilogue kernels; qgemm_run takes a NORM input. */
static llt_status qlinear_qgemm(llt_cuda_ctx *c, const llt_cuda_linear *a, llt_error *err) {
    if (a->out == LLT_LIN_OUT_SWIGLU) {
        /* 64-token blocks that would split k (few row blocks for the SMs: a 7B's gate/up at 64
         * tokens, 172 blocks) put the float32 product in the scratch after x's image, and SwiGLU
         * reads it. On the H100 (bench/RESULTS.md issue 20), 64 sequences of llama2-7b: q6_k
         * +3.8 %, q4_k +1.0 %, q8_0 -1.7 % (its gate/up alone: 62.2 us unsplit, 67.0 in 3
         * splits), and 256-token blocks (prefill) -12 % (llama3-8b: the zeroing, the atomics and
         * the float32 round trip of a 512 x 28672 product). LLT_CUDA_QGEMM_SWSPLIT=0: never, 1:
         * Q4_K / Q6_K (default), 2: every type. */
        static const int swsplit = env_int("LLT_CUDA_QGEMM_SWSPLIT", 1, 0, 2);
        const size_t img = (qgemm_image_bytes(a->m, a->k) + 255) & ~(size_t)255;
        const bool type_ok = swsplit == 2 || (swsplit == 1 && a->qw->seg[0].type != LLT_DTYPE_Q8_0);
        if (qgemm_tn(a->m) == 64 && type_ok && a->qw->interleave && a->n % 2 == 0 && a->deq &&
            a->deq_bytes >= img + (size_t)a->m * a->n * 4 && qgemm_per(c, *a->qw, a->m, false) < a->k / 256) {
            float *gu = (float *)((char *)a->deq + img);
            LLT_TRY(qgemm_run(c, a, gu, a->n, false, false, err));
            return qm_swiglu_f32(c, a, gu, err);
        }
        LLT_CHECK(a->tmp_y, err, LLT_ERR_INVALID_ARG, "cuda quant linear: SWIGLU needs tmp_y");
        LLT_TRY(qgemm_run(c, a, a->tmp_y, a->n, true, false, err));
        return llt_cuda_swiglu(c, a->dtype, a->tmp_y, a->n, a->o, a->ldo, a->m, a->n / 2, err);
    }
    if (a->out == LLT_LIN_OUT_QKV) {
        LLT_CHECK(a->tmp_y, err, LLT_ERR_INVALID_ARG, "cuda quant linear: QKV needs tmp_y");
        LLT_TRY(qgemm_run(c, a, a->tmp_y, a->n, false, false, err));
        return llt_cuda_rope_kv(c, a->dtype, (const float *)a->tmp_y, a->n, a->m, a->q_rows / a->head_dim,
                                a->kv_rows / a->head_dim, a->head_dim, a->pos, a->slot, a->rope_cos, a->rope_sin, a->q,
                                a->k_pool, a->v_pool, err);
    }
    LLT_CHECK(a->out == LLT_LIN_OUT_STORE || a->out == LLT_LIN_OUT_ADD, err, LLT_ERR_INVALID_ARG,
              "cuda quant linear: unknown output mode %d", (int)a->out);
    return qgemm_run(c, a, a->y, a->ldy, false, a->out == LLT_LIN_OUT_ADD, err);
}

/* ---- the linear layer ------------------------------------------------------------------------ */

/* Larger m: dequantise into the scratch (row chunks that fit it) and multiply by cuBLASLt. The
 * RMSNorm prologue runs once; each chunk's product lands in its columns of y (STORE / ADD) or
 * of tmp_y (SWIGLU, QKV), whose epilogue then runs once over all of them. LLT_CUDA_QDEQ_KB caps
 * a chunk (KB of dequantised weights): a chunk that fits the L2 is read back by cuBLASLt from
 * there instead of from DRAM (0: the whole scratch, i.e. whole matrices). */
static llt_status qlinear_blas(llt_cuda_ctx *c, const llt_cuda_linear *a, llt_error *err) {
    static const int chunk_kb = env_int("LLT_CUDA_QDEQ_KB", 0, 0, 1 << 22);
    const size_t esz = a->dtype == LLT_DTYPE_F32 ? 4 : 2, row_bytes = (size_t)a->k * esz;
    LLT_CHECK(a->deq && a->deq_bytes >= row_bytes * 2, err, LLT_ERR_INVALID_ARG,
              "cuda quant linear: no dequantisation scratch for m %d (n %d, k %d)", a->m, a->n, a->k);
    size_t cap = a->deq_bytes;
    if (chunk_kb > 0 && (size_t)chunk_kb * 1024 < cap) cap = (size_t)chunk_kb * 1024;
    int32_t per = (int32_t)(cap / row_bytes);
    per = per >= 128 ? per & ~63 : per & ~1; /* even (gate/up pairs), 128-byte column offsets */
    if (per < 2) per = 2;
    const bool fused = a->out == LLT_LIN_OUT_SWIGLU || a->out == LLT_LIN_OUT_QKV;
    if (fused) LLT_CHECK(a->tmp_y, err, LLT_ERR_INVALID_ARG, "cuda quant linear: SWIGLU / QKV need tmp_y");
    const void *x = a->x;
    int32_t ldx = a->ldx;
    if (a->in == LLT_LIN_IN_NORM) {
        LLT_CHECK(a->tmp_x && a->ldx >= a->k, err, LLT_ERR_INVALID_ARG,
                  "cuda quant linear: NORM input needs tmp_x (ldx %d, k %d)", a->ldx, a->k);
        LLT_TRY(llt_cuda_rmsnorm(c, a->dtype, (float *)a->x, NULL, a->x_rows, a->norm_w, a->tmp_x, a->m, a->k,
                                 a->eps, err));
        x = a->tmp_x, ldx = a->k;
    }
    for (int32_t r0 = 0; r0 < a->n; r0 += per) {
        const int32_t rows = a->n - r0 < per ? a->n - r0 : per;
        LLT_TRY(llt_cuda_q_dequant(c, a->qw, r0, rows, a->dtype, a->deq, err));
        if (a->out == LLT_LIN_OUT_SWIGLU)
            LLT_TRY(llt_cuda_blas(c, a->dtype, a->deq, rows, a->k, x, ldx, a->m, (char *)a->tmp_y + (size_t)r0 * esz,
                                  a->n, a->dtype, 0.0f, err));
        else if (a->out == LLT_LIN_OUT_QKV)
            LLT_TRY(llt_cuda_blas(c, a->dtype, a->deq, rows, a->k, x, ldx, a->m, (float *)a->tmp_y + r0, a->n,
                                  LLT_DTYPE_F32, 0.0f, err));
        else
            LLT_TRY(llt_cuda_blas(c, a->dtype, a->deq, rows, a->k, x, ldx, a->m, a->y + r0, a->ldy, LLT_DTYPE_F32,
                                  a->out == LLT_LIN_OUT_ADD ? 1.0f : 0.0f, err));
    }
    if (a->out == LLT_LIN_OUT_SWIGLU) return llt_cuda_swiglu(c, a->dtype, a->tmp_y, a->n, a->o, a->ldo, a->m, a->n / 2, err);
    if (a->out == LLT_LIN_OUT_QKV)
        return llt_cuda_rope_kv(c, a->dtype, (const float *)a->tmp_y, a->n, a->m, a->q_rows / a->head_dim,
                                a->kv_rows / a->head_dim, a->head_dim, a->pos, a->slot, a->rope_cos, a->rope_sin, a->q,
                                a->k_pool, a->v_pool, err);
    LLT_CHECK(a->out == LLT_LIN_OUT_STORE || a->out == LLT_LIN_OUT_ADD, err, LLT_ERR_INVALID_ARG,
              "cuda quant linear: unknown output mode %d", (int)a->out);
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
                      qgemv_smem(a->k) <= c->smem_optin && a->n % 2 == 0 && qgemv_rows_ok(q);
    if (path == LLT_CUDA_PATH_GEMV && !gemv)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "cuda quant linear: no GEMV for m %d, k %d, %s", a->m, a->k,
                           llt_dtype_name(a->dtype));
    if (path == LLT_CUDA_PATH_BLAS || !gemv) {
        if (!gemv && qgemm_ok(c, a)) return qlinear_qgemm(c, a, err);
        return !gemv && qmma_ok(a) ? qlinear_mma(c, a, err) : qlinear_blas(c, a, err);
    }
    return qgemv_launch(c, a, err);
}
