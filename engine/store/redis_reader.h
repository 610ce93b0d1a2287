/*
 * redis_reader: what other nodes scrape, read from Redis into this node's
 * memory (DESIGN 7, role=api; and on a node that scrapes too, the
 * exchanges whose lease another node holds).
 *
 * It subscribes to rx:u first, then loads rx:exchanges, each rx:t:{name}
 * and rx:m:{name}, and rx:s; events are applied as they arrive, during the
 * load as after it, and every ticker goes into the store only if its
 * version is newer than the one there (store_restore), so the order in
 * which the load and the events land does not matter and nothing goes
 * backwards. After every re-subscribe it loads again the same way, and
 * drops exchanges that were removed meanwhile. Statuses are re-read every
 * second (their counters change without events).
 *
 * Everything read is hostile input: names, tickers and statuses are
 * validated, and anything else is skipped and counted.
 *
 * Threads: the ingest loop, for every function and callback (it writes
 * the store and the board there, as the operators do on a scraping node).
 * Ownership: borrows the loop, config, store and board; owns its two
 * connections (one in subscribe mode).
 */
#ifndef RX_REDIS_READER_H
#define RX_REDIS_READER_H

#include <stdbool.h>
#include <stddef.h>

#include "ticker.h"

struct board;
struct config;
struct loop;
struct redis_reader;
struct store;

struct redis_reader_hooks {
    /* Tickers stored (changed[i]: newer than what the store had). */
    void (*tickers)(const struct ticker *t, const bool *changed, size_t n, void *arg);
    /* An exchange's state as its scraping node published it. */
    void (*status)(const char *exchange, const char *state, const char *reason, void *arg);
    /* An exchange removed (by its scraping node, or while we were away). */
    void (*removed)(const char *exchange, void *arg);
    /* Whether this node scrapes the exchange itself now (its events and
     * Redis copy are then ours, not to be read back); NULL: never. */
    bool (*local)(const char *exchange, void *arg);
    /* The first load is complete (an api node is ready from then on). */
    void (*synced)(void *arg);
    void *arg;
};

/* statuses: publish the statuses read on the board (an api node, which
 * has no operators of its own to show). */
struct redis_reader *redis_reader_new(struct loop *loop, const struct config *cfg,
                                      struct store *store, struct board *board, bool statuses,
                                      const struct redis_reader_hooks *hooks);
void redis_reader_free(struct redis_reader *r);
void redis_reader_start(struct redis_reader *r);
/* Reads one exchange's tickers and markets again (its copy here was
 * dropped; see redis_lease's diverged). */
void redis_reader_refresh(struct redis_reader *r, const char *exchange);

#endif
