/* bytelevel.c: GPT-2's reversible byte <-> unicode mapping.
 * Byte-level BPE vocabularies (GPT-2, Llama 3 tokenizer.json and GGUF) write every byte as a
 * printable character: the bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves;
 * the other 68 bytes (controls, space, 0x7F..0xA0, 0xAD) take U+0100 upwards in byte order,
 * so a space is 'Ġ' (U+0120) and a newline 'Ċ' (U+010A). */
#include "tokenizer/tokenizer.h"

static bool self_mapped(uint32_t b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t llt_bytelevel_cp(uint8_t b) {
    if (self_mapped(b)) return b;
    if (b <= 0x20) return 0x100 + b;            /* 0x00..0x20 -> U+0100..U+0120 */
    if (b <= 0xA0) return 0x100 + 33 + (b - 0x7F); /* 0x7F..0xA0 -> U+0121..U+0142 */
    return 0x143;                               /* 0xAD */
}

static int cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return self_mapped(cp) ? (int)cp : -1;
    if (cp <= 0x120) return (int)(cp - 0x100);
    if (cp <= 0x142) return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143) return 0xAD;
    return -1;
}

bool llt_bytelevel_decode(const char *s, size_t len, char *out, size_t *out_len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, k = 0;
    while (i < len) {
        size_t n = llt_utf8_valid_len(p + i, len - i);
        if (n == 0 || n > 2) return false; /* every byte character is U+0021..U+0143 */
        uint32_t cp = n == 1 ? p[i] : ((uint32_t)(p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
        int b = cp_to_byte(cp);
        if (b < 0) return false;
        out[k++] = (char)b;
        i += n;
    }
    *out_len = k;
    return true;
}

size_t llt_bytelevel_encode(const char *s, size_t len, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < len; i++) k += llt_utf8_put(llt_bytelevel_cp((uint8_t)s[i]), out + k);
    out[k] = '\0';
    return k;
}
