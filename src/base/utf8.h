/* utf8.h: strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
 * The one implementation used by the JSON reader, the tokenizers and the CLI. */
#ifndef LLT_BASE_UTF8_H
#define LLT_BASE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is malformed or truncated. */
size_t llt_utf8_valid_len(const unsigned char *s, size_t n);
/* Writes code point cp (<= 0x10FFFF) to out (4 bytes room); returns its length. */
size_t llt_utf8_put(uint32_t cp, char *out);

#endif
