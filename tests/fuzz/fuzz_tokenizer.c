/* fuzz_tokenizer.c: libFuzzer target for the tokenizer loaders and the encode/decode paths.
 * Input layout: byte 0 picks the path, bytes 1-3 (little endian) the length of the model part,
 * the rest is text:
 *   0: SentencePiece protobuf   1: tiktoken file   2: tokenizer.json
 *   3: text only, through the real Llama 2 and Llama 3 tokenizers (loaded once from
 *      $LLT_FIXTURES or tests/fixtures; skipped when absent).
 * Every loaded tokenizer encodes the text with no flags and with all, decodes the ids whole
 * and one by one; streamed output must be valid UTF-8 (a broken character is a bug). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

static void check_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t c = llt_utf8_valid_len((const unsigned char *)s + i, n - i);
        if (!c) abort();
        i += c;
    }
}

static void exercise(const llt_tokenizer *t, const char *text, size_t len) {
    if (len > 8192) len = 8192; /* long texts add time, not paths */
    for (unsigned flags = 0; flags < 8; flags += 7) {
        size_t n = 0, cap = len + 8;
        int32_t *ids = malloc(cap * sizeof *ids);
        if (!ids) return;
        llt_status st = llt_tokenizer_encode(t, text, len, flags, ids, cap, &n, NULL);
        if (st == LLT_ERR_FULL) {
            /* more ids than bytes is legal: a normaliser may expand text (NFKC maps U+FDFA's 3 bytes
             * to 33; a charsmap may map one character to a long string). The contract: FULL reports
             * the count needed, and a buffer of that size then takes exactly that many ids. */
            if (n <= cap) abort();
            int32_t *big = realloc(ids, n * sizeof *ids);
            if (!big) {
                free(ids);
                return;
            }
            ids = big;
            const size_t need = n;
            st = llt_tokenizer_encode(t, text, len, flags, ids, need, &n, NULL);
            if (st != LLT_OK || n != need) abort();
        }
        if (st == LLT_OK) {
            size_t tl = 0;
            llt_tokenizer_decode(t, ids, n, NULL, 0, &tl, NULL);
            char *out = malloc(tl + 1);
            if (out && llt_tokenizer_decode(t, ids, n, out, tl + 1, &tl, NULL) != LLT_OK) abort();
            free(out);
            llt_detok_state ds = {0};
            char piece[4096];
            for (size_t i = 0; i < n; i++) {
                size_t pl = 0;
                if (llt_tokenizer_decode_next(t, &ds, ids[i], piece, sizeof piece, &pl, NULL) == LLT_OK)
                    check_utf8(piece, pl);
            }
        }
        free(ids);
    }
    for (int32_t id = -1; id < 4; id++) (void)llt_tokenizer_piece(t, id);
}

static llt_tokenizer *real_tokenizer(int which) {
    const char *root = getenv("LLT_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/%s/tokenizer.model", root && *root ? root : "tests/fixtures",
             which ? "llama3" : "llama2");
    llt_tokenizer *t = NULL;
    llt_tokenizer_open(path, &t, NULL);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* loaded once per process: a test harness, not library state */
    static llt_tokenizer *real[2];
    static int tried;
    if (size < 4) return 0;
    int kind = data[0] % 4;
    size_t mlen = (size_t)data[1] | (size_t)data[2] << 8 | (size_t)data[3] << 16;
    if (mlen > size - 4) mlen = size - 4;
    /* exact-size copies, so that reading past either part is an ASan error */
    size_t tlen = size - 4 - mlen;
    char *model = malloc(mlen ? mlen : 1), *text = malloc(tlen ? tlen : 1);
    if (!model || !text) goto done;
    memcpy(model, data + 4, mlen);
    memcpy(text, data + 4 + mlen, tlen);
    if (kind == 3) {
        if (!tried) real[0] = real_tokenizer(0), real[1] = real_tokenizer(1), tried = 1;
        for (int i = 0; i < 2; i++)
            if (real[i]) exercise(real[i], text, tlen);
        goto done;
    }
    llt_tokenizer *t = NULL;
    llt_status st;
    if (kind == 0) st = llt_spm_load_proto((const uint8_t *)model, mlen, "fuzz", &t, NULL);
    else if (kind == 1) st = llt_tiktoken_load(model, mlen, "/nonexistent-dir/fuzz", &t, NULL);
    else st = llt_hf_json_load(model, mlen, "/nonexistent-dir/fuzz.json", &t, NULL);
    if (st == LLT_OK) {
        exercise(t, text, tlen);
        llt_tokenizer_free(t);
    } else if (t) {
        abort(); /* a failed load hands nothing out */
    }
done:
    free(model);
    free(text);
    return 0;
}
