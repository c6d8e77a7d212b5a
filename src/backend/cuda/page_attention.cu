/* page_attention.cu: attention over the paged KV cache (the specification's page_attention).
 *
 * Keys/values live in pages: pool [pages, page_size, n_kv, hd] (dtype); a sequence's block
 * table maps block b (tokens [b*page_size, (b+1)*page_size)) to a page. Query row r at
 * position pos[r] sees keys [0, pos[r]] (causal); query head h reads kv head h / G,
 * G = n_heads / n_kv (GQA; MQA is n_kv = 1).
 *
 * Decode, cluster kernel (head_dim 64 / 128, 1, 2, 4 or 8 query heads per kv head): one
 * thread-block cluster per (kv head, row), cached K/V fetched before the PDL wait, partials
 * merged through distributed shared memory; see its section below.
 *
 * Decode, split kernel (every other shape; LLT_CUDA_ATTN=v1 forces it): flash-decoding,
 * grid (kv head, split, row). Each block takes one contiguous slice
 * of the key range, runs an online softmax over it for the G query heads that share the kv
 * head (each K/V row is read once for the group), and writes its partial (max, sum, output).
 * The last block to finish a (row, kv head) combines the partials (a counter per pair,
 * reset by that block so a replayed CUDA graph finds it zero). The number of splits is fixed
 * per row count, the key range is read from device memory: one graph serves every length.
 * Bytes: K and V of the visible positions, once.
 *
 * Prefill: causal flash attention on the tensor cores (WMMA 16x16x16, float32 accumulate):
 * a block holds 64 query rows of one head and walks 64-key tiles of K and V gathered through
 * the block table; each warp owns 16 query rows for S = Q K^T, the online softmax, and
 * O += P V, so only the shared K/V tiles need block barriers. */
#include <cooperative_groups.h>
#include <mma.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/flash_prefill.cuh"
#include "backend/cuda/ops.cuh"

struct attn_params {
    const float *q;
    void *out;
    const void *kp, *vp;
    const int *bt, *row_bt, *pos;
    int nh, nkv, hd, ps, max_blocks;
    float scale_log2; /* softmax scale * log2(e): scores live in the exp2 domain */
    int splits;
    float *work;
    unsigned int *counters;
    int early_trigger; /* let the next kernel (Wo) launch and preload its weights at our start */
};

enum { DEC_THREADS = 128, DEC_KEYS = 128, DEC_PAIRS = 8, DEC_MIN_KEYS = 32 };

/* ---- decode ------------------------------------------------------------------------------ */

template <typename T>
__device__ __forceinline__ float dot_row(const T *k, const float *q, int hd) {
    float s = 0.0f;
    if (hd % 8 == 0) {
        for (int d = 0; d < hd; d += 8) {
            float kf[8];
            unpack8<T>(*reinterpret_cast<const uint4 *>(k + d), kf);
#pragma unroll
            for (int j = 0; j < 8; j++) s = fmaf(q[d + j], kf[j], s);
        }
    } else {
        for (int d = 0; d < hd; d++) s = fmaf(q[d], to_f32<T>(k[d]), s);
    }
    return s;
}

enum { DEC_KCH = 16 }; /* K rows up to 16 x 8 elements are held in registers */

template <typename T> __device__ __forceinline__ float2 load2(const T *p);
template <> __device__ __forceinline__ float2 load2<__half>(const __half *p) {
    return __half22float2(*reinterpret_cast<const __half2 *>(p));
}
template <> __device__ __forceinline__ float2 load2<__nv_bfloat16>(const __nv_bfloat16 *p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(p));
}

/* Scores of one key for the G heads: the K row is loaded whole (independent 16-byte loads)
 * before any arithmetic, q comes from shared memory (broadcast). out: sc + key, stride
 * DEC_KEYS per head. */
template <typename T>
__device__ __forceinline__ void dec_scores_vec(const T *k, const float *qs, int hd, int G, int g0, int gstep,
                                               float *out) {
    uint4 kv[DEC_KCH];
#pragma unroll
    for (int c = 0; c < DEC_KCH; c++)
        if (c * 8 < hd) kv[c] = *reinterpret_cast<const uint4 *>(k + c * 8);
    for (int g = g0; g < G; g += gstep) {
        const float *q = qs + g * hd;
        float s = 0.0f;
#pragma unroll
        for (int c = 0; c < DEC_KCH; c++)
            if (c * 8 < hd) {
                float kf[8];
                unpack8<T>(kv[c], kf);
                float4 qa = *reinterpret_cast<const float4 *>(q + c * 8);
                float4 qb = *reinterpret_cast<const float4 *>(q + c * 8 + 4);
                s = fmaf(qa.x, kf[0], s), s = fmaf(qa.y, kf[1], s), s = fmaf(qa.z, kf[2], s);
                s = fmaf(qa.w, kf[3], s), s = fmaf(qb.x, kf[4], s), s = fmaf(qb.y, kf[5], s);
                s = fmaf(qb.z, kf[6], s), s = fmaf(qb.w, kf[7], s);
            }
        out[g * DEC_KEYS] = s;
    }
}

/* One sub-chunk's softmax step for head g (one warp): scores -> probabilities in place,
 * running max / sum updated, the rescale factor of the old accumulator in al[g]. */
__device__ __forceinline__ void dec_softmax(float *sc, int n, float *ms, float *ls, float *al, int g) {
    const int lane = threadIdx.x & 31;
    float mx = -INFINITY;
    for (int j = lane; j < n; j += 32) mx = fmaxf(mx, sc[j]);
    mx = warp_max(mx);
    float m_new = fmaxf(ms[g], mx), sum = 0.0f;
    for (int j = lane; j < n; j += 32) {
        float e = exp2f(sc[j] - m_new);
        sc[j] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    if (lane == 0) {
        float a = exp2f(ms[g] - m_new);
        al[g] = a;
        ls[g] = ls[g] * a + sum;
        ms[g] = m_new;
    }
}

/* The last block of a (row, kv head) merges the `active` non-empty splits' partials into out:
 * per head, weights w_s = 2^(m_s - M) / sum_s l_s 2^(m_s - M) (staged in shared memory, wts:
 * [G][DEC_KEYS], the first 64 entries m then weights, the next 64 l), then every output pair
 * sums w_s o_s with independent loads. */
template <typename T>
__device__ void dec_combine(const attn_params &p, int r, int kvh, int G, int active, float *wts) {
    const int hd = p.hd, S = p.splits, pairs = G * hd / 2;
    const float *op = p.work;
    const float *ml = p.work + (size_t)gridDim.z * p.nh * S * hd;
    for (int i = threadIdx.x; i < G * active; i += blockDim.x) {
        int g = i / active, sp = i - g * active;
        size_t at = (((size_t)r * p.nh + kvh * G + g) * S + sp) * 2;
        wts[g * DEC_KEYS + sp] = __ldcg(&ml[at]);
        wts[g * DEC_KEYS + 64 + sp] = __ldcg(&ml[at + 1]);
    }
    __syncthreads();
    for (int g = threadIdx.x; g < G; g += blockDim.x) {
        float *m = wts + g * DEC_KEYS, *l = m + 64, M = -INFINITY, L = 0.0f;
        for (int sp = 0; sp < active; sp++) M = l[sp] > 0.0f ? fmaxf(M, m[sp]) : M;
        for (int sp = 0; sp < active; sp++) L += l[sp] > 0.0f ? l[sp] * exp2f(m[sp] - M) : 0.0f;
        for (int sp = 0; sp < active; sp++) m[sp] = l[sp] > 0.0f ? exp2f(m[sp] - M) / L : 0.0f;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < pairs; i += blockDim.x) {
        int g = i / (hd / 2), d = 2 * (i % (hd / 2)), h = kvh * G + g;
        const float *w = wts + g * DEC_KEYS;
        const float *o = op + ((size_t)r * p.nh + h) * S * hd + d;
        float o0 = 0.0f, o1 = 0.0f;
#pragma unroll 8
        for (int sp = 0; sp < active; sp++) {
            float2 v = __ldcg(reinterpret_cast<const float2 *>(o + (size_t)sp * hd));
            o0 = fmaf(w[sp], v.x, o0), o1 = fmaf(w[sp], v.y, o1);
        }
        T *dst = (T *)p.out + ((size_t)r * p.nh + h) * hd + d;
        dst[0] = from_f32<T>(o0), dst[1] = from_f32<T>(o1);
    }
}

/* Head groups for the scores: with G heads per kv head, HG groups of threads each take every
 * HG-th head, so a pass covers DEC_THREADS / HG keys (G = 1: one key per thread). */
__device__ __forceinline__ int dec_head_groups(int G) { return G >= 4 ? 4 : G >= 2 ? 2 : 1; }

/* The P.V pass is "fast" when each thread can own one pair of dims for all G heads:
 * DEC_THREADS / (hd / 2) key groups then split the keys (each V element loaded once). */
__host__ __device__ __forceinline__ bool dec_fast_pv(int hd, int G) {
    return hd % 8 == 0 && DEC_THREADS % (hd / 2) == 0 && G <= 8;
}

/* Floats of the reduction area: fast path [key groups][G * hd], else [G * hd]. */
__host__ __device__ __forceinline__ int dec_red_floats(int hd, int G) {
    return dec_fast_pv(hd, G) ? (DEC_THREADS / (hd / 2)) * G * hd : G * hd;
}

template <typename T>
__global__ void __launch_bounds__(DEC_THREADS) attn_decode_kernel(const attn_params p) {
    extern __shared__ __align__(16) float dsm[];
    const int kvh = blockIdx.x, sp = blockIdx.y, r = blockIdx.z, G = p.nh / p.nkv, hd = p.hd;
    float *qs = dsm;                         /* [G][hd] */
    float *sc = qs + G * hd;                 /* [G][DEC_KEYS] */
    float *ms = sc + G * DEC_KEYS, *ls = ms + G, *al = ls + G; /* [G] each */
    int *rowoff = (int *)(al + G);           /* [DEC_KEYS] element offset of each key's row */
    float *ob = (float *)(rowoff + DEC_KEYS); /* dec_red_floats: output accumulators [G][hd] */
    __shared__ int last;
    pdl_wait();
    if (p.early_trigger) pdl_trigger();
    /* splits are fixed per row count (graphs); a short context uses fewer of them, each at
     * least DEC_MIN_KEYS long, and the rest exit after recording an empty partial */
    const int L = p.pos[r] + 1, per = max((L + p.splits - 1) / p.splits, (int)DEC_MIN_KEYS);
    const int k0 = sp * per, k1 = min(L, k0 + per);
    const int *tbl = p.bt + (size_t)p.row_bt[r] * p.max_blocks;
    const T *kp = (const T *)p.kp, *vp = (const T *)p.vp;
    const float *qr = p.q + ((size_t)r * p.nh + kvh * G) * hd;
    for (int i = threadIdx.x; i < G * hd; i += blockDim.x) qs[i] = qr[i] * p.scale_log2;
    for (int g = threadIdx.x; g < G; g += blockDim.x) ms[g] = -INFINITY, ls[g] = 0.0f;
    const bool fast = dec_fast_pv(hd, G);
    const int HG = dec_head_groups(G), kpass = DEC_THREADS / HG, hg = threadIdx.x / kpass;
    const int P = hd / 2, kgroups = fast ? DEC_THREADS / P : 1, kg = threadIdx.x / P, d0 = 2 * (threadIdx.x % P);
    float acc[DEC_PAIRS][2], a2[8][2];
#pragma unroll
    for (int j = 0; j < DEC_PAIRS; j++) acc[j][0] = acc[j][1] = 0.0f;
#pragma unroll
    for (int g = 0; g < 8; g++) a2[g][0] = a2[g][1] = 0.0f;
    const int pairs = G * hd / 2;
    __syncthreads();
    for (int kb = k0; kb < k1; kb += DEC_KEYS) {
        const int n = min(DEC_KEYS, k1 - kb);
        for (int kk = threadIdx.x % kpass; kk < n; kk += kpass) {
            int key = kb + kk, page = tbl[key / p.ps];
            int off = ((page * p.ps + key % p.ps) * p.nkv + kvh) * hd;
            if (hg == 0) {
                rowoff[kk] = off;
                /* this key's V row is read after the softmax: start it towards L2 now */
                for (int b = 0; b < hd * (int)sizeof(T); b += 128) prefetch_l2((const char *)(vp + off) + b);
            }
            if (hd % 8 == 0 && hd <= 8 * DEC_KCH) dec_scores_vec<T>(kp + off, qs, hd, G, hg, HG, sc + kk);
            else
                for (int g = hg; g < G; g += HG) sc[g * DEC_KEYS + kk] = dot_row<T>(kp + off, qs + g * hd, hd);
        }
        __syncthreads();
        for (int g = threadIdx.x >> 5; g < G; g += blockDim.x >> 5)
            dec_softmax(sc + g * DEC_KEYS, n, ms, ls, al, g);
        __syncthreads();
        if (fast) { /* a thread: dims (d0, d0 + 1) of every head, keys kg, kg + kgroups, ... */
#pragma unroll
            for (int g = 0; g < 8; g++)
                if (g < G) a2[g][0] *= al[g], a2[g][1] *= al[g];
            for (int t0 = kg; t0 < n; t0 += 8 * kgroups) {
                float2 vv[8];
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    int t = t0 + u * kgroups;
                    vv[u] = t < n ? load2<T>(vp + rowoff[t] + d0) : make_float2(0, 0);
                }
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    int t = t0 + u * kgroups;
                    if (t >= n) break;
#pragma unroll
                    for (int g = 0; g < 8; g++)
                        if (g < G) {
                            float w = sc[g * DEC_KEYS + t];
                            a2[g][0] = fmaf(w, vv[u].x, a2[g][0]), a2[g][1] = fmaf(w, vv[u].y, a2[g][1]);
                        }
                }
            }
        } else {
#pragma unroll
            for (int j = 0; j < DEC_PAIRS; j++) {
                int i = threadIdx.x + j * DEC_THREADS;
                if (i >= pairs) break;
                int g = i / (hd / 2), d = 2 * (i % (hd / 2));
                float a0 = acc[j][0] * al[g], a1 = acc[j][1] * al[g];
                const float *pr = sc + g * DEC_KEYS;
                for (int t0 = 0; t0 < n; t0 += 8) { /* 8 independent loads, then 8 FMAs */
                    float2 vv[8];
#pragma unroll
                    for (int u = 0; u < 8; u++) vv[u] = t0 + u < n ? load2<T>(vp + rowoff[t0 + u] + d) : make_float2(0, 0);
#pragma unroll
                    for (int u = 0; u < 8; u++) {
                        float w = t0 + u < n ? pr[t0 + u] : 0.0f;
                        a0 = fmaf(w, vv[u].x, a0), a1 = fmaf(w, vv[u].y, a1);
                    }
                }
                acc[j][0] = a0, acc[j][1] = a1;
            }
        }
        __syncthreads();
    }
    if (!p.early_trigger) pdl_trigger(); /* the next kernel (Wo) may launch and fetch its weights */
    /* accumulators -> ob [G][hd] (fast: summed over the key groups) */
    if (fast) {
#pragma unroll
        for (int g = 0; g < 8; g++)
            if (g < G) ob[(size_t)kg * G * hd + g * hd + d0] = a2[g][0], ob[(size_t)kg * G * hd + g * hd + d0 + 1] = a2[g][1];
        __syncthreads();
        for (int i = threadIdx.x; i < G * hd; i += blockDim.x) {
            float v = 0.0f;
            for (int q = 0; q < kgroups; q++) v += ob[(size_t)q * G * hd + i];
            ob[i] = v;
        }
    } else {
#pragma unroll
        for (int j = 0; j < DEC_PAIRS; j++) {
            int i = threadIdx.x + j * DEC_THREADS;
            if (i >= pairs) break;
            ob[2 * i] = acc[j][0], ob[2 * i + 1] = acc[j][1]; /* pair i = (g, d/2): element 2i */
        }
    }
    __syncthreads();
    if (p.splits == 1) {
        for (int i = threadIdx.x; i < G * hd; i += blockDim.x) {
            int g = i / hd;
            ((T *)p.out)[((size_t)r * p.nh + kvh * G) * hd + i] = from_f32<T>(ob[i] / ls[g]);
        }
        return;
    }
    /* partials: o [rows][nh][S][hd], then (m, l) [rows][nh][S][2] */
    float *op = p.work, *ml = p.work + (size_t)gridDim.z * p.nh * p.splits * hd;
    for (int i = threadIdx.x; i < G * hd; i += blockDim.x) {
        int g = i / hd, d = i - g * hd;
        op[(((size_t)r * p.nh + kvh * G + g) * p.splits + sp) * hd + d] = ob[i];
    }
    for (int g = threadIdx.x; g < G; g += blockDim.x) {
        size_t at = (((size_t)r * p.nh + kvh * G + g) * p.splits + sp) * 2;
        ml[at] = ms[g], ml[at + 1] = ls[g];
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned int *cnt = p.counters + (size_t)r * p.nkv + kvh;
        last = atomicAdd(cnt, 1u) == (unsigned)p.splits - 1;
        if (last) *cnt = 0; /* every split has arrived: ready for the next step */
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    dec_combine<T>(p, r, kvh, G, min(p.splits, (L + per - 1) / per), sc);
}

/* ---- decode, cluster version (head_dim 64 / 128, up to 8 query heads per kv head) --------------
 *
 * Latency first: at batch 1 a layer's K/V is a few hundred KB, so the time is the chain of
 * dependent memory round trips, not bytes. One thread-block cluster per (kv head, row), CS
 * blocks (up to 16), block b takes the contiguous keys [b * per, (b + 1) * per), per =
 * ceil(L / CS). A thread owns 16 bytes (8 dims) of a key row: PPR threads per row, KPP keys
 * per pass over the block, D2_PASSES passes per chunk of CK keys; its K and V pieces are
 * loaded together into registers. Scores are reduced across the PPR threads of a row by
 * shuffles; every thread then runs its own online softmax over its keys for the G heads
 * (m, l and 8 output dims per head in registers: no block barrier per chunk). At the end the
 * key lanes are merged by shuffles (inside a warp), through shared memory (across warps) and
 * through distributed shared memory (across the cluster's blocks): no global partials, no
 * atomics, no second kernel.
 *
 * Before the PDL wait (so while the QKV kernel still runs) a block reads what no kernel of
 * this step writes: pos, row_bt and the block table (step inputs, copied before the step's
 * first kernel) and the K/V rows of positions below the first position this step writes for
 * the row's sequence (the minimum pos over rows with the same block table; those rows were
 * written by earlier steps). Every kernel of a step launches after the step's first kernel,
 * which launches after the input copy and so after all earlier work: these reads are safe
 * however early the kernel starts. After the wait: q and the K/V rows of this step's
 * positions (one L2 round trip), arithmetic, the cluster merge, the store. */

enum { D2_THREADS = 128, D2_MAX_CS = 16 };
/* Rows of fewer keys than this take one cluster block an SM, others two (d2_cluster_size):
 * on the H100, llama2-7b q4_k at depth 16-144 decodes 2 % slower on two, at 512 3 % and at
 * 2048 15 % faster (bench/RESULTS.md, issue 20) */
enum { D2_DEEP = 256 };

/* Passes per chunk: 4 (2 with 8 heads per kv head, whose 64 accumulators per thread leave
 * fewer registers for loads in flight). */
template <int HD, int G>
struct d2_shape {
    static const int PPR = HD / 8;              /* threads per key row (16 bytes each) */
    static const int KPP = D2_THREADS / PPR;    /* keys per pass */
    static const int NP = G >= 8 ? 2 : 4;       /* passes per chunk */
    static const int CK = NP * KPP;             /* keys per chunk */
    static const int NW = D2_THREADS / 32;
};

/* K/V pieces of the thread's keys kb + i * KPP + kq, i < NP, for keys in [lo, hi) (others
 * keep their registers). Element offsets through the block table. */
template <typename T, int HD, int NP>
__device__ __forceinline__ void d2_load(const attn_params &p, const int *tbl, int kvh, int kb, int lo, int hi,
                                        int kq, int c, uint4 (&K)[NP], uint4 (&V)[NP]) {
    const int KPP = D2_THREADS / (HD / 8);
#pragma unroll
    for (int i = 0; i < NP; i++) {
        int key = kb + i * KPP + kq;
        if (key >= lo && key < hi) {
            int page = tbl[key / p.ps];
            size_t off = ((size_t)(page * p.ps + key % p.ps) * p.nkv + kvh) * HD + c * 8;
            K[i] = __ldcg(reinterpret_cast<const uint4 *>((const T *)p.kp + off));
            V[i] = __ldcg(reinterpret_cast<const uint4 *>((const T *)p.vp + off));
        }
    }
}

/* One chunk: scores of the thread's keys for the G heads (full dot products after the
 * shuffle reduction over the row's PPR threads; q from shared memory, scaled into the exp2
 * domain), then the online-softmax update of the thread's running (m, l, o) with its valid
 * keys (key < k1). */
template <typename T, int HD, int G>
__device__ __forceinline__ void d2_chunk(const uint4 (&K)[d2_shape<HD, G>::NP], const uint4 (&V)[d2_shape<HD, G>::NP],
                                         int kb, int k1, int kq, const float *qs, float (&m)[G], float (&l)[G],
                                         float (&o)[G][8]) {
    typedef d2_shape<HD, G> S;
    float s[S::NP][G];
#pragma unroll
    for (int i = 0; i < S::NP; i++) {
        float kf[8];
        unpack8<T>(K[i], kf);
#pragma unroll
        for (int g = 0; g < G; g++) {
            const float4 qa = *reinterpret_cast<const float4 *>(qs + g * HD);
            const float4 qb = *reinterpret_cast<const float4 *>(qs + g * HD + 4);
            float a = qa.x * kf[0];
            a = fmaf(qa.y, kf[1], a), a = fmaf(qa.z, kf[2], a), a = fmaf(qa.w, kf[3], a);
            a = fmaf(qb.x, kf[4], a), a = fmaf(qb.y, kf[5], a), a = fmaf(qb.z, kf[6], a), a = fmaf(qb.w, kf[7], a);
#pragma unroll
            for (int off = S::PPR / 2; off > 0; off >>= 1) a += __shfl_xor_sync(0xffffffffu, a, off);
            s[i][g] = a;
        }
    }
    bool val[S::NP];
    bool any = false;
#pragma unroll
    for (int i = 0; i < S::NP; i++) val[i] = kb + i * S::KPP + kq < k1, any |= val[i];
    if (!any) return;
#pragma unroll
    for (int g = 0; g < G; g++) {
        float mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < S::NP; i++)
            if (val[i]) mx = fmaxf(mx, s[i][g]);
        const float mn = fmaxf(m[g], mx), a = exp2f(m[g] - mn); /* m = -inf: a = 0 */
        l[g] *= a;
#pragma unroll
        for (int j = 0; j < 8; j++) o[g][j] *= a;
        m[g] = mn;
#pragma unroll
        for (int i = 0; i < S::NP; i++) s[i][g] = val[i] ? exp2f(s[i][g] - mn) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < S::NP; i++) {
        if (!val[i]) continue;
        float vf[8];
        unpack8<T>(V[i], vf);
#pragma unroll
        for (int g = 0; g < G; g++) {
            l[g] += s[i][g];
#pragma unroll
            for (int j = 0; j < 8; j++) o[g][j] = fmaf(s[i][g], vf[j], o[g][j]);
        }
    }
}

/* Merges (m, l, o) of the thread with that of the lane `off` away (online-softmax merge;
 * an empty side has m = -inf and contributes nothing). */
template <int G>
__device__ __forceinline__ void d2_merge_lanes(float (&m)[G], float (&l)[G], float (&o)[G][8], int off) {
#pragma unroll
    for (int g = 0; g < G; g++) {
        const float mo = __shfl_xor_sync(0xffffffffu, m[g], off), lo = __shfl_xor_sync(0xffffffffu, l[g], off);
        const float mn = fmaxf(m[g], mo);
        const float a = m[g] == -INFINITY ? 0.0f : exp2f(m[g] - mn), b = mo == -INFINITY ? 0.0f : exp2f(mo - mn);
        l[g] = l[g] * a + lo * b;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const float oo = __shfl_xor_sync(0xffffffffu, o[g][j], off);
            o[g][j] = o[g][j] * a + oo * b;
        }
        m[g] = mn;
    }
}

/* The block's shared memory: q, the per-warp partials, then the block's partial that the
 * cluster's blocks read (m = -inf, l = 0 when the block saw no key). */
template <int HD, int G>
struct d2_smem {
    __align__(16) float q[G * HD];
    float wm[d2_shape<HD, G>::NW][G], wl[d2_shape<HD, G>::NW][G], ww[d2_shape<HD, G>::NW][G];
    __align__(16) float wo[d2_shape<HD, G>::NW][G * HD];
    float bm[G], bl[G];
    __align__(16) float bo[G * HD];
    int first;
};

/* Warp partials -> the block partial (bm, bl, bo), relative to the block maximum. */
template <int HD, int G>
__device__ __forceinline__ void d2_block_merge(d2_smem<HD, G> &sm) {
    typedef d2_shape<HD, G> S;
    if (threadIdx.x < G) {
        const int g = threadIdx.x;
        float M = -INFINITY, L = 0.0f;
        for (int w = 0; w < S::NW; w++) M = fmaxf(M, sm.wm[w][g]);
        for (int w = 0; w < S::NW; w++) {
            float wt = sm.wm[w][g] == -INFINITY ? 0.0f : exp2f(sm.wm[w][g] - M);
            sm.ww[w][g] = wt;
            L += sm.wl[w][g] * wt;
        }
        sm.bm[g] = M, sm.bl[g] = L;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < G * HD; e += D2_THREADS) {
        const int g = e / HD;
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < S::NW; w++) v = fmaf(sm.wo[w][e], sm.ww[w][g], v);
        sm.bo[e] = v;
    }
}

/* After the cluster barrier: block `rank` of cs writes its share of the G * HD outputs,
 * 4 at a time, merging the cs block partials read through distributed shared memory. */
template <typename T, int HD, int G>
__device__ __forceinline__ void d2_cluster_merge(const attn_params &p, d2_smem<HD, G> &sm, int cs, int rank,
                                                 int r, int kvh) {
    namespace cg = cooperative_groups;
    cg::cluster_group cl = cg::this_cluster();
    const int n4 = G * HD / 4, e0 = rank * n4 / cs, e1 = (rank + 1) * n4 / cs;
    for (int e = e0 + (int)threadIdx.x; e < e1; e += D2_THREADS) {
        const int g = e * 4 / HD;
        float mb[D2_MAX_CS], M = -INFINITY, L = 0.0f;
        float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int b = 0; b < D2_MAX_CS; b++)
            if (b < cs) mb[b] = *cl.map_shared_rank(&sm.bm[g], b), M = fmaxf(M, mb[b]);
#pragma unroll
        for (int b = 0; b < D2_MAX_CS; b++)
            if (b < cs) {
                const float w = mb[b] == -INFINITY ? 0.0f : exp2f(mb[b] - M);
                const float4 v = *reinterpret_cast<const float4 *>(cl.map_shared_rank(&sm.bo[e * 4], b));
                L = fmaf(*cl.map_shared_rank(&sm.bl[g], b), w, L);
                acc.x = fmaf(v.x, w, acc.x), acc.y = fmaf(v.y, w, acc.y);
                acc.z = fmaf(v.z, w, acc.z), acc.w = fmaf(v.w, w, acc.w);
            }
        const float inv = 1.0f / L; /* L >= 1: the row's maximum key has weight 1 */
        T h[4];
        h[0] = from_f32<T>(acc.x * inv), h[1] = from_f32<T>(acc.y * inv);
        h[2] = from_f32<T>(acc.z * inv), h[3] = from_f32<T>(acc.w * inv);
        T *dst = (T *)p.out + ((size_t)r * p.nh + kvh * G) * HD + e * 4;
        *reinterpret_cast<uint2 *>(dst) = *reinterpret_cast<const uint2 *>(h);
    }
}

/* First position this step writes for row r's sequence: the minimum pos over the rows that
 * share its block table (a block-wide minimum over the step's rows). */
template <int HD, int G>
__device__ __forceinline__ int d2_first_new(const attn_params &p, int r, int rb, d2_smem<HD, G> &sm) {
    int first = p.pos[r];
    for (int i = threadIdx.x; i < (int)gridDim.z; i += D2_THREADS)
        if (p.row_bt[i] == rb) first = min(first, p.pos[i]);
    first = __reduce_min_sync(0xffffffffu, first);
    if (threadIdx.x == 0) sm.first = first;
    __syncthreads();
    if ((threadIdx.x & 31) == 0) atomicMin(&sm.first, first);
    __syncthreads();
    return sm.first;
}

template <typename T, int HD, int G>
__global__ void __launch_bounds__(D2_THREADS) attn_decode2_kernel(const attn_params p) {
    typedef d2_shape<HD, G> S;
    __shared__ d2_smem<HD, G> sm;
    namespace cg = cooperative_groups;
    cg::cluster_group cl = cg::this_cluster();
    const int cs = (int)cl.num_blocks(), rank = (int)cl.block_rank();
    const int kvh = blockIdx.y, r = blockIdx.z, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int c = threadIdx.x % S::PPR, kq = threadIdx.x / S::PPR;
    /* before the wait: step inputs and the K/V rows earlier steps wrote (first chunk into
     * registers). The rest of the block's keys are not asked of L2 here: those prefetches,
     * a table lookup each, delayed the chain (bench/RESULTS.md issue 20: without them
     * llama2-7b q4_k decodes 7 % faster at depth 2048 on the H100, 1 % at 512) */
    const int pos = p.pos[r], rb = p.row_bt[r], L = pos + 1;
    const int *tbl = p.bt + (size_t)rb * p.max_blocks;
    const int first = d2_first_new<HD, G>(p, r, rb, sm);
    const int per = (L + cs - 1) / cs, k0 = min(L, rank * per), k1 = min(L, k0 + per);
    uint4 K[S::NP], V[S::NP];
#pragma unroll
    for (int i = 0; i < S::NP; i++) K[i] = V[i] = make_uint4(0, 0, 0, 0);
    d2_load<T, HD, S::NP>(p, tbl, kvh, k0, k0, min(k1, first), kq, c, K, V);
    pdl_wait();
    if (p.early_trigger) pdl_trigger();
    /* q scaled into the exp2 domain, and this step's K/V rows of the first chunk */
    const float *qr = p.q + ((size_t)r * p.nh + kvh * G) * HD;
    for (int i = threadIdx.x; i < G * HD / 4; i += D2_THREADS) {
        float4 v = __ldcg(reinterpret_cast<const float4 *>(qr) + i);
        v.x *= p.scale_log2, v.y *= p.scale_log2, v.z *= p.scale_log2, v.w *= p.scale_log2;
        reinterpret_cast<float4 *>(sm.q)[i] = v;
    }
    d2_load<T, HD, S::NP>(p, tbl, kvh, k0, max(k0, first), k1, kq, c, K, V);
    float m[G], l[G], o[G][8];
#pragma unroll
    for (int g = 0; g < G; g++) {
        m[g] = -INFINITY, l[g] = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) o[g][j] = 0.0f;
    }
    __syncthreads();
    for (int kb = k0; kb < k1; kb += S::CK) {
        uint4 K2[S::NP], V2[S::NP]; /* the next chunk is in flight during this one */
#pragma unroll
        for (int i = 0; i < S::NP; i++) K2[i] = V2[i] = make_uint4(0, 0, 0, 0);
        if (kb + S::CK < k1) d2_load<T, HD, S::NP>(p, tbl, kvh, kb + S::CK, kb + S::CK, k1, kq, c, K2, V2);
        d2_chunk<T, HD, G>(K, V, kb, k1, kq, sm.q + c * 8, m, l, o);
#pragma unroll
        for (int i = 0; i < S::NP; i++) K[i] = K2[i], V[i] = V2[i];
    }
    if (!p.early_trigger) pdl_trigger();
    /* key lanes of a warp -> one partial per warp */
#pragma unroll
    for (int off = S::PPR; off < 32; off <<= 1) d2_merge_lanes<G>(m, l, o, off);
    if (lane < S::PPR) {
#pragma unroll
        for (int g = 0; g < G; g++) {
            float4 *dst = reinterpret_cast<float4 *>(&sm.wo[warp][g * HD + c * 8]);
            dst[0] = make_float4(o[g][0], o[g][1], o[g][2], o[g][3]);
            dst[1] = make_float4(o[g][4], o[g][5], o[g][6], o[g][7]);
        }
        if (lane == 0)
#pragma unroll
            for (int g = 0; g < G; g++) sm.wm[warp][g] = m[g], sm.wl[warp][g] = l[g];
    }
    __syncthreads();
    d2_block_merge<HD, G>(sm);
    cl.sync(); /* every block's partial is complete and visible to the cluster */
    d2_cluster_merge<T, HD, G>(p, sm, cs, rank, r, kvh);
    cl.sync(); /* no block leaves while others still read its shared memory */
}

/* ---- prefill (tensor cores) ------------------------------------------------------------------ */

namespace wm = nvcuda::wmma;

enum { PF_BM = 64, PF_BN = 64, PF_THREADS = 128 };

template <int HD>
struct pf_layout {
    static const int LDT = HD + 8;       /* Q, K, V tiles (dtype) */
    static const int LDS = PF_BN + 4;    /* S (float) */
    static const int LDP = PF_BN + 8;    /* P (dtype) */
    static const int LDO = HD + 4;       /* O (float) */
    static const size_t Q = 0;
    static const size_t K = Q + (size_t)PF_BM * LDT * 2;
    static const size_t V = K + (size_t)PF_BN * LDT * 2;
    static const size_t S = V + (size_t)PF_BN * LDT * 2;
    static const size_t P = S + (size_t)PF_BM * LDS * 4;
    static const size_t O = P + (size_t)PF_BM * LDP * 2;
    static const size_t ML = O + (size_t)PF_BM * LDO * 4;
    static const size_t BYTES = ML + (size_t)PF_BM * 3 * 4;
};

/* Gathers 64 keys' K and V rows of kv head kvh through the block table (zeros past kv_end). */
template <typename T, int HD>
__device__ __forceinline__ void pf_load_kv(const attn_params &p, const int *tbl, int kvh, int kb,
                                           int kv_end, T *Ks, T *Vs) {
    typedef pf_layout<HD> LY;
    const int chunks = HD / 8;
    for (int idx = threadIdx.x; idx < PF_BN * chunks; idx += blockDim.x) {
        int j = idx / chunks, c = idx % chunks, key = kb + j;
        uint4 kv = make_uint4(0, 0, 0, 0), vv = kv;
        if (key < kv_end) {
            int page = tbl[key / p.ps];
            size_t off = ((size_t)(page * p.ps + key % p.ps) * p.nkv + kvh) * HD + c * 8;
            kv = *reinterpret_cast<const uint4 *>((const T *)p.kp + off);
            vv = *reinterpret_cast<const uint4 *>((const T *)p.vp + off);
        }
        *reinterpret_cast<uint4 *>(Ks + j * LY::LDT + c * 8) = kv;
        *reinterpret_cast<uint4 *>(Vs + j * LY::LDT + c * 8) = vv;
    }
}

/* Online softmax over one 64-key tile for the warp's 16 rows (2 lanes per row). */
template <typename T, int HD>
__device__ __forceinline__ void pf_softmax(float *S, T *P, float *m, float *l, float *al, int row_base,
                                           int kb, int q_pos0, int qt, int n_q) {
    typedef pf_layout<HD> LY;
    const int lane = threadIdx.x & 31, i = row_base + lane / 2, c0 = (lane & 1) * 32;
    int qi = qt * PF_BM + i;
    int pos = q_pos0 + (qi < n_q ? qi : n_q - 1);
    float mx = -INFINITY;
    for (int j = 0; j < 32; j++)
        if (kb + c0 + j <= pos) mx = fmaxf(mx, S[i * LY::LDS + c0 + j]);
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    float m_new = fmaxf(m[i], mx), sum = 0.0f;
    for (int j = 0; j < 32; j++) {
        float e = kb + c0 + j <= pos ? exp2f(S[i * LY::LDS + c0 + j] - m_new) : 0.0f;
        T pe = from_f32<T>(e);
        P[i * LY::LDP + c0 + j] = pe;
        sum += to_f32<T>(pe); /* the sum matches what P V will use */
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    if ((lane & 1) == 0) {
        float a = exp2f(m[i] - m_new);
        al[i] = a;
        l[i] = l[i] * a + sum;
        m[i] = m_new;
    }
}

template <typename T, int HD>
__global__ void __launch_bounds__(PF_THREADS) attn_prefill_kernel(const attn_params p, int row0,
                                                                   int n_q, int q_pos0) {
    typedef pf_layout<HD> LY;
    extern __shared__ __align__(128) unsigned char psm[];
    T *Qs = (T *)(psm + LY::Q), *Ks = (T *)(psm + LY::K), *Vs = (T *)(psm + LY::V), *P = (T *)(psm + LY::P);
    float *S = (float *)(psm + LY::S), *O = (float *)(psm + LY::O);
    float *m = (float *)(psm + LY::ML), *l = m + PF_BM, *al = l + PF_BM;
    const int qt = blockIdx.x, h = blockIdx.y, G = p.nh / p.nkv, kvh = h / G;
    const int warp = threadIdx.x >> 5, rb = warp * 16;
    pdl_wait();
    const int *tbl = p.bt + (size_t)p.row_bt[row0] * p.max_blocks;
    for (int idx = threadIdx.x; idx < PF_BM * HD; idx += blockDim.x) {
        int i = idx / HD, d = idx % HD, qi = qt * PF_BM + i;
        float v = qi < n_q ? p.q[((size_t)(row0 + qi) * p.nh + h) * HD + d] * p.scale_log2 : 0.0f;
        Qs[i * LY::LDT + d] = from_f32<T>(v);
        O[i * LY::LDO + d] = 0.0f;
    }
    for (int i = threadIdx.x; i < PF_BM; i += blockDim.x) m[i] = -INFINITY, l[i] = 0.0f;
    const int kv_end = q_pos0 + min(n_q, (qt + 1) * PF_BM);
    for (int kb = 0; kb < kv_end; kb += PF_BN) {
        __syncthreads(); /* previous tile's K/V fully consumed; Q/O/m/l initialised */
        pf_load_kv<T, HD>(p, tbl, kvh, kb, kv_end, Ks, Vs);
        __syncthreads();
        /* S[rb..rb+16, 0..64) = Q K^T */
#pragma unroll
        for (int nt = 0; nt < PF_BN / 16; nt++) {
            wm::fragment<wm::accumulator, 16, 16, 16, float> sf;
            wm::fill_fragment(sf, 0.0f);
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                wm::fragment<wm::matrix_a, 16, 16, 16, T, wm::row_major> qa;
                wm::fragment<wm::matrix_b, 16, 16, 16, T, wm::col_major> kb_;
                wm::load_matrix_sync(qa, Qs + rb * LY::LDT + kk * 16, LY::LDT);
                wm::load_matrix_sync(kb_, Ks + nt * 16 * LY::LDT + kk * 16, LY::LDT);
                wm::mma_sync(sf, qa, kb_, sf);
            }
            wm::store_matrix_sync(S + rb * LY::LDS + nt * 16, sf, LY::LDS, wm::mem_row_major);
        }
        __syncwarp();
        pf_softmax<T, HD>(S, P, m, l, al, rb, kb, q_pos0, qt, n_q);
        __syncwarp();
        for (int idx = threadIdx.x & 31; idx < 16 * HD; idx += 32) {
            int i = rb + idx / HD, d = idx % HD;
            O[i * LY::LDO + d] *= al[i];
        }
        __syncwarp();
        /* O[rb..rb+16, :] += P V */
#pragma unroll
        for (int dt = 0; dt < HD / 16; dt++) {
            wm::fragment<wm::accumulator, 16, 16, 16, float> of;
            wm::load_matrix_sync(of, O + rb * LY::LDO + dt * 16, LY::LDO, wm::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < PF_BN / 16; kk++) {
                wm::fragment<wm::matrix_a, 16, 16, 16, T, wm::row_major> pa;
                wm::fragment<wm::matrix_b, 16, 16, 16, T, wm::row_major> vb;
                wm::load_matrix_sync(pa, P + rb * LY::LDP + kk * 16, LY::LDP);
                wm::load_matrix_sync(vb, Vs + kk * 16 * LY::LDT + dt * 16, LY::LDT);
                wm::mma_sync(of, pa, vb, of);
            }
            wm::store_matrix_sync(O + rb * LY::LDO + dt * 16, of, LY::LDO, wm::mem_row_major);
        }
    }
    __syncwarp();
    for (int idx = threadIdx.x & 31; idx < 16 * HD; idx += 32) {
        int i = rb + idx / HD, d = idx % HD, qi = qt * PF_BM + i;
        if (qi < n_q)
            ((T *)p.out)[((size_t)(row0 + qi) * p.nh + h) * HD + d] = from_f32<T>(O[i * LY::LDO + d] / l[i]);
    }
}

/* ---- host entry points ------------------------------------------------------------------------- */

extern "C" int32_t llt_cuda_attn_splits(const llt_cuda_ctx *c, int32_t rows, int32_t n_kv) {
    int32_t s = 2 * c->n_sm / (n_kv * rows > 0 ? n_kv * rows : 1);
    return s < 1 ? 1 : s > 64 ? 64 : s;
}

extern "C" int64_t llt_cuda_attn_work_floats(int32_t rows, int32_t splits, int32_t n_heads, int32_t hd) {
    return (int64_t)rows * n_heads * splits * (hd + 2);
}

static attn_params params_of(const llt_cuda_attn *a, int splits) {
    attn_params p;
    p.q = a->q, p.out = a->out, p.kp = a->k_pool, p.vp = a->v_pool;
    p.bt = a->bt, p.row_bt = a->row_bt, p.pos = a->pos;
    p.nh = a->n_heads, p.nkv = a->n_kv, p.hd = a->hd, p.ps = a->page_size, p.max_blocks = a->max_blocks;
    float scale = a->scale > 0 ? a->scale : 1.0f / sqrtf((float)a->hd);
    p.scale_log2 = scale * 1.4426950408889634f;
    p.splits = splits, p.work = a->work, p.counters = a->counters;
    p.early_trigger = 0;
    return p;
}

static llt_status check_attn(const llt_cuda_attn *a, llt_error *err) {
    LLT_CHECK(llt_cuda_dtype_ok(a->dtype), err, LLT_ERR_UNSUPPORTED, "cuda attention: dtype %s",
              llt_dtype_name(a->dtype));
    LLT_CHECK(a->rows > 0 && a->n_kv > 0 && a->n_heads % a->n_kv == 0 && a->page_size > 0 &&
                  a->max_blocks > 0,
              err, LLT_ERR_INVALID_ARG,
              "cuda attention: rows %d, heads %d, kv heads %d, page_size %d, max_blocks %d", a->rows,
              a->n_heads, a->n_kv, a->page_size, a->max_blocks);
    int G = a->n_heads / a->n_kv;
    LLT_CHECK(a->hd >= 2 && a->hd % 2 == 0 && a->hd <= 256 && G * a->hd <= 2 * DEC_THREADS * DEC_PAIRS,
              err, LLT_ERR_UNSUPPORTED,
              "cuda attention: head_dim %d (even, <= 256) with %d query heads per kv head "
              "(group x head_dim <= %d)",
              a->hd, G, 2 * DEC_THREADS * DEC_PAIRS);
    return LLT_OK;
}

typedef void (*d2_fn)(const attn_params);

template <typename T, int HD>
static d2_fn d2_pick_g(int G) {
    switch (G) {
    case 1: return attn_decode2_kernel<T, HD, 1>;
    case 2: return attn_decode2_kernel<T, HD, 2>;
    case 4: return attn_decode2_kernel<T, HD, 4>;
    default: return attn_decode2_kernel<T, HD, 8>;
    }
}

/* The cluster kernel covers head_dim 64 / 128 with 1, 2, 4 or 8 query heads per kv head;
 * LLT_CUDA_ATTN=v1 keeps the split kernel (comparisons). NULL: not covered. */
static d2_fn d2_function(const llt_cuda_attn *a) {
    const int G = a->n_heads / a->n_kv;
    const char *v = getenv("LLT_CUDA_ATTN");
    if ((v && strcmp(v, "v1") == 0) || (a->hd != 64 && a->hd != 128) || (G != 1 && G != 2 && G != 4 && G != 8))
        return NULL;
    if (a->dtype == LLT_DTYPE_BF16)
        return a->hd == 64 ? d2_pick_g<__nv_bfloat16, 64>(G) : d2_pick_g<__nv_bfloat16, 128>(G);
    return a->hd == 64 ? d2_pick_g<__half, 64>(G) : d2_pick_g<__half, 128>(G);
}

/* Blocks per (kv head, row): the smallest power of two that puts LLT_CUDA_ATTN_BPS blocks
 * (default 2; one where every row has fewer than D2_DEEP keys) on every SM, at most 16
 * (beyond the portable 8 only where the device can schedule such clusters). On the H100, 16
 * gave llama3.2-1b +1 % over 8, tinyllama the same; llama2-7b (32 kv heads) 16 instead of 8
 * +6 % at depth 2048 (two blocks an SM instead of one, bench/RESULTS.md issue 20).
 * LLT_CUDA_ATTN_CS=N (1..16) forces N (tests cover every size). */
static int d2_cluster_size(const llt_cuda_ctx *c, d2_fn fn, int n_kv, int rows, int max_len) {
    static const char *bv = getenv("LLT_CUDA_ATTN_BPS");
    static const int bps_deep = bv && atoi(bv) >= 1 && atoi(bv) <= 8 ? atoi(bv) : 2;
    const int bps = llt_cuda_attn_depth_class(max_len) == 0 ? 1 : bps_deep;
    const char *v = getenv("LLT_CUDA_ATTN_CS");
    int want = v ? atoi(v) : 0;
    if (want < 1 || want > D2_MAX_CS)
        for (want = 1; want < D2_MAX_CS && (int64_t)want * n_kv * rows < (int64_t)bps * c->n_sm;)
            want *= 2;
    if (want <= 8) return want;
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute at[1];
    cfg.gridDim = dim3((unsigned)want, (unsigned)n_kv, (unsigned)rows);
    cfg.blockDim = dim3(D2_THREADS);
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = (unsigned)want, at[0].val.clusterDim.y = 1, at[0].val.clusterDim.z = 1;
    cfg.attrs = at, cfg.numAttrs = 1;
    int n = 0;
    if (cudaFuncSetAttribute(fn, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess ||
        cudaOccupancyMaxActiveClusters(&n, fn, &cfg) != cudaSuccess || n < 1)
        want = 8;
    (void)cudaGetLastError(); /* a refused query is not an error of the next call */
    return want;
}

static llt_status d2_launch(llt_cuda_ctx *c, const llt_cuda_attn *a, d2_fn fn, llt_error *err) {
    const int cs = d2_cluster_size(c, fn, a->n_kv, a->rows, a->max_len);
    attn_params p = params_of(a, cs);
    p.early_trigger = c->attn_early;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)cs, (unsigned)a->n_kv, (unsigned)a->rows);
    cfg.blockDim = dim3(D2_THREADS);
    cfg.stream = c->stream;
    cudaLaunchAttribute at[2];
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = (unsigned)cs, at[0].val.clusterDim.y = 1, at[0].val.clusterDim.z = 1;
    at[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[1].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at, cfg.numAttrs = c->pdl ? 2 : 1;
    CUDA_TRY(cudaLaunchKernelEx(&cfg, fn, p), err);
    return LLT_OK;
}

extern "C" int32_t llt_cuda_attn_depth_class(int32_t max_len) {
    if (max_len >= llt_cuda_attn_long_keys()) return 2;
    return max_len > 0 && max_len < D2_DEEP ? 0 : 1;
}

extern "C" llt_status llt_cuda_attention_decode(llt_cuda_ctx *c, const llt_cuda_attn *a, llt_error *err) {
    LLT_TRY(check_attn(a, err));
    /* LLT_CUDA_ATTN_ABL=1, measurement only (wrong results): no decode attention launched, so
     * that a bench reads its share of a step (bench/RESULTS.md, issue 20) */
    static const char *abl = getenv("LLT_CUDA_ATTN_ABL");
    if (abl && atoi(abl) == 1) return LLT_OK;
    if (llt_cuda_flash_decode_covers(a)) return llt_cuda_flash_decode(c, a, err);
    LLT_CHECK(!a->kv_f8, err, LLT_ERR_UNSUPPORTED,
              "cuda attention: an f8 KV cache needs head_dim 32, 64 or 128 (got %d), at most 16 query heads per kv "
              "head (got %d) and a workspace",
              a->hd, a->n_heads / a->n_kv);
    d2_fn fn = d2_function(a);
    if (fn) return d2_launch(c, a, fn, err);
    int splits = llt_cuda_attn_splits(c, a->rows, a->n_kv);
    LLT_CHECK(splits == 1 || (a->work && a->counters), err, LLT_ERR_INVALID_ARG,
              "cuda attention: %d splits need a workspace and counters", splits);
    int G = a->n_heads / a->n_kv;
    size_t smem = ((size_t)G * a->hd + (size_t)G * DEC_KEYS + 3 * G) * 4 + DEC_KEYS * 4 +
                  (size_t)dec_red_floats(a->hd, G) * 4;
    attn_params p = params_of(a, splits);
    p.early_trigger = c->attn_early;
    dim3 grid(a->n_kv, splits, a->rows);
    if (a->dtype == LLT_DTYPE_BF16) {
        LLT_TRY(llt_smem_optin(c, attn_decode_kernel<__nv_bfloat16>, smem, err));
        return llt_launch(c, attn_decode_kernel<__nv_bfloat16>, grid, dim3(DEC_THREADS), smem, err, p);
    }
    LLT_TRY(llt_smem_optin(c, attn_decode_kernel<__half>, smem, err));
    return llt_launch(c, attn_decode_kernel<__half>, grid, dim3(DEC_THREADS), smem, err, p);
}

template <typename T, int HD>
static llt_status prefill_as(llt_cuda_ctx *c, const attn_params &p, int row0, int n_q, int q_pos0,
                             llt_error *err) {
    size_t smem = pf_layout<HD>::BYTES;
    LLT_TRY(llt_smem_optin(c, attn_prefill_kernel<T, HD>, smem, err));
    dim3 grid((n_q + PF_BM - 1) / PF_BM, p.nh);
    return llt_launch(c, attn_prefill_kernel<T, HD>, grid, dim3(PF_THREADS), smem, err, p, row0, n_q,
                      q_pos0);
}

extern "C" llt_status llt_cuda_attention_prefill(llt_cuda_ctx *c, const llt_cuda_attn *a, int32_t row0,
                                                 int32_t n_q, int32_t q_pos0, llt_error *err) {
    LLT_TRY(check_attn(a, err));
    LLT_CHECK(row0 >= 0 && n_q > 0 && row0 + n_q <= a->rows && q_pos0 >= 0, err, LLT_ERR_INVALID_ARG,
              "cuda attention prefill: rows [%d, %d) of %d, first position %d", row0, row0 + n_q,
              a->rows, q_pos0);
    if (llt_cuda_flash_prefill_covers(a)) return llt_cuda_flash_prefill(c, a, row0, n_q, q_pos0, err);
    if (a->hd != 64 && a->hd != 128) { /* the tensor-core kernels are compiled for these */
        llt_cuda_attn d = *a; /* the rows of this sequence only */
        size_t row = (size_t)a->n_heads * a->hd;
        d.q = a->q + row0 * row;
        d.out = (char *)a->out + row0 * row * 2;
        d.row_bt = a->row_bt + row0, d.pos = a->pos + row0, d.rows = n_q;
        return llt_cuda_attention_decode(c, &d, err);
    }
    attn_params p = params_of(a, 1);
    if (a->dtype == LLT_DTYPE_BF16)
        return a->hd == 64 ? prefill_as<__nv_bfloat16, 64>(c, p, row0, n_q, q_pos0, err)
                           : prefill_as<__nv_bfloat16, 128>(c, p, row0, n_q, q_pos0, err);
    return a->hd == 64 ? prefill_as<__half, 64>(c, p, row0, n_q, q_pos0, err)
                       : prefill_as<__half, 128>(c, p, row0, n_q, q_pos0, err);
}
