/* autotune.cu: the autotune cache, Triton style. Each tunable kernel has a few compiled
 * configurations; the first time a shape is seen, every configuration is timed on the device
 * and the fastest is kept, in memory and in $XDG_CACHE_HOME/llama-triton/autotune-<device>.txt
 * (or ~/.cache/...), one "key value" line each, so the next process starts tuned.
 * A damaged or foreign line is ignored (the worst case is measuring again). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/cuda/common.cuh"

#define LLT_TUNE_VERSION "v1"

static void mkdir_p(char *path) {
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    mkdir(path, 0755);
}

static void cache_path(llt_cuda_ctx *c) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[768];
    if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/llama-triton", xdg);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.cache/llama-triton", home);
    else
        return;
    mkdir_p(dir);
    char dev[128];
    size_t j = 0;
    for (const char *s = c->name; *s && j + 1 < sizeof dev; s++)
        dev[j++] = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')
                       ? *s
                       : '_';
    dev[j] = '\0';
    snprintf(c->tune_path, sizeof c->tune_path, "%s/autotune-%s-%s.txt", dir, dev, LLT_TUNE_VERSION);
}

static void tab_set(llt_cuda_ctx *c, const char *key, int value) {
    for (int i = 0; i < c->n_tune; i++)
        if (strcmp(c->tune_tab[i].key, key) == 0) {
            c->tune_tab[i].value = value;
            return;
        }
    if (c->n_tune >= LLT_TUNE_MAX || strlen(key) >= LLT_TUNE_KEY) return;
    snprintf(c->tune_tab[c->n_tune].key, LLT_TUNE_KEY, "%s", key);
    c->tune_tab[c->n_tune++].value = value;
}

llt_status llt_tune_load(llt_cuda_ctx *c, llt_error *err) {
    cache_path(c);
    if (!c->tune_path[0]) return LLT_OK;
    FILE *f = fopen(c->tune_path, "r");
    if (!f) return LLT_OK; /* first run */
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char *sp = strrchr(line, ' ');
        if (!sp) continue;
        *sp = '\0';
        char *end = NULL;
        long v = strtol(sp + 1, &end, 10);
        if (end == sp + 1 || v < 0 || v > 1000000) continue;
        tab_set(c, line, (int)v);
    }
    fclose(f);
    LLT_DEBUG("autotune: %d entries from %s", c->n_tune, c->tune_path);
    (void)err;
    return LLT_OK;
}

bool llt_tune_get(const llt_cuda_ctx *c, const char *key, int *value) {
    for (int i = 0; i < c->n_tune; i++)
        if (strcmp(c->tune_tab[i].key, key) == 0) {
            *value = c->tune_tab[i].value;
            return true;
        }
    return false;
}

void llt_tune_put(llt_cuda_ctx *c, const char *key, int value) {
    tab_set(c, key, value);
    if (!c->tune_path[0]) return;
    FILE *f = fopen(c->tune_path, "a");
    if (!f) {
        LLT_WARN("autotune: cannot append to %s: %s", c->tune_path, strerror(errno));
        c->tune_path[0] = '\0';
        return;
    }
    fprintf(f, "%s %d\n", key, value);
    fclose(f);
}
