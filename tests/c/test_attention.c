/* test_attention.c: paged attention (backend/cpu/attention.c) against contiguous attention
 * computed naively in double from the same keys and values.
 *
 * Tolerance: max |paged - reference| / max |reference| <= 1e-5. The kernel accumulates in
 * float32 over at most ~100 keys of magnitude <= 1, so its rounding error is ~1e-6 relative;
 * 1e-5 leaves room for that and nothing else (a wrong key, page or head gives errors ~1e-1).
 * For f16/bf16/f8 pages the reference reads the same rounded values, so the bound is the same
 * (f8: each (token, kv head) row scaled by amax / 448 and rounded to e4m3, as kv/paged_cache.h
 * defines it, rebuilt here from that definition). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/attention.h"
#include "backend/cpu/attention_kernels.h"
#include "base/dtype.h"
#include "testlib.h"

typedef struct rng { uint64_t s; } rng;
static float rnd(rng *r) { /* uniform in [-1, 1): a fixed LCG, reproducible everywhere */
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((r->s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

typedef struct shape {
    int32_t n_heads, n_kv_heads, head_dim, page_size;
    llt_dtype dtype;
} shape;

/* value as stored in the pages */
static float stored(llt_dtype t, float x) {
    if (t == LLT_DTYPE_F16) return llt_f16_to_f32(llt_f32_to_f16(x));
    if (t == LLT_DTYPE_BF16) return llt_bf16_to_f32(llt_f32_to_bf16(x));
    return x;
}

/* rows [0, n) of x ([n, n_kv, d]) as the pages hold them */
static float *stored_rows(const shape *sh, const float *x, int32_t n) {
    const int32_t d = sh->head_dim;
    const int64_t len = (int64_t)n * sh->n_kv_heads * d;
    float *y = malloc(sizeof(float) * (size_t)len);
    for (int64_t r = 0; r < len; r += d) {
        float amax = 0;
        for (int32_t i = 0; i < d; i++) amax = fabsf(x[r + i]) > amax ? fabsf(x[r + i]) : amax;
        const float s = amax / 448.0f > 0 ? amax / 448.0f : 1.0f;
        for (int32_t i = 0; i < d; i++)
            y[r + i] = sh->dtype == LLT_DTYPE_F8_E4M3 ? llt_e4m3_to_f32(llt_f32_to_e4m3(x[r + i] / s)) * s
                                                      : stored(sh->dtype, x[r + i]);
    }
    return y;
}

/* out[n_heads, d] for the query at position p (keys [0, p]); k, v: [L, n_kv, d] contiguous. */
static void ref_attention(const shape *sh, const float *q, const float *k, const float *v,
                          int32_t p, float *out) {
    int32_t d = sh->head_dim, nkv = sh->n_kv_heads, G = sh->n_heads / nkv;
    double *w = malloc(sizeof(double) * (size_t)(p + 1));
    float *ks = stored_rows(sh, k, p + 1), *vs = stored_rows(sh, v, p + 1);
    for (int32_t h = 0; h < sh->n_heads; h++) {
        int32_t g = h / G;
        double mx = -INFINITY, sum = 0;
        for (int32_t j = 0; j <= p; j++) {
            double s = 0;
            for (int32_t i = 0; i < d; i++)
                s += (double)q[h * d + i] * ks[((int64_t)j * nkv + g) * d + i];
            w[j] = s / sqrt((double)d);
            mx = w[j] > mx ? w[j] : mx;
        }
        for (int32_t j = 0; j <= p; j++) sum += (w[j] = exp(w[j] - mx));
        for (int32_t i = 0; i < d; i++) {
            double acc = 0;
            for (int32_t j = 0; j <= p; j++)
                acc += w[j] * vs[((int64_t)j * nkv + g) * d + i];
            out[h * d + i] = (float)(acc / sum);
        }
    }
    free(w), free(ks), free(vs);
}

static llt_kv_cache *make_cache(const shape *sh, int32_t max_pages, int32_t n_layers) {
    llt_kv_cache_opts o = {n_layers, sh->n_kv_heads, sh->head_dim, sh->page_size, max_pages, 4,
                           sh->dtype};
    llt_kv_cache *c = NULL;
    llt_error e;
    CHECK_OK(llt_kv_cache_create(&o, &c, &e), &e);
    return c;
}

/* Fills a sequence of length L on layer 1 (layer 0 gets other data) one token at a time,
 * alternating with a decoy sequence and after a freed one, so its pages are not in order. */
static int32_t fill_scrambled(llt_kv_cache *c, const shape *sh, const float *k, const float *v,
                              int32_t L, rng *r) {
    llt_error e;
    int32_t seq, decoy, junk;
    int64_t row = (int64_t)sh->n_kv_heads * sh->head_dim;
    float *other = malloc(sizeof(float) * (size_t)row);
    for (int64_t i = 0; i < row; i++) other[i] = rnd(r);
    CHECK_OK(llt_kv_seq_create(c, &junk, &e), &e);
    for (int32_t t = 0; t < 3 * sh->page_size; t++)
        for (int32_t l = 0; l < 2; l++) CHECK_OK(llt_kv_cache_allocate(c, junk, l, other, other, 1, &e), &e);
    CHECK_OK(llt_kv_seq_create(c, &seq, &e), &e);
    CHECK_OK(llt_kv_seq_create(c, &decoy, &e), &e);
    llt_kv_seq_free(c, junk);
    for (int32_t t = 0; t < L; t++) {
        CHECK_OK(llt_kv_cache_allocate(c, seq, 0, other, other, 1, &e), &e);
        CHECK_OK(llt_kv_cache_allocate(c, seq, 1, k + t * row, v + t * row, 1, &e), &e);
        for (int32_t l = 0; l < 2; l++) CHECK_OK(llt_kv_cache_allocate(c, decoy, l, other, other, 1, &e), &e);
    }
    free(other);
    return seq;
}

static float *rand_vec(int64_t n, rng *r) {
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = rnd(r);
    return x;
}

/* Decode (the public op and the internal one) at the last position of a length-L sequence. */
static void check_decode(const shape *sh, int32_t L) {
    rng r = {(uint64_t)L * 977 + (uint64_t)sh->page_size};
    int64_t row = (int64_t)sh->n_kv_heads * sh->head_dim, qn = (int64_t)sh->n_heads * sh->head_dim;
    float *k = rand_vec(L * row, &r), *v = rand_vec(L * row, &r), *q = rand_vec(qn, &r);
    float *ref = malloc(sizeof(float) * qn), *out = malloc(sizeof(float) * qn);
    llt_kv_cache *c = make_cache(sh, 4 * ((L + sh->page_size - 1) / sh->page_size) + 8, 2);
    int32_t seq = fill_scrambled(c, sh, k, v, L, &r);
    ref_attention(sh, q, k, v, L - 1, ref);
    llt_kv_pages pg;
    llt_error e;
    CHECK_OK(llt_kv_cache_get_pages(c, seq, 1, &pg, &e), &e);
    CHECK(pg.seq_len == L && pg.n_blocks == (L + sh->page_size - 1) / sh->page_size);
    CHECK_OK(llt_page_attention_f32(q, sh->n_heads, &pg, 0.0f, out, &e), &e);
    double err1 = tl_rel_err(out, ref, (size_t)qn);
    float *scratch = malloc(sizeof(float) * llt_cpu_attention_scratch_floats(c, sh->n_heads));
    memset(out, 0, sizeof(float) * qn);
    llt_cpu_attention(c, 1, seq, q, 1, L - 1, sh->n_heads, 1.0f / sqrtf((float)sh->head_dim),
                      out, scratch);
    double err2 = tl_rel_err(out, ref, (size_t)qn);
    CHECK_MSG(err1 <= 1e-5 && err2 <= 1e-5, "L=%d ps=%d heads %d/%d %s: err %.3g %.3g", L,
              sh->page_size, sh->n_heads, sh->n_kv_heads, llt_dtype_name(sh->dtype), err1, err2);
    llt_kv_cache_free(c);
    free(k), free(v), free(q), free(ref), free(out), free(scratch);
}

static void test_decode_lengths(void) {
    const int32_t pss[] = {8, 16, 32};
    const int32_t heads[][2] = {{8, 2}, {4, 1}, {4, 4}}; /* GQA, MQA, MHA */
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            int32_t ps = pss[a];
            shape sh = {heads[b][0], heads[b][1], 16, ps, LLT_DTYPE_F32};
            const int32_t lens[] = {1, ps - 1, ps, ps + 1, 3 * ps + 5};
            for (int i = 0; i < 5; i++) check_decode(&sh, lens[i]);
        }
    /* page sizes that are not whole 8-key groups (padded score rows, partial groups) */
    const int32_t odd_ps[2] = {5, 12};
    for (int a = 0; a < 2; a++) {
        shape sh = {8, 2, 16, odd_ps[a], LLT_DTYPE_F32};
        const int32_t lens[] = {1, odd_ps[a] - 1, odd_ps[a] + 1, 7 * odd_ps[a] + 3};
        for (int i = 0; i < 4; i++) check_decode(&sh, lens[i]);
    }
}

static void test_decode_dtypes(void) {
    shape f16 = {8, 2, 32, 16, LLT_DTYPE_F16}, bf16 = {6, 3, 24, 8, LLT_DTYPE_BF16};
    const int32_t lens[] = {1, 15, 16, 17, 53};
    for (int i = 0; i < 5; i++) check_decode(&f16, lens[i]), check_decode(&bf16, lens[i]);
    shape odd = {3, 1, 5, 8, LLT_DTYPE_F32}; /* head_dim not a multiple of 4 */
    check_decode(&odd, 19);
    /* f8 pages (e4m3 and a scale per token and kv head): AVX2 where present at head_dim 32 / 64,
     * the scalar path at 20 (not a multiple of 8) */
    shape f8 = {8, 2, 32, 16, LLT_DTYPE_F8_E4M3}, f8b = {4, 4, 64, 8, LLT_DTYPE_F8_E4M3},
          f8odd = {6, 3, 20, 8, LLT_DTYPE_F8_E4M3};
    for (int i = 0; i < 5; i++) check_decode(&f8, lens[i]), check_decode(&f8b, lens[i]), check_decode(&f8odd, lens[i]);
    /* head dims whose P V ends in a pass of 5, 6, 7 (and, after 64 columns, 7) 8-float slices */
    const int32_t hds[4] = {40, 48, 56, 120};
    for (int h = 0; h < 4; h++) {
        shape s = {4, 2, hds[h], 8, h % 2 ? LLT_DTYPE_BF16 : LLT_DTYPE_F16};
        check_decode(&s, 9), check_decode(&s, 30);
    }
}

/* A causal prefill chunk written into reserved (uncommitted) pages == one decode per row ==
 * the reference, for a chunk that starts mid-page after a committed prefix. */
static void test_prefill_chunk(void) {
    shape sh = {8, 2, 16, 8, LLT_DTYPE_F32};
    int32_t L = 29, pre = 11, n_q = L - pre;
    rng r = {7};
    int64_t row = (int64_t)sh.n_kv_heads * sh.head_dim, qn = (int64_t)sh.n_heads * sh.head_dim;
    float *k = rand_vec(L * row, &r), *v = rand_vec(L * row, &r), *q = rand_vec(n_q * qn, &r);
    float *chunk = malloc(sizeof(float) * n_q * qn), *one = malloc(sizeof(float) * n_q * qn);
    float *ref = malloc(sizeof(float) * qn);
    llt_kv_cache *c = make_cache(&sh, 16, 1);
    llt_error e;
    int32_t seq;
    CHECK_OK(llt_kv_seq_create(c, &seq, &e), &e);
    CHECK_OK(llt_kv_cache_allocate(c, seq, 0, k, v, pre, &e), &e);
    CHECK_OK(llt_kv_reserve(c, seq, n_q, &e), &e);
    for (int32_t t = pre; t < L; t++) llt_kv_write_f32(c, 0, seq, t, k + t * row, v + t * row);
    float *scratch = malloc(sizeof(float) * llt_cpu_attention_scratch_floats(c, sh.n_heads));
    float scale = 1.0f / sqrtf((float)sh.head_dim);
    llt_cpu_attention(c, 0, seq, q, n_q, pre, sh.n_heads, scale, chunk, scratch);
    for (int32_t i = 0; i < n_q; i++)
        llt_cpu_attention(c, 0, seq, q + i * qn, 1, pre + i, sh.n_heads, scale, one + i * qn,
                          scratch);
    CHECK(memcmp(chunk, one, sizeof(float) * n_q * qn) == 0);
    for (int32_t i = 0; i < n_q; i++) {
        ref_attention(&sh, q + i * qn, k, v, pre + i, ref);
        double err = tl_rel_err(chunk + i * qn, ref, (size_t)qn);
        CHECK_MSG(err <= 1e-5, "row %d: err %.3g", i, err);
    }
    llt_kv_commit(c, seq, n_q);
    CHECK(llt_kv_seq_len(c, seq) == L);
    llt_kv_cache_free(c);
    free(k), free(v), free(q), free(chunk), free(one), free(ref), free(scratch);
}

/* The threaded form: several sequences of different lengths (decode rows and one prefill
 * chunk of 21 rows) in one step, row by row (llt_cpu_attention_group_rows of one row) with the
 * (row, kv head) units split over 3 "threads" with their own scratch; then the chunk's rows in
 * tiles of 16, split at row 9 between two threads: the same bits. */
static void batch_task(llt_dtype dtype) {
    shape sh = {4, 2, 24, 16, dtype}; /* AVX2 (where present), then forced scalar */
    enum { NS = 4 };
    const int32_t lens[NS] = {1, 16, 40, 23}, nq[NS] = {1, 1, 21, 1};
    int64_t row = (int64_t)sh.n_kv_heads * sh.head_dim, qn = (int64_t)sh.n_heads * sh.head_dim;
    llt_kv_cache *c = make_cache(&sh, 64, 1);
    llt_error e;
    rng r = {99};
    float *k[NS], *v[NS];
    llt_attn_seq seqs[NS];
    int32_t rows = 0;
    for (int i = 0; i < NS; i++) {
        k[i] = rand_vec(lens[i] * row, &r), v[i] = rand_vec(lens[i] * row, &r);
        int32_t pos0 = lens[i] - nq[i];
        seqs[i] = (llt_attn_seq){-1, rows, nq[i], pos0};
        CHECK_OK(llt_kv_seq_create(c, &seqs[i].seq, &e), &e);
        if (pos0) CHECK_OK(llt_kv_cache_allocate(c, seqs[i].seq, 0, k[i], v[i], pos0, &e), &e);
        CHECK_OK(llt_kv_reserve(c, seqs[i].seq, nq[i], &e), &e);
        for (int32_t t = pos0; t < lens[i]; t++)
            llt_kv_write_f32(c, 0, seqs[i].seq, t, k[i] + t * row, v[i] + t * row);
        rows += nq[i];
    }
    float *q = rand_vec(rows * qn, &r), *out = calloc((size_t)(rows * qn), sizeof(float));
    int64_t stride = llt_cpu_attention_scratch_floats(c, sh.n_heads);
    float *scratch = malloc(sizeof(float) * 3 * stride), *ref = malloc(sizeof(float) * qn);
    int32_t row_seq[32];
    llt_attn_ctx x = {c, 0, seqs, NS, q, out, sh.n_heads, 1.0f / sqrtf(24.0f), scratch, stride,
                      0, row_seq, LLT_ATTN_ISA_AUTO};
    CHECK_OK(llt_cpu_attention_prepare(&x, &e), &e);
    CHECK(x.n_rows == rows);
    const int32_t n_units = rows * sh.n_kv_heads;
    for (int isa = 0; isa < 2; isa++) { /* AVX2 where the CPU has it, then the scalar path */
        x.isa = isa ? LLT_ATTN_ISA_SCALAR : LLT_ATTN_ISA_AUTO;
        memset(out, 0, sizeof(float) * (size_t)(rows * qn));
        for (int32_t u = 0; u < n_units; u++) /* unit u = (row u / n_kv, head u % n_kv) on thread 3u / n_units */
            llt_cpu_attention_group_rows(&x, u % sh.n_kv_heads, u / sh.n_kv_heads, u / sh.n_kv_heads + 1,
                                         3 * u / n_units);
        for (int i = 0; i < NS; i++)
            for (int32_t j = 0; j < nq[i]; j++) {
                int32_t rr = seqs[i].row0 + j;
                ref_attention(&sh, q + rr * qn, k[i], v[i], seqs[i].q_pos0 + j, ref);
                double err = tl_rel_err(out + rr * qn, ref, (size_t)qn);
                CHECK_MSG(err <= 1e-5, "isa %d seq %d row %d: err %.3g", isa, i, j, err);
            }
        float *by_rows = malloc(sizeof(float) * (size_t)(rows * qn));
        memcpy(by_rows, out, sizeof(float) * (size_t)(rows * qn));
        memset(out, 0, sizeof(float) * (size_t)(rows * qn));
        for (int32_t g = 0; g < sh.n_kv_heads; g++) {
            llt_cpu_attention_group_rows(&x, g, 0, 9, g);
            llt_cpu_attention_group_rows(&x, g, 9, rows, 2 - g);
        }
        CHECK_MSG(memcmp(out, by_rows, sizeof(float) * (size_t)(rows * qn)) == 0, "isa %d: group rows", isa);
        free(by_rows);
    }
    for (int i = 0; i < NS; i++) free(k[i]), free(v[i]);
    llt_kv_cache_free(c);
    free(q), free(out), free(scratch), free(ref);
}

static void test_batch_task(void) {
    batch_task(LLT_DTYPE_BF16);
    batch_task(LLT_DTYPE_F16);
    batch_task(LLT_DTYPE_F8_E4M3);
    batch_task(LLT_DTYPE_F32);
}

/* The f8 page conversion (AVX2 where present, and scalar): all 256 codes of two rows (head_dim
 * 256, 16 bytes a step; then 8 wide, head_dim 8) against the format's decoding times the row's
 * scale; the NaN codes stay NaN. */
static void test_convert8(void) {
    uint8_t b[2 * 264];
    float sc[2] = {0.125f, 3.0f}, out[2 * 264];
    for (int i = 0; i < 2 * 264; i++) b[i] = (uint8_t)(i * 7 + 3); /* (a permutation of the codes each row) */
    for (int isa = 0; isa < 2; isa++)
        for (int w = 0; w < 2; w++) {
            const int32_t d = w ? 8 : 256;
            const llt_attn_kernels *kn = llt_attn_kernels_pick(isa ? LLT_ATTN_ISA_SCALAR : LLT_ATTN_ISA_AUTO, d);
            kn->convert8(b, 264, sc, 1, 2, d, out);
            bool ok = true;
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < d; i++) {
                    const float want = llt_e4m3_to_f32(b[j * 264 + i]) * sc[j], got = out[j * d + i];
                    ok &= isnan(want) ? isnan(got) : got == want;
                }
            CHECK_MSG(ok, "isa %d head_dim %d", isa, d);
        }
}

static void test_errors(void) {
    shape sh = {4, 2, 8, 8, LLT_DTYPE_F32};
    llt_kv_cache *c = make_cache(&sh, 8, 2);
    llt_error e;
    int32_t seq, row_seq[4];
    float kv[16] = {0}, q[32] = {0}, out[32], scratch[512];
    CHECK_OK(llt_kv_seq_create(c, &seq, &e), &e);
    for (int l = 0; l < 2; l++) CHECK_OK(llt_kv_cache_allocate(c, seq, l, kv, kv, 1, &e), &e);
    llt_kv_pages pg;
    CHECK_OK(llt_kv_cache_get_pages(c, seq, 0, &pg, &e), &e);
    CHECK_ERR(llt_page_attention_f32(q, 3, &pg, 0, out, &e), LLT_ERR_INVALID_ARG, &e, "multiple");
    CHECK_ERR(llt_page_attention_f32(NULL, 4, &pg, 0, out, &e), LLT_ERR_INVALID_ARG, &e, "NULL");
    llt_kv_pages bad = pg;
    bad.dtype = LLT_DTYPE_Q8_0;
    CHECK_ERR(llt_page_attention_f32(q, 4, &bad, 0, out, &e), LLT_ERR_UNSUPPORTED, &e, "q8_0");
    bad = pg, bad.seq_len = 9;
    CHECK_ERR(llt_page_attention_f32(q, 4, &bad, 0, out, &e), LLT_ERR_INVALID_ARG, &e, "seq_len 9");
    bad = pg, bad.page_size = 0;
    CHECK_ERR(llt_page_attention_f32(q, 4, &bad, 0, out, &e), LLT_ERR_INVALID_ARG, &e, "page_size 0");
    /* uniform keys: the output is the mean of the values (here all zero) */
    CHECK_OK(llt_page_attention_f32(q, 4, &pg, 0, out, &e), &e);
    CHECK(out[0] == 0.0f);

    llt_attn_seq s = {seq, 0, 1, 0};
    llt_attn_ctx x = {c, 0, &s, 1, q, out, 4, 1.0f, scratch, 512, 0, row_seq, LLT_ATTN_ISA_AUTO};
    x.layer = 2;
    CHECK_ERR(llt_cpu_attention_prepare(&x, &e), LLT_ERR_INVALID_ARG, &e, "layer 2");
    x.layer = 0, x.n_heads = 3;
    CHECK_ERR(llt_cpu_attention_prepare(&x, &e), LLT_ERR_INVALID_ARG, &e, "n_heads 3");
    x.n_heads = 4, x.scratch_stride = 10;
    CHECK_ERR(llt_cpu_attention_prepare(&x, &e), LLT_ERR_INVALID_ARG, &e, "scratch_stride");
    x.scratch_stride = 512, s.q_pos0 = 8;
    CHECK_ERR(llt_cpu_attention_prepare(&x, &e), LLT_ERR_INVALID_ARG, &e, "reserved");
    s.q_pos0 = 0, s.row0 = 1;
    CHECK_ERR(llt_cpu_attention_prepare(&x, &e), LLT_ERR_INVALID_ARG, &e, "rows start at 1");
    s.row0 = 0, s.seq = 3;
    CHECK_ERR(llt_cpu_attention_prepare(&x, &e), LLT_ERR_INVALID_ARG, &e, "not live");
    s.seq = seq;
    CHECK_OK(llt_cpu_attention_prepare(&x, &e), &e);
    llt_kv_cache_free(c);
}

int main(void) {
    RUN(test_decode_lengths);
    RUN(test_decode_dtypes);
    RUN(test_prefill_chunk);
    RUN(test_batch_task);
    RUN(test_convert8);
    RUN(test_errors);
    return tl_done("test_attention");
}
