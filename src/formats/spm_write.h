/* spm_write.h: a converted GGUF model folder's tokenizer files, from the GGUF vocabulary:
 * SentencePiece tokenizer.model for "llama" vocabularies (spm_write.c), Hugging Face
 * tokenizer.json + tokenizer_config.json for "gpt2" byte-level BPE ones (tokjson_write.c). */
#ifndef LLT_FORMATS_SPM_WRITE_H
#define LLT_FORMATS_SPM_WRITE_H

#include "formats/gguf.h"

llt_status llt_spm_write_from_gguf(const llt_gguf *g, const char *path, llt_error *err);
/* Writes DIR/tokenizer.json and DIR/tokenizer_config.json. */
llt_status llt_tokjson_write_from_gguf(const llt_gguf *g, const char *dir, llt_error *err);

#endif
