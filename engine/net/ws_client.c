/*
 * ws_client: outbound WebSocket connections, the API and the life of a
 * connection.
 *
 * The module is four files (ws_client_int.h lists them): this one owns the
 * client and each connection from ws_conn_open to on_close; ws_client_io.c
 * handles what happens on an attached connection; ws_client_url.c parses;
 * ws_client_lws.c is the libwebsockets glue, which turns its callbacks into
 * the ws_conn_on_* events and owns the context.
 *
 * A connection goes RESOLVING (loop_dns, skipped for literal addresses and
 * behind a proxy) -> CONNECTING (libwebsockets has it) -> OPEN -> CLOSING,
 * and ends in ws_conn_finish(), the one place that calls on_close and frees.
 * Failures that must not be reported where they happen (inside
 * ws_conn_open, or inside ws_conn_close) park the connection in DEFERRED
 * and let a zero timer report them. Each connection has one loop timer whose
 * meaning follows the state: the open timeout while opening, pings while
 * open, a backstop while closing, the report while deferred.
 *
 * Once ws_conn_finish has run, the wsi (if any) is detached: libwebsockets'
 * later callbacks for it carry a NULL user pointer and are ignored. The
 * resolver's answer goes to a small ws_dns record instead of the conn, so a
 * conn can go while its lookup still runs on libuv's thread pool.
 */
#include "ws_client_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/xalloc.h"

#define DEFAULT_MAX_MESSAGE (1u << 20)
#define DEFAULT_OPEN_TIMEOUT_MS 10000
#define CLOSE_BACKSTOP_MS 6000 /* libwebsockets waits 5 s for the close ack */

struct ws_dns {
    struct ws_conn *conn; /* NULL once the conn has gone: the answer is dropped */
    struct loop_dns *req;
};

static void conn_start_connect(struct ws_conn *conn, const char *address);

static void list_add(struct ws_client *c, struct ws_conn *conn)
{
    conn->next = c->conns;
    if (c->conns) {
        c->conns->prev = conn;
    }
    c->conns = conn;
}

static void list_remove(struct ws_client *c, struct ws_conn *conn)
{
    if (conn->prev) {
        conn->prev->next = conn->next;
    } else if (c->conns == conn) {
        c->conns = conn->next;
    }
    if (conn->next) {
        conn->next->prev = conn->prev;
    }
    conn->prev = conn->next = NULL;
}

static void out_clear(struct ws_conn *conn)
{
    while (conn->out_head) {
        struct ws_out *o = conn->out_head;
        conn->out_head = o->next;
        free(o);
    }
    conn->out_tail = NULL;
    conn->out_bytes = 0;
}

/* Lets go of the resolver and the wsi, so nothing reaches conn again. */
static void conn_cut_loose(struct ws_conn *conn)
{
    if (conn->dns) {
        conn->dns->conn = NULL;
        loop_dns_cancel(conn->dns->req);
        conn->dns = NULL;
    }
    if (conn->wsi) {
        ws_lws_detach(conn->wsi);
        conn->wsi = NULL;
    }
}

static void conn_free(struct ws_conn *conn)
{
    loop_timer_free(conn->timer);
    out_clear(conn);
    free(conn->rx);
    for (size_t i = 0; i < conn->n_headers; i++) {
        free(conn->headers[i]);
    }
    free(conn->headers);
    ws_url_free(&conn->url);
    free(conn);
}

/* The end of every connection: on_close once (unless abandoned), then free.
 * The wsi must already be detached or be going away by itself. */
void ws_conn_finish(struct ws_conn *conn, int code, const char *reason)
{
    struct ws_client *c = conn->client;

    if (conn->state == WS_DONE) {
        return;
    }
    conn->state = WS_DONE;
    conn_cut_loose(conn);
    loop_timer_stop(conn->timer);
    list_remove(c, conn);
    if (!conn->abandoned && conn->cb.on_close) {
        c->depth++;
        conn->cb.on_close(conn, code, reason, conn->data);
        c->depth--;
    }
    conn_free(conn);
}

/* Reports a failure from a zero timer: never inside the caller's call. */
void ws_conn_defer(struct ws_conn *conn, int code, const char *reason)
{
    conn_cut_loose(conn);
    conn->state = WS_DEFERRED;
    conn->fail_code = code;
    if (reason != conn->fail_reason) {
        snprintf(conn->fail_reason, sizeof conn->fail_reason, "%s", reason);
    }
    loop_timer_start(conn->timer, 0, 0);
}

/* Stops an attempt that has not opened; the wsi closes on its own time. */
static void conn_abort_attempt(struct ws_conn *conn)
{
    struct lws *wsi = conn->wsi;
    conn_cut_loose(conn);
    if (wsi) {
        ws_lws_drop(wsi);
    }
}

static void on_conn_timer(struct loop_timer *t, void *data)
{
    struct ws_conn *conn = data;
    struct ws_client *c = conn->client; /* conn may be freed below */
    char reason[WS_REASON_MAX];

    c->depth++;
    switch (conn->state) {
    case WS_DEFERRED:
        ws_conn_finish(conn, conn->fail_code, conn->fail_reason);
        break;
    case WS_RESOLVING:
    case WS_CONNECTING:
        snprintf(reason, sizeof reason, "open timeout: no handshake with %.120s within %llu ms",
                 conn->url.host_header, (unsigned long long)conn->open_timeout_ms);
        conn_abort_attempt(conn);
        ws_conn_finish(conn, 1006, reason);
        break;
    case WS_OPEN:
        if (conn->wsi) {
            conn->ping_due = true;
            ws_lws_want_write(conn->wsi);
        }
        break;
    case WS_CLOSING:
        /* The peer never finished the close handshake. */
        conn_abort_attempt(conn);
        ws_conn_finish(conn, conn->close_code, conn->close_reason);
        break;
    case WS_DONE:
        break;
    }
    c->depth--;
}

static void on_resolved(int status, struct addrinfo *res, void *data)
{
    struct ws_dns *dns = data;
    struct ws_conn *conn = dns->conn;
    char addr[INET6_ADDRSTRLEN] = "";
    char reason[WS_REASON_MAX];

    free(dns);
    if (!conn) {
        loop_dns_freeaddrinfo(res);
        return;
    }
    conn->dns = NULL;
    /* Prefer IPv4: the first answer for a dual-stack name is often IPv6,
     * which many hosts here cannot route. */
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *ai = status == 0 ? res : NULL; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET || (!pick && ai->ai_family == AF_INET6)) {
            pick = ai;
            if (ai->ai_family == AF_INET) {
                break;
            }
        }
    }
    if (pick && pick->ai_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)pick->ai_addr)->sin_addr, addr,
                  sizeof addr);
    } else if (pick) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, addr,
                  sizeof addr);
    }
    loop_dns_freeaddrinfo(res);
    struct ws_client *c = conn->client; /* conn may be freed below */
    c->depth++;
    if (!addr[0]) {
        snprintf(reason, sizeof reason, "connect failed: cannot resolve %.120s: %s", conn->url.host,
                 status < 0 ? loop_strerror(status) : "no address");
        ws_conn_finish(conn, 1006, reason);
    } else {
        conn_start_connect(conn, addr);
    }
    c->depth--;
}

static void conn_start_connect(struct ws_conn *conn, const char *address)
{
    char reason[WS_REASON_MAX];

    conn->state = WS_CONNECTING;
    conn->fail_reason[0] = '\0';
    conn->in_connect = true;
    struct lws *wsi = ws_lws_connect(conn, address);
    conn->in_connect = false;
    if (conn->state == WS_DEFERRED) {
        /* The glue reported the error while we were inside the call (and
         * detached the wsi it knew); whatever lws left in conn->wsi is not
         * ours any more. */
        if (wsi) {
            ws_lws_detach(wsi);
        }
        conn->wsi = NULL;
        return;
    }
    if (!wsi) {
        conn->wsi = NULL;
        snprintf(reason, sizeof reason, "connect failed: cannot start a connection to %.200s port %d",
                 address, conn->url.port);
        ws_conn_defer(conn, 1006, reason);
        return;
    }
    conn->wsi = wsi;
}

static bool is_literal_address(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int copy_headers(struct ws_conn *conn, const struct ws_conn_options *opts, char *err,
                        size_t errlen)
{
    if (!opts->headers || opts->n_headers == 0) {
        return 0;
    }
    conn->headers = xcalloc(opts->n_headers, sizeof *conn->headers);
    for (size_t i = 0; i < opts->n_headers; i++) {
        const char *h = opts->headers[i];
        const char *colon = h ? strchr(h, ':') : NULL;
        if (!colon || colon == h || strpbrk(h, "\r\n")) {
            snprintf(err, errlen, "header %zu is not \"Name: value\"", i + 1);
            return -1;
        }
        conn->headers[i] = xstrdup(h);
        conn->n_headers++;
    }
    return 0;
}

struct ws_conn *ws_conn_open(struct ws_client *client, const struct ws_conn_options *opts,
                             const struct ws_conn_callbacks *cb, void *data, char *err,
                             size_t errlen)
{
    struct ws_conn *conn;

    if (client->freeing) {
        snprintf(err, errlen, "the WebSocket client is shutting down");
        return NULL;
    }
    conn = xcalloc(1, sizeof *conn);
    if (ws_url_parse(opts->url, &conn->url, err, errlen) < 0 ||
        copy_headers(conn, opts, err, errlen) < 0) {
        conn_free(conn);
        return NULL;
    }
    conn->client = client;
    if (cb) {
        conn->cb = *cb;
    }
    conn->data = data;
    conn->max_message = opts->max_message_bytes ? opts->max_message_bytes : DEFAULT_MAX_MESSAGE;
    conn->ping_every_ms = opts->ping_every_ms;
    conn->open_timeout_ms = opts->open_timeout_ms ? opts->open_timeout_ms : DEFAULT_OPEN_TIMEOUT_MS;
    conn->timer = loop_timer_new(client->loop, on_conn_timer, conn);
    list_add(client, conn);
    loop_timer_start(conn->timer, conn->open_timeout_ms, 0);

    if (client->proxy || is_literal_address(conn->url.host)) {
        conn_start_connect(conn, conn->url.host);
        return conn;
    }
    char port[8];
    snprintf(port, sizeof port, "%d", conn->url.port);
    conn->state = WS_RESOLVING;
    conn->dns = xcalloc(1, sizeof *conn->dns);
    conn->dns->conn = conn;
    conn->dns->req = loop_dns_resolve(client->loop, conn->url.host, port, on_resolved, conn->dns);
    if (!conn->dns->req) {
        free(conn->dns);
        conn->dns = NULL;
        char reason[WS_REASON_MAX];
        snprintf(reason, sizeof reason, "connect failed: cannot resolve %.120s", conn->url.host);
        ws_conn_defer(conn, 1006, reason);
    }
    return conn;
}

int ws_conn_send(struct ws_conn *conn, const char *msg, size_t len, bool binary)
{
    if (conn->state != WS_OPEN || !conn->wsi) {
        return -ENOTCONN;
    }
    if (len > WS_SEND_QUEUE_BYTES - conn->out_bytes) {
        return -ENOBUFS;
    }
    struct ws_out *o = xmalloc(sizeof *o + WS_LWS_PRE + len);
    o->next = NULL;
    o->len = len;
    o->binary = binary;
    memcpy(o->buf + WS_LWS_PRE, msg, len);
    if (conn->out_tail) {
        conn->out_tail->next = o;
    } else {
        conn->out_head = o;
    }
    conn->out_tail = o;
    conn->out_bytes += len;
    ws_lws_want_write(conn->wsi);
    return 0;
}

static void set_close(struct ws_conn *conn, int code, const char *reason)
{
    conn->close_code = code;
    snprintf(conn->close_reason, sizeof conn->close_reason, "%s", reason ? reason : "");
}

void ws_conn_close(struct ws_conn *conn, int code, const char *reason)
{
    switch (conn->state) {
    case WS_RESOLVING:
    case WS_CONNECTING:
        conn_abort_attempt(conn);
        set_close(conn, code, reason);
        ws_conn_defer(conn, code, conn->close_reason);
        break;
    case WS_OPEN:
        set_close(conn, code, reason);
        conn->state = WS_CLOSING;
        out_clear(conn);
        loop_timer_start(conn->timer, CLOSE_BACKSTOP_MS, 0);
        ws_lws_want_write(conn->wsi);
        break;
    default:
        break;
    }
}

void ws_conn_abandon(struct ws_conn *conn)
{
    conn->abandoned = true;
    if (conn->state == WS_OPEN) {
        /* Close politely; the conn lingers, silent, until the handshake ends. */
        ws_conn_close(conn, 1001, "going away");
        return;
    }
    if (conn->state == WS_CLOSING) {
        return;
    }
    conn_abort_attempt(conn);
    ws_conn_finish(conn, 1006, "abandoned");
}

void ws_conn_stats(const struct ws_conn *conn, struct ws_conn_stats *out)
{
    *out = conn->stats;
}

struct ws_client *ws_client_new(struct loop *loop, const struct ws_client_options *opts, char *err,
                                size_t errlen)
{
    struct ws_client *c = xcalloc(1, sizeof *c);

    c->loop = loop;
    if (opts && opts->ca_file) {
        if (access(opts->ca_file, R_OK) != 0) {
            snprintf(err, errlen, "ca_file %s: %s", opts->ca_file, strerror(errno));
            goto fail;
        }
        c->ca_file = xstrdup(opts->ca_file);
    }
    if (opts && opts->proxy && opts->proxy[0] &&
        ws_proxy_parse(opts->proxy, &c->proxy, &c->proxy_port, err, errlen) < 0) {
        goto fail;
    }
    if (ws_lws_create(c, err, errlen) < 0) {
        goto fail;
    }
    return c;
fail:
    free(c->ca_file);
    free(c->proxy);
    free(c);
    return NULL;
}

void ws_client_free(struct ws_client *c)
{
    if (!c) {
        return;
    }
    /* From a loop callback the loop cannot be run again (see the header). */
    if (c->depth > 0) {
        fprintf(stderr, "ws_client_free called from a ws_client callback\n");
        abort();
    }
    c->freeing = true;
    while (c->conns) {
        struct ws_conn *conn = c->conns;
        conn_cut_loose(conn); /* the context destroy closes the wsi */
        ws_conn_finish(conn, 1001, "shutdown");
    }
    ws_lws_destroy(c);
    free(c->ca_file);
    free(c->proxy);
    free(c);
}
