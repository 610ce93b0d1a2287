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
 * Two fast paths give the same answers sooner. The first, before any
 * printf, suits the values prices and their mids are: if a * 10^k
 * (k <= 22) is an integer m below 10^15 and m / 10^k == a, then the
 * decimal m * 10^-k reads back as a (m and 10^k are exact, and IEEE
 * division rounds their true quotient to the nearest double, as strtod
 * does), and it has at most 15 digits, so by the argument above it is the
 * answer. The smallest such k is tried first;
 * when none works the printf path decides. A third of the cost of a ticker
 * written to Redis was its mid's and spread's printf and strtod before the
 * two fast paths.
 *
 * The second, for the rest: the 17 digits are made once, exactly, with
 * 128-bit integers where a allows (exact_digits17: about 0.001 .. 2^53)
 * and by printf elsewhere; the 15- and 16-digit roundings are made from
 * those in decimal, which agrees with rounding the exact value unless the
 * digits dropped are exactly "5000..." (then printf rounds again). Whether
 * a candidate reads back is decided by one multiplication or division when
 * its digits allow (reads_back), and by strtod otherwise.
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
#include <stdbool.h>
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

/* The exact powers of ten a double holds (10^22 is the last). */
static const double exact_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
#define EXACT_POW10_MAX 22

/* Does strtod read these digits back as exactly a? Without strtod when the
 * digits are an integer m <= 2^53 times 10^e, |e| <= 22: m and 10^|e| are
 * exact doubles and one IEEE multiplication or division rounds their true
 * product or quotient to the nearest double, as strtod does. */
static int reads_back(const struct digits *g, double a)
{
    uint64_t m = 0;
    int e = g->exp - (g->n - 1);
    for (int i = 0; i < g->n; i++) {
        m = m * 10 + (uint64_t)(g->d[i] - '0');
    }
    if (m <= (UINT64_C(1) << 53) && e >= -EXACT_POW10_MAX && e <= EXACT_POW10_MAX) {
        double v = e >= 0 ? (double)m * exact_pow10[e] : (double)m / exact_pow10[-e];
        return v == a;
    }

    char buf[48];
    snprintf(buf, sizeof(buf), "%se%d", g->d, e);
    return strtod(buf, NULL) == a;
}

static void trim_zeros(struct digits *g)
{
    while (g->n > 1 && g->d[g->n - 1] == '0') {
        g->n--;
    }
    g->d[g->n] = '\0';
}

/* The essay's first fast path: 0 when it applies and g holds the digits. */
static int scaled_digits(double a, struct digits *g)
{
    for (int k = 0; k <= EXACT_POW10_MAX; k++) {
        double m = a * exact_pow10[k];
        if (m >= 1e15) {
            return -1;
        }
        if (m >= 1 && m == (double)(int64_t)m && m / exact_pow10[k] == a) {
            char rev[16];
            int n = 0;
            for (int64_t i = (int64_t)m; i > 0; i /= 10) {
                rev[n++] = (char)('0' + i % 10);
            }
            for (int j = 0; j < n; j++) {
                g->d[j] = rev[n - 1 - j];
            }
            g->d[n] = '\0';
            g->n = n;
            g->exp = n - 1 - k;
            trim_zeros(g);
            return 0;
        }
    }
    return -1;
}

/* GCC's and Clang's 128-bit integer (C11 has none; __extension__ says so). */
__extension__ typedef unsigned __int128 u128;

/* 10^0 .. 10^19, the powers of ten a uint64_t holds. */
static const uint64_t pow10_u64[] = {
    UINT64_C(1),
    UINT64_C(10),
    UINT64_C(100),
    UINT64_C(1000),
    UINT64_C(10000),
    UINT64_C(100000),
    UINT64_C(1000000),
    UINT64_C(10000000),
    UINT64_C(100000000),
    UINT64_C(1000000000),
    UINT64_C(10000000000),
    UINT64_C(100000000000),
    UINT64_C(1000000000000),
    UINT64_C(10000000000000),
    UINT64_C(100000000000000),
    UINT64_C(1000000000000000),
    UINT64_C(10000000000000000),
    UINT64_C(100000000000000000),
    UINT64_C(1000000000000000000),
    UINT64_C(10000000000000000000),
};

/*
 * a rounded to 17 significant digits as printf would (to nearest, ties to
 * even), exactly, without printf: a = f * 2^e with f < 2^53, so a * 10^k is
 * f * 10^k (below 2^117) shifted right by -e, whose remainder decides the
 * rounding. -1 outside the range where that fits (k in 0..19, e <= 0,
 * -e < 128: roughly 0.001 <= a < 2^53); round_digits does the rest.
 */
static int exact_digits17(double a, struct digits *g)
{
    int e2;
    double frac = frexp(a, &e2); /* a = frac * 2^e2, 0.5 <= frac < 1 */
    uint64_t f = (uint64_t)ldexp(frac, 53);
    int e = e2 - 53;
    int e10 = (int)floor(log10(a));
    int k = DECIMAL_DIGITS_MAX - 1 - e10;

    if (e > 0 || -e >= 128) {
        return -1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (k < 0 || k > 19) {
            return -1;
        }
        u128 p = (u128)f * pow10_u64[k];
        u128 q = e ? p >> -e : p;
        u128 r = e ? p - (q << -e) : 0;
        u128 half = e ? (u128)1 << (-e - 1) : 0;
        if (e && (r > half || (r == half && (q & 1)))) {
            q++;
        }
        /* log10 may be off by one next to a power of ten: q must have 17
         * digits, or be 10^17 exactly, where rounding carried (1 and zeros). */
        if (q < pow10_u64[16] || q > pow10_u64[17]) {
            k += q < pow10_u64[16] ? 1 : -1;
            continue;
        }
        if (q == pow10_u64[17]) {
            q = pow10_u64[16];
            k--;
        }
        uint64_t v = (uint64_t)q;
        for (int i = DECIMAL_DIGITS_MAX - 1; i >= 0; i--) {
            g->d[i] = (char)('0' + v % 10);
            v /= 10;
        }
        g->d[DECIMAL_DIGITS_MAX] = '\0';
        g->n = DECIMAL_DIGITS_MAX;
        g->exp = DECIMAL_DIGITS_MAX - 1 - k;
        return 0;
    }
    return -1;
}

/* g (17 digits, as printf rounded them) rounded to p digits, into out; -1
 * when the digits dropped are exactly a half: the true value may then lie
 * on either side of it, and only printf knows which. */
static int round_text(const struct digits *g, int p, struct digits *out)
{
    const char *tail = g->d + p;
    bool up = *tail > '5';
    if (*tail == '5') {
        const char *t = tail + 1;
        while (*t == '0') {
            t++;
        }
        if (!*t) {
            return -1;
        }
        up = true;
    }
    memcpy(out->d, g->d, (size_t)p);
    out->d[p] = '\0';
    out->n = p;
    out->exp = g->exp;
    if (up) {
        int i = p - 1;
        for (; i >= 0 && out->d[i] == '9'; i--) {
            out->d[i] = '0';
        }
        if (i < 0) {
            out->d[0] = '1';
            out->exp++;
        } else {
            out->d[i]++;
        }
    }
    return 0;
}

/* The shortest digits of a (positive, finite) that read back as a. */
static void shortest_digits(double a, struct digits *g)
{
    int prec = 1;

    if (scaled_digits(a, g) == 0) {
        return;
    }
    if (a >= DBL_MIN) {
        /* The essay's second fast path: one printf, the shorter roundings
         * derived from its 17 digits. */
        struct digits g17;
        if (exact_digits17(a, &g17) < 0) {
            round_digits(a, DECIMAL_DIGITS_MAX, &g17);
        }
        for (prec = DBL_DIG; prec < DECIMAL_DIGITS_MAX; prec++) {
            if (round_text(&g17, prec, g) < 0) {
                round_digits(a, prec, g);
            }
            if (reads_back(g, a)) {
                trim_zeros(g);
                return;
            }
        }
        *g = g17;
        trim_zeros(g);
        return;
    }

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

/* 10^k as integers, for short_value's trailing zeros. */
static const uint64_t pow10_int[20] = {
    1u,
    10u,
    100u,
    1000u,
    10000u,
    100000u,
    1000000u,
    10000000u,
    100000000u,
    1000000000u,
    10000000000u,
    100000000000u,
    1000000000000u,
    10000000000000u,
    100000000000000u,
    1000000000000000u,
    10000000000000000u,
    100000000000000000u,
    1000000000000000000u,
    10000000000000000000u,
};

/*
 * The common price, without an exponent and with at most 19 digits in all
 * ("0.35210000"): m is those digits as an integer (below 10^19, so it fits;
 * decimal_parse gathers it while it scans), the last nf of them, fp, after
 * the point. The fraction's trailing zeros are dropped with one division
 * (prices often carry several), then Clinger's fast path as above applies
 * when m is below 2^53 and the power of ten at most 22. Returns 0 when it
 * does not, for mantissa_value to take over.
 */
static int short_value(uint64_t m, const char *fp, size_t nf, double *out)
{
    size_t zeros = 0;

    while (zeros < nf && fp[nf - 1 - zeros] == '0') {
        zeros++;
    }
    m /= pow10_int[zeros];
    nf -= zeros;
    if (m >= (UINT64_C(1) << 53) || nf > EXACT_POW10_MAX) {
        return 0;
    }
    *out = (double)m / pow10_exact[nf];
    return 1;
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
    int point = 0;
    long exp = 0;
    uint64_t m = 0; /* the digits as an integer, while they fit (short_value) */
    double d = 0;
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
        m = m * 10 + (uint64_t)(text[i] - '0'); /* wraps past 19 digits: unused then */
        i++;
    }
    ni = (size_t)(text + i - ip);
    if (i < len && text[i] == '.') {
        point = 1;
        i++;
        fp = text + i;
        while (i < len && is_digit(text[i])) {
            m = m * 10 + (uint64_t)(text[i] - '0');
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
    /* Without an exponent, up to PARSE_DIGITS_MAX digits lie between
     * 10^-PARSE_DIGITS_MAX and 10^PARSE_DIGITS_MAX: no error is possible,
     * so a caller that does not want the value does not pay for it. */
    if (has_exp || value || ni + nf > PARSE_DIGITS_MAX) {
        if (has_exp || ni + nf > 19 || !short_value(m, fp, nf, &d)) {
            rc = mantissa_value(ip, ni, fp, nf, exp, &d);
            if (rc < 0) {
                return rc;
            }
        }
    }
    d = neg ? -d : d;
    if (has_exp) {
        rc = decimal_from_double(d, out, cap);
        if (rc < 0) {
            return rc;
        }
    } else if (ni && (!point || nf)) {
        /* Already in the form it is kept in: as written. */
        memcpy(out, text, len);
        out[len] = '\0';
        rc = (int)len;
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
