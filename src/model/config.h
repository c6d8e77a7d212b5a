/* config.h: llt_config beyond the public header: filling it from GGUF metadata, and the
 * model.json reader/writer on memory (the public llt_config_from_json/to_json work on paths).
 *
 * model.json uses the specification's attribute names: n_layers, n_heads, n_kv_heads,
 * hidden_size, intermediate_size, vocab_size, max_position_embeddings, rope_freq_base,
 * rope_freq_scale, page_size, max_pages, kv_dtype ("float32" / "float16" / "bfloat16" / "float8_e4m3"),
 * bos_token_id, eos_token_id (an int, or a list when there are several), pad_token_id (null
 * when absent), tie_weights, devices (list of strings); plus rms_norm_eps, head_dim, dtype,
 * rope_scaling {type: none|linear|llama3, factor, low_freq_factor, high_freq_factor,
 * original_max_position_embeddings} and eos_token_ids (the full list, so that a config whose
 * eos_token_ids is empty round-trips exactly). n_layers, n_heads, hidden_size,
 * intermediate_size, vocab_size and max_position_embeddings are required; n_kv_heads defaults
 * to n_heads, head_dim to hidden_size / n_heads, the rest to llt_config_init's values.
 * Floats are written with %.9g, so every float32 value reads back bit for bit.
 *
 * llt_config_init's defaults: rope_freq_base 10000, rope_freq_scale 1, no rope scaling
 * (factor 1, low 1, high 4), rms_norm_eps 1e-5, page_size 16, max_pages 0, kv_dtype F32 (the
 * CPU backend computes in float32; a GPU loader picks F16/BF16), dtype F32, token ids -1,
 * sizes 0 (unset: llt_config_validate rejects them). */
#ifndef LLT_MODEL_CONFIG_H
#define LLT_MODEL_CONFIG_H

#include "base/json.h"
#include "formats/gguf.h"

/* From GGUF metadata (general.architecture must be "llama"): <arch>.block_count,
 * embedding_length, feed_forward_length, attention.head_count, attention.head_count_kv,
 * context_length, rope.freq_base, attention.layer_norm_rms_epsilon, attention.key_length or
 * rope.dimension_count (head_dim), rope.scaling.type/factor (linear only), vocab_size or the
 * length of tokenizer.ggml.tokens, tokenizer.ggml.{bos,eos,padding,eot,eom}_token_id (ids
 * outside the vocabulary, like 0xffffffff, mean absent; eot/eom join eos_token_ids).
 * dtype is blk.0.attn_q.weight's (else token_embd.weight's) when we can compute with it.
 * tie_weights stays false: the weight binder decides (no output.weight). Validated. */
llt_status llt_config_from_gguf(const llt_gguf *g, llt_config *cfg, llt_error *err);

/* model.json from memory; `what` names the source in messages. Validated. */
llt_status llt_config_from_json_text(const char *text, size_t len, const char *what,
                                     llt_config *cfg, llt_error *err);
/* Appends model.json text (not validated: any config can be written). */
void llt_config_to_json_sbuf(const llt_config *cfg, llt_sbuf *out);

#endif
