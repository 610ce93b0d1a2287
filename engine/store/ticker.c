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

/*
 * Parse an optional decimal field. Returns TICKER_OK and sets *present, or
 * bad_number for text that is not a number or not in the form it is served
 * in: decimal_parse must give it back unchanged, so "1e5" or ".5" that
 * skipped decimal_parse on the way in never reach a client.
 */
static enum ticker_reject field_value(const char *text, double *value, int *present)
{
    char scratch[TICKER_DEC_MAX];
    size_t len = strlen(text);
    int n;

    *present = len > 0;
    if (!*present) {
        return TICKER_OK;
    }
    n = decimal_parse(text, len, scratch, sizeof(scratch), value);
    if (n < 0 || (size_t)n != len || memcmp(scratch, text, len) != 0) {
        return TICKER_REJECT_BAD_NUMBER;
    }
    return TICKER_OK;
}

enum ticker_reject ticker_validate(const struct ticker *t)
{
    const char *const decs[] = {t->bid, t->ask, t->bid_size, t->ask_size, t->last, t->volume};
    double val[6] = {0};
    int present[6] = {0};
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
        why = field_value(decs[i], &val[i], &present[i]);
        if (why != TICKER_OK) {
            return why;
        }
    }
    /* NAN in bid_value never compares equal, so it lands here too. */
    if (val[0] != t->bid_value || val[1] != t->ask_value) {
        return TICKER_REJECT_BAD_NUMBER;
    }
    if (val[0] <= 0 || val[1] <= 0 || (present[4] && val[4] <= 0)) {
        return TICKER_REJECT_NONPOSITIVE;
    }
    for (size_t i = 2; i < 6; i++) {
        if (i != 4 && present[i] && val[i] < 0) {
            return TICKER_REJECT_NONPOSITIVE;
        }
    }
    if (val[0] > val[1]) {
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
