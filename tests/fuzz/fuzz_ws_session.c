/*
 * fuzz_ws_session: a /v1/stream client's messages (ws_session_receive), fed
 * to a session over a small store, the way tests/unit/test_ws_session.c
 * sets one up: a zeroed config with stale_after_ms and five tickers.
 *
 * Input: one client text message per line. After each message the clock
 * moves on 100 ms, two stored tickers are published (so subscriptions get
 * rate messages and throttling) and everything due is taken out. Checked:
 * every outgoing message is valid JSON; each message earns a reply (the
 * session never goes silent); the watch callback sees sorted, unique lists
 * and as many closes as opens by the time the session is freed.
 */
#include "config/config.h"
#include "store/store.h"
#include "ws/ws_session.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WALL 1700000000000LL
#define STEP_MS 100
/* Bounds the work of one input: messages taken out per step. */
#define MAX_OUT_PER_STEP 64

struct watch_count {
    long open;
};

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_ws_session: %s\n", what);
        abort();
    }
}

static void put(struct store *store, const char *exchange, const char *pair, const char *bid,
                const char *ask)
{
    struct ticker t = {0};

    snprintf(t.exchange, sizeof t.exchange, "%s", exchange);
    snprintf(t.pair, sizeof t.pair, "%s", pair);
    snprintf(t.bid, sizeof t.bid, "%s", bid);
    snprintf(t.ask, sizeof t.ask, "%s", ask);
    t.bid_value = strtod(bid, NULL);
    t.ask_value = strtod(ask, NULL);
    t.ts = TICKER_TS_NONE;
    t.received = WALL - 10;
    check(store_put(store, &t) >= 0, "store_put failed");
}

static void publish(struct ws_session *s, struct store *store, const char *exchange,
                    const char *pair, uint64_t now)
{
    struct ticker t;

    check(store_get(store, exchange, pair, &t) == 0, "store_get failed");
    ws_session_publish(s, &t, now);
}

static void on_watch(void *arg, bool added, const char (*exchanges)[TICKER_EXCHANGE_MAX],
                     size_t n_exchanges, const char (*pairs)[TICKER_PAIR_MAX], size_t n_pairs)
{
    struct watch_count *w = arg;

    for (size_t i = 1; pairs && i < n_pairs; i++) {
        check(strcmp(pairs[i - 1], pairs[i]) < 0, "pairs not sorted and unique");
    }
    for (size_t i = 0; exchanges && i < n_exchanges; i++) {
        for (size_t j = 0; j < i; j++) {
            check(strcmp(exchanges[i], exchanges[j]) != 0, "exchanges not unique");
        }
    }
    w->open += added ? 1 : -1;
}

/* Takes out what is due at now; returns how many messages. */
static int drain(struct ws_session *s, uint64_t now, struct jbuf *b)
{
    int n = 0;

    while (n < MAX_OUT_PER_STEP) {
        jbuf_reset(b);
        if (!ws_session_next(s, now, WALL, b)) {
            break;
        }
        cJSON *doc = cJSON_ParseWithLength(b->data, b->len);
        if (!doc) {
            fprintf(stderr, "not JSON: %.*s\n", (int)b->len, b->data);
        }
        check(doc != NULL, "an outgoing message is not JSON");
        cJSON_Delete(doc);
        n++;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg = {.stale_after_ms = 60000};
    struct api_ctx ctx = {.cfg = &cfg, .store = store_new()};
    struct ws_session_limits lim = {.max_subs = 4, .snapshot_chunk = 2};
    struct watch_count watch = {0};
    const char *msg = (const char *)data;
    const char *end = msg + size;
    uint64_t now = 1000;
    struct jbuf b;

    put(ctx.store, "binance", "BTC_USDT", "100", "101");
    put(ctx.store, "kraken", "BTC_USDT", "100.5", "101.5");
    put(ctx.store, "binance", "ETH_USDT", "10", "11");
    put(ctx.store, "kraken", "ETH_USDT", "10.5", "11.5");
    put(ctx.store, "coinbase", "BTC_USD", "99", "100");
    jbuf_init(&b);
    struct ws_session *s = ws_session_new(&ctx, &lim);
    ws_session_set_watch(s, on_watch, &watch);
    while (msg < end) {
        const char *nl = memchr(msg, '\n', (size_t)(end - msg));
        size_t len = nl ? (size_t)(nl - msg) : (size_t)(end - msg);

        ws_session_receive(s, msg, len);
        check(drain(s, now, &b) > 0, "a message earned no reply");
        now += STEP_MS;
        publish(s, ctx.store, "binance", "BTC_USDT", now);
        publish(s, ctx.store, "kraken", "ETH_USDT", now);
        ws_session_status(s, "kraken", "degraded", "fuzz");
        drain(s, now, &b);
        msg += len + (nl != NULL);
    }
    drain(s, now + 60000, &b);
    ws_session_free(s);
    check(watch.open == 0, "subscriptions opened and closed do not balance");
    jbuf_free(&b);
    store_free(ctx.store);
    return 0;
}
