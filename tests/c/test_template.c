/* test_template.c: the chat-template engine through the public API. The expected texts were
 * rendered by Jinja2 3.1 configured as transformers configures it (the same reference that
 * tests/python/test_templates.py runs live against all 24 fixture templates); here: the API
 * contract, Python value semantics, errors with line:column, limits for hostile templates,
 * templates found in model paths, and one template rendered from several threads at once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static char *render(const char *src, const char *msgs, const llt_chat_opts *o, llt_status *st, llt_error *err) {
    llt_template *t = NULL;
    char *out = NULL;
    size_t len = 0;
    *st = llt_template_parse(src, strlen(src), &t, err);
    if (*st == LLT_OK) *st = llt_template_render(t, msgs, strlen(msgs), o, &out, &len, err);
    if (out) CHECK(strlen(out) == len);
    llt_template_free(t);
    return out;
}

static void check_render(const char *src, const char *msgs, const llt_chat_opts *o, const char *want) {
    llt_error err = {0};
    llt_status st;
    char *out = render(src, msgs, o, &st, &err);
    CHECK_MSG(st == LLT_OK, "%s", err.msg);
    CHECK_MSG(out && strcmp(out, want) == 0, "got [%s]\nwant [%s]", out ? out : "(null)", want);
    free(out);
}

static void check_fails(const char *src, const char *msgs, llt_status want, const char *needle) {
    llt_error err = {0};
    llt_status st;
    char *out = render(src, msgs, NULL, &st, &err);
    CHECK(out == NULL);
    CHECK_ERR(st, want, &err, needle);
    free(out);
}

static const char *k_llama32_path = "../shared/fixtures/chat_templates/meta-llama-Llama-3.2-3B-Instruct.jinja";

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        char alt[512]; /* a worktree sits one level deeper than a plain checkout */
        snprintf(alt, sizeof alt, "../%s", path);
        f = fopen(alt, "rb");
    }
    if (!f) return NULL;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf) buf[n] = 0;
    return buf;
}

static void test_llama32(void) {
    char *src = read_all(k_llama32_path);
    CHECK_MSG(src != NULL, "cannot read %s", k_llama32_path);
    if (!src) return;
    llt_chat_opts o = {.add_generation_prompt = true, .bos_token = "<|begin_of_text|>", .eos_token = "<|eot_id|>",
                       .date = "2026-12-03"};
    check_render(src, "[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"台灣的首都是？\"}]", &o,
                 "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                 "Today Date: 03 Dec 2026\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                 "台灣的首都是？<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    free(src);
}

static void test_semantics(void) {
    check_render("{%- for m in messages %}{{ loop.index }}:{{ m.role|upper }}={{ m.content|trim|tojson }}"
                 "{% if not loop.last %}, {% endif %}{% endfor %}|{{ [1, 2.5, none, true, 'x', {'k': (1,)}] }}|"
                 "{{ '%s' ~ 3 ~ none }}|{{ 'a,b,,c'.split(',') }}|{{ {'b': 1, 'a': [1e20, 0.1, -0.0]}|tojson(indent=2) }}",
                 "[{\"role\":\"user\",\"content\":\"  h\\u00e9llo \\\"x\\\" \"},{\"role\":\"assistant\",\"content\":\"\\u3000ok\\n\"}]",
                 NULL,
                 "1:USER=\"héllo \\\"x\\\"\", 2:ASSISTANT=\"ok\"|[1, 2.5, None, True, 'x', {'k': (1,)}]|%s3None|"
                 "['a', 'b', '', 'c']|{\n  \"b\": 1,\n  \"a\": [\n    1e+20,\n    0.1,\n    -0.0\n  ]\n}");
    /* whitespace control: trim_blocks + lstrip_blocks, '-' and '+' */
    check_render("a\n  {% if true %}\n  b\n  {% endif %}\nc {{- ' d ' -}} e\n{%+ if true %}f{% endif %}", "[]", NULL,
                 "a\n  b\nc d e\nf");
    /* scoping: loop bodies do not leak, namespaces do */
    check_render("{% set x = 1 %}{% set ns = namespace(n=0) %}{% for i in [1, 2] %}{{ x }}{% set x = i * 10 %}{{ x }}"
                 "{% set ns.n = ns.n + i %}{% endfor %}{{ x }}/{{ ns.n }}",
                 "[]", NULL, "1101201/3");
    check_render("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 'ab' * 3 }} {{ [1, 2][-1] }}"
                 " {{ 'héllo'[1:4] }} {{ 'abc'[::-1] }} {{ 1 < 2 < 3 }} {{ 'b' in 'abc' }} {{ none is none }}",
                 "[]", NULL, "3 -4 2 3.5 1024 ababab 2 éll cba True True True");
    llt_chat_opts tools = {.tools_json = "[{\"name\":\"f\",\"x\":1.5}]"};
    check_render("{{ tools|tojson }}{{ bos_token }}{% if add_generation_prompt %}G{% endif %}", "[]", &tools,
                 "[{\"name\": \"f\", \"x\": 1.5}]");
    check_render("{{ tools is defined }}", "[]", NULL, "False");
}

static void test_errors(void) {
    check_fails("{{ raise_exception('no system role') }}", "[]", LLT_ERR_INVALID_ARG, "1:4: no system role");
    check_fails("ok\n{{ x.y }}", "[]", LLT_ERR_INVALID_ARG, "2:6: UndefinedError: 'x' is undefined");
    check_fails("{% include 'x' %}", "[]", LLT_ERR_UNSUPPORTED, "unsupported statement '{% include %}'");
    /* a name Jinja does not know: its compiler refuses it, unless inside an if (then when called) */
    check_fails("{{ 1 | nosuchfilter }}",
                "[]", LLT_ERR_FORMAT, "1:8: TemplateAssertionError: No filter named 'nosuchfilter'.");
    check_fails("{% for m in [] %}{{ m is nosuchtest }}{% endfor %}",
                "[]", LLT_ERR_FORMAT, "No test named 'nosuchtest'.");
    check_fails("{% if true %}{{ 1 | nosuchfilter }}{% endif %}", "[]", LLT_ERR_INVALID_ARG,
                "TemplateRuntimeError: No filter named 'nosuchfilter' found.");
    check_render("{% if false %}{{ 1 | nosuchfilter }}{% endif %}ok", "[]", NULL, "ok");
    /* a Jinja filter we do not implement */
    check_fails("{{ 'a' | wordwrap }}", "[]", LLT_ERR_UNSUPPORTED, "unsupported filter 'wordwrap'");
    check_fails("{% for %}", "[]", LLT_ERR_FORMAT, "1:8: syntax error");
    check_fails("{{ 'unterminated }}", "[]", LLT_ERR_FORMAT, "unterminated string");
    check_fails("{{ x }}", "{\"not\": \"a list\"}", LLT_ERR_INVALID_ARG, "messages must be a JSON array");
    check_fails("{{ x }}", "[1,", LLT_ERR_FORMAT, "messages");
    check_fails("{% for i in range(10**7) %}{% endfor %}", "[]", LLT_ERR_INVALID_ARG, "range() of more than");
    check_fails("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "[]", LLT_ERR_INVALID_ARG, "nested deeper");
    check_fails("{{ messages.append(1) }}", "[]", LLT_ERR_INVALID_ARG, "SecurityError: access to attribute 'append'");
    check_fails("{{ tools | map(attribute='a') | tojson }}", "[]", LLT_ERR_INVALID_ARG, "generator is not JSON serializable");
    char deep[2000] = "{{ ";
    for (int i = 0; i < 500; i++) strcat(deep, "(");
    strcat(deep, "1");
    for (int i = 0; i < 500; i++) strcat(deep, ")");
    strcat(deep, " }}");
    check_fails(deep, "[]", LLT_ERR_FORMAT, "nested too deeply");
    llt_error err = {0};
    llt_template *t = NULL;
    CHECK_ERR(llt_template_parse("\xff", 1, &t, &err), LLT_ERR_FORMAT, &err, "invalid UTF-8");
    CHECK_ERR(llt_template_parse(NULL, 3, &t, &err), LLT_ERR_INVALID_ARG, &err, "NULL");
    llt_template_free(NULL);
    llt_chat_opts bad = {.date = "2026-13-01"};
    llt_status st;
    char *out = render("x", "[]", &bad, &st, &err);
    CHECK(out == NULL);
    CHECK_ERR(st, LLT_ERR_INVALID_ARG, &err, "YYYY-MM-DD");
}

static void test_from_path(void) {
    char *src = NULL, *bos = NULL, *eos = NULL;
    llt_error err = {0};
    /* stories260K.gguf carries no chat template */
    CHECK_ERR(llt_chat_template_from_path(tl_fixture("models/stories260K/stories260K.gguf"), &src, &bos, &eos, &err),
              LLT_ERR_NOT_FOUND, &err, "--chat-template FILE");
    CHECK(src == NULL && bos == NULL && eos == NULL);
    CHECK_ERR(llt_chat_template_from_path("/nonexistent/model", &src, &bos, &eos, &err), LLT_ERR_IO, &err, "cannot open");
    const char *cfg = tl_tmp_path("tokenizer_config.json");
    FILE *f = fopen(cfg, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"chat_template\": \"{{ bos_token }}hi\", \"bos_token\": \"<s>\", \"eos_token\": {\"content\": \"</s>\"}}", f);
    fclose(f);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", cfg);
    *strrchr(dir, '/') = 0;
    CHECK_OK(llt_chat_template_from_path(dir, &src, &bos, &eos, &err), &err);
    CHECK(src && strcmp(src, "{{ bos_token }}hi") == 0);
    CHECK(bos && strcmp(bos, "<s>") == 0);
    CHECK(eos && strcmp(eos, "</s>") == 0);
    free(src);
    free(bos);
    free(eos);
}

typedef struct job { const llt_template *t; int ok; } job;
static void *render_many(void *arg) {
    job *j = arg;
    for (int i = 0; i < 200; i++) {
        char *out = NULL;
        size_t len = 0;
        llt_chat_opts o = {.date = "2026-01-02"};
        if (llt_template_render(j->t, "[{\"role\":\"user\",\"content\":\"x\"}]", 31, &o, &out, &len, NULL) == LLT_OK &&
            strcmp(out, "user:x 2026-01-02") == 0)
            j->ok++;
        free(out);
    }
    return NULL;
}

static void test_threads(void) {
    llt_template *t = NULL;
    const char *src = "{% for m in messages %}{{ m.role }}:{{ m.content }}{% endfor %} {{ strftime_now('%Y-%m-%d') }}";
    CHECK_OK(llt_template_parse(src, strlen(src), &t, NULL), (llt_error *)NULL);
    job jobs[4] = {{t, 0}, {t, 0}, {t, 0}, {t, 0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, render_many, &jobs[i]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) CHECK(jobs[i].ok == 200);
    llt_template_free(t);
}

int main(void) {
    RUN(test_llama32);
    RUN(test_semantics);
    RUN(test_errors);
    RUN(test_from_path);
    RUN(test_threads);
    return tl_done("test_template");
}
