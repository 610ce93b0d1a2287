/*
 * rest: libmicrohttpd's side of the REST API — the daemon, the life of one
 * request, the checks every route shares, and turning an api_resp into a
 * response.
 *
 * The life of a request. libmicrohttpd calls, in order:
 *   1. on_uri, once the request line is parsed, with the raw target (before
 *      percent-decoding and before the query is split off): a struct
 *      rest_call is made there and becomes the request's *con_cls, and is
 *      recorded on its connection (rest_conn.h). The raw target is the only
 *      place a %00 can be seen (libmicrohttpd's decoded strings end at it)
 *      and where the URL length and the number of query parameters are
 *      checked;
 *   2. on_request, first with no data (the head is complete): requests the
 *      REST core refuses outright are answered here — 429 over the
 *      per-address limit, 400 for a head whose framing is ambiguous — and
 *      the connection closes after the answer. Anything else gets MHD_YES
 *      only: queueing on this first call makes libmicrohttpd 0.9.75 close
 *      the connection afterwards (no keep-alive), notes/one-port.md;
 *   3. on_request with any upload data, which is counted and dropped (no
 *      route reads a body);
 *   4. on_request with no more data: route, check, call the handler and
 *      queue its answer — or, if the handler posted work to the loop
 *      (ingest_bridge_post), return with the connection suspended; once resumed
 *      libmicrohttpd calls on_request again and the stored answer is queued;
 *   5. on_completed: metrics, access log, and the rest_call is freed. When
 *      libmicrohttpd gives up on a request without this call, its
 *      connection frees the rest_call when it closes or when the next
 *      request replaces it.
 *
 * The query trap. libmicrohttpd 0.9.75 splits the query into one pool record
 * per parameter right after on_uri returns, and when its per-connection pool
 * runs out there it queues a 431 but then overwrites the connection's state,
 * so nothing is sent until the timeout and the request's completion is never
 * reported (a 4 KB /healthz?a0=1&...&a599=1 hung for 30 s and leaked). No
 * pool size avoids it for every URL it can read, so on_uri cuts the query off
 * (a NUL right after the '?', in libmicrohttpd's own buffer, which it parses
 * next) when the target is over max_url_bytes or holds more than
 * REST_MAX_QUERY_PARAMS parameters, keeps its own copy, and dispatch answers
 * 414 or 400 before any route could miss the parameters.
 *
 * Framing (RFC 9112 6.1, 6.3, 3.2). A head that two HTTP parsers could frame
 * differently is how requests are smuggled past a proxy: Transfer-Encoding
 * together with Content-Length, more than one Transfer-Encoding or
 * Content-Length, a coding other than chunked, Transfer-Encoding in
 * HTTP/1.0, whitespace between a field name and its colon (libmicrohttpd
 * keeps it in the name, so a proxy and libmicrohttpd would disagree on what
 * the field is), an HTTP/1.1 request without exactly one Host. Each is a 400
 * and the connection closes. The front door refuses NULs, bare CRs and
 * control characters in a connection's first head; libmicrohttpd reads the
 * later heads itself and cuts a value at a NUL, which no API shows.
 *
 * Order of the shared checks: CORS headers (on every answer, errors too),
 * URL too long (414), route lookup, too many query parameters (400), %00
 * (400, even on unknown paths), unknown path (404), OPTIONS (preflight: 204,
 * or 403 for an unlisted origin), wrong method (405 with Allow), auth (401
 * with WWW-Authenticate: Bearer, or 403 on admin routes), then the handler.
 * Errors on the old service's routes use its {"detail": "..."} shape.
 */
#include "rest.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ingest_bridge.h"
#include "rest_conn.h"
#include "rest_metrics.h"
#include "auth.h"
#include "config/config.h"
#include "core/log.h"
#include "rest_int.h"
#include "core/xalloc.h"

#define REST_POOL_THREADS 2
#define REST_TIMEOUT_S 30 /* at least; see rest_new */
/* A body no route reads; beyond this the connection is dropped. */
#define REST_MAX_UPLOAD ((size_t)1 << 20)
#define REST_CORS_MAX_AGE_S 600
#define REST_METHOD_MAX 16
#define REST_ALLOW_MAX 64
/* No route takes more than a handful; 64 records fit any pool we make. */
#define REST_MAX_QUERY_PARAMS 64

struct rest {
    struct api_ctx *ctx;
    struct MHD_Daemon *daemon;
    struct auth *own_auth;
    struct rest_metrics *own_metrics;
    struct rest_conns *conns;
};

/* One request (not one connection: keep-alive makes a new one each time). */
struct rest_call {
    struct rest *rest;
    struct MHD_Connection *conn;
    struct rest_conn *rc;    /* its connection's state (NULL if never announced) */
    char *raw;               /* the raw request target; NULL when over max_url_bytes */
    bool has_nul;            /* %00 in the raw target */
    bool too_many_params;    /* more than REST_MAX_QUERY_PARAMS: the query was cut off */
    bool close;              /* answer with Connection: close */
    bool started;            /* the first on_request call happened */
    bool posted;             /* suspended on the loop bridge */
    size_t uploaded;         /* body bytes dropped */
    uint64_t t0_us;          /* monotonic, at the request line */
    size_t route;            /* index in the route table; rest_route_count() = none */
    unsigned flags;          /* the route's REST_ROUTE_* */
    const char *cors_origin; /* an allowed_origins entry to echo, or NULL */
    bool vary_origin;
    int status;   /* as queued; 0 = nothing queued */
    size_t bytes; /* body bytes queued */
    char method[REST_METHOD_MAX];
    char client[INET6_ADDRSTRLEN]; /* from a trusted proxy's X-Forwarded-For, or "" */
    struct api_resp resp;
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void resp_init(struct api_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->status = 200;
    resp->content_type = "application/json";
    jbuf_init(&resp->body);
}

static void call_free(void *p)
{
    struct rest_call *call = p;

    if (call->resp.shared && call->resp.shared_release) {
        call->resp.shared_release(call->resp.shared_ctx);
    }
    jbuf_free(&call->resp.body);
    free(call->raw);
    free(call);
}

/* ---- libmicrohttpd callbacks around the handler ------------------------ */

/* How many parameters libmicrohttpd makes of a query: one per '&' piece. */
static size_t query_params(const char *query)
{
    size_t n = *query ? 1 : 0;
    for (; *query; query++) {
        n += *query == '&';
    }
    return n;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct rest *rest = cls;
    struct rest_call *call = xcalloc(1, sizeof *call);
    size_t len = strlen(uri);
    /* uri points into libmicrohttpd's read buffer (the query trap, above). */
    char *query = strchr(uri, '?');

    call->rest = rest;
    call->conn = conn;
    call->rc = rest_conn_of(conn);
    call->t0_us = mono_us();
    call->route = rest_route_count();
    if ((int64_t)len <= rest->ctx->cfg->limits.max_url_bytes) {
        call->raw = xstrndup(uri, len);
    }
    call->has_nul = strstr(uri, "%00") != NULL;
    call->too_many_params = query && query_params(query + 1) > REST_MAX_QUERY_PARAMS;
    if (query && (!call->raw || call->too_many_params)) {
        query[1] = '\0';
    }
    if (call->rc) {
        void *abandoned = rest_conn_set_call(call->rc, call);
        if (abandoned) {
            call_free(abandoned);
        }
    }
    resp_init(&call->resp);
    return call;
}

/* The client's address as text, for the access log. */
static void peer_text(struct MHD_Connection *conn, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    snprintf(out, cap, "-");
    if (sa && sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)cap);
    } else if (sa && sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)cap);
    }
}

/* Copies s with anything unprintable (a client's bytes) replaced by '?'. */
static void printable(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; s && *s && o + 1 < cap; s++) {
        out[o++] = (unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f ? '?' : *s;
    }
    out[o] = '\0';
}

static void access_log(struct rest_call *call, uint64_t dur_us)
{
    char peer[INET6_ADDRSTRLEN + 1];
    char method[REST_METHOD_MAX];
    char target[1024];
    char redacted[1024];

    if (call->client[0]) {
        snprintf(peer, sizeof peer, "%s", call->client);
    } else {
        peer_text(call->conn, peer, sizeof peer);
    }
    printable(call->method[0] ? call->method : "-", method, sizeof method);
    printable(call->raw ? call->raw : "(URL too long)", target, sizeof target);
    log_redact(target, redacted, sizeof redacted);
    log_info("access", "%s \"%s %s\" %d %zu %lluus", peer, method, redacted, call->status,
             call->bytes, (unsigned long long)dur_us);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct rest *rest = cls;
    struct rest_call *call = *con_cls;

    if (!call) {
        return;
    }
    *con_cls = NULL;
    if (call->rc) {
        rest_conn_set_call(call->rc, NULL);
        rest_conn_answered(call->rc);
    }
    if (call->status) {
        uint64_t dur = mono_us() - call->t0_us;
        rest_metrics_observe(rest->ctx->metrics, call->route, call->status, dur);
        if (rest->ctx->cfg->access_log) {
            access_log(call, dur);
        }
    }
    call_free(call);
}

/* ---- Errors the core answers itself ------------------------------------ */

/* The v1 error object, or {"detail": ...} on the old service's routes. */
static void core_error(struct rest_call *call, int status, const char *code, const char *detail,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void core_error(struct rest_call *call, int status, const char *code, const char *detail,
                       const char *fmt, ...)
{
    struct api_resp *resp = &call->resp;
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (call->flags & REST_ROUTE_COMPAT) {
        resp->status = status;
        resp->content_type = "application/json";
        jbuf_reset(&resp->body);
        jbuf_adds(&resp->body, "{\"detail\":");
        jbuf_str(&resp->body, detail);
        jbuf_adds(&resp->body, "}");
    } else {
        api_error(resp, status, code, "%s", msg);
    }
}

/* ---- CORS and auth ------------------------------------------------------ */

/* The allowed_origins entry equal to origin, or NULL. */
static const char *origin_allowed(const struct config *cfg, const char *origin)
{
    for (size_t i = 0; origin && i < cfg->n_allowed_origins; i++) {
        if (strcasecmp(cfg->allowed_origins[i], origin) == 0) {
            return cfg->allowed_origins[i];
        }
    }
    return NULL;
}

/* OPTIONS: a CORS preflight answer, or the plain Allow list. */
static void answer_options(struct rest_call *call, struct api_req *req, const char *allow)
{
    const struct config *cfg = req->ctx->cfg;
    const char *origin = api_header(req, "Origin");
    struct api_resp *resp = &call->resp;

    if (cfg->n_allowed_origins && origin) {
        if (!call->cors_origin) {
            core_error(call, 403, "origin_not_allowed", "Origin not allowed",
                       "origin '%.100s' is not in allowed_origins", origin);
            return;
        }
        api_add_header(resp, "Access-Control-Allow-Methods", "%s", allow);
        api_add_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        api_add_header(resp, "Access-Control-Max-Age", "%d", REST_CORS_MAX_AGE_S);
    }
    resp->status = 204;
    api_add_header(resp, "Allow", "%s", allow);
}

/* Whether the request may go on; if not, resp holds the 401 or 403. */
static bool authorize(struct rest_call *call, struct api_req *req)
{
    const struct api_ctx *ctx = req->ctx;
    const char *header = api_header(req, "Authorization");
    enum auth_level level = header ? auth_check_bearer(ctx->auth, header) : AUTH_DENIED;

    req->admin = level == AUTH_ADMIN;
    if (call->flags & REST_ROUTE_ADMIN) {
        if (!auth_has_admin(ctx->auth)) {
            core_error(call, 403, "forbidden", "Forbidden",
                       "the admin API is disabled: no admin_tokens are configured");
            return false;
        }
        if (level == AUTH_USER) {
            core_error(call, 403, "forbidden", "Forbidden", "this route needs an admin token");
            return false;
        }
    } else if (!auth_required(ctx->auth) || auth_public_path(ctx->cfg, req->path)) {
        return true;
    }
    if (level != AUTH_DENIED) {
        return true;
    }
    if (header) {
        core_error(call, 401, "unauthorized", "Invalid authentication credentials",
                   "invalid token");
    } else {
        core_error(call, 401, "unauthorized", "Not authenticated",
                   "missing token: send the header Authorization: Bearer <token>");
    }
    api_add_header(&call->resp, "WWW-Authenticate", "Bearer");
    return false;
}

/* ---- Dispatch ----------------------------------------------------------- */

static void dispatch(struct rest *rest, struct rest_call *call, const char *url)
{
    struct api_req req = {
        .ctx = rest->ctx,
        .conn = call->conn,
        .method = call->method,
        .path = url,
        .now_ms = wall_ms(),
    };
    struct api_resp *resp = &call->resp;
    char allow[REST_ALLOW_MAX];
    size_t index = rest_route_count();

    /* CORS headers go on every answer, errors included, so that a page on
     * an allowed origin can read why it was refused. */
    if (rest->ctx->cfg->n_allowed_origins) {
        call->vary_origin = true;
        call->cors_origin = origin_allowed(rest->ctx->cfg, api_header(&req, "Origin"));
    }
    if (!call->raw) {
        core_error(call, 414, "url_too_long", "URL too long", "the URL is longer than %lld bytes",
                   (long long)rest->ctx->cfg->limits.max_url_bytes);
        return;
    }
    enum rest_match m = rest_route_match(call->method, call->raw, strcspn(call->raw, "?"), &index,
                                         req.param, allow, sizeof allow);
    if (m != REST_MATCH_NOT_FOUND) {
        call->route = index;
        call->flags = rest_route_at(index)->flags;
    }
    if (call->too_many_params) {
        core_error(call, 400, "bad_request", "Too many query parameters",
                   "the query has more than %d parameters", REST_MAX_QUERY_PARAMS);
        return;
    }
    if (call->has_nul) {
        core_error(call, 400, "bad_request", "%00 is not allowed in a URL",
                   "%%00 (a NUL byte) is not allowed in the path or query");
        return;
    }
    if (m == REST_MATCH_NOT_FOUND) {
        api_error(resp, 404, "not_found", "no such path: %.200s", url);
        return;
    }
    if (rest->ctx->cfg->role == CONFIG_ROLE_SCRAPER && !(call->flags & REST_ROUTE_OPS)) {
        api_error(resp, 404, "not_found",
                  "a scraper node serves /healthz, /readyz and /metrics only; ask an api node");
        return;
    }
    if (strcmp(call->method, "OPTIONS") == 0) {
        answer_options(call, &req, allow);
        return;
    }
    if (m == REST_MATCH_BAD_METHOD) {
        core_error(call, 405, "method_not_allowed", "Method Not Allowed",
                   "%.16s is not allowed here; use %s", call->method, allow);
        api_add_header(resp, "Allow", "%s", allow);
        return;
    }
    if (!authorize(call, &req)) {
        return;
    }
    rest_route_at(index)->fn(&req, resp);
}

/* ---- Turning an api_resp into a libmicrohttpd response ----------------- */

static bool has_header(const struct api_resp *resp, const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++) {
        if (strcasecmp(resp->headers[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

static enum MHD_Result queue(struct rest_call *call)
{
    struct api_resp *resp = &call->resp;
    struct MHD_Response *r;
    size_t len;

    if (resp->shared) {
        len = resp->shared_len;
        r = MHD_create_response_from_buffer_with_free_callback_cls(
            len, (void *)resp->shared, resp->shared_release, resp->shared_ctx);
        if (r) {
            resp->shared = NULL; /* libmicrohttpd releases it now */
        }
    } else if (resp->body.len) {
        len = resp->body.len;
        r = MHD_create_response_from_buffer_with_free_callback(len, resp->body.data, free);
        if (r) {
            jbuf_init(&resp->body); /* the buffer is libmicrohttpd's now */
        }
    } else {
        len = 0;
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!r) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            resp->content_type ? resp->content_type : "application/json");
    if (!has_header(resp, "Cache-Control")) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    for (size_t i = 0; i < resp->n_headers; i++) {
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
    }
    if (call->cors_origin) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, call->cors_origin);
    }
    if (call->vary_origin) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");
    }
    if (call->close) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    call->status = resp->status ? resp->status : 200;
    call->bytes = strcmp(call->method, "HEAD") == 0 ? 0 : len;
    enum MHD_Result ok = MHD_queue_response(call->conn, (unsigned)call->status, r);
    MHD_destroy_response(r);
    return ok;
}

/* ---- The head as a whole ------------------------------------------------ */

/* What framing_error counts over the header fields. */
struct head_fields {
    int host, te, cl;
    const char *te_value;
    bool bad_name;
};

static enum MHD_Result count_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct head_fields *h = cls;

    if (!key || !key[0] || strpbrk(key, " \t")) {
        h->bad_name = true;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
        h->host++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        h->te++;
        h->te_value = value;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        h->cl++;
    }
    return MHD_YES;
}

/* Why the head's framing is refused (see "Framing" above), or NULL. A
 * coding other than chunked is refused anyway: libmicrohttpd 0.9.75 would
 * wait for a body it cannot frame until the connection times out. */
static const char *framing_error(struct MHD_Connection *conn, const char *version)
{
    struct head_fields h = {0};
    bool http10 = strcasecmp(version, MHD_HTTP_VERSION_1_0) == 0;

    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_field, &h);
    if (h.bad_name) {
        return "a header field name is empty or followed by whitespace before its colon";
    }
    if (h.host > 1 || (h.host == 0 && !http10)) {
        return "an HTTP/1.1 request needs exactly one Host header";
    }
    if (h.cl > 1) {
        return "more than one Content-Length header";
    }
    if (h.te == 0) {
        return NULL;
    }
    if (http10) {
        return "Transfer-Encoding is not allowed in HTTP/1.0";
    }
    if (h.te > 1) {
        return "more than one Transfer-Encoding header";
    }
    if (strcasecmp(h.te_value, "chunked") != 0) {
        return "Transfer-Encoding: only chunked is understood";
    }
    return h.cl ? "Transfer-Encoding together with Content-Length" : NULL;
}

/* The client a trusted proxy names: the last X-Forwarded-For entry (the one
 * the proxy appended), when it is an IP address; else "". */
static void forwarded_client(struct MHD_Connection *conn, char *out, size_t cap)
{
    const char *xff = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For");
    const char *last = xff ? strrchr(xff, ',') : NULL;
    unsigned char bin[sizeof(struct in6_addr)];
    char text[INET6_ADDRSTRLEN];

    out[0] = '\0';
    if (!xff) {
        return;
    }
    last = last ? last + 1 : xff;
    last += strspn(last, " \t");
    size_t n = strcspn(last, " \t");
    if (n == 0 || n >= sizeof text) {
        return;
    }
    memcpy(text, last, n);
    text[n] = '\0';
    if (inet_pton(AF_INET, text, bin) == 1 || inet_pton(AF_INET6, text, bin) == 1) {
        snprintf(out, cap, "%s", text);
    }
}

/* The first on_request call, with the head complete: the refusals that
 * close the connection, queued now. Returns MHD_YES to go on. */
static enum MHD_Result on_head(struct rest *rest, struct rest_call *call, const char *version)
{
    const char *why = framing_error(call->conn, version);

    if (call->rc) {
        rest_conn_head_done(call->rc);
        if (rest_conn_proxied(call->rc)) {
            forwarded_client(call->conn, call->client, sizeof call->client);
        }
    }
    if (call->rc && rest_conn_refused(call->rc)) {
        call->close = true;
        core_error(call, 429, "too_many_connections", "Too many connections",
                   "too many connections from this address (limits.max_per_ip %lld)",
                   (long long)rest->ctx->cfg->limits.max_per_ip);
        api_add_header(&call->resp, "Retry-After", "5");
        return queue(call);
    }
    if (why) {
        call->close = true;
        core_error(call, 400, "bad_request", "Bad request", "%s", why);
        return queue(call);
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct rest *rest = cls;
    struct rest_call *call = *con_cls;

    if (!call) {
        return MHD_NO; /* on_uri always runs first */
    }
    if (!call->started) {
        call->started = true;
        snprintf(call->method, sizeof call->method, "%s", method);
        return on_head(rest, call, version);
    }
    if (*upload_data_size) {
        call->uploaded += *upload_data_size;
        *upload_data_size = 0;
        return call->uploaded <= REST_MAX_UPLOAD ? MHD_YES : MHD_NO;
    }
    if (!call->posted) {
        if (call->rc) {
            rest_conn_request_done(call->rc);
        }
        dispatch(rest, call, url);
        if (call->resp.suspended) {
            call->posted = true;
            return MHD_YES;
        }
    }
    return queue(call);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    log_debug("rest", "libmicrohttpd: %s", msg);
}

/* ---- The server --------------------------------------------------------- */

struct rest *rest_new(struct api_ctx *ctx, char *err, size_t errlen)
{
    const struct config_limits *lim = &ctx->cfg->limits;
    struct rest *rest = xcalloc(1, sizeof *rest);
    /* The pool holds the request head, the parsed headers and the response
     * headers; libmicrohttpd answers 431 when a head does not fit. */
    size_t pool = (size_t)lim->max_header_bytes * 2 + 8192;
    /* libmicrohttpd's inactivity timeout catches a client that stops reading
     * an answer; it must not close an idle keep-alive connection before
     * keepalive_timeout_ms does. */
    unsigned int timeout_s = (unsigned int)(lim->keepalive_timeout_ms / 1000 + 1);

    if (pool < 32768) {
        pool = 32768;
    }
    if (timeout_s < REST_TIMEOUT_S) {
        timeout_s = REST_TIMEOUT_S;
    }
    rest->ctx = ctx;
    if (!ctx->auth) {
        ctx->auth = rest->own_auth = auth_new(ctx->cfg);
    }
    if (!ctx->metrics) {
        ctx->metrics = rest->own_metrics = rest_metrics_new();
    }
    rest->conns = rest_conns_new(lim, call_free);
    if (!rest->conns) {
        snprintf(err, errlen, "cannot start the REST server: no thread for its deadlines");
        rest_free(rest);
        return NULL;
    }
    /* The per-address limit is rest_conn's (it exempts trusted proxies and
     * answers 429), so libmicrohttpd gets none. */
    /* clang-format off */
    rest->daemon = MHD_start_daemon(
        MHD_USE_NO_LISTEN_SOCKET | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
            MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, rest,
        /* The logger first, or libmicrohttpd says so on its own stderr. */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, rest,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)REST_POOL_THREADS,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)lim->max_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, rest,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, rest,
        MHD_OPTION_NOTIFY_CONNECTION, rest_conns_notify, rest->conns,
        MHD_OPTION_END);
    /* clang-format on */
    if (!rest->daemon) {
        snprintf(err, errlen, "cannot start the REST server (libmicrohttpd)");
        rest_free(rest);
        return NULL;
    }
    return rest;
}

int rest_add_connection(struct rest *rest, int fd, const struct sockaddr *addr, socklen_t len)
{
    return MHD_add_connection(rest->daemon, fd, addr, len) == MHD_YES ? 0 : -1;
}

void rest_free(struct rest *rest)
{
    if (!rest) {
        return;
    }
    ingest_bridge_cancel(rest->ctx->bridge);
    if (rest->daemon) {
        MHD_stop_daemon(rest->daemon);
    }
    rest_conns_free(rest->conns);
    if (rest->own_auth) {
        rest->ctx->auth = NULL;
        auth_free(rest->own_auth);
    }
    if (rest->own_metrics) {
        rest->ctx->metrics = NULL;
        rest_metrics_free(rest->own_metrics);
    }
    free(rest);
}
