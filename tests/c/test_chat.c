/* test_chat: chat sessions (issue 11, the chat half).
 *  - Rendered chat text is tokenized with special tokens parsed: the Llama 3 template's markers
 *    are single ids, the ids Meta's special_tokens.json gives them; the end-of-turn tokens are in
 *    the end-of-generation set.
 *  - A session's turn gives exactly what llt_generate gives for the same text with the same
 *    special-token handling (greedy), and a later turn prefills only the tokens past the
 *    common prefix with the cache (asserted on the session's counters), with the same reply as
 *    a fresh generation over the whole conversation. */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "testlib.h"

static size_t encode(const llt_tokenizer *tok, const char *s, unsigned flags, int32_t *ids, size_t cap) {
    size_t n = 0;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_encode(tok, s, strlen(s), flags, ids, cap, &n, &err), &err);
    return n;
}

/* The Llama 3 chat layout: markers from special_tokens.json, the text between them encoded
 * alone (plain text, no BOS), all concatenated = the rendered text encoded with parse_special. */
static void test_llama3_special_tokens(void) {
    llt_tokenizer *tok = NULL;
    llt_error err = {0};
    CHECK_OK(llt_tokenizer_open(tl_fixture("tokenizers/llama3/tokenizer.model"), &tok, &err), &err);
    llt_json *sp = NULL;
    CHECK_OK(llt_json_parse_file(tl_fixture("tokenizers/llama3/special_tokens.json"), &sp, &err), &err);
    if (!tok || !sp) return;
    static const char *const parts[] = {"<|begin_of_text|>", "<|start_header_id|>", "system", "<|end_header_id|>",
                                        "\n\nBe brief.",     "<|eot_id|>",          "<|start_header_id|>",
                                        "user",              "<|end_header_id|>",   "\n\n台灣的首都是？ {\"a\": 1}",
                                        "<|eot_id|>",        "<|start_header_id|>", "assistant",
                                        "<|end_header_id|>", "\n\n"};
    char text[512] = "";
    int32_t want[128], got[128];
    size_t nw = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        strcat(text, parts[i]);
        int64_t id;
        if (llt_json_get_int(sp, parts[i], &id)) want[nw++] = (int32_t)id; /* a special token: one id */
        else nw += encode(tok, parts[i], 0, want + nw, 128 - nw);
    }
    size_t ng = encode(tok, text, LLT_TOK_PARSE_SPECIAL, got, 128);
    CHECK_MSG(ng == nw && memcmp(got, want, nw * sizeof *got) == 0, "%zu ids, expected %zu", ng, nw);
    CHECK(got[0] == 128000 && got[1] == 128006 && got[3] == 128007); /* special_tokens.json's ids */
    size_t np = encode(tok, text, 0, got, 128); /* without parse_special the markers are text */
    CHECK(np > nw + 10);
    CHECK(llt_tokenizer_is_eog(tok, 128009) && llt_tokenizer_is_eog(tok, 128008) && llt_tokenizer_is_eog(tok, 128001));
    CHECK(!llt_tokenizer_is_eog(tok, 128006) && !llt_tokenizer_is_eog(tok, 128000) && !llt_tokenizer_is_eog(tok, 882));
    llt_json_free(sp);
    llt_tokenizer_free(tok);
}

/* One greedy llt_generate over text with the chat's special-token handling. */
static void plain_generate(llt_model *m, const char *text, int32_t max_new, tl_text *out) {
    llt_gen_params p;
    llt_gen_params_init(&p);
    p.temperature = 0, p.max_new_tokens = max_new, p.add_bos = false, p.parse_special = true;
    memset(out, 0, sizeof *out);
    llt_error err = {0};
    CHECK_OK(llt_generate(m, text, &p, tl_collect, out, NULL, &err), &err);
}

static llt_status turn(llt_chat *c, const char *text, int32_t max_new, tl_text *out, llt_gen_stats *st,
                       llt_error *err) {
    llt_gen_params p;
    llt_gen_params_init(&p);
    p.temperature = 0, p.max_new_tokens = max_new; /* add_bos stays on: the text's <s> is kept single */
    memset(out, 0, sizeof *out);
    return llt_chat_turn(c, text, strlen(text), &p, tl_collect, out, st, err);
}

static void test_session(void) {
    llt_model *m = tl_load_stories(0, 0, 2, LLT_DTYPE_COUNT); /* the session and llt_generate */
    if (!m) return;
    const llt_tokenizer *tok = llt_model_tokenizer(m);
    llt_chat *c = NULL;
    llt_error err = {0};
    CHECK_OK(llt_chat_create(m, &c, &err), &err);
    if (!c) return llt_model_free(m);
    static int32_t ids[4096];
    const char *t1 = "<s>[INST] Once upon a time [/INST]";
    size_t n1 = encode(tok, t1, LLT_TOK_PARSE_SPECIAL, ids, 4096);
    CHECK(ids[0] == llt_tokenizer_bos(tok) && ids[1] != ids[0]); /* "<s>" is BOS, once */
    tl_text r1, want;
    llt_gen_stats st;
    CHECK_OK(turn(c, t1, 24, &r1, &st, &err), &err);
    plain_generate(m, t1, 24, &want);
    CHECK_MSG(strcmp(r1.s, want.s) == 0 && r1.n > 10, "chat '%s' vs generate '%s'", r1.s, want.s);
    CHECK(st.n_prompt == (int32_t)n1 && llt_chat_n_reused(c) == 0);
    CHECK(llt_chat_n_cached(c) == (int32_t)n1 + st.n_generated - (st.stop == LLT_STOP_MAX_TOKENS));

    /* turn 2: the conversation grows; only the new tail is prefilled */
    char t2[8192 + 128];
    snprintf(t2, sizeof t2, "%s%s</s><s>[INST] Lily [/INST]", t1, r1.s);
    size_t n2 = encode(tok, t2, LLT_TOK_PARSE_SPECIAL, ids, 4096);
    tl_text r2;
    CHECK_OK(turn(c, t2, 24, &r2, &st, &err), &err);
    int32_t reused = llt_chat_n_reused(c);
    CHECK_MSG(reused >= (int32_t)n1 && reused + st.n_prompt == (int32_t)n2 && st.n_prompt < (int32_t)(n2 - n1),
              "turn 2: %d reused + %d prefilled of %zu (first turn %zu)", reused, st.n_prompt, n2, n1);
    plain_generate(m, t2, 24, &want);
    CHECK_MSG(strcmp(r2.s, want.s) == 0, "turn 2: chat '%s' vs generate '%s'", r2.s, want.s);

    /* the same conversation again: everything but the last token comes from the cache */
    tl_text r3;
    CHECK_OK(turn(c, t2, 24, &r3, &st, &err), &err);
    CHECK(llt_chat_n_reused(c) == (int32_t)n2 - 1 && st.n_prompt == 1 && strcmp(r3.s, r2.s) == 0);

    /* a callback stop leaves a usable session */
    tl_text cut = {.stop_after = 2};
    llt_gen_params p;
    llt_gen_params_init(&p);
    p.temperature = 0, p.max_new_tokens = 24;
    CHECK_OK(llt_chat_turn(c, t1, strlen(t1), &p, tl_collect, &cut, &st, &err), &err);
    CHECK(st.stop == LLT_STOP_CALLBACK && cut.calls == 2 && strncmp(r1.s, cut.s, cut.n) == 0);
    CHECK(llt_chat_n_reused(c) == (int32_t)n1 - 1 || llt_chat_n_reused(c) == (int32_t)n1);

    /* reset: nothing reused; a conversation longer than the context: an error, session reset */
    llt_chat_reset(c);
    CHECK(llt_chat_n_cached(c) == 0);
    CHECK_OK(turn(c, t1, 4, &r3, &st, &err), &err);
    CHECK(llt_chat_n_reused(c) == 0 && st.n_prompt == (int32_t)n1 && strncmp(r1.s, r3.s, r3.n) == 0);
    size_t big = 9000 * 4;
    char *huge = malloc(big + 1);
    for (size_t i = 0; huge && i < big; i += 4) memcpy(huge + i, " a b", 4);
    if (huge) huge[big] = '\0';
    if (huge) CHECK_ERR(turn(c, huge, 4, &r3, &st, &err), LLT_ERR_INVALID_ARG, &err, "context");
    CHECK(llt_chat_n_cached(c) == 0);
    free(huge);
    CHECK_ERR(llt_chat_turn(c, NULL, 0, &p, NULL, NULL, NULL, &err), LLT_ERR_INVALID_ARG, &err, "NULL");
    llt_chat_free(c);
    llt_model_free(m);
}

int main(void) {
    TL_REQUIRE_PCRE2("test_chat");
    RUN(test_llama3_special_tokens);
    RUN(test_session);
    return tl_done("test_chat");
}
