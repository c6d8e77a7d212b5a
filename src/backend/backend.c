/* backend.c: device string -> backend. "cpu" is always there; "cuda", "cuda:N" and lists of
 * CUDA devices ("cuda:0,cuda:1") need a build with the CUDA backend. */
#include <string.h>

#include "backend/backend.h"

const llt_backend *llt_backend_select(const char *device, llt_error *err) {
    if (!device || !*device || strcmp(device, "cpu") == 0) return &llt_backend_cpu;
    if (strncmp(device, "cuda", 4) == 0) {
#ifdef LLT_HAVE_CUDA
        return &llt_backend_cuda;
#else
        llt_err_set(err, LLT_ERR_UNSUPPORTED,
                    "device '%s': this build has no CUDA backend (rebuild with nvcc available, "
                    "or use --device cpu)", device);
        return NULL;
#endif
    }
    llt_err_set(err, LLT_ERR_INVALID_ARG, "device '%s': unknown (expected cpu, cuda, cuda:N)", device);
    return NULL;
}
