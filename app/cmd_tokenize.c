/* cmd_tokenize.c: `llama-triton tokenize MODEL_OR_TOKENIZER [--no-bos] [--eos] [--parse-special]
 * (-p TEXT | -f FILE)`: prints the ids as a JSON array on one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "cli.h"

static void usage(FILE *f) {
    fputs("usage: llama-triton tokenize MODEL_OR_TOKENIZER [options] (-p TEXT | -f FILE)\n\n"
          "Prints the token ids of the text as a JSON array on one line.\n"
          "MODEL_OR_TOKENIZER: a .gguf file, a SentencePiece or tiktoken tokenizer.model,\n"
          "a tokenizer.json, or a model folder holding one of these.\n\n"
          "options:\n"
          "  -p, --prompt TEXT   the text to tokenize\n"
          "  -f, --file FILE     read the text from FILE ('-' = standard input)\n"
          "  --no-bos            do not add the BOS token\n"
          "  --eos               add the EOS token\n"
          "  --parse-special     recognise special tokens written in the text (<|eot_id|>, <s>, ...)\n"
          "  -h, --help          this help\n", f);
}

static char *read_stdin(size_t *n) {
    size_t cap = 1 << 16, k = 0, r;
    char *b = malloc(cap);
    while (b && (r = fread(b + k, 1, cap - k, stdin)) > 0) {
        k += r;
        if (k == cap) {
            char *p = realloc(b, cap *= 2);
            if (!p) free(b);
            b = p;
        }
    }
    *n = k;
    return b;
}

static int print_ids(const llt_tokenizer *t, const char *text, size_t len, unsigned flags) {
    llt_error err = {0};
    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    llt_status st = ids ? llt_tokenizer_encode(t, text, len, flags, ids, cap, &n, &err) : LLT_ERR_NOMEM;
    if (st == LLT_ERR_FULL) { /* more ids than bytes + 16 cannot happen, but honour the protocol */
        int32_t *p = realloc(ids, n * sizeof *ids);
        if (p) ids = p, cap = n, st = llt_tokenizer_encode(t, text, len, flags, ids, cap, &n, &err);
    }
    if (st != LLT_OK) {
        free(ids);
        if (!err.msg[0]) llt_err_set(&err, st, "tokenize: out of memory");
        return cli_runtime_error(&err);
    }
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    puts("]");
    free(ids);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL;
    unsigned flags = LLT_TOK_ADD_BOS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_flag_is(a, "--help", "-h")) {
            usage(stdout);
            return 0;
        } else if (cli_flag_is(a, "--prompt", "-p")) {
            if (!cli_take(argc, argv, &i, &prompt)) return 2;
        } else if (cli_flag_is(a, "--file", "-f")) {
            if (!cli_take(argc, argv, &i, &file)) return 2;
        } else if (strcmp(a, "--no-bos") == 0) {
            flags &= ~(unsigned)LLT_TOK_ADD_BOS;
        } else if (strcmp(a, "--eos") == 0) {
            flags |= LLT_TOK_ADD_EOS;
        } else if (strcmp(a, "--parse-special") == 0) {
            flags |= LLT_TOK_PARSE_SPECIAL;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("tokenize: unknown option '%s'", a);
        } else if (!model) {
            model = a;
        } else {
            return cli_usage_error("tokenize: unexpected argument '%s'", a);
        }
    }
    if (!model) return cli_usage_error("tokenize: missing MODEL_OR_TOKENIZER");
    if (!prompt == !file) return cli_usage_error("tokenize: give exactly one of -p TEXT or -f FILE");
    llt_error err = {0};
    char *text = NULL;
    size_t len = prompt ? strlen(prompt) : 0;
    if (file && strcmp(file, "-") == 0) {
        if (!(text = read_stdin(&len))) return cli_runtime_error(&(llt_error){LLT_ERR_IO, "tokenize: cannot read stdin"});
    } else if (file && llt_read_file(file, &text, &len, &err) != LLT_OK) {
        return cli_runtime_error(&err);
    }
    llt_tokenizer *t = NULL;
    int rc;
    if (llt_tokenizer_open(model, &t, &err) != LLT_OK) rc = cli_runtime_error(&err);
    else rc = print_ids(t, text ? text : prompt, len, flags);
    llt_tokenizer_free(t);
    free(text);
    return rc;
}
