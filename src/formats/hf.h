/* hf.h: Hugging Face Llama checkpoints (a folder with config.json and weights).
 *
 * config.json: hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
 * num_key_value_heads, head_dim, vocab_size, rms_norm_eps, max_position_embeddings,
 * tie_word_embeddings, bos/eos/pad_token_id (eos may be a list), torch_dtype or dtype; rotary
 * settings either as transformers 4.x `rope_theta` + `rope_scaling` {rope_type | type:
 * default / linear / llama3, factor, low_freq_factor, high_freq_factor,
 * original_max_position_embeddings} or as transformers 5 `rope_parameters` {rope_theta,
 * rope_type, ...}.
 *
 * Weights: model.safetensors, or shards listed by model.safetensors.index.json (weight_map),
 * else pytorch_model.bin or shards listed by pytorch_model.bin.index.json. HF stores the rows
 * of q_proj and k_proj for the "rotate half" rotary layout (pairs (i, i + d/2) of each head);
 * the engine pairs adjacent elements (2i, 2i + 1), so those rows are permuted on load. The
 * loaded table uses the native names (formats/names.h). */
#ifndef LLT_FORMATS_HF_H
#define LLT_FORMATS_HF_H

#include "base/json.h"
#include "formats/tensors.h"

llt_status llt_hf_config_parse(const llt_json *root, const char *what, llt_config *cfg,
                               llt_error *err);
/* Reads and validates DIR/config.json. */
llt_status llt_hf_config_read(const char *dir, llt_config *cfg, llt_error *err);

/* Loads DIR's weights into tt with native names, shapes checked against cfg, Q/K permuted.
 * Sets cfg->tie_weights when the output head is absent. */
llt_status llt_hf_load_tensors(const char *dir, llt_config *cfg, llt_tensor_table *tt,
                               llt_error *err);

/* The weight files of DIR (shards or the single file, plus the index when there is one), for
 * cache freshness checks: calls fn for each existing path. */
llt_status llt_hf_list_sources(const char *dir, void (*fn)(const char *path, void *user),
                               void *user, llt_error *err);

/* Rotate-half -> adjacent pairs, rows [n_heads * head_dim] of row_bytes each, src -> dst:
 * within each head, new row 2i = old row i, new row 2i + 1 = old row i + head_dim / 2. */
void llt_hf_permute_rows(const void *src, void *dst, int32_t n_heads, int32_t head_dim,
                         size_t row_bytes);

#endif
