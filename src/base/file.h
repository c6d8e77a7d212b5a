/* file.h: read-only memory-mapped files and a bounds-checked cursor over bytes.
 * Every parser reads through llt_cursor so that no length, count or offset is used before it
 * is checked against the bytes that remain. */
#ifndef LLT_BASE_FILE_H
#define LLT_BASE_FILE_H

#include "base/error.h"

typedef struct llt_mmap {
    const uint8_t *data;
    size_t size;
    char *path;   /* owned copy, for error messages */
} llt_mmap;

llt_status llt_mmap_open(const char *path, llt_mmap *m, llt_error *err);
void llt_mmap_close(llt_mmap *m);

/* Whole file into a malloc'd buffer (small text files: JSON, tokenizer files). */
llt_status llt_read_file(const char *path, char **out, size_t *size, llt_error *err);
/* Writes atomically: to path.tmp, then rename. */
llt_status llt_write_file(const char *path, const void *data, size_t size, llt_error *err);

bool llt_path_is_dir(const char *path);
bool llt_path_exists(const char *path);
/* modification time in seconds (0 when absent) */
double llt_path_mtime(const char *path);
/* dst = dir + "/" + name; false if it does not fit */
bool llt_path_join(char *dst, size_t cap, const char *dir, const char *name);

typedef struct llt_cursor {
    const uint8_t *p;    /* start of the buffer */
    size_t size;
    size_t pos;
    const char *what;    /* file name for messages */
} llt_cursor;

static inline size_t llt_cursor_left(const llt_cursor *c) { return c->size - c->pos; }
llt_status llt_cursor_bytes(llt_cursor *c, size_t n, const uint8_t **out, const char *field, llt_error *err);
llt_status llt_cursor_u8(llt_cursor *c, uint8_t *v, const char *field, llt_error *err);
llt_status llt_cursor_u16(llt_cursor *c, uint16_t *v, const char *field, llt_error *err);
llt_status llt_cursor_u32(llt_cursor *c, uint32_t *v, const char *field, llt_error *err);
llt_status llt_cursor_u64(llt_cursor *c, uint64_t *v, const char *field, llt_error *err);

#endif
