/*
 * http: REST serving and the transaction state machine.
 *
 * Order of decisions for /<exchange>/<path>: unknown exchange -> 404; the
 * request is counted in the exchange's stats; a refuse fault hangs up; an
 * override or recorded body is chosen (the one with more recorded
 * parameters; an override wins a tie); then faults reshape it (status,
 * garbage, truncate) and delay it. Exactly one log line per request says
 * what was asked and what was answered, which is how a failing test finds
 * out that its operator asked for a path nobody recorded.
 */
#include "http.h"

#include "control.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GARBAGE_PAGE                                                                               \
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "                  \
    "Gateway</h1></center><hr><center>cloudflare</center></body></html>\n"

/* Longest URL argument kept; lws limits headers to less anyway. */
#define HTTP_MAX_ARG 8192
#define HTTP_MAX_ARGS 64
/* Bytes written per HTTP_WRITEABLE callback. */
#define HTTP_CHUNK 32768

void http_txn_free(struct http_txn *t)
{
    free(t->uri);
    free(t->body);
    free(t->owned);
    free(t->location);
    query_free(&t->query);
    memset(t, 0, sizeof(*t));
}

void http_copy_args(struct lws *wsi, struct query_params *q)
{
    char *buf = xmalloc(HTTP_MAX_ARG);

    for (int i = 0; i < HTTP_MAX_ARGS; i++) {
        if (lws_hdr_copy_fragment(wsi, buf, HTTP_MAX_ARG, WSI_TOKEN_HTTP_URI_ARGS, i) < 0) {
            break;
        }
        query_add_fragment(q, buf);
    }
    free(buf);
}

static void set_owned(struct http_txn *t, int status, const char *ctype, char *body, size_t len)
{
    free(t->owned);
    t->owned = body;
    t->out = body;
    t->out_len = len;
    t->status = status;
    t->ctype = ctype;
}

void http_respond_json(struct http_txn *t, int status, cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);

    cJSON_Delete(doc);
    set_owned(t, status, "application/json", text, strlen(text));
}

void http_respond_error(struct http_txn *t, int status, const char *msg)
{
    cJSON *doc = cJSON_CreateObject();

    cJSON_AddStringToObject(doc, "error", msg);
    http_respond_json(t, status, doc);
    snprintf(t->note, sizeof(t->note), "%s", msg);
}

static const char *method_name(int m)
{
    static const char *const names[] = {"GET",    "POST",    "OPTIONS", "PUT", "PATCH",
                                        "DELETE", "CONNECT", "HEAD",    "GET"};

    return m >= 0 && m < (int)(sizeof(names) / sizeof(names[0])) ? names[m] : "?";
}

static int is_loopback(const char *peer)
{
    return strncmp(peer, "127.", 4) == 0 || strcmp(peer, "::1") == 0 ||
           strncmp(peer, "::ffff:127.", 11) == 0;
}

static void not_found_exchange(struct fakex *ctx, struct http_txn *t, const char *name, size_t n)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(doc, "exchanges");
    char *quoted = xstrndup(name, n);

    cJSON_AddStringToObject(doc, "error", "unknown exchange");
    cJSON_AddStringToObject(doc, "exchange", quoted);
    for (size_t i = 0; i < ctx->n_fixtures; i++) {
        cJSON_AddItemToArray(list, cJSON_CreateString(ctx->fixtures[i].name));
    }
    http_respond_json(t, 404, doc);
    snprintf(t->note, sizeof(t->note), "unknown exchange \"%s\"", quoted);
    free(quoted);
}

static void no_fixture(struct exchange *ex, struct http_txn *t, const char *path)
{
    cJSON *doc = cJSON_CreateObject();
    char *q = query_to_text(&t->query);

    cJSON_AddStringToObject(doc, "error", "no recorded response matches this request");
    cJSON_AddStringToObject(doc, "exchange", ex->fx->name);
    cJSON_AddStringToObject(doc, "method", t->method);
    cJSON_AddStringToObject(doc, "path", path);
    cJSON_AddStringToObject(doc, "query", q);
    free(q);
    http_respond_json(t, 404, doc);
    snprintf(t->note, sizeof(t->note), "NO FIXTURE MATCHES");
}

/* Reshape the chosen response by the exchange's REST faults. */
static void apply_faults(const struct faults *f, struct http_txn *t)
{
    size_t used = strlen(t->note);

    if (f->status) {
        char body[96];
        int n = snprintf(body, sizeof(body), "{\"error\":\"fakex injected fault\",\"status\":%d}",
                         f->status);

        set_owned(t, f->status, "application/json", xstrndup(body, (size_t)n), (size_t)n);
        used += (size_t)snprintf(t->note + used, sizeof(t->note) - used, " [fault status %d]",
                                 f->status);
    }
    if (f->garbage) {
        set_owned(t, t->status, "text/html", xstrdup(GARBAGE_PAGE), strlen(GARBAGE_PAGE));
        used += (size_t)snprintf(t->note + used, sizeof(t->note) - used, " [fault garbage]");
    }
    if (f->truncate >= 0 && (size_t)f->truncate < t->out_len) {
        t->out_len = (size_t)f->truncate;
        used += (size_t)snprintf(t->note + used, sizeof(t->note) - used, " [fault truncate %ld]",
                                 f->truncate);
    }
    if (f->delay_ms > 0 && used < sizeof(t->note)) {
        t->delay_ms = f->delay_ms;
        snprintf(t->note + used, sizeof(t->note) - used, " [fault delay %ldms]", f->delay_ms);
    }
}

static void route_rest(struct fakex *ctx, struct http_txn *t)
{
    const char *name = t->uri + 1;
    size_t n = strcspn(name, "/");
    struct exchange *ex = exchange_find(ctx, name, n);
    const char *path = name[n] ? name + n : "/";
    const struct override *o;
    const struct fixtures_rest *r;
    int os, rs;

    if (!ex) {
        not_found_exchange(ctx, t, name, n);
        return;
    }
    exchange_count_request(ex, path);
    if (ex->faults.refuse) {
        t->hangup = 1;
        snprintf(t->note, sizeof(t->note), "connection closed [fault refuse]");
        return;
    }
    o = exchange_override_find(ex, t->method, path, &t->query, &os);
    r = fixtures_rest_find(ex->fx, t->method, path, &t->query, &rs);
    if (o && os >= rs) {
        set_owned(t, o->status, "application/json", xstrndup(o->body, o->len), o->len);
        t->location = o->location ? xstrdup(o->location) : NULL;
        snprintf(t->note, sizeof(t->note), "override");
    } else if (r) {
        t->status = 200;
        t->ctype = "application/json";
        t->out = r->served;
        t->out_len = r->served_len;
        snprintf(t->note, sizeof(t->note), "%s", r->file);
    } else {
        no_fixture(ex, t, path);
    }
    apply_faults(&ex->faults, t);
}

static void log_request(const struct http_txn *t)
{
    char *q = query_to_text(&t->query);

    if (t->hangup) {
        fakex_log("%s %s%s%s -> %s", t->method, t->uri, *q ? "?" : "", q, t->note);
    } else {
        fakex_log("%s %s%s%s -> %d, %zu bytes, %s", t->method, t->uri, *q ? "?" : "", q, t->status,
                  t->out_len, t->note);
    }
    free(q);
}

/* The request is complete: decide the response and start sending it. */
static int dispatch(struct fakex *ctx, struct http_txn *t, struct lws *wsi)
{
    if (t->body_too_large) {
        http_respond_error(t, 413, "request body too large");
    } else if (strcmp(t->uri, "/_fakex") == 0 || strncmp(t->uri, "/_fakex/", 8) == 0) {
        control_handle(ctx, t);
    } else {
        route_rest(ctx, t);
    }
    log_request(t);
    if (t->hangup) {
        return -1;
    }
    t->responding = 1;
    if (t->delay_ms > 0) {
        lws_set_timer_usecs(wsi, (lws_usec_t)t->delay_ms * 1000);
    } else {
        lws_callback_on_writable(wsi);
    }
    return 0;
}

int http_begin(struct fakex *ctx, struct http_txn *t, struct lws *wsi, const char *uri, size_t len)
{
    char *ignored, peer[64] = "", cl[32];
    int m = lws_http_get_uri_and_method(wsi, &ignored, &(int){0});

    http_txn_free(t);
    snprintf(t->method, sizeof(t->method), "%s", method_name(m));
    t->uri = len ? xstrndup(uri, len) : xstrdup("/");
    http_copy_args(wsi, &t->query);
    lws_get_peer_simple(wsi, peer, sizeof(peer));
    t->loopback = is_loopback(peer);
    if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 && atol(cl) > 0) {
        t->want_body = 1;
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        t->want_body = 1;
    }
    if (t->want_body) {
        return 0;
    }
    return dispatch(ctx, t, wsi);
}

int http_body(struct http_txn *t, const void *in, size_t len)
{
    if (len == 0) {
        return 0;
    }
    t->body_seen += len;
    if (t->body_seen > HTTP_MAX_DISCARD) {
        return -1;
    }
    if (t->body_too_large || t->body_len + len > HTTP_MAX_BODY) {
        t->body_too_large = 1;
        free(t->body);
        t->body = NULL;
        t->body_len = 0;
        return 0;
    }
    t->body = xrealloc(t->body, t->body_len + len + 1);
    memcpy(t->body + t->body_len, in, len);
    t->body_len += len;
    t->body[t->body_len] = '\0';
    return 0;
}

int http_body_done(struct fakex *ctx, struct http_txn *t, struct lws *wsi)
{
    if (!t->uri || t->responding) {
        return 0;
    }
    return dispatch(ctx, t, wsi);
}

void http_timer(struct http_txn *t, struct lws *wsi)
{
    if (t->responding) {
        lws_callback_on_writable(wsi);
    }
}

/* The response is out: reset for the next request on this connection. */
static int finish(struct http_txn *t, struct lws *wsi)
{
    http_txn_free(t);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int write_headers(struct fakex *ctx, struct http_txn *t, struct lws *wsi)
{
    unsigned char *buf = fakex_wbuf(ctx, 1024);
    unsigned char *start = buf + LWS_PRE, *p = start, *end = start + 1023;

    if (lws_add_http_common_headers(wsi, (unsigned int)t->status, t->ctype, t->out_len, &p, end) ||
        (t->location &&
         lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_LOCATION,
                                      (const unsigned char *)t->location,
                                      (int)strlen(t->location), &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        return -1;
    }
    t->headers_sent = 1;
    return 0;
}

int http_writeable(struct fakex *ctx, struct http_txn *t, struct lws *wsi)
{
    unsigned char *buf;
    size_t n;
    int last;

    if (!t->responding) {
        return 0;
    }
    if (!t->headers_sent) {
        if (write_headers(ctx, t, wsi) != 0) {
            return -1;
        }
        if (t->out_len == 0) {
            return finish(t, wsi);
        }
        lws_callback_on_writable(wsi);
        return 0;
    }
    n = t->out_len - t->sent;
    n = n > HTTP_CHUNK ? HTTP_CHUNK : n;
    last = t->sent + n == t->out_len;
    buf = fakex_wbuf(ctx, n);
    memcpy(buf + LWS_PRE, t->out + t->sent, n);
    if (lws_write(wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n) {
        return -1;
    }
    t->sent += n;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    return finish(t, wsi);
}
