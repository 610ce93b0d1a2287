/*
 * fanout_client: many /v1/stream subscribers on one libwebsockets client
 * context, measuring update-to-client latency (tests/bench/fanout/run).
 *
 * The story: open --conns WebSocket connections to explorer on 127.0.0.1
 * (at most MAX_CONNECTING handshakes in flight, Bearer token in the header);
 * on each, subscribe to --per of the --pairs synthetic pairs BASE<i>_USDT of
 * exchange benchfeed with throttle_ms 0, connection k taking pairs k*per .. k*per +
 * per - 1 (mod pairs), so every pair has conns*per/pairs subscribers. Once
 * every connection has its ack (within 60 s), wait --warmup seconds, then for --seconds
 * count "rate" messages and, for each, the latency: the receive time
 * (CLOCK_REALTIME) minus the send time the benchfeed operator put in the
 * ticker's volume (integer ms since the epoch, from x.now() just before
 * x.emit). The send time is truncated to the millisecond, so a latency is
 * up to 1 ms high. One line of key=value results goes to stdout; with
 * --mark PREFIX, the files PREFIX.start and PREFIX.end are created when the
 * measured window opens and closes.
 *
 * It parses only what it needs (the message type, the volume digits) with
 * string searches, never a whole JSON document, so its own CPU per message
 * stays small; it runs on the same 2 CPUs as the server, and its time in
 * the run queue is part of every latency it measures (client_cpu and
 * client_wait_ms, its time runnable but waiting for a CPU, show it).
 */
#include <libwebsockets.h>
#include <uv.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_CONNECTING 64
#define TICK_US 10000  /* phase checks every 10 ms */
#define TEARDOWN_TICKS 5
#define BUCKET_US 10   /* latency histogram resolution */
#define BUCKETS 200000 /* 10 us buckets up to 2 s, then one overflow count */
#define VOLUME_KEY "\"volume\":\""

enum phase { PHASE_CONNECT, PHASE_WARMUP, PHASE_MEASURE, PHASE_DONE };

struct conn {
    struct bench *b;
    int index;
    bool open, subscribe_sent, acked, mid_message;
    unsigned long rates; /* in the measured window */
};

struct bench {
    const char *host, *token, *exchange, *mark;
    int port, conns, pairs, per;
    double warmup_s, seconds, connect_timeout_s;
    struct lws_context *ctx;
    struct conn *c;
    lws_sorted_usec_list_t tick;
    uv_loop_t loop;
    void *foreign_loops[1];
    uv_timer_t teardown;
    int teardown_ticks;
    enum phase phase;
    int launched, connecting, open, acked, failed, closed_early;
    double started, phase_at, connect_s, measured_s, cpu_at, cpu_s, wait_at, wait_s;
    unsigned long rates, others, errors, unparsed, over;
    double max_ms;
    unsigned long *hist;
    char first_error[200];
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

/* ---- Messages ------------------------------------------------------------ */

static bool starts(const char *msg, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(msg, prefix, n) == 0;
}

/* One message, or the first fragment of a longer one (the type comes first). */
static void on_message(struct bench *b, struct conn *c, const char *msg, size_t len, bool whole)
{
    if (starts(msg, len, "{\"type\":\"rate\"")) {
        if (b->phase == PHASE_MEASURE) {
            if (whole) {
                record_rate(b, c, msg, len);
            } else {
                b->unparsed++;
            }
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

static int send_subscribe(struct bench *b, struct conn *c, struct lws *wsi)
{
    unsigned char buf[LWS_PRE + 512];
    char *p = (char *)buf + LWS_PRE, *end = (char *)buf + sizeof buf;
    int n = snprintf(p, (size_t)(end - p), "{\"op\":\"subscribe\",\"id\":1,\"pairs\":[");

    for (int k = 0; k < b->per; k++) {
        n += snprintf(p + n, (size_t)(end - p - n), "%s\"BASE%d_USDT\"", k ? "," : "",
                      (c->index * b->per + k) % b->pairs);
    }
    n += snprintf(p + n, (size_t)(end - p - n), "],\"exchanges\":[\"%s\"],\"throttle_ms\":0}",
                  b->exchange);
    c->subscribe_sent = true;
    return lws_write(wsi, (unsigned char *)p, (size_t)n, LWS_WRITE_TEXT) < n ? -1 : 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct conn *c = user;
    struct bench *b = c ? c->b : NULL;
    char auth[256];

    if (!c) {
        return 0; /* context-level reasons: nothing of ours */
    }
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = in, *end = *p + len;
        int n = snprintf(auth, sizeof auth, "Bearer %s", b->token);
        return lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                            (unsigned char *)auth, n, p, end)
                   ? -1
                   : 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->open = true;
        b->connecting--;
        b->open++;
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return c->subscribe_sent ? 0 : send_subscribe(b, c, wsi);
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!c->mid_message) {
            on_message(b, c, in, len, lws_is_final_fragment(wsi));
        }
        c->mid_message = !lws_is_final_fragment(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        b->connecting--;
        b->failed++;
        note_error(b, "connection error", in, in ? strlen(in) : 0);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c->open && b->phase != PHASE_DONE) {
            b->closed_early++;
            note_error(b, "closed by the server", "", 0);
        }
        if (c->open) {
            c->open = false;
            b->open--;
        }
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"rx-bench", callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- Phases ------------------------------------------------------------- */

static void launch(struct bench *b)
{
    while (b->launched < b->conns && b->connecting < MAX_CONNECTING) {
        struct conn *c = &b->c[b->launched];
        struct lws_client_connect_info ci = {
            .context = b->ctx,
            .address = b->host,
            .port = b->port,
            .path = "/v1/stream",
            .host = b->host,
            .protocol = NULL,
            .userdata = c,
        };
        c->b = b;
        c->index = b->launched++;
        b->connecting++;
        if (!lws_client_connect_via_info(&ci)) {
            b->connecting--;
            b->failed++;
        }
    }
}

/* libwebsockets on a foreign loop is destroyed in two halves, the first
 * inside the running loop and the second after uv_run has returned
 * (notes/one-port.md); the ticks between let its close callbacks run. */
static void on_teardown(uv_timer_t *t)
{
    struct bench *b = t->data;

    if (b->teardown_ticks++ == 0) {
        lws_context_destroy(b->ctx);
    }
    if (b->teardown_ticks == TEARDOWN_TICKS) {
        uv_timer_stop(t);
        uv_stop(t->loop);
    }
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
    struct bench *b = lws_container_of(sul, struct bench, tick);
    double now = mono_s();

    switch (b->phase) {
    case PHASE_CONNECT:
        launch(b);
        if (b->acked == b->conns) {
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
    if (b->phase != PHASE_DONE && !interrupted) {
        lws_sul_schedule(b->ctx, 0, &b->tick, on_tick, TICK_US);
    } else {
        uv_timer_start(&b->teardown, on_teardown, 0, 1);
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
           "closed_early=%d "
           "unparsed=%lu other_messages=%lu\n",
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
                    "[--per 5] [--warmup 2] [--seconds 10] [--mark PREFIX]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct bench b = {.host = "127.0.0.1",
                      .exchange = "benchfeed",
                      .conns = 1000,
                      .pairs = 100,
                      .per = 5,
                      .warmup_s = 2,
                      .seconds = 10,
                      .connect_timeout_s = 60};
    struct lws_context_creation_info info = {0};

    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port")) {
            b.port = atoi(v);
        } else if (!strcmp(k, "--token")) {
            b.token = v;

        } else if (!strcmp(k, "--conns")) {
            b.conns = atoi(v);
        } else if (!strcmp(k, "--pairs")) {
            b.pairs = atoi(v);
        } else if (!strcmp(k, "--per")) {
            b.per = atoi(v);
        } else if (!strcmp(k, "--warmup")) {
            b.warmup_s = atof(v);
        } else if (!strcmp(k, "--seconds")) {
            b.seconds = atof(v);
        } else if (!strcmp(k, "--mark")) {
            b.mark = v;
        } else {
            usage();
        }
    }
    if (argc % 2 == 0 || b.port <= 0 || !b.token || b.conns < 1 || b.pairs < 1 || b.per < 1 ||
        b.per > 20) {
        usage();
    }
    b.c = calloc((size_t)b.conns, sizeof *b.c);
    b.hist = calloc(BUCKETS, sizeof *b.hist);
    if (!b.c || !b.hist) {
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    lws_set_log_level(LLL_ERR, NULL);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.fd_limit_per_thread = (unsigned int)b.conns + 64;
    /* libuv (epoll) rather than libwebsockets' default poll(), which scans
     * all 1,000 fds on every wake-up and doubled this client's CPU per
     * message: on 2 CPUs shared with the server, its run-queue wait is part
     * of every latency measured. */
    info.options = LWS_SERVER_OPTION_LIBUV;
    if (uv_loop_init(&b.loop) != 0 || uv_timer_init(&b.loop, &b.teardown) != 0) {
        fprintf(stderr, "fanout_client: no libuv loop\n");
        return 1;
    }
    b.teardown.data = &b;
    b.foreign_loops[0] = &b.loop;
    info.foreign_loops = b.foreign_loops;
    info.pcontext = &b.ctx;
    b.ctx = lws_create_context(&info);
    if (!b.ctx) {
        fprintf(stderr, "fanout_client: no libwebsockets context\n");
        return 1;
    }
    b.started = mono_s();
    lws_sul_schedule(b.ctx, 0, &b.tick, on_tick, 1);
    uv_run(&b.loop, UV_RUN_DEFAULT); /* until on_teardown stops it */
    report(&b);
    if (b.ctx) {
        lws_context_destroy(b.ctx);
    }
    int ok = b.acked == b.conns && b.measured_s > 0;
    free(b.hist);
    free(b.c);
    return ok ? 0 : 1;
}
