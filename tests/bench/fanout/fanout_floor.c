/*
 * fanout_floor: the floor run of tests/bench/fanout — a bare libwebsockets
 * server on a libuv loop (the kind of loop explorer's API runs on), sending
 * the same pre-rendered rate frames to the same clients at the same rate,
 * and doing nothing else: no store, no sessions, no conflation, no index
 * beyond one list of subscribers per pair, no tokens. What explorer's API
 * loop spends per client message above this server's CPU per client
 * message is explorer's own overhead; the rest is what any server pays to
 * push a frame through libwebsockets and the kernel (on loopback the
 * sender is also charged the receiver's TCP work).
 *
 * The story: listen on 127.0.0.1:--port with a socket of our own and hand
 * each accepted connection to libwebsockets (lws_adopt_descriptor_vhost),
 * as explorer's front door hands over its upgrades; answer each
 * connection's subscribe (the bench client's, see fanout_client.c: its "pairs" list of
 * BASE<i>_USDT) with an ack and an empty last snapshot, and file the
 * connection under those pairs. A 1 ms timer emits --rate updates per
 * second round robin over --pairs pairs, as benchfeed.lua does: each update
 * is rendered once, as explorer renders a benchfeed rate (same fields, same
 * length to a few bytes, the send time in volume), and queued by reference
 * on every subscriber of its pair; each connection writes its queue from
 * libwebsockets' writeable callback, at most WRITE_BURST frames per call,
 * the library's idiomatic way (lws_callback_on_writable, then lws_write).
 * Single thread: the process's CPU is its loop thread's. SIGTERM or SIGINT
 * prints "messages=N dropped=N" and exits.
 */
#include <libwebsockets.h>
#include <uv.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define MAX_PAIRS 1000
#define RING 64        /* frames queued per connection; more are dropped and counted */
#define WRITE_BURST 16 /* as explorer's WebSocket server */
#define FRAME_MAX 640

/* One rendered message, shared by every subscriber it is queued on. */
struct frame {
    int refs; /* -1: static, never freed */
    size_t len;
    unsigned char buf[LWS_PRE + FRAME_MAX];
};

struct conn {
    struct lws *wsi;
    struct frame *ring[RING];
    unsigned head, n;
    int pairs[20];
    int n_pairs;
};

struct pair_subs {
    struct conn **c;
    size_t n, cap;
};

struct floor {
    int port, rate, pairs;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    int listen_fd;
    uv_poll_t listener;
    uv_loop_t loop;
    void *foreign_loops[1];
    uv_timer_t feed;
    uv_signal_t sigterm, sigint;
    struct pair_subs subs[MAX_PAIRS];
    uint64_t started_ms, emitted, seq;
    unsigned long messages, dropped;
    struct frame ack, snapshot;
};

static struct floor fl;

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void frame_set(struct frame *f, const char *text)
{
    f->refs = -1;
    f->len = strlen(text);
    memcpy(f->buf + LWS_PRE, text, f->len);
}

static void frame_unref(struct frame *f)
{
    if (f->refs > 0 && --f->refs == 0) {
        free(f);
    }
}

/* Queues f on c and asks for a writeable callback. */
static void conn_queue(struct conn *c, struct frame *f)
{
    if (c->n == RING) {
        fl.dropped++;
        return;
    }
    if (f->refs > 0) {
        f->refs++;
    }
    c->ring[(c->head + c->n++) % RING] = f;
    lws_callback_on_writable(c->wsi);
}

/* ---- The feed ----------------------------------------------------------- */

/* One update of pair i, rendered as explorer renders a benchfeed rate. */
static struct frame *render(int i, uint64_t seq)
{
    struct frame *f = malloc(sizeof *f);
    uint64_t now = wall_ms();
    double tick = (double)(seq % 1000) / 1000;
    int n;

    if (!f) {
        abort();
    }
    f->refs = 1;
    n = snprintf((char *)f->buf + LWS_PRE, FRAME_MAX,
                 "{\"type\":\"rate\",\"sub\":1,\"exchange\":\"benchfeed\",\"pair\":\"BASE%d_USDT\","
                 "\"symbol\":\"BASE%dUSDT\",\"bid\":\"%.3f\",\"ask\":\"%.3f\",\"bid_size\":null,"
                 "\"ask_size\":null,\"last\":null,\"volume\":\"%llu\",\"mid\":%.4f,"
                 "\"spread_bps\":%.12f,\"ts\":null,\"received\":%llu,\"age_ms\":0,"
                 "\"stale\":false,\"source\":\"poll\",\"v\":%llu}",
                 i, i, 100 + i + tick, 100.5 + i + tick, (unsigned long long)now, 100.25 + i + tick,
                 0.5 / (100.25 + i + tick) * 10000, (unsigned long long)now,
                 (unsigned long long)seq);
    f->len = n > 0 && n < FRAME_MAX ? (size_t)n : 0;
    return f;
}

static void on_feed(uv_timer_t *t)
{
    uint64_t due = (mono_ms() - fl.started_ms) * (uint64_t)fl.rate / 1000;

    while (fl.emitted < due) {
        int i = (int)(fl.seq % (uint64_t)fl.pairs);
        struct frame *f = render(i, ++fl.seq);
        struct pair_subs *ps = &fl.subs[i];
        for (size_t k = 0; k < ps->n; k++) {
            conn_queue(ps->c[k], f);
        }
        frame_unref(f);
        fl.emitted++;
    }
}

/* ---- Connections -------------------------------------------------------- */

static void subs_add(int pair, struct conn *c)
{
    struct pair_subs *ps = &fl.subs[pair];
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 64;
        ps->c = realloc(ps->c, ps->cap * sizeof *ps->c);
        if (!ps->c) {
            abort();
        }
    }
    ps->c[ps->n++] = c;
}

static void subs_remove(struct conn *c)
{
    for (int k = 0; k < c->n_pairs; k++) {
        struct pair_subs *ps = &fl.subs[c->pairs[k]];
        for (size_t j = 0; j < ps->n; j++) {
            if (ps->c[j] == c) {
                ps->c[j] = ps->c[--ps->n];
                break;
            }
        }
    }
    c->n_pairs = 0;
}

/* The bench client's subscribe: every "BASE<i>_USDT" it lists. */
static void on_subscribe(struct conn *c, const char *msg, size_t len)
{
    const char *p = msg, *end = msg + len;

    while ((p = memmem(p, (size_t)(end - p), "\"BASE", 5)) != NULL) {
        int i = 0;
        for (p += 5; p < end && *p >= '0' && *p <= '9'; p++) {
            i = i * 10 + (*p - '0');
        }
        if (i < fl.pairs && c->n_pairs < (int)(sizeof c->pairs / sizeof c->pairs[0])) {
            c->pairs[c->n_pairs++] = i;
            subs_add(i, c);
        }
    }
    conn_queue(c, &fl.ack);
    conn_queue(c, &fl.snapshot);
}

static int on_writeable(struct conn *c)
{
    for (int k = 0; k < WRITE_BURST && c->n && !lws_send_pipe_choked(c->wsi); k++) {
        struct frame *f = c->ring[c->head];
        c->head = (c->head + 1) % RING;
        c->n--;
        int len = (int)f->len;
        int w = lws_write(c->wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
        frame_unref(f);
        if (w < len) {
            return -1;
        }
        fl.messages++;
    }
    if (c->n) {
        lws_callback_on_writable(c->wsi);
    }
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(c, 0, sizeof *c);
        c->wsi = wsi;
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (memmem(in, len, "\"subscribe\"", 11)) {
            on_subscribe(c, in, len);
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_writeable(c);
    case LWS_CALLBACK_CLOSED:
        subs_remove(c);
        while (c->n) {
            frame_unref(c->ring[c->head]);
            c->head = (c->head + 1) % RING;
            c->n--;
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {"rx-floor", callback, sizeof(struct conn), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Accepts whatever is waiting and hands it over. */
static void on_accept(uv_poll_t *h, int status, int events)
{
    int one = 1;

    for (;;) {
        int fd = accept4(fl.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        /* As explorer's front door does for every WebSocket it hands over. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        lws_sock_file_fd_type sock = {.sockfd = fd};
        if (!lws_adopt_descriptor_vhost(fl.vhost, LWS_ADOPT_HTTP | LWS_ADOPT_SOCKET, sock, NULL,
                                        NULL)) {
            fprintf(stderr, "fanout_floor: libwebsockets could not adopt a connection\n");
        }
    }
}

static int listen_on(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, SOMAXCONN) != 0) {
        return -1;
    }
    return fd;
}

/* A bench tool: the process ends here and the kernel closes the sockets. */
static void on_signal(uv_signal_t *s, int signum)
{
    printf("messages=%lu dropped=%lu emitted=%llu\n", fl.messages, fl.dropped,
           (unsigned long long)fl.emitted);
    fflush(stdout);
    _exit(0);
}

static void usage(void)
{
    fprintf(stderr, "usage: fanout_floor --port P [--rate 1000] [--pairs 100]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct lws_context_creation_info info = {0};

    fl.rate = 1000;
    fl.pairs = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) {
            fl.port = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--rate")) {
            fl.rate = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--pairs")) {
            fl.pairs = atoi(argv[i + 1]);
        } else {
            usage();
        }
    }
    if (argc % 2 == 0 || fl.port <= 0 || fl.rate < 1 || fl.pairs < 1 || fl.pairs > MAX_PAIRS) {
        usage();
    }
    frame_set(&fl.ack, "{\"type\":\"ack\",\"id\":1,\"sub\":1}");
    frame_set(&fl.snapshot,
              "{\"type\":\"snapshot\",\"id\":1,\"sub\":1,\"rates\":[],\"last\":true}");
    lws_set_log_level(LLL_ERR, NULL);
    if (uv_loop_init(&fl.loop) != 0) {
        fprintf(stderr, "fanout_floor: no libuv loop\n");
        return 1;
    }
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.options = LWS_SERVER_OPTION_LIBUV;
    fl.foreign_loops[0] = &fl.loop;
    info.foreign_loops = fl.foreign_loops;
    info.pcontext = &fl.ctx;
    fl.ctx = lws_create_context(&info);
    if (!fl.ctx) {
        fprintf(stderr, "fanout_floor: no libwebsockets context\n");
        return 1;
    }
    fl.vhost = lws_get_vhost_by_name(fl.ctx, "default");
    fl.listen_fd = listen_on(fl.port);
    if (!fl.vhost || fl.listen_fd < 0) {
        fprintf(stderr, "fanout_floor: cannot listen on 127.0.0.1:%d\n", fl.port);
        return 1;
    }
    uv_poll_init_socket(&fl.loop, &fl.listener, fl.listen_fd);
    uv_poll_start(&fl.listener, UV_READABLE, on_accept);
    uv_timer_init(&fl.loop, &fl.feed);
    uv_signal_init(&fl.loop, &fl.sigterm);
    uv_signal_init(&fl.loop, &fl.sigint);
    uv_signal_start(&fl.sigterm, on_signal, SIGTERM);
    uv_signal_start(&fl.sigint, on_signal, SIGINT);
    fl.started_ms = mono_ms();
    uv_timer_start(&fl.feed, on_feed, 1, 1);
    fprintf(stderr, "fanout_floor: listening on 127.0.0.1:%d\n", fl.port);
    uv_run(&fl.loop, UV_RUN_DEFAULT);
    return 0;
}
