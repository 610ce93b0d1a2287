/*
 * board: what the service says about each exchange — its status (state,
 * reason, counters) and its markets — published for readers on any thread.
 *
 * The store holds tickers; the board holds everything else the API shows
 * about an exchange, and like the store it knows nothing of Lua or of where
 * the facts come from. On a scraping node the operator registry is the
 * writer (it derives statuses on the ingest loop and publishes copies
 * here); on an api node it is the Redis reader, which also adds the
 * markets other nodes scrape on a node that runs both. The API reads
 * only this header, so it never sees an operator.
 *
 * Threads: one writer thread at a time (board_put_*, board_remove); any
 * thread may read. Readers get copies taken under a mutex held for a
 * memcpy; the writer publishes every few hundred milliseconds, so nothing
 * on a request path waits for long.
 *
 * Ownership: the board copies what it is given; readers own the copies
 * they are handed (free them with free()).
 */
#ifndef RX_BOARD_H
#define RX_BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ticker.h"

/* DESIGN 4.1; the order is the /metrics label order. */
enum board_state {
    BOARD_STARTING,
    BOARD_STREAMING,
    BOARD_POLLING,
    BOARD_DEGRADED,
    BOARD_ERROR,
    BOARD_DISABLED,
    BOARD_STANDBY,
    BOARD_STATE_COUNT,
};

const char *board_state_name(enum board_state state);

#define BOARD_REASON_MAX 256
#define BOARD_UNMAPPED_MAX 64
#define BOARD_NODE_ID_MAX 129 /* config.node_id: at most 128 bytes */

struct board_unmapped {
    char symbol[TICKER_SYMBOL_MAX];
    uint64_t count;
};

/* One exchange as the API shows it. */
struct board_status {
    char name[TICKER_EXCHANGE_MAX];
    char file[256];
    enum board_state state;
    char reason[BOARD_REASON_MAX];
    char source[8]; /* "poll", "stream" or "" */
    int64_t loaded_at;
    int64_t last_update;
    uint64_t errors;
    uint64_t emitted;
    uint64_t unmapped_total;
    uint64_t filtered; /* emits for pairs outside the config allow-list */
    uint64_t over_max_pairs;
    uint64_t http_requests;
    int64_t budget_requests;
    double budget_per;
    uint64_t budget_waits;
    uint64_t callbacks;
    double callback_max_ms;  /* the longest callback so far */
    uint64_t slow_callbacks; /* callbacks that held the loop > 100 ms */
    int streams_open;
    uint64_t stream_messages;
    uint64_t stream_taken;   /* of those, messages that gave a ticker */
    uint64_t frames_dropped; /* stream messages over max_frame_bytes */
    size_t memory_bytes;
    size_t n_unmapped;
    struct board_unmapped unmapped[BOARD_UNMAPPED_MAX];
    /* The newest file version that failed to load while this one runs. */
    bool rejected;
    char rejected_error[BOARD_REASON_MAX];
    int rejected_line;
    int64_t rejected_at;
    /* The node that scrapes it ("" = this one); for standby, the lease
     * holder, when known. */
    char node_id[BOARD_NODE_ID_MAX];
    /* Read from Redis (an api node): the scraping node's counts, since the
     * local store has no rejects and may lag in pairs. */
    bool remote;
    uint64_t pairs;
    uint64_t rejects[TICKER_REJECT_COUNT];
};

/* One entry of an exchange's markets(), as /v1/markets shows it. */
struct board_market {
    char exchange[TICKER_EXCHANGE_MAX];
    char symbol[TICKER_SYMBOL_MAX];
    char pair[TICKER_PAIR_MAX];
};

/* Where the service keeps its copy (DESIGN 7): its health, for
 * /v1/exchanges ("store") and /metrics. */
struct board_store {
    char kind[8];   /* "memory" or "redis" */
    bool connected; /* redis: the writer's connection is up */
    char last_error[192];
    int64_t last_error_at; /* wall ms, 0 if none */
    uint64_t pending;      /* replies Redis owes now */
    uint64_t written;      /* ticker batches Redis acknowledged */
    uint64_t fields;       /* tickers in them (hash fields written) */
    uint64_t dropped;      /* batches not sent (Redis slow or away; rewritten later) */
    uint64_t reconnects;   /* connections lost or refused */
};

struct board;

struct board *board_new(void);
void board_free(struct board *board);

/* Writer. Replaces the whole list of statuses (copied), in that order. */
void board_put_statuses(struct board *board, const struct board_status *st, size_t n);
/* Writer. Replaces the whole list of markets (copied), grouped by exchange. */
void board_put_markets(struct board *board, const struct board_market *m, size_t n);
/* Writer (the Redis reader). Replaces the markets other nodes published;
 * readers see those of exchanges that have no local markets. */
void board_put_remote_markets(struct board *board, const struct board_market *m, size_t n);

/* Writer. The store's health. */
void board_put_store(struct board *board, const struct board_store *store);
/* Writer. While loading (a warm start from Redis), the board is not ready
 * whatever the statuses say. */
void board_set_loading(struct board *board, bool loading);

/* Any thread: the store's health ("memory" until a writer says more). */
void board_store_health(const struct board *board, struct board_store *out);

/* Any thread: a malloc'd copy of every status (never NULL; *n may be 0). */
struct board_status *board_statuses(const struct board *board, size_t *n);
/* Any thread: a malloc'd copy of the markets of one exchange, or of all
 * (exchange NULL); never NULL. Returns the count. */
size_t board_markets(const struct board *board, const char *exchange, struct board_market **out);
/* Any thread: up to cap exchange names, in status order; returns how many
 * there are (which may exceed cap). Cheaper than board_statuses. */
size_t board_names(const struct board *board, char (*names)[TICKER_EXCHANGE_MAX], size_t cap);
/* Any thread: not loading, and no exchange is still starting (DESIGN 4.1
 * /readyz). */
bool board_ready(const struct board *board);

#endif
