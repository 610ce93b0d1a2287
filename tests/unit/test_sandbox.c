/*
 * sandbox: every way out is closed with a clear reason, and the state stays
 * usable afterwards.
 *
 * Each case runs a snippet in a real sandboxed state and checks the result
 * class and the message, then runs "return 1 + 1" in the same state. The
 * engine side of yielding is played by drive(): it resumes a callback as an
 * engine coroutine and answers every sentinel yield of the fake primitive
 * x.wait(v) with "answer:<v>". Memory caps are injected down to sizes where
 * the state cannot even be built.
 */
#include "check.h"
#include "lua/sandbox.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define WAIT_GUARD "x.wait cannot be called from on_message (it may not wait; use poll or on_open)"

static char lib_dir[1100];
static char src_dir[1024];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *status_name(int rc)
{
    switch (rc) {
    case SANDBOX_OK:
        return "ok";
    case SANDBOX_YIELDED:
        return "yielded";
    case SANDBOX_ERR_RUNTIME:
        return "runtime error";
    case SANDBOX_ERR_MEMORY:
        return "memory error";
    case SANDBOX_ERR_BUDGET:
        return "budget exceeded";
    case SANDBOX_ERR_LOAD:
        return "load error";
    default:
        return "?";
    }
}

static lua_State *make_timed(long instructions, size_t memory, long time_ms)
{
    struct sandbox_limits limits;
    char err[256];
    lua_State *L;

    sandbox_limits_default(&limits);
    limits.instructions = instructions;
    limits.memory_bytes = memory;
    limits.time_ms = time_ms;
    limits.lib_dir = lib_dir;
    L = sandbox_new(&limits, err, sizeof err);
    if (!L) {
        fprintf(stderr, "sandbox_new: %s\n", err);
        exit(2);
    }
    return L;
}

static lua_State *make(long instructions, size_t memory)
{
    return make_timed(instructions, memory, 0);
}

/* Loads and runs a chunk, leaving its one result on the stack. */
static int load_chunk(lua_State *L, const char *code, const char *name, char *err, size_t errlen)
{
    return sandbox_load_string(L, code, strlen(code), name, err, errlen);
}

/* Runs `code` (a chunk) and leaves nothing on the stack; returns its class. */
static int run(lua_State *L, const char *code, char *err, size_t errlen)
{
    int rc;

    err[0] = '\0';
    rc = sandbox_load_string(L, code, strlen(code), "=test", err, errlen);
    if (rc == SANDBOX_OK) {
        lua_pop(L, 1);
    }
    return rc;
}

/* Runs `code` and expects failure class `want` with `needle` in the message. */
static void expect_fail(lua_State *L, const char *what, const char *code, int want,
                        const char *needle)
{
    char err[1024];
    double t0 = now_s();
    int rc = run(L, code, err, sizeof err);
    double dt = now_s() - t0;
    int found = needle == NULL || strstr(err, needle) != NULL;

    printf("%-4s %-44s %-16s %.3fs  %.*s\n", rc == want && found ? "ok" : "FAIL", what,
           status_name(rc), dt, (int)strcspn(err, "\n"), err);
    CHECK_INT_EQ(rc, want);
    if (!found) {
        fprintf(stderr, "  expected \"%s\" in: %s\n", needle, err);
    }
    CHECK(found);
    CHECK_INT_EQ(lua_gettop(L), 0);
}

/* Runs `code`, which returns a string, and compares it. */
static void expect_str(lua_State *L, const char *what, const char *code, const char *want)
{
    char err[1024];
    int rc;

    err[0] = '\0';
    rc = sandbox_load_string(L, code, strlen(code), "=test", err, sizeof err);
    if (rc == SANDBOX_OK) {
        const char *got = lua_tostring(L, -1);
        int same = got && strcmp(got, want) == 0;
        printf("%-4s %-44s -> %s\n", same ? "ok" : "FAIL", what, got ? got : "(not a string)");
        CHECK_STR_EQ(got, want);
        lua_pop(L, 1);
    } else {
        printf("FAIL %-44s %s: %s\n", what, status_name(rc), err);
        CHECK_INT_EQ(rc, SANDBOX_OK);
    }
    CHECK_INT_EQ(lua_gettop(L), 0);
}

static void expect_usable(lua_State *L)
{
    char err[256];
    int rc = sandbox_load_string(L, "return 1 + 1", 12, "=usable", err, sizeof err);

    CHECK_INT_EQ(rc, SANDBOX_OK);
    if (rc == SANDBOX_OK) {
        CHECK_INT_EQ(lua_tointeger(L, -1), 2);
        lua_pop(L, 1);
    }
    CHECK(!sandbox_killed(L));
}

/* ---- The fake yielding primitive and the engine's side of it ---- */

static int fake_wait(lua_State *L)
{
    int n = lua_gettop(L);

    sandbox_yieldable_guard(L, WAIT_GUARD);
    sandbox_push_yield_sentinel(L);
    lua_insert(L, 1);
    return lua_yield(L, n + 1);
}

static void push_x(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, fake_wait);
    lua_setfield(L, -2, "wait");
}

/*
 * Loads `code` (a chunk returning function(x)) and runs that function as an
 * engine coroutine, answering each x.wait(v) with "answer:<v>". Copies the
 * string it returns (or the error) into out; returns the final status and
 * the number of sentinel yields in *yields.
 */
static int drive(lua_State *L, const char *code, char *out, size_t outlen, int *yields)
{
    int rc, nres;
    lua_State *co;

    *yields = 0;
    out[0] = '\0';
    rc = sandbox_load_string(L, code, strlen(code), "=drive", out, outlen);
    if (rc != SANDBOX_OK) {
        return rc;
    }
    co = lua_newthread(L);
    lua_insert(L, -2);
    lua_xmove(L, co, 1);
    push_x(L);
    lua_xmove(L, co, 1);
    rc = sandbox_resume(L, co, 1, &nres, out, outlen);
    while (rc == SANDBOX_YIELDED) {
        const char *v = nres > 1 ? lua_tostring(co, -nres + 1) : "";
        char answer[128];
        snprintf(answer, sizeof answer, "answer:%s", v ? v : "?");
        (*yields)++;
        lua_pop(co, nres);
        lua_pushstring(co, answer);
        rc = sandbox_resume(L, co, 1, &nres, out, outlen);
    }
    if (rc == SANDBOX_OK) {
        const char *s = nres > 0 ? lua_tostring(co, -1) : NULL;
        snprintf(out, outlen, "%s", s ? s : "(no string)");
        lua_pop(co, nres);
    }
    lua_pop(L, 1); /* the thread */
    return rc;
}

static void expect_drive(lua_State *L, const char *what, const char *code, int want,
                         const char *needle, int want_yields)
{
    char out[1024];
    int yields;
    int rc = drive(L, code, out, sizeof out, &yields);
    int found = strstr(out, needle) != NULL;

    printf("%-4s %-44s %-16s yields=%d  %.*s\n",
           rc == want && found && yields == want_yields ? "ok" : "FAIL", what, status_name(rc),
           yields, (int)strcspn(out, "\n"), out);
    CHECK_INT_EQ(rc, want);
    if (!found) {
        fprintf(stderr, "  expected \"%s\" in: %s\n", needle, out);
    }
    CHECK(found);
    CHECK_INT_EQ(yields, want_yields);
    CHECK_INT_EQ(lua_gettop(L), 0);
    expect_usable(L);
}

/* ---- Cases ---- */

static void test_libraries(void)
{
    lua_State *L = make(5000000, 0);

    printf("-- libraries\n");
    expect_fail(L, "io.open", "return io.open('/etc/passwd')", SANDBOX_ERR_RUNTIME,
                "attempt to index a nil value (global 'io')");
    expect_fail(L, "os.execute", "return os.execute('true')", SANDBOX_ERR_RUNTIME,
                "attempt to call a nil value (field 'execute')");
    expect_fail(L, "os.getenv", "return os.getenv('HOME')", SANDBOX_ERR_RUNTIME,
                "attempt to call a nil value (field 'getenv')");
    expect_fail(L, "os.exit", "os.exit(1)", SANDBOX_ERR_RUNTIME, "field 'exit'");
    expect_fail(L, "debug.getregistry", "return debug.getregistry()", SANDBOX_ERR_RUNTIME,
                "global 'debug'");
    expect_fail(L, "string.dump", "return string.dump(function() end)", SANDBOX_ERR_RUNTIME,
                "field 'dump'");
    expect_fail(L, "(''):dump via the string metatable", "return (''):dump()", SANDBOX_ERR_RUNTIME,
                "method 'dump'");
    expect_fail(L, "dofile", "return dofile('/etc/passwd')", SANDBOX_ERR_RUNTIME,
                "global 'dofile'");
    expect_fail(L, "loadfile", "return loadfile('/etc/passwd')", SANDBOX_ERR_RUNTIME,
                "global 'loadfile'");
    expect_fail(L, "package.loadlib", "return package.loadlib('x', 'y')", SANDBOX_ERR_RUNTIME,
                "global 'package'");
    expect_fail(L, "collectgarbage('step')", "return collectgarbage('step')", SANDBOX_ERR_RUNTIME,
                "invalid option 'step'");
    expect_fail(L, "__gc metamethod", "setmetatable({}, {__gc = function() end})",
                SANDBOX_ERR_RUNTIME, "__gc metamethods are not allowed");
    expect_fail(L, "cjson is not a global", "return cjson.encode({})", SANDBOX_ERR_RUNTIME,
                "global 'cjson'");
    expect_str(L, "what is left of the globals",
               "local names = {}\n"
               "for k in pairs(_G) do names[#names + 1] = k end\n"
               "table.sort(names)\n"
               "return table.concat(names, ' ')",
               "_G _VERSION assert collectgarbage coroutine error getmetatable ipairs load math "
               "next os pairs pcall print rawequal rawget rawlen rawset require select "
               "setmetatable string table tonumber tostring type utf8 xpcall");
    expect_str(L, "what is left of os",
               "local names = {}\n"
               "for k in pairs(os) do names[#names + 1] = k end\n"
               "table.sort(names)\n"
               "return table.concat(names, ' ')",
               "clock date time");
    expect_str(L, "the allowed libraries work",
               "local t = {3, 1, 2}\n"
               "table.sort(t)\n"
               "return table.concat(t, ',') .. ' ' .. string.format('%05.1f', math.pi)\n"
               "  .. ' ' .. utf8.char(228) .. ' ' .. tostring(os.time() > 0)\n"
               "  .. ' ' .. type(os.clock()) .. ' ' .. os.date('!%Y', 0)\n"
               "  .. ' ' .. math.type(collectgarbage('count')) .. ' ' .. collectgarbage()\n"
               "  .. ' ' .. ('a,b'):gsub(',', ';') .. ' ' .. select('#', string.find('xay', 'a'))",
               "1,2,3 003.1 \xc3\xa4 true number 1970 float 0 a;b 2");
    expect_usable(L);
    sandbox_free(L);
}

static void test_require(void)
{
    lua_State *L = make(5000000, 0);

    printf("-- require\n");
    expect_fail(L, "require 'socket'", "return require 'socket'", SANDBOX_ERR_RUNTIME,
                "module 'socket' not found: no file /");
    expect_fail(L, "require '../etc/passwd'", "return require '../etc/passwd'", SANDBOX_ERR_RUNTIME,
                "module '../etc/passwd' not found");
    expect_fail(L, "require '/etc/passwd'", "return require '/etc/passwd'", SANDBOX_ERR_RUNTIME,
                "module '/etc/passwd' not found");
    expect_fail(L, "require 'io'", "return require 'io'", SANDBOX_ERR_RUNTIME,
                "module 'io' not found");
    expect_fail(L, "require 'os'", "return require 'os'", SANDBOX_ERR_RUNTIME,
                "module 'os' not found");
    expect_fail(L, "require 'Util' (upper case)", "return require 'Util'", SANDBOX_ERR_RUNTIME,
                "module 'Util' not found");
    expect_fail(L, "require 'nested..deep'", "return require 'nested..deep'", SANDBOX_ERR_RUNTIME,
                "not found");
    expect_fail(L, "require 'util.'", "return require 'util.'", SANDBOX_ERR_RUNTIME, "not found");
    expect_str(L, "require 'util' works", "return tostring(require('util').double(21))", "42");
    expect_str(L, "require caches per state",
               "return tostring(rawequal(require 'util', require 'util'))", "true");
    expect_str(L, "require 'nested.deep' (dots are directories)",
               "return tostring(require('nested.deep').quadruple(5))", "20");
    expect_str(L, "a module without a return value", "return tostring(require 'returns_nothing')",
               "true");
    expect_fail(L, "a module creating a global", "return require 'makes_global'",
                SANDBOX_ERR_RUNTIME, "makes_global.lua:2: attempt to create global 'helper'");
    expect_fail(L, "a module with a syntax error", "return require 'broken'", SANDBOX_ERR_RUNTIME,
                "operators/lib/broken.lua:3:");
    expect_fail(L, "modules requiring each other", "return require 'cycle_a'", SANDBOX_ERR_RUNTIME,
                "loop or previous error loading module 'cycle_a'");
    expect_usable(L);
    sandbox_free(L);
}

static void test_load(void)
{
    lua_State *L = make(5000000, 0);
    char err[512];
    int rc;

    printf("-- load and binary chunks\n");
    expect_str(L, "load of a binary chunk",
               "local f, e = load('\\27Lua\\x54\\0\\25\\x93\\r\\n\\x1a\\n')\n"
               "return tostring(f) .. ': ' .. e",
               "nil: attempt to load a binary chunk (mode is 't')");
    expect_str(L, "load of a binary chunk asking for mode 'b'",
               "local f, e = load('\\27Lua', 'x', 'b')\n"
               "return tostring(f) .. ': ' .. e",
               "nil: attempt to load a binary chunk (mode is 't')");
    expect_str(L, "load of text sees the sandbox globals",
               "return load('return string.upper(\"ok\")')()", "OK");
    expect_str(L, "load with a reader function",
               "local parts = {'return ', '\"read\"'}\n"
               "local i = 0\n"
               "return load(function() i = i + 1 return parts[i] end)()",
               "read");
    expect_fail(L, "load of text cannot create globals", "load('leak = 1')()", SANDBOX_ERR_RUNTIME,
                "attempt to create global 'leak'");
    rc = sandbox_load_string(L, "\x1bLua\x54", 5, "=bin", err, sizeof err);
    printf("%-4s %-44s %s: %s\n", rc == SANDBOX_ERR_LOAD ? "ok" : "FAIL",
           "sandbox_load_string of a binary chunk", status_name(rc), err);
    CHECK_INT_EQ(rc, SANDBOX_ERR_LOAD);
    CHECK(strstr(err, "binary chunks are not allowed") != NULL);
    expect_usable(L);
    sandbox_free(L);
}

static void test_globals_and_metatables(void)
{
    lua_State *L = make(5000000, 0);

    printf("-- the locked global table and the string metatable\n");
    expect_fail(L, "creating a global", "x = 1", SANDBOX_ERR_RUNTIME,
                "test:1: attempt to create global 'x'");
    expect_fail(L, "creating a global through _G", "_G.y = 2", SANDBOX_ERR_RUNTIME,
                "attempt to create global 'y'");
    expect_fail(L, "creating a global through _ENV", "_ENV['z'] = 3", SANDBOX_ERR_RUNTIME,
                "attempt to create global 'z'");
    expect_fail(L, "replacing a library", "string = nil", SANDBOX_ERR_RUNTIME,
                "attempt to modify global 'string'");
    expect_fail(L, "replacing a builtin", "pcall = print", SANDBOX_ERR_RUNTIME,
                "attempt to modify global 'pcall'");
    expect_fail(L, "rawset(_G, ...)", "rawset(_G, 'w', 1)", SANDBOX_ERR_RUNTIME,
                "attempt to create global 'w'");
    expect_fail(L, "setmetatable(_G, nil)", "setmetatable(_G, nil)", SANDBOX_ERR_RUNTIME,
                "cannot change a protected metatable");
    expect_str(L, "getmetatable(_G) is protected", "return tostring(getmetatable(_G))", "false");
    expect_str(L, "reading an unknown global gives nil", "return tostring(undefined_name)", "nil");
    expect_str(L, "getmetatable('') is protected", "return tostring(getmetatable(''))", "false");
    expect_fail(L, "setmetatable(getmetatable(''), ...)",
                "setmetatable(getmetatable(''), {__index = function() return 'pwned' end})",
                SANDBOX_ERR_RUNTIME,
                "bad argument #1 to 'setmetatable' (table expected, got boolean)");
    expect_fail(L, "getmetatable('').__index = ...",
                "getmetatable('').__index = {len = function() return 0 end}", SANDBOX_ERR_RUNTIME,
                "attempt to index a boolean value");
    expect_fail(L, "rawset(getmetatable(''), '__index', ...)",
                "rawset(getmetatable(''), '__index', {})", SANDBOX_ERR_RUNTIME,
                "bad argument #1 to 'rawset' (table expected, got boolean)");
    expect_fail(L, "rawget(getmetatable(''), '__index')",
                "return rawget(getmetatable(''), '__index')", SANDBOX_ERR_RUNTIME,
                "bad argument #1 to 'rawget' (table expected, got boolean)");
    expect_str(L, "string methods still work", "return ('abc'):upper() .. #('abc'):rep(3)", "ABC9");
    expect_str(L, "locals, tables and metatables of one's own work",
               "local t = setmetatable({}, {__index = function(_, k) return k .. '!' end})\n"
               "local u = {}\n"
               "rawset(u, 'k', 'v')\n"
               "return t.hi .. u.k",
               "hi!v");
    expect_str(L, "an error object that is not a string",
               "local ok, e = pcall(error, {code = 7})\n"
               "return tostring(ok) .. ' ' .. e.code",
               "false 7");
    expect_fail(L, "error({}) reaching the engine", "error({})", SANDBOX_ERR_RUNTIME,
                "(error object is a table value)");
    expect_usable(L);
    sandbox_free(L);
}

/* The library tables are read-only (string.rep = nil used to work and
 * changed the library under the operator's own lib/ modules), in every way
 * a table can be written, and still work in every way one is read. */
static void test_read_only_libraries(void)
{
    lua_State *L = make(5000000, 0);

    printf("-- read-only library tables\n");
    expect_fail(L, "string.rep = nil", "string.rep = nil", SANDBOX_ERR_RUNTIME,
                "test:1: attempt to modify library 'string' "
                "(field 'rep'; libraries are read-only)");
    expect_fail(L, "a new field", "table.shuffle = function() end", SANDBOX_ERR_RUNTIME,
                "attempt to modify library 'table' (field 'shuffle'");
    expect_fail(L, "math.pi = 3", "math.pi = 3", SANDBOX_ERR_RUNTIME,
                "attempt to modify library 'math' (field 'pi'");
    expect_fail(L, "os.time = nil", "os.time = nil", SANDBOX_ERR_RUNTIME,
                "attempt to modify library 'os' (field 'time'");
    expect_fail(L, "utf8.char = nil", "utf8.char = nil", SANDBOX_ERR_RUNTIME,
                "attempt to modify library 'utf8' (field 'char'");
    expect_fail(L, "coroutine.wrap = nil", "coroutine.wrap = nil", SANDBOX_ERR_RUNTIME,
                "attempt to modify library 'coroutine' (field 'wrap'");
    expect_fail(L, "rawset(string, ...)", "rawset(string, 'rep', nil)", SANDBOX_ERR_RUNTIME,
                "attempt to modify library 'string' (field 'rep'");
    expect_fail(L, "through a local alias", "local s = string; s.format = print",
                SANDBOX_ERR_RUNTIME, "attempt to modify library 'string' (field 'format'");
    expect_fail(L, "setmetatable(string, nil)", "setmetatable(string, nil)", SANDBOX_ERR_RUNTIME,
                "cannot change a protected metatable");
    expect_str(L, "getmetatable(math) is protected", "return tostring(getmetatable(math))",
               "false");
    expect_str(L, "nothing changed, and the libraries work",
               "return string.format('%d', #string.rep('ab', 2)) .. ('x'):rep(2) .. "
               "math.floor(math.pi) .. table.concat({'a', 'b'}) .. utf8.char(65) .. "
               "type(os.time()) .. type(coroutine.wrap)",
               "4xx3abAnumberfunction");
    expect_str(L, "pairs walks a library",
               "local n = 0 for k, v in pairs(math) do n = n + 1 end return tostring(n > 20)",
               "true");
    expect_usable(L);
    sandbox_free(L);
}

/* type is the sandbox's own (names from upvalues): the same answers as
 * the stock one, its error included. */
static void test_type(void)
{
    lua_State *L = make(5000000, 0);

    printf("-- type\n");
    expect_str(L, "every type's name",
               "return table.concat({ type(nil), type(false), type(1), type(1.5), type(''),\n"
               "  type({}), type(print), type(function() end),\n"
               "  type(coroutine.create(function() end)) }, ' ')",
               "nil boolean number number string table function function thread");
    expect_fail(L, "type()", "return type()", SANDBOX_ERR_RUNTIME,
                "bad argument #1 to 'type' (value expected)");
    expect_usable(L);
    sandbox_free(L);
}

static void test_budget(void)
{
    lua_State *L = make(5000000, 0);
    lua_State *co;
    char err[1024];
    int rc, nres, i;

    printf("-- instruction budget (5M per run)\n");
    expect_fail(L, "while true do end", "while true do end", SANDBOX_ERR_BUDGET,
                "test:1: instruction budget exceeded");
    CHECK(sandbox_killed(L));
    expect_usable(L);
    expect_fail(L, "pcall cannot swallow the kill",
                "while true do pcall(function() while true do end end) end", SANDBOX_ERR_BUDGET,
                "instruction budget exceeded");
    expect_usable(L);
    expect_fail(L, "xpcall with a looping handler",
                "while true do\n"
                "  xpcall(function() while true do end end, function(e) while true do end end)\n"
                "end",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_usable(L);
    expect_fail(L, "pcall loop inside coroutine.wrap",
                "coroutine.wrap(function()\n"
                "  while true do pcall(function() while true do end end) end\n"
                "end)()",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_usable(L);
    expect_fail(L, "coroutine.resume swallowing the kill",
                "while true do\n"
                "  coroutine.resume(coroutine.create(function() while true do end end))\n"
                "end",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_usable(L);
    expect_fail(L, "a new coroutine per caught kill",
                "local n = 0\n"
                "while true do\n"
                "  n = n + 1\n"
                "  local co = coroutine.wrap(function() while true do end end)\n"
                "  pcall(co)\n"
                "end",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_usable(L);
    expect_fail(L, "table.move over 1e12 slots", "table.move({}, 1, 1e12, 2)", SANDBOX_ERR_BUDGET,
                "instruction budget exceeded");
    expect_fail(L, "table.insert with a huge __len",
                "table.insert(setmetatable({}, {__len = function() return 1e12 end}), 1, 0)",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_fail(L, "table.remove with a huge __len",
                "table.remove(setmetatable({}, {__len = function() return 1e12 end}), 1)",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_fail(L, "string.rep('', 1e18) is empty and quick",
                "error('len ' .. #string.rep('', 1e18) .. #string.rep('', 1e18, ''))",
                SANDBOX_ERR_RUNTIME, "len 00");
    expect_fail(L, "repeated collectgarbage() is charged",
                "local keep = {} for i = 1, 2e4 do keep[i] = {i} end\n"
                "while true do collectgarbage() end",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_usable(L);

    /* The budget is per run, not per state. */
    rc = SANDBOX_OK;
    for (i = 0; i < 10 && rc == SANDBOX_OK; i++) {
        rc = run(L, "local n = 0 for i = 1, 500000 do n = n + i end", err, sizeof err);
    }
    printf("%-4s %-44s %s %s\n", rc == SANDBOX_OK ? "ok" : "FAIL",
           "ten runs of 2/5 of the budget each", status_name(rc), err);
    CHECK_INT_EQ(rc, SANDBOX_OK);

    /* Engine threads: made before any run, and right after a kill. */
    co = lua_newthread(L);
    luaL_loadstring(L, "while true do end");
    lua_xmove(L, co, 1);
    rc = sandbox_resume(L, co, 0, &nres, err, sizeof err);
    printf("%-4s %-44s %s: %.*s\n", rc == SANDBOX_ERR_BUDGET ? "ok" : "FAIL",
           "engine thread (lua_newthread) loop", status_name(rc), (int)strcspn(err, "\n"), err);
    CHECK_INT_EQ(rc, SANDBOX_ERR_BUDGET);
    lua_pop(L, 1);
    co = lua_newthread(L);
    luaL_loadstring(L, "local n = 0 for i = 1, 100000 do n = n + 1 end return n");
    lua_xmove(L, co, 1);
    rc = sandbox_resume(L, co, 0, &nres, err, sizeof err);
    printf("%-4s %-44s %s\n", rc == SANDBOX_OK ? "ok" : "FAIL",
           "thread made in kill mode runs normally later", status_name(rc));
    CHECK_INT_EQ(rc, SANDBOX_OK);
    CHECK_INT_EQ(nres, 1);
    CHECK_INT_EQ(lua_tointeger(co, -1), 100000);
    lua_pop(L, 1);
    expect_usable(L);
    sandbox_free(L);

    /* The default budget stops a loop in well under a few seconds. */
    L = make(0, 0);
    expect_fail(L, "default budget (50M) stops a loop", "local n = 0 while true do n = n + 1 end",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_usable(L);
    sandbox_free(L);
}

/* Calls the function the chunk returned (kept at index 1) with `arg`. */
static int call_kept(lua_State *L, const char *arg, char *out, size_t outlen)
{
    int rc;

    lua_pushvalue(L, 1);
    lua_pushstring(L, arg);
    rc = sandbox_pcall(L, 1, 1, out, outlen);
    if (rc == SANDBOX_OK) {
        snprintf(out, outlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
        lua_pop(L, 1);
    }
    return rc;
}

static void test_hooks_off(void)
{
    lua_State *L = make(5000000, 0);
    char out[1024];
    double t0;
    int rc;

    printf("-- code Lua runs with hooks off after a kill\n");
    expect_fail(L, "a looping xpcall handler of a plain error",
                "while true do xpcall(error, function(e) while true do end end, 'plain') end",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_fail(L, "xpcall handler after a kill is skipped",
                "xpcall(function() while true do end end, function(e) while true do end end)",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_str(L, "xpcall: results, handler, arguments",
               "local a, b = xpcall(function(x, y) return x + y end, error, 2, 3)\n"
               "local c, d = xpcall(error, function(e) return 'handled ' .. e end, 'oops', 0)\n"
               "return tostring(a) .. b .. ' ' .. tostring(c) .. ' ' .. d",
               "true5 false handled oops");
    expect_fail(L, "coroutine killed holding a looping __close",
                "local co = coroutine.create(function()\n"
                "  local guard <close> = setmetatable({}, {__close = function()\n"
                "    while true do end\n"
                "  end})\n"
                "  while true do end\n"
                "end)\n"
                "coroutine.resume(co)\n"
                "coroutine.close(co)\n"
                "while true do end",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_usable(L);

    /* The same coroutine closed in a later run: a dead coroutine is not closed. */
    rc = load_chunk(L,
                    "local co\n"
                    "return function(step)\n"
                    "  if step == 'kill' then\n"
                    "    co = coroutine.create(function()\n"
                    "      local guard <close> = setmetatable({}, {__close = function()\n"
                    "        while true do end\n"
                    "      end})\n"
                    "      while true do end\n"
                    "    end)\n"
                    "    local ok = coroutine.resume(co)\n"
                    "    return tostring(ok)\n"
                    "  end\n"
                    "  return tostring(coroutine.close(co)) .. ' ' .. coroutine.status(co)\n"
                    "end",
                    "=later", out, sizeof out);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    rc = call_kept(L, "kill", out, sizeof out);
    printf("%-4s %-44s %s: %.*s\n", rc == SANDBOX_ERR_BUDGET ? "ok" : "FAIL",
           "a run whose coroutine was killed", status_name(rc), (int)strcspn(out, "\n"), out);
    CHECK_INT_EQ(rc, SANDBOX_ERR_BUDGET);
    t0 = now_s();
    rc = call_kept(L, "close", out, sizeof out);
    printf("%-4s %-44s %s %.3fs -> %s\n", rc == SANDBOX_OK ? "ok" : "FAIL",
           "closing it in the next run", status_name(rc), now_s() - t0, out);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    CHECK_STR_EQ(out, "true dead");
    lua_settop(L, 0);
    expect_usable(L);
    sandbox_free(L);
}

static void test_c_work(void)
{
    lua_State *L = make_timed(2000000000L, 32u << 20, 300);
    double t0;

    printf("-- C work the count cannot see (2G instructions, 300 ms, 32 MiB)\n");
    t0 = now_s();
    expect_fail(L, "comparing two big strings in a loop",
                "local a, b = ('x'):rep(4e6), ('x'):rep(4e6)\n"
                "local n = 0\n"
                "while true do if a == b then n = n + 1 end end",
                SANDBOX_ERR_BUDGET, "time budget exceeded");
    CHECK(now_s() - t0 < 3.0);
    expect_usable(L);
    sandbox_free(L);

    L = make(20000000, 32u << 20);
    printf("-- C work charged to the count (20M instructions, 32 MiB)\n");
    expect_fail(L, "upper() of a big string in a loop",
                "local s = ('x'):rep(4e6) while true do local u = s:upper() end",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_fail(L, "allocations refused at the cap, in a loop",
                "local keep = {}\n"
                "for i = 1, 3 do keep[i] = ('x'):rep(8e6) .. i end\n"
                "while true do pcall(function() return keep[1] .. keep[2] end) end",
                SANDBOX_ERR_BUDGET, "instruction budget exceeded");
    expect_usable(L);
    sandbox_free(L);
}

static void test_memory(void)
{
    lua_State *L = make(50000000, 8u << 20);
    char err[256];
    int rc, i;
    size_t cap;

    printf("-- memory cap (8 MiB)\n");
    expect_fail(L, "string.rep('x', 1e9)", "return string.rep('x', 1e9)", SANDBOX_ERR_RUNTIME,
                "string.rep result too large");
    expect_fail(L, "('x'):rep(1e9, ',')", "return ('x'):rep(1e9, ',')", SANDBOX_ERR_RUNTIME,
                "string.rep result too large");
    expect_fail(L, "string.rep under its cap, over the heap cap",
                "local t = {} for i = 1, 10 do t[i] = string.rep('x', 4e6) .. i end",
                SANDBOX_ERR_MEMORY, "not enough memory");
    expect_fail(L, "table growth bomb", "local t = {} for i = 1, 1e9 do t[i] = i end",
                SANDBOX_ERR_MEMORY, "not enough memory");
    lua_gc(L, LUA_GCCOLLECT);
    expect_usable(L);
    expect_fail(L, "string doubling bomb", "local s = 'x' while true do s = s .. s end",
                SANDBOX_ERR_MEMORY, "not enough memory");
    expect_fail(L, "memory error caught by pcall, re-raised",
                "local ok, e = pcall(function() local t = {} for i = 1, 1e9 do t[i] = {} end end)\n"
                "error(e, 0)",
                SANDBOX_ERR_MEMORY, "not enough memory");
    lua_gc(L, LUA_GCCOLLECT);
    CHECK(sandbox_memory_used(L) <= sandbox_memory_limit(L));
    CHECK(sandbox_memory_used(L) < (1u << 20));
    printf("     heap in use after collecting: %zu bytes of %zu\n", sandbox_memory_used(L),
           sandbox_memory_limit(L));
    expect_str(L, "a big but allowed string", "return tostring(#string.rep('ab', 1e6, '-'))",
               "2999999");
    expect_usable(L);
    sandbox_free(L);

    /* Injected failures: every cap too small to build the state fails cleanly. */
    for (cap = 1024, i = 0; cap < (1u << 20); cap += 1024, i++) {
        struct sandbox_limits limits;
        sandbox_limits_default(&limits);
        limits.memory_bytes = cap;
        L = sandbox_new(&limits, err, sizeof err);
        if (L) {
            break;
        }
        CHECK(strstr(err, "bytes") != NULL);
    }
    printf("%-4s %-44s %d caps refused, first state at %zu bytes (%s)\n", L ? "ok" : "FAIL",
           "sandbox_new under growing memory caps", i, cap, i ? err : "-");
    CHECK(L != NULL);
    CHECK(i > 3);
    if (L) {
        rc = run(L, "local t = {} for i = 1, 1e6 do t[i] = i end", err, sizeof err);
        CHECK_INT_EQ(rc, SANDBOX_ERR_MEMORY);
        expect_usable(L);
    }
    sandbox_free(L);
    sandbox_free(NULL);
}

static void test_patterns(void)
{
    lua_State *L = make(0, 0);

    printf("-- pattern bomb\n");
    expect_fail(L, "string.find(rep('a', 400), '.-.-.-b')",
                "return string.find(string.rep('a', 400), '.-.-.-b')", SANDBOX_ERR_RUNTIME, NULL);
    expect_fail(L, "the same through the string metatable",
                "return (string.rep('a', 400)):match('.-.-.-b')", SANDBOX_ERR_RUNTIME, NULL);
    expect_str(L, "ordinary patterns work",
               "return select(2, ('BTC-USD'):gsub('%-', '/')) .. ('BTC-USD'):match('^(%u+)')",
               "1BTC");
    expect_usable(L);
    sandbox_free(L);
}

static void test_yields(void)
{
    lua_State *L = make(5000000, 0);
    char err[1024];
    int rc;

    printf("-- engine yields through operator coroutines\n");
    expect_drive(L, "direct call in the engine coroutine",
                 "return function(x) return x.wait('a') .. ' ' .. x.wait('b') end", SANDBOX_OK,
                 "answer:a answer:b", 2);
    expect_drive(L, "through coroutine.wrap",
                 "return function(x)\n"
                 "  local gen = coroutine.wrap(function(v)\n"
                 "    local r = x.wait(v)\n"
                 "    coroutine.yield('inner:' .. r)\n"
                 "    return 'done:' .. x.wait('again')\n"
                 "  end)\n"
                 "  local first = gen('q')\n"
                 "  return first .. ' ' .. gen()\n"
                 "end",
                 SANDBOX_OK, "inner:answer:q done:answer:again", 2);
    expect_drive(L, "through coroutine.resume",
                 "return function(x)\n"
                 "  local co = coroutine.create(function(a, b)\n"
                 "    local r = x.wait(a .. b)\n"
                 "    local more = coroutine.yield(r)\n"
                 "    return more .. '+' .. x.wait(more)\n"
                 "  end)\n"
                 "  local ok1, v1 = coroutine.resume(co, 'p', 'q')\n"
                 "  local ok2, v2 = coroutine.resume(co, 'm')\n"
                 "  return tostring(ok1) .. ' ' .. v1 .. ' ' .. tostring(ok2) .. ' ' .. v2\n"
                 "    .. ' ' .. coroutine.status(co)\n"
                 "end",
                 SANDBOX_OK, "true answer:pq true m+answer:m dead", 2);
    expect_drive(L, "through two nested operator coroutines",
                 "return function(x)\n"
                 "  local outer = coroutine.wrap(function()\n"
                 "    local inner = coroutine.wrap(function() return x.wait('deep') end)\n"
                 "    return 'outer(' .. inner() .. ')'\n"
                 "  end)\n"
                 "  return outer()\n"
                 "end",
                 SANDBOX_OK, "outer(answer:deep)", 1);
    expect_drive(L, "inside pcall inside a coroutine",
                 "return function(x)\n"
                 "  local co = coroutine.wrap(function()\n"
                 "    local ok, v = pcall(x.wait, 'p')\n"
                 "    return tostring(ok) .. ' ' .. v\n"
                 "  end)\n"
                 "  return co()\n"
                 "end",
                 SANDBOX_OK, "true answer:p", 1);
    expect_drive(L, "through xpcall in the engine coroutine",
                 "return function(x)\n"
                 "  local ok, v = xpcall(x.wait, print, 'xp')\n"
                 "  return tostring(ok) .. ' ' .. v\n"
                 "end",
                 SANDBOX_OK, "true answer:xp", 1);
    expect_drive(L, "coroutine.yield in the engine coroutine",
                 "return function(x) coroutine.yield('stray') return 'no' end", SANDBOX_ERR_RUNTIME,
                 "coroutine.yield outside an operator coroutine", 0);
    expect_drive(L, "resuming the engine's own coroutine",
                 "return function(x)\n"
                 "  local ok, e = coroutine.resume(coroutine.running())\n"
                 "  error(e, 0)\n"
                 "end",
                 SANDBOX_ERR_RUNTIME,
                 "cannot resume or close a coroutine the operator did not create", 0);
    expect_drive(L, "error in a wrapped coroutine carries file:line",
                 "return function(x)\n"
                 "  local f = coroutine.wrap(function() error('boom') end)\n"
                 "  f()\n"
                 "end",
                 SANDBOX_ERR_RUNTIME, "drive:3: drive:2: boom", 0);
    expect_drive(L, "kill inside a wrapped coroutine of an engine one",
                 "return function(x)\n"
                 "  x.wait('first')\n"
                 "  local f = coroutine.wrap(function()\n"
                 "    while true do pcall(function() while true do end end) end\n"
                 "  end)\n"
                 "  while true do pcall(f) end\n"
                 "end",
                 SANDBOX_ERR_BUDGET, "instruction budget exceeded", 1);

    printf("-- the non-yieldable guard\n");
    expect_drive(L, "x.wait inside a table.sort comparator",
                 "return function(x)\n"
                 "  table.sort({1, 2, 3}, function(a, b) x.wait('cmp') return a < b end)\n"
                 "end",
                 SANDBOX_ERR_RUNTIME, WAIT_GUARD, 0);
    expect_drive(L, "x.wait in a coroutine resumed inside a C call",
                 "return function(x)\n"
                 "  table.sort({1, 2}, function(a, b)\n"
                 "    coroutine.wrap(function() x.wait('cmp') end)()\n"
                 "    return a < b\n"
                 "  end)\n"
                 "end",
                 SANDBOX_ERR_RUNTIME, "drive:3: drive:3: " WAIT_GUARD, 0);
    /* Like on_message: called with sandbox_pcall, where nothing may wait. */
    rc = load_chunk(L, "return function(x) return x.wait('m') end", "=on_message", err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    push_x(L);
    rc = sandbox_pcall(L, 1, 1, err, sizeof err);
    printf("%-4s %-44s %s: %.*s\n",
           rc == SANDBOX_ERR_RUNTIME && strstr(err, WAIT_GUARD) ? "ok" : "FAIL",
           "x.wait called from a pcall'd callback", status_name(rc), (int)strcspn(err, "\n"), err);
    CHECK_INT_EQ(rc, SANDBOX_ERR_RUNTIME);
    CHECK(strstr(err, "on_message:1: " WAIT_GUARD) != NULL);
    rc = load_chunk(L,
                    "return function(x)\n"
                    "  local ok, e = coroutine.resume(coroutine.create(x.wait), 'm')\n"
                    "  error(e, 0)\n"
                    "end",
                    "=on_message", err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    push_x(L);
    rc = sandbox_pcall(L, 1, 1, err, sizeof err);
    printf("%-4s %-44s %s: %.*s\n",
           rc == SANDBOX_ERR_RUNTIME && strstr(err, WAIT_GUARD) ? "ok" : "FAIL",
           "x.wait in a coroutine of a pcall'd callback", status_name(rc), (int)strcspn(err, "\n"),
           err);
    CHECK_INT_EQ(rc, SANDBOX_ERR_RUNTIME);
    CHECK(strstr(err, WAIT_GUARD) != NULL);
    CHECK_INT_EQ(lua_gettop(L), 0);
    expect_usable(L);
    sandbox_free(L);
}

/* Another callback must not resume an operator coroutine parked on the engine. */
static void test_parked(void)
{
    lua_State *L = make(5000000, 0);
    lua_State *co;
    char err[1024];
    int rc, nres;

    printf("-- a coroutine waiting for the engine\n");
    rc = load_chunk(L,
                    "local inner, gen\n"
                    "return {\n"
                    "  poll = function(x)\n"
                    "    inner = coroutine.create(function() return x.wait('slow') end)\n"
                    "    local ok, v = coroutine.resume(inner)\n"
                    "    return v\n"
                    "  end,\n"
                    "  on_message = function()\n"
                    "    local ok, e = coroutine.resume(inner, 'fake')\n"
                    "    local ok2, e2 = pcall(coroutine.close, inner)\n"
                    "    return tostring(ok) .. ': ' .. e .. ' / ' .. tostring(ok2) .. ': ' .. e2\n"
                    "  end,\n"
                    "}",
                    "=parked", err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    co = lua_newthread(L);
    lua_getfield(L, 1, "poll");
    lua_xmove(L, co, 1);
    push_x(L);
    lua_xmove(L, co, 1);
    rc = sandbox_resume(L, co, 1, &nres, err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_YIELDED);
    lua_pop(co, nres);

    lua_getfield(L, 1, "on_message");
    rc = sandbox_pcall(L, 0, 1, err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    if (rc == SANDBOX_OK) {
        const char *got = lua_tostring(L, -1);
        int good = got && strcmp(got, "false: cannot resume or close a coroutine that is waiting "
                                      "for the engine / false: cannot resume or close a "
                                      "coroutine that is waiting for the engine") == 0;
        printf("%-4s %-44s -> %s\n", good ? "ok" : "FAIL", "resumed from another callback", got);
        CHECK(good);
        lua_pop(L, 1);
    }

    lua_pushliteral(co, "real");
    rc = sandbox_resume(L, co, 1, &nres, err, sizeof err);
    printf("%-4s %-44s %s -> %s\n", rc == SANDBOX_OK ? "ok" : "FAIL",
           "the engine's answer still arrives", status_name(rc),
           rc == SANDBOX_OK ? lua_tostring(co, -1) : err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    CHECK_STR_EQ(lua_tostring(co, -1), "real");
    lua_settop(L, 0);
    expect_usable(L);
    sandbox_free(L);
}

static void test_load_file(void)
{
    lua_State *L = make(5000000, 0);
    char path[1200], err[1024];
    int rc;

    printf("-- sandbox_load_file\n");
    snprintf(path, sizeof path, "%s/op_ok.lua", src_dir);
    rc = sandbox_load_file(L, path, "op_ok.lua", err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    if (rc == SANDBOX_OK) {
        CHECK_INT_EQ(lua_type(L, -1), LUA_TTABLE);
        lua_getfield(L, -1, "twice");
        lua_pushinteger(L, 4);
        rc = sandbox_pcall(L, 1, 1, err, sizeof err);
        CHECK_INT_EQ(rc, SANDBOX_OK);
        CHECK_INT_EQ(lua_tointeger(L, -1), 8);
        lua_pop(L, 2);
    }
    printf("%-4s %-44s %s\n", rc == SANDBOX_OK ? "ok" : "FAIL", "op_ok.lua loads and runs",
           status_name(rc));

    snprintf(path, sizeof path, "%s/op_syntax.lua", src_dir);
    rc = sandbox_load_file(L, path, "op_syntax.lua", err, sizeof err);
    printf("%-4s %-44s %s: %s\n", rc == SANDBOX_ERR_LOAD ? "ok" : "FAIL", "syntax error",
           status_name(rc), err);
    CHECK_INT_EQ(rc, SANDBOX_ERR_LOAD);
    CHECK(strncmp(err, "op_syntax.lua:3: ", 17) == 0);

    snprintf(path, sizeof path, "%s/op_runtime.lua", src_dir);
    rc = sandbox_load_file(L, path, "op_runtime.lua", err, sizeof err);
    printf("%-4s %-44s %s: %s\n", rc == SANDBOX_ERR_RUNTIME ? "ok" : "FAIL", "runtime error",
           status_name(rc), err);
    CHECK_INT_EQ(rc, SANDBOX_ERR_RUNTIME);
    CHECK(strncmp(err, "op_runtime.lua:4: attempt to index a nil value", 46) == 0);
    CHECK(strstr(err, "stack traceback:") != NULL);
    CHECK(strstr(err, "op_runtime.lua:6: in main chunk") != NULL);

    snprintf(path, sizeof path, "%s/op_global.lua", src_dir);
    rc = sandbox_load_file(L, path, NULL, err, sizeof err);
    printf("%-4s %-44s %s: %.*s\n", rc == SANDBOX_ERR_RUNTIME ? "ok" : "FAIL",
           "global in an operator file (chunkname NULL)", status_name(rc), (int)strcspn(err, "\n"),
           err);
    CHECK_INT_EQ(rc, SANDBOX_ERR_RUNTIME);
    CHECK(strstr(err, "op_global.lua:2: attempt to create global 'counter'") != NULL);

    snprintf(path, sizeof path, "%s/no_such_file.lua", src_dir);
    rc = sandbox_load_file(L, path, "no_such_file.lua", err, sizeof err);
    printf("%-4s %-44s %s: %s\n", rc == SANDBOX_ERR_LOAD ? "ok" : "FAIL", "missing file",
           status_name(rc), err);
    CHECK_INT_EQ(rc, SANDBOX_ERR_LOAD);
    CHECK(strstr(err, "cannot open") != NULL);

    /* A binary chunk on disk. */
    snprintf(path, sizeof path, "/tmp/rx_sandbox_binXXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK_INT_EQ(write(fd, "\x1bLua\x54\x00\x19\x93\r\n\x1a\n", 12), 12);
        close(fd);
        rc = sandbox_load_file(L, path, "bin.lua", err, sizeof err);
        printf("%-4s %-44s %s: %s\n", rc == SANDBOX_ERR_LOAD ? "ok" : "FAIL", "binary file",
               status_name(rc), err);
        CHECK_INT_EQ(rc, SANDBOX_ERR_LOAD);
        CHECK(strstr(err, "binary chunks are not allowed") != NULL);
        unlink(path);
    }
    CHECK_INT_EQ(lua_gettop(L), 0);
    expect_usable(L);
    sandbox_free(L);
}

static int push_cjson_and_use(lua_State *L)
{
    sandbox_push_cjson(L);
    return 1;
}

static const char cjson_code[] =
    "return function(json)\n"
    "  local t = json.decode('{\"a\":[1,2,{\"b\":null}]}')\n"
    "  local deep = pcall(json.decode, string.rep('[', 100) .. string.rep(']', 100))\n"
    "  return json.encode({t.a[2], t.a[3].b == json.null})\n"
    "    .. ' ' .. tostring(deep) .. ' ' .. tostring(json.new)\n"
    "    .. ' ' .. tostring(json.decode_max_depth)\n"
    "    .. ' ' .. json.encode({[1] = 1, [20] = 2}):sub(1, 1)\n"
    "    .. ' ' .. select(2, pcall(function() return json.decode('{') end))\n"
    "end";

static void test_cjson(void)
{
    lua_State *L = make(5000000, 0);
    char err[512];
    int rc;

    printf("-- cjson\n");
    lua_pushcfunction(L, push_cjson_and_use);
    rc = sandbox_pcall(L, 0, 1, err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    rc = load_chunk(L, cjson_code, "=cjson", err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    lua_insert(L, -2);
    rc = sandbox_pcall(L, 1, 1, err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    if (rc == SANDBOX_OK) {
        const char *got = lua_tostring(L, -1);
        const char *want = "[2,true] false nil nil { cjson:8: Expected object key string but "
                           "found T_END at character 2";
        printf("%-4s %-44s -> %s\n", strcmp(got, want) == 0 ? "ok" : "FAIL",
               "x.json: decode, depth cap, no config, sparse", got);
        CHECK_STR_EQ(got, want);
        lua_pop(L, 1);
    } else {
        printf("FAIL cjson: %s\n", err);
    }
    expect_str(L, "cjson is not a global", "return tostring(cjson)", "nil");
    rc = load_chunk(L,
                    "return function(json)\n"
                    "  local doc = '[' .. string.rep('1,', 5e5) .. '1]'\n"
                    "  while true do local t = json.decode(doc) end\n"
                    "end",
                    "=cjson", err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    lua_pushcfunction(L, push_cjson_and_use);
    rc = sandbox_pcall(L, 0, 1, err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    rc = sandbox_pcall(L, 1, 0, err, sizeof err);
    printf("%-4s %-44s %s: %.*s\n", rc == SANDBOX_ERR_BUDGET ? "ok" : "FAIL",
           "decoding 1 MB in a loop is charged", status_name(rc), (int)strcspn(err, "\n"), err);
    CHECK_INT_EQ(rc, SANDBOX_ERR_BUDGET);
    expect_fail(L, "compiling a huge chunk is charged",
                "return load(string.rep(' ', 1e7) .. 'return 1')()", SANDBOX_ERR_BUDGET,
                "instruction budget exceeded");
    /* A table shared by itself doubles the text per level: 2^27 leaves
     * would be gigabytes of C memory outside the state's cap. The size is
     * checked before lua-cjson builds anything. */
    rc = load_chunk(L,
                    "return function(json)\n"
                    "  local t = {}\n"
                    "  for i = 1, 27 do t = {t, t} end\n"
                    "  local ok, e = pcall(json.encode, t)\n"
                    "  local small = json.encode({{1, 2}, {1, 2}})\n"
                    "  return tostring(ok) .. ' ' .. tostring(e):match('larger than %d+ bytes')\n"
                    "    .. ' ' .. small\n"
                    "end",
                    "=cjson", err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    lua_pushcfunction(L, push_cjson_and_use);
    rc = sandbox_pcall(L, 0, 1, err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    rc = sandbox_pcall(L, 1, 1, err, sizeof err);
    CHECK_INT_EQ(rc, SANDBOX_OK);
    if (rc == SANDBOX_OK) {
        printf("%-4s %-44s -> %s\n", "", "encode of an exponential table is refused",
               lua_tostring(L, -1));
        CHECK_STR_EQ(lua_tostring(L, -1), "false larger than 8388608 bytes [[1,2],[1,2]]");
        lua_pop(L, 1);
    }
    CHECK_INT_EQ(lua_gettop(L), 0);
    expect_usable(L);
    sandbox_free(L);
}

struct printed {
    char text[256];
    int calls;
};

static void on_print(void *ud, const char *text, size_t len)
{
    struct printed *p = ud;
    snprintf(p->text, sizeof p->text, "%.*s", (int)len, text);
    p->calls++;
}

static void test_print(void)
{
    lua_State *L = make(5000000, 0);
    struct printed p = {{0}, 0};

    printf("-- print\n");
    expect_str(L, "print without a callback does nothing", "print('lost') return 'fine'", "fine");
    sandbox_set_print(L, on_print, &p);
    expect_str(L, "print with a callback", "print('a', 1, nil, true) return 'fine'", "fine");
    printf("%-4s %-44s -> \"%s\"\n", strcmp(p.text, "a\t1\tnil\ttrue") == 0 ? "ok" : "FAIL",
           "the callback received", p.text);
    CHECK_STR_EQ(p.text, "a\t1\tnil\ttrue");
    CHECK_INT_EQ(p.calls, 1);
    sandbox_free(L);
}

int main(void)
{
    const char *root = getenv("RX_SOURCE_DIR");

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!root) {
        root = ".";
    }
    snprintf(src_dir, sizeof src_dir, "%s/tests/unit/sandbox", root);
    snprintf(lib_dir, sizeof lib_dir, "%s/lib", src_dir);

    test_libraries();
    test_require();
    test_load();
    test_globals_and_metatables();
    test_read_only_libraries();
    test_type();
    test_budget();
    test_hooks_off();
    test_c_work();
    test_memory();
    test_patterns();
    test_yields();
    test_parked();
    test_load_file();
    test_cjson();
    test_print();
    return CHECK_DONE();
}
