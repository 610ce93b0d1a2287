/*
 * sandbox: one capped, locked-down lua_State per operator.
 *
 * Operators are untrusted scripts, so each one lives in its own lua_State,
 * built the way Redis builds its scripting state (src/script_lua.c): from
 * allow-lists, with a locked global table and a count hook that pcall cannot
 * catch. This file owns the state, its allocator, the instruction budget
 * and the runs; sandbox_lib.c builds what the operator sees.
 *
 * Memory. The state's allocator counts the bytes in use and refuses any
 * growth past the cap; Lua then runs an emergency collection and, failing
 * that, raises "not enough memory" inside that state only.
 *
 * Instructions. A count hook fires every SANDBOX_HOOK_EVERY instructions and
 * spends them from the current run's budget, which sandbox_pcall and
 * sandbox_resume re-arm before each callback run. The hook cannot see inside
 * a C call, so C work is charged too: heap growth by the allocator (C
 * functions that build big results work in proportion to what they
 * allocate), and the specific charges sandbox_lib.c makes; a loop of long C
 * calls that allocate nothing (comparing two big strings) is caught by a
 * wall-clock cap the hook also checks. When the budget is gone the run is
 * "killed": the hook raises "instruction budget exceeded" and re-arms itself
 * on that thread to fire on every instruction, so each instruction after a
 * pcall that caught the error raises it again until the run unwinds to the
 * engine. Hooks are per thread; every thread inherits its creator's hook
 * (lua_newthread copies it), and since the main thread is hooked before
 * anything else runs, every engine and operator coroutine is hooked too. A
 * thread still in kill mode when a later run starts heals itself at its
 * next instruction. A run that returns although a coroutine of it was killed
 * still reports the kill.
 *
 * One trap: Lua turns hooks off while a hook runs, and an error raised from
 * the hook leaves them off until a pcall catches it and restores them. Lua
 * code that runs in between would run unbudgeted: xpcall's message handler
 * (sandbox_lib.c's xpcall skips the operator's handler while the run is
 * killed), and the __close handlers of a coroutine that died of the kill,
 * which run when the coroutine is closed (so dead coroutines are never
 * closed: not by the coroutine wrapper, nor by sandbox_resume). __gc
 * finalizers always run with hooks off, which is why they are refused.
 *
 * Yields. The engine's yielding primitives yield a unique light userdata,
 * the sentinel, first; sandbox_resume reports those yields to the engine and
 * treats any other yield as an error. may_yield tells primitives whether a
 * yield can reach the engine at all: only inside sandbox_resume, and only
 * through coroutines the wrapper can relay from.
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

#include "sandbox_int.h"
#include "core/xalloc.h"

/* Any count hook costs Lua 5.4 about as much again on every instruction,
 * whatever the count (measured: 0.37 s bare, 0.77 s every 1000, 0.80 s every
 * 250), so a short interval is cheap and keeps the kill close. */
#define SANDBOX_HOOK_EVERY 250
/* Bytes of heap growth charged as one instruction. */
#define SANDBOX_ALLOC_BYTES_PER_INSTRUCTION 64
#define SANDBOX_TRACE_LEVELS 6
#define SANDBOX_TRACE_BYTES 768

/* Its address is the engine's yield sentinel; never written. */
static const char sandbox_sentinel = 'S';

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

/* The fine clock: deadlines are a few milliseconds (on_message), which the
 * coarse one (4 ms steps here) cannot tell apart; through the vDSO this
 * costs ~20 ns per hook, against the ~250 instructions between hooks. */
static void sandbox_clock(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
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

void sandbox_set_time_limit(lua_State *L, long ms)
{
    sandbox_of(L)->time_ms = ms > 0 ? ms : SANDBOX_DEFAULT_TIME_MS;
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
static int sandbox_fail(lua_State *L, struct sandbox *sb, int status, const char *extra, char *err,
                        size_t errlen)
{
    char tmp[64];
    const char *msg = sandbox_error_text(L, -1, tmp, sizeof tmp);
    int rc = sandbox_classify(sb, status, msg);

    if (!extra) {
        extra = "";
    }
    if (rc == SANDBOX_ERR_MEMORY) {
        sandbox_errf(err, errlen,
                     "not enough memory (the operator's Lua heap is capped at %zu "
                     "bytes)%s",
                     sb->limit, extra);
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

void sandbox_compile(lua_State *L, const char *data, size_t len, const char *chunkname,
                     const char *shown)
{
    if (len > 0 && data[0] == LUA_SIGNATURE[0]) {
        luaL_error(L, "%s: binary chunks are not allowed", shown);
    }
    if (luaL_loadbufferx(L, data, len, chunkname, "t") != LUA_OK) {
        lua_error(L);
    }
}

/* The text is read into a userdata, so a memory error cannot leak it. */
int sandbox_load_path(lua_State *L, const char *path, const char *chunkname)
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
    lua_pushcfunction(L, sandbox_open_libs);
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

int sandbox_resume(lua_State *L, lua_State *co, int nargs, int *nresults, char *err, size_t errlen)
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
        sandbox_errf(err, errlen,
                     "coroutine.yield outside an operator coroutine (only "
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
    const char *path; /* a file, or NULL for data/len */
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
    sandbox_compile(L, src->data, src->len, name,
                    name[0] == '=' || name[0] == '@' ? name + 1 : name);
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
 * Yielding primitives.
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
