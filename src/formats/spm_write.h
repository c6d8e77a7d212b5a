/* spm_write.h: SentencePiece tokenizer.model from a GGUF "llama" vocabulary (see spm_write.c). */
#ifndef LLT_FORMATS_SPM_WRITE_H
#define LLT_FORMATS_SPM_WRITE_H

#include "formats/gguf.h"

llt_status llt_spm_write_from_gguf(const llt_gguf *g, const char *path, llt_error *err);

#endif
