/* fuzz_gguf.c: libFuzzer target for the GGUF reader, the tensor table and
 * llt_config_from_gguf. The input is written to a memfd (the reader mmaps a path), opened,
 * and every accessor is exercised: each kv through the typed getters, every string-array
 * element, every tensor into a table, the config. Crashes, leaks and reads outside the
 * mapping are the findings (ASan/UBSan); errors are the expected outcome. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_file.h"
#include "formats/gguf.h"
#include "model/config.h"

static void touch_kv(const llt_gguf *g, const llt_gguf_kv *kv) {
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255), kv->key.s);
    uint32_t u;
    int64_t i;
    float f;
    bool b;
    llt_gguf_str s;
    llt_gguf_get_u32(g, key, &u, NULL);
    llt_gguf_get_i64(g, key, &i, NULL);
    llt_gguf_get_f32(g, key, &f, NULL);
    llt_gguf_get_bool(g, key, &b, NULL);
    llt_gguf_get_str(g, key, &s, NULL);
    if (kv->type != LLT_GGUF_ARRAY) return;
    for (uint64_t k = 0; k < kv->arr_n && k < 100000; k++) {
        int32_t v;
        if (llt_gguf_arr_str(kv, k, &s, NULL) == LLT_OK && s.len) (void)*(volatile const char *)&s.s[s.len - 1];
        llt_gguf_arr_f32(kv, k, &f, NULL);
        llt_gguf_arr_i32(kv, k, &v, NULL);
    }
}

static void exercise(llt_gguf *g) {
    for (uint64_t k = 0; k < g->n_kv; k++) touch_kv(g, &g->kv[k]);
    for (uint64_t t = 0; t < g->n_tensors; t++) {
        const llt_gguf_tensor *ti = &g->tensors[t];
        if (ti->nbytes) (void)*(volatile const uint8_t *)&ti->data[ti->nbytes - 1];
    }
    llt_config c;
    llt_error e;
    llt_config_from_gguf(g, &c, &e);
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_gguf_to_tensors(g, &tt, &e);
    llt_gguf_close(g); /* the table may hold the mapping now */
    llt_tensors_free(&tt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file_open("fuzz.gguf", data, size, path, sizeof path);
    if (fd < 0) return 0;
    llt_gguf g;
    llt_error e;
    if (llt_gguf_open(path, &g, &e) == LLT_OK) exercise(&g);
    close(fd);
    return 0;
}
