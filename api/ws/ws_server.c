/*
 * ws_server: the libwebsockets glue of the WebSocket server (design in
 * ws_server.h). This file is the only one in api/ that calls
 * libwebsockets; the protocol lives in ws_session.c and currency_listener.c.
 *
 * The life of a connection:
 *   1. ws_server_adopt: lws_adopt_descriptor_vhost(LWS_ADOPT_HTTP |
 *      LWS_ADOPT_SOCKET) — libwebsockets reads the upgrade head the front
 *      door only peeked at (notes/one-port.md);
 *   2. LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION, before the 101 is sent:
 *      path, origin, token, connection limits and (for the listener) the
 *      query; a refusal writes an HTTP response with a JSON body and
 *      returns nonzero, and libwebsockets closes the socket after it;
 *   3. LWS_CALLBACK_ESTABLISHED: a struct ws_server_conn with its
 *      ws_session or currency_listener;
 *   4. RECEIVE (reassembled up to ws.max_message_bytes) and
 *      SERVER_WRITEABLE (a burst of messages while the socket takes them);
 *      throttled keys wake a per-connection timer;
 *   5. LWS_CALLBACK_CLOSED frees the connection.
 * A close we decide (1008 slow consumer, 1009 message too big, 1001
 * shutdown, 1000 listener time up) writes the close frame on the next
 * writeable callback, which then returns -1. When the socket is choked (a
 * slow consumer) the frame is queued at once behind what is pending, and
 * the client has CLOSE_GRACE_S to read up to it before the socket is
 * dropped.
 *
 * Teardown on a foreign loop takes two lws_context_destroy calls, the
 * first inside the loop (it closes sockets and libwebsockets' own handles,
 * which libuv finishes asynchronously), the second after uv_run has
 * returned; ws_server_free runs the loop with a timer to do the first.
 */
#include "ws_server.h"

#include <libwebsockets.h>
#include <linux/sockios.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "auth.h"
#include "config/config.h"
#include "store/store.h"
#include "core/log.h"
#include "core/loop.h"
#include "ws_index.h"
#include "ws_keys.h"
#include "currency_listener.h"
#include "ws_render.h"
#include "ws_session.h"
#include "core/xalloc.h"

#define PROTOCOL_NAME "rx-stream"
#define PATH_STREAM "/v1/stream"
#define PATH_LISTENER "/currency_listener"
/* Messages written per writeable callback: other connections get their
 * turn in between. */
#define WRITE_BURST 16
/* How often every connection's backlog is compared with max_queue_bytes. */
#define SWEEP_MS 250
/* Loop iterations after the first lws_context_destroy. */
#define DESTROY_TICKS 3
#define DRAIN_TICK_MS 10
#define IP_MAX 64
/* A close frame's payload is at most 125 bytes: the code and 123 more. */
#define CLOSE_REASON_MAX 123
/* How long a client we close has to read what is queued before the close
 * frame; then the socket is dropped. */
#define CLOSE_GRACE_S 10

enum conn_kind { KIND_NONE, KIND_STREAM, KIND_LISTENER };

/* libwebsockets' per-connection user space: what the filter decided, and
 * the connection once it is established. */
struct pss {
    struct ws_server_conn *conn;
    enum conn_kind kind;
    struct currency_listener_params listener;
};

struct ws_server_conn {
    struct ws_server *srv;
    struct lws *wsi;
    struct ws_server_conn *prev, *next;
    enum conn_kind kind;
    char ip[IP_MAX];
    struct ws_session *session;   /* KIND_STREAM */
    struct currency_listener *listener; /* KIND_LISTENER */
    struct loop_timer *timer;     /* KIND_STREAM: the next throttled key */
    uint64_t timer_at;            /* monotonic ms, 0 = not armed */
    struct jbuf rx;               /* the message being reassembled */
    bool rx_binary;
    bool want_write; /* lws_callback_on_writable is pending */
    bool wrote;      /* wrote since the last sweep */
    bool closing;    /* we decided to close: close_code is set */
    bool close_sent; /* the close frame is written (or buffered) */
    uint16_t close_code;
    char close_reason[CLOSE_REASON_MAX + 1];
    uint64_t published; /* the server's publish_seq this one last saw */
    uint64_t batch_seq; /* the server's batch_seq when last touched */
    struct ws_server_conn *touched_next; /* the current batch's touched list */
};

struct ws_server {
    struct loop *loop;
    struct api_ctx *ctx;
    struct lws_context *lws; /* libwebsockets clears it when freed */
    struct lws_vhost *vhost;
    void *foreign_loops[1];
    struct ws_server_conn *conns;
    size_t n_conns, n_listeners;
    struct ws_keys_versions *versions;
    struct ws_index *index;  /* the stream connections' subscriptions */
    struct ws_render *render; /* rate tickers rendered once, shared by the sessions */
    uint64_t publish_seq;    /* one per fanned-out ticker */
    uint64_t batch_seq;      /* one per published batch */
    struct loop_timer *sweep;
    struct jbuf tx; /* LWS_PRE bytes of headroom, then the message */
    int max_fd;
    bool shut_down;
    /* ws_server_free's teardown */
    int destroy_ticks;
    uint64_t drain_until;
    struct ws_server_stats stats; /* cumulative counters */
};

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);

/* Idle connections get a WebSocket ping after PING_IDLE_S and are dropped
 * when nothing valid arrived for HANGUP_IDLE_S (a peer that vanished
 * without a FIN would otherwise hold its slot for ever). */
#define PING_IDLE_S 30
#define HANGUP_IDLE_S 75
static const lws_retry_bo_t idle_policy = {
    .secs_since_valid_ping = PING_IDLE_S,
    .secs_since_valid_hangup = HANGUP_IDLE_S,
};

static const struct lws_protocols protocols[] = {
    {PROTOCOL_NAME, callback, sizeof(struct pss), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- Refusals before the upgrade ---------------------------------------- */

static const char *status_text(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    default:
        return "Service Unavailable";
    }
}

/* The whole response: status line, headers (extra: "" or "Name: value\r\n")
 * and body, with Connection: close. */
static size_t refusal_text(char *out, size_t cap, int status, const char *extra, const char *body)
{
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n%s",
                     status, status_text(status), strlen(body), extra, body);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Writes the refusal on an HTTP wsi; returns 1 (the filter's "deny"). */
static int refuse(struct ws_server *srv, struct lws *wsi, int status, const char *extra,
                  const char *body)
{
    char buf[LWS_PRE + 2048];
    size_t n = refusal_text(buf + LWS_PRE, sizeof buf - LWS_PRE, status, extra, body);

    srv->stats.refused++;
    lws_write(wsi, (unsigned char *)buf + LWS_PRE, n, LWS_WRITE_HTTP_HEADERS);
    return 1;
}

/* A refusal in the v1 shape ({"error":...}) or the old service's
 * ({"detail": message}) on /currency_listener. */
static int refuse_json(struct ws_server *srv, struct lws *wsi, bool compat, int status,
                       const char *extra, const char *code, const char *message)
{
    struct jbuf b;
    int rc;

    jbuf_init(&b);
    if (compat) {
        jbuf_adds(&b, "{\"detail\":");
        jbuf_str(&b, message);
        jbuf_adds(&b, "}");
    } else {
        jbuf_adds(&b, "{\"error\":{\"code\":");
        jbuf_str(&b, code);
        jbuf_adds(&b, ",\"message\":");
        jbuf_str(&b, message);
        jbuf_adds(&b, "}}");
    }
    rc = refuse(srv, wsi, status, extra, b.data);
    jbuf_free(&b);
    return rc;
}

static bool origin_allowed(const struct config *cfg, const char *origin)
{
    for (size_t i = 0; i < cfg->n_allowed_origins; i++) {
        if (strcasecmp(cfg->allowed_origins[i], origin) == 0) {
            return true;
        }
    }
    return false;
}

/* What the presented credentials grant: the Authorization header first,
 * then ?token=. *presented tells a wrong token from a missing one. */
static enum auth_level check_token(struct ws_server *srv, struct lws *wsi, bool *presented)
{
    char buf[AUTH_TOKEN_MAX + 64];
    enum auth_level level = AUTH_DENIED;
    const char *token;

    *presented = false;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
        *presented = true;
        if (lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
            level = auth_check_bearer(srv->ctx->auth, buf);
        }
    }
    if (level == AUTH_DENIED) {
        token = lws_get_urlarg_by_name(wsi, "token=", buf, sizeof buf);
        if (token) {
            *presented = true;
            level = auth_check_token(srv->ctx->auth, token, strlen(token));
        }
    }
    explicit_bzero(buf, sizeof buf);
    return level;
}

static size_t conns_from(const struct ws_server *srv, const char *ip)
{
    size_t n = 0;
    for (const struct ws_server_conn *c = srv->conns; c; c = c->next) {
        n += strcmp(c->ip, ip) == 0;
    }
    return n;
}

/* A query argument of the listener, or NULL when absent. */
static const char *urlarg(struct lws *wsi, const char *name, char *buf, int cap)
{
    return lws_get_urlarg_by_name(wsi, name, buf, cap);
}

/*
 * The checks before the upgrade (order in ws_server.h). Returns 0 to let
 * the upgrade go on, nonzero after writing the refusal.
 */
static int filter(struct ws_server *srv, struct lws *wsi, struct pss *pss)
{
    const struct config *cfg = srv->ctx->cfg;
    char path[256], origin[256], ip[IP_MAX], msg[256];
    bool compat, presented;

    memset(pss, 0, sizeof *pss);
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0) {
        path[0] = '\0';
    }
    if (strcmp(path, PATH_STREAM) == 0) {
        pss->kind = KIND_STREAM;
    } else if (strcmp(path, PATH_LISTENER) == 0) {
        pss->kind = KIND_LISTENER;
    } else {
        snprintf(msg, sizeof msg, "no WebSocket endpoint at %.100s: use %s or %s", path,
                 PATH_STREAM, PATH_LISTENER);
        return refuse_json(srv, wsi, false, 404, "", "not_found", msg);
    }
    compat = pss->kind == KIND_LISTENER;
    if (srv->shut_down) {
        return refuse_json(srv, wsi, compat, 503, "", "shutting_down",
                           "the server is shutting down");
    }
    if (cfg->n_allowed_origins && lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0 &&
        (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0 ||
         !origin_allowed(cfg, origin))) {
        return refuse_json(srv, wsi, compat, 403, "", "origin_not_allowed",
                           "Origin not allowed: it is not in allowed_origins");
    }
    if (auth_required(srv->ctx->auth) && !auth_public_path(cfg, path) &&
        check_token(srv, wsi, &presented) == AUTH_DENIED) {
        return refuse_json(srv, wsi, compat, 401, "WWW-Authenticate: Bearer\r\n", "unauthorized",
                           presented ? "Invalid authentication credentials"
                                     : "Not authenticated: send the header Authorization: "
                                       "Bearer <token>, or ?token=<token>");
    }
    if ((int64_t)srv->n_conns >= cfg->ws.max_connections) {
        snprintf(msg, sizeof msg, "too many WebSocket connections (ws.max_connections %lld)",
                 (long long)cfg->ws.max_connections);
        return refuse_json(srv, wsi, compat, 503, "Retry-After: 5\r\n", "too_many_connections",
                           msg);
    }
    if (lws_get_peer_simple(wsi, ip, sizeof ip) &&
        (int64_t)conns_from(srv, ip) >= cfg->ws.max_per_ip) {
        snprintf(msg, sizeof msg, "too many WebSocket connections from %s (ws.max_per_ip %lld)", ip,
                 (long long)cfg->ws.max_per_ip);
        return refuse_json(srv, wsi, compat, 429, "Retry-After: 5\r\n", "too_many_connections",
                           msg);
    }
    if (pss->kind == KIND_LISTENER) {
        char ex[CURRENCY_LISTENER_PARAM_MAX + 16], pair[CURRENCY_LISTENER_PARAM_MAX + 16], freq[64];
        struct jbuf err;
        jbuf_init(&err);
        int status = currency_listener_parse(srv->ctx, urlarg(wsi, "exchange=", ex, sizeof ex),
                                       urlarg(wsi, "pair=", pair, sizeof pair),
                                       urlarg(wsi, "frequency_timeout=", freq, sizeof freq),
                                       loop_wall_ms(), &pss->listener, &err);
        int rc = status ? refuse(srv, wsi, status, "", err.data) : 0;
        jbuf_free(&err);
        return rc;
    }
    return 0;
}

/* ---- Writing ------------------------------------------------------------ */

static void tx_reset(struct ws_server *srv)
{
    static const char headroom[LWS_PRE];
    jbuf_reset(&srv->tx);
    jbuf_add(&srv->tx, headroom, sizeof headroom);
}

/* Writes srv->tx's message; -1 if libwebsockets failed (close). */
static int tx_write(struct ws_server_conn *c)
{
    struct ws_server *srv = c->srv;
    size_t len = srv->tx.len - LWS_PRE;
    int n = lws_write(c->wsi, (unsigned char *)srv->tx.data + LWS_PRE, len, LWS_WRITE_TEXT);

    if (n < (int)len) {
        return -1;
    }
    srv->stats.messages_out++;
    c->wrote = true;
    return 0;
}

/* Bytes the kernel holds unsent on the connection's socket. */
static size_t kernel_unsent(struct ws_server_conn *c)
{
    int n = 0;
    int fd = lws_get_socket_fd(c->wsi);
    if (fd < 0 || ioctl(fd, SIOCOUTQNSD, &n) < 0 || n < 0) {
        return 0;
    }
    return (size_t)n;
}

/*
 * Writes the close frame (code and reason) ourselves: with the libuv event
 * library, libwebsockets 4.1.6 kills the connection before sending the
 * frame lws_close_reason prepares (its close "takes over", then its uv
 * callback closes again: "uv repeat test"). Opcode 4 is its internal
 * LWS_WRITE_CLOSE, which the public enum leaves out. When the socket is
 * choked the frame queues behind the data libwebsockets already holds.
 */
#define WS_WRITE_CLOSE ((enum lws_write_protocol)4)
static int send_close(struct ws_server_conn *c)
{
    unsigned char buf[LWS_PRE + 2 + CLOSE_REASON_MAX];
    size_t n = strlen(c->close_reason);

    buf[LWS_PRE] = (unsigned char)(c->close_code >> 8);
    buf[LWS_PRE + 1] = (unsigned char)(c->close_code & 0xff);
    memcpy(buf + LWS_PRE + 2, c->close_reason, n);
    c->close_sent = true;
    return lws_write(c->wsi, buf + LWS_PRE, 2 + n, WS_WRITE_CLOSE) < 0 ? -1 : 0;
}

/*
 * Closes the connection with code and reason: the close frame goes out on
 * the next writeable callback, which then returns -1. When the socket is
 * choked (a slow consumer) it is queued now, behind what is pending, and
 * the client gets CLOSE_GRACE_S to read up to it.
 */
static void conn_close(struct ws_server_conn *c, int code, const char *reason)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    c->close_code = (uint16_t)code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    if (lws_send_pipe_choked(c->wsi)) {
        send_close(c);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_GRACE_S);
    }
    c->want_write = true;
    lws_callback_on_writable(c->wsi);
}

/* Whether the stream's backlog passed max_queue_bytes (then it closes). */
static bool conn_over_queue(struct ws_server_conn *c, bool with_kernel)
{
    size_t max = (size_t)c->srv->ctx->cfg->ws.max_queue_bytes;
    size_t pending = ws_session_pending_bytes(c->session, loop_now_ms(c->srv->loop));
    char reason[120];

    if (pending <= max && with_kernel) {
        pending += kernel_unsent(c);
    }
    if (pending <= max) {
        return false;
    }
    /* The close reason must fit a control frame (123 bytes). */
    snprintf(reason, sizeof reason, "slow consumer: %zu bytes queued, ws.max_queue_bytes is %zu",
             pending, max);
    c->srv->stats.closed_1008++;
    log_info("ws_server", "closing a /v1/stream client of %s with 1008: %s", c->ip, reason);
    conn_close(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, reason);
    return true;
}

/* Asks for a writeable callback when the session has something due now,
 * else arms the timer for its next throttled key. */
static void conn_schedule(struct ws_server_conn *c)
{
    uint64_t now, due;

    if (c->closing || c->kind != KIND_STREAM) {
        return;
    }
    now = loop_now_ms(c->srv->loop);
    due = ws_session_next_due(c->session, now);
    if (due <= now) {
        if (!c->want_write) {
            c->want_write = true;
            lws_callback_on_writable(c->wsi);
        }
    } else if (due != UINT64_MAX && (!c->timer_at || c->timer_at > due)) {
        c->timer_at = due;
        loop_timer_start(c->timer, due - now, 0);
    }
}

static void on_conn_timer(struct loop_timer *timer, void *data)
{
    struct ws_server_conn *c = data;
    c->timer_at = 0;
    conn_schedule(c);
}

static void on_listener_wake(void *data)
{
    struct ws_server_conn *c = data;
    if (!c->closing && !c->want_write) {
        c->want_write = true;
        lws_callback_on_writable(c->wsi);
    }
}

static int writeable_listener(struct ws_server_conn *c)
{
    struct ws_server *srv = c->srv;

    tx_reset(srv);
    switch (currency_listener_next(c->listener, loop_wall_ms(), &srv->tx)) {
    case CURRENCY_LISTENER_DONE:
        c->close_code = LWS_CLOSE_STATUS_NORMAL;
        snprintf(c->close_reason, sizeof c->close_reason, "compat.listener_max_s reached");
        send_close(c);
        return -1;
    case CURRENCY_LISTENER_SEND:
        return tx_write(c);
    default:
        return 0;
    }
}

static int writeable_stream(struct ws_server_conn *c)
{
    struct ws_server *srv = c->srv;
    uint64_t now = loop_now_ms(srv->loop);
    int64_t wall = loop_wall_ms();

    /* Stop at the first write the kernel did not take whole
     * (libwebsockets keeps the rest and calls again once it is out). */
    for (int i = 0; i < WRITE_BURST && !lws_partial_buffered(c->wsi); i++) {
        tx_reset(srv);
        if (!ws_session_next(c->session, now, wall, &srv->tx)) {
            break;
        }
        if (tx_write(c) < 0) {
            return -1;
        }
    }
    if (lws_partial_buffered(c->wsi) && conn_over_queue(c, true)) {
        return 0; /* closing */
    }
    conn_schedule(c);
    return 0;
}

static int on_writeable(struct ws_server_conn *c)
{
    c->want_write = false;
    if (c->closing) {
        if (!c->close_sent) {
            send_close(c);
        }
        return -1;
    }
    return c->kind == KIND_LISTENER ? writeable_listener(c) : writeable_stream(c);
}

/* ---- Reading ------------------------------------------------------------ */

static int on_receive(struct ws_server_conn *c, const void *in, size_t len)
{
    struct ws_server *srv = c->srv;
    size_t max = (size_t)srv->ctx->cfg->ws.max_message_bytes;

    if (c->closing) {
        return 0;
    }
    if (lws_is_first_fragment(c->wsi)) {
        jbuf_reset(&c->rx);
        c->rx_binary = lws_frame_is_binary(c->wsi);
    }
    if (c->rx.len + len > max) {
        char reason[100];
        snprintf(reason, sizeof reason, "message too big: ws.max_message_bytes is %zu", max);
        srv->stats.closed_1009++;
        log_info("ws_server", "closing a client of %s with 1009: %s", c->ip, reason);
        conn_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, reason);
        return 0; /* the rest of the message is dropped */
    }
    jbuf_add(&c->rx, in, len);
    if (!lws_is_final_fragment(c->wsi) || lws_remaining_packet_payload(c->wsi) > 0) {
        return 0;
    }
    srv->stats.messages_in++;
    if (c->kind == KIND_STREAM) {
        if (c->rx_binary) {
            ws_session_receive_binary(c->session);
        } else {
            ws_session_receive(c->session, c->rx.data ? c->rx.data : "", c->rx.len);
        }
        if (!conn_over_queue(c, false)) {
            conn_schedule(c);
        }
    }
    /* The listener ignores what its client sends, as the old one did. */
    jbuf_reset(&c->rx);
    return 0;
}

/* ---- Connections -------------------------------------------------------- */

static void conn_link(struct ws_server *srv, struct ws_server_conn *c)
{
    c->next = srv->conns;
    if (srv->conns) {
        srv->conns->prev = c;
    }
    srv->conns = c;
    srv->n_conns++;
    srv->n_listeners += c->kind == KIND_LISTENER;
}

static void conn_unlink(struct ws_server *srv, struct ws_server_conn *c)
{
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        srv->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    srv->n_conns--;
    srv->n_listeners -= c->kind == KIND_LISTENER;
}

/* A stream connection's subscription opened or closed: the fan-out index
 * follows (ws_session_free reports the ones still open, so a closed
 * connection leaves nothing behind). */
static void on_sub_change(void *arg, bool added, const char (*exchanges)[TICKER_EXCHANGE_MAX],
                          size_t n_exchanges, const char (*pairs)[TICKER_PAIR_MAX],
                          size_t n_pairs)
{
    struct ws_server_conn *c = arg;

    if (added) {
        ws_index_add(c->srv->index, c, exchanges, n_exchanges, pairs, n_pairs);
    } else {
        ws_index_remove(c->srv->index, c, exchanges, n_exchanges, pairs, n_pairs);
    }
}

static int established(struct ws_server *srv, struct lws *wsi, struct pss *pss)
{
    struct ws_server_conn *c = xcalloc(1, sizeof *c);
    const struct config *cfg = srv->ctx->cfg;

    c->srv = srv;
    c->wsi = wsi;
    c->kind = pss->kind;
    if (!lws_get_peer_simple(wsi, c->ip, sizeof c->ip)) {
        c->ip[0] = '\0';
    }
    jbuf_init(&c->rx);
    if (c->kind == KIND_STREAM) {
        struct ws_session_limits lim = {.max_subs = (size_t)cfg->ws.max_subs,
                                        .snapshot_chunk = (size_t)cfg->ws.snapshot_chunk};
        c->session = ws_session_new(srv->ctx, &lim);
        ws_session_set_watch(c->session, on_sub_change, c);
        ws_session_set_render(c->session, srv->render);
        c->timer = loop_timer_new(srv->loop, on_conn_timer, c);
    } else {
        c->listener =
            currency_listener_new(srv->loop, srv->ctx, &pss->listener,
                            (uint64_t)cfg->compat.listener_max_s * 1000, on_listener_wake, c);
        on_listener_wake(c); /* the first body goes at once */
    }
    conn_link(srv, c);
    pss->conn = c;
    srv->stats.accepted++;
    return 0;
}

static void conn_free(struct ws_server_conn *c)
{
    struct ws_server *srv = c->srv;

    conn_unlink(srv, c);
    if (c->session) {
        struct ws_session_stats st;
        ws_session_stats(c->session, &st);
        srv->stats.conflated += st.conflated;
        ws_session_free(c->session);
    }
    currency_listener_free(c->listener);
    loop_timer_free(c->timer);
    jbuf_free(&c->rx);
    free(c);
}

/* ---- The libwebsockets callback ----------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct lws_context *lctx = wsi ? lws_get_context(wsi) : NULL;
    struct ws_server *srv = lctx ? lws_context_user(lctx) : NULL;
    struct pss *pss = user;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return filter(srv, wsi, pss);
    case LWS_CALLBACK_ESTABLISHED:
        return established(srv, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return pss && pss->conn ? on_receive(pss->conn, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss && pss->conn ? on_writeable(pss->conn) : 0;
    case LWS_CALLBACK_CLOSED:
        if (pss && pss->conn) {
            conn_free(pss->conn);
            pss->conn = NULL;
        }
        return 0;
    case LWS_CALLBACK_HTTP:
        /* A plain request on an adopted socket: only upgrades come here. */
        refuse_json(srv, wsi, false, 400, "", "bad_request",
                    "this connection expects a WebSocket upgrade");
        return -1;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ---- Fan-out ------------------------------------------------------------ */

struct publish_job {
    struct ws_server *srv;
    const struct ticker *t;
    uint64_t now;
    struct ws_server_conn *touched; /* connections with something new, once each */
};

/* One candidate from the index: each connection once per ticker (it may
 * be filed under several of the keys looked up); the session decides. */
static void publish_one(void *owner, void *arg)
{
    struct ws_server_conn *c = owner;
    struct publish_job *job = arg;

    if (c->published == job->srv->publish_seq) {
        return;
    }
    c->published = job->srv->publish_seq;
    /* The backlog is checked by the sweep, not here: a publish only
     * replaces a key's value, the dirty set is bounded by the keys. */
    if (c->kind == KIND_STREAM && !c->closing && ws_session_publish(c->session, job->t, job->now) &&
        c->batch_seq != job->srv->batch_seq) {
        c->batch_seq = job->srv->batch_seq;
        c->touched_next = job->touched;
        job->touched = c;
    }
}

void ws_server_publish_changes(struct ws_server *ws, const struct change_key *keys, size_t n)
{
    struct ticker t;

    if (!ws || ws->shut_down || ws->n_conns == ws->n_listeners) {
        return; /* no /v1/stream client */
    }
    struct publish_job job = {.srv = ws, .t = &t, .now = loop_now_ms(ws->loop)};
    ws->batch_seq++;
    for (size_t i = 0; i < n; i++) {
        /* The latest value: a key that changed again since it was put is
         * pushed once, as it is now; a removed one not at all. */
        if (store_get(ws->ctx->store, keys[i].exchange, keys[i].pair, &t) != 0 ||
            !ws_keys_versions_advance(ws->versions, &t)) {
            continue;
        }
        /* Only the connections with a subscription that may cover the key. */
        ws->publish_seq++;
        ws_index_each(ws->index, t.exchange, t.pair, publish_one, &job);
    }
    for (struct ws_server_conn *c = job.touched; c; c = c->touched_next) {
        conn_schedule(c);
    }
}

void ws_server_status(struct ws_server *ws, const char *exchange, const char *state,
                      const char *reason)
{
    if (!ws || ws->shut_down) {
        return;
    }
    for (struct ws_server_conn *c = ws->conns; c; c = c->next) {
        if (c->kind == KIND_STREAM && !c->closing) {
            ws_session_status(c->session, exchange, state, reason);
            conn_schedule(c);
        }
    }
}

void ws_server_removed(struct ws_server *ws, const char *exchange)
{
    if (!ws || ws->shut_down) {
        return;
    }
    for (struct ws_server_conn *c = ws->conns; c; c = c->next) {
        if (c->kind == KIND_STREAM && !c->closing) {
            ws_session_removed(c->session, exchange);
            conn_schedule(c);
        }
    }
}

/* Every SWEEP_MS: a client that stopped reading gets no writeable
 * callbacks, so its backlog is checked here (kernel bytes included). */
static void on_sweep(struct loop_timer *timer, void *data)
{
    struct ws_server *srv = data;
    struct ws_server_conn *c = srv->conns;

    while (c) {
        struct ws_server_conn *next = c->next;
        /* A client we neither wrote to nor have anything due for costs
         * nothing (whatever is due has asked for a writeable callback). */
        if (c->kind == KIND_STREAM && !c->closing && (c->wrote || c->want_write)) {
            conn_over_queue(c, true);
        }
        c->wrote = false;
        c = next;
    }
}

/* ---- Adoption ----------------------------------------------------------- */

/* Best effort: a short answer on a socket we then close ourselves. */
static void answer_and_close(int fd, int status, const char *code, const char *message)
{
    char body[256], text[1024];
    snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
    size_t n = refusal_text(text, sizeof text, status, "", body);
    ssize_t w = send(fd, text, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    close(fd);
}

void ws_server_adopt(int fd, const struct sockaddr *addr, socklen_t len, void *data)
{
    struct ws_server *srv = data;
    lws_sock_file_fd_type sock;

    if (!srv || srv->shut_down || !srv->vhost) {
        answer_and_close(fd, 503, "shutting_down", "the server is shutting down");
        return;
    }
    if (fd >= srv->max_fd) {
        /* libwebsockets sizes its fd table at start and cannot track this
         * one (notes/one-port.md). */
        srv->stats.refused++;
        answer_and_close(fd, 503, "too_many_connections", "out of file descriptors");
        return;
    }
    sock.sockfd = fd;
    /* On failure libwebsockets has closed the fd. */
    if (!lws_adopt_descriptor_vhost(srv->vhost, LWS_ADOPT_HTTP | LWS_ADOPT_SOCKET, sock, NULL,
                                    NULL)) {
        log_warn("ws_server", "libwebsockets could not adopt a connection");
    }
}

/* ---- Life --------------------------------------------------------------- */

struct ws_server *ws_server_new(struct loop *loop, struct api_ctx *ctx, char *err, size_t errlen)
{
    struct ws_server *srv = xcalloc(1, sizeof *srv);
    struct lws_context_creation_info info;
    struct rlimit rl;
    int64_t head = ctx->cfg->limits.max_header_bytes + 1024;

    srv->loop = loop;
    srv->ctx = ctx;
    srv->versions = ws_keys_versions_new();
    srv->index = ws_index_new();
    srv->render = ws_render_new();
    jbuf_init(&srv->tx);
    srv->max_fd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)INT32_MAX
                      ? (int)rl.rlim_cur
                      : 1024;

    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    srv->foreign_loops[0] = loop_native(loop);
    info.foreign_loops = srv->foreign_loops;
    info.user = srv;
    info.pcontext = &srv->lws;
    /* The whole head must fit libwebsockets' header table. */
    info.max_http_header_data = (unsigned short)(head > 65535 ? 65535 : head);
    info.timeout_secs = 10;
    info.retry_and_idle_policy = &idle_policy;
    srv->lws = lws_create_context(&info);
    if (!srv->lws) {
        snprintf(err, errlen,
                 "cannot create the WebSocket server's libwebsockets context (is the libuv "
                 "event-loop plugin, package libwebsockets-evlib-uv, installed?)");
        goto fail;
    }
    srv->vhost = lws_get_vhost_by_name(srv->lws, "default");
    if (!srv->vhost) {
        snprintf(err, errlen, "libwebsockets made no default vhost");
        goto fail;
    }
    srv->sweep = loop_timer_new(loop, on_sweep, srv);
    loop_timer_start(srv->sweep, SWEEP_MS, SWEEP_MS);
    return srv;
fail:
    ws_server_free(srv);
    return NULL;
}

void ws_server_shutdown(struct ws_server *ws)
{
    if (!ws || ws->shut_down) {
        return;
    }
    ws->shut_down = true;
    for (struct ws_server_conn *c = ws->conns; c; c = c->next) {
        conn_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
    }
}

/* The teardown's timer: waits for the clients to finish closing (or the
 * drain time), then makes the first lws_context_destroy and, a few
 * iterations later, stops the loop. */
static void on_teardown_tick(struct loop_timer *timer, void *data)
{
    struct ws_server *srv = data;

    if (srv->destroy_ticks == 0 && srv->n_conns && loop_now_ms(srv->loop) < srv->drain_until) {
        loop_timer_start(timer, DRAIN_TICK_MS, 0);
        return;
    }
    if (srv->destroy_ticks++ == 0 && srv->lws) {
        lws_context_destroy(srv->lws); /* first half: inside the loop */
    }
    if (srv->destroy_ticks < DESTROY_TICKS) {
        loop_timer_start(timer, 1, 0);
    } else {
        loop_stop(srv->loop);
    }
}

void ws_server_free(struct ws_server *ws)
{
    if (!ws) {
        return;
    }
    ws_server_shutdown(ws);
    loop_timer_free(ws->sweep);
    ws->sweep = NULL;
    if (ws->lws) {
        struct loop_timer *t = loop_timer_new(ws->loop, on_teardown_tick, ws);
        ws->destroy_ticks = 0;
        ws->drain_until = loop_now_ms(ws->loop) + WS_SERVER_DRAIN_MS;
        loop_timer_start(t, 0, 0);
        /* Someone else's callback may stop the loop meanwhile: run again. */
        while (ws->destroy_ticks < DESTROY_TICKS) {
            loop_run(ws->loop);
        }
        loop_timer_free(t);
        if (ws->lws) {
            lws_context_destroy(ws->lws); /* second half: uv_run has returned */
        }
    }
    /* Connections still linked had no CLOSED callback (none expected). */
    while (ws->conns) {
        conn_free(ws->conns);
    }
    ws_keys_versions_free(ws->versions);
    ws_index_free(ws->index);
    ws_render_free(ws->render);
    jbuf_free(&ws->tx);
    free(ws);
}

void ws_server_stats(const struct ws_server *ws, struct ws_server_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!ws) {
        return;
    }
    *out = ws->stats;
    out->connections = ws->n_conns;
    out->listeners = ws->n_listeners;
    for (const struct ws_server_conn *c = ws->conns; c; c = c->next) {
        if (c->session) {
            struct ws_session_stats st;
            ws_session_stats(c->session, &st);
            out->conflated += st.conflated;
            out->queue_bytes += ws_session_pending_bytes(c->session, loop_now_ms(ws->loop));
        }
    }
}
