/* chat_cli.c: what `chat` and `run --chat` share: the model's (or --chat-template's) template,
 * the conversation as OpenAI-style messages, one llt_chat session whose KV cache carries the
 * conversation from turn to turn. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/file.h"
#include "chat_cli.h"

/* BOS/EOS texts for the template: the model's own when it names them, else the vocabulary's. */
static char *piece_dup(const llt_tokenizer *tok, int32_t id) {
    const char *p = id >= 0 ? llt_tokenizer_piece(tok, id) : NULL;
    return p ? strdup(p) : NULL;
}

static int load_template(cli_chat *c, const char *model_path, const char *template_file, llt_error *err) {
    char *src = NULL;
    if (template_file) {
        if (llt_read_file(template_file, &src, NULL, err) != LLT_OK) return cli_runtime_error(err);
    } else if (llt_chat_template_from_path(model_path, &src, &c->bos, &c->eos, err) != LLT_OK) {
        if (err->status == LLT_ERR_NOT_FOUND)
            fprintf(stderr, "llama-triton: %s has no chat template (tokenizer_config.json \"chat_template\", "
                            "chat_template.jinja or the GGUF key tokenizer.chat_template); give one with "
                            "--chat-template FILE.jinja\n", model_path);
        else cli_runtime_error(err);
        return 1;
    }
    const llt_tokenizer *tok = llt_model_tokenizer(c->m);
    if (!c->bos) c->bos = piece_dup(tok, llt_tokenizer_bos(tok));
    if (!c->eos) c->eos = piece_dup(tok, llt_tokenizer_eos(tok));
    llt_status s = llt_template_parse(src, strlen(src), &c->tmpl, err);
    free(src);
    if (s != LLT_OK) {
        fprintf(stderr, "llama-triton: chat template%s%s: ", template_file ? " " : "", template_file ? template_file : "");
        return cli_runtime_error(err);
    }
    return -1;
}

int cli_chat_open(cli_chat *c, llt_model *m, const char *model_path, const char *template_file, const char *system) {
    memset(c, 0, sizeof *c);
    c->m = m, c->system = system;
    llt_error err = {0};
    int rc = load_template(c, model_path, template_file, &err);
    if (rc >= 0) return rc;
    if (llt_chat_create(m, &c->chat, &err) != LLT_OK) return cli_runtime_error(&err);
    cli_chat_reset(c);
    return -1;
}

static void add_message(cli_chat *c, const char *role, const char *content, size_t len) {
    llt_sbuf_printf(&c->msgs, "%s{\"role\": \"%s\", \"content\": ", c->msgs.len > 1 ? ", " : "", role);
    llt_sbuf_json_string(&c->msgs, content, len);
    llt_sbuf_append(&c->msgs, "}", 1);
}

void cli_chat_reset(cli_chat *c) {
    c->msgs.len = 0;
    llt_sbuf_append(&c->msgs, "[", 1);
    if (c->system) add_message(c, "system", c->system, strlen(c->system));
    llt_chat_reset(c->chat);
}

static llt_status render(cli_chat *c, char **text, size_t *len, llt_error *err) {
    llt_sbuf_append(&c->msgs, "]", 1);
    llt_chat_opts o = {.add_generation_prompt = true, .bos_token = c->bos, .eos_token = c->eos, .date = c->date};
    llt_status s = llt_template_render(c->tmpl, c->msgs.data, c->msgs.len, &o, text, len, err);
    c->msgs.len--; /* the array stays open for the next message */
    return s;
}

typedef struct reply_sink {
    llt_sbuf text;
    llt_token_cb cb;
    void *user;
} reply_sink;

static int collect(int32_t index, const char *piece, size_t len, int32_t token, void *user) {
    reply_sink *r = user;
    llt_sbuf_append(&r->text, piece, len);
    return r->cb ? r->cb(index, piece, len, token, r->user) : 0;
}

llt_status cli_chat_say(cli_chat *c, const char *user_text, const llt_gen_params *p, llt_token_cb cb, void *user,
                        llt_gen_stats *st, llt_error *err) {
    size_t mark = c->msgs.len;
    add_message(c, "user", user_text, strlen(user_text));
    char *text = NULL;
    size_t len = 0;
    llt_status s = render(c, &text, &len, err);
    reply_sink r = {{0}, cb, user};
    if (s == LLT_OK) s = llt_chat_turn(c->chat, text, len, p, collect, &r, st, err);
    free(text);
    if (s == LLT_OK && (c->msgs.oom || r.text.oom)) s = llt_err_set(err, LLT_ERR_NOMEM, "chat: out of memory");
    if (s == LLT_OK) add_message(c, "assistant", r.text.data ? r.text.data : "", r.text.len);
    else c->msgs.len = mark; /* the failed turn is not part of the conversation */
    llt_sbuf_free(&r.text);
    return s;
}

void cli_chat_close(cli_chat *c) {
    llt_chat_free(c->chat);
    llt_template_free(c->tmpl);
    llt_sbuf_free(&c->msgs);
    free(c->bos);
    free(c->eos);
    memset(c, 0, sizeof *c);
}
