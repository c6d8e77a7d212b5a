/* test_config.c: llt_config defaults and validation, model.json reading/writing (exact round
 * trip, errors naming the field), and llt_config_from_gguf on stories260K (values from the
 * fixtures' README / llama2.c's stories260K: dim 64, hidden 172, 5 layers, 8 heads, 4 KV
 * heads, vocab 512), llama.cpp's vocab files and small GGUF files built here. */
#include <stdlib.h>
#include <string.h>

#include "model/config.h"
#include "testlib.h"

static llt_config valid_cfg(void) {
    llt_config c;
    llt_config_init(&c);
    c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.hidden_size = 128, c.head_dim = 32;
    c.intermediate_size = 344, c.vocab_size = 512, c.max_position_embeddings = 256;
    return c;
}

static void test_defaults(void) {
    llt_config c;
    memset(&c, 0x5a, sizeof c);
    llt_config_init(&c);
    CHECK(c.rope_freq_base == 10000.0f && c.rope_freq_scale == 1.0f && c.rms_norm_eps == 1e-5f);
    CHECK(c.page_size == 16 && c.max_pages == 0 && c.kv_dtype == LLT_DTYPE_F32 && c.dtype == LLT_DTYPE_F32);
    CHECK(c.bos_token_id == -1 && c.eos_token_id == -1 && c.pad_token_id == -1 && c.n_eos == 0);
    CHECK(c.n_layers == 0 && c.n_devices == 0 && !c.tie_weights && c.rope_scaling == LLT_ROPE_SCALING_NONE);
    llt_error e;
    CHECK_ERR(llt_config_validate(&c, &e), LLT_ERR_INVALID_ARG, &e, "n_layers is 0");
    c = valid_cfg();
    CHECK_OK(llt_config_validate(&c, &e), &e);
    CHECK_ERR(llt_config_validate(NULL, &e), LLT_ERR_INVALID_ARG, &e, "NULL");
}

static void test_validate(void) {
    llt_error e;
    llt_config c;
#define BAD(stmt, needle) do { c = valid_cfg(); stmt; CHECK_ERR(llt_config_validate(&c, &e), LLT_ERR_INVALID_ARG, &e, needle); } while (0)
    BAD(c.n_heads = -4, "n_heads is -4");
    BAD(c.n_kv_heads = 3, "n_kv_heads 3 does not divide n_heads 4");
    BAD(c.hidden_size = 0, "hidden_size");
    BAD(c.intermediate_size = 0, "intermediate_size");
    BAD(c.vocab_size = 0, "vocab_size");
    BAD(c.max_position_embeddings = 0, "max_position_embeddings");
    BAD(c.head_dim = 0, "head_dim");
    BAD(c.head_dim = 31, "head_dim 31 is odd");
    BAD(c.n_heads = 1 << 20; c.n_kv_heads = 1; c.head_dim = 1 << 12, "overflows");
    BAD(c.rope_freq_base = 0, "rope_freq_base");
    BAD(c.rope_freq_scale = -1, "rope_freq_scale");
    BAD(c.rms_norm_eps = 0, "rms_norm_eps");
    BAD(c.rms_norm_eps = NAN, "rms_norm_eps");
    BAD(c.rope_scaling = (llt_rope_scaling)7, "rope_scaling 7");
    BAD(c.rope_scaling = LLT_ROPE_SCALING_LLAMA3; c.rope_original_max_pos = 8192; c.rope_factor = 0, "factor");
    BAD(c.rope_scaling = LLT_ROPE_SCALING_LLAMA3; c.rope_original_max_pos = 8192; c.rope_high_freq_factor = 1, "high_freq_factor");
    BAD(c.rope_scaling = LLT_ROPE_SCALING_LLAMA3, "original_max_position_embeddings");
    BAD(c.page_size = 0, "page_size 0");
    BAD(c.page_size = 4097, "page_size 4097");
    BAD(c.max_pages = -1, "max_pages");
    BAD(c.kv_dtype = LLT_DTYPE_Q8_0, "kv_dtype q8_0");
    BAD(c.dtype = LLT_DTYPE_COUNT, "dtype");
    BAD(c.bos_token_id = 512, "bos_token_id 512");
    BAD(c.eos_token_id = -2, "eos_token_id");
    BAD(c.pad_token_id = -2, "pad_token_id");
    BAD(c.n_eos = 9, "n_eos");
    BAD(c.n_eos = 1; c.eos_token_ids[0] = 600, "eos_token_ids[0]");
    BAD(c.n_devices = 17, "devices");
    BAD(c.n_devices = 1, "devices[0] is empty");
    BAD(c.n_devices = 1; memset(c.devices[0], 'x', 16), "devices[0]");
#undef BAD
    c = valid_cfg();
    c.page_size = 4096, c.kv_dtype = LLT_DTYPE_BF16, c.n_devices = 1;
    strcpy(c.devices[0], "cuda:15");
    CHECK_OK(llt_config_validate(&c, &e), &e);
}

/* ---- model.json -------------------------------------------------------------------- */

static llt_status from_text(const char *t, llt_config *c, llt_error *e) {
    return llt_config_from_json_text(t, strlen(t), "model.json", c, e);
}

/* The specification's attribute names, written by hand. */
static void test_json_spec_names(void) {
    const char *t = "{\"n_layers\": 2, \"n_heads\": 4, \"n_kv_heads\": 2, \"hidden_size\": 128,"
                    " \"intermediate_size\": 344, \"vocab_size\": 512, \"max_position_embeddings\": 256,"
                    " \"rope_freq_base\": 500000.0, \"rope_freq_scale\": 0.5, \"page_size\": 32,"
                    " \"max_pages\": 64, \"kv_dtype\": \"float16\", \"bos_token_id\": 1,"
                    " \"eos_token_id\": 2, \"pad_token_id\": 0, \"tie_weights\": true,"
                    " \"devices\": [\"cuda:0\", \"cuda:1\"], \"rms_norm_eps\": 1e-06, \"other\": {\"x\": [1]}}";
    llt_config c;
    llt_error e;
    CHECK_OK(from_text(t, &c, &e), &e);
    CHECK(c.n_layers == 2 && c.n_heads == 4 && c.n_kv_heads == 2 && c.hidden_size == 128);
    CHECK(c.intermediate_size == 344 && c.vocab_size == 512 && c.max_position_embeddings == 256);
    CHECK(c.rope_freq_base == 500000.0f && c.rope_freq_scale == 0.5f && c.page_size == 32 && c.max_pages == 64);
    CHECK(c.kv_dtype == LLT_DTYPE_F16 && c.bos_token_id == 1 && c.eos_token_id == 2 && c.n_eos == 1);
    CHECK(c.eos_token_ids[0] == 2 && c.pad_token_id == 0 && c.tie_weights && c.rms_norm_eps == 1e-6f);
    CHECK(c.n_devices == 2 && strcmp(c.devices[0], "cuda:0") == 0 && strcmp(c.devices[1], "cuda:1") == 0);
    CHECK(c.head_dim == 32); /* hidden_size / n_heads */
    /* Minimal: defaults fill the rest; n_kv_heads = n_heads; list eos; linear scaling. */
    const char *m = "{\"n_layers\": 1, \"n_heads\": 2, \"hidden_size\": 8, \"intermediate_size\": 4,"
                    " \"vocab_size\": 10, \"max_position_embeddings\": 16, \"eos_token_id\": [3, 4],"
                    " \"pad_token_id\": null, \"devices\": [\"cpu\"],"
                    " \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 4.0}}";
    CHECK_OK(from_text(m, &c, &e), &e);
    CHECK(c.n_kv_heads == 2 && c.head_dim == 4 && c.n_eos == 2 && c.eos_token_id == 3 && c.eos_token_ids[1] == 4);
    CHECK(c.pad_token_id == -1 && c.n_devices == 1 && strcmp(c.devices[0], "cpu") == 0);
    CHECK(c.rope_scaling == LLT_ROPE_SCALING_LINEAR && c.rope_freq_scale == 0.25f);
    CHECK(c.page_size == 16 && c.rope_freq_base == 10000.0f);
}

static void check_same(const llt_config *a, const llt_config *b) {
    CHECK(memcmp(a, b, sizeof *a) == 0);
    llt_sbuf x = {0}, y = {0};
    llt_config_to_json_sbuf(a, &x);
    llt_config_to_json_sbuf(b, &y);
    CHECK(x.len == y.len && strcmp(x.data, y.data) == 0);
    llt_sbuf_free(&x);
    llt_sbuf_free(&y);
}

static void test_json_round_trip(void) {
    llt_config c = valid_cfg(), back;
    c.rope_freq_base = 500000.0f, c.rope_freq_scale = 0.1f, c.rms_norm_eps = 1e-6f;
    c.rope_scaling = LLT_ROPE_SCALING_LLAMA3, c.rope_factor = 8.0f, c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f, c.rope_original_max_pos = 8192;
    c.page_size = 32, c.max_pages = 100, c.kv_dtype = LLT_DTYPE_BF16, c.dtype = LLT_DTYPE_F16;
    c.bos_token_id = 1, c.pad_token_id = -1, c.tie_weights = true;
    c.n_eos = 3, c.eos_token_ids[0] = 2, c.eos_token_ids[1] = 7, c.eos_token_ids[2] = 511, c.eos_token_id = 2;
    c.n_devices = 2;
    strcpy(c.devices[0], "cuda:0");
    strcpy(c.devices[1], "cuda:1");
    llt_error e;
    const char *p = tl_write_tmp("model.json", "", 0);
    CHECK_OK(llt_config_to_json(&c, p, &e), &e);
    CHECK_OK(llt_config_from_json(p, &back, &e), &e);
    check_same(&c, &back);
    /* Float values that need all 9 significant digits. */
    c.rope_freq_scale = 0.333333343f, c.rms_norm_eps = 9.99999975e-06f, c.rope_freq_base = 1e-30f;
    CHECK_OK(llt_config_to_json(&c, p, &e), &e);
    CHECK_OK(llt_config_from_json(p, &back, &e), &e);
    check_same(&c, &back);
    /* eos_token_id set alone (n_eos 0) and a single eos round-trip too. */
    c = valid_cfg();
    c.eos_token_id = 2;
    CHECK_OK(llt_config_to_json(&c, p, &e), &e);
    CHECK_OK(llt_config_from_json(p, &back, &e), &e);
    check_same(&c, &back);
    c.n_eos = 1, c.eos_token_ids[0] = 2;
    CHECK_OK(llt_config_to_json(&c, p, &e), &e);
    CHECK_OK(llt_config_from_json(p, &back, &e), &e);
    check_same(&c, &back);
    /* The written file carries the specification's names. */
    char *text = tl_read(p, NULL);
    static const char *const names[] = {"\"n_layers\"", "\"n_heads\"", "\"n_kv_heads\"", "\"hidden_size\"",
        "\"intermediate_size\"", "\"vocab_size\"", "\"max_position_embeddings\"", "\"rope_freq_base\"",
        "\"rope_freq_scale\"", "\"page_size\"", "\"max_pages\"", "\"kv_dtype\": \"float32\"",
        "\"bos_token_id\": null", "\"eos_token_id\": 2", "\"pad_token_id\": null", "\"tie_weights\": false",
        "\"devices\": []", "\"rms_norm_eps\"", "\"head_dim\": 32", "\"dtype\": \"float32\"", "\"rope_scaling\""};
    for (size_t i = 0; text && i < sizeof names / sizeof names[0]; i++) CHECK_MSG(strstr(text, names[i]), "%s", names[i]);
    free(text);
    CHECK_ERR(llt_config_to_json(&c, "/nonexistent/dir/model.json", &e), LLT_ERR_IO, &e, "model.json");
    CHECK_ERR(llt_config_from_json("/nonexistent/dir/model.json", &back, &e), LLT_ERR_IO, &e, "model.json");
}

static void test_json_errors(void) {
    static const struct { const char *patch, *needle; llt_status st; } bad[] = {
        {"\"n_layers\": \"two\"", "n_layers: expected a 32-bit integer", LLT_ERR_FORMAT},
        {"\"n_layers\": 2.5", "n_layers: expected a 32-bit integer", LLT_ERR_FORMAT},
        {"\"n_layers\": 2147483648", "n_layers: expected a 32-bit integer", LLT_ERR_FORMAT},
        {"\"n_heads\": null", "n_heads: missing", LLT_ERR_FORMAT},
        {"\"n_kv_heads\": 3", "n_kv_heads 3 does not divide", LLT_ERR_FORMAT},
        {"\"hidden_size\": 130", "head_dim: missing and hidden_size 130", LLT_ERR_FORMAT},
        {"\"kv_dtype\": \"float128\"", "kv_dtype: expected a dtype name", LLT_ERR_FORMAT},
        {"\"kv_dtype\": \"q8_0\"", "kv_dtype q8_0", LLT_ERR_FORMAT},
        {"\"kv_dtype\": 16", "kv_dtype", LLT_ERR_FORMAT},
        {"\"dtype\": \"int4\"", "dtype: expected", LLT_ERR_FORMAT},
        {"\"rope_freq_base\": \"x\"", "rope_freq_base: expected a finite number", LLT_ERR_FORMAT},
        {"\"rope_freq_base\": 1e39", "rope_freq_base: expected a finite number", LLT_ERR_FORMAT},
        {"\"rms_norm_eps\": -1", "rms_norm_eps", LLT_ERR_FORMAT},
        {"\"tie_weights\": 1", "tie_weights: expected true or false", LLT_ERR_FORMAT},
        {"\"page_size\": 0", "page_size 0", LLT_ERR_FORMAT},
        {"\"bos_token_id\": 512", "bos_token_id 512", LLT_ERR_FORMAT},
        {"\"eos_token_id\": [1,2,3,4,5,6,7,8,9]", "eos_token_id: 9 ids", LLT_ERR_FORMAT},
        {"\"eos_token_id\": [1, \"x\"]", "eos_token_id: expected", LLT_ERR_FORMAT},
        {"\"eos_token_ids\": {}", "eos_token_ids: expected", LLT_ERR_FORMAT},
        {"\"devices\": [1]", "devices[0]", LLT_ERR_FORMAT},
        {"\"devices\": [\"cuda:0\", \"0123456789abcdef\"]", "devices[1]", LLT_ERR_FORMAT},
        {"\"devices\": {}", "devices: expected a list", LLT_ERR_FORMAT},
        /* issue 15: one name used to be taken as a list of one */
        {"\"devices\": \"cpu\"", "devices: expected a list of device names such as [\"cpu\"], not the string", LLT_ERR_FORMAT},
        {"\"devices\": [\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]", "devices: 17", LLT_ERR_FORMAT},
        {"\"rope_scaling\": 3", "rope_scaling: expected an object", LLT_ERR_FORMAT},
        {"\"rope_scaling\": {\"factor\": 2}", "rope_scaling.type", LLT_ERR_FORMAT},
        {"\"rope_scaling\": {\"type\": \"yarn\"}", "\"yarn\" is not supported", LLT_ERR_UNSUPPORTED},
        {"\"rope_scaling\": {\"type\": \"linear\", \"factor\": \"x\"}", "factor: expected", LLT_ERR_FORMAT},
        {"\"rope_scaling\": {\"type\": \"llama3\", \"factor\": 8}", "original_max_position_embeddings", LLT_ERR_FORMAT},
        {"\"rope_scaling\": {\"type\": \"llama3\", \"original_max_position_embeddings\": 1.5}", "original_max_position_embeddings: expected", LLT_ERR_FORMAT},
    };
    const char *base = "\"n_layers\": 2, \"n_heads\": 4, \"hidden_size\": 128, \"intermediate_size\": 344,"
                       " \"vocab_size\": 512, \"max_position_embeddings\": 256";
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char t[1024];
        snprintf(t, sizeof t, "{%s, %s}", base, bad[i].patch); /* later keys win */
        llt_config c;
        llt_error e;
        llt_status s = from_text(t, &c, &e);
        CHECK_MSG(s == bad[i].st && strstr(e.msg, bad[i].needle) && strstr(e.msg, "model.json"),
                  "case %zu (%s): %s: %s", i, bad[i].patch, llt_status_str(s), e.msg);
    }
    llt_config c;
    llt_error e;
    CHECK_ERR(from_text("[1]", &c, &e), LLT_ERR_FORMAT, &e, "expected a JSON object");
    CHECK_ERR(from_text("{\"n_layers\": 2,", &c, &e), LLT_ERR_FORMAT, &e, "invalid JSON");
    CHECK_ERR(from_text("{}", &c, &e), LLT_ERR_FORMAT, &e, "n_layers: missing");
}

/* ---- GGUF -------------------------------------------------------------------------- */

static void test_gguf_stories(void) {
    llt_gguf g;
    llt_error e;
    CHECK_OK(llt_gguf_open("models/stories260K.gguf", &g, &e), &e);
    if (!g.kv) return;
    llt_config c;
    CHECK_OK(llt_config_from_gguf(&g, &c, &e), &e);
    CHECK(c.n_layers == 5 && c.hidden_size == 64 && c.intermediate_size == 172);
    CHECK(c.n_heads == 8 && c.n_kv_heads == 4 && c.head_dim == 8 && c.vocab_size == 512);
    CHECK(c.max_position_embeddings == 2048 && c.rms_norm_eps == 1e-5f && c.rope_freq_base == 10000.0f);
    CHECK(c.bos_token_id == 1 && c.eos_token_id == 2 && c.n_eos == 1 && c.eos_token_ids[0] == 2);
    CHECK(c.pad_token_id == -1); /* stored as 0xffffffff */
    CHECK(c.dtype == LLT_DTYPE_F32 && !c.tie_weights && c.rope_scaling == LLT_ROPE_SCALING_NONE);
    llt_gguf_close(&g);
}

static void test_gguf_vocab_files(void) {
    llt_gguf g;
    llt_error e;
    llt_config c;
    if (llt_gguf_open(tl_fixture("tokenizers/llamacpp/ggml-vocab-llama-spm.gguf"), &g, &e) == LLT_OK) {
        CHECK_OK(llt_config_from_gguf(&g, &c, &e), &e); /* Llama 2 7B's metadata */
        CHECK(c.n_layers == 32 && c.hidden_size == 4096 && c.n_heads == 32 && c.n_kv_heads == 32);
        CHECK(c.head_dim == 128 && c.vocab_size == 32000 && c.intermediate_size == 11008);
        CHECK(c.max_position_embeddings == 4096 && c.bos_token_id == 1 && c.eos_token_id == 2);
        llt_gguf_close(&g);
    }
    if (llt_gguf_open(tl_fixture("tokenizers/llamacpp/ggml-vocab-phi-3.gguf"), &g, &e) == LLT_OK) {
        CHECK_ERR(llt_config_from_gguf(&g, &c, &e), LLT_ERR_UNSUPPORTED, &e, "'phi3'");
        llt_gguf_close(&g);
    }
}

/* A small llama GGUF with only metadata. */
typedef struct gb {
    uint8_t buf[4096];
    size_t n;
    uint64_t n_kv;
} gb;
static void gb_raw(gb *b, const void *p, size_t n) { memcpy(b->buf + b->n, p, n); b->n += n; }
static void gb_str(gb *b, const char *s) { uint64_t n = strlen(s); gb_raw(b, &n, 8); gb_raw(b, s, n); }
static void gb_kv_u32(gb *b, const char *k, uint32_t v) { uint32_t t = 4; gb_str(b, k); gb_raw(b, &t, 4); gb_raw(b, &v, 4); b->n_kv++; }
static void gb_kv_f32(gb *b, const char *k, float v) { uint32_t t = 6; gb_str(b, k); gb_raw(b, &t, 4); gb_raw(b, &v, 4); b->n_kv++; }
static void gb_kv_str(gb *b, const char *k, const char *v) { uint32_t t = 8; gb_str(b, k); gb_raw(b, &t, 4); gb_str(b, v); b->n_kv++; }

static void gb_llama(gb *b, const char *skip) {
    b->n = 24, b->n_kv = 0;
    gb_kv_str(b, "general.architecture", "llama");
    static const struct { const char *k; uint32_t v; } u[] = {
        {"llama.block_count", 2}, {"llama.embedding_length", 64}, {"llama.feed_forward_length", 96},
        {"llama.attention.head_count", 4}, {"llama.vocab_size", 100},
        {"tokenizer.ggml.eos_token_id", 2}, {"tokenizer.ggml.eot_token_id", 9},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        if (!skip || strcmp(skip, u[i].k)) gb_kv_u32(b, u[i].k, u[i].v);
}

static llt_status gb_config(gb *b, llt_config *c, llt_error *e) {
    memcpy(b->buf, "GGUF\x03\0\0\0", 8);
    memset(b->buf + 8, 0, 8);
    memcpy(b->buf + 16, &b->n_kv, 8);
    llt_gguf g;
    LLT_TRY(llt_gguf_open(tl_write_tmp("cfg.gguf", b->buf, b->n), &g, e));
    llt_status s = llt_config_from_gguf(&g, c, e);
    llt_gguf_close(&g);
    return s;
}

static void test_gguf_built(void) {
    gb b;
    llt_config c;
    llt_error e;
    gb_llama(&b, NULL);
    CHECK_OK(gb_config(&b, &c, &e), &e);
    CHECK(c.n_kv_heads == 4 && c.head_dim == 16 && c.max_position_embeddings == 2048 && c.vocab_size == 100);
    CHECK(c.n_eos == 2 && c.eos_token_ids[0] == 2 && c.eos_token_ids[1] == 9 && c.bos_token_id == -1);
    gb_llama(&b, NULL);
    gb_kv_str(&b, "llama.rope.scaling.type", "linear");
    gb_kv_f32(&b, "llama.rope.scaling.factor", 4.0f);
    gb_kv_f32(&b, "llama.rope.freq_base", 500000.0f);
    gb_kv_u32(&b, "llama.attention.key_length", 32);
    gb_kv_u32(&b, "llama.attention.head_count_kv", 2);
    CHECK_OK(gb_config(&b, &c, &e), &e);
    CHECK(c.rope_scaling == LLT_ROPE_SCALING_LINEAR && c.rope_freq_scale == 0.25f && c.rope_factor == 4.0f);
    CHECK(c.rope_freq_base == 500000.0f && c.head_dim == 32 && c.n_kv_heads == 2);
    gb_llama(&b, NULL);
    gb_kv_str(&b, "llama.rope.scaling.type", "yarn");
    CHECK_ERR(gb_config(&b, &c, &e), LLT_ERR_UNSUPPORTED, &e, "'yarn'");
    gb_llama(&b, NULL);
    gb_kv_str(&b, "llama.rope.scaling.type", "linear");
    gb_kv_f32(&b, "llama.rope.scaling.factor", 0.0f);
    CHECK_ERR(gb_config(&b, &c, &e), LLT_ERR_FORMAT, &e, "rope.scaling.factor");
    gb_llama(&b, "llama.block_count");
    CHECK_ERR(gb_config(&b, &c, &e), LLT_ERR_NOT_FOUND, &e, "llama.block_count");
    gb_llama(&b, "llama.vocab_size");
    CHECK_ERR(gb_config(&b, &c, &e), LLT_ERR_FORMAT, &e, "no vocabulary size");
    gb_llama(&b, NULL);
    gb_kv_u32(&b, "llama.attention.head_count_kv", 3);
    CHECK_ERR(gb_config(&b, &c, &e), LLT_ERR_FORMAT, &e, "n_kv_heads 3");
    gb_llama(&b, NULL);
    gb_kv_u32(&b, "llama.context_length", 0);
    CHECK_ERR(gb_config(&b, &c, &e), LLT_ERR_FORMAT, &e, "llama.context_length is 0");
    gb_llama(&b, NULL);
    gb_kv_str(&b, "llama.attention.layer_norm_rms_epsilon", "x");
    CHECK_ERR(gb_config(&b, &c, &e), LLT_ERR_FORMAT, &e, "layer_norm_rms_epsilon");
    gb_llama(&b, NULL);
    gb_kv_str(&b, "tokenizer.ggml.bos_token_id", "x");
    CHECK_ERR(gb_config(&b, &c, &e), LLT_ERR_FORMAT, &e, "bos_token_id");
    b.n = 24, b.n_kv = 0;
    gb_kv_u32(&b, "llama.block_count", 2);
    CHECK_ERR(gb_config(&b, &c, &e), LLT_ERR_NOT_FOUND, &e, "general.architecture");
}

int main(void) {
    RUN(test_defaults);
    RUN(test_validate);
    RUN(test_json_spec_names);
    RUN(test_json_round_trip);
    RUN(test_json_errors);
    RUN(test_gguf_stories);
    RUN(test_gguf_vocab_files);
    RUN(test_gguf_built);
    return tl_done("test_config");
}
