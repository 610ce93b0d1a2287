/*
 * ws_server: the WebSocket server (design in ws_server.h) — the wire
 * (ws_upgrade.c for the handshake, ws_frame.c for frames) on the engine's
 * loop, each connection's life, fan-out, and the limits on what clients
 * make the server hold.
 *
 * Why our own wire code rather than libwebsockets, which this server ran
 * on until the fan-out and hardening work of issues 11 and 16:
 *   - libwebsockets 4.1.6 (Debian 12's) accepts unmasked client frames,
 *     which RFC 6455 5.1 says a server must refuse, and gives its user no
 *     way to see the mask bit; it closes an upgrade without a
 *     Sec-WebSocket-Key, or with %00 in its URL, without an answer; and it
 *     decodes query names, so ?%74oken= authenticated;
 *   - its write path costs two epoll_ctl calls per message (POLLOUT on
 *     to get the writeable callback, off after it) and a pass through its
 *     service loop: a fan-out that writes each message where it is
 *     rendered, with one send() and no poll change unless the kernel
 *     refuses bytes, spends less per message than a bare libwebsockets
 *     server (tests/bench/fanout's floor run) and keeps the latency of the
 *     last of 500 subscribers of an update within a millisecond or two;
 *   - what a connection holds is then ours to count: the bytes waiting in
 *     `out` and in the kernel, not an estimate beside a library's buffers.
 * The server side of RFC 6455 is small (a handshake, a frame reader, a
 * close handshake, idle pings); the client side of operators' streams stays
 * on libwebsockets (engine/net/ws_client.c).
 *
 * The life of a connection:
 *   1. ws_server_adopt: the front door hands over a socket whose whole
 *      head is queued; one recv takes it (and any frames behind it), the
 *      head is checked (ws_upgrade_parse) and then, in this order: path
 *      404, shutting down 503, Origin 403, token 401, ws.max_connections
 *      503, ws.max_per_ip 429, the listener's query 400. A refusal is an
 *      HTTP answer with a JSON body, then the socket is closed (after
 *      reading what the client sent on, so the close is a FIN, not a reset).
 *   2. 101, and a struct ws_server_conn with its ws_session (/v1/stream)
 *      or currency_listener, watched for reading.
 *   3. Reading: frames are taken from each read where they lie; only a
 *      frame cut by the read's end is copied (rx). Writing: messages due
 *      are rendered into one buffer (tx, shared) as frames and sent with
 *      one send() per burst, from wherever they became due — the fan-out
 *      pass, a reply, a timer. What the kernel does not take goes to the
 *      connection's `out`, and only then is the socket watched for
 *      writing; nothing more is rendered for it until `out` is empty (the
 *      session's conflation keeps the latest per key meanwhile).
 *   4. Closing: we close with a code (1008, 1009, 1002/1007 for a protocol
 *      violation, 1001 on shutdown, 1000 when the listener's time is up)
 *      by dropping the session (its memory goes at once) and queueing the
 *      close frame behind `out`; the client has CLOSE_GRACE_MS to read up
 *      to it. Once it is out, our side is shut down (FIN) and the socket
 *      read until the client's close frame or EOF, for at most LINGER_MS.
 *      A client that closes first gets its code echoed, then the FIN.
 *   5. conn_kill takes a connection off the loop and the lists at once
 *      and leaves the struct to a zero-delay reaper timer, so no caller
 *      ever holds a freed connection (the fan-out's touched list, the
 *      sweep's iteration).
 *
 * Every SWEEP_MS the sweep closes timed-out closes and idle peers (a ping
 * after PING_IDLE_MS of silence, dropped after HANGUP_IDLE_MS), counts
 * what each stream connection holds and closes with 1008 those over
 * ws.max_queue_bytes, then, past ws.max_queue_bytes_total in all, the
 * largest holders first; and after clients have released enough memory it
 * hands freed heap pages back to the system (malloc_trim).
 */
#include "ws_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
#include "currency_listener.h"
#include "front_door.h"
#include "store/store.h"
#include "ws_frame.h"
#include "ws_index.h"
#include "ws_keys.h"
#include "ws_render.h"
#include "ws_session.h"
#include "ws_upgrade.h"

#define PATH_STREAM "/v1/stream"
#define PATH_LISTENER "/currency_listener"
/* Messages rendered per send: other connections get their turn between. */
#define WRITE_BURST 16
/* How often the sweep runs, and every how many sweeps a connection that
 * only wrote (its socket never refused bytes) has its kernel queue read. */
#define SWEEP_MS 250
#define KERNEL_CHECK_SWEEPS 4
/* Idle peers: a ping after this much silence, dropped after that much. */
#define PING_IDLE_MS 30000
#define HANGUP_IDLE_MS 75000
/* How long a client we close has to read up to our close frame, and how
 * long we then wait for its close frame or EOF. */
#define CLOSE_GRACE_MS 10000
#define LINGER_MS 2000
/* A refusal reads at most this much of what the client sent on. */
#define DRAIN_MAX 65536
/* Bytes released (closed clients, dropped queues) after which the sweep
 * returns free heap pages to the system, at most once a second. */
#define TRIM_AFTER_BYTES (4u << 20)
#define TRIM_EVERY_MS 1000
/* A connection's rx or out buffer larger than this is freed once empty. */
#define BUF_KEEP_BYTES 4096
#define READ_BUF 65536
#define DRAIN_TICK_MS 10
#define IP_MAX 64
#define IP_SLOTS 4096 /* a power of two */
/* A close frame's payload is at most 125 bytes: the code and 123 more. */
#define CLOSE_REASON_MAX 123

enum conn_kind { KIND_STREAM, KIND_LISTENER };

enum conn_state {
    CONN_OPEN,    /* messages flow */
    CONN_CLOSING, /* our close frame waits in out */
    CONN_LINGER,  /* our side is shut down; waiting for the client's close or EOF */
};

struct ws_server_conn {
    struct ws_server *srv;
    int fd;
    struct loop_io *io;
    int io_events;
    struct ws_server_conn *prev, *next;
    enum conn_kind kind;
    enum conn_state state;
    bool dead;        /* killed: waiting for the reaper */
    bool reader_ok;   /* false after a protocol violation: input is dropped */
    bool broken;      /* a send failed: the socket is gone */
    bool peer_closed; /* the client's close frame arrived */
    bool ping_sent;   /* an idle ping is unanswered */
    bool wrote;       /* sent something since the last kernel check */
    char ip[IP_MAX];
    struct ws_session *session;         /* KIND_STREAM, until closing */
    struct currency_listener *listener; /* KIND_LISTENER, until closing */
    struct loop_timer *timer;           /* KIND_STREAM: the next throttled key */
    uint64_t timer_at;                  /* monotonic ms, 0 = not armed */
    struct ws_frame_reader reader;
    struct jbuf rx;  /* a frame cut by the end of a read */
    struct jbuf out; /* bytes the kernel has not taken yet, from out_off */
    size_t out_off;
    uint64_t last_rx;                    /* monotonic ms of the last frame (or the upgrade) */
    uint64_t deadline;                   /* CLOSING / LINGER: when to give up */
    size_t kernel;                       /* unsent bytes in the kernel, at the last check */
    size_t held;                         /* bytes held at the last sweep, kernel included */
    uint64_t published;                  /* the server's publish_seq this one last saw */
    uint64_t batch_seq;                  /* the server's batch_seq when last touched */
    struct ws_server_conn *touched_next; /* the current batch's touched list */
};

/* Open connections per client address. */
struct ip_count {
    struct ip_count *next;
    size_t n;
    char ip[IP_MAX];
};

struct ws_server {
    struct loop *loop;
    struct api_ctx *ctx;
    struct ws_server_conn *conns;
    size_t n_conns, n_listeners;
    struct ip_count *ips[IP_SLOTS];
    struct ws_server_conn *graveyard; /* killed, freed by the reaper */
    struct loop_timer *reaper;
    struct ws_keys_versions *versions;
    struct ws_index *index;   /* the stream connections' subscriptions */
    struct ws_render *render; /* rate tickers rendered once, shared by the sessions */
    uint64_t publish_seq;     /* one per fanned-out ticker */
    uint64_t batch_seq;       /* one per published batch */
    struct loop_timer *sweep;
    unsigned sweeps;
    char *rbuf; /* reads land here */
    size_t rbuf_cap;
    struct jbuf tx;     /* the frames of one burst */
    size_t queue_total; /* what stream connections held at the last sweep */
    size_t heap_high;   /* their heap bytes at the highest sweep since the last trim */
    size_t released;    /* bytes closed connections released since the last trim */
    uint64_t trimmed_at;
    bool shut_down;
    bool draining;                /* ws_server_free runs the loop */
    uint64_t drain_until;         /* ... until then at most */
    struct ws_server_stats stats; /* cumulative counters */
};

static void conn_pump(struct ws_server_conn *c);

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

/* ---- Writing ------------------------------------------------------------ */

static void conn_watch(struct ws_server_conn *c, int events)
{
    if (c->io_events != events && loop_io_set(c->io, events) == 0) {
        c->io_events = events;
    }
}

static bool conn_blocked(const struct ws_server_conn *c)
{
    return c->out.len > c->out_off;
}

/* Hands bytes to the kernel; what it refuses waits in out, and the socket
 * is watched for writing. A failed socket is marked broken (its read side
 * then reports the end and the connection is killed there). */
static void conn_send(struct ws_server_conn *c, const char *data, size_t len)
{
    ssize_t n = 0;

    if (c->broken || len == 0) {
        return;
    }
    if (!conn_blocked(c)) {
        n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        c->wrote = true;
        if (n == (ssize_t)len) {
            return;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            c->broken = true;
            jbuf_free(&c->out);
            c->out_off = 0;
            conn_watch(c, LOOP_READ);
            return;
        }
        n = n < 0 ? 0 : n;
        jbuf_reset(&c->out);
        c->out_off = 0;
    }
    jbuf_add(&c->out, data + n, len - (size_t)n);
    conn_watch(c, LOOP_READ | LOOP_WRITE);
}

/* Starts a frame in tx: room for the longest header. */
static size_t frame_begin(struct jbuf *tx)
{
    static const char room[WS_FRAME_HEADER_MAX];
    size_t at = tx->len;
    jbuf_add(tx, room, sizeof room);
    return at;
}

/* Ends the frame begun at `at`: its header goes just before the payload
 * and the frame moves down over the unused room. */
static void frame_end(struct jbuf *tx, size_t at, int opcode)
{
    uint8_t head[WS_FRAME_HEADER_MAX];
    size_t payload = tx->len - at - WS_FRAME_HEADER_MAX;
    size_t h = ws_frame_header(head, opcode, payload);

    memcpy(tx->data + at, head, h);
    memmove(tx->data + at + h, tx->data + at + WS_FRAME_HEADER_MAX, payload);
    tx->len = at + h + payload;
}

/* A control frame (ping, pong, close) sent on its own. */
static void conn_control(struct ws_server_conn *c, int opcode, const void *payload, size_t len)
{
    uint8_t frame[2 + WS_FRAME_CONTROL_MAX];

    len = len > WS_FRAME_CONTROL_MAX ? WS_FRAME_CONTROL_MAX : len;
    ws_frame_header(frame, opcode, len);
    memcpy(frame + 2, payload, len);
    conn_send(c, (const char *)frame, 2 + len);
}

/* ---- Closing ------------------------------------------------------------ */

/* The connection's heap bytes, as the allocator counts them. */
static size_t conn_bytes(const struct ws_server_conn *c)
{
    size_t n = ws_session_block_bytes(sizeof *c) + ws_session_block_bytes(c->rx.cap) +
               ws_session_block_bytes(c->out.cap) +
               ws_session_block_bytes(ws_frame_reader_bytes(&c->reader));
    return n + (c->session ? ws_session_bytes(c->session) : 0);
}

/* Drops what the connection would have sent: the session (its
 * subscriptions leave the index) or the listener. */
static void conn_drop_app(struct ws_server_conn *c)
{
    if (c->session) {
        struct ws_session_stats st;
        ws_session_stats(c->session, &st);
        c->srv->stats.conflated += st.conflated;
        c->srv->released += ws_session_bytes(c->session);
        ws_session_free(c->session);
        c->session = NULL;
    }
    currency_listener_free(c->listener);
    c->listener = NULL;
    loop_timer_free(c->timer);
    c->timer = NULL;
}

/* Takes the connection off the loop and the lists; the reaper frees it. */
static void conn_kill(struct ws_server_conn *c)
{
    struct ws_server *srv = c->srv;

    if (c->dead) {
        return;
    }
    c->dead = true;
    conn_drop_app(c);
    loop_io_free(c->io); /* leaves epoll before the fd closes */
    c->io = NULL;
    close(c->fd);
    c->fd = -1;
    srv->released += conn_bytes(c);
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
    ip_add(srv, c->ip, -1);
    c->next = srv->graveyard;
    srv->graveyard = c;
    loop_timer_start(srv->reaper, 0, 0);
}

static void conn_free(struct ws_server_conn *c)
{
    ws_frame_reader_free(&c->reader);
    jbuf_free(&c->rx);
    jbuf_free(&c->out);
    free(c);
}

static void on_reaper(struct loop_timer *timer, void *data)
{
    struct ws_server *srv = data;

    while (srv->graveyard) {
        struct ws_server_conn *c = srv->graveyard;
        srv->graveyard = c->next;
        conn_free(c);
    }
}

/* Our close frame is out: shut our side down and wait for the client's
 * close frame or EOF (a close frame we answered needs no wait). */
static void conn_closed_out(struct ws_server_conn *c)
{
    uint64_t now = loop_now_ms(c->srv->loop);

    shutdown(c->fd, SHUT_WR);
    c->state = CONN_LINGER;
    c->deadline = now + (c->peer_closed ? 0 : LINGER_MS);
    conn_watch(c, LOOP_READ);
}

/* Closes with code and reason: the session is dropped now (its memory is
 * released, nothing more is rendered) and the close frame queued behind
 * what the kernel has not taken; the client has CLOSE_GRACE_MS to read up
 * to it. */
static void conn_close(struct ws_server_conn *c, int code, const char *reason)
{
    uint8_t payload[2 + CLOSE_REASON_MAX];
    size_t n = strlen(reason);

    if (c->state != CONN_OPEN || c->dead) {
        return;
    }
    conn_drop_app(c);
    c->state = CONN_CLOSING;
    c->deadline = loop_now_ms(c->srv->loop) + CLOSE_GRACE_MS;
    n = n > CLOSE_REASON_MAX ? CLOSE_REASON_MAX : n;
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    memcpy(payload + 2, reason, n);
    conn_control(c, WS_FRAME_CLOSE, payload, code == 1005 ? 0 : 2 + n);
    if (!conn_blocked(c) && !c->broken) {
        conn_closed_out(c);
    }
}

/* Bytes the kernel holds unsent on the connection's socket. */
static size_t kernel_unsent(const struct ws_server_conn *c)
{
    int n = 0;
    if (ioctl(c->fd, SIOCOUTQNSD, &n) < 0 || n < 0) {
        return 0;
    }
    return (size_t)n;
}

/* Whether the stream's bytes (held: its heap bytes and the kernel's
 * unsent ones) passed ws.max_queue_bytes; then it closes. */
static bool conn_over_queue(struct ws_server_conn *c, size_t held)
{
    size_t max = (size_t)c->srv->ctx->cfg->ws.max_queue_bytes;
    char reason[CLOSE_REASON_MAX + 1];

    if (held <= max) {
        return false;
    }
    snprintf(reason, sizeof reason, "slow consumer: %zu bytes queued, ws.max_queue_bytes is %zu",
             held, max);
    c->srv->stats.closed_1008++;
    log_info("ws_server", "closing a /v1/stream client of %s with 1008: %s", c->ip, reason);
    conn_close(c, 1008, reason);
    return true;
}

/* ---- Sending messages --------------------------------------------------- */

/* Arms the connection's timer for its next throttled key, if any. */
static void conn_arm(struct ws_server_conn *c, uint64_t now)
{
    uint64_t due = ws_session_next_due(c->session, now);

    if (due > now && due != UINT64_MAX && (!c->timer_at || c->timer_at > due)) {
        c->timer_at = due;
        loop_timer_start(c->timer, due - now, 0);
    }
}

static void pump_stream(struct ws_server_conn *c)
{
    struct ws_server *srv = c->srv;
    uint64_t now = loop_now_ms(srv->loop);
    int64_t wall = loop_wall_ms();
    int sent = 0;

    jbuf_reset(&srv->tx);
    while (sent < WRITE_BURST) {
        size_t at = frame_begin(&srv->tx);
        if (!ws_session_next(c->session, now, wall, &srv->tx)) {
            srv->tx.len = at;
            break;
        }
        frame_end(&srv->tx, at, WS_FRAME_TEXT);
        sent++;
    }
    if (sent) {
        srv->stats.messages_out += (uint64_t)sent;
        conn_send(c, srv->tx.data, srv->tx.len);
    }
    if (conn_blocked(c) || c->broken) {
        return; /* the rest when the kernel has taken this */
    }
    if (ws_session_next_due(c->session, now) <= now) {
        /* A full burst and more due (a snapshot, a backlog): the loop
         * calls back when writable, after the others' turn. */
        conn_watch(c, LOOP_READ | LOOP_WRITE);
    } else {
        conn_arm(c, now);
    }
}

static void pump_listener(struct ws_server_conn *c)
{
    struct ws_server *srv = c->srv;
    size_t at;

    jbuf_reset(&srv->tx);
    at = frame_begin(&srv->tx);
    switch (currency_listener_next(c->listener, loop_wall_ms(), &srv->tx)) {
    case CURRENCY_LISTENER_DONE:
        conn_close(c, 1000, "compat.listener_max_s reached");
        break;
    case CURRENCY_LISTENER_SEND:
        frame_end(&srv->tx, at, WS_FRAME_TEXT);
        srv->stats.messages_out++;
        conn_send(c, srv->tx.data, srv->tx.len);
        break;
    default:
        break;
    }
}

/* Sends what is due, unless the socket is still busy with earlier bytes. */
static void conn_pump(struct ws_server_conn *c)
{
    if (c->state != CONN_OPEN || c->dead || c->broken || conn_blocked(c)) {
        return;
    }
    if (c->kind == KIND_STREAM) {
        pump_stream(c);
    } else {
        pump_listener(c);
    }
}

static void on_conn_timer(struct loop_timer *timer, void *data)
{
    struct ws_server_conn *c = data;
    c->timer_at = 0;
    conn_pump(c);
}

static void on_listener_wake(void *data)
{
    conn_pump(data);
}

/* The kernel took bytes: send the rest of out, then what is due. */
static void conn_writable(struct ws_server_conn *c)
{
    if (conn_blocked(c)) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            c->broken = true;
            jbuf_free(&c->out);
            c->out_off = 0;
            conn_watch(c, LOOP_READ);
            return;
        }
        c->out_off += n > 0 ? (size_t)n : 0;
        c->wrote = true;
        if (conn_blocked(c)) {
            return;
        }
        if (c->out.cap > BUF_KEEP_BYTES) {
            jbuf_free(&c->out);
        } else {
            jbuf_reset(&c->out);
        }
        c->out_off = 0;
    }
    if (c->state == CONN_CLOSING) {
        conn_closed_out(c);
        return;
    }
    conn_watch(c, LOOP_READ);
    conn_pump(c);
}

/* ---- Reading ------------------------------------------------------------ */

/* A protocol violation: close with the reader's code; input is dropped. */
static void conn_fail(struct ws_server_conn *c, const struct ws_frame_event *ev)
{
    char reason[CLOSE_REASON_MAX + 1];

    c->reader_ok = false;
    if (ev->code == 1009) {
        snprintf(reason, sizeof reason, "message too big: ws.max_message_bytes is %zu",
                 c->reader.max_message);
        c->srv->stats.closed_1009++;
    } else {
        snprintf(reason, sizeof reason, "%s", ev->why);
    }
    log_info("ws_server", "closing a client of %s with %u: %s", c->ip, ev->code, reason);
    conn_close(c, ev->code, reason);
}

/* One event from the reader. Returns -1 if the connection was killed. */
static int conn_event(struct ws_server_conn *c, const struct ws_frame_event *ev)
{
    struct ws_server *srv = c->srv;

    c->last_rx = loop_now_ms(srv->loop);
    c->ping_sent = false;
    switch (ev->kind) {
    case WS_FRAME_EV_TEXT:
    case WS_FRAME_EV_BINARY:
        srv->stats.messages_in++;
        if (c->state != CONN_OPEN || c->kind != KIND_STREAM) {
            return 0; /* the listener ignores what its client sends, as the old one did */
        }
        if (ev->kind == WS_FRAME_EV_TEXT) {
            ws_session_receive(c->session, ev->data, ev->len);
        } else {
            ws_session_receive_binary(c->session);
        }
        return 0;
    case WS_FRAME_EV_PING:
        if (c->state == CONN_OPEN) {
            conn_control(c, WS_FRAME_PONG, ev->data, ev->len);
        }
        return 0;
    case WS_FRAME_EV_CLOSE:
        c->peer_closed = true;
        if (c->state == CONN_OPEN) {
            /* Echo the client's code (none when it gave none), then FIN. */
            conn_close(c, ev->code, "");
            return 0;
        }
        if (c->state == CONN_LINGER) {
            conn_kill(c);
            return -1;
        }
        return 0; /* CLOSING: the FIN follows our close frame */
    default:
        return 0;
    }
}

/* Frames in data[0..n) (the shared read buffer, or rx): each whole one is
 * handled where it lies; a cut one is kept in rx. Returns -1 if the
 * connection was killed. */
static int conn_input(struct ws_server_conn *c, uint8_t *data, size_t n)
{
    uint8_t *p = data;
    size_t len = n, off = 0;
    struct ws_frame_event ev;

    if (c->rx.len) {
        jbuf_add(&c->rx, (const char *)data, n);
        p = (uint8_t *)c->rx.data;
        len = c->rx.len;
    }
    while (off < len && c->reader_ok) {
        size_t used = ws_frame_read(&c->reader, p + off, len - off, &ev);
        if (ev.kind == WS_FRAME_EV_FAIL) {
            conn_fail(c, &ev);
            break;
        }
        if (used == 0) {
            break;
        }
        off += used;
        if (ev.kind != WS_FRAME_EV_NONE && conn_event(c, &ev) < 0) {
            return -1;
        }
    }
    if (!c->reader_ok || off == len) {
        jbuf_reset(&c->rx);
    } else if (p == (uint8_t *)c->rx.data) {
        memmove(c->rx.data, c->rx.data + off, len - off);
        c->rx.len = len - off;
    } else {
        jbuf_add(&c->rx, (const char *)p + off, len - off);
    }
    if (!c->rx.len && c->rx.cap > BUF_KEEP_BYTES) {
        jbuf_free(&c->rx);
    }
    return 0;
}

/* The socket is readable: one read (level-triggered polling brings us back
 * for more), its frames, then whatever they made due. Returns -1 if the
 * connection was killed. */
static int conn_read(struct ws_server_conn *c)
{
    struct ws_server *srv = c->srv;
    ssize_t n = recv(c->fd, srv->rbuf, srv->rbuf_cap, 0);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_kill(c); /* the client left, or the socket failed */
        return -1;
    }
    if (n < 0 || c->broken) {
        return 0;
    }
    if (conn_input(c, (uint8_t *)srv->rbuf, (size_t)n) < 0) {
        return -1;
    }
    if (c->state == CONN_OPEN && c->kind == KIND_STREAM &&
        !conn_over_queue(c, conn_bytes(c) + c->kernel)) {
        conn_pump(c);
    }
    return 0;
}

static void on_io(struct loop_io *io, int events, void *data)
{
    struct ws_server_conn *c = data;

    if ((events & (LOOP_READ | LOOP_ERROR)) && conn_read(c) < 0) {
        return;
    }
    if (events & LOOP_WRITE) {
        conn_writable(c);
    }
}

/* ---- Adoption ----------------------------------------------------------- */

/* A stream connection's subscription opened or closed: the fan-out index
 * follows (ws_session_free reports the ones still open, so a closed
 * connection leaves nothing behind). */
static void on_sub_change(void *arg, bool added, const char (*exchanges)[TICKER_EXCHANGE_MAX],
                          size_t n_exchanges, const char (*pairs)[TICKER_PAIR_MAX], size_t n_pairs)
{
    struct ws_server_conn *c = arg;

    if (added) {
        ws_index_add(c->srv->index, c, exchanges, n_exchanges, pairs, n_pairs);
    } else {
        ws_index_remove(c->srv->index, c, exchanges, n_exchanges, pairs, n_pairs);
    }
}

/* The upgrade is accepted: 101, then the connection. Returns NULL if the
 * socket could not take the answer (it is then closed). */
static struct ws_server_conn *conn_new(struct ws_server *srv, int fd, const char *ip,
                                       const struct ws_upgrade *up, enum conn_kind kind,
                                       const struct currency_listener_params *params)
{
    const struct config *cfg = srv->ctx->cfg;
    char accept[WS_UPGRADE_ACCEPT_LEN + 1], head[256];
    struct ws_server_conn *c = xcalloc(1, sizeof *c);
    int n = -1;

    if (ws_upgrade_accept(up->key, accept) == 0) {
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    }
    c->io = n > 0 ? loop_io_new(srv->loop, fd, on_io, c) : NULL;
    if (!c->io) {
        free(c);
        refuse(srv, fd, kind == KIND_LISTENER, 503, "", "unavailable",
               "the server cannot take a connection now");
        return NULL;
    }
    if (send(fd, head, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
        loop_io_free(c->io);
        free(c);
        close(fd);
        return NULL;
    }
    c->srv = srv;
    c->fd = fd;
    c->kind = kind;
    c->reader_ok = true;
    c->last_rx = loop_now_ms(srv->loop);
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    ws_frame_reader_init(&c->reader, (size_t)cfg->ws.max_message_bytes);
    jbuf_init(&c->rx);
    jbuf_init(&c->out);
    conn_watch(c, LOOP_READ);
    c->next = srv->conns;
    if (srv->conns) {
        srv->conns->prev = c;
    }
    srv->conns = c;
    srv->n_conns++;
    srv->n_listeners += kind == KIND_LISTENER;
    ip_add(srv, ip, 1);
    srv->stats.accepted++;
    if (kind == KIND_STREAM) {
        struct ws_session_limits lim = {.max_subs = (size_t)cfg->ws.max_subs,
                                        .snapshot_chunk = (size_t)cfg->ws.snapshot_chunk};
        c->session = ws_session_new(srv->ctx, &lim);
        ws_session_set_watch(c->session, on_sub_change, c);
        ws_session_set_render(c->session, srv->render);
        c->timer = loop_timer_new(srv->loop, on_conn_timer, c);
    } else {
        c->listener =
            currency_listener_new(srv->loop, srv->ctx, params,
                                  (uint64_t)cfg->compat.listener_max_s * 1000, on_listener_wake, c);
        conn_pump(c); /* the first body goes at once */
    }
    return c;
}

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
    struct ws_server_conn *c = conn_new(srv, fd, ip, &up, kind, &params);
    if (c && (size_t)n > head_len) {
        /* Frames that came with the head: the read buffer is not reused
         * before conn_input returns. */
        if (conn_input(c, (uint8_t *)srv->rbuf + head_len, (size_t)n - head_len) == 0 &&
            c->state == CONN_OPEN && kind == KIND_STREAM) {
            conn_pump(c);
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
    /* Each touched connection sends what became due now, in this pass
     * (a throttled key arms its timer instead). */
    for (struct ws_server_conn *c = job.touched; c; c = c->touched_next) {
        conn_pump(c);
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
            conn_pump(c);
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
        if (c->session && c->state == CONN_OPEN) {
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
        log_info("ws_server", "closing a /v1/stream client of %s (%zu bytes) with 1008: %s",
                 v[i]->ip, v[i]->held, reason);
        conn_close(v[i], 1008, reason);
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

static void on_sweep(struct loop_timer *timer, void *data)
{
    struct ws_server *srv = data;
    uint64_t now = loop_now_ms(srv->loop);
    bool kernel_round = ++srv->sweeps % KERNEL_CHECK_SWEEPS == 0;
    struct ws_server_conn *c = srv->conns, *next;
    size_t total = 0, heap = 0;

    for (; c; c = next) {
        next = c->next;
        if (c->state != CONN_OPEN) {
            if (now >= c->deadline) {
                conn_kill(c);
            }
            continue;
        }
        if (c->broken || now >= c->last_rx + HANGUP_IDLE_MS) {
            conn_kill(c); /* a peer that vanished without a FIN */
            continue;
        }
        if (now >= c->last_rx + PING_IDLE_MS && !c->ping_sent) {
            c->ping_sent = true;
            conn_control(c, WS_FRAME_PING, "", 0);
        }
        if (!c->session) {
            continue;
        }
        if (conn_blocked(c) || (kernel_round && c->wrote)) {
            c->kernel = kernel_unsent(c);
            c->wrote = false;
        }
        size_t bytes = conn_bytes(c);
        c->held = bytes + c->kernel;
        if (!conn_over_queue(c, c->held)) {
            total += c->held;
            heap += bytes;
        }
    }
    srv->queue_total = total;
    enforce_total(srv);
    maybe_trim(srv, heap, now);
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
    loop_timer_start(srv->sweep, SWEEP_MS, SWEEP_MS);
    return srv;
}

void ws_server_shutdown(struct ws_server *ws)
{
    if (!ws || ws->shut_down) {
        return;
    }
    ws->shut_down = true;
    for (struct ws_server_conn *c = ws->conns; c; c = c->next) {
        conn_close(c, 1001, "server shutting down");
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
        conn_kill(ws->conns);
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
    for (const struct ws_server_conn *c = ws->conns; c; c = c->next) {
        if (c->session) {
            struct ws_session_stats st;
            ws_session_stats(c->session, &st);
            out->conflated += st.conflated;
        }
    }
}
