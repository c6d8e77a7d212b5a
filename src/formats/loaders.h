/* loaders.h: model folders (Hugging Face and native) -> a model's cfg, tensors and tokenizer.
 * llt_model_load (model/load.c) handles .gguf files itself and hands folders to
 * llt_model_load_dir (formats/loaders.c), then finishes the model with llt_model_finish. */
#ifndef LLT_FORMATS_LOADERS_H
#define LLT_FORMATS_LOADERS_H

#include "model/model.h"

/* Fills m->cfg, m->tensors (Q/K rows in the adjacent-pair rotary layout) and m->tok from the
 * folder `dir` of format fmt (LLT_FORMAT_HF or LLT_FORMAT_TRITON; AUTO picks by model.json /
 * config.json), and sets *names to the key scheme of the table. */
llt_status llt_model_load_dir(llt_model *m, const char *dir, llt_format fmt, const llt_load_opts *o,
                              llt_tensor_names *names, llt_error *err);

#endif
