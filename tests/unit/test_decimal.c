/*
 * decimal: the examples of DESIGN §3, every error path, and a randomized
 * round trip checked against the naive shortest-digits search (so the
 * 15-16-17 shortcut in decimal.c is tested, not trusted). If a locale whose
 * decimal point is a comma exists (LOCPATH may point at one), the whole
 * suite runs again under it.
 */
#include "check.h"
#include "core/decimal.h"

#include <errno.h>
#include <float.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>

/* strtod in the C locale, whatever the process locale is. */
static locale_t c_locale;

static double c_strtod(const char *s)
{
    return strtod_l(s, NULL, c_locale);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

/* Uniform in [0, 1). */
static double rng_unit(void)
{
    return (double)(rng() >> 11) / 9007199254740992.0;
}

static const char *fmt(double v)
{
    static char buf[400];
    int n = decimal_from_double(v, buf, sizeof(buf));
    return n < 0 ? "(error)" : buf;
}

static const char *sig(double v, int digits)
{
    static char buf[400];
    int n = decimal_sig(v, digits, buf, sizeof(buf));
    return n < 0 ? "(error)" : buf;
}

static char parsed[64];
static double parsed_value;

static int parse(const char *text)
{
    parsed[0] = '\0';
    parsed_value = -12345;
    return decimal_parse(text, strlen(text), parsed, sizeof(parsed), &parsed_value);
}

/* The number of significant digits of a positional text. */
static int sig_digits(const char *s)
{
    int n = 0;
    int started = 0;
    int trailing_int_zeros = 0;
    int seen_point = strchr(s, '.') != NULL;

    for (; *s; s++) {
        if (*s >= '1' && *s <= '9') {
            started = 1;
        }
        if (started && *s >= '0' && *s <= '9') {
            n++;
            trailing_int_zeros = *s == '0' ? trailing_int_zeros + 1 : 0;
        }
        if (*s == '.') {
            trailing_int_zeros = 0;
        }
    }
    /* "278000": the integer's trailing zeros are not significant. */
    return seen_point ? n : n - trailing_int_zeros;
}

/* The reference: the first p in 1..17 whose %.*g reads back. */
static int naive_shortest(double v)
{
    char buf[64];

    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof(buf), "%.*e", p - 1, v);
        if (strtod(buf, NULL) == v) {
            return p;
        }
    }
    return 17;
}

static void test_examples(void)
{
    CHECK_STR_EQ(fmt(278000), "278000");
    CHECK_STR_EQ(fmt(0.000012345678901234), "0.000012345678901234");
    CHECK_STR_EQ(fmt(12345.678901234567), "12345.678901234567");
    CHECK_STR_EQ(fmt(1700000000123.0), "1700000000123");
    CHECK_STR_EQ(fmt(278000.5), "278000.5");
    CHECK_STR_EQ(fmt(278000.49999999994), "278000.49999999994");
    CHECK_STR_EQ(fmt(0.1), "0.1");
    CHECK_STR_EQ(fmt(0.3), "0.3");
    CHECK_STR_EQ(fmt(0.1 + 0.2), "0.30000000000000004");
    CHECK_STR_EQ(fmt(1.0), "1");
    CHECK_STR_EQ(fmt(100), "100");
    CHECK_STR_EQ(fmt(-2.5), "-2.5");
    CHECK_STR_EQ(fmt(0.0), "0");
    CHECK_STR_EQ(fmt(-0.0), "0");
    CHECK_STR_EQ(fmt(1e-7), "0.0000001");
    CHECK_STR_EQ(fmt(1.5e-7), "0.00000015");
    CHECK_STR_EQ(fmt(1e15), "1000000000000000");
    CHECK_STR_EQ(fmt(1.2345678901234568e17), "123456789012345680");
    CHECK_STR_EQ(fmt(9007199254740993.0), "9007199254740992");
    CHECK_STR_EQ(fmt(25.3519), "25.3519");
    CHECK_STR_EQ(fmt(-0.000001), "-0.000001");
    CHECK_STR_EQ(fmt(123e-20), "0.00000000000000000123");
    /* Exactly halfway at the 17th digit: ties go to the even digit, as
     * printf rounds (the digits are made without it in this range). */
    CHECK_STR_EQ(fmt(1000000000000000.25), "1000000000000000.2");
    CHECK_STR_EQ(fmt(1000000000000000.75), "1000000000000000.8");
    CHECK_STR_EQ(fmt(1000000000000001.25), "1000000000000001.2");
    /* Extremes still round-trip when the buffer is big enough. */
    CHECK(c_strtod(fmt(DBL_MAX)) == DBL_MAX);
    CHECK_INT_EQ(strlen(fmt(DBL_MAX)), 309);
    CHECK(c_strtod(fmt(DBL_MIN)) == DBL_MIN);
    CHECK(c_strtod(fmt(5e-324)) == 5e-324);
    CHECK_INT_EQ(sig_digits(fmt(5e-324)), 1);
    CHECK(c_strtod(fmt(1.2345e-310)) == 1.2345e-310);
}

static void test_from_double_errors(void)
{
    char buf[8];

    memset(buf, 'x', sizeof(buf));
    CHECK_INT_EQ(decimal_from_double(NAN, buf, sizeof(buf)), -EINVAL);
    CHECK_INT_EQ(decimal_from_double(INFINITY, buf, sizeof(buf)), -EINVAL);
    CHECK_INT_EQ(decimal_from_double(-INFINITY, buf, sizeof(buf)), -EINVAL);
    CHECK_INT_EQ(decimal_from_double(278000, buf, 6), -ENOSPC);
    CHECK_INT_EQ(decimal_from_double(278000, buf, 7), 6);
    CHECK_STR_EQ(buf, "278000");
    CHECK_INT_EQ(decimal_from_double(-0.25, buf, 5), -ENOSPC);
    CHECK_INT_EQ(decimal_from_double(-0.25, buf, 6), 5);
    CHECK_INT_EQ(decimal_from_double(0, buf, 1), -ENOSPC);
    CHECK_INT_EQ(decimal_from_double(0, buf, 0), -ENOSPC);
    CHECK_INT_EQ(decimal_from_double(0, buf, 2), 1);
    CHECK_INT_EQ(decimal_from_double(1e300, buf, sizeof(buf)), -ENOSPC);
    CHECK_INT_EQ(decimal_from_double(1e-300, buf, sizeof(buf)), -ENOSPC);
}

static void test_sig(void)
{
    char buf[8];

    CHECK_STR_EQ(sig(1.0 / 3, 12), "0.333333333333");
    CHECK_STR_EQ(sig(1 / 0.00002, 12), "50000");
    CHECK_STR_EQ(sig(1 / 3e-9, 12), "333333333.333");
    CHECK_STR_EQ(sig(1 / 65000.5, 12), "0.0000153844970423");
    CHECK_STR_EQ(sig(0.5, 12), "0.5");
    CHECK_STR_EQ(sig(0.1, 17), "0.1");
    CHECK_STR_EQ(sig(0.1 + 0.2, 12), "0.3");
    CHECK_STR_EQ(sig(9.99999999999999, 3), "10");
    CHECK_STR_EQ(sig(123456, 2), "120000");
    CHECK_STR_EQ(sig(-1.0 / 7, 5), "-0.14286");
    CHECK_STR_EQ(sig(0.0, 12), "0");
    CHECK_STR_EQ(sig(2.5, 1), "2");
    CHECK_STR_EQ(sig(3.5, 1), "4");
    CHECK_INT_EQ(decimal_sig(1.0, 0, buf, sizeof(buf)), -EINVAL);
    CHECK_INT_EQ(decimal_sig(1.0, 18, buf, sizeof(buf)), -EINVAL);
    CHECK_INT_EQ(decimal_sig(NAN, 12, buf, sizeof(buf)), -EINVAL);
    CHECK_INT_EQ(decimal_sig(INFINITY, 12, buf, sizeof(buf)), -EINVAL);
    CHECK_INT_EQ(decimal_sig(1.0 / 3, 12, buf, sizeof(buf)), -ENOSPC);
    CHECK_INT_EQ(decimal_sig(1.0 / 3, 5, buf, sizeof(buf)), 7);
    CHECK_STR_EQ(buf, "0.33333");
    /* decimal_sig at 17 digits is decimal_from_double. */
    for (int i = 0; i < 2000; i++) {
        double v = (rng_unit() + 0.01) * pow(10, (int)(rng() % 20) - 8);
        CHECK_STR_EQ(sig(v, 17), fmt(v));
    }
}

static void check_kept(const char *text)
{
    CHECK_INT_EQ(parse(text), strlen(text));
    CHECK_STR_EQ(parsed, text);
}

static void test_parse_kept(void)
{
    check_kept("25.35190000");
    CHECK(parsed_value == 25.3519);
    check_kept("0");
    CHECK(parsed_value == 0);
    check_kept("-0.0");
    CHECK(parsed_value == 0 && signbit(parsed_value));
    check_kept("007.5");
    CHECK(parsed_value == 7.5);
    check_kept("278000");
    CHECK(parsed_value == 278000);
    check_kept("0.000012345678901234");
    CHECK(parsed_value == 0.000012345678901234);
    check_kept("-1.25");
    CHECK(parsed_value == -1.25);
    check_kept("12345.678901234567890123456789");
    CHECK(parsed_value == 12345.678901234568);
    check_kept("0.00000000");
    CHECK(parsed_value == 0);
}

static void test_parse_completed(void)
{
    CHECK_INT_EQ(parse(".5"), 3);
    CHECK_STR_EQ(parsed, "0.5");
    CHECK(parsed_value == 0.5);
    CHECK_INT_EQ(parse("-.5"), 4);
    CHECK_STR_EQ(parsed, "-0.5");
    CHECK(parsed_value == -0.5);
    CHECK_INT_EQ(parse("5."), 1);
    CHECK_STR_EQ(parsed, "5");
    CHECK(parsed_value == 5);
    CHECK_INT_EQ(parse("-12."), 3);
    CHECK_STR_EQ(parsed, "-12");
}

static void test_parse_exponent(void)
{
    CHECK_INT_EQ(parse("1.5e-7"), 10);
    CHECK_STR_EQ(parsed, "0.00000015");
    CHECK(parsed_value == 1.5e-7);
    CHECK(parse("1E5") > 0);
    CHECK_STR_EQ(parsed, "100000");
    CHECK(parse("2.5e+3") > 0);
    CHECK_STR_EQ(parsed, "2500");
    CHECK(parse("-1e-2") > 0);
    CHECK_STR_EQ(parsed, "-0.01");
    CHECK(parsed_value == -0.01);
    CHECK(parse("0e10") > 0);
    CHECK_STR_EQ(parsed, "0");
    CHECK(parse(".5e1") > 0);
    CHECK_STR_EQ(parsed, "5");
    CHECK(parse("123456789e-9") > 0);
    CHECK_STR_EQ(parsed, "0.123456789");
    CHECK(parse("1e-0000000000000000000000000000001") > 0);
    CHECK_STR_EQ(parsed, "0.1");
    CHECK(parse("0.1e1") > 0);
    CHECK_STR_EQ(parsed, "1");
    /* An exponent's text is re-rendered, so it is not a way around cap. */
    CHECK_INT_EQ(parse("1e300"), -ENOSPC);
    CHECK_INT_EQ(parse("1e400"), -ERANGE);
    CHECK_INT_EQ(parse("1e99999999999999999999"), -ERANGE);
    CHECK_INT_EQ(parse("1e-400"), -ERANGE);
    CHECK_INT_EQ(parse("0e-400"), 1);
}

static void test_parse_errors(void)
{
    static const char *const bad[] = {
        "",     "-",    ".",        "-.",   " 1",    "1 ",    "abc", "1.2.3", "NaN", "nan",
        "inf",  "-inf", "Infinity", "0x10", "0x1p3", "+1",    "1e",  "1e+",   "1e-", "e5",
        "1..2", "--1",  "1-",       "1,5",  "1e5.5", "1e5e5", "\t1", "1\n",   "١"};
    char out[8];
    double v = 42;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i]);
        if (rc != -EINVAL) {
            fprintf(stderr, "accepted or misreported: \"%s\"\n", bad[i]);
        }
        CHECK_INT_EQ(rc, -EINVAL);
        CHECK(parsed_value == -12345);
    }
    /* An embedded NUL is not a terminator when len says otherwise. */
    CHECK_INT_EQ(decimal_parse("1\0", 2, out, sizeof(out), &v), -EINVAL);
    /* Text needs no terminator: len bounds it. */
    CHECK_INT_EQ(decimal_parse("12.5xyz", 4, out, sizeof(out), &v), 4);
    CHECK_STR_EQ(out, "12.5");
    CHECK(v == 12.5);
    CHECK_INT_EQ(decimal_parse("12.5", 4, out, sizeof(out), NULL), 4);
    CHECK_INT_EQ(decimal_parse(NULL, 0, out, sizeof(out), NULL), -EINVAL);
    /* cap counts the terminator. */
    CHECK_INT_EQ(decimal_parse("1234567", 7, out, 8, NULL), 7);
    CHECK_INT_EQ(decimal_parse("12345678", 8, out, 8, NULL), -ENOSPC);
    CHECK_INT_EQ(decimal_parse(".234567", 7, out, 8, NULL), -ENOSPC);
    CHECK_INT_EQ(decimal_parse("1234567.", 8, out, 8, NULL), 7);
}

static void test_parse_long(void)
{
    char text[400];
    char out[400];
    double v = 0;

    /* Many zeros around few significant digits: exact value, kept text. */
    strcpy(text, "0.");
    memset(text + 2, '0', 200);
    strcpy(text + 202, "1");
    CHECK_INT_EQ(decimal_parse(text, strlen(text), out, sizeof(out), &v), 203);
    CHECK(v == 1e-201);
    strcpy(text, "1");
    memset(text + 1, '0', 300);
    strcpy(text + 301, ".000");
    CHECK(decimal_parse(text, strlen(text), out, sizeof(out), &v) > 0);
    CHECK(v == 1e300);
    /* Too many significant digits for the scratch buffer. */
    memset(text, '7', 300);
    text[300] = '\0';
    CHECK_INT_EQ(decimal_parse(text, 300, out, sizeof(out), &v), -ENOSPC);
}

static void test_random_round_trip(int count)
{
    char out[64];
    char again[64];
    int failures = 0;

    for (int i = 0; i < count; i++) {
        int mag = (int)(rng() % 28) - 12; /* 1e-12 .. 1e15 */
        double v = (1 + 9 * rng_unit()) * pow(10, mag);
        double back;
        int n;
        if (rng() & 1) {
            v = -v;
        }
        n = decimal_from_double(v, out, sizeof(out));
        back = c_strtod(out);
        if (n < 0 || back != v || strchr(out, 'e') || sig_digits(out) != naive_shortest(v)) {
            if (failures++ < 10) {
                fprintf(stderr, "round trip: %.17g -> \"%s\" (digits %d, shortest %d)\n", v, out,
                        sig_digits(out), naive_shortest(v));
            }
            continue;
        }
        /* Its own output parses back to the same text and value. */
        if (decimal_parse(out, (size_t)n, again, sizeof(again), &back) != n ||
            strcmp(again, out) != 0 || back != v) {
            if (failures++ < 10) {
                fprintf(stderr, "reparse: \"%s\" -> \"%s\"\n", out, again);
            }
        }
    }
    CHECK_INT_EQ(failures, 0);
}

/* Short decimals and the mids of two of them, as prices are: the scaled
 * fast path's territory and its edges (15 and 16 digits, 10^-22 .. 10^15). */
static void test_random_short(int count)
{
    char text[64];
    char out[64];
    int failures = 0;

    for (int i = 0; i < count; i++) {
        int digits = 1 + (int)(rng() % 16);
        int scale = (int)(rng() % 38) - 22;
        uint64_t m = rng() % 10000000000000000u % (uint64_t)pow(10, digits);
        double v, w;
        snprintf(text, sizeof(text), "%llue%d", (unsigned long long)m, scale);
        v = c_strtod(text);
        snprintf(text, sizeof(text), "%llue%d", (unsigned long long)(rng() % (m + 1)), scale);
        w = c_strtod(text);
        for (int pass = 0; pass < 2; pass++, v = (v + w) / 2) {
            if (v == 0 || !isfinite(v)) {
                continue;
            }
            if (decimal_from_double(v, out, sizeof(out)) < 0 || c_strtod(out) != v ||
                sig_digits(out) != naive_shortest(v)) {
                if (failures++ < 10) {
                    fprintf(stderr, "short: %.17g -> \"%s\" (shortest %d)\n", v, out,
                            naive_shortest(v));
                }
            }
        }
    }
    CHECK_INT_EQ(failures, 0);
}

/* Any bit pattern: every finite double round-trips with enough room. */
static void test_random_bits(int count)
{
    char out[400];
    int failures = 0;

    for (int i = 0; i < count; i++) {
        uint64_t bits = rng();
        double v;
        memcpy(&v, &bits, sizeof(v));
        if (!isfinite(v)) {
            continue;
        }
        if (decimal_from_double(v, out, sizeof(out)) < 0 || c_strtod(out) != v ||
            strchr(out, 'e') || sig_digits(out) != (v == 0 ? 0 : naive_shortest(v))) {
            if (failures++ < 10) {
                fprintf(stderr, "bits: %.17g -> \"%s\"\n", v, out);
            }
        }
    }
    CHECK_INT_EQ(failures, 0);
}

/* Random decimal text around the exact fast path's edges (15 vs 16
 * significant digits, powers of ten up to and past 22, leading and trailing
 * zeros, exponents): decimal_parse's value is strtod's, bit for bit. */
static void test_random_parse_value(int count)
{
    char text[96];
    char out[400];
    int failures = 0;

    for (int i = 0; i < count; i++) {
        size_t len = 0;
        int lead = (int)(rng() % 4), digits = 1 + (int)(rng() % 19), trail = (int)(rng() % 4);
        int point = (int)(rng() % (size_t)(lead + digits + trail + 1));
        double v = 0, want;
        int n;

        if (rng() % 4 == 0) {
            text[len++] = '-';
        }
        for (int k = 0; k < lead + digits + trail; k++) {
            if (k == point && k > 0) {
                text[len++] = '.';
            }
            text[len++] = k < lead || k >= lead + digits ? '0' : (char)('0' + rng() % 10);
        }
        if (rng() % 3 == 0) {
            len += (size_t)snprintf(text + len, sizeof(text) - len, "e%d", (int)(rng() % 61) - 30);
        }
        text[len] = '\0';
        want = c_strtod(text);
        n = decimal_parse(text, len, out, sizeof(out), &v);
        if (want == 0 || !isfinite(want)) {
            continue; /* zero is not a price: -ERANGE, tested elsewhere */
        }
        if (n < 0 || memcmp(&v, &want, sizeof v) != 0) {
            if (failures++ < 10) {
                fprintf(stderr, "parse value: \"%s\" -> %.17g (rc %d), strtod %.17g\n", text, v,
                        n, want);
            }
        }
    }
    CHECK_INT_EQ(failures, 0);
}

/* Without a value wanted, decimal_parse skips the arithmetic where no
 * error can come of it: the text, the length and every error are the same
 * as with one. Around the one-pass path's edges (19 digits, 2^53, a power
 * of ten past 22) the value is strtod's. */
static void test_parse_without_value(void)
{
    static const char *const texts[] = {
        "25.35190000", "0", "-0.0", ".5", "5.", "007.5", "1e2", "abc", "", "1.2.3",
        "9007199254740993", "9007199254740992", "0.1234567890123456789",
        "1234567890123456789", "12345678901234567890", "1.0000000000000000000",
        "0.00000000000000000000001", "0.000000000000000000000001230",
    };
    char big[520];
    char with[600], without[600];
    double v;

    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t len = strlen(texts[i]);
        int a = decimal_parse(texts[i], len, with, sizeof with, &v);
        int b = decimal_parse(texts[i], len, without, sizeof without, NULL);
        CHECK_INT_EQ(a, b);
        if (a >= 0) {
            CHECK_STR_EQ(with, without);
            CHECK(v == c_strtod(texts[i]));
        }
    }
    /* 1 and 400 zeros overflows a double (-ERANGE), wanted or not; 1 and
     * 200 zeros does not. */
    memset(big, '0', sizeof big);
    big[0] = '1';
    CHECK_INT_EQ(decimal_parse(big, 401, with, sizeof with, NULL), -ERANGE);
    CHECK_INT_EQ(decimal_parse(big, 401, with, sizeof with, &v), -ERANGE);
    CHECK_INT_EQ(decimal_parse(big, 201, with, sizeof with, NULL), 201);
    CHECK_INT_EQ(decimal_parse(big, 201, with, sizeof with, &v), 201);
    CHECK(v == 1e200);
}

static void run_all(void)
{
    test_examples();
    test_from_double_errors();
    test_sig();
    test_parse_kept();
    test_parse_completed();
    test_parse_exponent();
    test_parse_errors();
    test_parse_long();
    test_parse_without_value();
    test_random_round_trip(100000);
    test_random_bits(20000);
    test_random_short(200000);
    test_random_parse_value(200000);
}

int main(void)
{
    static const char *const comma_locales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
                                                "ru_RU.UTF-8"};
    char probe[16];

    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    run_all();
    for (size_t i = 0; i < sizeof(comma_locales) / sizeof(comma_locales[0]); i++) {
        if (setlocale(LC_ALL, comma_locales[i])) {
            snprintf(probe, sizeof(probe), "%.1f", 1.5);
            printf("again under %s (1.5 prints as \"%s\")\n", comma_locales[i], probe);
            run_all();
            setlocale(LC_ALL, "C");
            break;
        }
    }
    freelocale(c_locale);
    return CHECK_DONE();
}
