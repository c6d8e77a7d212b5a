/* cmd_chat.c: `llama-triton chat MODEL [--system TEXT] [--chat-template FILE] [flags]`: an
 * interactive multi-turn chat on stdin/stdout. Each line read is a user message; the reply
 * streams to stdout, then a newline. /exit (or end of input) leaves, /reset starts over. The
 * conversation stays in the KV cache between turns, so a turn prefills only what is new.
 * Ctrl-C stops the current reply (a SIGINT handler sets a flag the token callback reads); at the
 * prompt it gives a fresh prompt: it never ends the program (/exit or end of input do). The "> " prompt and per-turn statistics go to stderr, so stdout holds only
 * the replies (scripted use: `printf 'Hi\nMore\n' | llama-triton chat MODEL`). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat_cli.h"

static volatile sig_atomic_t g_interrupted; /* set by SIGINT; read by the token callback */

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static int on_piece(int32_t index, const char *piece, size_t len, int32_t token, void *user) {
    (void)index, (void)token, (void)user;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return g_interrupted != 0;
}

/* SIGINT without SA_RESTART: a read at the prompt returns EINTR, and the loop prompts again. */
static void install_sigint(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

static void trim_newline(char *s, ssize_t *n) {
    while (*n > 0 && (s[*n - 1] == '\n' || s[*n - 1] == '\r')) s[--*n] = '\0';
}

static int one_turn(cli_chat *c, const char *line, const llt_gen_params *p, bool verbose) {
    llt_gen_stats st;
    llt_error err = {0};
    g_interrupted = 0;
    llt_status s = cli_chat_say(c, line, p, on_piece, NULL, &st, &err);
    fputc('\n', stdout);
    fflush(stdout);
    if (s != LLT_OK) return cli_runtime_error(&err), 1;
    if (st.stop == LLT_STOP_CALLBACK) fputs("[stopped]\n", stderr);
    if (st.stop == LLT_STOP_CONTEXT) fputs("[the context is full: /reset to start over]\n", stderr);
    if (verbose)
        fprintf(stderr, "[prompt: %d new tokens (%d reused from the cache); reply: %d tokens, %.1f tokens/s]\n",
                (int)st.n_prompt, (int)llt_chat_n_reused(c->chat), (int)st.n_generated,
                st.gen_s > 0 ? st.n_generated / st.gen_s : 0.0);
    return 0;
}

int cli_chat_loop(llt_model *m, const char *model_path, const cli_chat_flags *f, const llt_gen_params *p) {
    cli_chat c;
    int rc = cli_chat_open(&c, m, model_path, f->chat_template, f->system);
    if (rc >= 0) return rc;
    c.date = f->date;
    install_sigint();
    bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    llt_gen_params gp = *p;
    rc = 0;
    for (;;) {
        if (tty) fputs("> ", stderr), fflush(stderr);
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0 && g_interrupted && !feof(stdin)) { /* Ctrl-C at the prompt: a fresh prompt */
            clearerr(stdin);
            g_interrupted = 0;
            fputc('\n', stderr);
            continue;
        }
        if (n < 0) break; /* end of input */
        trim_newline(line, &n);
        if (n == 0) continue;
        if (strcmp(line, "/exit") == 0 || strcmp(line, "/quit") == 0) break;
        if (strcmp(line, "/reset") == 0) {
            cli_chat_reset(&c);
            fputs("[conversation reset]\n", stderr);
            continue;
        }
        if (one_turn(&c, line, &gp, f->verbose)) rc = 1; /* a failed turn is reported; the chat goes on */
        gp.seed++; /* a fresh draw per turn, reproducible from --seed */
    }
    free(line);
    cli_chat_close(&c);
    return rc;
}

int cli_chat_once(llt_model *m, const char *model_path, const cli_chat_flags *f, const char *prompt,
                  const llt_gen_params *p) {
    cli_chat c;
    int rc = cli_chat_open(&c, m, model_path, f->chat_template, f->system);
    if (rc >= 0) return rc;
    c.date = f->date;
    rc = one_turn(&c, prompt, p, f->verbose);
    cli_chat_close(&c);
    return rc;
}
