/* cmd_detokenize.c: `llama-triton detokenize TOKENIZER --ids 1,2,3`: prints the text of the ids
 * exactly (no newline is added). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "cli.h"

static void usage(FILE *f) {
    fputs("usage: llama-triton detokenize MODEL_OR_TOKENIZER --ids 1,2,3\n\n"
          "Prints the text of the token ids exactly as decoded (no newline is added).\n"
          "MODEL_OR_TOKENIZER: a .gguf file, a SentencePiece or tiktoken tokenizer.model,\n"
          "a tokenizer.json, or a model folder holding one of these.\n\n"
          "options:\n"
          "  --ids LIST   comma-separated token ids\n"
          "  -h, --help   this help\n", f);
}

static int print_text(const llt_tokenizer *t, const int32_t *ids, size_t n) {
    llt_error err = {0};
    size_t len = 0, cap = 4096;
    char *text = malloc(cap);
    llt_status st = text ? llt_tokenizer_decode(t, ids, n, text, cap, &len, &err) : LLT_ERR_NOMEM;
    if (st == LLT_ERR_FULL) {
        char *p = realloc(text, len + 1);
        if (p) text = p, st = llt_tokenizer_decode(t, ids, n, text, len + 1, &len, &err);
    }
    if (st == LLT_OK) fwrite(text, 1, len, stdout);
    free(text);
    if (st != LLT_OK && !err.msg[0]) llt_err_set(&err, st, "detokenize: out of memory");
    return st == LLT_OK ? 0 : cli_runtime_error(&err);
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL, *list = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_flag_is(a, "--help", "-h")) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--ids") == 0) {
            if (!cli_take(argc, argv, &i, &list)) return 2;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("detokenize: unknown option '%s'", a);
        } else if (!model) {
            model = a;
        } else {
            return cli_usage_error("detokenize: unexpected argument '%s'", a);
        }
    }
    if (!model) return cli_usage_error("detokenize: missing MODEL_OR_TOKENIZER");
    if (!list) return cli_usage_error("detokenize: missing --ids");
    int32_t *ids;
    size_t n;
    if (!cli_parse_ids(list, &ids, &n)) return 2;
    llt_error err = {0};
    llt_tokenizer *t = NULL;
    int rc = llt_tokenizer_open(model, &t, &err) == LLT_OK ? print_text(t, ids, n) : cli_runtime_error(&err);
    llt_tokenizer_free(t);
    free(ids);
    return rc;
}
