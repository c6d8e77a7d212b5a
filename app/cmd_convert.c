/* cmd_convert.c: `llama-triton convert --from hf|gguf|triton SRC DST [--dtype f32|f16|bf16]`:
 * writes the native folder DST (model.json, state_dict.pt, tokenizer). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fputs("usage: llama-triton convert [--from hf|gguf|triton] SRC DST [--dtype f32|f16|bf16]\n\n"
          "Writes the native model folder DST: model.json, state_dict.pt (loadable with\n"
          "torch.load) and the tokenizer.\n"
          "SRC: a Hugging Face folder (config.json + safetensors or pytorch_model*.bin),\n"
          "a .gguf file, or a native folder.\n\n"
          "options:\n"
          "  --from FORMAT   the source format (default: from the path)\n"
          "  --dtype DTYPE   weight dtype to write (default: the source's; quantised -> f32)\n"
          "  -h, --help      this help\n", f);
}

static bool parse_from(const char *v, llt_format *out) {
    static const struct { const char *name; llt_format f; } k[] = {
        {"hf", LLT_FORMAT_HF}, {"gguf", LLT_FORMAT_GGUF}, {"triton", LLT_FORMAT_TRITON}, {"native", LLT_FORMAT_TRITON}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strcmp(v, k[i].name) == 0) {
            *out = k[i].f;
            return true;
        }
    return false;
}

static int parse_dtype(const char *v, llt_dtype *out) {
    if (llt_dtype_from_name(v, out) &&
        (*out == LLT_DTYPE_F32 || *out == LLT_DTYPE_F16 || *out == LLT_DTYPE_BF16))
        return 0;
    return cli_usage_error("convert: --dtype expects f32, f16 or bf16, got '%s'", v);
}

int cmd_convert(int argc, char **argv) {
    const char *src = NULL, *dst = NULL, *v;
    llt_format from = LLT_FORMAT_AUTO;
    llt_dtype dtype = LLT_DTYPE_COUNT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_flag_is(a, "--help", "-h")) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--from") == 0) {
            if (!cli_take(argc, argv, &i, &v)) return 2;
            if (!parse_from(v, &from)) return cli_usage_error("convert: --from expects hf, gguf or triton, got '%s'", v);
        } else if (strcmp(a, "--dtype") == 0) {
            if (!cli_take(argc, argv, &i, &v) || parse_dtype(v, &dtype)) return 2;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("convert: unknown option '%s'", a);
        } else if (!src) {
            src = a;
        } else if (!dst) {
            dst = a;
        } else {
            return cli_usage_error("convert: unexpected argument '%s'", a);
        }
    }
    if (!src || !dst) return cli_usage_error("convert: needs SRC and DST (see llama-triton convert --help)");
    llt_error err = {0};
    if (llt_convert(src, from, dst, dtype, &err) != LLT_OK) return cli_runtime_error(&err);
    fprintf(stderr, "wrote %s (model.json, state_dict.pt)\n", dst);
    return 0;
}
