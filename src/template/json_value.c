/* json_value.c: JSON text -> template values (through the strict base JSON reader), and
 * json.dumps(v, ensure_ascii, indent, separators, sort_keys) exactly as Python writes it:
 * ", " / ": " separators (",", ": " with an indent), repr() of floats, NaN/Infinity,
 * \uXXXX for control characters (and everything non-ASCII with ensure_ascii, as surrogate
 * pairs above U+FFFF), non-string keys converted the way json.dumps converts them. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "template/tmpl.h"

static bool from_json(tm_ctx *c, const llt_json *j, tv *out, int depth) {
    switch (j->type) {
    case LLT_JSON_NULL: *out = tv_none(); return true;
    case LLT_JSON_BOOL: *out = tv_bool(j->boolean); return true;
    case LLT_JSON_NUMBER: *out = j->is_int ? tv_int(j->integer) : tv_float(j->number); return true;
    case LLT_JSON_STRING: *out = tv_str(c, j->string, j->len); return out->t == TV_STR;
    case LLT_JSON_ARRAY: {
        tlist *l = tl_new(c, j->len);
        if (!l) return false;
        for (size_t i = 0; i < j->len; i++)
            if (!from_json(c, &j->items[i], &l->v[l->n++], depth + 1)) return false;
        *out = tv_list(l);
        return true;
    }
    case LLT_JSON_OBJECT: {
        tdict *d = td_new(c, j->len);
        if (!d) return false;
        for (size_t i = 0; i < j->len; i++) {
            tv k = tv_strz(c, j->keys[i]), v;
            if (k.t != TV_STR || !from_json(c, &j->items[i], &v, depth + 1) || !td_set(c, d, k, v)) return false;
        }
        *out = tv_dict(d);
        return true;
    }
    }
    return false;
}

/* Python reads an integer literal of any size exactly; ours are 64-bit. The reader keeps such a
 * literal only as a double, so it is found here in the text and refused rather than printed
 * differently. */
static bool check_big_ints(tm_ctx *c, const char *s, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
            continue;
        }
        if (!(s[i] == '-' || (s[i] >= '0' && s[i] <= '9'))) continue;
        size_t st = i, digits = 0;
        bool frac = false;
        if (s[i] == '-') i++;
        for (; i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '+' ||
                         s[i] == '-'); i++) {
            if (s[i] >= '0' && s[i] <= '9') digits++;
            else frac = true;
        }
        if (!frac && digits >= 19) {
            char buf[32];
            size_t k = i - st < 31 ? i - st : 31;
            memcpy(buf, s + st, k);
            buf[k] = 0;
            errno = 0;
            (void)strtoll(buf, NULL, 10);
            if (errno == ERANGE || digits > 19)
                return tm_fail(c, LLT_ERR_UNSUPPORTED, TM_NOPOS, "%s: integer %s... does not fit in 64 bits (unsupported)",
                               what, buf);
        }
        i--;
    }
    return true;
}

bool tm_from_json(tm_ctx *c, const char *text, size_t len, const char *what, tv *out) {
    if (!check_big_ints(c, text, len, what)) return false;
    llt_json *j = NULL;
    llt_status st = llt_json_parse(text, len, what, &j, c->err);
    if (st != LLT_OK) {
        c->status = st;
        return false;
    }
    bool ok = from_json(c, j, out, 0);
    llt_json_free(j);
    return ok;
}

/* ---- json.dumps ------------------------------------------------------------------------------ */

static bool put_json_string(tm_ctx *c, const char *s, size_t n, bool ascii, tm_out *o) {
    if (!tm_out_put(c, o, "\"", 1)) return false;
    size_t i = 0;
    while (i < n) {
        size_t st = i;
        uint32_t cp = py_cp_at(s, n, &i);
        char esc[16];
        const char *e = NULL;
        switch (cp) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        default:
            if (cp < 0x20 || (ascii && cp >= 0x7F)) {
                if (cp >= 0x10000) {
                    uint32_t v = cp - 0x10000;
                    snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
                } else {
                    snprintf(esc, sizeof esc, "\\u%04x", cp);
                }
                e = esc;
            }
        }
        if (e ? !tm_out_putz(c, o, e) : !tm_out_put(c, o, s + st, i - st)) return false;
    }
    return tm_out_put(c, o, "\"", 1);
}

static bool put_float(tm_ctx *c, double d, tm_out *o) {
    char buf[64];
    if (d != d) return tm_out_putz(c, o, "NaN");
    if (d > 1.7976931348623157e308) return tm_out_putz(c, o, "Infinity");
    if (d < -1.7976931348623157e308) return tm_out_putz(c, o, "-Infinity");
    py_float_repr(d, buf, sizeof buf);
    return tm_out_putz(c, o, buf);
}

static bool newline_indent(tm_ctx *c, const tm_dumps_opts *op, int level, tm_out *o) {
    if (!tm_out_put(c, o, "\n", 1)) return false;
    for (int l = 0; l < level; l++) {
        if (op->indent_str) {
            if (!tm_out_putz(c, o, op->indent_str)) return false;
        } else {
            for (int k = 0; k < op->indent; k++)
                if (!tm_out_put(c, o, " ", 1)) return false;
        }
    }
    return true;
}

/* The key as json.dumps writes it: str as is; int/float/bool/None converted. */
static bool key_text(tm_ctx *c, tv k, tv *out, uint32_t pos) {
    char buf[64];
    switch (k.t) {
    case TV_STR: *out = k; return true;
    case TV_INT: snprintf(buf, sizeof buf, "%" PRId64, k.u.i); break;
    case TV_FLOAT:
        if (k.u.d != k.u.d) snprintf(buf, sizeof buf, "NaN");
        else py_float_repr(k.u.d, buf, sizeof buf);
        break;
    case TV_BOOL: snprintf(buf, sizeof buf, "%s", k.u.b ? "true" : "false"); break;
    case TV_NONE: snprintf(buf, sizeof buf, "null"); break;
    default:
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: keys must be str, int, float, bool or None, not %s",
                       tv_type_name(k));
    }
    *out = tv_strz(c, buf);
    return out->t == TV_STR;
}

static bool dumps(tm_ctx *c, tv v, const tm_dumps_opts *op, int level, tm_out *o, uint32_t pos) {
    char buf[64];
    if (level > 512) return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "tojson: nesting too deep");
    switch (v.t) {
    case TV_NONE: return tm_out_putz(c, o, "null");
    case TV_BOOL: return tm_out_putz(c, o, v.u.b ? "true" : "false");
    case TV_INT:
        snprintf(buf, sizeof buf, "%" PRId64, v.u.i);
        return tm_out_putz(c, o, buf);
    case TV_FLOAT: return put_float(c, v.u.d, o);
    case TV_STR: return put_json_string(c, v.u.s->s, v.u.s->len, op->ensure_ascii, o);
    case TV_LIST: {
        if (v.u.l->n == 0) return tm_out_putz(c, o, "[]");
        if (!tm_out_put(c, o, "[", 1)) return false;
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i && !tm_out_putz(c, o, op->item_sep)) return false;
            if (op->indent >= 0 && !newline_indent(c, op, level + 1, o)) return false;
            if (!dumps(c, v.u.l->v[i], op, level + 1, o, pos)) return false;
        }
        if (op->indent >= 0 && !newline_indent(c, op, level, o)) return false;
        return tm_out_put(c, o, "]", 1);
    }
    case TV_DICT: {
        const tdict *d = v.u.m;
        if (d->n == 0) return tm_out_putz(c, o, "{}");
        size_t *order = tm_alloc(c->a, d->n * sizeof(size_t));
        tv *keys = tm_alloc(c->a, d->n * sizeof(tv));
        if (!order || !keys) return tm_fail(c, LLT_ERR_NOMEM, pos, "out of memory");
        for (size_t i = 0; i < d->n; i++) {
            order[i] = i;
            if (!key_text(c, d->k[i], &keys[i], pos)) return false;
        }
        if (op->sort_keys) /* insertion sort by the original keys (Python sorts them) */
            for (size_t i = 1; i < d->n; i++)
                for (size_t j = i; j > 0; j--) {
                    bool lt;
                    if (!tv_less(c, d->k[order[j]], d->k[order[j - 1]], &lt, pos)) return false;
                    if (!lt) break;
                    size_t t = order[j];
                    order[j] = order[j - 1];
                    order[j - 1] = t;
                }
        if (!tm_out_put(c, o, "{", 1)) return false;
        for (size_t k = 0; k < d->n; k++) {
            size_t i = order[k];
            if (k && !tm_out_putz(c, o, op->item_sep)) return false;
            if (op->indent >= 0 && !newline_indent(c, op, level + 1, o)) return false;
            if (!put_json_string(c, keys[i].u.s->s, keys[i].u.s->len, op->ensure_ascii, o) ||
                !tm_out_putz(c, o, op->key_sep) || !dumps(c, d->v[i], op, level + 1, o, pos))
                return false;
        }
        if (op->indent >= 0 && !newline_indent(c, op, level, o)) return false;
        return tm_out_put(c, o, "}", 1);
    }
    default:
        return tm_fail(c, LLT_ERR_INVALID_ARG, pos, "TypeError: Object of type %s is not JSON serializable",
                       tv_type_name(v));
    }
}

bool tm_dumps(tm_ctx *c, tv v, const tm_dumps_opts *o, tm_out *out, uint32_t pos) {
    return dumps(c, v, o, 0, out, pos);
}
