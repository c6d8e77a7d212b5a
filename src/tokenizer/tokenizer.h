/* tokenizer.h: the internals behind the public llt_tokenizer (SentencePiece and byte-level BPE).
 *
 * One struct serves every kind of tokenizer. The vocabulary stores, per id, the bytes that the
 * encoder matches against:
 *  - SentencePiece (spm.c): the piece as written in the model ("▁the", "<0x0A>", "<s>");
 *  - byte-level BPE (bpe.c): the raw bytes of the token (GPT-2's byte<->unicode mapping is
 *    undone at load time), special/added tokens keep their text.
 * Loaders: spm_proto.c (tokenizer.model protobuf), tiktoken.c (Llama 3 tokenizer.model),
 * hf_json.c (tokenizer.json), gguf_vocab.c (GGUF tokenizer.ggml.*). tokenizer.c is the front
 * door (file kind detection, special-token splitting, BOS/EOS, the cap protocol), decode.c the
 * way back. */
#ifndef LLT_TOKENIZER_TOKENIZER_H
#define LLT_TOKENIZER_TOKENIZER_H

#include "base/error.h"
#include "base/utf8.h"
#include "formats/gguf.h"

/* Builds a tokenizer from a GGUF's tokenizer.ggml.* metadata (used by the model loader).
 * Supported tokenizer.ggml.model: "llama" (SentencePiece BPE) and "gpt2" (byte-level BPE). */
llt_status llt_tokenizer_from_gguf(const llt_gguf *g, llt_tokenizer **out, llt_error *err);

/* ---- vocabulary (vocab.c) ---------------------------------------------------------------- */

/* Token types: the numbers of sentencepiece's ModelProto and GGUF's tokenizer.ggml.token_type. */
typedef enum llt_tok_type {
    LLT_TT_NONE = 0,  /* an id no file defined (a hole) */
    LLT_TT_NORMAL = 1,
    LLT_TT_UNKNOWN = 2,
    LLT_TT_CONTROL = 3,
    LLT_TT_USER = 4,  /* user-defined: always matched whole in text */
    LLT_TT_UNUSED = 5,
    LLT_TT_BYTE = 6   /* SentencePiece byte fallback piece <0xXX> */
} llt_tok_type;

typedef struct llt_vocab {
    int32_t n;          /* ids are 0..n-1 */
    uint32_t *off;      /* [n] offset of the token's bytes in blob */
    uint32_t *len;      /* [n] */
    float *score;       /* [n] SentencePiece score (BPE: unused) */
    uint8_t *type;      /* [n] llt_tok_type */
    char *blob;         /* every token's bytes, each followed by a NUL */
    size_t blob_len, blob_cap;
    int32_t *table;     /* open-addressing hash: bytes -> id, -1 = empty */
    uint32_t *tags;     /* beside table: high hash bits, so most misses skip the compare */
    uint32_t mask;      /* table size - 1 */
    uint32_t max_len;   /* longest token in bytes */
} llt_vocab;

llt_status llt_vocab_init(llt_vocab *v, int64_t n, const char *what, llt_error *err);
/* Ids as files write them (a largest id `n - 1` for `defined` tokens) must be dense enough to be
 * a real vocabulary: a few holes, not one id of 2^26 that costs a 2^26-entry table (memory stays
 * proportional to the file). */
llt_status llt_vocab_check_dense(int64_t n, int64_t defined, const char *what, llt_error *err);
/* Sets token `id` once; a second set of the same id is a format error. */
llt_status llt_vocab_set(llt_vocab *v, int32_t id, const char *s, size_t len, float score,
                         llt_tok_type type, const char *what, llt_error *err);
/* Builds the bytes -> id index. Duplicate texts keep the lowest id. */
llt_status llt_vocab_index(llt_vocab *v, const char *what, llt_error *err);
int32_t llt_vocab_find(const llt_vocab *v, const char *s, size_t len);
static inline const char *llt_vocab_text(const llt_vocab *v, int32_t id, size_t *len) {
    *len = v->len[id];
    return v->blob + v->off[id];
}
void llt_vocab_free(llt_vocab *v);
uint64_t llt_hash_bytes(const void *p, size_t n);

/* ---- growable id list ------------------------------------------------------------------ */

typedef struct llt_ids {
    int32_t *v;
    size_t n, cap;
} llt_ids;
llt_status llt_ids_push(llt_ids *ids, int32_t id, llt_error *err);

/* ---- the pair-merge engine (merge.c), shared by SentencePiece BPE and byte-level BPE ------ */

/* Symbols are a doubly linked list over one text; merging joins a symbol with its right
 * neighbour. */
typedef struct llt_sym {
    int32_t prev, next;  /* -1 at the ends */
    uint32_t start, len; /* bytes of the text */
} llt_sym;

/* Says whether text[start, start+len_l+len_r) may be merged and with what priority: higher
 * first, ties to the leftmost pair (SentencePiece: the score; BPE: minus the rank). */
typedef bool (*llt_pair_fn)(const void *ctx, const char *text, uint32_t start, uint32_t len_l,
                            uint32_t len_r, double *prio);

/* Scratch space reused across calls (one per encode call; free with llt_merge_ws_free). */
typedef struct llt_merge_ws {
    void *heap;
    size_t cap;
} llt_merge_ws;
void llt_merge_ws_free(llt_merge_ws *ws);

/* Merges syms[0..n) (initially linked in order) until no pair is mergeable. O(n log n). */
llt_status llt_merge_run(const char *text, llt_sym *syms, int32_t n, llt_pair_fn fn,
                         const void *ctx, llt_merge_ws *ws, llt_error *err);

/* ---- pair -> rank table for BPE merges (bpe_merges.c) ------------------------------------- */

typedef struct llt_merges {
    uint64_t *keys;   /* (left id << 32 | right id) + 1, 0 = empty */
    int32_t *rank;
    uint32_t mask;
    int64_t n;
} llt_merges;
llt_status llt_merges_init(llt_merges *m, int64_t n, llt_error *err);
/* Adds (l, r) with its rank (lower merges first); a repeated pair keeps its first rank. */
/* Adds (l, r) -> rank; returns -1, or the rank of an earlier identical merge (then nothing is
 * added: the loaders refuse duplicates). */
int32_t llt_merges_add(llt_merges *m, int32_t l, int32_t r, int32_t rank);
int32_t llt_merges_rank(const llt_merges *m, int32_t l, int32_t r); /* -1 when absent */
void llt_merges_free(llt_merges *m);

/* ---- byte-level (GPT-2) byte <-> unicode mapping (bytelevel.c) ---------------------------- */

/* The code point that stands for byte b in GPT-2 vocabularies. */
uint32_t llt_bytelevel_cp(uint8_t b);
/* Decodes a byte-level string ("Ġthe") into raw bytes ("\x20the"); false when a character is
 * not one of the 256 byte characters. out must hold len bytes. */
bool llt_bytelevel_decode(const char *s, size_t len, char *out, size_t *out_len);
/* Encodes raw bytes into the byte-level form; out must hold 2*len + 1 bytes. */
size_t llt_bytelevel_encode(const char *s, size_t len, char *out);

/* UTF-8 helpers: base/utf8.h (llt_utf8_valid_len, llt_utf8_put). */

/* ---- pre-tokenizers (pretok.c): regex splits before byte-level BPE --------------------- */

#define LLT_PRETOK_MAX 4
typedef struct llt_pretok {
    int n;                        /* regexes applied in sequence, each splitting the chunks */
    void *code[LLT_PRETOK_MAX];   /* pcre2_code_8 * */
    char pattern[LLT_PRETOK_MAX][48]; /* each regex's first bytes, for messages */
} llt_pretok;

/* Well-known pre-tokenizers by GGUF tokenizer.ggml.pre name ("llama-bpe", "gpt-2", ...). */
const char *llt_pretok_regex_for(const char *pre_name);
extern const char *const LLT_REGEX_LLAMA3;
extern const char *const LLT_REGEX_GPT2;
llt_status llt_pretok_add(llt_pretok *p, const char *regex, size_t len, llt_error *err);
void llt_pretok_free(llt_pretok *p);
/* Calls fn for every chunk of text (matches and the gaps between them), in order. */
typedef llt_status (*llt_chunk_fn)(void *ctx, const char *s, size_t len, llt_error *err);
llt_status llt_pretok_split(const llt_pretok *p, const char *text, size_t len, llt_chunk_fn fn,
                            void *ctx, llt_error *err);

/* ---- special tokens (special.c) ------------------------------------------------------------ */

typedef struct llt_trie_node {
    int32_t child, sibling; /* first child / next sibling, -1 none */
    int32_t token;          /* token ending here, -1 none */
    uint8_t byte;
} llt_trie_node;

typedef struct llt_special {
    llt_trie_node *nodes;   /* node 0 is the root */
    int32_t n, cap;
    uint8_t first[256];     /* bytes that start some special token */
} llt_special;

/* ---- the tokenizer ------------------------------------------------------------------------ */

typedef enum llt_tok_kind {
    LLT_TOKK_SPM_BPE = 0,   /* SentencePiece BPE (Llama 1/2, Mistral, TinyLlama) */
    LLT_TOKK_SPM_UNIGRAM,   /* SentencePiece unigram */
    LLT_TOKK_BYTE_BPE       /* byte-level BPE (GPT-2, Llama 3) */
} llt_tok_kind;

#define LLT_TOK_MAX_EOG 16

struct llt_tokenizer {
    llt_tok_kind kind;
    llt_vocab vocab;
    int32_t bos, eos, unk, pad;      /* -1 when absent */
    int32_t eog[LLT_TOK_MAX_EOG];    /* end-of-generation ids: eos, eot, eom, ... */
    int n_eog;
    bool add_bos;                    /* the vocabulary asks for BOS (LLT_TOK_ADD_BOS honours it) */
    llt_special special;             /* control + user-defined tokens, for splitting text */
    /* SentencePiece */
    bool add_dummy_prefix, remove_extra_ws, escape_ws, byte_fallback;
    bool split_words;                /* no piece has '▁' after another character: BPE may run
                                      * word by word (same result, cache-friendly) */
    int32_t byte_id[256];            /* SPM: <0xXX> piece ids; byte BPE: token of each byte */
    uint8_t *charsmap;               /* normalizer's precompiled_charsmap (owned), or NULL */
    size_t charsmap_len;
    float min_score;                 /* unigram: <unk> scores min_score - 10 */
    /* byte-level BPE */
    llt_merges merges;               /* pair ranks; empty: rank = id of the joined bytes (tiktoken) */
    bool ignore_merges;              /* a chunk that is a token is taken whole (Llama 3) */
    llt_pretok pre;
    char *disp_blob;                 /* byte BPE: the pieces as the vocabulary writes them */
    uint32_t *disp_off;
};

/* Allocates an empty tokenizer (ids -1, byte ids -1). */
llt_status llt_tok_alloc(llt_tokenizer **out, llt_error *err);
/* After the vocabulary is set: builds the index, the special-token trie, byte ids, EOG set,
 * and (byte BPE) the display pieces. Checks that what the encoder relies on exists. */
llt_status llt_tok_finish(llt_tokenizer *t, const char *what, llt_error *err);
/* Adds id to the EOG set (ignores -1 and repeats). */
void llt_tok_add_eog(llt_tokenizer *t, int32_t id);

/* Loaders (each fills a fresh tokenizer from one file kind). */
llt_status llt_spm_load_proto(const uint8_t *data, size_t size, const char *what,
                              llt_tokenizer **out, llt_error *err);
llt_status llt_tiktoken_load(const char *data, size_t size, const char *path,
                             llt_tokenizer **out, llt_error *err);
llt_status llt_hf_json_load(const char *data, size_t size, const char *what,
                            llt_tokenizer **out, llt_error *err);

/* Encoders of one text fragment (no special tokens inside). at_start: the fragment begins the
 * text (SentencePiece adds its dummy prefix only there). */
llt_status llt_spm_encode(const llt_tokenizer *t, const char *text, size_t len, bool at_start,
                          llt_ids *out, llt_error *err);
llt_status llt_bpe_encode(const llt_tokenizer *t, const char *text, size_t len, llt_ids *out,
                          llt_error *err);
/* SentencePiece normalisation (spm_norm.c): charsmap, whitespace rules, '▁' escaping.
 * *out is malloc'd. */
llt_status llt_spm_normalize(const llt_tokenizer *t, const char *text, size_t len, bool at_start,
                             char **out, size_t *out_len, llt_error *err);

/* Special-token splitting: calls fn with text fragments (id -1) and matched tokens. */
typedef llt_status (*llt_frag_fn)(void *ctx, const char *s, size_t len, size_t offset, int32_t id,
                                  llt_error *err);
llt_status llt_special_build(llt_special *sp, const llt_vocab *v, llt_error *err);
llt_status llt_special_split(const llt_tokenizer *t, const char *text, size_t len,
                             bool parse_control, llt_frag_fn fn, void *ctx, llt_error *err);
void llt_special_free(llt_special *sp);

/* The bytes a token stands for when decoding: control tokens none, SentencePiece '▁' -> ' ',
 * <0xXX> -> the byte, <unk> -> " ⁇ ". Returns the length; *out points into the vocabulary or
 * into buf, which must hold vocab.max_len + 8 bytes. */
size_t llt_tok_surface(const llt_tokenizer *t, int32_t id, char *buf, const char **out);

#endif
