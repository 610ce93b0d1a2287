/*
 * aggregate: what several exchanges' tickers for one pair say together
 * (DESIGN 4.1), and a ticker seen from the other side of its pair (DESIGN 3).
 *
 * Pure functions over tickers the caller owns: no store, no MHD, no config,
 * no state; any thread may call them. The caller supplies "now" and the
 * thresholds, so the same inputs always give the same answer (the unit
 * tests rely on that).
 *
 * The rules, in order:
 *   1. stale: a ticker whose age (now - received) is above its stale_after
 *      is excluded with reason "stale";
 *   2. outlier: among the remaining (fresh) tickers, one whose mid lies more
 *      than outlier_pct percent from the median of the OTHER fresh tickers'
 *      mids is excluded with reason "outlier". They are judged one at a
 *      time, the farthest first, and the others' median is recomputed
 *      without the ones already excluded: with one wild quote among three,
 *      judging all at once would exclude all three (the median of the two
 *      others is their mean, which the wild one drags away). Judging stops
 *      when fewer than three are left: with two, each is as far from "the
 *      others" as the other is from it, and no side can be called the
 *      outlier;
 *   3. consensus: the tickers left after judging must be more than half of
 *      the fresh ones, and each must lie within outlier_pct of the median
 *      of the others (with two left, of each other). Otherwise no majority
 *      agrees (two quotes tenfold apart; three that all differ; two against
 *      two), nobody is called an outlier, every fresh ticker stays a source
 *      and the aggregate has no price: mid_median, vwap, best_bid and
 *      best_ask are empty and consensus is false. Picking a side would
 *      serve one exchange's asset as everyone's when two list different
 *      assets under one code, as recordings from different years do. No
 *      fresh ticker at all is no consensus either;
 *   4. the rest are the sources: mid_median is the median of their mids (the
 *      mean of the two middle ones for an even count), vwap the mean of
 *      their mids weighted by 24h volume (tickers without a volume, or with
 *      zero, are left out of vwap only), best_bid the highest bid and
 *      best_ask the lowest ask (on a tie, the earlier ticker in the input);
 *   5. crossed: when the highest bid among the sources is above their
 *      lowest ask (each exchange's own quote is never crossed, the store
 *      refuses those), the pair is crossed across exchanges: best_bid and
 *      best_ask are empty, as no one can trade at both, and crossed is set.
 *      The median stays when there is consensus. Crossed is judged with or
 *      without consensus; a bid equal to the ask is not crossed.
 *
 * Inversion (BASE_QUOTE served as QUOTE_BASE): bid' = 1/ask, ask' = 1/bid,
 * last' = 1/last, each rendered with 12 significant digits (decimal_sig).
 * Sizes follow the orders they describe, converted into the new base asset
 * (the old quote): the old ask (someone selling ask_size BASE at ask) is
 * the new bid, for ask_size * ask units of QUOTE, so bid_size' = ask_size *
 * ask and ask_size' = bid_size * bid. volume (24h, base units) becomes
 * volume * mid, an estimate of the quote volume, as the stored ticker does
 * not carry the exchange's own quote volume. These too get 12 significant
 * digits. symbol, ts, received, v and source are kept.
 */
#ifndef RX_AGGREGATE_H
#define RX_AGGREGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/ticker.h"

/* Significant digits of computed (inverted) prices and sizes. */
#define AGGREGATE_INVERT_DIGITS 12

/* What the aggregate did with one input ticker. */
enum aggregate_use {
    AGGREGATE_USED,
    AGGREGATE_STALE,
    AGGREGATE_OUTLIER,
};

struct aggregate_opts {
    int64_t now_ms;         /* the time the answer describes ("generated") */
    int64_t stale_after_ms; /* one threshold for every ticker ... */
    /* ... or, if not NULL, n thresholds: stale_after_each[i] for tickers[i]
     * (per-operator overrides). */
    const int64_t *stale_after_each;
    double outlier_pct; /* > 0; a percentage: 5 means 5 % */
};

struct aggregate {
    double mid_median; /* NAN without consensus */
    double vwap;       /* NAN without consensus or when no source has a volume */
    int best_bid;      /* index into the input of the highest bid; -1 if none,
                          without consensus or when crossed */
    int best_ask;      /* index of the lowest ask; -1 likewise */
    size_t sources;    /* tickers used */
    size_t excluded;   /* tickers excluded (stale + outlier) */
    bool consensus;    /* rule 3: a majority of the fresh tickers agrees */
    bool crossed;      /* rule 5: the sources' best bid is above their best ask */
};

/* "stale" or "outlier" (the JSON reason), "used" for AGGREGATE_USED. */
const char *aggregate_use_name(enum aggregate_use use);

/*
 * Aggregate n tickers of one pair (borrowed; n may be 0). use (n entries,
 * caller-owned, may be NULL when n is 0) receives what happened to each
 * ticker, in input order. Tickers with a null bid or ask never count as
 * sources (the store only holds priced ones; this is for robustness).
 */
void aggregate_compute(const struct ticker *tickers, size_t n, const struct aggregate_opts *opts,
                       struct aggregate *out, enum aggregate_use *use);

/*
 * Write into out the ticker t as seen from the inverted pair (rules above);
 * t and out may be the same. Returns 0, or -EINVAL when t's pair is not
 * canonical or its bid or ask is not positive, -ENOSPC when an inverted
 * price does not fit TICKER_DEC_MAX (an absurdly small or large value); out
 * is then unspecified. Sizes, last or volume that cannot be converted
 * become null rather than failing.
 */
int aggregate_invert(const struct ticker *t, struct ticker *out);

#endif
