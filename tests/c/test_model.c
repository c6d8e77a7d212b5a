/* test_model: the model on the embedded stories260K, against llama2.c's output.
 * Teacher-forced logits pick every next token of llama2.c's greedy text; batched decoding of
 * several sequences equals decoding them alone; a full page pool leaves every sequence untouched;
 * damaged models (missing tensor, wrong shape) name the tensor; the three tensor naming
 * schemes, quantised tensors and tied heads bind; random models are deterministic. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "kv/paged_cache.h"
#include "model/model.h"
#include "testlib.h"

static const char *model_path(void) { return tl_fixture("models/stories260K/stories260K.gguf"); }

/* Teacher-forced logits over BOS + the expected text (201 tokens: more than one chunk of
 * rows) pick every next token; final_norm and logits agree with the hidden states. */
static void test_forward_teacher_forced(void) {
    llt_model *m = tl_load_stories(0, 0, 0, LLT_DTYPE_COUNT);
    size_t n_text, n = 0;
    char *want = tl_expected_greedy(&n_text);
    if (!m || !want) return;
    const llt_config *c = llt_model_config(m);
    int32_t ids[400];
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_encode(llt_model_tokenizer(m), want, n_text, LLT_TOK_ADD_BOS, ids, 400, &n, &err), &err);
    CHECK(n == 201);
    int64_t V = c->vocab_size, H = c->hidden_size, L = c->n_layers;
    float *logits = malloc(n * V * 4), *hidden = malloc(L * n * H * 4), *fn = malloc(n * H * 4);
    CHECK_OK(llt_model_forward(m, ids, n, logits, hidden, fn, &err), &err);
    int wrong = 0;
    for (size_t i = 0; i + 1 < n; i++) wrong += tl_argmax(logits + i * V, (int32_t)V) != ids[i + 1];
    CHECK_MSG(wrong == 0, "%d of %zu teacher-forced argmaxes differ from the text", wrong, n - 1);
    float *ref = malloc(n * H * 4), *ref_logits = malloc(n * V * 4);
    llt_rmsnorm_f32(hidden + (L - 1) * n * H, m->out_norm.data, ref, (int64_t)n, H, c->rms_norm_eps);
    CHECK(tl_rel_err(fn, ref, n * H) < 1e-6);
    llt_gemm_f32(fn, m->output.data, ref_logits, (int64_t)n, V, H);
    CHECK(tl_rel_err(logits, ref_logits, n * V) < 1e-5);
    CHECK(llt_kv_pages_in_use(llt_model_kv_cache(m)) == 0); /* the temporary sequence is gone */
    free(logits), free(hidden), free(fn), free(ref), free(ref_logits), free(want);
    llt_model_free(m);
}

/* Two sequences in one batch (and then one token each) equal each sequence run alone. */
static void test_batch_matches_single(void) {
    llt_model *m = tl_load_stories(4, 0, 3, LLT_DTYPE_COUNT);
    if (!m) return;
    const int32_t V = llt_model_config(m)->vocab_size;
    const int32_t a[11] = {1, 403, 407, 261, 378, 324, 426, 267, 360, 283, 372};
    const int32_t b[8] = {1, 70, 401, 293, 40, 30, 470, 290};
    llt_kv_cache *kv = llt_model_kv_cache(m);
    int32_t sa, sb, rows = 0;
    llt_error err = {0};
    CHECK_OK(llt_kv_seq_create(kv, &sa, &err), &err);
    CHECK_OK(llt_kv_seq_create(kv, &sb, &err), &err);
    int32_t toks[17], seqs[17];
    for (int i = 0; i < 17; i++) toks[i] = i < 10 ? a[i] : b[i - 10], seqs[i] = i < 10 ? sa : sb;
    float *lg = malloc(17 * V * 4), *ref = malloc(11 * V * 4);
    llt_batch batch = {17, toks, seqs, NULL}; /* default: the last row of each sequence */
    CHECK_OK(llt_model_decode(m, &batch, lg, &rows, &err), &err);
    CHECK(rows == 2 && llt_kv_seq_len(kv, sa) == 10 && llt_kv_seq_len(kv, sb) == 7);
    CHECK_OK(llt_model_forward(m, a, 10, ref, NULL, NULL, &err), &err);
    CHECK(tl_rel_err(lg, ref + 9 * V, V) < 1e-5);
    CHECK_OK(llt_model_forward(m, b, 7, ref, NULL, NULL, &err), &err);
    CHECK(tl_rel_err(lg + V, ref + 6 * V, V) < 1e-5);
    int32_t step[2] = {b[7], a[10]}, step_seq[2] = {sb, sa}; /* one token each, reversed order */
    llt_batch b2 = {2, step, step_seq, NULL};
    CHECK_OK(llt_model_decode(m, &b2, lg, &rows, &err), &err);
    CHECK_OK(llt_model_forward(m, a, 11, ref, NULL, NULL, &err), &err);
    CHECK(rows == 2 && tl_rel_err(lg + V, ref + 10 * V, V) < 1e-5);
    CHECK_OK(llt_model_forward(m, b, 8, ref, NULL, NULL, &err), &err);
    CHECK(tl_rel_err(lg, ref + 7 * V, V) < 1e-5);
    /* bad batches are refused before anything is appended */
    int32_t bad_tok[2] = {1, 99999}, split[3] = {sa, sb, sa}, three[3] = {1, 1, 1};
    llt_batch bb = {2, bad_tok, step_seq, NULL};
    CHECK_ERR(llt_model_decode(m, &bb, lg, &rows, &err), LLT_ERR_INVALID_ARG, &err, "99999");
    llt_batch bs = {3, three, split, NULL};
    CHECK_ERR(llt_model_decode(m, &bs, lg, &rows, &err), LLT_ERR_INVALID_ARG, &err, "not consecutive");
    int32_t dead[1] = {2};
    llt_batch bd = {1, three, dead, NULL};
    CHECK_ERR(llt_model_decode(m, &bd, lg, &rows, &err), LLT_ERR_INVALID_ARG, &err, "not live");
    CHECK(llt_kv_seq_len(kv, sa) == 11 && llt_kv_seq_len(kv, sb) == 8);
    free(lg), free(ref);
    llt_model_free(m);
}

/* A pool too small for a step: LLT_ERR_FULL, nothing appended to any sequence. */
static void test_pool_full(void) {
    llt_model *m = tl_load_stories(4, 4, 2, LLT_DTYPE_COUNT); /* 16 token slots in all */
    if (!m) return;
    llt_kv_cache *kv = llt_model_kv_cache(m);
    const int32_t V = llt_model_config(m)->vocab_size;
    int32_t s1, s2, rows;
    llt_error err = {0};
    CHECK_OK(llt_kv_seq_create(kv, &s1, &err), &err);
    CHECK_OK(llt_kv_seq_create(kv, &s2, &err), &err);
    int32_t toks[12] = {1, 403, 407, 261, 378, 324, 426, 267, 360, 283, 372, 290}, seqs[12];
    for (int i = 0; i < 12; i++) seqs[i] = s1;
    float *lg = malloc(4 * V * 4), *ref = malloc(17 * V * 4);
    llt_batch b1 = {9, toks, seqs, NULL}; /* 3 pages for s1 */
    CHECK_OK(llt_model_decode(m, &b1, lg, &rows, &err), &err);
    int32_t used = llt_kv_pages_in_use(kv);
    int32_t mix[6] = {toks[9], 1, 2, 3, 4, 5}, mix_seq[6] = {s1, s2, s2, s2, s2, s2};
    llt_batch b2 = {6, mix, mix_seq, NULL}; /* s1 fits, s2 needs 2 pages, 1 is free */
    CHECK_ERR(llt_model_decode(m, &b2, lg, &rows, &err), LLT_ERR_FULL, &err, NULL);
    CHECK(llt_kv_pages_in_use(kv) == used && llt_kv_seq_len(kv, s1) == 9 && llt_kv_seq_len(kv, s2) == 0);
    llt_batch b3 = {1, toks + 9, seqs, NULL}; /* s1 goes on as if nothing happened */
    CHECK_OK(llt_model_decode(m, &b3, lg, &rows, &err), &err);
    llt_kv_seq_free(kv, s1);
    llt_kv_seq_free(kv, s2);
    CHECK_OK(llt_model_forward(m, toks, 10, ref, NULL, NULL, &err), &err);
    CHECK(tl_rel_err(lg, ref + 9 * V, V) < 1e-5);
    /* longer than the cache can ever hold: a clear error naming the context */
    int32_t long_ids[17] = {1};
    CHECK_ERR(llt_model_forward(m, long_ids, 17, ref, NULL, NULL, &err), LLT_ERR_INVALID_ARG, &err,
              "exceed the context of 16");
    free(lg), free(ref);
    llt_model_free(m);
}

/* --dtype f16 / bf16 on the CPU: weights converted on load; logits stay close to f32 (a
 * weight rounding of 2^-9 (bf16) moves logits by well under 5 % of their range here). */
static void test_dtype_conversion(void) {
    llt_model *m32 = tl_load_stories(0, 0, 0, LLT_DTYPE_COUNT);
    llt_model *m16 = tl_load_stories(0, 0, 0, LLT_DTYPE_F16), *mb = tl_load_stories(0, 0, 0, LLT_DTYPE_BF16);
    if (!m32 || !m16 || !mb) return;
    CHECK(m16->layers[0].wq.dtype == LLT_DTYPE_F16 && mb->tok_embd.dtype == LLT_DTYPE_BF16);
    const int32_t ids[6] = {1, 403, 407, 261, 378, 324};
    float a[6 * 512], b[6 * 512], c[6 * 512];
    llt_error err = {0};
    CHECK_OK(llt_model_forward(m32, ids, 6, a, NULL, NULL, &err), &err);
    CHECK_OK(llt_model_forward(m16, ids, 6, b, NULL, NULL, &err), &err);
    CHECK_OK(llt_model_forward(mb, ids, 6, c, NULL, NULL, &err), &err);
    double e16 = tl_rel_err(b, a, 6 * 512), eb = tl_rel_err(c, a, 6 * 512);
    CHECK_MSG(e16 > 0 && e16 < 5e-3 && eb > 0 && eb < 5e-2, "f16 %.3g bf16 %.3g", e16, eb);
    llt_model_free(m32), llt_model_free(m16), llt_model_free(mb);
}

/* llt_load_opts.kv_dtype on the CPU: f16 / bf16 reach the cache and the config (the default
 * keeps the config's f32); their logits stay close to the f32 cache's (K/V rounded to 2^-11 /
 * 2^-8 relative: well under 5 % of the logits' range on stories260K); q8_0 (no KV cache holds
 * it) is an invalid argument. f8_e4m3 (e4m3 rows with a scale per token and kv head, 2^-4
 * relative; its error against HF's logits is bounded on the oracles, test_hf): the cache and the
 * config hold it, its logits differ from the f32 cache's (reported: stories260K's 8-wide heads
 * make that 11 %), and are the same whether a step's rows go by head groups or by rows
 * (LLT_CPU_HEAD_GROUPS=0: the rows are quantised after the products either way) and token by
 * token as in one prompt. */
static llt_model *load_kv(llt_dtype kv, llt_status want, const char *needle) {
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.device = "cpu", o.kv_dtype = kv;
    llt_model *m = NULL;
    llt_error err = {0};
    llt_status s = llt_model_load(model_path(), &o, &m, &err);
    if (want == LLT_OK) CHECK_OK(s, &err);
    else CHECK_ERR(s, want, &err, needle);
    CHECK(want == LLT_OK || m == NULL);
    return m;
}

static void test_kv_dtype_option(void) {
    llt_load_opts o;
    llt_load_opts_init(&o);
    CHECK(o.kv_dtype == LLT_DTYPE_COUNT); /* the config's */
    llt_model *m32 = load_kv(LLT_DTYPE_COUNT, LLT_OK, NULL);
    llt_model *m16 = load_kv(LLT_DTYPE_F16, LLT_OK, NULL), *mb = load_kv(LLT_DTYPE_BF16, LLT_OK, NULL);
    CHECK(load_kv(LLT_DTYPE_Q8_0, LLT_ERR_INVALID_ARG, "kv_dtype q8_0") == NULL);
    llt_model *m8 = load_kv(LLT_DTYPE_F8_E4M3, LLT_OK, NULL);
    if (!m32 || !m16 || !mb || !m8) goto done;
    CHECK(llt_model_kv_cache(m32)->o.kv_dtype == LLT_DTYPE_F32 && llt_model_config(m32)->kv_dtype == LLT_DTYPE_F32);
    CHECK(llt_model_kv_cache(m16)->o.kv_dtype == LLT_DTYPE_F16 && llt_model_config(m16)->kv_dtype == LLT_DTYPE_F16);
    CHECK(llt_model_kv_cache(mb)->o.kv_dtype == LLT_DTYPE_BF16 && llt_model_config(mb)->kv_dtype == LLT_DTYPE_BF16);
    CHECK(llt_model_kv_cache(m16)->page_bytes * 2 == llt_model_kv_cache(m32)->page_bytes);
    const int32_t ids[12] = {1, 403, 407, 261, 378, 324, 426, 267, 360, 283, 372, 290};
    float a[12 * 512], b[12 * 512], c[12 * 512];
    llt_error err = {0};
    CHECK_OK(llt_model_forward(m32, ids, 12, a, NULL, NULL, &err), &err);
    CHECK_OK(llt_model_forward(m16, ids, 12, b, NULL, NULL, &err), &err);
    CHECK_OK(llt_model_forward(mb, ids, 12, c, NULL, NULL, &err), &err);
    double e16 = tl_rel_err(b, a, 12 * 512), eb = tl_rel_err(c, a, 12 * 512);
    CHECK_MSG(e16 > 0 && e16 < 5e-3 && eb > 0 && eb < 5e-2, "kv f16 %.3g kv bf16 %.3g", e16, eb);
    const llt_kv_cache *k8 = llt_model_kv_cache(m8);
    CHECK(k8->o.kv_dtype == LLT_DTYPE_F8_E4M3 && llt_model_config(m8)->kv_dtype == LLT_DTYPE_F8_E4M3);
    CHECK(k8->page_bytes == llt_kv_f8_page_bytes(k8->o.page_size, k8->o.n_kv_heads, k8->o.head_dim));
    float d8[12 * 512], r8[12 * 512], t8[12 * 512];
    CHECK_OK(llt_model_forward(m8, ids, 12, d8, NULL, NULL, &err), &err);
    const double e8 = tl_rel_err(d8, a, 12 * 512);
    printf("  kv f8 logits against the f32 cache's: %.4f of their range\n", e8);
    CHECK_MSG(e8 > 0, "kv f8 %.3g", e8);
    setenv("LLT_CPU_HEAD_GROUPS", "0", 1);
    CHECK_OK(llt_model_forward(m8, ids, 12, r8, NULL, NULL, &err), &err);
    unsetenv("LLT_CPU_HEAD_GROUPS");
    CHECK(memcmp(d8, r8, sizeof d8) == 0);
    int32_t sq = -1, rows = 0;
    CHECK_OK(llt_kv_seq_create(llt_model_kv_cache(m8), &sq, &err), &err);
    for (int i = 0; i < 12; i++) { /* one token a step: the rows the prompt's step wrote, one by one */
        const llt_batch one = {1, ids + i, &sq, NULL};
        CHECK_OK(llt_model_decode(m8, &one, t8 + i * 512, &rows, &err), &err);
    }
    llt_kv_seq_free(llt_model_kv_cache(m8), sq);
    CHECK_MSG(tl_rel_err(t8, d8, 12 * 512) < 1e-5, "token by token %.3g", tl_rel_err(t8, d8, 12 * 512));
    /* random weights take the option too (llt_model_random -> llt_model_finish) */
    llt_config cfg = *llt_model_config(m32);
    o.device = "cpu", o.kv_dtype = LLT_DTYPE_BF16;
    llt_model *r = NULL;
    CHECK_OK(llt_model_random(&cfg, 3, &o, &r, &err), &err);
    CHECK(r && llt_model_kv_cache(r)->o.kv_dtype == LLT_DTYPE_BF16);
    llt_model_free(r);
done:
    llt_model_free(m32), llt_model_free(m16), llt_model_free(mb), llt_model_free(m8);
}

/* llt_load_opts.batch_rows: 0 by default, 1..LLT_MAX_BATCH_ROWS taken (the CPU backend keeps
 * its own chunks: the same logits), anything else refused by name before any work. */
static void test_batch_rows_option(void) {
    llt_load_opts o;
    llt_load_opts_init(&o);
    CHECK(o.batch_rows == 0);
    const int32_t bad[3] = {-1, LLT_MAX_BATCH_ROWS + 1, INT32_MAX};
    llt_error err = {0};
    llt_model *m = NULL;
    for (int i = 0; i < 3; i++) {
        o.batch_rows = bad[i];
        CHECK_ERR(llt_model_load(model_path(), &o, &m, &err), LLT_ERR_INVALID_ARG, &err, "batch_rows");
        CHECK(m == NULL);
    }
    const int32_t ids[12] = {1, 403, 407, 261, 378, 324, 426, 267, 360, 283, 372, 290};
    float a[12 * 512], b[12 * 512];
    o.batch_rows = 0;
    llt_model *d = NULL;
    CHECK_OK(llt_model_load(model_path(), &o, &d, &err), &err);
    o.batch_rows = 1;
    CHECK_OK(llt_model_load(model_path(), &o, &m, &err), &err);
    if (d && m) {
        CHECK_OK(llt_model_forward(d, ids, 12, a, NULL, NULL, &err), &err);
        CHECK_OK(llt_model_forward(m, ids, 12, b, NULL, NULL, &err), &err);
        CHECK(memcmp(a, b, sizeof a) == 0);
    }
    llt_model_free(d), llt_model_free(m);
}

/* ---- damaged files ---------------------------------------------------------------------- */

static const char *patched_copy(const char *name, const char *find, const char *repl, int swap_dims) {
    size_t n;
    char *d = tl_read(model_path(), &n);
    char *at = d ? memmem(d, n, find, strlen(find)) : NULL;
    CHECK(at != NULL);
    if (!at) return "";
    if (repl) memcpy(at, repl, strlen(repl));
    if (swap_dims) { /* tensor info: name, u32 n_dims, u64 dims[]: swap dims 0 and 1 */
        char *dims = at + strlen(find) + 4, tmp[8];
        memcpy(tmp, dims, 8), memcpy(dims, dims + 8, 8), memcpy(dims + 8, tmp, 8);
    }
    const char *p = tl_write_tmp(name, d, n);
    free(d);
    return p;
}

static void test_damaged_models(void) {
    llt_model *m = NULL;
    llt_error err = {0};
    const char *missing = patched_copy("missing.gguf", "blk.3.ffn_up.weight", "blk.3.ffn_uq.weight", 0);
    CHECK_ERR(llt_model_load(missing, NULL, &m, &err), LLT_ERR_NOT_FOUND, &err, "'blk.3.ffn_up.weight' not found");
    CHECK(strstr(err.msg, "missing.gguf") != NULL && m == NULL);
    const char *shape = patched_copy("shape.gguf", "blk.2.attn_k.weight", NULL, 1);
    CHECK_ERR(llt_model_load(shape, NULL, &m, &err), LLT_ERR_FORMAT, &err,
              "tensor 'blk.2.attn_k.weight': expected shape [32, 64], got [64, 32]");
    CHECK_ERR(llt_model_load("no/such/model.gguf", NULL, &m, &err), LLT_ERR_IO, &err, "no/such/model.gguf");
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.device = "tpu:0";
    CHECK_ERR(llt_model_load(model_path(), &o, &m, &err), LLT_ERR_INVALID_ARG, &err, "tpu:0");
    o.device = "cuda:0";
    llt_status s = llt_model_load(model_path(), &o, &m, &err);
    if (s != LLT_OK) CHECK(strstr(err.msg, "cuda") != NULL); /* no CUDA in this build: says so */
    llt_model_free(m);
    m = NULL;
    llt_load_opts_init(&o);
    o.format = LLT_FORMAT_HF;
    CHECK_ERR(llt_model_load(model_path(), &o, &m, &err), LLT_ERR_INVALID_ARG, &err, "model folder");
    o.format = LLT_FORMAT_GGUF;
    CHECK_ERR(llt_model_load(tl_fixture("models"), &o, &m, &err), LLT_ERR_INVALID_ARG, &err, "folder");
}

/* ---- binding: names, quantised tensors, tied heads ------------------------------------- */

static llt_config tiny_config(bool tied) {
    llt_config c;
    llt_config_init(&c);
    c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.hidden_size = 32, c.intermediate_size = 48;
    c.vocab_size = 40, c.max_position_embeddings = 64, c.head_dim = 8, c.tie_weights = tied;
    return c;
}

/* Q8_0 blocks of 32: f16 scale + 32 int8. */
static void *quantize_q8_0(const float *x, int64_t n) {
    uint8_t *q = malloc((size_t)n / 32 * 34);
    for (int64_t b = 0; b < n / 32; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[b * 32 + i]));
        float d = amax / 127;
        uint16_t h = llt_f32_to_f16(d);
        memcpy(q + b * 34, &h, 2);
        for (int i = 0; i < 32; i++) q[b * 34 + 2 + i] = (uint8_t)(int8_t)lrintf(d ? x[b * 32 + i] / d : 0);
    }
    return q;
}

/* A model shell whose table holds `src`'s tensors renamed to scheme `names`. */
static llt_model *renamed(const llt_model *src, llt_tensor_names names, bool q8_wq, bool no_output) {
    llt_model *m = calloc(1, sizeof *m);
    llt_tensors_init(&m->tensors);
    m->cfg = src->cfg;
    char from[128], to[128];
    for (int g = 0; g < 3; g++) {
        const llt_tensor *t = llt_tensors_find(&src->tensors, llt_weights_global_name(LLT_NAMES_GGUF, g));
        if (!t || (g == 2 && no_output)) continue;
        const char *nm = llt_weights_global_name(names, g);
        llt_tensors_add(&m->tensors, nm, strlen(nm), t->dtype, t->n_dims, t->shape, t->data, t->nbytes, false, NULL);
    }
    for (int32_t l = 0; l < src->cfg.n_layers; l++)
        for (int f = 0; f < 9; f++) {
            const llt_tensor *t = llt_tensors_find(&src->tensors, llt_weights_layer_name(LLT_NAMES_GGUF, f, l, from, 128));
            llt_weights_layer_name(names, f, l, to, 128);
            int64_t shape2[2] = {1, t->shape[0]};
            if (q8_wq && f == 1 && l == 0) { /* this one as Q8_0 */
                void *q = quantize_q8_0(t->data, llt_tensor_numel(t));
                llt_tensors_add(&m->tensors, to, strlen(to), LLT_DTYPE_Q8_0, 2, t->shape, q,
                                (uint64_t)llt_tensor_numel(t) / 32 * 34, true, NULL);
            } else if (t->n_dims == 1 && f == 0) { /* a norm stored 2-D [1, H] */
                llt_tensors_add(&m->tensors, to, strlen(to), t->dtype, 2, shape2, t->data, t->nbytes, false, NULL);
            } else {
                llt_tensors_add(&m->tensors, to, strlen(to), t->dtype, t->n_dims, t->shape, t->data, t->nbytes, false, NULL);
            }
        }
    return m;
}

static void free_shell(llt_model *m) {
    llt_tensors_free(&m->tensors);
    free(m->layers);
    free(m);
}

/* Same dtype, shape and bytes: the CPU backend may have moved src's float matrices into its own
 * huge-page copy (forward.c), so the binding is checked by content, not by pointer. */
static bool same_weight(const llt_weight *a, const llt_weight *b) {
    uint64_t n = 0;
    return a->dtype == b->dtype && a->rows == b->rows && a->cols == b->cols &&
           llt_dtype_nbytes(a->dtype, (uint64_t)(a->rows * a->cols), &n) && memcmp(a->data, b->data, n) == 0;
}

static void test_bind_names(void) {
    llt_config c = tiny_config(false);
    llt_model *src = NULL;
    llt_error err = {0};
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.device = "cpu";
    CHECK_OK(llt_model_random(&c, 5, &o, &src, &err), &err);
    if (!src) return;
    for (int names = LLT_NAMES_GGUF; names <= LLT_NAMES_NATIVE; names++) {
        llt_model *m = renamed(src, (llt_tensor_names)names, names == LLT_NAMES_HF, false);
        CHECK_OK(llt_weights_bind(m, (llt_tensor_names)names, &err), &err);
        CHECK(m->layers && same_weight(&m->layers[1].w_down, &src->layers[1].w_down));
        CHECK(m->layers && same_weight(&m->layers[1].w_up, &src->layers[1].w_up)); /* w3 = up */
        CHECK(same_weight(&m->output, &src->output) && !m->cfg.tie_weights);
        if (names == LLT_NAMES_HF && m->layers) { /* Q8_0 -> F32 within the block's rounding */
            const llt_weight *q = &m->layers[0].wq;
            CHECK(q->dtype == LLT_DTYPE_F32 && q->rows == 32 && q->cols == 32);
            CHECK(tl_rel_err(q->data, src->layers[0].wq.data, 32 * 32) < 1.0 / 127);
        }
        free_shell(m);
    }
    /* missing output head: tied to the embedding */
    llt_model *t = renamed(src, LLT_NAMES_NATIVE, false, true);
    CHECK_OK(llt_weights_bind(t, LLT_NAMES_NATIVE, &err), &err);
    CHECK(t->cfg.tie_weights && t->output.data == t->tok_embd.data);
    CHECK_ERR(llt_weights_bind(t, LLT_NAMES_HF, &err), LLT_ERR_NOT_FOUND, &err, "model.embed_tokens.weight");
    t->cfg.n_kv_heads = 3;
    CHECK_ERR(llt_weights_bind(t, LLT_NAMES_NATIVE, &err), LLT_ERR_INVALID_ARG, &err, "n_kv_heads");
    free_shell(t);
    llt_model_free(src);
}

/* Random models: deterministic from the seed (and independent of threads), every dtype, tied
 * or not. */
static void test_random_models(void) {
    const int32_t ids[5] = {1, 7, 3, 39, 0};
    float a[5 * 40], b[5 * 40];
    llt_error err = {0};
    for (int dt = LLT_DTYPE_F32; dt <= LLT_DTYPE_BF16; dt++) {
        llt_config c = tiny_config(dt == LLT_DTYPE_F16);
        llt_load_opts o;
        llt_load_opts_init(&o);
        o.dtype = (llt_dtype)dt, o.device = "cpu";
        llt_model *m1 = NULL, *m2 = NULL;
        o.n_threads = 2;
        CHECK_OK(llt_model_random(&c, 11, &o, &m1, &err), &err);
        o.n_threads = 1; /* same bytes and same logits whatever the thread count */
        CHECK_OK(llt_model_random(&c, 11, &o, &m2, &err), &err);
        if (!m1 || !m2) return;
        CHECK(m1->layers[0].wq.dtype == (llt_dtype)dt && llt_model_tokenizer(m1) == NULL);
        CHECK_OK(llt_model_forward(m1, ids, 5, a, NULL, NULL, &err), &err);
        CHECK_OK(llt_model_forward(m2, ids, 5, b, NULL, NULL, &err), &err);
        CHECK(memcmp(a, b, sizeof a) == 0 && isfinite(a[0]) && a[0] != a[1]);
        llt_gen_params p;
        llt_gen_params_init(&p);
        CHECK_ERR(llt_generate(m1, "x", &p, NULL, NULL, NULL, &err), LLT_ERR_STATE, &err, "tokenizer");
        llt_model_free(m1), llt_model_free(m2);
    }
    llt_config bad = tiny_config(false);
    bad.hidden_size = 0;
    llt_model *m = NULL;
    CHECK_ERR(llt_model_random(&bad, 1, NULL, &m, &err), LLT_ERR_INVALID_ARG, &err, "hidden_size");
    llt_model_free(NULL);
}

/* The CPU step splits every op's rows over the pool and meets at barriers; a row's value must
 * not depend on which thread computed it. A model big enough to be split (GQA, odd row counts
 * per thread), a mixed batch (a 13-token prefill through the panel kernel beside a 3-token
 * one), then single-token decode steps of both sequences: logits identical bit for bit at 1,
 * 2, 3, 4 and 7 threads, in every weight dtype. */
enum { TI_VOCAB = 500, TI_STEPS = 4 };
static void decode_script(llt_model *m, float *out) {
    llt_error err = {0};
    int32_t s0 = -1, s1 = -1, rows = 0;
    CHECK_OK(llt_kv_seq_create(llt_model_kv_cache(m), &s0, &err), &err);
    CHECK_OK(llt_kv_seq_create(llt_model_kv_cache(m), &s1, &err), &err);
    int32_t tok[16], seq[16];
    int8_t want[16];
    for (int i = 0; i < 16; i++) tok[i] = (i * 37 + 11) % TI_VOCAB, seq[i] = i < 13 ? s0 : s1, want[i] = 1;
    llt_batch b = {16, tok, seq, want};
    CHECK_OK(llt_model_decode(m, &b, out, &rows, &err), &err);
    CHECK(rows == 16);
    out += 16 * TI_VOCAB;
    for (int st = 0; st < TI_STEPS; st++) {
        int32_t t2[2] = {(st * 53 + 5) % TI_VOCAB, (st * 29 + 7) % TI_VOCAB}, q2[2] = {s0, s1};
        llt_batch d = {2, t2, q2, NULL};
        CHECK_OK(llt_model_decode(m, &d, out, &rows, &err), &err);
        CHECK(rows == 2);
        out += 2 * TI_VOCAB;
    }
}

static void test_thread_count_independent(void) {
    const size_t n = (16 + 2 * TI_STEPS) * TI_VOCAB;
    float *ref = malloc(n * sizeof *ref), *got = malloc(n * sizeof *got);
    llt_config c;
    llt_config_init(&c);
    c.n_layers = 3, c.n_heads = 8, c.n_kv_heads = 2, c.hidden_size = 256, c.intermediate_size = 684;
    c.vocab_size = TI_VOCAB, c.max_position_embeddings = 64, c.head_dim = 32;
    static const int32_t threads[] = {1, 2, 3, 4, 7};
    for (int steal = 0; steal < 2; steal++) /* also with stealing rows (forward.c, LLT_CPU_STEAL) */
    for (int dt = LLT_DTYPE_F32; dt <= LLT_DTYPE_BF16; dt++)
        for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
            setenv("LLT_CPU_STEAL", steal ? "1" : "0", 1);
            llt_load_opts o;
            llt_load_opts_init(&o);
            o.dtype = (llt_dtype)dt, o.n_threads = threads[t], o.max_seqs = 2;
            llt_model *m = NULL;
            llt_error err = {0};
            CHECK_OK(llt_model_random(&c, 5, &o, &m, &err), &err);
            if (!m) break;
            decode_script(m, t == 0 ? ref : got);
            if (t > 0)
                CHECK_MSG(memcmp(ref, got, n * sizeof *ref) == 0, "%s: logits at %d threads differ from 1 thread",
                          llt_dtype_name((llt_dtype)dt), threads[t]);
            llt_model_free(m);
        }
    unsetenv("LLT_CPU_STEAL");
    CHECK(isfinite(ref[0]) && ref[0] != ref[1]);
    free(ref), free(got);
}

int main(void) {
    RUN(test_forward_teacher_forced);
    RUN(test_batch_matches_single);
    RUN(test_pool_full);
    RUN(test_dtype_conversion);
    RUN(test_kv_dtype_option);
    RUN(test_batch_rows_option);
    RUN(test_damaged_models);
    RUN(test_bind_names);
    RUN(test_random_models);
    RUN(test_thread_count_independent);
    return tl_done("test_model");
}
