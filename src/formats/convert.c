/* convert.c: llt_convert: a Hugging Face folder, a GGUF file or a native folder -> a native
 * folder (model.json, state_dict.pt, tokenizer). Every source goes through one tensor table
 * with native names, so the writer is shared. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/quant.h"
#include "formats/convert.h"
#include "formats/hf.h"
#include "formats/names.h"
#include "formats/native.h"
#include "formats/spm_write.h"
#include "model/config.h"

/* Tokenizer files a folder may carry; all present ones are copied. */
static const char *const k_tok_files[] = {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                                          "special_tokens_map.json"};

static llt_status copy_tokenizer(const char *src, const char *dst, llt_error *err) {
    char a[4096], b[4096];
    bool any = false;
    for (size_t i = 0; i < sizeof k_tok_files / sizeof k_tok_files[0]; i++) {
        if (!llt_path_join(a, sizeof a, src, k_tok_files[i]) || !llt_path_exists(a)) continue;
        if (!llt_path_join(b, sizeof b, dst, k_tok_files[i]))
            return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: path too long", dst);
        LLT_TRY(llt_copy_file(a, b, err));
        any = true;
    }
    if (!any) LLT_WARN("%s: no tokenizer.model or tokenizer.json to copy: %s will have no tokenizer", src, dst);
    return LLT_OK;
}

static bool same_dir(const char *a, const char *b) {
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

llt_status llt_convert_hf(const char *src, const char *dst, llt_dtype dtype, llt_error *err) {
    llt_config cfg;
    LLT_TRY(llt_hf_config_read(src, &cfg, err));
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_status s = llt_hf_load_tensors(src, &cfg, &tt, err);
    if (s == LLT_OK) s = llt_native_write(dst, &cfg, &tt, dtype, err);
    llt_tensors_free(&tt);
    if (s == LLT_OK && !same_dir(src, dst)) s = copy_tokenizer(src, dst, err);
    return s;
}

static llt_status convert_native(const char *src, const char *dst, llt_dtype dtype, llt_error *err) {
    if (same_dir(src, dst))
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: source and destination are the same folder", dst);
    llt_config cfg;
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_status s = llt_native_load(src, &cfg, &tt, err);
    if (s == LLT_OK) s = llt_native_write(dst, &cfg, &tt, dtype, err);
    llt_tensors_free(&tt);
    if (s == LLT_OK) s = copy_tokenizer(src, dst, err);
    return s;
}

/* SentencePiece vocabularies become tokenizer.model, byte-level BPE ones tokenizer.json. */
static llt_status write_gguf_tokenizer(const llt_gguf *g, const char *dst, llt_error *err) {
    llt_gguf_str model = {"", 0};
    llt_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL);
    if (llt_gguf_str_eq(model, "gpt2")) return llt_tokjson_write_from_gguf(g, dst, err);
    if (!llt_gguf_str_eq(model, "llama")) {
        LLT_WARN("%s: tokenizer.ggml.model '%.*s' cannot be written: %s will have no tokenizer", g->map.path,
                 (int)(model.len > 40 ? 40 : model.len), model.s, dst);
        return LLT_OK;
    }
    char path[4096];
    if (!llt_path_join(path, sizeof path, dst, "tokenizer.model"))
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: path too long", dst);
    return llt_spm_write_from_gguf(g, path, err);
}

/* GGUF: config and tokenizer from the metadata; Q/K are already in the adjacent-pair layout. */
static llt_status gguf_to_native(llt_gguf *g, const char *dst, llt_dtype dtype, llt_error *err) {
    llt_config cfg;
    LLT_TRY(llt_config_from_gguf(g, &cfg, err));
    LLT_TRY(write_gguf_tokenizer(g, dst, err));
    llt_tensor_table raw, tt;
    llt_tensors_init(&raw);
    llt_tensors_init(&tt);
    llt_status s = llt_gguf_to_tensors(g, &raw, err);
    if (s == LLT_OK) s = llt_names_rename_table(&raw, LLT_NAMES_GGUF, &tt, LLT_NAMES_NATIVE, err);
    size_t n_block = 0; /* the native format has no block types: say so rather than surprise */
    for (size_t i = 0; s == LLT_OK && i < raw.n; i++) n_block += llt_dtype_is_block(raw.t[i].dtype);
    if (n_block)
        LLT_INFO("%s: %zu quantised tensors (%s, ...) are dequantised to %s in the native format", g->map.path,
                 n_block, llt_dtype_name(cfg.dtype), dtype == LLT_DTYPE_COUNT ? "f32" : llt_dtype_name(dtype));
    if (s == LLT_OK) s = llt_native_write(dst, &cfg, &tt, dtype, err);
    llt_tensors_free(&raw);
    llt_tensors_free(&tt);
    return s;
}

static llt_status convert_gguf(const char *src, const char *dst, llt_dtype dtype, llt_error *err) {
    llt_gguf g;
    LLT_TRY(llt_gguf_open(src, &g, err));
    llt_status s = gguf_to_native(&g, dst, dtype, err);
    llt_gguf_close(&g);
    return s;
}

static llt_status make_dir(const char *dir, llt_error *err) {
    if (llt_path_is_dir(dir)) return LLT_OK;
    if (mkdir(dir, 0755) != 0)
        return llt_err_set(err, LLT_ERR_IO, "%s: cannot create folder: %s", dir, strerror(errno));
    return LLT_OK;
}

llt_format llt_detect_format(const char *path) {
    char p[4096];
    if (!llt_path_is_dir(path)) return LLT_FORMAT_GGUF;
    if (llt_path_join(p, sizeof p, path, "config.json") && llt_path_exists(p)) return LLT_FORMAT_HF;
    return LLT_FORMAT_TRITON;
}

llt_status llt_convert(const char *src, llt_format from, const char *dst_dir, llt_dtype dtype,
                       llt_error *err) {
    LLT_CHECK(src && dst_dir, err, LLT_ERR_INVALID_ARG, "llt_convert: NULL path");
    LLT_CHECK(llt_path_exists(src), err, LLT_ERR_IO, "%s: no such file or folder", src);
    if (from == LLT_FORMAT_AUTO) from = llt_detect_format(src);
    LLT_TRY(make_dir(dst_dir, err));
    double t0 = llt_time_now();
    llt_status s;
    switch (from) {
    case LLT_FORMAT_HF: s = llt_convert_hf(src, dst_dir, dtype, err); break;
    case LLT_FORMAT_GGUF: s = convert_gguf(src, dst_dir, dtype, err); break;
    case LLT_FORMAT_TRITON: s = convert_native(src, dst_dir, dtype, err); break;
    default: s = llt_err_set(err, LLT_ERR_INVALID_ARG, "llt_convert: unknown source format %d", (int)from);
    }
    if (s == LLT_OK && llt_time_now() - t0 > 1.0)
        LLT_INFO("converted %s -> %s in %.1f s", src, dst_dir, llt_time_now() - t0);
    return s;
}
