/* errors.h: OpenAI error bodies. srv_fail (request.h) fills an srv_error; this writes it. */
#ifndef LLT_SERVER_ERRORS_H
#define LLT_SERVER_ERRORS_H

#include "base/json.h"
#include "server/request.h"

#define SRV_INVALID "invalid_request_error"
#define SRV_AUTH "authentication_error"
#define SRV_SERVER "server_error"
#define SRV_RATE "rate_limit_error"

/* Appends a string literal (its length from the compiler, never typed by hand). */
#define SRV_LIT(b, lit) llt_sbuf_append((b), "" lit, sizeof(lit) - 1)

/* {"error": {"message": ..., "type": ..., "param": ... | null, "code": ... | null}} */
void srv_error_json(llt_sbuf *b, const srv_error *e);

#endif
