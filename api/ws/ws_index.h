/*
 * ws_index: which owners (the WebSocket server's /v1/stream connections)
 * have a subscription that may cover an (exchange, pair), so a stored
 * change visits only those instead of every connection.
 *
 * A subscription is filed under one of four kinds of key, in one hash
 * table (ws_keys.h):
 *   - (exchange, pair) for each combination, when it gives exchanges and
 *     pairs and the combinations are few (at most WS_INDEX_EXACT_MAX);
 *   - ("", pair) for each pair, when it gives pairs and no exchanges, or
 *     too many combinations;
 *   - (exchange, "") for each exchange, when it gives exchanges only;
 *   - ("", "") when it gives neither.
 * Valid exchanges and pairs are never empty, so the kinds cannot collide.
 * A lookup reads at most four lists; the owners they name are candidates
 * (a superset: the caller decides, per owner, what it really wants) and an
 * owner may be named more than once. Each entry counts the owner's
 * subscriptions filed under the key, so overlapping ones add and remove
 * cleanly; removing takes the same arguments as adding.
 *
 * Not thread-safe: the table belongs to one thread (the loop, or a test).
 */
#ifndef RX_WS_INDEX_H
#define RX_WS_INDEX_H

#include <stdbool.h>
#include <stddef.h>

#include "store/ticker.h"

/* Combinations of exchanges x pairs filed one by one. */
#define WS_INDEX_EXACT_MAX 1024

struct ws_index;

struct ws_index *ws_index_new(void);
void ws_index_free(struct ws_index *ix);

/* Files (adds) or unfiles (removes) one subscription of owner: exchanges
 * NULL = every exchange, pairs NULL = every pair. */
void ws_index_add(struct ws_index *ix, void *owner, const char (*exchanges)[TICKER_EXCHANGE_MAX],
                  size_t n_exchanges, const char (*pairs)[TICKER_PAIR_MAX], size_t n_pairs);
void ws_index_remove(struct ws_index *ix, void *owner,
                     const char (*exchanges)[TICKER_EXCHANGE_MAX], size_t n_exchanges,
                     const char (*pairs)[TICKER_PAIR_MAX], size_t n_pairs);

/* Calls fn(owner, arg) for each owner filed under a key that may cover
 * (exchange, pair); fn must not change the index. */
void ws_index_each(const struct ws_index *ix, const char *exchange, const char *pair,
                   void (*fn)(void *owner, void *arg), void *arg);

/* Whether any owner is filed under a key that may cover (exchange, pair):
 * the fan-out skips a key nobody may want before reading it. */
bool ws_index_any(const struct ws_index *ix, const char *exchange, const char *pair);

/* Keys filed (for tests). */
size_t ws_index_keys(const struct ws_index *ix);

#endif
