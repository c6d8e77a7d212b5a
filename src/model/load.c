/* load.c: a model's life: load (format dispatch) or random weights, finish (bind weights,
 * thread pool, backend, KV cache), teacher-forced forward, batched decode, free.
 *
 * A .gguf file is read here: config and tokenizer from its metadata, and a tensor table whose
 * F32/F16/BF16 tensors point into the mmap (nothing is copied). Folders (Hugging Face,
 * native) go to formats/loaders.c. Every path ends in llt_model_finish, so shape checks,
 * backend and cache set-up are the same whatever the source. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/dtype.h"
#include "base/log.h"
#include "base/threadpool.h"
#include "formats/gguf.h"
#include "formats/loaders.h"
#include "kv/paged_cache.h"
#include "model/config.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

enum { DEFAULT_CTX_CAP = 4096 }; /* default cache: this many tokens per sequence at most */

void llt_load_opts_init(llt_load_opts *o) {
    memset(o, 0, sizeof *o);
    o->format = LLT_FORMAT_AUTO;
    o->device = NULL; /* the config's devices, else auto */
    o->dtype = LLT_DTYPE_COUNT;
    o->kv_dtype = LLT_DTYPE_COUNT; /* the config's */
}

/* ---- KV cache geometry ------------------------------------------------------------------ */

void llt_model_kv_opts(const llt_model *m, const llt_load_opts *o, llt_kv_cache_opts *out) {
    const llt_config *c = &m->cfg;
    int32_t page = o && o->page_size > 0 ? o->page_size : c->page_size > 0 ? c->page_size : 16;
    int32_t seqs = o && o->max_seqs > 0 ? o->max_seqs : 1;
    int32_t ctx = c->max_position_embeddings > 0 && c->max_position_embeddings < DEFAULT_CTX_CAP
                      ? c->max_position_embeddings
                      : DEFAULT_CTX_CAP;
    int32_t pages = o && o->max_pages > 0 ? o->max_pages
                    : c->max_pages > 0    ? c->max_pages
                                          : seqs * ((ctx + page - 1) / page);
    *out = (llt_kv_cache_opts){.n_layers = c->n_layers, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
                               .page_size = page, .max_pages = pages, .max_seqs = seqs,
                               .kv_dtype = c->kv_dtype};
}

llt_status llt_model_take_opts(llt_model *m, const llt_load_opts *o, llt_error *err) {
    if (!o) return LLT_OK;
    LLT_CHECK(o->batch_rows >= 0 && o->batch_rows <= LLT_MAX_BATCH_ROWS, err, LLT_ERR_INVALID_ARG,
              "batch_rows %d: expected 1..%d rows per forward pass (0 = the default, %d)", (int)o->batch_rows,
              (int)LLT_MAX_BATCH_ROWS, (int)LLT_DEFAULT_BATCH_ROWS);
    if (o->kv_dtype == LLT_DTYPE_COUNT) return LLT_OK;
    const llt_dtype t = o->kv_dtype;
    LLT_CHECK(t == LLT_DTYPE_F32 || t == LLT_DTYPE_F16 || t == LLT_DTYPE_BF16 || t == LLT_DTYPE_F8_E4M3, err,
              LLT_ERR_INVALID_ARG, "kv_dtype %s: a KV cache holds f32, f16, bf16 or f8_e4m3", llt_dtype_name(t));
    m->cfg.kv_dtype = t;
    return LLT_OK;
}

int32_t llt_model_max_ctx(const llt_model *m) {
    int64_t ctx = m->cfg.max_position_embeddings > 0 ? m->cfg.max_position_embeddings : INT32_MAX;
    if (m->kv) {
        int64_t cap = (int64_t)m->kv->o.max_pages * m->kv->o.page_size;
        if (cap < ctx) ctx = cap;
    }
    return (int32_t)ctx;
}

/* ---- finish ----------------------------------------------------------------------------- */

/* src[n] of a float dtype -> dst[n] of dt, through a float32 buffer of CONVERT_BLOCK elements
 * (never a float32 copy of the whole tensor). */
enum { CONVERT_BLOCK = 1 << 14 };
static llt_status convert_blocks(llt_dtype from, const void *src, llt_dtype dt, void *dst, int64_t n,
                                 llt_error *err) {
    float buf[CONVERT_BLOCK];
    size_t fb = llt_dtype_get(from)->block_bytes, db = llt_dtype_get(dt)->block_bytes;
    for (int64_t i = 0; i < n; i += CONVERT_BLOCK) {
        int64_t k = n - i < CONVERT_BLOCK ? n - i : CONVERT_BLOCK;
        LLT_TRY(llt_dequantize(from, (const uint8_t *)src + (size_t)i * fb, buf, k, err));
        LLT_TRY(llt_quantize_plain(dt, buf, (uint8_t *)dst + (size_t)i * db, k, err));
    }
    return LLT_OK;
}

/* One tensor's conversion split over the pool: each thread converts (and so first touches)
 * its share of the elements, which is about the share of rows it multiplies later (pages land
 * on that thread's memory node, and loading is T times faster). */
typedef struct convert_job {
    llt_dtype from, to;
    const void *src;
    void *dst;
    int64_t n;
    llt_status status[64]; /* per chunk (the pool's chunks are capped to 64 below) */
    llt_error err[64];
} convert_job;

static void convert_part(void *ctx, int64_t begin, int64_t end, int32_t thread) {
    convert_job *j = ctx;
    (void)thread;
    for (int64_t c = begin; c < end; c++) {
        int64_t e0 = j->n * c / 64, e1 = j->n * (c + 1) / 64;
        size_t fb = llt_dtype_get(j->from)->block_bytes, db = llt_dtype_get(j->to)->block_bytes;
        j->status[c] = convert_blocks(j->from, (const uint8_t *)j->src + (size_t)e0 * fb, j->to,
                                      (uint8_t *)j->dst + (size_t)e0 * db, e1 - e0, &j->err[c]);
    }
}

static llt_status convert_one(llt_threadpool *pool, llt_tensor *t, llt_dtype dt, void *d, llt_error *err) {
    convert_job *j = calloc(1, sizeof *j);
    if (!j) return llt_err_set(err, LLT_ERR_NOMEM, "tensor '%s': out of memory converting", t->name);
    *j = (convert_job){.from = t->dtype, .to = dt, .src = t->data, .dst = d, .n = llt_tensor_numel(t)};
    llt_pool_for(pool, 64, convert_part, j); /* float dtypes only: any element split is exact */
    llt_status s = LLT_OK;
    for (int c = 0; c < 64 && s == LLT_OK; c++)
        if (j->status[c] != LLT_OK) s = j->status[c], *err = j->err[c];
    free(j);
    return s;
}

/* CPU compute dtype: converts every float tensor to dt into owned buffers (--dtype f16 / bf16
 * on an f32 checkpoint halves the bytes each token reads; the f32 file stays mapped, unread
 * after this, so the process holds the 16-bit weights only). */
static llt_status convert_tensors(llt_tensor_table *tt, llt_dtype dt, llt_threadpool *pool, llt_error *err) {
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < tt->n; i++) total += tt->t[i].nbytes;
    llt_progress prog;
    llt_progress_begin(&prog, "loading: converting weights", true);
    for (size_t i = 0; i < tt->n; i++) {
        llt_tensor *t = &tt->t[i];
        llt_progress_update(&prog, done, total);
        done += t->nbytes;
        if (t->dtype == dt || (t->dtype != LLT_DTYPE_F32 && t->dtype != LLT_DTYPE_F16 && t->dtype != LLT_DTYPE_BF16))
            continue;
        int64_t n = llt_tensor_numel(t);
        void *d = malloc((size_t)n * llt_dtype_get(dt)->block_bytes);
        llt_status s = d ? convert_one(pool, t, dt, d, err)
                         : llt_err_set(err, LLT_ERR_NOMEM, "tensor '%s': out of memory converting to %s",
                                       t->name, llt_dtype_name(dt));
        if (s != LLT_OK) {
            free(d);
            return s;
        }
        if (t->owned) free((void *)t->data);
        t->dtype = dt;
        t->data = d;
        t->nbytes = (uint64_t)n * llt_dtype_get(dt)->block_bytes;
        t->owned = true;
    }
    llt_progress_update(&prog, total, total);
    llt_progress_end(&prog);
    return LLT_OK;
}

/* The device string a load runs on: opts->device as given ("auto" resolved), else the
 * config's "devices" joined ("cuda:0,cuda:1"), else auto. Writes it to m->device, the reason
 * to m->device_why. */
static void resolve_device(llt_model *m, const llt_load_opts *o) {
    const llt_config *c = &m->cfg;
    size_t cap = sizeof m->device, at = 0;
    m->device[0] = '\0';
    if (!llt_device_is_auto(o->device)) {
        snprintf(m->device, cap, "%s", o->device);
        m->device_why = "asked for";
        return;
    }
    for (int32_t i = 0; !o->device && i < c->n_devices && i < LLT_MAX_DEVICES; i++) {
        int k = snprintf(m->device + at, cap - at, "%s%.*s", i ? "," : "", (int)sizeof c->devices[i], c->devices[i]);
        if (k < 0 || (size_t)k >= cap - at) break;
        at += (size_t)k;
    }
    if (at) {
        m->device_why = "the model's devices";
        return;
    }
    snprintf(m->device, cap, "%s", llt_device_auto(&m->device_why));
}

llt_status llt_model_finish(llt_model *m, llt_tensor_names names, const llt_load_opts *opts,
                            llt_error *err) {
    llt_load_opts def, o;
    if (!opts) llt_load_opts_init(&def), opts = &def;
    o = *opts;
    resolve_device(m, opts);
    o.device = m->device;
    opts = &o;
    llt_error local;
    if (!err) err = &local;
    m->backend = llt_backend_select(opts->device, err);
    if (!m->backend) return err->status;
    bool cpu = m->backend == &llt_backend_cpu;
    LLT_TRY(llt_model_take_opts(m, opts, err)); /* a bad value fails before any work */
    /* both backends compute on GGML blocks (backend/cpu/quant_dot.c, backend/cuda/quant.cu);
     * LLT_CUDA_QUANT=0 makes the CUDA backend dequantise at load instead (for comparisons) */
    const char *cq = getenv("LLT_CUDA_QUANT");
    m->keep_quant = cpu || !(cq && strcmp(cq, "0") == 0);
    LLT_TRY(llt_pool_create(opts->n_threads, &m->pool, err));
    m->n_threads = llt_pool_size(m->pool);
    if (cpu && (opts->dtype == LLT_DTYPE_F32 || opts->dtype == LLT_DTYPE_F16 || opts->dtype == LLT_DTYPE_BF16))
        LLT_TRY(convert_tensors(&m->tensors, opts->dtype, m->pool, err));
    for (int32_t i = 0; m->tok && i < m->cfg.n_eos && i < LLT_MAX_EOS; i++) /* generation_config's list */
        llt_tok_add_eog(m->tok, m->cfg.eos_token_ids[i]);
    LLT_TRY(llt_weights_bind(m, names, err));
    llt_status s = m->backend->init(m, opts, err);
    if (s != LLT_OK) m->backend = NULL; /* nothing for free() to undo */
    return s;
}

/* ---- loading ---------------------------------------------------------------------------- */

static llt_status load_gguf(llt_model *m, const char *path, llt_error *err) {
    llt_gguf g;
    LLT_TRY(llt_gguf_open(path, &g, err));
    llt_status s = llt_config_from_gguf(&g, &m->cfg, err);
    if (s == LLT_OK) s = llt_tokenizer_from_gguf(&g, &m->tok, err);
    if (s == LLT_OK) s = llt_gguf_to_tensors(&g, &m->tensors, err);
    llt_gguf_close(&g);
    return s;
}

/* Folders (Hugging Face, native) are read by formats/loaders.c. */
static llt_status load_dir(llt_model *m, const char *path, const llt_load_opts *o, llt_error *err) {
    llt_tensor_names names;
    LLT_TRY(llt_model_load_dir(m, path, o->format, o, &names, err));
    return llt_model_finish(m, names, o, err);
}

static llt_status load_any(llt_model *m, const char *path, const llt_load_opts *o, llt_error *err) {
    LLT_CHECK(llt_path_exists(path), err, LLT_ERR_IO, "%s: no such file or folder", path);
    bool dir = llt_path_is_dir(path);
    LLT_CHECK(!(o->format == LLT_FORMAT_GGUF && dir), err, LLT_ERR_INVALID_ARG,
              "%s: is a folder, but the format asked for is gguf", path);
    LLT_CHECK(!(dir == false && (o->format == LLT_FORMAT_HF || o->format == LLT_FORMAT_TRITON)), err,
              LLT_ERR_INVALID_ARG, "%s: is a file, but the format asked for needs a model folder", path);
    if (dir) return load_dir(m, path, o, err);
    LLT_TRY(load_gguf(m, path, err));
    return llt_model_finish(m, LLT_NAMES_GGUF, o, err);
}

llt_status llt_model_load(const char *path, const llt_load_opts *opts, llt_model **out, llt_error *err) {
    LLT_CHECK(path && out, err, LLT_ERR_INVALID_ARG, "llt_model_load: NULL path or output");
    *out = NULL;
    llt_load_opts def;
    if (!opts) llt_load_opts_init(&def), opts = &def;
    llt_model *m = calloc(1, sizeof *m);
    LLT_CHECK(m, err, LLT_ERR_NOMEM, "%s: out of memory", path);
    llt_tensors_init(&m->tensors);
    snprintf(m->path, sizeof m->path, "%s", path);
    double t0 = llt_time_now();
    llt_status s = load_any(m, path, opts, err);
    if (s != LLT_OK) {
        llt_model_free(m);
        if (err && !strstr(err->msg, path)) llt_err_wrap(err, s, "%s: ", path);
        return s;
    }
    /* the KV dtype when it is not the backend's default: asked for, or the config's f8 */
    char kv_note[48] = "";
    if (m->kv && (opts->kv_dtype != LLT_DTYPE_COUNT || m->kv->o.kv_dtype == LLT_DTYPE_F8_E4M3))
        snprintf(kv_note, sizeof kv_note, "; KV cache %s", llt_dtype_name(m->kv->o.kv_dtype));
    LLT_INFO("loaded %s in %.2f s (%d layers, hidden %d, vocab %d, %d threads) on %s: %s%s%s%s", path,
             llt_time_now() - t0, (int)m->cfg.n_layers, (int)m->cfg.hidden_size, (int)m->cfg.vocab_size,
             (int)m->n_threads, m->device, m->device_why, m->quant_note[0] ? "; " : "", m->quant_note, kv_note);
    *out = m;
    return LLT_OK;
}

void llt_model_free(llt_model *m) {
    if (!m) return;
    if (m->backend) m->backend->free(m);
    llt_kv_cache_free(m->kv);
    llt_pool_free(m->pool);
    llt_tokenizer_free(m->tok);
    llt_tensors_free(&m->tensors);
    free(m->layers);
    free(m);
}

const llt_config *llt_model_config(const llt_model *m) { return m ? &m->cfg : NULL; }
const char *llt_model_device(const llt_model *m, const char **why) {
    if (why) *why = m && m->device_why ? m->device_why : "";
    return m ? m->device : NULL;
}
const llt_tokenizer *llt_model_tokenizer(const llt_model *m) { return m ? m->tok : NULL; }
llt_kv_cache *llt_model_kv_cache(llt_model *m) { return m ? m->kv : NULL; }

/* ---- running ---------------------------------------------------------------------------- */

llt_status llt_model_decode(llt_model *m, const llt_batch *batch, float *logits, int32_t *n_rows_out,
                            llt_error *err) {
    LLT_CHECK(m && m->backend && batch, err, LLT_ERR_INVALID_ARG, "llt_model_decode: NULL model or batch");
    return m->backend->decode(m, batch, logits, n_rows_out, NULL, NULL, err);
}

bool llt_model_has_decode_greedy(const llt_model *m) { return m && m->backend && m->backend->decode_greedy; }

llt_status llt_model_decode_greedy(llt_model *m, const llt_batch *batch, int32_t *tokens, int32_t *n_rows_out,
                                   llt_error *err) {
    LLT_CHECK(m && m->backend && batch && tokens, err, LLT_ERR_INVALID_ARG,
              "llt_model_decode_greedy: NULL model, batch or tokens");
    LLT_CHECK(m->backend->decode_greedy, err, LLT_ERR_UNSUPPORTED,
              "llt_model_decode_greedy: the %s backend returns logits only", m->backend->name);
    return m->backend->decode_greedy(m, batch, tokens, n_rows_out, err);
}

/* A temporary sequence in the model's cache, one batch with every row's logits, then freed. */
llt_status llt_model_forward(llt_model *m, const int32_t *ids, size_t n, float *logits, float *hidden,
                             float *final_norm, llt_error *err) {
    LLT_CHECK(m && m->backend && ids && n > 0, err, LLT_ERR_INVALID_ARG,
              "llt_model_forward: NULL model or ids, or no tokens");
    LLT_CHECK(n <= (size_t)llt_model_max_ctx(m), err, LLT_ERR_INVALID_ARG,
              "llt_model_forward: %zu tokens exceed the context of %d", n, (int)llt_model_max_ctx(m));
    int32_t seq;
    LLT_TRY(llt_kv_seq_create(m->kv, &seq, err));
    int32_t *seqs = malloc(n * sizeof *seqs);
    int8_t *want = malloc(n);
    llt_status s = LLT_OK;
    if (!seqs || !want) s = llt_err_set(err, LLT_ERR_NOMEM, "llt_model_forward: out of memory");
    for (size_t i = 0; s == LLT_OK && i < n; i++) seqs[i] = seq, want[i] = 1;
    llt_batch b = {(int32_t)n, ids, seqs, want};
    int32_t rows;
    if (s == LLT_OK) s = m->backend->decode(m, &b, logits, &rows, hidden, final_norm, err);
    llt_kv_seq_free(m->kv, seq);
    free(seqs);
    free(want);
    return s;
}
