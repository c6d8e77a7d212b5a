/* attention.c: paged attention on the CPU, one page at a time with an online softmax.
 *
 * For a head group (the query heads sharing one kv head) and one page of keys:
 *   scores[h, j] = q_h . k_j * scale                 (the page's K rows, converted once)
 *   m_h' = max(m_h, max_j scores); rescale acc_h, l_h by exp(m_h - m_h')
 *   acc_h += sum_j exp(scores[h, j] - m_h') v_j      (the page's V rows, converted once)
 * and out_h = acc_h / l_h at the end. A page is page_size consecutive positions, so each
 * page costs one block-table lookup and the rescale happens at most once per page. */
#include "backend/cpu/attention.h"

#include "backend/cpu/attention_kernels.h"

#include <math.h>
#include <stdlib.h>

/* One layer's pools and one block table: what the kernel reads. */
typedef struct kv_view {
    const void *k, *v;      /* [max_pages, page_size, n_kv_heads, head_dim] */
    const int32_t *blocks;  /* [n_blocks] */
    int32_t page_size, n_kv_heads, head_dim;
    llt_dtype dtype;
    size_t f8_page; /* F8_E4M3: bytes a page (data, then scales: kv/paged_cache.h) */
} kv_view;

/* Rows [0, cnt) of kv head g in page `page` of pool, as float32 rows of head_dim with a
 * stride of *stride floats: the pool itself for F32, else converted into buf. */
static const float *page_rows(const kv_view *w, const llt_attn_kernels *kn, const void *pool,
                              int32_t page, int32_t g, int32_t cnt, float *buf, int64_t *stride) {
    int64_t row = (int64_t)w->n_kv_heads * w->head_dim;
    int64_t base = (int64_t)page * w->page_size * row + (int64_t)g * w->head_dim;
    if (w->dtype == LLT_DTYPE_F8_E4M3) {
        const uint8_t *p = (const uint8_t *)pool + (size_t)page * w->f8_page;
        const float *sc = (const float *)(p + llt_kv_f8_scales_offset(w->page_size, w->n_kv_heads, w->head_dim));
        kn->convert8(p + (size_t)g * w->head_dim, row, sc + g, w->n_kv_heads, cnt, w->head_dim, buf);
        *stride = w->head_dim;
        return buf;
    }
    if (w->dtype == LLT_DTYPE_F32) {
        *stride = row;
        return (const float *)pool + base;
    }
    kn->convert(w->dtype, (const uint16_t *)pool + base, row, cnt, w->head_dim, buf);
    *stride = w->head_dim;
    return buf;
}

/* Asks for rows [0, cnt) of kv head g in page `page` of K and V ahead of use: a head's rows are
 * head_dim elements at a stride of a whole position (all kv heads), a pattern the hardware
 * prefetcher does not follow from one page to the next, and the weights streaming past between
 * two layers' attention have pushed the cache out of L2. */
static void prefetch_page(const kv_view *w, int32_t page, int32_t g, int32_t cnt) {
    int64_t es = w->dtype == LLT_DTYPE_F32 ? 4 : w->dtype == LLT_DTYPE_F8_E4M3 ? 1 : 2;
    int64_t row = (int64_t)w->n_kv_heads * w->head_dim * es, len = w->head_dim * es;
    int64_t base = (w->dtype == LLT_DTYPE_F8_E4M3 ? (int64_t)(page * w->f8_page) : (int64_t)page * w->page_size * row) +
                   (int64_t)g * w->head_dim * es; /* (an f8 page's scales: one line a few rows, not asked for) */
    for (int32_t j = 0; j < cnt; j++)
        for (int64_t o = 0; o < len; o += 64) {
            __builtin_prefetch((const char *)w->k + base + j * row + o);
            __builtin_prefetch((const char *)w->v + base + j * row + o);
        }
}

/* Rows of one sequence's chunk that share their pages: up to ATTN_TILE of them walk the pages
 * together, so that each page is converted (f16 / bf16 / f8) and brought into the cache once for
 * all of them rather than once a row. A row still sees the same pages in the same order, each
 * through the same page kernel, so its result is the same bits as alone. */
enum { ATTN_TILE = LLT_CPU_ATTN_TILE };

/* Scratch layout: kbuf [page_size, head_dim], vbuf [page_size, head_dim],
 * scores [n_heads, score_stride(page_size)], then m, l [ATTN_TILE, 2, n_heads]. */
static int64_t scratch_floats(int32_t page_size, int32_t head_dim, int32_t n_heads) {
    return 2 * (int64_t)page_size * head_dim +
           (int64_t)n_heads * (2 * ATTN_TILE + llt_attn_score_stride(page_size));
}

int64_t llt_cpu_attention_scratch_floats(const llt_kv_cache *c, int32_t n_heads) {
    return scratch_floats(c->o.page_size, c->o.head_dim, n_heads);
}

/* Rows [0, n) (n <= ATTN_TILE) of head group g: row i is q + i * qs ([G, d], the heads of kv
 * group g) at keys [0, n_keys + i), written to out + i * os. */
static void attend_rows(const kv_view *w, const llt_attn_kernels *kn, int32_t g, int32_t n_keys, int32_t n,
                        const float *q, int64_t qs, int32_t G, float scale, float *out, int64_t os,
                        float *scratch) {
    int32_t d = w->head_dim, ps = w->page_size, last = n_keys + n - 1; /* the last row's keys */
    float *kbuf = scratch, *vbuf = kbuf + (int64_t)ps * d, *sc = vbuf + (int64_t)ps * d;
    float *ml = sc + (int64_t)G * llt_attn_score_stride(ps);
    llt_attn_page p = {NULL, NULL, NULL, 0, 0, G, 0, d, llt_attn_score_stride(ps), scale, NULL, NULL, sc, NULL};
    for (int32_t i = 0; i < n; i++) {
        for (int32_t h = 0; h < G; h++) ml[2 * G * i + h] = -INFINITY, ml[2 * G * i + G + h] = 0;
        for (int64_t e = 0; e < (int64_t)G * d; e++) out[i * os + e] = 0;
    }
    prefetch_page(w, w->blocks[0], g, last < ps ? last : ps);
    for (int32_t start = 0; start < last; start += ps) {
        int32_t page = w->blocks[start / ps], cnt = last - start < ps ? last - start : ps;
        if (start + ps < last) /* the next page while this one is computed */
            prefetch_page(w, w->blocks[start / ps + 1], g, last - start - ps < ps ? last - start - ps : ps);
        p.k = page_rows(w, kn, w->k, page, g, cnt, kbuf, &p.ks);
        p.v = page_rows(w, kn, w->v, page, g, cnt, vbuf, &p.vs);
        for (int32_t i = 0; i < n; i++) {
            const int32_t nk = n_keys + i;
            if (nk <= start) continue;
            p.cnt = nk - start < ps ? nk - start : ps;
            p.q = q + i * qs, p.m = ml + 2 * G * i, p.l = p.m + G, p.acc = out + i * os;
            kn->page(&p);
        }
    }
    for (int32_t i = 0; i < n; i++)
        for (int32_t h = 0; h < G; h++) {
            float l = ml[2 * G * i + G + h], inv = l > 0 ? 1.0f / l : 0.0f;
            for (int32_t e = 0; e < d; e++) out[i * os + (int64_t)h * d + e] *= inv;
        }
}

/* out[G, d] = attention of q[G, d] (heads of kv group g) over keys [0, n_keys). */
static void attend_group(const kv_view *w, const llt_attn_kernels *kn, int32_t g, int32_t n_keys,
                         const float *q, int32_t G, float scale, float *out, float *scratch) {
    attend_rows(w, kn, g, n_keys, 1, q, 0, G, scale, out, 0, scratch);
}

static kv_view cache_view(const llt_kv_cache *c, int32_t layer, int32_t seq) {
    kv_view w = {c->k_pool[layer], c->v_pool[layer], c->seqs[seq].blocks, c->o.page_size,
                 c->o.n_kv_heads, c->o.head_dim, c->o.kv_dtype, c->page_bytes};
    return w;
}

void llt_cpu_attention(const llt_kv_cache *c, int32_t layer, int32_t seq, const float *q,
                       int32_t n_q, int32_t q_pos0, int32_t n_heads, float scale, float *out,
                       float *scratch) {
    kv_view w = cache_view(c, layer, seq);
    const llt_attn_kernels *kn = llt_attn_kernels_pick(LLT_ATTN_ISA_AUTO, w.head_dim);
    int32_t G = n_heads / w.n_kv_heads, d = w.head_dim;
    for (int32_t i = 0; i < n_q; i += ATTN_TILE)
        for (int32_t g = 0; g < w.n_kv_heads; g++) {
            int64_t off = ((int64_t)i * n_heads + (int64_t)g * G) * d;
            attend_rows(&w, kn, g, q_pos0 + i + 1, n_q - i < ATTN_TILE ? n_q - i : ATTN_TILE, q + off,
                        (int64_t)n_heads * d, G, scale, out + off, (int64_t)n_heads * d, scratch);
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
    return LLT_OK;
}

void llt_cpu_attention_group_rows(const llt_attn_ctx *x, int32_t g, int32_t r0, int32_t r1, int32_t thread) {
    int32_t nkv = x->c->o.n_kv_heads, d = x->c->o.head_dim, G = x->n_heads / nkv;
    float *scratch = x->scratch + (int64_t)thread * x->scratch_stride;
    const llt_attn_kernels *kn = llt_attn_kernels_pick(x->isa, d);
    const int64_t rs = (int64_t)x->n_heads * d; /* floats a row of q / out */
    for (int32_t r = r0; r < r1;) {
        const llt_attn_seq *a = &x->seqs[x->row_seq[r]];
        const int32_t end = a->row0 + a->n_q < r1 ? a->row0 + a->n_q : r1; /* this sequence's rows here */
        const int32_t n = end - r < ATTN_TILE ? end - r : ATTN_TILE;
        kv_view w = cache_view(x->c, x->layer, a->seq);
        const int64_t off = (int64_t)r * rs + (int64_t)g * G * d;
        attend_rows(&w, kn, g, a->q_pos0 + (r - a->row0) + 1, n, x->q + off, rs, G, x->scale, x->out + off, rs,
                    scratch);
        r += n;
    }
}

/* ---- public single-query decode op over llt_kv_pages ------------------------------- */

static llt_status check_pages(const float *q, int32_t n_heads, const llt_kv_pages *kv,
                              const float *out, llt_error *err) {
    LLT_CHECK(q && kv && out && kv->k_pool && kv->v_pool && kv->block_table, err,
              LLT_ERR_INVALID_ARG, "page_attention: NULL argument");
    LLT_CHECK(kv->dtype == LLT_DTYPE_F32 || kv->dtype == LLT_DTYPE_F16 || kv->dtype == LLT_DTYPE_BF16 ||
                  kv->dtype == LLT_DTYPE_F8_E4M3,
              err, LLT_ERR_UNSUPPORTED, "page_attention: kv dtype %s (expected f32, f16, bf16, f8_e4m3)",
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
                 kv->head_dim, kv->dtype, llt_kv_f8_page_bytes(kv->page_size, kv->n_kv_heads, kv->head_dim)};
    const llt_attn_kernels *kn = llt_attn_kernels_pick(LLT_ATTN_ISA_AUTO, kv->head_dim);
    int32_t G = n_heads / kv->n_kv_heads, d = kv->head_dim;
    if (scale == 0) scale = 1.0f / sqrtf((float)d);
    for (int32_t g = 0; g < kv->n_kv_heads; g++)
        attend_group(&w, kn, g, kv->seq_len, q + (int64_t)g * G * d, G, scale,
                     out + (int64_t)g * G * d, scratch);
    free(scratch);
    return LLT_OK;
}
