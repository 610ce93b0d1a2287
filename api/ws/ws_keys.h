/*
 * ws_keys: a hash table keyed by (exchange, pair) for the WebSocket
 * server's bookkeeping, and the newest version seen per key.
 *
 * A table holds nodes its user allocates whole (malloc/xcalloc) with a
 * struct ws_keynode as their first member; ws_keys_free frees them. Not
 * thread-safe: each table belongs to one thread (the loop, or a test).
 */
#ifndef RX_WS_KEYS_H
#define RX_WS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "store/ticker.h"

/* The head of anything kept in a table. */
struct ws_keynode {
    struct ws_keynode *next;
    uint64_t hash;
    char exchange[TICKER_EXCHANGE_MAX];
    char pair[TICKER_PAIR_MAX];
};

/* Zero-initialised = empty. */
struct ws_keytab {
    struct ws_keynode **slot;
    size_t nslots; /* a power of two, or 0 */
    size_t n;
};

/* Sets a node's key (before ws_keys_insert). */
void ws_keys_fill(struct ws_keynode *node, const char *exchange, const char *pair);
struct ws_keynode *ws_keys_find(const struct ws_keytab *kt, const char *exchange, const char *pair);
/* Links node (its key filled, not in any table; no duplicate check). */
void ws_keys_insert(struct ws_keytab *kt, struct ws_keynode *node);
/* Unlinks node; the caller frees it. */
void ws_keys_unlink(struct ws_keytab *kt, struct ws_keynode *node);
/* Frees every node still linked, and the slots; the table is empty after. */
void ws_keys_free(struct ws_keytab *kt);

/*
 * ws_keys_versions: the newest version seen per (exchange, pair), so that
 * the fan-out can ignore a publish that carries no new version (a
 * `received`-only refresh, or a caller that reports every accepted ticker).
 */
struct ws_keys_versions;
struct ws_keys_versions *ws_keys_versions_new(void);
void ws_keys_versions_free(struct ws_keys_versions *vs);
/* Records t->v for t's key; returns 1 if it is newer than the one seen
 * before (or the first), 0 otherwise. A ticker with v == 0 is always new. */
int ws_keys_versions_advance(struct ws_keys_versions *vs, const struct ticker *t);

#endif
