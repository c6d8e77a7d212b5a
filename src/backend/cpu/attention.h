/* attention.h: paged attention on the CPU (the specification's page_attention kernel).
 *
 * Queries attend to keys/values read through a sequence's block table (kv/paged_cache.h),
 * stored as F32, F16, BF16 or F8_E4M3 (e4m3 with a scale per token and kv head); compute is
 * float32 with an online (streaming) softmax, so no [seq_len] score buffer is needed and one
 * pass over the pages suffices.
 *   causal: query i of a chunk sits at position q_pos0 + i and sees keys [0, q_pos0 + i];
 *   GQA:    query head h reads kv head h / (n_heads / n_kv_heads) (MQA: n_kv_heads = 1).
 * The K/V of the chunk's own positions must already be written (llt_kv_write_f32) into pages
 * reserved with llt_kv_reserve; they need not be committed yet (the length grows only after
 * the last layer).
 *
 * Work splits by kv head: a call handles the n_heads/n_kv_heads query heads that share one kv
 * head, so each K/V row is converted and read once per group, and a range of the step's rows
 * (llt_cpu_attention_group_rows after llt_cpu_attention_prepare); calls on different heads or
 * rows are independent. */
#ifndef LLT_BACKEND_CPU_ATTENTION_H
#define LLT_BACKEND_CPU_ATTENTION_H

#include "kv/paged_cache.h"

/* Floats of scratch one thread needs (per call of the single-threaded op or per thread of
 * the task): converted K/V rows and the softmax state of one head group. */
int64_t llt_cpu_attention_scratch_floats(const llt_kv_cache *c, int32_t n_heads);

/* One sequence's chunk of queries, single-threaded.
 * q, out: [n_q, n_heads, head_dim] float32. scale: usually 1/sqrt(head_dim).
 * scratch: llt_cpu_attention_scratch_floats(c, n_heads) floats.
 * Preconditions (checked by the caller once per step): seq live, n_heads a multiple of
 * n_kv_heads, positions [0, q_pos0 + n_q) reserved. */
void llt_cpu_attention(const llt_kv_cache *c, int32_t layer, int32_t seq, const float *q,
                       int32_t n_q, int32_t q_pos0, int32_t n_heads, float scale, float *out,
                       float *scratch);

/* Kernel variant: AUTO picks AVX2 + FMA + F16C when the CPU has them (tests force each). */
typedef enum llt_attn_isa { LLT_ATTN_ISA_AUTO = 0, LLT_ATTN_ISA_SCALAR } llt_attn_isa;

/* A step's rows of one sequence, for the batched (threaded) form. */
typedef struct llt_attn_seq {
    int32_t seq;     /* KV sequence id */
    int32_t row0;    /* first row of q / out belonging to it */
    int32_t n_q;     /* its rows (consecutive) */
    int32_t q_pos0;  /* position of its first row */
} llt_attn_seq;

typedef struct llt_attn_ctx {
    const llt_kv_cache *c;
    int32_t layer;
    const llt_attn_seq *seqs; /* [n_seqs] */
    int32_t n_seqs;
    const float *q;           /* [n_rows, n_heads, head_dim] */
    float *out;               /* [n_rows, n_heads, head_dim] */
    int32_t n_heads;
    float scale;
    float *scratch;           /* [n_threads, llt_cpu_attention_scratch_floats] */
    int64_t scratch_stride;   /* floats per thread */
    /* filled by llt_cpu_attention_prepare */
    int32_t n_rows;
    int32_t *row_seq;         /* [n_rows] index into seqs; caller-provided buffer */
    llt_attn_isa isa;         /* 0 = AUTO */
} llt_attn_ctx;

/* Fills n_rows and row_seq (a caller buffer of at least the step's row count, rows
 * of seqs must be contiguous from 0). Checks every sequence (live, positions reserved,
 * head counts) and names the offending one. */
llt_status llt_cpu_attention_prepare(llt_attn_ctx *ctx, llt_error *err);
/* Kv head group g for the step's rows [r0, r1), with the scratch of `thread`: the same bits as
 * row by row (r0 + 1 = r1), but consecutive rows of one sequence (a prompt chunk) walk their
 * pages together, up to LLT_CPU_ATTN_TILE at a time, each page converted and read once for them. */
enum { LLT_CPU_ATTN_TILE = 16 };
void llt_cpu_attention_group_rows(const llt_attn_ctx *ctx, int32_t g, int32_t r0, int32_t r1, int32_t thread);

#endif
