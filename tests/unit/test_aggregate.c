/*
 * aggregate: median (odd and even counts), vwap with and without volumes,
 * best bid/ask and who quotes them, stale and outlier exclusion (and the
 * two-source case where nobody can be called the outlier), consensus (no
 * majority within outlier_pct: no prices, nobody an outlier), a best bid
 * above the best ask across exchanges reported as crossed, empty input,
 * and inversion to 12 significant digits with sizes and volume converted.
 */
#include "aggregate.h"
#include "check.h"
#include "core/decimal.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define NOW 1700000000000LL

static struct ticker mk(const char *exchange, const char *bid, const char *ask, const char *volume,
                        int64_t age_ms)
{
    struct ticker t;
    memset(&t, 0, sizeof t);
    strcpy(t.exchange, exchange);
    strcpy(t.pair, "BTC_USDT");
    strcpy(t.symbol, "BTCUSDT");
    decimal_parse(bid, strlen(bid), t.bid, sizeof t.bid, &t.bid_value);
    decimal_parse(ask, strlen(ask), t.ask, sizeof t.ask, &t.ask_value);
    if (volume) {
        strcpy(t.volume, volume);
    }
    t.ts = TICKER_TS_NONE;
    t.received = NOW - age_ms;
    t.v = 1;
    return t;
}

static struct aggregate_opts opts(void)
{
    struct aggregate_opts o = {
        .now_ms = NOW, .stale_after_ms = 60000, .stale_after_each = NULL, .outlier_pct = 5};
    return o;
}

static void test_empty(void)
{
    struct aggregate a;
    struct aggregate_opts o = opts();
    aggregate_compute(NULL, 0, &o, &a, NULL);
    CHECK(isnan(a.mid_median));
    CHECK(isnan(a.vwap));
    CHECK_INT_EQ(a.best_bid, -1);
    CHECK_INT_EQ(a.best_ask, -1);
    CHECK_INT_EQ(a.sources, 0);
    CHECK_INT_EQ(a.excluded, 0);
    CHECK(!a.consensus); /* nothing agrees when nothing is there */
    CHECK(!a.crossed);
}

static void test_median_odd_even(void)
{
    struct ticker t[4] = {
        mk("a", "99", "101", NULL, 0),  /* mid 100 */
        mk("b", "101", "103", NULL, 0), /* mid 102 */
        mk("c", "100", "102", NULL, 0), /* mid 101 */
        mk("d", "102", "104", NULL, 0), /* mid 103 */
    };
    enum aggregate_use use[4];
    struct aggregate a;
    struct aggregate_opts o = opts();

    aggregate_compute(t, 3, &o, &a, use);
    CHECK_DBL_NEAR(a.mid_median, 101, 0);
    CHECK_INT_EQ(a.sources, 3);
    aggregate_compute(t, 4, &o, &a, use);
    CHECK_DBL_NEAR(a.mid_median, 101.5, 0);
    CHECK_INT_EQ(a.sources, 4);
    aggregate_compute(t, 1, &o, &a, use);
    CHECK_DBL_NEAR(a.mid_median, 100, 0);
    aggregate_compute(t, 2, &o, &a, use);
    CHECK_DBL_NEAR(a.mid_median, 101, 0);
}

static void test_vwap(void)
{
    struct ticker t[3] = {
        mk("a", "99", "101", "1", 0),   /* mid 100, vol 1 */
        mk("b", "101", "103", "3", 0),  /* mid 102, vol 3 */
        mk("c", "100", "102", NULL, 0), /* mid 101, no volume: median only */
    };
    enum aggregate_use use[3];
    struct aggregate a;
    struct aggregate_opts o = opts();

    aggregate_compute(t, 3, &o, &a, use);
    CHECK_DBL_NEAR(a.vwap, (100 * 1 + 102 * 3) / 4.0, 1e-9);
    CHECK_DBL_NEAR(a.mid_median, 101, 0);
    CHECK_INT_EQ(a.sources, 3);

    /* No volume anywhere: no vwap. A zero volume weighs nothing. */
    strcpy(t[0].volume, "0");
    t[1].volume[0] = '\0';
    aggregate_compute(t, 3, &o, &a, use);
    CHECK(isnan(a.vwap));
    CHECK_DBL_NEAR(a.mid_median, 101, 0);
}

static void test_best(void)
{
    struct ticker t[3] = {
        mk("binance", "100.10", "100.30", NULL, 0),
        mk("kraken", "100.20000", "100.40000", NULL, 0),
        mk("okx", "100.00", "100.25", NULL, 0),
    };
    enum aggregate_use use[3];
    struct aggregate a;
    struct aggregate_opts o = opts();

    aggregate_compute(t, 3, &o, &a, use);
    CHECK_INT_EQ(a.best_bid, 1);
    CHECK_STR_EQ(t[a.best_bid].bid, "100.20000"); /* the text as stored */
    CHECK_STR_EQ(t[a.best_bid].exchange, "kraken");
    CHECK_INT_EQ(a.best_ask, 2);
    CHECK_STR_EQ(t[a.best_ask].ask, "100.25");
    CHECK_STR_EQ(t[a.best_ask].exchange, "okx");

    /* A tie goes to the earlier ticker. */
    strcpy(t[2].bid, "100.2");
    t[2].bid_value = 100.2;
    aggregate_compute(t, 3, &o, &a, use);
    CHECK_INT_EQ(a.best_bid, 1);
}

static void test_stale(void)
{
    struct ticker t[3] = {
        mk("a", "99", "101", "1", 0), mk("b", "101", "103", "1", 61000), /* older than 60 s */
        mk("c", "100", "102", "1", 60000), /* exactly 60 s: still fresh */
    };
    enum aggregate_use use[3];
    struct aggregate a;
    struct aggregate_opts o = opts();

    aggregate_compute(t, 3, &o, &a, use);
    CHECK_INT_EQ(use[0], AGGREGATE_USED);
    CHECK_INT_EQ(use[1], AGGREGATE_STALE);
    CHECK_INT_EQ(use[2], AGGREGATE_USED);
    CHECK_STR_EQ(aggregate_use_name(use[1]), "stale");
    CHECK_INT_EQ(a.sources, 2);
    CHECK_INT_EQ(a.excluded, 1);
    CHECK_DBL_NEAR(a.mid_median, 100.5, 0);
    CHECK_INT_EQ(a.best_bid, 2); /* b's 101 is stale */

    /* Per-ticker thresholds (operator overrides). */
    int64_t each[3] = {1000, 120000, 30000};
    o.stale_after_each = each;
    aggregate_compute(t, 3, &o, &a, use);
    CHECK_INT_EQ(use[0], AGGREGATE_USED);
    CHECK_INT_EQ(use[1], AGGREGATE_USED);
    CHECK_INT_EQ(use[2], AGGREGATE_STALE);

    /* All stale: no source, nothing to say. */
    o.stale_after_each = NULL;
    o.stale_after_ms = 100;
    t[0].received = NOW - 101;
    aggregate_compute(t, 3, &o, &a, use);
    CHECK_INT_EQ(a.sources, 0);
    CHECK_INT_EQ(a.excluded, 3);
    CHECK(isnan(a.mid_median));
    CHECK_INT_EQ(a.best_bid, -1);
    CHECK_INT_EQ(a.best_ask, -1);
}

static void test_outlier(void)
{
    struct ticker t[4] = {
        mk("a", "99", "101", "1", 0),     /* mid 100 */
        mk("b", "99.5", "101.5", "1", 0), /* mid 100.5 */
        mk("c", "109", "111", "100", 0),  /* mid 110: 10 % off */
        mk("d", "99.5", "100.5", "1", 0), /* mid 100 */
    };
    enum aggregate_use use[4];
    struct aggregate a;
    struct aggregate_opts o = opts();

    aggregate_compute(t, 4, &o, &a, use);
    CHECK_INT_EQ(use[0], AGGREGATE_USED);
    CHECK_INT_EQ(use[1], AGGREGATE_USED);
    CHECK_INT_EQ(use[2], AGGREGATE_OUTLIER);
    CHECK_INT_EQ(use[3], AGGREGATE_USED);
    CHECK_STR_EQ(aggregate_use_name(use[2]), "outlier");
    CHECK_INT_EQ(a.sources, 3);
    CHECK_INT_EQ(a.excluded, 1);
    CHECK_DBL_NEAR(a.mid_median, 100, 0);
    CHECK_DBL_NEAR(a.vwap, (100 + 100.5 + 100) / 3.0, 1e-9); /* c's volume left out */
    CHECK_STR_EQ(t[a.best_bid].exchange, "b");               /* not c's 109; b and d tie, b first */
    CHECK_STR_EQ(t[a.best_ask].exchange, "d");

    /* A wider tolerance keeps it. */
    o.outlier_pct = 15;
    aggregate_compute(t, 4, &o, &a, use);
    CHECK_INT_EQ(use[2], AGGREGATE_USED);
    CHECK_INT_EQ(a.sources, 4);

    /* Stale tickers do not vote: with d stale, a and b judge c (and c does
     * not push a or b out: a's others' median is 105.25, 4.99 % away). */
    o.outlier_pct = 5;
    t[3].received = NOW - 70000;
    aggregate_compute(t, 4, &o, &a, use);
    CHECK_INT_EQ(use[2], AGGREGATE_OUTLIER);
    CHECK_INT_EQ(use[3], AGGREGATE_STALE);
    CHECK_INT_EQ(a.sources, 2);
    CHECK_INT_EQ(a.excluded, 2);

    /* One wild quote among three: only it goes (judged all at once, the
     * honest two would be 5.5 % from the mean of "the others" too). */
    struct ticker three[3] = {
        mk("a", "99", "101", NULL, 0),  /* mid 100 */
        mk("b", "100", "102", NULL, 0), /* mid 101 */
        mk("c", "110", "112", NULL, 0), /* mid 111 */
    };
    aggregate_compute(three, 3, &o, &a, use);
    CHECK_INT_EQ(use[0], AGGREGATE_USED);
    CHECK_INT_EQ(use[1], AGGREGATE_USED);
    CHECK_INT_EQ(use[2], AGGREGATE_OUTLIER);
    CHECK_DBL_NEAR(a.mid_median, 100.5, 0);

    /* Two wild ones among five, on either side: both go, farthest first. */
    struct ticker five[5] = {
        mk("a", "99", "101", NULL, 0),  mk("b", "100", "102", NULL, 0),
        mk("c", "79", "81", NULL, 0),   mk("d", "99.5", "100.5", NULL, 0),
        mk("e", "119", "121", NULL, 0),
    };
    enum aggregate_use use5[5];
    aggregate_compute(five, 5, &o, &a, use5);
    CHECK_INT_EQ(use5[0], AGGREGATE_USED);
    CHECK_INT_EQ(use5[2], AGGREGATE_OUTLIER);
    CHECK_INT_EQ(use5[4], AGGREGATE_OUTLIER);
    CHECK_INT_EQ(a.sources, 3);
    CHECK_INT_EQ(a.excluded, 2);
    CHECK_DBL_NEAR(a.mid_median, 100, 0);

    /* Two sources 9.5 % apart: neither can be called the outlier, and
     * they do not agree either (test_consensus). */
    aggregate_compute(t + 1, 2, &o, &a, use);
    CHECK_INT_EQ(use[0], AGGREGATE_USED);
    CHECK_INT_EQ(use[1], AGGREGATE_USED);
    CHECK(!a.consensus);
    CHECK(isnan(a.mid_median));
    /* Within 15 % they do: the median is their mean. */
    o.outlier_pct = 15;
    aggregate_compute(t + 1, 2, &o, &a, use);
    CHECK(a.consensus);
    CHECK_DBL_NEAR(a.mid_median, 105.25, 0);
}

/* Whether all n entries of use are AGGREGATE_USED. */
static int all_used(const enum aggregate_use *use, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (use[i] != AGGREGATE_USED) {
            return 0;
        }
    }
    return 1;
}

/* No prices, every fresh ticker a source, nobody an outlier. */
static void check_no_consensus(const struct aggregate *a, const enum aggregate_use *use, size_t n)
{
    CHECK(!a->consensus);
    CHECK(isnan(a->mid_median));
    CHECK(isnan(a->vwap));
    CHECK_INT_EQ(a->best_bid, -1);
    CHECK_INT_EQ(a->best_ask, -1);
    CHECK_INT_EQ(a->sources, n);
    CHECK_INT_EQ(a->excluded, 0);
    CHECK(all_used(use, n));
}

static void test_consensus(void)
{
    enum aggregate_use use[5];
    struct aggregate a;
    struct aggregate_opts o = opts();

    /* The replay data's BTC_USDT: recordings years apart. Two sources
     * tenfold apart: no median of the two (it would be a price nobody
     * quotes), and a best bid above the best ask. */
    struct ticker two[2] = {
        mk("binance", "6621.55", "6622.10", "57857", 0),
        mk("kraken", "105944.2", "105944.3", "163", 0),
    };
    aggregate_compute(two, 2, &o, &a, use);
    check_no_consensus(&a, use, 2);
    CHECK(a.crossed);

    /* Three that all differ: judging would drop the farthest and leave two
     * that still disagree; nobody is called the outlier. */
    struct ticker three[3] = {
        mk("binance", "6621.55", "6622.10", "57857", 0),
        mk("coinbase", "73360.34", "73369.19", "1207", 0),
        mk("kraken", "105944.2", "105944.3", "163", 0),
    };
    aggregate_compute(three, 3, &o, &a, use);
    check_no_consensus(&a, use, 3);
    CHECK(a.crossed);

    /* Two against two: no majority, whichever side judging leaves. */
    struct ticker four[4] = {
        mk("a", "99", "101", NULL, 0),
        mk("b", "999", "1001", NULL, 0),
        mk("c", "99.5", "100.5", NULL, 0),
        mk("d", "999.5", "1000.5", NULL, 0),
    };
    aggregate_compute(four, 4, &o, &a, use);
    check_no_consensus(&a, use, 4);

    /* Three against two: the three are a majority, the two are outliers. */
    struct ticker five[5] = {
        mk("a", "99", "101", NULL, 0),     mk("b", "999", "1001", NULL, 0),
        mk("c", "99.5", "100.5", NULL, 0), mk("d", "999.5", "1000.5", NULL, 0),
        mk("e", "100", "100.9", NULL, 0),
    };
    aggregate_compute(five, 5, &o, &a, use);
    CHECK(a.consensus);
    CHECK(!a.crossed);
    CHECK_INT_EQ(a.sources, 3);
    CHECK_INT_EQ(use[1], AGGREGATE_OUTLIER);
    CHECK_INT_EQ(use[3], AGGREGATE_OUTLIER);
    CHECK_DBL_NEAR(a.mid_median, 100.0, 0);
    CHECK_STR_EQ(five[a.best_bid].exchange, "e");
    CHECK_STR_EQ(five[a.best_ask].exchange, "c");

    /* Stale tickers do not vote: two fresh that agree are a majority of
     * the fresh, however many stale ones disagree. */
    five[0].received = NOW - 61000;
    five[1].received = NOW - 61000;
    five[3].received = NOW - 61000;
    aggregate_compute(five, 5, &o, &a, use);
    CHECK(a.consensus);
    CHECK_INT_EQ(a.sources, 2);
    CHECK_INT_EQ(a.excluded, 3);
    CHECK_DBL_NEAR(a.mid_median, (100.0 + 100.45) / 2, 1e-12);

    /* One source agrees with itself. */
    aggregate_compute(two, 1, &o, &a, use);
    CHECK(a.consensus);
    CHECK_DBL_NEAR(a.mid_median, 6621.825, 1e-9);
    CHECK_STR_EQ(two[a.best_bid].bid, "6621.55");

    /* Disagreeing without crossing (wide spreads): still no prices. */
    struct ticker wide[2] = {
        mk("a", "90", "200", NULL, 0),  /* mid 145 */
        mk("b", "100", "111", NULL, 0), /* mid 105.5 */
    };
    aggregate_compute(wide, 2, &o, &a, use);
    check_no_consensus(&a, use, 2);
    CHECK(!a.crossed);

    /* Two agree when each is within outlier_pct of the other. */
    struct ticker near[2] = {
        mk("a", "100", "100", NULL, 0),
        mk("b", "104.9", "104.9", NULL, 0),
    };
    aggregate_compute(near, 2, &o, &a, use);
    CHECK(a.consensus);
    near[1] = mk("b", "105.1", "105.1", NULL, 0);
    aggregate_compute(near, 2, &o, &a, use);
    CHECK(!a.consensus);
}

static void test_crossed(void)
{
    /* Agreeing within 5 %, but a's bid is above b's ask: nobody can buy at
     * one and sell at the other, so neither is served as the best price.
     * The median still is. */
    struct ticker t[3] = {
        mk("a", "100.5", "100.6", "1", 0), /* mid 100.55 */
        mk("b", "100.0", "100.2", "1", 0), /* mid 100.1 */
        mk("c", "100.3", "100.4", "1", 0), /* mid 100.35 */
    };
    enum aggregate_use use[3];
    struct aggregate a;
    struct aggregate_opts o = opts();

    aggregate_compute(t, 3, &o, &a, use);
    CHECK(a.consensus);
    CHECK(a.crossed);
    CHECK_INT_EQ(a.best_bid, -1);
    CHECK_INT_EQ(a.best_ask, -1);
    CHECK_INT_EQ(a.sources, 3);
    CHECK_DBL_NEAR(a.mid_median, 100.35, 1e-12);
    CHECK_DBL_NEAR(a.vwap, (100.55 + 100.1 + 100.35) / 3, 1e-9);

    /* A bid equal to the ask elsewhere is locked, not crossed. */
    t[0] = mk("a", "100.2", "100.6", "1", 0);
    t[2] = mk("c", "100.15", "100.4", "1", 0);
    aggregate_compute(t, 3, &o, &a, use);
    CHECK(!a.crossed);
    CHECK_STR_EQ(t[a.best_bid].exchange, "a");
    CHECK_STR_EQ(t[a.best_ask].exchange, "b");

    /* A crossing quote that goes stale no longer crosses. */
    t[0] = mk("a", "100.5", "100.6", "1", 61000);
    aggregate_compute(t, 3, &o, &a, use);
    CHECK(!a.crossed);
    CHECK_STR_EQ(t[a.best_bid].exchange, "c");
}

static void test_invert(void)
{
    struct ticker t = mk("binance", "2", "3", "10", 0);
    struct ticker r;

    strcpy(t.bid_size, "4");
    strcpy(t.ask_size, "5");
    strcpy(t.last, "2.5");
    t.ts = 123;
    t.v = 7;
    CHECK_INT_EQ(aggregate_invert(&t, &r), 0);
    CHECK_STR_EQ(r.pair, "USDT_BTC");
    CHECK_STR_EQ(r.symbol, "BTCUSDT");
    CHECK_STR_EQ(r.exchange, "binance");
    CHECK_STR_EQ(r.bid, "0.333333333333"); /* 1/3, 12 significant digits */
    CHECK_STR_EQ(r.ask, "0.5");
    CHECK_DBL_NEAR(r.bid_value, 0.333333333333, 0);
    CHECK_DBL_NEAR(r.ask_value, 0.5, 0);
    CHECK_STR_EQ(r.bid_size, "15"); /* ask_size * ask */
    CHECK_STR_EQ(r.ask_size, "8");  /* bid_size * bid */
    CHECK_STR_EQ(r.last, "0.4");
    CHECK_STR_EQ(r.volume, "25"); /* volume * mid */
    CHECK_INT_EQ(r.ts, 123);
    CHECK_INT_EQ(r.received, t.received);
    CHECK_INT_EQ(r.v, 7);
    CHECK(r.bid_value <= r.ask_value);

    /* Kraken BTC_USDT: 1/105944.3 to 12 digits, trailing zero trimmed. */
    struct ticker k = mk("kraken", "105944.20000", "105944.30000", NULL, 0);
    CHECK_INT_EQ(aggregate_invert(&k, &k), 0); /* in place */
    CHECK_STR_EQ(k.bid, "0.0000094389221506");
    CHECK_STR_EQ(k.ask, "0.00000943893105994");
    CHECK_STR_EQ(k.volume, "");
    CHECK_STR_EQ(k.bid_size, "");
    CHECK_STR_EQ(k.last, "");

    /* Inverting twice comes back to the pair (prices to 12 digits). */
    CHECK_INT_EQ(aggregate_invert(&k, &k), 0);
    CHECK_STR_EQ(k.pair, "BTC_USDT");
    CHECK_DBL_NEAR(k.bid_value, 105944.2, 1e-6);

    /* Not invertible. */
    struct ticker bad = t;
    strcpy(bad.pair, "BTCUSDT");
    CHECK_INT_EQ(aggregate_invert(&bad, &r), -EINVAL);
    bad = t;
    bad.bid_value = 0;
    CHECK_INT_EQ(aggregate_invert(&bad, &r), -EINVAL);
}

int main(void)
{
    test_empty();
    test_median_odd_even();
    test_vwap();
    test_best();
    test_stale();
    test_outlier();
    test_consensus();
    test_crossed();
    test_invert();
    return CHECK_DONE();
}
