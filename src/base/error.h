/* error.h: status + message helpers used by every module.
 * llt_err_set() formats into the caller's llt_error (which may be NULL) and returns the
 * status, so error paths read `return llt_err_set(err, LLT_ERR_FORMAT, "%s: ...", path);`.
 * LLT_CHECK is an always-on invariant check (never compiled out, unlike assert). */
#ifndef LLT_BASE_ERROR_H
#define LLT_BASE_ERROR_H

#include "llama_triton.h"

#if defined(__GNUC__)
#define LLT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LLT_PRINTF(a, b)
#endif

/* Formats into err (may be NULL) and records s; use llt_err_set, which also yields s. */
void llt_err_format(llt_error *err, llt_status s, const char *fmt, ...) LLT_PRINTF(3, 4);
static inline llt_status llt_err_status_(llt_status s) { return s; }
/* A macro rather than a function returning s so that the compiler and static analysis see
 * the status it yields (`return llt_err_set(err, LLT_ERR_FORMAT, ...)` never returns LLT_OK;
 * an out-of-line variadic call hides that). s is evaluated twice: pass a plain value. */
#define llt_err_set(err, s, ...) (llt_err_format((err), (s), __VA_ARGS__), llt_err_status_(s))
/* Prefixes the message of a failure with status s with more context ("x.gguf: " + old
 * message) and returns s, also when err is NULL: `return llt_err_wrap(err, st, "...", ...);`. */
llt_status llt_err_wrap(llt_error *err, llt_status s, const char *fmt, ...) LLT_PRINTF(3, 4);
void llt_err_clear(llt_error *err);

#define LLT_CHECK(cond, err, status, ...)                           \
    do {                                                            \
        if (!(cond)) return llt_err_set((err), (status), __VA_ARGS__); \
    } while (0)

#define LLT_TRY(expr)                          \
    do {                                       \
        llt_status llt_try_s_ = (expr);        \
        if (llt_try_s_ != LLT_OK) return llt_try_s_; \
    } while (0)

#endif
