/*
 * lua_zlib: the `x.inflate` / `x.gunzip` Lua module, decompression for
 * operators whose exchanges send compressed frames (HTX gzips every WebSocket
 * message; OKX and others send raw deflate).
 *
 * Output is capped (8 MiB unless the caller asks for less or more, never more
 * than 64 MiB), so a hostile or broken frame costs at most the cap in memory
 * and returns nil and a message instead. zlib's own state lives in a Lua
 * userdata, so a Lua error mid-call (the operator's memory cap refusing the
 * output buffer) still releases it.
 *
 * Called only on the engine thread, from whichever lua_State opened it.
 */
#ifndef RX_LUA_ZLIB_H
#define RX_LUA_ZLIB_H

#include <lua.h>

/* Push a new table: inflate, gunzip. Use with luaL_requiref. */
int luaopen_rx_zlib(lua_State *L);

#endif
