/*
 * decimal: shortest round-trip positional text without locale surprises.
 *
 * Finding the shortest text. glibc's printf rounds exactly, so "%.*e" with p
 * significant digits yields the p-digit decimal nearest to the double. The
 * classic search tries p = 1..17 and keeps the first that strtod reads back.
 * We take a shortcut that gives the same answer in at most three tries for
 * every normal double: any decimal of at most 15 significant digits
 * (DBL_DIG) survives decimal -> double -> decimal, so if some p <= 15 reads
 * back, the 15-digit rendering is that same decimal padded with zeros, and
 * trimming the zeros recovers it. Hence: try 15; if it reads back, trim;
 * otherwise try 16, then 17 (which always reads back). Subnormals carry
 * fewer than 15 digits of precision, so they take the plain 1..17 search.
 *
 * Locale. printf's "%e" and strtod both use the locale's decimal point,
 * which may not be '.' (or even one byte) if some library calls setlocale.
 * We never let a point cross that boundary: the digits are picked out of
 * printf's output by skipping whatever is not a digit before the 'e', and
 * the text handed to strtod is an integer mantissa with an exponent
 * ("2535190000e-8"), which every locale reads the same way. No uselocale()
 * dance, no global state, so every function is thread-safe.
 */
#include "decimal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Significant digits of the mantissa decimal_parse hands to strtod. */
#define PARSE_DIGITS_MAX 128

/* Bounds an exponent's text; far beyond any double, so it only saturates. */
#define PARSE_EXP_MAX 100000

/* A positive number as significant digits d[0..n) times 10^(exp - n + 1). */
struct digits {
    char d[DECIMAL_DIGITS_MAX + 1];
    int n;
    int exp;
};

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Round a (positive, finite) to prec significant digits. */
static void round_digits(double a, int prec, struct digits *g)
{
    char buf[64];
    const char *p = buf;
    int n = 0;
    int e = 0;
    int eneg = 0;

    snprintf(buf, sizeof(buf), "%.*e", prec - 1, a);
    /* Whatever the locale's point looks like, it is not a digit and not 'e'. */
    while (*p && *p != 'e' && *p != 'E') {
        if (is_digit(*p) && n < prec) {
            g->d[n++] = *p;
        }
        p++;
    }
    if (*p) {
        p++;
    }
    if (*p == '-' || *p == '+') {
        eneg = *p == '-';
        p++;
    }
    while (is_digit(*p)) {
        e = e * 10 + (*p - '0');
        p++;
    }
    g->d[n] = '\0';
    g->n = n;
    g->exp = eneg ? -e : e;
}

/* Does strtod read these digits back as exactly a? */
static int reads_back(const struct digits *g, double a)
{
    char buf[48];

    snprintf(buf, sizeof(buf), "%se%d", g->d, g->exp - (g->n - 1));
    return strtod(buf, NULL) == a;
}

static void trim_zeros(struct digits *g)
{
    while (g->n > 1 && g->d[g->n - 1] == '0') {
        g->n--;
    }
    g->d[g->n] = '\0';
}

/* The shortest digits of a (positive, finite) that read back as a. */
static void shortest_digits(double a, struct digits *g)
{
    int prec = a >= DBL_MIN ? DBL_DIG : 1;

    for (; prec < DECIMAL_DIGITS_MAX; prec++) {
        round_digits(a, prec, g);
        if (reads_back(g, a)) {
            break;
        }
    }
    if (prec == DECIMAL_DIGITS_MAX) {
        round_digits(a, prec, g);
    }
    trim_zeros(g);
}

static int write_zero(char *out, size_t cap)
{
    if (cap < 2) {
        return -ENOSPC;
    }
    out[0] = '0';
    out[1] = '\0';
    return 1;
}

/* Lay the digits out with a point and no exponent. g has no trailing zeros. */
static int write_positional(int neg, const struct digits *g, char *out, size_t cap)
{
    int ip = g->exp + 1; /* digits before the point; <= 0 means "0.000ddd" */
    int fp = ip > 0 ? (g->n > ip ? g->n - ip : 0) : -ip + g->n;
    size_t need = (size_t)neg + (ip > 0 ? (size_t)ip : 1) + (fp ? 1 + (size_t)fp : 0);
    char *p = out;

    if (need + 1 > cap) {
        return -ENOSPC;
    }
    if (neg) {
        *p++ = '-';
    }
    if (ip > 0) {
        for (int i = 0; i < ip; i++) {
            *p++ = i < g->n ? g->d[i] : '0';
        }
        if (fp) {
            *p++ = '.';
            memcpy(p, g->d + ip, (size_t)fp);
            p += fp;
        }
    } else {
        *p++ = '0';
        *p++ = '.';
        memset(p, '0', (size_t)-ip);
        p += -ip;
        memcpy(p, g->d, (size_t)g->n);
        p += g->n;
    }
    *p = '\0';
    return (int)(p - out);
}

int decimal_from_double(double v, char *out, size_t cap)
{
    struct digits g;

    if (!isfinite(v)) {
        return -EINVAL;
    }
    if (v == 0) {
        return write_zero(out, cap);
    }
    shortest_digits(fabs(v), &g);
    return write_positional(v < 0, &g, out, cap);
}

int decimal_sig(double v, int digits, char *out, size_t cap)
{
    struct digits g;

    if (!isfinite(v) || digits < 1 || digits > DECIMAL_DIGITS_MAX) {
        return -EINVAL;
    }
    if (v == 0) {
        return write_zero(out, cap);
    }
    /* Start from the shortest form so that asking for more digits than the
     * value has never invents a "...0000001" tail. */
    shortest_digits(fabs(v), &g);
    if (g.n > digits) {
        round_digits(fabs(v), digits, &g);
        trim_zeros(&g);
    }
    return write_positional(v < 0, &g, out, cap);
}

/* Digit i of the integer digits followed by the fraction digits. */
static char mantissa_digit(const char *ip, size_t ni, const char *fp, size_t i)
{
    return i < ni ? ip[i] : fp[i - ni];
}

/*
 * Clinger's fast path, which nearly every price takes: with at most 15
 * significant digits the integer m they form is below 2^53, and 10^k for
 * |k| <= 22 is a double too, so m * 10^k or m / 10^-k is one correctly
 * rounded IEEE operation, the very double strtod returns, without
 * formatting text for it (two parses of four prices per stream message
 * made snprintf and strtod a sixth of the ingest profile). It needs
 * doubles evaluated as doubles, which the static assert below checks.
 */
#define EXACT_DIGITS_MAX 15
#define EXACT_POW10_MAX 22

_Static_assert(FLT_EVAL_METHOD == 0, "the exact fast path needs double evaluation");

static const double pow10_exact[EXACT_POW10_MAX + 1] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static double exact_value(const char *ip, size_t ni, const char *fp, size_t first, size_t n,
                          long exp)
{
    uint64_t m = 0;

    for (size_t i = 0; i < n; i++) {
        m = m * 10 + (uint64_t)(mantissa_digit(ip, ni, fp, first + i) - '0');
    }
    return exp >= 0 ? (double)m * pow10_exact[exp] : (double)m / pow10_exact[-exp];
}

/*
 * The value of a validated mantissa (integer digits ip, fraction digits fp)
 * times 10^exp, through an integer-mantissa text ("2535190000e-8" has no
 * point) that strtod reads the same in every locale. Leading and trailing
 * zeros are dropped first, so long but ordinary text stays small; then
 * most prices take the exact fast path above and never become text.
 */
static int mantissa_value(const char *ip, size_t ni, const char *fp, size_t nf, long exp,
                          double *out)
{
    char buf[PARSE_DIGITS_MAX + 32];
    size_t total = ni + nf;
    size_t first = 0;
    size_t last = total;
    size_t n;
    double d;

    while (first < total && mantissa_digit(ip, ni, fp, first) == '0') {
        first++;
    }
    if (first == total) {
        *out = 0;
        return 0;
    }
    while (mantissa_digit(ip, ni, fp, last - 1) == '0') {
        last--;
    }
    n = last - first;
    if (n > PARSE_DIGITS_MAX) {
        return -ENOSPC;
    }
    /* The last kept digit sits (total - last) places left of the units of
     * the whole digit string, which itself is scaled by 10^(exp - nf). */
    exp += (long)(total - last) - (long)nf;
    if (n <= EXACT_DIGITS_MAX && exp >= -EXACT_POW10_MAX && exp <= EXACT_POW10_MAX) {
        *out = exact_value(ip, ni, fp, first, n, exp);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        buf[i] = mantissa_digit(ip, ni, fp, first + i);
    }
    snprintf(buf + n, sizeof(buf) - n, "e%ld", exp);
    d = strtod(buf, NULL);
    /* Overflow, or a nonzero number that rounds to zero: not a price. */
    if (!isfinite(d) || d == 0) {
        return -ERANGE;
    }
    *out = d;
    return 0;
}

int decimal_parse(const char *text, size_t len, char *out, size_t cap, double *value)
{
    size_t i = 0;
    int neg = 0;
    size_t ni;
    size_t nf = 0;
    const char *ip;
    const char *fp = "";
    int has_exp = 0;
    long exp = 0;
    double d;
    int rc;

    if (!text || !out) {
        return -EINVAL;
    }
    if (i < len && text[i] == '-') {
        neg = 1;
        i++;
    }
    ip = text + i;
    while (i < len && is_digit(text[i])) {
        i++;
    }
    ni = (size_t)(text + i - ip);
    if (i < len && text[i] == '.') {
        i++;
        fp = text + i;
        while (i < len && is_digit(text[i])) {
            i++;
        }
        nf = (size_t)(text + i - fp);
    }
    if (ni + nf == 0) {
        return -EINVAL;
    }
    if (i < len && (text[i] == 'e' || text[i] == 'E')) {
        int eneg = 0;
        size_t start;

        has_exp = 1;
        i++;
        if (i < len && (text[i] == '-' || text[i] == '+')) {
            eneg = text[i] == '-';
            i++;
        }
        start = i;
        while (i < len && is_digit(text[i])) {
            if (exp < PARSE_EXP_MAX) {
                exp = exp * 10 + (text[i] - '0');
            }
            i++;
        }
        if (i == start) {
            return -EINVAL;
        }
        exp = eneg ? -exp : exp;
    }
    if (i != len) {
        return -EINVAL;
    }
    if (!has_exp) {
        /* Fail on size before doing any arithmetic. */
        size_t need = (size_t)neg + (ni ? ni : 1) + (nf ? 1 + nf : 0);
        if (need + 1 > cap) {
            return -ENOSPC;
        }
    }
    rc = mantissa_value(ip, ni, fp, nf, exp, &d);
    if (rc < 0) {
        return rc;
    }
    d = neg ? -d : d;
    if (has_exp) {
        rc = decimal_from_double(d, out, cap);
        if (rc < 0) {
            return rc;
        }
    } else {
        char *p = out;
        if (neg) {
            *p++ = '-';
        }
        if (ni) {
            memcpy(p, ip, ni);
            p += ni;
        } else {
            *p++ = '0';
        }
        if (nf) {
            *p++ = '.';
            memcpy(p, fp, nf);
            p += nf;
        }
        *p = '\0';
        rc = (int)(p - out);
    }
    if (value) {
        *value = d;
    }
    return rc;
}
