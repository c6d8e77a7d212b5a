/* backend.c: device string -> backend. "cpu" is always there; "cuda", "cuda:N" and lists of
 * CUDA devices ("cuda:0,cuda:1") need a build with the CUDA backend; "auto" is the first CUDA
 * device when the build has the backend and the machine a device, else the CPU. */
#include <string.h>

#include "backend/backend.h"
#ifdef LLT_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

const char *llt_device_auto(const char **why) {
    const char *w;
    const char *dev = "cpu";
#ifdef LLT_HAVE_CUDA
    int n = llt_cuda_device_count();
    if (n > 0) dev = "cuda:0", w = n > 1 ? "auto, first of several CUDA devices" : "auto, CUDA device found";
    else w = "no CUDA device";
#else
    w = "this build has no CUDA backend";
#endif
    if (why) *why = w;
    return dev;
}

bool llt_device_is_auto(const char *device) {
    return !device || !*device || strcmp(device, "auto") == 0;
}

const llt_backend *llt_backend_select(const char *device, llt_error *err) {
    if (llt_device_is_auto(device)) device = llt_device_auto(NULL);
    if (strcmp(device, "cpu") == 0) return &llt_backend_cpu;
    if (strncmp(device, "cuda", 4) == 0) {
#ifdef LLT_HAVE_CUDA
        if (llt_cuda_device_count() > 0) return &llt_backend_cuda;
        llt_err_set(err, LLT_ERR_DEVICE,
                    "device '%s': no CUDA device is present (no GPU, or no driver); use --device auto "
                    "or cpu", device);
        return NULL;
#else
        llt_err_set(err, LLT_ERR_UNSUPPORTED,
                    "device '%s': this build has no CUDA backend (rebuild with nvcc available, "
                    "or use --device auto or cpu)", device);
        return NULL;
#endif
    }
    llt_err_set(err, LLT_ERR_INVALID_ARG, "device '%s': unknown (expected auto, cpu, cuda, cuda:N)", device);
    return NULL;
}
