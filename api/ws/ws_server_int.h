/*
 * ws_server_int: what the WebSocket server's two files share — the
 * connection (ws_peer.c: its wire life) and the server (ws_server.c: who
 * gets in, fan-out, the sweep, the limits). Not for other modules.
 *
 * Threads: the API loop thread, as ws_server.h.
 */
#ifndef RX_WS_SERVER_INT_H
#define RX_WS_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/jbuf.h"
#include "currency_listener.h"
#include "ws_frame.h"
#include "ws_server.h"
#include "ws_upgrade.h"

#define IP_MAX 64
#define IP_SLOTS 4096 /* a power of two */
/* A close frame's payload is at most 125 bytes: the code and 123 more. */
#define CLOSE_REASON_MAX 123

enum conn_kind { KIND_STREAM, KIND_LISTENER };

enum conn_state {
    CONN_OPEN,    /* messages flow */
    CONN_CLOSING, /* our close frame waits in out */
    CONN_LINGER,  /* our side is shut down; waiting for the client's close or EOF */
};

struct ws_server_conn {
    struct ws_server *srv;
    int fd;
    struct loop_io *io;
    int io_events;
    struct ws_server_conn *prev, *next;
    enum conn_kind kind;
    enum conn_state state;
    bool dead;        /* killed: waiting for the reaper */
    bool reader_ok;   /* false after a protocol violation: input is dropped */
    bool broken;      /* a send failed: the socket is gone */
    bool peer_closed; /* the client's close frame arrived */
    bool ping_sent;   /* an idle ping is unanswered */
    bool wrote;       /* sent something since the last kernel check */
    char ip[IP_MAX];
    struct ws_session *session;         /* KIND_STREAM, until closing */
    struct currency_listener *listener; /* KIND_LISTENER, until closing */
    struct loop_timer *timer;           /* KIND_STREAM: the next throttled key */
    uint64_t timer_at;                  /* monotonic ms, 0 = not armed */
    struct ws_frame_reader reader;
    struct jbuf rx;  /* a frame cut by the end of a read */
    struct jbuf out; /* bytes the kernel has not taken yet, from out_off */
    size_t out_off;
    uint64_t last_rx;                    /* monotonic ms of the last frame (or the upgrade) */
    uint64_t deadline;                   /* CLOSING / LINGER: when to give up */
    size_t kernel;                       /* unsent bytes in the kernel, at the last check */
    size_t held;                         /* bytes held at the last sweep, kernel included */
    uint64_t conflated_seen;             /* the session's conflated count at the last sweep */
    uint64_t published;                  /* the server's publish_seq this one last saw */
    uint64_t batch_seq;                  /* the server's batch_seq when last touched */
    struct ws_server_conn *touched_next; /* the current batch's touched list */
};

/* Open connections per client address. */
struct ip_count {
    struct ip_count *next;
    size_t n;
    char ip[IP_MAX];
};

struct ws_server {
    struct loop *loop;
    struct api_ctx *ctx;
    struct ws_server_conn *conns;
    size_t n_conns, n_listeners;
    struct ip_count *ips[IP_SLOTS];
    struct ws_server_conn *graveyard; /* killed, freed by the reaper */
    struct loop_timer *reaper;
    struct ws_keys_versions *versions;
    struct ws_index *index;   /* the stream connections' subscriptions */
    struct ws_render *render; /* rate tickers rendered once, shared by the sessions */
    uint64_t publish_seq;     /* one per fanned-out ticker */
    uint64_t batch_seq;       /* one per published batch */
    struct loop_timer *sweep;
    bool in_round;                  /* the sweep is part-way through the list */
    struct ws_server_conn *cursor;  /* its next connection */
    size_t round_total, round_heap; /* its sums so far */
    uint64_t round_conflated;
    char *rbuf; /* reads land here */
    size_t rbuf_cap;
    struct jbuf tx;     /* the frames of one burst */
    size_t queue_total; /* what connections held at the last sweep */
    size_t heap_high;   /* their heap bytes at the highest sweep since the last trim */
    size_t released;    /* bytes closed connections released since the last trim */
    uint64_t conflated; /* open sessions' conflated publishes, at the last sweep */
    uint64_t trimmed_at;
    bool shut_down;
    bool draining;                /* ws_server_free runs the loop */
    uint64_t drain_until;         /* ... until then at most */
    struct ws_server_stats stats; /* cumulative counters */
};

/* ---- ws_peer.c: one connection ----------------------------------------- */

/* The upgrade is accepted: a connection on fd (its 101 sent, or queued),
 * linked into the server, with its session or listener. NULL (fd left to
 * the caller) if the loop cannot watch it. */
struct ws_server_conn *ws_peer_new(struct ws_server *srv, int fd, const char *ip,
                                   const struct ws_upgrade *up, enum conn_kind kind,
                                   const struct currency_listener_params *params);
/* Takes the connection off the loop and the server's lists (the fd is
 * closed); the struct waits for the reaper (ws_peer_free). */
void ws_peer_kill(struct ws_server_conn *c);
void ws_peer_free(struct ws_server_conn *c);
/* Closes with code and reason (RFC 6455 7.4): the session is dropped at
 * once, the close frame queued behind what is waiting. No-op unless open. */
void ws_peer_close(struct ws_server_conn *c, int code, const char *reason);
/* Sends what is due, unless the socket is still busy with earlier bytes. */
void ws_peer_pump(struct ws_server_conn *c);
/* Bytes a client sent (with the head, or read): handled. -1 if killed. */
int ws_peer_input(struct ws_server_conn *c, uint8_t *data, size_t n);
/* A control frame (ping, pong, close) queued or sent. */
void ws_peer_control(struct ws_server_conn *c, int opcode, const void *payload, size_t len);
/* Whether bytes wait for the kernel to take them. */
bool ws_peer_blocked(const struct ws_server_conn *c);
/* Heap bytes the connection holds, as the allocator counts them. */
size_t ws_peer_bytes(const struct ws_server_conn *c);
/* Bytes the kernel holds unsent on the socket. */
size_t ws_peer_kernel_unsent(const struct ws_server_conn *c);
/* Closes a stream with 1008 when held (heap and kernel bytes) passes
 * ws.max_queue_bytes; returns whether it did. */
bool ws_peer_over_queue(struct ws_server_conn *c, size_t held);

/* ---- ws_server.c: the server's side ------------------------------------ */

/* A new connection joins the server's list (and its address's count). */
void ws_server_link(struct ws_server *srv, struct ws_server_conn *c);
/* A killed one leaves them, for the reaper. */
void ws_server_forget(struct ws_server *srv, struct ws_server_conn *c);

#endif
