/*
 * server: libwebsockets context, vhost and the protocol callback.
 *
 * One protocol serves everything: lws routes plain HTTP requests and
 * WebSocket upgrades without a subprotocol to the vhost's first protocol,
 * so URL prefixes (/<exchange>/...) rather than protocol names pick the
 * exchange. The per-connection user data holds both an HTTP transaction
 * and a WebSocket session; lws reallocates it (zeroed) when a connection
 * upgrades, which is why the session is prepared in the filter callback
 * that runs after the upgrade binds the protocol.
 */
#include "server.h"

#include "http.h"
#include "replay.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct conn {
    struct http_txn http;
    struct ws_session ws;
};

static int ws_filter(struct fakex *ctx, struct conn *c, struct lws *wsi)
{
    char uri[1024];
    struct query_params q = {0};
    int rc;

    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0) {
        fakex_log("ws: upgrade without a GET path refused");
        return -1;
    }
    http_copy_args(wsi, &q);
    rc = replay_filter(ctx, &c->ws, wsi, uri, &q);
    query_free(&q);
    return rc;
}

static void on_signal(struct fakex *ctx)
{
    struct signalfd_siginfo si;

    if (read(ctx->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        fakex_log("signal %u: shutting down", si.ssi_signo);
    }
    ctx->stop = 1;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct fakex *ctx = lws_context_user(lws_get_context(wsi));
    struct conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http_begin(ctx, &c->http, wsi, in, len);
    case LWS_CALLBACK_HTTP_BODY:
        return http_body(&c->http, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return http_body_done(ctx, &c->http, wsi);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_writeable(ctx, &c->http, wsi);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c) {
            http_txn_free(&c->http);
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return ws_filter(ctx, c, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        replay_established(&c->ws, wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return replay_receive(&c->ws, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return replay_writeable(&c->ws);
    case LWS_CALLBACK_CLOSED:
        replay_closed(&c->ws);
        return 0;
    case LWS_CALLBACK_TIMER:
        if (c && c->ws.linked) {
            lws_callback_on_writable(wsi);
        } else if (c) {
            http_timer(&c->http, wsi);
        }
        return 0;
    case LWS_CALLBACK_RAW_RX_FILE:
        on_signal(ctx);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"fakex", callback, sizeof(struct conn), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_line(int level, const char *line)
{
    size_t n = strlen(line);

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        n--;
    }
    fakex_log("lws: %.*s", (int)n, line);
}

/* Route SIGINT/SIGTERM into the loop through a signalfd. */
static int watch_signals(struct fakex *ctx, char *err, size_t errlen)
{
    lws_sock_file_fd_type fd;
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
        (ctx->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        return -1;
    }
    fd.filefd = ctx->sigfd;
    if (!lws_adopt_descriptor_vhost(ctx->vhost, LWS_ADOPT_RAW_FILE_DESC, fd, "fakex", NULL)) {
        snprintf(err, errlen, "cannot watch the signal descriptor");
        return -1;
    }
    /* Adopted: lws closes it with the context. */
    ctx->sigfd_adopted = 1;
    return 0;
}

int server_start(struct fakex *ctx, char *err, size_t errlen)
{
    struct lws_context_creation_info info;
    int levels = LLL_ERR | LLL_WARN;

    if (ctx->opts.verbose) {
        levels |= LLL_NOTICE;
    }
    lws_set_log_level(levels, lws_log_line);
    signal(SIGPIPE, SIG_IGN);
    ctx->sigfd = -1;
    ctx->tls = ctx->opts.tls_cert != NULL;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    if (ctx->tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    }
    info.user = ctx;
    ctx->lws = lws_create_context(&info);
    if (!ctx->lws) {
        snprintf(err, errlen, "cannot create the libwebsockets context");
        return -1;
    }
    info.port = ctx->opts.listen_port;
    info.iface = ctx->opts.listen_host;
    info.protocols = protocols;
    info.vhost_name = "fakex";
    info.max_http_header_data = 8192;
    /* HTTP/1.1 only: h2 would change write semantics for no test value. */
    info.alpn = "http/1.1";
    info.ssl_cert_filepath = ctx->opts.tls_cert;
    info.ssl_private_key_filepath = ctx->opts.tls_key;
    ctx->vhost = lws_create_vhost(ctx->lws, &info);
    if (!ctx->vhost) {
        snprintf(err, errlen, "cannot listen on %s:%d%s", ctx->opts.listen_host,
                 ctx->opts.listen_port, ctx->tls ? " (or load the certificate)" : "");
        return -1;
    }
    ctx->port = lws_get_vhost_listen_port(ctx->vhost);
    return watch_signals(ctx, err, errlen);
}

int server_run(struct fakex *ctx)
{
    while (!ctx->stop) {
        if (lws_service(ctx->lws, 0) < 0) {
            return -1;
        }
    }
    return 0;
}

void server_stop(struct fakex *ctx)
{
    if (ctx->lws) {
        lws_context_destroy(ctx->lws);
        ctx->lws = NULL;
    }
    if (ctx->sigfd >= 0 && !ctx->sigfd_adopted) {
        close(ctx->sigfd);
    }
    ctx->sigfd = -1;
}
