/*
 * front_door: the head parser on its own, then live front doors on
 * 127.0.0.1 driven by blocking client sockets from a second thread while the
 * loop runs on the main thread.
 *
 * The handlers stand in for libmicrohttpd and libwebsockets: each one checks
 * what the notes say a real one needs (SO_RCVLOWAT back at 1, the front
 * door's poll gone so the fd can be watched again, the whole head still
 * queued) and reports it to the client in X- headers of its answer, so the
 * client thread sees everything and the loop thread never asserts. Counters
 * are read through a command posted to the loop (run_on_loop).
 *
 * Doors: A has the default limits and a WebSocket handler; B has a 300 ms
 * head timeout, 256-byte heads, 4 accepts per wake-up and no WebSocket
 * handler; C frees itself from inside its first hand-off.
 */
#include "check.h"
#include "front_door.h"
#include "core/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RESP_CAP 16384
#define MAX_WS 8

static double tf = 1.0; /* TEST_TIME_FACTOR */

/* ---- The head parser ------------------------------------------------------ */

static void check_scan_n(const char *buf, size_t n, enum front_door_head want, size_t want_len,
                         int line)
{
    size_t len = 0;
    enum front_door_head got = front_door_scan(buf, n, &len);
    if (got != want || (want != FRONT_DOOR_HEAD_PARTIAL && len != want_len)) {
        check_failed++;
        fprintf(stderr, "%s:%d: FAIL scan of \"%s\": kind %d len %zu, want kind %d len %zu\n",
                __FILE__, line, buf, (int)got, len, (int)want, want_len);
    } else {
        check_passed++;
    }
}

#define SCAN(buf, want, len) check_scan_n(buf, strlen(buf), want, len, __LINE__)
/* For heads with a NUL in them: buf must be a string literal. */
#define SCAN_N(buf, want, len) check_scan_n(buf, sizeof(buf) - 1, want, len, __LINE__)
#define PARTIAL FRONT_DOOR_HEAD_PARTIAL
#define REST FRONT_DOOR_HEAD_REST
#define WS FRONT_DOOR_HEAD_WS
#define BAD FRONT_DOOR_HEAD_BAD
#define BAD_FIELD FRONT_DOOR_HEAD_BAD_FIELD

static void test_scan(void)
{
    const char *get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    SCAN(get, REST, strlen(get));
    SCAN("GET / HTTP/1.1\r\nHost: a\r\n\r", PARTIAL, 0);
    SCAN("GET / HTTP/1.1\r\nHost: a\r\n", PARTIAL, 0);
    SCAN("", PARTIAL, 0);
    SCAN("\r\n", PARTIAL, 0);
    SCAN("GET / HTTP/1.0\n\n", REST, 16);
    SCAN("GET / HTTP/1.0\nHost: a\n\n", REST, 24);
    SCAN("GET / HTTP/1.1\r\nHost: a\n\r\n", REST, 26);
    SCAN("GET / HTTP/1.1\r\nHost: a\r\n\n", REST, 26);
    /* Empty lines before the request line are not its end (RFC 9112 2.2). */
    SCAN("\r\n\r\nGET / HTTP/1.1\r\n\r\n", REST, 22);
    SCAN("\r\n\r\nGET / HTTP/1.1\r\n", PARTIAL, 0);
    /* Only the head counts: the body may be anything. */
    SCAN("POST / HTTP/1.1\r\nContent-Length: 20\r\n\r\nUpgrade: websocket\r\n", REST, 39);

    SCAN("GET /s HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n", WS, 60);
    SCAN("GET /s HTTP/1.1\nupgrade:websocket\n\n", WS, 35);
    SCAN("GET /s HTTP/1.1\r\nUPGRADE: h2c, WEBSOCKET\r\n\r\n", WS, 44);
    SCAN("GET /s HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", REST, 33);
    SCAN("GET /s HTTP/1.1\r\nX-Upgrade: websocket\r\n\r\n", REST, 41);
    SCAN("GET /s HTTP/1.1\r\nConnection: Upgrade, websocket\r\n\r\n", REST, 51);
    /* Whitespace before the colon: 400 (RFC 9112 5.1), not a field to guess at. */
    SCAN("GET /s HTTP/1.1\r\nUpgrade : websocket\r\n\r\n", BAD_FIELD, 38);
    SCAN("Upgrade: websocket\r\nHost: a\r\n\r\n", BAD, 20); /* not a request line */
    SCAN("\x01\xfe garbage\r\n\r\n", BAD, 12);
    SCAN("GET /a b HTTP/1.1\r\n\r\n", BAD, 19);
    SCAN("GET /\x01 HTTP/1.1\r\n\r\n", BAD, 17);
    SCAN("GET / HTTP/1.1 extra\r\n\r\n", BAD, 22);
    SCAN("GET /s HTTP/1.1\r\nUpgrade: webso", PARTIAL, 0);
    SCAN("GET /s HTTP/1.1\r\nUpgrade: websocket\r\n", PARTIAL, 0);

    /* Header lines two parsers could read differently (issue 16): a NUL
     * (libmicrohttpd cut the token at it and accepted it), a bare CR (a line
     * end to libmicrohttpd), other control characters, no colon, an empty or
     * non-token name, a folded line. Each is refused once its line is
     * complete, even before the head is. */
    SCAN_N("GET / HTTP/1.1\r\nAuthorization: Bearer tok\0junk\r\nHost: a\r\n\r\n", BAD_FIELD, 48);
    SCAN_N("GET / HTTP/1.1\r\nX: \0\r\n", BAD_FIELD, 22);
    SCAN("GET / HTTP/1.1\r\nHost: a\rX-Smuggled: b\r\n\r\n", BAD_FIELD, 39);
    SCAN("GET / HTTP/1.1\r\nX: a\x01"
         "b\r\n\r\n",
         BAD_FIELD, 24);
    SCAN("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", BAD_FIELD, 23);
    SCAN("GET / HTTP/1.1\r\nNoColonHere\r\n\r\n", BAD_FIELD, 29);
    SCAN("GET / HTTP/1.1\r\n: empty name\r\n\r\n", BAD_FIELD, 30);
    SCAN("GET / HTTP/1.1\r\nX\tY: z\r\n\r\n", BAD_FIELD, 24);
    SCAN("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", BAD_FIELD, 31);
    SCAN("GET / HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n", BAD_FIELD, 45);
    /* What a field may hold: HTAB, obs-text, any punctuation, an empty value. */
    const char *ok =
        "GET / HTTP/1.1\r\nX-A!#$%&'*+-.^_`|~9: \t\xe2\x82\xac \"q\" (c)\r\nX-E:\r\n\r\n";
    SCAN(ok, REST, strlen(ok));
}

/* ---- The world the loop thread and the client thread share ----------------- */

enum cmd { CMD_NONE, CMD_SNAPSHOT, CMD_STOP_A, CMD_FINISH };

struct ws_conn {
    struct world *w;
    int fd;
    struct loop_io *io;
};

struct world {
    struct loop *loop;
    struct front_door *a, *b, *c;
    int pa, pb, pc;
    struct loop_timer *guard;
    struct loop_async *async;
    pthread_t loop_thread;
    struct ws_conn *ws[MAX_WS]; /* loop thread only */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum cmd cmd;
    bool cmd_done;
    struct front_door_stats sa, sb, sc; /* snapshots, under mu */
    bool c_freed;
    bool finished;
    bool guard_fired;
};

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double loop_cpu_ms(const struct world *w)
{
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(w->loop_thread, &cid) != 0 || clock_gettime(cid, &ts) != 0) {
        return 0;
    }
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- Stand-in servers (loop thread) -------------------------------------- */

struct probe {
    int lowat_one; /* SO_RCVLOWAT was 1 */
    int poll_free; /* the fd could be watched again at once */
    int addr_ok;   /* the accept4 address came along */
    int nodelay;   /* TCP_NODELAY was set */
    ssize_t n;     /* bytes a plain recv returned */
    char head[RESP_CAP];
};

static void on_never(struct loop_io *io, int events, void *data)
{
}

static void probe_fd(struct world *w, int fd, const struct sockaddr *addr, socklen_t len,
                     struct probe *p)
{
    int lowat = 0;
    socklen_t ol = sizeof lowat;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

    p->lowat_one = getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, &ol) == 0 && lowat == 1;
    int nodelay = 0;
    socklen_t nl = sizeof nodelay;
    p->nodelay = getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &nl) == 0 && nodelay;
    struct loop_io *io = loop_io_new(w->loop, fd, on_never, NULL);
    p->poll_free = io != NULL;
    loop_io_free(io);
    p->addr_ok = len == sizeof *sin && sin->sin_family == AF_INET &&
                 sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK) && sin->sin_port != 0;
    p->n = recv(fd, p->head, sizeof p->head, 0);
}

/* Answers 200 with the probe in headers and (up to 4000 bytes of) what recv
 * returned as the body, then closes, as a REST server would. */
static void on_rest(int fd, const struct sockaddr *addr, socklen_t len, void *ctx)
{
    struct world *w = ctx;
    static struct probe p;
    char hdr[256];

    probe_fd(w, fd, addr, len, &p);
    size_t echo = p.n > 0 ? (size_t)p.n : 0;
    if (echo > 4000) {
        echo = 4000;
    }
    int h = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 200 OK\r\nX-Read: %zd\r\nX-Lowat-One: %d\r\nX-Poll-Free: %d\r\n"
                     "X-Addr: %d\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     p.n, p.lowat_one, p.poll_free, p.addr_ok, echo);
    (void)send(fd, hdr, (size_t)h, MSG_NOSIGNAL);
    (void)send(fd, p.head, echo, MSG_NOSIGNAL);
    /* Read what else came (a POST body) so close sends a FIN. */
    while (recv(fd, p.head, sizeof p.head, MSG_DONTWAIT) > 0) {
    }
    close(fd);
}

/* Door C's handler frees its own door, as a shutdown from a hand-off would. */
static void on_rest_c(int fd, const struct sockaddr *addr, socklen_t len, void *ctx)
{
    struct world *w = ctx;
    on_rest(fd, addr, len, ctx);
    front_door_free(w->c);
    w->c = NULL;
}

static void ws_conn_free(struct ws_conn *wc)
{
    for (int i = 0; i < MAX_WS; i++) {
        if (wc->w->ws[i] == wc) {
            wc->w->ws[i] = NULL;
        }
    }
    loop_io_free(wc->io);
    close(wc->fd);
    free(wc);
}

/* Echoes one read and closes: a small frame after a slow head must wake us,
 * which it does not if SO_RCVLOWAT was left high. */
static void on_ws_io(struct loop_io *io, int events, void *data)
{
    struct ws_conn *wc = data;
    char buf[256];
    ssize_t n = recv(wc->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n > 0) {
        (void)send(wc->fd, buf, (size_t)n, MSG_NOSIGNAL);
    }
    ws_conn_free(wc);
}

/* Answers 101 with the probe, then keeps the connection on the loop. */
static void on_ws(int fd, const struct sockaddr *addr, socklen_t len, void *ctx)
{
    struct world *w = ctx;
    static struct probe p;
    char hdr[256];
    int slot = -1;

    probe_fd(w, fd, addr, len, &p);
    int h = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 101 Switching Protocols\r\nX-Read: %zd\r\nX-Lowat-One: %d\r\n"
                     "X-Poll-Free: %d\r\nX-Addr: %d\r\nX-Nodelay: %d\r\n\r\n",
                     p.n, p.lowat_one, p.poll_free, p.addr_ok, p.nodelay);
    (void)send(fd, hdr, (size_t)h, MSG_NOSIGNAL);
    for (int i = 0; i < MAX_WS; i++) {
        if (!w->ws[i]) {
            slot = i;
            break;
        }
    }
    if (slot < 0) {
        close(fd);
        return;
    }
    struct ws_conn *wc = calloc(1, sizeof *wc);
    wc->w = w;
    wc->fd = fd;
    wc->io = loop_io_new(w->loop, fd, on_ws_io, wc);
    w->ws[slot] = wc;
    if (!wc->io || loop_io_set(wc->io, LOOP_READ) < 0) {
        ws_conn_free(wc);
    }
}

/* ---- Commands from the client thread ------------------------------------- */

static void snapshot(struct world *w)
{
    front_door_stats(w->a, &w->sa);
    front_door_stats(w->b, &w->sb);
    if (w->c) {
        front_door_stats(w->c, &w->sc);
    }
    w->c_freed = w->c == NULL;
}

static void finish(struct world *w)
{
    snapshot(w);
    front_door_free(w->a);
    front_door_free(w->b);
    front_door_free(w->c);
    w->a = w->b = w->c = NULL;
    for (int i = 0; i < MAX_WS; i++) {
        if (w->ws[i]) {
            ws_conn_free(w->ws[i]);
        }
    }
    loop_timer_free(w->guard);
    w->guard = NULL;
    w->finished = true;
    loop_stop(w->loop);
}

static void on_async(struct loop_async *async, void *data)
{
    struct world *w = data;

    pthread_mutex_lock(&w->mu);
    enum cmd cmd = w->cmd;
    w->cmd = CMD_NONE;
    if (cmd == CMD_SNAPSHOT) {
        snapshot(w);
    } else if (cmd == CMD_STOP_A) {
        front_door_stop_accepting(w->a);
    } else if (cmd == CMD_FINISH) {
        finish(w);
    }
    w->cmd_done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_guard(struct loop_timer *timer, void *data)
{
    struct world *w = data;
    w->guard_fired = true;
    loop_stop(w->loop);
}

/* Runs cmd on the loop thread and waits for it (bounded). */
static bool run_on_loop(struct world *w, enum cmd cmd)
{
    struct timespec until;
    bool done;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(5 * tf) + 1;
    pthread_mutex_lock(&w->mu);
    w->cmd = cmd;
    w->cmd_done = false;
    loop_async_send(w->async);
    while (!w->cmd_done) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    done = w->cmd_done;
    pthread_mutex_unlock(&w->mu);
    return done;
}

/* A copy of a door's counters as of now. */
static struct front_door_stats stats_of(struct world *w, char door)
{
    struct front_door_stats s = {0};
    run_on_loop(w, CMD_SNAPSHOT);
    pthread_mutex_lock(&w->mu);
    s = door == 'a' ? w->sa : door == 'b' ? w->sb : w->sc;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* Waits until a counter of a door reaches want (bounded). Returns it. */
static uint64_t wait_stat(struct world *w, char door, size_t field, uint64_t want)
{
    double until = mono_ms() + 3000 * tf;
    uint64_t v;
    for (;;) {
        struct front_door_stats s = stats_of(w, door);
        v = *(const uint64_t *)((const char *)&s + field);
        if (v >= want || mono_ms() > until) {
            return v;
        }
        usleep(2000);
    }
}

#define STAT(field) offsetof(struct front_door_stats, field)

/* ---- Client helpers (client thread) -------------------------------------- */

static int client_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = (time_t)(5 * tf)};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}

/* Connects to 127.0.0.1:port; returns the fd, or -errno. */
static int client_connect(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = client_socket();
    if (fd < 0) {
        return -errno;
    }
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void send_str(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k <= 0) {
            return;
        }
        s += k;
        n -= (size_t)k;
    }
}

/* Sends s in pieces of `piece` bytes, gap_ms apart. */
static void send_pieces(int fd, const char *s, size_t piece, int gap_ms)
{
    size_t n = strlen(s);
    for (size_t off = 0; off < n; off += piece) {
        if (off > 0) {
            usleep((useconds_t)gap_ms * 1000);
        }
        send_str(fd, s + off, n - off < piece ? n - off : piece);
    }
}

struct resp {
    char raw[RESP_CAP + 1];
    size_t len;
    bool closed; /* ended by EOF or reset, not by the receive timeout */
    bool reset;  /* ended by a reset */
    double ms;   /* from the call to the end */
};

/* Reads until the peer closes (or until `until` bytes ending a head when
 * head_only). */
static void read_resp(int fd, struct resp *r, bool head_only)
{
    double t0 = mono_ms();
    r->len = 0;
    r->closed = false;
    r->reset = false;
    for (;;) {
        ssize_t n = recv(fd, r->raw + r->len, RESP_CAP - r->len, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            r->closed = true;
            r->reset = n < 0;
            break;
        }
        if (n < 0) {
            break;
        }
        r->len += (size_t)n;
        r->raw[r->len] = '\0';
        if ((head_only && strstr(r->raw, "\r\n\r\n")) || r->len == RESP_CAP) {
            break;
        }
    }
    r->raw[r->len] = '\0';
    r->ms = mono_ms() - t0;
}

static int resp_status(const struct resp *r)
{
    int status = 0;
    if (sscanf(r->raw, "HTTP/1.1 %d", &status) != 1) {
        return 0;
    }
    return status;
}

/* The value of a header as a number, or -1. */
static long resp_header(const struct resp *r, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\r\n%s: ", name);
    const char *p = strstr(r->raw, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static const char *resp_body(const struct resp *r)
{
    const char *p = strstr(r->raw, "\r\n\r\n");
    return p ? p + 4 : "";
}

/* A hand-off was clean: the handler saw the whole head with a plain recv,
 * SO_RCVLOWAT 1, no leftover poll, the peer's address; and a WebSocket
 * socket came with TCP_NODELAY (its pushes are small). */
static void check_handoff(const struct resp *r, const char *head, int line)
{
    long read = resp_header(r, "X-Read");
    if (read != (long)strlen(head) || resp_header(r, "X-Lowat-One") != 1 ||
        resp_header(r, "X-Poll-Free") != 1 || resp_header(r, "X-Addr") != 1 ||
        (resp_status(r) == 101 && resp_header(r, "X-Nodelay") != 1)) {
        check_failed++;
        fprintf(stderr, "%s:%d: FAIL hand-off of %zu-byte head: got\n%s\n", __FILE__, line,
                strlen(head), r->raw);
    } else {
        check_passed++;
    }
}

/* Sends a head in one piece (or in pieces) and expects 200 with the head
 * echoed back. */
static void expect_rest(int port, const char *head, size_t piece, int gap_ms, int line)
{
    struct resp *r = calloc(1, sizeof *r);
    int fd = client_connect(port);
    CHECK(fd >= 0);
    if (fd < 0) {
        free(r);
        return;
    }
    if (piece) {
        send_pieces(fd, head, piece, gap_ms);
    } else {
        send_str(fd, head, strlen(head));
    }
    read_resp(fd, r, false);
    close(fd);
    if (resp_status(r) != 200 || strcmp(resp_body(r), head) != 0) {
        check_failed++;
        fprintf(stderr, "%s:%d: FAIL expected 200 echoing the head, got\n%s\n", __FILE__, line,
                r->raw);
    } else {
        check_passed++;
    }
    check_handoff(r, head, line);
    free(r);
}

/* Expects a refusal: the status, a JSON error with `code`, a matching
 * Content-Length, and the connection closed with a FIN (what the client sent
 * was drained first, so no reset can make a client drop the answer). */
static void check_refusal(const struct resp *r, int status, const char *code, int line)
{
    char want[96];
    snprintf(want, sizeof want, "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
    const char *body = resp_body(r);
    if (resp_status(r) != status || !r->closed || r->reset ||
        strncmp(body, want, strlen(want)) != 0 ||
        resp_header(r, "Content-Length") != (long)strlen(body) ||
        !strstr(r->raw, "\r\nContent-Type: application/json\r\n") ||
        !strstr(r->raw, "\r\nConnection: close\r\n") || body[0] == '\0' ||
        body[strlen(body) - 1] != '}') {
        check_failed++;
        fprintf(stderr, "%s:%d: FAIL expected %d %s (closed), got%s%s\n%s\n", __FILE__, line,
                status, code, r->closed ? "" : " (not closed)", r->reset ? " (reset)" : "", r->raw);
    } else {
        check_passed++;
    }
}

/* ---- Scenarios (client thread) ------------------------------------------- */

static const char ws_head[] = "GET /v1/stream HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                              "Upgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/* A WebSocket upgrade goes to the ws handler, which then gets an 8-byte
 * frame through its own poll. */
static void scenario_ws(struct world *w, size_t piece)
{
    struct resp *r = calloc(1, sizeof *r);
    char echo[16] = {0};
    int fd = client_connect(w->pa);
    CHECK(fd >= 0);
    if (piece) {
        send_pieces(fd, ws_head, piece, 20);
    } else {
        send_str(fd, ws_head, strlen(ws_head));
    }
    read_resp(fd, r, true);
    CHECK_INT_EQ(resp_status(r), 101);
    check_handoff(r, ws_head, __LINE__);
    send_str(fd, "frame-01", 8);
    CHECK_INT_EQ(recv(fd, echo, 8, MSG_WAITALL), 8);
    CHECK_STR_EQ(echo, "frame-01");
    read_resp(fd, r, false);
    CHECK(r->closed);
    close(fd);
    free(r);
}

/* A head in 7-byte pieces 50 ms apart is handed off once, without the loop
 * spinning on the peeked bytes meanwhile. */
static void scenario_pieces(struct world *w)
{
    const char *head = "GET /pieces HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n";
    struct front_door_stats before = stats_of(w, 'a');
    double cpu0 = loop_cpu_ms(w), t0 = mono_ms();

    expect_rest(w->pa, head, 7, 50, __LINE__);
    double cpu = loop_cpu_ms(w) - cpu0, wall = mono_ms() - t0;
    struct front_door_stats after = stats_of(w, 'a');
    CHECK_INT_EQ(after.to_rest - before.to_rest, 1);
    CHECK_INT_EQ(after.accepted - before.accepted, 1);
    if (!(cpu < wall / 4)) {
        CHECK_FAIL_("loop thread used %.1f ms of CPU in %.1f ms: spinning?", cpu, wall);
    }
}

/* 9 KB of head without an end: 431 and closed. */
static void scenario_431(struct world *w)
{
    size_t n = 9 * 1024;
    char *big = malloc(n + 1);
    struct resp *r = calloc(1, sizeof *r);
    memset(big, 'a', n);
    memcpy(big, "GET /big HTTP/1.1\r\nX-Pad: ", 26);
    big[n] = '\0';
    int fd = client_connect(w->pa);
    CHECK(fd >= 0);
    send_str(fd, big, n);
    read_resp(fd, r, false);
    check_refusal(r, 431, "header_too_large", __LINE__);
    close(fd);
    free(big);
    free(r);
}

/* Connects and hangs up: no hand-off, counted as closed early. Then hangs
 * up (write side only) in the middle of a head that is waiting: closed at
 * once with nothing sent, not at the timeout. */
static void scenario_early(struct world *w)
{
    struct resp *r = calloc(1, sizeof *r);
    struct front_door_stats before = stats_of(w, 'a');

    int fd = client_connect(w->pa);
    CHECK(fd >= 0);
    close(fd);
    CHECK_INT_EQ(wait_stat(w, 'a', STAT(closed_early), before.closed_early + 1),
                 before.closed_early + 1);

    fd = client_connect(w->pa);
    send_str(fd, "GET /half HT", 12);
    usleep(60 * 1000);
    shutdown(fd, SHUT_WR);
    read_resp(fd, r, false);
    CHECK(r->closed);
    CHECK_INT_EQ(r->len, 0);
    if (!(r->ms < 1500)) {
        CHECK_FAIL_("half-closed client closed after %.0f ms", r->ms);
    }
    close(fd);
    struct front_door_stats after = stats_of(w, 'a');
    CHECK_INT_EQ(after.closed_early - before.closed_early, 2);
    CHECK_INT_EQ(after.to_rest - before.to_rest, 0);
    CHECK_INT_EQ(after.timeouts_408 - before.timeouts_408, 0);
    free(r);
}

/* 200 connections each sending a full head at once: 200 hand-offs. */
static void scenario_many(struct world *w, int port, int count)
{
    int *fds = calloc((size_t)count, sizeof *fds);
    char(*heads)[64] = calloc((size_t)count, sizeof *heads);
    struct resp *r = calloc((size_t)count, sizeof *r);
    struct pollfd *pfd = calloc((size_t)count, sizeof *pfd);
    int open_n = 0, ok = 0;

    for (int i = 0; i < count; i++) {
        snprintf(heads[i], sizeof heads[i], "GET /c/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        fds[i] = client_connect(port);
        if (fds[i] >= 0) {
            send_str(fds[i], heads[i], strlen(heads[i]));
            open_n++;
        }
    }
    CHECK_INT_EQ(open_n, count);
    double until = mono_ms() + 10000 * tf;
    while (open_n > 0 && mono_ms() < until) {
        for (int i = 0; i < count; i++) {
            pfd[i].fd = fds[i];
            pfd[i].events = POLLIN;
        }
        if (poll(pfd, (nfds_t)count, 100) <= 0) {
            continue;
        }
        for (int i = 0; i < count; i++) {
            if (fds[i] < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            ssize_t n = recv(fds[i], r[i].raw + r[i].len, RESP_CAP - r[i].len, MSG_DONTWAIT);
            if (n > 0) {
                r[i].len += (size_t)n;
                continue;
            }
            r[i].raw[r[i].len] = '\0';
            close(fds[i]);
            fds[i] = -1;
            open_n--;
            ok += resp_status(&r[i]) == 200 && strcmp(resp_body(&r[i]), heads[i]) == 0 &&
                  resp_header(&r[i], "X-Read") == (long)strlen(heads[i]);
        }
    }
    CHECK_INT_EQ(open_n, 0);
    CHECK_INT_EQ(ok, count);
    for (int i = 0; i < count; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    free(fds);
    free(heads);
    free(r);
    free(pfd);
}

/* A POST whose head and body come in one send: the head is found inside the
 * peek, and the handler can read past it. */
static void scenario_post(struct world *w)
{
    const char *head = "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 20000\r\n\r\n";
    size_t hn = strlen(head), n = hn + 20000;
    char *req = malloc(n);
    struct resp *r = calloc(1, sizeof *r);
    memcpy(req, head, hn);
    memset(req + hn, 'b', 20000);
    int fd = client_connect(w->pa);
    CHECK(fd >= 0);
    send_str(fd, req, n);
    read_resp(fd, r, false);
    CHECK_INT_EQ(resp_status(r), 200);
    CHECK(resp_header(r, "X-Read") >= (long)hn);
    CHECK(strncmp(resp_body(r), head, hn) == 0);
    close(fd);
    free(req);
    free(r);
}

/* Silent, and partial then silent: 408 at the 300 ms head timeout. */
static void scenario_408(struct world *w, const char *partial)
{
    struct resp *r = calloc(1, sizeof *r);
    double t0 = mono_ms();
    int fd = client_connect(w->pb);
    CHECK(fd >= 0);
    if (partial) {
        send_str(fd, partial, strlen(partial));
    }
    read_resp(fd, r, false);
    double ms = mono_ms() - t0;
    check_refusal(r, 408, "request_timeout", __LINE__);
    if (!(ms >= 250 && ms <= 300 + 700 * tf)) {
        CHECK_FAIL_("408 after %.0f ms, want about 300", ms);
    }
    close(fd);
    free(r);
}

/* Door B has no WebSocket handler: 501 with the agreed body. */
static void scenario_501(struct world *w)
{
    struct resp *r = calloc(1, sizeof *r);
    int fd = client_connect(w->pb);
    CHECK(fd >= 0);
    send_str(fd, "GET /v1/stream HTTP/1.1\r\nupgrade: websocket\r\n\r\n", 47);
    read_resp(fd, r, false);
    check_refusal(r, 501, "not_implemented", __LINE__);
    CHECK_STR_EQ(resp_body(r), "{\"error\":{\"code\":\"not_implemented\",\"message\":"
                               "\"WebSocket subscriptions are not available yet\"}}");
    close(fd);
    free(r);
}

/* Door B takes heads of up to 256 bytes, terminator included. */
static void scenario_limit(struct world *w)
{
    char head[300];
    struct resp *r = calloc(1, sizeof *r);
    const char *pre = "GET /limit HTTP/1.1\r\nX-Pad: ";
    size_t pn = strlen(pre);

    memcpy(head, pre, pn);
    memset(head + pn, 'p', 256 - pn - 4);
    memcpy(head + 256 - 4, "\r\n\r\n", 5);
    CHECK_INT_EQ(strlen(head), 256);
    expect_rest(w->pb, head, 0, 0, __LINE__);

    memset(head + pn, 'p', 257 - pn - 4);
    memcpy(head + 257 - 4, "\r\n\r\n", 5);
    int fd = client_connect(w->pb);
    send_str(fd, head, 257);
    read_resp(fd, r, false);
    check_refusal(r, 431, "header_too_large", __LINE__);
    close(fd);
    free(r);
}

/* Out of fds: accepting pauses instead of spinning, and resumes once fds
 * are free again. */
static void scenario_emfile(struct world *w)
{
    struct rlimit old, low;
    static int fillers[2048];
    int nf = 0;
    struct resp *r = calloc(1, sizeof *r);
    struct front_door_stats before = stats_of(w, 'a');

    getrlimit(RLIMIT_NOFILE, &old);
    low = old;
    low.rlim_cur = 512;
    CHECK_INT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(null_fd >= 0);
    while (nf < 2048) {
        int f = fcntl(null_fd, F_DUPFD_CLOEXEC, 0);
        if (f < 0) {
            break;
        }
        fillers[nf++] = f;
    }
    close(fillers[--nf]); /* room for the client's socket only */
    int fd = client_connect(w->pa);
    CHECK(fd >= 0);

    double cpu0 = loop_cpu_ms(w);
    usleep(400 * 1000);
    double cpu = loop_cpu_ms(w) - cpu0;
    struct front_door_stats during = stats_of(w, 'a');
    CHECK_INT_EQ(during.accepted, before.accepted);
    if (!(cpu < 100)) {
        CHECK_FAIL_("loop thread used %.1f ms of CPU in 400 ms out of fds: spinning?", cpu);
    }

    while (nf > 0) {
        close(fillers[--nf]);
    }
    close(null_fd);
    CHECK_INT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    const char *head = "GET /after-emfile HTTP/1.1\r\nHost: t\r\n\r\n";
    send_str(fd, head, strlen(head));
    read_resp(fd, r, false);
    CHECK_INT_EQ(resp_status(r), 200);
    CHECK_STR_EQ(resp_body(r), head);
    close(fd);
    struct front_door_stats after = stats_of(w, 'a');
    CHECK_INT_EQ(after.accepted - before.accepted, 1);
    CHECK_INT_EQ(after.to_rest - before.to_rest, 1);
    free(r);
}

/* Door C frees itself inside the hand-off of a slow head, with another
 * connection pending: that one is closed without an answer, and the port
 * refuses connections. */
static void scenario_free_inside(struct world *w)
{
    struct resp *r = calloc(1, sizeof *r);
    int pending = client_connect(w->pc);
    CHECK(pending >= 0);
    CHECK_INT_EQ(wait_stat(w, 'c', STAT(accepted), 1), 1);
    expect_rest(w->pc, "GET /c HTTP/1.1\r\nHost: t\r\n\r\n", 12, 30, __LINE__);
    read_resp(pending, r, false);
    CHECK(r->closed);
    CHECK_INT_EQ(r->len, 0);
    close(pending);
    CHECK_INT_EQ(client_connect(w->pc), -ECONNREFUSED);
    stats_of(w, 'a');
    pthread_mutex_lock(&w->mu);
    CHECK(w->c_freed);
    pthread_mutex_unlock(&w->mu);
    free(r);
}

/* Door A stops accepting with two heads pending; one finishes and is handed
 * off, the other is still pending when the door is freed and is closed
 * without an answer. */
static void scenario_stop_and_free(struct world *w)
{
    struct resp *r = calloc(1, sizeof *r);
    struct front_door_stats before = stats_of(w, 'a');
    int p1 = client_connect(w->pa);
    int p2 = client_connect(w->pa);
    CHECK(p1 >= 0 && p2 >= 0);
    send_str(p1, "GET /pending HTTP/1.1\r\n", 23);
    send_str(p2, "GET /after-stop HTTP/1.1\r\n", 26);
    CHECK_INT_EQ(wait_stat(w, 'a', STAT(accepted), before.accepted + 2), before.accepted + 2);

    CHECK(run_on_loop(w, CMD_STOP_A));
    CHECK_INT_EQ(client_connect(w->pa), -ECONNREFUSED);
    send_str(p2, "Host: t\r\n\r\n", 11);
    read_resp(p2, r, false);
    CHECK_INT_EQ(resp_status(r), 200);
    CHECK_STR_EQ(resp_body(r), "GET /after-stop HTTP/1.1\r\nHost: t\r\n\r\n");
    close(p2);

    CHECK(run_on_loop(w, CMD_FINISH));
    read_resp(p1, r, false);
    CHECK(r->closed);
    CHECK_INT_EQ(r->len, 0);
    close(p1);
    free(r);
}

/* A garbage request line and header lines a proxy and libmicrohttpd would
 * read differently: 400 and closed, counted, never handed off. */
static void scenario_400(struct world *w)
{
    static const char nul[] = "GET /v1/exchanges HTTP/1.1\r\nHost: t\r\n"
                              "Authorization: Bearer tok\0junk\r\n\r\n";
    const char *heads[] = {"BREW\x01 / HTTP/1.1\r\n\r\n",
                           "GET / HTTP/1.1\r\nHost: t\rTransfer-Encoding: chunked\r\n\r\n",
                           "GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"};
    struct resp *r = calloc(1, sizeof *r);
    struct front_door_stats before = stats_of(w, 'a');

    for (size_t i = 0; i <= sizeof heads / sizeof *heads; i++) {
        int fd = client_connect(w->pa);
        CHECK(fd >= 0);
        if (i < sizeof heads / sizeof *heads) {
            send_str(fd, heads[i], strlen(heads[i]));
        } else {
            send_str(fd, nul, sizeof nul - 1);
        }
        read_resp(fd, r, false);
        check_refusal(r, 400, "bad_request", __LINE__);
        close(fd);
    }
    struct front_door_stats after = stats_of(w, 'a');
    CHECK_INT_EQ(after.bad_400 - before.bad_400, 4);
    CHECK_INT_EQ(after.to_rest - before.to_rest, 0);
    free(r);
}

static void *client_main(void *arg)
{
    struct world *w = arg;

    expect_rest(w->pa, "GET /one HTTP/1.1\r\nHost: t\r\n\r\n", 0, 0, __LINE__);
    scenario_pieces(w);
    scenario_ws(w, 0);
    scenario_ws(w, 9);
    scenario_431(w);
    scenario_400(w);
    scenario_early(w);
    scenario_many(w, w->pa, 200);
    expect_rest(w->pa, "GET /lf HTTP/1.0\nHost: t\n\n", 0, 0, __LINE__);
    scenario_post(w);
    scenario_emfile(w);

    scenario_408(w, NULL);
    scenario_408(w, "GET /slow HTTP/1.1\r\n");
    scenario_501(w);
    scenario_limit(w);
    scenario_many(w, w->pb, 20);

    scenario_free_inside(w);
    scenario_stop_and_free(w);
    return NULL;
}

/* ---- Setup ---------------------------------------------------------------- */

static void test_new_errors(struct loop *loop, int busy_port)
{
    char err[256] = "";
    struct front_door_ops ops = {.rest = on_rest};
    struct front_door_ops no_rest = {.rest = NULL};
    struct front_door_limits tiny = {.max_head_bytes = 2};

    CHECK(front_door_new(loop, "localhost", 0, NULL, &ops, err, sizeof err) == NULL);
    CHECK(strstr(err, "numeric") != NULL);
    CHECK(front_door_new(loop, "127.0.0.1", 70000, NULL, &ops, err, sizeof err) == NULL);
    CHECK(strstr(err, "70000") != NULL);
    CHECK(front_door_new(loop, "127.0.0.1", 0, NULL, &no_rest, err, sizeof err) == NULL);
    CHECK(strstr(err, "rest") != NULL);
    CHECK(front_door_new(loop, "127.0.0.1", 0, &tiny, &ops, err, sizeof err) == NULL);
    CHECK(strstr(err, "max_head_bytes") != NULL);
    struct front_door_limits forever = {.head_timeout_ms = UINT64_MAX};
    CHECK(front_door_new(loop, "127.0.0.1", 0, &forever, &ops, err, sizeof err) == NULL);
    CHECK(strstr(err, "head_timeout_ms") != NULL);
    CHECK(front_door_new(loop, "127.0.0.1", busy_port, NULL, &ops, err, sizeof err) == NULL);
    CHECK(strstr(err, "in use") != NULL);
    front_door_free(NULL);
}

int main(void)
{
    static struct world w;
    char err[256] = "";
    const char *f = getenv("TEST_TIME_FACTOR");
    pthread_t client;

    if (f && atof(f) > 0) {
        tf = atof(f);
    }
    test_scan();

    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.loop = loop_new();
    w.loop_thread = pthread_self();
    struct front_door_ops ops_a = {.rest = on_rest, .ws = on_ws, .ctx = &w};
    struct front_door_ops ops_b = {.rest = on_rest, .ws = NULL, .ctx = &w};
    struct front_door_ops ops_c = {.rest = on_rest_c, .ctx = &w};
    struct front_door_limits lim_b = {
        .max_head_bytes = 256, .head_timeout_ms = 300, .max_accepts_per_wake = 4};
    w.a = front_door_new(w.loop, "127.0.0.1", 0, NULL, &ops_a, err, sizeof err);
    w.b = front_door_new(w.loop, "127.0.0.1", 0, &lim_b, &ops_b, err, sizeof err);
    w.c = front_door_new(w.loop, "127.0.0.1", 0, NULL, &ops_c, err, sizeof err);
    CHECK(w.a && w.b && w.c);
    if (!w.a || !w.b || !w.c) {
        fprintf(stderr, "front_door_new: %s\n", err);
        return CHECK_DONE();
    }
    w.pa = front_door_port(w.a);
    w.pb = front_door_port(w.b);
    w.pc = front_door_port(w.c);
    CHECK(w.pa > 0 && w.pb > 0 && w.pc > 0 && w.pa != w.pb);
    test_new_errors(w.loop, w.pa);

    w.async = loop_async_new(w.loop, on_async, &w);
    w.guard = loop_timer_new(w.loop, on_guard, &w);
    loop_timer_start(w.guard, (uint64_t)(60000 * tf), 0);
    pthread_create(&client, NULL, client_main, &w);
    loop_run(w.loop);
    pthread_join(client, NULL);
    CHECK(!w.guard_fired);
    CHECK(w.finished);

    /* Every accepted connection ended in exactly one counter (A had one
     * still pending when it was freed). */
    struct front_door_stats a = w.sa, b = w.sb;
    CHECK_INT_EQ(a.accepted, 216);
    CHECK_INT_EQ(a.to_rest, 206); /* 1 + pieces + 200 + lf + post + emfile + after-stop */
    CHECK_INT_EQ(a.to_ws, 2);
    CHECK_INT_EQ(a.too_large_431, 1);
    CHECK_INT_EQ(a.bad_400, 4);
    CHECK_INT_EQ(a.closed_early, 2);
    CHECK_INT_EQ(a.timeouts_408, 0);
    CHECK_INT_EQ(a.refused_501, 0);
    CHECK_INT_EQ(a.accepted,
                 a.to_rest + a.to_ws + a.too_large_431 + a.bad_400 + a.closed_early + 1);
    CHECK_INT_EQ(b.accepted, 25);
    CHECK_INT_EQ(b.to_rest, 21); /* the 256-byte head + 20 at once */
    CHECK_INT_EQ(b.to_ws, 0);
    CHECK_INT_EQ(b.timeouts_408, 2);
    CHECK_INT_EQ(b.too_large_431, 1);
    CHECK_INT_EQ(b.refused_501, 1);
    CHECK_INT_EQ(b.closed_early, 0);

    /* After a guard stop the doors are still here. */
    front_door_free(w.a);
    front_door_free(w.b);
    front_door_free(w.c);
    for (int i = 0; i < MAX_WS; i++) {
        if (w.ws[i]) {
            ws_conn_free(w.ws[i]);
        }
    }
    loop_timer_free(w.guard);
    loop_async_free(w.async);
    CHECK_INT_EQ(loop_free(w.loop), 0);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return CHECK_DONE();
}
