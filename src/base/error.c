#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void llt_err_format(llt_error *err, llt_status s, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = s;
    }
}

llt_status llt_err_wrap(llt_error *err, llt_status s, const char *fmt, ...) {
    if (!err) return s;
    char prefix[LLT_ERR_MSG_MAX], old[LLT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    size_t pl = strlen(prefix), ol = strlen(old);
    if (pl > sizeof err->msg - 1) pl = sizeof err->msg - 1;
    if (ol > sizeof err->msg - 1 - pl) ol = sizeof err->msg - 1 - pl;
    memcpy(err->msg, prefix, pl);
    memcpy(err->msg + pl, old, ol);
    err->msg[pl + ol] = '\0';
    err->status = s;
    return s;
}

void llt_err_clear(llt_error *err) {
    if (err) {
        err->status = LLT_OK;
        err->msg[0] = '\0';
    }
}

const char *llt_status_str(llt_status s) {
    static const char *const names[] = {
        "ok", "invalid argument", "i/o error", "format error", "unsupported",
        "out of memory", "KV pool full", "invalid state", "device error", "not found", "cancelled"};
    if ((unsigned)s < sizeof names / sizeof names[0]) return names[s];
    return "unknown status";
}
