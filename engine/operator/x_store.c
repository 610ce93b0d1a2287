/*
 * x_store: read-only views of the store (x.store) and the small
 * per-operator values (x.kv).
 *
 * x.store lets derived operators (an index over other exchanges) read what
 * is stored; it copies tickers into Lua tables and can change nothing.
 * x.kv.set/get/del work on the operator's own namespace only.
 */
#include "operator_int.h"

#include <errno.h>
#include <lauxlib.h>
#include <string.h>

#include "core/loop.h"
#include "store/kv.h"
#include "store/store.h"

static void set_text(lua_State *L, const char *name, const char *value)
{
    if (value[0]) {
        lua_pushstring(L, value);
        lua_setfield(L, -2, name);
    }
}

static void push_ticker(lua_State *L, const struct ticker *t)
{
    lua_createtable(L, 0, 14);
    set_text(L, "exchange", t->exchange);
    set_text(L, "pair", t->pair);
    set_text(L, "symbol", t->symbol);
    set_text(L, "bid", t->bid);
    set_text(L, "ask", t->ask);
    set_text(L, "bid_size", t->bid_size);
    set_text(L, "ask_size", t->ask_size);
    set_text(L, "last", t->last);
    set_text(L, "volume", t->volume);
    if (t->ts != TICKER_TS_NONE) {
        lua_pushinteger(L, t->ts);
        lua_setfield(L, -2, "ts");
    }
    lua_pushinteger(L, t->received);
    lua_setfield(L, -2, "received");
    lua_pushinteger(L, (lua_Integer)t->v);
    lua_setfield(L, -2, "v");
    lua_pushnumber(L, ticker_mid(t));
    lua_setfield(L, -2, "mid");
}

static int x_store_get(lua_State *L)
{
    struct operator *op = op_self(L);
    struct ticker t;
    const char *exchange = luaL_checkstring(L, 1);
    const char *pair = luaL_checkstring(L, 2);
    if (store_get(op_read_store(op), exchange, pair, &t) != 0) {
        lua_pushnil(L);
        return 1;
    }
    push_ticker(L, &t);
    return 1;
}

struct scan_ctx {
    lua_State *L;
    lua_Integer n;
};

static int add_ticker(const struct ticker *t, void *data)
{
    struct scan_ctx *c = data;
    if (!lua_checkstack(c->L, 4)) {
        return 1;
    }
    push_ticker(c->L, t);
    lua_rawseti(c->L, -2, ++c->n);
    return 0;
}

static int x_store_pairs(lua_State *L)
{
    struct operator *op = op_self(L);
    struct scan_ctx c = {L, 0};
    const char *exchange = luaL_checkstring(L, 1);
    lua_newtable(L);
    store_scan(op_read_store(op), exchange, add_ticker, &c);
    return 1;
}

static int x_kv_get(lua_State *L)
{
    struct operator *op = op_self(L);
    size_t len;
    const char *v = kv_get(op->env.kv, op->spec.name, luaL_checkstring(L, 1), &len, loop_wall_ms());
    if (!v) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, v, len);
    return 1;
}

static int x_kv_set(lua_State *L)
{
    struct operator *op = op_self(L);
    size_t len;
    const char *key = luaL_checkstring(L, 1);
    const char *value = luaL_checklstring(L, 2, &len);
    lua_Number ttl = luaL_optnumber(L, 3, 0);
    int rc = kv_set(op->env.kv, op->spec.name, key, value, len, (int64_t)(ttl * 1000.0),
                    loop_wall_ms());
    if (rc != 0) {
        return luaL_error(L, "x.kv.set: %s", rc == -E2BIG ? "key or value too large"
                                                          : "too many keys for this operator");
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int x_kv_del(lua_State *L)
{
    struct operator *op = op_self(L);
    kv_del(op->env.kv, op->spec.name, luaL_checkstring(L, 1));
    return 0;
}

static void open_table(lua_State *L, struct operator *op, const char *name, const luaL_Reg *fns)
{
    lua_newtable(L);
    for (; fns->name; fns++) {
        lua_pushlightuserdata(L, op);
        lua_pushcclosure(L, fns->func, 1);
        lua_setfield(L, -2, fns->name);
    }
    lua_setfield(L, -2, name);
}

void op_store_open(lua_State *L, struct operator *op)
{
    static const luaL_Reg store_fns[] = {
        {"get", x_store_get}, {"pairs", x_store_pairs}, {NULL, NULL}};
    static const luaL_Reg kv_fns[] = {
        {"get", x_kv_get}, {"set", x_kv_set}, {"del", x_kv_del}, {NULL, NULL}};
    open_table(L, op, "store", store_fns);
    open_table(L, op, "kv", kv_fns);
}
