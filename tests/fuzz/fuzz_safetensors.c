/* fuzz_safetensors.c: libFuzzer target for the safetensors reader. The input is written to a
 * memfd (the reader mmaps a path) and loaded into a tensor table; every tensor's first and last
 * byte is read (ASan catches a range outside the mapping) and the metadata is walked.
 * Errors are the expected outcome; crashes, leaks and out-of-bounds reads are the findings. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_file.h"
#include "base/json.h"
#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file_open("fuzz.safetensors", data, size, path, sizeof path);
    if (fd < 0) return 0;
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_json *meta = NULL;
    llt_error e;
    if (llt_safetensors_load(path, &tt, &meta, &e) == LLT_OK) {
        for (size_t i = 0; i < tt.n; i++) {
            const uint8_t *p = tt.t[i].data;
            if (tt.t[i].nbytes) (void)*(volatile const uint8_t *)&p[0], (void)*(volatile const uint8_t *)&p[tt.t[i].nbytes - 1];
        }
        for (size_t k = 0; meta && k < meta->len; k++) (void)llt_json_get_string(meta, meta->keys[k]);
    }
    llt_json_free(meta);
    llt_tensors_free(&tt);
    close(fd);
    return 0;
}
