/*
 * ws_session: the /v1/stream protocol and the conflating queue of one
 * client (design in ws_session.h).
 *
 * Data structures, each for one job:
 *   - subs: the open subscriptions, an array in creation order; each keeps
 *     its pairs sorted (bsearch) and its exchanges as a short list;
 *   - keys: a hash table (ws_keys.h) of the (exchange, pair) keys this
 *     session is holding — dirty, or sent within their throttle window;
 *   - heap: the dirty keys by due time (a binary min-heap whose entries know
 *     their index, so a key's due time can move);
 *   - out: a FIFO of rendered replies and snapshot jobs; a job renders one
 *     chunk per ws_session_next call, in its place in the FIFO.
 *
 * What a session holds is counted as the allocator holds it (HELD: each
 * block rounded up as glibc's malloc does, with its header), because the
 * WebSocket server closes a client on that count (ws.max_queue_bytes) and
 * sums it for the global cap: counting only the rendered text (as before)
 * let 100 clients just under the limit take 179 MB of RSS for 100 MB
 * counted, the rest in item headers, keys and snapshot key lists. A rendered
 * reply is one block (header and text together); a snapshot job keeps its
 * keys as two 32-bit offsets each into one pool of the names, each pair
 * once (the keys are sorted by pair), so subscribing to 15,000 keys holds
 * about 170 KB rather than 960 KB of fixed-size names.
 */
#include "ws_session.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "rates_view.h"
#include "store/store.h"
#include "store/ticker_json.h"
#include "ws_keys.h"
#include "ws_render.h"
#include "core/xalloc.h"

#define DEFAULT_MAX_SUBS 64
#define DEFAULT_SNAPSHOT_CHUNK 500
#define ID_TEXT_MAX 160
#define SWEEP_EVERY_MS 1000
#define NO_HEAP SIZE_MAX

/* ---- Session state ------------------------------------------------------ */

struct ws_sub {
    uint32_t id;
    uint32_t throttle_ms;
    char (*pairs)[TICKER_PAIR_MAX]; /* sorted, unique; NULL = every pair */
    size_t n_pairs, pairs_alloc;
    char (*exchanges)[TICKER_EXCHANGE_MAX]; /* NULL = every exchange */
    size_t n_exchanges, exchanges_alloc;
};

/* A key this session holds: dirty (in the heap) or inside its window. */
struct ws_key {
    struct ws_keynode node; /* first: ws_keys_free frees it whole */
    bool sent;              /* last_sent is meaningful */
    uint64_t last_sent;     /* monotonic ms */
    uint32_t window_ms;     /* the throttle it was last sent under */
    uint64_t due;           /* while dirty */
    size_t heap_index;      /* NO_HEAP when not dirty */
};

/* One key of a snapshot in progress: offsets of its names in the pool. */
struct snap_key {
    uint32_t pair, exchange;
};

/* One snapshot in progress: its keys, sorted by pair then exchange. */
struct snap_job {
    uint32_t sub;
    char id[ID_TEXT_MAX];
    char *names; /* NUL-terminated names, each once */
    struct snap_key *keys;
    size_t n_keys, cursor;
    size_t held; /* HELD of the job and its two arrays */
};

/* A FIFO entry: a rendered message (its text follows), or a snapshot job. */
struct out_item {
    struct out_item *next;
    struct snap_job *job;
    size_t len;
    char text[];
};

struct ws_session {
    const struct api_ctx *ctx;
    size_t max_subs;
    size_t chunk;

    struct ws_sub *subs;
    size_t n_subs;
    uint32_t next_sub_id;

    struct ws_keytab keys;
    struct ws_key **heap;
    size_t heap_n, heap_cap;
    uint64_t last_sweep;

    struct out_item *out_head, *out_tail;
    size_t out_held; /* HELD of the FIFO's items and jobs */

    struct ws_render *render; /* shared rendered tickers, or NULL */
    struct ws_session_stats stats;

    ws_session_watch_fn *watch;
    void *watch_arg;
};

/* ---- Accounting ---------------------------------------------------------- */

/* What a malloc of n bytes takes from the heap: glibc rounds a block up to
 * 16 bytes with an 8-byte header, 32 at least. Other allocators differ by a
 * few bytes per block; the count is about the bytes, not their layout. */
size_t ws_session_block_bytes(size_t n)
{
    size_t b = (n + 8 + 15) & ~(size_t)15;
    return n == 0 ? 0 : b < 32 ? 32 : b;
}

static size_t held(size_t n)
{
    return ws_session_block_bytes(n);
}

/* ---- The due-time heap -------------------------------------------------- */

static void heap_swap(struct ws_session *s, size_t a, size_t b)
{
    struct ws_key *t = s->heap[a];
    s->heap[a] = s->heap[b];
    s->heap[b] = t;
    s->heap[a]->heap_index = a;
    s->heap[b]->heap_index = b;
}

static void heap_up(struct ws_session *s, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->due <= s->heap[i]->due) {
            break;
        }
        heap_swap(s, parent, i);
        i = parent;
    }
}

static void heap_down(struct ws_session *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->heap_n && s->heap[l]->due < s->heap[m]->due) {
            m = l;
        }
        if (r < s->heap_n && s->heap[r]->due < s->heap[m]->due) {
            m = r;
        }
        if (m == i) {
            return;
        }
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_push(struct ws_session *s, struct ws_key *k)
{
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 32;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    k->heap_index = s->heap_n;
    s->heap[s->heap_n++] = k;
    heap_up(s, k->heap_index);
}

static void heap_remove(struct ws_session *s, struct ws_key *k)
{
    size_t i = k->heap_index;
    if (i == NO_HEAP) {
        return;
    }
    s->heap_n--;
    if (i != s->heap_n) {
        s->heap[i] = s->heap[s->heap_n];
        s->heap[i]->heap_index = i;
        heap_down(s, i);
        heap_up(s, i);
    }
    k->heap_index = NO_HEAP;
}

/* ---- Subscriptions ------------------------------------------------------ */

static int pair_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static bool sub_has_exchange(const struct ws_sub *sub, const char *exchange)
{
    if (!sub->exchanges) {
        return true;
    }
    for (size_t i = 0; i < sub->n_exchanges; i++) {
        if (strcmp(sub->exchanges[i], exchange) == 0) {
            return true;
        }
    }
    return false;
}

static bool sub_has_pair(const struct ws_sub *sub, const char *pair)
{
    if (!sub->pairs) {
        return true;
    }
    return bsearch(pair, sub->pairs, sub->n_pairs, sizeof *sub->pairs, pair_cmp) != NULL;
}

/* The subscription a key goes out under: the smallest throttle, then the
 * oldest; NULL when none wants it. */
static const struct ws_sub *best_sub(const struct ws_session *s, const char *exchange,
                                     const char *pair)
{
    const struct ws_sub *best = NULL;

    for (size_t i = 0; i < s->n_subs; i++) {
        const struct ws_sub *sub = &s->subs[i];
        if ((!best || sub->throttle_ms < best->throttle_ms) && sub_has_exchange(sub, exchange) &&
            sub_has_pair(sub, pair)) {
            best = sub;
        }
    }
    return best;
}

static bool covers_exchange(const struct ws_session *s, const char *exchange)
{
    for (size_t i = 0; i < s->n_subs; i++) {
        if (sub_has_exchange(&s->subs[i], exchange)) {
            return true;
        }
    }
    return false;
}

/* Tells the watcher a subscription opened or closed. */
static void sub_watch(const struct ws_session *s, const struct ws_sub *sub, bool added)
{
    if (s->watch) {
        s->watch(s->watch_arg, added, (const char(*)[TICKER_EXCHANGE_MAX])sub->exchanges,
                 sub->n_exchanges, (const char(*)[TICKER_PAIR_MAX])sub->pairs, sub->n_pairs);
    }
}

static void sub_free(struct ws_sub *sub)
{
    free(sub->pairs);
    free(sub->exchanges);
}

/* ---- The outbound FIFO -------------------------------------------------- */

/* HELD of a FIFO entry, its job included. */
static size_t item_held(const struct out_item *item)
{
    return held(sizeof *item + item->len) + (item->job ? item->job->held : 0);
}

static void out_push(struct ws_session *s, struct out_item *item)
{
    item->next = NULL;
    if (s->out_tail) {
        s->out_tail->next = item;
    } else {
        s->out_head = item;
    }
    s->out_tail = item;
    s->out_held += item_held(item);
}

/* Queues a rendered message (copied into one block with its entry); b is
 * freed. */
static void out_text(struct ws_session *s, struct jbuf *b)
{
    struct out_item *item = xmalloc(sizeof *item + b->len);
    item->job = NULL;
    item->len = b->len;
    memcpy(item->text, b->data, b->len);
    jbuf_free(b);
    out_push(s, item);
}

static void out_item_free(struct out_item *item)
{
    if (item->job) {
        free(item->job->names);
        free(item->job->keys);
        free(item->job);
    }
    free(item);
}

static struct out_item *out_pop(struct ws_session *s)
{
    struct out_item *item = s->out_head;
    s->out_head = item->next;
    if (!s->out_head) {
        s->out_tail = NULL;
    }
    s->out_held -= item_held(item);
    return item;
}

/* ---- Replies ------------------------------------------------------------ */

/* id is JSON text ("null" when the request had none). */
static void reply_error(struct ws_session *s, const char *id, const char *code, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

static void reply_error(struct ws_session *s, const char *id, const char *code, const char *fmt,
                        ...)
{
    char msg[256];
    va_list ap;
    struct jbuf b;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jbuf_init(&b);
    jbuf_addf(&b, "{\"type\":\"error\",\"id\":%s,\"error\":{\"code\":", id);
    jbuf_str(&b, code);
    jbuf_adds(&b, ",\"message\":");
    jbuf_str(&b, msg);
    jbuf_adds(&b, "}}");
    out_text(s, &b);
}

static void reply_ack(struct ws_session *s, const char *id, uint32_t sub)
{
    struct jbuf b;
    jbuf_init(&b);
    jbuf_addf(&b, "{\"type\":\"ack\",\"id\":%s,\"sub\":%u}", id, sub);
    out_text(s, &b);
}

/* ---- Parsing a request -------------------------------------------------- */

/*
 * The request's id as JSON text: a number or a string is echoed, absent or
 * null is "null". Returns -1 (with "null" in out) for any other type.
 */
static int id_text(const cJSON *id, char out[ID_TEXT_MAX])
{
    snprintf(out, ID_TEXT_MAX, "null");
    if (!id || cJSON_IsNull(id)) {
        return 0;
    }
    if (cJSON_IsNumber(id) && isfinite(id->valuedouble)) {
        double v = id->valuedouble;
        if (v == floor(v) && fabs(v) < 9007199254740992.0) {
            snprintf(out, ID_TEXT_MAX, "%.0f", v);
        } else {
            snprintf(out, ID_TEXT_MAX, "%.17g", v);
        }
        return 0;
    }
    if (cJSON_IsString(id) && strlen(id->valuestring) <= 100) {
        struct jbuf b;
        jbuf_init(&b);
        jbuf_str(&b, id->valuestring);
        if (b.len < ID_TEXT_MAX) {
            memcpy(out, b.data, b.len);
            out[b.len] = '\0';
            jbuf_free(&b);
            return 0;
        }
        jbuf_free(&b);
    }
    return -1;
}

/* An integer in [lo, hi] or -1. */
static int int_field(const cJSON *v, double lo, double hi, int64_t *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        return -1;
    }
    *out = (int64_t)v->valuedouble;
    return 0;
}

/* pairs: absent = all; else a non-empty array of pair strings. */
static int parse_pairs(struct ws_session *s, const cJSON *arr, const char *id, struct ws_sub *sub)
{
    size_t n = 0;
    const cJSON *it;

    if (!arr || cJSON_IsNull(arr)) {
        return 0;
    }
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1 ||
        cJSON_GetArraySize(arr) > WS_SESSION_MAX_LIST) {
        reply_error(s, id, "bad_request",
                    "pairs must be an array of 1 to %d pairs (leave it out for every pair)",
                    WS_SESSION_MAX_LIST);
        return -1;
    }
    sub->pairs_alloc = (size_t)cJSON_GetArraySize(arr);
    sub->pairs = xcalloc(sub->pairs_alloc, sizeof *sub->pairs);
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) ||
            ticker_pair_canonical(it->valuestring, sub->pairs[n], sizeof sub->pairs[n]) < 0) {
            reply_error(s, id, "bad_pair",
                        "pair %.64s%s%s: use BASE_QUOTE, BASE/QUOTE or BASE-QUOTE (letters and "
                        "digits, 1 to 15 each)",
                        cJSON_IsString(it) ? "'" : "", cJSON_IsString(it) ? it->valuestring : "",
                        cJSON_IsString(it) ? "'" : "(not a string)");
            return -1;
        }
        n++;
    }
    qsort(sub->pairs, n, sizeof *sub->pairs, pair_cmp);
    sub->n_pairs = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sub->n_pairs || strcmp(sub->pairs[sub->n_pairs - 1], sub->pairs[i]) != 0) {
            memmove(sub->pairs[sub->n_pairs++], sub->pairs[i], sizeof sub->pairs[i]);
        }
    }
    return 0;
}

/* exchanges: absent = all; else a non-empty array of exchange names. */
static int parse_exchanges(struct ws_session *s, const cJSON *arr, const char *id,
                           struct ws_sub *sub)
{
    const cJSON *it;

    if (!arr || cJSON_IsNull(arr)) {
        return 0;
    }
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1 ||
        cJSON_GetArraySize(arr) > WS_SESSION_MAX_LIST) {
        reply_error(s, id, "bad_request",
                    "exchanges must be an array of 1 to %d names (leave it out for every "
                    "exchange)",
                    WS_SESSION_MAX_LIST);
        return -1;
    }
    sub->exchanges_alloc = (size_t)cJSON_GetArraySize(arr);
    sub->exchanges = xcalloc(sub->exchanges_alloc, sizeof *sub->exchanges);
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || !ticker_exchange_valid(it->valuestring)) {
            reply_error(s, id, "bad_exchange",
                        "exchange %.64s%s%s: names are 1 to 31 of a-z, 0-9 and _",
                        cJSON_IsString(it) ? "'" : "", cJSON_IsString(it) ? it->valuestring : "",
                        cJSON_IsString(it) ? "'" : "(not a string)");
            return -1;
        }
        bool dup = false;
        for (size_t i = 0; i < sub->n_exchanges && !dup; i++) {
            dup = strcmp(sub->exchanges[i], it->valuestring) == 0;
        }
        if (!dup) {
            snprintf(sub->exchanges[sub->n_exchanges++], TICKER_EXCHANGE_MAX, "%s",
                     it->valuestring);
        }
    }
    return 0;
}

/* ---- Snapshots ---------------------------------------------------------- */

/* A key as collected from the store, before the job packs it. */
struct snap_full {
    char exchange[TICKER_EXCHANGE_MAX];
    char pair[TICKER_PAIR_MAX];
};

struct snap_collect {
    const struct ws_sub *sub;
    struct snap_full *keys;
    size_t n, cap;
};

static int snap_one(const struct ticker *t, void *arg)
{
    struct snap_collect *c = arg;
    if (!sub_has_pair(c->sub, t->pair)) {
        return 0;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->keys = xrealloc(c->keys, c->cap * sizeof *c->keys);
    }
    snprintf(c->keys[c->n].exchange, TICKER_EXCHANGE_MAX, "%s", t->exchange);
    snprintf(c->keys[c->n].pair, TICKER_PAIR_MAX, "%s", t->pair);
    c->n++;
    return 0;
}

static int snap_full_cmp(const void *a, const void *b)
{
    const struct snap_full *x = a, *y = b;
    int c = strcmp(x->pair, y->pair);
    return c ? c : strcmp(x->exchange, y->exchange);
}

/* Appends name to the pool; returns its offset. */
static uint32_t pool_add(struct jbuf *pool, const char *name)
{
    uint32_t at = (uint32_t)pool->len;
    jbuf_add(pool, name, strlen(name) + 1);
    return at;
}

/* Packs sorted keys into job: each pair once (they are grouped), each
 * exchange once (there are few: a linear search over those seen). */
static void snap_pack(struct snap_job *job, const struct snap_full *keys, size_t n)
{
    struct jbuf pool;
    uint32_t *exchanges = NULL;
    size_t n_exchanges = 0;

    jbuf_init(&pool);
    job->keys = n ? xmalloc(n * sizeof *job->keys) : NULL;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(keys[i].pair, keys[i - 1].pair) != 0) {
            job->keys[i].pair = pool_add(&pool, keys[i].pair);
        } else {
            job->keys[i].pair = job->keys[i - 1].pair;
        }
        size_t e = 0;
        while (e < n_exchanges && strcmp(pool.data + exchanges[e], keys[i].exchange) != 0) {
            e++;
        }
        if (e == n_exchanges) {
            exchanges = xrealloc(exchanges, (n_exchanges + 1) * sizeof *exchanges);
            exchanges[n_exchanges++] = pool_add(&pool, keys[i].exchange);
        }
        job->keys[i].exchange = exchanges[e];
    }
    free(exchanges);
    job->names = pool.len ? xrealloc(pool.data, pool.len) : NULL;
    if (!job->names) {
        jbuf_free(&pool);
    }
    job->n_keys = n;
    job->held = held(sizeof *job) + held(pool.len) + held(n * sizeof *job->keys);
}

/* Queues the snapshot job of a new subscription: the keys it covers now. */
static void queue_snapshot(struct ws_session *s, const struct ws_sub *sub, const char *id)
{
    struct snap_collect c = {.sub = sub};
    struct out_item *item = xmalloc(sizeof *item);
    struct snap_job *job = xcalloc(1, sizeof *job);

    if (sub->exchanges) {
        for (size_t i = 0; i < sub->n_exchanges; i++) {
            store_scan(s->ctx->store, sub->exchanges[i], snap_one, &c);
        }
    } else {
        store_scan(s->ctx->store, NULL, snap_one, &c);
    }
    if (c.n > 1) {
        qsort(c.keys, c.n, sizeof *c.keys, snap_full_cmp);
    }
    snap_pack(job, c.keys, c.n);
    free(c.keys);
    job->sub = sub->id;
    snprintf(job->id, sizeof job->id, "%s", id);
    item->job = job;
    item->len = 0;
    out_push(s, item);
}

/* Renders the job's next chunk into out; returns true if it was its last. */
static bool snapshot_chunk(struct ws_session *s, struct snap_job *job, int64_t wall_ms,
                           struct jbuf *out)
{
    size_t in_chunk = 0;
    struct ticker t;

    jbuf_addf(out, "{\"type\":\"snapshot\",\"id\":%s,\"sub\":%u,\"rates\":[", job->id, job->sub);
    while (job->cursor < job->n_keys && in_chunk < s->chunk) {
        const struct snap_key *k = &job->keys[job->cursor++];
        if (store_get(s->ctx->store, job->names + k->exchange, job->names + k->pair, &t) != 0) {
            continue; /* removed since the subscribe */
        }
        if (in_chunk++) {
            jbuf_adds(out, ",");
        }
        ticker_json(out, &t, wall_ms, rates_stale_after(s->ctx->cfg, t.exchange));
    }
    bool last = job->cursor >= job->n_keys;
    jbuf_addf(out, "],\"last\":%s}", last ? "true" : "false");
    return last;
}

/* ---- Requests ----------------------------------------------------------- */

static void op_subscribe(struct ws_session *s, const cJSON *req, const char *id)
{
    struct ws_sub sub = {0};
    int64_t throttle = 0;
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(req, "throttle_ms");

    if (s->n_subs >= s->max_subs) {
        reply_error(s, id, "too_many_subscriptions",
                    "at most %zu subscriptions per connection (ws.max_subs); unsubscribe first",
                    s->max_subs);
        return;
    }
    if (th && !cJSON_IsNull(th) && int_field(th, 0, WS_SESSION_MAX_THROTTLE_MS, &throttle) < 0) {
        reply_error(s, id, "bad_param", "throttle_ms must be an integer from 0 to %d",
                    WS_SESSION_MAX_THROTTLE_MS);
        return;
    }
    if (parse_pairs(s, cJSON_GetObjectItemCaseSensitive(req, "pairs"), id, &sub) < 0 ||
        parse_exchanges(s, cJSON_GetObjectItemCaseSensitive(req, "exchanges"), id, &sub) < 0) {
        sub_free(&sub);
        return;
    }
    sub.id = ++s->next_sub_id;
    sub.throttle_ms = (uint32_t)throttle;
    s->subs = xrealloc(s->subs, (s->n_subs + 1) * sizeof *s->subs);
    s->subs[s->n_subs++] = sub;
    reply_ack(s, id, sub.id);
    queue_snapshot(s, &s->subs[s->n_subs - 1], id);
    sub_watch(s, &s->subs[s->n_subs - 1], true);
}

/* Drops the snapshot jobs of a subscription that is gone. */
static void drop_snapshots(struct ws_session *s, uint32_t sub)
{
    struct out_item **pp = &s->out_head, *prev = NULL;

    while (*pp) {
        struct out_item *item = *pp;
        if (item->job && item->job->sub == sub) {
            *pp = item->next;
            s->out_held -= item_held(item);
            out_item_free(item);
            continue;
        }
        prev = item;
        pp = &item->next;
    }
    s->out_tail = prev;
}

static void op_unsubscribe(struct ws_session *s, const cJSON *req, const char *id)
{
    int64_t want;

    if (int_field(cJSON_GetObjectItemCaseSensitive(req, "sub"), 1, 4294967295.0, &want) < 0) {
        reply_error(s, id, "bad_param", "sub must be the subscription id an ack gave");
        return;
    }
    for (size_t i = 0; i < s->n_subs; i++) {
        if (s->subs[i].id == (uint32_t)want) {
            sub_watch(s, &s->subs[i], false);
            sub_free(&s->subs[i]);
            memmove(&s->subs[i], &s->subs[i + 1], (s->n_subs - i - 1) * sizeof *s->subs);
            s->n_subs--;
            drop_snapshots(s, (uint32_t)want);
            /* Dirty keys no subscription wants are dropped when they
             * come due (ws_session_next checks again). */
            reply_ack(s, id, (uint32_t)want);
            return;
        }
    }
    reply_error(s, id, "unknown_subscription", "no subscription %lld on this connection",
                (long long)want);
}

void ws_session_receive(struct ws_session *s, const char *msg, size_t len)
{
    char id[ID_TEXT_MAX];
    cJSON *req = cJSON_ParseWithLength(msg, len);
    const cJSON *op;

    if (!req) {
        reply_error(s, "null", "bad_json", "the message is not valid JSON");
        return;
    }
    if (!cJSON_IsObject(req)) {
        reply_error(s, "null", "bad_request", "a message must be a JSON object with an \"op\"");
        goto done;
    }
    if (id_text(cJSON_GetObjectItemCaseSensitive(req, "id"), id) < 0) {
        reply_error(s, "null", "bad_request",
                    "id must be a number or a string (at most 100 bytes)");
        goto done;
    }
    op = cJSON_GetObjectItemCaseSensitive(req, "op");
    if (!cJSON_IsString(op)) {
        reply_error(s, id, "bad_request",
                    "\"op\" must be one of \"subscribe\", \"unsubscribe\", \"ping\"");
    } else if (strcmp(op->valuestring, "subscribe") == 0) {
        op_subscribe(s, req, id);
    } else if (strcmp(op->valuestring, "unsubscribe") == 0) {
        op_unsubscribe(s, req, id);
    } else if (strcmp(op->valuestring, "ping") == 0) {
        struct jbuf b;
        jbuf_init(&b);
        jbuf_addf(&b, "{\"type\":\"pong\",\"id\":%s}", id);
        out_text(s, &b);
    } else {
        reply_error(s, id, "unknown_op",
                    "unknown op '%.32s': use \"subscribe\", \"unsubscribe\" or \"ping\"",
                    op->valuestring);
    }
done:
    cJSON_Delete(req);
}

void ws_session_receive_binary(struct ws_session *s)
{
    reply_error(s, "null", "bad_request", "binary messages are not accepted: send JSON text");
}

/* ---- Events ------------------------------------------------------------- */

int ws_session_publish(struct ws_session *s, const struct ticker *t, uint64_t now)
{
    const struct ws_sub *sub = best_sub(s, t->exchange, t->pair);
    struct ws_key *k;

    if (!sub) {
        return 0;
    }
    k = (struct ws_key *)ws_keys_find(&s->keys, t->exchange, t->pair);
    if (!k) {
        k = xcalloc(1, sizeof *k);
        ws_keys_fill(&k->node, t->exchange, t->pair);
        k->heap_index = NO_HEAP;
        ws_keys_insert(&s->keys, &k->node);
    }
    /* Due when the window of the best subscription since the last send
     * ends; a smaller throttle than the one it was sent under counts. */
    uint64_t due = k->sent ? k->last_sent + sub->throttle_ms : now;
    if (due < now) {
        due = now;
    }
    if (k->heap_index != NO_HEAP) {
        s->stats.conflated++;
        if (due < k->due) {
            k->due = due;
            heap_up(s, k->heap_index);
        }
        return 1;
    }
    k->due = due;
    heap_push(s, k);
    return 1;
}

void ws_session_status(struct ws_session *s, const char *exchange, const char *state,
                       const char *reason)
{
    struct jbuf b;

    if (!covers_exchange(s, exchange)) {
        return;
    }
    jbuf_init(&b);
    jbuf_adds(&b, "{\"type\":\"status\",\"exchange\":");
    jbuf_str(&b, exchange);
    jbuf_adds(&b, ",\"state\":");
    jbuf_str(&b, state ? state : "");
    jbuf_adds(&b, ",\"reason\":");
    jbuf_str(&b, reason ? reason : "");
    jbuf_adds(&b, "}");
    out_text(s, &b);
}

void ws_session_removed(struct ws_session *s, const char *exchange)
{
    struct jbuf b;

    if (!covers_exchange(s, exchange)) {
        return;
    }
    jbuf_init(&b);
    jbuf_adds(&b, "{\"type\":\"removed\",\"exchange\":");
    jbuf_str(&b, exchange);
    jbuf_adds(&b, "}");
    out_text(s, &b);
}

/* ---- Output ------------------------------------------------------------- */

static void key_forget(struct ws_session *s, struct ws_key *k)
{
    heap_remove(s, k);
    ws_keys_unlink(&s->keys, &k->node);
    free(k);
}

/* Forgets keys that are neither dirty nor inside their window. */
static void sweep(struct ws_session *s, uint64_t now)
{
    for (size_t i = 0; i < s->keys.nslots; i++) {
        struct ws_keynode *node = s->keys.slot[i];
        while (node) {
            struct ws_keynode *next = node->next;
            struct ws_key *k = (struct ws_key *)node;
            if (k->heap_index == NO_HEAP && (!k->sent || k->last_sent + k->window_ms <= now)) {
                key_forget(s, k);
            }
            node = next;
        }
    }
    s->last_sweep = now;
}

/* Renders the first due key that is still wanted and still stored. */
static int next_rate(struct ws_session *s, uint64_t now, int64_t wall_ms, struct jbuf *out)
{
    struct ticker t;

    while (s->heap_n && s->heap[0]->due <= now) {
        struct ws_key *k = s->heap[0];
        const struct ws_sub *sub = best_sub(s, k->node.exchange, k->node.pair);
        heap_remove(s, k);
        if (!sub || store_get(s->ctx->store, k->node.exchange, k->node.pair, &t) != 0) {
            key_forget(s, k);
            continue;
        }
        jbuf_adds(out, "{\"type\":\"rate\",\"sub\":");
        jbuf_uint(out, sub->id);
        jbuf_adds(out, ",");
        if (s->render) {
            /* The ticker's fields, rendered once per millisecond and shared. */
            size_t n;
            const char *body = ws_render_ticker(s->render, &t, wall_ms,
                                                rates_stale_after(s->ctx->cfg, t.exchange), &n);
            jbuf_add(out, body, n);
        } else {
            size_t at = out->len;
            ticker_json(out, &t, wall_ms, rates_stale_after(s->ctx->cfg, t.exchange));
            /* Splice: drop the ticker object's own opening brace. */
            memmove(out->data + at, out->data + at + 1, out->len - at - 1);
            out->len--;
        }
        s->stats.rates_out++;
        if (sub->throttle_ms == 0) {
            key_forget(s, k);
        } else {
            k->sent = true;
            k->last_sent = now;
            k->window_ms = sub->throttle_ms;
        }
        return 1;
    }
    return 0;
}

int ws_session_next(struct ws_session *s, uint64_t now, int64_t wall_ms, struct jbuf *out)
{
    if (now >= s->last_sweep + SWEEP_EVERY_MS) {
        sweep(s, now);
    }
    if (s->out_head) {
        struct out_item *item = s->out_head;
        if (!item->job) {
            jbuf_add(out, item->text, item->len);
            out_item_free(out_pop(s));
        } else if (snapshot_chunk(s, item->job, wall_ms, out)) {
            out_item_free(out_pop(s));
        }
        s->stats.messages_out++;
        return 1;
    }
    if (next_rate(s, now, wall_ms, out)) {
        s->stats.messages_out++;
        return 1;
    }
    return 0;
}

uint64_t ws_session_next_due(const struct ws_session *s, uint64_t now)
{
    if (s->out_head) {
        return now;
    }
    return s->heap_n ? s->heap[0]->due : UINT64_MAX;
}

size_t ws_session_bytes(const struct ws_session *s)
{
    size_t n = held(sizeof *s) + s->out_held + held(s->n_subs * sizeof *s->subs) +
               s->keys.n * held(sizeof(struct ws_key)) +
               held(s->keys.nslots * sizeof *s->keys.slot) + held(s->heap_cap * sizeof *s->heap);

    for (size_t i = 0; i < s->n_subs; i++) {
        n += held(s->subs[i].pairs_alloc * sizeof *s->subs[i].pairs) +
             held(s->subs[i].exchanges_alloc * sizeof *s->subs[i].exchanges);
    }
    return n;
}

void ws_session_set_watch(struct ws_session *s, ws_session_watch_fn *fn, void *arg)
{
    s->watch = fn;
    s->watch_arg = arg;
}

void ws_session_set_render(struct ws_session *s, struct ws_render *render)
{
    s->render = render;
}

size_t ws_session_subs(const struct ws_session *s)
{
    return s->n_subs;
}

void ws_session_stats(const struct ws_session *s, struct ws_session_stats *out)
{
    *out = s->stats;
}

/* ---- Life --------------------------------------------------------------- */

struct ws_session *ws_session_new(const struct api_ctx *ctx, const struct ws_session_limits *lim)
{
    struct ws_session *s = xcalloc(1, sizeof *s);

    s->ctx = ctx;
    s->max_subs = lim && lim->max_subs ? lim->max_subs : DEFAULT_MAX_SUBS;
    s->chunk = lim && lim->snapshot_chunk ? lim->snapshot_chunk : DEFAULT_SNAPSHOT_CHUNK;
    return s;
}

void ws_session_free(struct ws_session *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->n_subs; i++) {
        sub_watch(s, &s->subs[i], false);
        sub_free(&s->subs[i]);
    }
    free(s->subs);
    while (s->out_head) {
        out_item_free(out_pop(s));
    }
    ws_keys_free(&s->keys);
    free(s->heap);
    free(s);
}
