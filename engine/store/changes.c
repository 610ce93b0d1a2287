/*
 * changes: two lists under one mutex — the keys pending (with an
 * open-addressing index from key to list position, so a key already pending
 * is folded in O(1)) and the exchanges pending (a handful: searched
 * linearly). changes_take swaps the lists with the consumer's emptied ones,
 * so their memory is reused and the lock is held for a pointer swap. The
 * index is not cleared on a take: each slot carries the generation it was
 * written in, and a take starts a new generation.
 *
 * Tickers are staged first, in a list only the producer touches, and
 * folded into the pending keys by changes_flush under one lock: a stream
 * emits one ticker per message, and a lock and a doorbell per message cost
 * more than the emit (the doorbell wakes the consumer's thread: a write to
 * an eventfd and a cross-CPU wake-up, about a microsecond here). `rung`
 * says the consumer has a doorbell it has not answered yet, so a flush
 * rings at most once per take; and since a quick consumer takes after
 * every ring, rings are also spaced CHANGES_RING_GAP_US apart (a loop
 * iteration of a busy stream holds only a few messages).
 */
#include "changes.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/xalloc.h"

#define INDEX_MIN_SLOTS 1024

struct slot {
    uint64_t hash;
    uint32_t gen; /* the generation it was written in; other = empty */
    uint32_t at;  /* position in the pending keys */
};

struct changes {
    pthread_mutex_t lock;
    struct changes_taken pending;
    struct slot *index;
    size_t mask;
    uint32_t gen;
    bool rung; /* locked: rung, and not taken since */
    void (*wake)(void *arg);
    void *wake_arg;
    struct changes_stats stats;
    /* The producer's alone, no lock: keys put since the last flush,
     * whether anything at all was put since then, whether a ring was held
     * back, and when the last one rang. */
    struct change_key *staged;
    size_t n_staged, cap_staged;
    bool dirty;
    bool held;
    bool ever_rang;
    uint64_t rang_at;
};

struct changes *changes_new(void (*wake)(void *arg), void *arg)
{
    struct changes *c = xcalloc(1, sizeof *c);

    pthread_mutex_init(&c->lock, NULL);
    c->index = xcalloc(INDEX_MIN_SLOTS, sizeof *c->index);
    c->mask = INDEX_MIN_SLOTS - 1;
    c->gen = 1;
    c->wake = wake;
    c->wake_arg = arg;
    return c;
}

void changes_taken_free(struct changes_taken *t)
{
    free(t->keys);
    free(t->exchanges);
    memset(t, 0, sizeof *t);
}

void changes_free(struct changes *c)
{
    if (!c) {
        return;
    }
    changes_taken_free(&c->pending);
    free(c->staged);
    free(c->index);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static bool empty(const struct changes *c)
{
    return c->pending.n_keys == 0 && c->pending.n_exchanges == 0;
}

/* Locked. Doubles the index when the pending keys pass half its slots. */
static void index_grow(struct changes *c)
{
    size_t slots = (c->mask + 1) * 2;
    struct slot *fresh = xcalloc(slots, sizeof *fresh);

    for (size_t i = 0; i < c->pending.n_keys; i++) {
        const struct change_key *k = &c->pending.keys[i];
        uint64_t h = hash_key(k->exchange, k->pair);
        size_t s = h & (slots - 1);
        while (fresh[s].gen == c->gen) {
            s = (s + 1) & (slots - 1);
        }
        fresh[s] = (struct slot){.hash = h, .gen = c->gen, .at = (uint32_t)i};
    }
    free(c->index);
    c->index = fresh;
    c->mask = slots - 1;
}

/* Locked. Adds or folds one key. */
static void put_key(struct changes *c, const struct change_key *t)
{
    struct changes_taken *p = &c->pending;
    uint64_t h = hash_key(t->exchange, t->pair);

    c->stats.keys_put++;
    for (size_t s = h & c->mask; c->index[s].gen == c->gen; s = (s + 1) & c->mask) {
        struct change_key *k = &p->keys[c->index[s].at];
        if (c->index[s].hash == h && strcmp(k->pair, t->pair) == 0 &&
            strcmp(k->exchange, t->exchange) == 0) {
            if (t->v > k->v) {
                k->v = t->v;
            }
            c->stats.keys_folded++;
            return;
        }
    }
    if ((p->n_keys + 1) * 2 > c->mask + 1) {
        index_grow(c);
    }
    if (p->n_keys == p->cap_keys) {
        p->cap_keys = p->cap_keys ? p->cap_keys * 2 : 256;
        p->keys = xrealloc(p->keys, p->cap_keys * sizeof *p->keys);
    }
    struct change_key *k = &p->keys[p->n_keys];
    memcpy(k->exchange, t->exchange, sizeof k->exchange);
    memcpy(k->pair, t->pair, sizeof k->pair);
    k->v = t->v;
    size_t s = h & c->mask;
    while (c->index[s].gen == c->gen) {
        s = (s + 1) & c->mask;
    }
    c->index[s] = (struct slot){.hash = h, .gen = c->gen, .at = (uint32_t)p->n_keys++};
}

/* Locked. The pending entry of an exchange, added if new. */
static struct change_exchange *exchange_slot(struct changes *c, const char *name)
{
    struct changes_taken *p = &c->pending;

    for (size_t i = 0; i < p->n_exchanges; i++) {
        if (strcmp(p->exchanges[i].name, name) == 0) {
            return &p->exchanges[i];
        }
    }
    if (p->n_exchanges == p->cap_exchanges) {
        p->cap_exchanges = p->cap_exchanges ? p->cap_exchanges * 2 : 16;
        p->exchanges = xrealloc(p->exchanges, p->cap_exchanges * sizeof *p->exchanges);
    }
    struct change_exchange *e = &p->exchanges[p->n_exchanges++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

/* Locked. Folds the staged keys into the pending ones. */
static void unstage(struct changes *c)
{
    for (size_t i = 0; i < c->n_staged; i++) {
        put_key(c, &c->staged[i]);
    }
    c->n_staged = 0;
}

void changes_put_tickers(struct changes *c, const struct ticker *t, const bool *changed, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!changed[i]) {
            continue;
        }
        if (c->n_staged == c->cap_staged) {
            c->cap_staged = c->cap_staged ? c->cap_staged * 2 : 256;
            c->staged = xrealloc(c->staged, c->cap_staged * sizeof *c->staged);
        }
        struct change_key *k = &c->staged[c->n_staged++];
        memcpy(k->exchange, t[i].exchange, sizeof k->exchange);
        memcpy(k->pair, t[i].pair, sizeof k->pair);
        k->v = t[i].v;
        c->dirty = true;
    }
}

/* Locked, with the staged keys folded in first, so an exchange's entry
 * comes after the tickers put before it. */
static struct change_exchange *exchange_entry(struct changes *c, const char *exchange)
{
    pthread_mutex_lock(&c->lock);
    unstage(c);
    c->dirty = true;
    return exchange_slot(c, exchange);
}

void changes_put_status(struct changes *c, const char *exchange, const char *state,
                        const char *reason)
{
    struct change_exchange *e = exchange_entry(c, exchange);
    e->status = true;
    snprintf(e->state, sizeof e->state, "%s", state);
    snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
    pthread_mutex_unlock(&c->lock);
}

void changes_put_removed(struct changes *c, const char *exchange)
{
    struct change_exchange *e = exchange_entry(c, exchange);
    e->removed = true;
    e->status = false;
    pthread_mutex_unlock(&c->lock);
}

int64_t changes_flush(struct changes *c, uint64_t now_us)
{
    uint64_t since = now_us - c->rang_at;

    if (!c->dirty && !c->held) {
        return 0;
    }
    c->dirty = false;
    pthread_mutex_lock(&c->lock);
    unstage(c);
    bool due = !c->rung && !empty(c);
    c->held = due && c->ever_rang && since < CHANGES_RING_GAP_US;
    bool wake = due && !c->held;
    c->rung = c->rung || wake;
    pthread_mutex_unlock(&c->lock);
    if (c->held) {
        return (int64_t)(CHANGES_RING_GAP_US - since);
    }
    if (wake) {
        c->ever_rang = true;
        c->rang_at = now_us;
        if (c->wake) {
            c->wake(c->wake_arg);
        }
    }
    return 0;
}

size_t changes_take(struct changes *c, struct changes_taken *out)
{
    out->n_keys = 0;
    out->n_exchanges = 0;
    pthread_mutex_lock(&c->lock);
    struct changes_taken mine = c->pending;
    c->pending = *out;
    *out = mine;
    c->gen++;
    if (c->gen == 0) {
        /* After 2^32 takes the oldest slots could look current again. */
        memset(c->index, 0, (c->mask + 1) * sizeof *c->index);
        c->gen = 1;
    }
    c->stats.takes += out->n_keys + out->n_exchanges > 0;
    c->rung = false;
    pthread_mutex_unlock(&c->lock);
    return out->n_keys + out->n_exchanges;
}

void changes_stats(struct changes *c, struct changes_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    out->pending = c->pending.n_keys + c->pending.n_exchanges;
    pthread_mutex_unlock(&c->lock);
}
