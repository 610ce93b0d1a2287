/*
 * changes: the feed of what changed, from the thread that writes the store
 * (the ingest loop; on an api-only node, the Redis reader) to the API loop,
 * which pushes it to WebSocket subscribers.
 *
 * Three kinds of change: a ticker key stored with a new version, an
 * exchange's state, an exchange removed. The feed holds at most one entry
 * per key and one per exchange: a key that changes again before the API
 * side has taken it only moves its version forward (coalesced), so a slow
 * or stalled API loop never makes the writer wait or the feed grow beyond
 * the number of keys. The consumer reads each ticker from the store when it
 * takes the feed, so it always pushes the latest value.
 *
 * Threads: one producer thread calls changes_put_* and changes_flush; one
 * consumer thread calls changes_take. Tickers put are staged on the
 * producer's side without a lock; changes_flush hands them over and calls
 * the wake function (the API loop's doorbell) when the consumer has not
 * been rung since its last take, at most once per CHANGES_RING_GAP_US. The
 * producer flushes once per loop iteration, so a burst of emits costs one
 * doorbell, not one each: a doorbell wakes the consumer's thread, which
 * cost the producer more than the emit itself. Both hold the feed's mutex
 * only to append or to swap lists, never while working.
 */
#ifndef RX_CHANGES_H
#define RX_CHANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "ticker.h"

struct changes;

struct change_key {
    char exchange[TICKER_EXCHANGE_MAX];
    char pair[TICKER_PAIR_MAX];
    uint64_t v; /* the newest version put */
};

struct change_exchange {
    char name[TICKER_EXCHANGE_MAX];
    bool removed;  /* removed (any status before it is dropped) */
    bool status;   /* a status change: state and reason below */
    char state[16];
    char reason[BOARD_REASON_MAX];
};

/* What changes_take hands over: owned by the consumer, reused between
 * takes (changes_taken_free at the end). Exchanges come after keys: a
 * removal is pushed after the last tickers of the exchange that preceded it. */
struct changes_taken {
    struct change_key *keys;
    size_t n_keys, cap_keys;
    struct change_exchange *exchanges;
    size_t n_exchanges, cap_exchanges;
};

/* The shortest time between two doorbells: what a change may wait, at
 * most, while the producer is busy (about 40 stream messages here). */
#define CHANGES_RING_GAP_US 200

/* wake(arg) is called on the producer's thread, from changes_flush. */
struct changes *changes_new(void (*wake)(void *arg), void *arg);
void changes_free(struct changes *c);

/* Producer. The changed ones of n stored tickers (changed[i] set), staged
 * until the next changes_flush. */
void changes_put_tickers(struct changes *c, const struct ticker *t, const bool *changed, size_t n);
/* Producer. An exchange's state, or its removal: after the tickers staged
 * before it, and like them handed over (rung) by the next changes_flush. */
void changes_put_status(struct changes *c, const char *exchange, const char *state,
                        const char *reason);
void changes_put_removed(struct changes *c, const char *exchange);
/*
 * Producer. Hands the staged tickers to the consumer and rings it if
 * anything is pending, it has not been rung since it last took, and the
 * last ring is CHANGES_RING_GAP_US old at now_us (a monotonic clock). Call
 * it after puts, before the producer's thread goes idle (the ingest loop:
 * once per iteration); nothing put reaches the consumer before it. Returns
 * 0, or the microseconds after which it must be called again because a
 * ring was held back.
 */
int64_t changes_flush(struct changes *c, uint64_t now_us);

/* Consumer: everything pending, moved into out (emptied first). Returns
 * the number of keys plus exchanges taken. */
size_t changes_take(struct changes *c, struct changes_taken *out);
void changes_taken_free(struct changes_taken *t);

struct changes_stats {
    uint64_t keys_put;     /* changed tickers put */
    uint64_t keys_folded;  /* of those, folded into a key still pending */
    uint64_t takes;        /* changes_take calls that took something */
    size_t pending;        /* keys and exchanges waiting now */
};
void changes_stats(struct changes *c, struct changes_stats *out);

#endif
