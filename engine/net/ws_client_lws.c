/*
 * ws_client_lws: the libwebsockets glue of ws_client.
 *
 * One context per ws_client, client-only (CONTEXT_PORT_NO_LISTEN), running
 * on our own libuv loop in libwebsockets' "foreign loop" mode: it adds its
 * handles (an idle, a timer, a poll per socket) to the loop we hand it and
 * installs no signal handlers there. The libuv support is a plugin that
 * lws_create_context loads at run time (libwebsockets-evlib_uv.so, package
 * libwebsockets-evlib-uv); without it the context cannot be created.
 *
 * TLS: libwebsockets 4.1 as packaged loads the system CA store itself
 * (LWS_SSL_CLIENT_USE_OS_CA_CERTS) and adds client_ssl_ca_filepath; without
 * a file it tries a build-time directory ("../share") and logs an error, so
 * we pass OpenSSL's default bundle instead. Host names are checked against
 * the Host header (never LCCSCF_ALLOW_SELFSIGNED or _SKIP_..._HOSTNAME_CHECK).
 * The certificate check's verdict reaches us through
 * LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION, which lets a
 * failure read "tls: certificate verification failed: <why>".
 *
 * Teardown on a foreign loop takes two lws_context_destroy calls: the first
 * must run inside the loop (it closes the sockets and libwebsockets' own
 * handles, which libuv finishes asynchronously), the second after uv_run has
 * returned (it frees the context). ws_lws_destroy does both by running the
 * loop for a few iterations with a timer that makes the first call and then
 * stops the loop.
 */
#include "ws_client_int.h"

#include <libwebsockets.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/loop.h"

#define PROTOCOL_NAME "rx-ws-client"
/* Loop iterations from the first destroy to stopping the loop. Two are
 * needed: the socket closes finish in the first, and the last one of them
 * starts the close of libwebsockets' own handles, which finishes in the
 * second. With one, the second destroy unloads the evlib plugin while a
 * close callback inside it is still pending (a crash, seen under ASan).
 * The rest is margin; each costs about a millisecond. */
#define DESTROY_TICKS 5

_Static_assert(LWS_PRE <= WS_LWS_PRE, "WS_LWS_PRE must cover LWS_PRE");

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);

static const struct lws_protocols protocols[] = {
    {PROTOCOL_NAME, callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The error text libwebsockets passes with CLIENT_CONNECTION_ERROR; its
 * length argument is not always set. */
static size_t error_len(const void *in, size_t len)
{
    if (!in) {
        return 0;
    }
    return len ? strnlen(in, len) : strnlen(in, 256);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct ws_conn *conn = user;

    switch (reason) {
    case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
        /* user is the X509_STORE_CTX, len says whether OpenSSL liked it. */
        conn = lws_wsi_user(wsi);
        if (conn && !len) {
            int e = X509_STORE_CTX_get_error((X509_STORE_CTX *)user);
            ws_conn_on_tls_error(conn, X509_verify_cert_error_string(e));
        }
        return 0;
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return conn ? ws_conn_append_headers(conn, in, len) : 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!conn) {
            return -1;
        }
        ws_conn_on_established(conn);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!conn) {
            return -1;
        }
        ws_conn_on_receive(conn, in, len, lws_is_first_fragment(wsi), lws_is_final_fragment(wsi),
                           lws_frame_is_binary(wsi));
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        if (conn) {
            conn->stats.pongs++;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return conn ? ws_conn_on_writeable(conn, wsi) : -1;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (conn) {
            ws_conn_on_peer_close(conn, in, len);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (conn) {
            ws_conn_on_error(conn, in, error_len(in, len));
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (conn) {
            ws_conn_on_closed(conn);
        }
        return 0;
    default:
        return 0;
    }
}

/* OpenSSL's default bundle (SSL_CERT_FILE wins), if readable. */
static const char *system_ca_file(void)
{
    const char *f = getenv(X509_get_default_cert_file_env());
    if (!f || !*f) {
        f = X509_get_default_cert_file();
    }
    return f && access(f, R_OK) == 0 ? f : NULL;
}

/* libwebsockets only logs a CA file it cannot load and then fails every
 * TLS connection; say so at once instead. */
static int check_ca_file(const char *path, char *err, size_t errlen)
{
    BIO *bio = BIO_new_file(path, "r");
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    int ok = cert != NULL;

    X509_free(cert);
    BIO_free(bio);
    if (!ok) {
        snprintf(err, errlen, "ca_file %s: no PEM certificate in it", path);
    }
    return ok ? 0 : -1;
}

int ws_lws_create(struct ws_client *c, char *err, size_t errlen)
{
    struct lws_context_creation_info info;

    if (c->ca_file && check_ca_file(c->ca_file, err, errlen) < 0) {
        return -1;
    }
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    /* JUST_USE_RAW_ORIGIN: send our "https://host" as is, not "http://" + it. */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                   LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN;
    c->foreign_loops[0] = loop_native(c->loop);
    info.foreign_loops = c->foreign_loops;
    info.user = c;
    info.pcontext = &c->ctx; /* libwebsockets clears it when the context is freed */
    info.client_ssl_ca_filepath = c->ca_file ? c->ca_file : system_ca_file();
    if (c->proxy) {
        info.http_proxy_address = c->proxy;
        info.http_proxy_port = (unsigned int)c->proxy_port;
    }
    c->ctx = lws_create_context(&info);
    if (!c->ctx) {
        snprintf(err, errlen,
                 "cannot create the libwebsockets context (is the libuv event-loop plugin, "
                 "package libwebsockets-evlib-uv, installed?)");
        return -1;
    }
    return 0;
}

static void on_destroy_tick(struct loop_timer *t, void *data)
{
    struct ws_client *c = data;

    if (c->destroy_ticks++ == 0 && c->ctx) {
        lws_context_destroy(c->ctx); /* first half: inside the loop */
    }
    if (c->destroy_ticks < DESTROY_TICKS) {
        loop_timer_start(t, 1, 0);
    } else {
        loop_stop(c->loop);
    }
}

void ws_lws_destroy(struct ws_client *c)
{
    if (!c->ctx) {
        return;
    }
    struct loop_timer *t = loop_timer_new(c->loop, on_destroy_tick, c);
    c->destroy_ticks = 0;
    loop_timer_start(t, 0, 0);
    /* Someone else's callback may stop the loop meanwhile: run it again. */
    while (c->destroy_ticks < DESTROY_TICKS) {
        loop_run(c->loop);
    }
    loop_timer_free(t);
    if (c->ctx) {
        lws_context_destroy(c->ctx); /* second half: uv_run has returned */
    }
    c->ctx = NULL;
}

struct lws *ws_lws_connect(struct ws_conn *conn, const char *address)
{
    struct lws_client_connect_info ci;

    memset(&ci, 0, sizeof ci);
    ci.context = conn->client->ctx;
    ci.address = address;
    ci.port = conn->url.port;
    ci.ssl_connection = conn->url.tls ? LCCSCF_USE_SSL : 0;
    ci.path = conn->url.path;
    ci.host = conn->url.host_header;
    ci.origin = conn->url.origin;
    ci.local_protocol_name = PROTOCOL_NAME;
    ci.alpn = "http/1.1";
    ci.userdata = conn;
    /* Early errors arrive while we are inside this call; pwsi lets the
     * callback know (and detach) the wsi before it is returned. */
    ci.pwsi = &conn->wsi;
    return lws_client_connect_via_info(&ci);
}

void ws_lws_detach(struct lws *wsi)
{
    lws_set_wsi_user(wsi, NULL);
}

void ws_lws_drop(struct lws *wsi)
{
    lws_set_wsi_user(wsi, NULL);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void ws_lws_want_write(struct lws *wsi)
{
    lws_callback_on_writable(wsi);
}

int ws_lws_write(struct lws *wsi, unsigned char *payload, size_t len, enum ws_write_kind kind)
{
    static const enum lws_write_protocol proto[] = {
        [WS_WRITE_TEXT] = LWS_WRITE_TEXT,
        [WS_WRITE_BINARY] = LWS_WRITE_BINARY,
        [WS_WRITE_PING] = LWS_WRITE_PING,
    };
    int n = lws_write(wsi, payload, len, proto[kind]);
    return n < 0 || (size_t)n < len ? -1 : 0;
}

/* Codes that may not appear on the wire (RFC 6455 7.4) become 1000; the
 * caller's on_close still reports the code it asked for. */
void ws_lws_close_reason(struct lws *wsi, int code, const char *reason)
{
    bool wire_ok = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                   (code >= 3000 && code <= 4999);
    lws_close_reason(wsi, (enum lws_close_status)(wire_ok ? code : 1000), (unsigned char *)reason,
                     strlen(reason));
}
