/*
 * x_ws: the `ws` handed to stream callbacks: ws:send(text[, binary]) and
 * ws:close().
 *
 * A full userdata holding the connection. When the connection closes the
 * pointer is cleared (op_ws_detach), so an operator that kept `ws` in a
 * table gets nil, "closed" from send instead of touching a connection
 * that is gone.
 */
#include "operator_int.h"

#include <lauxlib.h>

#include "net/ws_client.h"

#define WS_META "rx.ws"

/* The userdata: the connection, and whose it is (for the traffic tap). */
struct ws_box {
    struct ws_conn *conn;
    struct operator *op;
};

static struct ws_conn **check_ws(lua_State *L)
{
    return &((struct ws_box *)luaL_checkudata(L, 1, WS_META))->conn;
}

static int ws_send(lua_State *L)
{
    struct ws_conn **conn = check_ws(L);
    size_t len;
    const char *msg = luaL_checklstring(L, 2, &len);
    int binary = lua_toboolean(L, 3);

    if (!*conn || ws_conn_send(*conn, msg, len, binary) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, *conn ? "send queue full" : "closed");
        return 2;
    }
    op_stream_sent(((struct ws_box *)conn)->op, *conn, msg, len, binary);
    lua_pushboolean(L, 1);
    return 1;
}

static int ws_close(lua_State *L)
{
    struct ws_conn **conn = check_ws(L);
    if (*conn) {
        ws_conn_close(*conn, 1000, "closed by the operator");
    }
    return 0;
}

static int ws_tostring(lua_State *L)
{
    struct ws_conn **conn = check_ws(L);
    lua_pushstring(L, *conn ? "ws (open)" : "ws (closed)");
    return 1;
}

void op_ws_push(lua_State *L, struct operator *op, struct ws_conn *conn)
{
    struct ws_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->conn = conn;
    box->op = op;
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

void op_ws_detach(lua_State *L, int idx)
{
    struct ws_box *box = luaL_testudata(L, idx, WS_META);
    if (box) {
        box->conn = NULL;
    }
}
