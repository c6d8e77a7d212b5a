#include "testlib.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tl_failures = 0;
int tl_checks = 0;

void tl_check_err(llt_status got, llt_status want, const llt_error *err, const char *needle,
                  const char *expr, const char *file, int line) {
    tl_checks++;
    const char *msg = err ? err->msg : "";
    if (got != want || (needle && !strstr(msg, needle))) {
        tl_failures++;
        fprintf(stderr, "%s:%d: %s: want %s containing \"%s\", got %s: \"%s\"\n", file, line, expr,
                llt_status_str(want), needle ? needle : "", llt_status_str(got), msg);
    }
}

int tl_skip(const char *name, const char *why) {
    printf("SKIPPED: %s: %s\n", name, why);
    fprintf(stderr, "SKIPPED: %s: %s\n", name, why);
    return 77;
}

int tl_done(const char *name) {
    fprintf(stderr, "%s: %d checks, %d failed\n", name, tl_checks, tl_failures);
    return tl_failures ? 1 : 0;
}

const char *tl_fixture(const char *rel) {
    static char bufs[8][1024];
    static int slot;
    char *b = bufs[slot++ % 8];
    const char *root = getenv("LLT_FIXTURES");
    snprintf(b, 1024, "%s/%s", root && *root ? root : "tests/fixtures", rel);
    return b;
}

const char *tl_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/llt-test-%d", t && *t ? t : "/tmp", (int)getpid());
        mkdir(dir, 0700);
    }
    return dir;
}

const char *tl_tmp_path(const char *rel) {
    static char bufs[8][1024];
    static int slot;
    char *b = bufs[slot++ % 8];
    snprintf(b, 1024, "%s/%s", tl_tmpdir(), rel);
    return b;
}

char *tl_expected_greedy(size_t *n) {
    char *t = tl_read(tl_fixture("models/stories260K/expected_greedy_200.txt"), n);
    if (t && *n && t[*n - 1] == '\n') t[--*n] = '\0';
    return t;
}

const char *tl_write_tmp(const char *name, const void *data, size_t n) {
    static char bufs[8][512];
    static int slot;
    char *p = bufs[slot++ % 8];
    snprintf(p, 512, "%s/%s", tl_tmpdir(), name);
    FILE *f = fopen(p, "wb");
    if (!f) return p;
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return p;
}

char *tl_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    size_t got = b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    if (!b) return NULL;
    b[got] = '\0';
    if (n) *n = got;
    return b;
}

int tl_collect(int32_t index, const char *piece, size_t len, int32_t token, void *user) {
    tl_text *b = user;
    (void)index, (void)token;
    if (b->n + len < sizeof b->s) memcpy(b->s + b->n, piece, len), b->n += len;
    b->s[b->n] = '\0';
    return b->stop_after && ++b->calls >= b->stop_after;
}

llt_model *tl_load_stories(int32_t page_size, int32_t max_pages, int32_t max_seqs, llt_dtype dt) {
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.page_size = page_size, o.max_pages = max_pages, o.max_seqs = max_seqs, o.dtype = dt;
    o.device = "cpu"; /* the reference backend: auto would pick a GPU where there is one */
    llt_model *m = NULL;
    llt_error err = {0};
    CHECK_OK(llt_model_load(tl_fixture("models/stories260K/stories260K.gguf"), &o, &m, &err), &err);
    return m;
}

int32_t tl_argmax(const float *x, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

double tl_rel_err(const float *a, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (!(d <= md)) md = d; /* NaN propagates as a failure */
        if (fabs((double)ref[i]) > mr) mr = fabs((double)ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

static void tl_log_keep(llt_log_level level, const char *msg, void *user) {
    (void)level;
    tl_log *log = user;
    size_t used = strlen(log->text);
    snprintf(log->text + used, sizeof log->text - used, "%s\n", msg);
    log->lines++;
}

void tl_log_begin(tl_log *log, llt_log_level min) {
    memset(log, 0, sizeof *log);
    llt_log_set(tl_log_keep, log, min);
}

void tl_log_end(void) { llt_log_set(NULL, NULL, LLT_LOG_INFO); }
