/* hf_json.c: Hugging Face tokenizer.json with a BPE model.
 *  - byte-level BPE (GPT-2, Llama 3): model.vocab in GPT-2's byte form, model.merges as
 *    "a b" strings or ["a", "b"] pairs, model.ignore_merges, pre_tokenizer ByteLevel / Split
 *    (Regex, Isolated) / Digits / Sequence of those, decoder ByteLevel;
 *  - SentencePiece-style BPE (Llama 2 / Mistral exports: byte_fallback, '▁' pieces,
 *    Metaspace or Prepend+Replace normalizer): run as SentencePiece BPE where a piece's score
 *    is minus the rank of the merge that builds it.
 * added_tokens become control tokens (special: true) or user-defined ones. BOS comes from the
 * post_processor's template, EOS from tokenizer_config.json beside the file when present. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/json.h"
#include "tokenizer/tokenizer.h"

typedef struct hf_ctx {
    llt_tokenizer *t;
    const char *what;
    const llt_json *model, *vocab, *merges, *added;
    bool spm;  /* SentencePiece-style model */
    bool dummy_prefix; /* SentencePiece-style: a Prepend normaliser or Metaspace asks for one */
} hf_ctx;

static llt_status shape_err(const hf_ctx *c, const char *field, const char *expected, llt_error *err) {
    return llt_err_set(err, LLT_ERR_FORMAT, "%s: %s: expected %s", c->what, field, expected);
}

static bool json_id(const llt_json *v, int64_t *id) {
    if (!v || v->type != LLT_JSON_NUMBER || !v->is_int || v->integer < 0 || v->integer >= (1 << 26)) return false;
    *id = v->integer;
    return true;
}

/* Vocabulary size: one past the largest id of model.vocab and added_tokens. */
static llt_status count_ids(const hf_ctx *c, int64_t *n, llt_error *err) {
    int64_t max = -1, id;
    for (size_t i = 0; i < c->vocab->len; i++) {
        if (!json_id(&c->vocab->items[i], &id)) return shape_err(c, "model.vocab", "token ids in [0, 2^26)", err);
        if (id > max) max = id;
    }
    for (size_t i = 0; c->added && i < c->added->len; i++) {
        if (!json_id(llt_json_get(&c->added->items[i], "id"), &id) ||
            !llt_json_get_string(&c->added->items[i], "content"))
            return shape_err(c, "added_tokens", "objects with an integer id and a content string", err);
        if (id > max) max = id;
    }
    *n = max + 1;
    return llt_vocab_check_dense(*n, (int64_t)(c->vocab->len + (c->added ? c->added->len : 0)), c->what, err);
}

static llt_status load_vocab(hf_ctx *c, llt_error *err) {
    llt_tokenizer *t = c->t;
    int64_t n = 0;
    LLT_TRY(count_ids(c, &n, err));
    LLT_TRY(llt_vocab_init(&t->vocab, n, c->what, err));
    char *buf = NULL;
    llt_status st = LLT_OK;
    for (size_t i = 0; st == LLT_OK && i < c->vocab->len; i++) {
        const char *k = c->vocab->keys[i];
        size_t kl = strlen(k), bl;
        int32_t id = (int32_t)c->vocab->items[i].integer;
        bool byte_piece = c->spm && kl == 6 && strncmp(k, "<0x", 3) == 0 && k[5] == '>';
        if (c->spm) {
            st = llt_vocab_set(&t->vocab, id, k, kl, 0.0f, byte_piece ? LLT_TT_BYTE : LLT_TT_NORMAL, c->what, err);
        } else if (!llt_resize(&buf, kl + 1)) {
            st = llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", c->what);
        } else if (!llt_bytelevel_decode(k, kl, buf, &bl)) {
            st = llt_err_set(err, LLT_ERR_FORMAT, "%s: model.vocab entry '%.40s' is not in GPT-2 byte-level form",
                             c->what, k);
        } else {
            st = llt_vocab_set(&t->vocab, id, buf, bl, 0.0f, LLT_TT_NORMAL, c->what, err);
        }
    }
    free(buf);
    return st;
}

static llt_status load_added(hf_ctx *c, llt_error *err) {
    llt_vocab *v = &c->t->vocab;
    for (size_t i = 0; c->added && i < c->added->len; i++) {
        const llt_json *a = &c->added->items[i];
        int32_t id = (int32_t)llt_json_get(a, "id")->integer;
        const llt_json *content = llt_json_get(a, "content");
        bool special = false;
        llt_json_get_bool(a, "special", &special);
        llt_tok_type ty = special ? LLT_TT_CONTROL : LLT_TT_USER;
        if (v->type[id] == LLT_TT_NONE) {
            LLT_TRY(llt_vocab_set(v, id, content->string, content->len, 0.0f, ty, c->what, err));
        } else if (v->len[id] == content->len && memcmp(v->blob + v->off[id], content->string, content->len) == 0) {
            v->type[id] = (uint8_t)ty; /* the vocabulary holds it too (GPT-2's <|endoftext|>) */
        } else {
            /* the byte-level vocabulary writes it in byte form: keep the text the user types */
            LLT_CHECK(c->spm == false, err, LLT_ERR_FORMAT, "%s: added token %d '%.40s' differs from model.vocab",
                      c->what, id, content->string);
            v->type[id] = LLT_TT_NONE;
            LLT_TRY(llt_vocab_set(v, id, content->string, content->len, 0.0f, ty, c->what, err));
        }
    }
    return LLT_OK;
}

/* One merge: "a b" or ["a", "b"]; fills the two pieces (as written in the vocabulary). */
static bool merge_parts(const llt_json *m, const char **a, size_t *la, const char **b, size_t *lb) {
    if (m->type == LLT_JSON_ARRAY && m->len == 2 && m->items[0].type == LLT_JSON_STRING &&
        m->items[1].type == LLT_JSON_STRING) {
        *a = m->items[0].string, *la = m->items[0].len;
        *b = m->items[1].string, *lb = m->items[1].len;
        return true;
    }
    if (m->type != LLT_JSON_STRING || m->len < 3) return false;
    const char *sp = memchr(m->string + 1, ' ', m->len - 1);
    if (!sp) return false;
    *a = m->string, *la = (size_t)(sp - m->string);
    *b = sp + 1, *lb = m->len - *la - 1;
    return true;
}

/* Vocabulary id of a piece as the merges write it. */
static int32_t piece_id(const hf_ctx *c, const char *s, size_t n, char *buf) {
    if (c->spm) return llt_vocab_find(&c->t->vocab, s, n);
    size_t bl;
    return llt_bytelevel_decode(s, n, buf, &bl) ? llt_vocab_find(&c->t->vocab, buf, bl) : -1;
}

static llt_status load_merges(hf_ctx *c, llt_error *err) {
    llt_tokenizer *t = c->t;
    size_t n = c->merges->len;
    LLT_TRY(llt_merges_init(&t->merges, (int64_t)n, err));
    size_t cap = 256;
    char *buf = malloc(cap), *joined = malloc(cap * 2);
    llt_status st = buf && joined ? LLT_OK : llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", c->what);
    for (size_t i = 0; st == LLT_OK && i < n; i++) {
        const char *a, *b;
        size_t la, lb;
        if (!merge_parts(&c->merges->items[i], &a, &la, &b, &lb)) {
            st = shape_err(c, "model.merges", "\"a b\" strings or [\"a\", \"b\"] pairs", err);
            break;
        }
        if (la + lb + 1 > cap) {
            while (la + lb + 1 > cap) cap *= 2;
            char *p1 = realloc(buf, cap), *p2 = p1 ? realloc(joined, cap * 2) : NULL;
            if (p1) buf = p1;
            if (p2) joined = p2;
            if (!p1 || !p2) {
                st = llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", c->what);
                break;
            }
        }
        int32_t ia = piece_id(c, a, la, buf), ib = piece_id(c, b, lb, buf);
        memcpy(joined, a, la);
        memcpy(joined + la, b, lb);
        int32_t ij = piece_id(c, joined, la + lb, buf);
        if (ia < 0 || ib < 0 || ij < 0) continue; /* a merge that cannot apply */
        int32_t prev = llt_merges_add(&t->merges, ia, ib, (int32_t)i);
        if (prev >= 0) {
            st = llt_err_set(err, LLT_ERR_FORMAT, "%s: model.merges[%zu] '%.*s %.*s' repeats merges[%d]", c->what, i,
                             (int)(la > 40 ? 40 : la), a, (int)(lb > 40 ? 40 : lb), b, prev);
            break;
        }
        /* SentencePiece-style: the first merge that builds a piece gives its score */
        if (c->spm && t->vocab.score[ij] == 0.0f) t->vocab.score[ij] = -(float)i - 1.0f;
    }
    free(buf);
    free(joined);
    return st;
}

/* ---- pre-tokenizer, normalizer ---- */

static llt_status add_pretok(hf_ctx *c, const llt_json *p, int depth, llt_error *err) {
    if (!p || p->type == LLT_JSON_NULL) return LLT_OK;
    const char *type = llt_json_get_string(p, "type");
    if (!type) return shape_err(c, "pre_tokenizer", "an object with a type", err);
    LLT_CHECK(depth <= 4, err, LLT_ERR_UNSUPPORTED, "%s: pre_tokenizer: Sequence nested %d deep, at most 4 supported",
              c->what, depth);
    if (strcmp(type, "Sequence") == 0) {
        const llt_json *seq = llt_json_get_type(p, "pretokenizers", LLT_JSON_ARRAY);
        if (!seq) return shape_err(c, "pre_tokenizer.pretokenizers", "an array", err);
        for (size_t i = 0; i < seq->len; i++) LLT_TRY(add_pretok(c, &seq->items[i], depth + 1, err));
        return LLT_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        bool use_regex = true, prefix = false;
        llt_json_get_bool(p, "use_regex", &use_regex);
        llt_json_get_bool(p, "add_prefix_space", &prefix);
        LLT_CHECK(!prefix, err, LLT_ERR_UNSUPPORTED, "%s: ByteLevel add_prefix_space is not supported", c->what);
        return use_regex ? llt_pretok_add(&c->t->pre, LLT_REGEX_GPT2, strlen(LLT_REGEX_GPT2), err) : LLT_OK;
    }
    if (strcmp(type, "Digits") == 0) {
        bool single = false;
        llt_json_get_bool(p, "individual_digits", &single);
        const char *re = single ? "\\p{N}" : "\\p{N}+";
        return llt_pretok_add(&c->t->pre, re, strlen(re), err);
    }
    if (strcmp(type, "Split") == 0) {
        const llt_json *pat = llt_json_get_type(p, "pattern", LLT_JSON_OBJECT);
        const llt_json *re = pat ? llt_json_get_type(pat, "Regex", LLT_JSON_STRING) : NULL;
        const char *behavior = llt_json_get_string(p, "behavior");
        bool invert = false;
        llt_json_get_bool(p, "invert", &invert);
        LLT_CHECK(re && !invert && (!behavior || strcmp(behavior, "Isolated") == 0), err, LLT_ERR_UNSUPPORTED,
                  "%s: Split pre-tokenizer: only a Regex pattern with behavior Isolated is supported", c->what);
        return llt_pretok_add(&c->t->pre, re->string, re->len, err);
    }
    if (strcmp(type, "Metaspace") == 0 && c->spm) { /* SentencePiece's own whitespace rule */
        const char *scheme = llt_json_get_string(p, "prepend_scheme");
        bool prefix = true;
        llt_json_get_bool(p, "add_prefix_space", &prefix);
        c->dummy_prefix = prefix && !(scheme && strcmp(scheme, "never") == 0);
        return LLT_OK;
    }
    return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: pre_tokenizer type '%.40s' is not supported", c->what, type);
}

/* SentencePiece-style exports spell the dummy prefix as a normalizer; nothing else is run. */
static llt_status check_normalizer(hf_ctx *c, const llt_json *n, int depth, llt_error *err) {
    if (!n || n->type == LLT_JSON_NULL) return LLT_OK;
    const char *type = llt_json_get_string(n, "type");
    if (!type) return shape_err(c, "normalizer", "an object with a type", err);
    LLT_CHECK(depth <= 4, err, LLT_ERR_UNSUPPORTED, "%s: normalizer: Sequence nested %d deep, at most 4 supported",
              c->what, depth);
    if (strcmp(type, "Sequence") == 0) {
        const llt_json *seq = llt_json_get_type(n, "normalizers", LLT_JSON_ARRAY);
        if (!seq) return shape_err(c, "normalizer.normalizers", "an array", err);
        for (size_t i = 0; i < seq->len; i++) LLT_TRY(check_normalizer(c, &seq->items[i], depth + 1, err));
        return LLT_OK;
    }
    if (c->spm && strcmp(type, "Prepend") == 0) {
        c->dummy_prefix = true; /* Prepend("▁") is the dummy prefix */
        return LLT_OK;
    }
    if (c->spm && strcmp(type, "Replace") == 0) return LLT_OK; /* ' ' -> '▁' */
    return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: normalizer type '%.40s' is not supported", c->what, type);
}

/* ---- special ids ---- */

static int32_t find_text(const llt_tokenizer *t, const char *s) { return s ? llt_vocab_find(&t->vocab, s, strlen(s)) : -1; }

static const char *token_name(const llt_json *cfg, const char *key) {
    const llt_json *v = cfg ? llt_json_get(cfg, key) : NULL;
    if (v && v->type == LLT_JSON_STRING) return v->string;
    return v ? llt_json_get_string(v, "content") : NULL;
}

/* BOS: the special token the post_processor's single template starts with, else
 * tokenizer_config.json's, else a well-known name; EOS likewise without the template. */
static void special_ids(hf_ctx *c, const llt_json *root) {
    llt_tokenizer *t = c->t;
    const llt_json *pp = llt_json_get_type(root, "post_processor", LLT_JSON_OBJECT);
    const llt_json *single = pp ? llt_json_get_type(pp, "single", LLT_JSON_ARRAY) : NULL;
    const llt_json *first = single && single->len ? llt_json_get_type(&single->items[0], "SpecialToken", LLT_JSON_OBJECT) : NULL;
    t->add_bos = first != NULL || c->spm;
    t->bos = first ? find_text(t, llt_json_get_string(first, "id")) : -1;
    char cfg_path[4096], dir[4096];
    snprintf(dir, sizeof dir, "%s", c->what);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    llt_json *cfg = NULL;
    if (llt_path_join(cfg_path, sizeof cfg_path, dir, "tokenizer_config.json") && llt_path_exists(cfg_path))
        llt_json_parse_file(cfg_path, &cfg, NULL);
    if (t->bos < 0) t->bos = find_text(t, token_name(cfg, "bos_token"));
    t->eos = find_text(t, token_name(cfg, "eos_token"));
    bool b;
    if (cfg && llt_json_get_bool(cfg, "add_bos_token", &b)) t->add_bos = b;
    llt_json_free(cfg);
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<|endoftext|>"};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>"};
    for (int i = 0; i < 3 && t->bos < 0; i++) t->bos = find_text(t, bos_names[i]);
    for (int i = 0; i < 3 && t->eos < 0; i++) t->eos = find_text(t, eos_names[i]);
    t->unk = find_text(t, llt_json_get_string(c->model, "unk_token"));
}

/* ---- the whole file ---- */

static llt_status hf_setup(hf_ctx *c, const llt_json *root, llt_error *err) {
    llt_tokenizer *t = c->t;
    c->model = llt_json_get_type(root, "model", LLT_JSON_OBJECT);
    if (!c->model) return shape_err(c, "model", "an object", err);
    const char *mtype = llt_json_get_string(c->model, "type");
    LLT_CHECK(!mtype || strcmp(mtype, "BPE") == 0, err, LLT_ERR_UNSUPPORTED,
              "%s: model.type '%.40s' is not supported (expected BPE)", c->what, mtype);
    c->vocab = llt_json_get_type(c->model, "vocab", LLT_JSON_OBJECT);
    c->merges = llt_json_get_type(c->model, "merges", LLT_JSON_ARRAY);
    c->added = llt_json_get_type(root, "added_tokens", LLT_JSON_ARRAY);
    if (!c->vocab || !c->merges) return shape_err(c, "model.vocab / model.merges", "an object and an array", err);
    bool byte_fallback = false;
    llt_json_get_bool(c->model, "byte_fallback", &byte_fallback);
    c->spm = byte_fallback || llt_json_get(c->vocab, "\xE2\x96\x81") != NULL;
    t->kind = c->spm ? LLT_TOKK_SPM_BPE : LLT_TOKK_BYTE_BPE;
    llt_json_get_bool(c->model, "ignore_merges", &t->ignore_merges);
    t->byte_fallback = byte_fallback;
    t->remove_extra_ws = false;
    LLT_TRY(load_vocab(c, err));
    LLT_TRY(load_added(c, err));
    LLT_TRY(llt_vocab_index(&t->vocab, c->what, err));
    LLT_TRY(load_merges(c, err));
    LLT_TRY(check_normalizer(c, llt_json_get(root, "normalizer"), 0, err));
    LLT_TRY(add_pretok(c, llt_json_get(root, "pre_tokenizer"), 0, err));
    special_ids(c, root);
    t->add_dummy_prefix = c->spm && c->dummy_prefix;
    if (c->spm) llt_merges_free(&t->merges); /* scores carry the merge order */
    return llt_tok_finish(t, c->what, err);
}

llt_status llt_hf_json_load(const char *data, size_t size, const char *what, llt_tokenizer **out, llt_error *err) {
    llt_json *root;
    LLT_TRY(llt_json_parse(data, size, what, &root, err));
    llt_tokenizer *t = NULL;
    llt_status st = llt_tok_alloc(&t, err);
    hf_ctx c = {t, what, NULL, NULL, NULL, NULL, false, false};
    if (st == LLT_OK) st = root->type == LLT_JSON_OBJECT ? hf_setup(&c, root, err) : shape_err(&c, "top level", "an object", err);
    llt_json_free(root);
    if (st != LLT_OK) {
        llt_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LLT_OK;
}
