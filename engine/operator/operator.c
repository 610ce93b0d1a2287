/*
 * operator: load, validate, run markets() and poll() on timers, recover.
 *
 * Life of an operator version:
 *
 *   op_load      fresh sandbox, run the file, validate spec 1, build `x`
 *   op_prepare   markets() in a coroutine (make-before-break reloads stop
 *                here until the registry swaps versions)
 *   op_start     markets() if not done, then poll() every poll_every s
 *                with +-10% jitter; after a failure the next try waits
 *                poll_every * 2^(n-1), capped at 5 minutes, reset by success
 *   op_free      timers stopped, waits cancelled, the state closed
 *
 * The state shown to users is not stored: op_status derives it from facts
 * (last data, last error, configuration), so it cannot drift from them.
 */
#include "operator_int.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/backoff.h"
#include "config/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "lua/sandbox.h"
#include "core/xalloc.h"
#include "store/store.h"

#define POLL_JITTER 0.1
#define BACKOFF_CAP_MS (5 * 60 * 1000)
#define MARKETS_RETRY_BASE_MS 2000
#define DEGRADED_WINDOW_MS 60000
#define STATE_MAX_BYTES (1u << 20)
#define STATE_MAX_DEPTH 32
#define MAX_MARKETS 100000
#define SLOW_CALLBACKS_MARK 3

static void on_timer(struct loop_timer *timer, void *data);

/* Builds `x` in protected mode: running out of memory there fails the load
 * of this operator instead of aborting the process. */
static int build_ctx(lua_State *L)
{
    op_ctx_push(lua_touserdata(L, 1));
    return 1;
}

static uint64_t rng_state(struct operator *op)
{
    return (uint64_t)(uintptr_t)op ^ (uint64_t)loop_wall_ms();
}

const char *op_name(const struct operator *op)
{
    return op->spec.name;
}

const struct board_market *op_markets(const struct operator *op, size_t *n, uint64_t *gen)
{
    *n = op->n_markets;
    *gen = op->markets_gen;
    return op->markets;
}

const char *op_file(const struct operator *op)
{
    return op->file;
}

bool op_enabled(const struct operator *op)
{
    return op->spec.enabled;
}

bool op_has_stream(const struct operator *op)
{
    return op->spec.has_stream;
}

/* "file:12: message" → 12, else 0. */
static int error_line(const char *err, const char *file)
{
    size_t n = strlen(file);
    if (strncmp(err, file, n) == 0 && err[n] == ':') {
        return atoi(err + n + 1);
    }
    return 0;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

struct operator *op_load(const struct op_env *env, const char *file, char *err, size_t errlen,
                         int *line)
{
    struct sandbox_limits limits;
    struct operator *op = xcalloc(1, sizeof *op);
    char msg[512];

    *line = 0;
    op->env = *env;
    op->file = xstrdup(file);
    op->table_ref = op->x_ref = op->symbols_ref = op->markets_ref = LUA_NOREF;
    sandbox_limits_default(&limits);
    limits.lib_dir = env->lib_dir;
    op->L = sandbox_new(&limits, msg, sizeof msg);
    if (!op->L) {
        snprintf(err, errlen, "%s: %s", file, msg);
        goto fail;
    }
    if (sandbox_load_file(op->L, file, base_name(file), msg, sizeof msg) != 0) {
        snprintf(err, errlen, "%s", msg);
        *line = error_line(msg, base_name(file));
        goto fail;
    }
    if (op_spec_read(op->L, -1, env->config, &op->spec, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "%s: %s", file, msg);
        goto fail;
    }
    char expect[TICKER_EXCHANGE_MAX + 8];
    snprintf(expect, sizeof expect, "%s.lua", op->spec.name);
    if (strcmp(expect, base_name(file)) != 0) {
        snprintf(err, errlen, "%s: name: '%s' must match the file name", file, op->spec.name);
        goto fail;
    }
    op->table_ref = luaL_ref(op->L, LUA_REGISTRYINDEX);
    snprintf(op->component, sizeof op->component, "op:%s", op->spec.name);
    if (env->deadline_scale > 1) {
        op->spec.message_ms *= env->deadline_scale;
        op->spec.task_ms *= env->deadline_scale;
    }
    const struct config_operator *co =
        env->config ? config_operator_find(env->config, op->spec.name) : NULL;
    op->max_frame_bytes = co ? co->max_frame_bytes : -1;
    lua_pushcfunction(op->L, build_ctx);
    lua_pushlightuserdata(op->L, op);
    if (sandbox_pcall(op->L, 1, 1, msg, sizeof msg) != SANDBOX_OK) {
        snprintf(err, errlen, "%s: building the context: %s", file, msg);
        goto fail;
    }
    op->x_ref = luaL_ref(op->L, LUA_REGISTRYINDEX);
    lua_newtable(op->L);
    op->symbols_ref = luaL_ref(op->L, LUA_REGISTRYINDEX);
    op->timer = loop_timer_new(env->loop, on_timer, op);
    op->facts.loaded_at = loop_wall_ms();
    op->tokens = (double)op->spec.budget_requests;
    op->tokens_at_ms = loop_now_ms(env->loop);
    return op;
fail:
    op_free(op);
    return NULL;
}

void op_free(struct operator *op)
{
    if (!op) {
        return;
    }
    op->freeing = true;
    op_streams_free(op);
    loop_timer_free(op->timer);
    loop_timer_free(op->warm_timer);
    while (op->tasks) {
        op_task_free(op->tasks);
    }
    if (op->L) {
        sandbox_free(op->L);
    }
    op_spec_free(&op->spec);
    free(op->batch.t);
    free(op->batch.changed);
    free(op->markets);
    free(op->file);
    store_free(op->held);
    free(op);
}

/* Pushes the operator's callback `name` (from its table) or nil. */
static int push_callback(struct operator *op, lua_State *co, const char *name)
{
    lua_rawgeti(op->L, LUA_REGISTRYINDEX, op->table_ref);
    lua_getfield(op->L, -1, name);
    lua_remove(op->L, -2);
    lua_xmove(op->L, co, 1);
    return lua_type(co, -1);
}

static void push_x(struct operator *op, lua_State *co)
{
    lua_rawgeti(op->L, LUA_REGISTRYINDEX, op->x_ref);
    lua_xmove(op->L, co, 1);
}

/* Reads markets()'s list into the symbol map; bad entries are skipped and
 * reported once. Returns the number of usable markets. */
static int take_markets(struct operator *op, lua_State *co)
{
    lua_State *L = op->L;
    int usable = 0, skipped = 0;

    if (!lua_istable(co, -1)) {
        return -1;
    }
    lua_xmove(co, L, 1);
    int list = lua_gettop(L);
    lua_newtable(L);
    int map = lua_gettop(L);
    lua_Integer n = luaL_len(L, list);
    if (n < 0 || n > MAX_MARKETS) {
        lua_pop(L, 2);
        return -1;
    }
    free(op->markets);
    op->markets = xcalloc((size_t)n + 1, sizeof *op->markets);
    for (lua_Integer i = 1; i <= n; i++) {
        char pair[TICKER_PAIR_MAX];
        lua_geti(L, list, i);
        lua_getfield(L, -1, "symbol");
        lua_getfield(L, -2, "base");
        lua_getfield(L, -3, "quote");
        const char *symbol = lua_type(L, -3) == LUA_TSTRING ? lua_tostring(L, -3) : NULL;
        if (symbol && strlen(symbol) < TICKER_SYMBOL_MAX &&
            op_pair_from_assets(op, lua_tostring(L, -2), lua_tostring(L, -1), pair,
                                sizeof pair) == 0) {
            lua_pushstring(L, pair);
            lua_setfield(L, map, symbol);
            struct board_market *m = &op->markets[usable++];
            snprintf(m->exchange, sizeof m->exchange, "%s", op->spec.name);
            snprintf(m->symbol, sizeof m->symbol, "%s", symbol);
            snprintf(m->pair, sizeof m->pair, "%s", pair);
        } else {
            skipped++;
        }
        lua_pop(L, 4);
    }
    op->n_markets = (size_t)usable;
    op->markets_gen++;
    luaL_unref(L, LUA_REGISTRYINDEX, op->symbols_ref);
    op->symbols_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    luaL_unref(L, LUA_REGISTRYINDEX, op->markets_ref);
    op->markets_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (skipped) {
        log_warn(op->component, "markets(): skipped %d entries without symbol, base and quote",
                 skipped);
    }
    return usable;
}

static void finish_ready(struct operator *op, int ok, const char *err)
{
    op_ready_fn fn = op->ready_fn;
    op->ready_fn = NULL;
    if (fn) {
        fn(op, ok, err, op->ready_data);
    }
}

/* After a failure: poll_every (or the markets base) doubled per
 * consecutive failure, capped. After a success: the period, jittered. */
static uint64_t next_delay_ms(struct operator *op, uint64_t period_ms)
{
    uint64_t rng = rng_state(op);
    if (op->consecutive_failures) {
        return backoff_delay_ms(op->consecutive_failures, period_ms, BACKOFF_CAP_MS, POLL_JITTER,
                                &rng);
    }
    return backoff_jitter_ms(period_ms, POLL_JITTER, &rng);
}

static uint64_t poll_period_ms(const struct operator *op)
{
    return (uint64_t)(op->spec.poll_every * 1000.0);
}

/* What the timer does next follows from the facts: markets until they
 * succeed, then polls (if the operator has poll()). */
static void schedule(struct operator *op, uint64_t delay_ms)
{
    if (op->started && (!op->markets_ok || op->spec.has_poll)) {
        loop_timer_start(op->timer, delay_ms, 0);
    }
}

/* finish_ready comes last: its callback may free the operator. */
static void markets_finished(struct operator *op, int ok, const char *err)
{
    if (!ok) {
        op_record_error(op, "markets()", err);
        op->consecutive_failures++;
        schedule(op, next_delay_ms(op, MARKETS_RETRY_BASE_MS));
        finish_ready(op, 0, err);
        return;
    }
    op->markets_ok = true;
    op->consecutive_failures = 0;
    schedule(op, 0);
    if (op->started) {
        op_streams_start(op);
    }
    finish_ready(op, 1, NULL);
}

static void markets_done(struct op_task *task, int ok, const char *err, void *data)
{
    struct operator *op = data;
    char msg[512];

    snprintf(msg, sizeof msg, "%s", err ? err : "");
    if (ok && take_markets(op, task->co) < 0) {
        ok = 0;
        snprintf(msg, sizeof msg, "must return a list of {symbol=, base=, quote=}");
    }
    op->markets_task = NULL;
    op_task_free(task);
    markets_finished(op, ok, msg);
}

static void run_markets(struct operator *op)
{
    if (op->markets_task) {
        return;
    }
    if (!op->spec.has_markets) {
        markets_finished(op, 1, NULL);
        return;
    }
    struct op_task *task = op_task_new(op, "markets()", markets_done, op);
    op->markets_task = task;
    push_callback(op, task->co, "markets");
    push_x(op, task->co);
    op_task_run(task, 1);
}

static void poll_done(struct op_task *task, int ok, const char *err, void *data)
{
    struct operator *op = data;

    if (ok) {
        op->consecutive_failures = 0;
    } else {
        op->consecutive_failures++;
        op_record_error(op, "poll()", err);
    }
    op->poll_task = NULL;
    op_task_free(task);
    if (op->once_fn) {
        op_ready_fn fn = op->once_fn;
        op->once_fn = NULL;
        fn(op, ok, ok ? NULL : op->facts.reason, op->ready_data);
        return;
    }
    schedule(op, next_delay_ms(op, poll_period_ms(op)));
}

static void run_poll(struct operator *op)
{
    if (op->poll_task || !op->spec.has_poll) {
        return;
    }
    struct op_task *task = op_task_new(op, "poll()", poll_done, op);
    op->poll_task = task;
    push_callback(op, task->co, "poll");
    push_x(op, task->co);
    op_task_run(task, 1);
}

static void on_timer(struct loop_timer *timer, void *data)
{
    struct operator *op = data;
    if (!op->markets_ok) {
        run_markets(op);
    } else {
        run_poll(op);
    }
}

void op_prepare(struct operator *op, op_ready_fn done, void *data)
{
    op->ready_fn = done;
    op->ready_data = data;
    run_markets(op);
}

void op_start(struct operator *op)
{
    op->started = true;
    if (!op->spec.enabled) {
        return;
    }
    if (op->markets_ok) {
        schedule(op, 0);
        op_streams_start(op);
    } else {
        run_markets(op);
    }
}

static void once_after_markets(struct operator *op, int ok, const char *err, void *data)
{
    if (ok && op->once_streams) {
        op_streams_start(op);
    }
    if (!ok || !op->once_poll || !op->spec.has_poll) {
        op->once_fn = NULL;
        op_ready_fn fn = op->run_once_fn;
        fn(op, ok, err, data);
        return;
    }
    op->once_fn = op->run_once_fn;
    op->ready_data = data;
    run_poll(op);
}

void op_run_once(struct operator *op, bool poll, bool streams, op_ready_fn done, void *data)
{
    op->run_once_fn = done;
    op->once_poll = poll;
    op->once_streams = streams;
    op_prepare(op, once_after_markets, data);
}

/* ---- Make before break: held emits and warm streams -------------------- */

static int seed_held(const struct ticker *t, void *data)
{
    store_restore(data, t);
    return 0;
}

void op_hold(struct operator *op)
{
    if (op->held) {
        return;
    }
    /* Seeded with what is stored, so that held emits merge with the stored
     * fields and count against max_pairs exactly as they would. */
    op->held = store_new();
    op->real_env = op->env;
    op->held_since = loop_wall_ms();
    store_scan(op->env.store, op->spec.name, seed_held, op->held);
    op->env.store = op->held;
    op->env.on_batch = NULL;
}

struct release {
    struct operator *op;
    struct op_batch out;
};

/* A held ticker is applied when the candidate emitted it (received since
 * the hold began) and it is newer than what the running version stored
 * meanwhile. */
static int release_one(const struct ticker *t, void *data)
{
    struct release *r = data;
    struct op_batch *b = &r->out;
    struct ticker cur, copy = *t;

    if (t->received < r->op->held_since ||
        (store_get(r->op->env.store, t->exchange, t->pair, &cur) == 0 &&
         cur.received >= t->received)) {
        return 0;
    }
    int changed = store_put(r->op->env.store, &copy);
    if (changed < 0) {
        return 0;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->t = xrealloc(b->t, b->cap * sizeof *b->t);
        b->changed = xrealloc(b->changed, b->cap * sizeof *b->changed);
    }
    b->t[b->n] = copy;
    b->changed[b->n++] = changed > 0;
    return 0;
}

void op_release(struct operator *op)
{
    if (!op->held) {
        return;
    }
    struct store *held = op->held;
    struct release r = {.op = op};

    op->held = NULL;
    op->env.store = op->real_env.store;
    op->env.on_batch = op->real_env.on_batch;
    store_scan(held, op->spec.name, release_one, &r);
    if (r.out.n && op->env.on_batch) {
        op->env.on_batch(op, r.out.t, r.out.changed, r.out.n, op->env.ctx);
    }
    free(r.out.t);
    free(r.out.changed);
    store_free(held);
}

static void warm_finish(struct operator *op, int ok)
{
    op_ready_fn fn = op->warm_fn;
    op->warm_fn = NULL;
    loop_timer_stop(op->warm_timer);
    if (fn) {
        fn(op, ok, ok ? NULL : "the new version's streams carried no data in time",
           op->warm_data);
    }
}

static void on_warm_timer(struct loop_timer *t, void *data)
{
    struct operator *op = data;
    warm_finish(op, op_streams_carried(op));
}

void op_warm_check(struct operator *op)
{
    /* Deferred to a timer: the check runs inside a stream callback, and
     * the registry's answer frees the previous version. */
    if (op->warm_fn && op_streams_carried(op)) {
        loop_timer_start(op->warm_timer, 0, 0);
    }
}

void op_warm(struct operator *op, uint64_t wait_ms, op_ready_fn done, void *data)
{
    op->warm_fn = done;
    op->warm_data = data;
    if (!op->warm_timer) {
        op->warm_timer = loop_timer_new(op->env.loop, on_warm_timer, op);
    }
    if (!op->spec.has_stream || !op->env.ws || !op->spec.enabled) {
        loop_timer_start(op->warm_timer, 0, 0);
        return;
    }
    loop_timer_start(op->warm_timer, wait_ms, 0);
    op_streams_start(op);
}

/* Plain data only: strings, numbers, booleans and tables of those. */
static int copy_value(lua_State *from, int idx, lua_State *to, int depth, size_t *bytes,
                      char *err, size_t errlen)
{
    size_t len;
    switch (lua_type(from, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(from, idx)) {
            lua_pushinteger(to, lua_tointeger(from, idx));
        } else {
            lua_pushnumber(to, lua_tonumber(from, idx));
        }
        *bytes += 8;
        return 0;
    case LUA_TBOOLEAN:
        lua_pushboolean(to, lua_toboolean(from, idx));
        return 0;
    case LUA_TSTRING: {
        const char *s = lua_tolstring(from, idx, &len);
        *bytes += len;
        lua_pushlstring(to, s, len);
        return 0;
    }
    case LUA_TTABLE:
        break;
    default:
        snprintf(err, errlen, "x.state may hold only strings, numbers, booleans and tables "
                              "(found a %s)",
                 luaL_typename(from, idx));
        return -1;
    }
    if (depth > STATE_MAX_DEPTH) {
        snprintf(err, errlen, "x.state is nested deeper than %d (or has a cycle)",
                 STATE_MAX_DEPTH);
        return -1;
    }
    idx = lua_absindex(from, idx);
    lua_checkstack(from, 4);
    lua_checkstack(to, 4);
    lua_newtable(to);
    lua_pushnil(from);
    while (lua_next(from, idx)) {
        if (copy_value(from, -2, to, depth + 1, bytes, err, errlen) != 0 ||
            copy_value(from, -1, to, depth + 1, bytes, err, errlen) != 0) {
            lua_pop(from, 2);
            return -1;
        }
        lua_rawset(to, -3);
        lua_pop(from, 1);
        if (*bytes > STATE_MAX_BYTES) {
            lua_pop(from, 1);
            snprintf(err, errlen, "x.state is larger than %u bytes", STATE_MAX_BYTES);
            return -1;
        }
    }
    return 0;
}

int op_take_state(struct operator *op, struct operator *old, char *err, size_t errlen)
{
    size_t bytes = 0;
    int top_old = lua_gettop(old->L);
    int top_new = lua_gettop(op->L);
    int rc;

    lua_rawgeti(old->L, LUA_REGISTRYINDEX, old->x_ref);
    lua_getfield(old->L, -1, "state");
    rc = copy_value(old->L, -1, op->L, 0, &bytes, err, errlen);
    if (rc == 0) {
        lua_rawgeti(op->L, LUA_REGISTRYINDEX, op->x_ref);
        lua_insert(op->L, -2);
        lua_setfield(op->L, -2, "state");
    }
    lua_settop(old->L, top_old);
    lua_settop(op->L, top_new);
    return rc;
}

void op_take_history(struct operator *op, const struct operator *old)
{
    int64_t loaded_at = op->facts.loaded_at;
    op->facts = old->facts;
    op->facts.loaded_at = loaded_at;
}

void op_status(const struct operator *op, int64_t now_ms, struct board_status *out)
{
    const struct op_facts *f = &op->facts;

    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", op->spec.name);
    snprintf(out->file, sizeof out->file, "%s", op->file);
    snprintf(out->reason, sizeof out->reason, "%s", f->reason);
    out->loaded_at = f->loaded_at;
    out->last_update = f->last_data;
    out->errors = f->errors;
    out->emitted = f->emitted;
    out->unmapped_total = f->unmapped_total;
    out->filtered = f->filtered;
    out->over_max_pairs = f->over_max_pairs;
    out->http_requests = f->http_requests;
    out->budget_requests = op->spec.budget_requests;
    out->budget_per = op->spec.budget_per;
    out->budget_waits = f->budget_waits;
    out->callbacks = f->callbacks;
    out->callback_max_ms = f->callback_max_ms;
    out->slow_callbacks = f->slow_callbacks;
    out->streams_open = op->streams_open;
    out->stream_messages = f->stream_messages;
    out->stream_taken = f->stream_taken;
    out->frames_dropped = f->frames_dropped;
    out->memory_bytes = op->L ? sandbox_memory_used(op->L) : 0;
    out->n_unmapped = f->n_unmapped;
    memcpy(out->unmapped, f->unmapped, sizeof out->unmapped);
    if (f->last_data) {
        snprintf(out->source, sizeof out->source, "%s",
                 op->last_source == TICKER_SOURCE_STREAM ? "stream" : "poll");
    }

    int64_t window = DEGRADED_WINDOW_MS;
    if (3000.0 * op->spec.poll_every > (double)window) {
        window = (int64_t)(3000.0 * op->spec.poll_every);
    }
    if (!op->spec.enabled) {
        out->state = BOARD_DISABLED;
        snprintf(out->reason, sizeof out->reason, "disabled in the config");
    } else if (!f->last_data) {
        out->state = f->errors ? BOARD_ERROR : BOARD_STARTING;
        if (f->refusing[0]) {
            snprintf(out->reason, sizeof out->reason, "%s", f->refusing);
        }
    } else if (now_ms - f->last_data > op->spec.stale_after_ms) {
        out->state = BOARD_ERROR;
        snprintf(out->reason, sizeof out->reason, "no data for %lld ms%s%.200s",
                 (long long)(now_ms - f->last_data), f->reason[0] ? "; last error: " : "",
                 f->reason);
    } else if (f->slow_callbacks >= SLOW_CALLBACKS_MARK) {
        /* The loop-lag watchdog: an operator whose callbacks keep holding
         * the loop delays every other operator and the API's loop work. */
        out->state = BOARD_DEGRADED;
        snprintf(out->reason, sizeof out->reason,
                 "callbacks stall the loop: %llu took over 100 ms (longest %.0f ms)",
                 (unsigned long long)f->slow_callbacks, f->callback_max_ms);
    } else if (op->spec.has_stream && !op->spec.has_poll && op->streams_open == 0) {
        out->state = BOARD_DEGRADED;
        snprintf(out->reason, sizeof out->reason, "stream down%s%.200s",
                 f->reason[0] ? ": " : "", f->reason);
    } else if (f->refusing[0]) {
        /* Data flows, but most of what the operator emits is refused. */
        out->state = BOARD_DEGRADED;
        snprintf(out->reason, sizeof out->reason, "%s", f->refusing);
    } else if (f->last_error_at && now_ms - f->last_error_at < window &&
               f->last_error_at > f->last_data - window) {
        out->state = BOARD_DEGRADED;
    } else {
        /* DESIGN 4.1: streaming while a stream is connected and delivering,
         * however recently the poll emitted the fields the stream lacks. */
        bool delivering = f->last_stream_data && now_ms - f->last_stream_data <=
                                                     op->spec.stale_after_ms;
        out->state = op->streams_open > 0 && delivering ? BOARD_STREAMING : BOARD_POLLING;
        out->reason[0] = '\0';
    }
}
