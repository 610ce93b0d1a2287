/*
 * store: the in-memory table of the latest ticker per (exchange, pair).
 *
 * One writer, many readers. Only the loop thread may call the writer
 * functions (store_put, store_restore, store_count_reject,
 * store_remove_exchange); libmicrohttpd threads and any other thread may
 * call the reader functions at the same time, and never wait for the writer
 * or for each other: a reader that races a write retries only the one entry
 * it was copying. store_new and store_free are the owner's: store_free must
 * run after every reader has finished.
 *
 * Ownership. The store owns its memory. Writers pass tickers they own; the
 * store copies them. Readers receive copies in memory they own (store_get)
 * or a borrowed copy valid for the duration of the callback (store_scan).
 * Memory grows with the number of distinct (exchange, pair) keys ever
 * stored, not with traffic: a removed exchange's entries are kept as
 * tombstones and reused when the same key comes back.
 *
 * Errors are negative errno values.
 */
#ifndef RX_STORE_H
#define RX_STORE_H

#include "ticker.h"

#include <stddef.h>
#include <stdint.h>

struct store;

struct store_exchange_stats {
    uint64_t tickers; /* live tickers now */
    uint64_t updates; /* store_put calls that changed a ticker */
    uint64_t rejects[TICKER_REJECT_COUNT];
    int64_t last_update; /* latest `received` of any put or restore, 0 if none */
};

struct store *store_new(void);
void store_free(struct store *s);

/*
 * Loop thread only. Store a copy of t, keyed by t->exchange and t->pair
 * (terminated, non-empty; -EINVAL otherwise). The store does not validate
 * prices: run ticker_validate first. Assigns t->v: the previous version + 1
 * when anything but `received` differs from the stored ticker (versions of a
 * removed and re-added key continue where they stopped); when only
 * `received` differs, just `received` is refreshed and t->v is set to the
 * stored version. Returns 1 changed, 0 unchanged, negative on error.
 */
int store_put(struct store *s, struct ticker *t);

/*
 * Loop thread only: the emit path's one lookup. Finds the entry of
 * (exchange, pair) without creating it, copies its ticker into old (may be
 * NULL) when it is live, and keeps the entry and that copy in *ref so that
 * store_put_ref on the same key needs no second lookup and no second copy:
 * old must stay unchanged until then, and nothing may write the key in
 * between. Returns 1 when the key is live, 0 when it is not (or the names
 * are invalid).
 */
struct store_entry;
struct store_ref {
    struct store_entry *entry; /* NULL: not found; store_put_ref looks it up */
    const struct ticker *old;  /* store_find's copy of the live ticker, or NULL */
};
int store_find(struct store *s, const char *exchange, const char *pair, struct ticker *old,
               struct store_ref *ref);
/* store_put for the key store_find looked up (ref from that call on the
 * same exchange and pair, or NULL). */
int store_put_ref(struct store *s, const struct store_ref *ref, struct ticker *t);

/*
 * Loop thread only: the warm start (Redis) and Redis-fed replicas. Stores t
 * with its own v and received, except that it never goes back in time: if
 * the key is live with a larger v, t is ignored. Does not count as an
 * update in the statistics. Returns 1 stored, 0 ignored, negative on error.
 */
int store_restore(struct store *s, const struct ticker *t);

/* Loop thread only. Count a rejected ticker; the exchange gets statistics
 * if it had none. Unknown reasons and over-long names are ignored. */
void store_count_reject(struct store *s, const char *exchange, enum ticker_reject why);

/*
 * Loop thread only. Drop an exchange's tickers and statistics. Returns the
 * number of tickers dropped, or -ENOENT if the exchange has no statistics.
 */
int store_remove_exchange(struct store *s, const char *exchange);

/* Any thread. Copy the live ticker of (exchange, pair) into out (NULL: only
 * test for it). Returns 0, or -ENOENT. */
int store_get(const struct store *s, const char *exchange, const char *pair, struct ticker *out);

/*
 * Any thread. Call fn with a consistent copy of each live ticker of one
 * exchange (or of all, for NULL), in no particular order; stop early when
 * fn returns nonzero. The copy is borrowed for the duration of the call.
 * A scan is not a snapshot: tickers written while it runs may be seen in
 * their old or new state, each one whole.
 */
void store_scan(const struct store *s, const char *exchange,
                int (*fn)(const struct ticker *t, void *ctx), void *ctx);

/* Any thread. Fills out; -ENOENT if the exchange has no statistics. Each
 * counter is exact, but they are not read as one atomic snapshot. */
int store_exchange_stats(const struct store *s, const char *exchange,
                         struct store_exchange_stats *out);

/* Any thread. Writes up to cap names of exchanges that have statistics, in
 * the order they first appeared; returns how many were written. */
size_t store_exchange_names(const struct store *s, char names[][TICKER_EXCHANGE_MAX], size_t cap);

/*
 * Any thread. A counter bumped after every change to the stored tickers:
 * puts, `received`-only refreshes (age_ms and stale depend on them),
 * restores and removals; statistics-only changes (store_count_reject) do
 * not bump it. Read it before rendering from the store: if it still has
 * that value later, no ticker the render used has changed since.
 */
uint64_t store_generation(const struct store *s);

#endif
