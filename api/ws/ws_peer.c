/*
 * ws_peer: one WebSocket connection's wire life on the API loop — the
 * bytes in (frames read where they lie), the messages out (rendered as
 * frames and sent as they become due), the close handshake, and what the
 * connection holds. The server (ws_server.c) decides who gets in, fans out
 * and sweeps; this file is what happens on one socket.
 *
 *   - Reading: each read's frames are handled in the read buffer
 *     (ws_frame_read unmasks in place); only a frame cut by the read's end
 *     is copied, to rx.
 *   - Writing: the messages due are rendered into one buffer (tx, shared)
 *     as frames — room for the longest header first, the header then put
 *     just before the payload — and sent with one send() per burst of at
 *     most WRITE_BURST, from wherever they became due: the fan-out pass, a
 *     reply, a timer. What the kernel does not take goes to the
 *     connection's out, and only then is the socket watched for writing;
 *     nothing more is rendered for it until out is empty (the session's
 *     conflation keeps the latest per key meanwhile). A socket is watched
 *     for writing only while it refuses bytes (or after a full burst, to
 *     come back after the others): no epoll_ctl per message.
 *   - Closing: we close with a code (1008, 1009, 1002/1007 for a protocol
 *     violation, 1001 on shutdown, 1000 when the listener's time is up)
 *     by dropping the session (its memory goes at once) and queueing the
 *     close frame behind out; the client has CLOSE_GRACE_MS to read up to
 *     it. Once it is out, our side is shut down (FIN) and the socket read
 *     until the client's close frame or EOF, for at most LINGER_MS. A
 *     client that closes first gets its code echoed, then the FIN.
 *   - Killing takes a connection off the loop and the server's lists at
 *     once and leaves the struct to the server's zero-delay reaper, so no
 *     caller ever holds a freed connection (the fan-out's touched list,
 *     the sweep's iteration). A send that fails only marks the connection
 *     broken: its read side then reports the end, and it is killed there.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "ws_index.h"
#include "ws_server_int.h"
#include "ws_session.h"

/* Messages rendered per send: other connections get their turn between. */
#define WRITE_BURST 16
/* How long a client we close has to read up to our close frame, and how
 * long we then wait for its close frame or EOF. */
#define CLOSE_GRACE_MS 10000
#define LINGER_MS 2000
/* A connection's rx or out buffer larger than this is freed once empty. */
#define BUF_KEEP_BYTES 4096

/* ---- Writing ------------------------------------------------------------ */

static void conn_watch(struct ws_server_conn *c, int events)
{
    if (c->io_events != events && loop_io_set(c->io, events) == 0) {
        c->io_events = events;
    }
}

bool ws_peer_blocked(const struct ws_server_conn *c)
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
    if (!ws_peer_blocked(c)) {
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
void ws_peer_control(struct ws_server_conn *c, int opcode, const void *payload, size_t len)
{
    uint8_t frame[2 + WS_FRAME_CONTROL_MAX];

    len = len > WS_FRAME_CONTROL_MAX ? WS_FRAME_CONTROL_MAX : len;
    ws_frame_header(frame, opcode, len);
    memcpy(frame + 2, payload, len);
    conn_send(c, (const char *)frame, 2 + len);
}

/* ---- Closing ------------------------------------------------------------ */

/* The connection's heap bytes, as the allocator counts them. */
size_t ws_peer_bytes(const struct ws_server_conn *c)
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
        /* The sweep's sum loses this session and the total gains all of
         * it, so the counter only grows. */
        c->srv->conflated -= c->conflated_seen;
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
void ws_peer_kill(struct ws_server_conn *c)
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
    srv->released += ws_peer_bytes(c);
    ws_server_forget(srv, c);
}

void ws_peer_free(struct ws_server_conn *c)
{
    ws_frame_reader_free(&c->reader);
    jbuf_free(&c->rx);
    jbuf_free(&c->out);
    free(c);
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
void ws_peer_close(struct ws_server_conn *c, int code, const char *reason)
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
    ws_peer_control(c, WS_FRAME_CLOSE, payload, code == 1005 ? 0 : 2 + n);
    if (!ws_peer_blocked(c) && !c->broken) {
        conn_closed_out(c);
    }
}

/* Bytes the kernel holds unsent on the connection's socket. */
size_t ws_peer_kernel_unsent(const struct ws_server_conn *c)
{
    int n = 0;
    if (ioctl(c->fd, SIOCOUTQNSD, &n) < 0 || n < 0) {
        return 0;
    }
    return (size_t)n;
}

/* Whether the stream's bytes (held: its heap bytes and the kernel's
 * unsent ones) passed ws.max_queue_bytes; then it closes. */
bool ws_peer_over_queue(struct ws_server_conn *c, size_t held)
{
    size_t max = (size_t)c->srv->ctx->cfg->ws.max_queue_bytes;
    char reason[CLOSE_REASON_MAX + 1];

    if (held <= max) {
        return false;
    }
    snprintf(reason, sizeof reason, "slow consumer: %zu bytes queued, ws.max_queue_bytes is %zu",
             held, max);
    c->srv->stats.closed_1008++;
    log_info("ws_server", "closing a %s client of %s with 1008: %s",
             c->kind == KIND_STREAM ? "/v1/stream" : "/currency_listener", c->ip, reason);
    ws_peer_close(c, 1008, reason);
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
        if (ws_peer_blocked(c) && !c->broken) {
            /* The socket refused bytes: the moment to count its kernel
             * queue (a slow consumer's grows there first). */
            c->kernel = ws_peer_kernel_unsent(c);
            ws_peer_over_queue(c, ws_peer_bytes(c) + c->kernel);
        }
    }
    if (ws_peer_blocked(c) || c->broken || c->state != CONN_OPEN) {
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
        ws_peer_close(c, 1000, "compat.listener_max_s reached");
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
void ws_peer_pump(struct ws_server_conn *c)
{
    if (c->state != CONN_OPEN || c->dead || c->broken || ws_peer_blocked(c)) {
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
    ws_peer_pump(c);
}

static void on_listener_wake(void *data)
{
    ws_peer_pump(data);
}

/* The kernel took bytes: send the rest of out, then what is due. */
static void conn_writable(struct ws_server_conn *c)
{
    if (ws_peer_blocked(c)) {
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
        if (ws_peer_blocked(c)) {
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
    ws_peer_pump(c);
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
    ws_peer_close(c, ev->code, reason);
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
            ws_peer_control(c, WS_FRAME_PONG, ev->data, ev->len);
        }
        return 0;
    case WS_FRAME_EV_CLOSE:
        c->peer_closed = true;
        if (c->state == CONN_OPEN) {
            /* Echo the client's code (none when it gave none), then FIN. */
            ws_peer_close(c, ev->code, "");
            return 0;
        }
        if (c->state == CONN_LINGER) {
            ws_peer_kill(c);
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
int ws_peer_input(struct ws_server_conn *c, uint8_t *data, size_t n)
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
        ws_peer_kill(c); /* the client left, or the socket failed */
        return -1;
    }
    if (n < 0 || c->broken) {
        return 0;
    }
    if (ws_peer_input(c, (uint8_t *)srv->rbuf, (size_t)n) < 0) {
        return -1;
    }
    /* Every client's limit: a listener's client answers nothing but its
     * pings are, and a client that sends pings without reading grows out. */
    if (c->state == CONN_OPEN && !ws_peer_over_queue(c, ws_peer_bytes(c) + c->kernel) &&
        c->kind == KIND_STREAM) {
        ws_peer_pump(c);
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

/* ---- A new connection --------------------------------------------------- */

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

struct ws_server_conn *ws_peer_new(struct ws_server *srv, int fd, const char *ip,
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
    ws_server_link(srv, c);
    /* The 101 takes the path of every frame: what the kernel does not take
     * waits in out, ahead of them. */
    conn_send(c, head, (size_t)n);
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
        ws_peer_pump(c); /* the first body goes at once */
    }
    return c;
}
