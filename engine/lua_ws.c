/*
 * lua_ws: the `ws` handed to stream callbacks: ws:send(text) and
 * ws:close().
 *
 * A full userdata holding a pointer to its stream. When the connection
 * closes the pointer is cleared (lua_ws_detach), so an operator that kept
 * `ws` in a table gets nil, "closed" from send instead of touching a
 * connection that is gone.
 */
#include "operator_int.h"

#include <lauxlib.h>

#define WS_META "rx.ws"

static struct op_stream **check_ws(lua_State *L)
{
    return luaL_checkudata(L, 1, WS_META);
}

static int ws_send(lua_State *L)
{
    struct op_stream **s = check_ws(L);
    size_t len;
    const char *msg = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);

    if (!*s || op_stream_send(*s, msg, len, binary) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, *s ? "send queue full" : "closed");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int ws_close(lua_State *L)
{
    struct op_stream **s = check_ws(L);
    if (*s) {
        op_stream_close(*s);
    }
    return 0;
}

static int ws_tostring(lua_State *L)
{
    struct op_stream **s = check_ws(L);
    lua_pushstring(L, *s ? "ws (open)" : "ws (closed)");
    return 1;
}

void lua_ws_push(lua_State *L, struct op_stream *s)
{
    struct op_stream **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = s;
    if (luaL_newmetatable(L, WS_META)) {
        static const luaL_Reg methods[] = {{"send", ws_send}, {"close", ws_close}, {NULL, NULL}};
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, ws_tostring);
        lua_setfield(L, -2, "__tostring");
        /* getmetatable(ws) must not hand the operator the shared table. */
        lua_pushliteral(L, "ws");
        lua_setfield(L, -2, "__metatable");
    }
    lua_setmetatable(L, -2);
}

void lua_ws_detach(lua_State *L, int idx)
{
    struct op_stream **box = luaL_testudata(L, idx, WS_META);
    if (box) {
        *box = NULL;
    }
}
