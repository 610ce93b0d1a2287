/*
 * sandbox_int: what the files of the sandbox share. sandbox.c owns the
 * state, its allocator, the instruction budget and the runs; sandbox_lib.c
 * builds what an operator sees (the allow-listed libraries, the locked
 * globals) with sandbox_require.c (require), sandbox_coroutine.c (the
 * coroutine wrapper) and sandbox_json.c (x.json). No other module includes
 * this header. Same threads as sandbox.h: the engine loop thread only.
 */
#ifndef RX_SANDBOX_INT_H
#define RX_SANDBOX_INT_H

#include <stddef.h>
#include <time.h>

#include "sandbox.h"

/* Bytes of heap a full collection walks per instruction charged: for
 * collectgarbage() and for every allocation refused at the cap, which makes
 * Lua run an emergency full collection. */
#define SANDBOX_GC_BYTES_PER_INSTRUCTION 8
/* Bytes of C copying (string.rep, x.json.encode) charged as one instruction. */
#define SANDBOX_COPY_BYTES_PER_INSTRUCTION 32

/* One per state: the allocator's userdata, so every thread of the state
 * finds it with lua_getallocf. */
struct sandbox {
    lua_State *main;
    size_t used;              /* bytes of Lua heap in use */
    size_t limit;             /* cap on used */
    long budget;              /* instructions per run */
    long remaining;           /* instructions left in the current run */
    long time_ms;             /* wall-clock cap of one run */
    struct timespec deadline; /* of the current run */
    const char *kill_reason;  /* what the kill raises */
    int hook_every;           /* count of the hook outside kill mode */
    int killed;               /* the current (or last) run ran out of budget */
    int refused;              /* the allocator refused growth since the run began */
    int depth;                /* nested runs; only the outermost arms the budget */
    int may_yield;            /* primitives may yield to the engine now */
    size_t rep_max;
    long pattern_steps;
    char *lib_dir; /* owned; NULL: require finds nothing */
    sandbox_print_fn print_fn;
    void *print_ud;
};

static inline struct sandbox *sandbox_of(lua_State *L)
{
    void *ud;

    lua_getallocf(L, &ud);
    return ud;
}

/* Compiles a text chunk (pushes the function) or raises the compile error;
 * `shown` names the source in the binary-chunk error. */
void sandbox_compile(lua_State *L, const char *data, size_t len, const char *chunkname,
                     const char *shown);

/* Reads `path` (at most SANDBOX_SOURCE_MAX bytes) and pushes its compiled
 * chunk. Returns 1, or 0 (nothing pushed) when the file does not exist;
 * raises every other failure. */
int sandbox_load_path(lua_State *L, const char *path, const char *chunkname);

/* A lua_CFunction that builds the operator's globals in a fresh state and
 * locks them. sandbox_new runs it in protected mode. */
int sandbox_open_libs(lua_State *L);

/* Copies the string keys of table `from` that `allow` (NULL-terminated)
 * lists into table `to`. */
void sandbox_copy(lua_State *L, int from, int to, const char *const *allow);
/* t[name] = the C closure of fn over the nup values on the stack. */
void sandbox_set_closure(lua_State *L, int t, const char *name, lua_CFunction fn, int nup);
/* g.require, with a fresh module cache in the registry. */
void sandbox_open_require(lua_State *L, int g);
/* Pushes the wrapped coroutine library; `base` indexes the stock base library. */
void sandbox_open_coroutine(lua_State *L, int base);

#endif
