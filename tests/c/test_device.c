/* test_device: which device a model lands on (issue 18).
 *  - no device given (library NULL, CLI default) = auto: the first CUDA device when this build
 *    has the CUDA backend and the machine a GPU, else the CPU, and the load line says why;
 *  - "auto" given explicitly: the same;
 *  - "cpu" / "cuda[:N]" force one; a forced cuda without a GPU is a clear error.
 * "Without a GPU" on a GPU machine is simulated in a child process with CUDA_VISIBLE_DEVICES=-1
 * (the CUDA runtime then sees no device). Runs in CI on the CPU and by ctest in
 * tests/gpu/run.sh on the GPU machine, where the "with a GPU" branches are taken. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testlib.h"
#ifdef LLT_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

static const char *model(void) { return tl_fixture("models/stories260K/stories260K.gguf"); }

static int gpu_count(void) {
#ifdef LLT_HAVE_CUDA
    return llt_cuda_device_count();
#else
    return 0;
#endif
}

/* What auto must say on this machine (with_gpu: the GPU is visible). */
static const char *want_auto(bool with_gpu, const char **why_part) {
#ifdef LLT_HAVE_CUDA
    if (with_gpu && gpu_count() > 0) return *why_part = "auto", "cuda:0";
    return *why_part = "no CUDA device", "cpu";
#else
    (void)with_gpu;
    return *why_part = "this build has no CUDA backend", "cpu";
#endif
}

static llt_model *load(const char *device, llt_error *err) {
    llt_load_opts o;
    llt_load_opts_init(&o);
    o.device = device;
    llt_model *m = NULL;
    if (llt_model_load(model(), &o, &m, err) != LLT_OK) return NULL;
    return m;
}

static void test_auto_here(void) {
    const char *why_part, *want = want_auto(true, &why_part), *why = NULL;
    const char *dev = llt_device_auto(&why);
    CHECK_MSG(strcmp(dev, want) == 0 && strstr(why, why_part), "auto -> %s (%s), expected %s (%s)", dev, why, want,
              why_part);
    llt_load_opts o;
    llt_load_opts_init(&o);
    CHECK(o.device == NULL); /* the default: the model's devices, else auto */
    const char *devices[] = {NULL, "", "auto"};
    for (int i = 0; i < 3; i++) {
        llt_error err = {0};
        llt_model *m = load(devices[i], &err);
        CHECK_MSG(m != NULL, "device %s: %s", devices[i] ? devices[i] : "NULL", err.msg);
        if (!m) continue;
        const char *got_why = NULL, *got = llt_model_device(m, &got_why);
        CHECK_MSG(strcmp(got, want) == 0 && strstr(got_why, why_part), "device %s -> %s (%s)",
                  devices[i] ? devices[i] : "NULL", got, got_why);
        llt_model_free(m);
    }
}

static void test_forced(void) {
    llt_error err = {0};
    llt_model *m = load("cpu", &err);
    CHECK_MSG(m != NULL, "cpu: %s", err.msg);
    const char *why = NULL;
    if (m) CHECK(strcmp(llt_model_device(m, &why), "cpu") == 0 && strcmp(why, "asked for") == 0);
    llt_model_free(m);
    m = load("cuda", &err);
    if (gpu_count() > 0) {
        CHECK_MSG(m != NULL, "cuda with a GPU: %s", err.msg);
        if (m) CHECK(strcmp(llt_model_device(m, &why), "cuda") == 0 && strcmp(why, "asked for") == 0);
    } else {
        CHECK(m == NULL && strstr(err.msg, "cuda") && (strstr(err.msg, "no CUDA device") || strstr(err.msg, "no CUDA backend")));
#ifdef LLT_HAVE_CUDA
        CHECK(err.status == LLT_ERR_DEVICE);
#endif
    }
    llt_model_free(m);
    CHECK(load("tpu", &err) == NULL && err.status == LLT_ERR_INVALID_ARG && strstr(err.msg, "auto, cpu, cuda"));
    CHECK(load("cuda:999", &err) == NULL && strstr(err.msg, "cuda"));
}

/* Runs `env ENV $LLT_CLI args`; returns the exit code, stderr in *err_out (malloc'd). */
static int run_cli(const char *env, const char *args, char **err_out) {
    const char *cli = getenv("LLT_CLI");
    if (!cli || !*cli) cli = "build/llama-triton";
    char err_path[512], cmd[4096];
    snprintf(err_path, sizeof err_path, "%s/device_stderr.txt", tl_tmpdir());
    snprintf(cmd, sizeof cmd, "env %s '%s' %s >/dev/null 2>'%s'", env, cli, args, err_path);
    int st = system(cmd);
    *err_out = tl_read(err_path, NULL);
    if (!*err_out) *err_out = calloc(1, 1);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The CLI's load line names the device and the reason; "no GPU" simulated in a child. */
static void test_cli_load_line(void) {
    char args[1024], want_line[128], *err = NULL;
    const char *envs[] = {"LLT_PROGRESS=off", "LLT_PROGRESS=off CUDA_VISIBLE_DEVICES=-1"};
    for (int gpu = 1; gpu >= 0; gpu--) {
        const char *why_part, *want = want_auto(gpu, &why_part);
        snprintf(want_line, sizeof want_line, "on %s: %s", want, why_part);
        snprintf(args, sizeof args, "'%s' -p Once -n 2 --temperature 0", model());
        int rc = run_cli(envs[1 - gpu], args, &err);
        CHECK_MSG(rc == 0 && strstr(err, want_line), "gpu visible %d: exit %d, expected '%s' in:\n%s", gpu, rc,
                  want_line, err);
        free(err);
        snprintf(args, sizeof args, "bench --shape tiny -p 4 -n 2 --reps 1 --threads 1");
        if (!gpu) { /* bench resolves auto itself and says so (one run: a bench is slow) */
            rc = run_cli(envs[1 - gpu], args, &err);
            snprintf(want_line, sizeof want_line, "bench: device cpu (%s)", why_part);
            CHECK_MSG(rc == 0 && strstr(err, want_line), "bench: exit %d, expected '%s' in:\n%s", rc, want_line, err);
            free(err);
        }
    }
    /* forced cuda with no visible GPU: exit 1 and a message that says so */
    snprintf(args, sizeof args, "'%s' -p Once -n 2 --device cuda", model());
    int rc = run_cli(envs[1], args, &err);
    CHECK_MSG(rc == 1 && (strstr(err, "no CUDA device") || strstr(err, "no CUDA backend")), "forced cuda: %d %s", rc,
              err);
    free(err);
    snprintf(args, sizeof args, "'%s' -p Once -n 2 --device cpu", model());
    rc = run_cli(envs[0], args, &err);
    CHECK_MSG(rc == 0 && strstr(err, "on cpu: asked for"), "forced cpu: %d %s", rc, err);
    free(err);
}

int main(void) {
    RUN(test_auto_here);
    RUN(test_forced);
    RUN(test_cli_load_line);
    return tl_done("test_device");
}
