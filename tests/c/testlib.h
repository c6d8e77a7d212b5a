/* testlib.h: a tiny test harness. Each test program runs its cases, counts failures and
 * exits non-zero when any check failed (a test that cannot fail is not a test). */
#ifndef LLT_TESTLIB_H
#define LLT_TESTLIB_H

#include <math.h>
#include <stdio.h>

#include "llama_triton.h"

extern int tl_failures;
extern int tl_checks;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        tl_checks++;                                                                   \
        if (!(cond)) {                                                                 \
            tl_failures++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define CHECK_MSG(cond, ...)                                                           \
    do {                                                                               \
        tl_checks++;                                                                   \
        if (!(cond)) {                                                                 \
            tl_failures++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
        }                                                                              \
    } while (0)

/* Checks a status; prints the error message on failure. */
#define CHECK_OK(expr, errp)                                                           \
    do {                                                                               \
        llt_status tl_s_ = (expr);                                                     \
        tl_checks++;                                                                   \
        if (tl_s_ != LLT_OK) {                                                         \
            tl_failures++;                                                             \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr,        \
                    llt_status_str(tl_s_), tl_msg(errp));                 \
        }                                                                              \
    } while (0)

static inline const char *tl_msg(const llt_error *e) { return e ? e->msg : ""; }

/* Checks that expr fails with status st and that the message contains `needle`. */
#define CHECK_ERR(expr, st, errp, needle) tl_check_err((expr), (st), (errp), (needle), #expr, __FILE__, __LINE__)
void tl_check_err(llt_status got, llt_status want, const llt_error *err, const char *needle,
                  const char *expr, const char *file, int line);

#define RUN(fn)                                                                        \
    do {                                                                               \
        int tl_before_ = tl_failures;                                                  \
        fn();                                                                          \
        fprintf(stderr, "%s %s\n", tl_failures == tl_before_ ? "  ok  " : "  FAIL", #fn); \
    } while (0)

/* Prints "SKIPPED: why" and returns 77, which ctest reports as a skip (never a silent pass). */
int tl_skip(const char *name, const char *why);

/* Byte-level BPE needs PCRE2's Unicode regexes; a build without it skips the tests that load
 * such tokenizers (the Makefile installs libpcre2-dev, so `make test` always has it). */
#ifdef LLT_HAVE_PCRE2
#define TL_REQUIRE_PCRE2(name) ((void)0)
#else
#define TL_REQUIRE_PCRE2(name) return tl_skip((name), "built without PCRE2 (byte-level BPE tokenizers unavailable)")
#endif

/* Prints a summary; returns the process exit code. */
int tl_done(const char *name);

/* Path of a fixture under $LLT_FIXTURES (default tests/fixtures). Static buffer per call slot. */
const char *tl_fixture(const char *rel);
/* A fresh temporary directory (removed by the OS tmp cleaner; names include the pid). */
const char *tl_tmpdir(void);
/* Path of rel inside the temp dir (static buffer per call slot, 8 slots). */
const char *tl_tmp_path(const char *rel);
/* stories260K's expected greedy text (llama2.c's output), without a trailing newline;
 * malloc'd, NULL when missing. */
char *tl_expected_greedy(size_t *n);
/* Writes bytes to a file in the temp dir; returns its path. */
const char *tl_write_tmp(const char *name, const void *data, size_t n);
/* Reads a whole file (malloc'd, NUL-terminated); NULL when missing. */
char *tl_read(const char *path, size_t *n);

/* Collects streamed text (an llt_token_cb): appends each piece, keeps s NUL-terminated, and asks
 * to stop after stop_after pieces when that is non-zero. */
typedef struct tl_text {
    char s[8192];
    size_t n;
    int calls, stop_after;
} tl_text;
int tl_collect(int32_t index, const char *piece, size_t len, int32_t token, void *user);

/* stories260K.gguf loaded on the CPU with these KV options (0 = defaults; dtype LLT_DTYPE_COUNT
 * = the file's); a failed load is a failed check and returns NULL. */
llt_model *tl_load_stories(int32_t page_size, int32_t max_pages, int32_t max_seqs, llt_dtype dt);

/* Index of the largest of x[0..n) (the first on ties): the reference's top-1 token. */
int32_t tl_argmax(const float *x, int32_t n);

/* Library log lines of `min` level and above, kept (newline-separated) while capturing:
 * tl_log_begin(&log, LLT_LOG_WARN); ...; tl_log_end(); then strstr(log.text, ...). */
typedef struct tl_log {
    char text[8192];
    int lines;
} tl_log;
void tl_log_begin(tl_log *log, llt_log_level min);
void tl_log_end(void);

/* max |a-b| / max |ref| */
double tl_rel_err(const float *a, const float *ref, size_t n);

#endif
