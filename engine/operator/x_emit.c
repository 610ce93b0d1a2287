/*
 * x_emit: x.emit and x.emit_many, the only way data enters the store.
 *
 * An emit is hostile input twice over (exchange data, through operator
 * code), so everything is checked here: the pair is resolved from base and
 * quote through the aliases, or from the symbol through markets() — never
 * guessed; prices become decimal text (strings kept as written, numbers
 * rendered by decimal.c); ticker_validate refuses crossed, non-positive and
 * malformed quotes, counted per reason. Bad data is a return value, not a
 * Lua error: one odd message must not kill a stream.
 *
 * One call is one batch: every ticker it stores is collected, and the
 * engine hears of the batch once (op_env.on_batch) — one fan-out pass, one
 * Redis pipeline — however many tickers it held. Each emit looks its key up
 * in the store once (store_find), for merging and for the max_pairs check
 * alike, and stores through that lookup.
 */
#include "operator_int.h"

#include <errno.h>
#include <lauxlib.h>
#include <string.h>

#include "core/decimal.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "store/store.h"

/* Why an emit was not stored, beyond the validation reasons of ticker.h. */
enum emit_refusal {
    EMIT_STORED,
    EMIT_NOT_A_TABLE,
    EMIT_UNMAPPED,
    EMIT_FILTERED,
    EMIT_MAX_PAIRS,
    EMIT_STORE,
    EMIT_INVALID, /* the ticker_reject says why */
};

static const char *const refusal_names[] = {
    [EMIT_STORED] = "stored",         [EMIT_NOT_A_TABLE] = "not_a_table",
    [EMIT_UNMAPPED] = "unmapped",     [EMIT_FILTERED] = "filtered",
    [EMIT_MAX_PAIRS] = "max_pairs",   [EMIT_STORE] = "store",
};

/* The pair for the emit table at idx: 0, or EMIT_UNMAPPED / EMIT_INVALID
 * (with *reject). */
static enum emit_refusal resolve_pair(lua_State *L, int idx, struct operator *op, struct ticker *t,
                                      enum ticker_reject *reject)
{
    int rc;

    lua_getfield(L, idx, "base");
    lua_getfield(L, idx, "quote");
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
        rc = op_pair_from_assets(op, lua_tostring(L, -2), lua_tostring(L, -1), t->pair,
                                 sizeof t->pair);
        lua_pop(L, 2);
    } else {
        lua_pop(L, 2);
        if (!t->symbol[0]) {
            rc = -EINVAL;
        } else if ((rc = op_pair_from_symbol(op, t->symbol, t->pair, sizeof t->pair)) == -ENOENT) {
            op_record_unmapped(op, t->symbol);
            return EMIT_UNMAPPED;
        }
    }
    if (rc < 0) {
        *reject = TICKER_REJECT_BAD_PAIR;
        return EMIT_INVALID;
    }
    return EMIT_STORED;
}

/* A price field: a string kept as written, a number rendered, nil = "". */
static int price_field(lua_State *L, int idx, const char *name, char *out, double *value)
{
    int type = lua_getfield(L, idx, name);
    int rc = 0;
    double v = 0;

    out[0] = '\0';
    if (type == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        rc = decimal_parse(s, len, out, TICKER_DEC_MAX, &v);
    } else if (type == LUA_TNUMBER) {
        v = lua_tonumber(L, -1);
        rc = decimal_from_double(v, out, TICKER_DEC_MAX);
    } else if (type != LUA_TNIL) {
        rc = -EINVAL;
    }
    lua_pop(L, 1);
    if (value) {
        *value = v;
    }
    return rc < 0 ? rc : 0;
}

static int ts_field(lua_State *L, int idx, int64_t *ts)
{
    int type = lua_getfield(L, idx, "ts");
    int rc = 0;
    *ts = TICKER_TS_NONE;
    if (type == LUA_TNUMBER) {
        lua_Integer i;
        if (lua_isinteger(L, -1)) {
            *ts = lua_tointeger(L, -1);
        } else if (lua_numbertointeger(lua_tonumber(L, -1), &i) &&
                   (lua_Number)i == lua_tonumber(L, -1)) {
            *ts = i;
        } else {
            rc = -EINVAL;
        }
    } else if (type != LUA_TNIL) {
        rc = -EINVAL;
    }
    lua_pop(L, 1);
    return rc;
}

static bool pair_allowed(const struct operator *op, const char *pair)
{
    if (op->spec.n_pairs == 0) {
        return true;
    }
    for (size_t i = 0; i < op->spec.n_pairs; i++) {
        if (strcmp(op->spec.pairs[i], pair) == 0) {
            return true;
        }
    }
    return false;
}

static void keep(char *field, const char *stored)
{
    if (!field[0]) {
        memcpy(field, stored, TICKER_DEC_MAX);
    }
}

/* Fields an emit leaves out keep their stored values, so a stream that
 * delivers bid and ask and a poll that delivers the 24 h volume combine into
 * one ticker. A side's size travels with its price; ts never carries over
 * (it dates the emit that gave it). */
static void merge_stored(struct ticker *t, const struct ticker *old)
{
    if (!t->bid[0]) {
        keep(t->bid, old->bid);
        keep(t->bid_size, old->bid_size);
        t->bid_value = old->bid_value;
    }
    if (!t->ask[0]) {
        keep(t->ask, old->ask);
        keep(t->ask_size, old->ask_size);
        t->ask_value = old->ask_value;
    }
    keep(t->last, old->last);
    keep(t->volume, old->volume);
}

/* Reads the emit table at idx into t. */
static enum emit_refusal read_ticker(lua_State *L, int idx, struct operator *op, struct ticker *t,
                                     enum ticker_reject *reject)
{
    memset(t, 0, sizeof *t);
    /* The name was checked against [a-z0-9_]{1,31} when the operator loaded. */
    memcpy(t->exchange, op->spec.name, strlen(op->spec.name) + 1);
    t->source = op->emit_source;
    t->received = loop_wall_ms();

    if (lua_getfield(L, idx, "symbol") == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (len >= sizeof t->symbol) {
            lua_pop(L, 1);
            *reject = TICKER_REJECT_TOO_LONG;
            return EMIT_INVALID;
        }
        memcpy(t->symbol, s, len + 1);
    }
    lua_pop(L, 1);
    enum emit_refusal why = resolve_pair(L, idx, op, t, reject);
    if (why != EMIT_STORED) {
        return why;
    }
    if (price_field(L, idx, "bid", t->bid, &t->bid_value) < 0 ||
        price_field(L, idx, "ask", t->ask, &t->ask_value) < 0 ||
        price_field(L, idx, "bid_size", t->bid_size, NULL) < 0 ||
        price_field(L, idx, "ask_size", t->ask_size, NULL) < 0 ||
        price_field(L, idx, "last", t->last, NULL) < 0 ||
        price_field(L, idx, "volume", t->volume, NULL) < 0 || ts_field(L, idx, &t->ts) < 0) {
        *reject = TICKER_REJECT_BAD_NUMBER;
        return EMIT_INVALID;
    }
    return EMIT_STORED;
}

/* A new key over max_pairs? Only a key that is not stored yet can be. */
static bool over_max_pairs(struct operator *op)
{
    struct store_exchange_stats stats;
    return store_exchange_stats(op->env.store, op->spec.name, &stats) == 0 &&
           stats.tickers >= (uint64_t)op->spec.max_pairs;
}

static void batch_add(struct operator *op, const struct ticker *t, bool changed)
{
    struct op_batch *b = &op->batch;
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->t = xrealloc(b->t, b->cap * sizeof *b->t);
        b->changed = xrealloc(b->changed, b->cap * sizeof *b->changed);
    }
    b->t[b->n] = *t;
    b->changed[b->n++] = changed;
}

/* One emit: stored (into the batch) or the reason it was not. */
static enum emit_refusal emit_one(lua_State *L, int idx, struct operator *op,
                                  enum ticker_reject *reject)
{
    struct ticker t, old;
    struct store_ref ref;

    *reject = TICKER_OK;
    op->facts.emit_attempts++;
    if (!lua_istable(L, idx)) {
        return EMIT_NOT_A_TABLE;
    }
    enum emit_refusal why = read_ticker(L, idx, op, &t, reject);
    if (why != EMIT_STORED) {
        return why;
    }
    if (!pair_allowed(op, t.pair)) {
        op->facts.filtered++;
        return EMIT_FILTERED;
    }
    bool stored = store_find(op->env.store, t.exchange, t.pair, &old, &ref) == 1;
    if (stored) {
        merge_stored(&t, &old);
    }
    *reject = ticker_validate(&t);
    if (*reject != TICKER_OK) {
        return EMIT_INVALID;
    }
    if (!stored && over_max_pairs(op)) {
        op->facts.over_max_pairs++;
        return EMIT_MAX_PAIRS;
    }
    int changed = store_put_ref(op->env.store, &ref, &t);
    if (changed < 0) {
        return EMIT_STORE;
    }
    op->facts.emitted++;
    op_record_data(op, &t);
    batch_add(op, &t, changed > 0);
    return EMIT_STORED;
}

/* Counts a refusal where the API shows it; returns its name for Lua. */
static const char *refused(struct operator *op, enum emit_refusal why, enum ticker_reject reject)
{
    if (why == EMIT_INVALID) {
        store_count_reject(op->env.store, op->spec.name, reject);
        return ticker_reject_name(reject);
    }
    return refusal_names[why];
}

static void end_batch(struct operator *op)
{
    if (op->batch.n && op->env.on_batch) {
        op->env.on_batch(op, op->batch.t, op->batch.changed, op->batch.n, op->env.ctx);
    }
    op->batch.n = 0;
}

static int x_emit(lua_State *L)
{
    struct operator *op = op_self(L);
    enum ticker_reject reject;

    luaL_checktype(L, 1, LUA_TTABLE);
    enum emit_refusal why = emit_one(L, 1, op, &reject);
    end_batch(op);
    if (why != EMIT_STORED) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, refused(op, why, reject));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int x_emit_many(lua_State *L)
{
    struct operator *op = op_self(L);
    enum ticker_reject reject;
    lua_Integer accepted = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        enum emit_refusal why = emit_one(L, lua_gettop(L), op, &reject);
        lua_pop(L, 1);
        if (why == EMIT_STORED) {
            accepted++;
        } else {
            refused(op, why, reject);
        }
    }
    end_batch(op);
    lua_pushinteger(L, accepted);
    lua_pushinteger(L, n - accepted);
    return 2;
}

void op_emit_open(lua_State *L, struct operator *op)
{
    lua_pushlightuserdata(L, op);
    lua_pushcclosure(L, x_emit, 1);
    lua_setfield(L, -2, "emit");
    lua_pushlightuserdata(L, op);
    lua_pushcclosure(L, x_emit_many, 1);
    lua_setfield(L, -2, "emit_many");
}
