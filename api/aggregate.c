/*
 * aggregate: median, vwap, best bid/ask and exclusions for one pair, and
 * ticker inversion. The rules are in aggregate.h; this file only adds how.
 *
 * The median of "all but ticker i" is read off the sorted mids by skipping
 * i's position, so one round of judging n tickers costs one sort plus
 * O(log n) each; rounds stop at the first that finds no outlier, and there
 * are few sources per pair.
 */
#include "aggregate.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/decimal.h"
#include "core/xalloc.h"

const char *aggregate_use_name(enum aggregate_use use)
{
    switch (use) {
    case AGGREGATE_STALE:
        return "stale";
    case AGGREGATE_OUTLIER:
        return "outlier";
    case AGGREGATE_USED:
        break;
    }
    return "used";
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Element q of the sorted array m with position skip removed. */
static double skipping(const double *m, size_t skip, size_t q)
{
    return m[q < skip ? q : q + 1];
}

/* Median of the n sorted values m without the one at position skip
 * (skip >= n: nothing skipped). n - (skipped) must be at least 1. */
static double median_without(const double *m, size_t n, size_t skip)
{
    size_t k = skip < n ? n - 1 : n;
    size_t s = skip < n ? skip : n;

    if (k % 2) {
        return skipping(m, s, k / 2);
    }
    return (skipping(m, s, k / 2 - 1) + skipping(m, s, k / 2)) / 2;
}

/* Position of value v in the sorted array m (any one of equal values). */
static size_t sorted_position(const double *m, size_t n, double v)
{
    size_t lo = 0;
    size_t hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m[mid] < v) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* The value of decimal text, or NAN when null or unreadable. */
static double text_value(const char *text)
{
    char tmp[TICKER_DEC_MAX];
    double v;
    if (!text[0] || decimal_parse(text, strlen(text), tmp, sizeof tmp, &v) < 0) {
        return NAN;
    }
    return v;
}

static int is_fresh(const struct ticker *t, size_t i, const struct aggregate_opts *o)
{
    int64_t limit = o->stale_after_each ? o->stale_after_each[i] : o->stale_after_ms;
    return o->now_ms - t->received <= limit;
}

/*
 * Rule 2: judge the fresh tickers one at a time, the farthest from the
 * median of the others first, until every one left is within outlier_pct
 * of the median of the others, or only two are left. Judging all at once
 * would let one wild quote among three condemn the two honest ones (the
 * median of two is their mean, which the wild one drags along).
 */
static void mark_outliers(size_t n, const double *mids, const struct aggregate_opts *opts,
                          enum aggregate_use *use)
{
    double *sorted = xmalloc((n ? n : 1) * sizeof *sorted);

    for (;;) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (use[i] == AGGREGATE_USED) {
                sorted[k++] = mids[i];
            }
        }
        if (k < 3) {
            break;
        }
        qsort(sorted, k, sizeof *sorted, cmp_double);
        size_t worst = n;
        double worst_dev = 0;
        for (size_t i = 0; i < n; i++) {
            if (use[i] != AGGREGATE_USED) {
                continue;
            }
            double others = median_without(sorted, k, sorted_position(sorted, k, mids[i]));
            double dev = fabs(mids[i] - others) / fabs(others) * 100.0;
            if (dev > opts->outlier_pct && (worst == n || dev > worst_dev)) {
                worst = i;
                worst_dev = dev;
            }
        }
        if (worst == n) {
            break;
        }
        use[worst] = AGGREGATE_OUTLIER;
    }
    free(sorted);
}

static bool priced(double mid)
{
    return isfinite(mid) && mid > 0;
}

/*
 * Rule 3: whether the tickers still marked used are more than half of the
 * `fresh` ones and each lies within outlier_pct of the median of the
 * others. Judging has already made sure of the second with three or more
 * left; two left are still checked against each other here.
 */
static bool agree(size_t n, const double *mids, const enum aggregate_use *use, size_t fresh,
                  double outlier_pct)
{
    double *sorted = xmalloc((n ? n : 1) * sizeof *sorted);
    bool ok = true;
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        if (use[i] == AGGREGATE_USED) {
            sorted[k++] = mids[i];
        }
    }
    if (k == 0 || 2 * k <= fresh) {
        ok = false;
    }
    qsort(sorted, k, sizeof *sorted, cmp_double);
    for (size_t i = 0; ok && k > 1 && i < n; i++) {
        if (use[i] != AGGREGATE_USED) {
            continue;
        }
        double others = median_without(sorted, k, sorted_position(sorted, k, mids[i]));
        ok = fabs(mids[i] - others) / fabs(others) * 100.0 <= outlier_pct;
    }
    free(sorted);
    return ok;
}

/* Rules 4 and 5 over the tickers still marked used, before the consensus
 * and crossed rules take prices away. */
static void summarize(const struct ticker *tickers, size_t n, const double *mids,
                      const enum aggregate_use *use, struct aggregate *out)
{
    double *sorted = xmalloc((n ? n : 1) * sizeof *sorted);
    double weighted = 0;
    double volume = 0;

    for (size_t i = 0; i < n; i++) {
        if (use[i] != AGGREGATE_USED) {
            out->excluded++;
            continue;
        }
        const struct ticker *t = &tickers[i];
        sorted[out->sources++] = mids[i];
        if (out->best_bid < 0 || t->bid_value > tickers[out->best_bid].bid_value) {
            out->best_bid = (int)i;
        }
        if (out->best_ask < 0 || t->ask_value < tickers[out->best_ask].ask_value) {
            out->best_ask = (int)i;
        }
        double v = text_value(t->volume);
        if (v > 0 && isfinite(v)) {
            weighted += mids[i] * v;
            volume += v;
        }
    }
    if (out->sources) {
        qsort(sorted, out->sources, sizeof *sorted, cmp_double);
        out->mid_median = median_without(sorted, out->sources, out->sources);
    }
    if (volume > 0) {
        out->vwap = weighted / volume;
    }
    out->crossed =
        out->best_bid >= 0 && tickers[out->best_bid].bid_value > tickers[out->best_ask].ask_value;
    free(sorted);
}

void aggregate_compute(const struct ticker *tickers, size_t n, const struct aggregate_opts *opts,
                       struct aggregate *out, enum aggregate_use *use)
{
    double *mids = xmalloc((n ? n : 1) * sizeof *mids);

    out->mid_median = NAN;
    out->vwap = NAN;
    out->best_bid = -1;
    out->best_ask = -1;
    out->sources = 0;
    out->excluded = 0;
    out->consensus = false;
    out->crossed = false;
    size_t fresh = 0;
    for (size_t i = 0; i < n; i++) {
        mids[i] = ticker_mid(&tickers[i]);
        use[i] = is_fresh(&tickers[i], i, opts) ? AGGREGATE_USED : AGGREGATE_STALE;
        if (use[i] == AGGREGATE_USED && !priced(mids[i])) {
            /* Unpriced: neither a source nor worth reporting as an outlier. */
            use[i] = AGGREGATE_OUTLIER;
        }
        fresh += use[i] == AGGREGATE_USED;
    }
    mark_outliers(n, mids, opts, use);
    out->consensus = agree(n, mids, use, fresh, opts->outlier_pct);
    if (!out->consensus) {
        /* No side wins, so no side is the outlier: every fresh quote is a
         * source that disagrees. */
        for (size_t i = 0; i < n; i++) {
            if (use[i] == AGGREGATE_OUTLIER && priced(mids[i])) {
                use[i] = AGGREGATE_USED;
            }
        }
    }
    summarize(tickers, n, mids, use, out);
    if (!out->consensus) {
        out->mid_median = NAN;
        out->vwap = NAN;
    }
    if (!out->consensus || out->crossed) {
        out->best_bid = -1;
        out->best_ask = -1;
    }
    free(mids);
}

/* v with 12 significant digits into out (TICKER_DEC_MAX); "" on failure. */
static int sig_text(double v, char *out)
{
    char tmp[TICKER_DEC_MAX];
    int rc = decimal_sig(v, AGGREGATE_INVERT_DIGITS, tmp, sizeof tmp);
    if (rc < 0) {
        out[0] = '\0';
        return rc;
    }
    memcpy(out, tmp, (size_t)rc + 1);
    return 0;
}

/* product of two texts' values, 12 digits, into out; null if either is. */
static void product_text(const char *a, double b, char *out)
{
    double x = text_value(a);
    if (!isfinite(x) || !isfinite(b) || x < 0 || sig_text(x * b, out) < 0) {
        out[0] = '\0';
    }
}

int aggregate_invert(const struct ticker *t, struct ticker *out)
{
    struct ticker r = *t;
    double bid = t->bid_value;
    double ask = t->ask_value;
    int rc;

    if (ticker_pair_swap(t->pair, r.pair, sizeof r.pair) < 0 || !(bid > 0) || !(ask > 0)) {
        return -EINVAL;
    }
    if ((rc = sig_text(1.0 / ask, r.bid)) < 0 || (rc = sig_text(1.0 / bid, r.ask)) < 0) {
        return rc == -EINVAL ? -EINVAL : -ENOSPC;
    }
    /* The values must be exactly what the text reads back as (ticker.h). */
    r.bid_value = text_value(r.bid);
    r.ask_value = text_value(r.ask);
    product_text(t->ask_size, ask, r.bid_size);
    product_text(t->bid_size, bid, r.ask_size);
    product_text(t->volume, (bid + ask) / 2, r.volume);
    double last = text_value(t->last);
    if (!(last > 0) || sig_text(1.0 / last, r.last) < 0) {
        r.last[0] = '\0';
    }
    *out = r;
    return 0;
}
