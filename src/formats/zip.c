/* zip.c: reader of the ZIP central directory (stored entries, ZIP64) over mapped bytes.
 * Layout (PKWARE APPNOTE): local headers + data ..., central directory, [ZIP64 end record,
 * ZIP64 locator], end of central directory (EOCD, 22 bytes + comment). The central directory
 * is authoritative for sizes: torch writes local headers with zero sizes and a data
 * descriptor, so local headers are only used to find where the data starts. */
#include "formats/zip.h"

#include <stdlib.h>
#include <string.h>

#include "base/file.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define EOCD_SIZE 22
#define CDH_SIZE 46
#define LFH_SIZE 30

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

typedef struct zip_dir {
    uint64_t n, cd_off, cd_size;
    uint64_t end; /* where the central directory must end (start of the end records) */
} zip_dir;

/* The EOCD is the last record; it may be followed by a comment of up to 65535 bytes. */
static llt_status find_eocd(const uint8_t *d, size_t size, const char *what, size_t *pos,
                            llt_error *err) {
    if (size < EOCD_SIZE)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: %zu bytes is too short for a ZIP archive", what,
                           size);
    size_t lo = size - EOCD_SIZE > 65535 ? size - EOCD_SIZE - 65535 : 0;
    for (size_t p = size - EOCD_SIZE + 1; p-- > lo;)
        if (rd32(d + p) == SIG_EOCD && p + EOCD_SIZE + rd16(d + p + 20) == size) {
            *pos = p;
            return LLT_OK;
        }
    return llt_err_set(err, LLT_ERR_FORMAT,
                       "%s: no ZIP end-of-central-directory record (not a ZIP archive, or "
                       "truncated)",
                       what);
}

static llt_status read_eocd64(const uint8_t *d, size_t eocd, const char *what, zip_dir *dir,
                              llt_error *err) {
    const uint8_t *loc = d + eocd - 20;
    uint64_t off = rd64(loc + 8);
    if (off > eocd - 20 || eocd - 20 - off < 56 || rd32(d + off) != SIG_EOCD64)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: ZIP64 end record offset %llu is not inside the archive", what,
                           (unsigned long long)off);
    const uint8_t *r = d + off;
    if (rd32(r + 16) != 0 || rd32(r + 20) != 0)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: multi-disk ZIP archives are not supported",
                           what);
    dir->n = rd64(r + 32);
    dir->cd_size = rd64(r + 40);
    dir->cd_off = rd64(r + 48);
    dir->end = off;
    return LLT_OK;
}

static llt_status read_dir(const uint8_t *d, size_t size, const char *what, zip_dir *dir,
                           llt_error *err) {
    size_t eocd = 0;
    LLT_TRY(find_eocd(d, size, what, &eocd, err));
    const uint8_t *e = d + eocd;
    if (eocd >= 20 && rd32(d + eocd - 20) == SIG_LOC64) {
        LLT_TRY(read_eocd64(d, eocd, what, dir, err));
    } else {
        if (rd16(e + 4) != 0 || rd16(e + 6) != 0)
            return llt_err_set(err, LLT_ERR_UNSUPPORTED,
                               "%s: multi-disk ZIP archives are not supported", what);
        dir->n = rd16(e + 10);
        dir->cd_size = rd32(e + 12);
        dir->cd_off = rd32(e + 16);
        dir->end = eocd;
    }
    if (dir->cd_off > dir->end || dir->cd_size > dir->end - dir->cd_off)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: central directory [%llu, +%llu) runs past its end record at %llu",
                           what, (unsigned long long)dir->cd_off, (unsigned long long)dir->cd_size,
                           (unsigned long long)dir->end);
    if (dir->n > dir->cd_size / CDH_SIZE)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: %llu entries cannot fit in a central directory of %llu bytes", what,
                           (unsigned long long)dir->n, (unsigned long long)dir->cd_size);
    return LLT_OK;
}

typedef struct cd_fields {
    uint16_t flags, method;
    uint64_t comp, size, lho;
    const uint8_t *name, *extra;
    uint16_t name_len, extra_len;
} cd_fields;

/* ZIP64 extended information (id 1): 8-byte values for each field stored as 0xFFFFFFFF, in
 * the order uncompressed size, compressed size, local header offset. */
static llt_status apply_zip64_extra(cd_fields *f, const char *what, llt_error *err) {
    llt_cursor c = {f->extra, f->extra_len, 0, what};
    while (llt_cursor_left(&c) >= 4) {
        uint16_t id, len;
        const uint8_t *body;
        LLT_TRY(llt_cursor_u16(&c, &id, "extra field id", err));
        LLT_TRY(llt_cursor_u16(&c, &len, "extra field length", err));
        LLT_TRY(llt_cursor_bytes(&c, len, &body, "extra field", err));
        if (id != 1) continue;
        llt_cursor z = {body, len, 0, what};
        if (f->size == 0xffffffffu) LLT_TRY(llt_cursor_u64(&z, &f->size, "ZIP64 size", err));
        if (f->comp == 0xffffffffu) LLT_TRY(llt_cursor_u64(&z, &f->comp, "ZIP64 compressed size", err));
        if (f->lho == 0xffffffffu) LLT_TRY(llt_cursor_u64(&z, &f->lho, "ZIP64 header offset", err));
    }
    return LLT_OK;
}

static llt_status read_cd_entry(llt_cursor *c, const char *what, cd_fields *f, llt_error *err) {
    const uint8_t *h;
    LLT_TRY(llt_cursor_bytes(c, CDH_SIZE, &h, "central directory entry", err));
    if (rd32(h) != SIG_CENTRAL)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: bad central directory signature at offset %zu",
                           what, c->pos - CDH_SIZE);
    f->flags = rd16(h + 8);
    f->method = rd16(h + 10);
    f->comp = rd32(h + 20);
    f->size = rd32(h + 24);
    f->name_len = rd16(h + 28);
    f->extra_len = rd16(h + 30);
    uint16_t comment_len = rd16(h + 32);
    f->lho = rd32(h + 42);
    const uint8_t *comment;
    LLT_TRY(llt_cursor_bytes(c, f->name_len, &f->name, "entry name", err));
    LLT_TRY(llt_cursor_bytes(c, f->extra_len, &f->extra, "entry extra field", err));
    LLT_TRY(llt_cursor_bytes(c, comment_len, &comment, "entry comment", err));
    return apply_zip64_extra(f, what, err);
}

static llt_status check_stored(const cd_fields *f, const char *name, const char *what,
                               llt_error *err) {
    if (f->flags & 1)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED, "%s: entry '%s' is encrypted", what, name);
    if (f->method != 0)
        return llt_err_set(err, LLT_ERR_UNSUPPORTED,
                           "%s: entry '%s' is compressed (method %u%s); only stored entries are "
                           "supported (torch.save writes them stored)",
                           what, name, f->method, f->method == 8 ? ", deflate" : "");
    if (f->comp != f->size)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: entry '%s' is stored but its sizes differ (%llu vs %llu)", what,
                           name, (unsigned long long)f->comp, (unsigned long long)f->size);
    return LLT_OK;
}

/* The local header gives the data start; data must end before the central directory. */
static llt_status locate_data(const uint8_t *d, const zip_dir *dir, const cd_fields *f,
                              const char *name, const char *what, const uint8_t **data,
                              llt_error *err) {
    if (f->lho > dir->cd_off || dir->cd_off - f->lho < LFH_SIZE || rd32(d + f->lho) != SIG_LOCAL)
        return llt_err_set(err, LLT_ERR_FORMAT, "%s: entry '%s': no local header at offset %llu",
                           what, name, (unsigned long long)f->lho);
    const uint8_t *l = d + f->lho;
    uint64_t start = f->lho + LFH_SIZE + rd16(l + 26) + rd16(l + 28);
    if (rd16(l + 26) != f->name_len || memcmp(l + LFH_SIZE, f->name, f->name_len) != 0)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: entry '%s': local header names another entry", what, name);
    if (start > dir->cd_off || f->size > dir->cd_off - start)
        return llt_err_set(err, LLT_ERR_FORMAT,
                           "%s: entry '%s': %llu bytes of data at offset %llu run past the data "
                           "area (%llu bytes)",
                           what, name, (unsigned long long)f->size, (unsigned long long)start,
                           (unsigned long long)dir->cd_off);
    *data = d + start;
    return LLT_OK;
}

static llt_status read_entry(const uint8_t *d, const zip_dir *dir, llt_cursor *c,
                             const char *what, llt_zip_entry *out, llt_error *err) {
    cd_fields f;
    LLT_TRY(read_cd_entry(c, what, &f, err));
    out->name = malloc((size_t)f.name_len + 1);
    if (!out->name) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", what);
    memcpy(out->name, f.name, f.name_len);
    out->name[f.name_len] = '\0';
    out->size = f.size;
    LLT_TRY(check_stored(&f, out->name, what, err));
    return locate_data(d, dir, &f, out->name, what, &out->data, err);
}

llt_status llt_zip_open(const uint8_t *data, size_t size, const char *what, llt_zip *z,
                        llt_error *err) {
    memset(z, 0, sizeof *z);
    zip_dir dir = {0};
    LLT_TRY(read_dir(data, size, what, &dir, err));
    z->e = calloc(dir.n ? (size_t)dir.n : 1, sizeof *z->e);
    if (!z->e) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", what);
    llt_cursor c = {data + dir.cd_off, (size_t)dir.cd_size, 0, what};
    for (uint64_t i = 0; i < dir.n; i++) {
        llt_status s = read_entry(data, &dir, &c, what, &z->e[z->n++], err);
        if (s != LLT_OK) {
            llt_zip_close(z);
            return s;
        }
    }
    return LLT_OK;
}

void llt_zip_close(llt_zip *z) {
    if (!z) return;
    for (size_t i = 0; i < z->n; i++) free(z->e[i].name);
    free(z->e);
    memset(z, 0, sizeof *z);
}

const llt_zip_entry *llt_zip_find(const llt_zip *z, const char *name) {
    for (size_t i = 0; i < z->n; i++)
        if (strcmp(z->e[i].name, name) == 0) return &z->e[i];
    return NULL;
}
