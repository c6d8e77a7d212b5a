/* test_cuda_multi: the multi-GPU layer split against the same model on one GPU.
 *
 * A split runs the same kernels on the same rows; the only new things are where the
 * buffers live and the copies of the residual rows between segments (float32, exact). So
 * every output must be bit-equal to the one-device run: logits, the residual stream after
 * each layer, the final norm (teacher-forced prefill), and decode steps (CUDA graphs per
 * segment, a forked sequence whose shared page is copied on its layer's device, device-side
 * argmax). Autotuning is on, and each split model is loaded after its one-device twin has
 * run, so both read the same choices from the (per-test) autotune cache.
 * Models: the HF oracles tiny-llama2 / tiny-llama3 (logits also within 2e-2 of HF's, as in
 * test_cuda_model) and a random llama2-7b shape with 4 layers (generated on the device).
 * Splits: "cuda:0,cuda:0" (two segments on one GPU: runs anywhere), the same through pinned
 * host memory (LLT_CUDA_PEER=0), a device holding no layer; with 2+ GPUs "cuda:0,cuda:1"
 * (by peer copy and by host), checking that each device really holds its share.
 * Everywhere (no GPU needed): a config's "devices" pick the backend when the load options
 * name none.
 * Exits 77 ("SKIPPED") without a CUDA device, and after the one-GPU cases when there are
 * fewer than 2 GPUs (failures still fail). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "testlib.h"

/* device NULL: the config's devices decide ("cpu" runs, an unknown name is refused by name). */
static void test_config_devices(void) {
    llt_config c;
    llt_config_init(&c);
    c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.hidden_size = 64, c.intermediate_size = 96;
    c.vocab_size = 50, c.head_dim = 16, c.max_position_embeddings = 64;
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.device = NULL, o.n_threads = 1;
    llt_model *m = NULL;
    llt_error err = {0};
    c.n_devices = 1, strcpy(c.devices[0], "cpu");
    CHECK_OK(llt_model_random(&c, 3, &o, &m, &err), &err);
    llt_model_free(m), m = NULL;
    c.n_devices = 0; /* none listed: cpu */
    CHECK_OK(llt_model_random(&c, 3, &o, &m, &err), &err);
    llt_model_free(m), m = NULL;
    c.n_devices = 2, strcpy(c.devices[0], "tpu:0"), strcpy(c.devices[1], "tpu:1");
    CHECK_ERR(llt_model_random(&c, 3, &o, &m, &err), LLT_ERR_INVALID_ARG, &err, "tpu:0,tpu:1");
#ifndef LLT_HAVE_CUDA
    strcpy(c.devices[0], "cuda:0"), strcpy(c.devices[1], "cuda:1");
    CHECK_ERR(llt_model_random(&c, 3, &o, &m, &err), LLT_ERR_UNSUPPORTED, &err, "cuda:0,cuda:1");
#endif
    CHECK(m == NULL);
}

#ifndef LLT_HAVE_CUDA
int main(void) {
    RUN(test_config_devices);
    int rc = tl_done("test_cuda_multi (config devices only)");
    if (rc != 0) return rc;
    printf("SKIPPED: no CUDA device (this build has no CUDA backend)\n");
    return 77;
}
#else

#include "backend/cuda/cuda_backend.h"
#include "formats/safetensors.h"
#include "kv/paged_cache.h"

#define TOL 2e-2

typedef struct split_case {
    const char *device;
    const int32_t *split; /* NULL = by free memory */
    bool host;            /* LLT_CUDA_PEER=0: through pinned host memory */
} split_case;

static llt_model *load_dir(const char *dir, const char *device, const int32_t *split, llt_dtype dt) {
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.device = device, o.dtype = dt, o.layer_split = split, o.max_seqs = 2, o.no_cache = true;
    llt_model *m = NULL;
    llt_error err = {0};
    CHECK_OK(llt_model_load(dir, &o, &m, &err), &err);
    return m;
}

static llt_config llama2_7b_4(void) {
    llt_config c;
    llt_config_init(&c);
    c.n_layers = 4, c.n_heads = 32, c.n_kv_heads = 32, c.hidden_size = 4096, c.intermediate_size = 11008;
    c.vocab_size = 32000, c.head_dim = 128, c.max_position_embeddings = 1024;
    return c;
}

static llt_model *load_random(const char *device, const int32_t *split) {
    llt_config c = llama2_7b_4();
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.device = device, o.dtype = LLT_DTYPE_F16, o.layer_split = split, o.max_seqs = 2;
    llt_model *m = NULL;
    llt_error err = {0};
    CHECK_OK(llt_cuda_model_random(&c, 7, &o, &m, &err), &err);
    return m;
}

/* ---- what a model computes (every float of it, to compare bit for bit) ---------------------- */

typedef struct trace {
    float *v;
    size_t n, cap;
} trace;

static float *grow(trace *t, size_t n) {
    if (t->n + n > t->cap) {
        t->cap = (t->n + n) * 2;
        t->v = realloc(t->v, t->cap * sizeof *t->v);
    }
    float *p = t->v + t->n;
    t->n += n;
    return p;
}

/* Teacher-forced logits, residual stream after each layer, final norm of ids. */
static void trace_forward(llt_model *m, const int32_t *ids, int32_t n, trace *t) {
    const llt_config *c = llt_model_config(m);
    float *lg = grow(t, (size_t)n * c->vocab_size);
    float *hid = grow(t, (size_t)c->n_layers * n * c->hidden_size), *fn = grow(t, (size_t)n * c->hidden_size);
    llt_error err = {0};
    CHECK_OK(llt_model_forward(m, ids, (size_t)n, lg, hid, fn, &err), &err);
}

/* Prefill of a (n ids), a fork b sharing its pages, 10 decode steps of both (logits back;
 * graphs captured at the second), 6 steps with the device's argmax (token ids back). */
static void trace_decode(llt_model *m, const int32_t *ids, int32_t n, trace *t) {
    const int32_t V = llt_model_config(m)->vocab_size;
    llt_kv_cache *kv = llt_model_kv_cache(m);
    int32_t s[2] = {-1, -1}, rows = 0, *seqs = malloc((size_t)n * 4), tok[2];
    llt_error err = {0};
    CHECK_OK(llt_kv_seq_create(kv, &s[0], &err), &err);
    for (int32_t i = 0; i < n; i++) seqs[i] = s[0];
    llt_batch pre = {n, ids, seqs, NULL};
    float *lg = grow(t, (size_t)V);
    CHECK_OK(llt_model_decode(m, &pre, lg, &rows, &err), &err);
    CHECK_OK(llt_kv_seq_fork(kv, s[0], &s[1], &err), &err);
    tok[0] = tl_argmax(lg, V), tok[1] = (tok[0] + 1) % V;
    for (int i = 0; i < 10; i++) {
        llt_batch b = {2, tok, s, NULL};
        lg = grow(t, (size_t)2 * V);
        CHECK_OK(llt_model_decode(m, &b, lg, &rows, &err), &err);
        CHECK(rows == 2);
        tok[0] = tl_argmax(lg, V), tok[1] = (tl_argmax(lg + V, V) + 3 * i) % V;
    }
    for (int i = 0; i < 6; i++) {
        llt_batch b = {2, tok, s, NULL};
        int32_t next[2] = {-1, -1};
        CHECK_OK(llt_cuda_decode_tokens(m, &b, 0.0f, 1.0f, NULL, next, &rows, &err), &err);
        float *o = grow(t, 2);
        o[0] = (float)next[0], o[1] = (float)next[1];
        tok[0] = next[0], tok[1] = next[1];
    }
    llt_kv_seq_free(kv, s[0]), llt_kv_seq_free(kv, s[1]);
    free(seqs);
}

static void trace_all(llt_model *m, const int32_t *ids, int32_t n, trace *t) {
    if (!m) return;
    trace_forward(m, ids, n, t);
    trace_decode(m, ids, n, t);
}

/* The split's trace equals the one-device trace bit for bit (first difference reported). */
static void check_equal(const char *what, const split_case *sc, const trace *one, const trace *split) {
    size_t first = one->n;
    for (size_t i = 0; i < one->n && i < split->n && first == one->n; i++)
        if (memcmp(&one->v[i], &split->v[i], sizeof(float)) != 0) first = i;
    CHECK_MSG(one->n == split->n && first == one->n,
              "%s on %s%s: %zu of %zu values, first difference at %zu (%g vs %g)", what, sc->device,
              sc->host ? " (host path)" : "", split->n, one->n, first, first < one->n ? one->v[first] : 0.0,
              first < split->n ? split->v[first] : 0.0);
    fprintf(stderr, "  %s on %s%s: %zu values bit-equal to one GPU: %s\n", what, sc->device,
            sc->host ? " (host path)" : "", one->n, first == one->n && one->n == split->n ? "yes" : "NO");
}

/* Each entry holds its layers on the device it names, weights split as the layers are. */
static void check_placement(llt_model *m, const split_case *sc, int32_t n_layers) {
    llt_error err = {0};
    llt_cuda_mem mem[LLT_MAX_DEVICES];
    int32_t n = 0, end = 0;
    const char *p = sc->device;
    for (int32_t d = 0; d < LLT_MAX_DEVICES; d++) {
        CHECK_OK(llt_cuda_model_memory(m, d, &mem[d], &err), &err);
        n = mem[d].n_devices;
        int want = atoi(strchr(p, ':') + 1);
        CHECK_MSG(mem[d].device == want, "%s: entry %d holds its weights on cuda:%d, expected cuda:%d", sc->device,
                  (int)d, (int)mem[d].device, want);
        CHECK(mem[d].layer_begin == end && mem[d].layer_end >= mem[d].layer_begin);
        if (sc->split) CHECK(mem[d].layer_end - mem[d].layer_begin == sc->split[d]);
        for (int32_t l = mem[d].layer_begin; l < mem[d].layer_end; l++) CHECK(m->layers[l].device == d);
        CHECK(mem[d].workspace_bytes > 0 && (mem[d].kv_bytes > 0) == (mem[d].layer_end > mem[d].layer_begin));
        if (sc->host) CHECK(!mem[d].peer_in); /* forced; else peer where the hardware allows */
        if (d > 0) fprintf(stderr, "    %s entry %d: layers %d-%d, rows arrive %s\n", sc->device, (int)d,
                           (int)mem[d].layer_begin, (int)mem[d].layer_end - 1,
                           mem[d].peer_in ? "by device copy" : "through host memory");
        end = mem[d].layer_end;
        p = strchr(p, ',');
        if (!p || d + 1 >= n) break;
        p++;
    }
    CHECK(end == n_layers);
    CHECK_ERR(llt_cuda_model_memory(m, n, &mem[0], &err), LLT_ERR_INVALID_ARG, &err, "device index");
}

/* ---- cases ------------------------------------------------------------------------------------ */

static void oracle_within_tol(const char *name, const trace *t, llt_model *m) {
    char path[600];
    snprintf(path, sizeof path, "%s/reference.safetensors", tl_fixture(name));
    llt_tensor_table ref;
    llt_tensors_init(&ref);
    llt_error err = {0};
    CHECK_OK(llt_safetensors_load(path, &ref, NULL, &err), &err);
    const llt_tensor *tl = llt_tensors_find(&ref, "logits");
    if (tl && m) {
        double e = tl_rel_err(t->v, tl->data, (size_t)llt_tensor_numel(tl));
        CHECK_MSG(e <= TOL, "%s: logits rel err %.4f vs HF", name, e);
    }
    llt_tensors_free(&ref);
}

static int32_t *oracle_ids(const char *name, int32_t *n) {
    char path[600];
    snprintf(path, sizeof path, "%s/reference.safetensors", tl_fixture(name));
    llt_tensor_table ref;
    llt_tensors_init(&ref);
    llt_error err = {0};
    CHECK_OK(llt_safetensors_load(path, &ref, NULL, &err), &err);
    const llt_tensor *t = llt_tensors_find(&ref, "input_ids");
    *n = t ? (int32_t)llt_tensor_numel(t) : 0;
    int32_t *ids = malloc((size_t)(*n ? *n : 1) * 4);
    for (int32_t i = 0; i < *n; i++) ids[i] = (int32_t)((const int64_t *)t->data)[i];
    llt_tensors_free(&ref);
    return ids;
}

static void with_host_path(bool host) {
    if (host) setenv("LLT_CUDA_PEER", "0", 1);
    else unsetenv("LLT_CUDA_PEER");
}

static void oracle_cases(const char *name, llt_dtype dt, const split_case *cases, int n_cases) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/hf", tl_fixture(name));
    int32_t n = 0, *ids = oracle_ids(name, &n);
    trace one = {0};
    llt_model *m = load_dir(dir, "cuda:0", NULL, dt);
    trace_all(m, ids, n, &one);
    if (dt == LLT_DTYPE_F16) oracle_within_tol(name, &one, m);
    int32_t L = m ? llt_model_config(m)->n_layers : 0;
    llt_model_free(m);
    for (int i = 0; i < n_cases; i++) {
        trace t = {0};
        with_host_path(cases[i].host);
        m = load_dir(dir, cases[i].device, cases[i].split, dt);
        with_host_path(false);
        trace_all(m, ids, n, &t);
        if (m) check_placement(m, &cases[i], L);
        char what[96];
        snprintf(what, sizeof what, "%s %s", name, llt_dtype_name(dt));
        check_equal(what, &cases[i], &one, &t);
        llt_model_free(m);
        free(t.v);
    }
    free(one.v), free(ids);
}

static void random_cases(const split_case *cases, int n_cases) {
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (i * 7919 + 13) % 32000;
    trace one = {0};
    llt_model *m = load_random("cuda:0", NULL);
    trace_all(m, ids, 40, &one);
    llt_model_free(m);
    for (int i = 0; i < n_cases; i++) {
        trace t = {0};
        with_host_path(cases[i].host);
        m = load_random(cases[i].device, cases[i].split);
        with_host_path(false);
        trace_all(m, ids, 40, &t);
        if (m) check_placement(m, &cases[i], 4);
        check_equal("llama2-7b dims, 4 layers, f16", &cases[i], &one, &t);
        llt_model_free(m);
        free(t.v);
    }
    free(one.v);
}

static const int32_t k_one_one[2] = {1, 1}, k_three_one[2] = {3, 1}, k_four_none[2] = {4, 0};

static void test_same_device(void) {
    const split_case tiny[] = {{"cuda:0,cuda:0", NULL, false}, {"cuda:0,cuda:0", k_one_one, true}};
    oracle_cases("oracle/tiny-llama2", LLT_DTYPE_F16, tiny, 2);
    oracle_cases("oracle/tiny-llama3", LLT_DTYPE_F16, tiny, 1);
    oracle_cases("oracle/tiny-llama3", LLT_DTYPE_BF16, tiny + 1, 1);
    const split_case big[] = {{"cuda:0,cuda:0", NULL, false},
                              {"cuda:0,cuda:0", k_three_one, true},
                              {"cuda:0,cuda:0", k_four_none, false}};
    random_cases(big, 3);
}

static void test_two_devices(void) {
    const split_case tiny[] = {{"cuda:0,cuda:1", NULL, false}, {"cuda:1,cuda:0", k_one_one, true}};
    oracle_cases("oracle/tiny-llama2", LLT_DTYPE_F16, tiny, 2);
    oracle_cases("oracle/tiny-llama3", LLT_DTYPE_BF16, tiny, 1);
    const split_case big[] = {{"cuda:0,cuda:1", NULL, false}, {"cuda:0,cuda:1", k_three_one, true}};
    random_cases(big, 2);
}

static void test_bad_splits(void) {
    llt_config c = llama2_7b_4();
    c.hidden_size = 256, c.intermediate_size = 512, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 64;
    c.vocab_size = 1000;
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.device = "cuda:0,cuda:0";
    llt_model *m = NULL;
    llt_error err = {0};
    const int32_t too_few[2] = {1, 2}, negative[2] = {5, -1};
    o.layer_split = too_few;
    CHECK_ERR(llt_cuda_model_random(&c, 1, &o, &m, &err), LLT_ERR_INVALID_ARG, &err, "the model has 4");
    o.layer_split = negative;
    CHECK_ERR(llt_cuda_model_random(&c, 1, &o, &m, &err), LLT_ERR_INVALID_ARG, &err, "layer_split[1]");
    o.layer_split = NULL, o.device = "cuda:0,cuda:999";
    CHECK_ERR(llt_cuda_model_random(&c, 1, &o, &m, &err), LLT_ERR_INVALID_ARG, &err, "device 999");
    o.device = "cuda:0,cpu";
    CHECK_ERR(llt_cuda_model_random(&c, 1, &o, &m, &err), LLT_ERR_INVALID_ARG, &err, "expected cuda");
    CHECK(m == NULL);
}

int main(void) {
    RUN(test_config_devices);
    int n = llt_cuda_device_count();
    if (n == 0) {
        int rc = tl_done("test_cuda_multi (config devices only)");
        if (rc != 0) return rc;
        printf("SKIPPED: no CUDA device\n");
        return 77;
    }
    setenv("XDG_CACHE_HOME", tl_tmpdir(), 1);
    RUN(test_same_device);
    RUN(test_bad_splits);
    if (n < 2) {
        int rc = tl_done("test_cuda_multi (one GPU: same-device splits only)");
        if (rc != 0) return rc;
        printf("SKIPPED: the 2-GPU cases need 2 CUDA devices, %d present (same-device splits passed)\n", n);
        return 77;
    }
    RUN(test_two_devices);
    return tl_done("test_cuda_multi");
}
#endif
