/*
 * ws_client_int: what the files of ws_client share: ws_client.c (the API
 * and the life of a connection), ws_client_io.c (what happens on an
 * attached connection: messages, the send queue, closes, errors),
 * ws_client_url.c (URL and proxy parsing) and ws_client_lws.c (the
 * libwebsockets glue: context, protocol callback, connect, teardown). Not
 * for other modules; the unit test includes it for the URL parser.
 *
 * Threads: loop thread only, like ws_client.h.
 */
#ifndef RX_WS_CLIENT_INT_H
#define RX_WS_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ws_client.h"

struct lws;
struct lws_context;
struct loop_timer;

#define WS_REASON_MAX 256
#define WS_HOST_MAX 256
/* Headroom libwebsockets needs before a payload (LWS_PRE, checked in the
 * glue), so this file's users need not include libwebsockets.h. */
#define WS_LWS_PRE 16

enum ws_write_kind { WS_WRITE_TEXT, WS_WRITE_BINARY, WS_WRITE_PING };

/* A parsed ws:// or wss:// URL. */
struct ws_url {
    bool tls;
    int port;
    char host[WS_HOST_MAX];        /* without IPv6 brackets: what we resolve */
    char host_header[WS_HOST_MAX]; /* host[:port], brackets kept: Host, SNI, cert check */
    char origin[WS_HOST_MAX + 16]; /* http(s)://host[:port] */
    char *path;                    /* "/..." with the query; owned */
};

/* ws_client_url.c. Parses url into out (out->path is allocated). 0, or -1
 * with err set. */
int ws_url_parse(const char *url, struct ws_url *out, char *err, size_t errlen);
void ws_url_free(struct ws_url *url);
/* "http://[user:pass@]host:port[/]" -> *out "[user:pass@]host:port"
 * (allocated) and *port. 0, or -1 with err set. */
int ws_proxy_parse(const char *url, char **out, int *port, char *err, size_t errlen);

enum ws_state {
    WS_RESOLVING,  /* waiting for the resolver */
    WS_CONNECTING, /* lws has the attempt: TCP, TLS, handshake */
    WS_OPEN,
    WS_CLOSING,  /* our close frame is queued or sent */
    WS_DEFERRED, /* failed; on_close waits for a zero timer */
    WS_DONE,
};

struct ws_out {
    struct ws_out *next;
    size_t len;
    bool binary;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

struct ws_dns;

struct ws_conn {
    struct ws_client *client;
    struct ws_conn *prev, *next;
    struct ws_conn_callbacks cb;
    void *data;
    struct ws_url url;
    char **headers;
    size_t n_headers;
    size_t max_message;
    uint64_t ping_every_ms;
    uint64_t open_timeout_ms;

    enum ws_state state;
    bool abandoned;  /* the caller is gone: no callbacks any more */
    bool in_connect; /* inside lws_client_connect_via_info */
    struct lws *wsi;
    struct ws_dns *dns;
    struct loop_timer *timer; /* open timeout, pings, close backstop, deferral */

    /* Message assembly. */
    char *rx;
    size_t rx_len, rx_cap;
    bool rx_binary;
    bool rx_dropping;

    /* Send queue. */
    struct ws_out *out_head, *out_tail;
    size_t out_bytes;
    bool ping_due;

    /* Closing: ours (requested), the peer's (peer_*), or a failure. */
    int close_code;
    char close_reason[124]; /* a close frame carries at most 123 bytes */
    bool peer_closed;
    int peer_code;
    char peer_reason[124];
    int fail_code;
    char fail_reason[WS_REASON_MAX];
    char tls_error[128]; /* from the certificate check, if it failed */

    struct ws_conn_stats stats;
};

struct ws_client {
    struct loop *loop;
    struct lws_context *ctx;
    void *foreign_loops[1];
    char *ca_file;
    char *proxy; /* host:port as libwebsockets wants it, or NULL */
    int proxy_port;
    struct ws_conn *conns;
    int depth; /* > 0 while one of our callbacks runs */
    bool freeing;
    int destroy_ticks;
};

/* ws_client_lws.c: the glue. */
int ws_lws_create(struct ws_client *c, char *err, size_t errlen);
/* Destroys the context the way a foreign loop needs (runs the loop briefly). */
void ws_lws_destroy(struct ws_client *c);
/* Starts the attempt for conn to address (an IP, or the host when a proxy
 * resolves). Returns the wsi, or NULL when it failed at once. */
struct lws *ws_lws_connect(struct ws_conn *conn, const char *address);
/* Cuts the wsi loose from its conn and has libwebsockets close it soon. */
void ws_lws_drop(struct lws *wsi);
void ws_lws_detach(struct lws *wsi);
void ws_lws_want_write(struct lws *wsi);
/* Writes payload (with WS_LWS_PRE bytes of headroom before it): 0 or -1. */
int ws_lws_write(struct lws *wsi, unsigned char *payload, size_t len, enum ws_write_kind kind);
/* Sets the close frame libwebsockets sends when the callback returns -1. */
void ws_lws_close_reason(struct lws *wsi, int code, const char *reason);

/* ws_client.c: the end of a connection. ws_conn_finish calls on_close
 * (unless abandoned) and frees conn; ws_conn_defer detaches it and has a
 * zero timer call ws_conn_finish with this code and reason. */
void ws_conn_finish(struct ws_conn *conn, int code, const char *reason);
void ws_conn_defer(struct ws_conn *conn, int code, const char *reason);

/* ws_client_io.c: events from the glue, each for a conn still attached. */
void ws_conn_on_established(struct ws_conn *conn);
void ws_conn_on_receive(struct ws_conn *conn, const void *in, size_t len, bool first, bool final,
                        bool binary);
/* Returns -1 when libwebsockets must close the connection (our close frame
 * was set with lws_close_reason, or a write failed). */
int ws_conn_on_writeable(struct ws_conn *conn, struct lws *wsi);
void ws_conn_on_peer_close(struct ws_conn *conn, const unsigned char *payload, size_t len);
void ws_conn_on_closed(struct ws_conn *conn);
void ws_conn_on_error(struct ws_conn *conn, const char *msg, size_t len);
void ws_conn_on_tls_error(struct ws_conn *conn, const char *what);
/* CLIENT_APPEND_HANDSHAKE_HEADER: 0, or -1 when the headers do not fit. */
int ws_conn_append_headers(struct ws_conn *conn, char **p, size_t room);

#endif
