/*
 * fakex fixtures: the fake exchange's pure parts, without sockets.
 *
 * Query decoding and matching, host rewriting, subscribe matching on parsed
 * JSON, URL-selected streams, loop points, fault validation, gzip frames
 * (against HTX's real ones) and expect rules, checked against the real
 * fixture folders in tests/fixtures (FAKEX_FIXTURES) plus a few throwaway
 * folders for loader errors.
 */
#include "check.h"
#include "expect.h"
#include "faults.h"
#include "fixtures.h"
#include "gzip.h"
#include "query.h"
#include "rewrite.h"
#include "submatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#ifndef FAKEX_DEFAULT_FIXTURES
#define FAKEX_DEFAULT_FIXTURES "tests/fixtures"
#endif

static const char *fixtures_root(void)
{
    const char *root = getenv("FAKEX_FIXTURES");

    return root ? root : FAKEX_DEFAULT_FIXTURES;
}

static int load(struct fixtures_exchange *ex, const char *name)
{
    char dir[1024], err[512];
    int rc;

    snprintf(dir, sizeof(dir), "%s/%s", fixtures_root(), name);
    rc = fixtures_load(ex, dir, name, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "load %s: %s\n", name, err);
    }
    return rc;
}

static void test_decode(void)
{
    char out[64];

    CHECK_INT_EQ(query_decode("%5B%22BTC%22%5D", 15, out), 7);
    CHECK_STR_EQ(out, "[\"BTC\"]");
    query_decode("a+b%2c", 6, out);
    CHECK_STR_EQ(out, "a b,");
    query_decode("%zz%4", 5, out);
    CHECK_STR_EQ(out, "%zz%4");
}

static void test_query_match(void)
{
    struct query_params rec = {0}, req = {0}, none = {0};

    query_parse(&rec, "symbol=BTCUSDT");
    query_parse(&req, "?timestamp=1&symbol=BTCUSDT");
    CHECK_INT_EQ(query_match(&rec, &req), 1);
    CHECK_INT_EQ(query_match(&none, &req), 0);
    CHECK_INT_EQ(query_match(&rec, &none), -1);
    query_free(&req);
    query_parse(&req, "symbol=ETHUSDT");
    CHECK_INT_EQ(query_match(&rec, &req), -1);
    query_free(&req);
    /* lws hands out decoded fragments; encodings must not matter. */
    query_free(&rec);
    query_parse(&rec, "symbols=%5B%22BTCUSDT%22%2C%22ETHUSDT%22%5D");
    query_add_fragment(&req, "symbols=[\"BTCUSDT\",\"ETHUSDT\"]");
    CHECK_INT_EQ(query_match(&rec, &req), 1);
    CHECK_STR_EQ(query_get(&req, "symbols"), "[\"BTCUSDT\",\"ETHUSDT\"]");
    query_free(&rec);
    query_free(&req);
}

static void test_rest_find(void)
{
    struct fixtures_exchange ex;
    struct query_params q = {0};
    const struct fixtures_rest *r;
    int spec;

    if (load(&ex, "binance") != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT_EQ(ex.n_rest, 6);
    CHECK_INT_EQ(ex.n_ws, 2);
    r = fixtures_rest_find(&ex, "GET", "/api/v3/ticker/24hr", &q, &spec);
    CHECK(r && strcmp(r->file, "rest_api_v3_ticker_24hr.json") == 0);
    CHECK_INT_EQ(spec, 0);
    query_parse(&q, "symbol=BTCUSDT&recvWindow=5000");
    r = fixtures_rest_find(&ex, "GET", "/api/v3/ticker/24hr", &q, &spec);
    CHECK(r && strcmp(r->file, "rest_api_v3_ticker_24hr_symbol_BTCUSDT.json") == 0);
    CHECK_INT_EQ(spec, 1);
    CHECK(r && r->len == 546);
    query_free(&q);
    query_add_fragment(&q, "symbols=[\"BTCUSDT\",\"ETHUSDT\"]");
    r = fixtures_rest_find(&ex, "GET", "/api/v3/ticker/24hr", &q, &spec);
    CHECK(r && strcmp(r->file, "rest_api_v3_ticker_24hr_symbols_BTCUSDT_ETHUSDT.json") == 0);
    query_free(&q);
    query_parse(&q, "symbol=ETHUSDT");
    CHECK(fixtures_rest_find(&ex, "GET", "/api/v3/ticker/price", &q, &spec) == NULL);
    CHECK_INT_EQ(spec, -1);
    CHECK(fixtures_rest_find(&ex, "GET", "/api/v3/nothing", &q, NULL) == NULL);
    CHECK(fixtures_rest_find(&ex, "POST", "/api/v3/exchangeInfo", &q, NULL) == NULL);
    query_free(&q);
    fixtures_free(&ex);
}

static void test_rewrite(void)
{
    struct strset hosts = {0};
    struct fixtures_exchange ex;
    /* Invented hosts: the rewrite works on whatever the manifests name. */
    const char *body = "{\"a\":\"https://API.venue-b.example:443/x\",\"b\":\"wss:\\/\\/stream.venue-b."
                       "example\\/ws\",\"c\":\"https://api.venue-b.example.evil.org/\"}";
    size_t len;
    char *out;

    rewrite_scan_hosts(&hosts, "wss://ws.venue-a.example (WebSocket API v1, recorded)");
    rewrite_scan_hosts(&hosts, "https://api.venue-b.example, wss://stream.venue-b.example:9443");
    rewrite_scan_hosts(&hosts, "<instanceServers[0].endpoint> and http://nohost/");
    CHECK_INT_EQ(hosts.n, 3);
    CHECK(strset_has(&hosts, "ws.venue-a.example"));
    CHECK(strset_has(&hosts, "stream.venue-b.example"));
    out = rewrite_body(body, strlen(body), &hosts, "http://127.0.0.1:9/binance",
                       "ws://127.0.0.1:9/binance", &len);
    CHECK_STR_EQ(out, "{\"a\":\"http://127.0.0.1:9/binance/x\",\"b\":\"ws://127.0.0.1:9/binance\\/"
                      "ws\",\"c\":\"https://api.venue-b.example.evil.org/\"}");
    CHECK_INT_EQ(len, out ? strlen(out) : 0);
    free(out);
    CHECK(rewrite_body("{\"x\":1}", 7, &hosts, "h", "w", &len) == NULL);
    strset_free(&hosts);

    if (load(&ex, "kucoin") != 0) {
        CHECK(0);
        return;
    }
    fixtures_rewrite(&ex, "http://127.0.0.1:1234/kucoin", "ws://127.0.0.1:1234/kucoin");
    for (size_t i = 0; i < ex.n_rest; i++) {
        if (strstr(ex.rest[i].file, "bullet")) {
            CHECK(strstr(ex.rest[i].served, "\"endpoint\":\"ws://127.0.0.1:1234/kucoin/\""));
            CHECK(strstr(ex.rest[i].served, "kucoin.com") == NULL);
            CHECK(strstr(ex.rest[i].body, "wss://ws-api-spot.kucoin.com/"));
        }
    }
    fixtures_free(&ex);
    if (load(&ex, "coinbase") == 0) {
        CHECK(strset_has(&ex.hosts, "api.pro.coinbase.com"));
        CHECK(strset_has(&ex.hosts, "ws-feed.exchange.coinbase.com"));
        fixtures_free(&ex);
    }
}

/* Index of the capture a message selects, -1 for none, -2 for several. */
static long pick(const struct fixtures_exchange *ex, const char *msg)
{
    size_t idx[8];
    size_t n = fixtures_ws_for_message(ex, msg, strlen(msg), idx, 8);

    return n == 0 ? -1 : n == 1 ? (long)idx[0] : -2;
}

static const char *file_of(const struct fixtures_exchange *ex, long i)
{
    return i >= 0 ? ex->ws[i].file : "(none)";
}

static void test_subscribe_kraken(void)
{
    struct fixtures_exchange ex;

    if (load(&ex, "kraken") != 0) {
        CHECK(0);
        return;
    }
    CHECK_STR_EQ(
        file_of(&ex, pick(&ex, "{\"event\":\"subscribe\",\"pair\":[\"XBT/USD\",\"ETH/"
                               "EUR\"],\"subscription\":{\"name\":\"ticker\"},\"reqid\":7}")),
        "ws_ticker.jsonl");
    CHECK_STR_EQ(file_of(&ex, pick(&ex, "{\"subscription\":{\"depth\":10,\"name\":\"book\"},"
                                        "\"event\":\"subscribe\",\"pair\":[\"XBT/USD\"]}")),
                 "ws_book.jsonl");
    CHECK_INT_EQ(pick(&ex, "{\"event\":\"unsubscribe\",\"subscription\":{\"name\":\"ticker\"}}"),
                 -1);
    CHECK_INT_EQ(pick(&ex, "{\"event\":\"subscribe\",\"subscription\":{\"name\":\"ohlc\"}}"), -1);
    CHECK_INT_EQ(pick(&ex, "{\"event\":\"ping\",\"reqid\":42}"), -1);
    CHECK_INT_EQ(pick(&ex, "not json at all"), -1);
    CHECK_INT_EQ(pick(&ex, "[1,2,3]"), -1);
    for (size_t i = 0; i < ex.n_ws; i++) {
        if (strcmp(ex.ws[i].file, "ws_ticker.jsonl") == 0) {
            CHECK_INT_EQ(ex.ws[i].n_lines, 60);
            CHECK_INT_EQ(ex.ws[i].start_from, 0);
            CHECK_INT_EQ(ex.ws[i].loop_from, 11);
        }
    }
    fixtures_free(&ex);
}

static void test_subscribe_coinbase(void)
{
    struct fixtures_exchange ex;
    size_t idx[8];
    const char *two = "{\"type\":\"subscribe\",\"product_ids\":[\"BTC-USD\"],"
                      "\"channels\":[\"matches\",\"ticker\"]}";

    if (load(&ex, "coinbase") != 0) {
        CHECK(0);
        return;
    }
    CHECK_STR_EQ(file_of(&ex, pick(&ex, "{\"type\":\"subscribe\",\"product_ids\":[\"BTC-USD\"],"
                                        "\"channels\":[\"ticker\",\"heartbeat\"]}")),
                 "ws_ticker.jsonl");
    CHECK_STR_EQ(file_of(&ex, pick(&ex, "{\"type\":\"subscribe\",\"channels\":[{\"name\":"
                                        "\"matches\",\"product_ids\":[\"ETH-USD\"]}]}")),
                 "ws_matches.jsonl");
    CHECK_INT_EQ(fixtures_ws_for_message(&ex, two, strlen(two), idx, 8), 2);
    CHECK_INT_EQ(pick(&ex, "{\"type\":\"subscribe\",\"channels\":[\"status\"]}"), -1);
    for (size_t i = 0; i < ex.n_ws; i++) {
        CHECK_INT_EQ(ex.ws[i].loop_from, 2);
    }
    fixtures_free(&ex);
}

static void test_binance_streams(void)
{
    struct fixtures_exchange ex;
    struct query_params q = {0};
    size_t idx[8];

    if (load(&ex, "binance") != 0) {
        CHECK(0);
        return;
    }
    query_add(&q, "streams", "btcusdt@bookTicker/ethusdt@bookTicker");
    CHECK_INT_EQ(fixtures_ws_for_url(&ex, "/stream", &q, idx, 8), 1);
    CHECK_STR_EQ(ex.ws[idx[0]].file, "ws_bookTicker.jsonl");
    CHECK_INT_EQ(fixtures_ws_for_url(&ex, "/stream/", &q, idx, 8), 1);
    CHECK_INT_EQ(fixtures_ws_for_url(&ex, "/ws", &q, idx, 8), 0);
    query_free(&q);
    query_add(&q, "streams", "btcusdt@bookTicker/btcusdt@depth@100ms");
    CHECK_INT_EQ(fixtures_ws_for_url(&ex, "/stream", &q, idx, 8), 1);
    CHECK_STR_EQ(ex.ws[idx[0]].file, "ws_combined_stream.jsonl");
    query_free(&q);
    CHECK_INT_EQ(fixtures_ws_for_url(&ex, "/stream", &q, idx, 8), 0);
    query_add(&q, "streams", "btcusdt@trade");
    CHECK_INT_EQ(fixtures_ws_for_url(&ex, "/stream", &q, idx, 8), 0);
    query_free(&q);
    CHECK_STR_EQ(file_of(&ex, pick(&ex, "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@"
                                        "bookTicker\"],\"id\":3}")),
                 "ws_bookTicker.jsonl");
    CHECK_STR_EQ(file_of(&ex, pick(&ex, "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@"
                                        "aggTrade\"],\"id\":3}")),
                 "ws_combined_stream.jsonl");
    CHECK_INT_EQ(pick(&ex, "{\"method\":\"UNSUBSCRIBE\",\"params\":[\"btcusdt@bookTicker\"]}"), -1);
    for (size_t i = 0; i < ex.n_ws; i++) {
        CHECK_INT_EQ(ex.ws[i].loop_from, 0);
    }
    fixtures_free(&ex);
}

static void test_replies(void)
{
    struct fixtures_exchange ex;
    char *r;

    if (load(&ex, "kraken") != 0) {
        CHECK(0);
        return;
    }
    r = fixtures_reply_for(&ex, "{\"event\":\"ping\",\"reqid\":42}", 27);
    CHECK_STR_EQ(r, "{\"event\":\"pong\",\"reqid\":42}");
    free(r);
    r = fixtures_reply_for(&ex, "{\"event\":\"ping\"}", 16);
    CHECK_STR_EQ(r, "{\"event\":\"pong\",\"reqid\":null}");
    free(r);
    CHECK(fixtures_reply_for(&ex, "{\"event\":\"subscribe\"}", 21) == NULL);
    CHECK(fixtures_reply_for(&ex, "ping", 4) == NULL);
    fixtures_free(&ex);
    if (load(&ex, "binance") != 0) {
        CHECK(0);
        return;
    }
    r = fixtures_reply_for(&ex, "{\"method\":\"SUBSCRIBE\",\"params\":[],\"id\":\"a\"}", 43);
    CHECK_STR_EQ(r, "{\"result\":null,\"id\":\"a\"}");
    free(r);
    fixtures_free(&ex);
}

static void test_submatch_paths(void)
{
    struct submatch_key key;
    struct strset vals = {0};
    char err[256];
    cJSON *spec = cJSON_Parse("[{\"path\":\"args.*.channel\"},{\"path\":\"n\"},"
                              "{\"path\":\"t\",\"regex\":\"^([^:]+)\"}]");
    cJSON *msg = cJSON_Parse("{\"args\":[{\"channel\":\"tickers\"},{\"channel\":\"trades\"},7],"
                             "\"n\":[1.5,2,true,{}],\"t\":\"/market/ticker:A,B\"}");

    CHECK_INT_EQ(submatch_key_parse(&key, spec, err, sizeof(err)), 0);
    submatch_values(&key, msg, &vals);
    CHECK_INT_EQ(vals.n, 6);
    CHECK(strset_has(&vals, "tickers") && strset_has(&vals, "trades"));
    CHECK(strset_has(&vals, "1.5") && strset_has(&vals, "2") && strset_has(&vals, "true"));
    CHECK(strset_has(&vals, "/market/ticker"));
    strset_free(&vals);
    submatch_key_free(&key);
    cJSON_Delete(spec);
    cJSON_Delete(msg);
    spec = cJSON_Parse("{\"path\":\"x\",\"regex\":\"([\"}");
    CHECK_INT_EQ(submatch_key_parse(&key, spec, err, sizeof(err)), -1);
    CHECK(strstr(err, "bad regex") != NULL);
    cJSON_Delete(spec);
}

static void test_faults(void)
{
    struct faults f;
    unsigned ev = 0;
    char err[160];
    cJSON *b;

    faults_clear(&f);
    CHECK_INT_EQ(f.truncate, -1);
    CHECK_INT_EQ(f.ws_drop_after, -1);
    b = cJSON_Parse("{\"status\":500,\"delay_ms\":250,\"ws_garbage\":true}");
    CHECK_INT_EQ(faults_apply(&f, b, &ev, err, sizeof(err)), 0);
    cJSON_Delete(b);
    CHECK_INT_EQ(f.status, 500);
    CHECK_INT_EQ(f.delay_ms, 250);
    CHECK(ev & FAULTS_EV_GARBAGE);
    b = cJSON_Parse("{\"truncate\":0,\"status\":\"x\"}");
    CHECK_INT_EQ(faults_apply(&f, b, &ev, err, sizeof(err)), -1);
    CHECK_INT_EQ(f.truncate, -1); /* nothing applied from a rejected request */
    cJSON_Delete(b);
    b = cJSON_Parse("{\"bogus\":1}");
    CHECK_INT_EQ(faults_apply(&f, b, &ev, err, sizeof(err)), -1);
    CHECK(strstr(err, "bogus") != NULL);
    cJSON_Delete(b);
    b = cJSON_Parse("{\"ws_oversize\":1e12}");
    CHECK_INT_EQ(faults_apply(&f, b, &ev, err, sizeof(err)), -1);
    cJSON_Delete(b);
    b = cJSON_Parse("{\"ws_oversize\":1e300}");
    CHECK_INT_EQ(faults_apply(&f, b, &ev, err, sizeof(err)), -1);
    cJSON_Delete(b);
    b = cJSON_Parse("{\"clear\":true,\"truncate\":0,\"ws_drop_after\":3}");
    ev = 0;
    CHECK_INT_EQ(faults_apply(&f, b, &ev, err, sizeof(err)), 0);
    cJSON_Delete(b);
    CHECK_INT_EQ(f.status, 0);
    CHECK_INT_EQ(f.delay_ms, 0);
    CHECK_INT_EQ(f.truncate, 0);
    CHECK_INT_EQ(f.ws_drop_after, 3);
    CHECK(ev & FAULTS_EV_DROP);
    b = cJSON_Parse("{\"ws_drop_after\":null,\"garbage\":false}");
    CHECK_INT_EQ(faults_apply(&f, b, &ev, err, sizeof(err)), 0);
    cJSON_Delete(b);
    CHECK_INT_EQ(f.ws_drop_after, -1);
    CHECK_INT_EQ(faults_apply(&f, NULL, &ev, err, sizeof(err)), -1);
}

/* Standard base64 of one line into `out` (room for 3/4 of its length);
 * the decoded length, or -1 on a bad character. */
static long unbase64(const char *in, unsigned char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned long acc = 0;
    long n = 0;
    int bits = 0;

    for (; *in && *in != '=' && *in != '\n'; in++) {
        const char *p = strchr(abc, *in);

        if (!p) {
            return -1;
        }
        acc = (acc << 6) | (unsigned long)(p - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

/* gunzip `len` bytes into `out` (NUL-terminated); the text length or -1. */
static long gunzip(const unsigned char *in, size_t len, char *out, size_t cap)
{
    z_stream z = {0};
    long n = -1;

    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)(cap - 1);
    if (inflate(&z, Z_FINISH) == Z_STREAM_END) {
        n = (long)z.total_out;
        out[n] = '\0';
    }
    inflateEnd(&z);
    return n;
}

/*
 * HTX's real frames (ws_raw_gzip_frames.b64, the first frames of the
 * recorded connection): gunzipped, the first one is the capture's first
 * line; gzipped again by fakex, each is the recorded frame byte for byte.
 */
static void test_gzip_htx_frames(void)
{
    static unsigned char raw[64 * 1024];
    static char text[512 * 1024], line[128 * 1024];
    struct fixtures_exchange ex;
    char path[1024];
    int frames = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/htx/ws_raw_gzip_frames.b64", fixtures_root());
    f = fopen(path, "r");
    if (!f || load(&ex, "htx") != 0) {
        CHECK(0);
        if (f) {
            fclose(f);
        }
        return;
    }
    CHECK_INT_EQ(ex.compress, FIXTURES_COMPRESS_GZIP);
    while (fgets(line, sizeof(line), f)) {
        long n = unbase64(line, raw), t = n > 0 ? gunzip(raw, (size_t)n, text, sizeof(text)) : -1;
        size_t zlen = 0;
        unsigned char *z = t >= 0 ? gzip_compress(text, (size_t)t, &zlen) : NULL;

        CHECK(t > 0);
        CHECK_INT_EQ(zlen, n);
        CHECK(z && (long)zlen == n && memcmp(z, raw, zlen) == 0);
        if (frames == 0 && t > 0) {
            for (size_t i = 0; i < ex.n_ws; i++) {
                if (strcmp(ex.ws[i].file, "ws_market_depth_step0.jsonl") == 0) {
                    CHECK_INT_EQ(ex.ws[i].lines[0].len, t);
                    CHECK(memcmp(ex.ws[i].data + ex.ws[i].lines[0].off, text, (size_t)t) == 0);
                }
            }
        }
        free(z);
        frames++;
    }
    fclose(f);
    CHECK(frames >= 2);
    fixtures_free(&ex);
}

/* How many rules a frame arms; *p gets the first (the caller frees it). */
static size_t arm(const struct fixtures_exchange *ex, const char *frame, struct expect_pending *p)
{
    struct expect_pending all[FIXTURES_MAX_EXPECTS];
    size_t n = expect_arm(ex, frame, strlen(frame), all, FIXTURES_MAX_EXPECTS);

    for (size_t i = 1; i < n; i++) {
        expect_pending_free(&all[i]);
    }
    if (n > 0) {
        *p = all[0];
    }
    return n;
}

static int answers(const struct expect_pending *p, const char *msg)
{
    cJSON *m = cJSON_Parse(msg);
    int ok = m && expect_answers(p, m);

    cJSON_Delete(m);
    return ok;
}

/* Crypto.com's heartbeat wants its own id back; HTX's ping its number. */
static void test_expect_rules(void)
{
    struct fixtures_exchange ex;
    struct expect_pending p;

    if (load(&ex, "cryptocom") != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT_EQ(ex.compress, FIXTURES_COMPRESS_NONE);
    CHECK_INT_EQ(ex.n_expects, 1);
    CHECK_INT_EQ(ex.expects[0].within_ms, 5000);
    CHECK_INT_EQ(arm(&ex, "{\"id\":-1,\"method\":\"subscribe\",\"code\":0}", &p), 0);
    CHECK_INT_EQ(arm(&ex, "not json", &p), 0);
    CHECK_INT_EQ(arm(&ex, "{\"id\":1587523073344,\"method\":\"public/heartbeat\",\"code\":0}", &p),
                 1);
    CHECK(answers(&p, "{\"id\":1587523073344,\"method\":\"public/respond-heartbeat\"}"));
    CHECK(answers(&p, "{\"method\":\"public/respond-heartbeat\",\"id\":1.587523073344e12}"));
    CHECK(!answers(&p, "{\"id\":1587523073345,\"method\":\"public/respond-heartbeat\"}"));
    CHECK(!answers(&p, "{\"id\":1587523073344,\"method\":\"public/heartbeat\"}"));
    CHECK(!answers(&p, "{\"method\":\"public/respond-heartbeat\"}"));
    expect_pending_free(&p);
    fixtures_free(&ex);

    if (load(&ex, "htx") != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT_EQ(arm(&ex, "{\"ping\":1618678073643}", &p), 1);
    CHECK(answers(&p, "{\"pong\":1618678073643}"));
    CHECK(!answers(&p, "{\"pong\":1618678073642}"));
    CHECK(!answers(&p, "{\"ping\":1618678073643}"));
    expect_pending_free(&p);
    CHECK_INT_EQ(arm(&ex, "{\"id\":1,\"status\":\"ok\",\"subbed\":\"market.a.depth.step0\"}", &p),
                 0);
    fixtures_free(&ex);
}

/* Write `text` to dir/name. */
static void put(const char *dir, const char *name, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_loader_errors(void)
{
    char dir[] = "/tmp/fakex-unit-XXXXXX", err[512], path[600];
    struct fixtures_exchange ex;
    struct fixtures_exchange *all = NULL;
    size_t n = 0;

    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    put(dir, "manifest.json", "{\"rest\":[{\"path\":\"/a\",\"file\":\"missing.json\"}]}");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "missing.json") != NULL);
    put(dir, "a.json", "{}");
    put(dir, "manifest.json", "{\"rest\":[{\"path\":\"/a\",\"file\":\"a.json\"}]}");
    put(dir, "fakex.json", "{\"operation\":\"op\",\"chanel\":\"typo\"}");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "chanel") != NULL);
    put(dir, "fakex.json", "{\"operation\":\"op\"}");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), -1);
    put(dir, "manifest.json", "{\"rest\":[{\"path\":\"/a\",\"file\":\"../a.json\"}]}");
    put(dir, "fakex.json", "{}");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), -1);
    put(dir, "manifest.json", "{\"rest\":[{\"path\":\"/a\",\"file\":\"a.json\"}]");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "not valid JSON") != NULL);
    put(dir, "manifest.json", "{\"rest\":[{\"path\":\"/a\",\"file\":\"a.json\"}]}");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), 0);
    fixtures_free(&ex);
    put(dir, "fakex.json", "{\"compress\":\"zip\"}");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "compress") != NULL);
    put(dir, "fakex.json",
        "{\"expect\":[{\"when\":{\"path\":\"ping\"},\"reply\":{\"path\":"
        "\"pong\"},\"within_ms\":0}]}");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "within_ms") != NULL);
    put(dir, "fakex.json", "{\"expect\":[{\"when\":{\"path\":\"ping\"},\"within_ms\":10}]}");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "reply") != NULL);
    put(dir, "fakex.json",
        "{\"expect\":[{\"when\":{\"path\":\"ping\",\"valuse\":[\"1\"]},"
        "\"reply\":{\"path\":\"pong\"},\"within_ms\":10}]}");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "valuse") != NULL);
    put(dir, "fakex.json",
        "{\"expect\":[{\"when\":[{\"path\":\"a\",\"values\":[1]}],"
        "\"reply\":{\"path\":\"b\"},\"within_ms\":10}]}");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), -1);
    CHECK(strstr(err, "strings") != NULL);
    put(dir, "fakex.json",
        "{\"compress\":\"gzip\",\"expect\":[{\"_why\":\"x\",\"when\":[{"
        "\"path\":\"a\",\"values\":[\"1\"]},{\"path\":\"b\"}],\"reply\":"
        "{\"path\":\"c\",\"regex\":\"^(x)\"},\"within_ms\":600000}]}");
    CHECK_INT_EQ(fixtures_load(&ex, dir, "x", err, sizeof(err)), 0);
    CHECK_INT_EQ(ex.n_expects, 1);
    CHECK_INT_EQ(ex.expects[0].n_when, 2);
    CHECK(ex.expects[0].reply[0].any);
    fixtures_free(&ex);
    CHECK_INT_EQ(fixtures_scan(dir, &all, &n, err, sizeof(err)), -1);
    for (const char *f = "manifest.json\0a.json\0fakex.json\0"; *f; f += strlen(f) + 1) {
        snprintf(path, sizeof(path), "%s/%s", dir, f);
        unlink(path);
    }
    rmdir(dir);

    CHECK_INT_EQ(fixtures_scan(fixtures_root(), &all, &n, err, sizeof(err)), 0);
    CHECK(n >= 3);
    for (size_t i = 1; i < n; i++) {
        CHECK(strcmp(all[i - 1].name, all[i].name) < 0);
    }
    fixtures_free_all(all, n);
}

int main(void)
{
    test_decode();
    test_query_match();
    test_rest_find();
    test_rewrite();
    test_subscribe_kraken();
    test_subscribe_coinbase();
    test_binance_streams();
    test_replies();
    test_submatch_paths();
    test_faults();
    test_gzip_htx_frames();
    test_expect_rules();
    test_loader_errors();
    return CHECK_DONE();
}
