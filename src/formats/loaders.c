/* loaders.c: model folders -> cfg, tensors, tokenizer (see loaders.h).
 * A Hugging Face folder is converted once into native files beside its sources (model.json +
 * state_dict.pt, as the specification's hf_import does); later loads map the cache, unless a
 * source (config.json, an index, a shard) is newer than it, in which case it is rebuilt. */
#include "formats/loaders.h"

#include "base/log.h"
#include "formats/convert.h"
#include "formats/hf.h"
#include "formats/native.h"

static void note_newest(const char *path, void *user) {
    double *t = user, m = llt_path_mtime(path);
    if (m > *t) *t = m;
}

/* The cache is usable when both files exist and are at least as new as every source. */
static bool cache_fresh(const char *dir) {
    char mj[4096], sd[4096], cj[4096];
    if (!llt_path_join(mj, sizeof mj, dir, "model.json") || !llt_path_join(sd, sizeof sd, dir, "state_dict.pt") ||
        !llt_path_join(cj, sizeof cj, dir, "config.json") || !llt_path_exists(mj) || !llt_path_exists(sd))
        return false;
    double newest = llt_path_mtime(cj);
    if (llt_hf_list_sources(dir, note_newest, &newest, NULL) != LLT_OK)
        return true; /* the weights are gone: the cache is all there is */
    double a = llt_path_mtime(mj), b = llt_path_mtime(sd);
    return (a < b ? a : b) >= newest;
}

/* The dtype the cache is written in: the compute dtype asked for (f32, f16, bf16), else the
 * checkpoint's (LLT_DTYPE_COUNT). */
static llt_dtype cache_dtype(const llt_load_opts *o) {
    if (o && (o->dtype == LLT_DTYPE_F32 || o->dtype == LLT_DTYPE_F16 || o->dtype == LLT_DTYPE_BF16))
        return o->dtype;
    return LLT_DTYPE_COUNT;
}

/* A fresh cache in another dtype than the one asked for is rebuilt from the sources (when
 * they are still there), so that dtype="bfloat16" caches bfloat16 weights. */
static bool cache_matches(const char *dir, llt_dtype want) {
    char mj[4096];
    llt_config c;
    llt_error e;
    if (want == LLT_DTYPE_COUNT || !llt_path_join(mj, sizeof mj, dir, "model.json")) return true;
    if (llt_config_from_json(mj, &c, &e) != LLT_OK || c.dtype == want) return true;
    double newest = 0;
    return llt_hf_list_sources(dir, note_newest, &newest, NULL) != LLT_OK; /* no sources: keep */
}

static llt_status load_hf(llt_model *m, const char *dir, const llt_load_opts *o, llt_error *err) {
    llt_dtype dt = cache_dtype(o);
    if (cache_fresh(dir) && ((o && o->no_cache) || cache_matches(dir, dt))) {
        LLT_INFO("%s: loading the converted cache (model.json, state_dict.pt)", dir);
        return llt_native_load(dir, &m->cfg, &m->tensors, err);
    }
    LLT_TRY(llt_hf_config_read(dir, &m->cfg, err));
    LLT_TRY(llt_hf_load_tensors(dir, &m->cfg, &m->tensors, err));
    if (o && o->no_cache) return LLT_OK;
    llt_error werr;
    if (llt_native_write(dir, &m->cfg, &m->tensors, dt, &werr) != LLT_OK)
        LLT_WARN("%s: could not write the converted cache (loading goes on): %s", dir, werr.msg);
    return LLT_OK;
}

/* A folder without tokenizer files still loads (e.g. for logits from ids). */
static llt_status open_tokenizer(llt_model *m, const char *dir, llt_error *err) {
    llt_error terr;
    llt_status s = llt_tokenizer_open(dir, &m->tok, &terr);
    if (s == LLT_ERR_NOT_FOUND) {
        LLT_WARN("%s: no tokenizer (tokenizer.model or tokenizer.json): token ids only", dir);
        return LLT_OK;
    }
    if (s != LLT_OK) return llt_err_set(err, s, "%s", terr.msg);
    return LLT_OK;
}

llt_status llt_model_load_dir(llt_model *m, const char *dir, llt_format fmt, const llt_load_opts *o,
                              llt_tensor_names *names, llt_error *err) {
    if (fmt == LLT_FORMAT_AUTO) fmt = llt_detect_format(dir);
    *names = LLT_NAMES_NATIVE;
    llt_status s;
    if (fmt == LLT_FORMAT_HF) s = load_hf(m, dir, o, err);
    else if (fmt == LLT_FORMAT_TRITON) s = llt_native_load(dir, &m->cfg, &m->tensors, err);
    else s = llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: a folder is not a %s model", dir,
                         fmt == LLT_FORMAT_GGUF ? "gguf" : "known");
    if (s == LLT_OK) s = open_tokenizer(m, dir, err);
    return s;
}
