/*
 * fanout_client: many /v1/stream subscribers in one thread, measuring
 * update-to-client latency (tests/bench/fanout/run).
 *
 * The story: open --conns WebSocket connections to 127.0.0.1:--port (at
 * most MAX_CONNECTING handshakes in flight, Bearer token in the header); on
 * each, subscribe to --per of the --pairs synthetic pairs BASE<i>_USDT of
 * exchange benchfeed with throttle_ms 0, connection k taking pairs k*per ..
 * k*per + per - 1 (mod pairs), so every pair has conns*per/pairs
 * subscribers. Once every connection has its ack (within --connect-timeout,
 * 60 s by default), wait --warmup seconds, then for --seconds count "rate"
 * messages and, for each, the latency: the receive time (CLOCK_REALTIME)
 * minus the send time the benchfeed operator put in the ticker's volume
 * (integer ms since the epoch, from x.now() just before x.emit). The send
 * time is truncated to the millisecond, so a latency is up to 1 ms high.
 * One line of key=value results goes to stdout; with --mark PREFIX, the
 * files PREFIX.subscribed, PREFIX.start and PREFIX.end are created when
 * every connection has its ack and when the measured window opens and
 * closes.
 *
 * It is the instrument, on the same 2 CPUs as the server it measures: its
 * run-queue wait and its time per message are part of every latency, so it
 * does as little as it can. It speaks just enough WebSocket by hand —
 * a handshake, masked text frames out, unmasked frames in, pings answered
 * — on epoll, one recv per ready socket, and parses only what it needs
 * (the message type, the volume digits) with string searches, never a
 * whole JSON document. On libwebsockets (until 2026-12-04) it cost about
 * 4 µs per message at 1,000 connections and 11 µs at 10,000, so a burst of
 * 500 messages for one update took it 5.5 ms to read; it reports its own
 * CPU (client_cpu) and run-queue wait (client_wait_ms).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTING 64
#define TICK_MS 10     /* phase checks every 10 ms */
#define BUCKET_US 10   /* latency histogram resolution */
#define BUCKETS 200000 /* 10 us buckets up to 2 s, then one overflow count */
#define READ_BUF 65536
#define EVENTS 1024
#define VOLUME_KEY "\"volume\":\""

enum phase { PHASE_CONNECT, PHASE_WARMUP, PHASE_MEASURE, PHASE_DONE };
enum conn_state { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED };

struct conn {
    int fd;
    int index;
    enum conn_state state;
    bool acked;
    unsigned long rates; /* in the measured window */
    unsigned char *buf;  /* bytes of a frame (or head) not yet whole */
    size_t len, cap;
};

struct bench {
    const char *token, *exchange, *mark;
    int port, conns, pairs, per;
    double warmup_s, seconds, connect_timeout_s;
    struct conn *c;
    int ep;
    enum phase phase;
    int launched, connecting, open, acked, failed, closed_early;
    double started, phase_at, connect_s, measured_s, cpu_at, cpu_s, wait_at, wait_s;
    unsigned long rates, others, errors, unparsed, over;
    double max_ms;
    unsigned long *hist;
    char first_error[200];
    unsigned char rbuf[READ_BUF];
};

static volatile sig_atomic_t interrupted;

/* Creates PREFIX.what (holding "1", as rx_wait_file waits for a non-empty
 * file) so that a script can time its samples to ours. */
static void mark(const struct bench *b, const char *what)
{
    char path[4096];
    FILE *f;

    if (b->mark) {
        snprintf(path, sizeof path, "%s.%s", b->mark, what);
        f = fopen(path, "w");
        if (f) {
            fputs("1\n", f);
            fclose(f);
        }
    }
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Seconds this (single-threaded) process spent runnable but waiting for a CPU. */
static double runqueue_s(void)
{
    unsigned long long run_ns = 0, wait_ns = 0;
    FILE *f = fopen("/proc/self/schedstat", "r");

    if (f) {
        if (fscanf(f, "%llu %llu", &run_ns, &wait_ns) != 2) {
            wait_ns = 0;
        }
        fclose(f);
    }
    return (double)wait_ns / 1e9;
}

static void note_error(struct bench *b, const char *what, const void *in, size_t len)
{
    if (!b->first_error[0]) {
        snprintf(b->first_error, sizeof b->first_error, "%s: %.*s", what,
                 (int)(len > 150 ? 150 : len), in ? (const char *)in : "");
    }
}

/* ---- Latency ------------------------------------------------------------ */

static void record_rate(struct bench *b, struct conn *c, const char *msg, size_t len)
{
    const char *v = memmem(msg, len, VOLUME_KEY, sizeof VOLUME_KEY - 1);
    struct timespec now;
    long long sent_ms = 0;

    clock_gettime(CLOCK_REALTIME, &now);
    if (!v) {
        b->unparsed++;
        return;
    }
    for (v += sizeof VOLUME_KEY - 1; v < msg + len && *v >= '0' && *v <= '9'; v++) {
        sent_ms = sent_ms * 10 + (*v - '0');
    }
    long long us = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000 - sent_ms * 1000;
    if (us < 0) {
        us = 0; /* cannot happen on one clock; kept out of the histogram's range check */
    }
    b->rates++;
    c->rates++;
    if ((double)us / 1000.0 > b->max_ms) {
        b->max_ms = (double)us / 1000.0;
    }
    if (us / BUCKET_US < BUCKETS) {
        b->hist[us / BUCKET_US]++;
    } else {
        b->over++;
    }
}

/* The latency in ms below which a fraction q of the measured rates fall. */
static double quantile_ms(const struct bench *b, double q)
{
    unsigned long want = (unsigned long)(q * (double)b->rates), seen = 0;

    for (long i = 0; i < BUCKETS; i++) {
        seen += b->hist[i];
        if (seen > want) {
            return (double)(i + 1) * BUCKET_US / 1000.0;
        }
    }
    return b->max_ms;
}

/* ---- Frames ------------------------------------------------------------- */

static bool starts(const char *msg, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(msg, prefix, n) == 0;
}

/* Sends a masked frame (the mask key is zero: masked as RFC 6455 asks,
 * with no work to apply it). Returns -1 if the kernel did not take it. */
static int send_frame(struct conn *c, int opcode, const char *payload, size_t len)
{
    unsigned char frame[8 + 1024];
    size_t h = 0;

    if (len > sizeof frame - 8) {
        return -1;
    }
    frame[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        frame[h++] = (unsigned char)(0x80 | len);
    } else {
        frame[h++] = 0x80 | 126;
        frame[h++] = (unsigned char)(len >> 8);
        frame[h++] = (unsigned char)len;
    }
    memset(frame + h, 0, 4);
    h += 4;
    memcpy(frame + h, payload, len);
    return send(c->fd, frame, h + len, MSG_NOSIGNAL) == (ssize_t)(h + len) ? 0 : -1;
}

static int send_subscribe(struct bench *b, struct conn *c)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "{\"op\":\"subscribe\",\"id\":1,\"pairs\":[");

    for (int k = 0; k < b->per; k++) {
        n += snprintf(msg + n, sizeof msg - (size_t)n, "%s\"BASE%d_USDT\"", k ? "," : "",
                      (c->index * b->per + k) % b->pairs);
    }
    n += snprintf(msg + n, sizeof msg - (size_t)n, "],\"exchanges\":[\"%s\"],\"throttle_ms\":0}",
                  b->exchange);
    return send_frame(c, 0x1, msg, (size_t)n);
}

/* One whole text message. */
static void on_message(struct bench *b, struct conn *c, const char *msg, size_t len)
{
    if (starts(msg, len, "{\"type\":\"rate\"")) {
        if (b->phase == PHASE_MEASURE) {
            record_rate(b, c, msg, len);
        }
    } else if (starts(msg, len, "{\"type\":\"ack\"")) {
        if (!c->acked) {
            c->acked = true;
            b->acked++;
        }
    } else if (starts(msg, len, "{\"type\":\"error\"")) {
        b->errors++;
        note_error(b, "server error", msg, len);
    } else {
        b->others++; /* snapshot, status, pong */
    }
}

/* Server frames in p[0..n): handled; returns the bytes used (a cut frame
 * is left), or -1 when the server closed. */
static long frames(struct bench *b, struct conn *c, const unsigned char *p, size_t n)
{
    size_t off = 0;

    while (n - off >= 2) {
        const unsigned char *f = p + off;
        int opcode = f[0] & 0x0f;
        uint64_t len = f[1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (n - off < 4) {
                break;
            }
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            if (n - off < 10) {
                break;
            }
            len = 0;
            for (int i = 0; i < 8; i++) {
                len = len << 8 | f[2 + i];
            }
            h = 10;
        }
        if (n - off - h < len) {
            break;
        }
        if (opcode == 0x1 && (f[0] & 0x80)) {
            on_message(b, c, (const char *)f + h, (size_t)len);
        } else if (opcode == 0x9) {
            send_frame(c, 0xa, (const char *)f + h, (size_t)len);
        } else if (opcode == 0x8) {
            note_error(b, "closed by the server", f + h + 2, len > 2 ? (size_t)len - 2 : 0);
            return -1;
        } else if (opcode == 0x0 || !(f[0] & 0x80)) {
            b->unparsed++; /* the server never fragments */
        }
        off += h + (size_t)len;
    }
    return (long)off;
}

/* ---- Connections -------------------------------------------------------- */

static void conn_close(struct bench *b, struct conn *c)
{
    if (c->state == C_OPEN) {
        b->open--;
        if (b->phase != PHASE_DONE) {
            b->closed_early++;
        }
    } else if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
        b->connecting--;
        b->failed++;
    }
    c->state = C_CLOSED;
    close(c->fd);
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

static void keep(struct conn *c, const unsigned char *p, size_t n)
{
    if (c->len + n > c->cap) {
        c->cap = (c->len + n) * 2;
        c->buf = realloc(c->buf, c->cap);
        if (!c->buf) {
            abort();
        }
    }
    memmove(c->buf + c->len, p, n);
    c->len += n;
}

/* The 101 head, then frames. */
static int handshake(struct bench *b, struct conn *c)
{
    unsigned char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);

    if (!end) {
        return c->len > 4096 ? -1 : 0;
    }
    if (c->len < 12 || memcmp(c->buf, "HTTP/1.1 101", 12) != 0) {
        note_error(b, "upgrade refused", c->buf, c->len);
        return -1;
    }
    size_t head = (size_t)(end - c->buf) + 4;
    c->state = C_OPEN;
    b->connecting--;
    b->open++;
    memmove(c->buf, c->buf + head, c->len - head);
    c->len -= head;
    return send_subscribe(b, c);
}

static void on_readable(struct bench *b, struct conn *c)
{
    ssize_t n = recv(c->fd, b->rbuf, sizeof b->rbuf, 0);
    long used;

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        if (c->state == C_OPEN && b->phase != PHASE_DONE) {
            note_error(b, "connection ended", "", 0);
        }
        conn_close(b, c);
        return;
    }
    if (n < 0) {
        return;
    }
    if (c->state == C_HANDSHAKE) {
        keep(c, b->rbuf, (size_t)n);
        if (handshake(b, c) < 0) {
            conn_close(b, c);
        }
        if (c->state != C_OPEN || c->len == 0) {
            return;
        }
        n = 0; /* what followed the head is in c->buf */
    }
    if (c->len) {
        keep(c, b->rbuf, (size_t)n);
        used = frames(b, c, c->buf, c->len);
        if (used >= 0) {
            memmove(c->buf, c->buf + used, c->len - (size_t)used);
            c->len -= (size_t)used;
        }
    } else {
        used = frames(b, c, b->rbuf, (size_t)n);
        if (used >= 0 && used < n) {
            keep(c, b->rbuf + used, (size_t)n - (size_t)used);
        }
    }
    if (used < 0) {
        conn_close(b, c);
    }
}

/* The socket connected: send the upgrade. */
static void on_connected(struct bench *b, struct conn *c)
{
    char head[768];
    int err = 0;
    socklen_t len = sizeof err;

    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    int n = snprintf(head, sizeof head,
                     "GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n",
                     b->port, b->token);
    if (err || send(c->fd, head, (size_t)n, MSG_NOSIGNAL) != n) {
        note_error(b, "connection error", strerror(err ? err : errno), 0);
        conn_close(b, c);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(b->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->state = C_HANDSHAKE;
}

static void launch(struct bench *b)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)b->port)};
    int one = 1;

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    while (b->launched < b->conns && b->connecting < MAX_CONNECTING) {
        struct conn *c = &b->c[b->launched];
        c->index = b->launched++;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            note_error(b, "socket", strerror(errno), 0);
            b->failed++;
            continue;
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        b->connecting++;
        c->state = C_CONNECTING;
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
            note_error(b, "connect", strerror(errno), 0);
            conn_close(b, c);
            continue;
        }
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
        epoll_ctl(b->ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
}

/* ---- Phases ------------------------------------------------------------- */

static void tick(struct bench *b)
{
    double now = mono_s();

    switch (b->phase) {
    case PHASE_CONNECT:
        launch(b);
        if (b->acked == b->conns) {
            mark(b, "subscribed");
            b->connect_s = now - b->started;
            b->phase = PHASE_WARMUP;
            b->phase_at = now;
        } else if (now - b->started > b->connect_timeout_s || b->failed) {
            note_error(b, "not every connection subscribed in time", "", 0);
            b->phase = PHASE_DONE;
        }
        break;
    case PHASE_WARMUP:
        if (now - b->phase_at >= b->warmup_s) {
            b->phase = PHASE_MEASURE;
            b->phase_at = now;
            b->cpu_at = cpu_s();
            b->wait_at = runqueue_s();
            mark(b, "start");
        }
        break;
    case PHASE_MEASURE:
        if (now - b->phase_at >= b->seconds) {
            b->measured_s = now - b->phase_at;
            b->cpu_s = cpu_s() - b->cpu_at;
            b->wait_s = runqueue_s() - b->wait_at;
            b->phase = PHASE_DONE;
            mark(b, "end");
        }
        break;
    case PHASE_DONE:
        break;
    }
}

static void run(struct bench *b)
{
    struct epoll_event ev[EVENTS];
    double next_tick = mono_s();

    while (b->phase != PHASE_DONE && !interrupted) {
        double now = mono_s();
        if (now >= next_tick) {
            tick(b);
            next_tick = now + TICK_MS / 1000.0;
        }
        int wait_ms = (int)((next_tick - now) * 1000) + 1;
        int n = epoll_wait(b->ep, ev, EVENTS, wait_ms);
        for (int i = 0; i < n; i++) {
            struct conn *c = ev[i].data.ptr;
            if (c->state == C_CONNECTING) {
                on_connected(b, c);
            } else if (c->state == C_HANDSHAKE || c->state == C_OPEN) {
                on_readable(b, c);
            }
        }
    }
}

static void report(const struct bench *b)
{
    unsigned long least = b->conns ? (unsigned long)-1 : 0;
    double secs = b->measured_s > 0 ? b->measured_s : 1;

    for (int i = 0; i < b->conns; i++) {
        least = b->c[i].rates < least ? b->c[i].rates : least;
    }
    printf("conns=%d subscribed=%d pairs=%d per_conn=%d connect_s=%.2f seconds=%.2f messages=%lu "
           "msg_per_s=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f "
           "over_2s=%lu least_per_conn=%lu client_cpu=%.2f client_wait_ms=%.0f errors=%lu "
           "closed_early=%d unparsed=%lu other_messages=%lu\n",
           b->conns, b->acked, b->pairs, b->per, b->connect_s, b->measured_s, b->rates,
           (double)b->rates / secs, quantile_ms(b, 0.50), quantile_ms(b, 0.90),
           quantile_ms(b, 0.99), quantile_ms(b, 0.999), b->max_ms, b->over, least, b->cpu_s / secs,
           b->wait_s * 1000 / secs, b->errors, b->closed_early, b->unparsed, b->others);
    if (b->first_error[0]) {
        fprintf(stderr, "fanout_client: %s\n", b->first_error);
    }
}

static void on_signal(int sig)
{
    interrupted = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: fanout_client --port P --token T [--conns 1000] [--pairs 100] "
                    "[--per 5] [--warmup 2] [--seconds 10] [--mark PREFIX] "
                    "[--connect-timeout 60]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct bench *b = calloc(1, sizeof *b);

    if (!b) {
        return 1;
    }
    *b = (struct bench){.exchange = "benchfeed",
                        .conns = 1000,
                        .pairs = 100,
                        .per = 5,
                        .warmup_s = 2,
                        .seconds = 10,
                        .connect_timeout_s = 60};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port")) {
            b->port = atoi(v);
        } else if (!strcmp(k, "--token")) {
            b->token = v;
        } else if (!strcmp(k, "--conns")) {
            b->conns = atoi(v);
        } else if (!strcmp(k, "--pairs")) {
            b->pairs = atoi(v);
        } else if (!strcmp(k, "--per")) {
            b->per = atoi(v);
        } else if (!strcmp(k, "--warmup")) {
            b->warmup_s = atof(v);
        } else if (!strcmp(k, "--seconds")) {
            b->seconds = atof(v);
        } else if (!strcmp(k, "--mark")) {
            b->mark = v;
        } else if (!strcmp(k, "--connect-timeout")) {
            b->connect_timeout_s = atof(v);

        } else {
            usage();
        }
    }
    if (argc % 2 == 0 || b->port <= 0 || !b->token || strlen(b->token) > 512 || b->conns < 1 ||
        b->pairs < 1 || b->per < 1 || b->per > 20) {
        usage();
    }
    b->c = calloc((size_t)b->conns, sizeof *b->c);
    b->hist = calloc(BUCKETS, sizeof *b->hist);
    b->ep = epoll_create1(EPOLL_CLOEXEC);
    if (!b->c || !b->hist || b->ep < 0) {
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    b->started = mono_s();
    run(b);
    report(b);
    int ok = b->acked == b->conns && b->measured_s > 0;
    for (int i = 0; i < b->launched; i++) {
        if (b->c[i].state != C_CLOSED) {
            close(b->c[i].fd);
            free(b->c[i].buf);
        }
    }
    free(b->hist);
    free(b->c);
    free(b);
    return ok ? 0 : 1;
}
