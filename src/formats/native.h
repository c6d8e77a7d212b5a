/* native.h: the native model folder (the specification's format):
 *   model.json       llt_config attributes (model/config.h)
 *   state_dict.pt    torch.save archive (top folder "state_dict") of the weights under the
 *                    native names (formats/names.h), Q/K rows in the adjacent-pair rotary
 *                    layout; readable with torch.load(weights_only=True)
 *   tokenizer.model  (or tokenizer.json): whatever llt_tokenizer_open reads from a folder. */
#ifndef LLT_FORMATS_NATIVE_H
#define LLT_FORMATS_NATIVE_H

#include "formats/tensors.h"

llt_status llt_native_load(const char *dir, llt_config *cfg, llt_tensor_table *tt, llt_error *err);

/* Writes DIR/state_dict.pt and DIR/model.json from tt (native names; the model's tensors in
 * canonical order, others ignored). dtype F32/F16/BF16 converts every weight to it;
 * LLT_DTYPE_COUNT keeps plain tensors as they are and turns quantised ones into F32.
 * cfg->dtype in model.json is set to what was written. model.json is written last, so a
 * folder with a model.json has a complete state_dict.pt. */
llt_status llt_native_write(const char *dir, const llt_config *cfg, const llt_tensor_table *tt,
                            llt_dtype dtype, llt_error *err);

/* Copies src to dst (small files: tokenizers). */
llt_status llt_copy_file(const char *src, const char *dst, llt_error *err);

#endif
