/* test_kv.c: the paged KV cache's page accounting, fork / copy-on-write, exhaustion, dtypes,
 * and storage hooks (kv/paged_cache.c, kv/kv_io.c). */
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "kv/paged_cache.h"
#include "testlib.h"

enum { NL = 2, NKV = 2, HD = 4, ROW = NKV * HD };

static llt_kv_cache *make(int32_t ps, int32_t max_pages, int32_t max_seqs, llt_dtype t) {
    llt_kv_cache_opts o = {NL, NKV, HD, ps, max_pages, max_seqs, t};
    llt_kv_cache *c = NULL;
    llt_error e;
    CHECK_OK(llt_kv_cache_create(&o, &c, &e), &e);
    return c;
}

/* value of element i of token `pos` of seq tag `tag` in layer l (k: sign +, v: sign -) */
static float val(int tag, int l, int pos, int i) { return (float)(tag * 1000 + l * 100 + pos) + i / 8.0f; }

/* Appends n tokens with tagged values to every layer. */
static llt_status append(llt_kv_cache *c, int32_t seq, int tag, int32_t n, llt_error *e) {
    int32_t len = llt_kv_seq_len(c, seq);
    float *k = malloc(sizeof(float) * n * ROW), *v = malloc(sizeof(float) * n * ROW);
    llt_status s = LLT_OK;
    for (int l = 0; l < NL && s == LLT_OK; l++) {
        for (int32_t t = 0; t < n; t++)
            for (int i = 0; i < ROW; i++)
                k[t * ROW + i] = val(tag, l, len + t, i), v[t * ROW + i] = -val(tag, l, len + t, i);
        s = llt_kv_cache_allocate(c, seq, l, k, v, n, e);
    }
    free(k), free(v);
    return s;
}

/* Reads element i of token pos of seq / layer through get_pages (f32 cache). */
static float read_k(const llt_kv_cache *c, int32_t seq, int l, int32_t pos, int i, bool v) {
    llt_kv_pages pg;
    llt_error e;
    if (llt_kv_cache_get_pages(c, seq, l, &pg, &e) != LLT_OK) return NAN;
    int64_t off = ((int64_t)pg.block_table[pos / pg.page_size] * pg.page_size + pos % pg.page_size) * ROW + i;
    const void *pool = v ? pg.v_pool : pg.k_pool;
    if (pg.dtype == LLT_DTYPE_F8_E4M3) { /* paged_cache.h: e4m3 bytes, then a float scale per (token, head) */
        const size_t pb = llt_kv_f8_page_bytes(pg.page_size, NKV, HD), slot = (size_t)(pos % pg.page_size);
        const unsigned char *page = (const unsigned char *)pool + (size_t)pg.block_table[pos / pg.page_size] * pb;
        float s;
        memcpy(&s, page + llt_kv_f8_scales_offset(pg.page_size, NKV, HD) + (slot * NKV + (size_t)(i / HD)) * 4, 4);
        return llt_e4m3_to_f32(page[slot * ROW + (size_t)i]) * s;
    }
    if (pg.dtype == LLT_DTYPE_F16) return llt_f16_to_f32(((const uint16_t *)pool)[off]);
    if (pg.dtype == LLT_DTYPE_BF16) return llt_bf16_to_f32(((const uint16_t *)pool)[off]);
    return ((const float *)pool)[off];
}

/* Every token of seq holds the values tagged `tag` (positions [from, len)). */
static bool holds(const llt_kv_cache *c, int32_t seq, int tag, int32_t from) {
    for (int32_t p = from; p < llt_kv_seq_len(c, seq); p++)
        for (int l = 0; l < NL; l++)
            for (int i = 0; i < ROW; i++)
                if (read_k(c, seq, l, p, i, false) != val(tag, l, p, i) ||
                    read_k(c, seq, l, p, i, true) != -val(tag, l, p, i))
                    return false;
    return true;
}

static int32_t pages_for(int32_t len, int32_t ps) { return (len + ps - 1) / ps; }

static void test_accounting(void) {
    int32_t ps = 8;
    llt_kv_cache *c = make(ps, 64, 8, LLT_DTYPE_F32);
    llt_error e;
    const int32_t lens[5] = {1, 7, 8, 9, 30};
    int32_t ids[5], total = 0;
    for (int i = 0; i < 5; i++) {
        CHECK_OK(llt_kv_seq_create(c, &ids[i], &e), &e);
        /* grow in uneven steps: 1 token, then the rest */
        CHECK_OK(append(c, ids[i], i + 1, 1, &e), &e);
        if (lens[i] > 1) CHECK_OK(append(c, ids[i], i + 1, lens[i] - 1, &e), &e);
        total += pages_for(lens[i], ps);
        CHECK(llt_kv_seq_len(c, ids[i]) == lens[i]);
        CHECK(llt_kv_pages_in_use(c) == total);
    }
    CHECK(llt_kv_pages_in_use(c) + llt_kv_pages_free(c) == 64);
    for (int i = 0; i < 5; i++) CHECK_MSG(holds(c, ids[i], i + 1, 0), "seq %d", i);
    /* free returns pages at once; the next sequence reuses exactly those pages */
    llt_kv_pages pg;
    CHECK_OK(llt_kv_cache_get_pages(c, ids[4], 0, &pg, &e), &e);
    int32_t freed[4];
    memcpy(freed, pg.block_table, sizeof freed);
    llt_kv_seq_free(c, ids[4]);
    total -= 4;
    CHECK(llt_kv_pages_in_use(c) == total);
    CHECK(llt_kv_seq_len(c, ids[4]) == -1);
    int32_t again;
    CHECK_OK(llt_kv_seq_create(c, &again, &e), &e);
    CHECK(again == ids[4]); /* the freed slot */
    CHECK_OK(append(c, again, 9, 4 * ps, &e), &e);
    CHECK_OK(llt_kv_cache_get_pages(c, again, 1, &pg, &e), &e);
    for (int b = 0; b < 4; b++) {
        bool found = false;
        for (int j = 0; j < 4; j++) found |= pg.block_table[b] == freed[j];
        CHECK_MSG(found, "block %d: page %d was not one of the freed pages", b, pg.block_table[b]);
    }
    CHECK(llt_kv_pages_in_use(c) == total + 4);
    for (int i = 0; i < 4; i++) CHECK(holds(c, ids[i], i + 1, 0));
    CHECK(holds(c, again, 9, 0));
    llt_kv_seq_free(c, again);
    llt_kv_seq_free(c, again); /* double free is a no-op */
    CHECK(llt_kv_pages_in_use(c) == total);
    llt_kv_cache_free(c);
}

/* Fork mid-page: the prefix is shared; the first divergent write copies exactly one page. */
static void test_fork_cow(void) {
    int32_t ps = 8;
    llt_kv_cache *c = make(ps, 32, 4, LLT_DTYPE_F32);
    llt_error e;
    int32_t a, b;
    CHECK_OK(llt_kv_seq_create(c, &a, &e), &e);
    CHECK_OK(append(c, a, 1, 2 * ps + 3, &e), &e);
    CHECK(llt_kv_pages_in_use(c) == 3);
    CHECK_OK(llt_kv_seq_fork(c, a, &b, &e), &e);
    CHECK(llt_kv_pages_in_use(c) == 3); /* shared: no new page */
    CHECK(llt_kv_seq_len(c, b) == 2 * ps + 3);
    CHECK(holds(c, b, 1, 0));
    llt_kv_pages pa, pb;
    CHECK_OK(llt_kv_cache_get_pages(c, a, 0, &pa, &e), &e);
    CHECK_OK(llt_kv_cache_get_pages(c, b, 0, &pb, &e), &e);
    CHECK(pa.n_blocks == 3 && pb.n_blocks == 3);
    for (int i = 0; i < 3; i++) CHECK(pa.block_table[i] == pb.block_table[i]);
    int32_t last_a = pa.block_table[2];
    /* the fork writes into the shared last page: exactly one copy */
    CHECK_OK(append(c, b, 2, 1, &e), &e);
    CHECK(llt_kv_pages_in_use(c) == 4);
    CHECK_OK(llt_kv_cache_get_pages(c, a, 0, &pa, &e), &e);
    CHECK_OK(llt_kv_cache_get_pages(c, b, 0, &pb, &e), &e);
    CHECK(pa.block_table[0] == pb.block_table[0] && pa.block_table[1] == pb.block_table[1]);
    CHECK(pb.block_table[2] != last_a && pa.block_table[2] == last_a);
    CHECK(c->ref[pa.block_table[0]] == 2 && c->ref[last_a] == 1 && c->ref[pb.block_table[2]] == 1);
    /* the copy kept the shared prefix of the page, the parent is untouched */
    CHECK(holds(c, a, 1, 0));
    for (int l = 0; l < NL; l++) {
        CHECK(read_k(c, b, l, 2 * ps + 2, 1, false) == val(1, l, 2 * ps + 2, 1));
        CHECK(read_k(c, b, l, 2 * ps + 3, 1, true) == -val(2, l, 2 * ps + 3, 1));
    }
    /* the parent now owns its last page alone: appending into it copies nothing */
    CHECK_OK(append(c, a, 1, 2, &e), &e);
    CHECK(llt_kv_pages_in_use(c) == 4);
    CHECK(holds(c, a, 1, 0));
    /* pages in use == sum of ceil(len / ps) minus shared pages (2 shared) */
    CHECK(llt_kv_pages_in_use(c) == pages_for(llt_kv_seq_len(c, a), ps) +
                                        pages_for(llt_kv_seq_len(c, b), ps) - 2);
    /* freeing the parent keeps the fork's shared pages alive */
    llt_kv_seq_free(c, a);
    CHECK(llt_kv_pages_in_use(c) == 3);
    CHECK(c->ref[pb.block_table[0]] == 1);
    CHECK(llt_kv_seq_len(c, b) == 2 * ps + 4);
    for (int l = 0; l < NL; l++) CHECK(read_k(c, b, l, 5, 0, false) == val(1, l, 5, 0));
    llt_kv_seq_free(c, b);
    CHECK(llt_kv_pages_in_use(c) == 0);
    llt_kv_cache_free(c);
}

/* Fork at a page boundary: nothing to copy, the fork's next token takes a fresh page. */
static void test_fork_boundary(void) {
    llt_kv_cache *c = make(4, 16, 6, LLT_DTYPE_F32);
    llt_error e;
    int32_t a, b, d;
    CHECK_OK(llt_kv_seq_create(c, &a, &e), &e);
    CHECK_OK(append(c, a, 1, 8, &e), &e);
    CHECK_OK(llt_kv_seq_fork(c, a, &b, &e), &e);
    CHECK_OK(llt_kv_seq_fork(c, b, &d, &e), &e); /* fork of a fork: refs 3 */
    CHECK(c->ref[c->seqs[a].blocks[0]] == 3);
    CHECK_OK(append(c, b, 2, 1, &e), &e);
    CHECK(llt_kv_pages_in_use(c) == 3);
    CHECK(holds(c, a, 1, 0) && holds(c, d, 1, 0));
    CHECK(c->ref[c->seqs[a].blocks[1]] == 3);
    /* empty fork */
    int32_t z, zf;
    CHECK_OK(llt_kv_seq_create(c, &z, &e), &e);
    CHECK_OK(llt_kv_seq_fork(c, z, &zf, &e), &e);
    CHECK(llt_kv_seq_len(c, zf) == 0 && llt_kv_pages_in_use(c) == 3);
    llt_kv_cache_free(c);
}

/* Snapshot of every page's bytes of one layer's pools (f32 cache). */
static void *snapshot(const llt_kv_cache *c) {
    size_t n = c->page_bytes * (size_t)c->o.max_pages;
    char *s = malloc(2 * n * NL);
    for (int l = 0; l < NL; l++) {
        memcpy(s + (2 * l) * n, c->k_pool[l], n);
        memcpy(s + (2 * l + 1) * n, c->v_pool[l], n);
    }
    return s;
}

static void test_exhaustion(void) {
    int32_t ps = 4;
    llt_kv_cache *c = make(ps, 6, 4, LLT_DTYPE_F32);
    llt_error e;
    int32_t a, b, f;
    CHECK_OK(llt_kv_seq_create(c, &a, &e), &e);
    CHECK_OK(llt_kv_seq_create(c, &b, &e), &e);
    CHECK_OK(append(c, a, 1, 10, &e), &e); /* 3 pages */
    CHECK_OK(append(c, b, 2, 6, &e), &e);  /* 2 pages */
    CHECK(llt_kv_pages_free(c) == 1);
    void *before = snapshot(c);
    /* b needs 2 more pages for 7 tokens: only 1 free -> FULL, nothing changed */
    CHECK_ERR(append(c, b, 3, 7, &e), LLT_ERR_FULL, &e, "1 of 6 free");
    CHECK(llt_kv_seq_len(c, b) == 6 && llt_kv_pages_free(c) == 1 && c->seqs[b].n_blocks == 2);
    void *after = snapshot(c);
    CHECK(memcmp(before, after, c->page_bytes * 6 * 2 * NL) == 0);
    free(after);
    CHECK(holds(c, a, 1, 0) && holds(c, b, 2, 0));
    /* a fork whose shared last page would need a copy, with no page free */
    CHECK_OK(append(c, b, 2, 1, &e), &e); /* b: 7 tokens, fills no new page */
    CHECK_OK(append(c, a, 1, 3, &e), &e); /* a: 13 tokens: takes the last page */
    CHECK(llt_kv_pages_free(c) == 0);
    CHECK_OK(llt_kv_seq_fork(c, b, &f, &e), &e);
    CHECK_ERR(append(c, f, 4, 1, &e), LLT_ERR_FULL, &e, "needs 1 pages");
    CHECK(llt_kv_seq_len(c, f) == 7 && holds(c, f, 2, 0) && holds(c, b, 2, 0));
    CHECK_ERR(llt_kv_reserve(c, a, 4, &e), LLT_ERR_FULL, &e, "kv cache full");
    /* freeing gives the pages back: the step that failed now succeeds */
    llt_kv_seq_free(c, a);
    CHECK(llt_kv_pages_free(c) == 4);
    CHECK_OK(append(c, f, 4, 1, &e), &e);
    CHECK(llt_kv_pages_free(c) == 3);
    CHECK(holds(c, b, 2, 0) && holds(c, f, 2, 0) == false && holds(c, f, 4, 7));
    /* sequence slots run out too */
    int32_t s3, s4;
    CHECK_OK(llt_kv_seq_create(c, &s3, &e), &e);
    CHECK_OK(llt_kv_seq_create(c, &s4, &e), &e);
    CHECK_ERR(llt_kv_seq_create(c, &s4, &e), LLT_ERR_FULL, &e, "sequence slots");
    CHECK_ERR(llt_kv_seq_fork(c, b, &s4, &e), LLT_ERR_FULL, &e, "sequence slots");
    free(before);
    llt_kv_cache_free(c);
}

/* The backends' path: reserve, write, commit or unreserve after a failed step. */
static void test_reserve_unreserve(void) {
    llt_kv_cache *c = make(4, 8, 2, LLT_DTYPE_F32);
    llt_error e;
    int32_t a;
    CHECK_OK(llt_kv_seq_create(c, &a, &e), &e);
    CHECK_OK(llt_kv_reserve(c, a, 9, &e), &e);
    CHECK(llt_kv_pages_in_use(c) == 3 && llt_kv_seq_len(c, a) == 0);
    CHECK_OK(llt_kv_reserve(c, a, 9, &e), &e); /* idempotent */
    CHECK(llt_kv_pages_in_use(c) == 3);
    llt_kv_unreserve(c, a);
    CHECK(llt_kv_pages_in_use(c) == 0);
    CHECK_OK(llt_kv_reserve(c, a, 5, &e), &e);
    llt_kv_commit(c, a, 5);
    CHECK(llt_kv_seq_len(c, a) == 5 && llt_kv_pages_in_use(c) == 2);
    CHECK_OK(llt_kv_reserve(c, a, 0, &e), &e);
    CHECK_ERR(llt_kv_reserve(c, a, -1, &e), LLT_ERR_INVALID_ARG, &e, "-1 new tokens");
    CHECK_ERR(llt_kv_reserve(c, 1, 1, &e), LLT_ERR_INVALID_ARG, &e, "not live");
    llt_kv_commit(c, a, 100); /* clamped to the reserved slots */
    CHECK(llt_kv_seq_len(c, a) == 8);
    llt_kv_unreserve(c, 1);  /* dead ids are ignored */
    llt_kv_commit(c, 1, 1);
    llt_kv_cache_free(c);
}

static void test_dtypes(void) {
    const llt_dtype ts[2] = {LLT_DTYPE_F16, LLT_DTYPE_BF16};
    for (int t = 0; t < 2; t++) {
        llt_kv_cache *c = make(4, 8, 2, ts[t]);
        llt_error e;
        int32_t a;
        CHECK(c->page_bytes == 4 * ROW * 2);
        CHECK_OK(llt_kv_seq_create(c, &a, &e), &e);
        /* values exact in both formats round-trip exactly (small integers + eighths) */
        float k[5 * ROW], v[5 * ROW];
        for (int i = 0; i < 5 * ROW; i++) k[i] = (float)(i % 17) - 8 + (float)(i % 8) / 8.0f, v[i] = -k[i] * 4;
        for (int l = 0; l < NL; l++) CHECK_OK(llt_kv_cache_allocate(c, a, l, k, v, 5, &e), &e);
        bool ok = true;
        for (int p = 0; p < 5; p++)
            for (int i = 0; i < ROW; i++)
                ok &= read_k(c, a, 1, p, i, false) == k[p * ROW + i] &&
                      read_k(c, a, 1, p, i, true) == v[p * ROW + i];
        CHECK_MSG(ok, "%s round trip", llt_dtype_name(ts[t]));
        /* an inexact value is rounded to nearest: 1/3 within half an ulp */
        float third[ROW];
        for (int i = 0; i < ROW; i++) third[i] = 1.0f / 3.0f;
        for (int l = 0; l < NL; l++) CHECK_OK(llt_kv_cache_allocate(c, a, l, third, third, 1, &e), &e);
        float got = read_k(c, a, 0, 5, 2, false), ulp = ts[t] == LLT_DTYPE_F16 ? 1.0f / 4096 : 1.0f / 512; /* 10 / 7 mantissa bits at 2^-2 */
        CHECK_MSG(fabsf(got - 1.0f / 3.0f) <= ulp / 2, "%s: 1/3 -> %.8f", llt_dtype_name(ts[t]), got);
        llt_kv_cache_free(c);
    }
}

static llt_status no_write(void *k_pool, void *v_pool, int64_t off, int32_t i, void *user, llt_error *err) {
    (void)k_pool, (void)v_pool, (void)off, (void)i, (void)user, (void)err;
    return LLT_OK;
}

/* The f8 cache on the host (paged_cache.h's layout): rows whose values are e4m3 codes times a
 * power of two come back exactly with that scale (amax / 448), a zero row with scale 1, an
 * inexact row to within e4m3's half step of its largest; a fork's copy-on-write carries the
 * scales; rows already in the cache's dtype (allocate_fn) carry none and are refused. */
static void test_f8(void) {
    llt_kv_cache *c = make(4, 8, 2, LLT_DTYPE_F8_E4M3);
    llt_error e;
    int32_t a, b;
    CHECK(c->page_bytes == llt_kv_f8_page_bytes(4, NKV, HD) && c->page_bytes == 32 + 32); /* bytes, scales */
    CHECK_OK(llt_kv_seq_create(c, &a, &e), &e);
    static const float codes[HD] = {448.0f, -1.0f, 0.0f, 0.01953125f}; /* 0x7e, 0xb8, 0, 1.25 x 2^-6 = 0x0a */
    float k[6 * ROW], v[6 * ROW];
    for (int t = 0; t < 6; t++)
        for (int h = 0; h < NKV; h++)
            for (int i = 0; i < HD; i++) {
                const float sc = ldexpf(1.0f, t - 3 * h); /* the row's scale: 2^(t - 3h) */
                k[t * ROW + h * HD + i] = t == 5 && h == 1 ? 0.0f : codes[i] * sc;
                v[t * ROW + h * HD + i] = -codes[(i + 1) % HD] * sc;
            }
    for (int l = 0; l < NL; l++) CHECK_OK(llt_kv_cache_allocate(c, a, l, k, v, 6, &e), &e);
    bool ok = true;
    for (int l = 0; l < NL; l++)
        for (int p = 0; p < 6; p++)
            for (int i = 0; i < ROW; i++)
                ok &= read_k(c, a, l, p, i, false) == k[p * ROW + i] && read_k(c, a, l, p, i, true) == v[p * ROW + i];
    CHECK(ok);
    llt_kv_pages pg;
    CHECK_OK(llt_kv_cache_get_pages(c, a, 0, &pg, &e), &e);
    const unsigned char *p1 = (const unsigned char *)pg.k_pool + (size_t)pg.block_table[1] * c->page_bytes;
    float s_zero, s_first;
    memcpy(&s_zero, p1 + llt_kv_f8_scales_offset(4, NKV, HD) + (1 * NKV + 1) * 4, 4); /* position 5, head 1 */
    memcpy(&s_first, p1 + llt_kv_f8_scales_offset(4, NKV, HD), 4);                    /* position 4, head 0 */
    CHECK(s_zero == 1.0f && s_first == 16.0f && p1[0] == 0x7e && p1[1] == 0xb8 && p1[2] == 0 && p1[3] == 0x0a);
    float third[ROW];
    for (int i = 0; i < ROW; i++) third[i] = (i % HD == 0 ? 3.0f : 1.0f) / 3.0f; /* rows 1, 1/3, 1/3, 1/3 */
    CHECK_OK(llt_kv_seq_fork(c, a, &b, &e), &e);
    for (int l = 0; l < NL; l++) CHECK_OK(llt_kv_cache_allocate(c, b, l, third, third, 1, &e), &e);
    /* scale 1/448: 1/3 is 149.3 steps of it, e4m3's spacing there is 16: within 8 / 448 */
    CHECK(fabsf(read_k(c, b, 1, 6, 1, false) - 1.0f / 3.0f) <= 8.0f / 448 &&
          fabsf(read_k(c, b, 1, 6, 4, true) - 1.0f) <= 1e-6f);
    ok = true; /* b's copy of page 1 kept a's rows and scales; a is unchanged */
    for (int p = 4; p < 6; p++)
        for (int i = 0; i < ROW; i++)
            ok &= read_k(c, b, 1, p, i, false) == k[p * ROW + i] && read_k(c, a, 1, p, i, true) == v[p * ROW + i];
    CHECK(ok && llt_kv_seq_len(c, a) == 6 && llt_kv_seq_len(c, b) == 7);
    CHECK_ERR(llt_kv_cache_allocate_fn(c, a, 0, 1, no_write, NULL, &e), LLT_ERR_UNSUPPORTED, &e, "carry no scales");
    /* a row so small that amax / 448 underflows takes scale 1 (zeros), never 0 (NaNs) */
    uint8_t q[HD];
    float tiny[HD] = {1e-44f, -3e-45f, 0.0f, 1e-43f}, s_tiny = 0;
    llt_kv_f8_quant_row(tiny, HD, q, &s_tiny);
    CHECK(s_tiny == 1.0f && q[0] == 0 && q[1] == 0x80 && q[2] == 0 && q[3] == 0);
    CHECK(llt_kv_seq_len(c, a) == 6);
    llt_kv_cache_free(c);
}

static void test_allocate_protocol(void) {
    llt_kv_cache *c = make(4, 8, 2, LLT_DTYPE_F32);
    llt_error e;
    int32_t a, b;
    float k[3 * ROW] = {0}, v[3 * ROW] = {0};
    CHECK_OK(llt_kv_seq_create(c, &a, &e), &e);
    CHECK_ERR(llt_kv_cache_allocate(c, a, 1, k, v, 1, &e), LLT_ERR_STATE, &e, "expected layer 0");
    CHECK_OK(llt_kv_cache_allocate(c, a, 0, k, v, 3, &e), &e);
    /* layer 0 sees its new tokens, layer 1 not yet */
    llt_kv_pages pg;
    CHECK_OK(llt_kv_cache_get_pages(c, a, 0, &pg, &e), &e);
    CHECK(pg.seq_len == 3 && pg.n_blocks == 1);
    CHECK_OK(llt_kv_cache_get_pages(c, a, 1, &pg, &e), &e);
    CHECK(pg.seq_len == 0 && pg.n_blocks == 0);
    CHECK(llt_kv_seq_len(c, a) == 0);
    CHECK_ERR(llt_kv_seq_fork(c, a, &b, &e), LLT_ERR_STATE, &e, "middle of an append");
    CHECK_ERR(llt_kv_cache_allocate(c, a, 1, k, v, 2, &e), LLT_ERR_INVALID_ARG, &e, "layer 0 got 3");
    CHECK_OK(llt_kv_cache_allocate(c, a, 1, k, v, 3, &e), &e);
    CHECK(llt_kv_seq_len(c, a) == 3);
    CHECK_ERR(llt_kv_cache_allocate(c, a, 0, NULL, v, 1, &e), LLT_ERR_INVALID_ARG, &e, "NULL");
    CHECK_ERR(llt_kv_cache_allocate(c, a, 0, k, v, 0, &e), LLT_ERR_INVALID_ARG, &e, "n 0");
    CHECK_ERR(llt_kv_cache_allocate(c, 5, 0, k, v, 1, &e), LLT_ERR_INVALID_ARG, &e, "not live");
    CHECK_ERR(llt_kv_cache_get_pages(c, a, 2, &pg, &e), LLT_ERR_INVALID_ARG, &e, "layer 2");
    CHECK_ERR(llt_kv_cache_get_pages(c, 1, 0, &pg, &e), LLT_ERR_INVALID_ARG, &e, "not live");
    CHECK_ERR(llt_kv_seq_fork(c, 1, &b, &e), LLT_ERR_INVALID_ARG, &e, "not live");
    CHECK(llt_kv_seq_len(c, -1) == -1 && llt_kv_pages_in_use(NULL) == 0 && llt_kv_pages_free(NULL) == 0);
    llt_kv_seq_free(c, 99);
    llt_kv_cache_free(c);
    llt_kv_cache_free(NULL);
}

static void test_bad_opts(void) {
    llt_error e;
    llt_kv_cache *c = (llt_kv_cache *)&e;
    llt_kv_cache_opts good = {2, 2, 4, 4, 8, 2, LLT_DTYPE_F32}, o;
    o = good, o.n_layers = 0;
    CHECK_ERR(llt_kv_cache_create(&o, &c, &e), LLT_ERR_INVALID_ARG, &e, "n_layers 0");
    CHECK(c == NULL);
    o = good, o.head_dim = -1;
    CHECK_ERR(llt_kv_cache_create(&o, &c, &e), LLT_ERR_INVALID_ARG, &e, "head_dim -1");
    o = good, o.page_size = 0;
    CHECK_ERR(llt_kv_cache_create(&o, &c, &e), LLT_ERR_INVALID_ARG, &e, "page_size 0");
    o = good, o.max_seqs = 0;
    CHECK_ERR(llt_kv_cache_create(&o, &c, &e), LLT_ERR_INVALID_ARG, &e, "max_seqs 0");
    o = good, o.kv_dtype = LLT_DTYPE_Q8_0;
    CHECK_ERR(llt_kv_cache_create(&o, &c, &e), LLT_ERR_UNSUPPORTED, &e, "q8_0");
    o = good, o.page_size = 1 << 20, o.head_dim = 1 << 12, o.max_pages = 1 << 30;
    CHECK_ERR(llt_kv_cache_create(&o, &c, &e), LLT_ERR_NOMEM, &e, "overflow");
    CHECK_ERR(llt_kv_cache_create(NULL, &c, &e), LLT_ERR_INVALID_ARG, &e, "NULL options");
    CHECK_ERR(llt_kv_cache_create(&good, NULL, &e), LLT_ERR_INVALID_ARG, &e, "NULL output");
}

/* ---- storage hooks: a fake "device" that counts calls and can fail -------------------- */

typedef struct fake_dev {
    int allocs, releases, copies, uploads;
    int fail_alloc_at, fail_copy, fail_upload;
} fake_dev;

static void *fd_alloc(int32_t layer, size_t bytes, void *user) {
    fake_dev *d = user;
    if (++d->allocs == d->fail_alloc_at) return NULL;
    (void)layer;
    return calloc(1, bytes);
}
static void fd_release(void *pool, void *user) {
    ((fake_dev *)user)->releases++;
    free(pool);
}
static llt_status fd_copy(void *pool, int32_t dst, int32_t src, size_t pb, void *user, llt_error *err) {
    fake_dev *d = user;
    if (d->fail_copy) return llt_err_set(err, LLT_ERR_DEVICE, "fake copy failed");
    d->copies++;
    memcpy((char *)pool + dst * pb, (char *)pool + src * pb, pb);
    return LLT_OK;
}
static llt_status fd_upload(void *pool, size_t off, const void *src, size_t n, void *user, llt_error *err) {
    fake_dev *d = user;
    if (d->fail_upload) return llt_err_set(err, LLT_ERR_DEVICE, "fake upload failed");
    d->uploads++;
    memcpy((char *)pool + off, src, n);
    return LLT_OK;
}

static void test_storage_hooks(void) {
    fake_dev d = {0};
    llt_kv_storage st = {fd_alloc, fd_release, fd_copy, fd_upload, &d};
    llt_kv_cache_opts o = {NL, NKV, HD, 4, 8, 2, LLT_DTYPE_F32};
    llt_kv_cache *c = NULL;
    llt_error e;
    CHECK_OK(llt_kv_cache_create_with(&o, &st, &c, &e), &e);
    CHECK(d.allocs == 2 * NL && !c->host);
    int32_t a, b;
    CHECK_OK(llt_kv_seq_create(c, &a, &e), &e);
    CHECK_OK(append(c, a, 1, 3, &e), &e);
    CHECK(d.uploads == 2 * NL * 3); /* one row of k and of v per token and layer */
    CHECK(holds(c, a, 1, 0));
    CHECK_OK(llt_kv_seq_fork(c, a, &b, &e), &e);
    d.fail_copy = 1;
    CHECK_ERR(append(c, b, 2, 1, &e), LLT_ERR_DEVICE, &e, "copy-on-write of page");
    CHECK(llt_kv_seq_len(c, b) == 3 && llt_kv_pages_in_use(c) == 1);
    d.fail_copy = 0;
    d.fail_upload = 1;
    CHECK_ERR(append(c, b, 2, 1, &e), LLT_ERR_DEVICE, &e, "fake upload");
    d.fail_upload = 0;
    CHECK(llt_kv_seq_len(c, b) == 3 && llt_kv_pages_in_use(c) == 2); /* the private copy stays */
    CHECK_OK(append(c, b, 2, 1, &e), &e);
    CHECK(d.copies == 2 * NL && holds(c, a, 1, 0) && holds(c, b, 2, 3));
    llt_kv_cache_free(c);
    CHECK(d.releases == 2 * NL);
    /* a failing pool allocation is a clean NOMEM, the pools made so far are released */
    fake_dev d2 = {0};
    d2.fail_alloc_at = 3;
    st.user = &d2;
    CHECK_ERR(llt_kv_cache_create_with(&o, &st, &c, &e), LLT_ERR_NOMEM, &e, "layer 1");
    CHECK(c == NULL && d2.releases == 2);
}

/* llt_kv_cache_allocate_fn: the caller writes the rows at the offsets the cache gives; the
 * result is what llt_kv_cache_allocate of the same values leaves, and a failing writer
 * leaves nothing behind. */
typedef struct fn_rows {
    int tag, layer, fail_at;
    int32_t len;
} fn_rows;

static llt_status write_tagged(void *k_pool, void *v_pool, int64_t off, int32_t i, void *user, llt_error *err) {
    fn_rows *r = user;
    if (i == r->fail_at) return llt_err_set(err, LLT_ERR_DEVICE, "writer failed at row %d", (int)i);
    for (int e = 0; e < ROW; e++) {
        ((float *)k_pool)[off + e] = val(r->tag, r->layer, r->len + i, e);
        ((float *)v_pool)[off + e] = -val(r->tag, r->layer, r->len + i, e);
    }
    return LLT_OK;
}

static void test_allocate_fn(void) {
    llt_kv_cache *c = make(4, 16, 2, LLT_DTYPE_F32);
    llt_error e;
    int32_t a, b;
    CHECK_OK(llt_kv_seq_create(c, &a, &e), &e);
    CHECK_OK(llt_kv_seq_create(c, &b, &e), &e);
    CHECK_OK(append(c, a, 3, 6, &e), &e);
    for (int32_t step = 0; step < 2; step++) /* 6 tokens, then 1 more into a partly used page */
        for (int l = 0; l < NL; l++) {
            fn_rows r = {3, l, -1, llt_kv_seq_len(c, b)};
            CHECK_OK(llt_kv_cache_allocate_fn(c, b, l, step ? 1 : 6, write_tagged, &r, &e), &e);
        }
    CHECK(llt_kv_seq_len(c, b) == 7 && holds(c, b, 3, 0));
    int32_t used = llt_kv_pages_in_use(c);
    fn_rows bad = {3, 0, 2, 7};
    CHECK(llt_kv_cache_allocate_fn(c, b, 0, 5, write_tagged, &bad, &e) == LLT_ERR_DEVICE);
    CHECK(llt_kv_seq_len(c, b) == 7 && llt_kv_pages_in_use(c) == used); /* nothing kept */
    CHECK(llt_kv_cache_allocate_fn(c, b, 0, 1, NULL, NULL, &e) == LLT_ERR_INVALID_ARG);
    llt_kv_cache_free(c);
}

int main(void) {
    RUN(test_accounting);
    RUN(test_fork_cow);
    RUN(test_fork_boundary);
    RUN(test_exhaustion);
    RUN(test_reserve_unreserve);
    RUN(test_dtypes);
    RUN(test_f8);
    RUN(test_allocate_protocol);
    RUN(test_bad_opts);
    RUN(test_storage_hooks);
    RUN(test_allocate_fn);
    return tl_done("test_kv");
}
