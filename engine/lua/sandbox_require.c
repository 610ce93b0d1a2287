/*
 * sandbox_require: the operator's require. It reads only
 * <lib_dir>/<name>.lua (names ^[a-z0-9_]+(\.[a-z0-9_]+)*$, text chunks),
 * runs the module with the sandbox globals, caches it per state and refuses
 * a module that requires itself while loading. Ingest loop thread, as every
 * sandbox file.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "sandbox_int.h"

#define SANDBOX_MODULE_NAME_MAX 128

/* Addresses used as unique registry keys and values; never written. */
static const char sandbox_key_loaded = 'L';
static const char sandbox_loading = 'l';

/* ---------------------------------------------------------------------------
 * require: only <lib_dir>/<name>.lua, text only, cached per state.
 * ------------------------------------------------------------------------- */

/* ^[a-z0-9_]+(\.[a-z0-9_]+)*$ */
static int sandbox_module_name_ok(const char *name, size_t len)
{
    size_t i, seg = 0;

    if (len == 0 || len > SANDBOX_MODULE_NAME_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        char c = name[i];
        if (c == '.') {
            if (seg == 0) {
                return 0;
            }
            seg = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') {
            seg++;
        } else {
            return 0;
        }
    }
    return seg > 0;
}

/* Pushes "<prefix>/<name with dots as slashes>.lua". */
static void sandbox_module_path(lua_State *L, const char *prefix, const char *name)
{
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    luaL_addstring(&b, prefix);
    luaL_addchar(&b, '/');
    for (; *name; name++) {
        luaL_addchar(&b, *name == '.' ? '/' : *name);
    }
    luaL_addstring(&b, ".lua");
    luaL_pushresult(&b);
}

static int sandbox_require(lua_State *L)
{
    struct sandbox *sb = sandbox_of(L);
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);

    lua_settop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &sandbox_key_loaded); /* 2: the cache */
    lua_pushvalue(L, 1);
    if (lua_rawget(L, 2) != LUA_TNIL) {
        if (lua_touserdata(L, -1) == (void *)&sandbox_loading) {
            return luaL_error(L, "loop or previous error loading module '%s'", name);
        }
        return 1;
    }
    if (!sb->lib_dir || !sandbox_module_name_ok(name, len)) {
        goto not_found;
    }
    sandbox_module_path(L, sb->lib_dir, name);      /* 4: file */
    sandbox_module_path(L, "@operators/lib", name); /* 5: chunk name */
    if (!sandbox_load_path(L, lua_tostring(L, 4), lua_tostring(L, 5))) {
        goto not_found;
    }
    /* Marked while it runs, so a cycle fails instead of recursing; a module
     * that fails keeps the mark (the state is normally dropped then). */
    lua_pushvalue(L, 1);
    lua_pushlightuserdata(L, (void *)&sandbox_loading);
    lua_rawset(L, 2);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pushboolean(L, 1);
        lua_replace(L, -2);
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, 2);
    return 1;

not_found:
    if (!sb->lib_dir || !sandbox_module_name_ok(name, len)) {
        return luaL_error(L, "module '%s' not found (require loads only [a-z0-9_.] names from "
                             "the lib folder next to the operators)",
                          name);
    }
    /* The path it looked at, absolute: an author running a copy from
     * another folder sees which lib/ that was. */
    char real[PATH_MAX];
    sandbox_module_path(L, realpath(sb->lib_dir, real) ? real : sb->lib_dir, name);
    return luaL_error(L, "module '%s' not found: no file %s", name, lua_tostring(L, -1));
}

void sandbox_open_require(lua_State *L, int g)
{
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &sandbox_key_loaded);
    lua_pushcfunction(L, sandbox_require);
    lua_setfield(L, g, "require");
}
