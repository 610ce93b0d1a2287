/*
 * ws_session without sockets: client messages in, the messages the socket
 * would carry out. Acks and errors carry the request's id; snapshots come
 * in chunks with `last` on the final one; N publishes within a window make
 * one rate with the latest value and its v; overlapping subscriptions send
 * a key once, at the smallest throttle; unsubscribe stops; the limits hold.
 * Also the /currency_listener query checks (currency_listener_parse), and
 * that what a session says it holds (ws_session_bytes) is what the heap
 * says it holds, within a few percent.
 */
#include "check.h"
#include "config/config.h"
#include "store/store.h"
#include "ws/ws_keys.h"
#include "ws/currency_listener.h"
#include "ws/ws_session.h"

#include <cjson/cJSON.h>
#if defined(__SANITIZE_ADDRESS__)
/* libasan's own (its header comes with clang here, not with GCC). */
size_t __sanitizer_get_current_allocated_bytes(void);
#else
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WALL 1700000000000LL

static struct config cfg;
static struct api_ctx ctx;

static void put(const char *exchange, const char *pair, const char *bid, const char *ask)
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
    CHECK(store_put(ctx.store, &t) >= 0);
}

/* Stores a new price and publishes the change to s. */
static int put_publish(struct ws_session *s, const char *exchange, const char *pair,
                       const char *bid, const char *ask, uint64_t now)
{
    struct ticker t;
    put(exchange, pair, bid, ask);
    CHECK(store_get(ctx.store, exchange, pair, &t) == 0);
    return ws_session_publish(s, &t, now);
}

static void send_msg(struct ws_session *s, const char *text)
{
    ws_session_receive(s, text, strlen(text));
}

/* The next message as parsed JSON (NULL if none); the caller deletes it. */
static cJSON *next_json(struct ws_session *s, uint64_t now)
{
    struct jbuf b;
    cJSON *doc = NULL;

    jbuf_init(&b);
    if (ws_session_next(s, now, WALL, &b)) {
        doc = cJSON_ParseWithLength(b.data, b.len);
        if (!doc) {
            fprintf(stderr, "not JSON: %.*s\n", (int)b.len, b.data);
        }
        CHECK(doc != NULL);
    }
    jbuf_free(&b);
    return doc;
}

static const char *str_of(const cJSON *doc, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, name);
    return cJSON_IsString(v) ? v->valuestring : "(absent)";
}

static double num_of(const cJSON *doc, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, name);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static int count_left(struct ws_session *s, uint64_t now)
{
    int n = 0;
    cJSON *doc;
    while ((doc = next_json(s, now)) != NULL) {
        n++;
        cJSON_Delete(doc);
    }
    return n;
}

/* Expects the next message to be an ack for id with a subscription;
 * returns the subscription id. */
static int expect_ack(struct ws_session *s, int id, uint64_t now)
{
    cJSON *doc = next_json(s, now);
    int sub = -1;
    CHECK(doc != NULL);
    if (doc) {
        CHECK_STR_EQ(str_of(doc, "type"), "ack");
        CHECK_INT_EQ(num_of(doc, "id"), id);
        sub = (int)num_of(doc, "sub");
        CHECK(sub >= 1);
        cJSON_Delete(doc);
    }
    return sub;
}

/* Expects an error with this code; id < 0 means "id":null. */
static void expect_error(struct ws_session *s, int id, const char *code)
{
    cJSON *doc = next_json(s, 0);
    CHECK(doc != NULL);
    if (!doc) {
        return;
    }
    CHECK_STR_EQ(str_of(doc, "type"), "error");
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(doc, "id");
    if (id < 0) {
        CHECK(cJSON_IsNull(idv));
    } else {
        CHECK_INT_EQ(num_of(doc, "id"), id);
    }
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(doc, "error");
    CHECK_STR_EQ(str_of(err, "code"), code);
    CHECK(strlen(str_of(err, "message")) > 5);
    cJSON_Delete(doc);
}

/* Skips the snapshot messages of a subscribe; returns how many tickers. */
static int skip_snapshot(struct ws_session *s)
{
    int tickers = 0;
    for (;;) {
        cJSON *doc = next_json(s, 0);
        CHECK(doc != NULL);
        if (!doc) {
            return tickers;
        }
        CHECK_STR_EQ(str_of(doc, "type"), "snapshot");
        tickers += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "rates"));
        bool last = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "last"));
        cJSON_Delete(doc);
        if (last) {
            return tickers;
        }
    }
}

static void setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.stale_after_ms = 60000;
    memset(&ctx, 0, sizeof ctx);
    ctx.cfg = &cfg;
    ctx.store = store_new();
    put("binance", "BTC_USDT", "100", "101");
    put("kraken", "BTC_USDT", "100.5", "101.5");
    put("binance", "ETH_USDT", "10", "11");
    put("kraken", "ETH_USDT", "10.5", "11.5");
    put("coinbase", "BTC_USD", "99", "100");
}

static void teardown(void)
{
    store_free(ctx.store);
}

static void test_ping_and_errors(void)
{
    struct ws_session *s = ws_session_new(&ctx, NULL);

    send_msg(s, "{\"op\":\"ping\",\"id\":3}");
    cJSON *doc = next_json(s, 0);
    CHECK(doc && strcmp(str_of(doc, "type"), "pong") == 0 && num_of(doc, "id") == 3);
    cJSON_Delete(doc);

    send_msg(s, "{\"op\":\"ping\",\"id\":\"abc\\\"\"}");
    doc = next_json(s, 0);
    CHECK_STR_EQ(str_of(doc, "id"), "abc\"");
    cJSON_Delete(doc);

    send_msg(s, "{not json");
    expect_error(s, -1, "bad_json");
    send_msg(s, "[1,2]");
    expect_error(s, -1, "bad_request");
    send_msg(s, "{\"op\":\"dance\",\"id\":5}");
    expect_error(s, 5, "unknown_op");
    send_msg(s, "{\"id\":6}");
    expect_error(s, 6, "bad_request");
    send_msg(s, "{\"op\":\"ping\",\"id\":{\"a\":1}}");
    expect_error(s, -1, "bad_request");
    send_msg(s, "{\"op\":\"subscribe\",\"id\":7,\"pairs\":[\"BTC:USDT\"]}");
    expect_error(s, 7, "bad_pair");
    send_msg(s, "{\"op\":\"subscribe\",\"id\":8,\"pairs\":[]}");
    expect_error(s, 8, "bad_request");
    send_msg(s, "{\"op\":\"subscribe\",\"id\":9,\"exchanges\":[\"Bin ance\"]}");
    expect_error(s, 9, "bad_exchange");
    send_msg(s, "{\"op\":\"subscribe\",\"id\":10,\"throttle_ms\":-1}");
    expect_error(s, 10, "bad_param");
    send_msg(s, "{\"op\":\"subscribe\",\"id\":11,\"throttle_ms\":2.5}");
    expect_error(s, 11, "bad_param");
    send_msg(s, "{\"op\":\"unsubscribe\",\"id\":12,\"sub\":99}");
    expect_error(s, 12, "unknown_subscription");
    send_msg(s, "{\"op\":\"unsubscribe\",\"id\":13}");
    expect_error(s, 13, "bad_param");
    ws_session_receive_binary(s);
    expect_error(s, -1, "bad_request");
    CHECK_INT_EQ(ws_session_subs(s), 0);
    CHECK(next_json(s, 0) == NULL);
    /* Every reply taken: the session holds what a new one holds. */
    struct ws_session *fresh = ws_session_new(&ctx, NULL);
    CHECK_INT_EQ(ws_session_bytes(s), ws_session_bytes(fresh));
    ws_session_free(fresh);
    ws_session_free(s);
}

static void test_snapshot_chunks(void)
{
    struct ws_session_limits lim = {.snapshot_chunk = 2};
    struct ws_session *s = ws_session_new(&ctx, &lim);
    const char *order[][2] = {{"BTC_USD", "coinbase"},
                              {"BTC_USDT", "binance"},
                              {"BTC_USDT", "kraken"},
                              {"ETH_USDT", "binance"},
                              {"ETH_USDT", "kraken"}};
    int seen = 0;

    send_msg(s, "{\"op\":\"subscribe\",\"id\":1}");
    int sub = expect_ack(s, 1, 0);
    for (int chunk = 0; chunk < 3; chunk++) {
        cJSON *doc = next_json(s, 0);
        CHECK(doc != NULL);
        if (!doc) {
            break;
        }
        CHECK_STR_EQ(str_of(doc, "type"), "snapshot");
        CHECK_INT_EQ(num_of(doc, "id"), 1);
        CHECK_INT_EQ(num_of(doc, "sub"), sub);
        const cJSON *rates = cJSON_GetObjectItemCaseSensitive(doc, "rates");
        CHECK_INT_EQ(cJSON_GetArraySize(rates), chunk < 2 ? 2 : 1);
        CHECK(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(doc, "last")));
        CHECK_INT_EQ(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "last")), chunk == 2);
        const cJSON *t;
        cJSON_ArrayForEach(t, rates)
        {
            CHECK_STR_EQ(str_of(t, "pair"), order[seen][0]);
            CHECK_STR_EQ(str_of(t, "exchange"), order[seen][1]);
            CHECK_INT_EQ(num_of(t, "v"), 1);
            CHECK_INT_EQ(num_of(t, "age_ms"), 10);
            seen++;
        }
        cJSON_Delete(doc);
    }
    CHECK_INT_EQ(seen, 5);
    CHECK(next_json(s, 0) == NULL);

    /* Filters: exchanges and pairs in every accepted spelling. */
    send_msg(s, "{\"op\":\"subscribe\",\"id\":2,\"pairs\":[\"btc/usdt\",\"ETH-USDT\",\"BTC_USDT\"],"
                "\"exchanges\":[\"kraken\"]}");
    expect_ack(s, 2, 0);
    CHECK_INT_EQ(skip_snapshot(s), 2);
    /* Nothing matches: one empty chunk, last. */
    send_msg(s, "{\"op\":\"subscribe\",\"id\":3,\"pairs\":[\"DOGE_EUR\"]}");
    expect_ack(s, 3, 0);
    cJSON *doc = next_json(s, 0);
    CHECK(doc && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "rates")) == 0 &&
          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "last")));
    cJSON_Delete(doc);
    ws_session_free(s);
}

static void test_conflation(void)
{
    struct ws_session *s = ws_session_new(&ctx, NULL);
    struct ws_session_stats st;

    send_msg(
        s, "{\"op\":\"subscribe\",\"id\":1,\"pairs\":[\"BTC_USDT\"],\"exchanges\":[\"binance\"]}");
    int sub = expect_ack(s, 1, 0);
    skip_snapshot(s);
    size_t idle = ws_session_bytes(s);

    /* throttle 0: five publishes before the socket asks make one rate. */
    for (int i = 0; i < 5; i++) {
        char bid[16];
        snprintf(bid, sizeof bid, "%d", 200 + i);
        CHECK_INT_EQ(put_publish(s, "binance", "BTC_USDT", bid, "300", 10), 1);
    }
    CHECK(ws_session_bytes(s) > idle); /* the dirty key */
    CHECK_INT_EQ(ws_session_next_due(s, 10), 10);
    cJSON *doc = next_json(s, 10);
    CHECK(doc != NULL);
    CHECK_STR_EQ(str_of(doc, "type"), "rate");
    CHECK_INT_EQ(num_of(doc, "sub"), sub);
    CHECK_STR_EQ(str_of(doc, "exchange"), "binance");
    CHECK_STR_EQ(str_of(doc, "bid"), "204");
    CHECK_INT_EQ(num_of(doc, "v"), 6);
    cJSON_Delete(doc);
    CHECK(next_json(s, 10) == NULL);
    CHECK_INT_EQ(ws_session_next_due(s, 10), UINT64_MAX);
    ws_session_stats(s, &st);
    CHECK_INT_EQ(st.conflated, 4);
    CHECK_INT_EQ(st.rates_out, 1);

    /* A key nobody subscribed to is not taken. */
    CHECK_INT_EQ(put_publish(s, "kraken", "BTC_USDT", "1", "2", 10), 0);
    CHECK(next_json(s, 10) == NULL);
    ws_session_free(s);
}

static void test_throttle_window(void)
{
    struct ws_session *s = ws_session_new(&ctx, NULL);

    send_msg(s, "{\"op\":\"subscribe\",\"id\":1,\"pairs\":[\"ETH_USDT\"],\"throttle_ms\":250}");
    expect_ack(s, 1, 1000);
    skip_snapshot(s);

    /* The first change goes at once ... */
    put_publish(s, "binance", "ETH_USDT", "12", "13", 1000);
    cJSON *doc = next_json(s, 1000);
    CHECK(doc && strcmp(str_of(doc, "bid"), "12") == 0);
    cJSON_Delete(doc);
    /* ... the next ones within 250 ms wait for the window's end, as one. */
    put_publish(s, "binance", "ETH_USDT", "12.1", "13", 1010);
    put_publish(s, "binance", "ETH_USDT", "12.2", "13", 1100);
    put_publish(s, "binance", "ETH_USDT", "12.3", "13", 1200);
    CHECK_INT_EQ(ws_session_next_due(s, 1200), 1250);
    CHECK(next_json(s, 1200) == NULL);
    CHECK(next_json(s, 1249) == NULL);
    doc = next_json(s, 1250);
    CHECK(doc && strcmp(str_of(doc, "bid"), "12.3") == 0);
    CHECK(doc && num_of(doc, "v") == 5);
    cJSON_Delete(doc);
    CHECK(next_json(s, 1250) == NULL);
    /* Each key has its own window. */
    put_publish(s, "kraken", "ETH_USDT", "10.6", "11.5", 1260);
    doc = next_json(s, 1260);
    CHECK(doc && strcmp(str_of(doc, "exchange"), "kraken") == 0);
    cJSON_Delete(doc);
    /* After a quiet window a change goes at once again. */
    put_publish(s, "binance", "ETH_USDT", "12.4", "13", 2000);
    doc = next_json(s, 2000);
    CHECK(doc && strcmp(str_of(doc, "bid"), "12.4") == 0);
    cJSON_Delete(doc);
    ws_session_free(s);
}

static void test_overlap(void)
{
    struct ws_session *s = ws_session_new(&ctx, NULL);

    send_msg(s, "{\"op\":\"subscribe\",\"id\":1,\"throttle_ms\":1000}");
    int all = expect_ack(s, 1, 0);
    skip_snapshot(s);
    send_msg(s, "{\"op\":\"subscribe\",\"id\":2,\"pairs\":[\"BTC_USDT\"],\"throttle_ms\":100}");
    int btc = expect_ack(s, 2, 0);
    skip_snapshot(s);
    send_msg(s, "{\"op\":\"subscribe\",\"id\":3,\"pairs\":[\"BTC_USDT\"],\"throttle_ms\":500}");
    expect_ack(s, 3, 0);
    skip_snapshot(s);

    /* Covered by all three: sent once, under the 100 ms subscription. */
    put_publish(s, "binance", "BTC_USDT", "150", "151", 5000);
    put_publish(s, "kraken", "ETH_USDT", "20", "21", 5000);
    cJSON *a = next_json(s, 5000), *b = next_json(s, 5000);
    CHECK(a && b);
    CHECK(next_json(s, 5000) == NULL);
    if (a && b) {
        cJSON *btc_msg = strcmp(str_of(a, "pair"), "BTC_USDT") == 0 ? a : b;
        cJSON *eth_msg = btc_msg == a ? b : a;
        CHECK_INT_EQ(num_of(btc_msg, "sub"), btc);
        CHECK_INT_EQ(num_of(eth_msg, "sub"), all);
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    /* The smallest throttle sets the pace: due 100 ms later, not 500/1000. */
    put_publish(s, "binance", "BTC_USDT", "152", "153", 5010);
    put_publish(s, "kraken", "ETH_USDT", "22", "23", 5010);
    CHECK_INT_EQ(ws_session_next_due(s, 5010), 5100);
    a = next_json(s, 5100);
    CHECK(a && strcmp(str_of(a, "pair"), "BTC_USDT") == 0 && num_of(a, "sub") == btc);
    cJSON_Delete(a);
    CHECK(next_json(s, 5100) == NULL);
    CHECK_INT_EQ(ws_session_next_due(s, 5100), 6000);
    a = next_json(s, 6000);
    CHECK(a && strcmp(str_of(a, "pair"), "ETH_USDT") == 0 && num_of(a, "sub") == all);
    cJSON_Delete(a);

    /* Unsubscribing the fast one: the key falls back to the next best. */
    char msg[96];
    snprintf(msg, sizeof msg, "{\"op\":\"unsubscribe\",\"id\":4,\"sub\":%d}", btc);
    send_msg(s, msg);
    CHECK_INT_EQ(expect_ack(s, 4, 7000), btc);
    put_publish(s, "binance", "BTC_USDT", "154", "155", 7000);
    a = next_json(s, 7000);
    CHECK(a && num_of(a, "sub") == 3);
    cJSON_Delete(a);
    ws_session_free(s);
}

static void test_unsubscribe_stops(void)
{
    struct ws_session_limits lim = {.snapshot_chunk = 1};
    struct ws_session *s = ws_session_new(&ctx, &lim);

    send_msg(s, "{\"op\":\"subscribe\",\"id\":1,\"pairs\":[\"BTC_USDT\"],\"throttle_ms\":200}");
    int sub = expect_ack(s, 1, 0);
    cJSON *doc = next_json(s, 0); /* the first of two snapshot chunks */
    CHECK(doc && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(doc, "last")));
    cJSON_Delete(doc);
    put_publish(s, "binance", "BTC_USDT", "160", "161", 10);

    char msg[96];
    snprintf(msg, sizeof msg, "{\"op\":\"unsubscribe\",\"id\":\"u\",\"sub\":%d}", sub);
    send_msg(s, msg);
    doc = next_json(s, 20);
    CHECK(doc && strcmp(str_of(doc, "type"), "ack") == 0 && strcmp(str_of(doc, "id"), "u") == 0);
    cJSON_Delete(doc);
    /* The rest of the snapshot and the dirty key are gone. */
    CHECK_INT_EQ(count_left(s, 1000), 0);
    CHECK_INT_EQ(put_publish(s, "binance", "BTC_USDT", "162", "163", 1000), 0);
    CHECK_INT_EQ(count_left(s, 2000), 0);
    CHECK_INT_EQ(ws_session_subs(s), 0);
    ws_session_free(s);
}

static void test_limits(void)
{
    struct ws_session_limits lim = {.max_subs = 2};
    struct ws_session *s = ws_session_new(&ctx, &lim);

    send_msg(s, "{\"op\":\"subscribe\",\"id\":1}");
    send_msg(s, "{\"op\":\"subscribe\",\"id\":2}");
    send_msg(s, "{\"op\":\"subscribe\",\"id\":3}");
    int a = expect_ack(s, 1, 0);
    skip_snapshot(s);
    expect_ack(s, 2, 0);
    skip_snapshot(s);
    expect_error(s, 3, "too_many_subscriptions");
    CHECK_INT_EQ(ws_session_subs(s), 2);
    /* Freeing one makes room. */
    char msg[96];
    snprintf(msg, sizeof msg, "{\"op\":\"unsubscribe\",\"id\":4,\"sub\":%d}", a);
    send_msg(s, msg);
    expect_ack(s, 4, 0);
    send_msg(s, "{\"op\":\"subscribe\",\"id\":5}");
    CHECK(expect_ack(s, 5, 0) > 2); /* ids are not reused */
    skip_snapshot(s);

    /* Replies count towards the bytes held until they are taken. */
    size_t before = ws_session_bytes(s);
    for (int i = 0; i < 100; i++) {
        send_msg(s, "{\"op\":\"ping\",\"id\":1}");
    }
    CHECK(ws_session_bytes(s) >= before + 100 * strlen("{\"type\":\"pong\",\"id\":1}"));
    CHECK_INT_EQ(count_left(s, 0), 100);
    CHECK_INT_EQ(ws_session_bytes(s), before);
    ws_session_free(s);
}

static void test_status_and_removed(void)
{
    struct ws_session *s = ws_session_new(&ctx, NULL);

    /* No subscription: no events. */
    ws_session_status(s, "binance", "degraded", "HTTP 503");
    CHECK(next_json(s, 0) == NULL);
    send_msg(s, "{\"op\":\"subscribe\",\"id\":1,\"exchanges\":[\"kraken\"]}");
    expect_ack(s, 1, 0);
    skip_snapshot(s);
    ws_session_status(s, "binance", "degraded", "HTTP 503");
    CHECK(next_json(s, 0) == NULL);
    ws_session_status(s, "kraken", "error", "no data");
    cJSON *doc = next_json(s, 0);
    CHECK(doc && strcmp(str_of(doc, "type"), "status") == 0);
    CHECK_STR_EQ(str_of(doc, "exchange"), "kraken");
    CHECK_STR_EQ(str_of(doc, "state"), "error");
    CHECK_STR_EQ(str_of(doc, "reason"), "no data");
    cJSON_Delete(doc);

    /* A dirty key of a removed exchange is dropped, the event sent. */
    put_publish(s, "kraken", "BTC_USDT", "170", "171", 0);
    CHECK(store_remove_exchange(ctx.store, "kraken") >= 0);
    ws_session_removed(s, "kraken");
    doc = next_json(s, 0);
    CHECK(doc && strcmp(str_of(doc, "type"), "removed") == 0);
    CHECK_STR_EQ(str_of(doc, "exchange"), "kraken");
    cJSON_Delete(doc);
    CHECK(next_json(s, 0) == NULL);
    ws_session_free(s);
}

static void test_versions(void)
{
    struct ws_keys_versions *vs = ws_keys_versions_new();
    struct ticker t = {0};

    snprintf(t.exchange, sizeof t.exchange, "binance");
    snprintf(t.pair, sizeof t.pair, "BTC_USDT");
    t.v = 3;
    CHECK_INT_EQ(ws_keys_versions_advance(vs, &t), 1);
    CHECK_INT_EQ(ws_keys_versions_advance(vs, &t), 0);
    t.v = 2;
    CHECK_INT_EQ(ws_keys_versions_advance(vs, &t), 0);
    t.v = 4;
    CHECK_INT_EQ(ws_keys_versions_advance(vs, &t), 1);
    for (int i = 0; i < 500; i++) {
        snprintf(t.pair, sizeof t.pair, "A%d_USDT", i);
        CHECK_INT_EQ(ws_keys_versions_advance(vs, &t), 1);
    }
    snprintf(t.pair, sizeof t.pair, "BTC_USDT");
    CHECK_INT_EQ(ws_keys_versions_advance(vs, &t), 0);
    ws_keys_versions_free(vs);
    ws_keys_versions_free(NULL);
}

/* Many keys, many rounds: the key table and heap stay consistent and the
 * table forgets keys whose window has passed. */
static void test_many_keys(void)
{
    struct ws_session *s = ws_session_new(&ctx, NULL);
    char pair[32];

    send_msg(s, "{\"op\":\"subscribe\",\"id\":1,\"exchanges\":[\"bulk\"],\"throttle_ms\":50}");
    expect_ack(s, 1, 0);
    skip_snapshot(s);
    size_t idle = ws_session_bytes(s);
    uint64_t now = 100;
    int sent = 0;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 300; i++) {
            snprintf(pair, sizeof pair, "A%d_USDT", (i * 7 + round) % 300);
            put_publish(s, "bulk", pair, round % 2 ? "1" : "2", "3", now);
        }
        now += 60;
        sent += count_left(s, now);
    }
    CHECK_INT_EQ(sent, 1500);
    CHECK_INT_EQ(count_left(s, now + 5000), 0);
    /* Every key forgotten once its window passed: only the tables' slot
     * arrays stay (300 keys: 512 slots and a heap of 512). */
    CHECK(ws_session_bytes(s) < idle + 12 * 1024);
    ws_session_free(s);
    ws_session_free(NULL);
}

static void test_listener_parse(void)
{
    struct currency_listener_params p;
    struct jbuf err;

    jbuf_init(&err);
    CHECK_INT_EQ(currency_listener_parse(&ctx, NULL, NULL, NULL, WALL, &p, &err), 0);
    CHECK_INT_EQ(p.every_ms, 1000);
    CHECK_STR_EQ(p.exchange, "");
    CHECK_INT_EQ(currency_listener_parse(&ctx, "binance", "btc/usdt", "0.25", WALL, &p, &err), 0);
    CHECK_INT_EQ(p.every_ms, 250);
    CHECK_STR_EQ(p.exchange, "binance");
    CHECK_STR_EQ(p.pair, "btc/usdt");
    /* Clamped to 0.1-60 s. */
    CHECK_INT_EQ(currency_listener_parse(&ctx, NULL, NULL, "0.001", WALL, &p, &err), 0);
    CHECK_INT_EQ(p.every_ms, 100);
    CHECK_INT_EQ(currency_listener_parse(&ctx, NULL, NULL, "1e9", WALL, &p, &err), 0);
    CHECK_INT_EQ(p.every_ms, 60000);
    /* Refusals carry the old service's {"detail"} body. */
    CHECK_INT_EQ(currency_listener_parse(&ctx, NULL, NULL, "soon", WALL, &p, &err), 400);
    CHECK(err.len && strstr(err.data, "\"detail\"") != NULL);
    CHECK_INT_EQ(currency_listener_parse(&ctx, NULL, NULL, "nan", WALL, &p, &err), 400);
    CHECK_INT_EQ(currency_listener_parse(&ctx, NULL, "BTC:USDT", NULL, WALL, &p, &err), 400);
    CHECK(err.len && strstr(err.data, "pair string") != NULL);
    CHECK_INT_EQ(currency_listener_parse(&ctx, "nowhere", NULL, NULL, WALL, &p, &err), 400);
    CHECK(err.len && strstr(err.data, "nowhere") != NULL);
    jbuf_free(&err);
}

/* Heap bytes in use now. Under ASan its allocator's count of the bytes
 * asked for (no headers, no rounding: the session's count is then above
 * it by those); otherwise glibc's, headers and rounding included. */
static size_t heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

/* The session's count of what an operation added, against the heap's. */
static void check_counted(const char *what, size_t counted, size_t real)
{
#if defined(__SANITIZE_ADDRESS__)
    double lo = 1.0, hi = 1.6;
#else
    double lo = 0.9, hi = 1.15;
#endif
    double ratio = real ? (double)counted / (double)real : 0;
    if (ratio < lo || ratio > hi) {
        fprintf(stderr, "  %s: counted %zu bytes, the heap grew by %zu (%.2f, want %.2f-%.2f)\n",
                what, counted, real, ratio, lo, hi);
    }
    CHECK(ratio >= lo && ratio <= hi);
}

static void test_bytes_are_real(void)
{
    struct ws_session *s = ws_session_new(&ctx, NULL);
    char msg[256], pair[32];
    struct ticker t;

    /* Replies a client never reads: 2,000 pongs with 100-byte ids. */
    size_t heap0 = heap_in_use(), count0 = ws_session_bytes(s);
    for (int i = 0; i < 2000; i++) {
        snprintf(msg, sizeof msg, "{\"op\":\"ping\",\"id\":\"%0100d\"}", i);
        send_msg(s, msg);
    }
    check_counted("2,000 pongs", ws_session_bytes(s) - count0, heap_in_use() - heap0);
    CHECK_INT_EQ(count_left(s, 0), 2000);

    /* A snapshot waiting to be rendered: 3,000 keys. */
    for (int i = 0; i < 3000; i++) {
        snprintf(pair, sizeof pair, "P%d_USDT", i);
        put(i % 2 ? "heapa" : "heapb", pair, "1", "2");
    }
    heap0 = heap_in_use();
    count0 = ws_session_bytes(s);
    send_msg(s, "{\"op\":\"subscribe\",\"id\":1,\"exchanges\":[\"heapa\",\"heapb\"],"
                "\"throttle_ms\":60000}");
    check_counted("a snapshot of 3,000 keys", ws_session_bytes(s) - count0, heap_in_use() - heap0);
    expect_ack(s, 1, 0);
    skip_snapshot(s);

    /* Keys held inside their throttle window, dirty again. */
    for (int round = 0; round < 2; round++) {
        heap0 = heap_in_use();
        count0 = ws_session_bytes(s);
        for (int i = 0; i < 3000; i++) {
            snprintf(pair, sizeof pair, "P%d_USDT", i);
            CHECK(store_get(ctx.store, i % 2 ? "heapa" : "heapb", pair, &t) == 0);
            ws_session_publish(s, &t, 10);
        }
        if (round == 0) {
            check_counted("3,000 dirty keys", ws_session_bytes(s) - count0, heap_in_use() - heap0);
            CHECK_INT_EQ(count_left(s, 10), 3000);
        }
    }
    ws_session_free(s);
}

int main(void)
{
    setup();
    test_ping_and_errors();
    test_snapshot_chunks();
    test_conflation();
    test_throttle_window();
    test_overlap();
    test_unsubscribe_stops();
    test_limits();
    test_status_and_removed();
    test_versions();
    test_many_keys();
    test_listener_parse();
    test_bytes_are_real();
    teardown();
    return CHECK_DONE();
}
