/*
 * redis_warm: the warm start. SMEMBERS rx:exchanges, then for each member
 * HGETALL rx:t:{name} (into the store, with the tickers' own times and
 * versions, so old data is honestly stale) and HGETALL rx:kv:{name} (into
 * the kv, expired values left out), all pipelined; when the last reply is
 * in, the engine hears that loading is over and starts the operators. The
 * same two requests bring one exchange up to date when this node takes
 * over its lease (redis_writer_sync). What
 * Redis holds is input like any other: names, tickers and values are
 * validated, and a bad one is skipped and counted, never trusted.
 */
#include "redis_writer_int.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "kv.h"
#include "store.h"
#include "ticker_json.h"

/* Members of rx:exchanges we load at most (the registry's own cap). */
#define WARM_MAX_EXCHANGES 256

/* Requests answered together: the warm start's, or one exchange's sync. */
struct warm_group {
    struct redis_writer *w;
    size_t waiting;
    bool failed; /* a reply never came (the connection went away) */
    void (*done)(struct redis_writer *w, bool ok, void *arg);
    void *arg;
};

struct warm_reply {
    struct warm_group *g;
    char name[TICKER_EXCHANGE_MAX];
};

void redis_warm_done(struct redis_writer *w)
{
    if (w->loaded) {
        return;
    }
    w->loaded = true;
    board_set_loading(w->board, false);
    if (w->hooks.loaded) {
        w->hooks.loaded(w->hooks.arg);
    }
}

static void one_reply_in(struct warm_group *g)
{
    if (--g->waiting == 0) {
        g->done(g->w, !g->failed, g->arg);
        free(g);
    }
}

static bool is_pairs(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0;
}

static void on_tickers(struct redis_conn *c, redisReply *reply, void *data)
{
    struct warm_reply *wr = data;
    struct warm_group *g = wr->g;
    struct redis_writer *w = g->w;
    size_t loaded = 0, bad = 0;

    g->failed |= !reply;
    for (size_t i = 0; is_pairs(reply) && i < reply->elements; i += 2) {
        const redisReply *field = reply->element[i], *value = reply->element[i + 1];
        struct ticker t;
        if (field->type == REDIS_REPLY_STRING && value->type == REDIS_REPLY_STRING &&
            ticker_from_json(value->str, value->len, &t) == 0 &&
            strcmp(t.exchange, wr->name) == 0 && strcmp(t.pair, field->str) == 0 &&
            store_restore(w->store, &t) >= 0) {
            loaded++;
        } else {
            bad++;
        }
    }
    log_info("redis", "%s: %zu tickers loaded from Redis%s", wr->name, loaded,
             bad ? " (some entries were not valid tickers and were skipped)" : "");
    free(wr);
    one_reply_in(g);
}

static void on_kv(struct redis_conn *c, redisReply *reply, void *data)
{
    struct warm_reply *wr = data;
    struct warm_group *g = wr->g;
    struct redis_writer *w = g->w;
    int64_t now = loop_wall_ms();

    g->failed |= !reply;
    for (size_t i = 0; is_pairs(reply) && i < reply->elements; i += 2) {
        const redisReply *field = reply->element[i], *value = reply->element[i + 1];
        const char *colon =
            value->type == REDIS_REPLY_STRING ? memchr(value->str, ':', value->len) : NULL;
        if (field->type != REDIS_REPLY_STRING || !colon) {
            continue;
        }
        char *end;
        long long expires = strtoll(value->str, &end, 10);
        if (end != colon || expires < 0) {
            continue;
        }
        size_t off = (size_t)(colon + 1 - value->str);
        kv_load(w->kv, wr->name, field->str, value->str + off, value->len - off, expires, now);
    }
    free(wr);
    one_reply_in(g);
}

static void ask(struct warm_group *g, const char *prefix, const char *name, redis_reply_fn fn)
{
    struct redis_writer *w = g->w;
    char key[64];
    struct warm_reply *wr = xmalloc(sizeof *wr);
    wr->g = g;
    snprintf(wr->name, sizeof wr->name, "%s", name);
    snprintf(key, sizeof key, "%s%s", prefix, name);
    redis_cmd_adds(&w->cmd, "HGETALL");
    redis_cmd_adds(&w->cmd, key);
    if (redis_conn_send(w->conn, &w->cmd, fn, wr) == 0) {
        g->waiting++;
    } else {
        g->failed = true;
        free(wr);
    }
}

/* A group whose requests are sent between its creation and group_sent. */
static struct warm_group *group_new(struct redis_writer *w,
                                    void (*done)(struct redis_writer *, bool, void *), void *arg)
{
    struct warm_group *g = xcalloc(1, sizeof *g);
    g->w = w;
    g->waiting = 1; /* held until every request is sent */
    g->done = done;
    g->arg = arg;
    return g;
}

static void ask_exchange(struct warm_group *g, const char *name)
{
    ask(g, "rx:t:", name, on_tickers);
    ask(g, "rx:kv:", name, on_kv);
}

static void warm_loaded(struct redis_writer *w, bool ok, void *arg)
{
    redis_warm_done(w);
}

static void on_members(struct redis_conn *c, redisReply *reply, void *data)
{
    struct redis_writer *w = data;

    if (!reply) {
        return; /* lost meanwhile: the down callback ends the warm start */
    }
    struct warm_group *g = group_new(w, warm_loaded, NULL);
    for (size_t i = 0;
         reply->type == REDIS_REPLY_ARRAY && i < reply->elements && i < WARM_MAX_EXCHANGES; i++) {
        const redisReply *m = reply->element[i];
        if (m->type != REDIS_REPLY_STRING || !ticker_exchange_valid(m->str)) {
            continue;
        }
        ask_exchange(g, m->str);
    }
    one_reply_in(g);
}

void redis_warm_load(struct redis_writer *w)
{
    redis_cmd_adds(&w->cmd, "SMEMBERS");
    redis_cmd_adds(&w->cmd, "rx:exchanges");
    if (redis_conn_send(w->conn, &w->cmd, on_members, w) < 0) {
        redis_warm_done(w);
    }
}

struct sync_call {
    void (*done)(bool ok, void *arg);
    void *arg;
};

static void synced(struct redis_writer *w, bool ok, void *arg)
{
    struct sync_call *call = arg;
    call->done(ok, call->arg);
    free(call);
}

void redis_writer_sync(struct redis_writer *w, const char *exchange,
                       void (*done)(bool ok, void *arg), void *arg)
{
    struct sync_call *call = xmalloc(sizeof *call);
    call->done = done;
    call->arg = arg;
    struct warm_group *g = group_new(w, synced, call);
    ask_exchange(g, exchange);
    one_reply_in(g);
}
