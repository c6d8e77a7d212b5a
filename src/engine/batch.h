/* batch.h: llt_generate_batch with per-prompt token counts (the CLI's JSON "n_tokens") and
 * per-prompt errors. The callback only sees complete pieces (as with llt_generate), so it
 * cannot count tokens whose bytes were held back; n_tokens[i] counts every generated token of
 * prompt i (an end-of-generation token excluded).
 *
 * prompt_err [n] (or NULL): a prompt that cannot run (NULL, not encodable, no tokens, longer
 * than the context) gets its own error there and the others run; prompt_err[i].status is
 * LLT_OK for each prompt that ran. The call then returns the first such prompt's status with a
 * message counting them. Without prompt_err the first such prompt fails the whole call before
 * anything runs (llt_generate_batch). */
#ifndef LLT_ENGINE_BATCH_H
#define LLT_ENGINE_BATCH_H

#include "base/error.h"

llt_status llt_generate_batch_each(llt_model *m, const char *const *prompts, int32_t n,
                                   int32_t parallel, const llt_gen_params *p, llt_token_cb cb,
                                   void *user, int32_t *n_tokens, llt_error *prompt_err,
                                   llt_gen_stats *stats, llt_error *err);

#endif
