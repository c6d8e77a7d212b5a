/* tiktoken.c: the Llama 3 tokenizer.model, a tiktoken BPE file: one "base64(token) rank" per
 * line, ranks being the ids. There is no merge list: BPE joins the pair whose joined bytes
 * have the lowest rank. The special tokens (ids after the last rank) are not in the file:
 * they come from special_tokens.json beside it ({"<|begin_of_text|>": 128000, ...}), or else
 * from Llama 3's fixed list. The pre-tokenizer is Meta's Llama 3 regex. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "tokenizer/tokenizer.h"

static int b64val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Strict base64 (padding required); out holds n/4*3 bytes. */
static bool b64_decode(const char *s, size_t n, char *out, size_t *out_len) {
    if (n == 0 || n % 4) return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++) v[j] = b64val((unsigned char)s[i + j]);
        bool last = i + 4 == n;
        int pad = (last && s[i + 3] == '=') + (last && s[i + 2] == '=' && s[i + 3] == '=');
        if (v[0] < 0 || v[1] < 0 || (v[2] < 0 && pad < 2) || (v[3] < 0 && pad < 1)) return false;
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)(pad < 2 ? v[2] : 0) << 6 |
                     (uint32_t)(pad < 1 ? v[3] : 0);
        out[k++] = (char)(x >> 16);
        if (pad < 2) out[k++] = (char)(x >> 8);
        if (pad < 1) out[k++] = (char)x;
    }
    *out_len = k;
    return true;
}

typedef struct tk_line {
    const char *b64;
    size_t len;
    int64_t rank;
} tk_line;

static llt_status parse_line(const char *s, size_t n, size_t lineno, const char *what, tk_line *out, llt_error *err) {
    const char *sp = memchr(s, ' ', n);
    LLT_CHECK(sp && sp > s && sp + 1 < s + n, err, LLT_ERR_FORMAT,
              "%s: line %zu is not 'base64 rank'", what, lineno);
    int64_t r = 0;
    for (const char *p = sp + 1; p < s + n; p++) {
        LLT_CHECK(*p >= '0' && *p <= '9' && r < (1 << 26), err, LLT_ERR_FORMAT,
                  "%s: line %zu: rank is not a number below 2^26", what, lineno);
        r = r * 10 + (*p - '0');
    }
    *out = (tk_line){s, (size_t)(sp - s), r};
    return LLT_OK;
}

static llt_status parse_lines(const char *data, size_t size, const char *what, tk_line **lines, size_t *n_lines,
                              llt_error *err) {
    size_t cap = 1024, n = 0;
    tk_line *v = malloc(cap * sizeof *v);
    LLT_CHECK(v, err, LLT_ERR_NOMEM, "%s: out of memory", what);
    for (size_t pos = 0, lineno = 1; pos < size; lineno++) {
        const char *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) : size, len = end - pos;
        if (len && data[pos + len - 1] == '\r') len--;
        if (len) {
            if (n == cap) {
                tk_line *p = realloc(v, (cap *= 2) * sizeof *v);
                if (!p) return free(v), llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", what);
                v = p;
            }
            llt_status st = parse_line(data + pos, len, lineno, what, &v[n++], err);
            if (st != LLT_OK) return free(v), st;
        }
        pos = end + 1;
    }
    *lines = v;
    *n_lines = n;
    return LLT_OK;
}

typedef struct tk_special {
    char name[64];
    int64_t id;
} tk_special;

/* Llama 3's 256 special tokens, as Meta's tokenizer defines them. */
static void builtin_specials(tk_special *sp, int64_t base) {
    static const char *const named[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                                        "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                                        "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
                                        "<|python_tag|>", "<|image|>"};
    for (int i = 0; i < 256; i++) {
        if (i < 12) snprintf(sp[i].name, sizeof sp[i].name, "%s", named[i]);
        else snprintf(sp[i].name, sizeof sp[i].name, "<|reserved_special_token_%d|>", i - 10);
        sp[i].id = base + i;
    }
}

static llt_status json_specials(const char *path, tk_special **out, size_t *n, llt_error *err) {
    llt_json *j;
    LLT_TRY(llt_json_parse_file(path, &j, err));
    llt_status st = LLT_OK;
    tk_special *sp = NULL;
    if (j->type != LLT_JSON_OBJECT || j->len > 4096) {
        st = llt_err_set(err, LLT_ERR_FORMAT, "%s: expected an object of at most 4096 \"token\": id pairs", path);
    } else if (!(sp = calloc(j->len ? j->len : 1, sizeof *sp))) {
        st = llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; st == LLT_OK && i < j->len; i++) {
        const llt_json *v = &j->items[i];
        if (v->type != LLT_JSON_NUMBER || !v->is_int || v->integer < 0 || v->integer >= (1 << 26) ||
            strlen(j->keys[i]) >= sizeof sp[i].name || !j->keys[i][0])
            st = llt_err_set(err, LLT_ERR_FORMAT, "%s: entry '%.40s' is not a short name with an id in [0, 2^26)",
                             path, j->keys[i]);
        else snprintf(sp[i].name, sizeof sp[i].name, "%s", j->keys[i]), sp[i].id = v->integer;
    }
    *n = j->len;
    llt_json_free(j);
    if (st != LLT_OK) free(sp), sp = NULL;
    *out = sp;
    return st;
}

static llt_status load_specials(const char *path, int64_t base, tk_special **out, size_t *n, llt_error *err) {
    char dir[4096], js[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    if (llt_path_join(js, sizeof js, dir, "special_tokens.json") && llt_path_exists(js))
        return json_specials(js, out, n, err);
    *out = calloc(256, sizeof **out);
    LLT_CHECK(*out, err, LLT_ERR_NOMEM, "%s: out of memory", path);
    builtin_specials(*out, base);
    *n = 256;
    return LLT_OK;
}

static llt_status fill(llt_tokenizer *t, const tk_line *lines, size_t n, const tk_special *sp, size_t n_sp,
                       const char *what, llt_error *err) {
    int64_t n_vocab = 0;
    for (size_t i = 0; i < n; i++) n_vocab = lines[i].rank + 1 > n_vocab ? lines[i].rank + 1 : n_vocab;
    for (size_t i = 0; i < n_sp; i++) n_vocab = sp[i].id + 1 > n_vocab ? sp[i].id + 1 : n_vocab;
    LLT_TRY(llt_vocab_check_dense(n_vocab, (int64_t)(n + n_sp), what, err));
    LLT_TRY(llt_vocab_init(&t->vocab, n_vocab, what, err));
    char buf[512];
    for (size_t i = 0; i < n; i++) {
        size_t len;
        LLT_CHECK(lines[i].len <= 680 && b64_decode(lines[i].b64, lines[i].len, buf, &len), err, LLT_ERR_FORMAT,
                  "%s: token of rank %lld is not base64 (or longer than 510 bytes)", what, (long long)lines[i].rank);
        LLT_TRY(llt_vocab_set(&t->vocab, (int32_t)lines[i].rank, buf, len, 0.0f, LLT_TT_NORMAL, what, err));
    }
    for (size_t i = 0; i < n_sp; i++)
        LLT_TRY(llt_vocab_set(&t->vocab, (int32_t)sp[i].id, sp[i].name, strlen(sp[i].name), 0.0f, LLT_TT_CONTROL,
                              what, err));
    return LLT_OK;
}

static llt_status setup(llt_tokenizer *t, const char *data, size_t size, const char *path, llt_error *err) {
    tk_line *lines = NULL;
    size_t n = 0, n_sp = 0;
    tk_special *sp = NULL;
    LLT_TRY(parse_lines(data, size, path, &lines, &n, err));
    int64_t base = 0;
    for (size_t i = 0; i < n; i++) base = lines[i].rank + 1 > base ? lines[i].rank + 1 : base;
    llt_status st = load_specials(path, base, &sp, &n_sp, err);
    if (st == LLT_OK) st = fill(t, lines, n, sp, n_sp, path, err);
    free(lines);
    free(sp);
    LLT_TRY(st);
    LLT_TRY(llt_vocab_index(&t->vocab, path, err));
    t->kind = LLT_TOKK_BYTE_BPE;
    t->ignore_merges = true; /* tiktoken encodes a chunk that is a token as that token */
    t->add_bos = true;
    t->bos = llt_vocab_find(&t->vocab, "<|begin_of_text|>", 17);
    t->eos = llt_vocab_find(&t->vocab, "<|end_of_text|>", 15);
    LLT_TRY(llt_pretok_add(&t->pre, LLT_REGEX_LLAMA3, strlen(LLT_REGEX_LLAMA3), err));
    return llt_tok_finish(t, path, err);
}

llt_status llt_tiktoken_load(const char *data, size_t size, const char *path, llt_tokenizer **out, llt_error *err) {
    llt_tokenizer *t;
    LLT_TRY(llt_tok_alloc(&t, err));
    llt_status st = setup(t, data, size, path, err);
    if (st != LLT_OK) {
        llt_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LLT_OK;
}
