/* errors.c: OpenAI-shaped errors: {"error": {"message", "type", "param", "code"}}. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "server/request.h"
#include "server/errors.h"

bool srv_fail(srv_error *e, int http, const char *type, const char *code, const char *param,
              const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->http = http;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    return false;
}

void srv_error_json(llt_sbuf *b, const srv_error *e) {
    SRV_LIT(b, "{\"error\": {\"message\": ");
    llt_sbuf_json_string(b, e->message, strlen(e->message));
    llt_sbuf_printf(b, ", \"type\": \"%s\", \"param\": ", e->type);
    if (e->param[0]) llt_sbuf_json_string(b, e->param, strlen(e->param));
    else SRV_LIT(b, "null");
    if (e->code) llt_sbuf_printf(b, ", \"code\": \"%s\"}}", e->code);
    else SRV_LIT(b, ", \"code\": null}}");
}
