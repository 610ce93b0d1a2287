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
 * a ws_conn stays valid until its on_close callback has returned, after
 * which it is freed by the client.
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

struct ws_client *ws_client_new(struct loop *loop, const struct ws_client_options *opts, char *err,
                                size_t errlen);
/* Closes every connection (each gets on_close with code 1001, "shutdown"). */
void ws_client_free(struct ws_client *client);

struct ws_conn_callbacks {
    /* The handshake completed. */
    void (*on_open)(struct ws_conn *conn, void *data);
    /* One whole message (text or binary). The bytes are borrowed for the call. */
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
    size_t max_message_bytes;  /* 0 = 1 MiB */
    uint64_t ping_every_ms;    /* WebSocket ping frames; 0 = none */
    uint64_t open_timeout_ms;  /* connect + TLS + handshake; 0 = 10 s */
};

/* Starts connecting. NULL only for a URL that cannot be parsed (err says
 * why); every other failure arrives through on_close, later. */
struct ws_conn *ws_conn_open(struct ws_client *client, const struct ws_conn_options *opts,
                             const struct ws_conn_callbacks *cb, void *data, char *err,
                             size_t errlen);
/* Drops the connection without any further callback: for owners that go
 * away while it is open or opening (an operator being unloaded). */
void ws_conn_abandon(struct ws_conn *conn);
/* Queues a message. 0, or -ENOBUFS when the queue is full, -ENOTCONN when
 * not open. */
int ws_conn_send(struct ws_conn *conn, const char *msg, size_t len, bool binary);
/* Starts a close handshake (or abandons a connection still opening);
 * on_close follows. */
void ws_conn_close(struct ws_conn *conn, int code, const char *reason);

struct ws_conn_stats {
    uint64_t messages;
    uint64_t bytes;
    uint64_t dropped_oversize; /* messages over max_message_bytes */
    uint64_t sent;
};
void ws_conn_stats(const struct ws_conn *conn, struct ws_conn_stats *out);

#endif
