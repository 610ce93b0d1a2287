/*
 * redis_conn: one connection to Redis on a loop, through hiredis' async
 * API and a small adapter of our own over the loop facade.
 *
 * Debian's hiredis 0.14 resolves host names with a blocking call, has no
 * timeouts and no TLS, and its own libuv adapter ignores poll errors. So
 * this module resolves with the loop's asynchronous DNS, connects by
 * address, enforces a connect deadline and a command deadline (the oldest
 * reply still pending) with loop timers, sends AUTH (with a user for ACLs)
 * and SELECT first, and reconnects after a loss with backoff and jitter.
 * A password never reaches a log line or an error text.
 *
 * Replies arrive in the order commands were sent; each command's callback
 * runs once, with the reply or with NULL when the connection went away
 * first. The connection owns nothing of the callers' beyond the call.
 *
 * Threads: the thread that runs the loop, for every function and
 * callback. Ownership: the caller owns the connection (redis_conn_free);
 * replies are borrowed for the duration of their callback.
 */
#ifndef RX_REDIS_CONN_H
#define RX_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/jbuf.h"

struct config;
struct loop;
struct redis_conn;
struct redisReply;

struct redis_conn_opts {
    const char *host; /* a name or an address (copied) */
    int port;
    int db;
    const char *user;            /* NULL: AUTH password only (copied) */
    const char *password;        /* NULL: no AUTH (copied, wiped on free) */
    const char *name;            /* for logs: what the connection is for */
    uint64_t connect_timeout_ms; /* 0 = 2000 */
    uint64_t command_timeout_ms; /* 0 = 5000: the oldest reply may wait this long */
};

struct redis_conn_events {
    /* Connected, authenticated, the db selected: commands may be sent. */
    void (*up)(struct redis_conn *c, void *data);
    /* Lost, or could not connect (why: a text without secrets); every
     * pending callback has already run with NULL. A reconnect is
     * scheduled. */
    void (*down)(struct redis_conn *c, const char *why, void *data);
    void *data;
};

struct redis_conn *redis_conn_new(struct loop *loop, const struct redis_conn_opts *opts,
                                  const struct redis_conn_events *events);
/* The same, to the Redis of cfg's store (name: what it is for, in logs). */
struct redis_conn *redis_conn_for(struct loop *loop, const struct config *cfg, const char *name,
                                  const struct redis_conn_events *events);
/* Drops the connection (pending callbacks run with NULL) and frees it.
 * NULL is a no-op. */
void redis_conn_free(struct redis_conn *c);

/* Starts connecting (and keeps reconnecting after losses). */
void redis_conn_start(struct redis_conn *c);
bool redis_conn_up(const struct redis_conn *c);
/* The events' data, for reply callbacks whose own data is taken. */
void *redis_conn_user(const struct redis_conn *c);

/*
 * A command being built, already in the protocol's form (RESP), so that
 * sending it is one copy into hiredis' output buffer: no argv arrays and
 * no formatting on hiredis' side. Reusable: redis_conn_send empties it.
 */
struct redis_cmd {
    struct jbuf text; /* RESP_HEAD_ROOM bytes for the header, then the arguments */
    size_t argc;
};
void redis_cmd_init(struct redis_cmd *cmd);
void redis_cmd_free(struct redis_cmd *cmd);
void redis_cmd_reset(struct redis_cmd *cmd);
void redis_cmd_add(struct redis_cmd *cmd, const char *s, size_t len);
void redis_cmd_adds(struct redis_cmd *cmd, const char *s);

typedef void (*redis_reply_fn)(struct redis_conn *c, struct redisReply *reply, void *data);
/* Queues the command and empties it; fn (may be NULL) runs with its reply.
 * -1 when the connection is not up (fn is not called; cmd is emptied
 * all the same). */
int redis_conn_send(struct redis_conn *c, struct redis_cmd *cmd, redis_reply_fn fn, void *data);
/* Replies not yet received. */
size_t redis_conn_pending(const struct redis_conn *c);
/* What is queued now must reach the socket before deadline_ms (the loop's
 * monotonic ms), or the connection is dropped with it unsent: writes made
 * under a lease never go out after the lease ran out (a process paused
 * between queueing and writing). The earliest deadline queued counts. */
void redis_conn_fence(struct redis_conn *c, uint64_t deadline_ms);

/*
 * Subscribe mode (a connection of its own): SUBSCRIBE channel; fn runs for
 * the subscription's confirmation and for every message, with the reply
 * array. -1 when the connection is not up.
 */
int redis_conn_subscribe(struct redis_conn *c, const char *channel, redis_reply_fn fn, void *data);

struct redis_conn_stats {
    bool up;
    uint64_t connects;     /* successful connections */
    uint64_t losses;       /* connections lost or refused */
    uint64_t errors;       /* error replies */
    int64_t last_error_at; /* wall ms, 0 if none */
    char last_error[192];
};
void redis_conn_stats(const struct redis_conn *c, struct redis_conn_stats *out);

#endif
