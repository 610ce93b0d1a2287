/*
 * redis_reader: a record per exchange known from Redis (its status and
 * markets; its tickers live in the store), a load round per subscription,
 * a poll for statuses and markets not known yet.
 */
#include "redis_reader.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "board.h"
#include "board_json.h"
#include "config/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "redis_conn.h"
#include "store.h"
#include "ticker_json.h"

#define MAX_EXCHANGES 256
#define MAX_MARKETS 20000 /* per exchange */
#define POLL_MS 1000
/* One event's text (a batch of tickers): far beyond any operator's batch. */
#define EVENT_MAX_BYTES (64u << 20)

struct remote {
    char name[TICKER_EXCHANGE_MAX];
    bool has_status;
    struct board_status status;
    struct board_market *markets;
    size_t n_markets;
    bool markets_known; /* rx:m read since it last changed */
    bool seen;          /* a member of rx:exchanges in this load round */
};

struct redis_reader {
    struct loop *loop;
    const struct config *cfg;
    struct store *store;
    struct board *board;
    bool statuses;
    struct redis_reader_hooks hooks;
    struct redis_conn *sub, *cmd;
    struct redis_cmd req;
    struct loop_timer *poll;
    struct remote *ex;
    size_t n_ex;

    /* The load round (one per subscription; retried by the poll when it
     * could not finish). */
    bool need_sync;
    bool syncing;
    uint64_t round;
    size_t waiting;
    bool failed;
    bool synced_once;
    char (*removed)[TICKER_EXCHANGE_MAX]; /* removals seen during the round */
    size_t n_removed;
    bool polling; /* a status poll in flight */

    uint64_t skipped; /* entries or events that were not valid */
};

/* A reply's context: the round it belongs to, and for which exchange. */
struct pending {
    struct redis_reader *r;
    uint64_t round;
    char name[TICKER_EXCHANGE_MAX];
};

/* ---- records and the board --------------------------------------------------------- */

static struct remote *remote_find(struct redis_reader *r, const char *name)
{
    for (size_t i = 0; i < r->n_ex; i++) {
        if (strcmp(r->ex[i].name, name) == 0) {
            return &r->ex[i];
        }
    }
    return NULL;
}

static struct remote *remote_get(struct redis_reader *r, const char *name)
{
    struct remote *x = remote_find(r, name);
    if (x || r->n_ex == MAX_EXCHANGES) {
        return x;
    }
    r->ex = xrealloc(r->ex, (r->n_ex + 1) * sizeof *r->ex);
    x = &r->ex[r->n_ex++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    return x;
}

static bool is_local(const struct redis_reader *r, const char *name)
{
    return r->hooks.local && r->hooks.local(name, r->hooks.arg);
}

static void publish(struct redis_reader *r)
{
    size_t n_st = 0, n_m = 0;
    for (size_t i = 0; i < r->n_ex; i++) {
        n_m += r->ex[i].n_markets;
    }
    struct board_status *st = xcalloc(r->n_ex + 1, sizeof *st);
    struct board_market *m = xcalloc(n_m + 1, sizeof *m);
    n_m = 0;
    for (size_t i = 0; i < r->n_ex; i++) {
        const struct remote *x = &r->ex[i];
        if (x->has_status) {
            st[n_st++] = x->status;
        }
        if (x->n_markets) {
            memcpy(m + n_m, x->markets, x->n_markets * sizeof *m);
            n_m += x->n_markets;
        }
    }
    if (r->statuses) {
        board_put_statuses(r->board, st, n_st);
    }
    board_put_remote_markets(r->board, m, n_m);
    free(st);
    free(m);
}

static void forget(struct redis_reader *r, const char *name)
{
    struct remote *x = remote_find(r, name);
    if (x) {
        free(x->markets);
        *x = r->ex[--r->n_ex];
    }
    if (store_remove_exchange(r->store, name) >= 0 || x) {
        log_info("redis", "%s: removed by its scraping node; dropped here", name);
        if (r->hooks.removed) {
            r->hooks.removed(name, r->hooks.arg);
        }
    }
}

/* ---- tickers ------------------------------------------------------------------------- */

/* Stores what is newer than the store's and tells the hook. */
static void apply_tickers(struct redis_reader *r, struct ticker *t, size_t n)
{
    bool *changed = xcalloc(n + 1, sizeof *changed);
    size_t stored = 0;
    for (size_t i = 0; i < n; i++) {
        changed[i] = store_restore(r->store, &t[i]) == 1;
        stored += changed[i];
    }
    if (stored && r->hooks.tickers) {
        r->hooks.tickers(t, changed, n, r->hooks.arg);
    }
    free(changed);
}

/* ---- events ---------------------------------------------------------------------------- */

static void event_tickers(struct redis_reader *r, const char *exchange, const cJSON *list)
{
    size_t n = (size_t)cJSON_GetArraySize(list), k = 0;
    struct ticker *t = xcalloc(n + 1, sizeof *t);
    const cJSON *item;

    cJSON_ArrayForEach(item, list)
    {
        if (ticker_from_cjson(item, &t[k]) == 0 && strcmp(t[k].exchange, exchange) == 0) {
            k++;
        } else {
            r->skipped++;
        }
    }
    apply_tickers(r, t, k);
    free(t);
}

static void event_status(struct redis_reader *r, const char *exchange, const cJSON *o)
{
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(o, "state");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(o, "reason");
    const char *why = cJSON_IsString(reason) ? reason->valuestring : "";

    if (!cJSON_IsString(state)) {
        r->skipped++;
        return;
    }
    struct remote *x = remote_get(r, exchange);
    if (x && x->has_status) {
        for (int i = 0; i < BOARD_STATE_COUNT; i++) {
            if (strcmp(board_state_name((enum board_state)i), state->valuestring) == 0) {
                x->status.state = (enum board_state)i;
            }
        }
        snprintf(x->status.reason, sizeof x->status.reason, "%s", why);
        publish(r);
    }
    if (r->hooks.status) {
        r->hooks.status(exchange, state->valuestring, why, r->hooks.arg);
    }
}

static void event_removed(struct redis_reader *r, const char *exchange)
{
    if (r->syncing) {
        r->removed = xrealloc(r->removed, (r->n_removed + 1) * sizeof *r->removed);
        snprintf(r->removed[r->n_removed++], TICKER_EXCHANGE_MAX, "%s", exchange);
    }
    forget(r, exchange);
    publish(r);
}

static void on_event(struct redis_reader *r, const char *text, size_t len)
{
    if (len > EVENT_MAX_BYTES) {
        r->skipped++;
        return;
    }
    cJSON *o = cJSON_ParseWithLength(text, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    const cJSON *exchange = cJSON_GetObjectItemCaseSensitive(o, "exchange");
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(o, "node_id");

    if (!cJSON_IsString(type) || !cJSON_IsString(exchange) ||
        !ticker_exchange_valid(exchange->valuestring)) {
        r->skipped++;
    } else if ((cJSON_IsString(node) && strcmp(node->valuestring, r->cfg->node_id) == 0) ||
               is_local(r, exchange->valuestring)) {
        /* Ours already, or scraped here now (a late write of the last
         * holder's must not undo ours). */
    } else if (strcmp(type->valuestring, "ticker") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "tickers");
        if (cJSON_IsArray(list)) {
            event_tickers(r, exchange->valuestring, list);
        } else {
            r->skipped++;
        }
    } else if (strcmp(type->valuestring, "status") == 0) {
        event_status(r, exchange->valuestring, o);
    } else if (strcmp(type->valuestring, "removed") == 0) {
        event_removed(r, exchange->valuestring);
    } else if (strcmp(type->valuestring, "markets") == 0) {
        struct remote *x = remote_get(r, exchange->valuestring);
        if (x) {
            x->markets_known = false; /* read again by the next poll */
        }
    }
    cJSON_Delete(o);
}

/* ---- loading ----------------------------------------------------------------------------- */

static struct pending *pending_new(struct redis_reader *r, const char *name)
{
    struct pending *p = xmalloc(sizeof *p);
    p->r = r;
    p->round = r->round;
    snprintf(p->name, sizeof p->name, "%s", name ? name : "");
    return p;
}

static bool is_pairs(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ARRAY && reply->elements % 2 == 0;
}

static bool removed_meanwhile(const struct redis_reader *r, const char *name)
{
    for (size_t i = 0; i < r->n_removed; i++) {
        if (strcmp(r->removed[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static void finish_round(struct redis_reader *r);

static void one_reply_in(struct redis_reader *r)
{
    if (r->syncing && --r->waiting == 0) {
        finish_round(r);
    }
}

/* A reply of this round (the round is over otherwise: freed, ignored). */
static struct redis_reader *of_round(struct pending *p, const redisReply *reply)
{
    struct redis_reader *r = p->r;
    if (!r->syncing || p->round != r->round) {
        return NULL;
    }
    r->failed |= !reply;
    return r;
}

static void on_hash_tickers(struct redis_conn *c, redisReply *reply, void *data)
{
    struct pending *p = data;
    bool in_round = p->round != 0;
    struct redis_reader *r = in_round ? of_round(p, reply) : p->r;

    if (r && is_pairs(reply) && !removed_meanwhile(r, p->name) && !is_local(r, p->name)) {
        size_t n = reply->elements / 2, k = 0;
        struct ticker *t = xcalloc(n + 1, sizeof *t);
        for (size_t i = 0; i < reply->elements; i += 2) {
            const redisReply *field = reply->element[i], *value = reply->element[i + 1];
            if (field->type == REDIS_REPLY_STRING && value->type == REDIS_REPLY_STRING &&
                ticker_from_json(value->str, value->len, &t[k]) == 0 &&
                strcmp(t[k].exchange, p->name) == 0 && strcmp(t[k].pair, field->str) == 0) {
                k++;
            } else {
                r->skipped++;
            }
        }
        apply_tickers(r, t, k);
        free(t);
    }
    if (r && in_round) {
        one_reply_in(r);
    }
    free(p);
}

/* rx:m:{name} into the record (outside a round too: the poll asks). */
static void read_markets(struct redis_reader *r, struct remote *x, const redisReply *reply)
{
    size_t n = 0;
    free(x->markets);
    x->markets = xcalloc(reply->elements / 2 + 1, sizeof *x->markets);
    for (size_t i = 1; i < reply->elements && n < MAX_MARKETS; i += 2) {
        const redisReply *value = reply->element[i];
        cJSON *o = value->type == REDIS_REPLY_STRING ? cJSON_ParseWithLength(value->str, value->len)
                                                     : NULL;
        const cJSON *symbol = cJSON_GetObjectItemCaseSensitive(o, "symbol");
        const cJSON *pair = cJSON_GetObjectItemCaseSensitive(o, "pair");
        struct board_market *m = &x->markets[n];
        if (cJSON_IsString(symbol) && cJSON_IsString(pair) &&
            strlen(symbol->valuestring) < sizeof m->symbol &&
            strlen(pair->valuestring) < sizeof m->pair) {
            snprintf(m->exchange, sizeof m->exchange, "%s", x->name);
            snprintf(m->symbol, sizeof m->symbol, "%s", symbol->valuestring);
            snprintf(m->pair, sizeof m->pair, "%s", pair->valuestring);
            n++;
        } else {
            r->skipped++;
        }
        cJSON_Delete(o);
    }
    x->n_markets = n;
    x->markets_known = true;
}

static void on_hash_markets(struct redis_conn *c, redisReply *reply, void *data)
{
    struct pending *p = data;
    struct redis_reader *r = p->r;
    bool in_round = p->round != 0;

    if (in_round) {
        r = of_round(p, reply);
    }
    struct remote *x =
        r && is_pairs(reply) && !removed_meanwhile(r, p->name) && !is_local(r, p->name)
            ? remote_get(r, p->name)
            : NULL;
    if (x) {
        read_markets(r, x, reply);
        if (!in_round) {
            publish(r);
        }
    }
    if (r && in_round) {
        one_reply_in(r);
    }
    free(p);
}

/* rx:s into the records' statuses. */
static void read_statuses(struct redis_reader *r, const redisReply *reply)
{
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *field = reply->element[i], *value = reply->element[i + 1];
        struct board_status st;
        if (field->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING ||
            board_status_from_json(value->str, value->len, &st) != 0 ||
            strcmp(st.name, field->str) != 0) {
            r->skipped++;
            continue;
        }
        if (is_local(r, st.name) || removed_meanwhile(r, st.name)) {
            continue;
        }
        struct remote *x = remote_get(r, st.name);
        if (x) {
            x->status = st;
            x->has_status = true;
        }
    }
}

static void on_statuses(struct redis_conn *c, redisReply *reply, void *data)
{
    struct pending *p = data;
    struct redis_reader *r = p->r;
    bool in_round = p->round != 0;

    if (in_round) {
        r = of_round(p, reply);
    } else {
        r->polling = false;
    }
    if (r && is_pairs(reply)) {
        read_statuses(r, reply);
        if (!in_round) {
            publish(r);
        }
    }
    if (r && in_round) {
        one_reply_in(r);
    }
    free(p);
}

static void ask(struct redis_reader *r, const char *prefix, const char *name, redis_reply_fn fn,
                bool in_round)
{
    char key[64];
    struct pending *p = pending_new(r, name);
    if (!in_round) {
        p->round = 0;
    }
    snprintf(key, sizeof key, "%s%s", prefix, name);
    redis_cmd_adds(&r->req, "HGETALL");
    redis_cmd_adds(&r->req, prefix[0] ? key : name);
    if (redis_conn_send(r->cmd, &r->req, fn, p) < 0) {
        free(p);
        if (in_round) {
            r->failed = true;
        }
        return;
    }
    if (in_round) {
        r->waiting++;
    }
}

static void on_members(struct redis_conn *c, redisReply *reply, void *data)
{
    struct pending *p = data;
    struct redis_reader *r = of_round(p, reply);

    free(p);
    if (!r) {
        return;
    }
    for (size_t i = 0;
         reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements && i < MAX_EXCHANGES;
         i++) {
        const redisReply *m = reply->element[i];
        if (m->type != REDIS_REPLY_STRING || !ticker_exchange_valid(m->str)) {
            r->skipped++;
            continue;
        }
        struct remote *x = remote_get(r, m->str);
        if (x) {
            x->seen = true;
        }
        if (!is_local(r, m->str)) {
            ask(r, "rx:t:", m->str, on_hash_tickers, true);
            ask(r, "rx:m:", m->str, on_hash_markets, true);
        }
    }
    if (r->statuses) {
        ask(r, "", "rx:s", on_statuses, true);
    }
    one_reply_in(r);
}

static void start_round(struct redis_reader *r)
{
    if (!redis_conn_up(r->cmd)) {
        return; /* the poll tries again */
    }
    r->round++;
    r->syncing = true;
    r->failed = false;
    r->waiting = 1; /* held until every request is sent */
    r->n_removed = 0;
    for (size_t i = 0; i < r->n_ex; i++) {
        r->ex[i].seen = false;
    }
    struct pending *p = pending_new(r, NULL);
    redis_cmd_adds(&r->req, "SMEMBERS");
    redis_cmd_adds(&r->req, "rx:exchanges");
    if (redis_conn_send(r->cmd, &r->req, on_members, p) < 0) {
        free(p);
        r->syncing = false;
    }
}

static void finish_round(struct redis_reader *r)
{
    r->syncing = false;
    if (r->failed) {
        log_warn("redis", "reader: load interrupted; trying again");
        return; /* need_sync stays set: the poll starts another */
    }
    r->need_sync = false;
    /* What Redis no longer lists was removed while we were away. */
    char gone[MAX_EXCHANGES][TICKER_EXCHANGE_MAX];
    size_t n_gone = 0;
    char names[MAX_EXCHANGES][TICKER_EXCHANGE_MAX];
    size_t n = store_exchange_names(r->store, names, MAX_EXCHANGES);
    for (size_t i = 0; i < n && i < MAX_EXCHANGES; i++) {
        const struct remote *x = remote_find(r, names[i]);
        if ((!x || !x->seen) && !is_local(r, names[i])) {
            memcpy(gone[n_gone++], names[i], TICKER_EXCHANGE_MAX);
        }
    }
    for (size_t i = 0; i < r->n_ex && n_gone < MAX_EXCHANGES; i++) {
        if (!r->ex[i].seen && !is_local(r, r->ex[i].name)) {
            memcpy(gone[n_gone++], r->ex[i].name, TICKER_EXCHANGE_MAX);
        }
    }
    for (size_t i = 0; i < n_gone; i++) {
        forget(r, gone[i]);
    }
    publish(r);
    if (!r->synced_once) {
        r->synced_once = true;
        log_info("redis", "reader: loaded %zu exchange(s) from Redis", r->n_ex);
        if (r->hooks.synced) {
            r->hooks.synced(r->hooks.arg);
        }
    }
    if (r->skipped) {
        log_warn("redis", "reader: %llu entries or events were not valid and were skipped",
                 (unsigned long long)r->skipped);
        r->skipped = 0;
    }
}

/* ---- subscription, poll ---------------------------------------------------------------- */

static void on_message(struct redis_conn *c, redisReply *reply, void *data)
{
    struct redis_reader *r = data;

    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        return;
    }
    if (strcmp(reply->element[0]->str, "subscribe") == 0) {
        /* Subscribed first, then loaded: nothing published meanwhile is missed. */
        r->need_sync = true;
        start_round(r);
    } else if (strcmp(reply->element[0]->str, "message") == 0 &&
               reply->element[2]->type == REDIS_REPLY_STRING) {
        on_event(r, reply->element[2]->str, reply->element[2]->len);
    }
}

static void on_sub_up(struct redis_conn *c, void *data)
{
    struct redis_reader *r = data;
    if (redis_conn_subscribe(c, "rx:u", on_message, r) < 0) {
        log_warn("redis", "reader: cannot subscribe to rx:u");
    }
}

static void on_poll(struct loop_timer *t, void *data)
{
    struct redis_reader *r = data;

    if (!redis_conn_up(r->cmd)) {
        return;
    }
    if (r->need_sync && !r->syncing && redis_conn_up(r->sub)) {
        start_round(r);
        return;
    }
    if (r->syncing) {
        return;
    }
    if (r->statuses && !r->polling) {
        r->polling = true;
        ask(r, "", "rx:s", on_statuses, false);
    }
    for (size_t i = 0; i < r->n_ex; i++) {
        if (!r->ex[i].markets_known && !is_local(r, r->ex[i].name)) {
            r->ex[i].markets_known = true; /* asked; a failure asks again on the next change */
            ask(r, "rx:m:", r->ex[i].name, on_hash_markets, false);
        }
    }
}

void redis_reader_refresh(struct redis_reader *r, const char *exchange)
{
    if (!r || !ticker_exchange_valid(exchange)) {
        return;
    }
    ask(r, "rx:t:", exchange, on_hash_tickers, false);
    ask(r, "rx:m:", exchange, on_hash_markets, false);
}

struct redis_reader *redis_reader_new(struct loop *loop, const struct config *cfg,
                                      struct store *store, struct board *board, bool statuses,
                                      const struct redis_reader_hooks *hooks)
{
    struct redis_reader *r = xcalloc(1, sizeof *r);
    r->loop = loop;
    r->cfg = cfg;
    r->store = store;
    r->board = board;
    r->statuses = statuses;
    r->hooks = *hooks;
    redis_cmd_init(&r->req);
    r->cmd = redis_conn_for(loop, cfg, "reader", &(struct redis_conn_events){.data = r});
    r->sub = redis_conn_for(loop, cfg, "subscriber",
                            &(struct redis_conn_events){.up = on_sub_up, .data = r});
    r->poll = loop_timer_new(loop, on_poll, r);
    return r;
}

void redis_reader_start(struct redis_reader *r)
{
    redis_conn_start(r->cmd);
    redis_conn_start(r->sub);
    loop_timer_start(r->poll, POLL_MS, POLL_MS);
}

void redis_reader_free(struct redis_reader *r)
{
    if (!r) {
        return;
    }
    loop_timer_free(r->poll);
    redis_conn_free(r->sub);
    redis_conn_free(r->cmd);
    redis_cmd_free(&r->req);
    for (size_t i = 0; i < r->n_ex; i++) {
        free(r->ex[i].markets);
    }
    free(r->ex);
    free(r->removed);
    free(r);
}
