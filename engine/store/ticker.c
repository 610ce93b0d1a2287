/*
 * ticker: validation and the small derived numbers of a quote.
 *
 * Validation is the gate in front of the store: whatever passes here is
 * served as is, so it checks everything a client would otherwise trip on,
 * including that every string is terminated inside its array (a ticker can
 * be filled field by field by code that forgets) and that the doubles the
 * API computes with agree with the text it prints.
 */
#include "ticker.h"

#include "core/decimal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static const char *const reject_names[TICKER_REJECT_COUNT] = {
    [TICKER_OK] = "ok",
    [TICKER_REJECT_CROSSED] = "crossed",
    [TICKER_REJECT_NONPOSITIVE] = "non_positive",
    [TICKER_REJECT_BAD_NUMBER] = "bad_number",
    [TICKER_REJECT_MISSING] = "missing_field",
    [TICKER_REJECT_TOO_LONG] = "too_long",
    [TICKER_REJECT_BAD_PAIR] = "bad_pair",
    [TICKER_REJECT_BAD_TS] = "bad_ts",
    [TICKER_REJECT_NOT_A_TABLE] = "not_a_table",
    [TICKER_REJECT_UNMAPPED] = "unmapped",
    [TICKER_REJECT_FILTERED] = "filtered",
    [TICKER_REJECT_MAX_PAIRS] = "max_pairs",
};

const char *ticker_reject_name(enum ticker_reject why)
{
    if ((unsigned)why >= TICKER_REJECT_COUNT) {
        return "unknown";
    }
    return reject_names[why];
}

static int terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static int is_upper_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c)
{
    return is_upper_alnum(c) || (c >= 'a' && c <= 'z');
}

static char to_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* Length of the run of characters at s accepted by ok(). */
static size_t span(const char *s, int (*ok)(char))
{
    size_t n = 0;
    while (s[n] && ok(s[n])) {
        n++;
    }
    return n;
}

int ticker_pair_valid(const char *pair)
{
    size_t base = span(pair, is_upper_alnum);
    size_t quote;

    if (base < 1 || base > TICKER_ASSET_MAX || pair[base] != '_') {
        return 0;
    }
    quote = span(pair + base + 1, is_upper_alnum);
    return quote >= 1 && quote <= TICKER_ASSET_MAX && pair[base + 1 + quote] == '\0';
}

static int is_exchange_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

int ticker_exchange_valid(const char *name)
{
    size_t n = span(name, is_exchange_char);
    return n >= 1 && n < TICKER_EXCHANGE_MAX && name[n] == '\0';
}

int ticker_pair_canonical(const char *in, char *out, size_t cap)
{
    size_t base;
    size_t quote;
    char sep;

    if (!in) {
        return -EINVAL;
    }
    base = span(in, is_alnum);
    sep = in[base];
    if (base < 1 || base > TICKER_ASSET_MAX || (sep != '_' && sep != '/' && sep != '-')) {
        return -EINVAL;
    }
    quote = span(in + base + 1, is_alnum);
    if (quote < 1 || quote > TICKER_ASSET_MAX || in[base + 1 + quote] != '\0') {
        return -EINVAL;
    }
    if (base + 1 + quote + 1 > cap) {
        return -ENOSPC;
    }
    for (size_t i = 0; i < base + 1 + quote; i++) {
        out[i] = to_upper(in[i]);
    }
    out[base] = '_';
    out[base + 1 + quote] = '\0';
    return (int)(base + 1 + quote);
}

int ticker_pair_swap(const char *pair, char *out, size_t cap)
{
    size_t len;
    size_t base;

    if (!pair || !ticker_pair_valid(pair)) {
        return -EINVAL;
    }
    len = strlen(pair);
    if (len + 1 > cap) {
        return -ENOSPC;
    }
    base = (size_t)(strchr(pair, '_') - pair);
    memcpy(out, pair + base + 1, len - base - 1);
    out[len - base - 1] = '_';
    memcpy(out + len - base, pair, base);
    out[len] = '\0';
    return (int)len;
}

/* The sign of a decimal field, as its text says. */
enum dec_sign {
    DEC_ABSENT,
    DEC_NEGATIVE,
    DEC_ZERO, /* "0", "0.000", "-0.0" */
    DEC_POSITIVE,
};

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The digits at s and their length; *nonzero is set if any is not '0'. */
static size_t digits(const char *s, int *nonzero)
{
    size_t n = 0;
    while (is_digit(s[n])) {
        *nonzero |= s[n] != '0';
        n++;
    }
    return n;
}

/*
 * Classify an optional decimal field, or refuse text that is not in the
 * form it is served in: exactly what decimal_parse gives back unchanged,
 * ['-'] digits ['.' digits], so "1e5" or ".5" that skipped decimal_parse on
 * the way in never reach a client. Text of at most TICKER_DEC_MAX - 1 bytes
 * in that form is always a finite double (no overflow, no underflow to
 * zero), which is why the sign can be read off the text: the prices whose
 * value matters, bid and ask, are parsed by the caller.
 */
static enum ticker_reject field_sign(const char *text, enum dec_sign *sign)
{
    const char *p = text;
    int neg = *p == '-';
    int nonzero = 0;
    size_t n;

    if (!*p) {
        *sign = DEC_ABSENT;
        return TICKER_OK;
    }
    p += neg;
    n = digits(p, &nonzero);
    if (n == 0) {
        return TICKER_REJECT_BAD_NUMBER;
    }
    p += n;
    if (*p == '.') {
        p++;
        n = digits(p, &nonzero);
        if (n == 0) {
            return TICKER_REJECT_BAD_NUMBER;
        }
        p += n;
    }
    if (*p) {
        return TICKER_REJECT_BAD_NUMBER;
    }
    *sign = !nonzero ? DEC_ZERO : neg ? DEC_NEGATIVE : DEC_POSITIVE;
    return TICKER_OK;
}

/* The value of a side already in served form; bad_number if it disagrees
 * with the double the ticker carries. */
static enum ticker_reject side_value(const char *text, double value)
{
    char scratch[TICKER_DEC_MAX];
    double parsed;

    if (decimal_parse(text, strlen(text), scratch, sizeof scratch, &parsed) < 0 ||
        parsed != value) {
        /* NAN in value never compares equal, so it lands here too. */
        return TICKER_REJECT_BAD_NUMBER;
    }
    return TICKER_OK;
}

static enum ticker_reject ts_check(const struct ticker *t)
{
    if (t->ts == TICKER_TS_NONE) {
        return TICKER_OK;
    }
    if (t->ts < TICKER_TS_MIN || t->ts - TICKER_TS_AHEAD_MAX_MS > t->received) {
        return TICKER_REJECT_BAD_TS;
    }
    return TICKER_OK;
}

enum ticker_reject ticker_validate(const struct ticker *t)
{
    const char *const decs[] = {t->bid, t->ask, t->bid_size, t->ask_size, t->last, t->volume};
    enum dec_sign sign[6];
    enum ticker_reject why;

    if (!terminated(t->exchange, sizeof(t->exchange)) || !terminated(t->pair, sizeof(t->pair)) ||
        !terminated(t->symbol, sizeof(t->symbol))) {
        return TICKER_REJECT_TOO_LONG;
    }
    for (size_t i = 0; i < 6; i++) {
        if (!terminated(decs[i], TICKER_DEC_MAX)) {
            return TICKER_REJECT_TOO_LONG;
        }
    }
    if (!t->exchange[0] || !t->pair[0] || !t->bid[0] || !t->ask[0]) {
        return TICKER_REJECT_MISSING;
    }
    if (!ticker_pair_valid(t->pair) || !ticker_exchange_valid(t->exchange)) {
        return TICKER_REJECT_BAD_PAIR;
    }
    for (size_t i = 0; i < 6; i++) {
        why = field_sign(decs[i], &sign[i]);
        if (why != TICKER_OK) {
            return why;
        }
    }
    why = side_value(t->bid, t->bid_value);
    if (why == TICKER_OK) {
        why = side_value(t->ask, t->ask_value);
    }
    if (why == TICKER_OK) {
        why = ts_check(t);
    }
    if (why != TICKER_OK) {
        return why;
    }
    if (sign[0] != DEC_POSITIVE || sign[1] != DEC_POSITIVE ||
        (sign[4] != DEC_ABSENT && sign[4] != DEC_POSITIVE)) {
        return TICKER_REJECT_NONPOSITIVE;
    }
    for (size_t i = 2; i < 6; i++) {
        if (i != 4 && sign[i] == DEC_NEGATIVE) {
            return TICKER_REJECT_NONPOSITIVE;
        }
    }
    if (t->bid_value > t->ask_value) {
        return TICKER_REJECT_CROSSED;
    }
    return TICKER_OK;
}

double ticker_mid(const struct ticker *t)
{
    if (!t->bid[0] || !t->ask[0]) {
        return NAN;
    }
    return (t->bid_value + t->ask_value) / 2;
}

double ticker_spread_bps(const struct ticker *t)
{
    double mid = ticker_mid(t);

    if (!(mid > 0)) {
        return NAN;
    }
    return (t->ask_value - t->bid_value) / mid * 1e4;
}

static int same_text(const char *a, const char *b, size_t cap)
{
    return strncmp(a, b, cap) == 0;
}

/*
 * Strings compare up to their terminators (bytes after them are noise).
 * The doubles compare bit for bit, not by value: the question is "would a
 * reader see anything different", and -0.0 or a NAN payload would be.
 */
int ticker_same_quote(const struct ticker *a, const struct ticker *b)
{
    return same_text(a->exchange, b->exchange, sizeof(a->exchange)) &&
           same_text(a->pair, b->pair, sizeof(a->pair)) &&
           same_text(a->symbol, b->symbol, sizeof(a->symbol)) &&
           same_text(a->bid, b->bid, TICKER_DEC_MAX) && same_text(a->ask, b->ask, TICKER_DEC_MAX) &&
           same_text(a->bid_size, b->bid_size, TICKER_DEC_MAX) &&
           same_text(a->ask_size, b->ask_size, TICKER_DEC_MAX) &&
           same_text(a->last, b->last, TICKER_DEC_MAX) &&
           same_text(a->volume, b->volume, TICKER_DEC_MAX) &&
           memcmp(&a->bid_value, &b->bid_value, sizeof(double)) == 0 &&
           memcmp(&a->ask_value, &b->ask_value, sizeof(double)) == 0 && a->ts == b->ts &&
           a->source == b->source;
}
