/*
 * x_ctx: the context table `x` handed to every operator callback.
 *
 * Each function is a C closure whose first upvalue is the operator (a light
 * userdata), so a call always knows which operator it serves without any
 * global lookup. The primitives that can wait (x.http, x.sleep) live in
 * x_http.c, emits in x_emit.c, storage views in x_store.c; this file
 * assembles the table and holds the small ones.
 */
#include "operator_int.h"

#include <lauxlib.h>
#include <string.h>

#include "core/loop.h"
#include "config/config.h"
#include "core/decimal.h"
#include "core/log.h"
#include "lua/lua_crypto.h"
#include "lua/lua_zlib.h"
#include "lua/sandbox.h"

static int log_at(lua_State *L, enum log_level level)
{
    struct operator *op = op_self(L);
    luaL_Buffer b;
    int n = lua_gettop(L);

    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) {
            luaL_addchar(&b, ' ');
        }
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    log_write(level, op->component, "%s", lua_tostring(L, -1));
    return 0;
}

static int x_log_debug(lua_State *L)
{
    return log_at(L, LOG_DEBUG);
}

static int x_log_info(lua_State *L)
{
    return log_at(L, LOG_INFO);
}

static int x_log_warn(lua_State *L)
{
    return log_at(L, LOG_WARN);
}

static int x_log_error(lua_State *L)
{
    return log_at(L, LOG_ERROR);
}

static int x_now(lua_State *L)
{
    lua_pushinteger(L, loop_wall_ms());
    return 1;
}

static int x_num(lua_State *L)
{
    char text[64];
    lua_Number n = luaL_checknumber(L, 1);
    if (decimal_from_double(n, text, sizeof text) < 0) {
        return luaL_error(L, "x.num: %f has no decimal form", n);
    }
    lua_pushstring(L, text);
    return 1;
}

static void set_closures(lua_State *L, struct operator *op, const luaL_Reg *fns)
{
    for (; fns->name; fns++) {
        lua_pushlightuserdata(L, op);
        lua_pushcclosure(L, fns->func, 1);
        lua_setfield(L, -2, fns->name);
    }
}

static void push_string_list(lua_State *L, char **items, size_t n)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, items[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* x.op: the operator's own table with the config's overrides applied, so
 * code reads one place (x.op.rest) whatever configured it. */
static void push_op_view(lua_State *L, struct operator *op)
{
    const struct config_operator *co =
        op->env.config ? config_operator_find(op->env.config, op->spec.name) : NULL;

    lua_newtable(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, op->table_ref);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -5);
    }
    lua_pop(L, 1);
    if (op->spec.rest) {
        lua_pushstring(L, op->spec.rest);
        lua_setfield(L, -2, "rest");
    }
    if (op->spec.ws) {
        lua_pushstring(L, op->spec.ws);
        lua_setfield(L, -2, "ws");
    }
    lua_pushnumber(L, op->spec.poll_every);
    lua_setfield(L, -2, "poll_every");
    push_string_list(L, op->spec.pairs, op->spec.n_pairs);
    lua_setfield(L, -2, "pairs");
    if (co && strcmp(co->options_json, "{}") != 0) {
        sandbox_push_cjson(L);
        lua_getfield(L, -1, "decode");
        lua_pushstring(L, co->options_json);
        if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
            lua_setfield(L, -3, "options");
        } else {
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
}

void op_ctx_push(struct operator *op)
{
    lua_State *L = op->L;
    static const luaL_Reg small[] = {
        {"now", x_now},
        {"num", x_num},
        {NULL, NULL},
    };
    static const luaL_Reg logs[] = {
        {"debug", x_log_debug}, {"info", x_log_info}, {"warn", x_log_warn},
        {"error", x_log_error}, {NULL, NULL},
    };

    lua_newtable(L);
    set_closures(L, op, small);
    lua_newtable(L);
    set_closures(L, op, logs);
    lua_setfield(L, -2, "log");
    sandbox_push_cjson(L);
    lua_setfield(L, -2, "json");
    luaL_requiref(L, "rx.crypto", luaopen_rx_crypto, 0);
    lua_setfield(L, -2, "crypto");
    luaL_requiref(L, "rx.zlib", luaopen_rx_zlib, 0);
    lua_getfield(L, -1, "inflate");
    lua_setfield(L, -3, "inflate");
    lua_getfield(L, -1, "gunzip");
    lua_setfield(L, -3, "gunzip");
    lua_pop(L, 1);
    push_op_view(L, op);
    lua_setfield(L, -2, "op");
    lua_newtable(L);
    lua_setfield(L, -2, "state");
    op_emit_open(L, op);
    op_http_open(L, op);
    op_store_open(L, op);
}
