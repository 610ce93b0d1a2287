/*
 * rates_view: what the rate routes (route_rates.c, route_convert.c) share —
 * reading tickers out of the store into a sorted set, each ticker's stale
 * threshold (per-operator override or the global one), and the JSON of a
 * ticker and of an aggregate.
 *
 * Called on libmicrohttpd threads; reads the store through its lock-free
 * reader functions and the config (immutable while the API runs). A
 * rates_set is owned by whoever declared it: init, fill, free.
 */
#ifndef RX_RATES_VIEW_H
#define RX_RATES_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregate.h"
#include "api.h"
#include "core/jbuf.h"
#include "store/ticker.h"

/* Tickers copied from the store, with each one's stale threshold. */
struct rates_set {
    struct ticker *t;
    int64_t *stale_after; /* stale_after[i] belongs to t[i] */
    size_t n;
    size_t cap;
};

/* Nonzero: keep this ticker. Called on a borrowed copy during the scan. */
typedef int (*rates_keep_fn)(const struct ticker *t, void *arg);

void rates_set_init(struct rates_set *s);
void rates_set_free(struct rates_set *s);
/* Appends a copy of t with its threshold. */
void rates_set_push(struct rates_set *s, const struct ticker *t, int64_t stale_after_ms);
/* Drop entry i, keeping the order. */
void rates_set_remove(struct rates_set *s, size_t i);

/* The operator's stale_after_ms override, else the global one. */
int64_t rates_stale_after(const struct config *cfg, const char *exchange);

/*
 * Every live ticker keep() accepts (keep NULL: all), sorted by pair, then
 * exchange, appended to out.
 */
void rates_collect(const struct api_ctx *ctx, rates_keep_fn keep, void *arg, struct rates_set *out);

/*
 * The tickers of one canonical pair, one store_get per known exchange (no
 * full scan), sorted by exchange. Returns how many were added.
 */
size_t rates_collect_pair(const struct api_ctx *ctx, const char *pair, struct rates_set *out);

/* Aggregate n tickers of set starting at `first`, as of now_ms. use must
 * hold n entries. */
void rates_aggregate(const struct api_ctx *ctx, const struct rates_set *set, size_t first, size_t n,
                     int64_t now_ms, struct aggregate *agg, enum aggregate_use *use);

/* The ticker object of DESIGN 3 as of generated_ms, plus "inverted":true
 * when inverted. */
void rates_ticker_json(struct jbuf *b, const struct ticker *t, int64_t generated_ms,
                       int64_t stale_after_ms, bool inverted);

/* {"mid_median","vwap","best_bid":{"price","exchange"},"best_ask":{...},
 * "sources","excluded":[{"exchange","reason"}],"consensus","crossed"} for
 * tickers[0..n); empty prices (aggregate.h rules 3 and 5) are nulls. */
void rates_aggregate_json(struct jbuf *b, const struct ticker *tickers, size_t n,
                          const struct aggregate *agg, const enum aggregate_use *use);

/* Parses an asset code ([A-Za-z0-9]{1,15}) into upper case; -1 if bad. */
int rates_asset(const char *in, char out[TICKER_ASSET_MAX + 1]);

#endif
