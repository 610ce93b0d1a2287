/*
 * pct: percent-decoding (RFC 3986, section 2.1), for the REST router's path
 * segments and the WebSocket upgrade's query arguments, which read the same
 * escapes with different tolerance.
 *
 * Threads: any; no state.
 */
#ifndef RX_PCT_H
#define RX_PCT_H

#include <stdbool.h>
#include <stddef.h>

/* The value of a hex digit, or -1. */
int pct_hex(char c);

/*
 * Decodes s[0..n) into out (cap bytes, terminator included; the result may
 * hold NUL bytes, so use the length). A '%' without two hex digits after it
 * is kept as written when lenient (as libmicrohttpd does), refused when
 * strict. Returns the length, or -1 when refused or when it does not fit.
 */
long pct_decode(const char *s, size_t n, char *out, size_t cap, bool strict);

#endif
