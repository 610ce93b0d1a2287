/*
 * http_client against a private fake exchange: recorded bodies, POST,
 * timeouts, the body cap, redirects (limit and host checks), refused URLs
 * and connections, and TLS with a throwaway CA (trusted, untrusted and
 * wrong host name).
 */
#include "check.h"
#include "fakex_proc.h"
#include "net/http_client.h"
#include "core/loop.h"

#include <stdbool.h>

struct result {
    bool done;
    int error;
    long status;
    char body[256];
    size_t body_len;
};

struct harness {
    struct loop *loop;
    struct http_client *client;
    struct loop_timer *guard;
    int pending;
};

struct slot {
    struct result r;
    struct harness *h;
};

static void on_done(const struct http_response *resp, void *data)
{
    struct slot *s = data;
    struct result *r = &s->r;
    struct harness *h = s->h;
    r->done = true;
    r->error = resp->error;
    r->status = resp->status;
    r->body_len = resp->body_len;
    snprintf(r->body, sizeof r->body, "%s", resp->body);
    if (--h->pending == 0) {
        loop_stop(h->loop);
    }
}

static void on_guard(struct loop_timer *t, void *data)
{
    struct harness *h = data;
    fprintf(stderr, "guard: requests still pending after the deadline\n");
    loop_stop(h->loop);
}

static struct result run(struct harness *h, const struct http_request *req)
{
    struct slot s = {.h = h};
    h->pending = 1;
    loop_timer_start(h->guard, 15000, 0);
    if (!http_client_start(h->client, req, on_done, &s)) {
        s.r.error = 999;
        return s.r;
    }
    loop_run(h->loop);
    loop_timer_stop(h->guard);
    return s.r;
}

static struct result get(struct harness *h, const char *base, const char *path)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    struct http_request req = {.url = url};
    return run(h, &req);
}

static void post(struct harness *h, const char *base, const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    struct http_request req = {.method = "POST", .url = url, .body = body,
                               .body_len = strlen(body)};
    struct result r = run(h, &req);
    CHECK_INT_EQ(r.status, 200);
}

static int deny_other_hosts(const char *url, void *ctx)
{
    return strncmp(url, (const char *)ctx, strlen(ctx)) == 0;
}

static void harness_init(struct harness *h, const char *ca_file)
{
    h->loop = loop_new();
    struct http_client_options opts = {.ca_file = ca_file};
    h->client = http_client_new(h->loop, &opts);
    h->guard = loop_timer_new(h->loop, on_guard, h);
}

static void harness_free(struct harness *h)
{
    http_client_free(h->client);
    loop_timer_free(h->guard);
    CHECK_INT_EQ(loop_free(h->loop), 0);
}

static void test_plain(void)
{
    struct fakex_proc fx;
    struct harness h;
    char url[512];

    if (fakex_start(&fx, "http", NULL) != 0) {
        CHECK(!"fake exchange started");
        return;
    }
    harness_init(&h, NULL);

    struct result r = get(&h, fx.url, "/binance/api/v3/ticker/bookTicker?symbol=BTCUSDT");
    CHECK_INT_EQ(r.error, HTTP_OK);
    CHECK_INT_EQ(r.status, 200);
    CHECK(strstr(r.body, "\"symbol\":\"BTCUSDT\"") != NULL);

    r = get(&h, fx.url, "/binance/no/such/path");
    CHECK_INT_EQ(r.error, HTTP_OK);
    CHECK_INT_EQ(r.status, 404);

    /* The body cap turns a large answer into an error, not a huge buffer. */
    snprintf(url, sizeof url, "%s/binance/api/v3/exchangeInfo", fx.url);
    struct http_request capped = {.url = url, .max_body_bytes = 1000};
    r = run(&h, &capped);
    CHECK_INT_EQ(r.error, HTTP_ERR_TOO_LARGE);

    /* Timeout: the fake exchange answers after 3 s, we give up at 300 ms. */
    post(&h, fx.url, "/_fakex/binance/fault", "{\"delay_ms\":3000}");
    struct http_request slow = {.url = url, .timeout_ms = 300};
    r = run(&h, &slow);
    CHECK_INT_EQ(r.error, HTTP_ERR_TIMEOUT);
    post(&h, fx.url, "/_fakex/binance/reset", "{}");

    /* Redirects: one hop is followed, a loop hits the limit, and a hop to a
     * host the caller does not allow is refused. */
    char body[512];
    snprintf(body, sizeof body,
             "{\"rest\":{\"path\":\"/hop\",\"status\":302,\"body\":\"\","
             "\"location\":\"%s/binance/api/v3/ticker/price?symbol=BTCUSDT\"}}",
             fx.url);
    post(&h, fx.url, "/_fakex/binance/push", body);
    r = get(&h, fx.url, "/binance/hop");
    CHECK_INT_EQ(r.error, HTTP_OK);
    CHECK_INT_EQ(r.status, 200);
    CHECK(strstr(r.body, "\"price\"") != NULL);

    snprintf(body, sizeof body,
             "{\"rest\":{\"path\":\"/loop\",\"status\":302,\"body\":\"\","
             "\"location\":\"%s/binance/loop\"}}",
             fx.url);
    post(&h, fx.url, "/_fakex/binance/push", body);
    snprintf(url, sizeof url, "%s/binance/loop", fx.url);
    struct http_request looping = {.url = url, .max_redirects = 3};
    r = run(&h, &looping);
    CHECK_INT_EQ(r.error, HTTP_ERR_REDIRECTS);

    post(&h, fx.url, "/_fakex/binance/push",
         "{\"rest\":{\"path\":\"/away\",\"status\":302,\"body\":\"\","
         "\"location\":\"http://127.0.0.2:9/elsewhere\"}}");
    snprintf(url, sizeof url, "%s/binance/away", fx.url);
    struct http_request away = {.url = url, .url_allowed = deny_other_hosts,
                                .url_allowed_ctx = fx.url};
    r = run(&h, &away);
    CHECK_INT_EQ(r.error, HTTP_ERR_REFUSED);

    /* A URL the caller refuses never leaves the process. */
    struct http_request refused = {.url = "http://169.254.169.254/latest",
                                   .url_allowed = deny_other_hosts, .url_allowed_ctx = fx.url};
    r = run(&h, &refused);
    CHECK_INT_EQ(r.error, HTTP_ERR_REFUSED);
    struct http_request scheme = {.url = "file:///etc/passwd"};
    r = run(&h, &scheme);
    CHECK_INT_EQ(r.error, HTTP_ERR_REFUSED);

    harness_free(&h);
    fakex_stop(&fx);

    /* Nothing listens any more: a network error, promptly. */
    harness_init(&h, NULL);
    r = get(&h, fx.url, "/binance/api/v3/exchangeInfo");
    CHECK_INT_EQ(r.error, HTTP_ERR_NETWORK);
    harness_free(&h);
}

static void test_tls_case(const char *dir, const char *certs, bool trust, int want_error)
{
    char cert[256], key[256], ca[256];
    struct fakex_proc fx;
    struct harness h;

    snprintf(cert, sizeof cert, "%s/%s.pem", dir, certs);
    snprintf(key, sizeof key, "%s/%s.key", dir, certs);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    if (fakex_start(&fx, "https", extra) != 0) {
        CHECK(!"TLS fake exchange started");
        return;
    }
    harness_init(&h, trust ? ca : NULL);
    struct result r = get(&h, fx.url, "/binance/api/v3/ticker/bookTicker?symbol=BTCUSDT");
    CHECK_INT_EQ(r.error, want_error);
    if (want_error == HTTP_OK) {
        CHECK_INT_EQ(r.status, 200);
    }
    harness_free(&h);
    fakex_stop(&fx);
}

static void test_tls(void)
{
    char dir[] = "/tmp/rx-tls.XXXXXX";
    char cmd[128];

    if (!mkdtemp(dir)) {
        CHECK(!"temp dir");
        return;
    }
    CHECK_INT_EQ(fakex_make_certs(dir, "good", "127.0.0.1 localhost"), 0);
    CHECK_INT_EQ(fakex_make_certs(dir, "wrong", "wrong.example"), 0);
    test_tls_case(dir, "good", true, HTTP_OK);
    test_tls_case(dir, "good", false, HTTP_ERR_TLS);
    test_tls_case(dir, "wrong", true, HTTP_ERR_TLS);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT_EQ(system(cmd), 0);
}

int main(void)
{
    test_plain();
    test_tls();
    return CHECK_DONE();
}
