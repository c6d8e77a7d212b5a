/* from_path.c: finding the chat template a model carries, and its BOS/EOS texts.
 *  - GGUF file: key tokenizer.chat_template; BOS/EOS are the vocabulary's pieces.
 *  - folder (Hugging Face or native): chat_template.jinja (what newer transformers saves),
 *    else tokenizer_config.json "chat_template" (a string, or a list of {name, template}
 *    of which "default" is used, as transformers does); BOS/EOS from tokenizer_config.json
 *    bos_token / eos_token (a string or {"content": ...}), else the vocabulary's pieces. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/json.h"
#include "formats/gguf.h"
#include "template/tmpl.h"

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* BOS/EOS pieces of the vocabulary at path (a GGUF file or a folder). */
static void vocab_tokens(const char *path, char **bos, char **eos) {
    llt_tokenizer *tok = NULL;
    if (llt_tokenizer_open(path, &tok, NULL) != LLT_OK) return;
    int32_t b = llt_tokenizer_bos(tok), e = llt_tokenizer_eos(tok);
    const char *pb = b >= 0 ? llt_tokenizer_piece(tok, b) : NULL, *pe = e >= 0 ? llt_tokenizer_piece(tok, e) : NULL;
    if (pb && !*bos) *bos = dup_n(pb, strlen(pb));
    if (pe && !*eos) *eos = dup_n(pe, strlen(pe));
    llt_tokenizer_free(tok);
}

static llt_status from_gguf(const char *path, char **src, llt_error *err) {
    llt_gguf g;
    LLT_TRY(llt_gguf_open(path, &g, err));
    llt_gguf_str s;
    llt_status st = llt_gguf_get_str(&g, "tokenizer.chat_template", &s, NULL);
    if (st == LLT_OK) {
        *src = dup_n(s.s, (size_t)s.len);
        if (!*src) st = llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", path);
    } else {
        st = LLT_OK; /* absent: *src stays NULL */
    }
    llt_gguf_close(&g);
    return st;
}

static char *token_text(const llt_json *v) {
    if (!v) return NULL;
    if (v->type == LLT_JSON_STRING) return dup_n(v->string, v->len);
    if (v->type == LLT_JSON_OBJECT) {
        const llt_json *c = llt_json_get_type(v, "content", LLT_JSON_STRING);
        if (c) return dup_n(c->string, c->len);
    }
    return NULL;
}

static llt_status from_folder(const char *dir, char **src, char **bos, char **eos, llt_error *err) {
    char path[4096];
    size_t n = 0;
    if (!llt_path_join(path, sizeof path, dir, "chat_template.jinja"))
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: path too long", dir);
    if (llt_path_exists(path)) LLT_TRY(llt_read_file(path, src, &n, err));
    llt_path_join(path, sizeof path, dir, "tokenizer_config.json");
    if (llt_path_exists(path)) {
        llt_json *j = NULL;
        LLT_TRY(llt_json_parse_file(path, &j, err));
        const llt_json *ct = llt_json_get(j, "chat_template");
        if (!*src && ct && ct->type == LLT_JSON_STRING) *src = dup_n(ct->string, ct->len);
        if (!*src && ct && ct->type == LLT_JSON_ARRAY)
            for (size_t i = 0; i < ct->len; i++) {
                const char *name = llt_json_get_string(&ct->items[i], "name");
                const llt_json *t = llt_json_get_type(&ct->items[i], "template", LLT_JSON_STRING);
                if (name && t && strcmp(name, "default") == 0) *src = dup_n(t->string, t->len);
            }
        *bos = token_text(llt_json_get(j, "bos_token"));
        *eos = token_text(llt_json_get(j, "eos_token"));
        llt_json_free(j);
    }
    return LLT_OK;
}

llt_status llt_chat_template_from_path(const char *model_path, char **template_src, char **bos, char **eos,
                                       llt_error *err) {
    if (!model_path || !template_src || !bos || !eos)
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "llt_chat_template_from_path: NULL argument");
    *template_src = *bos = *eos = NULL;
    if (!llt_path_exists(model_path)) return llt_err_set(err, LLT_ERR_IO, "%s: cannot open (no such file or folder)", model_path);
    llt_status st = llt_path_is_dir(model_path) ? from_folder(model_path, template_src, bos, eos, err)
                                        : from_gguf(model_path, template_src, err);
    if (st == LLT_OK && !*template_src)
        st = llt_err_set(err, LLT_ERR_NOT_FOUND,
                         "%s carries no chat template (no tokenizer.chat_template in a GGUF file, no "
                         "chat_template.jinja or tokenizer_config.json \"chat_template\" in a folder); "
                         "give one with --chat-template FILE",
                         model_path);
    if (st == LLT_OK) vocab_tokens(model_path, bos, eos);
    if (st != LLT_OK) {
        free(*template_src);
        free(*bos);
        free(*eos);
        *template_src = *bos = *eos = NULL;
    }
    return st;
}
