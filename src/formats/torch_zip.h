/* torch_zip.h: files written by torch.save (pytorch_model.bin, state_dict.pt, any .pt of a
 * state dict): a ZIP archive "<name>/data.pkl" (the pickle), "<name>/data/<key>" (raw
 * little-endian storages, 64-byte aligned), "<name>/byteorder", "<name>/version".
 * Reading maps the file and points contiguous tensors into it (zero copy); strided views are
 * copied into owned buffers. */
#ifndef LLT_FORMATS_TORCH_ZIP_H
#define LLT_FORMATS_TORCH_ZIP_H

#include "formats/safetensors.h"

/* Adds the state dict's tensors to tt (the mapping is adopted by tt). */
llt_status llt_torch_load(const char *path, llt_tensor_table *tt, llt_error *err);

/* Writes entries as a torch.save archive whose top folder is `archive` (e.g. "state_dict").
 * Each tensor gets its own storage. force_zip64 is for tests (ZIP64 records on small files). */
llt_status llt_torch_save(const char *path, const char *archive, const llt_st_entry *entries,
                          size_t n, bool force_zip64, llt_error *err);

#endif
