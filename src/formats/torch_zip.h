/* torch_zip.h: files written by torch.save (pytorch_model.bin, state_dict.pt, any .pt of a
 * state dict): a ZIP archive "<name>/data.pkl" (the pickle), "<name>/data/<key>" (raw
 * little-endian storages, 64-byte aligned), "<name>/byteorder", "<name>/version".
 * Reading maps the file and points contiguous tensors into it (zero copy); strided views are
 * copied into owned buffers. */
#ifndef LLT_FORMATS_TORCH_ZIP_H
#define LLT_FORMATS_TORCH_ZIP_H

#include "base/log.h"
#include "formats/safetensors.h"
#include "formats/zip.h"

/* Adds the state dict's tensors to tt (the mapping is adopted by tt). */
llt_status llt_torch_load(const char *path, llt_tensor_table *tt, llt_error *err);

/* Writes entries as a torch.save archive whose top folder is `archive` (e.g. "state_dict").
 * Each tensor gets its own storage. force_zip64 is for tests (ZIP64 records on small files). */
llt_status llt_torch_save(const char *path, const char *archive, const llt_st_entry *entries,
                          size_t n, bool force_zip64, llt_error *err);

/* The same, streamed: open() writes the pickle from the entries' names, dtypes and shapes
 * (their data is not read); then add() each tensor's bytes in the same order; then finish().
 * Lets a converter hold one converted tensor at a time. */
typedef struct llt_torch_writer {
    llt_zip_writer zw;
    char archive[256];
    const llt_st_entry *meta;
    size_t n, next;
    llt_progress progress;
    uint64_t bytes_done, bytes_total; /* tensor bytes written / to write */
} llt_torch_writer;
llt_status llt_torch_writer_open(llt_torch_writer *w, const char *path, const char *archive,
                                 const llt_st_entry *meta, size_t n, bool force_zip64,
                                 llt_error *err);
llt_status llt_torch_writer_add(llt_torch_writer *w, const void *data, uint64_t nbytes,
                                llt_error *err);
llt_status llt_torch_writer_finish(llt_torch_writer *w, llt_error *err);
void llt_torch_writer_abort(llt_torch_writer *w);

#endif
