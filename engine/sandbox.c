/*
 * sandbox: one capped, locked-down lua_State per operator.
 *
 * Operators are untrusted scripts, so each one lives in its own lua_State and
 * everything it can reach is chosen here, the way Redis builds its scripting
 * state (src/script_lua.c): from allow-lists rather than deny-lists, with a
 * locked global table and a count hook that pcall cannot catch.
 *
 * What an operator sees. The global table it sees is an empty proxy whose
 * metatable (protected by __metatable) reads through to the real globals and
 * refuses every assignment, so an operator can neither create a global nor
 * replace a library; rawset refuses the proxy too. The real globals are
 * copied from allow-lists: base without dofile, loadfile, warn and the stock
 * load, print, collectgarbage, setmetatable and rawset, whose replacements
 * below force text chunks, route printing to the engine, offer only "count"
 * and "collect", refuse __gc metamethods (a finalizer would run at arbitrary
 * moments, even inside the engine's own C calls) and protect the proxy;
 * string without dump, with a size-capped rep and the budgeted pattern
 * functions of lpattern; table, with the C loops the count hook cannot see
 * (move, insert, remove, sort) charged against the budget first; math;
 * utf8; os.time/clock/date; a wrapped coroutine; and a require that only
 * reads <lib_dir>/<name>.lua. The string metatable gets a __metatable field,
 * so getmetatable("") returns false and nothing can reach it. cjson is
 * never a global: the engine fetches a module with sandbox_push_cjson().
 *
 * Memory. The state's allocator counts the bytes in use and refuses any
 * growth past the cap; Lua then runs an emergency collection and, failing
 * that, raises "not enough memory" inside that state only.
 *
 * Instructions. A count hook fires every SANDBOX_HOOK_EVERY instructions and
 * spends them from the current run's budget (the engine re-arms it before
 * each callback run). The hook cannot see inside a C call, so C work is
 * charged too: heap growth by the allocator, string.rep and the table
 * functions that loop over a caller-given range before they start, and a
 * full collection by heap size; a loop of long C calls that allocate nothing
 * (comparing two big strings) is caught by a wall-clock cap the hook also
 * checks. When the budget is gone the run is "killed": the hook
 * raises "instruction budget exceeded" and re-arms itself on that thread to
 * fire on every instruction, so each instruction after a pcall that caught
 * the error raises it again until the run unwinds to the engine. Hooks are
 * per thread; every thread inherits its creator's hook (lua_newthread copies
 * it), and since the main thread is hooked before anything else runs, every
 * engine and operator coroutine is hooked too. A thread that is still in
 * kill mode when a later run starts heals itself at its next instruction.
 * The budget state lives in struct sandbox, which is also the allocator's
 * userdata, so any thread finds it with lua_getallocf.
 *
 * One trap: Lua turns hooks off while a hook runs, and an error raised from
 * the hook leaves them off until a pcall catches it and restores them. Lua
 * code that runs in between would run unbudgeted: xpcall's message handler
 * (so our xpcall skips the operator's handler while the run is killed), and
 * the __close handlers of a coroutine that died of the kill, which run when
 * the coroutine is closed (so dead coroutines are never closed: not by
 * coroutine.close or wrap, nor by sandbox_resume). __gc finalizers always
 * run with hooks off, which is one more reason they are refused.
 *
 * Yields. The engine's yielding primitives yield a unique light userdata,
 * the sentinel, first. The coroutine library operators get is a small Lua
 * prelude over the stock functions, held in upvalues: when a coroutine the
 * operator resumed yields the sentinel, resume/wrap yield it (and the values
 * after it) on up to the engine, then pass the engine's answer back down,
 * until the coroutine yields something else or ends. An operator can only
 * resume or close coroutines it created, never the engine's.
 */
#include "sandbox.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lpattern.h"
#include "xalloc.h"

/* lua-cjson's entry point (liblua5.4-cjson, linked into rx_engine). */
int luaopen_cjson(lua_State *L);

/* Any count hook costs Lua 5.4 about as much again on every instruction,
 * whatever the count (measured: 0.37 s bare, 0.77 s every 1000, 0.80 s every
 * 250), so a short interval is cheap and keeps the kill close. */
#define SANDBOX_HOOK_EVERY 250
/* Bytes of C copying (string.rep) charged as one instruction. */
#define SANDBOX_COPY_BYTES_PER_INSTRUCTION 32
/* Bytes of heap growth charged as one instruction (C functions that build
 * big results do work in proportion to what they allocate). */
#define SANDBOX_ALLOC_BYTES_PER_INSTRUCTION 64
/* Bytes of heap a full collection walks per instruction charged: for
 * collectgarbage() and for every allocation refused at the cap, which makes
 * Lua run an emergency full collection. */
#define SANDBOX_GC_BYTES_PER_INSTRUCTION 8
#define SANDBOX_TRACE_LEVELS 6
#define SANDBOX_TRACE_BYTES 768
#define SANDBOX_CJSON_DEPTH 64
#define SANDBOX_MODULE_NAME_MAX 128

struct sandbox {
    lua_State *main;
    size_t used;             /* bytes of Lua heap in use */
    size_t limit;            /* cap on used */
    long budget;             /* instructions per run */
    long remaining;          /* instructions left in the current run */
    long time_ms;            /* wall-clock cap of one run */
    struct timespec deadline; /* of the current run */
    const char *kill_reason; /* what the kill raises */
    int hook_every;          /* count of the hook outside kill mode */
    int killed;              /* the current (or last) run ran out of budget */
    int refused;             /* the allocator refused growth since the run began */
    int depth;               /* nested runs; only the outermost arms the budget */
    int may_yield;           /* inside sandbox_resume: primitives may yield */
    size_t rep_max;
    long pattern_steps;
    char *lib_dir;           /* owned; NULL: require finds nothing */
    sandbox_print_fn print_fn;
    void *print_ud;
};

/* Addresses used as unique keys and values; never written. */
static const char sandbox_sentinel = 'S';
static const char sandbox_key_loaded = 'L';
static const char sandbox_loading = 'l';

static struct sandbox *sandbox_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* ---------------------------------------------------------------------------
 * Memory: a counting allocator that refuses growth beyond the cap.
 * ------------------------------------------------------------------------- */

static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct sandbox *sb = ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    void *p;

    if (nsize == 0) {
        free(ptr);
        sb->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > sb->limit - sb->used) {
        sb->refused = 1;
        sb->remaining -= (long)(sb->used / SANDBOX_GC_BYTES_PER_INSTRUCTION);
        return NULL;
    }
    p = realloc(ptr, nsize);
    if (p) {
        sb->used = sb->used - old + nsize;
        if (nsize > old) {
            sb->remaining -= (long)((nsize - old) / SANDBOX_ALLOC_BYTES_PER_INSTRUCTION);
        }
    }
    return p;
}

static int sandbox_panic(lua_State *L)
{
    /* The process is about to abort; this line is the only trace of why. */
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    fprintf(stderr, "sandbox: unprotected Lua error: %s\n", msg);
    return 0;
}

size_t sandbox_memory_used(lua_State *L)
{
    return sandbox_of(L)->used;
}

size_t sandbox_memory_limit(lua_State *L)
{
    return sandbox_of(L)->limit;
}

/* ---------------------------------------------------------------------------
 * Instructions: the count hook, its kill mode and the charges for C work.
 * ------------------------------------------------------------------------- */

static const char sandbox_budget_msg[] = "instruction budget exceeded";
static const char sandbox_time_msg[] = "time budget exceeded";

static void sandbox_clock(struct timespec *ts)
{
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, ts); /* a few ns; ms resolution is plenty */
#else
    clock_gettime(CLOCK_MONOTONIC, ts);
#endif
}

static int sandbox_past_deadline(const struct sandbox *sb)
{
    struct timespec now;

    sandbox_clock(&now);
    return now.tv_sec > sb->deadline.tv_sec ||
           (now.tv_sec == sb->deadline.tv_sec && now.tv_nsec > sb->deadline.tv_nsec);
}

/*
 * The count hook. Outside kill mode it spends the count and checks the
 * wall clock, a backstop for loops whose every instruction is a long C call
 * (comparing two big strings) that the count alone undercharges. In kill
 * mode it raises on every instruction of this thread.
 */
static void sandbox_hook(lua_State *L, lua_Debug *ar)
{
    struct sandbox *sb = sandbox_of(L);
    int count = lua_gethookcount(L);

    if (!sb->killed) {
        if (count != sb->hook_every) {
            /* Still in kill mode from an earlier run: back to normal. */
            lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, sb->hook_every);
        }
        sb->remaining -= count;
        if (sb->remaining > 0 && !sandbox_past_deadline(sb)) {
            return;
        }
        sb->killed = 1;
        sb->kill_reason = sb->remaining > 0 ? sandbox_time_msg : sandbox_budget_msg;
    }
    /* Fire again on this thread's very next instruction, whatever catches this. */
    lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, 1);
    luaL_where(L, 0); /* a hook runs in its function's frame: level 0 is the loop */
    lua_pushstring(L, sb->kill_reason);
    lua_concat(L, 2);
    lua_error(L);
}

void sandbox_arm(lua_State *L)
{
    struct sandbox *sb = sandbox_of(L);

    sb->remaining = sb->budget;
    sb->killed = 0;
    sb->refused = 0;
    sandbox_clock(&sb->deadline);
    sb->deadline.tv_sec += sb->time_ms / 1000;
    sb->deadline.tv_nsec += (sb->time_ms % 1000) * 1000000L;
    if (sb->deadline.tv_nsec >= 1000000000L) {
        sb->deadline.tv_sec++;
        sb->deadline.tv_nsec -= 1000000000L;
    }
    lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, sb->hook_every);
    if (L != sb->main) {
        lua_sethook(sb->main, sandbox_hook, LUA_MASKCOUNT, sb->hook_every);
    }
}

int sandbox_killed(lua_State *L)
{
    return sandbox_of(L)->killed;
}

void sandbox_charge(lua_State *L, long instructions)
{
    struct sandbox *sb = sandbox_of(L);

    if (instructions <= 0 || sb->depth == 0) {
        return;
    }
    if (!sb->killed && instructions < sb->remaining) {
        sb->remaining -= instructions;
        return;
    }
    if (!sb->killed) {
        sb->killed = 1;
        sb->kill_reason = sandbox_budget_msg;
    }
    lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, 1);
    luaL_where(L, 1);
    lua_pushstring(L, sb->kill_reason);
    lua_concat(L, 2);
    lua_error(L);
}

/* Enters a run: the outermost one arms the budget. */
static void sandbox_enter(lua_State *L, struct sandbox *sb)
{
    if (sb->depth++ == 0) {
        sandbox_arm(L);
    }
}

/* ---------------------------------------------------------------------------
 * Errors: messages, short tracebacks and classification. Everything here
 * that runs after a run has failed avoids allocating, because the engine
 * calls it outside any protected call.
 * ------------------------------------------------------------------------- */

static void sandbox_append(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void sandbox_append(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*used >= len) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    if (n > 0) {
        *used += (size_t)n < len - *used ? (size_t)n : len - *used;
    }
}

static void sandbox_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sandbox_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A run that returned normally although its budget ran out on the way. */
static int sandbox_killed_late(struct sandbox *sb, char *err, size_t errlen)
{
    sandbox_errf(err, errlen, "%s (%ld instructions, %ld ms) in a coroutine of this run",
                 sb->kill_reason, sb->budget, sb->time_ms);
    return SANDBOX_ERR_BUDGET;
}

/* The text of the error object at idx, without calling metamethods. */
static const char *sandbox_error_text(lua_State *L, int idx, char *tmp, size_t len)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        return lua_tostring(L, idx);
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            snprintf(tmp, len, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
        } else {
            snprintf(tmp, len, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(L, idx));
        }
        return tmp;
    default:
        snprintf(tmp, len, "(error object is a %s value)", luaL_typename(L, idx));
        return tmp;
    }
}

/* Writes up to SANDBOX_TRACE_LEVELS frames of co, from `level` up, into buf. */
static void sandbox_trace(lua_State *co, int level, char *buf, size_t len)
{
    lua_Debug ar;
    size_t used = 0;
    int n;

    buf[0] = '\0';
    for (n = 0; lua_getstack(co, level + n, &ar); n++) {
        if (n == SANDBOX_TRACE_LEVELS) {
            sandbox_append(buf, len, &used, "\n\t...");
            break;
        }
        if (n == 0) {
            sandbox_append(buf, len, &used, "\nstack traceback:");
        }
        lua_getinfo(co, "Sln", &ar);
        if (ar.currentline > 0) {
            sandbox_append(buf, len, &used, "\n\t%s:%d: in ", ar.short_src, ar.currentline);
        } else {
            sandbox_append(buf, len, &used, "\n\t%s: in ", ar.short_src);
        }
        if (*ar.namewhat != '\0') {
            sandbox_append(buf, len, &used, "%s '%s'", ar.namewhat, ar.name);
        } else if (*ar.what == 'm') {
            sandbox_append(buf, len, &used, "main chunk");
        } else if (*ar.what == 'C') {
            sandbox_append(buf, len, &used, "?");
        } else {
            sandbox_append(buf, len, &used, "function <%s:%d>", ar.short_src, ar.linedefined);
        }
    }
}

/* Message handler of sandbox_pcall: the message and a short traceback. */
static int sandbox_msgh(lua_State *L)
{
    char tmp[64], trace[SANDBOX_TRACE_BYTES];
    const char *msg = sandbox_error_text(L, 1, tmp, sizeof tmp);

    sandbox_trace(L, 1, trace, sizeof trace);
    lua_pushfstring(L, "%s%s", msg, trace);
    return 1;
}

static int sandbox_classify(struct sandbox *sb, int status, const char *msg)
{
    if (sb->killed) {
        return SANDBOX_ERR_BUDGET;
    }
    if (status == LUA_ERRMEM) {
        return SANDBOX_ERR_MEMORY;
    }
    /* A memory error that some C code caught and re-raised as a plain error. */
    if (sb->refused && strncmp(msg, "not enough memory", 17) == 0) {
        return SANDBOX_ERR_MEMORY;
    }
    return SANDBOX_ERR_RUNTIME;
}

/* Classifies the failure whose error object is on top of L, copies its text
 * into err (with extra context for memory and budget) and pops it. */
static int sandbox_fail(lua_State *L, struct sandbox *sb, int status, const char *extra,
                        char *err, size_t errlen)
{
    char tmp[64];
    const char *msg = sandbox_error_text(L, -1, tmp, sizeof tmp);
    int rc = sandbox_classify(sb, status, msg);

    if (!extra) {
        extra = "";
    }
    if (rc == SANDBOX_ERR_MEMORY) {
        sandbox_errf(err, errlen, "not enough memory (the operator's Lua heap is capped at %zu "
                                  "bytes)%s", sb->limit, extra);
    } else if (rc == SANDBOX_ERR_BUDGET && !strstr(msg, "budget exceeded")) {
        sandbox_errf(err, errlen, "%s (%ld instructions, %ld ms): %s%s", sb->kill_reason,
                     sb->budget, sb->time_ms, msg, extra);
    } else {
        sandbox_errf(err, errlen, "%s%s", msg, extra);
    }
    lua_pop(L, 1);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Reading and compiling source text.
 * ------------------------------------------------------------------------- */

/* Compiles a text chunk (pushes the function) or raises the compile error. */
static void sandbox_compile(lua_State *L, const char *data, size_t len, const char *chunkname,
                            const char *shown)
{
    if (len > 0 && data[0] == LUA_SIGNATURE[0]) {
        luaL_error(L, "%s: binary chunks are not allowed", shown);
    }
    if (luaL_loadbufferx(L, data, len, chunkname, "t") != LUA_OK) {
        lua_error(L);
    }
}

/*
 * Reads `path` and pushes its compiled chunk. Returns 1, or 0 (nothing
 * pushed) when the file does not exist; raises every other failure. The text
 * is read into a userdata so a memory error cannot leak it.
 */
static int sandbox_load_path(lua_State *L, const char *path, const char *chunkname)
{
    struct stat st;
    FILE *f;
    char *buf;
    size_t got;
    int failed;

    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            return 0;
        }
        return luaL_error(L, "cannot open %s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return luaL_error(L, "cannot open %s: not a regular file", path);
    }
    if (st.st_size > (off_t)SANDBOX_SOURCE_MAX) {
        return luaL_error(L, "%s: file too large (%I bytes; the limit is %d)", path,
                          (LUAI_UACINT)st.st_size, (int)SANDBOX_SOURCE_MAX);
    }
    buf = lua_newuserdatauv(L, (size_t)st.st_size + 1, 0);
    f = fopen(path, "rb");
    if (!f) {
        return luaL_error(L, "cannot open %s: %s", path, strerror(errno));
    }
    got = fread(buf, 1, (size_t)st.st_size, f);
    failed = ferror(f);
    fclose(f);
    if (failed) {
        return luaL_error(L, "cannot read %s", path);
    }
    sandbox_compile(L, buf, got, chunkname, path);
    lua_remove(L, -2);
    return 1;
}

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
    sandbox_module_path(L, sb->lib_dir, name);             /* 4: file */
    sandbox_module_path(L, "@operators/lib", name);        /* 5: chunk name */
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
    return luaL_error(L, "module '%s' not found (require only reaches operators/lib/)", name);
}

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
        return luaL_error(L, "attempt to modify global '%s' (the global table is read-only)",
                          name);
    }
    return luaL_error(L, "attempt to create global '%s' (operators use locals)", name);
}

/* rawset, refusing the global proxy. Upvalue 1: the proxy; 2: the globals. */
static int sandbox_base_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (lua_rawequal(L, 1, lua_upvalueindex(1))) {
        return sandbox_global_error(L, lua_upvalueindex(2), 2);
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

    if (lua_type(L, 1) == LUA_TTABLE && lua_gettop(L) >= 2 + lua_toboolean(L, lua_upvalueindex(2))) {
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

/* Pushes the wrapped coroutine library; `base` indexes the stock base library. */
static void sandbox_open_coroutine(lua_State *L, int base)
{
    static const char *const stock[] = {"create", "resume", "yield", "status",
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

/* ---------------------------------------------------------------------------
 * Setup: allow-lists copied into fresh tables.
 * ------------------------------------------------------------------------- */

static const char *const sandbox_base_allow[] = {
    "assert", "error",  "getmetatable", "ipairs",   "next",     "pairs",    "pcall",
    "rawequal", "rawget", "rawlen",     "select",   "tonumber", "tostring", "type",
    "_VERSION", NULL,
};

static const char *const sandbox_string_allow[] = {
    "byte", "char", "find",    "format", "gmatch", "gsub",     "len",    "lower", "match",
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

/* Copies the allow-listed string keys of table `from` into table `to`. */
static void sandbox_copy(lua_State *L, int from, int to, const char *const *allow)
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

static void sandbox_set_closure(lua_State *L, int t, const char *name, lua_CFunction fn, int nup)
{
    lua_pushcclosure(L, fn, nup);
    lua_setfield(L, t, name);
}

static void sandbox_open_base(lua_State *L, int g, int proxy)
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
    sandbox_set_closure(L, g, "require", sandbox_require, 0);
    lua_pushvalue(L, proxy);
    lua_pushvalue(L, g);
    sandbox_set_closure(L, g, "rawset", sandbox_base_rawset, 2);
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

/* Runs in protected mode inside sandbox_new. */
static int sandbox_setup(lua_State *L)
{
    int g, proxy;

    lua_settop(L, 0);
    lua_newtable(L);
    g = lua_gettop(L);
    lua_newtable(L);
    proxy = lua_gettop(L);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &sandbox_key_loaded);

    sandbox_open_base(L, g, proxy);
    sandbox_open_string(L, g);
    sandbox_open_table(L, g);
    sandbox_open_rest(L, g);
    sandbox_lock_globals(L, g, proxy);
    lua_settop(L, 0);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Life cycle.
 * ------------------------------------------------------------------------- */

void sandbox_limits_default(struct sandbox_limits *limits)
{
    limits->memory_bytes = SANDBOX_DEFAULT_MEMORY;
    limits->instructions = SANDBOX_DEFAULT_INSTRUCTIONS;
    limits->time_ms = SANDBOX_DEFAULT_TIME_MS;
    limits->pattern_steps = SANDBOX_DEFAULT_PATTERN_STEPS;
    limits->rep_max_bytes = SANDBOX_DEFAULT_REP_MAX;
    limits->lib_dir = NULL;
}

static struct sandbox *sandbox_make(const struct sandbox_limits *limits)
{
    struct sandbox_limits d;
    struct sandbox *sb = xcalloc(1, sizeof *sb);

    sandbox_limits_default(&d);
    if (!limits) {
        limits = &d;
    }
    sb->limit = limits->memory_bytes ? limits->memory_bytes : d.memory_bytes;
    sb->budget = limits->instructions > 0 ? limits->instructions : d.instructions;
    sb->time_ms = limits->time_ms > 0 ? limits->time_ms : d.time_ms;
    sb->pattern_steps = limits->pattern_steps > 0 ? limits->pattern_steps : d.pattern_steps;
    sb->rep_max = limits->rep_max_bytes ? limits->rep_max_bytes : d.rep_max_bytes;
    if (sb->rep_max > INT_MAX) {
        sb->rep_max = INT_MAX;
    }
    sb->hook_every = sb->budget < SANDBOX_HOOK_EVERY ? (int)sb->budget : SANDBOX_HOOK_EVERY;
    sb->remaining = sb->budget;
    sb->kill_reason = sandbox_budget_msg;
    sb->lib_dir = limits->lib_dir ? xstrdup(limits->lib_dir) : NULL;
    return sb;
}

lua_State *sandbox_new(const struct sandbox_limits *limits, char *err, size_t errlen)
{
    struct sandbox *sb = sandbox_make(limits);
    lua_State *L = lua_newstate(sandbox_alloc, sb);
    char tmp[64];

    if (!L) {
        sandbox_errf(err, errlen, "cannot create a Lua state within %zu bytes", sb->limit);
        goto fail;
    }
    sb->main = L;
    lua_atpanic(L, sandbox_panic);
    lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, sb->hook_every);
    lua_pushcfunction(L, sandbox_setup);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        sandbox_errf(err, errlen, "cannot set up the sandbox within %zu bytes: %s", sb->limit,
                     sandbox_error_text(L, -1, tmp, sizeof tmp));
        goto fail;
    }
    return L;

fail:
    if (L) {
        lua_close(L);
    }
    free(sb->lib_dir);
    free(sb);
    return NULL;
}

void sandbox_free(lua_State *L)
{
    struct sandbox *sb;

    if (!L) {
        return;
    }
    sb = sandbox_of(L);
    /* Whatever Lua the close still runs (__close handlers) dies at once. */
    sb->killed = 1;
    sb->kill_reason = sandbox_budget_msg;
    lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, 1);
    lua_close(L);
    free(sb->lib_dir);
    free(sb);
}

void sandbox_set_print(lua_State *L, sandbox_print_fn fn, void *ud)
{
    struct sandbox *sb = sandbox_of(L);

    sb->print_fn = fn;
    sb->print_ud = ud;
}

/* ---------------------------------------------------------------------------
 * Running: calls, engine coroutines and loading.
 * ------------------------------------------------------------------------- */

int sandbox_pcall(lua_State *L, int nargs, int nresults, char *err, size_t errlen)
{
    struct sandbox *sb = sandbox_of(L);
    int base = lua_gettop(L) - nargs;
    int saved = sb->may_yield;
    int status;

    if (!lua_checkstack(L, 1)) {
        lua_pop(L, nargs + 1);
        sandbox_errf(err, errlen, "Lua stack overflow");
        return SANDBOX_ERR_RUNTIME;
    }
    lua_pushcfunction(L, sandbox_msgh);
    lua_insert(L, base);
    sandbox_enter(L, sb);
    sb->may_yield = 0;
    status = lua_pcall(L, nargs, nresults, base);
    sb->may_yield = saved;
    sb->depth--;
    lua_remove(L, base);
    if (status != LUA_OK) {
        return sandbox_fail(L, sb, status, NULL, err, errlen);
    }
    if (sb->killed) {
        /* Killed in a coroutine, and done before the kill reached this thread. */
        lua_settop(L, base - 1);
        return sandbox_killed_late(sb, err, errlen);
    }
    return SANDBOX_OK;
}

int sandbox_resume(lua_State *L, lua_State *co, int nargs, int *nresults, char *err,
                   size_t errlen)
{
    struct sandbox *sb = sandbox_of(L);
    int saved = sb->may_yield;
    int status, nres = 0;
    char trace[SANDBOX_TRACE_BYTES];

    *nresults = 0;
    sandbox_enter(co, sb);
    sb->may_yield = 1;
    status = lua_resume(co, L, nargs, &nres);
    sb->may_yield = saved;
    sb->depth--;
    if ((status == LUA_OK || status == LUA_YIELD) && sb->killed) {
        lua_pop(co, nres);
        return sandbox_killed_late(sb, err, errlen);
    }
    if (status == LUA_OK) {
        *nresults = nres;
        return SANDBOX_OK;
    }
    if (status == LUA_YIELD) {
        if (nres > 0 && sandbox_is_yield_sentinel(co, -nres)) {
            *nresults = nres;
            return SANDBOX_YIELDED;
        }
        sandbox_errf(err, errlen, "coroutine.yield outside an operator coroutine (only "
                                  "coroutines the operator creates may yield; the engine "
                                  "resumes the callback)");
        lua_pop(co, nres);
        return SANDBOX_ERR_RUNTIME;
    }
    /* The failed coroutine keeps its stack: take the traceback from it. */
    sandbox_trace(co, 0, trace, sizeof trace);
    return sandbox_fail(co, sb, status, trace, err, errlen);
}

struct sandbox_source {
    const char *path;      /* a file, or NULL for data/len */
    const char *data;
    size_t len;
    const char *chunkname; /* NULL: "@path", or "=sandbox" */
};

/* Protected part of loading: pushes the compiled chunk. Arg 1: the source. */
static int sandbox_load_aux(lua_State *L)
{
    const struct sandbox_source *src = lua_touserdata(L, 1);
    const char *name = src->chunkname;

    if (src->path) {
        if (!name) {
            name = lua_pushfstring(L, "@%s", src->path);
        } else if (name[0] != '@' && name[0] != '=') {
            name = lua_pushfstring(L, "@%s", name); /* a file name to show */
        }
        if (!sandbox_load_path(L, src->path, name)) {
            return luaL_error(L, "cannot open %s: %s", src->path, strerror(ENOENT));
        }
        return 1;
    }
    if (!name) {
        name = "=sandbox";
    }
    sandbox_compile(L, src->data, src->len, name, name[0] == '=' || name[0] == '@' ? name + 1 : name);
    return 1;
}

static int sandbox_load(lua_State *L, struct sandbox_source *src, char *err, size_t errlen)
{
    struct sandbox *sb = sandbox_of(L);
    int status, rc;

    if (!lua_checkstack(L, 2)) {
        sandbox_errf(err, errlen, "Lua stack overflow");
        return SANDBOX_ERR_RUNTIME;
    }
    lua_pushcfunction(L, sandbox_load_aux);
    lua_pushlightuserdata(L, src);
    sandbox_enter(L, sb);
    status = lua_pcall(L, 1, 1, 0);
    sb->depth--;
    if (status != LUA_OK) {
        rc = sandbox_fail(L, sb, status, NULL, err, errlen);
        return rc == SANDBOX_ERR_RUNTIME ? SANDBOX_ERR_LOAD : rc;
    }
    return sandbox_pcall(L, 0, 1, err, errlen);
}

int sandbox_load_file(lua_State *L, const char *path, const char *chunkname, char *err,
                      size_t errlen)
{
    struct sandbox_source src = {path, NULL, 0, chunkname};

    return sandbox_load(L, &src, err, errlen);
}

int sandbox_load_string(lua_State *L, const char *chunk, size_t len, const char *chunkname,
                        char *err, size_t errlen)
{
    struct sandbox_source src = {NULL, chunk, len, chunkname};

    return sandbox_load(L, &src, err, errlen);
}

/* ---------------------------------------------------------------------------
 * Yielding primitives and cjson.
 * ------------------------------------------------------------------------- */

void sandbox_push_yield_sentinel(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&sandbox_sentinel);
}

int sandbox_is_yield_sentinel(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA &&
           lua_touserdata(L, idx) == (void *)&sandbox_sentinel;
}

int sandbox_yieldable_guard(lua_State *L, const char *what)
{
    if (lua_isyieldable(L) && sandbox_of(L)->may_yield) {
        return 0;
    }
    return luaL_error(L, "%s", what);
}

/* cjson's decode (upvalue 1), charged one instruction per input byte before
 * it runs. Its errors are re-raised with the caller's position, which a C
 * caller in between would otherwise hide. */
static int sandbox_json_decode(lua_State *L)
{
    int n = lua_gettop(L);

    if (lua_type(L, 1) == LUA_TSTRING) {
        sandbox_charge(L, (long)luaL_len(L, 1));
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    if (lua_pcall(L, n, LUA_MULTRET, 0) != LUA_OK) {
        if (lua_type(L, -1) == LUA_TSTRING) {
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    return lua_gettop(L);
}

static void sandbox_cjson_option(lua_State *L, int cjson, const char *name, int boolean,
                                 lua_Integer value)
{
    lua_getfield(L, cjson, name);
    if (boolean) {
        lua_pushboolean(L, (int)value);
    } else {
        lua_pushinteger(L, value);
    }
    lua_call(L, 1, 0);
}

void sandbox_push_cjson(lua_State *L)
{
    static const char *const keep[] = {"encode", "decode", "null", "_NAME", "_VERSION", NULL};
    int cjson;

    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1);
    cjson = lua_gettop(L);
    sandbox_cjson_option(L, cjson, "decode_max_depth", 0, SANDBOX_CJSON_DEPTH);
    sandbox_cjson_option(L, cjson, "encode_max_depth", 0, SANDBOX_CJSON_DEPTH);
    sandbox_cjson_option(L, cjson, "encode_keep_buffer", 1, 0);
    sandbox_cjson_option(L, cjson, "encode_sparse_array", 1, 1);
    lua_createtable(L, 0, 5);
    sandbox_copy(L, cjson, lua_gettop(L), keep);
    lua_getfield(L, cjson, "decode");
    sandbox_set_closure(L, lua_gettop(L) - 1, "decode", sandbox_json_decode, 1);
    lua_remove(L, cjson);
}
