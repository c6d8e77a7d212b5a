/* attention_kernels.h: the inner work of paged attention, one page of keys for one head
 * group at a time (attention.c walks the pages). A scalar reference and an AVX2 + FMA + F16C
 * variant; the variant is picked per call, never stored in a global. */
#ifndef LLT_BACKEND_CPU_ATTENTION_KERNELS_H
#define LLT_BACKEND_CPU_ATTENTION_KERNELS_H

#include "backend/cpu/attention.h"

/* One page's update of a head group's online softmax:
 *   s[h, j] = q_h . k_j * scale; m_h' = max(m_h, s[h, :]); acc_h, l_h rescaled by
 *   exp(m_h - m_h'); acc_h += sum_j exp(s[h, j] - m_h') v_j; l_h += sum_j exp(...). */
typedef struct llt_attn_page {
    const float *q;        /* [G, d] */
    const float *k, *v;    /* cnt rows of d floats, ks / vs floats apart */
    int64_t ks, vs;
    int32_t G, cnt, d;
    int32_t s_stride;      /* >= llt_attn_score_stride(page_size) */
    float scale;
    float *m, *l;          /* [G] running maximum and sum of weights */
    float *s;              /* [G, s_stride] scratch */
    float *acc;            /* [G, d] unnormalised output */
} llt_attn_page;

typedef struct llt_attn_kernels {
    void (*page)(const llt_attn_page *p);
    /* buf[cnt, d] <- cnt rows of d F16 / BF16 values, `stride` elements apart */
    void (*convert)(llt_dtype t, const uint16_t *h, int64_t stride, int32_t cnt, int32_t d,
                    float *buf);
    /* buf[cnt, d] <- cnt rows of d e4m3 bytes, `stride` bytes apart, row j times sc[j * sstride]
     * (an f8 cache's page: kv/paged_cache.h) */
    void (*convert8)(const uint8_t *b, int64_t stride, const float *sc, int64_t sstride, int32_t cnt, int32_t d,
                     float *buf);
} llt_attn_kernels;

/* AVX2 when the CPU has it, isa allows it and head_dim is a multiple of 8; else scalar. */
const llt_attn_kernels *llt_attn_kernels_pick(llt_attn_isa isa, int32_t head_dim);
/* Scores row stride for a page size: rounded up to whole 8-float vectors. */
int32_t llt_attn_score_stride(int32_t page_size);

#endif
