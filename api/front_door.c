/*
 * front_door: accept, peek at the head, hand off.
 *
 * The REST server (libmicrohttpd) and the WebSocket server (api/ws, our
 * own on the loop) share one port. Neither shares a listen socket, but both
 * adopt an accepted one and read the request from its start, so the front
 * door only looks: it peeks (MSG_PEEK) until it has a whole head, decides
 * from one header which server it belongs to and hands the fd over with the
 * head still queued. The rules below are the measured traps of notes/one-port.md.
 *
 * The fast path. Each wake-up of the listen socket accepts up to
 * max_accepts_per_wake connections and peeks once at each. A head that has
 * already arrived is dispatched at once, with no allocation and no handle.
 *
 * The slow path. Otherwise the connection is parked: a heap struct, a
 * loop_io watching it for reading, and a place in the pending FIFO. Peeking
 * leaves the bytes queued, so under level-triggered polling the fd would stay
 * readable and the loop would spin (391,233 wake-ups for one head sent in two
 * parts, measured); so after a partial peek of n bytes SO_RCVLOWAT becomes
 * n + 1 and the kernel wakes us only for more data, an EOF or an error.
 * A wake-up that brings no new byte then means the peer has shut down its
 * side or failed (peer_gone checks): its head can never complete, and it is
 * closed rather than left to spin until the timeout.
 *
 * Head timeouts. Every parked connection has the same timeout, counted from
 * accept, so the FIFO of pending connections is also in deadline order and
 * one timer serves them all: it fires for the oldest, answers 408 to every
 * connection past its deadline and re-arms for the next.
 *
 * Hand-off. Before ops->rest or ops->ws gets the fd: SO_RCVLOWAT goes back to
 * 1 (with it left at n + 1, a small WebSocket frame after a slow head never
 * woke the receiver), and our loop_io is freed, which takes the fd out of
 * epoll at once (with it still registered, the receiver's own watch would
 * fail with EEXIST; libuv aborts on that). From then on the fd is the
 * receiver's: it closes it even when it cannot adopt it, and we never touch
 * it again.
 *
 * Refusals. 431 (max_head_bytes without an end of head), 408 (head timeout),
 * 400 (a malformed request or header line: front_door_scan) and 501 (a
 * WebSocket upgrade with no WebSocket server) are a few hundred
 * bytes, sent with one nonblocking send; if that would block the connection
 * is simply closed. What the client sent is then read and dropped (bounded),
 * because closing a socket with unread data sends a reset instead of a FIN,
 * and some clients and proxies drop an answer they have not read yet when a
 * reset arrives (Linux keeps it readable; the tests check for the FIN).
 *
 * Bare LF. RFC 9112 lets a server accept LF alone as a line end; the
 * prototype did not, and a bare-LF HTTP/1.0 request sat until the timeout.
 * front_door_scan ends a head at the first empty line with or without CRs.
 * A CR anywhere else in a line is a bare CR, which libmicrohttpd would take
 * for a line end and a proxy might not: 400.
 *
 * TCP_DEFER_ACCEPT: not used. It would cut the loop's CPU per connection
 * from about 17 to 6 µs (the kernel holds a connection until its first data,
 * so almost every head is complete at accept) and gave about 10% more
 * Connection: close throughput. But the kernel then holds a silent client
 * for a second before we see it, so the head timeout becomes "2 to 3 s",
 * and a client that connects and leaves may never be counted. Keep-alive
 * clients pass the front door once per connection, so the gain only matters
 * for close-per-request floods; a head timeout that means what it says and
 * counters that add up were judged worth more. To revisit: one setsockopt on
 * the listen socket in listen_open, and the 408 test's upper bound.
 *
 * Accept failures. EMFILE/ENFILE (and ENOBUFS/ENOMEM) would make a
 * level-triggered listen socket spin, since the connection stays in the
 * backlog: accepting pauses for 100 ms instead, and the failure is logged at
 * most once a second with the number of failures not logged.
 *
 * Re-entrancy. An ops callback may call front_door_stop_accepting or
 * front_door_free. Loop callbacks that can reach ops hold `busy`; a free
 * inside them closes every socket at once but leaves the struct for the
 * outermost callback to release.
 */
#include "front_door.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"

#define DEFAULT_MAX_HEAD_BYTES 8192
#define MAX_HEAD_BYTES_CAP (1024 * 1024)
#define DEFAULT_HEAD_TIMEOUT_MS 2000
#define MAX_HEAD_TIMEOUT_MS (3600 * 1000)
#define DEFAULT_ACCEPTS_PER_WAKE 128
#define ACCEPT_PAUSE_MS 100
#define ACCEPT_LOG_EVERY_MS 1000
#define DRAIN_MAX_BYTES (64 * 1024)

/* One accepted connection whose head is not complete yet. The fast path
 * keeps it on the stack; conn_park copies it to the heap. */
struct conn {
    struct front_door *door;
    int fd;
    int lowat;   /* the SO_RCVLOWAT we set; 1 is the kernel's default */
    size_t seen; /* bytes seen by the last peek */
    uint64_t deadline_ms;
    struct loop_io *io; /* non-NULL while parked */
    struct conn *prev, *next;
    socklen_t addrlen;
    struct sockaddr_storage addr;
};

struct front_door {
    struct loop *loop;
    struct front_door_limits lim;
    struct front_door_ops ops;
    int listen_fd; /* -1 once accepting has stopped */
    int port;
    struct loop_io *listen_io;
    struct loop_timer *pause_timer; /* resumes accepting after EMFILE & co */
    struct loop_timer *expiry;      /* the oldest pending head's deadline */
    struct conn *oldest, *newest;   /* pending FIFO, in deadline order */
    char *buf;                      /* max_head_bytes, shared by all peeks */
    bool accept_logged;
    uint64_t accept_log_ms;
    uint64_t accept_unlogged;
    int busy;
    bool dead;
    struct front_door_stats stats;
};

/* ---- The head parser ------------------------------------------------------
 * Pure functions over a peeked prefix, so the tests need no sockets. */

static bool bytes_iequal(const char *a, const char *b, size_t n)
{
    return strncasecmp(a, b, n) == 0;
}

/* Whether [s, s + n) contains `word` (lower case), ignoring case. */
static bool bytes_icontain(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++) {
        if (bytes_iequal(s + i, word, w)) {
            return true;
        }
    }
    return false;
}

/* A header line (without its line end) that asks for a WebSocket upgrade:
 * the name Upgrade, a colon right after it, "websocket" in the value. */
static bool line_is_ws_upgrade(const char *line, size_t n)
{
    static const char name[] = "upgrade:";
    size_t nl = sizeof name - 1;

    if (n < nl || !bytes_iequal(line, name, nl)) {
        return false;
    }
    return bytes_icontain(line + nl, n - nl, "websocket");
}

/* RFC 9110 5.6.2: the characters of a field name. */
static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A header line (without its line end): token characters, a colon right
 * after them, then a value without NUL, CR or another control character but
 * HTAB. Both servers behind the door parse a line less strictly (a NUL ends
 * a value early in libmicrohttpd, a bare CR ends a line there, whitespace
 * before the colon stays in the name), and what two parsers read differently
 * is how a request is smuggled past a proxy, so such heads stop here. This
 * sees only a connection's first head: rest.c says what it checks on the
 * later ones. */
static bool field_line_ok(const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && is_tchar((unsigned char)p[i])) {
        i++;
    }
    if (i == 0 || i == n || p[i] != ':') {
        return false;
    }
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* METHOD SP TARGET SP HTTP/d.d: libmicrohttpd may wait out its connection
 * timeout on a line it cannot parse, so garbage is refused here, at once. */
static bool request_line_ok(const char *p, size_t n)
{
    size_t i = 0, m = 0;

    while (i < n && ((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') ||
                     p[i] == '-' || p[i] == '_')) {
        i++;
    }
    if (i == 0 || i > 20 || i >= n || p[i] != ' ') {
        return false;
    }
    for (m = ++i; i < n && p[i] != ' '; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c == 0x7f) {
            return false;
        }
    }
    if (i == m || n - i != 9 || memcmp(p + i, " HTTP/", 6) != 0) {
        return false;
    }
    return p[i + 6] >= '0' && p[i + 6] <= '9' && p[i + 7] == '.' && p[i + 8] >= '0' &&
           p[i + 8] <= '9';
}

enum front_door_head front_door_scan(const char *buf, size_t n, size_t *head_len)
{
    size_t start = 0;
    bool ws = false;

    while (start < n && (buf[start] == '\r' || buf[start] == '\n')) {
        start++;
    }
    size_t line = start;
    for (size_t i = start; i < n; i++) {
        if (buf[i] != '\n') {
            continue;
        }
        size_t end = (i > line && buf[i - 1] == '\r') ? i - 1 : i;
        if (end == line) {
            *head_len = i + 1;
            return ws ? FRONT_DOOR_HEAD_WS : FRONT_DOOR_HEAD_REST;
        }
        if (line == start && !request_line_ok(buf + line, end - line)) {
            *head_len = i + 1;
            return FRONT_DOOR_HEAD_BAD;
        }
        if (line != start && !field_line_ok(buf + line, end - line)) {
            *head_len = i + 1;
            return FRONT_DOOR_HEAD_BAD_FIELD;
        }
        if (line != start && line_is_ws_upgrade(buf + line, end - line)) {
            ws = true;
        }
        line = i + 1;
    }
    return FRONT_DOOR_HEAD_PARTIAL;
}

/* ---- Connections ---------------------------------------------------------- */

static void on_conn_io(struct loop_io *io, int events, void *data);

/* Leaves the pending FIFO and the loop, if parked. */
static void conn_unpark(struct front_door *door, struct conn *c)
{
    if (!c->io) {
        return;
    }
    loop_io_free(c->io);
    c->io = NULL;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        door->oldest = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    } else {
        door->newest = c->prev;
    }
    c->prev = c->next = NULL;
    if (!door->oldest) {
        loop_timer_stop(door->expiry);
    }
}

static void conn_close_early(struct front_door *door, struct conn *c)
{
    conn_unpark(door, c);
    close(c->fd);
    c->fd = -1;
    door->stats.closed_early++;
}

/* Reads and drops what the client sent, so that close() sends a FIN rather
 * than a reset that could overtake the answer. Bounded: a client that keeps
 * sending gets its reset. */
static void conn_drain(struct front_door *door, int fd)
{
    size_t total = 0;
    while (total < DRAIN_MAX_BYTES) {
        ssize_t n = recv(fd, door->buf, door->lim.max_head_bytes, MSG_DONTWAIT);
        if (n <= 0) {
            return;
        }
        total += (size_t)n;
    }
}

/* Answers status with a JSON error body and closes. The strings are ours and
 * need no escaping. */
static void conn_refuse(struct front_door *door, struct conn *c, int status, const char *reason,
                        const char *code, const char *message)
{
    char body[256];
    char msg[512];
    int blen = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code,
                        message);
    int mlen = snprintf(msg, sizeof msg,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
                        status, reason, blen, body);

    conn_unpark(door, c);
    if (mlen > 0 && (size_t)mlen < sizeof msg) {
        (void)send(c->fd, msg, (size_t)mlen, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    conn_drain(door, c->fd);
    close(c->fd);
    c->fd = -1;
}

static void conn_refuse_408(struct front_door *door, struct conn *c)
{
    char message[96];
    snprintf(message, sizeof message, "The request head did not arrive within %llu ms",
             (unsigned long long)door->lim.head_timeout_ms);
    conn_refuse(door, c, 408, "Request Timeout", "request_timeout", message);
    door->stats.timeouts_408++;
}

static void conn_refuse_431(struct front_door *door, struct conn *c)
{
    char message[96];
    snprintf(message, sizeof message, "The request head is larger than %zu bytes",
             door->lim.max_head_bytes);
    conn_refuse(door, c, 431, "Request Header Fields Too Large", "header_too_large", message);
    door->stats.too_large_431++;
}

static int conn_set_lowat(struct conn *c, int lowat)
{
    if (c->lowat == lowat) {
        return 0;
    }
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) < 0) {
        return -1;
    }
    c->lowat = lowat;
    return 0;
}

/* Hands the connection to its server: the poll is released and SO_RCVLOWAT
 * reset first, the fd is the receiver's afterwards. */
static void conn_dispatch(struct front_door *door, struct conn *c, enum front_door_head kind)
{
    const struct sockaddr *addr = (const struct sockaddr *)&c->addr;
    int fd = c->fd;

    conn_unpark(door, c);
    /* Cannot fail on a TCP socket once it has succeeded with n + 1. */
    (void)conn_set_lowat(c, 1);
    if (kind == FRONT_DOOR_HEAD_WS && !door->ops.ws) {
        conn_refuse(door, c, 501, "Not Implemented", "not_implemented",
                    "WebSocket subscriptions are not available yet");
        door->stats.refused_501++;
        return;
    }
    c->fd = -1;
    if (kind == FRONT_DOOR_HEAD_WS) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        door->stats.to_ws++;
        door->ops.ws(fd, addr, c->addrlen, door->ops.ctx);
    } else {
        door->stats.to_rest++;
        door->ops.rest(fd, addr, c->addrlen, door->ops.ctx);
    }
}

/* After a wake-up that brought no new byte: whether the peer has shut down
 * its side or the connection failed. The peek cannot tell, since it returns
 * the queued bytes and not the EOF behind them; with SO_RCVLOWAT at seen + 1
 * the kernel wakes us without data only for that (or, rarely, under receive
 * memory pressure, which is why this asks instead of assuming). */
static bool peer_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) < 0) {
        return true;
    }
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* Peeks at the connection and acts on what is there. Returns true when the
 * connection is finished with (handed off or closed), false when its head
 * is still on the way. `events` are the loop's for a parked connection, 0
 * for the peek right after accept. May call ops (see Re-entrancy). */
static bool conn_step(struct front_door *door, struct conn *c, int events)
{
    size_t head_len;
    ssize_t n = recv(c->fd, door->buf, door->lim.max_head_bytes, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0) {
        if ((errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && !(events & LOOP_ERROR)) {
            return false;
        }
        conn_close_early(door, c);
        return true;
    }
    if (n == 0 || (events & LOOP_ERROR) || (c->io && (size_t)n <= c->seen && peer_gone(c->fd))) {
        conn_close_early(door, c);
        return true;
    }
    enum front_door_head kind = front_door_scan(door->buf, (size_t)n, &head_len);
    if (kind == FRONT_DOOR_HEAD_BAD || kind == FRONT_DOOR_HEAD_BAD_FIELD) {
        conn_refuse(door, c, 400, "Bad Request", "bad_request",
                    kind == FRONT_DOOR_HEAD_BAD
                        ? "The request line is not METHOD TARGET HTTP/version"
                        : "A header line is not NAME: VALUE, or holds a NUL, a bare CR or "
                          "another control character");
        door->stats.bad_400++;
        return true;
    }
    if (kind != FRONT_DOOR_HEAD_PARTIAL) {
        conn_dispatch(door, c, kind);
        return true;
    }
    if ((size_t)n >= door->lim.max_head_bytes) {
        conn_refuse_431(door, c);
        return true;
    }
    c->seen = (size_t)n;
    if (conn_set_lowat(c, (int)n + 1) < 0) {
        /* Without it the poll would spin until the timeout. */
        conn_close_early(door, c);
        return true;
    }
    return false;
}

/* Moves a connection whose head is on the way to the heap, the loop and the
 * pending FIFO, with its deadline counted from now (the accept). */
static void conn_park(struct front_door *door, const struct conn *tmp)
{
    struct conn *c = xmalloc(sizeof *c);

    *c = *tmp;
    c->deadline_ms = loop_now_ms(door->loop) + door->lim.head_timeout_ms;
    c->io = loop_io_new(door->loop, c->fd, on_conn_io, c);
    if (!c->io || loop_io_set(c->io, LOOP_READ) < 0) {
        loop_io_free(c->io);
        c->io = NULL;
        conn_close_early(door, c);
        free(c);
        return;
    }
    c->prev = door->newest;
    c->next = NULL;
    if (door->newest) {
        door->newest->next = c;
    } else {
        door->oldest = c;
        loop_timer_start(door->expiry, door->lim.head_timeout_ms, 0);
    }
    door->newest = c;
}

/* ---- The front door ------------------------------------------------------- */

static void door_destroy(struct front_door *door);

static void door_enter(struct front_door *door)
{
    door->busy++;
}

/* Leaves a loop callback; the outermost one releases a door freed inside. */
static void door_leave(struct front_door *door)
{
    door->busy--;
    if (door->busy == 0 && door->dead) {
        door_destroy(door);
    }
}

static void on_conn_io(struct loop_io *io, int events, void *data)
{
    struct conn *c = data;
    struct front_door *door = c->door;

    door_enter(door);
    if (conn_step(door, c, events)) {
        free(c);
    }
    door_leave(door);
}

static void on_expiry(struct loop_timer *timer, void *data)
{
    struct front_door *door = data;
    uint64_t now = loop_now_ms(door->loop);

    while (door->oldest && door->oldest->deadline_ms <= now) {
        struct conn *c = door->oldest;
        conn_refuse_408(door, c);
        free(c);
    }
    if (door->oldest) {
        loop_timer_start(door->expiry, door->oldest->deadline_ms - now, 0);
    }
}

static void on_pause_end(struct loop_timer *timer, void *data)
{
    struct front_door *door = data;
    if (door->listen_io) {
        loop_io_set(door->listen_io, LOOP_READ);
    }
}

/* Logs an accept failure at most once per ACCEPT_LOG_EVERY_MS. */
static void accept_log(struct front_door *door, int err)
{
    uint64_t now = loop_now_ms(door->loop);

    if (door->accept_logged && now - door->accept_log_ms < ACCEPT_LOG_EVERY_MS) {
        door->accept_unlogged++;
        return;
    }
    log_warn("front_door",
             "accept on port %d failed: %s; pausing accepts for %d ms (%llu more "
             "failures since the last report)",
             door->port, strerror(err), ACCEPT_PAUSE_MS, (unsigned long long)door->accept_unlogged);
    door->accept_logged = true;
    door->accept_log_ms = now;
    door->accept_unlogged = 0;
}

/* Handles a failed accept4. Returns true when this wake-up should accept no
 * more. */
static bool accept_failed(struct front_door *door, int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return true;
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
        /* That connection failed (accept(2) passes pending network errors
         * on); the next may not. */
        return false;
    default:
        /* Out of fds or memory, or a fault we do not know: the connection
         * stays in the backlog, so retrying now would spin. */
        accept_log(door, err);
        loop_io_set(door->listen_io, 0);
        loop_timer_start(door->pause_timer, ACCEPT_PAUSE_MS, 0);
        return true;
    }
}

static void on_listen(struct loop_io *io, int events, void *data)
{
    struct front_door *door = data;

    door_enter(door);
    for (int i = 0; i < door->lim.max_accepts_per_wake; i++) {
        if (door->listen_fd < 0 || door->dead) {
            break;
        }
        struct conn c = {.door = door, .lowat = 1, .addrlen = sizeof c.addr};
        c.fd = accept4(door->listen_fd, (struct sockaddr *)&c.addr, &c.addrlen,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c.fd < 0) {
            if (accept_failed(door, errno)) {
                break;
            }
            continue;
        }
        door->stats.accepted++;
        if (!conn_step(door, &c, 0)) {
            conn_park(door, &c);
        }
    }
    door_leave(door);
}

/* Parses a numeric host ("[...]" allowed) with port into ss. */
static int host_parse(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    char text[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);

    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n >= sizeof text) {
        return -1;
    }
    memcpy(text, host, n);
    text[n] = '\0';
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof *sin;
        return 0;
    }
    if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof *sin6;
        return 0;
    }
    return -1;
}

/* Opens the nonblocking, close-on-exec listen socket. Returns the fd and
 * the bound port, or -1 with err filled. */
static int listen_open(const char *host, int port, int *bound, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1, zero = 0;
    int fd = -1;

    if (!host || !*host) {
        host = "0.0.0.0";
    }
    if (host_parse(host, port, &ss, &len) < 0) {
        snprintf(err, errlen, "listen host \"%s\" is not a numeric IPv4 or IPv6 address", host);
        return -1;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto fail;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
        snprintf(err, errlen, "SO_REUSEADDR: %s", strerror(errno));
        goto fail;
    }
    /* "::" serves IPv4 too, whatever net.ipv6.bindv6only says. */
    if (ss.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0) {
        snprintf(err, errlen, "IPV6_V6ONLY: %s", strerror(errno));
        goto fail;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        snprintf(err, errlen, "bind %s port %d: %s", host, port, strerror(errno));
        goto fail;
    }
    if (listen(fd, SOMAXCONN) < 0) {
        snprintf(err, errlen, "listen %s port %d: %s", host, port, strerror(errno));
        goto fail;
    }
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        goto fail;
    }
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
fail:
    if (fd >= 0) {
        close(fd);
    }
    return -1;
}

/* Fills lim from the caller's limits (NULL or zero fields = defaults). */
static int limits_resolve(const struct front_door_limits *in, struct front_door_limits *lim,
                          char *err, size_t errlen)
{
    *lim = in ? *in : (struct front_door_limits){0};
    if (lim->max_head_bytes == 0) {
        lim->max_head_bytes = DEFAULT_MAX_HEAD_BYTES;
    }
    if (lim->head_timeout_ms == 0) {
        lim->head_timeout_ms = DEFAULT_HEAD_TIMEOUT_MS;
    }
    if (lim->max_accepts_per_wake <= 0) {
        lim->max_accepts_per_wake = DEFAULT_ACCEPTS_PER_WAKE;
    }
    if (lim->max_head_bytes < 4 || lim->max_head_bytes > MAX_HEAD_BYTES_CAP) {
        snprintf(err, errlen, "max_head_bytes %zu is outside 4..%d", lim->max_head_bytes,
                 MAX_HEAD_BYTES_CAP);
        return -1;
    }
    if (lim->head_timeout_ms > MAX_HEAD_TIMEOUT_MS) {
        snprintf(err, errlen, "head_timeout_ms %llu is above %d",
                 (unsigned long long)lim->head_timeout_ms, MAX_HEAD_TIMEOUT_MS);
        return -1;
    }
    return 0;
}

struct front_door *front_door_new(struct loop *loop, const char *host, int port,
                                  const struct front_door_limits *limits,
                                  const struct front_door_ops *ops, char *err, size_t errlen)
{
    struct front_door_limits lim;
    struct front_door *door;

    if (!ops || !ops->rest) {
        snprintf(err, errlen, "front door: ops->rest is required");
        return NULL;
    }
    if (port < 0 || port > 65535) {
        snprintf(err, errlen, "front door: port %d is outside 0..65535", port);
        return NULL;
    }
    if (limits_resolve(limits, &lim, err, errlen) < 0) {
        return NULL;
    }
    door = xcalloc(1, sizeof *door);
    door->loop = loop;
    door->lim = lim;
    door->ops = *ops;
    door->listen_fd = listen_open(host, port, &door->port, err, errlen);
    if (door->listen_fd < 0) {
        goto fail;
    }
    door->listen_io = loop_io_new(loop, door->listen_fd, on_listen, door);
    if (!door->listen_io || loop_io_set(door->listen_io, LOOP_READ) < 0) {
        snprintf(err, errlen, "front door: cannot watch the listen socket");
        goto fail;
    }
    door->buf = xmalloc(lim.max_head_bytes);
    door->pause_timer = loop_timer_new(loop, on_pause_end, door);
    door->expiry = loop_timer_new(loop, on_expiry, door);
    return door;
fail:
    loop_io_free(door->listen_io);
    if (door->listen_fd >= 0) {
        close(door->listen_fd);
    }
    free(door);
    return NULL;
}

int front_door_port(const struct front_door *door)
{
    return door->port;
}

void front_door_stop_accepting(struct front_door *door)
{
    if (door->listen_fd < 0) {
        return;
    }
    loop_io_free(door->listen_io);
    door->listen_io = NULL;
    loop_timer_stop(door->pause_timer);
    close(door->listen_fd);
    door->listen_fd = -1;
}

/* Closes the listen socket and every pending connection. */
static void door_close_all(struct front_door *door)
{
    front_door_stop_accepting(door);
    while (door->oldest) {
        struct conn *c = door->oldest;
        conn_unpark(door, c);
        close(c->fd);
        free(c);
    }
}

static void door_destroy(struct front_door *door)
{
    door_close_all(door);
    loop_timer_free(door->pause_timer);
    loop_timer_free(door->expiry);
    free(door->buf);
    free(door);
}

void front_door_free(struct front_door *door)
{
    if (!door) {
        return;
    }
    if (door->busy) {
        door_close_all(door);
        door->dead = true;
        return;
    }
    door_destroy(door);
}

void front_door_stats(const struct front_door *door, struct front_door_stats *out)
{
    *out = door->stats;
}
