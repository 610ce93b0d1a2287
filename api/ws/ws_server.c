/*
 * ws_server: the WebSocket server (design in ws_server.h) — who gets in,
 * fan-out, and the limits on what clients make the server hold; each
 * connection's wire life is ws_peer.c's, on the wire code of ws_upgrade.c
 * (the handshake) and ws_frame.c (frames).
 *
 * Why our own wire code rather than libwebsockets, which this server ran
 * on until the fan-out and hardening work of issues 11 and 16:
 *   - libwebsockets 4.1.6 (Debian 12's) accepts unmasked client frames,
 *     which RFC 6455 5.1 says a server must refuse, and gives its user no
 *     way to see the mask bit; it closes an upgrade without a
 *     Sec-WebSocket-Key, or with %00 in its URL, without an answer; and it
 *     decodes query names, so ?%74oken= authenticated;
 *   - its write path costs two epoll_ctl calls per message (POLLOUT on
 *     to get the writeable callback, off after it; a quarter of a bare
 *     libwebsockets server's time) and a pass through its service loop: a
 *     fan-out that writes each message where it is rendered, with one
 *     send() and no poll change unless the kernel refuses bytes, spends
 *     0.5-0.8x what that bare server does per message (tests/bench/fanout's
 *     floor run; docs/benchmarks.md);
 *   - what a connection holds is then ours to count: the bytes waiting in
 *     `out` and in the kernel, not an estimate beside a library's buffers.
 * The server side of RFC 6455 is small (a handshake, a frame reader, a
 * close handshake, idle pings); the client side of operators' streams stays
 * on libwebsockets (engine/net/ws_client.c).
 *
 * The life of a connection: ws_server_adopt gets a socket from the front
 * door with its whole head queued; one recv takes it (and any frames
 * behind it), the head is checked (ws_upgrade_parse) and then, in this
 * order: path 404, shutting down 503, Origin 403, token 401,
 * ws.max_connections 503, ws.max_per_ip 429, the listener's query 400. A
 * refusal is an HTTP answer with a JSON body, then the socket is closed
 * (after reading what the client sent on, so the close is a FIN, not a
 * reset). An accepted one gets its 101 and is a connection (ws_peer.c,
 * which says how reading, writing and closing go).
 *
 * Every SWEEP_ROUND_MS the sweep, a slice of connections every
 * SWEEP_TICK_MS, closes timed-out closes and idle peers (a ping
 * after PING_IDLE_MS of silence, dropped after HANGUP_IDLE_MS), counts
 * what each connection holds and closes with 1008 those over
 * ws.max_queue_bytes, then, past ws.max_queue_bytes_total in all, the
 * largest holders first; and after clients have released enough memory it
 * hands freed heap pages back to the system (malloc_trim).
 */
#include "ws_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "auth.h"
#include "config/config.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "front_door.h"
#include "store/store.h"
#include "ws_index.h"
#include "ws_keys.h"
#include "ws_render.h"
#include "ws_server_int.h"
#include "ws_session.h"

#define PATH_STREAM "/v1/stream"
#define PATH_LISTENER "/currency_listener"
/* The sweep visits every connection once per round, a slice every tick:
 * at 10,000 connections a round at once (an ioctl each) held the loop for
 * 10-20 ms, which the fan-out's p99 showed. */
#define SWEEP_TICK_MS 25
#define SWEEP_ROUND_MS 1000
/* Idle peers: a ping after this much silence, dropped after that much. */
#define PING_IDLE_MS 30000
#define HANGUP_IDLE_MS 75000
/* A refusal reads at most this much of what the client sent on. */
#define DRAIN_MAX 65536
/* Bytes released (queues drained, clients closed) after which the sweep
 * returns free heap pages to the system, at most once a second. */
#define TRIM_AFTER_BYTES (4u << 20)
#define TRIM_EVERY_MS 1000
#define READ_BUF 65536
#define DRAIN_TICK_MS 10

/* ---- Client addresses --------------------------------------------------- */

static struct ip_count **ip_slot(struct ws_server *srv, const char *ip)
{
    uint64_t h = hash_bytes(HASH_FNV_OFFSET, ip, strlen(ip));
    struct ip_count **pp = &srv->ips[h & (IP_SLOTS - 1)];
    while (*pp && strcmp((*pp)->ip, ip) != 0) {
        pp = &(*pp)->next;
    }
    return pp;
}

static size_t ip_conns(struct ws_server *srv, const char *ip)
{
    struct ip_count *e = *ip_slot(srv, ip);
    return e ? e->n : 0;
}

static void ip_add(struct ws_server *srv, const char *ip, int delta)
{
    struct ip_count **pp = ip_slot(srv, ip);

    if (!*pp) {
        *pp = xcalloc(1, sizeof **pp);
        snprintf((*pp)->ip, sizeof(*pp)->ip, "%s", ip);
    }
    (*pp)->n += (size_t)delta;
    if ((*pp)->n == 0) {
        struct ip_count *e = *pp;
        *pp = e->next;
        free(e);
    }
}

static void ip_text(const struct sockaddr *addr, socklen_t len, char *out, size_t cap)
{
    out[0] = '\0';
    if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, out, (socklen_t)cap);
    } else if (addr && addr->sa_family == AF_INET6 &&
               len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, out, (socklen_t)cap);
    }
}

/* ---- The list of connections -------------------------------------------- */

void ws_server_link(struct ws_server *srv, struct ws_server_conn *c)
{
    c->next = srv->conns;
    if (srv->conns) {
        srv->conns->prev = c;
    }
    srv->conns = c;
    srv->n_conns++;
    srv->n_listeners += c->kind == KIND_LISTENER;
    ip_add(srv, c->ip, 1);
    srv->stats.accepted++;
}

void ws_server_forget(struct ws_server *srv, struct ws_server_conn *c)
{
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        srv->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    if (srv->cursor == c) {
        srv->cursor = c->next; /* the sweep's round goes on past it */
    }
    srv->n_conns--;
    srv->n_listeners -= c->kind == KIND_LISTENER;
    ip_add(srv, c->ip, -1);
    c->next = srv->graveyard;
    srv->graveyard = c;
    loop_timer_start(srv->reaper, 0, 0);
}

static void on_reaper(struct loop_timer *timer, void *data)
{
    struct ws_server *srv = data;

    while (srv->graveyard) {
        struct ws_server_conn *c = srv->graveyard;
        srv->graveyard = c->next;
        ws_peer_free(c);
    }
}

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
    case 405:
        return "Method Not Allowed";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    default:
        return "Service Unavailable";
    }
}

/* Sends a whole HTTP answer (extra: "" or "Name: value\r\n" lines) and
 * closes the socket: what the client sent on is read and dropped first
 * (bounded), since closing with unread bytes would reset the connection
 * and some clients then lose the answer. */
static void answer_and_close(int fd, int status, const char *extra, const char *body)
{
    char head[512], sink[4096];
    struct jbuf b;
    size_t drained = 0;
    ssize_t n;

    snprintf(head, sizeof head,
             "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
             status, status_text(status), strlen(body), extra);
    jbuf_init(&b);
    jbuf_adds(&b, head);
    jbuf_adds(&b, body);
    n = send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n; /* best effort: a client that cannot take 1 KB is gone anyway */
    jbuf_free(&b);
    shutdown(fd, SHUT_WR);
    while (drained < DRAIN_MAX && (n = recv(fd, sink, sizeof sink, MSG_DONTWAIT)) > 0) {
        drained += (size_t)n;
    }
    close(fd);
}

/* A refusal in the v1 shape ({"error":...}) or the old service's
 * ({"detail": message}) on /currency_listener. */
static void refuse(struct ws_server *srv, int fd, bool compat, int status, const char *extra,
                   const char *code, const char *message)
{
    struct jbuf b;

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
    srv->stats.refused++;
    answer_and_close(fd, status, extra, b.data);
    jbuf_free(&b);
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
 * then ?token=. *presented tells a wrong token from a missing one; -1 when
 * the token argument is malformed. */
static int check_token(struct ws_server *srv, const struct ws_upgrade *up, bool *presented,
                       enum auth_level *level)
{
    char buf[AUTH_TOKEN_MAX + 64];
    int rc = 0;

    *presented = false;
    *level = AUTH_DENIED;
    if (up->authorization) {
        *presented = true;
        *level = auth_check_bearer(srv->ctx->auth, up->authorization);
    }
    if (*level == AUTH_DENIED) {
        int found = ws_upgrade_arg(up, "token", buf, sizeof buf);
        if (found < 0) {
            rc = -1;
        } else if (found) {
            *presented = true;
            *level = auth_check_token(srv->ctx->auth, buf, strlen(buf));
        }
    }
    explicit_bzero(buf, sizeof buf);
    return rc;
}

/* A query argument of the listener: NULL when absent, *bad when malformed. */
static const char *listener_arg(const struct ws_upgrade *up, const char *name, char *buf,
                                size_t cap, bool *bad)
{
    int found = ws_upgrade_arg(up, name, buf, cap);
    *bad = *bad || found < 0;
    return found > 0 ? buf : NULL;
}

/*
 * The checks of an upgrade (order in ws_server.h). Returns 0 to accept,
 * or 1 after refusing (the socket is then closed).
 */
static int filter(struct ws_server *srv, int fd, const struct ws_upgrade *up, const char *ip,
                  enum conn_kind *kind, struct currency_listener_params *params)
{
    const struct config *cfg = srv->ctx->cfg;
    char msg[256];
    bool compat, presented;
    enum auth_level level;

    if (strcmp(up->path, PATH_STREAM) == 0) {
        *kind = KIND_STREAM;
    } else if (strcmp(up->path, PATH_LISTENER) == 0) {
        *kind = KIND_LISTENER;
    } else {
        snprintf(msg, sizeof msg, "no WebSocket endpoint at %.100s: use %s or %s", up->path,
                 PATH_STREAM, PATH_LISTENER);
        refuse(srv, fd, false, 404, "", "not_found", msg);
        return 1;
    }
    compat = *kind == KIND_LISTENER;
    if (srv->shut_down) {
        refuse(srv, fd, compat, 503, "", "shutting_down", "the server is shutting down");
        return 1;
    }
    if (cfg->n_allowed_origins && up->origin && !origin_allowed(cfg, up->origin)) {
        refuse(srv, fd, compat, 403, "", "origin_not_allowed",
               "Origin not allowed: it is not in allowed_origins");
        return 1;
    }
    if (auth_required(srv->ctx->auth) && !auth_public_path(cfg, up->path)) {
        if (check_token(srv, up, &presented, &level) < 0) {
            refuse(srv, fd, compat, 400, "", "bad_request",
                   "the token argument is malformed (a bad %-escape or a control byte)");
            return 1;
        }
        if (level == AUTH_DENIED) {
            refuse(srv, fd, compat, 401, "WWW-Authenticate: Bearer\r\n", "unauthorized",
                   presented ? "Invalid authentication credentials"
                             : "Not authenticated: send the header Authorization: Bearer "
                               "<token>, or ?token=<token>");
            return 1;
        }
    }
    if ((int64_t)srv->n_conns >= cfg->ws.max_connections) {
        snprintf(msg, sizeof msg, "too many WebSocket connections (ws.max_connections %lld)",
                 (long long)cfg->ws.max_connections);
        refuse(srv, fd, compat, 503, "Retry-After: 5\r\n", "too_many_connections", msg);
        return 1;
    }
    if ((int64_t)ip_conns(srv, ip) >= cfg->ws.max_per_ip) {
        snprintf(msg, sizeof msg, "too many WebSocket connections from %s (ws.max_per_ip %lld)", ip,
                 (long long)cfg->ws.max_per_ip);
        refuse(srv, fd, compat, 429, "Retry-After: 5\r\n", "too_many_connections", msg);
        return 1;
    }
    if (*kind == KIND_LISTENER) {
        char ex[CURRENCY_LISTENER_PARAM_MAX + 16], pair[CURRENCY_LISTENER_PARAM_MAX + 16], freq[64];
        bool bad = false;
        struct jbuf err;
        const char *a_ex = listener_arg(up, "exchange", ex, sizeof ex, &bad);
        const char *a_pair = listener_arg(up, "pair", pair, sizeof pair, &bad);
        const char *a_freq = listener_arg(up, "frequency_timeout", freq, sizeof freq, &bad);
        if (bad) {
            refuse(srv, fd, true, 400, "", "bad_request",
                   "a query argument is malformed (a bad %-escape or a control byte)");
            return 1;
        }
        jbuf_init(&err);
        int status =
            currency_listener_parse(srv->ctx, a_ex, a_pair, a_freq, loop_wall_ms(), params, &err);
        if (status) {
            srv->stats.refused++;
            answer_and_close(fd, status, "", err.data);
        }
        jbuf_free(&err);
        return status ? 1 : 0;
    }
    return 0;
}

/* ---- Adoption ----------------------------------------------------------- */

void ws_server_adopt(int fd, const struct sockaddr *addr, socklen_t len, void *data)
{
    struct ws_server *srv = data;
    struct ws_upgrade up;
    struct currency_listener_params params;
    enum conn_kind kind = KIND_STREAM;
    char ip[IP_MAX];
    size_t head_len = 0;
    ssize_t n;
    int status;

    if (!srv || srv->shut_down) {
        if (srv) {
            srv->stats.refused++;
        }
        answer_and_close(fd, 503, "",
                         "{\"error\":{\"code\":\"shutting_down\",\"message\":\"the server is "
                         "shutting down\"}}");
        return;
    }
    /* The whole head is queued (the front door waited for it): one read
     * takes it, and any frames a client sent right behind it. */
    n = recv(fd, srv->rbuf, srv->rbuf_cap, MSG_DONTWAIT);
    if (n <= 0 || front_door_scan(srv->rbuf, (size_t)n, &head_len) == FRONT_DOOR_HEAD_PARTIAL) {
        refuse(srv, fd, false, 400, "", "bad_request", "the request head is incomplete");
        return;
    }
    status = ws_upgrade_parse(srv->rbuf, head_len, &up);
    if (status) {
        bool compat = up.path && strcmp(up.path, PATH_LISTENER) == 0;
        refuse(srv, fd, compat, status,
               status == 426   ? "Sec-WebSocket-Version: 13\r\n"
               : status == 405 ? "Allow: GET\r\n"
                               : "",
               status == 405 ? "method_not_allowed" : "bad_request", up.error);
        return;
    }
    ip_text(addr, len, ip, sizeof ip);
    if (filter(srv, fd, &up, ip, &kind, &params)) {
        return;
    }
    struct ws_server_conn *c = ws_peer_new(srv, fd, ip, &up, kind, &params);
    if (!c) {
        refuse(srv, fd, kind == KIND_LISTENER, 503, "", "unavailable",
               "the server cannot take a connection now");
        return;
    }
    if ((size_t)n > head_len) {
        /* Frames that came with the head: the read buffer is not reused
         * before conn_input returns. */
        if (ws_peer_input(c, (uint8_t *)srv->rbuf + head_len, (size_t)n - head_len) == 0 &&
            c->state == CONN_OPEN && kind == KIND_STREAM) {
            ws_peer_pump(c);
        }
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
    /* A publish only marks a key dirty: the state is bounded by the keys,
     * so the backlog is the sweep's to check, not each publish's. */
    if (c->session && ws_session_publish(c->session, job->t, job->now) &&
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
        /* A key no subscription may cover is not even read (under full-speed
         * replay most changed keys are such). The latest value: a key that
         * changed again since it was put is pushed once, as it is now; a
         * removed one not at all. */
        if (!ws_index_any(ws->index, keys[i].exchange, keys[i].pair) ||
            store_get(ws->ctx->store, keys[i].exchange, keys[i].pair, &t) != 0 ||
            !ws_keys_versions_advance(ws->versions, &t)) {
            continue;
        }
        /* Only the connections with a subscription that may cover the key. */
        ws->publish_seq++;
        ws_index_each(ws->index, t.exchange, t.pair, publish_one, &job);
    }
    /* Each touched connection sends what became due now, in this pass
     * (a throttled key arms its timer instead). */
    for (struct ws_server_conn *c = job.touched; c; c = c->touched_next) {
        ws_peer_pump(c);
    }
}

/* Status and removed events to every stream connection (the session
 * decides whether it covers the exchange). */
static void broadcast(struct ws_server *ws, const char *exchange, const char *state,
                      const char *reason)
{
    for (struct ws_server_conn *c = ws->conns; c; c = c->next) {
        if (c->session && c->state == CONN_OPEN) {
            if (state) {
                ws_session_status(c->session, exchange, state, reason);
            } else {
                ws_session_removed(c->session, exchange);
            }
            ws_peer_pump(c);
        }
    }
}

void ws_server_status(struct ws_server *ws, const char *exchange, const char *state,
                      const char *reason)
{
    if (ws && !ws->shut_down) {
        broadcast(ws, exchange, state ? state : "", reason);
    }
}

void ws_server_removed(struct ws_server *ws, const char *exchange)
{
    if (ws && !ws->shut_down) {
        broadcast(ws, exchange, NULL, NULL);
    }
}

/* ---- The sweep ---------------------------------------------------------- */

static int held_desc(const void *a, const void *b)
{
    const struct ws_server_conn *x = *(struct ws_server_conn *const *)a;
    const struct ws_server_conn *y = *(struct ws_server_conn *const *)b;
    return x->held < y->held ? 1 : x->held > y->held ? -1 : 0;
}

/* Past ws.max_queue_bytes_total: the connections holding the most are
 * closed first (a slow consumer's queue is the one that grows) until the
 * rest fit. */
static void enforce_total(struct ws_server *srv)
{
    size_t cap = (size_t)srv->ctx->cfg->ws.max_queue_bytes_total;
    struct ws_server_conn **v;
    size_t n = 0;
    char reason[CLOSE_REASON_MAX + 1];

    if (srv->queue_total <= cap) {
        return;
    }
    v = xmalloc(srv->n_conns * sizeof *v);
    for (struct ws_server_conn *c = srv->conns; c; c = c->next) {
        if (c->state == CONN_OPEN) {
            v[n++] = c;
        }
    }
    qsort(v, n, sizeof *v, held_desc);
    for (size_t i = 0; i < n && srv->queue_total > cap; i++) {
        snprintf(reason, sizeof reason,
                 "slow consumer: the server's queues hold %zu bytes, ws.max_queue_bytes_total "
                 "is %zu",
                 srv->queue_total, cap);
        srv->queue_total -= v[i]->held;
        srv->stats.closed_1008++;
        log_info("ws_server", "closing a %s client of %s (%zu bytes) with 1008: %s",
                 v[i]->kind == KIND_STREAM ? "/v1/stream" : "/currency_listener", v[i]->ip,
                 v[i]->held, reason);
        ws_peer_close(v[i], 1008, reason);
    }
    free(v);
}

/* Freed heap pages go back to the system once clients have released
 * enough — queues drained, connections closed — since the last time:
 * glibc keeps them otherwise (113-147 MB stayed after 100 clients that
 * held 179 MB had gone). heap is what the connections hold now. */
static void maybe_trim(struct ws_server *srv, size_t heap, uint64_t now)
{
    srv->heap_high = heap > srv->heap_high ? heap : srv->heap_high;
    if (srv->heap_high - heap + srv->released < TRIM_AFTER_BYTES ||
        now < srv->trimmed_at + TRIM_EVERY_MS) {
        return;
    }
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    srv->heap_high = heap;
    srv->released = 0;
    srv->trimmed_at = now;
}

/* One connection's turn in the round: timeouts, idle pings, what it
 * holds (its kernel queue read if it wrote since its last turn). */
static void sweep_one(struct ws_server *srv, struct ws_server_conn *c, uint64_t now)
{
    if (c->state != CONN_OPEN) {
        if (now >= c->deadline) {
            ws_peer_kill(c);
        }
        return;
    }
    if (c->broken || now >= c->last_rx + HANGUP_IDLE_MS) {
        ws_peer_kill(c); /* a peer that vanished without a FIN */
        return;
    }
    if (now >= c->last_rx + PING_IDLE_MS && !c->ping_sent) {
        c->ping_sent = true;
        ws_peer_control(c, WS_FRAME_PING, "", 0);
    }
    if (c->session) {
        struct ws_session_stats st;
        ws_session_stats(c->session, &st);
        c->conflated_seen = st.conflated;
        srv->round_conflated += st.conflated;
    }
    if (c->wrote || ws_peer_blocked(c)) {
        c->kernel = ws_peer_kernel_unsent(c);
        c->wrote = false;
    }
    size_t bytes = ws_peer_bytes(c);
    c->held = bytes + c->kernel;
    if (!ws_peer_over_queue(c, c->held)) {
        srv->round_total += c->held;
        srv->round_heap += bytes;
    }
}

/* Every SWEEP_TICK_MS: the next slice of the round; at the round's end,
 * its sums become the server's and the total cap and the trim look at
 * them. Connections that join during a round wait for the next. */
static void on_sweep(struct loop_timer *timer, void *data)
{
    struct ws_server *srv = data;
    uint64_t now = loop_now_ms(srv->loop);
    size_t slice = srv->n_conns * SWEEP_TICK_MS / SWEEP_ROUND_MS + 1;

    if (!srv->in_round) {
        srv->in_round = true;
        srv->cursor = srv->conns;
        srv->round_total = srv->round_heap = 0;
        srv->round_conflated = 0;
    }
    while (srv->cursor && slice--) {
        struct ws_server_conn *c = srv->cursor;
        srv->cursor = c->next;
        sweep_one(srv, c, now);
    }
    if (srv->cursor) {
        return;
    }
    srv->in_round = false;
    srv->queue_total = srv->round_total;
    srv->conflated = srv->round_conflated;
    enforce_total(srv);
    maybe_trim(srv, srv->round_heap, now);
}

/* ---- Life --------------------------------------------------------------- */

struct ws_server *ws_server_new(struct loop *loop, struct api_ctx *ctx, char *err, size_t errlen)
{
    struct ws_server *srv = xcalloc(1, sizeof *srv);

    (void)err;
    (void)errlen;
    srv->loop = loop;
    srv->ctx = ctx;
    srv->versions = ws_keys_versions_new();
    srv->index = ws_index_new();
    srv->render = ws_render_new();
    jbuf_init(&srv->tx);
    /* A head and what follows it in one read. */
    srv->rbuf_cap = READ_BUF + (size_t)ctx->cfg->limits.max_header_bytes;
    srv->rbuf = xmalloc(srv->rbuf_cap);
    srv->reaper = loop_timer_new(loop, on_reaper, srv);
    srv->sweep = loop_timer_new(loop, on_sweep, srv);
    loop_timer_start(srv->sweep, SWEEP_TICK_MS, SWEEP_TICK_MS);
    return srv;
}

void ws_server_shutdown(struct ws_server *ws)
{
    if (!ws || ws->shut_down) {
        return;
    }
    ws->shut_down = true;
    for (struct ws_server_conn *c = ws->conns; c; c = c->next) {
        ws_peer_close(c, 1001, "server shutting down");
    }
}

/* ws_server_free's timer: stops the loop once every client is gone or the
 * drain time is up. */
static void on_drain_tick(struct loop_timer *timer, void *data)
{
    struct ws_server *srv = data;
    uint64_t now = loop_now_ms(srv->loop);

    if (srv->n_conns && now < srv->drain_until) {
        loop_timer_start(timer, DRAIN_TICK_MS, 0);
        return;
    }
    srv->draining = false;
    loop_stop(srv->loop);
}

void ws_server_free(struct ws_server *ws)
{
    if (!ws) {
        return;
    }
    ws_server_shutdown(ws);
    if (ws->n_conns) {
        /* Let the close frames go out and the clients answer them. */
        struct loop_timer *t = loop_timer_new(ws->loop, on_drain_tick, ws);
        ws->drain_until = loop_now_ms(ws->loop) + WS_SERVER_DRAIN_MS;
        ws->draining = true;
        loop_timer_start(t, 0, 0);
        /* Someone else's callback may stop the loop meanwhile: run again. */
        while (ws->draining) {
            loop_run(ws->loop);
        }
        loop_timer_free(t);
    }
    while (ws->conns) {
        ws_peer_kill(ws->conns);
    }
    on_reaper(ws->reaper, ws);
    loop_timer_free(ws->reaper);
    loop_timer_free(ws->sweep);
    for (size_t i = 0; i < IP_SLOTS; i++) {
        while (ws->ips[i]) {
            struct ip_count *e = ws->ips[i];
            ws->ips[i] = e->next;
            free(e);
        }
    }
    ws_keys_versions_free(ws->versions);
    ws_index_free(ws->index);
    ws_render_free(ws->render);
    jbuf_free(&ws->tx);
    free(ws->rbuf);
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
    out->queue_bytes = ws->queue_total;
    out->conflated += ws->conflated;
}
