/* cli.h: the llama-triton command line. main.c dispatches to one cmd_* per subcommand, each in
 * its own file. The CLI owns the terminal: stdout carries only results (generated text, JSON),
 * everything else goes to stderr. */
#ifndef LLT_APP_CLI_H
#define LLT_APP_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "llama_triton.h"

/* Each command returns the process exit code: 0 ok, 1 runtime error, 2 usage error. */
int cmd_run(int argc, char **argv);       /* llama-triton MODEL -p ... */
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_chat(int argc, char **argv);      /* interactive chat (cmd_run.c's flags, chat_cli.c) */
int cmd_serve(int argc, char **argv);     /* cmd_serve.c over src/server/ */
int cmd_template(int argc, char **argv); /* cmd_template.c: render a chat template */
/* Random weights of a built-in shape (cmd_bench.c's table: tiny, llama3-8b, ...). */
bool cli_shape_known(const char *name);
llt_status cli_random_model(const char *shape, const llt_load_opts *o, llt_model **m, llt_error *err);
/* --prompts-file F --parallel N of `run` (cmd_batch.c): one prompt per line, JSON lines out. */
int cmd_run_batch(llt_model *m, const char *prompts_file, int parallel, const llt_gen_params *p);

/* --- argument helpers (args.c) ---
 * Flag values are parsed strictly: a missing value or trailing garbage is a usage error that
 * names the flag. */
bool cli_flag_is(const char *arg, const char *name, const char *alt);
/* Takes argv[*i + 1] as the value of flag argv[*i]; advances *i. */
bool cli_take(int argc, char **argv, int *i, const char **out);
bool cli_take_int(int argc, char **argv, int *i, int64_t lo, int64_t hi, int64_t *out);
bool cli_take_float(int argc, char **argv, int *i, double lo, double hi, double *out);
/* --kv_dtype T: f16, bf16, f32 or f8 (float8 e4m3; aliases as llt_dtype_from_name) into *out.
 * Whether the backend holds it is checked at load (llt_load_opts.kv_dtype). */
bool cli_take_kv_dtype(int argc, char **argv, int *i, llt_dtype *out);
/* KV cache help line shared by the commands that load a model. */
#define CLI_KV_DTYPE_HELP                                                                          \
    "  --kv_dtype T          KV cache dtype: f16, bf16, f32, or f8 (float8 e4m3 with a scale per\n" \
    "                        token and kv head; CUDA). The CPU cache holds f32/f16/bf16, the CUDA\n" \
    "                        cache the compute dtype or f8 (default: the model's config, else\n"  \
    "                        f32 on the CPU and the compute dtype on CUDA)\n"
/* "1,2,3" -> ids (malloc'd); false + message on a bad list. */
bool cli_parse_ids(const char *s, int32_t **ids, size_t *n);
/* --- multi-GPU flags (cli_devices.c) ---
 * Entries of a device list ("cuda:0,cuda:1" -> 2; NULL or "" -> 0). */
int cli_device_count(const char *device);
/* "20,12" -> out[LLT_MAX_DEVICES] layer counts, *n entries; false + message when bad. */
bool cli_parse_split(const char *s, int32_t *out, int *n);
/* A --layer_split of n_split entries must match the --device list when both are given. */
bool cli_check_split(const char *device, int n_split);
int cli_usage_error(const char *fmt, ...);
int cli_runtime_error(const llt_error *err);

#endif
