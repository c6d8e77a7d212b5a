"""ctypes mirrors of the public structs of include/llama_triton.h, field for field.

The header is the source of truth; tests/python/test_abi.py checks every size and offset
here against the library's own llt_abi_sizeof / llt_abi_offsetof."""

import ctypes as C

ERR_MSG_MAX = 512
MAX_DEVICES = 16
DEVICE_NAME_MAX = 16
MAX_EOS = 8

c_enum = C.c_int  # every llt_* enum is an int on the platforms we build for

# llt_dtype, in header order
DTYPE_NAMES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k",
               "i8", "i16", "i32", "i64", "f64", "u8", "bool",
               "q4_1", "q5_0", "q5_k", "f8_e4m3")
DTYPE_F32, DTYPE_F16, DTYPE_BF16 = 0, 1, 2
DTYPE_COUNT = len(DTYPE_NAMES)

# llt_format
FORMATS = {None: 0, "auto": 0, "gguf": 1, "hf": 2, "triton": 3, "native": 3}

# llt_rope_scaling
ROPE_SCALING_NAMES = ("none", "linear", "llama3")

# llt_tokenizer flags
TOK_ADD_BOS, TOK_ADD_EOS, TOK_PARSE_SPECIAL = 1, 2, 4


class Error(C.Structure):
    _fields_ = [("status", c_enum), ("msg", C.c_char * ERR_MSG_MAX)]


class Config(C.Structure):
    _fields_ = [
        ("n_layers", C.c_int32),
        ("n_heads", C.c_int32),
        ("n_kv_heads", C.c_int32),
        ("hidden_size", C.c_int32),
        ("intermediate_size", C.c_int32),
        ("vocab_size", C.c_int32),
        ("max_position_embeddings", C.c_int32),
        ("head_dim", C.c_int32),
        ("rope_freq_base", C.c_float),
        ("rope_freq_scale", C.c_float),
        ("rope_scaling", c_enum),
        ("rope_factor", C.c_float),
        ("rope_low_freq_factor", C.c_float),
        ("rope_high_freq_factor", C.c_float),
        ("rope_original_max_pos", C.c_int32),
        ("rms_norm_eps", C.c_float),
        ("page_size", C.c_int32),
        ("max_pages", C.c_int32),
        ("kv_dtype", c_enum),
        ("dtype", c_enum),
        ("bos_token_id", C.c_int32),
        ("eos_token_id", C.c_int32),
        ("eos_token_ids", C.c_int32 * MAX_EOS),
        ("n_eos", C.c_int32),
        ("pad_token_id", C.c_int32),
        ("tie_weights", C.c_bool),
        ("n_devices", C.c_int32),
        ("devices", (C.c_char * DEVICE_NAME_MAX) * MAX_DEVICES),
    ]


class DetokState(C.Structure):
    _fields_ = [
        ("pending", C.c_ubyte * 8),
        ("n_pending", C.c_int32),
        ("n_tokens", C.c_int32),
        ("prev_id", C.c_int32),
    ]


class LoadOpts(C.Structure):
    _fields_ = [
        ("format", c_enum),
        ("device", C.c_char_p),
        ("dtype", c_enum),
        ("n_threads", C.c_int32),
        ("page_size", C.c_int32),
        ("max_pages", C.c_int32),
        ("max_seqs", C.c_int32),
        ("layer_split", C.POINTER(C.c_int32)),
        ("no_cache", C.c_bool),
        ("kv_dtype", c_enum),
        ("batch_rows", C.c_int32),
    ]


class Batch(C.Structure):
    _fields_ = [
        ("n_tokens", C.c_int32),
        ("tokens", C.POINTER(C.c_int32)),
        ("seq_ids", C.POINTER(C.c_int32)),
        ("want_logits", C.POINTER(C.c_int8)),
    ]


class KVCacheOpts(C.Structure):
    _fields_ = [
        ("n_layers", C.c_int32),
        ("n_kv_heads", C.c_int32),
        ("head_dim", C.c_int32),
        ("page_size", C.c_int32),
        ("max_pages", C.c_int32),
        ("max_seqs", C.c_int32),
        ("kv_dtype", c_enum),
    ]


class KVPages(C.Structure):
    _fields_ = [
        ("k_pool", C.c_void_p),
        ("v_pool", C.c_void_p),
        ("block_table", C.POINTER(C.c_int32)),
        ("n_blocks", C.c_int32),
        ("seq_len", C.c_int32),
        ("page_size", C.c_int32),
        ("n_kv_heads", C.c_int32),
        ("head_dim", C.c_int32),
        ("dtype", c_enum),
    ]


# kv/paged_cache.h (exported, not in the public header): where a cache's pools live.
KV_ALLOC_FN = C.CFUNCTYPE(C.c_size_t, C.c_int32, C.c_size_t, C.c_void_p)  # returns void*
KV_RELEASE_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p)
KV_COPY_PAGE_FN = C.CFUNCTYPE(c_enum, C.c_void_p, C.c_int32, C.c_int32, C.c_size_t, C.c_void_p,
                              C.POINTER(Error))
KV_UPLOAD_FN = C.CFUNCTYPE(c_enum, C.c_void_p, C.c_size_t, C.c_void_p, C.c_size_t, C.c_void_p,
                           C.POINTER(Error))


KV_WRITE_FN = C.CFUNCTYPE(c_enum, C.c_void_p, C.c_void_p, C.c_int64, C.c_int32, C.c_void_p,
                          C.POINTER(Error))


class KVStorage(C.Structure):
    _fields_ = [
        ("alloc", KV_ALLOC_FN),
        ("release", KV_RELEASE_FN),
        ("copy_page", KV_COPY_PAGE_FN),
        ("upload", KV_UPLOAD_FN),
        ("user", C.c_void_p),
    ]


# backend/cuda/cuda_backend.h (CUDA builds; exported, not in the public header).
class CudaAttn(C.Structure):
    _fields_ = [
        ("dtype", c_enum),
        ("q", C.c_void_p),
        ("out", C.c_void_p),
        ("k_pool", C.c_void_p),
        ("v_pool", C.c_void_p),
        ("bt", C.c_void_p),
        ("row_bt", C.c_void_p),
        ("pos", C.c_void_p),
        ("rows", C.c_int32),
        ("n_heads", C.c_int32),
        ("n_kv", C.c_int32),
        ("hd", C.c_int32),
        ("page_size", C.c_int32),
        ("max_blocks", C.c_int32),
        ("scale", C.c_float),
        ("work", C.c_void_p),
        ("counters", C.c_void_p),
        ("max_len", C.c_int32),
        ("kv_f8", C.c_bool),
        ("pf_work", C.c_void_p),
        ("f8_k16", C.c_void_p),
        ("f8_v16", C.c_void_p),
        ("f8_keys", C.c_int32),
    ]


class CudaLinear(C.Structure):
    _fields_ = [
        ("dtype", c_enum),
        ("w", C.c_void_p),
        ("n", C.c_int32),
        ("k", C.c_int32),
        ("m", C.c_int32),
        ("in_", c_enum),
        ("x", C.c_void_p),
        ("ldx", C.c_int32),
        ("x_rows", C.c_void_p),
        ("norm_w", C.c_void_p),
        ("eps", C.c_float),
        ("out", c_enum),
        ("y", C.c_void_p),
        ("ldy", C.c_int32),
        ("o", C.c_void_p),
        ("ldo", C.c_int32),
        ("q", C.c_void_p),
        ("q_rows", C.c_int32),
        ("kv_rows", C.c_int32),
        ("head_dim", C.c_int32),
        ("k_pool", C.c_void_p),
        ("v_pool", C.c_void_p),
        ("slot", C.c_void_p),
        ("pos", C.c_void_p),
        ("rope_cos", C.c_void_p),
        ("rope_sin", C.c_void_p),
        ("tmp_x", C.c_void_p),
        ("tmp_y", C.c_void_p),
        ("qw", C.c_void_p),         # GGML-block weights (quant.cu); NULL: w in dtype
        ("deq", C.c_void_p),
        ("deq_bytes", C.c_size_t),
        ("k8_pool", C.c_void_p),    # QKV into an f8 KV cache (NULL: k_pool / v_pool are the pages)
        ("v8_pool", C.c_void_p),
        ("slot8", C.c_void_p),
        ("page_size8", C.c_int32),
        ("cnt8", C.c_void_p),
    ]


class SamplerParams(C.Structure):
    _fields_ = [
        ("temperature", C.c_float),
        ("top_p", C.c_float),
        ("top_k", C.c_int32),
        ("seed", C.c_uint64),
    ]


class GenParams(C.Structure):
    _fields_ = [
        ("max_new_tokens", C.c_int32),
        ("temperature", C.c_float),
        ("top_p", C.c_float),
        ("top_k", C.c_int32),
        ("seed", C.c_uint64),
        ("add_bos", C.c_bool),
        ("parse_special", C.c_bool),
    ]


class GenStats(C.Structure):
    _fields_ = [
        ("n_prompt", C.c_int32),
        ("n_generated", C.c_int32),
        ("load_s", C.c_double),
        ("prompt_s", C.c_double),
        ("gen_s", C.c_double),
        ("stop", c_enum),
        ("n_ctx", C.c_int32),
        ("n_preempted", C.c_int32),
    ]


class ChatOpts(C.Structure):
    _fields_ = [
        ("add_generation_prompt", C.c_bool),
        ("bos_token", C.c_char_p),
        ("eos_token", C.c_char_p),
        ("tools_json", C.c_char_p),
        ("date", C.c_char_p),
    ]


# C name -> mirror, for the ABI test
MIRRORS = {
    "llt_error": Error,
    "llt_config": Config,
    "llt_detok_state": DetokState,
    "llt_load_opts": LoadOpts,
    "llt_batch": Batch,
    "llt_kv_cache_opts": KVCacheOpts,
    "llt_kv_pages": KVPages,
    "llt_sampler_params": SamplerParams,
    "llt_chat_opts": ChatOpts,
    "llt_gen_params": GenParams,
    "llt_gen_stats": GenStats,
    "llt_kv_storage": KVStorage,
    "llt_cuda_attn": CudaAttn,
    "llt_cuda_linear": CudaLinear,
}

# typedef void (*llt_log_fn)(llt_log_level level, const char *msg, void *user);
LOG_FN = C.CFUNCTYPE(None, c_enum, C.c_char_p, C.c_void_p)
# typedef int (*llt_token_cb)(int32_t index, const char *piece, size_t len, int32_t token, void *user);
TOKEN_CB = C.CFUNCTYPE(C.c_int, C.c_int32, C.POINTER(C.c_char), C.c_size_t, C.c_int32, C.c_void_p)
