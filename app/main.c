/* llama-triton: entry point. `llama-triton MODEL [flags]` generates; other verbs are
 * subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#ifndef LLT_HAVE_SERVER
static int cmd_no_serve(int argc, char **argv) {
    (void)argc, (void)argv;
    fputs("llama-triton: this build has no `serve`: libmicrohttpd was not found when it was "
          "configured (make deps installs libmicrohttpd-dev; then rebuild)\n", stderr);
    return 1;
}
#endif

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} k_cmds[] = {
    {"run", cmd_run, "generate text (the default: llama-triton MODEL -p PROMPT)"},
    {"chat", cmd_chat, "interactive multi-turn chat through the model's chat template"},
    {"tokenize", cmd_tokenize, "print the token ids of a text as a JSON array"},
    {"detokenize", cmd_detokenize, "print the text of token ids"},
    {"convert", cmd_convert, "convert a Hugging Face folder or GGUF file to the native format"},
    {"logits", cmd_logits, "write teacher-forced logits (and hidden states) to safetensors"},
    {"bench", cmd_bench, "measure prompt processing and generation speed"},
#ifdef LLT_HAVE_SERVER
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server (completions, chat, streaming)"},
#else
    {"serve", cmd_no_serve, "(not in this build: libmicrohttpd was missing when it was configured)"},
#endif
    {"template", cmd_template, "render a chat template with a conversation (exact text to stdout)"},
};

static void usage(FILE *f) {
    fprintf(f, "llama-triton %s: Llama inference in C and CUDA\n\n"
               "usage: llama-triton MODEL [-p PROMPT] [-n N] [options]   (see llama-triton run --help)\n"
               "       llama-triton COMMAND [options]\n\ncommands:\n", LLT_VERSION);
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
        fprintf(f, "  %-11s %s\n", k_cmds[i].name, k_cmds[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("llama-triton %s\n", LLT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++)
        if (strcmp(argv[1], k_cmds[i].name) == 0) return k_cmds[i].fn(argc - 1, argv + 1);
    /* Anything else is a model path: `llama-triton MODEL ...` means `run MODEL ...`. */
    return cmd_run(argc, argv);
}
