/*
 * lua_emit: x.emit and x.emit_many, the only way data enters the store.
 *
 * An emit is hostile input twice over (exchange data, through operator
 * code), so everything is checked here: the pair is resolved from base and
 * quote through the aliases, or from the symbol through markets() — never
 * guessed; prices become decimal text (strings kept as written, numbers
 * rendered by decimal.c); ticker_validate refuses crossed, non-positive and
 * malformed quotes, counted per reason. Bad data is a return value, not a
 * Lua error: one odd message must not kill a stream.
 */
#include "operator_int.h"

#include <errno.h>
#include <lauxlib.h>
#include <string.h>

#include "decimal.h"
#include "store.h"

static struct operator *self(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* Upper-cased, aliased asset code into out; 0 or negative. */
static int canonical_asset(struct operator *op, const char *code, char *out, size_t cap)
{
    lua_State *L = op->L;
    char upper[TICKER_ASSET_MAX + 1];
    size_t n = code ? strlen(code) : 0;
    int top = lua_gettop(L);
    int rc = 0;

    if (n == 0 || n > TICKER_ASSET_MAX) {
        return -EINVAL;
    }
    for (size_t i = 0; i <= n; i++) {
        char c = code[i];
        upper[i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, op->table_ref);
    if (lua_getfield(L, -1, "aliases") == LUA_TTABLE &&
        lua_getfield(L, -1, upper) == LUA_TSTRING) {
        const char *alias = lua_tostring(L, -1);
        if (strlen(alias) >= cap) {
            rc = -ENOSPC;
        } else {
            memcpy(out, alias, strlen(alias) + 1);
        }
    } else if (n >= cap) {
        rc = -ENOSPC;
    } else {
        memcpy(out, upper, n + 1);
    }
    lua_settop(L, top);
    return rc;
}

int op_pair_from_assets(struct operator *op, const char *base, const char *quote, char *out,
                        size_t cap)
{
    char b[TICKER_ASSET_MAX + 1];
    char q[TICKER_ASSET_MAX + 1];
    char joined[TICKER_PAIR_MAX];

    if (canonical_asset(op, base, b, sizeof b) < 0 || canonical_asset(op, quote, q, sizeof q) < 0) {
        return -EINVAL;
    }
    snprintf(joined, sizeof joined, "%s_%s", b, q);
    if (!ticker_pair_valid(joined) || strlen(joined) >= cap) {
        return -EINVAL;
    }
    memcpy(out, joined, strlen(joined) + 1);
    return 0;
}

static void count_unmapped(struct operator *op, const char *symbol)
{
    struct op_facts *f = &op->facts;
    f->unmapped_total++;
    for (size_t i = 0; i < f->n_unmapped; i++) {
        if (strcmp(f->unmapped[i].symbol, symbol) == 0) {
            f->unmapped[i].count++;
            return;
        }
    }
    if (f->n_unmapped < OP_UNMAPPED_MAX) {
        snprintf(f->unmapped[f->n_unmapped].symbol, TICKER_SYMBOL_MAX, "%s", symbol);
        f->unmapped[f->n_unmapped++].count = 1;
    }
}

/* The pair for the emit table at idx; "" with *why set when none. */
static int resolve_pair(lua_State *L, int idx, struct operator *op, struct ticker *t)
{
    lua_getfield(L, idx, "base");
    lua_getfield(L, idx, "quote");
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
        int rc = op_pair_from_assets(op, lua_tostring(L, -2), lua_tostring(L, -1), t->pair,
                                     sizeof t->pair);
        lua_pop(L, 2);
        return rc;
    }
    lua_pop(L, 2);
    if (!t->symbol[0]) {
        return -EINVAL;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, op->symbols_ref);
    if (lua_getfield(L, -1, t->symbol) != LUA_TSTRING) {
        lua_pop(L, 2);
        count_unmapped(op, t->symbol);
        return -ENOENT;
    }
    size_t len;
    const char *pair = lua_tolstring(L, -1, &len);
    int rc = len < sizeof t->pair ? 0 : -ENOSPC;
    if (rc == 0) {
        memcpy(t->pair, pair, len + 1);
    }
    lua_pop(L, 2);
    return rc;
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

static bool over_max_pairs(struct operator *op, const struct ticker *t)
{
    struct store_exchange_stats stats;
    struct ticker existing;

    if (store_exchange_stats(op->env.store, t->exchange, &stats) != 0 ||
        stats.tickers < (uint64_t)op->spec.max_pairs) {
        return false;
    }
    return store_get(op->env.store, t->exchange, t->pair, &existing) != 0;
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
static void merge_stored(struct operator *op, struct ticker *t)
{
    struct ticker old;
    if ((t->bid[0] && t->ask[0] && t->last[0] && t->volume[0]) ||
        store_get(op->env.store, t->exchange, t->pair, &old) != 0) {
        return;
    }
    if (!t->bid[0]) {
        keep(t->bid, old.bid);
        keep(t->bid_size, old.bid_size);
        t->bid_value = old.bid_value;
    }
    if (!t->ask[0]) {
        keep(t->ask, old.ask);
        keep(t->ask_size, old.ask_size);
        t->ask_value = old.ask_value;
    }
    keep(t->last, old.last);
    keep(t->volume, old.volume);
}

/* Reads the emit table at idx into t; the reason text when it fails. */
static const char *read_ticker(lua_State *L, int idx, struct operator *op, struct ticker *t)
{
    memset(t, 0, sizeof *t);
    /* The name was checked against [a-z0-9_]{1,31} when the operator loaded. */
    memcpy(t->exchange, op->spec.name, strlen(op->spec.name) + 1);
    t->source = op->emit_source;
    t->received = op_now_ms();

    if (lua_getfield(L, idx, "symbol") == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (len >= sizeof t->symbol) {
            lua_pop(L, 1);
            return ticker_reject_name(TICKER_REJECT_TOO_LONG);
        }
        memcpy(t->symbol, s, len + 1);
    }
    lua_pop(L, 1);
    int rc = resolve_pair(L, idx, op, t);
    if (rc == -ENOENT) {
        return "unmapped";
    }
    if (rc < 0) {
        return ticker_reject_name(TICKER_REJECT_BAD_PAIR);
    }
    if (price_field(L, idx, "bid", t->bid, &t->bid_value) < 0 ||
        price_field(L, idx, "ask", t->ask, &t->ask_value) < 0 ||
        price_field(L, idx, "bid_size", t->bid_size, NULL) < 0 ||
        price_field(L, idx, "ask_size", t->ask_size, NULL) < 0 ||
        price_field(L, idx, "last", t->last, NULL) < 0 ||
        price_field(L, idx, "volume", t->volume, NULL) < 0 || ts_field(L, idx, &t->ts) < 0) {
        return ticker_reject_name(TICKER_REJECT_BAD_NUMBER);
    }
    merge_stored(op, t);
    return NULL;
}

/* One emit: 1 stored and changed, 0 stored unchanged, negative refused
 * (with *why). */
static int emit_one(lua_State *L, int idx, struct operator *op, const char **why)
{
    struct ticker t;
    enum ticker_reject reject;

    if (!lua_istable(L, idx)) {
        *why = "not_a_table";
        return -1;
    }
    *why = read_ticker(L, idx, op, &t);
    if (*why) {
        if (strcmp(*why, "unmapped") != 0) {
            store_count_reject(op->env.store, op->spec.name,
                               strcmp(*why, "too_long") == 0   ? TICKER_REJECT_TOO_LONG
                               : strcmp(*why, "bad_pair") == 0 ? TICKER_REJECT_BAD_PAIR
                                                               : TICKER_REJECT_BAD_NUMBER);
        }
        return -1;
    }
    if (!pair_allowed(op, t.pair)) {
        op->facts.filtered++;
        *why = "filtered";
        return -1;
    }
    reject = ticker_validate(&t);
    if (reject != TICKER_OK) {
        store_count_reject(op->env.store, op->spec.name, reject);
        *why = ticker_reject_name(reject);
        return -1;
    }
    if (over_max_pairs(op, &t)) {
        op->facts.over_max_pairs++;
        *why = "max_pairs";
        return -1;
    }
    int changed = store_put(op->env.store, &t);
    if (changed < 0) {
        *why = "store";
        return -1;
    }
    op->facts.emitted++;
    op_record_data(op, &t);
    if (op->env.on_ticker) {
        op->env.on_ticker(op, &t, changed, op->env.ctx);
    }
    return changed;
}

static void end_batch(struct operator *op, int changed)
{
    if (changed > 0 && op->env.on_batch) {
        op->env.on_batch(op, changed, op->env.ctx);
    }
}

static int x_emit(lua_State *L)
{
    struct operator *op = self(L);
    const char *why = NULL;
    luaL_checktype(L, 1, LUA_TTABLE);
    int rc = emit_one(L, 1, op, &why);
    end_batch(op, rc > 0);
    if (rc < 0) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, why);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int x_emit_many(lua_State *L)
{
    struct operator *op = self(L);
    int accepted = 0, changed = 0;
    const char *why;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        int rc = emit_one(L, lua_gettop(L), op, &why);
        lua_pop(L, 1);
        accepted += rc >= 0;
        changed += rc > 0;
    }
    end_batch(op, changed);
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
