/* pct: one pass, no allocation. */
#include "pct.h"

int pct_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

long pct_decode(const char *s, size_t n, char *out, size_t cap, bool strict)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? pct_hex(s[i + 1]) : -1;
            int lo = hi >= 0 ? pct_hex(s[i + 2]) : -1;
            if (lo >= 0) {
                c = (char)(hi << 4 | lo);
                i += 2;
            } else if (strict) {
                return -1;
            }
        }
        if (o + 1 >= cap) {
            return -1;
        }
        out[o++] = c;
    }
    if (cap == 0) {
        return -1;
    }
    out[o] = '\0';
    return (long)o;
}
