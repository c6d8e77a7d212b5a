/* test_base.c: status/error helpers, dtype conversions, the bounds-checked cursor. */
#include <stdlib.h>
#include <string.h>

#include "base/dtype.h"
#include "base/error.h"
#include "base/file.h"
#include "base/progress.h"
#include "testlib.h"

static void test_err(void) {
    llt_error e;
    CHECK(llt_err_set(&e, LLT_ERR_FORMAT, "x=%d", 3) == LLT_ERR_FORMAT);
    CHECK(strcmp(e.msg, "x=3") == 0);
    CHECK(llt_err_wrap(&e, LLT_ERR_FORMAT, "file.gguf: ") == LLT_ERR_FORMAT);
    CHECK(llt_err_wrap(NULL, LLT_ERR_IO, "x: ") == LLT_ERR_IO); /* the status survives a NULL err */
    CHECK(strcmp(e.msg, "file.gguf: x=3") == 0);
    CHECK(llt_err_set(NULL, LLT_ERR_IO, "ignored") == LLT_ERR_IO);
    CHECK(strcmp(llt_status_str(LLT_ERR_FULL), "KV pool full") == 0);
}

static void test_f16(void) {
    /* Values with exact f16 representations round-trip; known bit patterns from IEEE 754. */
    CHECK(llt_f32_to_f16(1.0f) == 0x3c00);
    CHECK(llt_f32_to_f16(-2.0f) == 0xc000);
    CHECK(llt_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(llt_f32_to_f16(1e6f) == 0x7c00);
    CHECK(llt_f16_to_f32(0x0001) == 5.9604644775390625e-08f);
    CHECK(llt_f32_to_f16(5.9604644775390625e-08f) == 0x0001);
    CHECK(llt_f16_to_f32(0x3555) > 0.333f && llt_f16_to_f32(0x3555) < 0.3334f);
    for (int h = 0; h < 0x7c00; h++) CHECK_MSG(llt_f32_to_f16(llt_f16_to_f32((uint16_t)h)) == h, "h=%x", h);
    CHECK(llt_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(llt_bf16_to_f32(0x4049) == 3.140625f);
    CHECK(llt_f32_to_bf16(3.14159265f) == 0x4049);
}

/* float8 e4m3 ("fn": OCP 8-bit floating point, E4M3: bias 7, no infinities, S.1111.111 NaN,
 * largest finite 448): the spec's table values decode; every finite code round-trips; any float
 * encodes to the nearest finite code, ties to the even mantissa, +-448 beyond (satfinite), by
 * a search over all codes done here from those values. */
static int e4m3_nearest(float f) {
    if (isnan(f)) return 0x7f;
    const float a = fabsf(f);
    int best = 0;
    for (int c = 1; c <= 0x7e; c++) {
        const double dc = fabs(llt_e4m3_to_f32((uint8_t)c) - (double)a), db = fabs(llt_e4m3_to_f32((uint8_t)best) - (double)a);
        if (dc < db || (dc == db && (c & 1) == 0)) best = c;
    }
    return (signbit(f) ? 0x80 : 0) | best;
}

static void test_e4m3(void) {
    CHECK(llt_e4m3_to_f32(0x38) == 1.0f && llt_e4m3_to_f32(0x7e) == 448.0f && llt_e4m3_to_f32(0xfe) == -448.0f);
    CHECK(llt_e4m3_to_f32(0x01) == 0x1p-9f && llt_e4m3_to_f32(0x07) == 7 * 0x1p-9f && llt_e4m3_to_f32(0x08) == 0x1p-6f);
    CHECK(llt_e4m3_to_f32(0x00) == 0.0f && signbit(llt_e4m3_to_f32(0x80)) && isnan(llt_e4m3_to_f32(0x7f)) &&
          isnan(llt_e4m3_to_f32(0xff)));
    CHECK(llt_e4m3_to_f32(0x3f) == 1.875f && llt_e4m3_to_f32(0x40) == 2.0f && llt_e4m3_to_f32(0x30) == 0.5f);
    for (int c = 0; c < 256; c++)
        if ((c & 0x7f) != 0x7f) CHECK_MSG(llt_f32_to_e4m3(llt_e4m3_to_f32((uint8_t)c)) == c, "code %02x", c);
    const float edge[] = {448.0f, 449.0f, 464.0f, 480.0f, 1e30f, INFINITY, -INFINITY, 0x1p-10f, 0x1.8p-10f,
                          0x1p-11f, 0x1.2p-6f, 0x1.1p-6f, 0x1.3p-6f, 1.0625f, 1.1875f, 240.0f, 232.0f, 0.0f, -0.0f};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        CHECK_MSG(llt_f32_to_e4m3(edge[i]) == e4m3_nearest(edge[i]), "%g: %02x, nearest %02x", edge[i],
                  llt_f32_to_e4m3(edge[i]), e4m3_nearest(edge[i]));
    CHECK(llt_f32_to_e4m3(NAN) == 0x7f);
    uint64_t s = 12345;
    for (int i = 0; i < 20000; i++) { /* random magnitudes 2^-12 .. 2^10, both signs */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const float f = ldexpf((float)((s >> 40) & 0xffffff) / 16777216.0f + 0.5f, (int)((s >> 20) % 23) - 12) *
                        ((s >> 63) ? -1.0f : 1.0f);
        CHECK_MSG(llt_f32_to_e4m3(f) == e4m3_nearest(f), "%a", f);
    }
}

static void test_dtype(void) {
    uint64_t b;
    CHECK(llt_dtype_nbytes(LLT_DTYPE_Q8_0, 64, &b) && b == 68);
    CHECK(!llt_dtype_nbytes(LLT_DTYPE_Q8_0, 33, &b));
    CHECK(!llt_dtype_nbytes(LLT_DTYPE_F32, UINT64_MAX / 2, &b));
    llt_dtype t;
    CHECK(llt_dtype_from_name("bfloat16", &t) && t == LLT_DTYPE_BF16);
    CHECK(!llt_dtype_from_name("float8", &t));
}

static void test_cursor(void) {
    uint8_t buf[6] = {1, 0, 0, 0, 2, 3};
    llt_cursor c = {buf, sizeof buf, 0, "buf"};
    uint32_t v;
    uint16_t w;
    llt_error e;
    CHECK_OK(llt_cursor_u32(&c, &v, "a", &e), &e);
    CHECK(v == 1);
    CHECK_ERR(llt_cursor_u32(&c, &v, "count", &e), LLT_ERR_FORMAT, &e, "count needs 4 bytes");
    CHECK_OK(llt_cursor_u16(&c, &w, "b", &e), &e);
    CHECK(w == 0x0302);
}

/* The progress line: percentage, amounts, rate and time left, computed from its inputs. */
static void test_progress(void) {
    char b[160];
    llt_progress_format(b, sizeof b, "uploading weights", true, 3ull << 29, 3ull << 30, 2.0);
    CHECK_MSG(strcmp(b, "uploading weights:  50% 1.5 GiB / 3.0 GiB, 768.0 MiB/s, 2 s left") == 0, "'%s'", b);
    llt_progress_format(b, sizeof b, "bench: runs", false, 3, 10, 1.5);
    CHECK_MSG(strcmp(b, "bench: runs:  30% 3/10, 2.0/s, 4 s left") == 0, "'%s'", b);
    llt_progress_format(b, sizeof b, "x", true, 512, 512, 0.0); /* done, no time yet: no rate */
    CHECK_MSG(strcmp(b, "x: 100% 512 B / 512 B") == 0, "'%s'", b);
    llt_progress_format(b, sizeof b, "x", false, 1, 1000, 2.0); /* 1998 s left */
    CHECK_MSG(strstr(b, "33m18s left") != NULL, "'%s'", b);
    setenv("LLT_PROGRESS", "plain", 1);
    CHECK(llt_progress_mode_now() == LLT_PROGRESS_PLAIN);
    setenv("LLT_PROGRESS", "tty", 1);
    CHECK(llt_progress_mode_now() == LLT_PROGRESS_TTY);
    setenv("LLT_PROGRESS", "off", 1);
    llt_progress p;
    llt_progress_begin(&p, "quiet", false);
    llt_progress_update(&p, 1, 2);
    llt_progress_end(&p);
    CHECK(p.mode == LLT_PROGRESS_OFF && !p.shown);
    unsetenv("LLT_PROGRESS");
}

int main(void) {
    RUN(test_e4m3);
    RUN(test_err);
    RUN(test_f16);
    RUN(test_dtype);
    RUN(test_cursor);
    RUN(test_progress);
    return tl_done("test_base");
}
