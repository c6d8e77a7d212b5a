/* attention.c: paged attention on the CPU, one page at a time with an online softmax.
 *
 * For a head group (the query heads sharing one kv head) and one page of keys:
 *   scores[h, j] = q_h . k_j * scale                 (the page's K rows, converted once)
 *   m_h' = max(m_h, max_j scores); rescale acc_h, l_h by exp(m_h - m_h')
 *   acc_h += sum_j exp(scores[h, j] - m_h') v_j      (the page's V rows, converted once)
 * and out_h = acc_h / l_h at the end. A page is page_size consecutive positions, so each
 * page costs one block-table lookup and the rescale happens at most once per page. */
#include "backend/cpu/attention.h"

#include <math.h>
#include <stdlib.h>

#include "base/dtype.h"

/* One layer's pools and one block table: what the kernel reads. */
typedef struct kv_view {
    const void *k, *v;      /* [max_pages, page_size, n_kv_heads, head_dim] */
    const int32_t *blocks;  /* [n_blocks] */
    int32_t page_size, n_kv_heads, head_dim;
    llt_dtype dtype;
} kv_view;

/* ---- per-page kernels: scalar reference and AVX2 ------------------------------------- */

/* The three inner loops of a page, for G heads, cnt keys, head_dim d; rows of k / v are
 * stride floats apart; scores s[G, ps]. One indirect call per page, not per key. */
typedef struct page_kernels {
    void (*scores)(const float *q, const float *k, int64_t ks, int32_t G, int32_t cnt,
                   int32_t d, int32_t ps, float scale, float *s);
    void (*accum)(const float *s, const float *v, int64_t vs, int32_t G, int32_t cnt, int32_t d,
                  int32_t ps, float *out);
    void (*convert)(llt_dtype t, const uint16_t *h, int64_t stride, int32_t cnt, int32_t d,
                    float *buf);
} page_kernels;

static float dot_scalar(const float *a, const float *b, int32_t n) {
    /* four partial sums: independent chains the compiler can keep in registers */
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static void scores_scalar(const float *q, const float *k, int64_t ks, int32_t G, int32_t cnt,
                          int32_t d, int32_t ps, float scale, float *s) {
    for (int32_t h = 0; h < G; h++)
        for (int32_t j = 0; j < cnt; j++)
            s[(int64_t)h * ps + j] = dot_scalar(q + (int64_t)h * d, k + j * ks, d) * scale;
}

static void accum_scalar(const float *s, const float *v, int64_t vs, int32_t G, int32_t cnt,
                         int32_t d, int32_t ps, float *out) {
    for (int32_t h = 0; h < G; h++) {
        float *o = out + (int64_t)h * d;
        for (int32_t j = 0; j < cnt; j++) {
            float w = s[(int64_t)h * ps + j];
            const float *vr = v + j * vs;
            for (int32_t i = 0; i < d; i++) o[i] += w * vr[i];
        }
    }
}

static void convert_scalar(llt_dtype t, const uint16_t *h, int64_t stride, int32_t cnt, int32_t d,
                           float *buf) {
    for (int32_t j = 0; j < cnt; j++, h += stride) {
        float *o = buf + (int64_t)j * d;
        if (t == LLT_DTYPE_F16)
            for (int32_t i = 0; i < d; i++) o[i] = llt_f16_to_f32(h[i]);
        else
            for (int32_t i = 0; i < d; i++) o[i] = llt_bf16_to_f32(h[i]);
    }
}

static const page_kernels k_scalar = {scores_scalar, accum_scalar, convert_scalar};

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX2_FN __attribute__((target("avx2,fma,f16c")))

static AVX2_FN float dot_avx2(const float *a, const float *b, int32_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    __m256 acc = _mm256_add_ps(acc0, acc1);
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    float r = _mm_cvtss_f32(x);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static AVX2_FN void scores_avx2(const float *q, const float *k, int64_t ks, int32_t G,
                                int32_t cnt, int32_t d, int32_t ps, float scale, float *s) {
    for (int32_t h = 0; h < G; h++)
        for (int32_t j = 0; j < cnt; j++)
            s[(int64_t)h * ps + j] = dot_avx2(q + (int64_t)h * d, k + j * ks, d) * scale;
}

static AVX2_FN void accum_avx2(const float *s, const float *v, int64_t vs, int32_t G, int32_t cnt,
                               int32_t d, int32_t ps, float *out) {
    for (int32_t h = 0; h < G; h++) {
        float *o = out + (int64_t)h * d;
        for (int32_t j = 0; j < cnt; j++) {
            float w = s[(int64_t)h * ps + j];
            const float *vr = v + j * vs;
            __m256 wv = _mm256_set1_ps(w);
            int32_t i = 0;
            for (; i + 8 <= d; i += 8)
                _mm256_storeu_ps(o + i, _mm256_fmadd_ps(wv, _mm256_loadu_ps(vr + i),
                                                        _mm256_loadu_ps(o + i)));
            for (; i < d; i++) o[i] += w * vr[i];
        }
    }
}

static AVX2_FN void convert_avx2(llt_dtype t, const uint16_t *h, int64_t stride, int32_t cnt,
                                 int32_t d, float *buf) {
    for (int32_t j = 0; j < cnt; j++, h += stride) {
        float *o = buf + (int64_t)j * d;
        int32_t i = 0;
        for (; i + 8 <= d; i += 8) {
            __m128i x = _mm_loadu_si128((const __m128i *)(h + i));
            __m256 f = t == LLT_DTYPE_F16
                           ? _mm256_cvtph_ps(x)
                           : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(x), 16));
            _mm256_storeu_ps(o + i, f);
        }
        for (; i < d; i++) o[i] = t == LLT_DTYPE_F16 ? llt_f16_to_f32(h[i]) : llt_bf16_to_f32(h[i]);
    }
}

static const page_kernels k_avx2 = {scores_avx2, accum_avx2, convert_avx2};

static bool has_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}
#else
static const page_kernels k_avx2 = {scores_scalar, accum_scalar, convert_scalar};
static bool has_avx2(void) { return false; }
#endif

static const page_kernels *pick(llt_attn_isa isa) {
    return isa != LLT_ATTN_ISA_SCALAR && has_avx2() ? &k_avx2 : &k_scalar;
}

/* ---- one head group over the pages ------------------------------------------------- */

/* Rows [0, cnt) of kv head g in page `page` of pool, as float32 rows of head_dim with a
 * stride of *stride floats: the pool itself for F32, else converted into buf. */
static const float *page_rows(const kv_view *w, const page_kernels *kn, const void *pool,
                              int32_t page, int32_t g, int32_t cnt, float *buf, int64_t *stride) {
    int64_t row = (int64_t)w->n_kv_heads * w->head_dim;
    int64_t base = (int64_t)page * w->page_size * row + (int64_t)g * w->head_dim;
    if (w->dtype == LLT_DTYPE_F32) {
        *stride = row;
        return (const float *)pool + base;
    }
    kn->convert(w->dtype, (const uint16_t *)pool + base, row, cnt, w->head_dim, buf);
    *stride = w->head_dim;
    return buf;
}

/* Scratch layout: kbuf [page_size, head_dim], vbuf [page_size, head_dim],
 * m [n_heads], l [n_heads], scores [n_heads, page_size]. */
static int64_t scratch_floats(int32_t page_size, int32_t head_dim, int32_t n_heads) {
    return 2 * (int64_t)page_size * head_dim + (int64_t)n_heads * (2 + page_size);
}

int64_t llt_cpu_attention_scratch_floats(const llt_kv_cache *c, int32_t n_heads) {
    return scratch_floats(c->o.page_size, c->o.head_dim, n_heads);
}

/* Softmax update of G heads with one page's scores s[G, cnt]; turns s into weights. */
static void softmax_page(float *s, int32_t G, int32_t cnt, int32_t ps, float *m, float *l,
                         float *acc, int32_t d) {
    for (int32_t h = 0; h < G; h++) {
        float *sh = s + (int64_t)h * ps, mx = m[h];
        for (int32_t j = 0; j < cnt; j++) mx = sh[j] > mx ? sh[j] : mx;
        if (mx > m[h]) { /* new maximum: rescale what was accumulated so far */
            float a = expf(m[h] - mx);
            l[h] *= a;
            for (int32_t i = 0; i < d; i++) acc[(int64_t)h * d + i] *= a;
            m[h] = mx;
        }
        for (int32_t j = 0; j < cnt; j++) {
            sh[j] = expf(sh[j] - mx);
            l[h] += sh[j];
        }
    }
}

/* out[G, d] = attention of q[G, d] (heads of kv group g) over keys [0, n_keys). */
static void attend_group(const kv_view *w, const page_kernels *kn, int32_t g, int32_t n_keys,
                         const float *q, int32_t G, float scale, float *out, float *scratch) {
    int32_t d = w->head_dim, ps = w->page_size;
    float *kbuf = scratch, *vbuf = kbuf + (int64_t)ps * d, *m = vbuf + (int64_t)ps * d;
    float *l = m + G, *s = l + G;
    for (int32_t h = 0; h < G; h++) m[h] = -INFINITY, l[h] = 0;
    for (int64_t i = 0; i < (int64_t)G * d; i++) out[i] = 0;
    for (int32_t start = 0; start < n_keys; start += ps) {
        int32_t page = w->blocks[start / ps], cnt = n_keys - start < ps ? n_keys - start : ps;
        int64_t ks, vs;
        const float *k = page_rows(w, kn, w->k, page, g, cnt, kbuf, &ks);
        kn->scores(q, k, ks, G, cnt, d, ps, scale, s);
        softmax_page(s, G, cnt, ps, m, l, out, d);
        const float *v = page_rows(w, kn, w->v, page, g, cnt, vbuf, &vs);
        kn->accum(s, v, vs, G, cnt, d, ps, out);
    }
    for (int32_t h = 0; h < G; h++) {
        float inv = l[h] > 0 ? 1.0f / l[h] : 0.0f;
        for (int32_t i = 0; i < d; i++) out[(int64_t)h * d + i] *= inv;
    }
}

static kv_view cache_view(const llt_kv_cache *c, int32_t layer, int32_t seq) {
    kv_view w = {c->k_pool[layer], c->v_pool[layer], c->seqs[seq].blocks, c->o.page_size,
                 c->o.n_kv_heads, c->o.head_dim, c->o.kv_dtype};
    return w;
}

void llt_cpu_attention(const llt_kv_cache *c, int32_t layer, int32_t seq, const float *q,
                       int32_t n_q, int32_t q_pos0, int32_t n_heads, float scale, float *out,
                       float *scratch) {
    kv_view w = cache_view(c, layer, seq);
    const page_kernels *kn = pick(LLT_ATTN_ISA_AUTO);
    int32_t G = n_heads / w.n_kv_heads, d = w.head_dim;
    for (int32_t i = 0; i < n_q; i++)
        for (int32_t g = 0; g < w.n_kv_heads; g++) {
            int64_t off = ((int64_t)i * n_heads + (int64_t)g * G) * d;
            attend_group(&w, kn, g, q_pos0 + i + 1, q + off, G, scale, out + off, scratch);
        }
}

/* ---- batched / threaded form ------------------------------------------------------- */

static llt_status check_seq(const llt_attn_ctx *x, int32_t i, int32_t row, llt_error *err) {
    const llt_kv_cache *c = x->c;
    const llt_attn_seq *a = &x->seqs[i];
    LLT_CHECK(a->seq >= 0 && a->seq < c->o.max_seqs && c->seqs[a->seq].live, err,
              LLT_ERR_INVALID_ARG, "attention: entry %d: sequence %d is not live", i, a->seq);
    LLT_CHECK(a->row0 == row && a->n_q > 0, err, LLT_ERR_INVALID_ARG,
              "attention: entry %d: rows start at %d (expected %d), count %d (expected > 0)", i,
              a->row0, row, a->n_q);
    int64_t reserved = (int64_t)c->seqs[a->seq].n_blocks * c->o.page_size;
    LLT_CHECK(a->q_pos0 >= 0 && a->q_pos0 + (int64_t)a->n_q <= reserved, err,
              LLT_ERR_INVALID_ARG,
              "attention: sequence %d: positions [%d, %lld) exceed its %lld reserved slots",
              a->seq, a->q_pos0, (long long)a->q_pos0 + a->n_q, (long long)reserved);
    return LLT_OK;
}

llt_status llt_cpu_attention_prepare(llt_attn_ctx *x, llt_error *err) {
    const llt_kv_cache *c = x->c;
    LLT_CHECK(x->layer >= 0 && x->layer < c->o.n_layers, err, LLT_ERR_INVALID_ARG,
              "attention: layer %d out of range [0, %d)", x->layer, c->o.n_layers);
    LLT_CHECK(x->n_heads > 0 && x->n_heads % c->o.n_kv_heads == 0, err, LLT_ERR_INVALID_ARG,
              "attention: n_heads %d is not a multiple of n_kv_heads %d", x->n_heads,
              c->o.n_kv_heads);
    LLT_CHECK(x->scratch_stride >= llt_cpu_attention_scratch_floats(c, x->n_heads), err,
              LLT_ERR_INVALID_ARG, "attention: scratch_stride %lld < %lld needed",
              (long long)x->scratch_stride,
              (long long)llt_cpu_attention_scratch_floats(c, x->n_heads));
    int32_t row = 0;
    for (int32_t i = 0; i < x->n_seqs; i++) {
        LLT_TRY(check_seq(x, i, row, err));
        for (int32_t r = 0; r < x->seqs[i].n_q; r++) x->row_seq[row + r] = i;
        row += x->seqs[i].n_q;
    }
    x->n_rows = row;
    x->n_units = (int64_t)row * c->o.n_kv_heads;
    return LLT_OK;
}

void llt_cpu_attention_task(void *ctx, int64_t begin, int64_t end, int32_t thread) {
    const llt_attn_ctx *x = ctx;
    int32_t nkv = x->c->o.n_kv_heads, d = x->c->o.head_dim, G = x->n_heads / nkv;
    float *scratch = x->scratch + (int64_t)thread * x->scratch_stride;
    const page_kernels *kn = pick(x->isa);
    for (int64_t u = begin; u < end; u++) {
        int32_t row = (int32_t)(u / nkv), g = (int32_t)(u % nkv);
        const llt_attn_seq *a = &x->seqs[x->row_seq[row]];
        kv_view w = cache_view(x->c, x->layer, a->seq);
        int32_t n_keys = a->q_pos0 + (row - a->row0) + 1;
        int64_t off = ((int64_t)row * x->n_heads + (int64_t)g * G) * d;
        attend_group(&w, kn, g, n_keys, x->q + off, G, x->scale, x->out + off, scratch);
    }
}

/* ---- public single-query decode op over llt_kv_pages ------------------------------- */

static llt_status check_pages(const float *q, int32_t n_heads, const llt_kv_pages *kv,
                              const float *out, llt_error *err) {
    LLT_CHECK(q && kv && out && kv->k_pool && kv->v_pool && kv->block_table, err,
              LLT_ERR_INVALID_ARG, "page_attention: NULL argument");
    LLT_CHECK(kv->dtype == LLT_DTYPE_F32 || kv->dtype == LLT_DTYPE_F16 ||
                  kv->dtype == LLT_DTYPE_BF16,
              err, LLT_ERR_UNSUPPORTED, "page_attention: kv dtype %s (expected f32, f16, bf16)",
              llt_dtype_name(kv->dtype));
    LLT_CHECK(kv->page_size > 0 && kv->n_kv_heads > 0 && kv->head_dim > 0, err,
              LLT_ERR_INVALID_ARG, "page_attention: page_size %d, n_kv_heads %d, head_dim %d",
              kv->page_size, kv->n_kv_heads, kv->head_dim);
    LLT_CHECK(n_heads > 0 && n_heads % kv->n_kv_heads == 0, err, LLT_ERR_INVALID_ARG,
              "page_attention: n_heads %d is not a multiple of n_kv_heads %d", n_heads,
              kv->n_kv_heads);
    LLT_CHECK(kv->seq_len > 0 && kv->seq_len <= (int64_t)kv->n_blocks * kv->page_size, err,
              LLT_ERR_INVALID_ARG, "page_attention: seq_len %d with %d blocks of %d", kv->seq_len,
              kv->n_blocks, kv->page_size);
    return LLT_OK;
}

llt_status llt_page_attention_f32(const float *q, int32_t n_heads, const llt_kv_pages *kv,
                                  float scale, float *out, llt_error *err) {
    LLT_TRY(check_pages(q, n_heads, kv, out, err));
    float *scratch = malloc(sizeof(float) * scratch_floats(kv->page_size, kv->head_dim, n_heads));
    LLT_CHECK(scratch, err, LLT_ERR_NOMEM, "page_attention: out of memory for scratch");
    kv_view w = {kv->k_pool, kv->v_pool, kv->block_table, kv->page_size, kv->n_kv_heads,
                 kv->head_dim, kv->dtype};
    const page_kernels *kn = pick(LLT_ATTN_ISA_AUTO);
    int32_t G = n_heads / kv->n_kv_heads, d = kv->head_dim;
    if (scale == 0) scale = 1.0f / sqrtf((float)d);
    for (int32_t g = 0; g < kv->n_kv_heads; g++)
        attend_group(&w, kn, g, kv->seq_len, q + (int64_t)g * G * d, G, scale,
                     out + (int64_t)g * G * d, scratch);
    free(scratch);
    return LLT_OK;
}
