/* batch.h: llt_generate_batch with per-prompt token counts (the CLI's JSON "n_tokens").
 * The callback only sees complete pieces (as with llt_generate), so it cannot count tokens
 * whose bytes were held back; n_tokens[i] counts every generated token of prompt i (an
 * end-of-generation token excluded). */
#ifndef LLT_ENGINE_BATCH_H
#define LLT_ENGINE_BATCH_H

#include "base/error.h"

llt_status llt_generate_batch_counts(llt_model *m, const char *const *prompts, int32_t n,
                                     int32_t parallel, const llt_gen_params *p, llt_token_cb cb,
                                     void *user, int32_t *n_tokens, llt_gen_stats *stats,
                                     llt_error *err);

#endif
