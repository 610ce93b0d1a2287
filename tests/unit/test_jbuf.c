/* jbuf: integers render as printf would, extremes included; strings escape
 * control characters and replace invalid UTF-8; numbers that are not finite
 * become null. */
#include "check.h"
#include "core/jbuf.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>

static void test_integers(void)
{
    static const long long cases[] = {0, 1, -1, 9, 10, -10, 1712448799935LL, LLONG_MAX, LLONG_MIN};
    struct jbuf b;
    char want[32];

    jbuf_init(&b);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jbuf_reset(&b);
        jbuf_int(&b, cases[i]);
        snprintf(want, sizeof want, "%lld", cases[i]);
        CHECK_STR_EQ(b.data, want);
    }
    jbuf_reset(&b);
    jbuf_uint(&b, ULLONG_MAX);
    CHECK_STR_EQ(b.data, "18446744073709551615");
    jbuf_reset(&b);
    jbuf_adds(&b, "{\"v\":");
    jbuf_uint(&b, 0);
    jbuf_adds(&b, "}");
    CHECK_STR_EQ(b.data, "{\"v\":0}");
    jbuf_free(&b);
}

static void test_strings_and_numbers(void)
{
    struct jbuf b;

    jbuf_init(&b);
    jbuf_str(&b, "a\"b\\c\n\x01");
    CHECK_STR_EQ(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    jbuf_reset(&b);
    CHECK_INT_EQ(jbuf_strn(&b, "x\xff", 2), 1);
    CHECK_STR_EQ(b.data, "\"x\xef\xbf\xbd\"");
    jbuf_reset(&b);
    /* Plain runs between every kind of byte that is not copied as it is. */
    CHECK_INT_EQ(jbuf_strn(&b, "ab\"cd\xc3\xa9" "ef\x7fg\xc3", 12), 1);
    CHECK_STR_EQ(b.data, "\"ab\\\"cd\xc3\xa9" "ef\\u007fg\xef\xbf\xbd\"");
    jbuf_reset(&b);
    jbuf_str(&b, "");
    CHECK_STR_EQ(b.data, "\"\"");
    jbuf_reset(&b);
    jbuf_num(&b, NAN);
    jbuf_num(&b, 0.5);
    CHECK_STR_EQ(b.data, "null0.5");
    jbuf_free(&b);
}

int main(void)
{
    test_integers();
    test_strings_and_numbers();
    return CHECK_DONE();
}
