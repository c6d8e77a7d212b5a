/* fuzz_pickle.c: libFuzzer target for the restricted unpickler (the bytes are data.pkl) and,
 * when the input is a ZIP, for the torch.save archive reader around it (ZIP central
 * directory, ZIP64 records, local headers, storage records). Every accepted tensor view is
 * checked against its storage by the library; here its bytes are read at both ends so that
 * ASan sees any view that escaped. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_file.h"
#include "formats/pickle.h"
#include "formats/torch_zip.h"

static void fuzz_archive(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file_open("fuzz.pt", data, size, path, sizeof path);
    if (fd < 0) return;
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_error e;
    if (llt_torch_load(path, &tt, &e) == LLT_OK)
        for (size_t i = 0; i < tt.n; i++) {
            const uint8_t *p = tt.t[i].data;
            if (tt.t[i].nbytes) (void)*(volatile const uint8_t *)&p[0], (void)*(volatile const uint8_t *)&p[tt.t[i].nbytes - 1];
        }
    llt_tensors_free(&tt);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llt_pk_state_dict sd;
    llt_error e;
    if (llt_pickle_read_state_dict(data, size, "fuzz.pkl", &sd, &e) == LLT_OK) llt_pk_state_dict_free(&sd);
    if (size >= 4 && data[0] == 'P' && data[1] == 'K') fuzz_archive(data, size);
    return 0;
}
