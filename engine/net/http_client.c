/*
 * http_client: libcurl multi on the engine loop.
 *
 * curl tells us which sockets to watch (socket callback) and when to wake
 * it (timer callback); we translate both into loop_io and loop_timer
 * handles and call curl_multi_socket_action when they fire. Completed
 * transfers are collected with curl_multi_info_read.
 *
 * libcurl 7.88 has no curl_multi_get_handles, so the client keeps its own
 * list of calls; it is also what lets http_client_free report cancellation
 * to every caller. Completions that must not run inside http_client_start
 * (a refused URL) are queued and delivered from a zero-delay timer.
 */
#include "http_client.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/loop.h"
#include "core/xalloc.h"

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_MAX_BODY (16u << 20)
#define DEFAULT_MAX_REDIRECTS 5
#define MAX_HEADER_BYTES (64u << 10)
#define SYSTEM_CA_PATH "/etc/ssl/certs"

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

struct http_call {
    struct http_client *client;
    struct http_call *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    char *method;
    char *url;
    char *body;
    size_t body_len;
    size_t max_body;
    int max_redirects;
    int redirects;
    int (*url_allowed)(const char *url, void *ctx);
    void *url_allowed_ctx;
    struct buf resp_body;
    struct buf resp_headers;
    bool too_large;
    int early_error; /* set when the call fails before curl runs it */
    http_done_fn done;
    void *data;
    uint64_t started_ms;
};

struct http_client {
    struct loop *loop;
    CURLM *multi;
    struct loop_timer *timer;
    struct loop_timer *deferred_timer;
    struct http_call *calls;    /* running in curl */
    struct http_call *deferred; /* failed early, waiting for delivery */
    char *ca_file;
    char *proxy;
    char *user_agent;
};

struct sock_watch {
    struct http_client *client;
    struct loop_io *io;
    curl_socket_t fd;
};

static bool curl_ready;

static void list_add(struct http_call **head, struct http_call *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head) {
        (*head)->prev = c;
    }
    *head = c;
}

static void list_del(struct http_call **head, struct http_call *c)
{
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        *head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
}

/* Appends n bytes unless the result would exceed limit; keeps a NUL after
 * the data so callers may treat bodies as strings. */
static int buf_append(struct buf *b, const char *p, size_t n, size_t limit)
{
    if (b->len + n > limit) {
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

static size_t on_body(char *p, size_t size, size_t n, void *userdata)
{
    struct http_call *call = userdata;
    if (buf_append(&call->resp_body, p, size * n, call->max_body) != 0) {
        call->too_large = true;
        return 0;
    }
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *userdata)
{
    struct http_call *call = userdata;
    /* A new status line starts the headers of the next response (after a
     * 100 Continue); keep only the last block. */
    if (size * n > 5 && strncmp(p, "HTTP/", 5) == 0) {
        buf_reset(&call->resp_headers);
    }
    if (buf_append(&call->resp_headers, p, size * n, MAX_HEADER_BYTES) != 0) {
        return 0;
    }
    return size * n;
}

static void call_free(struct http_call *call)
{
    if (call->easy) {
        curl_easy_cleanup(call->easy);
    }
    curl_slist_free_all(call->headers);
    free(call->method);
    free(call->url);
    free(call->body);
    free(call->resp_body.data);
    free(call->resp_headers.data);
    free(call);
}

static void deliver(struct http_call *call, int error, const char *error_text)
{
    struct http_response resp = {0};
    char *final_url = NULL;
    long status = 0;

    if (call->easy && error != HTTP_ERR_CANCELLED) {
        curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(call->easy, CURLINFO_EFFECTIVE_URL, &final_url);
    }
    resp.error = error;
    resp.error_text = error ? error_text : NULL;
    resp.status = status;
    resp.body = call->resp_body.data ? call->resp_body.data : "";
    resp.body_len = call->resp_body.len;
    resp.headers = call->resp_headers.data ? call->resp_headers.data : "";
    resp.headers_len = call->resp_headers.len;
    resp.final_url = final_url ? final_url : call->url;
    resp.total_ms = (double)(loop_now_ms(call->client->loop) - call->started_ms);
    call->done(&resp, call->data);
}

static int map_curl_error(struct http_call *call, CURLcode rc)
{
    if (call->too_large) {
        return HTTP_ERR_TOO_LARGE;
    }
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return HTTP_ERR_TIMEOUT;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return HTTP_ERR_TLS;
    case CURLE_UNSUPPORTED_PROTOCOL:
        return HTTP_ERR_REFUSED;
    default:
        return HTTP_ERR_NETWORK;
    }
}

static bool url_is_http(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

static bool url_permitted(const struct http_call *call, const char *url)
{
    if (!url_is_http(url)) {
        return false;
    }
    return !call->url_allowed || call->url_allowed(url, call->url_allowed_ctx);
}

/* Follows a 3xx by hand so the new URL is checked. Returns 1 if the call
 * was restarted, 0 if the response stands, or a negative enum http_error. */
static int follow_redirect(struct http_call *call)
{
    long status = 0;
    char *location = NULL;

    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(call->easy, CURLINFO_REDIRECT_URL, &location);
    if (status < 300 || status > 399 || !location || call->max_redirects < 0) {
        return 0;
    }
    if (++call->redirects > call->max_redirects) {
        return HTTP_ERR_REDIRECTS;
    }
    if (!url_permitted(call, location)) {
        return HTTP_ERR_REFUSED;
    }
    char *next = xstrdup(location);
    free(call->url);
    call->url = next;
    curl_multi_remove_handle(call->client->multi, call->easy);
    curl_easy_setopt(call->easy, CURLOPT_URL, call->url);
    /* 303 always, and 301/302 in practice, turn a POST into a GET. */
    if (status == 301 || status == 302 || status == 303) {
        curl_easy_setopt(call->easy, CURLOPT_HTTPGET, 1L);
    }
    buf_reset(&call->resp_body);
    buf_reset(&call->resp_headers);
    curl_multi_add_handle(call->client->multi, call->easy);
    return 1;
}

static void collect_done(struct http_client *client)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(client->multi, &left))) {
        struct http_call *call = NULL;
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        CURLcode rc = msg->data.result;
        int error = HTTP_OK;
        const char *text = NULL;
        if (rc != CURLE_OK) {
            error = map_curl_error(call, rc);
            text = call->too_large ? "response body too large" : curl_easy_strerror(rc);
        } else {
            int r = follow_redirect(call);
            if (r == 1) {
                continue;
            }
            if (r < 0) {
                error = r;
                text = r == HTTP_ERR_REDIRECTS ? "too many redirects"
                                               : "redirect to a URL that is not allowed";
            }
        }
        curl_multi_remove_handle(client->multi, call->easy);
        list_del(&client->calls, call);
        deliver(call, error, text);
        call_free(call);
    }
}

static void on_socket_event(struct loop_io *io, int events, void *data)
{
    struct sock_watch *w = data;
    struct http_client *client = w->client;
    int flags = 0;
    int running;

    if (events & LOOP_READ) {
        flags |= CURL_CSELECT_IN;
    }
    if (events & LOOP_WRITE) {
        flags |= CURL_CSELECT_OUT;
    }
    if (events & LOOP_ERROR) {
        flags |= CURL_CSELECT_ERR;
    }
    curl_multi_socket_action(client->multi, w->fd, flags, &running);
    collect_done(client);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_client *client = userp;
    struct sock_watch *w = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (w) {
            loop_io_free(w->io);
            free(w);
            curl_multi_assign(client->multi, fd, NULL);
        }
        return 0;
    }
    if (!w) {
        w = xcalloc(1, sizeof *w);
        w->client = client;
        w->fd = fd;
        w->io = loop_io_new(client->loop, fd, on_socket_event, w);
        if (!w->io) {
            free(w);
            return -1;
        }
        curl_multi_assign(client->multi, fd, w);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) {
        events |= LOOP_READ;
    }
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) {
        events |= LOOP_WRITE;
    }
    return loop_io_set(w->io, events) == 0 ? 0 : -1;
}

static void on_timer(struct loop_timer *timer, void *data)
{
    struct http_client *client = data;
    int running;
    curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_done(client);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *client = userp;
    if (timeout_ms < 0) {
        loop_timer_stop(client->timer);
    } else {
        /* 0 means "as soon as possible"; it must not run inside this
         * callback, so the loop's next iteration does it. */
        loop_timer_start(client->timer, timeout_ms > 0 ? (uint64_t)timeout_ms : 1, 0);
    }
    return 0;
}

static void on_deferred(struct loop_timer *timer, void *data)
{
    struct http_client *client = data;
    while (client->deferred) {
        struct http_call *call = client->deferred;
        list_del(&client->deferred, call);
        deliver(call, call->early_error, "URL not allowed");
        call_free(call);
    }
}

struct http_client *http_client_new(struct loop *loop, const struct http_client_options *opts)
{
    struct http_client *client;

    if (!curl_ready) {
        /* Called on the loop thread before any other thread uses curl. */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return NULL;
        }
        curl_ready = true;
    }
    client = xcalloc(1, sizeof *client);
    client->loop = loop;
    client->multi = curl_multi_init();
    client->timer = loop_timer_new(loop, on_timer, client);
    client->deferred_timer = loop_timer_new(loop, on_deferred, client);
    if (opts) {
        client->ca_file = opts->ca_file ? xstrdup(opts->ca_file) : NULL;
        client->proxy = opts->proxy ? xstrdup(opts->proxy) : NULL;
        client->user_agent = opts->user_agent ? xstrdup(opts->user_agent) : NULL;
    }
    curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client);
    curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client);
    return client;
}

static void cancel_list(struct http_client *client, struct http_call **head)
{
    while (*head) {
        struct http_call *call = *head;
        list_del(head, call);
        if (call->easy && head == &client->calls) {
            curl_multi_remove_handle(client->multi, call->easy);
        }
        deliver(call, HTTP_ERR_CANCELLED, "cancelled");
        call_free(call);
    }
}

void http_client_free(struct http_client *client)
{
    if (!client) {
        return;
    }
    cancel_list(client, &client->calls);
    cancel_list(client, &client->deferred);
    curl_multi_cleanup(client->multi);
    loop_timer_free(client->timer);
    loop_timer_free(client->deferred_timer);
    free(client->ca_file);
    free(client->proxy);
    free(client->user_agent);
    free(client);
}

static void setup_easy(struct http_client *client, struct http_call *call, long timeout_ms)
{
    CURL *e = call->easy;

    curl_easy_setopt(e, CURLOPT_URL, call->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_USERAGENT,
                     client->user_agent ? client->user_agent : "rate-explorer/" EXPLORER_VERSION);
    if (client->ca_file) {
        /* CAINFO replaces the default bundle; CAPATH keeps the system
         * store, so both are trusted. */
        curl_easy_setopt(e, CURLOPT_CAINFO, client->ca_file);
        curl_easy_setopt(e, CURLOPT_CAPATH, SYSTEM_CA_PATH);
    }
    if (client->proxy) {
        curl_easy_setopt(e, CURLOPT_PROXY, client->proxy);
    }
    if (call->headers) {
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);
    }
    if (strcasecmp(call->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body ? call->body : "");
    }
}

struct http_call *http_client_start(struct http_client *client, const struct http_request *req,
                                    http_done_fn done, void *data)
{
    struct http_call *call;
    const char *method = req->method ? req->method : "GET";

    if (!req->url || (strcasecmp(method, "GET") != 0 && strcasecmp(method, "POST") != 0)) {
        return NULL;
    }
    call = xcalloc(1, sizeof *call);
    call->client = client;
    call->method = xstrdup(method);
    call->url = xstrdup(req->url);
    call->done = done;
    call->data = data;
    call->max_body = req->max_body_bytes ? req->max_body_bytes : DEFAULT_MAX_BODY;
    call->max_redirects = req->max_redirects ? req->max_redirects : DEFAULT_MAX_REDIRECTS;
    call->url_allowed = req->url_allowed;
    call->url_allowed_ctx = req->url_allowed_ctx;
    call->started_ms = loop_now_ms(client->loop);
    if (req->body && req->body_len) {
        call->body = xmalloc(req->body_len);
        memcpy(call->body, req->body, req->body_len);
        call->body_len = req->body_len;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        call->headers = curl_slist_append(call->headers, req->headers[i]);
    }
    if (!url_permitted(call, call->url)) {
        call->early_error = HTTP_ERR_REFUSED;
        list_add(&client->deferred, call);
        loop_timer_start(client->deferred_timer, 0, 0);
        return call;
    }
    call->easy = curl_easy_init();
    setup_easy(client, call, req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS);
    list_add(&client->calls, call);
    curl_multi_add_handle(client->multi, call->easy);
    return call;
}

void http_call_cancel(struct http_call *call)
{
    struct http_client *client;

    if (!call) {
        return;
    }
    client = call->client;
    if (call->easy) {
        curl_multi_remove_handle(client->multi, call->easy);
        list_del(&client->calls, call);
    } else {
        list_del(&client->deferred, call);
    }
    call_free(call);
}

size_t http_client_active(const struct http_client *client)
{
    size_t n = 0;
    for (const struct http_call *c = client->calls; c; c = c->next) {
        n++;
    }
    for (const struct http_call *c = client->deferred; c; c = c->next) {
        n++;
    }
    return n;
}

const char *http_error_name(int error)
{
    switch (error) {
    case HTTP_OK:
        return "ok";
    case HTTP_ERR_NETWORK:
        return "network";
    case HTTP_ERR_TIMEOUT:
        return "timeout";
    case HTTP_ERR_TLS:
        return "tls";
    case HTTP_ERR_TOO_LARGE:
        return "too_large";
    case HTTP_ERR_REDIRECTS:
        return "too_many_redirects";
    case HTTP_ERR_REFUSED:
        return "refused";
    case HTTP_ERR_CANCELLED:
        return "cancelled";
    default:
        return "unknown";
    }
}
