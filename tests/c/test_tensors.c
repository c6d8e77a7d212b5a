/* test_tensors.c: the tensor table (add, lookup through the hash, ownership, shape/size
 * checks, adopted mappings). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tensors.h"
#include "testlib.h"

static void test_add_find(void) {
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_error e;
    static const float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    CHECK(llt_tensors_find(&tt, "w") == NULL); /* empty table */
    CHECK_OK(llt_tensors_add(&tt, "w.weightXX", 8, LLT_DTYPE_F32, 2, shape, w, sizeof w, false, &e), &e);
    const llt_tensor *t = llt_tensors_find(&tt, "w.weight");
    CHECK(t && t->dtype == LLT_DTYPE_F32 && t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    CHECK(t && t->data == w && t->nbytes == 24 && !t->owned && llt_tensor_numel(t) == 6);
    CHECK(llt_tensors_find(&tt, "w.weightXX") == NULL && llt_tensors_find(&tt, "w.weigh") == NULL);
    CHECK_ERR(llt_tensors_add(&tt, "w.weight", 8, LLT_DTYPE_F32, 2, shape, w, 24, false, &e),
              LLT_ERR_FORMAT, &e, "'w.weight' is defined twice");
    /* An owned buffer is freed with the table (ASan checks the leak). */
    float *own = malloc(24);
    CHECK_OK(llt_tensors_add(&tt, "own", 3, LLT_DTYPE_F32, 2, shape, own, 24, true, &e), &e);
    /* A scalar: 0 dims, one element. */
    CHECK_OK(llt_tensors_add(&tt, "s", 1, LLT_DTYPE_F32, 0, NULL, w, 4, false, &e), &e);
    CHECK(llt_tensor_numel(llt_tensors_find(&tt, "s")) == 1);
    CHECK(tt.n == 3);
    llt_tensors_free(&tt);
    CHECK(tt.n == 0 && tt.t == NULL);
    llt_tensors_free(&tt);
    llt_tensors_free(NULL);
}

static void test_checks(void) {
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_error e;
    uint8_t buf[256] = {0};
    int64_t s2[2] = {2, 3}, neg[2] = {2, -3}, q[2] = {2, 64}, qbad[2] = {2, 48}, huge[3] = {1ll << 40, 1ll << 40, 1 << 20};
    CHECK_ERR(llt_tensors_add(&tt, "a", 1, LLT_DTYPE_F32, 2, s2, buf, 20, false, &e), LLT_ERR_FORMAT, &e, "needs 24 bytes, got 20");
    CHECK_ERR(llt_tensors_add(&tt, "a", 1, LLT_DTYPE_F32, 2, neg, buf, 24, false, &e), LLT_ERR_FORMAT, &e, "negative");
    CHECK_ERR(llt_tensors_add(&tt, "a", 1, LLT_DTYPE_F32, 5, s2, buf, 24, false, &e), LLT_ERR_FORMAT, &e, "5 dims");
    CHECK_ERR(llt_tensors_add(&tt, "a", 1, LLT_DTYPE_F32, 3, huge, buf, 24, false, &e), LLT_ERR_FORMAT, &e, "overflows");
    CHECK_ERR(llt_tensors_add(&tt, "a", 1, LLT_DTYPE_COUNT, 2, s2, buf, 24, false, &e), LLT_ERR_INVALID_ARG, &e, "dtype");
    CHECK_ERR(llt_tensors_add(&tt, "", 0, LLT_DTYPE_F32, 2, s2, buf, 24, false, &e), LLT_ERR_FORMAT, &e, "empty");
    CHECK_ERR(llt_tensors_add(&tt, "a\0b", 3, LLT_DTYPE_F32, 2, s2, buf, 24, false, &e), LLT_ERR_FORMAT, &e, "NUL");
    /* Q8_0: rows of 64 = 2 blocks of 34 bytes; rows of 48 are not whole blocks. */
    CHECK_OK(llt_tensors_add(&tt, "q", 1, LLT_DTYPE_Q8_0, 2, q, buf, 4 * 34, false, &e), &e);
    CHECK_ERR(llt_tensors_add(&tt, "qb", 2, LLT_DTYPE_Q8_0, 2, qbad, buf, 3 * 34, false, &e), LLT_ERR_FORMAT, &e, "whole q8_0 blocks of 32");
    CHECK(tt.n == 1); /* failures added nothing */
    llt_tensors_free(&tt);
}

/* Many names: the hash grows and every name is still found; absent names are not. */
static void test_many(void) {
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    llt_error e;
    static const uint16_t one = 0x3c00;
    int64_t shape[1] = {1};
    char name[64];
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", i);
        bad += llt_tensors_add(&tt, name, strlen(name), LLT_DTYPE_F16, 1, shape, &one, 2, false, &e) != LLT_OK;
    }
    CHECK(bad == 0 && tt.n == 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", i);
        const llt_tensor *t = llt_tensors_find(&tt, name);
        bad += !t || strcmp(t->name, name) != 0;
        snprintf(name, sizeof name, "blk.%d.attn_k.weight", i);
        bad += llt_tensors_find(&tt, name) != NULL;
    }
    CHECK(bad == 0);
    llt_tensors_free(&tt);
}

static void test_adopt(void) {
    const char *p = tl_write_tmp("raw.bin", "\x00\x00\x80\x3f", 4); /* f32 1.0 */
    llt_mmap m;
    llt_error e;
    CHECK_OK(llt_mmap_open(p, &m, &e), &e);
    llt_tensor_table tt;
    llt_tensors_init(&tt);
    const void *data = m.data;
    int64_t shape[1] = {1};
    CHECK_OK(llt_tensors_adopt_map(&tt, &m, &e), &e);
    CHECK(m.data == NULL && tt.n_maps == 1);
    CHECK_OK(llt_tensors_add(&tt, "x", 1, LLT_DTYPE_F32, 1, shape, data, 4, false, &e), &e);
    const llt_tensor *t = llt_tensors_find(&tt, "x");
    CHECK(t && *(const float *)t->data == 1.0f);
    llt_tensors_free(&tt); /* unmaps */
}

int main(void) {
    RUN(test_add_find);
    RUN(test_checks);
    RUN(test_many);
    RUN(test_adopt);
    return tl_done("test_tensors");
}
