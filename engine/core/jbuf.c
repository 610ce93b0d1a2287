/*
 * jbuf: growth doubles the capacity; strings are escaped per RFC 8259 and
 * bytes that are not valid UTF-8 are replaced, so hostile exchange text can
 * never produce invalid JSON.
 */
#include "jbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "xalloc.h"

void jbuf_init(struct jbuf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void jbuf_free(struct jbuf *b)
{
    free(b->data);
    jbuf_init(b);
}

void jbuf_reset(struct jbuf *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

static void reserve(struct jbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        cap *= 2;
    }
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void jbuf_add(struct jbuf *b, const char *s, size_t n)
{
    reserve(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void jbuf_addf(struct jbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The digits of u, then a sign if negative. */
static void add_integer(struct jbuf *b, unsigned long long u, bool negative)
{
    char text[24];
    char *p = text + sizeof text;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (negative) {
        *--p = '-';
    }
    jbuf_add(b, p, (size_t)(text + sizeof text - p));
}

void jbuf_int(struct jbuf *b, long long v)
{
    /* Negated as unsigned, so LLONG_MIN has a magnitude too. */
    add_integer(b, v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v, v < 0);
}

void jbuf_uint(struct jbuf *b, unsigned long long v)
{
    add_integer(b, v, false);
}

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 for a
 * byte that does not start one: overlong forms and surrogates included. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (s[0] < 0x80) {
        return 1;
    } else if ((s[0] & 0xe0) == 0xc0) {
        len = 2, min = 0x80, cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, min = 0x800, cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, min = 0x10000, cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

size_t jbuf_strn(struct jbuf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + n;
    size_t replaced = 0;

    reserve(b, n + 2);
    jbuf_add(b, "\"", 1);
    while (p < end) {
        /* Most text is plain ASCII: copy a run of it at once. */
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
            p++;
        }
        if (p > run) {
            jbuf_add(b, (const char *)run, (size_t)(p - run));
            if (p == end) {
                break;
            }
        }
        size_t len = utf8_len(p, (size_t)(end - p));
        if (len == 0) {
            jbuf_adds(b, "\xef\xbf\xbd");
            replaced++;
            p++;
        } else if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            jbuf_add(b, esc, 2);
            p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            jbuf_addf(b, "\\u%04x", *p);
            p++;
        } else {
            jbuf_add(b, (const char *)p, len);
            p += len;
        }
    }
    jbuf_add(b, "\"", 1);
    return replaced;
}

void jbuf_str(struct jbuf *b, const char *s)
{
    jbuf_strn(b, s, strlen(s));
}

void jbuf_num(struct jbuf *b, double v)
{
    char text[64];
    if (!isfinite(v) || decimal_from_double(v, text, sizeof text) < 0) {
        jbuf_adds(b, "null");
        return;
    }
    jbuf_adds(b, text);
}

void jbuf_str_or_null(struct jbuf *b, const char *text)
{
    if (text[0]) {
        jbuf_str(b, text);
    } else {
        jbuf_adds(b, "null");
    }
}
