/*
 * redis_writer: the Redis copy of what this node scrapes (DESIGN 7), kept
 * by write-through from the ingest loop, and read back at start.
 *
 * Layout (prefix rx:): rx:t:{exchange} hash pair -> ticker JSON (the
 * object /v1/rates shows, decimal text untouched), expiring 10 x the
 * exchange's stale_after_ms after its last write; rx:exchanges set;
 * rx:s hash exchange -> status JSON; rx:m:{exchange} hash symbol -> market
 * JSON; rx:kv:{exchange} hash key -> "<expires_ms>:<value>" (x.kv);
 * channel rx:u carrying {"type":"ticker"|"status"|"removed",...} events.
 *
 * What a loop pass's emit batches stored goes out at the end of the pass,
 * per exchange one HSET with each pair once at its latest value and one
 * PUBLISH (the PEXPIRE is refreshed at most once a second): a burst of
 * frames read in one pass costs Redis, and the loop, one pipeline, not one
 * per frame (passes in the millisecond of the last write wait for the
 * next, at most 1 ms), and no value is lost, since Redis holds only the
 * latest. With
 * leases (scale-out), only the exchanges this node holds are written, each
 * fenced by its lease's deadline. Serving never depends on it: while Redis is slow
 * (too many replies pending) or away, batches are not sent but their
 * exchange is marked dirty, and once Redis catches up (or comes back) the
 * latest state of every dirty exchange is rewritten from the store, which
 * always holds the newest value per key. So memory stays bounded however
 * long Redis is away, and nothing newer is ever lost, only intermediate
 * values. Health (connected, last error, pending replies, dropped writes,
 * reconnects) goes to the board for /v1/exchanges and /metrics.
 *
 * Warm start: before the operators start, every exchange of rx:exchanges
 * is loaded into the store with its original times (so old data is
 * honestly stale) and rx:kv:* into the kv; an exchange no operator here
 * scrapes is served until its Redis key expires, then dropped.
 *
 * Threads: the ingest loop, for every function and callback.
 * Ownership: borrows the loop, store, board, kv and config (they outlive it).
 */
#ifndef RX_REDIS_WRITER_H
#define RX_REDIS_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "ticker.h"

struct board;
struct config;
struct kv;
struct loop;
struct redis_writer;
struct store;

struct redis_writer_hooks {
    /* The warm start is over (loaded, or Redis could not be reached in
     * time: memory only); called once. */
    void (*loaded)(void *arg);
    /* Whether an operator of this name runs here (else a loaded exchange
     * is an orphan, dropped when its Redis key expires). */
    bool (*runs)(const char *exchange, void *arg);
    /* An orphan's Redis key expired: drop it from memory (store, API). */
    void (*expired)(const char *exchange, void *arg);
    /* Whether this node may write the exchange now (it holds its lease;
     * NULL: always), and until when (*deadline_ms, the loop's monotonic ms;
     * 0: no limit): commands queued under a lease must reach the socket
     * before it runs out (redis_conn_fence). */
    bool (*may_write)(const char *exchange, uint64_t *deadline_ms, void *arg);
    void *arg;
};

struct redis_writer *redis_writer_new(struct loop *loop, const struct config *cfg,
                                      struct store *store, struct board *board, struct kv *kv,
                                      const struct redis_writer_hooks *hooks);
/* Stops writing; pending replies are dropped. NULL is a no-op. */
void redis_writer_free(struct redis_writer *w);

/* Connects, loads, then calls hooks.loaded; keeps writing from then on. */
void redis_writer_start(struct redis_writer *w);

/* One emit batch of one exchange (the op_env on_batch): its pairs are
 * noted, and written at the pass's redis_writer_flush. */
void redis_writer_batch(struct redis_writer *w, const struct ticker *t, const bool *changed,
                        size_t n);
/* Once per loop pass, after its callbacks: what the passes' batches stored
 * goes out, per exchange one HSET (each pair once, at its latest value)
 * and one PUBLISH; at once, or within 1 ms when the last write was in this
 * same millisecond. */
void redis_writer_flush(struct redis_writer *w);
/* An operator changed state (the op_env on_status). */
void redis_writer_status(struct redis_writer *w, const char *exchange, const char *state,
                         const char *reason);
/* An operator's markets() list changed. */
void redis_writer_markets(struct redis_writer *w, const char *exchange,
                          const struct board_market *m, size_t n);
/* An exchange was removed (its file deleted). */
void redis_writer_removed(struct redis_writer *w, const char *exchange);

/* This node has just taken the exchange's lease: everything of it is
 * written again from memory (Redis may have lost it, and what another
 * node left there is older). */
void redis_writer_owned(struct redis_writer *w, const char *exchange);

/* Loads one exchange's tickers (into the store, never going back in
 * version) and x.kv values from Redis, then done(ok): ok is false when a
 * reply never came. For a node taking over a lease: its versions continue
 * where the last holder's stopped. */
void redis_writer_sync(struct redis_writer *w, const char *exchange,
                       void (*done)(bool ok, void *arg), void *arg);

#endif
