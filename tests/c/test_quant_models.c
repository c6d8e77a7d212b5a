/* test_quant_models.c: quantised GGUF files against references nobody here wrote.
 * tests/fixtures/quant/qtiny-TYPE.gguf were quantised by llama.cpp's own llama-quantize; each
 * qtiny-TYPE.reference.safetensors holds the teacher-forced logits of that exact file computed
 * in float64 from its tensors as gguf-py dequantises them (see the folder's README). Every block
 * type (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K) appears in at least one file, so a decoder or
 * dot-product kernel that reads a single bit wrongly moves the logits by far more than the
 * tolerance. Tolerance: 1e-4 of the largest reference logit (the CPU kernels keep the
 * activations in float32, as for float weights); the top-1 token must match wherever the
 * reference's top-1/top-2 gap exceeds that tolerance. That teacher-forced forward is one prefill
 * step (float activations); decoding the same tokens one at a time runs the decode kernels,
 * which quantise the activations to 16 bits (quant_dot_int.c): the issue's
 * 1e-3 for such kernels, and the same top-1 rule at 1e-3. The kernels
 * themselves (scalar and SIMD) are compared block by block in test_quant_dot. */
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"
#include "formats/tensors.h"
#include "model/model.h"
#include "testlib.h"

static const char *const k_types[] = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q4_K_M", "Q5_K_M", "Q6_K"};

/* Top-1 agreement where the reference's own top-1/top-2 gap is larger than tol * max|ref|. */
static int top1_mismatches(const float *got, const float *ref, int32_t T, int32_t V, double tol) {
    float amax = 0;
    for (int64_t i = 0; i < (int64_t)T * V; i++) amax = fabsf(ref[i]) > amax ? fabsf(ref[i]) : amax;
    int bad = 0;
    for (int32_t t = 0; t < T; t++) {
        const float *r = ref + (int64_t)t * V;
        int32_t a = tl_argmax(r, V);
        float second = -INFINITY;
        for (int32_t v = 0; v < V; v++)
            if (v != a && r[v] > second) second = r[v];
        if (r[a] - second > tol * amax && tl_argmax(got + (int64_t)t * V, V) != a) bad++;
    }
    return bad;
}

static void check_type(const char *type) {
    char p[256];
    snprintf(p, sizeof p, "quant/qtiny-%s.reference.safetensors", type);
    llt_tensor_table ref;
    llt_tensors_init(&ref);
    llt_error e;
    CHECK_OK(llt_safetensors_load(tl_fixture(p), &ref, NULL, &e), &e);
    const llt_tensor *ids = llt_tensors_find(&ref, "input_ids"), *lg = llt_tensors_find(&ref, "logits");
    CHECK(ids && lg);
    if (!ids || !lg) {
        llt_tensors_free(&ref);
        return;
    }
    int32_t T = (int32_t)ids->shape[0], V = (int32_t)lg->shape[1];
    int32_t *tok = malloc((size_t)T * sizeof *tok);
    for (int32_t i = 0; i < T; i++) tok[i] = (int32_t)((const int64_t *)ids->data)[i];
    snprintf(p, sizeof p, "quant/qtiny-%s.gguf", type);
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.n_threads = 2;
    llt_model *m = NULL;
    CHECK_OK(llt_model_load(tl_fixture(p), &o, &m, &e), &e);
    float *logits = malloc((size_t)T * V * 4);
    if (m) {
        CHECK_OK(llt_model_forward(m, tok, (size_t)T, logits, NULL, NULL, &e), &e);
        double err = tl_rel_err(logits, lg->data, (size_t)T * V);
        CHECK_MSG(err <= 1e-4, "%s: logits rel err %.3g > 1e-4", type, err);
        int bad = top1_mismatches(logits, lg->data, T, V, 1e-4);
        CHECK_MSG(bad == 0, "%s: %d positions with a different top-1", type, bad);
        fprintf(stderr, "  %-7s logits rel err %.2g (of 1e-4)\n", type, err);
        /* one token a step: the decode kernels */
        int32_t seq = -1, rows = 0;
        CHECK_OK(llt_kv_seq_create(llt_model_kv_cache(m), &seq, &e), &e);
        for (int32_t i = 0; i < T; i++) {
            llt_batch b = {1, &tok[i], &seq, NULL};
            CHECK_OK(llt_model_decode(m, &b, logits + (int64_t)i * V, &rows, &e), &e);
        }
        double derr = tl_rel_err(logits, lg->data, (size_t)T * V);
        CHECK_MSG(derr <= 1e-3, "%s: decode logits rel err %.3g > 1e-3", type, derr);
        bad = top1_mismatches(logits, lg->data, T, V, 1e-3);
        CHECK_MSG(bad == 0, "%s: decode: %d positions with a different top-1", type, bad);
        fprintf(stderr, "  %-7s decode logits rel err %.2g (of 1e-3)\n", type, derr);
        /* the matrices stay as the file stores them, in the mmap: no float copy */
        const llt_tensor *wq = llt_tensors_find(&m->tensors, "blk.0.attn_q.weight");
        CHECK(wq && !wq->owned && m->layers[0].wq.data == wq->data && m->layers[0].wq.dtype == wq->dtype &&
              wq->dtype != LLT_DTYPE_F32);
        CHECK_MSG(strstr(m->quant_note, "block weights kept: ") && !strstr(m->quant_note, "dequantised"),
                  "%s: load note '%s'", type, m->quant_note);
        llt_model_free(m);
    }
    free(logits);
    free(tok);
    llt_tensors_free(&ref);
}

static void test_all_types(void) {
    for (size_t t = 0; t < sizeof k_types / sizeof k_types[0]; t++) check_type(k_types[t]);
}

int main(void) {
    RUN(test_all_types);
    return tl_done("test_quant_models");
}
