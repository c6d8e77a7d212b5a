/* pystr.c: the Python text semantics templates observe: strings are sequences of code points
 * (len, indexing, slicing), str.isspace / isprintable / splitlines character classes, and
 * repr(float) (the shortest text that reads back to the same double). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/tmpl.h"

extern const uint32_t tm_nonprintable[][2];
extern const size_t tm_nonprintable_n;

/* Decodes one code point at *i of already-valid UTF-8 (values come from the strict JSON
 * reader or the template source); a stray byte reads as itself. */
uint32_t py_cp_at(const char *s, size_t n, size_t *i) {
    const unsigned char *u = (const unsigned char *)s;
    size_t k = *i;
    uint32_t c = u[k];
    int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (extra == 0 || k + (size_t)extra >= n) {
        *i = k + 1;
        return c;
    }
    c &= (uint32_t)(0x3F >> extra);
    for (int j = 1; j <= extra; j++) c = (c << 6) | (u[k + (size_t)j] & 0x3F);
    *i = k + 1 + (size_t)extra;
    return c;
}

size_t py_cp_count(const char *s, size_t n) {
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) cnt++;
    return cnt;
}

/* Byte offset of code point idx (0 <= idx <= count); n when past the end. */
size_t py_cp_offset(const char *s, size_t n, int64_t idx) {
    size_t i = 0;
    for (int64_t k = 0; k < idx && i < n; k++) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    }
    return i;
}

bool py_isspace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool py_is_linebreak(uint32_t c) {
    return (c >= 0x0A && c <= 0x0D) || (c >= 0x1C && c <= 0x1E) || c == 0x85 || c == 0x2028 ||
           c == 0x2029;
}

bool py_isprintable(uint32_t c) {
    if (c < 0x80) return c >= 0x20 && c < 0x7F;
    size_t lo = 0, hi = tm_nonprintable_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < tm_nonprintable[mid][0]) hi = mid;
        else if (c > tm_nonprintable[mid][1]) lo = mid + 1;
        else return false;
    }
    return true;
}

size_t py_space_len_at(const char *s, size_t n, size_t i) {
    if (i >= n) return 0;
    size_t j = i;
    uint32_t c = py_cp_at(s, n, &j);
    return py_isspace(c) ? j - i : 0;
}

size_t py_space_len_before(const char *s, size_t i) {
    if (i == 0) return 0;
    size_t k = i - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80 && i - k < 4) k--;
    size_t j = k;
    uint32_t c = py_cp_at(s, i, &j);
    return (j == i && py_isspace(c)) ? i - k : 0;
}

/* repr(float): shortest round-trip digits; fixed notation when the decimal exponent is in
 * [-4, 16), otherwise d.ddde+XX; integral values keep ".0". */
void py_float_repr(double d, char *buf, size_t cap) {
    if (isnan(d)) { snprintf(buf, cap, "nan"); return; }
    if (isinf(d)) { snprintf(buf, cap, d < 0 ? "-inf" : "inf"); return; }
    if (d == 0) { snprintf(buf, cap, signbit(d) ? "-0.0" : "0.0"); return; }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    /* tmp = [-]D[.DDD]e[+-]XX */
    char digits[24];
    int nd = 0;
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') { neg = true; p++; }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int decpt = exp10 + 1; /* digits * 10^(decpt - nd) */
    char out[64];
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int k = 0; k < -decpt; k++) out[o++] = '0';
            for (int k = 0; k < nd; k++) out[o++] = digits[k];
        } else if (decpt >= nd) {
            for (int k = 0; k < nd; k++) out[o++] = digits[k];
            for (int k = nd; k < decpt; k++) out[o++] = '0';
            out[o++] = '.';
            out[o++] = '0';
        } else {
            for (int k = 0; k < nd; k++) {
                if (k == decpt) out[o++] = '.';
                out[o++] = digits[k];
            }
        }
        out[o] = 0;
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int k = 1; k < nd; k++) out[o++] = digits[k];
        }
        int e = decpt - 1;
        o += (size_t)snprintf(out + o, sizeof out - o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    snprintf(buf, cap, "%s", out);
}
