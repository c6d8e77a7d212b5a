/* chat.c: chat requests' prompts: the messages rendered with the model's chat template
 * (src/template/, add_generation_prompt = true, the model's BOS/EOS texts), then tokenized
 * with special tokens parsed and no BOS added (completions.c): templates write their own. */
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "base/log.h"
#include "server/errors.h"
#include "server/server.h"

/* The BOS / EOS texts when the model's files do not name them: the vocabulary's pieces. */
static char *piece_or_null(const llt_tokenizer *tok, int32_t id) {
    const char *p = id >= 0 ? llt_tokenizer_piece(tok, id) : NULL;
    return p ? strdup(p) : NULL;
}

bool srv_chat_init(srv *s, llt_error *err) {
    char *src = NULL;
    llt_status st = LLT_ERR_NOT_FOUND;
    if (s->o.model_path) {
        char *from_model = NULL;
        st = llt_chat_template_from_path(s->o.model_path, &from_model, &s->bos, &s->eos, err);
        if (st == LLT_OK) src = from_model;
        else if (st != LLT_ERR_NOT_FOUND) return false;
    }
    if (s->o.chat_template) {
        free(src);
        src = NULL;
        if (llt_read_file(s->o.chat_template, &src, NULL, err) != LLT_OK) return false;
    }
    if (!s->bos) s->bos = piece_or_null(s->tok, llt_tokenizer_bos(s->tok));
    if (!s->eos) s->eos = piece_or_null(s->tok, llt_tokenizer_eos(s->tok));
    if (!src) {
        LLT_INFO("serve: the model has no chat template: /v1/chat/completions answers 400 "
                 "(start with --chat-template FILE)");
        return true;
    }
    llt_template *t = NULL;
    st = llt_template_parse(src, strlen(src), &t, err);
    if (st != LLT_OK) {
        llt_err_wrap(err, st, "chat template%s%s: ", s->o.chat_template ? " " : "",
                     s->o.chat_template ? s->o.chat_template : "");
        free(src);
        return false;
    }
    s->template_src = src;
    s->tmpl = t;
    return true;
}

void srv_chat_free(srv *s) {
    llt_template_free(s->tmpl);
    free(s->template_src), free(s->bos), free(s->eos);
    s->tmpl = NULL, s->template_src = s->bos = s->eos = NULL;
}

bool srv_chat_prompt(srv *s, const srv_params *p, char **text, size_t *len, srv_error *e) {
    if (!s->tmpl)
        return srv_fail(e, 400, SRV_INVALID, "no_chat_template", "messages",
                        "this model has no chat template; the server was started without "
                        "--chat-template FILE (use /v1/completions, or restart with one)");
    llt_chat_opts o = {true, s->bos, s->eos, NULL, NULL};
    llt_error err = {0};
    if (llt_template_render(s->tmpl, p->messages_json, p->messages_len, &o, text, len, &err) != LLT_OK)
        return srv_fail(e, 400, SRV_INVALID, "invalid_messages", "messages",
                        "the chat template refused the messages: %s", err.msg);
    return true;
}
