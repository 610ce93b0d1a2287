/*
 * redis_writer: write-through, dirty marks and rewrites, statuses,
 * markets, removals and x.kv (the warm start is redis_warm.c).
 *
 * Backpressure: a batch is sent only while fewer than MAX_PENDING replies
 * are outstanding; otherwise (and while the connection is down) its
 * exchange is marked dirty and the batch counted as dropped. The flush
 * tick rewrites a dirty exchange whole from the store once Redis keeps up
 * again (one HSET of every pair, as the latest values stand), so memory is
 * bounded by the exchanges, not by how long Redis was away. After every
 * reconnect every exchange, status, market list and kv is dirty: Redis may
 * have lost anything (a restart without persistence).
 */
#include "redis_writer_int.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "board_json.h"
#include "config/config.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "kv.h"
#include "store.h"
#include "ticker_json.h"

#define MAX_PENDING 2000
#define FLUSH_MS 100
#define STATUS_MS 1000
#define ORPHAN_MS 5000
#define EXPIRE_MS 1000
#define GAP_MS 1

/* One short command: cmd key [arg]. */
static void command(struct redis_writer *w, const char *cmd, const char *key, const char *arg)
{
    redis_cmd_adds(&w->cmd, cmd);
    redis_cmd_adds(&w->cmd, key);
    if (arg) {
        redis_cmd_adds(&w->cmd, arg);
    }
    redis_conn_send(w->conn, &w->cmd, NULL, NULL);
}

/* ---- exchanges ---------------------------------------------------------------- */

struct rw_exchange *rw_exchange(struct redis_writer *w, const char *name)
{
    for (size_t i = 0; i < w->n_ex; i++) {
        if (strcmp(w->ex[i].name, name) == 0) {
            return &w->ex[i];
        }
    }
    if (w->n_ex == w->cap_ex) {
        w->cap_ex = w->cap_ex ? w->cap_ex * 2 : 16;
        w->ex = xrealloc(w->ex, w->cap_ex * sizeof *w->ex);
    }
    struct rw_exchange *x = &w->ex[w->n_ex++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    const struct config_operator *co = config_operator_find(w->cfg, name);
    int64_t stale = co && co->stale_after_ms > 0 ? co->stale_after_ms : w->cfg->stale_after_ms;
    x->expire_ms = 10 * stale;
    return x;
}

/* ---- the pass's keys ------------------------------------------------------------ */

static void keys_free(struct rw_keys *k)
{
    free(k->t);
    free(k->slot);
    memset(k, 0, sizeof *k);
}

static void keys_clear(struct rw_keys *k)
{
    if (k->n) {
        memset(k->slot, 0, k->slot_cap * sizeof *k->slot);
        k->n = 0;
    }
}

static void keys_grow(struct rw_keys *k)
{
    k->cap = k->cap ? k->cap * 2 : 16;
    k->t = xrealloc(k->t, k->cap * sizeof *k->t);
    free(k->slot);
    k->slot_cap = k->cap * 2;
    k->slot = xcalloc(k->slot_cap, sizeof *k->slot);
    for (size_t i = 0; i < k->n; i++) {
        const char *pair = k->t[i].pair;
        size_t s = hash_bytes(HASH_FNV_OFFSET, pair, strlen(pair)) & (k->slot_cap - 1);
        while (k->slot[s]) {
            s = (s + 1) & (k->slot_cap - 1);
        }
        k->slot[s] = (uint32_t)i + 1;
    }
}

/* A later ticker of a pair already noted replaces it in its place. */
static void keys_add(struct rw_keys *k, const struct ticker *t)
{
    if (k->n == k->cap) {
        keys_grow(k);
    }
    size_t s = hash_bytes(HASH_FNV_OFFSET, t->pair, strlen(t->pair)) & (k->slot_cap - 1);
    for (; k->slot[s]; s = (s + 1) & (k->slot_cap - 1)) {
        struct ticker *had = &k->t[k->slot[s] - 1];
        if (strcmp(had->pair, t->pair) == 0) {
            *had = *t;
            return;
        }
    }
    k->t[k->n] = *t;
    k->slot[s] = (uint32_t)++k->n;
}

static void forget(struct redis_writer *w, struct rw_exchange *x)
{
    free(x->markets);
    keys_free(&x->keys);
    *x = w->ex[--w->n_ex];
}

static bool keeping_up(const struct redis_writer *w)
{
    return redis_conn_up(w->conn) && redis_conn_pending(w->conn) < MAX_PENDING;
}

/* Whether this node writes the exchange now (its lease, with scale-out);
 * if so, what is queued next is fenced by the lease's deadline. */
static bool ours(struct redis_writer *w, const char *exchange)
{
    uint64_t deadline = 0;
    if (w->hooks.may_write && !w->hooks.may_write(exchange, &deadline, w->hooks.arg)) {
        return false;
    }
    redis_conn_fence(w->conn, deadline);
    return true;
}

/* The same question with nothing to queue yet. */
static bool may_write(struct redis_writer *w, const char *exchange)
{
    uint64_t deadline = 0;
    return !w->hooks.may_write || w->hooks.may_write(exchange, &deadline, w->hooks.arg);
}

/* ---- tickers -------------------------------------------------------------------- */

/* One ticker's JSON into the event, and the same bytes as HSET arguments. */
static void add_ticker(struct redis_writer *w, const struct ticker *t, struct jbuf *event)
{
    if (event->data[event->len - 1] != '[') {
        jbuf_add(event, ",", 1);
    }
    size_t before = event->len;
    ticker_json(event, t, t->received, w->ex_stale_ms);
    redis_cmd_adds(&w->cmd, t->pair);
    redis_cmd_add(&w->cmd, event->data + before, event->len - before);
}

static void key_of(char *out, size_t cap, const char *prefix, const char *exchange)
{
    snprintf(out, cap, "%s%s", prefix, exchange);
}

/* An HSET of tickers answered: counted once Redis has them (data: how many). */
static void on_tickers_written(struct redis_conn *c, struct redisReply *reply, void *data)
{
    struct redis_writer *w = redis_conn_user(c);
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        w->health.written++;
        w->health.fields += (uintptr_t)data;
    }
}

/* After an HSET: the rx:u event; SADD once per connection; PEXPIRE then
 * and at most once per EXPIRE_MS after (the TTL is ten stale periods, so
 * refreshing it every batch would only cost Redis a command per frame;
 * half the TTL if that is shorter). */
static void after_tickers(struct redis_writer *w, struct rw_exchange *x, const char *key,
                          struct jbuf *event)
{
    uint64_t now = loop_now_ms(w->loop);
    uint64_t every =
        (uint64_t)x->expire_ms / 2 < EXPIRE_MS ? (uint64_t)x->expire_ms / 2 : EXPIRE_MS;
    if (!x->in_set || now - x->expired_at >= every) {
        char ms[32];
        snprintf(ms, sizeof ms, "%lld", (long long)x->expire_ms);
        command(w, "PEXPIRE", key, ms);
        x->expired_at = now;
    }
    if (!x->in_set) {
        command(w, "SADD", "rx:exchanges", x->name);
        x->in_set = true;
    }
    jbuf_adds(event, "]}");
    command(w, "PUBLISH", "rx:u", event->data);
}

static void event_start(struct redis_writer *w, struct jbuf *event, const char *exchange)
{
    jbuf_reset(event);
    jbuf_adds(event, "{\"type\":\"ticker\",\"exchange\":");
    jbuf_str(event, exchange);
    jbuf_adds(event, ",\"node_id\":");
    jbuf_str(event, w->cfg->node_id);
    jbuf_adds(event, ",\"tickers\":[");
}

struct rewrite {
    struct redis_writer *w;
    struct jbuf *event;
    size_t n;
};

static int rewrite_one(const struct ticker *t, void *arg)
{
    struct rewrite *r = arg;
    add_ticker(r->w, t, r->event);
    r->n++;
    return 0;
}

/* The exchange's every stored ticker, as they stand, in one HSET. */
static void rewrite(struct redis_writer *w, struct rw_exchange *x)
{
    char key[64];
    struct jbuf event;
    struct rewrite r = {.w = w, .event = &event};

    x->dirty = false;
    if (!ours(w, x->name)) {
        return;
    }
    jbuf_init(&event);
    key_of(key, sizeof key, "rx:t:", x->name);
    w->ex_stale_ms = x->expire_ms / 10;
    event_start(w, &event, x->name);
    redis_cmd_adds(&w->cmd, "HSET");
    redis_cmd_adds(&w->cmd, key);
    store_scan(w->store, x->name, rewrite_one, &r);
    if (r.n) {
        redis_conn_send(w->conn, &w->cmd, on_tickers_written, (void *)(uintptr_t)r.n);
        after_tickers(w, x, key, &event);
    } else {
        redis_cmd_reset(&w->cmd);
    }
    jbuf_free(&event);
}

void redis_writer_batch(struct redis_writer *w, const struct ticker *t, const bool *changed,
                        size_t n)
{
    if (!w || n == 0 || !may_write(w, t[0].exchange)) {
        return;
    }
    struct rw_exchange *x = rw_exchange(w, t[0].exchange);
    if (!w->loaded || !keeping_up(w)) {
        x->dirty = true;
        w->health.dropped++;
        return;
    }
    if (x->dirty) {
        return; /* the flush tick rewrites it whole from the store, this batch too */
    }
    for (size_t i = 0; i < n; i++) {
        keys_add(&x->keys, &t[i]);
    }
    w->noted = true;
}

/* One exchange's tickers stored this pass: one HSET, one PUBLISH. */
static void write_keys(struct redis_writer *w, struct rw_exchange *x)
{
    struct rw_keys *k = &x->keys;
    char key[64];

    if (x->dirty || !ours(w, x->name)) {
        return;
    }
    if (!keeping_up(w)) {
        x->dirty = true;
        w->health.dropped++;
        return;
    }
    key_of(key, sizeof key, "rx:t:", x->name);
    w->ex_stale_ms = x->expire_ms / 10;
    event_start(w, &w->event, x->name);
    redis_cmd_adds(&w->cmd, "HSET");
    redis_cmd_adds(&w->cmd, key);
    for (size_t i = 0; i < k->n; i++) {
        add_ticker(w, &k->t[i], &w->event);
    }
    redis_conn_send(w->conn, &w->cmd, on_tickers_written, (void *)(uintptr_t)k->n);
    after_tickers(w, x, key, &w->event);
}

static void write_noted(struct redis_writer *w)
{
    for (size_t i = 0; i < w->n_ex; i++) {
        struct rw_exchange *x = &w->ex[i];
        if (x->keys.n) {
            write_keys(w, x);
            keys_clear(&x->keys);
        }
    }
    w->noted = false;
    w->written_at = loop_now_ms(w->loop);
}

static void on_gap(struct loop_timer *t, void *data)
{
    (void)t;
    struct redis_writer *w = data;
    w->gap_armed = false;
    if (w->noted) {
        write_noted(w);
    }
}

/* A pass in the millisecond of the last write leaves its pairs noted for
 * the gap timer: under a fast feed the passes come every few microseconds,
 * and a pipeline each (a socket write, a wakeup of redis-server, replies to
 * read) would cost the loop more than the tickers themselves; a set of
 * pairs grows no further however long it waits. A quiet feed is written at
 * once. */
void redis_writer_flush(struct redis_writer *w)
{
    if (!w || !w->noted) {
        return;
    }
    if (loop_now_ms(w->loop) != w->written_at) {
        write_noted(w);
    } else if (!w->gap_armed) {
        loop_timer_start(w->gap, GAP_MS, 0);
        w->gap_armed = true;
    }
}

/* ---- statuses ------------------------------------------------------------------- */

/* What rx:s holds for an exchange: the status as this node sees it, with
 * the counts its store keeps, for api nodes to show as they are. */
static void status_json(struct redis_writer *w, const struct board_status *st, struct jbuf *b)
{
    struct store_exchange_stats stats;
    if (store_exchange_stats(w->store, st->name, &stats) != 0) {
        memset(&stats, 0, sizeof stats);
    }
    board_status_json(b, st, stats.tickers, stats.rejects, w->cfg->node_id);
}

/* Every STATUS_MS: the statuses that changed since they were written. */
static void write_statuses(struct redis_writer *w)
{
    size_t n;
    struct board_status *st = board_statuses(w->board, &n);
    struct jbuf b;

    jbuf_init(&b);
    for (size_t i = 0; i < n && keeping_up(w); i++) {
        if (!ours(w, st[i].name)) {
            continue;
        }
        struct rw_exchange *x = rw_exchange(w, st[i].name);
        jbuf_reset(&b);
        status_json(w, &st[i], &b);
        if (x->status_json && strcmp(x->status_json, b.data) == 0) {
            continue;
        }
        free(x->status_json);
        x->status_json = xstrdup(b.data);
        redis_cmd_adds(&w->cmd, "HSET");
        redis_cmd_adds(&w->cmd, "rx:s");
        redis_cmd_adds(&w->cmd, st[i].name);
        redis_cmd_add(&w->cmd, b.data, b.len);
        redis_conn_send(w->conn, &w->cmd, NULL, NULL);
    }
    jbuf_free(&b);
    free(st);
}

void redis_writer_status(struct redis_writer *w, const char *exchange, const char *state,
                         const char *reason)
{
    if (!w || !keeping_up(w) || !ours(w, exchange)) {
        return; /* the status tick writes it once Redis keeps up */
    }
    struct jbuf b;
    jbuf_init(&b);
    jbuf_adds(&b, "{\"type\":\"status\",\"exchange\":");
    jbuf_str(&b, exchange);
    jbuf_adds(&b, ",\"state\":");
    jbuf_str(&b, state);
    jbuf_adds(&b, ",\"reason\":");
    jbuf_str(&b, reason ? reason : "");
    jbuf_adds(&b, ",\"node_id\":");
    jbuf_str(&b, w->cfg->node_id);
    jbuf_adds(&b, "}");
    command(w, "PUBLISH", "rx:u", b.data);
    jbuf_free(&b);
}

/* ---- markets -------------------------------------------------------------------- */

static void write_markets(struct redis_writer *w, struct rw_exchange *x)
{
    char key[64];
    struct jbuf json;

    x->markets_dirty = false;
    if (!ours(w, x->name)) {
        return;
    }
    key_of(key, sizeof key, "rx:m:", x->name);
    command(w, "DEL", key, NULL);
    if (x->n_markets) {
        jbuf_init(&json);
        redis_cmd_adds(&w->cmd, "HSET");
        redis_cmd_adds(&w->cmd, key);
        for (size_t i = 0; i < x->n_markets; i++) {
            const struct board_market *m = &x->markets[i];
            jbuf_reset(&json);
            jbuf_adds(&json, "{\"exchange\":");
            jbuf_str(&json, m->exchange);
            jbuf_adds(&json, ",\"symbol\":");
            jbuf_str(&json, m->symbol);
            jbuf_adds(&json, ",\"pair\":");
            jbuf_str(&json, m->pair);
            jbuf_adds(&json, "}");
            redis_cmd_adds(&w->cmd, m->symbol);
            redis_cmd_add(&w->cmd, json.data, json.len);
        }
        redis_conn_send(w->conn, &w->cmd, NULL, NULL);
        jbuf_free(&json);
    }
    struct jbuf event;
    jbuf_init(&event);
    jbuf_adds(&event, "{\"type\":\"markets\",\"exchange\":");
    jbuf_str(&event, x->name);
    jbuf_adds(&event, ",\"node_id\":");
    jbuf_str(&event, w->cfg->node_id);
    jbuf_adds(&event, "}");
    command(w, "PUBLISH", "rx:u", event.data);
    jbuf_free(&event);
}

void redis_writer_markets(struct redis_writer *w, const char *exchange,
                          const struct board_market *m, size_t n)
{
    if (!w) {
        return;
    }
    struct rw_exchange *x = rw_exchange(w, exchange);
    free(x->markets);
    x->markets = xmalloc((n ? n : 1) * sizeof *m);
    if (n) {
        memcpy(x->markets, m, n * sizeof *m);
    }
    x->n_markets = n;
    x->markets_dirty = true;
    if (w->loaded && keeping_up(w)) {
        write_markets(w, x);
    }
}

/* ---- removals ------------------------------------------------------------------- */

static void write_removal(struct redis_writer *w, const char *exchange)
{
    char key[64];
    struct jbuf b;

    key_of(key, sizeof key, "rx:t:", exchange);
    command(w, "DEL", key, NULL);
    key_of(key, sizeof key, "rx:m:", exchange);
    command(w, "DEL", key, NULL);
    key_of(key, sizeof key, "rx:kv:", exchange);
    command(w, "DEL", key, NULL);
    command(w, "HDEL", "rx:s", exchange);
    command(w, "SREM", "rx:exchanges", exchange);
    jbuf_init(&b);
    jbuf_adds(&b, "{\"type\":\"removed\",\"exchange\":");
    jbuf_str(&b, exchange);
    jbuf_adds(&b, ",\"node_id\":");
    jbuf_str(&b, w->cfg->node_id);
    jbuf_adds(&b, "}");
    command(w, "PUBLISH", "rx:u", b.data);
    jbuf_free(&b);
}

void redis_writer_removed(struct redis_writer *w, const char *exchange)
{
    /* Another node may still scrape it from its own copy of the file. */
    if (!w || !ours(w, exchange)) {
        return;
    }
    for (size_t i = 0; i < w->n_ex; i++) {
        if (strcmp(w->ex[i].name, exchange) == 0) {
            free(w->ex[i].status_json);
            forget(w, &w->ex[i]);
            break;
        }
    }
    if (redis_conn_up(w->conn)) {
        write_removal(w, exchange);
        return;
    }
    /* Written once Redis is back: at most one entry per exchange name. */
    for (size_t i = 0; i < w->n_removed; i++) {
        if (strcmp(w->removed[i], exchange) == 0) {
            return;
        }
    }
    w->removed = xrealloc(w->removed, (w->n_removed + 1) * sizeof *w->removed);
    w->removed[w->n_removed++] = xstrdup(exchange);
}

void redis_writer_owned(struct redis_writer *w, const char *exchange)
{
    if (!w) {
        return;
    }
    struct rw_exchange *x = rw_exchange(w, exchange);
    x->dirty = true;
    x->markets_dirty = x->markets != NULL;
    x->kv_dirty = true;
    x->in_set = false;
    free(x->status_json);
    x->status_json = NULL;
}

/* ---- x.kv, written behind --------------------------------------------------------- */

static void kv_changed(void *arg, const char *exchange, const char *key, const char *value,
                       size_t len, int64_t expires_ms)
{
    struct redis_writer *w = arg;
    char hkey[64], head[32];

    if (!ours(w, exchange)) {
        return;
    }
    if (!w->loaded || !keeping_up(w)) {
        rw_exchange(w, exchange)->kv_dirty = true;
        w->health.dropped++;
        return;
    }
    key_of(hkey, sizeof hkey, "rx:kv:", exchange);
    if (!value) {
        command(w, "HDEL", hkey, key);
        return;
    }
    int n = snprintf(head, sizeof head, "%lld:", (long long)expires_ms);
    redis_cmd_adds(&w->cmd, "HSET");
    redis_cmd_adds(&w->cmd, hkey);
    redis_cmd_adds(&w->cmd, key);
    /* "<expires_ms>:<value>": the value may hold any bytes. */
    jbuf_reset(&w->json);
    jbuf_add(&w->json, head, (size_t)n);
    jbuf_add(&w->json, value, len);
    redis_cmd_add(&w->cmd, w->json.data, w->json.len);
    redis_conn_send(w->conn, &w->cmd, NULL, NULL);
}

static void rewrite_kv(struct redis_writer *w, struct rw_exchange *x)
{
    char hkey[64];
    x->kv_dirty = false;
    if (!ours(w, x->name)) {
        return;
    }
    key_of(hkey, sizeof hkey, "rx:kv:", x->name);
    command(w, "DEL", hkey, NULL);
    kv_each(w->kv, x->name, loop_wall_ms(), kv_changed, w);
}

/* ---- ticks, the connection's life ---------------------------------------------------- */

static void publish_health(struct redis_writer *w)
{
    struct redis_conn_stats cs;
    redis_conn_stats(w->conn, &cs);
    w->health.connected = cs.up;
    w->health.pending = redis_conn_pending(w->conn);
    w->health.reconnects = cs.losses;
    w->health.last_error_at = cs.last_error_at;
    snprintf(w->health.last_error, sizeof w->health.last_error, "%s", cs.last_error);
    board_put_store(w->board, &w->health);
}

static void on_flush(struct loop_timer *t, void *data)
{
    struct redis_writer *w = data;

    for (size_t i = 0; i < w->n_removed && keeping_up(w); i++) {
        write_removal(w, w->removed[i]);
        free(w->removed[i]);
        w->removed[i] = NULL;
    }
    if (keeping_up(w)) {
        free(w->removed);
        w->removed = NULL;
        w->n_removed = 0;
    }
    for (size_t i = 0; i < w->n_ex && w->loaded && keeping_up(w); i++) {
        struct rw_exchange *x = &w->ex[i];
        if (x->dirty) {
            rewrite(w, x);
        }
        if (x->markets_dirty) {
            write_markets(w, x);
        }
        if (x->kv_dirty) {
            rewrite_kv(w, x);
        }
    }
    uint64_t now = loop_now_ms(w->loop);
    if (w->loaded && now - w->status_at >= STATUS_MS) {
        w->status_at = now;
        write_statuses(w);
    }
    publish_health(w);
}

struct orphan_check {
    struct redis_writer *w;
    char name[TICKER_EXCHANGE_MAX];
};

static void on_exists(struct redis_conn *c, redisReply *reply, void *data)
{
    struct orphan_check *o = data;
    struct redis_writer *w = o->w;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 && w->hooks.runs &&
        !w->hooks.runs(o->name, w->hooks.arg)) {
        log_info("redis", "%s: no operator here and its Redis copy expired: dropped", o->name);
        if (w->hooks.expired) {
            w->hooks.expired(o->name, w->hooks.arg);
        }
    }
    free(o);
}

/* Exchanges loaded at start that no operator here scrapes: served until
 * their Redis key expires. */
static void on_orphans(struct loop_timer *t, void *data)
{
    struct redis_writer *w = data;
    char names[256][TICKER_EXCHANGE_MAX];
    size_t n = store_exchange_names(w->store, names, 256);

    for (size_t i = 0; i < n && i < 256 && keeping_up(w); i++) {
        if (w->hooks.runs && w->hooks.runs(names[i], w->hooks.arg)) {
            continue;
        }
        char key[64];
        struct orphan_check *o = xmalloc(sizeof *o);
        o->w = w;
        snprintf(o->name, sizeof o->name, "%s", names[i]);
        key_of(key, sizeof key, "rx:t:", names[i]);
        redis_cmd_adds(&w->cmd, "EXISTS");
        redis_cmd_adds(&w->cmd, key);
        if (redis_conn_send(w->conn, &w->cmd, on_exists, o) < 0) {
            free(o);
        }
    }
}

/* Redis may have lost anything while we were away: rewrite it all. */
static void on_up(struct redis_conn *c, void *data)
{
    struct redis_writer *w = data;

    for (size_t i = 0; i < w->n_ex; i++) {
        struct rw_exchange *x = &w->ex[i];
        bool ours = !w->hooks.runs || w->hooks.runs(x->name, w->hooks.arg);
        x->dirty = ours;
        x->markets_dirty = ours && x->markets != NULL;
        x->kv_dirty = ours;
        x->in_set = false;
        free(x->status_json);
        x->status_json = NULL;
    }
    if (!w->loaded) {
        redis_warm_load(w);
    }
}

static void on_down(struct redis_conn *c, const char *why, void *data)
{
    struct redis_writer *w = data;
    if (!w->loaded) {
        log_warn("redis", "warm start skipped: %s; serving from memory", why);
        redis_warm_done(w);
    }
}

struct redis_writer *redis_writer_new(struct loop *loop, const struct config *cfg,
                                      struct store *store, struct board *board, struct kv *kv,
                                      const struct redis_writer_hooks *hooks)
{
    struct redis_writer *w = xcalloc(1, sizeof *w);
    w->loop = loop;
    w->cfg = cfg;
    w->store = store;
    w->board = board;
    w->kv = kv;
    w->hooks = *hooks;
    jbuf_init(&w->json);
    jbuf_init(&w->event);
    redis_cmd_init(&w->cmd);
    snprintf(w->health.kind, sizeof w->health.kind, "redis");
    struct redis_conn_events ev = {.up = on_up, .down = on_down, .data = w};
    w->conn = redis_conn_for(loop, cfg, "writer", &ev);
    w->flush = loop_timer_new(loop, on_flush, w);
    w->orphans = loop_timer_new(loop, on_orphans, w);
    w->gap = loop_timer_new(loop, on_gap, w);
    kv_set_hook(kv, kv_changed, w);
    board_put_store(board, &w->health);
    return w;
}

void redis_writer_start(struct redis_writer *w)
{
    board_set_loading(w->board, true);
    loop_timer_start(w->flush, FLUSH_MS, FLUSH_MS);
    loop_timer_start(w->orphans, ORPHAN_MS, ORPHAN_MS);
    redis_conn_start(w->conn);
}

void redis_writer_free(struct redis_writer *w)
{
    if (!w) {
        return;
    }
    kv_set_hook(w->kv, NULL, NULL);
    loop_timer_free(w->flush);
    loop_timer_free(w->orphans);
    loop_timer_free(w->gap);
    redis_conn_free(w->conn);
    for (size_t i = 0; i < w->n_ex; i++) {
        free(w->ex[i].markets);
        free(w->ex[i].status_json);
        keys_free(&w->ex[i].keys);
    }
    free(w->ex);
    for (size_t i = 0; i < w->n_removed; i++) {
        free(w->removed[i]);
    }
    free(w->removed);
    redis_cmd_free(&w->cmd);
    jbuf_free(&w->json);
    jbuf_free(&w->event);
    free(w);
}
