/*
 * store: the single-threaded contract of every function. Concurrency is
 * test_store_stress.c's job.
 */
#include "check.h"
#include "store/store.h"

#include <errno.h>
#include <stdlib.h>

static struct ticker make(const char *exchange, const char *pair, const char *bid, const char *ask,
                          int64_t received)
{
    struct ticker t;

    memset(&t, 0, sizeof(t));
    strcpy(t.exchange, exchange);
    strcpy(t.pair, pair);
    snprintf(t.symbol, sizeof(t.symbol), "%s@%s", pair, exchange);
    strcpy(t.bid, bid);
    strcpy(t.ask, ask);
    t.bid_value = strtod(bid, NULL);
    t.ask_value = strtod(ask, NULL);
    t.ts = TICKER_TS_NONE;
    t.received = received;
    t.source = TICKER_SOURCE_POLL;
    return t;
}

struct tally {
    int calls;
    int stop_after;
    uint64_t vsum;
    char exchanges[8][TICKER_EXCHANGE_MAX];
};

static int count_cb(const struct ticker *t, void *ctx)
{
    struct tally *c = ctx;

    if (c->calls < 8) {
        strcpy(c->exchanges[c->calls], t->exchange);
    }
    c->calls++;
    c->vsum += t->v;
    return c->stop_after && c->calls >= c->stop_after;
}

static int scan_count(const struct store *s, const char *exchange)
{
    struct tally c = {0};

    store_scan(s, exchange, count_cb, &c);
    return c.calls;
}

static void test_lifecycle(void)
{
    store_free(NULL);
    struct store *s = store_new();
    struct ticker out;
    struct store_exchange_stats st;
    char names[4][TICKER_EXCHANGE_MAX];

    CHECK(s != NULL);
    CHECK_INT_EQ(store_get(s, "binance", "BTC_USDT", &out), -ENOENT);
    CHECK_INT_EQ(store_get(s, "binance", "BTC_USDT", NULL), -ENOENT);
    CHECK_INT_EQ(scan_count(s, NULL), 0);
    CHECK_INT_EQ(scan_count(s, "binance"), 0);
    CHECK_INT_EQ(store_exchange_stats(s, "binance", &st), -ENOENT);
    CHECK_INT_EQ(store_exchange_names(s, names, 4), 0);
    CHECK_INT_EQ(store_generation(s), 0);
    CHECK_INT_EQ(store_remove_exchange(s, "binance"), -ENOENT);
    store_free(s);
}

static void test_put_get(void)
{
    struct store *s = store_new();
    struct ticker t = make("binance", "BTC_USDT", "64000.10", "64000.20", 1000);
    struct ticker out;
    struct store_exchange_stats st;

    strcpy(t.last, "64000.15");
    t.ts = 999;
    t.source = TICKER_SOURCE_STREAM;
    t.v = 77; /* ignored: the store assigns versions */
    CHECK_INT_EQ(store_put(s, &t), 1);
    CHECK_INT_EQ(t.v, 1);
    CHECK_INT_EQ(store_get(s, "binance", "BTC_USDT", &out), 0);
    CHECK_INT_EQ(store_get(s, "binance", "BTC_USDT", NULL), 0);
    CHECK_STR_EQ(out.exchange, "binance");
    CHECK_STR_EQ(out.pair, "BTC_USDT");
    CHECK_STR_EQ(out.symbol, "BTC_USDT@binance");
    CHECK_STR_EQ(out.bid, "64000.10");
    CHECK_STR_EQ(out.ask, "64000.20");
    CHECK_STR_EQ(out.last, "64000.15");
    CHECK_STR_EQ(out.volume, "");
    CHECK(out.bid_value == 64000.10 && out.ask_value == 64000.20);
    CHECK_INT_EQ(out.ts, 999);
    CHECK_INT_EQ(out.received, 1000);
    CHECK_INT_EQ(out.v, 1);
    CHECK_INT_EQ(out.source, TICKER_SOURCE_STREAM);
    CHECK_INT_EQ(store_get(s, "binance", "ETH_USDT", &out), -ENOENT);
    CHECK_INT_EQ(store_get(s, "kraken", "BTC_USDT", &out), -ENOENT);
    CHECK_INT_EQ(store_get(s, "", "BTC_USDT", &out), -ENOENT);
    CHECK_INT_EQ(store_get(s, "binance", "", &out), -ENOENT);
    CHECK_INT_EQ(store_get(s, NULL, "BTC_USDT", &out), -ENOENT);
    CHECK_INT_EQ(store_get(s, "binance", "BTC_USDT_AND_A_VERY_LONG_TAIL_XYZ", &out), -ENOENT);
    CHECK_INT_EQ(store_generation(s), 1);

    /* Unchanged, same received: nothing happens at all. */
    t.v = 0;
    CHECK_INT_EQ(store_put(s, &t), 0);
    CHECK_INT_EQ(t.v, 1);
    CHECK_INT_EQ(store_generation(s), 1);

    /* Unchanged but newer: only received moves (and the generation, since
     * age_ms depends on it); v stays. */
    t.received = 2000;
    CHECK_INT_EQ(store_put(s, &t), 0);
    CHECK_INT_EQ(t.v, 1);
    CHECK_INT_EQ(store_get(s, "binance", "BTC_USDT", &out), 0);
    CHECK_INT_EQ(out.received, 2000);
    CHECK_INT_EQ(out.v, 1);
    CHECK_INT_EQ(store_generation(s), 2);
    CHECK_INT_EQ(store_exchange_stats(s, "binance", &st), 0);
    CHECK_INT_EQ(st.updates, 1);
    CHECK_INT_EQ(st.last_update, 2000);

    /* Any other field is a change: v + 1. */
    strcpy(t.bid, "64000.11");
    t.bid_value = 64000.11;
    t.received = 3000;
    CHECK_INT_EQ(store_put(s, &t), 1);
    CHECK_INT_EQ(t.v, 2);
    t.ts = 1000;
    CHECK_INT_EQ(store_put(s, &t), 1);
    CHECK_INT_EQ(t.v, 3);
    t.source = TICKER_SOURCE_POLL;
    CHECK_INT_EQ(store_put(s, &t), 1);
    CHECK_INT_EQ(t.v, 4);
    strcpy(t.volume, "5");
    CHECK_INT_EQ(store_put(s, &t), 1);
    CHECK_INT_EQ(t.v, 5);
    CHECK_INT_EQ(store_get(s, "binance", "BTC_USDT", &out), 0);
    CHECK_INT_EQ(out.v, 5);
    CHECK_STR_EQ(out.volume, "5");
    CHECK_STR_EQ(out.bid, "64000.11");
    CHECK_INT_EQ(store_exchange_stats(s, "binance", &st), 0);
    CHECK_INT_EQ(st.tickers, 1);
    CHECK_INT_EQ(st.updates, 5);
    CHECK_INT_EQ(st.last_update, 3000);

    /* An older received does not move last_update back. */
    strcpy(t.volume, "6");
    t.received = 2500;
    CHECK_INT_EQ(store_put(s, &t), 1);
    CHECK_INT_EQ(store_exchange_stats(s, "binance", &st), 0);
    CHECK_INT_EQ(st.last_update, 3000);
    store_free(s);
}

static void test_put_errors_and_normalising(void)
{
    struct store *s = store_new();
    struct ticker t = make("binance", "BTC_USDT", "1", "2", 1);
    struct ticker out;
    struct ticker zero;

    t.exchange[0] = '\0';
    CHECK_INT_EQ(store_put(s, &t), -EINVAL);
    CHECK_INT_EQ(store_restore(s, &t), -EINVAL);
    t = make("binance", "BTC_USDT", "1", "2", 1);
    memset(t.pair, 'A', sizeof(t.pair));
    CHECK_INT_EQ(store_put(s, &t), -EINVAL);
    t = make("binance", "BTC_USDT", "1", "2", 1);
    memset(t.exchange, 'a', sizeof(t.exchange));
    CHECK_INT_EQ(store_put(s, &t), -EINVAL);
    CHECK_INT_EQ(scan_count(s, NULL), 0);

    /* Garbage after terminators is not stored, and an unterminated decimal
     * field is cut to fit (validation would have rejected it anyway). */
    t = make("binance", "BTC_USDT", "1", "2", 1);
    memset(t.symbol + 4, 'x', sizeof(t.symbol) - 4);
    t.symbol[3] = '\0';
    t.bid[2] = 'q';
    memset(t.volume, '9', sizeof(t.volume));
    CHECK_INT_EQ(store_put(s, &t), 1);
    CHECK_INT_EQ(store_get(s, "binance", "BTC_USDT", &out), 0);
    memset(&zero, 0, sizeof(zero));
    CHECK_STR_EQ(out.symbol, "BTC");
    CHECK(memcmp(out.symbol + 3, zero.symbol, sizeof(out.symbol) - 3) == 0);
    CHECK(memcmp(out.bid + 1, zero.bid, TICKER_DEC_MAX - 1) == 0);
    CHECK_INT_EQ(strlen(out.volume), TICKER_DEC_MAX - 1);
    store_free(s);
}

static void test_scan(void)
{
    struct store *s = store_new();
    static const char *const exchanges[] = {"binance", "kraken", "okx"};
    static const char *const pairs[] = {"BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT"};
    struct tally c = {0};
    char names[4][TICKER_EXCHANGE_MAX];

    for (int e = 0; e < 3; e++) {
        for (int p = 0; p <= e + 1; p++) {
            struct ticker t = make(exchanges[e], pairs[p], "1", "2", 10);
            CHECK_INT_EQ(store_put(s, &t), 1);
        }
    }
    CHECK_INT_EQ(scan_count(s, NULL), 2 + 3 + 4);
    CHECK_INT_EQ(scan_count(s, "binance"), 2);
    CHECK_INT_EQ(scan_count(s, "kraken"), 3);
    CHECK_INT_EQ(scan_count(s, "okx"), 4);
    CHECK_INT_EQ(scan_count(s, "nope"), 0);
    CHECK_INT_EQ(scan_count(s, ""), 0);
    store_scan(s, "kraken", count_cb, &c);
    for (int i = 0; i < 3; i++) {
        CHECK_STR_EQ(c.exchanges[i], "kraken");
    }
    CHECK_INT_EQ(c.vsum, 3);

    /* fn returning nonzero stops the scan. */
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    store_scan(s, NULL, count_cb, &c);
    CHECK_INT_EQ(c.calls, 2);
    memset(&c, 0, sizeof(c));
    c.stop_after = 1;
    store_scan(s, "okx", count_cb, &c);
    CHECK_INT_EQ(c.calls, 1);

    CHECK_INT_EQ(store_exchange_names(s, names, 4), 3);
    CHECK_STR_EQ(names[0], "binance");
    CHECK_STR_EQ(names[1], "kraken");
    CHECK_STR_EQ(names[2], "okx");
    CHECK_INT_EQ(store_exchange_names(s, names, 2), 2);
    CHECK_STR_EQ(names[1], "kraken");
    CHECK_INT_EQ(store_exchange_names(s, names, 0), 0);
    store_free(s);
}

static void test_remove_and_readd(void)
{
    struct store *s = store_new();
    struct ticker t;
    struct ticker out;
    struct store_exchange_stats st;
    char names[4][TICKER_EXCHANGE_MAX];
    uint64_t gen;

    for (int i = 0; i < 3; i++) {
        t = make("kraken", i == 0 ? "BTC_USD" : i == 1 ? "ETH_USD" : "SOL_USD", "1", "2", 5);
        CHECK_INT_EQ(store_put(s, &t), 1);
    }
    t = make("kraken", "BTC_USD", "1.5", "2", 6);
    CHECK_INT_EQ(store_put(s, &t), 1);
    CHECK_INT_EQ(t.v, 2);
    t = make("okx", "BTC_USDT", "1", "2", 5);
    CHECK_INT_EQ(store_put(s, &t), 1);
    store_count_reject(s, "kraken", TICKER_REJECT_CROSSED);

    gen = store_generation(s);
    CHECK_INT_EQ(store_remove_exchange(s, "kraken"), 3);
    CHECK(store_generation(s) > gen);
    CHECK_INT_EQ(store_get(s, "kraken", "BTC_USD", &out), -ENOENT);
    CHECK_INT_EQ(scan_count(s, "kraken"), 0);
    CHECK_INT_EQ(scan_count(s, NULL), 1);
    CHECK_INT_EQ(store_exchange_stats(s, "kraken", &st), -ENOENT);
    CHECK_INT_EQ(store_exchange_names(s, names, 4), 1);
    CHECK_STR_EQ(names[0], "okx");
    CHECK_INT_EQ(store_remove_exchange(s, "kraken"), -ENOENT);
    CHECK_INT_EQ(store_remove_exchange(s, ""), -ENOENT);
    CHECK_INT_EQ(store_remove_exchange(s, NULL), -ENOENT);
    CHECK_INT_EQ(store_get(s, "okx", "BTC_USDT", &out), 0);

    /* Same key again: the entry is reused, the version continues, the
     * statistics start over. */
    t = make("kraken", "BTC_USD", "1.5", "2", 7);
    CHECK_INT_EQ(store_put(s, &t), 1);
    CHECK_INT_EQ(t.v, 3);
    CHECK_INT_EQ(store_get(s, "kraken", "BTC_USD", &out), 0);
    CHECK_INT_EQ(out.v, 3);
    CHECK_INT_EQ(out.received, 7);
    CHECK_INT_EQ(store_get(s, "kraken", "ETH_USD", &out), -ENOENT);
    CHECK_INT_EQ(scan_count(s, "kraken"), 1);
    CHECK_INT_EQ(store_exchange_stats(s, "kraken", &st), 0);
    CHECK_INT_EQ(st.tickers, 1);
    CHECK_INT_EQ(st.updates, 1);
    CHECK_INT_EQ(st.rejects[TICKER_REJECT_CROSSED], 0);
    CHECK_INT_EQ(st.last_update, 7);
    /* Names keep the order of first appearance. */
    CHECK_INT_EQ(store_exchange_names(s, names, 4), 2);
    CHECK_STR_EQ(names[0], "kraken");
    CHECK_STR_EQ(names[1], "okx");

    /* A new key of the revived exchange. */
    t = make("kraken", "ADA_USD", "1", "2", 8);
    CHECK_INT_EQ(store_put(s, &t), 1);
    CHECK_INT_EQ(t.v, 1);
    CHECK_INT_EQ(scan_count(s, "kraken"), 2);

    /* A reject alone also brings a removed exchange back (with no tickers). */
    CHECK_INT_EQ(store_remove_exchange(s, "okx"), 1);
    store_count_reject(s, "okx", TICKER_REJECT_BAD_PAIR);
    CHECK_INT_EQ(store_exchange_stats(s, "okx", &st), 0);
    CHECK_INT_EQ(st.tickers, 0);
    CHECK_INT_EQ(st.rejects[TICKER_REJECT_BAD_PAIR], 1);
    CHECK_INT_EQ(scan_count(s, "okx"), 0);
    store_free(s);
}

static void test_restore(void)
{
    struct store *s = store_new();
    struct ticker t = make("bitfinex", "BTC_USD", "1", "2", 500);
    struct ticker out;
    struct store_exchange_stats st;

    t.v = 10;
    CHECK_INT_EQ(store_restore(s, &t), 1);
    CHECK_INT_EQ(store_get(s, "bitfinex", "BTC_USD", &out), 0);
    CHECK_INT_EQ(out.v, 10);
    CHECK_INT_EQ(out.received, 500);
    CHECK_INT_EQ(store_exchange_stats(s, "bitfinex", &st), 0);
    CHECK_INT_EQ(st.tickers, 1);
    CHECK_INT_EQ(st.updates, 0);
    CHECK_INT_EQ(st.last_update, 500);

    /* Never back in time on a live key; equal or newer versions win. */
    t.v = 9;
    strcpy(t.bid, "1.1");
    t.bid_value = 1.1;
    CHECK_INT_EQ(store_restore(s, &t), 0);
    CHECK_INT_EQ(store_get(s, "bitfinex", "BTC_USD", &out), 0);
    CHECK_STR_EQ(out.bid, "1");
    t.v = 10;
    t.received = 600;
    CHECK_INT_EQ(store_restore(s, &t), 1);
    CHECK_INT_EQ(store_get(s, "bitfinex", "BTC_USD", &out), 0);
    CHECK_STR_EQ(out.bid, "1.1");
    CHECK_INT_EQ(out.received, 600);

    /* A put after a restore continues from the restored version. */
    strcpy(t.bid, "1.2");
    t.bid_value = 1.2;
    CHECK_INT_EQ(store_put(s, &t), 1);
    CHECK_INT_EQ(t.v, 11);

    /* After removal a lower version is accepted again. */
    CHECK_INT_EQ(store_remove_exchange(s, "bitfinex"), 1);
    t.v = 2;
    CHECK_INT_EQ(store_restore(s, &t), 1);
    CHECK_INT_EQ(store_get(s, "bitfinex", "BTC_USD", &out), 0);
    CHECK_INT_EQ(out.v, 2);
    CHECK_INT_EQ(store_exchange_stats(s, "bitfinex", &st), 0);
    CHECK_INT_EQ(st.tickers, 1);
    store_free(s);
}

static void test_rejects(void)
{
    struct store *s = store_new();
    struct store_exchange_stats st;
    char names[4][TICKER_EXCHANGE_MAX];

    store_count_reject(s, "htx", TICKER_REJECT_CROSSED);
    store_count_reject(s, "htx", TICKER_REJECT_CROSSED);
    store_count_reject(s, "htx", TICKER_REJECT_NONPOSITIVE);
    store_count_reject(s, "htx", TICKER_REJECT_TOO_LONG);
    /* Not reasons, or not names: ignored. */
    store_count_reject(s, "htx", TICKER_OK);
    store_count_reject(s, "htx", TICKER_REJECT_COUNT);
    store_count_reject(s, "htx", (enum ticker_reject)(-3));
    store_count_reject(s, "", TICKER_REJECT_CROSSED);
    store_count_reject(s, NULL, TICKER_REJECT_CROSSED);
    store_count_reject(s, "an_exchange_name_that_is_far_too_long", TICKER_REJECT_CROSSED);

    CHECK_INT_EQ(store_exchange_stats(s, "htx", &st), 0);
    CHECK_INT_EQ(st.tickers, 0);
    CHECK_INT_EQ(st.updates, 0);
    CHECK_INT_EQ(st.last_update, 0);
    CHECK_INT_EQ(st.rejects[TICKER_OK], 0);
    CHECK_INT_EQ(st.rejects[TICKER_REJECT_CROSSED], 2);
    CHECK_INT_EQ(st.rejects[TICKER_REJECT_NONPOSITIVE], 1);
    CHECK_INT_EQ(st.rejects[TICKER_REJECT_BAD_NUMBER], 0);
    CHECK_INT_EQ(st.rejects[TICKER_REJECT_MISSING], 0);
    CHECK_INT_EQ(st.rejects[TICKER_REJECT_TOO_LONG], 1);
    CHECK_INT_EQ(st.rejects[TICKER_REJECT_BAD_PAIR], 0);
    CHECK_INT_EQ(store_exchange_names(s, names, 4), 1);
    CHECK_STR_EQ(names[0], "htx");
    CHECK_INT_EQ(store_exchange_stats(s, "", &st), -ENOENT);
    CHECK_INT_EQ(store_exchange_stats(s, NULL, &st), -ENOENT);
    store_free(s);
}

/* The emit path's one lookup: store_find's copy serves store_put_ref's
 * comparison, versions continue through a removal, and the counters the
 * writer keeps with plain loads and stores add up. */
static void test_find_then_put(void)
{
    struct store *s = store_new();
    struct store_ref ref;
    struct ticker t, old, out;
    struct store_exchange_stats st;
    uint64_t gen;

    t = make("bybit", "BTC_USDT", "1", "2", 10);
    CHECK_INT_EQ(store_find(s, "bybit", "BTC_USDT", &old, &ref), 0);
    CHECK(ref.entry == NULL && ref.old == NULL);
    CHECK_INT_EQ(store_put_ref(s, &ref, &t), 1);
    CHECK_INT_EQ(t.v, 1);

    CHECK_INT_EQ(store_find(s, "bybit", "BTC_USDT", &old, &ref), 1);
    CHECK(ref.entry != NULL && ref.old == &old);
    CHECK_STR_EQ(old.bid, "1");
    CHECK_INT_EQ(old.v, 1);
    /* The same quote later: only received moves, and readers see it. */
    t = make("bybit", "BTC_USDT", "1", "2", 20);
    gen = store_generation(s);
    CHECK_INT_EQ(store_put_ref(s, &ref, &t), 0);
    CHECK_INT_EQ(t.v, 1);
    CHECK(store_generation(s) > gen);
    CHECK_INT_EQ(store_get(s, "bybit", "BTC_USDT", &out), 0);
    CHECK_INT_EQ(out.received, 20);
    CHECK_STR_EQ(out.symbol, "BTC_USDT@bybit");
    /* A change. */
    CHECK_INT_EQ(store_find(s, "bybit", "BTC_USDT", &old, &ref), 1);
    t = make("bybit", "BTC_USDT", "1.5", "2", 30);
    CHECK_INT_EQ(store_put_ref(s, &ref, &t), 1);
    CHECK_INT_EQ(t.v, 2);
    CHECK_INT_EQ(store_get(s, "bybit", "BTC_USDT", &out), 0);
    CHECK_STR_EQ(out.bid, "1.5");
    CHECK_INT_EQ(out.v, 2);
    /* Without a copy (old NULL), store_put_ref reads the entry itself. */
    CHECK_INT_EQ(store_find(s, "bybit", "BTC_USDT", NULL, &ref), 1);
    CHECK(ref.old == NULL);
    t = make("bybit", "BTC_USDT", "1.5", "2", 40);
    CHECK_INT_EQ(store_put_ref(s, &ref, &t), 0);
    CHECK_INT_EQ(t.v, 2);
    CHECK_INT_EQ(store_exchange_stats(s, "bybit", &st), 0);
    CHECK_INT_EQ(st.tickers, 1);
    CHECK_INT_EQ(st.updates, 2);
    CHECK_INT_EQ(st.last_update, 40);

    /* A removed key is found (its entry) but not live; storing through
     * that lookup revives it and continues its version. */
    CHECK_INT_EQ(store_remove_exchange(s, "bybit"), 1);
    CHECK_INT_EQ(store_find(s, "bybit", "BTC_USDT", &old, &ref), 0);
    CHECK(ref.entry != NULL && ref.old == NULL);
    t = make("bybit", "BTC_USDT", "1.5", "2", 50);
    CHECK_INT_EQ(store_put_ref(s, &ref, &t), 1);
    CHECK_INT_EQ(t.v, 3);
    CHECK_INT_EQ(store_exchange_stats(s, "bybit", &st), 0);
    CHECK_INT_EQ(st.tickers, 1);
    CHECK_INT_EQ(st.updates, 1);

    /* Invalid names: not found, and put refuses them. */
    CHECK_INT_EQ(store_find(s, "", "BTC_USDT", &old, &ref), 0);
    CHECK(ref.entry == NULL);
    t = make("bybit", "BTC_USDT", "1", "2", 60);
    t.pair[0] = '\0';
    CHECK_INT_EQ(store_put_ref(s, &ref, &t), -EINVAL);

    /* The refusals at emit are counted like validation's. */
    store_count_reject(s, "bybit", TICKER_REJECT_MAX_PAIRS);
    store_count_reject(s, "bybit", TICKER_REJECT_MAX_PAIRS);
    store_count_reject(s, "bybit", TICKER_REJECT_BAD_TS);
    CHECK_INT_EQ(store_exchange_stats(s, "bybit", &st), 0);
    CHECK_INT_EQ(st.rejects[TICKER_REJECT_MAX_PAIRS], 2);
    CHECK_INT_EQ(st.rejects[TICKER_REJECT_BAD_TS], 1);
    store_free(s);
}

/* Enough keys to grow the index several times and fill several chunks. */
static void test_many_keys(void)
{
    enum { KEYS = 10000, EXCHANGES = 13 };
    struct store *s = store_new();
    struct ticker t;
    struct ticker out;
    struct store_exchange_stats st;
    char exchange[TICKER_EXCHANGE_MAX];
    char pair[TICKER_PAIR_MAX];
    int wrong = 0;
    uint64_t tickers = 0;

    for (int i = 0; i < KEYS; i++) {
        snprintf(exchange, sizeof(exchange), "ex%d", i % EXCHANGES);
        snprintf(pair, sizeof(pair), "C%d_USDT", i);
        t = make(exchange, pair, "1", "2", i);
        if (store_put(s, &t) != 1 || t.v != 1) {
            wrong++;
        }
    }
    CHECK_INT_EQ(wrong, 0);
    for (int i = 0; i < KEYS; i++) {
        snprintf(exchange, sizeof(exchange), "ex%d", i % EXCHANGES);
        snprintf(pair, sizeof(pair), "C%d_USDT", i);
        if (store_get(s, exchange, pair, &out) != 0 || strcmp(out.pair, pair) != 0 ||
            strcmp(out.exchange, exchange) != 0 || out.received != i) {
            wrong++;
        }
        /* The same pair on the wrong exchange does not exist. */
        snprintf(exchange, sizeof(exchange), "ex%d", (i + 1) % EXCHANGES);
        if (store_get(s, exchange, pair, NULL) != -ENOENT) {
            wrong++;
        }
    }
    CHECK_INT_EQ(wrong, 0);
    CHECK_INT_EQ(scan_count(s, NULL), KEYS);
    for (int e = 0; e < EXCHANGES; e++) {
        snprintf(exchange, sizeof(exchange), "ex%d", e);
        CHECK_INT_EQ(store_exchange_stats(s, exchange, &st), 0);
        CHECK_INT_EQ(scan_count(s, exchange), st.tickers);
        tickers += st.tickers;
    }
    CHECK_INT_EQ(tickers, KEYS);

    /* Change all of them once more: versions move to 2, no new entries. */
    for (int i = 0; i < KEYS; i++) {
        snprintf(exchange, sizeof(exchange), "ex%d", i % EXCHANGES);
        snprintf(pair, sizeof(pair), "C%d_USDT", i);
        t = make(exchange, pair, "1", "3", i);
        if (store_put(s, &t) != 1 || t.v != 2) {
            wrong++;
        }
    }
    CHECK_INT_EQ(wrong, 0);
    CHECK_INT_EQ(scan_count(s, NULL), KEYS);
    CHECK_INT_EQ(store_remove_exchange(s, "ex0"), (KEYS + EXCHANGES - 1) / EXCHANGES);
    CHECK_INT_EQ(scan_count(s, NULL), KEYS - (KEYS + EXCHANGES - 1) / EXCHANGES);
    store_free(s);
}

int main(void)
{
    test_lifecycle();
    test_put_get();
    test_put_errors_and_normalising();
    test_scan();
    test_remove_and_readd();
    test_restore();
    test_rejects();
    test_find_then_put();
    test_many_keys();
    return CHECK_DONE();
}
