/*
 * front_door: the one listening port of the API. It accepts connections,
 * peeks (MSG_PEEK, so nothing is consumed) at the request head, and hands
 * each socket to the REST server or to the WebSocket server, which then read
 * the head themselves (DESIGN 8, "One port"; notes/one-port.md).
 *
 * Heads that are too large are answered 431, heads that do not arrive within
 * the head timeout 408, malformed request or header lines 400 (front_door_scan),
 * WebSocket upgrades with no WebSocket server 501; each with a small JSON
 * error body, then the connection is closed. A client that
 * hangs up (or fails) before its head is complete is closed silently.
 *
 * Threads: everything here runs on the loop thread, and the ops callbacks are
 * called on it.
 *
 * Ownership: the front door owns the listen socket and every accepted socket
 * until it hands it off. ops->rest and ops->ws take ownership of the fd they
 * are given and must close it, even when they cannot adopt it; the front door
 * has stopped watching it before the call and never touches it again. The fd
 * is nonblocking and close-on-exec, its SO_RCVLOWAT is 1, and the whole head
 * is still queued on it. addr is borrowed for the duration of the call.
 */
#ifndef RX_FRONT_DOOR_H
#define RX_FRONT_DOOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct front_door;

/* A zero field (or a NULL limits pointer) means the default. */
struct front_door_limits {
    size_t max_head_bytes;    /* default 8192, at most 1 MiB */
    uint64_t head_timeout_ms; /* default 2000, from accept; at most 1 h */
    int max_accepts_per_wake; /* default 128 */
};

struct front_door_ops {
    /* A complete request head arrived and it is not a WebSocket upgrade:
     * hand off (takes ownership of fd). Required. */
    void (*rest)(int fd, const struct sockaddr *addr, socklen_t len, void *ctx);
    /* A WebSocket upgrade (a header line "Upgrade:" whose value contains
     * "websocket", case-insensitive, not the request line): hand off (takes
     * ownership). NULL = answer 501 with a JSON error and close. */
    void (*ws)(int fd, const struct sockaddr *addr, socklen_t len, void *ctx);
    void *ctx;
};

/* Binds host:port (host a numeric IPv4 or IPv6 address, "[::1]" accepted;
 * NULL or "" = "0.0.0.0"; port 0 = pick one), listens (SOMAXCONN) and
 * watches the listen socket on the loop. ops is copied. Returns NULL and
 * fills err on failure. */
struct front_door *front_door_new(struct loop *loop, const char *host, int port,
                                  const struct front_door_limits *limits,
                                  const struct front_door_ops *ops, char *err, size_t errlen);

/* The bound port (also after front_door_stop_accepting). */
int front_door_port(const struct front_door *door);

/* Stops accepting (closes the listen socket) but lets pending heads finish
 * or time out — for graceful shutdown. Idempotent. */
void front_door_stop_accepting(struct front_door *door);

/* Closes the listen socket and every pending (not yet handed off) socket and
 * frees the front door. May be called from inside an ops callback; NULL is a
 * no-op. */
void front_door_free(struct front_door *door);

/* Counters since front_door_new. Every accepted connection ends in exactly
 * one of the other counters, or is still pending. */
struct front_door_stats {
    uint64_t accepted;
    uint64_t to_rest;
    uint64_t to_ws;
    uint64_t timeouts_408;
    uint64_t too_large_431;
    uint64_t bad_400; /* a request or header line that front_door_scan calls bad */
    uint64_t closed_early; /* EOF or error before a complete head */
    uint64_t refused_501;
};
void front_door_stats(const struct front_door *door, struct front_door_stats *out);

/* What a peeked prefix of a connection holds, exposed so the head parser can
 * be tested without sockets. FRONT_DOOR_HEAD_PARTIAL: no end of head yet.
 * Otherwise *head_len is the length of the head, its empty line included.
 * The head ends at the first empty line; a line ends at LF, with or without
 * a CR before it (RFC 9112 2.2), and empty lines before the request line are
 * skipped. A bad line is reported as soon as it is complete, with *head_len
 * up to its end. */
enum front_door_head {
    FRONT_DOOR_HEAD_PARTIAL,
    FRONT_DOOR_HEAD_REST,
    FRONT_DOOR_HEAD_WS,
    FRONT_DOOR_HEAD_BAD, /* the request line is not METHOD SP TARGET SP HTTP/d.d */
    /* A header line is not NAME ":" VALUE with a name of token characters
     * right before the colon (no whitespace: RFC 9112 5.1; a folded line has
     * no name), or holds a NUL, a bare CR or another control character but
     * HTAB (RFC 9110 5.5, RFC 9112 2.2). */
    FRONT_DOOR_HEAD_BAD_FIELD,
};
enum front_door_head front_door_scan(const char *buf, size_t n, size_t *head_len);

#endif
