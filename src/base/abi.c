/* abi.c: the public structs' layout, by name, for bindings that mirror them (the Python
 * package's ctypes Structures). A binding checks every field's offset and every struct's size
 * against these at test time, so a header edit that the binding missed fails a test instead
 * of corrupting memory. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "llama_triton.h"
#include "backend/cuda/cuda_backend.h" /* llt_cuda_attn: plain C, no CUDA headers */
#include "kv/paged_cache.h"            /* llt_kv_storage */

typedef struct abi_entry {
    const char *type;
    const char *field; /* NULL: the entry is the struct's size */
    size_t value;
} abi_entry;

#define ABI_SIZE(T) {#T, NULL, sizeof(T)}
#define ABI_FIELD(T, f) {#T, #f, offsetof(T, f)}

static const abi_entry k_abi[] = {
    ABI_SIZE(llt_error), ABI_FIELD(llt_error, status), ABI_FIELD(llt_error, msg),

    ABI_SIZE(llt_config),
    ABI_FIELD(llt_config, n_layers), ABI_FIELD(llt_config, n_heads),
    ABI_FIELD(llt_config, n_kv_heads), ABI_FIELD(llt_config, hidden_size),
    ABI_FIELD(llt_config, intermediate_size), ABI_FIELD(llt_config, vocab_size),
    ABI_FIELD(llt_config, max_position_embeddings), ABI_FIELD(llt_config, head_dim),
    ABI_FIELD(llt_config, rope_freq_base), ABI_FIELD(llt_config, rope_freq_scale),
    ABI_FIELD(llt_config, rope_scaling), ABI_FIELD(llt_config, rope_factor),
    ABI_FIELD(llt_config, rope_low_freq_factor), ABI_FIELD(llt_config, rope_high_freq_factor),
    ABI_FIELD(llt_config, rope_original_max_pos), ABI_FIELD(llt_config, rms_norm_eps),
    ABI_FIELD(llt_config, page_size), ABI_FIELD(llt_config, max_pages),
    ABI_FIELD(llt_config, kv_dtype), ABI_FIELD(llt_config, dtype),
    ABI_FIELD(llt_config, bos_token_id), ABI_FIELD(llt_config, eos_token_id),
    ABI_FIELD(llt_config, eos_token_ids), ABI_FIELD(llt_config, n_eos),
    ABI_FIELD(llt_config, pad_token_id), ABI_FIELD(llt_config, tie_weights),
    ABI_FIELD(llt_config, n_devices), ABI_FIELD(llt_config, devices),

    ABI_SIZE(llt_detok_state),
    ABI_FIELD(llt_detok_state, pending), ABI_FIELD(llt_detok_state, n_pending),
    ABI_FIELD(llt_detok_state, n_tokens), ABI_FIELD(llt_detok_state, prev_id),

    ABI_SIZE(llt_load_opts),
    ABI_FIELD(llt_load_opts, format), ABI_FIELD(llt_load_opts, device),
    ABI_FIELD(llt_load_opts, dtype), ABI_FIELD(llt_load_opts, n_threads),
    ABI_FIELD(llt_load_opts, page_size), ABI_FIELD(llt_load_opts, max_pages),
    ABI_FIELD(llt_load_opts, max_seqs), ABI_FIELD(llt_load_opts, layer_split),
    ABI_FIELD(llt_load_opts, no_cache), ABI_FIELD(llt_load_opts, kv_dtype),
    ABI_FIELD(llt_load_opts, batch_rows),

    ABI_SIZE(llt_batch),
    ABI_FIELD(llt_batch, n_tokens), ABI_FIELD(llt_batch, tokens),
    ABI_FIELD(llt_batch, seq_ids), ABI_FIELD(llt_batch, want_logits),

    ABI_SIZE(llt_kv_cache_opts),
    ABI_FIELD(llt_kv_cache_opts, n_layers), ABI_FIELD(llt_kv_cache_opts, n_kv_heads),
    ABI_FIELD(llt_kv_cache_opts, head_dim), ABI_FIELD(llt_kv_cache_opts, page_size),
    ABI_FIELD(llt_kv_cache_opts, max_pages), ABI_FIELD(llt_kv_cache_opts, max_seqs),
    ABI_FIELD(llt_kv_cache_opts, kv_dtype),

    ABI_SIZE(llt_kv_pages),
    ABI_FIELD(llt_kv_pages, k_pool), ABI_FIELD(llt_kv_pages, v_pool),
    ABI_FIELD(llt_kv_pages, block_table), ABI_FIELD(llt_kv_pages, n_blocks),
    ABI_FIELD(llt_kv_pages, seq_len), ABI_FIELD(llt_kv_pages, page_size),
    ABI_FIELD(llt_kv_pages, n_kv_heads), ABI_FIELD(llt_kv_pages, head_dim),
    ABI_FIELD(llt_kv_pages, dtype),

    ABI_SIZE(llt_sampler_params),
    ABI_FIELD(llt_sampler_params, temperature), ABI_FIELD(llt_sampler_params, top_p),
    ABI_FIELD(llt_sampler_params, top_k), ABI_FIELD(llt_sampler_params, seed),

    ABI_SIZE(llt_gen_params),
    ABI_FIELD(llt_gen_params, max_new_tokens), ABI_FIELD(llt_gen_params, temperature),
    ABI_FIELD(llt_gen_params, top_p), ABI_FIELD(llt_gen_params, top_k),
    ABI_FIELD(llt_gen_params, seed), ABI_FIELD(llt_gen_params, add_bos),
    ABI_FIELD(llt_gen_params, parse_special),

    ABI_SIZE(llt_gen_stats),
    ABI_FIELD(llt_gen_stats, n_prompt), ABI_FIELD(llt_gen_stats, n_generated),
    ABI_FIELD(llt_gen_stats, load_s), ABI_FIELD(llt_gen_stats, prompt_s),
    ABI_FIELD(llt_gen_stats, gen_s), ABI_FIELD(llt_gen_stats, stop), ABI_FIELD(llt_gen_stats, n_ctx),
    ABI_FIELD(llt_gen_stats, n_preempted),
    ABI_SIZE(llt_chat_opts),
    ABI_FIELD(llt_chat_opts, add_generation_prompt), ABI_FIELD(llt_chat_opts, bos_token),
    ABI_FIELD(llt_chat_opts, eos_token), ABI_FIELD(llt_chat_opts, tools_json), ABI_FIELD(llt_chat_opts, date),

    /* internal structs the Python package also mirrors (GPU KV pools, GPU page_attention) */
    ABI_SIZE(llt_kv_storage),
    ABI_FIELD(llt_kv_storage, alloc), ABI_FIELD(llt_kv_storage, release),
    ABI_FIELD(llt_kv_storage, copy_page), ABI_FIELD(llt_kv_storage, upload),
    ABI_FIELD(llt_kv_storage, user),

    ABI_SIZE(llt_cuda_attn),
    ABI_FIELD(llt_cuda_attn, dtype), ABI_FIELD(llt_cuda_attn, q), ABI_FIELD(llt_cuda_attn, out),
    ABI_FIELD(llt_cuda_attn, k_pool), ABI_FIELD(llt_cuda_attn, v_pool), ABI_FIELD(llt_cuda_attn, bt),
    ABI_FIELD(llt_cuda_attn, row_bt), ABI_FIELD(llt_cuda_attn, pos), ABI_FIELD(llt_cuda_attn, rows),
    ABI_FIELD(llt_cuda_attn, n_heads), ABI_FIELD(llt_cuda_attn, n_kv), ABI_FIELD(llt_cuda_attn, hd),
    ABI_FIELD(llt_cuda_attn, page_size), ABI_FIELD(llt_cuda_attn, max_blocks),
    ABI_FIELD(llt_cuda_attn, scale), ABI_FIELD(llt_cuda_attn, work),
    ABI_FIELD(llt_cuda_attn, counters), ABI_FIELD(llt_cuda_attn, max_len), ABI_FIELD(llt_cuda_attn, kv_f8),
    ABI_FIELD(llt_cuda_attn, pf_work),
    ABI_FIELD(llt_cuda_attn, f8_k16),
    ABI_FIELD(llt_cuda_attn, f8_v16),
    ABI_FIELD(llt_cuda_attn, f8_keys),

    ABI_SIZE(llt_cuda_linear),
    ABI_FIELD(llt_cuda_linear, dtype), ABI_FIELD(llt_cuda_linear, w), ABI_FIELD(llt_cuda_linear, n),
    ABI_FIELD(llt_cuda_linear, k), ABI_FIELD(llt_cuda_linear, m),
    {"llt_cuda_linear", "in_", offsetof(llt_cuda_linear, in)}, /* `in` is a Python keyword */
    ABI_FIELD(llt_cuda_linear, x), ABI_FIELD(llt_cuda_linear, ldx), ABI_FIELD(llt_cuda_linear, x_rows),
    ABI_FIELD(llt_cuda_linear, norm_w), ABI_FIELD(llt_cuda_linear, eps), ABI_FIELD(llt_cuda_linear, out),
    ABI_FIELD(llt_cuda_linear, y), ABI_FIELD(llt_cuda_linear, ldy), ABI_FIELD(llt_cuda_linear, o),
    ABI_FIELD(llt_cuda_linear, ldo), ABI_FIELD(llt_cuda_linear, q), ABI_FIELD(llt_cuda_linear, q_rows),
    ABI_FIELD(llt_cuda_linear, kv_rows), ABI_FIELD(llt_cuda_linear, head_dim),
    ABI_FIELD(llt_cuda_linear, k_pool), ABI_FIELD(llt_cuda_linear, v_pool),
    ABI_FIELD(llt_cuda_linear, slot), ABI_FIELD(llt_cuda_linear, pos),
    ABI_FIELD(llt_cuda_linear, rope_cos), ABI_FIELD(llt_cuda_linear, rope_sin),
    ABI_FIELD(llt_cuda_linear, tmp_x), ABI_FIELD(llt_cuda_linear, tmp_y),
    ABI_FIELD(llt_cuda_linear, qw), ABI_FIELD(llt_cuda_linear, deq), ABI_FIELD(llt_cuda_linear, deq_bytes),
    ABI_FIELD(llt_cuda_linear, k8_pool), ABI_FIELD(llt_cuda_linear, v8_pool), ABI_FIELD(llt_cuda_linear, slot8),
    ABI_FIELD(llt_cuda_linear, page_size8), ABI_FIELD(llt_cuda_linear, cnt8),
};

static const abi_entry *abi_find(const char *type, const char *field) {
    if (!type) return NULL;
    for (size_t i = 0; i < sizeof k_abi / sizeof k_abi[0]; i++) {
        const abi_entry *e = &k_abi[i];
        if (strcmp(e->type, type) != 0) continue;
        if (!field ? !e->field : e->field && strcmp(e->field, field) == 0) return e;
    }
    return NULL;
}

size_t llt_abi_sizeof(const char *type) {
    const abi_entry *e = abi_find(type, NULL);
    return e ? e->value : 0;
}

size_t llt_abi_offsetof(const char *type, const char *field) {
    const abi_entry *e = field ? abi_find(type, field) : NULL;
    return e ? e->value : SIZE_MAX;
}

size_t llt_config_sizeof(void) { return sizeof(llt_config); }
