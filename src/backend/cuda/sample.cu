/* sample.cu: picking the next token on the device, so a generation step copies back one id
 * per row instead of a row of logits.
 *  - argmax: one block per row, first maximum wins (as the CPU's greedy sampler);
 *  - temperature + top-p: z = (logit - max) / T; the nucleus is {z >= t} for the largest
 *    threshold t whose probability mass reaches top_p (found by bisection on t, so no sort of
 *    the vocabulary is needed; ties at the threshold are kept, as a sort-based nucleus would
 *    keep them with probability depending on order). A draw u in [0, 1) is then mapped
 *    through the cumulative mass of the nucleus in vocabulary order (contiguous slices per
 *    thread, one scan over the slice totals). Same u, same logits: same token. */
#include "backend/cuda/ops.cuh"

enum { SAMPLE_THREADS = 1024, BISECT_STEPS = 40 };

__device__ __forceinline__ void argmax_pair(float &v, int &i, float v2, int i2) {
    if (v2 > v || (v2 == v && i2 < i)) v = v2, i = i2;
}

/* Block argmax; every thread gets the winner. red: 2 * 32 words. */
__device__ int block_argmax(float v, int i, float *redv, int *redi) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        argmax_pair(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
    __syncthreads();
    if (lane == 0) redv[w] = v, redi[w] = i;
    __syncthreads();
    v = lane < nw ? redv[lane] : -INFINITY;
    i = lane < nw ? redi[lane] : 0x7fffffff;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        argmax_pair(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
    return i;
}

__device__ int row_argmax(const float *x, int n, float *redv, int *redi) {
    float v = -INFINITY;
    int idx = 0x7fffffff;
    for (int j = threadIdx.x; j < n; j += blockDim.x) argmax_pair(v, idx, x[j], j);
    return block_argmax(v, idx, redv, redi);
}

__global__ void argmax_kernel(const float *logits, int ld, int n, int *out) {
    __shared__ float redv[32];
    __shared__ int redi[32];
    pdl_wait();
    int i = row_argmax(logits + (size_t)blockIdx.x * ld, n, redv, redi);
    if (threadIdx.x == 0) out[blockIdx.x] = i < n ? i : 0;
}

/* Unnormalised mass of {z >= t}, z = (x - mx) * inv_t. */
__device__ float mass_above(const float *x, int n, float mx, float inv_t, float t, float *red) {
    float s = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float z = (x[j] - mx) * inv_t;
        if (z >= t) s += __expf(z);
    }
    return block_sum(s, red);
}

/* Largest t with mass(t) >= top_p * total (bisection between min z and 0). */
__device__ float nucleus_threshold(const float *x, int n, float mx, float inv_t, float top_p, float *red) {
    float zmin = INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) zmin = fminf(zmin, (x[j] - mx) * inv_t);
    zmin = -block_max(-zmin, red);
    float total = mass_above(x, n, mx, inv_t, zmin, red), want = top_p * total;
    if (top_p >= 1.0f || mass_above(x, n, mx, inv_t, 0.0f, red) >= want) return top_p >= 1.0f ? zmin : 0.0f;
    float lo = zmin, hi = 0.0f; /* mass(lo) >= want > mass(hi) */
    for (int it = 0; it < BISECT_STEPS && hi - lo > 1e-6f * fmaxf(1.0f, -lo); it++) {
        float mid = 0.5f * (lo + hi);
        if (mass_above(x, n, mx, inv_t, mid, red) >= want) lo = mid;
        else hi = mid;
    }
    return lo;
}

__global__ void sample_kernel(const float *logits, int ld, int n, float temperature, float top_p,
                              const float *u, int *out) {
    __shared__ float red[32];
    __shared__ int redi[32];
    __shared__ float scan[SAMPLE_THREADS];
    __shared__ int pick;
    pdl_wait();
    const float *x = logits + (size_t)blockIdx.x * ld;
    int am = row_argmax(x, n, red, redi);
    float mx = x[am < n ? am : 0], inv_t = 1.0f / temperature;
    float t = nucleus_threshold(x, n, mx, inv_t, top_p, red);
    /* contiguous slice per thread, its nucleus mass, exclusive scan over threads */
    int per = (n + blockDim.x - 1) / blockDim.x, j0 = threadIdx.x * per, j1 = min(n, j0 + per);
    float own = 0.0f;
    for (int j = j0; j < j1; j++) {
        float z = (x[j] - mx) * inv_t;
        if (z >= t) own += __expf(z);
    }
    scan[threadIdx.x] = own;
    if (threadIdx.x == 0) pick = am;
    __syncthreads();
    for (int o = 1; o < (int)blockDim.x; o <<= 1) {
        float v = threadIdx.x >= (unsigned)o ? scan[threadIdx.x - o] : 0.0f;
        __syncthreads();
        scan[threadIdx.x] += v;
        __syncthreads();
    }
    float total = scan[blockDim.x - 1], target = u[blockIdx.x] * total;
    float before = scan[threadIdx.x] - own;
    if (own > 0.0f && target >= before && target < before + own) {
        float acc = before;
        int last = -1;
        for (int j = j0; j < j1; j++) {
            float z = (x[j] - mx) * inv_t;
            if (z < t) continue;
            last = j;
            acc += __expf(z);
            if (target < acc) break;
        }
        pick = last; /* rounding can leave target just past the slice: its last member */
    }
    __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = pick;
}

extern "C" llt_status llt_cuda_argmax(llt_cuda_ctx *c, const float *logits, int32_t ld, int32_t m, int32_t n,
                                      int32_t *out, llt_error *err) {
    LLT_CHECK(m > 0 && n > 0 && ld >= n, err, LLT_ERR_INVALID_ARG, "cuda argmax: m %d, n %d, ld %d", m, n, ld);
    return llt_launch(c, argmax_kernel, dim3(m), dim3(SAMPLE_THREADS), 0, err, logits, (int)ld, (int)n,
                      (int *)out);
}

extern "C" llt_status llt_cuda_sample(llt_cuda_ctx *c, const float *logits, int32_t ld, int32_t m, int32_t n,
                                      float temperature, float top_p, const float *u, int32_t *out,
                                      llt_error *err) {
    if (!(temperature > 0.0f)) return llt_cuda_argmax(c, logits, ld, m, n, out, err);
    LLT_CHECK(m > 0 && n > 0 && ld >= n && u, err, LLT_ERR_INVALID_ARG,
              "cuda sample: m %d, n %d, ld %d, uniform draws %s", m, n, ld, u ? "given" : "missing");
    LLT_CHECK(top_p > 0.0f && top_p <= 1.0f, err, LLT_ERR_INVALID_ARG, "cuda sample: top_p %g not in (0, 1]",
              (double)top_p);
    return llt_launch(c, sample_kernel, dim3(m), dim3(SAMPLE_THREADS), 0, err, logits, (int)ld, (int)n,
                      temperature, top_p, u, (int *)out);
}
