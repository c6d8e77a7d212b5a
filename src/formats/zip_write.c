/* zip_write.c: a ZIP writer for torch.save-style archives: stored entries with their sizes
 * and CRC-32 in the local header (no data descriptors), each entry's data padded to an
 * alignment with an extra field (id "FB", as PyTorch's writer does), and ZIP64 records when an
 * offset or size does not fit in 32 bits. */
#include "formats/zip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define U32_MAX_FIELD 0xffffffffu
#define EXTRA_PAD_ID 0x4246 /* "FB" */

/* t[0] is the byte-wise table of the reflected polynomial 0xEDB88320; t[k][b] is the CRC
 * contribution of byte b followed by k zero bytes, so 8 bytes fold in with 8 lookups. */
void llt_crc32_init(llt_crc32_tables *t) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        t->t[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int i = 0; i < 256; i++) t->t[k][i] = (t->t[k - 1][i] >> 8) ^ t->t[0][t->t[k - 1][i] & 0xff];
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint32_t llt_crc32(const llt_crc32_tables *t, uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = data;
    crc = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t a = crc ^ le32(p), b = le32(p + 4);
        crc = t->t[7][a & 0xff] ^ t->t[6][(a >> 8) & 0xff] ^ t->t[5][(a >> 16) & 0xff] ^
              t->t[4][a >> 24] ^ t->t[3][b & 0xff] ^ t->t[2][(b >> 8) & 0xff] ^
              t->t[1][(b >> 16) & 0xff] ^ t->t[0][b >> 24];
    }
    for (; n; n--, p++) crc = t->t[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}
static void put64(uint8_t *p, uint64_t v) {
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static llt_status wr(llt_zip_writer *w, const void *p, uint64_t n, llt_error *err) {
    const uint8_t *b = p;
    uint64_t left = n;
    while (left) {
        size_t chunk = left > ((uint64_t)1 << 30) ? ((size_t)1 << 30) : (size_t)left;
        if (fwrite(b, 1, chunk, w->f) != chunk)
            return llt_err_set(err, LLT_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
        b += chunk;
        left -= chunk;
    }
    w->off += n;
    return LLT_OK;
}

llt_status llt_zip_writer_open(llt_zip_writer *w, const char *path, llt_error *err) {
    memset(w, 0, sizeof *w);
    llt_crc32_init(&w->crc);
    size_t n = strlen(path);
    w->path = strdup(path);
    w->tmp = malloc(n + 5);
    if (!w->path || !w->tmp) {
        llt_zip_writer_abort(w);
        return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(w->tmp, path, n);
    memcpy(w->tmp + n, ".tmp", 5);
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        llt_status s = llt_err_set(err, LLT_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
        llt_zip_writer_abort(w);
        return s;
    }
    return LLT_OK;
}

static llt_status push_record(llt_zip_writer *w, const char *name, uint32_t crc, uint64_t size,
                              uint64_t offset, llt_error *err) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        llt_zip_cd_rec *r = realloc(w->rec, cap * sizeof *r);
        if (!r) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", w->path);
        w->rec = r;
        w->cap = cap;
    }
    w->rec[w->n].name = strdup(name);
    if (!w->rec[w->n].name) return llt_err_set(err, LLT_ERR_NOMEM, "%s: out of memory", w->path);
    w->rec[w->n].crc = crc;
    w->rec[w->n].size = size;
    w->rec[w->n].offset = offset;
    w->n++;
    return LLT_OK;
}

/* Local header: 30 bytes, name, [ZIP64 extra: sizes], padding extra so the data is aligned. */
llt_status llt_zip_writer_add(llt_zip_writer *w, const char *name, const void *data,
                              uint64_t size, uint32_t align, llt_error *err) {
    size_t nlen = strlen(name);
    if (nlen > 0xffff || align == 0 || align > 4096 || (align & (align - 1)))
        return llt_err_set(err, LLT_ERR_INVALID_ARG, "%s: entry '%s': bad name length or alignment",
                           w->path, name);
    bool z64 = w->force_zip64 || size >= U32_MAX_FIELD;
    uint64_t fixed = w->off + 30 + nlen + (z64 ? 20 : 0) + 4;
    uint32_t pad = (uint32_t)((align - fixed % align) % align);
    uint32_t crc = llt_crc32(&w->crc, 0, data, (size_t)size);
    uint8_t h[30 + 20 + 4];
    put32(h, 0x04034b50u);
    put16(h + 4, z64 ? 45 : 20);
    put16(h + 6, 0);
    put16(h + 8, 0);            /* stored */
    put32(h + 10, 0x00210000u); /* 1980-01-01 00:00 */
    put32(h + 14, crc);
    put32(h + 18, z64 ? U32_MAX_FIELD : (uint32_t)size);
    put32(h + 22, z64 ? U32_MAX_FIELD : (uint32_t)size);
    put16(h + 26, (uint16_t)nlen);
    put16(h + 28, (uint16_t)((z64 ? 20 : 0) + 4 + pad));
    uint64_t offset = w->off;
    LLT_TRY(wr(w, h, 30, err));
    LLT_TRY(wr(w, name, nlen, err));
    size_t hn = 0;
    if (z64) {
        put16(h, 1);
        put16(h + 2, 16);
        put64(h + 4, size);
        put64(h + 12, size);
        hn = 20;
    }
    put16(h + hn, EXTRA_PAD_ID);
    put16(h + hn + 2, (uint16_t)pad);
    LLT_TRY(wr(w, h, hn + 4, err));
    uint8_t zz[4096];
    memset(zz, 'Z', pad);
    LLT_TRY(wr(w, zz, pad, err));
    LLT_TRY(wr(w, data, size, err));
    return push_record(w, name, crc, size, offset, err);
}

static llt_status write_cd_entry(llt_zip_writer *w, const llt_zip_cd_rec *r, llt_error *err) {
    bool big_size = w->force_zip64 || r->size >= U32_MAX_FIELD;
    bool big_off = w->force_zip64 || r->offset >= U32_MAX_FIELD;
    uint8_t h[46], x[28];
    size_t xn = 0;
    if (big_size || big_off) {
        xn = 4;
        if (big_size) {
            put64(x + xn, r->size);
            put64(x + xn + 8, r->size);
            xn += 16;
        }
        if (big_off) {
            put64(x + xn, r->offset);
            xn += 8;
        }
        put16(x, 1);
        put16(x + 2, (uint16_t)(xn - 4));
    }
    size_t nlen = strlen(r->name);
    memset(h, 0, sizeof h);
    put32(h, 0x02014b50u);
    put16(h + 4, xn ? 45 : 20);
    put16(h + 6, xn ? 45 : 20);
    put32(h + 12, 0x00210000u);
    put32(h + 16, r->crc);
    put32(h + 20, big_size ? U32_MAX_FIELD : (uint32_t)r->size);
    put32(h + 24, big_size ? U32_MAX_FIELD : (uint32_t)r->size);
    put16(h + 28, (uint16_t)nlen);
    put16(h + 30, (uint16_t)xn);
    put32(h + 42, big_off ? U32_MAX_FIELD : (uint32_t)r->offset);
    LLT_TRY(wr(w, h, sizeof h, err));
    LLT_TRY(wr(w, r->name, nlen, err));
    return wr(w, x, xn, err);
}

/* ZIP64 end record (56 bytes) + locator (20 bytes), written before the classic EOCD. */
static llt_status write_eocd64(llt_zip_writer *w, uint64_t cd_off, uint64_t cd_size,
                               llt_error *err) {
    uint8_t r[56 + 20];
    memset(r, 0, sizeof r);
    uint64_t at = w->off;
    put32(r, 0x06064b50u);
    put64(r + 4, 44);
    put16(r + 12, 45);
    put16(r + 14, 45);
    put64(r + 24, w->n);
    put64(r + 32, w->n);
    put64(r + 40, cd_size);
    put64(r + 48, cd_off);
    put32(r + 56, 0x07064b50u);
    put64(r + 56 + 8, at);
    put32(r + 56 + 16, 1);
    return wr(w, r, sizeof r, err);
}

static llt_status write_end(llt_zip_writer *w, llt_error *err) {
    uint64_t cd_off = w->off;
    for (size_t i = 0; i < w->n; i++) LLT_TRY(write_cd_entry(w, &w->rec[i], err));
    uint64_t cd_size = w->off - cd_off;
    bool z64 = w->force_zip64 || w->n >= 0xffff || cd_off >= U32_MAX_FIELD;
    if (z64) LLT_TRY(write_eocd64(w, cd_off, cd_size, err));
    uint8_t e[22];
    memset(e, 0, sizeof e);
    put32(e, 0x06054b50u);
    put16(e + 8, z64 ? 0xffff : (uint16_t)w->n);
    put16(e + 10, z64 ? 0xffff : (uint16_t)w->n);
    put32(e + 12, z64 ? U32_MAX_FIELD : (uint32_t)cd_size);
    put32(e + 16, z64 ? U32_MAX_FIELD : (uint32_t)cd_off);
    return wr(w, e, sizeof e, err);
}

llt_status llt_zip_writer_finish(llt_zip_writer *w, llt_error *err) {
    llt_status s = write_end(w, err);
    if (s == LLT_OK) {
        int bad = fclose(w->f);
        w->f = NULL;
        if (bad || rename(w->tmp, w->path) != 0) {
            s = llt_err_set(err, LLT_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
            unlink(w->tmp);
        }
    }
    llt_zip_writer_abort(w);
    return s;
}

void llt_zip_writer_abort(llt_zip_writer *w) {
    if (w->f) {
        fclose(w->f);
        unlink(w->tmp);
    }
    for (size_t i = 0; i < w->n; i++) free(w->rec[i].name);
    free(w->rec);
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}
