/*
 * fakex: a fake cryptocurrency exchange serving recorded data on loopback.
 *
 * The story of the program: read the command line, load every exchange
 * folder under --fixtures (manifest.json + optional fakex.json sidecar),
 * listen on one port for HTTP and WebSocket (TLS with --tls-cert), rewrite
 * exchange host names inside recorded bodies to point back at this port,
 * write the chosen port to --port-file (atomically, so a waiting test never
 * reads half a number), then serve until SIGINT or SIGTERM and free
 * everything on the way out so sanitizers see a clean exit.
 *
 * See README.md for the URL scheme, the matching rules and the control API.
 */
#include "fakex.h"

#include "server.h"
#include "core/xalloc.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/*
 * Replay frames per second per connection unless --rate says otherwise:
 * about what a busy real feed sends, so a replayed service does not spend
 * its CPU parsing a flood. Tests that want speed pass --rate 0.
 */
#define FAKEX_DEFAULT_RATE 20.0

/* Scratch buffers above this are given back after use (oversize frames). */
#define WBUF_KEEP ((size_t)1 << 20)

void fakex_log(const char *fmt, ...)
{
    struct timeval tv;
    struct tm tm;
    char stamp[16];
    va_list ap;

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ld fakex: ", stamp, (long)(tv.tv_usec / 1000));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

unsigned char *fakex_wbuf(struct fakex *ctx, size_t n)
{
    if (n == 0 && ctx->wbuf_cap > WBUF_KEEP) {
        free(ctx->wbuf);
        ctx->wbuf = NULL;
        ctx->wbuf_cap = 0;
    }
    if (LWS_PRE + n > ctx->wbuf_cap) {
        ctx->wbuf_cap = LWS_PRE + n < 65536 ? 65536 : LWS_PRE + n;
        ctx->wbuf = xrealloc(ctx->wbuf, ctx->wbuf_cap);
    }
    return ctx->wbuf;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fakex --fixtures DIR [--listen HOST:PORT] [--port-file FILE] [--rate N] [--once]\n"
               "             [--tls-cert FILE --tls-key FILE] [--public-url URL] [--verbose]\n"
               "Serves tests/fixtures/<exchange>/ over HTTP and WebSocket on one port.\n"
               "  --listen      default 127.0.0.1:0 (port 0: pick a free port)\n"
               "  --port-file   write the port here once listening (atomic rename)\n"
               "  --rate        WebSocket replay messages/s per connection (default 20,\n"
               "                0 = as fast as the socket takes them)\n"
               "  --once        replay each capture once per connection, then stay silent\n"
               "  --public-url  base URL written into rewritten bodies (default: our own)\n");
}

/* "127.0.0.1:8080", "[::1]:0" or ":0" (loopback). Returns 0 or -1. */
static int parse_listen(struct fakex_opts *o, const char *arg)
{
    const char *colon = strrchr(arg, ':');
    const char *host = arg;
    size_t hlen;
    char *end;
    long port;

    if (!colon) {
        return -1;
    }
    hlen = (size_t)(colon - arg);
    if (hlen >= 2 && arg[0] == '[' && arg[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    if (hlen >= sizeof(o->listen_host)) {
        return -1;
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < 0 || port > 65535) {
        return -1;
    }
    if (hlen == 0) {
        snprintf(o->listen_host, sizeof(o->listen_host), "127.0.0.1");
    } else {
        snprintf(o->listen_host, sizeof(o->listen_host), "%.*s", (int)hlen, host);
    }
    o->listen_port = (int)port;
    return 0;
}

static int parse_args(struct fakex_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"fixtures", required_argument, NULL, 'f'},
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'p'},
        {"rate", required_argument, NULL, 'r'},
        {"once", no_argument, NULL, 'o'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"public-url", required_argument, NULL, 'u'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int c;

    snprintf(o->listen_host, sizeof(o->listen_host), "127.0.0.1");
    o->rate = FAKEX_DEFAULT_RATE;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            o->fixtures = optarg;
            break;
        case 'l':
            if (parse_listen(o, optarg) != 0) {
                fprintf(stderr, "fakex: bad --listen \"%s\" (want HOST:PORT)\n", optarg);
                return -1;
            }
            break;
        case 'p':
            o->port_file = optarg;
            break;
        case 'o':
            o->once = 1;
            break;
        case 'r':
            o->rate = strtod(optarg, &end);
            if (*end || end == optarg || !isfinite(o->rate) || o->rate < 0) {
                fprintf(stderr, "fakex: bad --rate \"%s\"\n", optarg);
                return -1;
            }
            break;
        case 'c':
            o->tls_cert = optarg;
            break;
        case 'k':
            o->tls_key = optarg;
            break;
        case 'u':
            o->public_url = optarg;
            break;
        case 'v':
            o->verbose = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (!o->fixtures || optind != argc || !o->tls_cert != !o->tls_key) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* Write "PORT\n" to a temporary file and rename it over `path`. */
static int write_port_file(const char *path, int port)
{
    size_t n = strlen(path) + 32;
    char *tmp = xmalloc(n);
    FILE *f;
    int rc = -1;

    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (!f) {
        goto fail;
    }
    if (fprintf(f, "%d\n", port) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        unlink(tmp);
        goto fail;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        goto fail;
    }
    rc = 0;
fail:
    free(tmp);
    return rc;
}

/* Point recorded exchange URLs at http(s)://host:port/<exchange>. */
static void rewrite_all(struct fakex *ctx)
{
    const char *host = ctx->opts.listen_host;
    size_t n;

    if (ctx->opts.public_url) {
        snprintf(ctx->public_base, sizeof(ctx->public_base), "%s", ctx->opts.public_url);
    } else {
        if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
            host = "127.0.0.1";
        }
        snprintf(ctx->public_base, sizeof(ctx->public_base),
                 strchr(host, ':') ? "%s://[%s]:%d" : "%s://%s:%d", ctx->tls ? "https" : "http",
                 host, ctx->port);
    }
    n = strlen(ctx->public_base);
    while (n > 0 && ctx->public_base[n - 1] == '/') {
        ctx->public_base[--n] = '\0';
    }
    for (size_t i = 0; i < ctx->n_fixtures; i++) {
        const char *base = ctx->public_base, *rest = strstr(base, "://");
        int secure = strncmp(base, "https", 5) == 0 || strncmp(base, "wss", 3) == 0;
        char http[512], ws[512];

        rest = rest ? rest + 3 : base;
        snprintf(http, sizeof(http), "%s://%s/%s", secure ? "https" : "http", rest,
                 ctx->fixtures[i].name);
        snprintf(ws, sizeof(ws), "%s://%s/%s", secure ? "wss" : "ws", rest, ctx->fixtures[i].name);
        fixtures_rewrite(&ctx->fixtures[i], http, ws);
    }
}

static void cleanup(struct fakex *ctx)
{
    server_stop(ctx);
    for (size_t i = 0; ctx->exchanges && i < ctx->n_fixtures; i++) {
        exchange_free(&ctx->exchanges[i]);
    }
    free(ctx->exchanges);
    fixtures_free_all(ctx->fixtures, ctx->n_fixtures);
    free(ctx->wbuf);
}

int main(int argc, char **argv)
{
    struct fakex ctx = {.sigfd = -1};
    char err[512];
    int rc = 1;

    if (parse_args(&ctx.opts, argc, argv) != 0) {
        return 2;
    }
    if (fixtures_scan(ctx.opts.fixtures, &ctx.fixtures, &ctx.n_fixtures, err, sizeof(err)) != 0) {
        fakex_log("fixtures: %s", err);
        goto fail;
    }
    ctx.exchanges = xcalloc(ctx.n_fixtures, sizeof(*ctx.exchanges));
    for (size_t i = 0; i < ctx.n_fixtures; i++) {
        ctx.exchanges[i].fx = &ctx.fixtures[i];
        faults_clear(&ctx.exchanges[i].faults);
    }
    if (server_start(&ctx, err, sizeof(err)) != 0) {
        fakex_log("%s", err);
        goto fail;
    }
    rewrite_all(&ctx);
    if (ctx.opts.port_file && write_port_file(ctx.opts.port_file, ctx.port) != 0) {
        fakex_log("cannot write port file %s: %s", ctx.opts.port_file, strerror(errno));
        goto fail;
    }
    fakex_log("listening on %s:%d%s, %zu exchanges, rate %g/s, bodies point at %s",
              ctx.opts.listen_host, ctx.port, ctx.tls ? " (TLS)" : "", ctx.n_fixtures,
              ctx.opts.rate, ctx.public_base);
    if (server_run(&ctx) != 0) {
        fakex_log("service loop failed");
        goto fail;
    }
    rc = 0;
fail:
    cleanup(&ctx);
    return rc;
}
