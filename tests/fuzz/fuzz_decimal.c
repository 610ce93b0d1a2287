/*
 * fuzz_decimal: prices as exchanges send them (decimal_parse) and as the
 * engine renders numbers (decimal_from_double), checked against each other.
 *
 * The whole input is decimal text for decimal_parse. When it parses, the
 * text written must parse again to the same double and the same text (the
 * store serves it as is, and ticker_validate re-parses it). Its first eight
 * bytes are also taken as a double for decimal_from_double: a finite value
 * must come back positional, read back exactly through strtod and through
 * decimal_parse, and be the shortest such text (the classic search over
 * 1 to 17 significant digits finds no shorter one).
 */
#include "core/decimal.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Enough for every finite double written out in full (DBL_MAX has 309
 * digits, the smallest subnormal 343 characters). */
#define TEXT_MAX 400

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_decimal: %s\n", what);
        abort();
    }
}

/* Parsing the text decimal_parse wrote gives the same text and value. */
static void check_reparse(const char *text, int len, double value)
{
    char again[TEXT_MAX];
    double v2 = NAN;
    int n2 = decimal_parse(text, (size_t)len, again, sizeof again, &v2);

    check(n2 == len && memcmp(again, text, (size_t)len) == 0, "output does not re-parse to itself");
    check(v2 == value, "output re-parses to another value");
}

static void fuzz_parse(const uint8_t *data, size_t size)
{
    char out[TEXT_MAX];
    double value = NAN;
    int n = decimal_parse((const char *)data, size, out, sizeof out, &value);

    if (n < 0) {
        check(n == -EINVAL || n == -ENOSPC || n == -ERANGE, "unexpected error code");
        return;
    }
    check((size_t)n == strlen(out) && isfinite(value), "parse result malformed");
    check(strpbrk(out, "eE") == NULL && out[n - 1] != '.', "output not positional");
    check_reparse(out, n, value);
}

/* Significant digits of positional text ("-0.00120" has 3). */
static int significant_digits(const char *s)
{
    int first = -1, last = -1, i = 0;

    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if (*p != '0' && first < 0) {
                first = i;
            }
            if (*p != '0') {
                last = i;
            }
            i++;
        }
    }
    return first < 0 ? 1 : last - first + 1;
}

/* The fewest significant digits that strtod reads back as v. */
static int shortest_by_search(double v)
{
    char buf[64];

    for (int p = 1; p < DECIMAL_DIGITS_MAX; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, v);
        if (strtod(buf, NULL) == v) {
            return p;
        }
    }
    return DECIMAL_DIGITS_MAX;
}

static void fuzz_render(double v)
{
    char out[TEXT_MAX];
    int n = decimal_from_double(v, out, sizeof out);

    if (!isfinite(v)) {
        check(n == -EINVAL, "a non-finite value was rendered");
        return;
    }
    check(n > 0 && (size_t)n == strlen(out), "a finite value was not rendered");
    check(strtod(out, NULL) == v, "rendered text does not read back");
    if (v != 0) {
        check(significant_digits(out) == shortest_by_search(v), "rendered text is not shortest");
        check_reparse(out, n, v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    double v;

    fuzz_parse(data, size);
    if (size >= sizeof v) {
        memcpy(&v, data, sizeof v);
        fuzz_render(v);
    }
    return 0;
}
