/*
 * sandbox_lib: what an operator sees in its sandboxed state.
 *
 * Everything is copied from allow-lists into fresh tables, never deleted
 * from the stock ones, so a library function added by a later Lua cannot
 * slip in. The global table the operator sees is an empty proxy whose
 * metatable (protected by __metatable) reads through to the real globals
 * and refuses every assignment, so an operator can neither create a global
 * nor replace a library; rawset refuses the proxy too. The library tables
 * (string, table, math, utf8, os, coroutine) are such proxies as well, so
 * `string.rep = nil` fails instead of changing the library under the
 * operator's own lib/ modules; the string metatable's __index is the real
 * string table, out of reach, so methods on strings cost no extra step.
 * The real globals:
 *
 * - base without dofile, loadfile and warn; type pushes interned names; load
 *   forces text chunks and the sandbox globals; print goes to the engine's
 *   callback; collectgarbage offers "count" and "collect"; setmetatable
 *   refuses __gc (a finalizer runs at arbitrary moments, even inside the
 *   engine's own C calls, and always with hooks off); xpcall skips the
 *   operator's handler once the run is killed (see sandbox.c); require is
 *   sandbox_require.c's.
 * - string without dump, with the budgeted pattern functions of lpattern and
 *   a size-capped rep. The string metatable gets a __metatable field, so
 *   getmetatable("") returns false and nothing can reach it.
 * - table, with the C loops the count hook cannot see (move, insert, remove,
 *   sort) charged against the budget before they start; math; utf8;
 *   os.time/clock/date.
 * - coroutine, wrapped by sandbox_coroutine.c. cjson is never a global: the
 *   engine asks sandbox_push_cjson() (sandbox_json.c) for x.json.
 */
#include "sandbox.h"

#include <limits.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lpattern.h"
#include "sandbox_int.h"

/* ---------------------------------------------------------------------------
 * Base library replacements.
 * ------------------------------------------------------------------------- */

/* load(chunk [, chunkname [, mode [, env]]]): always text; the environment
 * defaults to the sandbox globals. An explicit env is honoured: it can only
 * hold values the operator already has. Upvalue 1: the stock load. */
static int sandbox_base_load(lua_State *L)
{
    int has_env = !lua_isnone(L, 4);

    if (lua_type(L, 1) == LUA_TSTRING) {
        sandbox_charge(L, (long)luaL_len(L, 1)); /* compiling is C work */
    }
    lua_settop(L, 4);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushliteral(L, "t");
    if (has_env) {
        lua_pushvalue(L, 4);
    } else {
        lua_pushglobaltable(L);
    }
    lua_call(L, 4, LUA_MULTRET);
    return lua_gettop(L) - 4;
}

static int sandbox_base_print(lua_State *L)
{
    struct sandbox *sb = sandbox_of(L);
    int i, n = lua_gettop(L);
    luaL_Buffer b;
    size_t len;
    const char *text;

    if (!sb->print_fn) {
        return 0;
    }
    luaL_buffinit(L, &b);
    for (i = 1; i <= n; i++) {
        if (i > 1) {
            luaL_addchar(&b, '\t');
        }
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    text = lua_tolstring(L, -1, &len);
    sb->print_fn(sb->print_ud, text, len);
    return 0;
}

/* collectgarbage(["collect" | "count"]); a collection is charged by heap size. */
static int sandbox_base_collectgarbage(lua_State *L)
{
    static const char *const opts[] = {"collect", "count", NULL};
    struct sandbox *sb = sandbox_of(L);

    if (luaL_checkoption(L, 1, "collect", opts) == 1) {
        int kb = lua_gc(L, LUA_GCCOUNT);
        int rest = lua_gc(L, LUA_GCCOUNTB);
        lua_pushnumber(L, (lua_Number)kb + (lua_Number)rest / 1024.0);
        return 1;
    }
    sandbox_charge(L, (long)(sb->used / SANDBOX_GC_BYTES_PER_INSTRUCTION));
    lua_gc(L, LUA_GCCOLLECT);
    lua_pushinteger(L, 0);
    return 1;
}

/* setmetatable as in lbaselib, refusing __gc (finalizers would run Lua at
 * arbitrary moments, outside any run, even inside the engine's C calls). */
static int sandbox_base_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);

    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) {
            return luaL_error(L, "__gc metamethods are not allowed in the sandbox");
        }
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL) {
        return luaL_error(L, "cannot change a protected metatable");
    }
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* type, as in lbaselib, but the names are pushed from upvalues (one per
 * type, in type order): the stock one interns its C string again on every
 * call, and operators check the type of every field of every message. */
static int sandbox_base_type(lua_State *L)
{
    int t = lua_type(L, 1);

    luaL_argcheck(L, t != LUA_TNONE, 1, "value expected");
    lua_pushvalue(L, lua_upvalueindex(t + 1));
    return 1;
}

/* Message handler xpcall installs in front of the operator's. A kill is
 * raised from the count hook, and Lua runs a message handler before the
 * pcall that restores hooks is reached: the operator's handler would run
 * with hooks off. So while the run is killed it is skipped. Upvalue 1: the
 * operator's handler. */
static int sandbox_xpcall_handler(lua_State *L)
{
    if (sandbox_of(L)->killed) {
        lua_settop(L, 1);
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int sandbox_xpcall_done(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

/* xpcall as in lbaselib (yieldable), with the handler wrapped. */
static int sandbox_base_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    int status;

    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, sandbox_xpcall_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2);
    status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, sandbox_xpcall_done);
    return sandbox_xpcall_done(L, status, 2);
}

/* Raises the error for an assignment to global `key` (at idx); `globals` is
 * the index of the real global table. */
static int sandbox_global_error(lua_State *L, int globals, int key)
{
    const char *name = lua_type(L, key) == LUA_TSTRING ? lua_tostring(L, key) : "?";
    int exists;

    lua_pushvalue(L, key);
    exists = lua_rawget(L, globals) != LUA_TNIL;
    lua_pop(L, 1);
    if (exists) {
        return luaL_error(L, "attempt to modify global '%s' (the global table is read-only)", name);
    }
    return luaL_error(L, "attempt to create global '%s' (operators use locals)", name);
}

/* Raises the error for an assignment to field `key` (at idx) of the
 * library whose name is at idx `name`. */
static int sandbox_library_error(lua_State *L, int name, int key)
{
    const char *field = lua_type(L, key) == LUA_TSTRING ? lua_tostring(L, key) : "?";

    return luaL_error(L, "attempt to modify library '%s' (field '%s'; libraries are read-only)",
                      lua_tostring(L, name), field);
}

/* rawset, refusing the global proxy and the library proxies. Upvalue 1:
 * the proxy; 2: the globals; 3: the library proxies (proxy -> name). */
static int sandbox_base_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (lua_rawequal(L, 1, lua_upvalueindex(1))) {
        return sandbox_global_error(L, lua_upvalueindex(2), 2);
    }
    lua_settop(L, 3);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, lua_upvalueindex(3)) == LUA_TSTRING) {
        return sandbox_library_error(L, 4, 2);
    }
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

/* ---------------------------------------------------------------------------
 * String and table replacements for C loops the count hook cannot see.
 * ------------------------------------------------------------------------- */

static int sandbox_string_rep(lua_State *L)
{
    struct sandbox *sb = sandbox_of(L);
    size_t l, lsep, total;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    luaL_Buffer b;
    char *p;

    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    if (l + lsep < l || (lua_Unsigned)n > (sb->rep_max + lsep) / (l + lsep)) {
        return luaL_error(L, "string.rep result too large (the limit is %d bytes)",
                          (int)sb->rep_max);
    }
    total = (size_t)n * (l + lsep) - lsep;
    sandbox_charge(L, (long)(total / SANDBOX_COPY_BYTES_PER_INSTRUCTION));
    p = luaL_buffinitsize(L, &b, total);
    while (n-- > 1) {
        memcpy(p, s, l);
        p += l;
        memcpy(p, sep, lsep);
        p += lsep;
    }
    memcpy(p, s, l);
    luaL_pushresultsize(&b, total);
    return 1;
}

/* Calls the stock function (upvalue 1) with this call's arguments. */
static int sandbox_call_stock(lua_State *L)
{
    int n = lua_gettop(L);

    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static long sandbox_span(lua_Integer from, lua_Integer to)
{
    lua_Unsigned d;

    if (to < from) {
        return 0;
    }
    d = (lua_Unsigned)to - (lua_Unsigned)from;
    return d >= (lua_Unsigned)LONG_MAX ? LONG_MAX : (long)d + 1;
}

/* table.move(a1, f, e, t [, a2]) copies e - f + 1 elements in C. */
static int sandbox_table_move(lua_State *L)
{
    int isnum_f, isnum_e;
    lua_Integer f = lua_tointegerx(L, 2, &isnum_f);
    lua_Integer e = lua_tointegerx(L, 3, &isnum_e);

    if (isnum_f && isnum_e) {
        sandbox_charge(L, sandbox_span(f, e));
    }
    return sandbox_call_stock(L);
}

/* table.insert(t, pos, v) and table.remove(t, pos) shift #t - pos elements,
 * and #t is whatever __len says. Costs __len one extra call. */
static int sandbox_table_shift(lua_State *L)
{
    int isnum;
    lua_Integer pos, size;

    if (lua_type(L, 1) == LUA_TTABLE &&
        lua_gettop(L) >= 2 + lua_toboolean(L, lua_upvalueindex(2))) {
        pos = lua_tointegerx(L, 2, &isnum);
        if (isnum) {
            size = luaL_len(L, 1);
            sandbox_charge(L, sandbox_span(pos, size));
        }
    }
    return sandbox_call_stock(L);
}

static int sandbox_table_sort(lua_State *L)
{
    lua_Integer n;
    long cost = 0;

    if (lua_type(L, 1) == LUA_TTABLE) {
        n = luaL_len(L, 1);
        if (n > 1) {
            long bits = 0;
            for (lua_Integer m = n; m > 0; m >>= 1) {
                bits++;
            }
            cost = n > LONG_MAX / bits ? LONG_MAX : (long)n * bits;
        }
        sandbox_charge(L, cost);
    }
    return sandbox_call_stock(L);
}

/* ---------------------------------------------------------------------------
 * The locked global table: an empty proxy over the real globals.
 * ------------------------------------------------------------------------- */

/* __newindex of the proxy. Upvalue 1: the real globals. */
static int sandbox_globals_newindex(lua_State *L)
{
    return sandbox_global_error(L, lua_upvalueindex(1), 2);
}

/* The iterator pairs(_G) returns. Upvalue 1: the real globals (never
 * handed out, or the operator could write to them). */
static int sandbox_globals_next(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1))) {
        return 2;
    }
    lua_pushnil(L);
    return 1;
}

/* __pairs of the proxy. Upvalue 1: sandbox_globals_next. */
static int sandbox_globals_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* ---------------------------------------------------------------------------
 * Setup: allow-lists copied into fresh tables.
 * ------------------------------------------------------------------------- */

static const char *const sandbox_base_allow[] = {
    "assert", "error",  "getmetatable", "ipairs",   "next",     "pairs", "pcall",    "rawequal",
    "rawget", "rawlen", "select",       "tonumber", "tostring", "type",  "_VERSION", NULL,
};

static const char *const sandbox_string_allow[] = {
    "byte", "char",    "find", "format", "gmatch", "gsub",     "len",    "lower", "match",
    "rep",  "reverse", "sub",  "upper",  "pack",   "packsize", "unpack", NULL,
};

static const char *const sandbox_table_allow[] = {
    "concat", "insert", "move", "pack", "remove", "sort", "unpack", NULL,
};

static const char *const sandbox_os_allow[] = {"time", "clock", "date", NULL};

static int sandbox_allowed(const char *const *list, const char *name)
{
    for (; *list; list++) {
        if (strcmp(*list, name) == 0) {
            return 1;
        }
    }
    return 0;
}

void sandbox_copy(lua_State *L, int from, int to, const char *const *allow)
{
    lua_pushnil(L);
    while (lua_next(L, from)) {
        if (lua_type(L, -2) == LUA_TSTRING && sandbox_allowed(allow, lua_tostring(L, -2))) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, to);
        } else {
            lua_pop(L, 1);
        }
    }
}

/* Removes, in place, every key of table `t` that is not allow-listed. */
static void sandbox_filter(lua_State *L, int t, const char *const *allow)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING || !sandbox_allowed(allow, lua_tostring(L, -1))) {
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, t); /* clearing a field during traversal is allowed */
        }
    }
}

void sandbox_set_closure(lua_State *L, int t, const char *name, lua_CFunction fn, int nup)
{
    lua_pushcclosure(L, fn, nup);
    lua_setfield(L, t, name);
}

static void sandbox_open_base(lua_State *L, int g, int proxy, int locked)
{
    int base;

    luaL_requiref(L, LUA_GNAME, luaopen_base, 0);
    base = lua_gettop(L);
    sandbox_copy(L, base, g, sandbox_base_allow);
    lua_getfield(L, base, "load");
    sandbox_set_closure(L, g, "load", sandbox_base_load, 1);
    sandbox_set_closure(L, g, "print", sandbox_base_print, 0);
    sandbox_set_closure(L, g, "collectgarbage", sandbox_base_collectgarbage, 0);
    sandbox_set_closure(L, g, "setmetatable", sandbox_base_setmetatable, 0);
    sandbox_set_closure(L, g, "xpcall", sandbox_base_xpcall, 0);
    for (int t = 0; t < LUA_NUMTYPES; t++) {
        lua_pushstring(L, lua_typename(L, t));
    }
    sandbox_set_closure(L, g, "type", sandbox_base_type, LUA_NUMTYPES);
    sandbox_open_require(L, g);
    lua_pushvalue(L, proxy);
    lua_pushvalue(L, g);
    lua_pushvalue(L, locked);
    sandbox_set_closure(L, g, "rawset", sandbox_base_rawset, 3);
    sandbox_open_coroutine(L, base);
    lua_setfield(L, g, LUA_COLIBNAME);
    lua_pop(L, 1);
}

static void sandbox_open_string(lua_State *L, int g)
{
    struct sandbox *sb = sandbox_of(L);

    int s;

    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
    s = lua_gettop(L);
    lpattern_install(L, sb->pattern_steps);
    lua_settop(L, s);
    sandbox_filter(L, s, sandbox_string_allow);
    sandbox_set_closure(L, s, "rep", sandbox_string_rep, 0);
    lua_setfield(L, g, LUA_STRLIBNAME);

    /* getmetatable("") now returns false, and the metatable is out of reach. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

/* The stock table library stays in the registry's loaded table, where
 * argument errors of the stock functions find their names. */
static void sandbox_open_table(lua_State *L, int g)
{
    int stock, t;

    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);
    stock = lua_gettop(L);
    lua_newtable(L);
    t = lua_gettop(L);
    sandbox_copy(L, stock, t, sandbox_table_allow);
    lua_getfield(L, stock, "move");
    sandbox_set_closure(L, t, "move", sandbox_table_move, 1);
    lua_getfield(L, stock, "insert");
    lua_pushboolean(L, 1); /* the shifting form has three arguments */
    sandbox_set_closure(L, t, "insert", sandbox_table_shift, 2);
    lua_getfield(L, stock, "remove");
    lua_pushboolean(L, 0);
    sandbox_set_closure(L, t, "remove", sandbox_table_shift, 2);
    lua_getfield(L, stock, "sort");
    sandbox_set_closure(L, t, "sort", sandbox_table_sort, 1);
    lua_setfield(L, g, LUA_TABLIBNAME);
    lua_pop(L, 1);
}

static void sandbox_open_rest(lua_State *L, int g)
{
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
    lua_setfield(L, g, LUA_MATHLIBNAME);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
    lua_setfield(L, g, LUA_UTF8LIBNAME);

    lua_pushcfunction(L, luaopen_os); /* not registered anywhere */
    lua_call(L, 0, 1);
    lua_newtable(L);
    sandbox_copy(L, lua_gettop(L) - 1, lua_gettop(L), sandbox_os_allow);
    lua_setfield(L, g, LUA_OSLIBNAME);
    lua_pop(L, 1);
}

/* __newindex of a library proxy. Upvalue 1: the library's name. */
static int sandbox_library_newindex(lua_State *L)
{
    return sandbox_library_error(L, lua_upvalueindex(1), 2);
}

/*
 * Replaces each library in g with an empty proxy that reads through to it
 * and refuses assignments (its metatable protected like the globals'),
 * recorded in `locked` (proxy -> name) for rawset to refuse as well.
 * pairs() walks the library; next() and rawget() see the empty proxy.
 */
static void sandbox_lock_libraries(lua_State *L, int g, int locked)
{
    static const char *const libs[] = {LUA_STRLIBNAME,
                                       LUA_TABLIBNAME,
                                       LUA_MATHLIBNAME,
                                       LUA_UTF8LIBNAME,
                                       LUA_OSLIBNAME,
                                       LUA_COLIBNAME,
                                       NULL};

    for (int i = 0; libs[i]; i++) {
        lua_getfield(L, g, libs[i]);
        int real = lua_gettop(L);
        lua_newtable(L); /* the proxy */
        lua_createtable(L, 0, 4);
        lua_pushvalue(L, real);
        lua_setfield(L, -2, "__index");
        lua_pushstring(L, libs[i]);
        sandbox_set_closure(L, lua_gettop(L) - 1, "__newindex", sandbox_library_newindex, 1);
        lua_pushvalue(L, real);
        lua_pushcclosure(L, sandbox_globals_next, 1);
        sandbox_set_closure(L, lua_gettop(L) - 1, "__pairs", sandbox_globals_pairs, 1);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_pushstring(L, libs[i]);
        lua_rawset(L, locked);
        lua_setfield(L, g, libs[i]);
        lua_settop(L, real - 1);
    }
}

/* Makes `proxy` the only global table operators see. */
static void sandbox_lock_globals(lua_State *L, int g, int proxy)
{
    lua_pushvalue(L, proxy);
    lua_setfield(L, g, LUA_GNAME);

    lua_createtable(L, 0, 4);
    lua_pushvalue(L, g);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, g);
    sandbox_set_closure(L, lua_gettop(L) - 1, "__newindex", sandbox_globals_newindex, 1);
    lua_pushvalue(L, g);
    lua_pushcclosure(L, sandbox_globals_next, 1);
    sandbox_set_closure(L, lua_gettop(L) - 1, "__pairs", sandbox_globals_pairs, 1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, proxy);

    lua_pushvalue(L, proxy);
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);

    /* The stock base table is garbage now; only C code could reach the rest. */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setfield(L, -2, LUA_GNAME);
    lua_pop(L, 1);
}

int sandbox_open_libs(lua_State *L)
{
    int g, proxy, locked;

    lua_settop(L, 0);
    lua_newtable(L);
    g = lua_gettop(L);
    lua_newtable(L);
    proxy = lua_gettop(L);
    lua_newtable(L);
    locked = lua_gettop(L);

    sandbox_open_base(L, g, proxy, locked);
    sandbox_open_string(L, g);
    sandbox_open_table(L, g);
    sandbox_open_rest(L, g);
    sandbox_lock_libraries(L, g, locked);
    sandbox_lock_globals(L, g, proxy);
    lua_settop(L, 0);
    return 0;
}
