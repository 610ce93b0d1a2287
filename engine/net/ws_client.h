/*
 * ws_client: outbound WebSocket connections on the engine loop
 * (libwebsockets with the libuv event library on our own loop, the
 * "foreign loop" mode), plain C and testable without Lua.
 *
 * One ws_client holds the libwebsockets context; each ws_conn is one
 * connection attempt and, if it opens, one connection. Reconnecting,
 * resubscribing and idle detection are the caller's (operator_stream.c),
 * because they depend on what the operator says.
 *
 * TLS verifies the server certificate against the system store plus
 * ca_file, including the host name. Messages are reassembled from
 * fragments up to max_message_bytes; a larger message is dropped whole and
 * counted, never buffered without bound. Outbound messages are queued up to
 * a fixed budget (WS_SEND_QUEUE_BYTES).
 *
 * Threads: loop thread only. Ownership: the client owns its connections;
 * a ws_conn stays valid until its on_close callback has returned (or until
 * ws_conn_abandon), after which it is freed by the client.
 *
 * Host names are resolved with loop_dns (libwebsockets 4.1 as packaged would
 * call a blocking getaddrinfo on the loop); the attempt then connects to the
 * address while Host, SNI and the certificate check use the name. With a
 * proxy the proxy resolves the name.
 */
#ifndef RX_WS_CLIENT_H
#define RX_WS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct ws_client;
struct ws_conn;

#define WS_SEND_QUEUE_BYTES (1u << 20)

struct ws_client_options {
    const char *ca_file; /* extra CA bundle or NULL */
    const char *proxy;   /* http proxy URL for CONNECT, or NULL */
};

/* NULL with err set when ca_file cannot be read or holds no PEM
 * certificate, the proxy URL is not http://[user:pass@]host:port, or
 * libwebsockets cannot start (its libuv event-loop plugin, package
 * libwebsockets-evlib-uv, is missing). Without a proxy option
 * libwebsockets itself honours $http_proxy (it ignores $no_proxy). */
struct ws_client *ws_client_new(struct loop *loop, const struct ws_client_options *opts, char *err,
                                size_t errlen);
/* Closes every connection (each gets on_close with code 1001, "shutdown",
 * before this returns) and destroys the libwebsockets context. A foreign
 * loop needs that done in two halves, one inside the loop and one after it
 * returns, so this runs the loop itself for a few milliseconds (other
 * handles' callbacks may fire meanwhile): call it after loop_run has
 * returned, never from a loop callback. Afterwards nothing of the client is
 * left on the loop. */
void ws_client_free(struct ws_client *client);

struct ws_conn_callbacks {
    /* The handshake completed. */
    void (*on_open)(struct ws_conn *conn, void *data);
    /* One whole message (text or binary). The bytes are borrowed for the
     * call and not NUL-terminated. */
    void (*on_message)(struct ws_conn *conn, const char *msg, size_t len, bool binary, void *data);
    /* Exactly once per ws_conn: the connection closed, or never opened
     * (code 1006 and the reason: "connect failed: ...", "tls: ..."). The
     * conn is freed when this returns. */
    void (*on_close)(struct ws_conn *conn, int code, const char *reason, void *data);
};

struct ws_conn_options {
    const char *url;            /* ws:// or wss:// */
    const char *const *headers; /* extra "Name: value" handshake headers, or NULL */
    size_t n_headers;
    size_t max_message_bytes; /* 0 = 1 MiB */
    uint64_t ping_every_ms;   /* WebSocket ping frames; 0 = none */
    uint64_t open_timeout_ms; /* connect + TLS + handshake; 0 = 10 s */
};

/* Starts connecting. NULL only for options that cannot be used (a URL that
 * cannot be parsed, a header that is not "Name: value") or a client being
 * freed; err says why. Every other failure arrives through on_close, later,
 * never inside this call. */
struct ws_conn *ws_conn_open(struct ws_client *client, const struct ws_conn_options *opts,
                             const struct ws_conn_callbacks *cb, void *data, char *err,
                             size_t errlen);
/* Drops the connection without any further callback: for owners that go
 * away while it is open or opening (an operator being unloaded). conn must
 * not be used again; an open connection still gets a close frame (1001). */
void ws_conn_abandon(struct ws_conn *conn);
/* Queues a message. 0, or -ENOBUFS when the queue is full, -ENOTCONN when
 * not open. */
int ws_conn_send(struct ws_conn *conn, const char *msg, size_t len, bool binary);
/* Starts a close handshake (or abandons a connection still opening);
 * on_close follows, with this code and reason, never inside this call. A
 * no-op once the connection is closing. */
void ws_conn_close(struct ws_conn *conn, int code, const char *reason);

struct ws_conn_stats {
    uint64_t messages;
    uint64_t bytes;
    uint64_t dropped_oversize; /* messages over max_message_bytes */
    uint64_t sent;
    uint64_t pongs; /* answers to our ping frames */
};
void ws_conn_stats(const struct ws_conn *conn, struct ws_conn_stats *out);

#endif
