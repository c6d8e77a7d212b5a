/* chat_cli.h: the conversation behind `llama-triton chat` and `run --chat` (chat_cli.c). */
#ifndef LLT_APP_CHAT_CLI_H
#define LLT_APP_CHAT_CLI_H

#include "base/json.h"
#include "cli.h"

enum { CLI_CHAT_MAX_TOKENS = 512 }; /* -n default of chat turns */

/* The chat flags of `run --chat` and `chat`. */
typedef struct cli_chat_flags {
    const char *system, *chat_template, *date;
    bool verbose; /* per-turn statistics on stderr */
} cli_chat_flags;

typedef struct cli_chat {
    llt_model *m;
    llt_template *tmpl;
    char *bos, *eos;      /* texts given to the template as bos_token / eos_token */
    const char *system;   /* --system: the first message, kept across /reset */
    const char *date;     /* --date: pins strftime_now */
    llt_chat *chat;       /* the session: the conversation's tokens stay in the KV cache */
    llt_sbuf msgs;        /* the messages as a JSON array, kept open ("[{...}, {...}") */
} cli_chat;

/* Template from template_file, else the model's; a model without one gets a message pointing
 * at --chat-template. Returns -1 to go on, else the exit code. */
int cli_chat_open(cli_chat *c, llt_model *m, const char *model_path, const char *template_file, const char *system);
/* One user turn: render the conversation with the generation prompt, run it through the
 * session (the reply streams through cb), append the reply as the assistant's message. */
llt_status cli_chat_say(cli_chat *c, const char *user_text, const llt_gen_params *p, llt_token_cb cb, void *user,
                        llt_gen_stats *st, llt_error *err);
/* Back to the system message alone; the session's cache is freed. */
void cli_chat_reset(cli_chat *c);
void cli_chat_close(cli_chat *c);

/* `chat`: the interactive loop on stdin/stdout (cmd_chat.c). */
int cli_chat_loop(llt_model *m, const char *model_path, const cli_chat_flags *f, const llt_gen_params *p);
/* `run --chat`: one user turn, reply on stdout. */
int cli_chat_once(llt_model *m, const char *model_path, const cli_chat_flags *f, const char *prompt,
                  const llt_gen_params *p);

#endif
