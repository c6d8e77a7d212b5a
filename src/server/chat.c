/* chat.c: chat requests' prompts: the messages rendered with the model's chat template
 * (add_generation_prompt = true), tokenized with special tokens parsed (completions.c). */
#include "server/errors.h"
#include "server/server.h"

bool srv_chat_init(srv *s, llt_error *err) {
    (void)err;
    s->tmpl = NULL; /* the template module (llt_template_*) is not in the library yet */
    return true;
}

void srv_chat_free(srv *s) { (void)s; }

bool srv_chat_prompt(srv *s, const srv_params *p, char **text, size_t *len, srv_error *e) {
    (void)s, (void)p, (void)text, (void)len;
    return srv_fail(e, 501, SRV_SERVER, "not_implemented", "messages",
                    "chat completions need the chat template module, which this build lacks; "
                    "use /v1/completions");
}
