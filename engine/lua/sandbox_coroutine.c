/*
 * sandbox_coroutine: the coroutine library an operator sees. A small Lua
 * prelude over the stock functions, held in upvalues, with no _ENV, so
 * nothing the operator does to its globals reaches it. When a coroutine the
 * operator resumed yields the engine's sentinel, resume/wrap mark it parked,
 * yield the sentinel and the values after it on up to the engine, and pass
 * the engine's answer back down, until the coroutine yields something else
 * or ends. An operator can resume or close only coroutines it created, and
 * none while parked (another callback could otherwise answer a request in
 * the engine's place). Ingest loop thread.
 */
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "sandbox_int.h"

/* ---------------------------------------------------------------------------
 * The coroutine wrapper. Stock functions and the sentinel arrive as
 * arguments and stay in upvalues; the chunk's _ENV is nil, so it depends on
 * no global an operator could touch.
 * ------------------------------------------------------------------------- */

static const char sandbox_coroutine_prelude[] =
    "local create, resume, yield, status, running, isyieldable, close,\n"
    "      sentinel, mine, error, type = ...\n"
    "local function refused(co)\n"
    "  local m = mine[co]\n"
    "  if m == 'parked' then\n"
    "    return 'cannot resume or close a coroutine that is waiting for the engine'\n"
    "  elseif not m and type(co) == 'thread' then\n"
    "    return 'cannot resume or close a coroutine the operator did not create'\n"
    "  end\n"
    "end\n"
    "local function unpark(co, ...)\n"
    "  mine[co] = true\n"
    "  return ...\n"
    "end\n"
    "local function relay(co, ok, ...)\n"
    "  if ok and ... == sentinel and status(co) == 'suspended' then\n"
    "    if not isyieldable() then\n"
    "      error('cannot wait for the engine here: this coroutine was resumed inside a C call"
    " (table.sort, string.gsub, a metamethod, a module body)', 0)\n"
    "    end\n"
    "    mine[co] = 'parked'\n"
    "    return relay(co, resume(co, unpark(co, yield(...))))\n"
    "  end\n"
    "  return ok, ...\n"
    "end\n"
    "local function finish(co, ok, ...)\n"
    "  if ok then return ... end\n"
    "  error((...), 2)\n"
    "end\n"
    "local lib = { yield = yield, status = status, running = running,\n"
    "              isyieldable = isyieldable }\n"
    "function lib.create(f)\n"
    "  local co = create(f)\n"
    "  mine[co] = true\n"
    "  return co\n"
    "end\n"
    "function lib.resume(co, ...)\n"
    "  local why = refused(co)\n"
    "  if why then return false, why end\n"
    "  return relay(co, resume(co, ...))\n"
    "end\n"
    "function lib.wrap(f)\n"
    "  local co = create(f)\n"
    "  mine[co] = true\n"
    "  return function(...)\n"
    "    local why = refused(co)\n"
    "    if why then error(why, 2) end\n"
    "    return finish(co, relay(co, resume(co, ...)))\n"
    "  end\n"
    "end\n"
    "function lib.close(co)\n"
    "  local why = refused(co)\n"
    "  if why then error(why, 2) end\n"
    "  if status(co) == 'dead' then return true end\n"
    "  return close(co)\n"
    "end\n"
    "return lib\n";

/*
 * The resume the prelude uses: while `co` runs, its primitives may yield to
 * the engine only if this thread can relay the yield on up, so a primitive
 * called in a coroutine resumed inside a C call (a table.sort comparator)
 * fails at its guard, before it starts any work. Upvalue 1: the stock resume.
 */
static int sandbox_co_resume(lua_State *L)
{
    struct sandbox *sb = sandbox_of(L);
    int saved = sb->may_yield;
    int n = lua_gettop(L);

    sb->may_yield = saved && lua_isyieldable(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    sb->may_yield = saved; /* an error skips this: the enclosing run restores it */
    return lua_gettop(L);
}

void sandbox_open_coroutine(lua_State *L, int base)
{
    static const char *const stock[] = {"create",  "resume",      "yield", "status",
                                        "running", "isyieldable", "close", NULL};
    int i, lib;

    if (luaL_loadbufferx(L, sandbox_coroutine_prelude, sizeof sandbox_coroutine_prelude - 1,
                         "=[sandbox coroutine]", "t") != LUA_OK) {
        lua_error(L);
    }
    lua_pushnil(L);
    lua_setupvalue(L, -2, 1); /* _ENV */
    lua_pushcfunction(L, luaopen_coroutine);
    lua_call(L, 0, 1);
    lib = lua_gettop(L);
    for (i = 0; stock[i]; i++) {
        lua_getfield(L, lib, stock[i]);
        if (strcmp(stock[i], "resume") == 0) {
            lua_pushcclosure(L, sandbox_co_resume, 1);
        }
    }
    lua_remove(L, lib);
    sandbox_push_yield_sentinel(L);
    lua_newtable(L); /* mine: the coroutines the operator created, weakly */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_getfield(L, base, "error");
    lua_getfield(L, base, "type");
    lua_call(L, 11, 1);
}
