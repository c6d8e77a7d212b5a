/* test_safetensors.c: the safetensors reader on the oracle fixtures (values cross-checked with
 * numbers read by Python's struct module from the same files), the writer's round trip, and
 * damaged headers: each must fail with a message naming the file and the tensor or field. */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "formats/safetensors.h"
#include "testlib.h"

static void test_reference(void) {
    const char *path = tl_fixture("oracle/tiny-llama2/reference.safetensors");
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_json *meta = NULL;
    llt_error e;
    CHECK_OK(llt_safetensors_load(path, &tt, &meta, &e), &e);
    CHECK(tt.n == 7);
    const llt_tensor *lg = llt_tensors_find(&tt, "logits");
    CHECK(lg && lg->dtype == LLT_DTYPE_F32 && lg->n_dims == 2 && lg->shape[0] == 80 &&
          lg->shape[1] == 512 && lg->nbytes == 80 * 512 * 4 && !lg->owned);
    if (lg) {
        /* values read from the file with Python's struct module */
        const float *f = lg->data;
        CHECK(fabsf(f[0] - -0.8176059126853943f) < 1e-7f);
        CHECK(fabsf(f[511] - 0.7541491985321045f) < 1e-7f);
        CHECK(fabsf(f[512] - 0.14798162877559662f) < 1e-7f);
    }
    const llt_tensor *ids = llt_tensors_find(&tt, "input_ids");
    CHECK(ids && ids->dtype == LLT_DTYPE_I64 && ids->shape[0] == 80);
    if (ids) {
        const int64_t *v = ids->data;
        CHECK(v[0] == 1 && v[1] == 496 && v[5] == 236);
    }
    CHECK(llt_tensors_find(&tt, "hidden_1") && llt_tensors_find(&tt, "final_norm"));
    CHECK(meta && meta->type == LLT_JSON_OBJECT);
    const char *pl = meta ? llt_json_get_string(meta, "prompt_len") : NULL;
    CHECK(pl && strcmp(pl, "20") == 0);
    llt_json_free(meta);
    llt_tensors_free(&tt);
}

/* A sharded checkpoint: shards add into one table; the same tensor twice is an error. */
static void test_shards(void) {
    static const char *shards[] = {"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                                   "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"};
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_error e;
    char p[1024];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", tl_fixture("oracle/tiny-llama3/hf"), shards[i]);
        CHECK_OK(llt_safetensors_load(p, &tt, NULL, &e), &e);
    }
    CHECK(tt.n == 20);
    const llt_tensor *emb = llt_tensors_find(&tt, "model.embed_tokens.weight");
    CHECK(emb && emb->dtype == LLT_DTYPE_BF16 && emb->shape[0] == 600 && emb->shape[1] == 128);
    CHECK(!llt_tensors_find(&tt, "lm_head.weight"));
    CHECK_ERR(llt_safetensors_load(p, &tt, NULL, &e), LLT_ERR_FORMAT, &e, "defined twice");
    llt_tensors_free(&tt);
}

static void test_roundtrip(void) {
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[3] = {0x3c00, 0x4000, 0xc000};
    int64_t ids[2] = {-5, 1LL << 40};
    llt_st_entry ent[3] = {
        {"a.weight", LLT_DTYPE_F32, 2, {2, 3}, a, sizeof a},
        {"h \"quoted\"", LLT_DTYPE_F16, 1, {3}, h, sizeof h},
        {"ids", LLT_DTYPE_I64, 1, {2}, ids, sizeof ids},
    };
    const char *meta_kv[] = {"format", "pt", "note", "x\ny", NULL};
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", tl_tmpdir());
    llt_error e;
    CHECK_OK(llt_safetensors_write(path, ent, 3, meta_kv, &e), &e);
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_json *meta = NULL;
    CHECK_OK(llt_safetensors_load(path, &tt, &meta, &e), &e);
    CHECK(tt.n == 3);
    for (int i = 0; i < 3; i++) {
        const llt_tensor *t = llt_tensors_find(&tt, ent[i].name);
        CHECK_MSG(t && t->dtype == ent[i].dtype && t->n_dims == ent[i].n_dims &&
                      t->nbytes == ent[i].nbytes && memcmp(t->data, ent[i].data, t->nbytes) == 0 &&
                      t->shape[0] == ent[i].shape[0],
                  "%s", ent[i].name);
        CHECK(t && ((uintptr_t)t->data % 8) == 0); /* the writer pads the header to 8 */
    }
    const char *note = meta ? llt_json_get_string(meta, "note") : NULL;
    CHECK(note && strcmp(note, "x\ny") == 0);
    llt_json_free(meta);
    llt_tensors_free(&tt);

    llt_st_entry bad = {"b", LLT_DTYPE_F32, 1, {5}, a, sizeof a};
    CHECK_ERR(llt_safetensors_write(path, &bad, 1, NULL, &e), LLT_ERR_INVALID_ARG, &e, "'b'");
    llt_st_entry q = {"q", LLT_DTYPE_Q8_0, 1, {32}, a, 34};
    CHECK_ERR(llt_safetensors_write(path, &q, 1, NULL, &e), LLT_ERR_UNSUPPORTED, &e, "q8_0");
    CHECK_ERR(llt_safetensors_write("/nonexistent-dir/x.safetensors", ent, 1, NULL, &e),
              LLT_ERR_IO, &e, "nonexistent-dir");
}

/* Writes an 8-byte length, the header text, then data_len bytes of data. hdr_len_override
 * replaces the stored length when non-zero. */
static const char *make_st(const char *name, const char *header, size_t data_len,
                           uint64_t hdr_len_override) {
    size_t hl = strlen(header);
    uint8_t *buf = calloc(1, 8 + hl + data_len + 1);
    uint64_t n = hdr_len_override ? hdr_len_override : hl;
    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) buf[8 + hl + i] = (uint8_t)(i * 7);
    const char *p = tl_write_tmp(name, buf, 8 + hl + data_len);
    free(buf);
    return p;
}

static void expect_fail(const char *name, const char *header, size_t data_len, uint64_t hl,
                        llt_status want, const char *needle) {
    const char *p = make_st(name, header, data_len, hl);
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_error e;
    llt_json *meta = NULL;
    CHECK_ERR(llt_safetensors_load(p, &tt, &meta, &e), want, &e, needle);
    CHECK_MSG(strstr(e.msg, name) != NULL, "message names the file: %s", e.msg);
    CHECK(tt.n == 0 && meta == NULL);
    llt_tensors_free(&tt);
}

static void test_damaged(void) {
    expect_fail("emptyhdr.st", "", 0, 0, LLT_ERR_FORMAT, "invalid JSON");
    {
        const char *p = tl_write_tmp("tiny.st", "abc", 3);
        llt_error e;
        llt_tensor_table tt;
        llt_tensors_init(&tt);
        CHECK_ERR(llt_safetensors_load(p, &tt, NULL, &e), LLT_ERR_FORMAT, &e, "too short");
        llt_tensors_free(&tt);
    }
    expect_fail("hdrpast.st", "{}", 0, 1000, LLT_ERR_FORMAT, "header length 1000 runs past");
    expect_fail("hdrhuge.st", "{}", 0, ~0ULL, LLT_ERR_FORMAT, "runs past the end");
    expect_fail("notjson.st", "{\"a\":", 0, 0, LLT_ERR_FORMAT, "notjson.st");
    expect_fail("array.st", "[1,2]", 0, 0, LLT_ERR_FORMAT, "not a JSON object");
    expect_fail("dtype.st", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
                0, LLT_ERR_UNSUPPORTED, "tensor 'w': unknown dtype 'F8_E4M3'");
    expect_fail("nodtype.st", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0,
                LLT_ERR_FORMAT, "'w': 'dtype' missing");
    expect_fail("range.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, 0,
                LLT_ERR_FORMAT, "'w': data_offsets [0, 16] outside the data section of 8 bytes");
    expect_fail("backwards.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8,
                0, LLT_ERR_FORMAT, "'w': data_offsets [8, 4]");
    expect_fail("size.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0,
                LLT_ERR_FORMAT, "'w': data_offsets span 8 bytes but F32 x 3 elements need 12");
    expect_fail("overlap.st",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, 0, LLT_ERR_FORMAT, "'a' [0, 8) and 'b' [4, 12) overlap");
    expect_fail("overlap2.st",
                "{\"b\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[4,8]},"
                "\"a\":{\"dtype\":\"I8\",\"shape\":[8],\"data_offsets\":[0,8]}}",
                8, 0, LLT_ERR_FORMAT, "overlap");
    expect_fail("negshape.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
                0, LLT_ERR_FORMAT, "'w': shape[0] is not a non-negative integer");
    expect_fail("fracshape.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,0]}}",
                0, 0, LLT_ERR_FORMAT, "shape[0]");
    expect_fail("dims.st", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}",
                1, 0, LLT_ERR_UNSUPPORTED, "'w': 5 dimensions");
    expect_fail("overflow.st",
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],"
                "\"data_offsets\":[0,1]}}",
                1, 0, LLT_ERR_FORMAT, "'w': shape overflows");
    expect_fail("noshape.st", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,0]}}", 0, 0,
                LLT_ERR_FORMAT, "'w': 'shape' missing");
    expect_fail("nooff.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, 0, LLT_ERR_FORMAT,
                "'w': 'data_offsets' missing");
    expect_fail("negoff.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
                0, LLT_ERR_FORMAT, "'w': data_offsets[0] is negative (-4)");
    /* issue 15: these said "'dtype' missing" and "not a non-negative integer" */
    expect_fail("dtypenum.st", "{\"w\":{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0,
                LLT_ERR_FORMAT, "'w': 'dtype' is a number, expected a name such as \"F16\"");
    expect_fail("hugeoff.st",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[18446744073709551600,18446744073709551608]}}",
                8, 0, LLT_ERR_FORMAT, "'w': data_offsets[0] is 1.8446744073709552e+19, past the data section of 8 bytes");
    expect_fail("fracoff.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 8, 0,
                LLT_ERR_FORMAT, "'w': data_offsets[1] is 4.5, not an integer");
    expect_fail("stroff.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", 8, 0,
                LLT_ERR_FORMAT, "'w': data_offsets[0] is a string, expected a byte offset");
    expect_fail("entry.st", "{\"w\":[1]}", 0, 0, LLT_ERR_FORMAT, "'w': entry is not an object");
    expect_fail("meta.st", "{\"__metadata__\":[1]}", 0, 0, LLT_ERR_FORMAT,
                "'__metadata__' is not an object");

    /* a real file cut short: its last tensors now lie past the end */
    size_t n;
    char *whole = tl_read(tl_fixture("oracle/tiny-llama2/hf/model.safetensors"), &n);
    CHECK(whole != NULL);
    if (whole) {
        const char *p = tl_write_tmp("truncated.safetensors", whole, n / 2);
        llt_tensor_table tt;
        llt_tensors_init(&tt);
        llt_error e;
        CHECK_ERR(llt_safetensors_load(p, &tt, NULL, &e), LLT_ERR_FORMAT, &e,
                  "truncated.safetensors: tensor 'model.");
        CHECK(strstr(e.msg, "outside the data section"));
        CHECK(tt.n == 0);
        llt_tensors_free(&tt);
        free(whole);
    }
    llt_error e;
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    CHECK_ERR(llt_safetensors_load("/nonexistent/x.safetensors", &tt, NULL, &e), LLT_ERR_IO, &e,
              "/nonexistent/x.safetensors");
    llt_tensors_free(&tt);
}

/* Data at an offset that is not a multiple of the element size is copied, not used in place. */
static void test_unaligned(void) {
    const char *hdr = "{\"pad\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
    size_t hl = strlen(hdr);
    uint8_t buf[512] = {0};
    memcpy(buf + 8, hdr, hl);
    while (hl % 4) buf[8 + hl++] = ' '; /* so that data offset 1 is file offset 1 mod 4 */
    uint64_t n = hl;
    memcpy(buf, &n, 8);
    float v[2] = {1.5f, -2.25f};
    memcpy(buf + 8 + hl + 1, v, 8);
    const char *p = tl_write_tmp("unaligned.st", buf, 8 + hl + 9);
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_error e;
    CHECK_OK(llt_safetensors_load(p, &tt, NULL, &e), &e);
    const llt_tensor *w = llt_tensors_find(&tt, "w");
    CHECK(w && w->owned && ((uintptr_t)w->data % 4) == 0);
    if (w) CHECK(memcmp(w->data, v, 8) == 0);
    llt_tensors_free(&tt);
}

int main(void) {
    RUN(test_reference);
    RUN(test_shards);
    RUN(test_roundtrip);
    RUN(test_damaged);
    RUN(test_unaligned);
    return tl_done("test_safetensors");
}
