/* fuzz_zip.c: libFuzzer target for the ZIP reader alone (end records, ZIP64 end record and
 * locator, central directory, local headers), on the bytes as given: no file, no pickle.
 * Every accepted entry's name is looked up again and its data is read at both ends, so that
 * ASan sees an entry that points outside the input. fuzz_pickle covers the torch archive on
 * top of this reader. */
#include <string.h>

#include "formats/zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llt_zip z;
    llt_error e;
    if (llt_zip_open(data, size, "fuzz.zip", &z, &e) != LLT_OK) return 0;
    for (size_t i = 0; i < z.n; i++) {
        const llt_zip_entry *en = &z.e[i];
        if (llt_zip_find(&z, en->name) == NULL) __builtin_trap(); /* every name must be found */
        (void)strlen(en->name);
        if (en->size)
            (void)*(volatile const uint8_t *)&en->data[0], (void)*(volatile const uint8_t *)&en->data[en->size - 1];
    }
    llt_zip_close(&z);
    return 0;
}
