/* weights.c: tensor table -> the model's per-layer weight structs.
 *
 * Three key schemes name the same tensors (see docs/ARCHITECTURE.md, "Tensor names"):
 *   GGUF    token_embd.weight, output_norm.weight, output.weight, blk.N.attn_q.weight, ...
 *   HF      model.embed_tokens.weight, model.norm.weight, lm_head.weight,
 *           model.layers.N.self_attn.q_proj.weight, ...
 *   NATIVE  Meta's names: tok_embeddings.weight, norm.weight, output.weight,
 *           layers.N.attention.wq.weight, layers.N.feed_forward.w1.weight (w1 = gate,
 *           w2 = down, w3 = up), ...
 * Every shape is checked against the config here, once, whatever the file format, and a
 * mismatch names the tensor with the expected and actual shape. Matrices in a GGML block type
 * (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K) stay as stored (in the mmap) when the backend
 * computes on blocks (m->keep_quant); other quantised tensors, and quantised vectors, are
 * dequantised to F32 into buffers the table owns, and m->quant_note says which.
 * An absent output head means the head is tied to the embedding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "base/quant.h"
#include "formats/names.h"
#include "model/model.h"

/* The key tables live in formats/names.c, shared with the converters. */
const char *llt_weights_layer_name(llt_tensor_names names, int field, int32_t layer, char *buf,
                                   size_t cap) {
    llt_names_format(names, (llt_name_id){layer, field}, buf, cap);
    return buf;
}

const char *llt_weights_global_name(llt_tensor_names names, int which) {
    return llt_names_global(names, which);
}

static void shape_str(const llt_tensor *t, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int32_t i = 0; i < t->n_dims && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Vectors (rows == 1) may be stored 1-D [cols] or 2-D [1, cols]. */
static bool shape_ok(const llt_tensor *t, int64_t rows, int64_t cols) {
    if (rows == 1 && t->n_dims == 1) return t->shape[0] == cols;
    return t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols;
}

/* Replaces a quantised tensor's bytes with float32 owned by the table. */
static llt_status dequantize_in_place(llt_tensor *t, llt_error *err) {
    int64_t n = llt_tensor_numel(t);
    float *f = malloc((size_t)n * sizeof *f);
    LLT_CHECK(f, err, LLT_ERR_NOMEM, "tensor '%s': out of memory dequantising %lld elements",
              t->name, (long long)n);
    llt_status s = llt_dequantize(t->dtype, t->data, f, n, err);
    if (s != LLT_OK) {
        free(f);
        llt_err_wrap(err, s, "tensor '%s': ", t->name);
        return s;
    }
    if (t->owned) free((void *)t->data);
    t->data = f;
    t->dtype = LLT_DTYPE_F32;
    t->nbytes = (uint64_t)n * sizeof *f;
    t->owned = true;
    return LLT_OK;
}

/* Load-line bookkeeping: which block matrices stay as stored, which tensors were dequantised. */
static void note_kept(llt_model *m, llt_dtype t) { m->quant.kept[t]++; }

static void note_dequantized(llt_model *m, const char *name, llt_dtype t) {
    size_t n = strlen(m->quant.deq);
    if (m->quant.n_deq++ < 3 && n < sizeof m->quant.deq)
        snprintf(m->quant.deq + n, sizeof m->quant.deq - n, "%s%s (%s)", n ? ", " : "", name, llt_dtype_name(t));
}

static void note_finish(llt_model *m) {
    char *buf = m->quant_note;
    const size_t cap = sizeof m->quant_note;
    size_t n = 0;
    buf[0] = '\0';
    for (int t = 0; t < LLT_DTYPE_COUNT && n < cap; t++)
        if (m->quant.kept[t])
            n += (size_t)snprintf(buf + n, cap - n, "%s%s x%d", n ? ", " : "block weights kept: ",
                                  llt_dtype_name((llt_dtype)t), (int)m->quant.kept[t]);
    if (m->quant.n_deq && n < cap)
        snprintf(buf + n, cap - n, "%sdequantised to f32: %s%s", n ? "; " : "", m->quant.deq,
                 m->quant.n_deq > 3 ? ", ..." : "");
}

static llt_status bind_one(llt_model *m, const char *name, int64_t rows, int64_t cols, llt_weight *w,
                           llt_error *err) {
    const llt_tensor *ct = llt_tensors_find(&m->tensors, name);
    LLT_CHECK(ct, err, LLT_ERR_NOT_FOUND, "tensor '%s' not found", name);
    llt_tensor *t = &m->tensors.t[ct - m->tensors.t];
    if (!shape_ok(t, rows, cols)) {
        char got[96];
        shape_str(t, got, sizeof got);
        if (rows == 1)
            return llt_err_set(err, LLT_ERR_FORMAT, "tensor '%s': expected shape [%lld], got %s", name,
                               (long long)cols, got);
        return llt_err_set(err, LLT_ERR_FORMAT, "tensor '%s': expected shape [%lld, %lld], got %s", name,
                           (long long)rows, (long long)cols, got);
    }
    if (t->dtype != LLT_DTYPE_F32 && t->dtype != LLT_DTYPE_F16 && t->dtype != LLT_DTYPE_BF16) {
        if (m->keep_quant && rows > 1 && llt_dtype_is_block(t->dtype)) {
            note_kept(m, t->dtype);
        } else {
            note_dequantized(m, name, t->dtype);
            LLT_TRY(dequantize_in_place(t, err));
        }
    }
    *w = (llt_weight){.dtype = t->dtype, .rows = rows, .cols = cols, .data = t->data};
    return LLT_OK;
}

static llt_status check_dims(const llt_config *c, llt_error *err) {
    LLT_CHECK(c->n_layers > 0 && c->n_heads > 0 && c->n_kv_heads > 0 && c->hidden_size > 0 &&
                  c->intermediate_size > 0 && c->vocab_size > 0 && c->head_dim > 0,
              err, LLT_ERR_INVALID_ARG,
              "config: sizes must be positive (n_layers %d, n_heads %d, n_kv_heads %d, hidden_size %d, "
              "intermediate_size %d, vocab_size %d, head_dim %d)",
              (int)c->n_layers, (int)c->n_heads, (int)c->n_kv_heads, (int)c->hidden_size,
              (int)c->intermediate_size, (int)c->vocab_size, (int)c->head_dim);
    LLT_CHECK(c->n_heads % c->n_kv_heads == 0, err, LLT_ERR_INVALID_ARG,
              "config: n_heads %d is not a multiple of n_kv_heads %d", (int)c->n_heads, (int)c->n_kv_heads);
    return LLT_OK;
}

static llt_status bind_layer(llt_model *m, llt_tensor_names names, int32_t l, llt_error *err) {
    const llt_config *c = &m->cfg;
    const int64_t H = c->hidden_size, I = c->intermediate_size;
    const int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    llt_layer *L = &m->layers[l];
    llt_weight *fields[9] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo,
                             &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
    const int64_t shapes[9][2] = {{1, H}, {qd, H}, {kvd, H}, {kvd, H}, {H, qd},
                                  {1, H}, {I, H},  {I, H},   {H, I}};
    char name[128];
    for (int f = 0; f < 9; f++)
        LLT_TRY(bind_one(m, llt_weights_layer_name(names, f, l, name, sizeof name), shapes[f][0],
                         shapes[f][1], fields[f], err));
    L->device = 0;
    return LLT_OK;
}

llt_status llt_weights_bind(llt_model *m, llt_tensor_names names, llt_error *err) {
    LLT_CHECK((unsigned)names <= LLT_NAMES_NATIVE, err, LLT_ERR_INVALID_ARG, "unknown tensor naming %d",
              (int)names);
    LLT_TRY(check_dims(&m->cfg, err));
    memset(&m->quant, 0, sizeof m->quant);
    const llt_config *c = &m->cfg;
    const char *output = llt_names_global(names, 2);
    LLT_TRY(bind_one(m, llt_names_global(names, 0), c->vocab_size, c->hidden_size, &m->tok_embd, err));
    LLT_TRY(bind_one(m, llt_names_global(names, 1), 1, c->hidden_size, &m->out_norm, err));
    if (llt_tensors_find(&m->tensors, output)) {
        LLT_TRY(bind_one(m, output, c->vocab_size, c->hidden_size, &m->output, err));
    } else {
        m->output = m->tok_embd; /* tied head: the same bytes */
        m->cfg.tie_weights = true;
    }
    free(m->layers);
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    LLT_CHECK(m->layers, err, LLT_ERR_NOMEM, "out of memory for %d layers", (int)c->n_layers);
    for (int32_t l = 0; l < c->n_layers; l++) LLT_TRY(bind_layer(m, names, l, err));
    note_finish(m);
    return LLT_OK;
}
