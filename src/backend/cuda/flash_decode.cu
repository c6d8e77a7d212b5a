/* flash_decode.cu: decode attention at long depth (issue 19), flash-decoding on the tensor
 * cores over the paged KV cache (f16 / bf16 or e4m3 pages).
 *
 * At batch 1 a 32k-token layer of llama3.2-1b holds 64 MiB of K/V (f16) and its arithmetic is
 * 4 FLOPs per byte: the kernel is a stream of K/V bytes, and what limits it is how many bytes
 * are in flight per SM. Grid (splits, KV head, row) of NW-warp blocks (f16 / bf16 pages: one
 * 8-warp block an SM; f8: two 4-warp blocks); a block owns a contiguous run of BN-key tiles and
 * its warps take them in turn (warp w: tiles w, w + NW, ...). Each warp is its own pipeline: ST
 * shared-memory stages filled by cp.async, so ST - 1 tiles are in flight while it computes one,
 * and no block barrier runs in the loop (only __syncwarp). A tile is BN * hd = 2048 elements of
 * K and of V (BN 32 for hd 32 / 64, 16 for hd 128): 8 KB per stage in f16. The G query heads of
 * the KV head are the rows of an m16 tile (Q fragments built straight from the float32 q,
 * pre-scaled into the exp2 domain): S = Q K^T and O += P V by mma.sync m16n8k16, online softmax
 * in registers as in flash_prefill.cu. Keys: lane l < BN looks up the page of key l of a tile in
 * the block table FD_LA tiles before the tile is issued, and the copy loop takes the row
 * offsets by shuffle.
 *
 * f8 tiles land raw (e4m3 rows and their float32 scales). FD_F8_REG (default) feeds the tensor
 * cores from registers: the head dimension is permuted so that a lane's operands are
 * contiguous bytes of its keys' rows, converted with packed cvt (fd_q_frags, fd_s_f8,
 * fd_pv_f8); K's scales go on the scores, V's on P. FD_F8_STAGE (LLT_CUDA_DECODE_F8=stage)
 * converts the tile into the dtype in the warp's own K / V tile first (K unscaled, V scaled in
 * float32) and reads it with ldmatrix as the dtype path does.
 *
 * The warps' partials (o, m, l) merge through shared memory; with several splits the block
 * writes one partial per (row, head) and the last block of a (row, KV head) to arrive (a
 * counter, left at zero) merges the splits: no second kernel.
 *
 * Before the PDL wait a warp issues the copies of its first tiles whose keys all lie below
 * the first position this step writes into the row's sequence (the minimum pos over rows
 * with the same block table): those K/V rows were written by earlier steps, and pos, row_bt
 * and the block table are step inputs copied before the step's first kernel (the rule of the
 * cluster kernel in page_attention.cu). */
#include <stdlib.h>
#include <string.h>

#include <cuda_fp8.h>

#include <type_traits>

#include "backend/cuda/flash_common.cuh"
#include "backend/cuda/flash_prefill.cuh"
extern "C" {
#include "kv/paged_cache.h"
}

namespace {

enum { FD_ST = 3, FD_ST8 = 4, FD_MAX_SPLITS = 256, FD_LA = 4 };
/* how a kernel reads its pages: the dtype (FD_KV), e4m3 staged through a converted tile
 * (FD_F8_STAGE, LLT_CUDA_DECODE_F8=stage), e4m3 converted in registers (FD_F8_REG) */
enum { FD_KV = 0, FD_F8_STAGE = 1, FD_F8_REG = 2, FD_F8_T = 3 };

struct fd_params {
    const float *q; /* [rows, nh, hd] float32 */
    void *out;      /* [rows, nh * hd] dtype */
    const unsigned char *kp, *vp;
    const int *bt, *row_bt, *pos;
    int nh, nkv, G, ps, ps_shift, max_blocks, splits;
    float scale_log2;
    float *work;                  /* partials [rows][nh][splits][hd + 2]: o unnormalised, then m, l */
    unsigned int *counters;       /* [rows][nkv], zero between launches */
    long long page_bytes, sc_off; /* f8 pools: bytes per page, offset of the scales in a page */
    int merge_smem;               /* the last block merges from shared memory where it fits (fd_merge_smem) */
    int fence_sc;                 /* LLT_CUDA_FENCE=sc: __threadfence around the counter (else acq_rel) */
    int bal;                      /* keys dealt to the warps evenly (fd_kernel; LLT_CUDA_DECODE_BAL=0: in turn) */
    int early;                    /* LLT_CUDA_DECODE_EARLY=1: PDL trigger right after the wait (else after the loop) */
    int max_len;                  /* the launch's longest row (host side: splits) */
};

/* SW (dtype pages, hd >= 64; the default, LLT_CUDA_DECODE_SW=0: padded rows): K / V rows
 * unpadded, the 16-byte chunk c of row j at chunk c ^ (j & 7) (ldmatrix's eight rows hit eight
 * bank groups): a stage of 8 KB instead of 9 KB, 192 KB a block of 8 warps, which leaves room on
 * the SM for the blocks of the kernel before (PDL: the prologue's copies start while it ends) */
template <int HD, int KM, int ST8, int NW, int SW = 0, int BNX = 0> struct fd_layout {
    static const int BN = BNX ? BNX : HD >= 128 ? 16 : 32; /* keys per tile */
    static const int LD = SW ? HD : HD + 8;          /* elements per smem row (16 bytes of padding) */
    static const int TILE = 2 * BN * LD * 2;         /* K then V in the dtype, bytes */
    static const int RAW = 2 * BN * HD + 2 * BN * 4; /* f8 staged: K, V rows, then K, V scales */
    /* f8 in registers: K rows of KSTR bytes, V rows of VSTR, then K, V scales (strides that
     * keep the fragment loads free of bank conflicts) */
    static const int KSTR = HD >= 128 ? HD + 16 : HD, VSTR = HD + 16;
    static const int RAW2 = BN * KSTR + BN * VSTR + 2 * BN * 4;
    static const int ST = KM != FD_KV ? ST8 : FD_ST; /* stages per warp */
    static const int WARP = KM == FD_F8_STAGE ? ST * RAW + TILE : KM >= FD_F8_REG ? ST * RAW2 : ST * TILE;
    static const int MO = HD + 8; /* floats per row of the warps' partials (fewer bank conflicts) */
    static const int MERGE = NW * 16 * (MO + 2) * 4 > 3 * 16 * FD_MAX_SPLITS * 4 ? NW * 16 * (MO + 2) * 4
                                                                                : 3 * 16 * FD_MAX_SPLITS * 4;
    static const int BYTES = NW * WARP > MERGE ? NW * WARP : MERGE;
};

__device__ __forceinline__ int warp_min_int(int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Two e4m3 values -> two elements of T, exactly (e4m3 values are f16 and bf16 values). */
template <typename T> __device__ __forceinline__ unsigned e4m3x2_to(unsigned short b);
template <> __device__ __forceinline__ unsigned e4m3x2_to<__half>(unsigned short b) {
    const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)b, __NV_E4M3);
    return (unsigned)h.x | ((unsigned)h.y << 16);
}
template <> __device__ __forceinline__ unsigned e4m3x2_to<__nv_bfloat16>(unsigned short b) {
    const float2 t = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)b, __NV_E4M3)));
    return pack2<__nv_bfloat16>(t.x, t.y);
}

/* 16 e4m3 values -> 16 elements of T at dst: exact (K), or times the row's scale s in float32 (V). */
template <typename T, bool SCALE> __device__ __forceinline__ void fd_cvt16(const uint4 &u, float s, T *dst) {
    const unsigned short *b = reinterpret_cast<const unsigned short *>(&u);
    unsigned w[8];
#pragma unroll
    for (int i = 0; i < 8; i++) {
        if (SCALE) {
            const float2 t =
                __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)b[i], __NV_E4M3)));
            w[i] = pack2<T>(t.x * s, t.y * s);
        } else {
            w[i] = e4m3x2_to<T>(b[i]);
        }
    }
    *reinterpret_cast<uint4 *>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
    *reinterpret_cast<uint4 *>(dst + 8) = make_uint4(w[4], w[5], w[6], w[7]);
}

/* Four e4m3 values (one 32-bit word, lowest byte first) -> two pairs of T: bytes 0, 1 into lo,
 * 2, 3 into hi, exactly (cvt.rn.f16x2.e4m3x2 on sm_89 and later; bf16 through float32). */
template <typename T> __device__ __forceinline__ void e4m3x4_to(unsigned w, unsigned &lo, unsigned &hi);
template <> __device__ __forceinline__ void e4m3x4_to<__half>(unsigned w, unsigned &lo, unsigned &hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    asm("{\n.reg .b16 l, h;\nmov.b32 {l, h}, %2;\ncvt.rn.f16x2.e4m3x2 %0, l;\ncvt.rn.f16x2.e4m3x2 %1, h;\n}\n"
        : "=r"(lo), "=r"(hi)
        : "r"(w));
#else
    lo = e4m3x2_to<__half>((unsigned short)(w & 0xffffu)), hi = e4m3x2_to<__half>((unsigned short)(w >> 16));
#endif
}
template <> __device__ __forceinline__ void e4m3x4_to<__nv_bfloat16>(unsigned w, unsigned &lo, unsigned &hi) {
    unsigned a, b;
    e4m3x4_to<__half>(w, a, b);
    const float2 fa = __half22float2(*reinterpret_cast<const __half2 *>(&a));
    const float2 fb = __half22float2(*reinterpret_cast<const __half2 *>(&b));
    lo = pack2<__nv_bfloat16>(fa.x, fa.y), hi = pack2<__nv_bfloat16>(fb.x, fb.y);
}

/* FD_F8_REG variants (LLT_CUDA_DECODE_F8V, a bit mask; f16 compute at hd 64 / 128):
 *  FD_V_LAZY: O and l rescaled only when a row's maximum grows by more than FD_TAU (log2
 *    units) over the one P was taken against (P <= 2^FD_TAU; exact: m stays the reference of
 *    every P and l), a warp-uniform branch instead of HD / 2 multiplies a tile;
 *  FD_V_SPLIT: S's k-steps into two accumulators (two dependent mma chains of half length);
 *  FD_V_KINT / FD_V_VINT: K's / V's e4m3 bytes turned into f16 bit patterns by integer ops
 *    (the value times 2^-8, exact, subnormals included) instead of cvt; the 2^8 goes on q /
 *    on the output;
 *  FD_V_QK8 (FD_F8_T only): S^T = K Q^T on the e4m3 tensor cores (m16n8k32), K's bytes as they
 *    are and q (times a per-head scale that puts its largest element at 448) as the sum of
 *    three e4m3 terms q0 + q1 / 16 + q2 / 256 (each the rounded remainder of the ones before,
 *    so q is carried to about 2^-12 of its largest element): three products, no K conversion. */
enum { FD_V_LAZY = 1, FD_V_SPLIT = 2, FD_V_KINT = 4, FD_V_VINT = 8, FD_V_QK8 = 16 };
#define FD_TAU 4.0f

/* Four e4m3 bytes -> two f16 pairs holding value * 2^-8: e4m3's exponent and mantissa bits
 * shifted left by 7 land in f16's with the exponent bias 15 - 7 = 8 too small; the sign bit,
 * added to itself, carries into bit 8 and shifts to 15. */
__device__ __forceinline__ void e4m3x4_int(unsigned w, unsigned &lo, unsigned &hi) {
    const unsigned a = __byte_perm(w, 0u, 0x4140), b = __byte_perm(w, 0u, 0x4342);
    lo = (a + (a & 0x00800080u)) << 7, hi = (b + (b & 0x00800080u)) << 7;
}
template <typename T, bool INT> __device__ __forceinline__ void e4m3x4_v(unsigned w, unsigned &lo, unsigned &hi) {
    if (INT) e4m3x4_int(w, lo, hi);
    else e4m3x4_to<T>(w, lo, hi);
}

/* f8 in registers: P carries V's scales times FD_PV (a power of two that keeps P * scale in
 * f16's normal range for rows of small values); o is divided by it once after the loop. */
#define FD_PV 256.0f

/* The last block's merge when every partial of its (row, kv head) fits in shared memory: the
 * G heads' partials [G][S][HD + 2] (contiguous in the workspace) come in with one batch of
 * independent loads per thread (FD_MB in flight: one L2 round trip for hd 64, S 33, G 4), then
 * each head's weights 2^(m_s - M) / L (a warp per head), then the sums from shared memory. The
 * general merge below waits for (m, l) first and then streams o 16 loads at a time: three more
 * L2 round trips in the tail of every launch. */
enum { FD_MB = 40 };
template <typename T, int HD, int NW>
__device__ __forceinline__ void fd_merge_smem(const fd_params &p, size_t head0, int S, unsigned char *smem) {
    const int W = HD + 2, G = p.G, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int n2 = G * S * W / 2; /* float2s (W even) */
    float *pw = (float *)smem, *wt = pw + G * S * W;
    const float2 *src = reinterpret_cast<const float2 *>(p.work + head0 * S * W);
    for (int e0 = tid; e0 < n2; e0 += FD_MB * NW * 32) {
        float2 v[FD_MB];
#pragma unroll
        for (int j = 0; j < FD_MB; j++)
            if (e0 + j * NW * 32 < n2) v[j] = __ldcg(src + e0 + j * NW * 32);
#pragma unroll
        for (int j = 0; j < FD_MB; j++)
            if (e0 + j * NW * 32 < n2) reinterpret_cast<float2 *>(pw)[e0 + j * NW * 32] = v[j];
    }
    __syncthreads();
    for (int g = warp; g < G; g += NW) {
        const float *ml = pw + (size_t)g * S * W + HD;
        float M = -INFINITY, Ls = 0.0f;
        for (int s2 = lane; s2 < S; s2 += 32)
            if (ml[s2 * W + 1] > 0.0f) M = fmaxf(M, ml[s2 * W]);
        M = warp_max(M);
        for (int s2 = lane; s2 < S; s2 += 32)
            if (ml[s2 * W + 1] > 0.0f) Ls += ml[s2 * W + 1] * fast_exp2(ml[s2 * W] - M);
        Ls = warp_sum(Ls); /* >= 1: the split holding the maximum has weight 1 */
        for (int s2 = lane; s2 < S; s2 += 32)
            wt[g * S + s2] = ml[s2 * W + 1] > 0.0f ? fast_exp2(ml[s2 * W] - M) / Ls : 0.0f;
    }
    __syncthreads();
    for (int e = tid; e < G * HD / 2; e += NW * 32) {
        const int g = e / (HD / 2), d = 2 * (e - g * (HD / 2));
        const float *o = pw + (size_t)g * S * W + d, *w = wt + g * S;
        float a0 = 0.0f, a1 = 0.0f;
        for (int s2 = 0; s2 < S; s2++) {
            const float2 x = *reinterpret_cast<const float2 *>(o + s2 * W);
            a0 = fmaf(w[s2], x.x, a0), a1 = fmaf(w[s2], x.y, a1);
        }
        *reinterpret_cast<unsigned *>((T *)p.out + (head0 + g) * HD + d) = pack2<T>(a0, a1);
    }
}

/* FD_F8_REG's Q fragments: the head dimension is permuted (the sum over it does not care) so
 * that lane (g, t)'s K operands of a key are the HD / 4 contiguous bytes [t HD / 4, (t + 1) HD / 4)
 * of its row: byte 4 kk + j of that run is the m16n8k16 k index 2t + j (j < 2) or 2t + 8 + j - 2
 * of k-step kk, so one shared load and HD / 8 packed conversions give every b register. */
template <typename T, int HD, int KM>
__device__ __forceinline__ void fd_q_frags(const fd_params &p, int r, int kvh, int lane, unsigned (&qf)[HD / 16][4],
                                           float qmul = 1.0f) {
    const int ga = lane >> 2, ta = lane & 3;
    const float *qa = p.q + ((size_t)r * p.nh + (size_t)kvh * p.G + ga) * HD;
    const float *qb = qa + 8 * HD;
    const float s = p.scale_log2 * qmul;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        float2 a0 = make_float2(0, 0), a2 = a0, b0 = a0, b2 = a0;
        if (KM >= FD_F8_REG) {
            const int d = ta * (HD / 4) + 4 * kk;
            if (ga < p.G) {
                const float4 x = *(const float4 *)(qa + d);
                a0 = make_float2(x.x, x.y), a2 = make_float2(x.z, x.w);
            }
            if (ga + 8 < p.G) {
                const float4 x = *(const float4 *)(qb + d);
                b0 = make_float2(x.x, x.y), b2 = make_float2(x.z, x.w);
            }
        } else { /* A: rows g = lane / 4 and g + 8, columns 2 (lane % 4) + {0, 1, 8, 9} */
            if (ga < p.G)
                a0 = *(const float2 *)(qa + kk * 16 + 2 * ta), a2 = *(const float2 *)(qa + kk * 16 + 8 + 2 * ta);
            if (ga + 8 < p.G)
                b0 = *(const float2 *)(qb + kk * 16 + 2 * ta), b2 = *(const float2 *)(qb + kk * 16 + 8 + 2 * ta);
        }
        qf[kk][0] = pack2<T>(a0.x * s, a0.y * s), qf[kk][1] = pack2<T>(b0.x * s, b0.y * s);
        qf[kk][2] = pack2<T>(a2.x * s, a2.y * s), qf[kk][3] = pack2<T>(b2.x * s, b2.y * s);
    }
}

/* FD_F8_REG: S (16 rows x BN keys) = Q K^T straight from the e4m3 rows of the stage (key
 * nt * 8 + g for lane (g, t): HD / 4 bytes, see fd_q_frags), unscaled. */
template <typename T, int HD, int BN, int KSTR, int VAR = 0>
__device__ __forceinline__ void fd_s_f8(const unsigned char *Kr, int lane, const unsigned (&qf)[HD / 16][4],
                                        float (&s)[BN / 8][4]) {
    const int ga = lane >> 2, ta = lane & 3;
#pragma unroll
    for (int nt = 0; nt < BN / 8; nt++) {
        const unsigned char *kr = Kr + (nt * 8 + ga) * KSTR + ta * (HD / 4);
        unsigned kw[HD / 16];
        if (HD >= 64) {
#pragma unroll
            for (int c = 0; c < HD / 64; c++) {
                const uint4 u = *reinterpret_cast<const uint4 *>(kr + 16 * c);
                kw[4 * c] = u.x, kw[4 * c + 1] = u.y, kw[4 * c + 2] = u.z, kw[4 * c + 3] = u.w;
            }
        } else {
            const uint2 u = *reinterpret_cast<const uint2 *>(kr);
            kw[0] = u.x, kw[1] = u.y;
        }
        float s2[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            unsigned b0, b1;
            e4m3x4_v<T, (VAR & FD_V_KINT) != 0>(kw[kk], b0, b1);
            if ((VAR & FD_V_SPLIT) && (kk & 1)) mma16816<T>(s2, qf[kk], b0, b1);
            else mma16816<T>(s[nt], qf[kk], b0, b1);
        }
        if (VAR & FD_V_SPLIT) s[nt][0] += s2[0], s[nt][1] += s2[1], s[nt][2] += s2[2], s[nt][3] += s2[3];
    }
}

/* FD_F8_REG: O += P V straight from the e4m3 rows: the output columns are permuted too (lane
 * (g, t)'s B operand column n of n-tile dt is head dimension n HD / 8 + dt), so a lane reads
 * HD / 8 contiguous bytes of each of its four keys 2t, 2t + 1, 2t + 8, 2t + 9 and pairs them
 * with byte permutes. P already carries V's scales. */
template <typename T, int HD, int BN, int VSTR, int VAR = 0>
__device__ __forceinline__ void fd_pv_f8(const unsigned char *Vr, int lane, const unsigned (&pf)[BN / 16][4],
                                         float (&o)[HD / 8][4]) {
    const int ga = lane >> 2, ta = lane & 3, VB = HD / 8;
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
        unsigned vw[4][VB / 4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const unsigned char *vr = Vr + (kk * 16 + 2 * ta + (k & 1) + (k >> 1) * 8) * VSTR + ga * VB;
            if (VB == 16) {
                const uint4 u = *reinterpret_cast<const uint4 *>(vr);
                vw[k][0] = u.x, vw[k][1 % (VB / 4)] = u.y, vw[k][2 % (VB / 4)] = u.z, vw[k][3 % (VB / 4)] = u.w;
            } else if (VB == 8) {
                const uint2 u = *reinterpret_cast<const uint2 *>(vr);
                vw[k][0] = u.x, vw[k][1 % (VB / 4)] = u.y;
            } else {
                vw[k][0] = *reinterpret_cast<const unsigned *>(vr);
            }
        }
#pragma unroll
        for (int w = 0; w < VB / 4; w++) {
            unsigned b0[4], b1[4];
            const bool vi = (VAR & FD_V_VINT) != 0;
            e4m3x4_v<T, vi>(__byte_perm(vw[0][w], vw[1][w], 0x5140), b0[0], b0[1]);
            e4m3x4_v<T, vi>(__byte_perm(vw[0][w], vw[1][w], 0x7362), b0[2], b0[3]);
            e4m3x4_v<T, vi>(__byte_perm(vw[2][w], vw[3][w], 0x5140), b1[0], b1[1]);
            e4m3x4_v<T, vi>(__byte_perm(vw[2][w], vw[3][w], 0x7362), b1[2], b1[3]);
#pragma unroll
            for (int j = 0; j < 4; j++) mma16816<T>(o[4 * w + j], pf[kk], b0[j], b1[j]);
        }
    }
}

/* d (16x8 float32) += a (16x32 e4m3) b (32x8 e4m3) */
__device__ __forceinline__ void mma_e4m3(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* FD_V_QK8's q: lane (g, t) holds head g's HD / 4 dimensions [t HD / 4, (t + 1) HD / 4) (the
 * permutation of fd_q_frags; word w = dimensions 4w..4w + 3, the m16n8k32 B operand of k-step
 * kk being words 2kk, 2kk + 1) as three e4m3 terms; isg0 / isg1: the inverse scales of heads
 * 2t, 2t + 1 (the columns of lane (g, t)'s accumulators). */
template <int HD>
__device__ __forceinline__ void fd_q8_frags(const fd_params &p, int r, int kvh, int lane, unsigned (&q8)[3][HD / 16],
                                            float &isg0, float &isg1) {
    const int ga = lane >> 2, ta = lane & 3;
    const float *qa = p.q + ((size_t)r * p.nh + (size_t)kvh * p.G + ga) * HD + ta * (HD / 4);
    float x[HD / 4], amax = 0.0f;
#pragma unroll
    for (int j = 0; j < HD / 4; j++) {
        x[j] = ga < p.G ? qa[j] * p.scale_log2 : 0.0f;
        amax = fmaxf(amax, fabsf(x[j]));
    }
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
    const float sg = amax > 0.0f ? 448.0f / amax : 1.0f;
#pragma unroll
    for (int j = 0; j < HD / 4; j++) x[j] *= sg;
#pragma unroll
    for (int k = 0; k < 3; k++)
#pragma unroll
        for (int w = 0; w < HD / 16; w++) {
            unsigned word = 0;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const __nv_fp8_e4m3 e(x[4 * w + j]); /* nearest, saturating */
                word |= (unsigned)e.__x << (8 * j);
                x[4 * w + j] = (x[4 * w + j] - (float)e) * 16.0f;
            }
            q8[k][w] = word;
        }
    const float is = 1.0f / sg;
    isg0 = __shfl_sync(0xffffffffu, is, 8 * ta), isg1 = __shfl_sync(0xffffffffu, is, 8 * ta + 4);
}

__device__ __forceinline__ unsigned movm_t(unsigned x) { /* 8x8 b16 transpose across the warp */
    unsigned y;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
}

/* FD_F8_T (LLT_CUDA_DECODE_F8=t; G <= 8): one tile with the products transposed, so that the
 * KV group's G <= 8 heads are the n8 side of the mma instead of 16 rows of which 12 are padding:
 * S^T (BN keys x 8 heads) = K Q^T with K's e4m3 rows as the A operand (lane (g, t): keys g and
 * g + 8 of each 16, the same HD / 4 bytes of a row as FD_F8_REG), q as B; O^T (HD x 8) += V^T
 * P^T with V's bytes as A (the four keys 2t, 2t + 1, 2t + 8, 2t + 9 as FD_F8_REG, head
 * dimension g HD / 8 + 2 dt + {0, 1} for rows g, g + 8 of m-tile dt) and P^T as B: S^T's
 * accumulator (key g, heads 2t, 2t + 1) packed to f16 is an 8x8 fragment whose transpose
 * (movmatrix) is B's (head g, keys 2t, 2t + 1). Half the mma and half the rescaling of
 * FD_F8_REG; lane (g, t) keeps m and a partial l of heads 2t, 2t + 1. */
template <typename T, int HD, int BN, int KSTR, int VSTR, int VAR>
__device__ __forceinline__ void fd_tile_t(const unsigned char *Kr, const unsigned char *Vr, const float *sk, int lane,
                                          int kb, int kend, const unsigned (&qf)[HD / 16][4],
                                          float (&o)[HD / 16][4], float &m0, float &m1, float &l0, float &l1,
                                          const unsigned (&q8)[3][HD / 16], float isg0, float isg1) {
    const int ga = lane >> 2, ta = lane & 3;
    constexpr int MT = BN / 16, VB = HD / 8;
    float s[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float s2[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        s[mt][0] = s[mt][1] = s[mt][2] = s[mt][3] = 0.0f;
        const unsigned char *k0 = Kr + (mt * 16 + ga) * KSTR + ta * (HD / 4), *k1 = k0 + 8 * KSTR;
        unsigned kw0[HD / 16], kw1[HD / 16];
#pragma unroll
        for (int c = 0; c < HD / 64; c++) {
            const uint4 u = *reinterpret_cast<const uint4 *>(k0 + 16 * c);
            const uint4 v = *reinterpret_cast<const uint4 *>(k1 + 16 * c);
            kw0[4 * c] = u.x, kw0[4 * c + 1] = u.y, kw0[4 * c + 2] = u.z, kw0[4 * c + 3] = u.w;
            kw1[4 * c] = v.x, kw1[4 * c + 1] = v.y, kw1[4 * c + 2] = v.z, kw1[4 * c + 3] = v.w;
        }
        const float ks0 = sk[mt * 16 + ga], ks1 = sk[mt * 16 + ga + 8];
        if (VAR & FD_V_QK8) {
            float s3[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int kk = 0; kk < HD / 32; kk++) {
                const unsigned a[4] = {kw0[2 * kk], kw1[2 * kk], kw0[2 * kk + 1], kw1[2 * kk + 1]};
                mma_e4m3(s[mt], a, q8[0][2 * kk], q8[0][2 * kk + 1]);
                mma_e4m3(s2, a, q8[1][2 * kk], q8[1][2 * kk + 1]);
                mma_e4m3(s3, a, q8[2][2 * kk], q8[2][2 * kk + 1]);
            }
#pragma unroll
            for (int i = 0; i < 4; i++) s[mt][i] = fmaf(s3[i], 1.0f / 256.0f, fmaf(s2[i], 1.0f / 16.0f, s[mt][i]));
            s[mt][0] *= ks0 * isg0, s[mt][1] *= ks0 * isg1, s[mt][2] *= ks1 * isg0, s[mt][3] *= ks1 * isg1;
        } else {
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                unsigned a[4];
                e4m3x4_v<T, (VAR & FD_V_KINT) != 0>(kw0[kk], a[0], a[2]);
                e4m3x4_v<T, (VAR & FD_V_KINT) != 0>(kw1[kk], a[1], a[3]);
                if (kk & 1) mma16816<T>(s2, a, qf[kk][0], qf[kk][2]);
                else mma16816<T>(s[mt], a, qf[kk][0], qf[kk][2]);
            }
            s[mt][0] = (s[mt][0] + s2[0]) * ks0, s[mt][1] = (s[mt][1] + s2[1]) * ks0;
            s[mt][2] = (s[mt][2] + s2[2]) * ks1, s[mt][3] = (s[mt][3] + s2[3]) * ks1;
        }
        if (kb + BN > kend) { /* keys past the warp's end are not its */
            const int key = kb + mt * 16 + ga;
            if (key >= kend) s[mt][0] = s[mt][1] = -INFINITY;
            if (key + 8 >= kend) s[mt][2] = s[mt][3] = -INFINITY;
        }
    }
    float mx0 = m0, mx1 = m1;
#pragma unroll
    for (int mt = 0; mt < MT; mt++) mx0 = fmaxf(mx0, fmaxf(s[mt][0], s[mt][2])), mx1 = fmaxf(mx1, fmaxf(s[mt][1], s[mt][3]));
#pragma unroll
    for (int x = 4; x < 32; x <<= 1) {
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, x));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, x));
    }
    if (!(VAR & FD_V_LAZY) || __any_sync(0xffffffffu, mx0 > m0 + FD_TAU || mx1 > m1 + FD_TAU)) {
        const float al0 = fast_exp2(m0 - mx0), al1 = fast_exp2(m1 - mx1);
        m0 = mx0, m1 = mx1, l0 *= al0, l1 *= al1;
#pragma unroll
        for (int dt = 0; dt < HD / 16; dt++) o[dt][0] *= al0, o[dt][1] *= al1, o[dt][2] *= al0, o[dt][3] *= al1;
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        const float e0 = fast_exp2(s[mt][0] - m0), e1 = fast_exp2(s[mt][1] - m1);
        const float e2 = fast_exp2(s[mt][2] - m0), e3 = fast_exp2(s[mt][3] - m1);
        l0 += e0 + e2, l1 += e1 + e3;
        const float vs0 = sk[BN + mt * 16 + ga] * FD_PV, vs1 = sk[BN + mt * 16 + ga + 8] * FD_PV;
        const unsigned b0 = movm_t(pack2<T>(e0 * vs0, e1 * vs0)), b1 = movm_t(pack2<T>(e2 * vs1, e3 * vs1));
        unsigned vw[4][VB / 4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const unsigned char *vr = Vr + (mt * 16 + 2 * ta + (k & 1) + (k >> 1) * 8) * VSTR + ga * VB;
            if (VB == 16) {
                const uint4 u = *reinterpret_cast<const uint4 *>(vr);
                vw[k][0] = u.x, vw[k][1 % (VB / 4)] = u.y, vw[k][2 % (VB / 4)] = u.z, vw[k][3 % (VB / 4)] = u.w;
            } else {
                const uint2 u = *reinterpret_cast<const uint2 *>(vr);
                vw[k][0] = u.x, vw[k][1 % (VB / 4)] = u.y;
            }
        }
        const bool vi = (VAR & FD_V_VINT) != 0;
#pragma unroll
        for (int w = 0; w < VB / 4; w++) {
            unsigned a0[4], a1[4]; /* m-tiles 2w and 2w + 1 */
            e4m3x4_v<T, vi>(__byte_perm(vw[0][w], vw[1][w], 0x5140), a0[0], a0[1]);
            e4m3x4_v<T, vi>(__byte_perm(vw[0][w], vw[1][w], 0x7362), a1[0], a1[1]);
            e4m3x4_v<T, vi>(__byte_perm(vw[2][w], vw[3][w], 0x5140), a0[2], a0[3]);
            e4m3x4_v<T, vi>(__byte_perm(vw[2][w], vw[3][w], 0x7362), a1[2], a1[3]);
            mma16816<T>(o[2 * w], a0, b0, b1);
            mma16816<T>(o[2 * w + 1], a1, b0, b1);
        }
    }
}

template <typename T, int HD, int KM, int ST8, int NW, int SW, int VAR = 0, int BNX = 0>
__global__ void __launch_bounds__(NW * 32) fd_kernel(fd_params p) {
    typedef fd_layout<HD, KM, ST8, NW, SW, BNX> LY;
    const int BN = LY::BN, LD = LY::LD, ST = LY::ST;
    /* element offset of 16-byte chunk c of row j in a K / V tile of the dtype */
    auto tix = [&](int j, int c) -> int { return j * LD + (SW ? c ^ (j & 7) : c) * 8; };
    const bool K8 = KM != FD_KV;
    extern __shared__ __align__(128) unsigned char fd_smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, tid = threadIdx.x;
    const int sp = blockIdx.x, kvh = blockIdx.y, r = blockIdx.z;
    unsigned char *ws = fd_smem + warp * LY::WARP;
    /* step inputs (no kernel of the step writes them) */
    const int pos = p.pos[r], L = pos + 1, bti = p.row_bt[r];
    const int *tbl = p.bt + (size_t)bti * p.max_blocks;
    int first = pos; /* the first key this step writes into the sequence */
    for (int i = lane; i < (int)gridDim.z; i += 32)
        if (p.row_bt[i] == bti) first = min(first, p.pos[i]);
    first = warp_min_int(first);
    /* this warp's tiles: my_n of them, tile i at key kw0 + i * kstep, keys below kend.
     * LLT_CUDA_DECODE_BAL=0: the split's tiles (BN-aligned) dealt to its warps in turn (warp w:
     * w, w + NW, ...). p.bal (the default): the split's keys [sp L / S, (sp + 1) L / S) and the
     * warp's share of them, contiguous, within one key of the other warps': past a multiple of
     * splits * NW * BN keys no warp takes a whole extra tile (its last tile is partial). */
    int kw0, kstep, kend, my_n;
    if (p.bal) {
        const int S = p.splits;
        const int k0 = (int)((long long)sp * L / S), n = (int)((long long)(sp + 1) * L / S) - k0;
        kw0 = k0 + warp * n / NW, kend = k0 + (warp + 1) * n / NW, kstep = BN;
        my_n = (kend - kw0 + BN - 1) / BN;
    } else {
        const int nt = (L + BN - 1) / BN, per = (nt + p.splits - 1) / p.splits;
        const int t0 = min(nt, sp * per), t1 = min(nt, t0 + per);
        my_n = t1 - t0 > warp ? (t1 - t0 - warp + NW - 1) / NW : 0;
        kw0 = (t0 + warp) * BN, kstep = NW * BN, kend = L;
    }
    /* lane l < BN: the page of key l of this warp's tile i (from the block table), -1 past the
     * end; read FD_LA tiles before the tile is issued (pq below: the lookups of several tiles in
     * flight at once, none of them on the loop's critical path) */
    auto key_page = [&](int i) -> int {
        const int key = kw0 + i * kstep + lane;
        if (i >= my_n || lane >= BN || key >= kend) return -1;
        return tbl[p.ps_shift >= 0 ? key >> p.ps_shift : key / p.ps];
    };
    /* byte offset of that key's row in the K (= V) pool, -1 past the end; f8: also the offset
     * of its scale */
    auto key_off = [&](int i, int page, long long &so) -> long long {
        so = -1;
        if (page < 0) return -1;
        const int key = kw0 + i * kstep + lane;
        const int in = p.ps_shift >= 0 ? key & (p.ps - 1) : key % p.ps;
        if (K8) {
            const long long row = (long long)in * p.nkv + kvh;
            so = (long long)page * p.page_bytes + p.sc_off + row * 4;
            return (long long)page * p.page_bytes + row * HD;
        }
        return (((long long)page * p.ps + in) * p.nkv + kvh) * HD * 2;
    };
    auto issue = [&](int i, long long off, long long so) { /* tile i of this warp into stage i % ST */
        if (K8) {
            const bool reg = KM >= FD_F8_REG;
            unsigned char *raw = ws + (i % ST) * (reg ? LY::RAW2 : LY::RAW);
            unsigned char *kd = raw, *vd = raw + BN * (reg ? LY::KSTR : HD);
            const int ks = reg ? LY::KSTR : HD, vs = reg ? LY::VSTR : HD;
            const int CH = HD / 16;
#pragma unroll
            for (int c4 = 0; c4 < BN * CH / 32; c4++) {
                const int idx = lane + 32 * c4, j = idx / CH, c = idx % CH;
                const long long o = __shfl_sync(0xffffffffu, off, j);
                const long long at = o >= 0 ? o + c * 16 : 0;
                cp_async16(kd + j * ks + c * 16, p.kp + at, o >= 0 ? 16 : 0);
                cp_async16(vd + j * vs + c * 16, p.vp + at, o >= 0 ? 16 : 0);
            }
            float *sc = (float *)(vd + BN * vs);
            if (lane < BN) {
                cp_async4(sc + lane, p.kp + (so >= 0 ? so : 0), so >= 0 ? 4 : 0);
                cp_async4(sc + BN + lane, p.vp + (so >= 0 ? so : 0), so >= 0 ? 4 : 0);
            }
        } else {
            T *Ks = (T *)(ws + (i % ST) * LY::TILE), *Vs = Ks + BN * LD;
            const int CH = HD / 8;
#pragma unroll
            for (int c4 = 0; c4 < BN * CH / 32; c4++) {
                const int idx = lane + 32 * c4, j = idx / CH, c = idx % CH;
                const long long o = __shfl_sync(0xffffffffu, off, j);
                const long long at = o >= 0 ? o + c * 16 : 0;
                cp_async16(Ks + tix(j, c), p.kp + at, o >= 0 ? 16 : 0);
                cp_async16(Vs + tix(j, c), p.vp + at, o >= 0 ? 16 : 0);
            }
        }
    };
    /* pq[j]: the page of tile (next to issue) + j; issue_next() issues it and looks up the page
     * FD_LA tiles further */
    int pq[FD_LA];
#pragma unroll
    for (int j = 0; j < FD_LA; j++) pq[j] = key_page(j);
    auto issue_next = [&](int i) {
        long long so, off = key_off(i, pq[0], so);
        if (i < my_n) issue(i, off, so);
#pragma unroll
        for (int j = 0; j < FD_LA - 1; j++) pq[j] = pq[j + 1];
        pq[FD_LA - 1] = key_page(i + FD_LA);
    };
    /* prologue: ST - 1 groups (empty past the warp's tiles); before the wait only tiles
     * whose keys all precede `first` */
    int i_pre = 0;
    for (; i_pre < ST - 1 && i_pre < my_n && kw0 + i_pre * kstep + BN <= first; i_pre++) {
        issue_next(i_pre);
        cp_async_commit();
    }
    pdl_wait();
    if (p.early) pdl_trigger(); /* the next kernel (Wo) may launch and fetch its weights now */
    for (int i = i_pre; i < ST - 1; i++) {
        issue_next(i);
        cp_async_commit();
    }
    const int ga = lane >> 2, ta = lane & 3;
    unsigned qf[HD / 16][4];
    fd_q_frags<T, HD, KM>(p, r, kvh, lane, qf, (VAR & FD_V_KINT) ? 256.0f : 1.0f);
    unsigned q8[3][HD / 16];
    float isg0 = 1.0f, isg1 = 1.0f;
    if constexpr (KM == FD_F8_T && (VAR & FD_V_QK8) != 0) fd_q8_frags<HD>(p, r, kvh, lane, q8, isg0, isg1);
    constexpr int NO = KM == FD_F8_T ? HD / 16 : HD / 8;
    float o[NO][4];
#pragma unroll
    for (int i = 0; i < NO; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
    for (int i = 0; i < my_n; i++) {
        cp_async_wait<ST - 2>(); /* tile i has landed (this lane's copies) */
        __syncwarp();            /* ... and every lane's; stage (i - 1) % ST is free */
        issue_next(i + ST - 1); /* nothing past the warp's tiles */
        cp_async_commit();
        const int kb = kw0 + i * kstep;
        T *Ks = NULL, *Vs = NULL;
        const unsigned char *Kr = NULL, *Vr = NULL;
        const float *sk = NULL;
        if (KM >= FD_F8_REG) {
            Kr = ws + (i % ST) * LY::RAW2, Vr = Kr + BN * LY::KSTR;
            sk = (const float *)(Vr + BN * LY::VSTR);
        } else if (KM == FD_F8_STAGE) {
            const unsigned char *raw = ws + (i % ST) * LY::RAW;
            sk = (const float *)(raw + 2 * BN * HD);
            Ks = (T *)(ws + ST * LY::RAW), Vs = Ks + BN * LD;
            const int CH = HD / 16;
#pragma unroll
            for (int c4 = 0; c4 < 2 * BN * CH / 32; c4++) {
                const int idx = lane + 32 * c4, jj = idx / CH, c = idx % CH,
                          j = jj % BN; /* K rows, then V rows */
                const uint4 u = *reinterpret_cast<const uint4 *>(raw + jj * HD + c * 16);
                if (jj < BN)
                    fd_cvt16<T, false>(u, 1.0f, Ks + j * LD + c * 16);
                else
                    fd_cvt16<T, true>(u, sk[BN + j], Vs + j * LD + c * 16);
            }
            __syncwarp();
        } else {
            Ks = (T *)(ws + (i % ST) * LY::TILE), Vs = Ks + BN * LD;
        }
        if constexpr (KM == FD_F8_T) {
            fd_tile_t<T, HD, BN, LY::KSTR, LY::VSTR, VAR>(Kr, Vr, sk, lane, kb, kend, qf, o, m_a, m_b, l_a, l_b, q8,
                                                          isg0, isg1);
        } else {
        /* S = Q K^T: 16 rows x BN keys */
        float s[BN / 8][4];
#pragma unroll
        for (int j = 0; j < BN / 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
        if (KM == FD_F8_REG) {
            fd_s_f8<T, HD, BN, LY::KSTR, VAR>(Kr, lane, qf, s);
        } else {
#pragma unroll
            for (int np = 0; np < BN / 16; np++)
#pragma unroll
                for (int kk = 0; kk < HD / 16; kk++) {
                    unsigned b[4];
                    ldsm_x4(b, Ks + tix(np * 16 + (lane & 7) + (lane >> 4) * 8, kk * 2 + ((lane >> 3) & 1)));
                    mma16816<T>(s[2 * np], qf[kk], b[0], b[1]);
                    mma16816<T>(s[2 * np + 1], qf[kk], b[2], b[3]);
                }
        }
        if (K8) { /* K's scales on the scores */
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++) {
                const float2 k2 = *reinterpret_cast<const float2 *>(sk + nt * 8 + 2 * ta);
                s[nt][0] *= k2.x, s[nt][1] *= k2.y, s[nt][2] *= k2.x, s[nt][3] *= k2.y;
            }
        }
        if (kb + BN > kend) { /* the warp's last tile: keys past its end (or the row's) are not its */
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++) {
                const int key = kb + nt * 8 + 2 * ta;
                if (key >= kend) s[nt][0] = s[nt][2] = -INFINITY;
                if (key + 1 >= kend) s[nt][1] = s[nt][3] = -INFINITY;
            }
        }
        /* online softmax; key kb is always visible, so the maxima are finite from here on */
        float mx_a = m_a, mx_b = m_b;
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++) {
            mx_a = fmaxf(mx_a, fmaxf(s[nt][0], s[nt][1]));
            mx_b = fmaxf(mx_b, fmaxf(s[nt][2], s[nt][3]));
        }
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
        float al_a = 1.0f, al_b = 1.0f; /* FD_V_LAZY: O and l rescaled at once, when needed */
        if (!(VAR & FD_V_LAZY)) {
            al_a = fast_exp2(m_a - mx_a), al_b = fast_exp2(m_b - mx_b);
            m_a = mx_a, m_b = mx_b;
        } else if (__any_sync(0xffffffffu, mx_a > m_a + FD_TAU || mx_b > m_b + FD_TAU)) {
            const float ra = fast_exp2(m_a - mx_a), rb = fast_exp2(m_b - mx_b);
            m_a = mx_a, m_b = mx_b;
            l_a *= ra, l_b *= rb;
#pragma unroll
            for (int dt = 0; dt < HD / 8; dt++) o[dt][0] *= ra, o[dt][1] *= ra, o[dt][2] *= rb, o[dt][3] *= rb;
        }
        const float mx_a2 = m_a, mx_b2 = m_b; /* the reference of this tile's P */
        float sum_a = 0.0f, sum_b = 0.0f;
        unsigned pf[BN / 16][4];
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++) {
            const float e0 = fast_exp2(s[nt][0] - mx_a2), e1 = fast_exp2(s[nt][1] - mx_a2);
            const float e2 = fast_exp2(s[nt][2] - mx_b2), e3 = fast_exp2(s[nt][3] - mx_b2);
            sum_a += e0 + e1, sum_b += e2 + e3;
            if (KM == FD_F8_REG) { /* V's scales (times FD_PV) on P */
                float2 v2 = *reinterpret_cast<const float2 *>(sk + BN + nt * 8 + 2 * ta);
                v2.x *= FD_PV, v2.y *= FD_PV;
                pf[nt / 2][(nt & 1) * 2] = pack2<T>(e0 * v2.x, e1 * v2.y);
                pf[nt / 2][(nt & 1) * 2 + 1] = pack2<T>(e2 * v2.x, e3 * v2.y);
            } else {
                pf[nt / 2][(nt & 1) * 2] = pack2<T>(e0, e1);
                pf[nt / 2][(nt & 1) * 2 + 1] = pack2<T>(e2, e3);
            }
        }
        if (!(VAR & FD_V_LAZY)) {
            l_a = l_a * al_a + sum_a, l_b = l_b * al_b + sum_b;
#pragma unroll
            for (int dt = 0; dt < HD / 8; dt++)
                o[dt][0] *= al_a, o[dt][1] *= al_a, o[dt][2] *= al_b, o[dt][3] *= al_b;
        } else {
            l_a += sum_a, l_b += sum_b;
        }
        /* O += P V */
        if (KM == FD_F8_REG) {
            fd_pv_f8<T, HD, BN, LY::VSTR, VAR>(Vr, lane, pf, o);
        } else {
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++)
#pragma unroll
                for (int dp = 0; dp < HD / 16; dp++) {
                    unsigned b[4];
                    ldsm_x4_t(b, Vs + tix(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, dp * 2 + (lane >> 4)));
                    mma16816<T>(o[2 * dp], pf[kk], b[0], b[1]);
                    mma16816<T>(o[2 * dp + 1], pf[kk], b[2], b[3]);
                }
        }
        }
        if (KM == FD_F8_STAGE) __syncwarp(); /* the dequantised tile is rewritten next iteration */
    }
    cp_async_wait<0>();
    if (!p.early) pdl_trigger();
    if constexpr (KM == FD_F8_T) { /* heads 2t, 2t + 1: partial sums over the lanes' keys */
#pragma unroll
        for (int x = 4; x < 32; x <<= 1) {
            l_a += __shfl_xor_sync(0xffffffffu, l_a, x);
            l_b += __shfl_xor_sync(0xffffffffu, l_b, x);
        }
    } else {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
        l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
    }
    __syncthreads(); /* every warp is done with its stages: they become the merge area */
    const int MO = LY::MO;
    float *mo = (float *)fd_smem, *mml = mo + NW * 16 * MO; /* [NW][16][MO], [NW][16][m, l] */
    if constexpr (KM == FD_F8_T) { /* o[dt]: head dimension ga HD / 8 + 2 dt + {0, 1} of heads 2t, 2t + 1 */
        float *o0 = mo + (warp * 16 + 2 * ta) * MO + ga * (HD / 8), *o1 = o0 + MO;
        const float f = ((VAR & FD_V_VINT) ? 256.0f : 1.0f) / FD_PV;
#pragma unroll
        for (int dt = 0; dt < HD / 16; dt++) {
            *reinterpret_cast<float2 *>(o0 + 2 * dt) = make_float2(o[dt][0] * f, o[dt][2] * f);
            *reinterpret_cast<float2 *>(o1 + 2 * dt) = make_float2(o[dt][1] * f, o[dt][3] * f);
        }
        if (ga == 0) {
            mml[(warp * 16 + 2 * ta) * 2] = m_a, mml[(warp * 16 + 2 * ta) * 2 + 1] = l_a;
            mml[(warp * 16 + 2 * ta + 1) * 2] = m_b, mml[(warp * 16 + 2 * ta + 1) * 2 + 1] = l_b;
        }
    } else {
        float *oa = mo + (warp * 16 + ga) * MO, *ob = oa + 8 * MO;
        const float f = KM == FD_F8_REG ? ((VAR & FD_V_VINT) ? 256.0f : 1.0f) / FD_PV : 1.0f;
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt++) {
            /* accumulator columns 2t, 2t + 1 of n-tile dt; FD_F8_REG: head dimension n HD / 8 + dt */
            if (KM == FD_F8_REG) {
                const int c0 = 2 * ta * (HD / 8) + dt, c1 = c0 + HD / 8;
                oa[c0] = o[dt][0] * f, oa[c1] = o[dt][1] * f;
                ob[c0] = o[dt][2] * f, ob[c1] = o[dt][3] * f;
            } else {
                *reinterpret_cast<float2 *>(oa + dt * 8 + 2 * ta) = make_float2(o[dt][0], o[dt][1]);
                *reinterpret_cast<float2 *>(ob + dt * 8 + 2 * ta) = make_float2(o[dt][2], o[dt][3]);
            }
        }
        if (ta == 0) {
            mml[(warp * 16 + ga) * 2] = m_a, mml[(warp * 16 + ga) * 2 + 1] = l_a;
            mml[(warp * 16 + ga + 8) * 2] = m_b, mml[(warp * 16 + ga + 8) * 2 + 1] = l_b;
        }
    }
    __syncthreads();
    const int G = p.G;
    const size_t S = (size_t)p.splits, W = HD + 2, head0 = (size_t)r * p.nh + (size_t)kvh * G;
    for (int e = tid; e < G * HD; e += NW * 32) {
        const int g = e / HD, d = e - g * HD;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < NW; w++)
            if (mml[(w * 16 + g) * 2 + 1] > 0.0f) M = fmaxf(M, mml[(w * 16 + g) * 2]);
        float acc = 0.0f, Ls = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; w++) {
            const float l = mml[(w * 16 + g) * 2 + 1];
            const float f = l > 0.0f ? fast_exp2(mml[(w * 16 + g) * 2] - M) : 0.0f;
            acc = fmaf(f, mo[(w * 16 + g) * MO + d], acc), Ls = fmaf(f, l, Ls);
        }
        if (S == 1) {
            ((T *)p.out)[(head0 + g) * HD + d] =
                from_f32<T>(acc / Ls); /* Ls >= 1: key 0 is in the one split */
        } else {
            float *wp = p.work + ((head0 + g) * S + sp) * W;
            wp[d] = acc;
            if (d == 0) wp[HD] = M, wp[HD + 1] = Ls;
        }
    }
    if (S == 1) return;
    /* the last block of (row, kv head) to arrive merges the splits */
    __shared__ int fd_last;
    if (p.fence_sc) __threadfence();
    else fence_acq_rel_gpu();
    __syncthreads();
    if (tid == 0) {
        unsigned int *cnt = p.counters + (size_t)r * p.nkv + kvh;
        fd_last = atomicAdd(cnt, 1u) == (unsigned)S - 1;
        if (fd_last) *cnt = 0; /* ready for the next launch */
    }
    __syncthreads();
    if (!fd_last) return;
    if (p.fence_sc) __threadfence();
    else fence_acq_rel_gpu();
    if (p.merge_smem && G * (int)S * (int)W + G * (int)S <= LY::BYTES / 4) {
        fd_merge_smem<T, HD, NW>(p, head0, (int)S, fd_smem);
        return;
    }
    /* in parallel: (m, l) of every (head, split) into shared memory, then each head's weights
     * 2^(m_s - M) / L (a warp per head), then each output element as one sum of independent
     * loads (an empty split has o = 0 and weight 0) */
    float *ms = (float *)fd_smem, *ls = ms + G * S, *wt = ls + G * S; /* [G][S] each */
#pragma unroll 2
    for (int e = tid; e < G * (int)S; e += NW * 32) { /* (m, l): one 8-byte load (W and HD are even) */
        const float2 ml = __ldcg(reinterpret_cast<const float2 *>(p.work + ((head0 + e / S) * S + e % S) * W + HD));
        ms[e] = ml.x, ls[e] = ml.y;
    }
    __syncthreads();
    for (int g = warp; g < G; g += NW) {
        float M = -INFINITY, Ls = 0.0f;
        for (int s2 = lane; s2 < (int)S; s2 += 32)
            if (ls[g * S + s2] > 0.0f) M = fmaxf(M, ms[g * S + s2]);
        M = warp_max(M);
        for (int s2 = lane; s2 < (int)S; s2 += 32)
            if (ls[g * S + s2] > 0.0f) Ls += ls[g * S + s2] * fast_exp2(ms[g * S + s2] - M);
        Ls = warp_sum(Ls); /* >= 1: the split holding the maximum has weight 1 */
        for (int s2 = lane; s2 < (int)S; s2 += 32)
            wt[g * S + s2] = ls[g * S + s2] > 0.0f ? fast_exp2(ms[g * S + s2] - M) / Ls : 0.0f;
    }
    __syncthreads();
    for (int e = tid; e < G * HD / 2; e += NW * 32) { /* two elements a thread, 16 loads in flight */
        const int g = e / (HD / 2), d = 2 * (e - g * (HD / 2));
        const float *wp = p.work + (head0 + g) * S * W + d, *w = wt + g * S;
        float a0 = 0.0f, a1 = 0.0f;
#pragma unroll 16
        for (int s2 = 0; s2 < (int)S; s2++) {
            const float2 x = __ldcg(reinterpret_cast<const float2 *>(wp + s2 * W));
            a0 = fmaf(w[s2], x.x, a0), a1 = fmaf(w[s2], x.y, a1);
        }
        *reinterpret_cast<unsigned *>((T *)p.out + (head0 + g) * HD + d) = pack2<T>(a0, a1);
    }
}

/* Splits of a decode launch: spb blocks an SM over the KV heads and rows, at most 2 n_sm / rows
 * (the workspace of llt_cuda_attn_work_floats(rows, ...) covers rows * splits <= 2 n_sm) */
static int fd_splits(const llt_cuda_ctx *c, int rows, int n_kv, int spb) {
    const int64_t r = rows > 0 ? rows : 1;
    int64_t s = spb * (int64_t)c->n_sm / ((int64_t)n_kv * r);
    const int64_t cap = 2 * (int64_t)c->n_sm / r;
    if (s > cap) s = cap;
    return (int)(s < 1 ? 1 : s > (int64_t)FD_MAX_SPLITS ? (int64_t)FD_MAX_SPLITS : s);
}

/* LLT_CUDA_ATTN_LONG_SPB: blocks an SM that the splits assume (default def) */
static int fd_spb(int def) {
    const char *v = getenv("LLT_CUDA_ATTN_LONG_SPB");
    return v && atoi(v) > 0 ? atoi(v) : def;
}

template <typename T, int HD, int KM, int ST8, int NW, int SW = 0, int VAR = 0, int BNX = 0>
llt_status fd_launch(llt_cuda_ctx *c, fd_params p, int rows, int spb, llt_error *err) {
    typedef fd_layout<HD, KM, ST8, NW, SW, BNX> LY;
    void (*kern)(fd_params) = fd_kernel<T, HD, KM, ST8, NW, SW, VAR, BNX>;
    LLT_TRY(llt_smem_optin(c, kern, LY::BYTES + 16, err)); /* + the static fd_last: past 48 KB needs the opt-in */
    p.splits = fd_splits(c, rows, p.nkv, fd_spb(spb));
    /* LLT_CUDA_DECODE_MINKEYS=K (measurement): at most one split per K keys of the launch's
     * max_len */
    static const int min_keys = getenv("LLT_CUDA_DECODE_MINKEYS") ? atoi(getenv("LLT_CUDA_DECODE_MINKEYS")) : 0;
    if (min_keys > 0 && p.max_len > 0) {
        const int cap = (p.max_len + min_keys - 1) / min_keys;
        if (p.splits > cap) p.splits = cap < 1 ? 1 : cap;
    }
    return llt_launch(c, kern, dim3((unsigned)p.splits, (unsigned)p.nkv, (unsigned)rows), dim3(NW * 32),
                      LY::BYTES, err, p);
}

/* The variants (env switches, for comparisons):
 *  - f16 / bf16 pages: one 8-warp block an SM (default); LLT_CUDA_DECODE_NW=4: two 4-warp
 *    blocks an SM (the earlier default: the same warps and bytes in flight, twice the blocks
 *    and partials);
 *  - f8 pages: converted in registers with FD_ST8 stages a warp, two blocks an SM (default);
 *    LLT_CUDA_DECODE_F8ST=5: five stages; LLT_CUDA_DECODE_F8=stage: the tile converted into a
 *    dtype tile in shared memory first (the earlier kernel; F8ST=2: two stages a warp, for
 *    three blocks an SM with LLT_CUDA_ATTN_LONG_SPB=3);
 *  - f8 pages, f16 compute, hd 64 / 128, G <= 8: the transposed kernel (FD_F8_T) by default,
 *    in one 8-warp block an SM (LLT_CUDA_DECODE_F8SHAPE below), LLT_CUDA_DECODE_F8=reg the
 *    register kernel (FD_F8_REG, the default elsewhere);
 *    the transposed kernel takes the FD_V_* bits of
 *    LLT_CUDA_DECODE_F8V among 0, 1, 13, 17, 25 (1 and 17 also a stage fewer with
 *    LLT_CUDA_DECODE_F8ST below the default, for LLT_CUDA_ATTN_LONG_SPB=3);
 *    with LLT_CUDA_DECODE_F8=reg (and for 2, 4), LLT_CUDA_DECODE_F8V: the register kernel
 *    with the bits 1, 2, 4 or 13. */
template <typename T, int HD>
llt_status fd_pick(llt_cuda_ctx *c, const fd_params &p, int rows, bool k8, llt_error *err) {
    if (!k8) {
        const char *v = getenv("LLT_CUDA_DECODE_NW");
        if (v && atoi(v) == 4) return fd_launch<T, HD, FD_KV, FD_ST8, 4>(c, p, rows, 2, err);
        const char *w = getenv("LLT_CUDA_DECODE_SW");
        if (HD >= 64 && !(w && atoi(w) == 0)) return fd_launch<T, HD, FD_KV, FD_ST8, 8, HD >= 64>(c, p, rows, 1, err);
        return fd_launch<T, HD, FD_KV, FD_ST8, 8>(c, p, rows, 1, err);
    }
    const char *sv = getenv("LLT_CUDA_DECODE_F8ST"), *mv = getenv("LLT_CUDA_DECODE_F8");
    const int st = sv ? atoi(sv) : FD_ST8;
    if (mv && strcmp(mv, "stage") == 0)
        return st == 2 ? fd_launch<T, HD, FD_F8_STAGE, 2, 4>(c, p, rows, 2, err)
                       : fd_launch<T, HD, FD_F8_STAGE, FD_ST8, 4>(c, p, rows, 2, err);
    const int st_def = HD >= 128 ? 5 : FD_ST8; /* hd 128: 16-key tiles, more of them in flight */
    const char *vv = getenv("LLT_CUDA_DECODE_F8V");
    const int var = vv ? atoi(vv) : 0;
    const bool f16 = std::is_same<T, __half>::value;
    /* the transposed kernel by default where it applies (LLT_CUDA_DECODE_F8=reg: the register
     * kernel); on the H200 (bench/RESULTS.md issue 19 run 12) hd 128 at depth 16384 / 32768 /
     * 131072 18.5 / 29.9 / 85.1 us against 21.9 / 32.7 / 87.2, hd 64 12.1 / 16.9 / 57.4 against
     * 13.0 / 18.7 / 58.4 */
    if ((!mv || strcmp(mv, "t") == 0) && HD >= 64 && f16 && p.G <= 8) {
        /* LLT_CUDA_DECODE_F8SHAPE: 1 = 8-warp blocks, one an SM (the default: on an H100, hd 128,
         * at depth 576 / 4096 / 32768 7.9 / 9.4 / 34.4 us against 9.4 / 11.3 / 37.2, bench/RESULTS.md
         * issue 19 run 14; on the H200, hd 64, 6.56 / 6.67 / 14.58 us against 7.59 / 8.15 / 17.01,
         * run 15); 0 = 4-warp blocks, two an SM; 2 = 8 warps of 32-key tiles, 3 stages (hd 128;
         * 8.7 / 9.3 / 34.3 us) */
        const char *fs = getenv("LLT_CUDA_DECODE_F8SHAPE");
        const int shape = fs ? atoi(fs) : 1;
        if (shape == 1) return fd_launch<T, HD, FD_F8_T, (HD >= 128 ? 5 : FD_ST8), 8, 0, 0>(c, p, rows, 1, err);
        if (shape == 2 && HD >= 128) return fd_launch<T, HD, FD_F8_T, 3, 8, 0, 0, 32>(c, p, rows, 1, err);
        /* LLT_CUDA_DECODE_F8ST below the default: a stage fewer (hd 128: 4, hd 64: 3), for
         * three blocks an SM with LLT_CUDA_ATTN_LONG_SPB=3 */
        const bool less = sv && st < (HD >= 128 ? 5 : FD_ST8);
#define FD_VAR(V)                                                                                  \
    case V:                                                                                        \
        return fd_launch<T, HD, FD_F8_T, (HD >= 128 ? 5 : FD_ST8), 4, 0, V>(c, p, rows, 2, err);
#define FD_VAR2(V)                                                                                 \
    case V:                                                                                        \
        return less ? fd_launch<T, HD, FD_F8_T, (HD >= 128 ? 4 : 3), 4, 0, V>(c, p, rows, 2, err)     \
                    : fd_launch<T, HD, FD_F8_T, (HD >= 128 ? 5 : FD_ST8), 4, 0, V>(c, p, rows, 2, err);
        switch (var) {
            FD_VAR(0) FD_VAR2(1) FD_VAR(13) FD_VAR2(17) FD_VAR(25)
        default: break;
        }
#undef FD_VAR
#undef FD_VAR2
    }
    if (var && HD >= 64 && f16 && !sv) { /* F8=reg, or bits the transposed kernel lacks */
#define FD_VAR(V)                                                                                  \
    case V:                                                                                        \
        return fd_launch<T, HD, FD_F8_REG, (HD >= 128 ? 5 : FD_ST8), 4, 0, V>(c, p, rows, 2, err);
        switch (var) {
            FD_VAR(1) FD_VAR(2) FD_VAR(4) FD_VAR(13)
        default: break;
        }
#undef FD_VAR
    }
    return (sv ? st : st_def) == 5 ? fd_launch<T, HD, FD_F8_REG, 5, 4>(c, p, rows, 2, err)
                                   : fd_launch<T, HD, FD_F8_REG, FD_ST8, 4>(c, p, rows, 2, err);
}

} // namespace

extern "C" int32_t llt_cuda_attn_long_splits(const llt_cuda_ctx *c, int32_t rows, int32_t n_kv) {
    /* 4-warp blocks, LLT_CUDA_ATTN_LONG_SPB per SM (default 2: two blocks' stages fit the
     * shared memory); at most 2 n_sm / rows (fd_splits) */
    return fd_splits(c, rows, n_kv, fd_spb(2));
}

extern "C" int32_t llt_cuda_attn_long_keys(void) {
    const char *v = getenv("LLT_CUDA_ATTN_LONG");
    return v && atoi(v) > 0 ? atoi(v) : 8192;
}

extern "C" bool llt_cuda_flash_decode_covers(const llt_cuda_attn *a) {
    return llt_cuda_flash_prefill_covers(a) && a->n_heads / a->n_kv <= 16 &&
           (a->kv_f8 || a->max_len >= llt_cuda_attn_long_keys()) && a->work != NULL && a->counters != NULL;
}

extern "C" llt_status llt_cuda_flash_decode(llt_cuda_ctx *c, const llt_cuda_attn *a, llt_error *err) {
    const char *v = getenv("LLT_CUDA_DECODE_LONG");
    if (v && strcmp(v, "v1") == 0) return llt_cuda_flash_decode_v1(c, a, err);
    fd_params p;
    memset(&p, 0, sizeof p);
    p.q = a->q, p.out = a->out, p.kp = (const unsigned char *)a->k_pool,
    p.vp = (const unsigned char *)a->v_pool;
    p.bt = a->bt, p.row_bt = a->row_bt, p.pos = a->pos;
    p.nh = a->n_heads, p.nkv = a->n_kv, p.G = a->n_heads / a->n_kv, p.ps = a->page_size,
    p.max_blocks = a->max_blocks;
    p.ps_shift = -1;
    for (int s = 0; s < 31; s++)
        if ((1 << s) == a->page_size) p.ps_shift = s;
    const float scale = a->scale > 0 ? a->scale : 1.0f / sqrtf((float)a->hd);
    p.scale_log2 = scale * 1.4426950408889634f;
    p.work = a->work, p.counters = a->counters;
    const char *mv = getenv("LLT_CUDA_DECODE_MERGE"); /* "v0": the general merge always (comparison) */
    p.merge_smem = !(mv && strcmp(mv, "v0") == 0);
    const char *fv = getenv("LLT_CUDA_FENCE");
    p.fence_sc = fv && strcmp(fv, "sc") == 0;
    const char *bv = getenv("LLT_CUDA_DECODE_BAL");
    p.bal = !(bv && atoi(bv) == 0);
    const char *ev = getenv("LLT_CUDA_DECODE_EARLY");
    p.early = ev && atoi(ev) == 1;
    p.max_len = a->max_len;
    p.page_bytes = (long long)llt_kv_f8_page_bytes(a->page_size, a->n_kv, a->hd);
    p.sc_off = (long long)llt_kv_f8_scales_offset(a->page_size, a->n_kv, a->hd);
    const bool k8 = a->kv_f8;
    if (a->dtype == LLT_DTYPE_BF16)
        return a->hd == 32   ? fd_pick<__nv_bfloat16, 32>(c, p, a->rows, k8, err)
               : a->hd == 64 ? fd_pick<__nv_bfloat16, 64>(c, p, a->rows, k8, err)
                             : fd_pick<__nv_bfloat16, 128>(c, p, a->rows, k8, err);
    return a->hd == 32   ? fd_pick<__half, 32>(c, p, a->rows, k8, err)
           : a->hd == 64 ? fd_pick<__half, 64>(c, p, a->rows, k8, err)
                         : fd_pick<__half, 128>(c, p, a->rows, k8, err);
}
