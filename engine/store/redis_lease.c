/*
 * redis_lease: one record per exchange this node could scrape, driven by a
 * tick; replies find their record by name and generation, so a reply to a
 * request made before the record changed state is ignored.
 */
#include "redis_lease.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "board.h"
#include "redis_conn.h"

#define MAX_LEASES 256
#define RELEASE_WAIT_MS 1000

static const char RENEW_SCRIPT[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
static const char RELEASE_SCRIPT[] = "if redis.call('get', KEYS[1]) == ARGV[1] then "
                                     "return redis.call('del', KEYS[1]) else return 0 end";

enum lease_state {
    FREE,    /* not ours: standby */
    ASKING,  /* SET NX (or the holder's GET) in flight */
    SYNCING, /* ours; the exchange is being read back before it runs */
    HELD,    /* ours; the operator runs */
    LOCAL,   /* nobody's: Redis unreachable for a ttl, scraped here, written nowhere */
};

struct lease {
    char name[TICKER_EXCHANGE_MAX];
    enum lease_state state;
    uint64_t gen;        /* bumped on every state change */
    uint64_t deadline;   /* SYNCING/HELD: give up (and stop writing) at */
    uint64_t renewed_at; /* when the last successful take or renewal was sent */
    bool renewing;
    char holder[BOARD_NODE_ID_MAX]; /* FREE: who holds it, "" if not known */
    bool present;                   /* named by hooks.names this tick */
    bool active;                    /* the registry runs it (told by hooks.acquired) */
    bool diverged;                  /* scraped LOCAL: its versions may run ahead of Redis' */
};

struct redis_lease {
    struct loop *loop;
    const struct config *cfg;
    struct redis_lease_hooks hooks;
    struct redis_conn *conn;
    struct redis_cmd cmd;
    struct loop_timer *tick;
    uint64_t ttl, margin, tick_ms;
    bool fallback;       /* scrape locally while Redis is unreachable (role all) */
    uint64_t down_since; /* when the connection went (or was not yet) up; 0: up */
    struct lease *leases;
    size_t n;
    bool releasing;
    size_t release_waiting;
    void (*release_done)(void *arg);
    void *release_arg;
    struct loop_timer *release_timer;
};

/* What a reply needs to find its record again. */
struct ask {
    struct redis_lease *l;
    char name[TICKER_EXCHANGE_MAX];
    uint64_t gen;
    uint64_t sent;
};

static struct lease *find(const struct redis_lease *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->leases[i].name, name) == 0) {
            return &l->leases[i];
        }
    }
    return NULL;
}

/* The record an ask was made for, if it has not changed state since. */
static struct lease *current(const struct ask *a)
{
    struct lease *x = find(a->l, a->name);
    return x && x->gen == a->gen ? x : NULL;
}

static struct ask *ask_new(struct redis_lease *l, const struct lease *x)
{
    struct ask *a = xmalloc(sizeof *a);
    a->l = l;
    snprintf(a->name, sizeof a->name, "%s", x->name);
    a->gen = x->gen;
    a->sent = loop_now_ms(l->loop);
    return a;
}

static void key_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "rx:lease:%s", name);
}

static void set_state(struct lease *x, enum lease_state state)
{
    x->state = state;
    x->gen++;
    x->renewing = false;
}

static void activate(struct redis_lease *l, struct lease *x)
{
    x->active = true;
    if (l->hooks.acquired) {
        l->hooks.acquired(x->name, l->hooks.arg);
    }
}

/* Not ours (any more): tell the registry, once per change of holder. */
static void to_standby(struct redis_lease *l, struct lease *x, const char *holder)
{
    bool news = x->active || strcmp(x->holder, holder) != 0;
    x->active = false;
    set_state(x, FREE);
    snprintf(x->holder, sizeof x->holder, "%s", holder);
    if (news && l->hooks.standby) {
        l->hooks.standby(x->name, holder, l->hooks.arg);
    }
    if (x->diverged && holder[0]) {
        /* Another node scraped it meanwhile, with versions of its own:
         * ours must not hide its data (never going backwards). */
        x->diverged = false;
        if (l->hooks.diverged) {
            l->hooks.diverged(x->name, l->hooks.arg);
        }
    }
}

static void send_script(struct redis_lease *l, const char *script, const char *name,
                        redis_reply_fn fn, void *data)
{
    char key[64], ttl[24];
    key_of(key, sizeof key, name);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)l->ttl);
    redis_cmd_adds(&l->cmd, "EVAL");
    redis_cmd_adds(&l->cmd, script);
    redis_cmd_adds(&l->cmd, "1");
    redis_cmd_adds(&l->cmd, key);
    redis_cmd_adds(&l->cmd, l->cfg->node_id);
    redis_cmd_adds(&l->cmd, ttl);
    if (redis_conn_send(l->conn, &l->cmd, fn, data) < 0) {
        fn(l->conn, NULL, data);
    }
}

/* ---- taking -------------------------------------------------------------------- */

static void on_synced(bool ok, void *arg)
{
    struct ask *a = arg;
    struct redis_lease *l = a->l;
    struct lease *x = current(a);

    if (x && x->state == SYNCING) {
        if (ok) {
            set_state(x, HELD);
            x->diverged = false; /* Redis' versions were behind ours, or equal */
            log_info("lease", "%s: lease taken; scraping here", x->name);
            activate(l, x);
        } else {
            /* Not read back: running now could restart its versions below
             * the last holder's. The key stays ours until it expires or
             * the next tick takes it again. */
            log_warn("lease", "%s: lease taken but its data could not be read back; retrying",
                     x->name);
            to_standby(l, x, "");
        }
    }
    free(a);
}

/* The key is ours (taken now, or found ours and renewed): sync, then run. */
static void taken(struct redis_lease *l, struct lease *x, uint64_t sent)
{
    set_state(x, SYNCING);
    x->renewed_at = sent;
    x->deadline = sent + l->ttl - l->margin;
    x->holder[0] = '\0';
    struct ask *a = ask_new(l, x);
    if (l->hooks.sync) {
        l->hooks.sync(x->name, on_synced, a, l->hooks.arg);
    } else {
        on_synced(true, a);
    }
}

static void on_reclaimed(struct redis_conn *c, redisReply *reply, void *data)
{
    struct ask *a = data;
    struct lease *x = current(a);

    if (x && x->state == ASKING) {
        if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
            taken(a->l, x, a->sent);
        } else {
            set_state(x, FREE);
        }
    }
    free(a);
}

static void on_holder(struct redis_conn *c, redisReply *reply, void *data)
{
    struct ask *a = data;
    struct redis_lease *l = a->l;
    struct lease *x = current(a);

    if (x && x->state == ASKING) {
        if (reply && reply->type == REDIS_REPLY_STRING &&
            strcmp(reply->str, l->cfg->node_id) == 0) {
            /* Still ours in Redis though given up here (a renewal's reply
             * was lost): renew it rather than wait for it to expire. */
            struct ask *again = ask_new(l, x);
            send_script(l, RENEW_SCRIPT, x->name, on_reclaimed, again);
        } else if (reply && reply->type == REDIS_REPLY_STRING) {
            char holder[BOARD_NODE_ID_MAX];
            snprintf(holder, sizeof holder, "%.*s", (int)reply->len, reply->str);
            to_standby(l, x, holder);
        } else {
            /* Expired between the SET and the GET: the next tick asks again. */
            set_state(x, FREE);
        }
    }
    free(a);
}

static void on_set(struct redis_conn *c, redisReply *reply, void *data)
{
    struct ask *a = data;
    struct redis_lease *l = a->l;
    struct lease *x = current(a);

    if (x && x->state == ASKING) {
        if (reply && reply->type == REDIS_REPLY_STATUS) {
            taken(l, x, a->sent);
        } else if (reply && reply->type == REDIS_REPLY_NIL) {
            char key[64];
            key_of(key, sizeof key, x->name);
            x->gen++; /* the GET's reply belongs to this new round */
            struct ask *get = ask_new(l, x);
            redis_cmd_adds(&l->cmd, "GET");
            redis_cmd_adds(&l->cmd, key);
            if (redis_conn_send(l->conn, &l->cmd, on_holder, get) < 0) {
                free(get);
                set_state(x, FREE);
            }
        } else {
            set_state(x, FREE);
        }
    }
    free(a);
}

static void ask_for(struct redis_lease *l, struct lease *x)
{
    char key[64], ttl[24];
    key_of(key, sizeof key, x->name);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)l->ttl);
    /* A LOCAL operator keeps running while its lease is asked for; a
     * refusal stops it (to_standby). */
    set_state(x, ASKING);
    struct ask *a = ask_new(l, x);
    redis_cmd_adds(&l->cmd, "SET");
    redis_cmd_adds(&l->cmd, key);
    redis_cmd_adds(&l->cmd, l->cfg->node_id);
    redis_cmd_adds(&l->cmd, "NX");
    redis_cmd_adds(&l->cmd, "PX");
    redis_cmd_adds(&l->cmd, ttl);
    if (redis_conn_send(l->conn, &l->cmd, on_set, a) < 0) {
        free(a);
        set_state(x, FREE);
    }
}

/* ---- keeping ------------------------------------------------------------------- */

static void on_renewed(struct redis_conn *c, redisReply *reply, void *data)
{
    struct ask *a = data;
    struct redis_lease *l = a->l;
    struct lease *x = current(a);

    if (x && (x->state == SYNCING || x->state == HELD)) {
        x->renewing = false;
        if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
            x->renewed_at = a->sent;
            x->deadline = a->sent + l->ttl - l->margin;
        } else if (reply && reply->type == REDIS_REPLY_INTEGER) {
            log_warn("lease",
                     "%s: lease lost (another node holds it, or Redis lost it); "
                     "standing by",
                     x->name);
            to_standby(l, x, "");
        }
        /* No reply: the connection went away; the deadline decides. */
    }
    free(a);
}

static void renew(struct redis_lease *l, struct lease *x)
{
    x->renewing = true;
    send_script(l, RENEW_SCRIPT, x->name, on_renewed, ask_new(l, x));
}

static void release_answered(struct redis_lease *l)
{
    if (l->releasing && --l->release_waiting == 0) {
        loop_timer_stop(l->release_timer);
        l->releasing = false;
        l->release_done(l->release_arg);
    }
}

static void on_released(struct redis_conn *c, redisReply *reply, void *data)
{
    struct ask *a = data;
    struct redis_lease *l = a->l;
    free(a);
    release_answered(l);
}

/* Let go of one lease now (file removed): delete the key if still ours. */
static void release(struct redis_lease *l, struct lease *x, redis_reply_fn fn)
{
    set_state(x, FREE);
    send_script(l, RELEASE_SCRIPT, x->name, fn, ask_new(l, x));
}

static void on_dropped(struct redis_conn *c, redisReply *reply, void *data)
{
    free(data);
}

/* ---- the tick ------------------------------------------------------------------ */

static void refresh_names(struct redis_lease *l)
{
    char names[MAX_LEASES][TICKER_EXCHANGE_MAX];
    size_t n = l->hooks.names ? l->hooks.names(names, MAX_LEASES, l->hooks.arg) : 0;

    for (size_t i = 0; i < l->n; i++) {
        l->leases[i].present = false;
    }
    for (size_t i = 0; i < n && i < MAX_LEASES; i++) {
        struct lease *x = find(l, names[i]);
        if (!x) {
            l->leases = xrealloc(l->leases, (l->n + 1) * sizeof *l->leases);
            x = &l->leases[l->n++];
            memset(x, 0, sizeof *x);
            snprintf(x->name, sizeof x->name, "%s", names[i]);
        }
        x->present = true;
    }
    for (size_t i = 0; i < l->n;) {
        struct lease *x = &l->leases[i];
        if (x->present) {
            i++;
            continue;
        }
        if (x->state == SYNCING || x->state == HELD) {
            log_info("lease", "%s: no operator any more; lease released", x->name);
            release(l, x, on_dropped);
        }
        l->leases[i] = l->leases[--l->n];
    }
}

/* Redis unreachable for a whole ttl (role all): no lease anywhere can be
 * vouched for, and this node still serves; it scrapes what nobody here
 * scrapes, and writes none of it (redis_lease_held is false for LOCAL). */
static void fall_back(struct redis_lease *l, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        struct lease *x = &l->leases[i];
        if (x->state == FREE) {
            set_state(x, LOCAL);
            x->diverged = true;
            if (!x->active) {
                activate(l, x);
                n++;
            }
        }
    }
    if (n) {
        log_warn("lease",
                 "Redis unreachable for %llu ms: scraping %zu exchange(s) here, "
                 "writing nothing, until it is back",
                 (unsigned long long)(now - l->down_since), n);
    }
}

static void on_tick(struct loop_timer *t, void *data)
{
    struct redis_lease *l = data;
    uint64_t now = loop_now_ms(l->loop);
    bool up = redis_conn_up(l->conn);

    if (l->releasing) {
        return;
    }
    refresh_names(l);
    for (size_t i = 0; i < l->n; i++) {
        struct lease *x = &l->leases[i];
        if ((x->state == SYNCING || x->state == HELD) && now >= x->deadline) {
            log_warn("lease", "%s: lease not renewed in time; stopped scraping here", x->name);
            to_standby(l, x, "");
        }
        if ((x->state == SYNCING || x->state == HELD) && !x->renewing &&
            now - x->renewed_at >= l->ttl / 3 && up) {
            renew(l, x);
        } else if ((x->state == FREE || x->state == LOCAL) && up) {
            ask_for(l, x);
        }
    }
    if (l->fallback && !up && l->down_since && now - l->down_since >= l->ttl) {
        fall_back(l, now);
    }
}

/* ---- life ---------------------------------------------------------------------- */

static void on_up(struct redis_conn *c, void *data)
{
    struct redis_lease *l = data;
    l->down_since = 0;
    on_tick(NULL, l);
}

static void on_down(struct redis_conn *c, const char *why, void *data)
{
    struct redis_lease *l = data;
    if (!l->down_since) {
        l->down_since = loop_now_ms(l->loop);
    }
}

static void on_release_timeout(struct loop_timer *t, void *data)
{
    struct redis_lease *l = data;
    if (l->releasing) {
        l->releasing = false;
        log_warn("lease", "%zu lease release(s) not answered in time; they expire by themselves",
                 l->release_waiting);
        l->release_done(l->release_arg);
    }
}

struct redis_lease *redis_lease_new(struct loop *loop, const struct config *cfg,
                                    const struct redis_lease_hooks *hooks)
{
    struct redis_lease *l = xcalloc(1, sizeof *l);
    l->loop = loop;
    l->cfg = cfg;
    l->hooks = *hooks;
    l->ttl = (uint64_t)cfg->lease_ttl_ms;
    l->margin = l->ttl / 5;
    l->fallback = cfg->role == CONFIG_ROLE_ALL;
    l->tick_ms = l->ttl / 10 < 50 ? 50 : l->ttl / 10 > 1000 ? 1000 : l->ttl / 10;
    redis_cmd_init(&l->cmd);
    struct redis_conn_events ev = {.up = on_up, .down = on_down, .data = l};
    l->conn = redis_conn_for(loop, cfg, "lease", &ev);
    l->tick = loop_timer_new(loop, on_tick, l);
    l->release_timer = loop_timer_new(loop, on_release_timeout, l);
    return l;
}

void redis_lease_start(struct redis_lease *l)
{
    refresh_names(l);
    for (size_t i = 0; i < l->n; i++) {
        if (l->hooks.standby) {
            l->hooks.standby(l->leases[i].name, "", l->hooks.arg);
        }
    }
    l->down_since = loop_now_ms(l->loop); /* until the first connection */
    redis_conn_start(l->conn);
    loop_timer_start(l->tick, l->tick_ms, l->tick_ms);
}

bool redis_lease_held(const struct redis_lease *l, const char *exchange, uint64_t *deadline_ms)
{
    const struct lease *x = find(l, exchange);
    if (l->releasing || !x || (x->state != SYNCING && x->state != HELD) ||
        loop_now_ms(l->loop) >= x->deadline) {
        return false;
    }
    *deadline_ms = x->deadline;
    return true;
}

void redis_lease_release_all(struct redis_lease *l, void (*done)(void *arg), void *arg)
{
    size_t held = 0;

    loop_timer_stop(l->tick);
    l->release_done = done;
    l->release_arg = arg;
    l->releasing = true;
    l->release_waiting = 1; /* held until every release is sent */
    for (size_t i = 0; i < l->n; i++) {
        struct lease *x = &l->leases[i];
        if ((x->state == SYNCING || x->state == HELD) && redis_conn_up(l->conn)) {
            l->release_waiting++;
            held++;
            release(l, x, on_released);
        }
    }
    if (held) {
        log_info("lease", "releasing %zu lease(s)", held);
    }
    loop_timer_start(l->release_timer, RELEASE_WAIT_MS, 0);
    release_answered(l);
}

void redis_lease_free(struct redis_lease *l)
{
    if (!l) {
        return;
    }
    loop_timer_free(l->tick);
    loop_timer_free(l->release_timer);
    redis_conn_free(l->conn);
    redis_cmd_free(&l->cmd);
    free(l->leases);
    free(l);
}
