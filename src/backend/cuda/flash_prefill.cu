/* flash_prefill.cu: causal prefill attention over the paged KV cache, FlashAttention-2 style
 * on the tensor cores (mma.sync m16n8k16 + ldmatrix; sm_80 and later, so the PTX target runs
 * it on any such GPU). On sm_90 the warp-specialised warpgroup (wgmma) version further down
 * (fa_ws_kernel; fa_wg_kernel and two variants behind LLT_CUDA_PREFILL_WG) takes f16 / bf16
 * caches of head_dim 64 / 128.
 *
 * Rows of the tile are (position, query head) pairs of one KV head: vrow v = i * G + g for
 * query i of the run and head g of the G heads that share the KV head, so one K/V tile in
 * shared memory serves the whole GQA group (K/V are read from L2 once per group, not once per
 * query head). A block holds BM = 16 * NW such rows (NW warps, 16 rows each) and walks 64-key
 * tiles of K and V gathered through the block table with cp.async, two stages deep (the next
 * tile is in flight while the tensor cores work on this one). Per warp: S = Q K^T in registers
 * (Q fragments loaded once), online softmax in registers (row max / sum across the 4 lanes of
 * a row by shuffles, exp2 domain: q is pre-scaled by scale * log2 e), P rounded to the dtype
 * and fed straight back as the A operand of O += P V (V through ldmatrix.trans). Causal
 * masking runs only on the tiles that reach past the block's first position (at most 2 with
 * G = 4). Nothing of size [T, T] exists: S lives in registers, tile by tile.
 *
 * A launch whose blocks cannot fill the GPU (a 512-row chunk has 2048 GQA rows: 128 blocks
 * of 8 warps) also splits each block's key range when deep (grid z, up to FA_PF_SPLITS;
 * LLT_CUDA_PREFILL_SPLITS overrides): the splits write partial (o, m, l) rows and
 * fa_merge_kernel combines them, as in decode.
 *
 * Bytes per block: its Q rows once, K and V of keys [0, last position] once; FLOPs: 4 * hd per
 * (row, visible key). Keys past the last position are zero-filled (never NaN into P V). */
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#include <cuda_fp8.h>

#include "backend/cuda/flash_common.cuh"
#include "backend/cuda/flash_prefill.cuh"
#include "backend/cuda/flash_wgmma.cuh"
extern "C" {
#include "kv/paged_cache.h"
}

namespace {

enum { FA_BN = 64, FA_MAX_SPLITS = 256, FA_PF_SPLITS = 4 }; /* keys per tile; decode / prefill splits at most */
enum { FA_DEEP = 4096 }; /* prefill launches reaching this many keys: 8 warps (hd 64) and key splits */

struct fa_params {
    const float *q; /* [rows, nh, hd] float32 */
    void *out;      /* [rows, nh * hd] dtype */
    const void *kp, *vp;
    const int *bt, *row_bt; /* block tables [n_tables, max_blocks]; the run's is row_bt[row0] */
    int nh, nkv, G, ps, max_blocks;
    int row0, n_q, q_pos0;
    float scale_log2;
    /* decode (split-K) mode: grid (splits, nkv, rows), row r = blockIdx.z at pos[r] */
    const int *pos;
    int splits;
    float *work; /* partials [rows][nh][splits][hd + 2]: o unnormalised, then m, l */
    size_t page_bytes, sc_off; /* f8 pools (paged_cache.h): bytes per page, offset of the scales */
    int flat; /* fa_ws_kernel: kp / vp hold the run's keys in order ([keys][nkv][hd], fa_f8_widen_kernel), no table */
    float spec; /* fa_ws_kernel, EX = 4: how far (log2 units) a tile's max may pass the row's reference max */
};

/* Shared memory (elements of 2 bytes): Q [BM][LD], K and V [2 stages][FA_BN][LD]; with an f8
 * cache also the raw tiles [2 stages][K, V][FA_BN][HD] bytes and their scales [2][K, V][FA_BN]
 * (cp.async lands there; each tile is dequantised into stage 0 of K / V before use). */
template <int HD, int NW, bool K8>
struct fa_layout {
    static const int BM = NW * 16;
    static const int LD = HD + 8; /* elements per smem row: 16 bytes of padding, no bank conflicts for ldmatrix */
    static const int Q = 0;
    static const int K = Q + BM * LD;          /* [2][FA_BN][LD] */
    static const int V = K + 2 * FA_BN * LD;   /* [2][FA_BN][LD] */
    static const size_t RAW = (size_t)(V + 2 * FA_BN * LD) * 2;            /* bytes */
    static const size_t SC = RAW + (K8 ? (size_t)2 * 2 * FA_BN * HD : 0); /* bytes */
    static const size_t BYTES = SC + (K8 ? (size_t)2 * 2 * FA_BN * 4 : 0);
};

/* Keys [kb, kb + 64) of KV head kvh into Ks/Vs (cp.async; zeros at keys >= kv_end). */
template <typename T, int HD, int NW>
__device__ __forceinline__ void fa_load_tile(const fa_params &p, const int *tbl, int kvh, int kb, int kv_end, T *Ks,
                                             T *Vs) {
    const int CH = HD / 8, LD = HD + 8; /* 16-byte chunks per row */
#pragma unroll
    for (int i = 0; i < FA_BN * CH / (NW * 32); i++) {
        const int idx = (int)threadIdx.x + i * NW * 32, j = idx / CH, c = idx % CH, key = kb + j;
        const T *ks = (const T *)p.kp, *vs = (const T *)p.vp;
        int n = 0;
        if (key < kv_end) {
            const size_t off = ((size_t)tbl[key / p.ps] * p.ps + key % p.ps) * p.nkv * HD + (size_t)kvh * HD + c * 8;
            ks += off, vs += off, n = 16;
        }
        cp_async16(Ks + j * LD + c * 8, ks, n);
        cp_async16(Vs + j * LD + c * 8, vs, n);
    }
}

/* The f8 version: raw e4m3 rows into raw [K, V][FA_BN][HD] bytes, scales into sc [K, V][FA_BN]. */
template <int HD, int NW>
__device__ __forceinline__ void fa_load_tile8(const fa_params &p, const int *tbl, int kvh, int kb, int kv_end,
                                              unsigned char *raw, float *sc) {
    const int CH = HD / 16;
    const unsigned char *kp = (const unsigned char *)p.kp, *vp = (const unsigned char *)p.vp;
    for (int idx = threadIdx.x; idx < FA_BN * CH; idx += NW * 32) {
        const int j = idx / CH, c = idx % CH, key = kb + j;
        size_t row = 0, at = 0;
        int n = 0;
        if (key < kv_end) {
            const size_t page = (size_t)tbl[key / p.ps];
            row = (size_t)(key % p.ps) * p.nkv + kvh, at = page * p.page_bytes, n = 16;
        }
        cp_async16(raw + j * HD + c * 16, kp + at + row * HD + c * 16, n);
        cp_async16(raw + (FA_BN + j) * HD + c * 16, vp + at + row * HD + c * 16, n);
        if (c == 0) {
            cp_async4(sc + j, kp + at + p.sc_off + row * 4, n / 4);
            cp_async4(sc + FA_BN + j, vp + at + p.sc_off + row * 4, n / 4);
        }
    }
}

/* raw e4m3 x scale -> Ks / Vs in T (zero rows stay zero: their scale is 0 too). */
template <typename T, int HD, int NW>
__device__ __forceinline__ void fa_dequant_tile(const unsigned char *raw, const float *sc, T *Ks, T *Vs) {
    const int CH = HD / 16, LD = HD + 8;
    for (int idx = threadIdx.x; idx < 2 * FA_BN * CH; idx += NW * 32) {
        const int jj = idx / CH, c = idx % CH, j = jj % FA_BN; /* jj: K rows, then V rows */
        const uint4 u = *reinterpret_cast<const uint4 *>(raw + jj * HD + c * 16);
        const float s = sc[jj];
        const unsigned short *b = reinterpret_cast<const unsigned short *>(&u);
        float f[16];
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const __half2 h = __half2(__nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)b[i], __NV_E4M3));
            const float2 t = __half22float2(h);
            f[2 * i] = t.x * s, f[2 * i + 1] = t.y * s;
        }
        T *dst = (jj < FA_BN ? Ks : Vs) + j * LD + c * 16;
        *reinterpret_cast<uint4 *>(dst) = pack8<T>(f);
        *reinterpret_cast<uint4 *>(dst + 8) = pack8<T>(f + 8);
    }
}

/* A block's rows out (this lane's rows ra, ra + 8 of the tile at v0; O(dt, e): its accumulator
 * of columns 8 dt .. 8 dt + 7, fragment element e): normalised into p.out, or with key splits
 * as partials (o unnormalised, m, l) into p.work. */
template <typename T, int HD, bool DEC, typename OF>
__device__ __forceinline__ void fa_store(const fa_params &p, int kvh, int v0, int nv, int ra, int ta, OF O, float m_a,
                                         float m_b, float l_a, float l_b) {
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
    const float ia = 1.0f / l_a, ib = 1.0f / l_b; /* l >= 1: each row's maximum has weight 1 */
    const int va = v0 + ra, vb = va + 8;
    if (p.splits > 1) { /* partials of this split (m = -inf, l = 0: no keys) */
        /* [row][head][split]: decode rows are the step's rows, prefill rows the run's */
        const size_t S = (size_t)p.splits, W = HD + 2, r0 = DEC ? p.row0 : 0, sp = DEC ? blockIdx.x : blockIdx.z;
        if (va < nv) {
            float *w = p.work + (((r0 + va / p.G) * p.nh + (size_t)kvh * p.G + va % p.G) * S + sp) * W;
#pragma unroll
            for (int dt = 0; dt < HD / 8; dt++) w[dt * 8 + 2 * ta] = O(dt, 0), w[dt * 8 + 2 * ta + 1] = O(dt, 1);
            if (ta == 0) w[HD] = m_a, w[HD + 1] = l_a;
        }
        if (vb < nv) {
            float *w = p.work + (((r0 + vb / p.G) * p.nh + (size_t)kvh * p.G + vb % p.G) * S + sp) * W;
#pragma unroll
            for (int dt = 0; dt < HD / 8; dt++) w[dt * 8 + 2 * ta] = O(dt, 2), w[dt * 8 + 2 * ta + 1] = O(dt, 3);
            if (ta == 0) w[HD] = m_b, w[HD + 1] = l_b;
        }
        return;
    }
    T *out = (T *)p.out;
    if (va < nv) {
        T *dst = out + ((size_t)(p.row0 + va / p.G) * p.nh + (size_t)kvh * p.G + va % p.G) * HD + 2 * ta;
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt++)
            *reinterpret_cast<unsigned *>(dst + dt * 8) = pack2<T>(O(dt, 0) * ia, O(dt, 1) * ia);
    }
    if (vb < nv) {
        T *dst = out + ((size_t)(p.row0 + vb / p.G) * p.nh + (size_t)kvh * p.G + vb % p.G) * HD + 2 * ta;
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt++)
            *reinterpret_cast<unsigned *>(dst + dt * 8) = pack2<T>(O(dt, 2) * ib, O(dt, 3) * ib);
    }
}

/* Eight values of query row v at column chunk c (its token v / G, head kvh G + v % G), scaled
 * into the exp2 domain and rounded to T; zeros for rows past nv. Every prefill kernel's Q load. */
template <typename T, int HD>
__device__ __forceinline__ uint4 fa_q8(const fa_params &p, int kvh, int v, int nv, int c) {
    float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (v < nv) {
        const float4 *src = reinterpret_cast<const float4 *>(
            p.q + ((size_t)(p.row0 + v / p.G) * p.nh + (size_t)kvh * p.G + v % p.G) * HD + c * 8);
        const float4 a = src[0], b = src[1];
        f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
#pragma unroll
        for (int j = 0; j < 8; j++) f[j] *= p.scale_log2;
    }
    return pack8<T>(f);
}

template <typename T, int HD, int NW, bool DEC, bool K8>
__global__ void __launch_bounds__(NW * 32, HD == 64 ? 2 : 1) fa_prefill_kernel(fa_params p) {
    typedef fa_layout<HD, NW, K8> LY;
    const int BM = LY::BM, LD = LY::LD;
    extern __shared__ __align__(128) unsigned char fa_smem[];
    T *Qs = (T *)fa_smem + LY::Q, *Kb = (T *)fa_smem + LY::K, *Vb = (T *)fa_smem + LY::V;
    unsigned char *raw = fa_smem + LY::RAW;
    float *scs = (float *)(fa_smem + LY::SC);
    const int kvh = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    pdl_wait();
    int v0 = 0, k0 = 0, k1;
    if (DEC) { /* one row, the G heads of kvh, keys [k0, k1) of split blockIdx.x */
        p.row0 = blockIdx.z, p.n_q = 1, p.q_pos0 = p.pos[p.row0];
        const int L = p.q_pos0 + 1, per = max((L + p.splits - 1) / p.splits + FA_BN - 1, 4 * FA_BN) / FA_BN * FA_BN;
        k0 = min(L, (int)blockIdx.x * per), k1 = min(L, k0 + per);
    } else {
        const int n_tiles_q = (p.n_q * p.G + BM - 1) / BM;
        v0 = (n_tiles_q - 1 - (int)blockIdx.x) * BM; /* the longest tiles first */
        k1 = p.q_pos0 + min(p.n_q * p.G - 1, v0 + BM - 1) / p.G + 1;
        if (p.splits > 1) { /* split blockIdx.z of the block's key tiles (tile-aligned ranges) */
            const int per_t = ((k1 + FA_BN - 1) / FA_BN + p.splits - 1) / p.splits;
            k0 = min(k1, (int)blockIdx.z * per_t * FA_BN), k1 = min(k1, k0 + per_t * FA_BN);
        }
    }
    const int nv = p.n_q * p.G, pos_lo = p.q_pos0 + v0 / p.G;
    const int kv_end = k1, t0 = k0 / FA_BN, n_tiles = k1 > k0 ? (k1 + FA_BN - 1) / FA_BN : t0; /* k0: tile-aligned */
    const int n_full = (pos_lo + 1) / FA_BN; /* tiles whose every key every row sees */
    const int *tbl = p.bt + (size_t)p.row_bt[p.row0] * p.max_blocks;
    if (t0 < n_tiles) {
        if (K8) fa_load_tile8<HD, NW>(p, tbl, kvh, t0 * FA_BN, kv_end, raw, scs);
        else fa_load_tile<T, HD, NW>(p, tbl, kvh, t0 * FA_BN, kv_end, Kb, Vb);
    }
    cp_async_commit();
    /* Q rows (scaled into the exp2 domain, rounded to T) */
    for (int idx = threadIdx.x; idx < BM * HD / 8; idx += NW * 32) {
        const int r = idx / (HD / 8), c = idx % (HD / 8), v = v0 + r;
        *reinterpret_cast<uint4 *>(Qs + r * LD + c * 8) = fa_q8<T, HD>(p, kvh, v, nv, c);
    }
    /* this lane's rows: A = warp * 16 + lane / 4, B = A + 8, and their positions */
    const int ra = warp * 16 + (lane >> 2), ta = lane & 3;
    const int pos_a = p.q_pos0 + min(v0 + ra, nv - 1) / p.G, pos_b = p.q_pos0 + min(v0 + ra + 8, nv - 1) / p.G;
    unsigned qf[HD / 16][4];
    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
    for (int j = t0; j < n_tiles; j++) {
        const int kb = j * FA_BN;
        const int st = K8 ? 0 : (j - t0) & 1, nst = (j + 1 - t0) & 1;
        T *Ks = Kb + st * FA_BN * LD, *Vs = Vb + st * FA_BN * LD;
        if (j + 1 < n_tiles) {
            if (K8)
                fa_load_tile8<HD, NW>(p, tbl, kvh, kb + FA_BN, kv_end, raw + nst * 2 * FA_BN * HD, scs + nst * 2 * FA_BN);
            else
                fa_load_tile<T, HD, NW>(p, tbl, kvh, kb + FA_BN, kv_end, Kb + nst * FA_BN * LD, Vb + nst * FA_BN * LD);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads(); /* tile j (and, at the first, Q) visible to every warp */
        if (K8) {
            fa_dequant_tile<T, HD, NW>(raw + ((j - t0) & 1) * 2 * FA_BN * HD, scs + ((j - t0) & 1) * 2 * FA_BN, Ks, Vs);
            __syncthreads();
        }
        if (j == t0) {
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++)
                ldsm_x4(qf[kk], Qs + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + kk * 16 + (lane >> 4) * 8);
        }
        /* S = Q K^T: 16 rows x 64 keys per warp */
        float s[FA_BN / 8][4];
#pragma unroll
        for (int i = 0; i < FA_BN / 8; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
        for (int np = 0; np < FA_BN / 16; np++)
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                unsigned b[4];
                ldsm_x4(b, Ks + (np * 16 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
                mma16816<T>(s[2 * np], qf[kk], b[0], b[1]);
                mma16816<T>(s[2 * np + 1], qf[kk], b[2], b[3]);
            }
        if (j >= n_full) { /* diagonal tiles: keys past a row's position do not exist for it */
#pragma unroll
            for (int nt = 0; nt < FA_BN / 8; nt++) {
                const int key = kb + nt * 8 + 2 * ta;
                if (key > pos_a) s[nt][0] = -INFINITY;
                if (key + 1 > pos_a) s[nt][1] = -INFINITY;
                if (key > pos_b) s[nt][2] = -INFINITY;
                if (key + 1 > pos_b) s[nt][3] = -INFINITY;
            }
        }
        /* online softmax (each row's 64 scores over the 4 lanes of its quad) */
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < FA_BN / 8; nt++) {
            mx_a = fmaxf(mx_a, fmaxf(s[nt][0], s[nt][1]));
            mx_b = fmaxf(mx_b, fmaxf(s[nt][2], s[nt][3]));
        }
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
        /* a row may have seen no key yet (a prefill split past its position): its maximum is
         * -inf, and exp2(x - 0) with x = -inf keeps everything zero instead of NaN */
        const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
        const float al_a = fast_exp2(m_a - (mn_a == -INFINITY ? 0.0f : mn_a));
        const float al_b = fast_exp2(m_b - (mn_b == -INFINITY ? 0.0f : mn_b));
        m_a = mn_a, m_b = mn_b;
        const float sa = mn_a == -INFINITY ? 0.0f : mn_a, sb = mn_b == -INFINITY ? 0.0f : mn_b;
        float sum_a = 0.0f, sum_b = 0.0f;
        unsigned pf[FA_BN / 16][4];
#pragma unroll
        for (int nt = 0; nt < FA_BN / 8; nt++) {
            const float e0 = fast_exp2(s[nt][0] - sa), e1 = fast_exp2(s[nt][1] - sa);
            const float e2 = fast_exp2(s[nt][2] - sb), e3 = fast_exp2(s[nt][3] - sb);
            sum_a += e0 + e1, sum_b += e2 + e3;
            pf[nt / 2][(nt & 1) * 2] = pack2<T>(e0, e1);
            pf[nt / 2][(nt & 1) * 2 + 1] = pack2<T>(e2, e3);
        }
        l_a = l_a * al_a + sum_a, l_b = l_b * al_b + sum_b;
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt++) o[dt][0] *= al_a, o[dt][1] *= al_a, o[dt][2] *= al_b, o[dt][3] *= al_b;
        /* O += P V */
#pragma unroll
        for (int kk = 0; kk < FA_BN / 16; kk++)
#pragma unroll
            for (int dp = 0; dp < HD / 16; dp++) {
                unsigned b[4];
                ldsm_x4_t(b, Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 + (lane >> 4) * 8);
                mma16816<T>(o[2 * dp], pf[kk], b[0], b[1]);
                mma16816<T>(o[2 * dp + 1], pf[kk], b[2], b[3]);
            }
        __syncthreads(); /* every warp is done with this stage before the next load refills it */
    }
    pdl_trigger();
    fa_store<T, HD, DEC>(p, kvh, v0, nv, ra, ta, [&](int dt, int e) { return o[dt][e]; }, m_a, m_b, l_a, l_b);
}

/* ---- Hopper (sm_90a): the same computation on warpgroup products --------------------------------
 *
 * Two warpgroups, 64 rows each (BM = 128 rows of (position, query head) pairs, as above), walk
 * BN-key tiles (128 for hd 64, 64 for hd 128) brought in by cp.async three stages deep (two
 * tiles in flight while one is used), gathered through the block table into 128-byte-swizzled
 * [hd / 64][BN][64] layouts: K is the K-major B operand of S = Q K^T, V the MN-major
 * (transposed) B operand of O += P V, both read by the tensor cores straight from shared
 * memory (no ldmatrix). Q (loaded once through shared memory and ldmatrix) and P (the S
 * accumulators rounded to the dtype: their layout is the A fragment layout) are register
 * operands. Online softmax and the causal mask (diagonal tiles only) as in fa_prefill_kernel;
 * the two warpgroups run independently between block barriers, so one's softmax overlaps the
 * other's products. Rows out through fa_store, with the same key splits and merge. */
template <int HD>
struct wg_layout {
    static const int BM = 128;
    static const int BN = HD == 64 ? 128 : 64;
    static const int ST = 3;
    static const int LDQ = HD + 8;
    static const int TILE = BN * HD * 2;          /* bytes of K (and of V) per stage */
    static const int Q = ST * 2 * TILE;           /* [BM][LDQ] elements after the stages */
    static const int BYTES = Q + BM * LDQ * 2 + 1024; /* + slack to align the stages to 1024 */
};

template <typename T> struct wg_ops;
template <> struct wg_ops<__half> {
    static __device__ __forceinline__ void s64(float (&d)[32], const unsigned (&a)[4], uint64_t b, int sc) {
        wg_mma_n64_f16(d, a, b, sc);
    }
    static __device__ __forceinline__ void s128(float (&d)[64], const unsigned (&a)[4], uint64_t b, int sc) {
        wg_mma_n128_f16(d, a, b, sc);
    }
    static __device__ __forceinline__ void v64(float (&d)[32], const unsigned (&a)[4], uint64_t b) {
        wg_mma_n64_f16_t(d, a, b, 1);
    }
    static __device__ __forceinline__ void ss128(float (&d)[64], uint64_t a, uint64_t b, int sc) {
        wg_mma_ss_n128_f16(d, a, b, sc);
    }
    static __device__ __forceinline__ void one8(float (&d)[4], const unsigned (&a)[4], uint64_t b) {
        wg_mma_n8_f16(d, a, b);
    }
};
template <> struct wg_ops<__nv_bfloat16> {
    static __device__ __forceinline__ void s64(float (&d)[32], const unsigned (&a)[4], uint64_t b, int sc) {
        wg_mma_n64_bf16(d, a, b, sc);
    }
    static __device__ __forceinline__ void s128(float (&d)[64], const unsigned (&a)[4], uint64_t b, int sc) {
        wg_mma_n128_bf16(d, a, b, sc);
    }
    static __device__ __forceinline__ void v64(float (&d)[32], const unsigned (&a)[4], uint64_t b) {
        wg_mma_n64_bf16_t(d, a, b, 1);
    }
    static __device__ __forceinline__ void ss128(float (&d)[64], uint64_t a, uint64_t b, int sc) {
        wg_mma_ss_n128_bf16(d, a, b, sc);
    }
    static __device__ __forceinline__ void one8(float (&d)[4], const unsigned (&a)[4], uint64_t b) {
        wg_mma_n8_bf16(d, a, b);
    }
};

/* Keys [kb, kb + BN) of KV head kvh into the swizzled K / V tiles (zeros at keys >= kv_end):
 * 16-byte chunk c of key j lands at (c / 8) BN 128 + 128 j + 16 ((c % 8) ^ (j % 8)). */
template <typename T, int HD>
__device__ __forceinline__ void wg_load_tile(const fa_params &p, const int *tbl, int kvh, int kb, int kv_end,
                                             unsigned char *Ks, unsigned char *Vs) {
    typedef wg_layout<HD> LY;
    const int CH = HD / 8;
#pragma unroll
    for (int i = 0; i < LY::BN * CH / 256; i++) {
        const int idx = (int)threadIdx.x + i * 256, j = idx / CH, c = idx % CH, key = kb + j;
        const T *ks = (const T *)p.kp, *vs = (const T *)p.vp;
        int n = 0;
        if (key < kv_end) {
            const size_t off = ((size_t)tbl[key / p.ps] * p.ps + key % p.ps) * p.nkv * HD + (size_t)kvh * HD + c * 8;
            ks += off, vs += off, n = 16;
        }
        const int at = (c >> 3) * LY::BN * 128 + j * 128 + (((c & 7) ^ (j & 7)) << 4);
        cp_async16(Ks + at, ks, n);
        cp_async16(Vs + at, vs, n);
    }
}

/* A warp's S fragment of BN keys (4 values per 8 keys: rows a, a, b, b): on a diagonal tile the
 * keys past a row's position to -inf (keys kb + 8 nt + 2 ta and the next), then the maxima of rows
 * a and b over the lane quad (the same in every kernel on wgmma fragments: sync, ovl, ws). */
template <int BN>
__device__ __forceinline__ void wg_mask(float (&s)[BN / 2], int kb, int ta, int pos_a, int pos_b) {
#pragma unroll
    for (int nt = 0; nt < BN / 8; nt++) {
        const int key = kb + nt * 8 + 2 * ta;
        if (key > pos_a) s[4 * nt] = -INFINITY;
        if (key + 1 > pos_a) s[4 * nt + 1] = -INFINITY;
        if (key > pos_b) s[4 * nt + 2] = -INFINITY;
        if (key + 1 > pos_b) s[4 * nt + 3] = -INFINITY;
    }
}
template <int BN> __device__ __forceinline__ void wg_max(const float (&s)[BN / 2], float &mx_a, float &mx_b) {
    static_assert(BN >= 32, "four chains a row");
    /* four chains a row, joined as a tree, both rows' shuffles side by side: the max is exact in
     * any order, and a 16-deep chain of dependent FMNMX per row, then a row's two shuffles one
     * after the other, were what every exponential of the tile waited behind */
    float a[4], b[4];
#pragma unroll
    for (int i = 0; i < 4; i++) a[i] = fmaxf(s[4 * i], s[4 * i + 1]), b[i] = fmaxf(s[4 * i + 2], s[4 * i + 3]);
#pragma unroll
    for (int nt = 4; nt < BN / 8; nt++) {
        a[nt & 3] = fmaxf(a[nt & 3], fmaxf(s[4 * nt], s[4 * nt + 1]));
        b[nt & 3] = fmaxf(b[nt & 3], fmaxf(s[4 * nt + 2], s[4 * nt + 3]));
    }
    mx_a = fmaxf(fmaxf(a[0], a[1]), fmaxf(a[2], a[3])), mx_b = fmaxf(fmaxf(b[0], b[1]), fmaxf(b[2], b[3]));
    float ta1 = __shfl_xor_sync(0xffffffffu, mx_a, 1), tb1 = __shfl_xor_sync(0xffffffffu, mx_b, 1);
    mx_a = fmaxf(mx_a, ta1), mx_b = fmaxf(mx_b, tb1);
    ta1 = __shfl_xor_sync(0xffffffffu, mx_a, 2), tb1 = __shfl_xor_sync(0xffffffffu, mx_b, 2);
    mx_a = fmaxf(mx_a, ta1), mx_b = fmaxf(mx_b, tb1);
}
template <int BN>
__device__ __forceinline__ void wg_mask_max(float (&s)[BN / 2], bool diag, int kb, int ta, int pos_a, int pos_b,
                                            float &mx_a, float &mx_b) {
    if (diag) wg_mask<BN>(s, kb, ta, pos_a, pos_b);
    wg_max<BN>(s, mx_a, mx_b);
}

/* Named barrier 1 between the two warpgroups (256 threads: one arrives, the other waits). */
__device__ __forceinline__ void wg_bar_sync1() { asm volatile("bar.sync 1, 256;\n" ::: "memory"); }
__device__ __forceinline__ void wg_bar_arrive1() { asm volatile("bar.arrive 1, 256;\n" ::: "memory"); }

/* PP (LLT_CUDA_PREFILL_WG=pp): ping-pong between the warpgroups. Without it both issue S = Q K^T
 * together, both run the softmax together (tensor cores idle), both issue P V together. With
 * it warpgroup 1 issues its S only after warpgroup 0 has issued its own (named barrier 1), so
 * the tensor cores finish warpgroup 0's S first: its softmax runs under warpgroup 1's S, and
 * warpgroup 1's softmax under warpgroup 0's P V. Each warpgroup's own order stays synchronous
 * (no register is read while a product writes it), which is what ptxas kept the in-warpgroup
 * overlap (fa_wg_ovl_kernel) from doing. */
template <typename T, int HD, bool PP>
__global__ void __launch_bounds__(256, 1) fa_wg_kernel(fa_params p) {
    typedef wg_layout<HD> LY;
    constexpr int BM = LY::BM, BN = LY::BN, LDQ = LY::LDQ, ST = LY::ST;
    extern __shared__ __align__(128) unsigned char fa_smem[];
    unsigned char *sm = fa_smem + ((1024 - (smem_u32(fa_smem) & 1023)) & 1023); /* stages 1024-aligned */
    T *Qs = (T *)(sm + LY::Q);
    const int kvh = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    pdl_wait();
    const int n_tiles_q = (p.n_q * p.G + BM - 1) / BM;
    const int v0 = (n_tiles_q - 1 - (int)blockIdx.x) * BM; /* the longest tiles first */
    int k0 = 0, k1 = p.q_pos0 + min(p.n_q * p.G - 1, v0 + BM - 1) / p.G + 1;
    if (p.splits > 1) { /* split blockIdx.z of the block's key tiles */
        const int per_t = ((k1 + BN - 1) / BN + p.splits - 1) / p.splits;
        k0 = min(k1, (int)blockIdx.z * per_t * BN), k1 = min(k1, k0 + per_t * BN);
    }
    const int nv = p.n_q * p.G, pos_lo = p.q_pos0 + v0 / p.G;
    const int kv_end = k1, t0 = k0 / BN, n_tiles = k1 > k0 ? (k1 + BN - 1) / BN : t0;
    const int n_full = (pos_lo + 1) / BN;
    const int *tbl = p.bt + (size_t)p.row_bt[p.row0] * p.max_blocks;
    for (int i = 0; i < ST - 1; i++) {
        if (t0 + i < n_tiles)
            wg_load_tile<T, HD>(p, tbl, kvh, (t0 + i) * BN, kv_end, sm + i * 2 * LY::TILE, sm + (i * 2 + 1) * LY::TILE);
        cp_async_commit();
    }
    for (int idx = threadIdx.x; idx < BM * HD / 8; idx += 256) { /* Q rows, scaled into the exp2 domain */
        const int r = idx / (HD / 8), c = idx % (HD / 8), v = v0 + r;
        *reinterpret_cast<uint4 *>(Qs + r * LDQ + c * 8) = fa_q8<T, HD>(p, kvh, v, nv, c);
    }
    __syncthreads();
    unsigned qf[HD / 16][4];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        ldsm_x4(qf[kk], Qs + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDQ + kk * 16 + (lane >> 4) * 8);
    const int ra = warp * 16 + (lane >> 2), ta = lane & 3;
    const int pos_a = p.q_pos0 + min(v0 + ra, nv - 1) / p.G, pos_b = p.q_pos0 + min(v0 + ra + 8, nv - 1) / p.G;
    float o[HD / 64][32];
#pragma unroll
    for (int nb = 0; nb < HD / 64; nb++)
#pragma unroll
        for (int i = 0; i < 32; i++) o[nb][i] = 0.0f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
    for (int j = t0; j < n_tiles; j++) {
        const int st = (j - t0) % ST, kb = j * BN;
        cp_async_wait<ST - 2>(); /* this thread's copies of tile j have landed */
        wg_fence_proxy();        /* ... and are visible to the tensor cores' reads */
        __syncthreads();         /* every thread's; and every warpgroup is done with tile j - 1 */
        if (j + ST - 1 < n_tiles) {
            const int ns = (j + ST - 1 - t0) % ST;
            wg_load_tile<T, HD>(p, tbl, kvh, kb + (ST - 1) * BN, kv_end, sm + ns * 2 * LY::TILE,
                                sm + (ns * 2 + 1) * LY::TILE);
        }
        cp_async_commit();
        const unsigned ka = smem_u32(sm + st * 2 * LY::TILE), va_ = ka + LY::TILE;
        /* S = Q K^T: 64 rows x BN keys per warpgroup */
        float s[BN / 2];
        if (PP && warp >= 4) wg_bar_sync1(); /* after warpgroup 0's S is issued */
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            const uint64_t d = wg_desc(ka + (kk >> 2) * BN * 128 + (kk & 3) * 32, 16, 1024);
            if constexpr (BN == 128) wg_ops<T>::s128(s, qf[kk], d, kk > 0);
            else wg_ops<T>::s64(s, qf[kk], d, kk > 0);
        }
        wg_commit();
        if (PP && warp < 4) wg_bar_arrive1();
        wg_wait<0>();
#pragma unroll
        for (int i = 0; i < BN / 2; i++) wg_reg_fence(s[i]);
        float mx_a, mx_b; /* diagonal tiles: keys past a row's position do not exist for it */
        wg_mask_max<BN>(s, j >= n_full, kb, ta, pos_a, pos_b, mx_a, mx_b);
        const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b); /* -inf: no key yet (a split) */
        const float al_a = fast_exp2(m_a - (mn_a == -INFINITY ? 0.0f : mn_a));
        const float al_b = fast_exp2(m_b - (mn_b == -INFINITY ? 0.0f : mn_b));
        m_a = mn_a, m_b = mn_b;
        const float sa = mn_a == -INFINITY ? 0.0f : mn_a, sb = mn_b == -INFINITY ? 0.0f : mn_b;
        float sum_a = 0.0f, sum_b = 0.0f;
        unsigned pf[BN / 16][4];
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++) {
            const float e0 = fast_exp2(s[4 * nt] - sa), e1 = fast_exp2(s[4 * nt + 1] - sa);
            const float e2 = fast_exp2(s[4 * nt + 2] - sb), e3 = fast_exp2(s[4 * nt + 3] - sb);
            sum_a += e0 + e1, sum_b += e2 + e3;
            pf[nt / 2][(nt & 1) * 2] = pack2<T>(e0, e1);
            pf[nt / 2][(nt & 1) * 2 + 1] = pack2<T>(e2, e3);
        }
        l_a = l_a * al_a + sum_a, l_b = l_b * al_b + sum_b;
#pragma unroll
        for (int nb = 0; nb < HD / 64; nb++)
#pragma unroll
            for (int i = 0; i < 32; i += 4)
                o[nb][i] *= al_a, o[nb][i + 1] *= al_a, o[nb][i + 2] *= al_b, o[nb][i + 3] *= al_b;
        /* O += P V: V (keys x hd) is MN-major: 16 keys = two 8-row atoms 1024 bytes apart */
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++)
#pragma unroll
            for (int nb = 0; nb < HD / 64; nb++)
                wg_ops<T>::v64(o[nb], pf[kk], wg_desc(va_ + nb * BN * 128 + kk * 2048, 1024, 1024));
        wg_commit();
        wg_wait<0>();
#pragma unroll
        for (int nb = 0; nb < HD / 64; nb++)
#pragma unroll
            for (int i = 0; i < 32; i++) wg_reg_fence(o[nb][i]);
    }
    cp_async_wait<0>();
    pdl_trigger();
    fa_store<T, HD, false>(p, kvh, v0, nv, ra, ta, [&](int dt, int e) { return o[dt >> 3][4 * (dt & 7) + e]; }, m_a,
                           m_b, l_a, l_b);
}

/* ---- Hopper, softmax under the tensor cores (LLT_CUDA_PREFILL_WG=ovl) -----------------------------
 *
 * FlashAttention-3's in-warpgroup pipelining on the kernel above: iteration j rescales O by
 * tile j - 1's correction, issues S_j = Q K_j^T and then O += P_{j-1} V_{j-1}, waits for S_j
 * only (wgmma.wait_group 1: every group but the newest, P V, complete), and computes tile j's
 * mask, maximum and exponentials (in place, float32) while the tensor cores run P V; then it
 * waits for that too (wait_group 0) and only then rounds the exponentials into P_j, the A
 * operand of the next P V. The rules that keep it correct:
 * - no register of an in-flight product is read or written: O only between a wait_group 0 and
 *   the next issue, P only after the wait that completes the P V reading it;
 * - no stage is refilled while a product may read it: at iteration j's barrier every product of
 *   iteration j - 1 is complete (each ends with wait_group 0), and iteration j reads K_j and
 *   V_{j-1}; so tile j + ST - 2 goes into the stage of tile j - 2 (ST stages, ST - 2 tiles
 *   ahead: ST = 4 keeps two tiles in flight, as the synchronous kernel's three stages do);
 * - the cp.async groups: ST - 2 in the prologue, one per iteration (empty past the end), so
 *   tile j has landed once at most ST - 3 groups are pending. */
template <int HD>
struct wg_ovl_layout {
    static const int BM = 128;
    static const int BN = wg_layout<HD>::BN;
    static const int ST = 4;
    static const int LDQ = HD + 8;
    static const int TILE = BN * HD * 2;
    static const int Q = ST * 2 * TILE;
    static const int BYTES = Q + BM * LDQ * 2 + 1024;
};

template <typename T, int HD>
__global__ void __launch_bounds__(256, 1) fa_wg_ovl_kernel(fa_params p) {
    typedef wg_ovl_layout<HD> LY;
    constexpr int BM = LY::BM, BN = LY::BN, LDQ = LY::LDQ, ST = LY::ST;
    extern __shared__ __align__(128) unsigned char fa_smem[];
    unsigned char *sm = fa_smem + ((1024 - (smem_u32(fa_smem) & 1023)) & 1023); /* stages 1024-aligned */
    T *Qs = (T *)(sm + LY::Q);
    const int kvh = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    pdl_wait();
    const int n_tiles_q = (p.n_q * p.G + BM - 1) / BM;
    const int v0 = (n_tiles_q - 1 - (int)blockIdx.x) * BM; /* the longest tiles first */
    int k0 = 0, k1 = p.q_pos0 + min(p.n_q * p.G - 1, v0 + BM - 1) / p.G + 1;
    if (p.splits > 1) { /* split blockIdx.z of the block's key tiles */
        const int per_t = ((k1 + BN - 1) / BN + p.splits - 1) / p.splits;
        k0 = min(k1, (int)blockIdx.z * per_t * BN), k1 = min(k1, k0 + per_t * BN);
    }
    const int nv = p.n_q * p.G, pos_lo = p.q_pos0 + v0 / p.G;
    const int kv_end = k1, t0 = k0 / BN, n_tiles = k1 > k0 ? (k1 + BN - 1) / BN : t0;
    const int n_full = (pos_lo + 1) / BN;
    const int *tbl = p.bt + (size_t)p.row_bt[p.row0] * p.max_blocks;
    for (int i = 0; i < ST - 2; i++) {
        if (t0 + i < n_tiles)
            wg_load_tile<T, HD>(p, tbl, kvh, (t0 + i) * BN, kv_end, sm + i * 2 * LY::TILE, sm + (i * 2 + 1) * LY::TILE);
        cp_async_commit();
    }
    for (int idx = threadIdx.x; idx < BM * HD / 8; idx += 256) { /* Q rows, scaled into the exp2 domain */
        const int r = idx / (HD / 8), c = idx % (HD / 8), v = v0 + r;
        *reinterpret_cast<uint4 *>(Qs + r * LDQ + c * 8) = fa_q8<T, HD>(p, kvh, v, nv, c);
    }
    __syncthreads();
    unsigned qf[HD / 16][4];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        ldsm_x4(qf[kk], Qs + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDQ + kk * 16 + (lane >> 4) * 8);
    const int ra = warp * 16 + (lane >> 2), ta = lane & 3;
    const int pos_a = p.q_pos0 + min(v0 + ra, nv - 1) / p.G, pos_b = p.q_pos0 + min(v0 + ra + 8, nv - 1) / p.G;
    float o[HD / 64][32];
#pragma unroll
    for (int nb = 0; nb < HD / 64; nb++)
#pragma unroll
        for (int i = 0; i < 32; i++) o[nb][i] = 0.0f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
    unsigned pf[BN / 16][4]; /* P of the previous tile: the A operand of its P V product */
    float s[BN / 2];
    /* tile j's stage landed and visible; every product of the previous iteration complete;
     * tile j + ST - 2 requested into the stage of tile j - 2 */
    auto top = [&](int j) {
        cp_async_wait<ST - 3>(); /* this thread's copies of tile j have landed */
        wg_fence_proxy();        /* ... and are visible to the tensor cores' reads */
        __syncthreads();         /* every thread's; every product of iteration j - 1 is complete */
        if (j + ST - 2 < n_tiles) {
            const int ns = (j + ST - 2 - t0) % ST;
            wg_load_tile<T, HD>(p, tbl, kvh, (j + ST - 2) * BN, kv_end, sm + ns * 2 * LY::TILE,
                                sm + (ns * 2 + 1) * LY::TILE);
        }
        cp_async_commit();
    };
    auto issue_s = [&](int j) { /* S = Q K_j^T: 64 rows x BN keys per warpgroup */
        const unsigned ka = smem_u32(sm + ((j - t0) % ST) * 2 * LY::TILE);
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            const uint64_t d = wg_desc(ka + (kk >> 2) * BN * 128 + (kk & 3) * 32, 16, 1024);
            if constexpr (BN == 128) wg_ops<T>::s128(s, qf[kk], d, kk > 0);
            else wg_ops<T>::s64(s, qf[kk], d, kk > 0);
        }
        wg_commit();
    };
    auto issue_pv = [&](int j) { /* O += P V_j (pf: P_j) */
        const unsigned vp = smem_u32(sm + ((j - t0) % ST) * 2 * LY::TILE) + LY::TILE;
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++)
#pragma unroll
            for (int nb = 0; nb < HD / 64; nb++)
                wg_ops<T>::v64(o[nb], pf[kk], wg_desc(vp + nb * BN * 128 + kk * 2048, 1024, 1024));
        wg_commit();
    };
    /* mask (diagonal tiles), running max and sum; the exponentials in place in s (float32);
     * the correction of O for this tile into al */
    float al_a = 0.0f, al_b = 0.0f;
    auto softmax = [&](int j) {
#pragma unroll
        for (int i = 0; i < BN / 2; i++) wg_reg_fence(s[i]);
        float mx_a, mx_b; /* keys past a row's position do not exist for it */
        wg_mask_max<BN>(s, j >= n_full, j * BN, ta, pos_a, pos_b, mx_a, mx_b);
        const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b); /* -inf: no key yet (a split) */
        al_a = fast_exp2(m_a - (mn_a == -INFINITY ? 0.0f : mn_a));
        al_b = fast_exp2(m_b - (mn_b == -INFINITY ? 0.0f : mn_b));
        m_a = mn_a, m_b = mn_b;
        const float sa = mn_a == -INFINITY ? 0.0f : mn_a, sb = mn_b == -INFINITY ? 0.0f : mn_b;
        float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++) {
            s[4 * nt] = fast_exp2(s[4 * nt] - sa), s[4 * nt + 1] = fast_exp2(s[4 * nt + 1] - sa);
            s[4 * nt + 2] = fast_exp2(s[4 * nt + 2] - sb), s[4 * nt + 3] = fast_exp2(s[4 * nt + 3] - sb);
            sum_a += s[4 * nt] + s[4 * nt + 1], sum_b += s[4 * nt + 2] + s[4 * nt + 3];
        }
        l_a = l_a * al_a + sum_a, l_b = l_b * al_b + sum_b;
    };
    /* P (the exponentials rounded to T) into pf, the A operand of the next P V: only once no
     * product reads pf. Converting here and not inside the softmax matters: ptxas gives P_j
     * the registers of P_{j-1} (an empty asm cannot keep P_{j-1} alive at the PTX level), so
     * the first conversion must wait for P_{j-1} V_{j-1}; interleaved with the exponentials,
     * that wait was scheduled before all of them (seen in the SASS: nothing overlapped). */
    auto pack_p = [&]() {
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++) {
            pf[nt / 2][(nt & 1) * 2] = pack2<T>(s[4 * nt], s[4 * nt + 1]);
            pf[nt / 2][(nt & 1) * 2 + 1] = pack2<T>(s[4 * nt + 2], s[4 * nt + 3]);
        }
    };
    auto fence_o = [&]() { /* after the wait that completes P V: O is ours again */
#pragma unroll
        for (int nb = 0; nb < HD / 64; nb++)
#pragma unroll
            for (int i = 0; i < 32; i++) wg_reg_fence(o[nb][i]);
    };
    auto rescale_o = [&]() { /* O (tiles before the previous one) to the previous tile's maximum */
#pragma unroll
        for (int nb = 0; nb < HD / 64; nb++)
#pragma unroll
            for (int i = 0; i < 32; i += 4)
                o[nb][i] *= al_a, o[nb][i + 1] *= al_a, o[nb][i + 2] *= al_b, o[nb][i + 3] *= al_b;
    };
    if (t0 < n_tiles) { /* the first tile: S alone */
        top(t0);
        wg_fence();
        issue_s(t0);
        wg_wait<0>();
        softmax(t0);
        pack_p();
    }
    for (int j = t0 + 1; j < n_tiles; j++) {
        top(j);
        rescale_o();     /* by tile j - 1's correction (O holds tiles < j - 1: nothing in flight) */
        fence_o();       /* ... before the wgmma fence (else the compiler sinks it to the P V) */
        wg_fence();
        issue_s(j);      /* S_j ... */
        issue_pv(j - 1); /* ... then O += P_{j-1} V_{j-1} behind it on the tensor cores */
        wg_wait<1>();    /* S_j complete; P V may still run */
        softmax(j);      /* under P V: touches neither O nor P_{j-1} */
        wg_wait<0>();    /* P_{j-1} V_{j-1} complete: O and pf are free */
        fence_o();
        pack_p();
    }
    if (t0 < n_tiles) { /* the last tile's P V (its stage is not refilled: no loads are left) */
        rescale_o();
        fence_o();
        wg_fence();
        issue_pv(n_tiles - 1);
        wg_wait<0>();
        fence_o();
    }
    cp_async_wait<0>();
    pdl_trigger();
    fa_store<T, HD, false>(p, kvh, v0, nv, ra, ta, [&](int dt, int e) { return o[dt >> 3][4 * (dt & 7) + e]; }, m_a,
                           m_b, l_a, l_b);
}

/* ---- Hopper, warp-specialised (LLT_CUDA_PREFILL_WG=ws): FlashAttention-3's structure ------------
 *
 * 384 threads: warpgroup 0 is the producer, warpgroups 1 and 2 the consumers (64 rows each of the
 * block's BM = 128). The producer hands most of its registers to the consumers (setmaxnreg) and
 * gathers 128-key tiles of K and V through the block table with cp.async into an ST-stage ring
 * (the same swizzled layout as fa_wg_kernel); each stage's K and V have their own mbarriers:
 * "full" completes when the producer's 128 threads' copies have landed
 * (cp.async.mbarrier.arrive.noinc), "empty" when the 8 consumer warps are done reading it. No
 * block-wide barrier inside the loop. Q is staged once in shared memory (swizzled, the A
 * operand of S = Q K^T from a descriptor: no registers).
 *
 * Each consumer works in rounds: round j issues O += P_{j-1} V_{j-1} and S_j = Q K_j^T, waits
 * for both, frees V_{j-1} and K_j, then runs tile j's softmax (mask on diagonal tiles only, max,
 * O rescaled, exponentials, P_j rounded into registers). The two consumers take turns issuing
 * (named barriers 1 and 2, FA3's ping-pong): one's softmax runs under the other's products, and
 * no register is touched while a product of its own warpgroup is in flight (what ptxas kept the
 * in-warpgroup overlap, fa_wg_ovl_kernel, from doing). K_j is freed a round before V_j, so with
 * two stages the producer still has a whole round of slack for each. */
template <int HD, int ST_, int NC = 2>
struct ws_layout {
    static const int BM = 64 * NC, BN = 128, ST = ST_;
    static const int TILE = BN * HD * 2;  /* bytes of K (or V) per stage: K of stage s at 2 s TILE, V after it */
    static const int QW = 64 * HD * 2;    /* bytes of one consumer's Q rows */
    static const int Q = ST * 2 * TILE;   /* [NC consumers][hd / 64][64 rows][128 bytes], swizzled */
    static const int ONES = Q + NC * QW;  /* 1024 bytes of ones (dtype): B of the row sums by MMA (RS) */
    static const int BAR = ONES + 1024;   /* full K [ST], full V [ST], empty K [ST], empty V [ST] */
    static const int BYTES = BAR + 4 * ST * 8 + 1024; /* + slack to align to 1024 */
};

/* The producer's share of a 128-key tile. Thread tid copies 16-byte chunk c = tid % CH (CH =
 * hd / 8) of keys j0 + R i (j0 = tid / CH, R = 128 / CH, i < CH): a warp covers 32 keys, and
 * lane l finds the pool row of one of them (ws_row: Q = 32 / CH; key Q w + l % Q + R (l / Q) of
 * warp w), one block-table load per lane and tile, issued a tile ahead; ws_copy hands each
 * thread its rows by shuffles and issues the copies (zeros at keys >= kv_end) into the swizzled
 * tile: chunk c of key j at (c / 8) 128 128 + 128 j + 16 ((c % 8) ^ (j % 8)). (A load per key
 * inside the copy loop, each waited for before the next, left the producer far behind.) */
template <int HD>
__device__ __forceinline__ int ws_row(const fa_params &p, const int *tbl, int kb, int kv_end, int w, int lane,
                                      int lps) {
    constexpr int Q = 32 / (HD / 8), R = 128 / (HD / 8);
    const int key = min(kb + Q * w + lane % Q + R * (lane / Q), kv_end - 1), pg = lps >= 0 ? key >> lps : key / p.ps;
    return p.flat ? key : tbl[pg] * p.ps + (key - pg * p.ps);
}
template <typename T, int HD>
__device__ __forceinline__ void ws_copy(const T *src, size_t rs, int row_l, int n_valid, int q, unsigned char *dst) {
    constexpr int CH = HD / 8, Q = 32 / CH, R = 128 / CH;
#pragma unroll
    for (int i = 0; i < CH; i++) {
        const int row = __shfl_sync(0xffffffffu, row_l, i * Q + q);
        cp_async16(dst + i * R * 128, src + (size_t)row * rs, R * i < n_valid ? 16 : 0);
    }
}

/* LLT_CUDA_PREFILL_WS_EXP (EX >= 0; EX = -1 the plain softmax; default: fa_ws_exp): the consumers' softmax
 * with less work for the exponential units (MUFU.EX2, 16 results a clock an SM: at hd 64 a
 * consumer's 64 x 128 exponentials of a tile take as long as its two products). EX >= 0 keeps a
 * row's running max unless the tile's exceeds it by more than 8 (log2 units: P <= 2^8, as exact
 * relative to its dtype as P <= 1, the f32 sums far from overflow; FA4's trick) and skips O's
 * rescale when no row max of the warp moved (the factors are exactly 1); EX = 1 / 2 also
 * compute a quarter / half of the exponentials (every 4th / 2nd 8-column block, interleaved
 * with the MUFU ones) on the FMA pipe: 2^x = 2^j 2^f, j = round(x) by the 1.5 2^23 shifter, f = x - j in [-0.5, 0.5], 2^f a
 * degree-3 minimax polynomial (relative error 7.5e-5 in float32 over [-0.5, 0.5], below half an
 * f16 ulp, 4.9e-4, and far below bf16's; so P rounded to the dtype moves by at most one ulp
 * where it moved by none), j added into the exponent bits. x is clamped to -126 first: a masked
 * key (-inf) gives 2^-126 (about 1.2e-38: 0 in f16, negligible in bf16 and in the sums) and the
 * exponent never wraps. */
#if WG_ENABLED /* (used only in fa_ws_kernel's sm_90a body) */
__device__ __forceinline__ float ws_poly_exp2(float x) {
    x = fmaxf(x, -126.0f);
    const float t = __fadd_rn(x, 12582912.0f); /* 1.5 2^23 + round(x): round(x) in the low mantissa bits */
    const float f = __fadd_rn(x, -__fadd_rn(t, -12582912.0f));
    float y = __fmaf_rn(f, 0.0551716685295105f, 0.2426111251115799f);
    y = __fmaf_rn(y, f, 0.6932609677314758f);
    y = __fmaf_rn(y, f, 0.9999280571937561f);
    return __uint_as_float(__float_as_uint(y) + (__float_as_uint(t) << 23)); /* + round(x) 2^23: mod 2^32 */
}
template <int EX> __device__ __forceinline__ float ws_exp2(int nt, float x) {
    return (EX == 1 && (nt & 3) == 3) || (EX == 2 && (nt & 1) == 1) ? ws_poly_exp2(x) : fast_exp2(x);
}
/* EX = 7 (fa_ws_exp): whether any P of this lane (both rows, packed in the dtype) exceeds thr:
 * the maximum over the packed pairs, two a max.{f16,bf16}x2, four chains (a P past the dtype's
 * range is inf: past any thr) */
template <typename T> __device__ __forceinline__ unsigned ws_hmax2(unsigned a, unsigned b) {
    unsigned r;
    if constexpr (std::is_same<T, __half>::value) asm("max.f16x2 %0, %1, %2;\n" : "=r"(r) : "r"(a), "r"(b));
    else asm("max.bf16x2 %0, %1, %2;\n" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
template <typename T, int BN> __device__ __forceinline__ bool ws_p_over(const unsigned (&pa)[BN / 16][4], float thr) {
    unsigned c[4] = {pa[0][0], pa[0][1], pa[0][2], pa[0][3]};
#pragma unroll
    for (int k = 1; k < BN / 16; k++)
#pragma unroll
        for (int i = 0; i < 4; i++) c[i] = ws_hmax2<T>(c[i], pa[k][i]);
    const unsigned m = ws_hmax2<T>(ws_hmax2<T>(c[0], c[1]), ws_hmax2<T>(c[2], c[3]));
    float lo, hi;
    if constexpr (std::is_same<T, __half>::value)
        lo = __half2float(__ushort_as_half((unsigned short)(m & 0xffffu))),
        hi = __half2float(__ushort_as_half((unsigned short)(m >> 16)));
    else
        lo = __uint_as_float(m << 16), hi = __uint_as_float(m & 0xffff0000u);
    return fmaxf(lo, hi) > thr;
}
#endif

/* NC (LLT_CUDA_PREFILL_WS_NC, hd 64; ws_variant): consumer warpgroups, 2 or 3 (BM = 64 NC rows a block; with 3,
 * FlashAttention-3's hd 64 shape, 512 threads: the producer keeps 32 registers, the consumers 160;
 * they take turns in a ring: consumer w issues once w - 1 has issued, named barrier 1 + w).
 * RS (LLT_CUDA_PREFILL_WS_RS=1): the row sums l by the tensor cores, P against a 16 x 8 tile of
 * ones (an m64n8k16 product beside each P V step, accumulated and rescaled with O) instead of 64
 * FADDs a thread and tile; its sums are of P as rounded to the dtype, the weights P V uses.
 * OV (LLT_CUDA_PREFILL_WS_OV=1): FlashAttention-3's overlap inside a warpgroup: a round issues S_j
 * before P_{j-1} V_{j-1} as two commit groups, waits for S_j alone and runs the exponentials of
 * tile j (in place in S) while P_{j-1} V_{j-1} is still running; then waits for it, rescales O
 * and rounds P_j into pf (the registers P_{j-1} V_{j-1} reads: only after that wait). */
enum { WS_NC3 = 1, WS_RS = 2, WS_OV = 4 }; /* fa_ws_kernel's V: variant bits (OV only without NC3: registers) */
template <int B> struct ws_par { static constexpr int value = B; };
template <typename T, int HD, int ST, int EX = -1, int V = 0>
__global__ void __launch_bounds__(128 * ((V & WS_NC3) ? 4 : 3), 1) fa_ws_kernel(fa_params p) {
#if WG_ENABLED
    constexpr int NC = (V & WS_NC3) ? 3 : 2;
    constexpr bool RS = (V & WS_RS) != 0, OV = (V & WS_OV) != 0;
    typedef ws_layout<HD, ST, NC> LY;
    constexpr int BM = LY::BM, BN = LY::BN, TILE = LY::TILE;
    extern __shared__ __align__(128) unsigned char fa_smem[];
    unsigned char *sm = fa_smem + ((1024 - (smem_u32(fa_smem) & 1023)) & 1023); /* stages 1024-aligned */
    uint64_t *full_k = (uint64_t *)(sm + LY::BAR), *full_v = full_k + ST, *empty_k = full_k + 2 * ST,
             *empty_v = full_k + 3 * ST;
    const int kvh = blockIdx.y, wg = threadIdx.x >> 7, tid = threadIdx.x & 127;
    if (threadIdx.x == 0)
        for (int s = 0; s < ST; s++)
            mb_init(full_k + s, 128), mb_init(full_v + s, 128), mb_init(empty_k + s, 4 * NC),
                mb_init(empty_v + s, 4 * NC);
    if (RS && threadIdx.x < 64) { /* the ones tile, read by the tensor cores: async proxy */
        const unsigned one2 = pack2<T>(1.0f, 1.0f);
        reinterpret_cast<uint4 *>(sm + LY::ONES)[threadIdx.x] = make_uint4(one2, one2, one2, one2);
        wg_fence_proxy();
    }
    __syncthreads();
    pdl_wait();
    const int n_tiles_q = (p.n_q * p.G + BM - 1) / BM;
    const int v0 = (n_tiles_q - 1 - (int)blockIdx.x) * BM; /* the longest tiles first */
    int k0 = 0, k1 = p.q_pos0 + min(p.n_q * p.G - 1, v0 + BM - 1) / p.G + 1;
    if (p.splits > 1) { /* split blockIdx.z of the block's key tiles */
        const int per_t = ((k1 + BN - 1) / BN + p.splits - 1) / p.splits;
        k0 = min(k1, (int)blockIdx.z * per_t * BN), k1 = min(k1, k0 + per_t * BN);
    }
    const int nv = p.n_q * p.G, kv_end = k1, t0 = k0 / BN, n_tiles = k1 > k0 ? (k1 + BN - 1) / BN : t0;
    const int *tbl = p.bt + (size_t)p.row_bt[p.row0] * p.max_blocks;
    if (wg == 0) { /* the producer */
        if constexpr (NC == 2) wg_regs_dec<56>();
        else wg_regs_dec<32>();
        constexpr int CH = HD / 8;
        const int c = tid % CH, j0 = tid / CH, pw = tid >> 5, lane = tid & 31;
        const int lps = (p.ps & (p.ps - 1)) == 0 ? __ffs(p.ps) - 1 : -1;
        const size_t rs = (size_t)p.nkv * HD, col = (size_t)kvh * HD + c * 8;
        const int at = (c >> 3) * 128 * 128 + j0 * 128 + (((c & 7) ^ (j0 & 7)) << 4); /* R: a multiple of 8 */
        int row = t0 < n_tiles ? ws_row<HD>(p, tbl, t0 * BN, kv_end, pw, lane, lps) : 0;
        for (int j = t0; j < n_tiles; j++) {
            const int s = (j - t0) % ST, n_valid = kv_end - j * BN - j0;
            const unsigned ph = ((j - t0) / ST) & 1;
            const int next = j + 1 < n_tiles ? ws_row<HD>(p, tbl, (j + 1) * BN, kv_end, pw, lane, lps) : 0;
            mb_wait(empty_k + s, ph ^ 1);
            ws_copy<T, HD>((const T *)p.kp + col, rs, row, n_valid, lane / CH, sm + 2 * s * TILE + at);
            mb_cp_async_arrive(full_k + s);
            mb_wait(empty_v + s, ph ^ 1);
            ws_copy<T, HD>((const T *)p.vp + col, rs, row, n_valid, lane / CH, sm + (2 * s + 1) * TILE + at);
            mb_cp_async_arrive(full_v + s);
            row = next;
        }
        cp_async_wait_all();
    } else { /* the consumers */
        if constexpr (NC == 2) wg_regs_inc<224>();
        else wg_regs_inc<160>();
        const int w = wg - 1, cw = (threadIdx.x >> 5) - 4, lane = threadIdx.x & 31;
        const int turn = 1 + w, next_turn = 1 + (w + 1) % NC; /* named barriers of the issue ring */
        const bool any = t0 < n_tiles;
        if (any && w == NC - 1) nb_arrive(1, 256); /* consumer 0 issues first */
        unsigned char *Qw = sm + LY::Q + w * LY::QW;
        for (int idx = tid; idx < 64 * HD / 8; idx += 128) { /* this consumer's Q rows, scaled into the exp2 domain */
            const int r = idx / (HD / 8), c = idx % (HD / 8), v = v0 + 64 * w + r;
            *reinterpret_cast<uint4 *>(Qw + (c >> 3) * 64 * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4)) =
                fa_q8<T, HD>(p, kvh, v, nv, c);
        }
        wg_fence_proxy(); /* Q (ordinary stores) -> the tensor cores' reads */
        nb_sync(1 + NC + w, 128);
        const int ra = cw * 16 + (lane >> 2), ta = lane & 3; /* this lane's rows of the block: ra, ra + 8 */
        const int pos_a = p.q_pos0 + min(v0 + ra, nv - 1) / p.G, pos_b = p.q_pos0 + min(v0 + ra + 8, nv - 1) / p.G;
        const int n_full = (p.q_pos0 + min(v0 + 64 * w, nv - 1) / p.G + 1) / BN; /* tiles every row of ours sees whole */
        const unsigned qa = smem_u32(Qw);
        float o[HD / 64][32];
#pragma unroll
        for (int nb = 0; nb < HD / 64; nb++)
#pragma unroll
            for (int i = 0; i < 32; i++) o[nb][i] = 0.0f;
        float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
        float lsum[4] = {0.0f, 0.0f, 0.0f, 0.0f}; /* RS: the row sums by MMA (every column: the sum of its row) */
        const uint64_t ones = wg_desc(smem_u32(sm + LY::ONES), 16, 1024);
        float s[BN / 2];
        unsigned pf[BN / 16][4]; /* P of the previous tile: the A operand of its P V */
        auto wait_k = [&](int j) { mb_wait(full_k + (j - t0) % ST, ((j - t0) / ST) & 1); };
        auto wait_v = [&](int j) { mb_wait(full_v + (j - t0) % ST, ((j - t0) / ST) & 1); };
        auto issue_s = [&](int j) {
            const unsigned ka = smem_u32(sm + 2 * ((j - t0) % ST) * TILE);
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++)
                wg_ops<T>::ss128(s, wg_desc(qa + (kk >> 2) * 64 * 128 + (kk & 3) * 32, 16, 1024),
                                 wg_desc(ka + (kk >> 2) * BN * 128 + (kk & 3) * 32, 16, 1024), kk > 0);
        };
        /* O += P V_j (pa: P_j); V (keys x hd) MN-major: 16 keys = two 8-row atoms */
        auto issue_pv = [&](int j, const unsigned (&pa)[BN / 16][4]) {
            const unsigned va = smem_u32(sm + (2 * ((j - t0) % ST) + 1) * TILE);
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
#pragma unroll
                for (int nb = 0; nb < HD / 64; nb++)
                    wg_ops<T>::v64(o[nb], pa[kk], wg_desc(va + nb * BN * 128 + kk * 2048, 1024, 1024));
                if (RS) wg_ops<T>::one8(lsum, pa[kk], ones);
            }
        };
        auto fence_acc = [&]() { /* after wait_group 0: the accumulators are ours again */
#pragma unroll
            for (int i = 0; i < BN / 2; i++) wg_reg_fence(s[i]);
#pragma unroll
            for (int nb = 0; nb < HD / 64; nb++)
#pragma unroll
                for (int i = 0; i < 32; i++) wg_reg_fence(o[nb][i]);
            if (RS)
#pragma unroll
                for (int i = 0; i < 4; i++) wg_reg_fence(lsum[i]);
        };
        auto release = [&](uint64_t *b, int j) { /* this warp is done reading tile j's stage of b */
            __syncwarp();
            if (lane == 0) mb_arrive(b + (j - t0) % ST);
        };
        /* OV: P double-buffered (P_j into pv2[(j - t0) & 1] while P_{j-1} V_{j-1} reads the other), O's
         * rescale by tile j's factors deferred to the start of round j + 1 (P_{j-1} V_{j-1} done, P_j V_j
         * not yet issued): nothing the running product touches is written before its wait, so ptxas
         * need not hoist that wait above the exponentials (as it did in fa_wg_ovl_kernel) */
        unsigned pv2[OV ? 2 : 1][BN / 16][4];
        float ov_al_a = 1.0f, ov_al_b = 1.0f; /* the rescale factors of the last softmax */
        /* tile j -> pa (exponentials), maxima and sums updated, O's factors kept for rescale_ov
         * (right after, or, OV, at the start of the next round) */
        auto exps = [&](float sa, float sb, unsigned (&pa)[BN / 16][4], float &sum_a, float &sum_b) {
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++) {
                const float e0 = ws_exp2<EX>(nt, s[4 * nt] - sa), e1 = ws_exp2<EX>(nt, s[4 * nt + 1] - sa);
                const float e2 = ws_exp2<EX>(nt, s[4 * nt + 2] - sb), e3 = ws_exp2<EX>(nt, s[4 * nt + 3] - sb);
                if (!RS) sum_a += e0 + e1, sum_b += e2 + e3;
                pa[nt / 2][(nt & 1) * 2] = pack2<T>(e0, e1);
                pa[nt / 2][(nt & 1) * 2 + 1] = pack2<T>(e2, e3);
            }
        };
        auto softmax_e = [&](int j, unsigned (&pa)[BN / 16][4]) {
            float mx_a, mx_b; /* diagonal tiles: keys past a row's position do not exist for it */
            if constexpr (EX == 4 || EX == 7) { /* the exponentials against the reference max first (fa_ws_exp) */
                if (j >= n_full) wg_mask<BN>(s, j * BN, ta, pos_a, pos_b);
                /* a warp with a row before its first key takes the exact path: no reference yet (a
                 * fixed one, such as 0, leaves P underflowing in f16 where every score is far below it) */
                const bool ref = __all_sync(0xffffffffu, m_a != -INFINITY && m_b != -INFINITY);
                if (ref) {
                    float sum_a = 0.0f, sum_b = 0.0f;
                    exps(m_a, m_b, pa, sum_a, sum_b);
                    bool over; /* EX = 7: checked on P (P > 2^spec), the maxima only on the exact path */
                    if constexpr (EX == 7) over = ws_p_over<T, BN>(pa, exp2f(p.spec)); /* (spec <= 8) */
                    else wg_max<BN>(s, mx_a, mx_b), over = mx_a > m_a + p.spec || mx_b > m_b + p.spec;
                    if (!__any_sync(0xffffffffu, over)) {
                        ov_al_a = ov_al_b = 1.0f;
                        if (!RS) l_a += sum_a, l_b += sum_b;
                        return;
                    }
                }
                if (EX == 7 || !ref) wg_max<BN>(s, mx_a, mx_b); /* the exact path's maxima, if not yet taken */
            } else
                wg_mask_max<BN>(s, j >= n_full, j * BN, ta, pos_a, pos_b, mx_a, mx_b);
            float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b); /* -inf: no key yet (a split) */
            if (EX >= 0 && EX != 4 && EX != 7) { /* keep a max exceeded by at most 8 (P <= 2^8; FA4): rare rescales */
                if (mx_a <= m_a + 8.0f) mn_a = m_a;
                if (mx_b <= m_b + 8.0f) mn_b = m_b;
            }
            ov_al_a = fast_exp2(m_a - (mn_a == -INFINITY ? 0.0f : mn_a));
            ov_al_b = fast_exp2(m_b - (mn_b == -INFINITY ? 0.0f : mn_b));
            m_a = mn_a, m_b = mn_b;
            const float sa = mn_a == -INFINITY ? 0.0f : mn_a, sb = mn_b == -INFINITY ? 0.0f : mn_b;
            float sum_a = 0.0f, sum_b = 0.0f;
            exps(sa, sb, pa, sum_a, sum_b);
            if (!RS) l_a = l_a * ov_al_a + sum_a, l_b = l_b * ov_al_b + sum_b;
        };
        auto rescale_ov = [&]() { /* O (and RS's sums) by the last softmax's factors */
            if (EX >= 0 && !__any_sync(0xffffffffu, ov_al_a != 1.0f || ov_al_b != 1.0f)) return; /* none moved */
            if (RS) lsum[0] *= ov_al_a, lsum[2] *= ov_al_b;
#pragma unroll
            for (int nb = 0; nb < HD / 64; nb++)
#pragma unroll
                for (int i = 0; i < 32; i += 4)
                    o[nb][i] *= ov_al_a, o[nb][i + 1] *= ov_al_a, o[nb][i + 2] *= ov_al_b, o[nb][i + 3] *= ov_al_b;
        };
        /* OV round j (j > t0): P_{j-1} from pv2[B ^ 1], P_j into pv2[B], B = (j - t0) & 1 */
        auto round_ov = [&](int j, auto par) {
            constexpr int B = decltype(par)::value;
            wait_k(j);
            wait_v(j - 1);
            rescale_ov();
            wg_fence_proxy();
            nb_sync(turn, 256);
            wg_fence();
            issue_s(j);
            wg_commit();
            issue_pv(j - 1, pv2[B ^ 1]);
            wg_commit();
            nb_arrive(next_turn, 256);
            wg_wait<1>();
#pragma unroll
            for (int i = 0; i < BN / 2; i++) wg_reg_fence(s[i]);
            softmax_e(j, pv2[B]);
            if (!RS) /* a shared store of the sums (all the exponentials): ptxas keeps the wait below after it
                      * (with nothing to order it, ptxas put that wait before the exponentials) */
                asm volatile("st.shared.f32 [%0], %1;\n" ::"r"(smem_u32(sm + LY::ONES) + 4 * (threadIdx.x - 128)),
                             "f"(l_a + l_b)
                             : "memory");
            release(empty_k, j);
            wg_wait<0>();
            fence_acc();
            release(empty_v, j - 1);
        };
        auto last_ov = [&](auto par) { /* OV: the last round, P V of the last tile (in pv2[B]) */
            constexpr int B = decltype(par)::value;
            wait_v(n_tiles - 1);
            rescale_ov();
            wg_fence_proxy();
            nb_sync(turn, 256);
            wg_fence();
            issue_pv(n_tiles - 1, pv2[B]);
            wg_commit();
            if (w < NC - 1) nb_arrive(next_turn, 256);
            wg_wait<0>();
            fence_acc();
        };
        auto round_first = [&]() { /* round t0: S = Q K_t0^T alone */
            wait_k(t0);
            wg_fence_proxy();
            nb_sync(turn, 256);
            wg_fence();
            issue_s(t0);
            wg_commit();
            nb_arrive(next_turn, 256);
            wg_wait<0>();
            fence_acc();
            release(empty_k, t0);
        };
        if constexpr (OV) {
            if (any) {
                round_first();
                softmax_e(t0, pv2[0]);
                int j = t0 + 1;
                for (; j + 1 < n_tiles; j += 2) round_ov(j, ws_par<1>()), round_ov(j + 1, ws_par<0>());
                if (j < n_tiles) round_ov(j, ws_par<1>());
                if ((n_tiles - 1 - t0) & 1) last_ov(ws_par<1>());
                else last_ov(ws_par<0>());
            }
        } else {
        auto softmax = [&](int j) { /* tile j: mask, maxima, exponentials -> pf, sums, O rescaled */
            softmax_e(j, pf);
            rescale_ov();
        };
        if (any) { /* round t0: S alone */
            round_first();
            softmax(t0);
        }
        for (int j = t0 + 1; j < n_tiles; j++) { /* round j: P_{j-1} V_{j-1} and S_j */
            wait_k(j);
            wait_v(j - 1);
            wg_fence_proxy();
            nb_sync(turn, 256);
            wg_fence();
            issue_pv(j - 1, pf);
            issue_s(j);
            wg_commit();
            nb_arrive(next_turn, 256);
            wg_wait<0>();
            fence_acc();
            release(empty_v, j - 1);
            release(empty_k, j);
            softmax(j);
        }
        if (any) { /* the last round: P V of the last tile (the last consumer hands no turn on: none is left) */
            wait_v(n_tiles - 1);
            wg_fence_proxy();
            nb_sync(turn, 256);
            wg_fence();
            issue_pv(n_tiles - 1, pf);
            wg_commit();
            if (w < NC - 1) nb_arrive(next_turn, 256);
            wg_wait<0>();
            fence_acc();
        }
        } /* (not OV) */
        if (RS) l_a = 0.25f * lsum[0], l_b = 0.25f * lsum[2]; /* fa_store adds the row's 4 lanes */
        pdl_trigger();
        fa_store<T, HD, false>(p, kvh, v0, nv, ra, ta, [&](int dt, int e) { return o[dt >> 3][4 * (dt & 7) + e]; }, m_a,
                               m_b, l_a, l_b);
    }
#endif
}

template <typename T>
__global__ void __launch_bounds__(128) fa_merge_kernel(const float *work, T *out, int nh, int hd, int S);

/* Splits of a prefill launch's key range. LLT_CUDA_PREFILL_SPLITS=N forces N (1: off);
 * =auto, and the default for launches reaching FA_DEEP keys, picks the count
 * (1..FA_PF_SPLITS) whose blocks fill the SMs' resident slots best (the blocks are about
 * equally long), at least 4 tiles a split. Measured on the H200 (bench/RESULTS.md, run 2):
 * a 512-row chunk at depth 32768, hd 64, 8 warps: 160 -> 216 TFLOP/s; at depth 512 splits
 * cost (37 -> 21), hence only deep launches. */
static int fa_pf_splits(const llt_cuda_ctx *c, int blocks, int slots_per_sm, int tiles, bool deep) {
    const char *v = getenv("LLT_CUDA_PREFILL_SPLITS");
    int best = 1;
    if (!v && !deep) return 1;
    if (v && atoi(v) >= 1) best = atoi(v) < FA_PF_SPLITS ? atoi(v) : FA_PF_SPLITS;
    else if (!v || strcmp(v, "auto") == 0) {
        const double slots = (double)c->n_sm * (slots_per_sm > 0 ? slots_per_sm : 1);
        double best_eff = 0;
        for (int s = 1; s <= FA_PF_SPLITS && (s == 1 || tiles / s >= 4); s++) {
            const double n = (double)blocks * s, eff = n / (ceil(n / slots) * slots);
            if (eff > best_eff + 0.05) best = s, best_eff = eff;
        }
    }
    return tiles / best >= 1 ? best : 1;
}

/* A prefill launch's split partials -> out, one warp per (row, head) and 8 a block: lane l
 * owns columns 2 l + 64 i (float2 loads: a partial's hd + 2 floats are 8-byte aligned). For
 * the few splits of a prefill launch (<= FA_PF_SPLITS) one warp reads each split's (m, l) in
 * turn, with no barrier; fa_merge_kernel's block per (row, head), made for decode's hundreds
 * of splits, spent two block-wide reductions on 2-4 values (LLT_CUDA_PF_MERGE=block keeps it). */
template <typename T, int HD>
__global__ void __launch_bounds__(256) fa_merge_warp_kernel(const float *work, T *out, int n_rh, int S) {
    static_assert(HD % 64 == 0, "columns 2 lane + 64 i");
    pdl_wait();
    const int rh = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (rh < n_rh) {
        const size_t W = HD + 2;
        const float *part = work + (size_t)rh * S * W;
        float M = -INFINITY;
        for (int s = 0; s < S; s++)
            if (part[s * W + HD + 1] > 0.0f) M = fmaxf(M, part[s * W + HD]);
        float L = 0.0f, acc[HD / 32];
#pragma unroll
        for (int i = 0; i < HD / 32; i++) acc[i] = 0.0f;
        for (int s = 0; s < S; s++) {
            const float l = part[s * W + HD + 1], e = l > 0.0f ? exp2f(part[s * W + HD] - M) : 0.0f;
            L = fmaf(l, e, L);
#pragma unroll
            for (int i = 0; i < HD / 64; i++) {
                const float2 v = *reinterpret_cast<const float2 *>(part + s * W + 64 * i + 2 * lane);
                acc[2 * i] = fmaf(e, v.x, acc[2 * i]), acc[2 * i + 1] = fmaf(e, v.y, acc[2 * i + 1]);
            }
        }
        pdl_trigger();
#pragma unroll
        for (int i = 0; i < HD / 64; i++)
            *reinterpret_cast<unsigned *>(out + (size_t)rh * HD + 64 * i + 2 * lane) =
                pack2<T>(acc[2 * i] / L, acc[2 * i + 1] / L);
    } else
        pdl_trigger();
}

static bool fa_merge_block(void) {
    const char *v = getenv("LLT_CUDA_PF_MERGE");
    return v && strcmp(v, "block") == 0;
}

/* With key splits: the partials of the launch's rows merged into p.out. */
template <typename T, int HD>
llt_status fa_merge_launch(llt_cuda_ctx *c, const fa_params &p, llt_error *err) {
    if (p.splits == 1) return LLT_OK;
    T *out = (T *)p.out + (size_t)p.row0 * p.nh * HD;
    const int n_rh = p.n_q * p.nh;
    if constexpr (HD % 64 == 0) /* (hd 32: the block kernel) */
        if (!fa_merge_block())
            return llt_launch(c, fa_merge_warp_kernel<T, HD>, dim3((unsigned)((n_rh + 7) / 8)), dim3(256), 0, err,
                              (const float *)p.work, out, n_rh, p.splits);
    return llt_launch(c, fa_merge_kernel<T>, dim3((unsigned)n_rh), dim3(128), 0, err, (const float *)p.work, out,
                      p.nh, HD, p.splits);
}

template <typename T, int HD, int NW, bool K8>
llt_status fa_launch(llt_cuda_ctx *c, fa_params p, llt_error *err) {
    typedef fa_layout<HD, NW, K8> LY;
    void (*kern)(fa_params) = fa_prefill_kernel<T, HD, NW, false, K8>;
    LLT_TRY(llt_smem_optin(c, kern, LY::BYTES, err));
    const int bx = (p.n_q * p.G + LY::BM - 1) / LY::BM, tiles = (p.q_pos0 + p.n_q + FA_BN - 1) / FA_BN;
    int per_sm = 1;
    if (p.work) {
        CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, NW * 32, LY::BYTES), err);
        p.splits = fa_pf_splits(c, bx * p.nkv, per_sm, tiles, p.q_pos0 + p.n_q >= FA_DEEP);
    }
    LLT_TRY(llt_launch(c, kern, dim3((unsigned)bx, (unsigned)p.nkv, (unsigned)p.splits), dim3(NW * 32), LY::BYTES, err,
                       p));
    return fa_merge_launch<T, HD>(c, p, err);
}

/* The Hopper kernel (one 256-thread block per SM: its registers) */
template <typename T, int HD, bool PP>
llt_status fa_wg_launch(llt_cuda_ctx *c, fa_params p, llt_error *err) {
    typedef wg_layout<HD> LY;
    void (*kern)(fa_params) = fa_wg_kernel<T, HD, PP>;
    LLT_TRY(llt_smem_optin(c, kern, LY::BYTES, err));
    const int bx = (p.n_q * p.G + LY::BM - 1) / LY::BM, tiles = (p.q_pos0 + p.n_q + LY::BN - 1) / LY::BN;
    if (p.work) p.splits = fa_pf_splits(c, bx * p.nkv, 1, tiles, p.q_pos0 + p.n_q >= FA_DEEP);
    LLT_TRY(llt_launch(c, kern, dim3((unsigned)bx, (unsigned)p.nkv, (unsigned)p.splits), dim3(256), LY::BYTES, err, p));
    return fa_merge_launch<T, HD>(c, p, err);
}

/* The overlapped Hopper kernel (LLT_CUDA_PREFILL_WG=ovl; =sync: fa_wg_kernel) */
template <typename T, int HD>
llt_status fa_wg_ovl_launch(llt_cuda_ctx *c, fa_params p, llt_error *err) {
    typedef wg_ovl_layout<HD> LY;
    void (*kern)(fa_params) = fa_wg_ovl_kernel<T, HD>;
    LLT_TRY(llt_smem_optin(c, kern, LY::BYTES, err));
    const int bx = (p.n_q * p.G + LY::BM - 1) / LY::BM, tiles = (p.q_pos0 + p.n_q + LY::BN - 1) / LY::BN;
    if (p.work) p.splits = fa_pf_splits(c, bx * p.nkv, 1, tiles, p.q_pos0 + p.n_q >= FA_DEEP);
    LLT_TRY(llt_launch(c, kern, dim3((unsigned)bx, (unsigned)p.nkv, (unsigned)p.splits), dim3(256), LY::BYTES, err, p));
    return fa_merge_launch<T, HD>(c, p, err);
}

/* The warp-specialised Hopper kernel (LLT_CUDA_PREFILL_WG=ws): ST stages of 128 keys, NC consumers */
template <typename T, int HD, int ST, int EX = -1, int V = 0>
llt_status fa_ws_launch(llt_cuda_ctx *c, fa_params p, llt_error *err) {
    constexpr int NC = (V & WS_NC3) ? 3 : 2;
    typedef ws_layout<HD, ST, NC> LY;
    void (*kern)(fa_params) = fa_ws_kernel<T, HD, ST, EX, V>;
    LLT_TRY(llt_smem_optin(c, kern, LY::BYTES, err));
    const int bx = (p.n_q * p.G + LY::BM - 1) / LY::BM, tiles = (p.q_pos0 + p.n_q + LY::BN - 1) / LY::BN;
    if (p.work) p.splits = fa_pf_splits(c, bx * p.nkv, 1, tiles, p.q_pos0 + p.n_q >= FA_DEEP);
    LLT_TRY(llt_launch(c, kern, dim3((unsigned)bx, (unsigned)p.nkv, (unsigned)p.splits), dim3(128 * (NC + 1)), LY::BYTES,
                       err, p));
    return fa_merge_launch<T, HD>(c, p, err);
}

/* LLT_CUDA_PREFILL_WG: "sync" (fa_wg_kernel), "ovl" (in-warpgroup overlap), "pp" (ping-pong);
 * unset or anything else: "ws", the warp-specialised kernel (bench/RESULTS.md, issue 19 run 9:
 * 1.7x "sync" at hd 128, 1.6x at hd 64, on a 512-row chunk at depth 32768) */
static int fa_wg_kind(void) {
    const char *v = getenv("LLT_CUDA_PREFILL_WG");
    if (!v) return 3;
    return strcmp(v, "ovl") == 0 ? 1 : strcmp(v, "pp") == 0 ? 2 : strcmp(v, "sync") == 0 ? 0 : 3;
}

/* LLT_CUDA_PREFILL_WS_NC=2|3, LLT_CUDA_PREFILL_WS_RS=1, LLT_CUDA_PREFILL_WS_OV=1 (hd 64):
 * fa_ws_kernel's variant bits WS_NC3, WS_RS, WS_OV. Three consumers by default for launches
 * reaching WS_NC3_KEYS keys: on the H200 (llama3.2-1b heads, bench/RESULTS.md issue 19 run 12),
 * 512 / 2048-row chunks: 391 / 407 TFLOP/s at depth 32768 and 448 / 443 at 131072 against 365 /
 * 384 and 380 / 380 with two, but 335 / 355 at depth 16384 against 344 / 372: the switch lies
 * between 16384 and 32768 keys (not measured in between; 24576 splits the difference) */
enum { WS_NC3_KEYS = 24576 };
static int ws_variant(const fa_params &p) {
    const char *n = getenv("LLT_CUDA_PREFILL_WS_NC"), *r = getenv("LLT_CUDA_PREFILL_WS_RS"),
               *o = getenv("LLT_CUDA_PREFILL_WS_OV");
    const int nc3 = n && *n ? atoi(n) == 3 : p.q_pos0 + p.n_q >= WS_NC3_KEYS;
    const int rs = r && *r ? atoi(r) == 1 : nc3; /* RS by default with three consumers (fa_ws_exp) */
    return (nc3 ? WS_NC3 : 0) | (rs ? WS_RS : 0) | (!nc3 && o && atoi(o) == 1 ? WS_OV : 0);
}
template <typename T, int HD, int ST, int EX>
llt_status fa_ws_var(llt_cuda_ctx *c, const fa_params &p, int v, llt_error *err) {
    switch (v) {
    case 1: return fa_ws_launch<T, HD, ST, EX, 1>(c, p, err);
    case 2: return fa_ws_launch<T, HD, ST, EX, 2>(c, p, err);
    case 3: return fa_ws_launch<T, HD, ST, EX, 3>(c, p, err);
    case 4: return fa_ws_launch<T, HD, ST, EX, 4>(c, p, err);
    case 6: return fa_ws_launch<T, HD, ST, EX, 6>(c, p, err);
    default: return fa_ws_launch<T, HD, ST, EX, 0>(c, p, err);
    }
}

/* LLT_CUDA_PREFILL_WS_EXP=-1|0|1|2|4|7: the softmax variants at the default stage counts (above
 * ws_poly_exp2): -1 the plain softmax, 0 keeps a max unless exceeded by more than 8 and skips
 * O's rescale when no max moved, 1 / 2 also take a quarter / half of the exponentials on the FMA
 * pipe, 4 computes a tile's exponentials against the row's reference max before the tile's own
 * max is known: the max's chain and shuffles run beside the exponentials instead of before
 * them; a warp where some row's tile max passes its reference by more than p.spec (8: P <= 2^8,
 * as above; LLT_CUDA_PREFILL_WS_SPEC) throws them away and takes the exact path with the new max
 * (so does a warp with a row before its first key: no reference yet); 7 (hd 64, no variant bits
 * or three consumers with RS; else the plain softmax) is 4 with the fast path's check on the
 * packed P (any P > 2^spec, two a max.f16x2, no shuffles) and the maxima only on the exact
 * path: 4 spends 64 FMNMX and four shuffles a thread and tile on maxima the fast path does not
 * use. Default 0 at hd 128; at hd 64 4 with two consumers (no variant bit) and with three
 * consumers and RS (ws_variant's default for three), -1 with any other variant bits: on the
 * H200 (512-row chunk, bench/RESULTS.md issue 19 run 10) 0 gave hd 128 535 / 543 TFLOP/s at
 * depth 32768 / 131072 against 510 / 515, while at hd 64 0-2 were slower
 * (1: 350 against 366; the polynomial does not pay); on an H100 (run 21) 4 gave hd 64 361
 * against 348 at depth 16384 (two consumers); with three consumers 4 alone gave no steady gain,
 * 4 with RS 424-433 against 391-406 at depth 32768 and 460-462 at 131072 (run 22: 413-435 against
 * 394-413, 459-464 against 431-436; 4 with a quarter / half of the exponentials by the polynomial
 * 4-19 % slower) */
template <typename T, int HD, int ST>
llt_status fa_ws_exp(llt_cuda_ctx *c, const fa_params &p, llt_error *err) {
    const char *e = getenv("LLT_CUDA_PREFILL_WS_EXP");
    const int v = HD == 64 ? ws_variant(p) : 0;
    const int ex = e && *e ? atoi(e) : HD == 128 ? 0 : v == 0 || v == (WS_NC3 | WS_RS) ? 4 : -1;
    if constexpr (HD == 64) { /* fa_ws_kernel's variant bits V (EX -1 or 0 with them) */
        if (ex == 7 && v == (WS_NC3 | WS_RS)) return fa_ws_launch<T, HD, ST, 7, WS_NC3 | WS_RS>(c, p, err);
        if (ex == 7 && v == 0) return fa_ws_launch<T, HD, ST, 7>(c, p, err);
        if (v)
            return ex == 0   ? fa_ws_var<T, HD, ST, 0>(c, p, v, err)
                   : ex == 4 ? fa_ws_var<T, HD, ST, 4>(c, p, v, err)
                             : fa_ws_var<T, HD, ST, -1>(c, p, v, err);
    }
    return ex == 0   ? fa_ws_launch<T, HD, ST, 0>(c, p, err)
           : ex == 4 ? fa_ws_launch<T, HD, ST, 4>(c, p, err)
           : ex == 1 ? fa_ws_launch<T, HD, ST, 1>(c, p, err)
           : ex == 2 ? fa_ws_launch<T, HD, ST, 2>(c, p, err)
                     : fa_ws_launch<T, HD, ST>(c, p, err);
}

/* the warp-specialised kernel's stages: 4 for hd 64 (32 KB each), 3 for hd 128 (64 KB each,
 * 225 KB of shared memory in all; run 9: 505 TFLOP/s at depth 32768 against 461 with 2);
 * LLT_CUDA_PREFILL_WS_ST=2 takes 2 at hd 128 (never with LLT_CUDA_PREFILL_WS_EXP) */
template <typename T, int HD>
llt_status fa_ws_pick(llt_cuda_ctx *c, const fa_params &p, llt_error *err) {
    if constexpr (HD == 64) return fa_ws_exp<T, 64, 4>(c, p, err);
    const char *v = getenv("LLT_CUDA_PREFILL_WS_ST");
    return v && atoi(v) == 2 ? fa_ws_launch<T, 128, 2>(c, p, err) : fa_ws_exp<T, 128, 3>(c, p, err);
}

template <typename T, int HD>
llt_status fa_wg_pick(llt_cuda_ctx *c, const fa_params &p, llt_error *err) {
    const int k = fa_wg_kind();
    return k == 1 ? fa_wg_ovl_launch<T, HD>(c, p, err)
           : k == 3 ? fa_ws_pick<T, HD>(c, p, err)
           : k == 2 ? fa_wg_launch<T, HD, true>(c, p, err)
                    : fa_wg_launch<T, HD, false>(c, p, err);
}

/* Split partials -> out: one block per (row, head); weights 2^(m_s - M) in shared memory. */
template <typename T>
__global__ void __launch_bounds__(128) fa_merge_kernel(const float *work, T *out, int nh, int hd, int S) {
    __shared__ float w[FA_MAX_SPLITS];
    __shared__ float red[32];
    pdl_wait();
    const size_t rh = blockIdx.x, W = (size_t)hd + 2;
    const float *part = work + rh * S * W;
    float M = -INFINITY;
    for (int s = threadIdx.x; s < S; s += blockDim.x)
        if (part[s * W + hd + 1] > 0.0f) M = fmaxf(M, part[s * W + hd]);
    M = block_max(M, red);
    float L = 0.0f;
    for (int s = threadIdx.x; s < S; s += blockDim.x) {
        const float l = part[s * W + hd + 1], e = l > 0.0f ? exp2f(part[s * W + hd] - M) : 0.0f;
        w[s] = e, L += l * e;
    }
    L = block_sum(L, red); /* its barriers also publish w */
    pdl_trigger();
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < S; s++) acc = fmaf(w[s], part[s * W + d], acc);
        out[rh * hd + d] = from_f32<T>(acc / L);
    }
}

template <typename T, int HD, bool K8>
llt_status fa_decode_as(llt_cuda_ctx *c, const fa_params &p, int rows, llt_error *err) {
    typedef fa_layout<HD, 1, K8> LY;
    LLT_TRY(llt_smem_optin(c, fa_prefill_kernel<T, HD, 1, true, K8>, LY::BYTES, err));
    dim3 grid((unsigned)p.splits, (unsigned)p.nkv, (unsigned)rows);
    LLT_TRY(llt_launch(c, fa_prefill_kernel<T, HD, 1, true, K8>, grid, dim3(32), LY::BYTES, err, p));
    if (p.splits == 1) return LLT_OK;
    return llt_launch(c, fa_merge_kernel<T>, dim3((unsigned)(rows * p.nh)), dim3(128), 0, err, (const float *)p.work,
                      (T *)p.out, p.nh, HD, p.splits);
}

template <typename T, int HD>
llt_status fa_pick_warps(llt_cuda_ctx *c, const fa_params &p, int nw, bool k8, llt_error *err) {
    if (k8) return nw == 8 ? fa_launch<T, HD, 8, true>(c, p, err) : fa_launch<T, HD, 4, true>(c, p, err);
    return nw == 8 ? fa_launch<T, HD, 8, false>(c, p, err) : fa_launch<T, HD, 4, false>(c, p, err);
}

template <typename T, int HD>
llt_status fa_decode_k8(llt_cuda_ctx *c, const fa_params &p, int rows, bool k8, llt_error *err) {
    return k8 ? fa_decode_as<T, HD, true>(c, p, rows, err) : fa_decode_as<T, HD, false>(c, p, rows, err);
}

/* An f8 cache's prefill on the warpgroup kernel: keys [0, n) of the run's sequence (K for
 * blockIdx.y 0, V for 1) dequantised out of the e4m3 pages into dk / dv, [keys][nkv][hd] in the
 * dtype (e4m3 x the row's scale rounded to T, as fa_dequant_tile does for the mma.sync kernel),
 * which fa_ws_kernel then reads as a cache in the dtype (fa_params.flat: row = key). One thread
 * per 16 bytes of e4m3. The copy costs 3 bytes a value moved per launch: at depth 32768 on
 * llama3.2-1b heads 100 MB, ~30 us beside ~2.7 ms of attention for a 2048-row chunk. */
template <typename T, int HD>
__global__ void __launch_bounds__(256) fa_f8_widen_kernel(fa_params p, int n, T *dk, T *dv) {
    pdl_wait();
    constexpr int CH = HD / 16;
    const size_t i = (size_t)blockIdx.x * 256 + threadIdx.x, per = (size_t)p.nkv * CH;
    if (i >= (size_t)n * per) return;
    const int key = (int)(i / per), r = (int)(i % per), h = r / CH, c = r % CH;
    const int *tbl = p.bt + (size_t)p.row_bt[p.row0] * p.max_blocks;
    const unsigned char *src = (const unsigned char *)(blockIdx.y ? p.vp : p.kp);
    const size_t at = (size_t)tbl[key / p.ps] * p.page_bytes, row = (size_t)(key % p.ps) * p.nkv + h;
    const uint4 u = *reinterpret_cast<const uint4 *>(src + at + row * HD + c * 16);
    const float sc = *reinterpret_cast<const float *>(src + at + p.sc_off + row * 4);
    const unsigned short *b = reinterpret_cast<const unsigned short *>(&u);
    float f[16];
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const float2 t = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)b[k], __NV_E4M3)));
        f[2 * k] = t.x * sc, f[2 * k + 1] = t.y * sc;
    }
    T *dst = (blockIdx.y ? dv : dk) + ((size_t)key * p.nkv + h) * HD + c * 16;
    *reinterpret_cast<uint4 *>(dst) = pack8<T>(f);
    *reinterpret_cast<uint4 *>(dst + 8) = pack8<T>(f + 8);
}

template <typename T, int HD>
llt_status fa_f8_wide(llt_cuda_ctx *c, const llt_cuda_attn *a, fa_params p, llt_error *err) {
    const int n = p.q_pos0 + p.n_q;
    const size_t th = (size_t)n * p.nkv * (HD / 16);
    LLT_TRY(llt_launch(c, fa_f8_widen_kernel<T, HD>, dim3((unsigned)((th + 255) / 256), 2), dim3(256), 0, err, p, n,
                       (T *)a->f8_k16, (T *)a->f8_v16));
    p.kp = a->f8_k16, p.vp = a->f8_v16, p.flat = 1;
    return fa_wg_pick<T, HD>(c, p, err);
}

} // namespace

extern "C" bool llt_cuda_flash_prefill_covers(const llt_cuda_attn *a) {
    const char *v = getenv("LLT_CUDA_PREFILL");
    if ((a->hd != 32 && a->hd != 64 && a->hd != 128) || (a->dtype != LLT_DTYPE_F16 && a->dtype != LLT_DTYPE_BF16))
        return false;
    if (a->kv_f8) return true; /* only this kernel reads f8 pages */
    return !(v && strcmp(v, "v1") == 0); /* v1: the WMMA kernel (comparisons) */
}

/* The warpgroup kernel: f16 / bf16 caches of head_dim 64 / 128 on an sm_90 device (its sm_90a
 * code; the PTX target has none), unless LLT_CUDA_PREFILL=mma asks for the mma.sync kernel. */
static bool fa_wg_dev(const llt_cuda_ctx *c, int32_t hd) {
    const char *v = getenv("LLT_CUDA_PREFILL");
    return (hd == 64 || hd == 128) && !(v && strcmp(v, "mma") == 0) && c->sm90;
}
static bool fa_wg_ok(const llt_cuda_ctx *c, const llt_cuda_attn *a) { return !a->kv_f8 && fa_wg_dev(c, a->hd); }

/* The copy costs 6 bytes per key and head dimension whatever the run's length; the tile-by-tile
 * kernel is slow on short runs too (few blocks). On the H200 (issue 19 run 13, call 2, f8 cache,
 * 32 / 8 heads) the copy + warpgroup kernel was faster at every run length measured: 16 / 64 /
 * 256 rows (64 / 256 / 1024 query rows per kv head) at depth 16384-131072: 1.64-1.78x / 1.66-1.83x
 * / 1.36-1.50x (hd 64), 64 rows at hd 128 1.79-2.11x. Shorter runs (fewer than 64 query rows per
 * kv head: a few tokens after a cached prefix, MHA models' short runs) keep the tile-by-tile
 * kernel: unmeasured there. LLT_CUDA_PREFILL_F8_ROWS=N sets the threshold. */
static int64_t fa_f8_wide_rows(void) {
    const char *v = getenv("LLT_CUDA_PREFILL_F8_ROWS");
    return v && *v ? atoll(v) : 64;
}
/* f8 caches: the warpgroup kernel over a dequantised copy of the run's keys (fa_f8_widen_kernel)
 * where the device and head_dim take it, unless LLT_CUDA_PREFILL_F8=mma (the mma.sync kernel,
 * dequantising tile by tile; 0.65-0.70x the f16 cache's prefill on the H200, issue 19 run 12) */
extern "C" bool llt_cuda_flash_prefill_f8_wide(const llt_cuda_ctx *c, int32_t hd) {
    const char *v = getenv("LLT_CUDA_PREFILL_F8");
    return !(v && strcmp(v, "mma") == 0) && fa_wg_dev(c, hd);
}

static fa_params fa_params_of(const llt_cuda_attn *a) {
    fa_params p;
    memset(&p, 0, sizeof p);
    p.q = a->q, p.out = a->out, p.kp = a->k_pool, p.vp = a->v_pool, p.bt = a->bt, p.row_bt = a->row_bt;
    p.nh = a->n_heads, p.nkv = a->n_kv, p.G = a->n_heads / a->n_kv, p.ps = a->page_size, p.max_blocks = a->max_blocks;
    const float scale = a->scale > 0 ? a->scale : 1.0f / sqrtf((float)a->hd);
    p.scale_log2 = scale * 1.4426950408889634f;
    p.pos = a->pos, p.work = a->work, p.splits = 1;
    /* LLT_CUDA_PREFILL_WS_SPEC (tests: 0 takes the exact path at every new max), 0 to 8: P <= 2^8
     * keeps P and its sums far from the dtype's range; anything else (NaN included) is 8 */
    const char *sp = getenv("LLT_CUDA_PREFILL_WS_SPEC");
    const float spec = sp && *sp ? (float)atof(sp) : 8.0f;
    p.spec = spec >= 0.0f && spec <= 8.0f ? spec : 8.0f;
    p.page_bytes = llt_kv_f8_page_bytes(a->page_size, a->n_kv, a->hd);
    p.sc_off = llt_kv_f8_scales_offset(a->page_size, a->n_kv, a->hd);
    return p;
}

extern "C" int64_t llt_cuda_attn_prefill_work_floats(int32_t rows, int32_t n_heads, int32_t hd) {
    return (int64_t)rows * n_heads * FA_PF_SPLITS * (hd + 2);
}

extern "C" llt_status llt_cuda_flash_prefill(llt_cuda_ctx *c, const llt_cuda_attn *a, int32_t row0, int32_t n_q,
                                             int32_t q_pos0, llt_error *err) {
    fa_params p = fa_params_of(a);
    p.row0 = row0, p.n_q = n_q, p.q_pos0 = q_pos0;
    p.work = a->pf_work; /* NULL: no splits */
    /* 8 warps (128-row tiles) for hd 128 and for deep hd 64 launches; 4 otherwise (run 2 on
     * the H200: hd 128 53 -> 60 TFLOP/s at depth 512, 176 -> 203 at 16384; hd 64 at depth
     * 512 39 -> 37). LLT_CUDA_PREFILL_WARPS=4|8 forces. */
    const char *w = getenv("LLT_CUDA_PREFILL_WARPS");
    const int nw = w && atoi(w) > 0 ? atoi(w) : a->hd == 128 || (a->hd == 64 && q_pos0 + n_q >= FA_DEEP) ? 8 : 4;
    const bool k8 = a->kv_f8;
    if (k8 && a->f8_k16 && q_pos0 + n_q <= a->f8_keys && (int64_t)n_q * p.G >= fa_f8_wide_rows() && !w &&
        llt_cuda_flash_prefill_f8_wide(c, a->hd))
        return a->dtype == LLT_DTYPE_BF16 ? (a->hd == 64 ? fa_f8_wide<__nv_bfloat16, 64>(c, a, p, err)
                                                          : fa_f8_wide<__nv_bfloat16, 128>(c, a, p, err))
                                          : (a->hd == 64 ? fa_f8_wide<__half, 64>(c, a, p, err)
                                                          : fa_f8_wide<__half, 128>(c, a, p, err));
    if (fa_wg_ok(c, a) && !w) /* Hopper; LLT_CUDA_PREFILL_WARPS (the mma.sync kernel's tiles) forces that kernel */
        return a->dtype == LLT_DTYPE_BF16 ? (a->hd == 64 ? fa_wg_pick<__nv_bfloat16, 64>(c, p, err)
                                                          : fa_wg_pick<__nv_bfloat16, 128>(c, p, err))
                                          : (a->hd == 64 ? fa_wg_pick<__half, 64>(c, p, err)
                                                          : fa_wg_pick<__half, 128>(c, p, err));
    if (a->dtype == LLT_DTYPE_BF16)
        return a->hd == 32   ? fa_pick_warps<__nv_bfloat16, 32>(c, p, nw, k8, err)
               : a->hd == 64 ? fa_pick_warps<__nv_bfloat16, 64>(c, p, nw, k8, err)
                             : fa_pick_warps<__nv_bfloat16, 128>(c, p, nw, k8, err);
    return a->hd == 32   ? fa_pick_warps<__half, 32>(c, p, nw, k8, err)
           : a->hd == 64 ? fa_pick_warps<__half, 64>(c, p, nw, k8, err)
                         : fa_pick_warps<__half, 128>(c, p, nw, k8, err);
}

extern "C" llt_status llt_cuda_flash_decode_v1(llt_cuda_ctx *c, const llt_cuda_attn *a, llt_error *err) {
    fa_params p = fa_params_of(a);
    /* 4 one-warp blocks per SM (measured in run 1): twice the splits of the 4-warp kernel,
     * within rows * splits <= 2 * SMs (the model's workspace; test_cuda_ops sizes for twice
     * llt_cuda_attn_long_splits) */
    const int r = a->rows > 0 ? a->rows : 1, cap = 2 * c->n_sm / r;
    p.splits = 2 * llt_cuda_attn_long_splits(c, a->rows, a->n_kv);
    p.splits = p.splits > cap ? cap : p.splits < 1 ? 1 : p.splits > FA_MAX_SPLITS ? FA_MAX_SPLITS : p.splits;
    const bool k8 = a->kv_f8;
    if (a->dtype == LLT_DTYPE_BF16)
        return a->hd == 32   ? fa_decode_k8<__nv_bfloat16, 32>(c, p, a->rows, k8, err)
               : a->hd == 64 ? fa_decode_k8<__nv_bfloat16, 64>(c, p, a->rows, k8, err)
                             : fa_decode_k8<__nv_bfloat16, 128>(c, p, a->rows, k8, err);
    return a->hd == 32   ? fa_decode_k8<__half, 32>(c, p, a->rows, k8, err)
           : a->hd == 64 ? fa_decode_k8<__half, 64>(c, p, a->rows, k8, err)
                         : fa_decode_k8<__half, 128>(c, p, a->rows, k8, err);
}
