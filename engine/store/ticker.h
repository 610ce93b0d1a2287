/*
 * ticker: one exchange's quote for one pair, as stored and served (DESIGN §3).
 *
 * A struct ticker is plain fixed-size data with no pointers, so it can be
 * copied with memcpy or assignment; the store relies on that to hand readers
 * consistent copies without locks. Strings are NUL-terminated inside their
 * arrays; a decimal field that is "" means null (absent). Prices are decimal
 * text following decimal.h; bid_value and ask_value are the same numbers as
 * doubles, kept for arithmetic (mid, spread, sorting), and must be exactly
 * what decimal_parse returns for bid and ask.
 *
 * These functions keep no state: any thread may call them on tickers it
 * owns or has copied. Nothing here allocates.
 */
#ifndef RX_TICKER_H
#define RX_TICKER_H

#include <stddef.h>
#include <stdint.h>

#define TICKER_EXCHANGE_MAX 32
#define TICKER_PAIR_MAX 32
#define TICKER_SYMBOL_MAX 64
#define TICKER_DEC_MAX 40
/* Each side of a canonical pair: [A-Z0-9]{1,15}. */
#define TICKER_ASSET_MAX 15
/* ts when the exchange gives no timestamp. */
#define TICKER_TS_NONE INT64_MIN
/* The earliest ts served: 2009-01-01T00:00:00Z, before any crypto market.
 * A ts in seconds, or -1, lands before it. */
#define TICKER_TS_MIN INT64_C(1230768000000)
/* How far past `received` a ts may be: clocks drift, but not by a day. */
#define TICKER_TS_AHEAD_MAX_MS INT64_C(86400000)

enum ticker_source {
    TICKER_SOURCE_POLL,
    TICKER_SOURCE_STREAM,
};

struct ticker {
    char exchange[TICKER_EXCHANGE_MAX]; /* operator name, [a-z0-9_]+ */
    char pair[TICKER_PAIR_MAX];         /* canonical BASE_QUOTE */
    char symbol[TICKER_SYMBOL_MAX];     /* the exchange's own symbol, may be "" */
    char bid[TICKER_DEC_MAX];
    char ask[TICKER_DEC_MAX];
    char bid_size[TICKER_DEC_MAX]; /* "" = null */
    char ask_size[TICKER_DEC_MAX]; /* "" = null */
    char last[TICKER_DEC_MAX];     /* "" = null */
    char volume[TICKER_DEC_MAX];   /* 24h base volume, "" = null */
    double bid_value;
    double ask_value;
    int64_t ts;       /* exchange time, ms since epoch, or TICKER_TS_NONE */
    int64_t received; /* engine receive time, ms since epoch */
    uint64_t v;       /* per-(exchange, pair) version, assigned by the store */
    enum ticker_source source;
};

/* Why a ticker was not stored. The first seven are ticker_validate's; the
 * rest are refusals at emit that no field of the ticker explains. The order
 * is the order of reject_reasons and of the /metrics labels. */
enum ticker_reject {
    TICKER_OK = 0,
    TICKER_REJECT_CROSSED,     /* bid > ask */
    TICKER_REJECT_NONPOSITIVE, /* bid, ask or last <= 0, or a size/volume < 0 */
    TICKER_REJECT_BAD_NUMBER,  /* decimal text that does not parse, or a value that disagrees */
    TICKER_REJECT_MISSING,     /* no exchange, pair, bid or ask */
    TICKER_REJECT_TOO_LONG,    /* a field does not fit its array */
    TICKER_REJECT_BAD_PAIR,    /* pair not BASE_QUOTE, or exchange not [a-z0-9_]+ */
    TICKER_REJECT_BAD_TS,      /* ts not integer ms, before TICKER_TS_MIN or a day ahead */
    TICKER_REJECT_NOT_A_TABLE, /* an emit that is not a table */
    TICKER_REJECT_UNMAPPED,    /* a symbol markets() and the aliases do not map */
    TICKER_REJECT_FILTERED,    /* a pair outside the config's pairs allow-list */
    TICKER_REJECT_MAX_PAIRS,   /* a new pair beyond the operator's max_pairs */
    TICKER_REJECT_COUNT,
};

/* Stable snake_case name of a reason ("crossed", ...; "ok" for TICKER_OK,
 * "unknown" out of range), used in JSON and metrics labels. */
const char *ticker_reject_name(enum ticker_reject why);

/*
 * Whether the ticker may be served, and if not the first reason found, in
 * this order: too_long, missing, bad_pair, bad_number, bad_ts,
 * non_positive, crossed. bid and ask must be present and > 0 (equal is
 * allowed, bid > ask is crossed); bid_size, ask_size and volume, if
 * present, >= 0; last, if present, > 0. Decimal text must be exactly what
 * decimal_parse writes (no exponent, no bare point), and bid_value and
 * ask_value must equal the parsed bid and ask; bad_number otherwise (it
 * catches an emitter that skipped decimal_parse or forgot the values). ts,
 * unless TICKER_TS_NONE, must lie between TICKER_TS_MIN and `received` +
 * TICKER_TS_AHEAD_MAX_MS.
 */
enum ticker_reject ticker_validate(const struct ticker *t);

/* (bid + ask) / 2 from bid_value and ask_value; NAN if bid or ask is null. */
double ticker_mid(const struct ticker *t);

/* (ask - bid) / mid * 10^4; NAN if bid or ask is null or mid <= 0. */
double ticker_spread_bps(const struct ticker *t);

/*
 * Nonzero if a and b quote the same thing: every field equal except
 * `received` and `v` (the store's "unchanged" test).
 */
int ticker_same_quote(const struct ticker *a, const struct ticker *b);

/*
 * Parse pair input: "BTC_USDT", "BTC/USDT" or "BTC-USDT", any case, each
 * side [A-Za-z0-9]{1,15}. Writes the canonical "BTC_USDT" to out and returns
 * its length; -EINVAL for any other form, -ENOSPC if cap is too small.
 */
int ticker_pair_canonical(const char *in, char *out, size_t cap);

/* Nonzero if pair is exactly canonical: [A-Z0-9]{1,15}_[A-Z0-9]{1,15}. */
int ticker_pair_valid(const char *pair);

/* Nonzero if name is a valid exchange name: [a-z0-9_]{1,31}. */
int ticker_exchange_valid(const char *name);

/*
 * "BASE_QUOTE" -> "QUOTE_BASE" for a canonical pair (how a request for an
 * inverted pair finds the stored one). Returns the length, -EINVAL if pair
 * is not canonical, -ENOSPC if cap is too small.
 */
int ticker_pair_swap(const char *pair, char *out, size_t cap);

#endif
