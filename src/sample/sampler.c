/* sampler.c: next-token choice from logits: greedy, temperature, top-k, top-p (nucleus).
 *
 * Order of the filters: temperature scales the logits, top-k keeps the k largest, top-p keeps
 * the smallest prefix (by descending probability) whose probability, renormalised over what
 * top-k left, reaches top_p; the draw is over what remains, renormalised.
 * Cost for a 128k vocabulary: one pass for the softmax, and a sort only of the candidates
 * that can be in the nucleus. A token with probability below (1 - top_p) / (V - 1) can never
 * be: all such tokens together weigh less than 1 - top_p, so the tokens above the cut-off
 * already reach top_p. Top-k uses a heap of k, O(V log k).
 * Ties always go to the lowest id, so results do not depend on the sort's stability. */
#include <math.h>
#include <stdlib.h>

#include "base/error.h"

typedef struct cand {
    float p;    /* logit, then unnormalised probability */
    int32_t id;
} cand;

struct llt_sampler {
    llt_sampler_params p;
    int32_t vocab;
    uint64_t rng;   /* xorshift64* state, never 0 */
    cand *c;        /* [vocab] candidates scratch */
};

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Uniform double in [0, 1) from the top 53 bits of xorshift64*. */
static double next_uniform(llt_sampler *s) {
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return (double)((x * 0x2545f4914f6cdd1dull) >> 11) * (1.0 / 9007199254740992.0);
}

llt_status llt_sampler_create(const llt_sampler_params *p, int32_t vocab_size, llt_sampler **out,
                              llt_error *err) {
    LLT_CHECK(p && out, err, LLT_ERR_INVALID_ARG, "sampler: NULL argument");
    LLT_CHECK(vocab_size > 0, err, LLT_ERR_INVALID_ARG, "sampler: vocab_size must be > 0, got %d",
              (int)vocab_size);
    LLT_CHECK(isfinite(p->temperature) && p->temperature >= 0, err, LLT_ERR_INVALID_ARG,
              "sampler: temperature must be >= 0, got %g", (double)p->temperature);
    LLT_CHECK(p->top_p >= 0 && p->top_p <= 1, err, LLT_ERR_INVALID_ARG,
              "sampler: top_p must be in [0, 1], got %g", (double)p->top_p);
    LLT_CHECK(p->top_k >= 0, err, LLT_ERR_INVALID_ARG, "sampler: top_k must be >= 0, got %d",
              (int)p->top_k);
    llt_sampler *s = calloc(1, sizeof *s);
    cand *c = malloc((size_t)vocab_size * sizeof *c);
    if (!s || !c) {
        free(s);
        free(c);
        return llt_err_set(err, LLT_ERR_NOMEM, "sampler: out of memory for %d candidates", (int)vocab_size);
    }
    s->p = *p;
    s->vocab = vocab_size;
    s->c = c;
    s->rng = splitmix64(p->seed);
    if (!s->rng) s->rng = 0x9e3779b97f4a7c15ull;
    *out = s;
    return LLT_OK;
}

void llt_sampler_free(llt_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s);
}

/* NaN counts as -inf so that a damaged logit is never chosen. */
static inline float clean(float x) { return isnan(x) ? -INFINITY : x; }

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    float bv = clean(x[0]);
    for (int32_t i = 1; i < n; i++)
        if (clean(x[i]) > bv) bv = clean(x[i]), best = i;
    return best;
}

/* a ranks before b: larger value, then smaller id. */
static inline bool ranks_before(cand a, cand b) { return a.p > b.p || (a.p == b.p && a.id < b.id); }

static int cmp_desc(const void *pa, const void *pb) {
    cand a = *(const cand *)pa, b = *(const cand *)pb;
    return ranks_before(a, b) ? -1 : ranks_before(b, a) ? 1 : 0;
}

/* Min-heap (by rank) sift-down over h[0..n). */
static void heap_down(cand *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && ranks_before(h[m], h[l])) m = l;
        if (r < n && ranks_before(h[m], h[r])) m = r;
        if (m == i) return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* The k best logits into c[0..k), sorted best first. */
static void select_top_k(const float *x, int32_t n, int32_t k, cand *c) {
    for (int32_t i = 0; i < k; i++) c[i] = (cand){clean(x[i]), i};
    for (int32_t i = k / 2 - 1; i >= 0; i--) heap_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        cand v = {clean(x[i]), i};
        if (ranks_before(v, c[0])) {
            c[0] = v;
            heap_down(c, k, 0);
        }
    }
    qsort(c, (size_t)k, sizeof *c, cmp_desc);
}

/* Draws from c[0..n) with weights c[i].p summing to `mass`. */
static int32_t draw(llt_sampler *s, const cand *c, int32_t n, double mass) {
    double r = next_uniform(s) * mass, cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (r < cum) return c[i].id;
    }
    return c[n - 1].id; /* rounding left r at the very top */
}

/* Keeps the smallest prefix of sorted c whose weight reaches top_p * total; returns its length
 * and its weight in *kept. */
static int32_t nucleus(const cand *c, int32_t n, double total, float top_p, double *kept) {
    double cum = 0, goal = (double)top_p * total;
    int32_t i = 0;
    while (i < n) {
        cum += c[i++].p;
        if (cum >= goal) break;
    }
    *kept = cum;
    return i;
}

/* Top-k path: softmax over the k survivors, then the nucleus among them. */
static int32_t sample_top_k(llt_sampler *s, const float *logits) {
    cand *c = s->c;
    int32_t k = s->p.top_k;
    select_top_k(logits, s->vocab, k, c);
    double total = 0;
    const float mx = c[0].p;
    for (int32_t i = 0; i < k; i++) total += c[i].p = expf(c[i].p - mx);
    double kept = total;
    int32_t n = s->p.top_p < 1 ? nucleus(c, k, total, s->p.top_p, &kept) : k;
    return draw(s, c, n, kept);
}

/* Full-vocabulary path: softmax in place, then either a direct draw or the nucleus over the
 * candidates above the cut-off. */
static int32_t sample_full(llt_sampler *s, float *x) {
    int32_t V = s->vocab;
    float mx = clean(x[argmax(x, V)]);
    double total = 0;
    for (int32_t i = 0; i < V; i++) total += x[i] = expf(clean(x[i]) - mx);
    if (s->p.top_p >= 1) {
        double r = next_uniform(s) * total, cum = 0;
        for (int32_t i = 0; i < V; i++)
            if (r < (cum += x[i])) return i;
        return argmax(x, V);
    }
    double cutoff = V > 1 ? (1.0 - s->p.top_p) / (V - 1) * total : 0;
    int32_t n = 0;
    for (int32_t i = 0; i < V; i++)
        if (x[i] >= cutoff) s->c[n++] = (cand){x[i], i};
    qsort(s->c, (size_t)n, sizeof *s->c, cmp_desc);
    double kept;
    n = nucleus(s->c, n, total, s->p.top_p, &kept);
    return draw(s, s->c, n, kept);
}

int32_t llt_sampler_sample(llt_sampler *s, float *logits) {
    int32_t best = argmax(logits, s->vocab);
    /* Greedy; also when the softmax is undefined (an infinite top logit) or 1/T would overflow. */
    if (s->p.temperature < 1e-6f || !isfinite(logits[best])) return best;
    float inv_t = 1.0f / s->p.temperature;
    for (int32_t i = 0; i < s->vocab; i++) logits[i] *= inv_t;
    if (s->p.top_k > 0 && s->p.top_k < s->vocab) return sample_top_k(s, logits);
    return sample_full(s, logits);
}
