/*
 * redis_writer_int: what the writer's two files share — redis_writer.c
 * (write-through, rewrites, statuses, markets, removals, kv) and
 * redis_warm.c (the warm start). Nothing else includes it. Ingest loop.
 */
#ifndef RX_REDIS_WRITER_INT_H
#define RX_REDIS_WRITER_INT_H

#include "redis_writer.h"

#include <stdint.h>

#include "core/jbuf.h"
#include "redis_conn.h"

/* The tickers of one exchange stored during this loop pass, the latest of
 * each pair once, in the order the pairs came: an open-addressing set over
 * a list. */
struct rw_keys {
    struct ticker *t;
    size_t n, cap;
    uint32_t *slot; /* index + 1 into t, 0 = empty; slot_cap a power of two */
    size_t slot_cap;
};

/* What the writer knows of one exchange. */
struct rw_exchange {
    char name[TICKER_EXCHANGE_MAX];
    int64_t expire_ms;   /* PEXPIRE of rx:t:{name}: 10 x stale_after_ms */
    bool dirty;          /* rewrite rx:t:{name} whole from the store */
    bool in_set;         /* SADD rx:exchanges sent on this connection */
    uint64_t expired_at; /* loop ms of the last PEXPIRE */
    bool markets_dirty;
    bool kv_dirty;
    struct board_market *markets; /* the last list, for rewrites */
    size_t n_markets;
    char *status_json; /* as last written to rx:s */
    struct rw_keys keys; /* stored this pass, written at redis_writer_flush */
};

struct redis_writer {
    struct loop *loop;
    const struct config *cfg;
    struct store *store;
    struct board *board;
    struct kv *kv;
    struct redis_writer_hooks hooks;
    struct redis_conn *conn;
    struct loop_timer *flush;
    struct loop_timer *orphans;
    struct loop_timer *gap; /* writes what passes noted within GAP_MS of a write */
    bool gap_armed;
    bool noted;          /* some exchange has keys to write */
    uint64_t written_at; /* loop ms of the last write of noted keys */
    struct rw_exchange *ex;
    size_t n_ex, cap_ex;
    char **removed; /* removals to write once Redis is back */
    size_t n_removed;
    bool loaded; /* the warm start is over */
    uint64_t status_at;
    int64_t ex_stale_ms; /* stale_after_ms of the exchange being rendered */
    struct redis_cmd cmd;
    struct jbuf json;
    struct jbuf event;
    struct board_store health;
};

/* The writer's record of an exchange, added if new. */
struct rw_exchange *rw_exchange(struct redis_writer *w, const char *name);

/* redis_warm.c: load rx:exchanges, rx:t:*, rx:kv:* (first connection). */
void redis_warm_load(struct redis_writer *w);
/* The warm start is over (loaded or given up): tell the engine, once. */
void redis_warm_done(struct redis_writer *w);

#endif
