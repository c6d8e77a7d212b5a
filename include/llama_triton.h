/* llama_triton.h: the public C API of Llama-Triton.
 *
 * Conventions (see docs/ARCHITECTURE.md):
 *  - Handles are opaque; each has a create/open and a free. free(NULL) is a no-op.
 *  - Every fallible call returns llt_status and, when `err` is not NULL, fills it with a
 *    message that names the file, the field and the expected vs actual value.
 *  - The library never exits and never writes to stdout. Progress goes to a log callback
 *    (default: stderr, level-filtered) set with llt_log_set.
 *  - Token ids are int32_t. Sizes are size_t / int64_t. Strings are UTF-8, not necessarily
 *    NUL-terminated when a length is passed beside them.
 */
#ifndef LLAMA_TRITON_H
#define LLAMA_TRITON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLT_VERSION "0.1.0"

/* ---- status and errors --------------------------------------------------------------- */

typedef enum llt_status {
    LLT_OK = 0,
    LLT_ERR_INVALID_ARG,  /* a caller passed something out of range */
    LLT_ERR_IO,           /* open/read/write/mmap failed */
    LLT_ERR_FORMAT,       /* a file is damaged or not what it claims */
    LLT_ERR_UNSUPPORTED,  /* valid but not supported (dtype, architecture, ...) */
    LLT_ERR_NOMEM,        /* host or device allocation failed */
    LLT_ERR_FULL,         /* the KV page pool is exhausted */
    LLT_ERR_STATE,        /* call not valid in the object's current state */
    LLT_ERR_DEVICE,       /* CUDA or other device error */
    LLT_ERR_NOT_FOUND,    /* a named tensor / key / file is absent */
    LLT_ERR_CANCELLED     /* a callback asked to stop */
} llt_status;

#define LLT_ERR_MSG_MAX 512
typedef struct llt_error {
    llt_status status;
    char msg[LLT_ERR_MSG_MAX];
} llt_error;

const char *llt_status_str(llt_status s);

/* ---- logging ------------------------------------------------------------------------- */

typedef enum llt_log_level { LLT_LOG_DEBUG = 0, LLT_LOG_INFO, LLT_LOG_WARN, LLT_LOG_ERROR, LLT_LOG_NONE } llt_log_level;
typedef void (*llt_log_fn)(llt_log_level level, const char *msg, void *user);
/* Process-wide sink; set it once before loading. NULL fn restores the stderr default. */
void llt_log_set(llt_log_fn fn, void *user, llt_log_level min_level);

/* ---- data types ---------------------------------------------------------------------- */

typedef enum llt_dtype {
    LLT_DTYPE_F32 = 0,
    LLT_DTYPE_F16,
    LLT_DTYPE_BF16,
    LLT_DTYPE_Q8_0,
    LLT_DTYPE_Q4_0,
    LLT_DTYPE_Q4_K,
    LLT_DTYPE_Q6_K,
    LLT_DTYPE_I8,
    LLT_DTYPE_I16,
    LLT_DTYPE_I32,
    LLT_DTYPE_I64,
    LLT_DTYPE_F64,
    LLT_DTYPE_U8,
    LLT_DTYPE_BOOL,
    LLT_DTYPE_Q4_1, /* GGML block types appended after the plain ones (codes stay stable) */
    LLT_DTYPE_Q5_0,
    LLT_DTYPE_Q5_K,
    LLT_DTYPE_F8_E4M3, /* KV cache only (CUDA): float8 e4m3 with a float32 scale per token and kv head */
    LLT_DTYPE_COUNT
} llt_dtype;

const char *llt_dtype_name(llt_dtype t);            /* "f32", "f16", "bf16", "q8_0", ... */
bool llt_dtype_from_name(const char *name, llt_dtype *out); /* accepts "float16", "bfloat16" too */

/* ---- configuration (the specification's LlamaConfig) --------------------------------- */

#define LLT_MAX_DEVICES 16
#define LLT_MAX_EOS 8

typedef enum llt_rope_scaling {
    LLT_ROPE_SCALING_NONE = 0,
    LLT_ROPE_SCALING_LINEAR,
    LLT_ROPE_SCALING_LLAMA3
} llt_rope_scaling;

typedef struct llt_config {
    int32_t n_layers;
    int32_t n_heads;
    int32_t n_kv_heads;
    int32_t hidden_size;
    int32_t intermediate_size;
    int32_t vocab_size;
    int32_t max_position_embeddings;
    int32_t head_dim;             /* hidden_size / n_heads unless the checkpoint says otherwise */
    float rope_freq_base;         /* theta */
    float rope_freq_scale;        /* 1 / linear factor; 1.0 = none */
    llt_rope_scaling rope_scaling;
    float rope_factor;            /* llama3: factor */
    float rope_low_freq_factor;   /* llama3 */
    float rope_high_freq_factor;  /* llama3 */
    int32_t rope_original_max_pos;/* llama3: original_max_position_embeddings */
    float rms_norm_eps;
    int32_t page_size;            /* tokens per KV page */
    int32_t max_pages;            /* pages in the pool; 0 = enough for max context of one sequence */
    llt_dtype kv_dtype;           /* F32, F16, BF16 or F8_E4M3 (CUDA); llt_load_opts.kv_dtype overrides */
    llt_dtype dtype;              /* the checkpoint's weight dtype (torch_dtype) */
    int32_t bos_token_id;         /* -1 when absent */
    int32_t eos_token_id;         /* the first of eos_token_ids; -1 when absent */
    int32_t eos_token_ids[LLT_MAX_EOS];
    int32_t n_eos;
    int32_t pad_token_id;         /* -1 when absent */
    bool tie_weights;             /* output head shares the embedding */
    int32_t n_devices;            /* 0 = default device */
    char devices[LLT_MAX_DEVICES][16]; /* "cpu", "cuda:0", ... */
} llt_config;

/* Defaults of an empty config (page_size 16, rope base 10000, eps 1e-5, ids -1, ...). */
void llt_config_init(llt_config *cfg);
/* Reads model.json (specification attribute names). Unknown keys are ignored. */
llt_status llt_config_from_json(const char *path, llt_config *cfg, llt_error *err);
llt_status llt_config_to_json(const llt_config *cfg, const char *path, llt_error *err);
/* Checks internal consistency (divisibility, ranges); names the offending field. */
llt_status llt_config_validate(const llt_config *cfg, llt_error *err);

/* ---- tokenizer ----------------------------------------------------------------------- */

typedef struct llt_tokenizer llt_tokenizer;

enum {
    LLT_TOK_ADD_BOS = 1u << 0,  /* prepend BOS when the vocabulary uses one (GGUF add_bos_token,
                                 * SentencePiece, Llama 3; not GPT-2) */
    LLT_TOK_ADD_EOS = 1u << 1,  /* append EOS */
    LLT_TOK_PARSE_SPECIAL = 1u << 2  /* recognise special/control tokens written in the text */
};

/* Opens a tokenizer from: a .gguf file, a SentencePiece tokenizer.model, a tiktoken
 * tokenizer.model (Llama 3), a Hugging Face tokenizer.json, or a model folder. */
llt_status llt_tokenizer_open(const char *path, llt_tokenizer **out, llt_error *err);
void llt_tokenizer_free(llt_tokenizer *tok);

int32_t llt_tokenizer_vocab_size(const llt_tokenizer *tok);
int32_t llt_tokenizer_bos(const llt_tokenizer *tok);  /* -1 when none */
int32_t llt_tokenizer_eos(const llt_tokenizer *tok);  /* -1 when none */
bool llt_tokenizer_is_eog(const llt_tokenizer *tok, int32_t id); /* end of generation */

/* Encodes text[0..len). Writes at most cap ids; *n_out is the full count (call again with a
 * larger buffer when *n_out > cap, status is then LLT_ERR_FULL). */
llt_status llt_tokenizer_encode(const llt_tokenizer *tok, const char *text, size_t len,
                                unsigned flags, int32_t *ids, size_t cap, size_t *n_out,
                                llt_error *err);

/* Decodes ids to text (SentencePiece: the leading space of the first piece is dropped, as
 * sentencepiece does). Output is NUL-terminated when cap > *len_out. Same cap protocol. */
llt_status llt_tokenizer_decode(const llt_tokenizer *tok, const int32_t *ids, size_t n,
                                char *text, size_t cap, size_t *len_out, llt_error *err);

/* Streaming decode: feed ids one at a time; only complete UTF-8 is emitted, a character split
 * over byte tokens is held back until complete. Zero-initialise before the first call. */
typedef struct llt_detok_state {
    unsigned char pending[8];
    int32_t n_pending;
    int32_t n_tokens;     /* tokens seen so far (the first piece loses its dummy-prefix space) */
    int32_t prev_id;
} llt_detok_state;
llt_status llt_tokenizer_decode_next(const llt_tokenizer *tok, llt_detok_state *st, int32_t id,
                                     char *text, size_t cap, size_t *len_out, llt_error *err);

/* The raw piece string of a token as stored in the vocabulary (NULL when out of range). */
const char *llt_tokenizer_piece(const llt_tokenizer *tok, int32_t id);

/* ---- model --------------------------------------------------------------------------- */

typedef struct llt_model llt_model;

typedef enum llt_format {
    LLT_FORMAT_AUTO = 0, /* from the path: .gguf file, folder with model.json, folder with config.json */
    LLT_FORMAT_GGUF,
    LLT_FORMAT_HF,       /* Hugging Face folder; converted once and cached as native files */
    LLT_FORMAT_TRITON    /* native: model.json + state_dict.pt + tokenizer.model */
} llt_format;

/* rows per forward pass (llt_load_opts.batch_rows): 2048 by default, as on the H200 a prompt
 * of 16384-32768 tokens prefilled 5-12 % faster than with 512 (bench/RESULTS.md, issue 19) */
enum { LLT_MAX_BATCH_ROWS = 4096, LLT_DEFAULT_BATCH_ROWS = 2048 };

typedef struct llt_load_opts {
    llt_format format;
    const char *device;     /* "auto", "cpu", "cuda", "cuda:N", "cuda:0,cuda:1" (layers split
                             * over the listed GPUs); NULL (default) = the config's devices,
                             * else "auto": the first CUDA device when the build has the CUDA
                             * backend and the machine a GPU, else "cpu" */
    llt_dtype dtype;        /* compute dtype on the device; LLT_DTYPE_COUNT = checkpoint's */
    int32_t n_threads;      /* CPU threads; 0 = all cores */
    int32_t page_size;      /* 0 = config's */
    int32_t max_pages;      /* 0 = config's / enough for one full context */
    int32_t max_seqs;       /* sequences the KV cache holds at once; 0 = 1 */
    const int32_t *layer_split; /* layers per listed device (one entry each), or NULL = in
                                 * proportion to each GPU's free memory */
    bool no_cache;          /* HF: do not write the converted native cache */
    llt_dtype kv_dtype;     /* KV cache dtype: F32, F16, BF16 or F8_E4M3 (e4m3 with a scale per
                             * token and kv head; the CUDA backend only); LLT_DTYPE_COUNT
                             * (default) = the config's. The CPU cache holds F32/F16/BF16; the
                             * CUDA cache holds the compute dtype or F8_E4M3. Anything else is
                             * refused at load (LLT_ERR_INVALID_ARG / LLT_ERR_UNSUPPORTED). */
    int32_t batch_rows;     /* rows one forward pass of the CUDA backend takes (a longer batch
                             * runs as several passes): 1..LLT_MAX_BATCH_ROWS, 0 = the backend's
                             * default (LLT_DEFAULT_BATCH_ROWS). Activation memory grows with
                             * it; the CPU backend keeps its own chunks and ignores it. */
} llt_load_opts;

void llt_load_opts_init(llt_load_opts *o);
llt_status llt_model_load(const char *path, const llt_load_opts *opts, llt_model **out, llt_error *err);
/* Builds a model with random weights of the given shape (benchmarks, tests). */
llt_status llt_model_random(const llt_config *cfg, uint64_t seed, const llt_load_opts *opts,
                            llt_model **out, llt_error *err);
void llt_model_free(llt_model *m);

const llt_config *llt_model_config(const llt_model *m);
/* The device the model runs on, resolved ("cpu", "cuda:0", "cuda:0,cuda:1"), and why it was
 * picked ("asked for", "the model's devices", "no CUDA device", ...). Borrowed strings. */
const char *llt_model_device(const llt_model *m, const char **why);
/* What "auto" resolves to on this machine ("cuda:0" or "cpu"); *why (optional) says why
 * ("no CUDA device", "this build has no CUDA backend", ...). Static strings. */
const char *llt_device_auto(const char **why);
/* Borrowed; NULL for a model without a tokenizer (random weights). */
const llt_tokenizer *llt_model_tokenizer(const llt_model *m);

/* Teacher-forced forward of one sequence from position 0, no state kept (the specification's
 * forward(input_ids) -> logits). logits: [n, vocab_size] float32, caller-allocated.
 * hidden (optional, may be NULL): [n_layers, n, hidden_size], the residual stream after each
 * layer; final_norm (optional): [n, hidden_size]. */
llt_status llt_model_forward(llt_model *m, const int32_t *ids, size_t n, float *logits,
                             float *hidden, float *final_norm, llt_error *err);

/* ---- batched, stateful decoding over the paged KV cache ------------------------------ */

typedef struct llt_kv_cache llt_kv_cache;

/* One step's work: tokens of one or several sequences. Tokens of the same sequence are
 * consecutive and in order; each is appended at the sequence's current length. */
typedef struct llt_batch {
    int32_t n_tokens;
    const int32_t *tokens;   /* [n_tokens] */
    const int32_t *seq_ids;  /* [n_tokens] */
    const int8_t *want_logits; /* [n_tokens] or NULL = only the last token of each sequence */
} llt_batch;

/* The model's own KV cache (created with the model, sized by load opts). */
llt_kv_cache *llt_model_kv_cache(llt_model *m);

/* Runs the batch; logits: [rows, vocab] for the rows that want logits, in batch order.
 * *n_rows_out gets that count. LLT_ERR_FULL when the pool cannot hold the new tokens: then
 * nothing was appended to any sequence. */
llt_status llt_model_decode(llt_model *m, const llt_batch *batch, float *logits,
                            int32_t *n_rows_out, llt_error *err);

/* ---- paged KV cache (the specification's PageKVCache) -------------------------------- */

typedef struct llt_kv_cache_opts {
    int32_t n_layers, n_kv_heads, head_dim;
    int32_t page_size;   /* tokens per page */
    int32_t max_pages;   /* pages in the pool (shared by all layers' K and V) */
    int32_t max_seqs;    /* sequence slots */
    llt_dtype kv_dtype;  /* F32, F16, BF16, F8_E4M3 (kv/paged_cache.h) */
} llt_kv_cache_opts;

llt_status llt_kv_cache_create(const llt_kv_cache_opts *o, llt_kv_cache **out, llt_error *err);
void llt_kv_cache_free(llt_kv_cache *c);

llt_status llt_kv_seq_create(llt_kv_cache *c, int32_t *seq_id, llt_error *err);
/* A new sequence sharing src's pages (reference-counted, copy-on-write on first write). */
llt_status llt_kv_seq_fork(llt_kv_cache *c, int32_t src, int32_t *seq_id, llt_error *err);
void llt_kv_seq_free(llt_kv_cache *c, int32_t seq_id);
int32_t llt_kv_seq_len(const llt_kv_cache *c, int32_t seq_id);
int32_t llt_kv_pages_in_use(const llt_kv_cache *c);
int32_t llt_kv_pages_free(const llt_kv_cache *c);

/* Appends n tokens' keys and values of one layer: k, v float32 [n, n_kv_heads, head_dim].
 * The sequence's length grows when the last layer is written. */
llt_status llt_kv_cache_allocate(llt_kv_cache *c, int32_t seq_id, int32_t layer,
                                 const float *k, const float *v, int32_t n, llt_error *err);

/* What the attention op reads: the pool of one layer and a sequence's block table. */
typedef struct llt_kv_pages {
    void *k_pool;            /* [max_pages, page_size, n_kv_heads, head_dim] of kv_dtype */
    void *v_pool;            /* same */
    const int32_t *block_table; /* [n_blocks] page indices of the sequence, in order */
    int32_t n_blocks;
    int32_t seq_len;
    int32_t page_size, n_kv_heads, head_dim;
    llt_dtype dtype;
} llt_kv_pages;
llt_status llt_kv_cache_get_pages(const llt_kv_cache *c, int32_t seq_id, int32_t layer,
                                  llt_kv_pages *out, llt_error *err);

/* ---- kernels (CPU reference implementations, float32) -------------------------------- */

/* c[m,n] = a[m,k] @ b[n,k]^T (weights are stored row-major [out, in]). */
void llt_gemm_f32(const float *a, const float *b, float *c, int64_t m, int64_t n, int64_t k);
/* y[n,d] = x / rms(x) * w */
void llt_rmsnorm_f32(const float *x, const float *w, float *y, int64_t n, int64_t d, float eps);
/* sin/cos caches [max_pos, dim/2]. */
llt_status llt_rotary_build(float base, int32_t dim, int32_t max_pos, float *sin_out,
                            float *cos_out, llt_error *err);
/* Rotates t[n_heads, head_dim] in place at position pos; adjacent pairs (2i, 2i+1). */
void llt_rotary_apply(float *t, int32_t n_heads, int32_t head_dim, const float *sin_cache,
                      const float *cos_cache, int32_t pos);
/* Decode attention of one query q[n_heads, head_dim] over a sequence's pages.
 * out[n_heads, head_dim]. scale = 1/sqrt(head_dim) when 0. */
llt_status llt_page_attention_f32(const float *q, int32_t n_heads, const llt_kv_pages *kv,
                                  float scale, float *out, llt_error *err);

/* ---- sampling ------------------------------------------------------------------------ */

typedef struct llt_sampler_params {
    float temperature; /* 0 = greedy */
    float top_p;       /* 1 = off */
    int32_t top_k;     /* 0 = off */
    uint64_t seed;
} llt_sampler_params;

typedef struct llt_sampler llt_sampler;
llt_status llt_sampler_create(const llt_sampler_params *p, int32_t vocab_size, llt_sampler **out, llt_error *err);
void llt_sampler_free(llt_sampler *s);
/* logits [vocab] may be modified in place. */
int32_t llt_sampler_sample(llt_sampler *s, float *logits);

/* ---- generation ---------------------------------------------------------------------- */

typedef struct llt_gen_params {
    int32_t max_new_tokens;   /* default 32 */
    float temperature;        /* default 0.8 */
    float top_p;              /* default 0.9 */
    int32_t top_k;            /* default 0 */
    uint64_t seed;            /* default: from the clock */
    bool add_bos;             /* default true */
    bool parse_special;       /* default false */
} llt_gen_params;
void llt_gen_params_init(llt_gen_params *p);

typedef enum llt_stop_reason {
    LLT_STOP_NONE = 0,     /* not finished (or a batch: see each prompt's callback) */
    LLT_STOP_EOG,          /* the model produced an end-of-generation token */
    LLT_STOP_MAX_TOKENS,   /* max_new_tokens reached */
    LLT_STOP_CONTEXT,      /* the next position would pass the context / KV cache */
    LLT_STOP_CALLBACK      /* the callback returned non-zero */
} llt_stop_reason;

typedef struct llt_gen_stats {
    int32_t n_prompt, n_generated;
    double load_s, prompt_s, gen_s;  /* wall seconds */
    llt_stop_reason stop;            /* why llt_generate stopped */
    int32_t n_ctx;                   /* the context the sequence could use (tokens) */
    int32_t n_preempted;             /* a batch: sequences preempted when the KV pool filled
                                      * (then recomputed; each also logged at debug level) */
} llt_gen_stats;

/* Called with each complete UTF-8 piece. Return non-zero to stop. index = prompt index in
 * a batch (0 for a single prompt). */
typedef int (*llt_token_cb)(int32_t index, const char *piece, size_t len, int32_t token, void *user);

llt_status llt_generate(llt_model *m, const char *prompt, const llt_gen_params *p,
                        llt_token_cb cb, void *user, llt_gen_stats *stats, llt_error *err);

/* Runs n prompts with up to `parallel` sequences in flight, one forward pass per step for
 * all of them. Each prompt is sampled with seed p->seed + index. */
llt_status llt_generate_batch(llt_model *m, const char *const *prompts, int32_t n, int32_t parallel,
                              const llt_gen_params *p, llt_token_cb cb, void *user,
                              llt_gen_stats *stats, llt_error *err);

/* ---- chat sessions ------------------------------------------------------------------- */

/* A multi-turn conversation on one model whose tokens stay in the model's KV cache between
 * turns (it holds one of the cache's max_seqs sequence slots while it has a conversation). */
typedef struct llt_chat llt_chat;
llt_status llt_chat_create(llt_model *m, llt_chat **out, llt_error *err);
void llt_chat_free(llt_chat *c);
/* text[0..len): the whole conversation as the chat template rendered it, generation prompt
 * included. Tokenized with special tokens parsed (BOS put first when p->add_bos and the text
 * does not start with it); the cache keeps the longest common token prefix with what it holds,
 * drops the rest, prefills only the remaining tokens, and the reply is generated and streamed
 * through cb (stopping at the vocabulary's end-of-generation set: EOS, <|eot_id|>, <|im_end|>,
 * ...). The reply's tokens stay cached. stats->n_prompt = tokens prefilled by this turn. On an
 * error the session is reset. */
llt_status llt_chat_turn(llt_chat *c, const char *text, size_t len, const llt_gen_params *p,
                         llt_token_cb cb, void *user, llt_gen_stats *stats, llt_error *err);
/* Forgets the conversation and frees its cache pages. */
void llt_chat_reset(llt_chat *c);
int32_t llt_chat_n_cached(const llt_chat *c); /* tokens the session's sequence holds */
int32_t llt_chat_n_reused(const llt_chat *c); /* tokens the last turn kept from the cache */

/* ---- conversion ---------------------------------------------------------------------- */

/* Writes the native folder (model.json, state_dict.pt, tokenizer files) from src. */
llt_status llt_convert(const char *src, llt_format from, const char *dst_dir, llt_dtype dtype,
                       llt_error *err);

/* ---- chat templates (Jinja2 subset; src/template/) ------------------------------------------ */

/* A model's chat template (the Jinja text in tokenizer_config.json / GGUF
 * tokenizer.chat_template), rendered exactly as Hugging Face transformers renders it (Jinja2
 * sandbox, trim_blocks, lstrip_blocks, loopcontrols, raise_exception, strftime_now, tojson =
 * json.dumps). Anything the engine cannot reproduce exactly fails with a message naming the
 * construct and its line:column; a template's raise_exception fails with its own message. */
typedef struct llt_template llt_template;
typedef struct llt_chat_opts {
    bool add_generation_prompt;
    const char *bos_token;   /* NULL -> "" */
    const char *eos_token;   /* NULL -> "" */
    const char *tools_json;  /* JSON array text or NULL (then `tools` is undefined) */
    const char *date;        /* "YYYY-MM-DD" pins strftime_now; NULL -> today (UTC) */
} llt_chat_opts;
llt_status llt_template_parse(const char *src, size_t len, llt_template **out, llt_error *err);
/* messages_json: the OpenAI-style messages array as JSON text. *out is malloc'd, NUL-terminated; free with free(). */
llt_status llt_template_render(const llt_template *t, const char *messages_json, size_t len,
                               const llt_chat_opts *o, char **out, size_t *out_len, llt_error *err);
void llt_template_free(llt_template *t);
/* The chat template a model path carries (GGUF key tokenizer.chat_template; HF/native folder:
   chat_template.jinja, or tokenizer_config.json "chat_template", string or the
   list-of-{name,template} form -> "default"), plus the BOS/EOS token texts (tokenizer_config.json
   bos_token/eos_token, else the vocabulary's). Each out string malloc'd (free()); NULL when absent.
   No template -> LLT_ERR_NOT_FOUND with a message saying to use --chat-template FILE. */
llt_status llt_chat_template_from_path(const char *model_path, char **template_src, char **bos, char **eos, llt_error *err);

/* ---- ABI description (for bindings that mirror the structs, e.g. Python ctypes) ---------- */

/* sizeof a public struct by its name ("llt_config", "llt_gen_params", ...); 0 when unknown. */
size_t llt_abi_sizeof(const char *type);
/* offsetof a field of a public struct ("llt_config", "head_dim"); SIZE_MAX when unknown. */
size_t llt_abi_offsetof(const char *type, const char *field);
size_t llt_config_sizeof(void); /* == llt_abi_sizeof("llt_config") */

#ifdef __cplusplus
}
#endif
#endif /* LLAMA_TRITON_H */
