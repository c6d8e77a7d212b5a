/* names.c: key schemes (see names.h). Names are matched by prefix + layer number + suffix,
 * strictly: "layers.01.x" or "layers.1x" are not tensors of ours. */
#include "formats/names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct scheme {
    const char *global[3];
    const char *layer_prefix;
    const char *layer[9]; /* suffixes after "<prefix><N>." */
} scheme;

static const scheme k_schemes[] = {
    [LLT_NAMES_GGUF] = {{"token_embd.weight", "output_norm.weight", "output.weight"},
                        "blk.",
                        {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                         "attn_output.weight", "ffn_norm.weight", "ffn_gate.weight",
                         "ffn_up.weight", "ffn_down.weight"}},
    [LLT_NAMES_HF] = {{"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"},
                      "model.layers.",
                      {"input_layernorm.weight", "self_attn.q_proj.weight",
                       "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                       "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                       "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"}},
    [LLT_NAMES_NATIVE] = {{"tok_embeddings.weight", "norm.weight", "output.weight"},
                          "layers.",
                          {"attention_norm.weight", "attention.wq.weight", "attention.wk.weight",
                           "attention.wv.weight", "attention.wo.weight", "ffn_norm.weight",
                           "feed_forward.w1.weight", "feed_forward.w3.weight",
                           "feed_forward.w2.weight"}},
};

/* "<digits>." with no leading zero (except "0"), value < 2^20. */
static const char *parse_layer(const char *s, int32_t *layer) {
    if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '.')) return NULL;
    int32_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (*s - '0');
        if (v >= (1 << 20)) return NULL;
    }
    if (*s != '.') return NULL;
    *layer = v;
    return s + 1;
}

bool llt_names_parse(llt_tensor_names scheme_id, const char *name, llt_name_id *id) {
    const scheme *sc = &k_schemes[scheme_id];
    for (int g = 0; g < 3; g++)
        if (strcmp(name, sc->global[g]) == 0) {
            *id = (llt_name_id){-1, g};
            return true;
        }
    size_t pl = strlen(sc->layer_prefix);
    if (strncmp(name, sc->layer_prefix, pl) != 0) return false;
    int32_t layer;
    const char *rest = parse_layer(name + pl, &layer);
    if (!rest) return false;
    for (int f = 0; f < 9; f++)
        if (strcmp(rest, sc->layer[f]) == 0) {
            *id = (llt_name_id){layer, f};
            return true;
        }
    return false;
}

const char *llt_names_global(llt_tensor_names scheme_id, int which) {
    return k_schemes[scheme_id].global[which];
}

bool llt_names_format(llt_tensor_names scheme_id, llt_name_id id, char *buf, size_t cap) {
    const scheme *sc = &k_schemes[scheme_id];
    int n = id.layer < 0 ? snprintf(buf, cap, "%s", sc->global[id.field])
                         : snprintf(buf, cap, "%s%d.%s", sc->layer_prefix, (int)id.layer,
                                    sc->layer[id.field]);
    return n >= 0 && (size_t)n < cap;
}

static llt_status move_maps(llt_tensor_table *src, llt_tensor_table *dst, llt_error *err) {
    for (size_t i = 0; i < src->n_maps; i++) {
        LLT_TRY(llt_tensors_adopt_map(dst, &src->maps[i], err));
    }
    src->n_maps = 0;
    return LLT_OK;
}

llt_status llt_names_rename_table(llt_tensor_table *src, llt_tensor_names from,
                                  llt_tensor_table *dst, llt_tensor_names to, llt_error *err) {
    LLT_TRY(move_maps(src, dst, err));
    char buf[256];
    for (size_t i = 0; i < src->n; i++) {
        llt_tensor *t = &src->t[i];
        llt_name_id id;
        if (!llt_names_parse(from, t->name, &id)) continue;
        if (!llt_names_format(to, id, buf, sizeof buf))
            return llt_err_set(err, LLT_ERR_INVALID_ARG, "tensor '%s': name too long", t->name);
        LLT_TRY(llt_tensors_add(dst, buf, strlen(buf), t->dtype, t->n_dims, t->shape, t->data,
                                t->nbytes, t->owned, err));
        t->owned = false; /* dst frees it now */
    }
    return LLT_OK;
}
