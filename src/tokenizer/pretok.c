/* pretok.c: regex pre-tokenisation for byte-level BPE, through PCRE2 (UTF + Unicode
 * properties: \p{L}, \p{N} and \s mean what the tokenizers' Python/Rust regexes mean).
 * PCRE2_MATCH_INVALID_UTF lets the patterns run over text that is not valid UTF-8: invalid
 * bytes never match and so end up in the gaps, which are chunks of their own (HF's "Isolated"
 * split behaviour keeps both matches and gaps). */
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "tokenizer/tokenizer.h"

#ifdef LLT_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

/* Meta's Llama 3 pattern (tiktoken cl100k style: digits in groups of up to three). */
const char *const LLT_REGEX_LLAMA3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* GPT-2's pattern. */
const char *const LLT_REGEX_GPT2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/* Qwen2: Llama 3's pattern with single digits. */
static const char *const k_regex_qwen2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const char *llt_pretok_regex_for(const char *pre) {
    static const char *const llama3_like[] = {"llama-bpe", "llama3", "smaug-bpe", "dbrx", "tekken"};
    for (size_t i = 0; i < sizeof llama3_like / sizeof llama3_like[0]; i++)
        if (strcmp(pre, llama3_like[i]) == 0) return LLT_REGEX_LLAMA3;
    if (strcmp(pre, "qwen2") == 0) return k_regex_qwen2;
    if (strcmp(pre, "gpt-2") != 0 && strcmp(pre, "default") != 0)
        LLT_WARN("tokenizer: pre-tokenizer '%s' is not known; using GPT-2's pattern", pre);
    return LLT_REGEX_GPT2;
}

#ifdef LLT_HAVE_PCRE2

llt_status llt_pretok_add(llt_pretok *p, const char *regex, size_t len, llt_error *err) {
    LLT_CHECK(p->n < LLT_PRETOK_MAX, err, LLT_ERR_UNSUPPORTED, "tokenizer: more than %d pre-tokenizer regexes",
              LLT_PRETOK_MAX);
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)regex, len, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                                   &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return llt_err_set(err, LLT_ERR_FORMAT, "tokenizer: pre-tokenizer regex does not compile at offset %zu: %s",
                           (size_t)off, (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter still works if JIT is unavailable */
    snprintf(p->pattern[p->n], sizeof p->pattern[p->n], "%.*s", (int)(len < 47 ? len : 47), regex);
    p->code[p->n++] = re;
    return LLT_OK;
}

void llt_pretok_free(llt_pretok *p) {
    for (int i = 0; i < p->n; i++) pcre2_code_free(p->code[i]);
    memset(p, 0, sizeof *p);
}

typedef struct split_ctx {
    const llt_pretok *p;
    pcre2_match_data *md[LLT_PRETOK_MAX];
    llt_chunk_fn fn;
    void *ctx;
} split_ctx;

static llt_status split_level(split_ctx *c, int level, const char *s, size_t n, llt_error *err);

/* PCRE2 gives up on a pattern that backtracks without bound (match, depth or heap limit): say
 * which pre-tokenizer regex, which limit and on how much text. */
static llt_status match_error(const llt_pretok *p, int level, int rc, size_t n, llt_error *err) {
    const char *limit = rc == PCRE2_ERROR_MATCHLIMIT ? "match limit" : rc == PCRE2_ERROR_DEPTHLIMIT ? "depth limit"
                      : rc == PCRE2_ERROR_HEAPLIMIT  ? "heap limit" : NULL;
    uint32_t value = 0;
    if (rc == PCRE2_ERROR_MATCHLIMIT) pcre2_config(PCRE2_CONFIG_MATCHLIMIT, &value);
    else if (rc == PCRE2_ERROR_DEPTHLIMIT) pcre2_config(PCRE2_CONFIG_DEPTHLIMIT, &value);
    else if (rc == PCRE2_ERROR_HEAPLIMIT) pcre2_config(PCRE2_CONFIG_HEAPLIMIT, &value);
    PCRE2_UCHAR msg[120];
    pcre2_get_error_message(rc, msg, sizeof msg);
    if (limit)
        return llt_err_set(err, LLT_ERR_STATE,
                           "tokenizer: pre-tokenizer regex %d of %d ('%s') hit PCRE2's %s (%u%s) on a chunk of %zu "
                           "bytes: the pattern backtracks too much for this text",
                           level + 1, p->n, p->pattern[level], limit, value,
                           rc == PCRE2_ERROR_MATCHLIMIT ? " steps" : rc == PCRE2_ERROR_HEAPLIMIT ? " KiB" : "", n);
    return llt_err_set(err, LLT_ERR_STATE, "tokenizer: pre-tokenizer regex %d of %d ('%s') failed: PCRE2 error %d (%s)",
                       level + 1, p->n, p->pattern[level], rc, (const char *)msg);
}

static llt_status emit(split_ctx *c, int level, const char *s, size_t n, llt_error *err) {
    if (n == 0) return LLT_OK;
    if (level + 1 < c->p->n) return split_level(c, level + 1, s, n, err);
    return c->fn(c->ctx, s, n, err);
}

static llt_status split_level(split_ctx *c, int level, const char *s, size_t n, llt_error *err) {
    size_t pos = 0, gap = 0;
    while (pos < n) {
        int rc = pcre2_match(c->p->code[level], (PCRE2_SPTR)s, n, pos, 0, c->md[level], NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return match_error(c->p, level, rc, n, err);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md[level]);
        size_t b = ov[0], e = ov[1];
        if (e <= b) { /* an empty match: step over one byte, it stays in the gap */
            pos = b + 1;
            continue;
        }
        LLT_TRY(emit(c, level, s + gap, b - gap, err));
        LLT_TRY(emit(c, level, s + b, e - b, err));
        gap = pos = e;
    }
    return emit(c, level, s + gap, n - gap, err);
}

llt_status llt_pretok_split(const llt_pretok *p, const char *text, size_t len, llt_chunk_fn fn,
                            void *ctx, llt_error *err) {
    if (p->n == 0) return len ? fn(ctx, text, len, err) : LLT_OK;
    split_ctx c = {p, {0}, fn, ctx};
    llt_status st = LLT_OK;
    for (int i = 0; i < p->n && st == LLT_OK; i++) {
        c.md[i] = pcre2_match_data_create_from_pattern(p->code[i], NULL);
        if (!c.md[i]) st = llt_err_set(err, LLT_ERR_NOMEM, "tokenizer: out of memory for regex match data");
    }
    if (st == LLT_OK) st = split_level(&c, 0, text, len, err);
    for (int i = 0; i < p->n; i++) pcre2_match_data_free(c.md[i]);
    return st;
}

#else /* no PCRE2: byte-level BPE cannot pre-tokenise */

llt_status llt_pretok_add(llt_pretok *p, const char *regex, size_t len, llt_error *err) {
    (void)p, (void)regex, (void)len;
    return llt_err_set(err, LLT_ERR_UNSUPPORTED,
                       "tokenizer: byte-level BPE needs PCRE2 (install libpcre2-dev and rebuild)");
}

void llt_pretok_free(llt_pretok *p) { memset(p, 0, sizeof *p); }

llt_status llt_pretok_split(const llt_pretok *p, const char *text, size_t len, llt_chunk_fn fn,
                            void *ctx, llt_error *err) {
    (void)p;
    return len ? fn(ctx, text, len, err) : LLT_OK;
}

#endif
