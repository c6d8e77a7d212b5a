#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

llt_status llt_mmap_open(const char *path, llt_mmap *m, llt_error *err) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return llt_err_set(err, LLT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return llt_err_set(err, LLT_ERR_IO, "%s: not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return llt_err_set(err, LLT_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
        m->data = p;
    }
    close(fd);
    m->path = strdup(path);
    if (!m->path) {
        llt_mmap_close(m);
        return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", path);
    }
    return LLT_OK;
}

void llt_mmap_close(llt_mmap *m) {
    if (!m) return;
    if (m->data && m->size) munmap((void *)m->data, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

llt_status llt_read_file(const char *path, char **out, size_t *size, llt_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return llt_err_set(err, LLT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", path);
    if (bad) {
        free(buf);
        return llt_err_set(err, LLT_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (size) *size = n;
    return LLT_OK;
}

llt_status llt_write_file(const char *path, const void *data, size_t size, llt_error *err) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        llt_status s = llt_err_set(err, LLT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    int bad = (w != size) | (fclose(f) != 0);
    if (bad || rename(tmp, path) != 0) {
        llt_status s = llt_err_set(err, LLT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return LLT_OK;
}

bool llt_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool llt_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

double llt_path_mtime(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0.0;
    return (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec * 1e-9;
}

bool llt_path_join(char *dst, size_t cap, const char *dir, const char *name) {
    int n = snprintf(dst, cap, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < cap;
}

llt_status llt_cursor_bytes(llt_cursor *c, size_t n, const uint8_t **out, const char *field, llt_error *err) {
    if (n > llt_cursor_left(c))
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: %s needs %zu bytes at offset %zu but only %zu remain", c->what,
                           field, n, c->pos, llt_cursor_left(c));
    *out = c->p + c->pos;
    c->pos += n;
    return LLT_OK;
}

/* Files are little-endian; so are all hosts we build for (x86-64, aarch64). */
#define CURSOR_READ(type, name)                                                                  \
    llt_status name(llt_cursor *c, type *v, const char *field, llt_error *err) {                 \
        const uint8_t *b;                                                                        \
        LLT_TRY(llt_cursor_bytes(c, sizeof *v, &b, field, err));                                 \
        memcpy(v, b, sizeof *v);                                                                 \
        return LLT_OK;                                                                           \
    }
CURSOR_READ(uint8_t, llt_cursor_u8)
CURSOR_READ(uint16_t, llt_cursor_u16)
CURSOR_READ(uint32_t, llt_cursor_u32)
CURSOR_READ(uint64_t, llt_cursor_u64)
