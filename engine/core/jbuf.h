/*
 * jbuf: a growable byte buffer with JSON helpers (escaped strings, numbers
 * by the decimal rules of DESIGN 3). Used to render API answers and the
 * author's tools' output. Owned by whoever declared it; any thread may use
 * its own buffers.
 */
#ifndef RX_JBUF_H
#define RX_JBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct jbuf {
    char *data;
    size_t len;
    size_t cap;
};

void jbuf_init(struct jbuf *b);
void jbuf_free(struct jbuf *b);
void jbuf_reset(struct jbuf *b);
void jbuf_add(struct jbuf *b, const char *s, size_t n);
/* Inline so that the length of a literal is known when compiling: the
 * renderers add dozens of them per ticker. */
static inline void jbuf_adds(struct jbuf *b, const char *s)
{
    jbuf_add(b, s, strlen(s));
}
void jbuf_addf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An integer in decimal: what jbuf_addf("%lld") writes, without printf
 * (tickers carry several, and every push and stored ticker renders them). */
void jbuf_int(struct jbuf *b, long long v);
void jbuf_uint(struct jbuf *b, unsigned long long v);
/* A JSON string literal, quotes included; control characters are escaped
 * and bytes that are not valid UTF-8 become U+FFFD. */
void jbuf_str(struct jbuf *b, const char *s);
/* The same for n bytes (NULs included); returns how many bytes were not
 * valid UTF-8 and were replaced. */
size_t jbuf_strn(struct jbuf *b, const char *s, size_t n);
/* A JSON number in shortest round-trip positional form; null if not finite. */
void jbuf_num(struct jbuf *b, double v);
/* "text" as a JSON string, or null when text is "". */
void jbuf_str_or_null(struct jbuf *b, const char *text);

#endif
