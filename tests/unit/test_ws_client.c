/*
 * ws_client against a private fake exchange: Binance URL-selected streams
 * (bytes equal the capture), Kraken subscribe/replies and the send queue,
 * every WebSocket fault (drop, oversize, garbage, refuse), nothing
 * listening, a peer that never answers the handshake (open timeout, close
 * while opening), ping frames, the handshake headers as a raw server sees
 * them, name resolution, an HTTP CONNECT proxy, callbacks that close and
 * open connections, TLS with a throwaway CA (trusted, untrusted, wrong
 * host, host-name check after resolving), abandon, and ws_client_free with
 * connections open, opening and resolving (1001 each, nothing left on the
 * loop). The raw peers are in ws_test_peers.h.
 *
 * Every wait is bounded by a deadline scaled with TEST_TIME_FACTOR.
 */
#include "check.h"
#include "fakex_proc.h"
#include "core/loop.h"
#include "net/ws_client.h"
#include "net/ws_client_int.h"
#include "ws_test_peers.h"
#include "core/xalloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define MAX_KEEP 256

static double tf = 1.0; /* TEST_TIME_FACTOR */

/* ---- What one connection saw ----------------------------------------- */

struct rec {
    struct ws_conn *conn;
    bool opened, closed, close_inside_call;
    int code;
    char reason[256];
    int n; /* messages */
    int n_binary;
    char *msgs[MAX_KEEP]; /* the first MAX_KEEP, NUL-terminated copies */
    size_t lens[MAX_KEEP];
    bool inside_call; /* set around ws_conn_open/ws_conn_close */
    const char *send_on_open;
    const char *watch; /* a substring to look for in every message */
    bool watched;
    int close_after;        /* ws_conn_close from inside on_message */
    const char *reopen_url; /* ws_conn_open from inside on_close */
    struct rec *reopened;
    struct ws_conn_stats last; /* stats at close */
};

static void rec_reset(struct rec *r)
{
    for (int i = 0; i < MAX_KEEP && i < r->n; i++) {
        free(r->msgs[i]);
    }
    memset(r, 0, sizeof *r);
}

static struct harness *current; /* for callbacks that open connections */
static struct ws_conn *open_url(struct harness *h, struct rec *r, const char *url,
                                const struct ws_conn_options *base);

static void on_open(struct ws_conn *conn, void *data)
{
    struct rec *r = data;
    r->opened = true;
    if (r->send_on_open) {
        CHECK_INT_EQ(ws_conn_send(conn, r->send_on_open, strlen(r->send_on_open), false), 0);
    }
}

static void on_message(struct ws_conn *conn, const char *msg, size_t len, bool binary, void *data)
{
    struct rec *r = data;
    if (r->n < MAX_KEEP) {
        r->msgs[r->n] = xstrndup(msg, len);
        r->lens[r->n] = len;
    }
    r->n++;
    r->n_binary += binary;
    if (r->watch && memmem(msg, len, r->watch, strlen(r->watch))) {
        r->watched = true;
    }
    if (r->close_after && r->n == r->close_after) {
        ws_conn_close(conn, 1000, "enough");
    }
}

static void on_close(struct ws_conn *conn, int code, const char *reason, void *data)
{
    struct rec *r = data;
    CHECK(!r->closed); /* exactly once */
    CHECK(conn == r->conn);
    r->closed = true;
    r->close_inside_call = r->inside_call;
    r->code = code;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    ws_conn_stats(conn, &r->last);
    r->conn = NULL;
    if (r->reopen_url) {
        CHECK(open_url(current, r->reopened, r->reopen_url, NULL) != NULL);
    }
}

static const struct ws_conn_callbacks callbacks = {on_open, on_message, on_close};

/* ---- Harness: a loop, a client, bounded waits ------------------------ */

struct harness {
    struct loop *loop;
    struct ws_client *client;
    struct loop_timer *check;
    bool (*pred)(void *);
    void *arg;
    uint64_t deadline;
    bool timed_out;
};

static void on_check(struct loop_timer *t, void *data)
{
    struct harness *h = data;
    if (h->pred(h->arg)) {
        loop_stop(h->loop);
    } else if (loop_now_ms(h->loop) >= h->deadline) {
        h->timed_out = true;
        loop_stop(h->loop);
    }
}

/* Runs the loop until pred(arg) or ms (scaled) pass; false on timeout. */
static bool run_until(struct harness *h, bool (*pred)(void *), void *arg, uint64_t ms)
{
    h->pred = pred;
    h->arg = arg;
    h->timed_out = false;
    h->deadline = loop_now_ms(h->loop) + (uint64_t)((double)ms * tf);
    loop_timer_start(h->check, 0, 5);
    loop_run(h->loop);
    loop_timer_stop(h->check);
    return !h->timed_out;
}

static bool never(void *arg)
{
    return false;
}

static void run_for(struct harness *h, uint64_t ms)
{
    run_until(h, never, NULL, ms);
}

static bool is_open(void *arg)
{
    struct rec *r = arg;
    return r->opened || r->closed;
}

static bool is_closed(void *arg)
{
    return ((struct rec *)arg)->closed;
}

static int want_n;
static bool has_n(void *arg)
{
    struct rec *r = arg;
    return r->n >= want_n || r->closed;
}

static bool harness_init_proxy(struct harness *h, const char *ca_file, const char *proxy)
{
    char err[256] = "";
    struct ws_client_options opts = {.ca_file = ca_file, .proxy = proxy};

    current = h;
    h->loop = loop_new();
    h->check = loop_timer_new(h->loop, on_check, h);
    h->client = ws_client_new(h->loop, &opts, err, sizeof err);
    if (!h->client) {
        fprintf(stderr, "ws_client_new: %s\n", err);
    }
    CHECK(h->client != NULL);
    return h->client != NULL;
}

static bool harness_init(struct harness *h, const char *ca_file)
{
    return harness_init_proxy(h, ca_file, NULL);
}

static void harness_free(struct harness *h)
{
    ws_client_free(h->client);
    loop_timer_free(h->check);
    CHECK_INT_EQ(loop_free(h->loop), 0);
}

static struct ws_conn *open_url(struct harness *h, struct rec *r, const char *url,
                                const struct ws_conn_options *base)
{
    char err[256] = "";
    struct ws_conn_options opts = base ? *base : (struct ws_conn_options){0};

    opts.url = url;
    r->inside_call = true;
    r->conn = ws_conn_open(h->client, &opts, &callbacks, r, err, sizeof err);
    r->inside_call = false;
    if (!r->conn) {
        fprintf(stderr, "ws_conn_open %s: %s\n", url, err);
    }
    return r->conn;
}

static void fx_post(const struct fakex_proc *fx, const char *path, const char *body)
{
    char out[4096];
    CHECK_INT_EQ(fx_request(fx, "POST", path, body, out, sizeof out), 200);
}

static char *read_file(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fakex_env("RX_SOURCE_DIR"), rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = xmalloc((size_t)n + 1);
    buf[fread(buf, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return buf;
}

/* ---- Tests ----------------------------------------------------------- */

static void test_url_parse(void)
{
    struct ws_url u;
    char err[256];

    CHECK_INT_EQ(ws_url_parse("wss://ws.exchange.example", &u, err, sizeof err), 0);
    CHECK(u.tls);
    CHECK_INT_EQ(u.port, 443);
    CHECK_STR_EQ(u.host, "ws.exchange.example");
    CHECK_STR_EQ(u.host_header, "ws.exchange.example");
    CHECK_STR_EQ(u.origin, "https://ws.exchange.example");
    CHECK_STR_EQ(u.path, "/");
    ws_url_free(&u);

    CHECK_INT_EQ(
        ws_url_parse("WS://127.0.0.1:9443/stream?streams=a@b/c@d#frag", &u, err, sizeof err), 0);
    CHECK(!u.tls);
    CHECK_INT_EQ(u.port, 9443);
    CHECK_STR_EQ(u.host_header, "127.0.0.1:9443");
    CHECK_STR_EQ(u.path, "/stream?streams=a@b/c@d");
    ws_url_free(&u);

    CHECK_INT_EQ(ws_url_parse("ws://[::1]:8080?x=1", &u, err, sizeof err), 0);
    CHECK_STR_EQ(u.host, "::1");
    CHECK_STR_EQ(u.host_header, "[::1]:8080");
    CHECK_STR_EQ(u.path, "/?x=1");
    ws_url_free(&u);

    CHECK_INT_EQ(ws_url_parse("wss://h:443/p", &u, err, sizeof err), 0);
    CHECK_STR_EQ(u.host_header, "h");
    ws_url_free(&u);

    /* An empty port is the scheme's (RFC 3986 3.2.3), as libcurl reads it. */
    CHECK_INT_EQ(ws_url_parse("wss://h:/", &u, err, sizeof err), 0);
    CHECK_INT_EQ(u.port, 443);
    ws_url_free(&u);

    static const char *const bad[] = {
        "http://x/",     "ws://",     "ws://:80/",   "ws://h:0/",
        "ws://h:70000/", "ws://h:x/", "ws://u:p@h/", "ws://[::1/",
        "ws://h/a b",    NULL,
    };
    for (int i = 0; bad[i]; i++) {
        err[0] = '\0';
        CHECK_INT_EQ(ws_url_parse(bad[i], &u, err, sizeof err), -1);
        CHECK(strncmp(err, "url: ", 5) == 0); /* and never the URL itself */
        CHECK(strlen(bad[i]) <= 6 || strstr(err, bad[i] + 5) == NULL);
    }
    CHECK_INT_EQ(ws_url_parse(NULL, &u, err, sizeof err), -1);

    /* Proxies: what libwebsockets parses itself, errors without secrets. */
    char *px = NULL;
    int port = 0;
    CHECK_INT_EQ(ws_proxy_parse("http://u:s3cret@proxy.lan:3128/", &px, &port, err, sizeof err), 0);
    CHECK_STR_EQ(px, "u:s3cret@proxy.lan:3128");
    CHECK_INT_EQ(port, 3128);
    free(px);
    CHECK_INT_EQ(ws_proxy_parse("[::1]:8080", &px, &port, err, sizeof err), 0);
    CHECK_STR_EQ(px, "[::1]:8080");
    CHECK_INT_EQ(port, 8080);
    free(px);
    static const char *const bad_proxy[] = {
        "https://u:s3cret@p:443", "http://u:s3cret@p", "http://u:s3cret@p:x",
        "http://u:s3cret@:3128",  "socks5://p:1080",   NULL,
    };
    for (int i = 0; bad_proxy[i]; i++) {
        CHECK_INT_EQ(ws_proxy_parse(bad_proxy[i], &px, &port, err, sizeof err), -1);
        CHECK(strstr(err, "proxy") != NULL && strstr(err, "s3cret") == NULL);
    }
}

static void test_bad_options(struct harness *h)
{
    struct rec r = {0};
    char err[256] = "";
    const char *headers[] = {"X-Ok: 1", "no colon here"};
    struct ws_conn_options opts = {.url = "ws://127.0.0.1:1/", .headers = headers, .n_headers = 2};

    CHECK(ws_conn_open(h->client, &opts, &callbacks, &r, err, sizeof err) == NULL);
    CHECK(strstr(err, "header 2") != NULL);
    opts = (struct ws_conn_options){.url = "https://example.com/"};
    CHECK(ws_conn_open(h->client, &opts, &callbacks, &r, err, sizeof err) == NULL);
    CHECK(strstr(err, "ws://") != NULL);
}

static void test_binance(struct harness *h, const struct fakex_proc *fx)
{
    struct rec r = {0};
    char url[256];
    char *fixture = read_file("tests/fixtures/binance/ws_bookTicker.jsonl");
    char *lines[128];
    int n_lines = 0;

    CHECK(fixture != NULL);
    for (char *s = fixture, *nl; s && *s && n_lines < 128; s = nl + 1) {
        nl = strchr(s, '\n');
        if (!nl) {
            lines[n_lines++] = s;
            break;
        }
        *nl = '\0';
        lines[n_lines++] = s;
    }
    CHECK_INT_EQ(n_lines, 84);

    snprintf(url, sizeof url,
             "ws://127.0.0.1:%d/binance/stream?streams=nknusdt@bookTicker/"
             "blzeth@bookTicker",
             fx->port);
    open_url(h, &r, url, NULL);
    CHECK(!r.closed); /* nothing is reported inside ws_conn_open */
    want_n = 100;     /* more than one pass: the capture loops from the top */
    CHECK(run_until(h, has_n, &r, 10000));
    CHECK(r.opened);
    CHECK(!r.closed);
    CHECK(r.n >= 100);
    int equal = 0;
    for (int i = 0; i < 100 && i < r.n && i < MAX_KEEP; i++) {
        equal += strcmp(r.msgs[i], lines[i % n_lines]) == 0;
    }
    CHECK_INT_EQ(equal, 100);
    CHECK_INT_EQ(r.n_binary, 0);

    struct ws_conn_stats st;
    ws_conn_stats(r.conn, &st);
    CHECK_INT_EQ(st.messages, (uint64_t)r.n);
    CHECK(st.bytes > 100 * 100);

    /* Our close: the code and reason we gave come back in on_close, later. */
    r.inside_call = true;
    ws_conn_close(r.conn, 4000, "test done");
    r.inside_call = false;
    CHECK(!r.closed);
    CHECK(run_until(h, is_closed, &r, 8000));
    CHECK_INT_EQ(r.code, 4000);
    CHECK_STR_EQ(r.reason, "test done");
    CHECK(!r.close_inside_call);
    rec_reset(&r);
    free(fixture);

    /* Callbacks may close and open: on_message closes after 10 messages
     * (none is delivered after that), on_close opens the next connection. */
    struct rec next = {0};
    r.close_after = 10;
    r.reopen_url = url;
    r.reopened = &next;
    open_url(h, &r, url, NULL);
    CHECK(run_until(h, is_closed, &r, 8000));
    CHECK_INT_EQ(r.n, 10);
    CHECK_INT_EQ(r.code, 1000);
    CHECK_STR_EQ(r.reason, "enough");
    CHECK(next.conn != NULL);
    CHECK(run_until(h, is_open, &next, 8000));
    CHECK(next.opened);
    ws_conn_close(next.conn, 1000, "bye");
    CHECK(run_until(h, is_closed, &next, 8000));
    rec_reset(&r);
    rec_reset(&next);

    /* The same stream by host name: resolved on the loop, then opened. */
    snprintf(url, sizeof url, "ws://localhost:%d/binance/stream?streams=nknusdt@bookTicker",
             fx->port);
    open_url(h, &r, url, NULL);
    want_n = 3;
    CHECK(run_until(h, has_n, &r, 8000));
    CHECK(r.opened);
    CHECK(r.n >= 3);
    ws_conn_close(r.conn, 1000, "bye");
    CHECK(run_until(h, is_closed, &r, 8000));
    CHECK_INT_EQ(r.code, 1000);
    rec_reset(&r);
}

static bool kraken_seen_all(void *arg)
{
    struct rec *r = arg;
    bool status = false, sub = false, ticker = false, hb = false;
    for (int i = 0; i < r->n && i < MAX_KEEP; i++) {
        status |= strstr(r->msgs[i], "\"systemStatus\"") != NULL;
        sub |= strstr(r->msgs[i], "\"subscriptionStatus\"") != NULL;
        ticker |= r->msgs[i][0] == '[' && strstr(r->msgs[i], "\"ticker\"") != NULL;
        hb |= strstr(r->msgs[i], "\"heartbeat\"") != NULL;
    }
    return r->closed || (status && sub && ticker && hb && r->watched);
}

static void test_kraken(struct harness *h, const struct fakex_proc *fx)
{
    struct rec r = {0};
    char url[256];
    char *manifest = read_file("tests/fixtures/kraken/manifest.json");
    cJSON *m = manifest ? cJSON_Parse(manifest) : NULL;
    cJSON *ws = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "ws"), 0);
    const char *sub =
        cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(ws, "subscribe"), 0));

    CHECK(sub != NULL);
    if (!sub) {
        cJSON_Delete(m);
        free(manifest);
        return;
    }
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/kraken", fx->port);
    r.send_on_open = sub; /* sent from inside on_open */
    r.watch = "{\"event\":\"pong\",\"reqid\":4242}";
    open_url(h, &r, url, NULL);
    CHECK_INT_EQ(ws_conn_send(r.conn, "x", 1, false), -ENOTCONN); /* not open yet */
    CHECK(run_until(h, is_open, &r, 8000));
    CHECK(r.opened);

    /* The queue: an application ping earns a canned pong; too much is refused. */
    static const char ping[] = "{\"event\":\"ping\",\"reqid\":4242}";
    CHECK_INT_EQ(ws_conn_send(r.conn, ping, strlen(ping), false), 0);
    char *big = xcalloc(1, WS_SEND_QUEUE_BYTES + 1);
    CHECK_INT_EQ(ws_conn_send(r.conn, big, WS_SEND_QUEUE_BYTES + 1, false), -ENOBUFS);
    free(big);
    CHECK(run_until(h, kraken_seen_all, &r, 15000));
    if (!kraken_seen_all(&r)) {
        fprintf(stderr, "kraken: %d messages, closed %d (%d %s)\n", r.n, r.closed, r.code,
                r.reason);
        for (int i = 0; i < r.n && i < 20; i++) {
            fprintf(stderr, "  %.100s\n", r.msgs[i]);
        }
    }
    CHECK(!r.closed);
    struct ws_conn_stats st;
    ws_conn_stats(r.conn, &st);
    CHECK_INT_EQ(st.sent, 2);
    CHECK(fx_stat(fx, "kraken", "ws_client_messages") >= 2);

    ws_conn_close(r.conn, 1000, NULL);
    CHECK(run_until(h, is_closed, &r, 8000));
    CHECK_INT_EQ(r.code, 1000);
    rec_reset(&r);
    cJSON_Delete(m);
    free(manifest);
}

static void binance_url(const struct fakex_proc *fx, char *url, size_t len)
{
    snprintf(url, len, "ws://127.0.0.1:%d/binance/stream?streams=nknusdt@bookTicker", fx->port);
}

static void test_faults(struct harness *h, const struct fakex_proc *fx)
{
    struct rec r = {0};
    char url[256];

    binance_url(fx, url, sizeof url);

    /* The exchange drops us after 5 frames: 5 messages, then its code. */
    fx_post(fx, "/_fakex/binance/fault", "{\"ws_drop_after\":5}");
    open_url(h, &r, url, NULL);
    CHECK(run_until(h, is_closed, &r, 8000));
    CHECK(r.opened);
    CHECK_INT_EQ(r.n, 5);
    CHECK_INT_EQ(r.code, 1001);
    CHECK(r.reason[0] != '\0');
    fprintf(stderr, "drop_after: %d %s\n", r.code, r.reason);
    rec_reset(&r);
    fx_post(fx, "/_fakex/binance/reset", "{}");

    /* A frame over max_message_bytes is dropped and counted; the stream goes on. */
    fx_post(fx, "/_fakex/binance/fault", "{\"ws_oversize\":20000}");
    struct ws_conn_options small = {.max_message_bytes = 1000};
    open_url(h, &r, url, &small);
    want_n = 10;
    CHECK(run_until(h, has_n, &r, 8000));
    CHECK(r.n >= 10);
    CHECK(!r.closed);
    struct ws_conn_stats st;
    ws_conn_stats(r.conn, &st);
    CHECK_INT_EQ(st.dropped_oversize, 1);
    CHECK(r.n > 0 && strncmp(r.msgs[0], "{\"stream\"", 9) == 0);
    ws_conn_close(r.conn, 1000, "ok");
    CHECK(run_until(h, is_closed, &r, 8000));
    rec_reset(&r);
    fx_post(fx, "/_fakex/binance/reset", "{}");

    /* The same oversize frame within the limit arrives whole. */
    fx_post(fx, "/_fakex/binance/fault", "{\"ws_oversize\":200000}");
    open_url(h, &r, url, NULL);
    want_n = 3;
    CHECK(run_until(h, has_n, &r, 8000));
    CHECK(r.n >= 3);
    bool whole = false;
    for (int i = 0; i < r.n && i < MAX_KEEP; i++) {
        whole |= r.lens[i] == 200000;
    }
    CHECK(whole);
    ws_conn_close(r.conn, 1000, "ok");
    CHECK(run_until(h, is_closed, &r, 8000));
    rec_reset(&r);
    fx_post(fx, "/_fakex/binance/reset", "{}");

    /* Garbage: non-JSON text is delivered as is, the junk frame as binary. */
    fx_post(fx, "/_fakex/binance/fault", "{\"ws_garbage\":true}");
    open_url(h, &r, url, NULL);
    want_n = 5;
    CHECK(run_until(h, has_n, &r, 8000));
    CHECK_INT_EQ(r.n_binary, 1);
    int not_json = 0;
    for (int i = 0; i < r.n && i < MAX_KEEP; i++) {
        not_json += r.msgs[i][0] != '{' && r.msgs[i][0] != '[';
    }
    CHECK(not_json >= 2); /* the text junk and the binary junk */
    CHECK(!r.closed);
    ws_conn_close(r.conn, 1000, "ok");
    CHECK(run_until(h, is_closed, &r, 8000));
    rec_reset(&r);
    fx_post(fx, "/_fakex/binance/reset", "{}");

    /* Refused handshake: 1006 and a "connect failed" reason. */
    fx_post(fx, "/_fakex/binance/fault", "{\"refuse\":true}");
    open_url(h, &r, url, NULL);
    CHECK(run_until(h, is_closed, &r, 8000));
    CHECK(!r.opened);
    CHECK_INT_EQ(r.code, 1006);
    CHECK(strncmp(r.reason, "connect failed", 14) == 0);
    fprintf(stderr, "refuse: %d %s\n", r.code, r.reason);
    rec_reset(&r);
    fx_post(fx, "/_fakex/binance/reset", "{}");

    /* Ping frames: the exchange's library answers; the connection stays. */
    struct ws_conn_options pinging = {.ping_every_ms = 50};
    open_url(h, &r, url, &pinging);
    CHECK(run_until(h, is_open, &r, 8000));
    run_for(h, 600);
    CHECK(!r.closed);
    ws_conn_stats(r.conn, &st);
    CHECK(st.pongs >= 3);
    ws_conn_close(r.conn, 1000, "ok");
    CHECK(run_until(h, is_closed, &r, 8000));
    rec_reset(&r);

    /* Abandon: no callback, and the exchange sees the connection go. */
    open_url(h, &r, url, NULL);
    CHECK(run_until(h, is_open, &r, 8000));
    CHECK_INT_EQ(fx_stat(fx, "binance", "ws_open"), 1);
    ws_conn_abandon(r.conn);
    run_for(h, 300);
    CHECK(!r.closed);
    CHECK_INT_EQ(fx_stat(fx, "binance", "ws_open"), 0);
    rec_reset(&r);
}

static void test_unreachable(struct harness *h)
{
    struct rec r = {0};
    char url[128];
    int port;
    int fd = silent_listener(&port);

    CHECK(fd >= 0);
    /* The handshake is never answered: the open timeout ends it. */
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    struct ws_conn_options quick = {.open_timeout_ms = 300};
    open_url(h, &r, url, &quick);
    CHECK(run_until(h, is_closed, &r, 5000));
    CHECK_INT_EQ(r.code, 1006);
    CHECK(strstr(r.reason, "open timeout") != NULL);
    rec_reset(&r);

    /* Closing while opening: our code and reason, reported later. */
    open_url(h, &r, url, NULL);
    run_for(h, 50);
    r.inside_call = true;
    ws_conn_close(r.conn, 4001, "changed my mind");
    r.inside_call = false;
    CHECK(!r.closed);
    CHECK(run_until(h, is_closed, &r, 5000));
    CHECK_INT_EQ(r.code, 4001);
    CHECK_STR_EQ(r.reason, "changed my mind");
    rec_reset(&r);

    /* Abandoned while opening: nothing more is heard. */
    open_url(h, &r, url, NULL);
    ws_conn_abandon(r.conn);
    run_for(h, 100);
    CHECK(!r.closed);
    rec_reset(&r);
    close(fd);

    /* Nothing listens: 1006 "connect failed", never inside ws_conn_open. */
    open_url(h, &r, url, NULL);
    CHECK(!r.closed);
    CHECK(run_until(h, is_closed, &r, 5000));
    CHECK_INT_EQ(r.code, 1006);
    CHECK(strncmp(r.reason, "connect failed", 14) == 0);
    CHECK(!r.close_inside_call);
    fprintf(stderr, "nothing listening: %d %s\n", r.code, r.reason);
    rec_reset(&r);

    /* A name that does not resolve. */
    open_url(h, &r, "ws://no-such-host.invalid/", NULL);
    CHECK(run_until(h, is_closed, &r, 10000));
    CHECK_INT_EQ(r.code, 1006);
    CHECK(strstr(r.reason, "resolve") != NULL);
    rec_reset(&r);
}

static void test_headers(struct harness *h)
{
    struct capture cap = {0};
    struct rec r = {0};
    pthread_t th;
    char url[128], want[128];
    int port;
    const char *headers[] = {"X-Test: one", "Authorization: Bearer t0k"};

    cap.fd = silent_listener(&port);
    CHECK(cap.fd >= 0);
    pthread_create(&th, NULL, capture_main, &cap);
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/path/x?y=1&z=2", port);
    struct ws_conn_options opts = {.headers = headers, .n_headers = 2};
    open_url(h, &r, url, &opts);
    CHECK(run_until(h, is_closed, &r, 5000));
    pthread_join(th, NULL);
    close(cap.fd);
    CHECK(strstr(cap.head, "GET /path/x?y=1&z=2 HTTP/1.1\r\n") != NULL);
    snprintf(want, sizeof want, "\r\nHost: 127.0.0.1:%d\r\n", port);
    CHECK(strstr(cap.head, want) != NULL);
    snprintf(want, sizeof want, "\r\nOrigin: http://127.0.0.1:%d\r\n", port);
    CHECK(strstr(cap.head, want) != NULL);
    CHECK(strstr(cap.head, "\r\nX-Test: one\r\n") != NULL);
    CHECK(strstr(cap.head, "\r\nAuthorization: Bearer t0k\r\n") != NULL);
    CHECK(strcasestr(cap.head, "\r\nUpgrade: websocket\r\n") != NULL);
    if (!strstr(cap.head, "X-Test")) {
        fprintf(stderr, "handshake seen:\n%s\n", cap.head);
    }
    CHECK_INT_EQ(r.code, 1006);
    CHECK(strncmp(r.reason, "connect failed", 14) == 0);
    fprintf(stderr, "403: %d %s\n", r.code, r.reason);
    rec_reset(&r);
}

/* ws_client_free with connections open and opening: 1001 each, nothing
 * left on the loop (loop_run returns by itself, loop_free returns 0). */
static void test_free_open(const struct fakex_proc *fx)
{
    struct harness h;
    struct rec r[4] = {{0}};
    char url[256];
    int port;
    int fd = silent_listener(&port);

    if (!harness_init(&h, NULL)) {
        return;
    }
    binance_url(fx, url, sizeof url);
    open_url(&h, &r[0], url, NULL);
    open_url(&h, &r[1], url, NULL);
    CHECK(run_until(&h, is_open, &r[0], 8000) && run_until(&h, is_open, &r[1], 8000));
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    open_url(&h, &r[2], url, NULL);
    run_for(&h, 50);
    CHECK(r[0].opened && r[1].opened && !r[2].opened);
    /* Still resolving when the client goes. */
    snprintf(url, sizeof url, "ws://localhost:%d/", port);
    open_url(&h, &r[3], url, NULL);

    ws_client_free(h.client);
    for (int i = 0; i < 4; i++) {
        CHECK(r[i].closed);
        CHECK_INT_EQ(r[i].code, 1001);
        CHECK_STR_EQ(r[i].reason, "shutdown");
        rec_reset(&r[i]);
    }
    loop_timer_free(h.check);
    alarm((unsigned)(20 * tf)); /* a handle left active would keep loop_run forever */
    loop_run(h.loop);
    alarm(0);
    CHECK_INT_EQ(loop_free(h.loop), 0);
    close(fd);
}

static void test_proxy(const struct fakex_proc *fx)
{
    struct proxy px = {0};
    struct harness h;
    struct rec r = {0};
    pthread_t th;
    char proxy_url[64], url[256], want[64];
    int port;

    px.fd = silent_listener(&port);
    CHECK(px.fd >= 0);
    pthread_create(&th, NULL, proxy_main, &px);
    snprintf(proxy_url, sizeof proxy_url, "http://127.0.0.1:%d", port);
    if (harness_init_proxy(&h, NULL, proxy_url)) {
        binance_url(fx, url, sizeof url);
        open_url(&h, &r, url, NULL);
        want_n = 5;
        CHECK(run_until(&h, has_n, &r, 8000));
        CHECK(r.opened);
        CHECK(r.n >= 5);
        ws_conn_close(r.conn, 1000, "bye");
        CHECK(run_until(&h, is_closed, &r, 8000));
        CHECK_INT_EQ(r.code, 1000);
        harness_free(&h);
    }
    pthread_join(th, NULL);
    close(px.fd);
    snprintf(want, sizeof want, "CONNECT 127.0.0.1:%d HTTP/1.1", fx->port);
    CHECK_STR_EQ(px.request, want);
    rec_reset(&r);
}

/* host: the name in the URL; want: "open" or a substring of the reason. */
static void tls_case(const char *dir, const char *cert_name, const char *host, bool trust,
                     const char *want)
{
    char cert[256], key[256], ca[256], url[256];
    struct fakex_proc fx;
    struct harness h;
    struct rec r = {0};

    snprintf(cert, sizeof cert, "%s/%s.pem", dir, cert_name);
    snprintf(key, sizeof key, "%s/%s.key", dir, cert_name);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    const char *extra[] = {"--tls-cert", cert, "--tls-key", key, "--rate", "0", NULL};
    if (fakex_start(&fx, "https", extra) != 0) {
        CHECK(!"TLS fake exchange started");
        return;
    }
    if (harness_init(&h, trust ? ca : NULL)) {
        snprintf(url, sizeof url, "wss://%s:%d/binance/stream?streams=nknusdt@bookTicker", host,
                 fx.port);
        open_url(&h, &r, url, NULL);
        want_n = 3;
        CHECK(run_until(&h, has_n, &r, 10000));
        if (strcmp(want, "open") == 0) {
            CHECK(r.opened);
            CHECK(r.n >= 3);
            CHECK(!r.closed);
            if (r.n >= 1) {
                CHECK(strncmp(r.msgs[0], "{\"stream\":\"nknusdt@bookTicker\"", 30) == 0);
            }
        } else {
            CHECK(!r.opened);
            CHECK(r.closed);
            CHECK_INT_EQ(r.code, 1006);
            CHECK(strncmp(r.reason, "tls: ", 5) == 0);
            CHECK(strstr(r.reason, want) != NULL);
            fprintf(stderr, "tls %s/%s/%s: %d %s\n", cert_name, host, trust ? "ca" : "no ca",
                    r.code, r.reason);
        }
        harness_free(&h);
    }
    rec_reset(&r);
    fakex_stop(&fx);
}

static void test_tls(void)
{
    char dir[] = "/tmp/rx-ws-tls.XXXXXX";
    char cmd[128];

    if (!mkdtemp(dir)) {
        CHECK(!"temp dir");
        return;
    }
    CHECK_INT_EQ(fakex_make_certs(dir, "good", "127.0.0.1 localhost"), 0);
    CHECK_INT_EQ(fakex_make_certs(dir, "wrong", "wrong.example"), 0);
    CHECK_INT_EQ(fakex_make_certs(dir, "named", "localhost"), 0);
    tls_case(dir, "good", "127.0.0.1", true, "open");
    tls_case(dir, "good", "127.0.0.1", false, "certificate");
    tls_case(dir, "wrong", "127.0.0.1", true, "mismatch");
    /* Resolved to 127.0.0.1, yet checked against the name "localhost". */
    tls_case(dir, "named", "localhost", true, "open");
    tls_case(dir, "named", "127.0.0.1", true, "mismatch");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT_EQ(system(cmd), 0);
}

static void test_client_errors(void)
{
    struct loop *loop = loop_new();
    char err[256] = "";
    struct ws_client_options bad_ca = {.ca_file = "/nonexistent/ca.pem"};
    struct ws_client_options bad_proxy = {.proxy = "socks5://127.0.0.1:1080"};

    CHECK(ws_client_new(loop, &bad_ca, err, sizeof err) == NULL);
    CHECK(strstr(err, "ca_file") != NULL);
    char junk[] = "/tmp/rx-ws-junk.XXXXXX";
    int fd = mkstemp(junk);
    CHECK(fd >= 0 && write(fd, "not a certificate\n", 18) == 18);
    close(fd);
    struct ws_client_options junk_ca = {.ca_file = junk};
    CHECK(ws_client_new(loop, &junk_ca, err, sizeof err) == NULL);
    CHECK(strstr(err, "no PEM certificate") != NULL);
    unlink(junk);
    CHECK(ws_client_new(loop, &bad_proxy, err, sizeof err) == NULL);
    CHECK(strstr(err, "proxy") != NULL);
    /* A client with nothing to do leaves nothing behind either. */
    struct ws_client *c = ws_client_new(loop, NULL, err, sizeof err);
    CHECK(c != NULL);
    ws_client_free(c);
    ws_client_free(NULL);
    CHECK_INT_EQ(loop_free(loop), 0);
}

int main(void)
{
    const char *f = getenv("TEST_TIME_FACTOR");
    struct fakex_proc fx;
    struct harness h;

    if (f && atof(f) > 0) {
        tf = atof(f);
    }
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
    /* libwebsockets sends every connection through $http_proxy when no proxy
     * is configured (it ignores $no_proxy); these tests talk to loopback. */
    unsetenv("http_proxy");
    test_url_parse();
    test_client_errors();

    const char *extra[] = {"--rate", "0", NULL};
    if (fakex_start(&fx, "http", extra) != 0) {
        CHECK(!"fake exchange started");
        return CHECK_DONE();
    }
    if (harness_init(&h, NULL)) {
        test_bad_options(&h);
        test_binance(&h, &fx);
        test_kraken(&h, &fx);
        test_faults(&h, &fx);
        test_unreachable(&h);
        test_headers(&h);
        harness_free(&h);
    }
    test_free_open(&fx);
    test_proxy(&fx);
    fakex_stop(&fx);
    test_tls();
    return CHECK_DONE();
}
