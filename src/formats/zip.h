/* zip.h: the ZIP container as torch.save uses it: stored (uncompressed) entries only, ZIP64
 * for large archives. The reader works on bytes already mapped (zero copy: an entry's data
 * points into the mapping); every count, length and offset is checked against the bytes that
 * remain. The writer streams entries to a file with each entry's data aligned (torch aligns
 * to 64 bytes so that storages can be mapped in place). */
#ifndef LLT_FORMATS_ZIP_H
#define LLT_FORMATS_ZIP_H

#include <stdio.h>

#include "base/error.h"

typedef struct llt_zip_entry {
    char *name;          /* owned, NUL-terminated */
    const uint8_t *data; /* into the caller's bytes */
    uint64_t size;
} llt_zip_entry;

typedef struct llt_zip {
    llt_zip_entry *e;
    size_t n;
} llt_zip;

/* Reads the central directory of data[0..size). `what` names the file in messages.
 * A compressed or encrypted entry is an error naming it. */
llt_status llt_zip_open(const uint8_t *data, size_t size, const char *what, llt_zip *z,
                        llt_error *err);
void llt_zip_close(llt_zip *z);
const llt_zip_entry *llt_zip_find(const llt_zip *z, const char *name);

typedef struct llt_zip_cd_rec {
    char *name;
    uint32_t crc;
    uint64_t size, offset;
} llt_zip_cd_rec;

/* CRC-32 (IEEE 802.3, as ZIP uses), 8 bytes per step ("slicing by 8"). */
typedef struct llt_crc32_tables {
    uint32_t t[8][256];
} llt_crc32_tables;
void llt_crc32_init(llt_crc32_tables *t);
/* Continues crc (0 to start) over data[0..n). */
uint32_t llt_crc32(const llt_crc32_tables *t, uint32_t crc, const void *data, size_t n);

typedef struct llt_zip_writer {
    FILE *f;
    char *path, *tmp;
    uint64_t off;          /* bytes written so far */
    llt_zip_cd_rec *rec;
    size_t n, cap;
    bool force_zip64;      /* tests: write ZIP64 records even for small archives */
    llt_crc32_tables crc;
} llt_zip_writer;

/* Writes to path.tmp; finish() adds the central directory and renames it to path. */
llt_status llt_zip_writer_open(llt_zip_writer *w, const char *path, llt_error *err);
/* Adds a stored entry whose data starts at a multiple of `align` (a power of two <= 4096). */
llt_status llt_zip_writer_add(llt_zip_writer *w, const char *name, const void *data,
                              uint64_t size, uint32_t align, llt_error *err);
llt_status llt_zip_writer_finish(llt_zip_writer *w, llt_error *err);
/* Discards an unfinished archive (safe after finish: then a no-op). */
void llt_zip_writer_abort(llt_zip_writer *w);

#endif
