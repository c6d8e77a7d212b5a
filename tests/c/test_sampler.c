/* test_sampler: greedy, temperature, top-k and top-p against probabilities computed here in
 * double from the definition (softmax of logits / T, keep the k largest, keep the smallest
 * prefix reaching top_p, renormalise). Empirical frequencies over N draws must lie within
 * 5 standard deviations (sqrt(p (1 - p) / N)) of the expected probability: a correct sampler
 * fails that by chance with probability below 1e-5 per token. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

enum { V = 12, N_DRAWS = 200000 };
static const float k_logits[V] = {1.0f, 2.5f, 0.3f, -1.0f, 2.0f, 0.0f, 3.1f, -2.0f, 1.7f, 0.9f, -0.4f, 2.2f};

/* Expected distribution in double; returns the number of tokens with p > 0. */
static int expected(float temp, int top_k, float top_p, double *p) {
    int order[V];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 0; i < V; i++) /* selection sort, descending logits */
        for (int j = i + 1; j < V; j++)
            if (k_logits[order[j]] > k_logits[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    int keep = top_k > 0 && top_k < V ? top_k : V;
    double w[V], z = 0;
    for (int i = 0; i < keep; i++) z += w[i] = exp((double)k_logits[order[i]] / temp);
    double cum = 0;
    int nuc = 0;
    while (nuc < keep) {
        cum += w[nuc++] / z;
        if (cum >= top_p) break;
    }
    double zn = 0;
    for (int i = 0; i < nuc; i++) zn += w[i];
    memset(p, 0, V * sizeof *p);
    for (int i = 0; i < nuc; i++) p[order[i]] = w[i] / zn;
    return nuc;
}

static void check_distribution(float temp, int top_k, float top_p, uint64_t seed) {
    llt_sampler_params sp = {temp, top_p, top_k, seed};
    llt_sampler *s = NULL;
    CHECK_OK(llt_sampler_create(&sp, V, &s, NULL), NULL);
    if (!s) return;
    long count[V] = {0}, bad = 0;
    for (int d = 0; d < N_DRAWS; d++) {
        float l[V];
        memcpy(l, k_logits, sizeof l);
        int32_t id = llt_sampler_sample(s, l);
        if (id >= 0 && id < V) count[id]++;
        else bad++;
    }
    CHECK(bad == 0);
    double p[V];
    int nuc = expected(temp, top_k, top_p, p);
    for (int i = 0; i < V; i++) {
        double f = (double)count[i] / N_DRAWS, sd = sqrt(p[i] * (1 - p[i]) / N_DRAWS);
        if (p[i] == 0) CHECK_MSG(count[i] == 0, "T=%g k=%d p=%g: token %d outside the kept set drawn %ld times",
                                 (double)temp, top_k, (double)top_p, i, count[i]);
        else CHECK_MSG(fabs(f - p[i]) <= 5 * sd, "T=%g k=%d p=%g: token %d freq %.5f want %.5f (sd %.5f)",
                       (double)temp, top_k, (double)top_p, i, f, p[i], sd);
    }
    CHECK(nuc >= 1);
    llt_sampler_free(s);
}

static void test_greedy(void) {
    llt_sampler_params sp = {0.0f, 0.9f, 0, 1};
    llt_sampler *s = NULL;
    CHECK_OK(llt_sampler_create(&sp, V, &s, NULL), NULL);
    float l[V];
    memcpy(l, k_logits, sizeof l);
    CHECK(llt_sampler_sample(s, l) == 6);
    float ties[5] = {0, 5, 1, 5, 5}; /* ties go to the lowest id */
    llt_sampler *s5 = NULL;
    CHECK_OK(llt_sampler_create(&sp, 5, &s5, NULL), NULL);
    CHECK(llt_sampler_sample(s5, ties) == 1);
    float nans[5] = {NAN, 1, NAN, 2, 0}; /* a NaN logit is never chosen */
    CHECK(llt_sampler_sample(s5, nans) == 3);
    llt_sampler_free(s);
    llt_sampler_free(s5);
}

static void test_distributions(void) {
    check_distribution(1.0f, 0, 1.0f, 7);   /* plain softmax */
    check_distribution(0.7f, 0, 1.0f, 8);   /* temperature */
    check_distribution(1.3f, 3, 1.0f, 9);   /* top-k */
    check_distribution(1.0f, 0, 0.8f, 10);  /* top-p */
    check_distribution(2.0f, 6, 0.7f, 11);  /* top-k then top-p */
    check_distribution(1.0f, 0, 0.0f, 12);  /* top_p 0 keeps only the best */
}

static void test_reproducible(void) {
    llt_sampler_params sp = {0.9f, 0.95f, 0, 1234};
    llt_sampler *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(llt_sampler_create(&sp, V, &a, NULL), NULL);
    CHECK_OK(llt_sampler_create(&sp, V, &b, NULL), NULL);
    sp.seed = 1235;
    CHECK_OK(llt_sampler_create(&sp, V, &c, NULL), NULL);
    int same_ab = 1, same_ac = 1;
    for (int d = 0; d < 200; d++) {
        float l1[V], l2[V], l3[V];
        memcpy(l1, k_logits, sizeof l1);
        memcpy(l2, k_logits, sizeof l2);
        memcpy(l3, k_logits, sizeof l3);
        int32_t x = llt_sampler_sample(a, l1), y = llt_sampler_sample(b, l2), z = llt_sampler_sample(c, l3);
        same_ab &= x == y;
        same_ac &= x == z;
    }
    CHECK(same_ab);
    CHECK(!same_ac);
    llt_sampler_free(a);
    llt_sampler_free(b);
    llt_sampler_free(c);
}

/* A Llama 3 sized vocabulary: one dominant block of tokens; the nucleus stays inside it. */
static void test_large_vocab(void) {
    enum { BIG = 128256 };
    float *l = malloc(BIG * sizeof *l);
    llt_sampler_params sp = {1.0f, 0.9f, 0, 99};
    llt_sampler *s = NULL;
    CHECK_OK(llt_sampler_create(&sp, BIG, &s, NULL), NULL);
    int inside = 0;
    for (int d = 0; d < 50; d++) {
        for (int i = 0; i < BIG; i++) l[i] = (i >= 5000 && i < 5010) ? 12.0f : (float)(i % 7) * 0.1f;
        int32_t id = llt_sampler_sample(s, l);
        inside += id >= 5000 && id < 5010;
    }
    CHECK(inside == 50);
    sp.top_k = 40;
    llt_sampler *k = NULL;
    CHECK_OK(llt_sampler_create(&sp, BIG, &k, NULL), NULL);
    for (int i = 0; i < BIG; i++) l[i] = -(float)i; /* only id 0 has real mass */
    CHECK(llt_sampler_sample(k, l) == 0);
    llt_sampler_free(s);
    llt_sampler_free(k);
    free(l);
}

static void test_bad_params(void) {
    llt_sampler *s = NULL;
    llt_error err;
    llt_sampler_params sp = {-1.0f, 0.9f, 0, 1};
    CHECK_ERR(llt_sampler_create(&sp, V, &s, &err), LLT_ERR_INVALID_ARG, &err, "temperature");
    sp = (llt_sampler_params){0.8f, 1.5f, 0, 1};
    CHECK_ERR(llt_sampler_create(&sp, V, &s, &err), LLT_ERR_INVALID_ARG, &err, "top_p");
    sp = (llt_sampler_params){0.8f, 0.9f, -2, 1};
    CHECK_ERR(llt_sampler_create(&sp, V, &s, &err), LLT_ERR_INVALID_ARG, &err, "top_k");
    sp.top_k = 0;
    CHECK_ERR(llt_sampler_create(&sp, 0, &s, &err), LLT_ERR_INVALID_ARG, &err, "vocab_size");
    CHECK(s == NULL);
    llt_sampler_free(NULL);
}

int main(void) {
    RUN(test_greedy);
    RUN(test_distributions);
    RUN(test_reproducible);
    RUN(test_large_vocab);
    RUN(test_bad_params);
    return tl_done("test_sampler");
}
