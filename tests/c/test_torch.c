/* test_torch.c: torch.save archives. The fixtures' pytorch_model*.bin (written by torch) must
 * hold exactly the bytes of the same checkpoint's safetensors files (written by transformers);
 * our writer's archives must read back; hostile and damaged archives must fail with a
 * message naming the file and the record, global or tensor, without crashing. */
#include <stdlib.h>
#include <string.h>

#include "formats/pickle.h"
#include "formats/safetensors.h"
#include "formats/torch_zip.h"
#include "formats/zip.h"
#include "testlib.h"

static void load_st(llt_tensor_table *tt, const char *dir, const char *const *files) {
    llt_error e;
    char p[1024];
    for (; *files; files++) {
        snprintf(p, sizeof p, "%s/%s", tl_fixture(dir), *files);
        CHECK_OK(llt_safetensors_load(p, tt, NULL, &e), &e);
    }
}

static void load_bin(llt_tensor_table *tt, const char *dir, const char *const *files) {
    llt_error e;
    char p[1024];
    for (; *files; files++) {
        snprintf(p, sizeof p, "%s/%s", tl_fixture(dir), *files);
        CHECK_OK(llt_torch_load(p, tt, &e), &e);
    }
}

static void check_same(const llt_tensor_table *a, const llt_tensor_table *b) {
    CHECK(a->n == b->n && a->n > 0);
    for (size_t i = 0; i < a->n; i++) {
        const llt_tensor *x = &a->t[i], *y = llt_tensors_find(b, x->name);
        CHECK_MSG(y != NULL, "missing %s", x->name);
        if (!y) continue;
        CHECK_MSG(x->dtype == y->dtype && x->n_dims == y->n_dims && x->nbytes == y->nbytes &&
                      memcmp(x->shape, y->shape, sizeof x->shape[0] * (size_t)x->n_dims) == 0 &&
                      memcmp(x->data, y->data, x->nbytes) == 0,
                  "tensor %s differs", x->name);
    }
}

static void test_fixtures(void) {
    static const char *const st2[] = {"model.safetensors", NULL};
    static const char *const bin2[] = {"pytorch_model.bin", NULL};
    static const char *const st3[] = {"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                                      "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors", NULL};
    static const char *const bin3[] = {"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", NULL};
    llt_tensor_table a, b;
    llt_tensors_init(&a);
    llt_tensors_init(&b);
    load_st(&a, "oracle/tiny-llama2/hf", st2);
    load_bin(&b, "oracle/tiny-llama2/hf-bin", bin2);
    check_same(&a, &b);
    const llt_tensor *q = llt_tensors_find(&b, "model.layers.0.self_attn.q_proj.weight");
    CHECK(q && q->dtype == LLT_DTYPE_F32 && q->shape[0] == 128 && q->shape[1] == 128 && !q->owned);
    llt_tensors_free(&a);
    llt_tensors_free(&b);
    llt_tensors_init(&a);
    llt_tensors_init(&b);
    load_st(&a, "oracle/tiny-llama3/hf", st3);
    load_bin(&b, "oracle/tiny-llama3/hf-bin", bin3);
    check_same(&a, &b);
    const llt_tensor *e = llt_tensors_find(&b, "model.embed_tokens.weight");
    CHECK(e && e->dtype == LLT_DTYPE_BF16 && e->shape[0] == 600);
    llt_tensors_free(&a);
    llt_tensors_free(&b);
}

static void roundtrip(bool zip64) {
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[70000];
    for (size_t i = 0; i < 70000; i++) h[i] = (uint16_t)(i * 31);
    int64_t ids[1] = {-(1LL << 40)};
    llt_st_entry ent[4] = {
        {"a.weight", LLT_DTYPE_F32, 2, {2, 3}, a, sizeof a},
        {"big", LLT_DTYPE_BF16, 3, {7, 100, 100}, h, sizeof h},
        {"ids", LLT_DTYPE_I64, 1, {1}, ids, sizeof ids},
        {"scalar", LLT_DTYPE_F32, 0, {0}, a, 4},
    };
    char path[512];
    snprintf(path, sizeof path, "%s/rt%d.pt", tl_tmpdir(), (int)zip64);
    llt_error e;
    CHECK_OK(llt_torch_save(path, "state_dict", ent, 4, zip64, &e), &e);
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    CHECK_OK(llt_torch_load(path, &tt, &e), &e);
    CHECK(tt.n == 4);
    for (int i = 0; i < 4; i++) {
        const llt_tensor *t = llt_tensors_find(&tt, ent[i].name);
        CHECK_MSG(t && t->dtype == ent[i].dtype && t->n_dims == ent[i].n_dims &&
                      t->nbytes == ent[i].nbytes && memcmp(t->data, ent[i].data, t->nbytes) == 0 &&
                      !t->owned && ((uintptr_t)t->data % 64) == 0,
                  "%s", ent[i].name);
    }
    llt_tensors_free(&tt);
}

static void test_roundtrip(void) {
    roundtrip(false);
    roundtrip(true);
    llt_error e;
    float a[2] = {0};
    llt_st_entry bad = {"x", LLT_DTYPE_F32, 1, {3}, a, sizeof a};
    CHECK_ERR(llt_torch_save("/tmp/never.pt", "s", &bad, 1, false, &e), LLT_ERR_INVALID_ARG, &e, "'x'");
    llt_st_entry q = {"q", LLT_DTYPE_Q8_0, 1, {32}, a, 34};
    CHECK_ERR(llt_torch_save("/tmp/never.pt", "s", &q, 1, false, &e), LLT_ERR_UNSUPPORTED, &e, "'q'");
    llt_st_entry ok = {"x", LLT_DTYPE_F32, 1, {2}, a, sizeof a};
    CHECK_ERR(llt_torch_save("/nonexistent-dir/x.pt", "s", &ok, 1, false, &e), LLT_ERR_IO, &e,
              "nonexistent-dir");
}

/* ---- hand-built archives ---------------------------------------------------------------- */

typedef struct rec {
    const char *name;
    const void *data;
    size_t size;
} rec;

static const char *make_zip(const char *file, const rec *r, size_t n) {
    static char path[8][512];
    static int slot;
    char *p = path[slot++ % 8];
    snprintf(p, 512, "%s/%s", tl_tmpdir(), file);
    llt_zip_writer w;
    llt_error e;
    CHECK_OK(llt_zip_writer_open(&w, p, &e), &e);
    for (size_t i = 0; i < n; i++) CHECK_OK(llt_zip_writer_add(&w, r[i].name, r[i].data, r[i].size, 64, &e), &e);
    CHECK_OK(llt_zip_writer_finish(&w, &e), &e);
    return p;
}

static const char *tmp_zip_path(bool zip64) {
    static char p[2][512];
    snprintf(p[zip64], 512, "%s/good%d.zip", tl_tmpdir(), (int)zip64);
    return p[zip64];
}

static void expect_load_fail(const char *path, llt_status want, const char *needle) {
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_error e;
    CHECK_ERR(llt_torch_load(path, &tt, &e), want, &e, needle);
    CHECK_MSG(strstr(e.msg, path) != NULL, "names the file: %s", e.msg);
    CHECK(tt.n == 0);
    llt_tensors_free(&tt);
}

static const char *pickle_zip(const char *file, const void *pkl, size_t n) {
    rec r[2] = {{"archive/data.pkl", pkl, n}, {"archive/data/0", "\0\0\0\0\0\0\0\0", 8}};
    return make_zip(file, r, 2);
}

#define PKL(s) s, sizeof(s) - 1

static void test_hostile_pickles(void) {
    /* os.system("ls") as protocol 2 (GLOBAL) and protocol 4 (STACK_GLOBAL) would run a shell. */
    expect_load_fail(pickle_zip("os.pt", PKL("\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")),
                     LLT_ERR_UNSUPPORTED, "refused global 'os.system'");
    expect_load_fail(pickle_zip("posix.pt", PKL("\x80\x04\x8c\x05posix\x8c\x06system\x93\x8c\x02ls\x85R.")),
                     LLT_ERR_UNSUPPORTED, "refused global 'posix.system'");
    expect_load_fail(pickle_zip("eval.pt", PKL("\x80\x02" "cbuiltins\neval\nX\x01\x00\x00\x00" "1\x85R.")),
                     LLT_ERR_UNSUPPORTED, "refused global 'builtins.eval'");
    /* INST ('i') and OBJ ('o') build arbitrary objects: not needed, refused */
    expect_load_fail(pickle_zip("inst.pt", PKL("\x80\x02(ios\nsystem\n.")), LLT_ERR_UNSUPPORTED,
                     "opcode 0x69 ('i') is not allowed");
    expect_load_fail(pickle_zip("storagecall.pt", PKL("\x80\x02" "ctorch\nFloatStorage\n)R.")),
                     LLT_ERR_UNSUPPORTED, "refused call of a torch storage class");
    expect_load_fail(pickle_zip("proto.pt", PKL("\x80\x09}.")), LLT_ERR_UNSUPPORTED, "pickle protocol 9");
    expect_load_fail(pickle_zip("int.pt", PKL("\x80\x02K\x01.")), LLT_ERR_FORMAT, "holds a int, not a state dict");
    expect_load_fail(pickle_zip("notensor.pt", PKL("\x80\x02}X\x01\x00\x00\x00" "aK\x01s.")),
                     LLT_ERR_UNSUPPORTED, "state dict entry 'a' is a int, not a tensor");
    expect_load_fail(pickle_zip("intkey.pt", PKL("\x80\x02}K\x01K\x01s.")), LLT_ERR_FORMAT, "key 0 is a int");
    expect_load_fail(pickle_zip("nostop.pt", PKL("\x80\x02}")), LLT_ERR_FORMAT, "no STOP opcode");
    expect_load_fail(pickle_zip("under.pt", PKL("\x80\x02t.")), LLT_ERR_FORMAT, "no MARK");
    expect_load_fail(pickle_zip("under2.pt", PKL("\x80\x02R.")), LLT_ERR_FORMAT, "stack underflow");
    expect_load_fail(pickle_zip("memo.pt", PKL("\x80\x02h\x05.")), LLT_ERR_FORMAT, "memo key 5 was never stored");
    expect_load_fail(pickle_zip("memobig.pt", PKL("\x80\x02}r\xff\xff\xff\x7f.")), LLT_ERR_UNSUPPORTED, "memo index");
    expect_load_fail(pickle_zip("strlen.pt", PKL("\x80\x02X\xff\xff\xff\x00" "ab.")), LLT_ERR_FORMAT, "runs past the end");
    expect_load_fail(pickle_zip("long.pt", PKL("\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09.")),
                     LLT_ERR_UNSUPPORTED, "integer of 9 bytes");
    expect_load_fail(pickle_zip("persid.pt", PKL("\x80\x02K\x01Q.")), LLT_ERR_FORMAT, "persistent id is not a 5-tuple");
    expect_load_fail(pickle_zip("setitem.pt", PKL("\x80\x02]K\x01K\x02s.")), LLT_ERR_FORMAT, "cannot add items to a list");
    expect_load_fail(pickle_zip("odd.pt", PKL("\x80\x02}(K\x01u.")), LLT_ERR_FORMAT, "odd number");
    expect_load_fail(pickle_zip("build.pt", PKL("\x80\x02K\x01K\x02" "b.")), LLT_ERR_UNSUPPORTED, "BUILD on a int");
    expect_load_fail(pickle_zip("odict.pt", PKL("\x80\x02" "ccollections\nOrderedDict\n]\x85R.")),
                     LLT_ERR_UNSUPPORTED, "OrderedDict() with arguments");
    expect_load_fail(pickle_zip("global.pt", PKL("\x80\x02" "cos")), LLT_ERR_FORMAT, "without a newline");
}

/* A state dict that this unpickler accepts, with the opcodes of protocols 2-4 that pickle.py
 * emits for it (hand-assembled: FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL, BUILD of the
 * OrderedDict's _metadata, _rebuild_parameter, a transposed view). */
static void test_accepted_pickle(void) {
    static const char pkl[] =
        "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00"
        "\x8c\x0b" "collections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94"
        "(\x8c\x01t"
        "\x8c\x0ctorch._utils\x8c\x12_rebuild_parameter\x93"
        "\x8c\x0ctorch._utils\x8c\x12_rebuild_tensor_v2\x93"
        "((\x8c\x07storage\x8c\x05torch\x8c\x0c" "FloatStorage\x93\x8c\x01" "0\x8c\x03" "cpu" "K\x06t"
        "QK\x00K\x03K\x02\x86K\x01K\x03\x86\x89h\x02)RtR"
        "\x88h\x02)R\x87R"
        "u}\x8c\x09_metadata\x4e" "sb.";
    float data[6] = {0, 1, 2, 3, 4, 5}; /* storage; the tensor is its [2,3] transposed to [3,2] */
    rec r[2] = {{"m/data.pkl", pkl, sizeof pkl - 1}, {"m/data/0", data, sizeof data}};
    const char *p = make_zip("accepted.pt", r, 2);
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_error e;
    CHECK_OK(llt_torch_load(p, &tt, &e), &e);
    const llt_tensor *t = llt_tensors_find(&tt, "t");
    CHECK(t && t->n_dims == 2 && t->shape[0] == 3 && t->shape[1] == 2 && t->owned);
    if (t) {
        const float *f = t->data;
        float want[6] = {0, 3, 1, 4, 2, 5};
        CHECK(memcmp(f, want, sizeof want) == 0);
    }
    llt_tensors_free(&tt);
}

static void test_damaged_archives(void) {
    uint8_t pk_buf[4096];
    llt_sbuf pk = {0};
    llt_error e;
    /* a storage record shorter than the storage, a view past its storage, a missing record */
    llt_pk_tensor t[3] = {
        {"short", "0", LLT_DTYPE_F32, 100, 0, 1, {100}, {1}},
        {"past", "1", LLT_DTYPE_F32, 4, 1, 1, {4}, {1}},
        {"missing", "7", LLT_DTYPE_F32, 2, 0, 1, {2}, {1}},
    };
    for (int i = 0; i < 3; i++) {
        pk.len = 0;
        CHECK_OK(llt_pickle_write_state_dict(&t[i], 1, &pk, &e), &e);
        memcpy(pk_buf, pk.data, pk.len);
        rec r[3] = {{"a/data.pkl", pk_buf, pk.len}, {"a/data/0", "0123456789abcdef", 16},
                    {"a/data/1", "0123456789abcdef", 16}};
        char name[32];
        snprintf(name, sizeof name, "damaged%d.pt", i);
        const char *p = make_zip(name, r, 3);
        static const char *const needles[] = {"tensor 'short': storage 'a/data/0' holds 16 bytes",
                                              "tensor 'past' reaches element 4 of storage '1'",
                                              "tensor 'missing': storage record 'a/data/7' is missing"};
        expect_load_fail(p, LLT_ERR_FORMAT, needles[i]);
    }
    llt_sbuf_free(&pk);

    /* the fixture, truncated; then with its first entry marked as deflate-compressed */
    size_t n;
    char *whole = tl_read(tl_fixture("oracle/tiny-llama2/hf-bin/pytorch_model.bin"), &n);
    CHECK(whole != NULL);
    if (!whole) return;
    expect_load_fail(tl_write_tmp("trunc.bin", whole, n - 100), LLT_ERR_FORMAT, "no ZIP end-of-central-directory");
    for (size_t i = n - 4; i-- > 0;)
        if (memcmp(whole + i, "PK\x01\x02", 4) == 0) {
            whole[i + 10] = 8; /* central directory method of the last entry: deflate */
            break;
        }
    expect_load_fail(tl_write_tmp("deflate.bin", whole, n), LLT_ERR_UNSUPPORTED,
                     "entry 'pytorch_model/version' is compressed (method 8, deflate)");
    free(whole);
    expect_load_fail(tl_write_tmp("legacy.pt", "\x80\x02\x8a\x0a", 4), LLT_ERR_UNSUPPORTED, "legacy");
    expect_load_fail(tl_write_tmp("tiny.pt", "PK", 2), LLT_ERR_FORMAT, "too short");
    rec nopkl[1] = {{"a/other", "x", 1}};
    expect_load_fail(make_zip("nopkl.pt", nopkl, 1), LLT_ERR_FORMAT, "no data.pkl record");
    rec be[2] = {{"a/data.pkl", "\x80\x02}.", 4}, {"a/byteorder", "big", 3}};
    expect_load_fail(make_zip("big.pt", be, 2), LLT_ERR_UNSUPPORTED, "byteorder");
}

/* Every prefix of a real data.pkl must fail cleanly (ASan watches for overreads). */
static void test_truncated_pickles(void) {
    size_t n;
    char *whole = tl_read(tl_fixture("oracle/tiny-llama2/hf-bin/pytorch_model.bin"), &n);
    CHECK(whole != NULL);
    if (!whole) return;
    llt_zip z;
    llt_error e;
    CHECK_OK(llt_zip_open((const uint8_t *)whole, n, "fixture", &z, &e), &e);
    const llt_zip_entry *pkl = llt_zip_find(&z, "pytorch_model/data.pkl");
    CHECK(pkl != NULL);
    int failures = 0;
    for (size_t len = 0; pkl && len < pkl->size; len++) {
        uint8_t *copy = malloc(len + 1); /* exact-size buffer so overreads are caught */
        memcpy(copy, pkl->data, len);
        llt_pk_state_dict sd;
        if (llt_pickle_read_state_dict(copy, len, "prefix", &sd, &e) == LLT_OK) failures++;
        free(copy);
    }
    CHECK(failures == 0);
    llt_pk_state_dict sd;
    if (pkl) {
        CHECK_OK(llt_pickle_read_state_dict(pkl->data, pkl->size, "whole", &sd, &e), &e);
        CHECK(sd.n == 21);
        llt_pk_state_dict_free(&sd);
    }
    llt_zip_close(&z);
    free(whole);
}


/* ---- the unpickler's opcodes, one at a time ----------------------------------------------- */

typedef struct pbuf {
    uint8_t b[2048];
    size_t n;
} pbuf;

static void raw(pbuf *p, const void *s, size_t n) {
    memcpy(p->b + p->n, s, n);
    p->n += n;
}
static void ops(pbuf *p, const char *s) { raw(p, s, strlen(s)); }
static void op1(pbuf *p, uint8_t c) { raw(p, &c, 1); }
static void pstr(pbuf *p, const char *s) {
    uint32_t n = (uint32_t)strlen(s);
    op1(p, 'X');
    raw(p, &n, 4);
    raw(p, s, n);
}
static void pint(pbuf *p, int32_t v) {
    if (v >= 0 && v < 256) {
        op1(p, 'K');
        op1(p, (uint8_t)v);
    } else {
        op1(p, 'J');
        raw(p, &v, 4);
    }
}
static void pglobal(pbuf *p, const char *mod, const char *name) {
    op1(p, 'c');
    ops(p, mod);
    op1(p, '\n');
    ops(p, name);
    op1(p, '\n');
}
static void ptuple(pbuf *p, const int32_t *v, int n) {
    op1(p, '(');
    for (int i = 0; i < n; i++) pint(p, v[i]);
    op1(p, 't');
}
static void ppid(pbuf *p, const char *tag, const char *cls_mod, const char *cls, const char *key, int32_t numel) {
    op1(p, '(');
    pstr(p, tag);
    pglobal(p, cls_mod, cls);
    if (key) pstr(p, key);
    else pint(p, 0);
    pstr(p, "cpu");
    pint(p, numel);
    ops(p, "tQ");
}
/* A _rebuild_tensor_v2 call with the given size/stride (n dims) on FloatStorage '0' of 6. */
static void ptensor(pbuf *p, const int32_t *size, const int32_t *stride, int n) {
    pglobal(p, "torch._utils", "_rebuild_tensor_v2");
    op1(p, '(');
    ppid(p, "storage", "torch", "FloatStorage", "0", 6);
    pint(p, 0);
    ptuple(p, size, n);
    ptuple(p, stride, n);
    op1(p, 0x89);
    ops(p, "Nt" "R");
}

static llt_status unpickle(const pbuf *p, llt_pk_state_dict *sd, llt_error *e) {
    return llt_pickle_read_state_dict(p->b, p->n, "t.pkl", sd, e);
}

/* Opcodes a state dict may use, all accepted; junk is built and popped on the way. */
static void test_pickle_opcodes(void) {
    pbuf p = {.n = 0};
    ops(&p, "\x80\x02]");
    pint(&p, 1);
    op1(&p, 'a');
    op1(&p, '(');
    pint(&p, -5);                                /* BININT */
    raw(&p, "G\x3f\xf0\0\0\0\0\0\0", 9);         /* BINFLOAT 1.0 */
    raw(&p, "T\x01\0\0\0x", 6);                  /* BINSTRING */
    raw(&p, "C\x01y", 3);                        /* SHORT_BINBYTES */
    raw(&p, "\x8d\x01\0\0\0\0\0\0\0z", 10);      /* BINUNICODE8 */
    raw(&p, "\x8a\0", 2);                        /* LONG1 0 */
    raw(&p, "\x8a\x01\xff", 3);                  /* LONG1 -1 */
    raw(&p, "\x94", 1);                          /* MEMOIZE */
    ops(&p, "e200");                             /* APPENDS, DUP, POP x2 */
    op1(&p, '(');
    pint(&p, 1);
    ops(&p, "1(l0(0");                           /* POP_MARK; LIST from mark; POP; MARK then POP of it */
    op1(&p, '(');
    pstr(&p, "t");
    pglobal(&p, "torch._utils", "_rebuild_tensor");
    op1(&p, '(');
    ppid(&p, "storage", "torch", "FloatStorage", "0", 6);
    pint(&p, 1);
    int32_t sz[2] = {2, 2}, st[2] = {3, 1};
    ptuple(&p, sz, 2);
    ptuple(&p, st, 2);
    ops(&p, "tRd.");                             /* _rebuild_tensor(...), DICT from mark, STOP */
    llt_pk_state_dict sd;
    llt_error e;
    CHECK_OK(unpickle(&p, &sd, &e), &e);
    CHECK(sd.n == 1 && sd.t[0].offset == 1 && sd.t[0].n_dims == 2 && sd.t[0].stride[0] == 3 &&
          strcmp(sd.t[0].storage_key, "0") == 0 && sd.t[0].dtype == LLT_DTYPE_F32);
    llt_pk_state_dict_free(&sd);
}

static void expect_pickle(const pbuf *p, llt_status st, const char *needle) {
    llt_pk_state_dict sd;
    llt_error e;
    CHECK_ERR(unpickle(p, &sd, &e), st, &e, needle);
    CHECK(sd.n == 0 && sd.t == NULL);
}

static void test_pickle_errors(void) {
    pbuf p;
#define CASE(build, st, needle) do { p.n = 0; ops(&p, "\x80\x02"); build; expect_pickle(&p, st, needle); } while (0)
    CASE(ops(&p, "K\x01K\x02\x93."), LLT_ERR_FORMAT, "STACK_GLOBAL needs two strings");
    CASE(ops(&p, "(K\x01" "d."), LLT_ERR_FORMAT, "DICT with an odd number of items");
    CASE(ops(&p, "0."), LLT_ERR_FORMAT, "stack underflow");
    CASE(ops(&p, "1."), LLT_ERR_FORMAT, "no MARK");
    CASE(ops(&p, "2."), LLT_ERR_FORMAT, "stack underflow");
    CASE(ops(&p, "K\x01q"), LLT_ERR_FORMAT, "runs past the end");
    CASE(ops(&p, "q\x01."), LLT_ERR_FORMAT, "memo put on an empty stack");
    CASE(ops(&p, "K\x01K\x02R."), LLT_ERR_FORMAT, "REDUCE calls a int");
    CASE((pglobal(&p, "collections", "OrderedDict"), ops(&p, "K\x01R.")), LLT_ERR_FORMAT, "REDUCE arguments are a int");
    CASE(ops(&p, "K\x01(K\x01u."), LLT_ERR_FORMAT, "cannot add items to a int");
    CASE(ops(&p, "(K\x01u."), LLT_ERR_FORMAT, "no container below the items");
    CASE(ops(&p, "]a."), LLT_ERR_FORMAT, "stack underflow");
    CASE((ops(&p, "}"), pstr(&p, "x"), ptensor(&p, (int32_t[]){1, 1, 1, 1, 1}, (int32_t[]){1, 1, 1, 1, 1}, 5), ops(&p, "s.")),
         LLT_ERR_UNSUPPORTED, "tensor size has 5 dimensions");
    CASE((ops(&p, "}"), pstr(&p, "x"), ptensor(&p, (int32_t[]){-2}, (int32_t[]){1}, 1), ops(&p, "s.")),
         LLT_ERR_FORMAT, "tensor size[0] is not a non-negative int");
    CASE((pglobal(&p, "torch._utils", "_rebuild_tensor"), op1(&p, '('), ppid(&p, "storage", "torch", "FloatStorage", "0", 6),
          pint(&p, 0), ptuple(&p, (int32_t[]){2}, 1), ops(&p, "K\x01tR.")),
         LLT_ERR_FORMAT, "tensor stride is a int, not a tuple");
    CASE((pglobal(&p, "torch._utils", "_rebuild_tensor"), op1(&p, '('), ppid(&p, "storage", "torch", "FloatStorage", "0", 6),
          pint(&p, 0), ptuple(&p, (int32_t[]){2, 3}, 2), ptuple(&p, (int32_t[]){1}, 1), ops(&p, "tR.")),
         LLT_ERR_FORMAT, "tensor size has 2 dimensions, stride 1");
    /* a view whose extent overflows 64 bits is out of its storage */
    CASE((ops(&p, "}"), pstr(&p, "x"), ptensor(&p, (int32_t[]){3, 2}, (int32_t[]){2147483647, 1}, 2), ops(&p, "s.")),
         LLT_ERR_FORMAT, "tensor 'x' reaches element");
    CASE((pglobal(&p, "torch._utils", "_rebuild_tensor"), pint(&p, 1), ops(&p, "\x85R.")), LLT_ERR_FORMAT,
         "_rebuild_tensor with 1 arguments");
    CASE((pglobal(&p, "torch._utils", "_rebuild_tensor"), ops(&p, "(K\x01K\x01K\x01K\x01tR.")), LLT_ERR_FORMAT,
         "tensor storage is a int");
    CASE((pglobal(&p, "torch._utils", "_rebuild_parameter"), pint(&p, 1), ops(&p, "\x85R.")), LLT_ERR_FORMAT,
         "_rebuild_parameter without a tensor");
    CASE((ppid(&p, "other", "torch", "FloatStorage", "0", 1), op1(&p, '.')), LLT_ERR_UNSUPPORTED,
         "not a 'storage' reference");
    CASE((ppid(&p, "storage", "collections", "OrderedDict", "0", 1), op1(&p, '.')), LLT_ERR_FORMAT,
         "storage type is not a torch storage class");
    CASE((ppid(&p, "storage", "torch", "HalfStorage", NULL, 1), op1(&p, '.')), LLT_ERR_FORMAT,
         "storage key or element count malformed");
    CASE((pglobal(&p, "torch._utils", "_rebuild_tensor_v2"), op1(&p, '('),
          ppid(&p, "storage", "torch", "BFloat16Storage", "0", 4), pint(&p, -1), ops(&p, "))\x89NtR.")),
         LLT_ERR_FORMAT, "storage offset is not a non-negative int");
#undef CASE
}

/* ---- damaged ZIP containers (patched copies of a good archive) -------------------------- */

static uint8_t *good_zip(bool zip64, size_t *n) {
    rec r[2] = {{"a/data.pkl", "\x80\x02}.", 4}, {"a/data/0", "01234567", 8}};
    llt_zip_writer w;
    llt_error e;
    const char *path = tmp_zip_path(zip64);
    CHECK_OK(llt_zip_writer_open(&w, path, &e), &e);
    w.force_zip64 = zip64;
    for (int i = 0; i < 2; i++) CHECK_OK(llt_zip_writer_add(&w, r[i].name, r[i].data, r[i].size, 64, &e), &e);
    CHECK_OK(llt_zip_writer_finish(&w, &e), &e);
    return (uint8_t *)tl_read(path, n);
}

static size_t find_sig(const uint8_t *b, size_t n, uint32_t sig, bool last) {
    size_t at = (size_t)-1;
    for (size_t i = 0; i + 4 <= n; i++) {
        uint32_t v;
        memcpy(&v, b + i, 4);
        if (v == sig) {
            at = i;
            if (!last) break;
        }
    }
    return at;
}

static void patch(uint8_t *b, size_t at, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) b[at + (size_t)i] = (uint8_t)(v >> (8 * i));
}

/* Patches `bytes` bytes at offset `off` of the record with signature sig, expects an error. */
static void zip_case(bool zip64, uint32_t sig, bool last, size_t off, uint64_t v, int bytes, llt_status st,
                     const char *needle) {
    size_t n;
    uint8_t *b = good_zip(zip64, &n);
    if (!b) return;
    size_t at = find_sig(b, n, sig, last);
    CHECK(at != (size_t)-1);
    if (at != (size_t)-1) {
        patch(b, at + off, v, bytes);
        llt_zip z;
        llt_error e;
        CHECK_ERR(llt_zip_open(b, n, "z.zip", &z, &e), st, &e, needle);
    }
    free(b);
}

static void test_zip_damaged(void) {
    const uint32_t eocd = 0x06054b50, cdh = 0x02014b50, lfh = 0x04034b50, eocd64 = 0x06064b50, loc64 = 0x07064b50;
    size_t n;
    uint8_t *b = good_zip(true, &n);
    llt_zip z;
    llt_error e;
    if (b) {
        CHECK_OK(llt_zip_open(b, n, "z64.zip", &z, &e), &e);
        CHECK(z.n == 2 && llt_zip_find(&z, "a/data/0") && llt_zip_find(&z, "a/data/0")->size == 8 &&
              memcmp(llt_zip_find(&z, "a/data/0")->data, "01234567", 8) == 0);
        llt_zip_close(&z);
        free(b);
    }
    zip_case(false, eocd, true, 4, 1, 2, LLT_ERR_UNSUPPORTED, "multi-disk");
    zip_case(false, eocd, true, 12, 0x7fffffff, 4, LLT_ERR_FORMAT, "runs past its end record");
    zip_case(false, eocd, true, 10, 1000, 2, LLT_ERR_FORMAT, "1000 entries cannot fit");
    zip_case(false, cdh, false, 0, 0x12345678, 4, LLT_ERR_FORMAT, "bad central directory signature");
    zip_case(false, cdh, false, 8, 1, 2, LLT_ERR_UNSUPPORTED, "entry 'a/data.pkl' is encrypted");
    zip_case(false, cdh, false, 10, 12, 2, LLT_ERR_UNSUPPORTED, "compressed (method 12)");
    zip_case(false, cdh, false, 20, 3, 4, LLT_ERR_FORMAT, "sizes differ");
    zip_case(false, cdh, false, 42, 7, 4, LLT_ERR_FORMAT, "no local header at offset 7");
    zip_case(false, lfh, false, 30, 'b', 1, LLT_ERR_FORMAT, "local header names another entry");
    zip_case(true, loc64, true, 8, 1u << 30, 8, LLT_ERR_FORMAT, "ZIP64 end record offset");
    zip_case(true, eocd64, true, 16, 1, 4, LLT_ERR_UNSUPPORTED, "multi-disk");
    zip_case(false, cdh, true, 20, 0x7ffffff07ffffff0ull, 8, LLT_ERR_FORMAT, "run past the data area");
    /* an extra field that claims more bytes than the entry has */
    zip_case(false, cdh, false, 30, 200, 2, LLT_ERR_FORMAT, "entry extra field");
}

/* CRC-32 known answers computed with Python's zlib.crc32 (the ZIP checksum). */
static void test_crc32(void) {
    llt_crc32_tables t;
    llt_crc32_init(&t);
    CHECK(llt_crc32(&t, 0, "123456789", 9) == 0xcbf43926u);
    uint8_t b[1000];
    for (int i = 0; i < 1000; i++) b[i] = (uint8_t)((i * 131 + 7) % 256);
    CHECK(llt_crc32(&t, 0, b, 1000) == 0x1ed57bb9u);
    CHECK(llt_crc32(&t, 0, b, 13) == 0xe7be5425u);
    CHECK(llt_crc32(&t, llt_crc32(&t, 0, b, 13), b + 13, 987) == 0x1ed57bb9u); /* continued */
    CHECK(llt_crc32(&t, 0, b, 0) == 0);
}

int main(void) {
    RUN(test_crc32);
    RUN(test_fixtures);
    RUN(test_roundtrip);
    RUN(test_hostile_pickles);
    RUN(test_accepted_pickle);
    RUN(test_damaged_archives);
    RUN(test_truncated_pickles);
    RUN(test_pickle_opcodes);
    RUN(test_pickle_errors);
    RUN(test_zip_damaged);
    return tl_done("test_torch");
}
