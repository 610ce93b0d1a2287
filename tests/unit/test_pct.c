/* pct: escapes decode to their bytes (NUL included, length returned); a
 * broken escape is kept when lenient and refused when strict; output that
 * does not fit is refused. */
#include "check.h"
#include "core/pct.h"

#include <string.h>

static long dec(const char *s, char *out, size_t cap, bool strict)
{
    return pct_decode(s, strlen(s), out, cap, strict);
}

int main(void)
{
    char out[16];

    CHECK_INT_EQ(dec("BTC%2FUSDT", out, sizeof out, true), 8);
    CHECK_STR_EQ(out, "BTC/USDT");
    CHECK_INT_EQ(dec("%7e%7E+", out, sizeof out, true), 3);
    CHECK_STR_EQ(out, "~~+");
    CHECK_INT_EQ(dec("a%00b", out, sizeof out, true), 3);
    CHECK(memcmp(out, "a\0b", 4) == 0);
    /* Broken escapes: kept as written, or refused. */
    CHECK_INT_EQ(dec("100%", out, sizeof out, false), 4);
    CHECK_STR_EQ(out, "100%");
    CHECK_INT_EQ(dec("%4g%4", out, sizeof out, false), 5);
    CHECK_STR_EQ(out, "%4g%4");
    CHECK_INT_EQ(dec("100%", out, sizeof out, true), -1);
    CHECK_INT_EQ(dec("%4g", out, sizeof out, true), -1);
    /* Room for the terminator too. */
    CHECK_INT_EQ(dec("abcd", out, 5, true), 4);
    CHECK_INT_EQ(dec("abcde", out, 5, true), -1);
    CHECK_INT_EQ(dec("", out, 1, true), 0);
    CHECK_INT_EQ(dec("", out, 0, true), -1);
    CHECK_INT_EQ(pct_hex('f') + pct_hex('A') + pct_hex('9'), 15 + 10 + 9);
    CHECK_INT_EQ(pct_hex('g'), -1);
    return CHECK_DONE();
}
