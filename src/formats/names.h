/* names.h: the checkpoint key schemes and translation between them, for the converters.
 * The same 3 + 9 x n_layers tensors under three names (see model/weights.c, which binds them):
 *   HF      model.embed_tokens.weight, model.norm.weight, lm_head.weight,
 *           model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj,
 *           post_attention_layernorm, mlp.{gate,up,down}_proj}.weight
 *   GGUF    token_embd.weight, output_norm.weight, output.weight,
 *           blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up,
 *           ffn_down}.weight
 *   NATIVE  tok_embeddings.weight, norm.weight, output.weight,
 *           layers.N.{attention_norm, attention.wq, attention.wk, attention.wv, attention.wo,
 *           ffn_norm, feed_forward.w1, feed_forward.w3, feed_forward.w2}.weight
 *           (Meta's names; w1 = gate, w3 = up, w2 = down). */
#ifndef LLT_FORMATS_NAMES_H
#define LLT_FORMATS_NAMES_H

#include "model/model.h"

/* What a key denotes: global 0 embedding, 1 final norm, 2 output head (layer = -1), or a
 * per-layer field 0..8 (attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down). */
typedef struct llt_name_id {
    int32_t layer;
    int32_t field;
} llt_name_id;

enum { LLT_FIELD_WQ = 1, LLT_FIELD_WK = 2 };

/* Parses a key of a scheme; false when the key is not one of the model's tensors. */
bool llt_names_parse(llt_tensor_names scheme, const char *name, llt_name_id *id);
/* The key of global tensor `which` (0 embedding, 1 final norm, 2 output head) in a scheme. */
const char *llt_names_global(llt_tensor_names scheme, int which);
/* Formats the key of id in a scheme; false when it does not fit. */
bool llt_names_format(llt_tensor_names scheme, llt_name_id id, char *buf, size_t cap);

/* Moves every recognised tensor of src (named in `from`) into dst under the `to` name; the
 * bytes and mappings move too (src is left empty). Unrecognised keys (e.g. rotary_emb
 * buffers) are dropped. */
llt_status llt_names_rename_table(llt_tensor_table *src, llt_tensor_names from,
                                  llt_tensor_table *dst, llt_tensor_names to, llt_error *err);

#endif
