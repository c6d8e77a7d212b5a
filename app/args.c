#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli.h"

bool cli_flag_is(const char *arg, const char *name, const char *alt) {
    return strcmp(arg, name) == 0 || (alt && strcmp(arg, alt) == 0);
}

int cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("llama-triton: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    return 2;
}

int cli_runtime_error(const llt_error *err) {
    fprintf(stderr, "llama-triton: error: %s\n", err->msg[0] ? err->msg : llt_status_str(err->status));
    return 1;
}

bool cli_take(int argc, char **argv, int *i, const char **out) {
    if (*i + 1 >= argc) {
        cli_usage_error("%s needs a value", argv[*i]);
        return false;
    }
    *out = argv[++*i];
    return true;
}

bool cli_take_int(int argc, char **argv, int *i, int64_t lo, int64_t hi, int64_t *out) {
    const char *flag = argv[*i], *v;
    if (!cli_take(argc, argv, i, &v)) return false;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        cli_usage_error("%s expects an integer in [%lld, %lld], got '%s'", flag, (long long)lo,
                        (long long)hi, v);
        return false;
    }
    *out = x;
    return true;
}

bool cli_take_float(int argc, char **argv, int *i, double lo, double hi, double *out) {
    const char *flag = argv[*i], *v;
    if (!cli_take(argc, argv, i, &v)) return false;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi) {
        cli_usage_error("%s expects a number in [%g, %g], got '%s'", flag, lo, hi, v);
        return false;
    }
    *out = x;
    return true;
}

bool cli_take_kv_dtype(int argc, char **argv, int *i, llt_dtype *out) {
    const char *flag = argv[*i], *v;
    if (!cli_take(argc, argv, i, &v)) return false;
    llt_dtype t;
    if (!llt_dtype_from_name(v, &t) ||
        (t != LLT_DTYPE_F16 && t != LLT_DTYPE_BF16 && t != LLT_DTYPE_F32 && t != LLT_DTYPE_F8_E4M3)) {
        cli_usage_error("%s expects f16, bf16, f32 or f8, got '%s'", flag, v);
        return false;
    }
    *out = t;
    return true;
}

bool cli_parse_ids(const char *s, int32_t **ids, size_t *n) {
    size_t cap = 16, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    const char *p = s;
    if (!v) return cli_usage_error("out of memory"), false;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 0 || x > INT32_MAX || (*end && (*end != ',' || !end[1]))) {
            cli_usage_error("bad token id list '%s' (expected e.g. 1,2,3)", s);
            free(v);
            return false;
        }
        if (k == cap && !llt_resize(&v, (cap *= 2) * sizeof *v)) {
            free(v);
            cli_usage_error("out of memory for the token id list");
            return false;
        }
        v[k++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (k == 0) {
        free(v);
        cli_usage_error("empty token id list");
        return false;
    }
    *ids = v;
    *n = k;
    return true;
}
