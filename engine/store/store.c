/*
 * store: one writer, many readers, no locks.
 *
 * The load. One loop thread writes thousands of updates a second across
 * 12+ exchanges of up to 5,000 pairs each; libmicrohttpd threads read at up
 * to ~100k requests a second, some for one ticker, some for whole
 * exchanges. Readers must never wait for the writer (a slow read must not
 * stall the loop, and the loop must not stall a thousand reads).
 *
 * Why per-entry seqlocks rather than published epochs. DESIGN §8 allows
 * either. An epoch scheme publishes an immutable copy of the table every
 * 20-50 ms; it costs a copy of everything that changed per epoch, delays
 * every update by up to an epoch, and needs a reclamation scheme (RCU,
 * hazard pointers or reference counts) to know when readers have left an
 * old copy. With a seqlock per entry an update is a fixed cost (two ~420
 * byte stores, see below), readers see it at once, and nothing is ever
 * reclaimed while the store lives, so there is nothing to get wrong about
 * reclamation.
 *
 * The pieces:
 *
 * - Entries live in segmented arrays (struct seg): chunk k holds base << k
 *   elements and is never moved or freed until store_free, so a pointer to
 *   an entry stays valid for as long as the store does. Appending publishes
 *   the new element by a release store of the count; readers load the count
 *   with acquire and see fully initialised elements below it.
 *
 * - Each entry's ticker (plus its live flag) is guarded by a sequence
 *   counter over two copies of it (a "latch", as Linux's
 *   seqcount_latch): readers copy copy[seq & 1]; the writer bumps seq,
 *   rewrites the copy readers just left, bumps seq again and rewrites the
 *   other. A reader loads seq with acquire, copies, issues an acquire fence
 *   and checks that seq has not moved, else retries. Compared with the
 *   one-copy seqlock this costs a second ~420-byte store per update and
 *   twice the payload memory (about 0.9 KB per key, ~55 MB at 12 x 5,000
 *   keys), and buys the property this module exists for: a writer
 *   preempted in the middle of an update never makes a reader wait, since
 *   the copy readers are sent to is never the one being written. A reader
 *   retries only when the writer moves on while it copies, which takes a
 *   writer that keeps rewriting that very entry; in the stress test a plain
 *   seqlock made readers yield thousands of times a second to a preempted
 *   writer on a 2-core box, the latch not once.
 *
 *   The payload is an array of _Atomic uint64_t read and written with
 *   relaxed operations (H. Boehm, "Can seqlocks get along with programming
 *   language memory models?", 2012): the torn copies a reader throws away
 *   are then not data races, so the scheme is defined C11 and clean under
 *   ThreadSanitizer, and on x86-64 or ARM64 a relaxed load is a plain load.
 *
 * - Lookup goes through an open-addressing hash index (linear probing, load
 *   <= 1/2) of atomic entry pointers, keyed by exchange + "\0" + pair. Keys
 *   are never deleted, so readers probe with acquire loads and no retries.
 *   Growing builds a table twice the size, fills it, and publishes it with
 *   one release store; readers still probing the old table finish there
 *   (at worst missing a key added after the switch, as if they had come a
 *   moment earlier). Old tables go on a retired list freed by store_free:
 *   sizes double, so the retired tables together are smaller than the live
 *   one, and all the index memory ever allocated is < 2x the final table.
 *
 * - Removing an exchange tombstones its entries (live = 0, under their
 *   seqlocks) instead of freeing them; the same key coming back reuses its
 *   entry and continues its version. Memory is therefore bounded by the
 *   distinct keys ever seen, which the set of listed pairs bounds in
 *   practice.
 *
 * - Per-exchange records hold statistics as relaxed atomics (each counter
 *   exact, no cross-counter snapshot) and the list of that exchange's
 *   entries, so a one-exchange scan does not walk the others.
 *
 * Writer-side reads need no seqlock: the writer is the only thread that
 * changes an entry, and between its writes both copies are equal, so it
 * reads copy 0 with plain relaxed loads.
 */
#include "store.h"

#include "core/xalloc.h"
#include "core/hash.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Chunk k of a seg holds base << k elements: 40 chunks never run out. */
#define SEG_CHUNKS 40
#define ENTRY_BASE_BITS 8     /* 256 entries in the first chunk */
#define EXCH_BASE_BITS 4      /* 16 exchange records */
#define EXCH_LIST_BASE_BITS 6 /* 64 entry pointers per exchange */
#define INDEX_MIN_SLOTS 1024
/* Failed copies before a reader yields. Retries need a writer that keeps
 * rewriting the same entry, so this is a safety net, not a wait. */
#define READ_SPINS 64

/* An append-only array whose elements never move (see the design note). */
struct seg {
    _Atomic(unsigned char *) chunk[SEG_CHUNKS];
    atomic_size_t count;
    size_t elem;
    unsigned base_bits;
};

/* What an entry's latch guards: the ticker and whether it is served. */
struct store_payload {
    struct ticker t;
    uint64_t live;
};

#define PAYLOAD_WORDS (sizeof(struct store_payload) / sizeof(uint64_t))
_Static_assert(sizeof(struct store_payload) % sizeof(uint64_t) == 0,
               "the payload is copied as whole 64-bit words");

struct store_exch;

struct store_entry {
    _Atomic uint64_t seq;
    /* The key: written once before the entry is published, then immutable. */
    uint64_t hash;
    struct store_exch *exch;
    char pair[TICKER_PAIR_MAX];
    /* Two copies of the payload; readers use copy[seq & 1]. */
    _Atomic uint64_t copy[2][PAYLOAD_WORDS];
};

struct store_exch {
    char name[TICKER_EXCHANGE_MAX]; /* immutable once published */
    atomic_int live;                /* has statistics (not removed) */
    _Atomic uint64_t tickers;
    _Atomic uint64_t updates;
    _Atomic uint64_t rejects[TICKER_REJECT_COUNT];
    _Atomic int64_t last_update;
    struct seg entries; /* struct store_entry *, this exchange's keys */
};

struct store_index {
    struct store_index *retired; /* the table this one replaced */
    size_t mask;
    _Atomic(struct store_entry *) slot[];
};

struct store {
    _Atomic(struct store_index *) index;
    size_t keys;          /* writer only: entries in the index */
    struct seg entries;   /* struct store_entry, every key */
    struct seg exchanges; /* struct store_exch */
    _Atomic uint64_t generation;
};

/* ---- segmented arrays ---------------------------------------------------- */

static void seg_init(struct seg *g, size_t elem, unsigned base_bits)
{
    for (size_t k = 0; k < SEG_CHUNKS; k++) {
        atomic_init(&g->chunk[k], NULL);
    }
    atomic_init(&g->count, 0);
    g->elem = elem;
    g->base_bits = base_bits;
}

static void seg_destroy(struct seg *g)
{
    for (size_t k = 0; k < SEG_CHUNKS; k++) {
        free(atomic_load_explicit(&g->chunk[k], memory_order_relaxed));
    }
}

/*
 * Writer only: the zeroed slot for the next element. The caller fills it,
 * then calls seg_publish; readers do not see it before that.
 */
static void *seg_next(struct seg *g)
{
    size_t i = atomic_load_explicit(&g->count, memory_order_relaxed);
    size_t q = (i >> g->base_bits) + 1;
    size_t k = 0;
    size_t first;
    unsigned char *c;

    while (q > 1) {
        q >>= 1;
        k++;
    }
    if (k >= SEG_CHUNKS) {
        abort();
    }
    first = (((size_t)1 << k) - 1) << g->base_bits;
    c = atomic_load_explicit(&g->chunk[k], memory_order_relaxed);
    if (!c) {
        c = xcalloc((size_t)1 << (g->base_bits + k), g->elem);
        atomic_store_explicit(&g->chunk[k], c, memory_order_release);
    }
    return c + (i - first) * g->elem;
}

static void seg_publish(struct seg *g)
{
    atomic_fetch_add_explicit(&g->count, 1, memory_order_release);
}

/* Any thread: call fn on every published element until it returns nonzero. */
static int seg_each(const struct seg *g, int (*fn)(void *elem, void *ctx), void *ctx)
{
    size_t n = atomic_load_explicit(&g->count, memory_order_acquire);
    size_t start = 0;

    for (size_t k = 0; start < n; k++) {
        unsigned char *c = atomic_load_explicit(&g->chunk[k], memory_order_acquire);
        size_t len = (size_t)1 << (g->base_bits + k);
        size_t m = n - start < len ? n - start : len;
        for (size_t j = 0; j < m; j++) {
            int rc = fn(c + j * g->elem, ctx);
            if (rc) {
                return rc;
            }
        }
        start += len;
    }
    return 0;
}

/* ---- seqlocked payloads ------------------------------------------------- */

/* Any thread: a consistent copy of the entry's payload. */
static void entry_read(const struct store_entry *e, struct store_payload *p)
{
    uint64_t w[PAYLOAD_WORDS];

    for (unsigned tries = 0;; tries++) {
        uint64_t seq = atomic_load_explicit(&e->seq, memory_order_acquire);
        const _Atomic uint64_t *src = e->copy[seq & 1];
        for (size_t i = 0; i < PAYLOAD_WORDS; i++) {
            w[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->seq, memory_order_relaxed) == seq) {
            break;
        }
        if (tries >= READ_SPINS) {
            sched_yield();
        }
    }
    memcpy(p, w, sizeof(*p));
}

/* Writer only: its own payload. Between writes both copies are equal. */
static void entry_peek(const struct store_entry *e, struct store_payload *p)
{
    uint64_t w[PAYLOAD_WORDS];

    for (size_t i = 0; i < PAYLOAD_WORDS; i++) {
        w[i] = atomic_load_explicit(&e->copy[0][i], memory_order_relaxed);
    }
    memcpy(p, w, sizeof(*p));
}

/*
 * Writer only. Point readers at one copy, rewrite the other, and repeat
 * the other way round. The release fence after each move of seq orders
 * the move before the stores that follow it: a reader that sees any of
 * those stores also sees seq moved, and retries on the other copy.
 */
static void entry_write(struct store_entry *e, const struct store_payload *p)
{
    uint64_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    uint64_t w[PAYLOAD_WORDS];

    memcpy(w, p, sizeof(w));
    for (int pass = 1; pass <= 2; pass++) {
        _Atomic uint64_t *dst = e->copy[(seq + pass + 1) & 1];
        /* Release: the copy written in the previous pass is complete. */
        atomic_store_explicit(&e->seq, seq + pass, memory_order_release);
        atomic_thread_fence(memory_order_release);
        for (size_t i = 0; i < PAYLOAD_WORDS; i++) {
            atomic_store_explicit(&dst[i], w[i], memory_order_relaxed);
        }
    }
}

/* ---- keys and the hash index ---------------------------------------------- */

/* A name that fits its array: 1..cap-1 bytes. */
static int key_part_ok(const char *s, size_t cap)
{
    size_t n;

    if (!s) {
        return 0;
    }
    n = strnlen(s, cap);
    return n > 0 && n < cap;
}

static struct store_index *index_new(size_t slots)
{
    struct store_index *ix = xmalloc(sizeof(*ix) + slots * sizeof(ix->slot[0]));

    ix->retired = NULL;
    ix->mask = slots - 1;
    for (size_t i = 0; i < slots; i++) {
        atomic_init(&ix->slot[i], NULL);
    }
    return ix;
}

/* Any thread. */
static struct store_entry *index_find(const struct store_index *ix, uint64_t h,
                                      const char *exchange, const char *pair)
{
    for (size_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
        struct store_entry *e = atomic_load_explicit(&ix->slot[i], memory_order_acquire);
        if (!e) {
            return NULL;
        }
        if (e->hash == h && strcmp(e->pair, pair) == 0 && strcmp(e->exch->name, exchange) == 0) {
            return e;
        }
    }
}

/* Writer only. */
static void index_insert(struct store_index *ix, struct store_entry *e)
{
    size_t i = e->hash & ix->mask;

    while (atomic_load_explicit(&ix->slot[i], memory_order_relaxed)) {
        i = (i + 1) & ix->mask;
    }
    atomic_store_explicit(&ix->slot[i], e, memory_order_release);
}

static int index_refill(void *elem, void *ctx)
{
    index_insert(ctx, elem);
    return 0;
}

/* Writer only: make room for one more key, keeping the load <= 1/2. */
static void index_reserve(struct store *s)
{
    struct store_index *old = atomic_load_explicit(&s->index, memory_order_relaxed);
    struct store_index *ix;

    if ((s->keys + 1) * 2 <= old->mask + 1) {
        return;
    }
    ix = index_new((old->mask + 1) * 2);
    seg_each(&s->entries, index_refill, ix);
    ix->retired = old;
    atomic_store_explicit(&s->index, ix, memory_order_release);
}

/* ---- exchanges ------------------------------------------------------------ */

struct exch_lookup {
    const char *name;
    struct store_exch *found;
};

static int exch_match(void *elem, void *ctx)
{
    struct store_exch *x = elem;
    struct exch_lookup *q = ctx;

    if (strcmp(x->name, q->name) == 0) {
        q->found = x;
        return 1;
    }
    return 0;
}

/* Any thread: the record of an exchange, removed or not, or NULL. */
static struct store_exch *exch_find(const struct store *s, const char *name)
{
    struct exch_lookup q = {name, NULL};

    seg_each(&s->exchanges, exch_match, &q);
    return q.found;
}

/* Writer only: the record of an exchange, created if new; it has stats now. */
static struct store_exch *exch_get(struct store *s, const char *name)
{
    struct store_exch *x = exch_find(s, name);

    if (!x) {
        x = seg_next(&s->exchanges);
        strcpy(x->name, name);
        atomic_init(&x->live, 0);
        atomic_init(&x->tickers, 0);
        atomic_init(&x->updates, 0);
        for (size_t i = 0; i < TICKER_REJECT_COUNT; i++) {
            atomic_init(&x->rejects[i], 0);
        }
        atomic_init(&x->last_update, 0);
        seg_init(&x->entries, sizeof(struct store_entry *), EXCH_LIST_BASE_BITS);
        seg_publish(&s->exchanges);
    }
    atomic_store_explicit(&x->live, 1, memory_order_relaxed);
    return x;
}

static void exch_reset(struct store_exch *x)
{
    atomic_store_explicit(&x->tickers, 0, memory_order_relaxed);
    atomic_store_explicit(&x->updates, 0, memory_order_relaxed);
    for (size_t i = 0; i < TICKER_REJECT_COUNT; i++) {
        atomic_store_explicit(&x->rejects[i], 0, memory_order_relaxed);
    }
    atomic_store_explicit(&x->last_update, 0, memory_order_relaxed);
}

static void exch_saw(struct store_exch *x, int64_t received)
{
    if (received > atomic_load_explicit(&x->last_update, memory_order_relaxed)) {
        atomic_store_explicit(&x->last_update, received, memory_order_relaxed);
    }
}

/* Writer only, so a load and a store: no locked read-modify-write, which
 * would cost the emit path a few of its ~100 ns. */
static void counter_add(_Atomic uint64_t *c, int64_t d)
{
    if (d) {
        uint64_t v = atomic_load_explicit(c, memory_order_relaxed);
        atomic_store_explicit(c, v + (uint64_t)d, memory_order_relaxed);
    }
}

/* ---- entries ------------------------------------------------------------- */

/* Writer only: the entry of a key, created (not live) if new. */
static struct store_entry *entry_get(struct store *s, const char *exchange, const char *pair)
{
    uint64_t h = hash_key(exchange, pair);
    struct store_index *ix = atomic_load_explicit(&s->index, memory_order_relaxed);
    struct store_entry *e = index_find(ix, h, exchange, pair);
    struct store_exch *x;
    struct store_entry **slot;

    if (e) {
        return e;
    }
    x = exch_get(s, exchange);
    /* Grow first: a refill walks s->entries, which must not hold e yet. */
    index_reserve(s);
    e = seg_next(&s->entries);
    atomic_init(&e->seq, 0);
    e->hash = h;
    e->exch = x;
    strcpy(e->pair, pair);
    for (size_t i = 0; i < PAYLOAD_WORDS; i++) {
        atomic_init(&e->copy[0][i], 0);
        atomic_init(&e->copy[1][i], 0);
    }
    seg_publish(&s->entries);
    slot = seg_next(&x->entries);
    *slot = e;
    seg_publish(&x->entries);
    index_insert(atomic_load_explicit(&s->index, memory_order_relaxed), e);
    s->keys++;
    return e;
}

/* Copy field by field so stored strings are terminated and zero-padded. */
static void copy_text(char *dst, const char *src, size_t cap)
{
    size_t n = strnlen(src, cap - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void payload_fill(struct store_payload *p, const struct ticker *t)
{
    memset(p, 0, sizeof(*p));
    copy_text(p->t.exchange, t->exchange, sizeof(p->t.exchange));
    copy_text(p->t.pair, t->pair, sizeof(p->t.pair));
    copy_text(p->t.symbol, t->symbol, sizeof(p->t.symbol));
    copy_text(p->t.bid, t->bid, TICKER_DEC_MAX);
    copy_text(p->t.ask, t->ask, TICKER_DEC_MAX);
    copy_text(p->t.bid_size, t->bid_size, TICKER_DEC_MAX);
    copy_text(p->t.ask_size, t->ask_size, TICKER_DEC_MAX);
    copy_text(p->t.last, t->last, TICKER_DEC_MAX);
    copy_text(p->t.volume, t->volume, TICKER_DEC_MAX);
    p->t.bid_value = t->bid_value;
    p->t.ask_value = t->ask_value;
    p->t.ts = t->ts;
    p->t.received = t->received;
    p->t.v = t->v;
    p->t.source = t->source;
    p->live = 1;
}

static void generation_bump(struct store *s)
{
    uint64_t g = atomic_load_explicit(&s->generation, memory_order_relaxed);
    /* Release: whoever reads the new value also sees the write it follows.
     * One writer, so no read-modify-write. */
    atomic_store_explicit(&s->generation, g + 1, memory_order_release);
}

/* ---- public -------------------------------------------------------------- */

struct store *store_new(void)
{
    struct store *s = xcalloc(1, sizeof(*s));

    atomic_init(&s->index, index_new(INDEX_MIN_SLOTS));
    s->keys = 0;
    seg_init(&s->entries, sizeof(struct store_entry), ENTRY_BASE_BITS);
    seg_init(&s->exchanges, sizeof(struct store_exch), EXCH_BASE_BITS);
    atomic_init(&s->generation, 0);
    return s;
}

static int exch_destroy(void *elem, void *ctx)
{
    struct store_exch *x = elem;

    seg_destroy(&x->entries);
    return 0;
}

void store_free(struct store *s)
{
    struct store_index *ix;

    if (!s) {
        return;
    }
    ix = atomic_load_explicit(&s->index, memory_order_relaxed);
    while (ix) {
        struct store_index *older = ix->retired;
        free(ix);
        ix = older;
    }
    seg_each(&s->exchanges, exch_destroy, NULL);
    seg_destroy(&s->exchanges);
    seg_destroy(&s->entries);
    free(s);
}

int store_find(struct store *s, const char *exchange, const char *pair, struct ticker *old,
               struct store_ref *ref)
{
    struct store_payload p;

    ref->entry = NULL;
    ref->old = NULL;
    if (!key_part_ok(exchange, TICKER_EXCHANGE_MAX) || !key_part_ok(pair, TICKER_PAIR_MAX)) {
        return 0;
    }
    ref->entry = index_find(atomic_load_explicit(&s->index, memory_order_relaxed),
                            hash_key(exchange, pair), exchange, pair);
    if (!ref->entry) {
        return 0;
    }
    entry_peek(ref->entry, &p);
    if (p.live && old) {
        *old = p.t;
        ref->old = old;
    }
    return p.live ? 1 : 0;
}

int store_put_ref(struct store *s, const struct store_ref *ref, struct ticker *t)
{
    struct store_entry *e = ref ? ref->entry : NULL;
    struct store_payload peeked;
    struct store_payload now;
    const struct ticker *prev = &peeked.t;
    bool live;

    if (!key_part_ok(t->exchange, TICKER_EXCHANGE_MAX) || !key_part_ok(t->pair, TICKER_PAIR_MAX)) {
        return -EINVAL;
    }
    if (!e) {
        e = entry_get(s, t->exchange, t->pair);
    }
    /* A key of a removed exchange brings the exchange back. */
    atomic_store_explicit(&e->exch->live, 1, memory_order_relaxed);
    /* store_find's copy, when it made one, is current: the writer alone
     * changes entries. */
    if (ref && ref->entry == e && ref->old) {
        prev = ref->old;
        live = true;
    } else {
        entry_peek(e, &peeked);
        live = peeked.live;
    }
    if (live && ticker_same_quote(prev, t)) {
        t->v = prev->v;
        if (prev->received != t->received) {
            payload_fill(&now, prev);
            now.t.received = t->received;
            entry_write(e, &now);
            generation_bump(s);
        }
        exch_saw(e->exch, t->received);
        return 0;
    }
    t->v = prev->v + 1;
    payload_fill(&now, t);
    entry_write(e, &now);
    counter_add(&e->exch->tickers, !live);
    counter_add(&e->exch->updates, 1);
    exch_saw(e->exch, t->received);
    generation_bump(s);
    return 1;
}

int store_put(struct store *s, struct ticker *t)
{
    return store_put_ref(s, NULL, t);
}

int store_restore(struct store *s, const struct ticker *t)
{
    struct store_entry *e;
    struct store_payload old;
    struct store_payload now;

    if (!key_part_ok(t->exchange, TICKER_EXCHANGE_MAX) || !key_part_ok(t->pair, TICKER_PAIR_MAX)) {
        return -EINVAL;
    }
    e = entry_get(s, t->exchange, t->pair);
    /* A key of a removed exchange brings the exchange back. */
    atomic_store_explicit(&e->exch->live, 1, memory_order_relaxed);
    entry_peek(e, &old);
    if (old.live && old.t.v > t->v) {
        return 0;
    }
    payload_fill(&now, t);
    entry_write(e, &now);
    counter_add(&e->exch->tickers, !old.live);
    exch_saw(e->exch, t->received);
    generation_bump(s);
    return 1;
}

void store_count_reject(struct store *s, const char *exchange, enum ticker_reject why)
{
    struct store_exch *x;

    if (why <= TICKER_OK || why >= TICKER_REJECT_COUNT ||
        !key_part_ok(exchange, TICKER_EXCHANGE_MAX)) {
        return;
    }
    x = exch_get(s, exchange);
    counter_add(&x->rejects[why], 1);
}

static int entry_tombstone(void *elem, void *ctx)
{
    struct store_entry *e = *(struct store_entry **)elem;
    int *dropped = ctx;
    struct store_payload p;

    entry_peek(e, &p);
    if (p.live) {
        p.live = 0;
        entry_write(e, &p);
        (*dropped)++;
    }
    return 0;
}

int store_remove_exchange(struct store *s, const char *exchange)
{
    struct store_exch *x;
    int dropped = 0;

    if (!key_part_ok(exchange, TICKER_EXCHANGE_MAX)) {
        return -ENOENT;
    }
    x = exch_find(s, exchange);
    if (!x || !atomic_load_explicit(&x->live, memory_order_relaxed)) {
        return -ENOENT;
    }
    seg_each(&x->entries, entry_tombstone, &dropped);
    atomic_store_explicit(&x->live, 0, memory_order_relaxed);
    exch_reset(x);
    generation_bump(s);
    return dropped;
}

int store_get(const struct store *s, const char *exchange, const char *pair, struct ticker *out)
{
    struct store_entry *e;
    struct store_payload p;

    if (!key_part_ok(exchange, TICKER_EXCHANGE_MAX) || !key_part_ok(pair, TICKER_PAIR_MAX)) {
        return -ENOENT;
    }
    e = index_find(atomic_load_explicit(&s->index, memory_order_acquire), hash_key(exchange, pair),
                   exchange, pair);
    if (!e) {
        return -ENOENT;
    }
    entry_read(e, &p);
    if (!p.live) {
        return -ENOENT;
    }
    if (out) {
        *out = p.t;
    }
    return 0;
}

struct scan_ctx {
    int (*fn)(const struct ticker *t, void *ctx);
    void *ctx;
};

static int scan_entry(const struct store_entry *e, struct scan_ctx *c)
{
    struct store_payload p;

    entry_read(e, &p);
    if (!p.live) {
        return 0;
    }
    return c->fn(&p.t, c->ctx);
}

static int scan_all(void *elem, void *ctx)
{
    return scan_entry(elem, ctx);
}

static int scan_listed(void *elem, void *ctx)
{
    return scan_entry(*(struct store_entry **)elem, ctx);
}

void store_scan(const struct store *s, const char *exchange,
                int (*fn)(const struct ticker *t, void *ctx), void *ctx)
{
    struct scan_ctx c = {fn, ctx};
    struct store_exch *x;

    if (!exchange) {
        seg_each(&s->entries, scan_all, &c);
        return;
    }
    if (!key_part_ok(exchange, TICKER_EXCHANGE_MAX)) {
        return;
    }
    x = exch_find(s, exchange);
    if (x) {
        seg_each(&x->entries, scan_listed, &c);
    }
}

int store_exchange_stats(const struct store *s, const char *exchange,
                         struct store_exchange_stats *out)
{
    struct store_exch *x;

    if (!key_part_ok(exchange, TICKER_EXCHANGE_MAX)) {
        return -ENOENT;
    }
    x = exch_find(s, exchange);
    if (!x || !atomic_load_explicit(&x->live, memory_order_relaxed)) {
        return -ENOENT;
    }
    out->tickers = atomic_load_explicit(&x->tickers, memory_order_relaxed);
    out->updates = atomic_load_explicit(&x->updates, memory_order_relaxed);
    for (size_t i = 0; i < TICKER_REJECT_COUNT; i++) {
        out->rejects[i] = atomic_load_explicit(&x->rejects[i], memory_order_relaxed);
    }
    out->last_update = atomic_load_explicit(&x->last_update, memory_order_relaxed);
    return 0;
}

struct names_ctx {
    char (*names)[TICKER_EXCHANGE_MAX];
    size_t cap;
    size_t n;
};

static int name_add(void *elem, void *ctx)
{
    struct store_exch *x = elem;
    struct names_ctx *c = ctx;

    if (c->n == c->cap) {
        return 1;
    }
    if (atomic_load_explicit(&x->live, memory_order_relaxed)) {
        memcpy(c->names[c->n++], x->name, TICKER_EXCHANGE_MAX);
    }
    return 0;
}

size_t store_exchange_names(const struct store *s, char names[][TICKER_EXCHANGE_MAX], size_t cap)
{
    struct names_ctx c = {names, cap, 0};

    seg_each(&s->exchanges, name_add, &c);
    return c.n;
}

uint64_t store_generation(const struct store *s)
{
    return atomic_load_explicit(&s->generation, memory_order_acquire);
}
