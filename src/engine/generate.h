/* generate.h: the pieces of llt_generate (generator.c) that a chat session (chat.c) reuses:
 * encoding with the caller's buffer protocol, chunked prefill, priming the streaming decoder,
 * and the sample -> stream -> decode loop. */
#ifndef LLT_ENGINE_GENERATE_H
#define LLT_ENGINE_GENERATE_H

#include "llama_triton.h"

typedef struct llt_gen_run {
    llt_model *m;
    const llt_gen_params *p;
    llt_sampler *smp;
    float *logits;       /* [vocab]: the next token's logits */
    int32_t seq, pos, max_ctx;
    int32_t *history;    /* optional [max_ctx]: the loop writes each token it feeds at its position */
} llt_gen_run;

/* text[0..len) -> *ids (malloc'd), *n tokens; flags as llt_tokenizer_encode. */
llt_status llt_gen_encode(const llt_tokenizer *tok, const char *text, size_t len, unsigned flags, int32_t **ids,
                          size_t *n, llt_error *err);
/* Appends ids to seq in chunks; the last chunk leaves the last token's logits in `logits`. */
llt_status llt_gen_prefill(llt_model *m, int32_t seq, const int32_t *ids, size_t n, float *logits,
                           llt_error *err);
/* Feeds ids through the streaming decoder without output, so the first generated piece keeps
 * (or drops) its leading space exactly as it would inside the whole text. */
void llt_gen_prime_detok(const llt_tokenizer *tok, llt_detok_state *st, const int32_t *ids, size_t n);
/* Sample -> stream -> decode from g->pos until an end-of-generation token, max_new_tokens, the
 * context, or the callback; sets stats->stop and stats->n_generated. */
llt_status llt_gen_decode_loop(llt_gen_run *g, llt_token_cb cb, void *user, llt_gen_stats *stats,
                               llt_detok_state *st, llt_error *err);

#endif
