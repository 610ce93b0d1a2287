/*
 * sandbox: one capped, locked-down lua_State per operator.
 *
 * An operator is an untrusted exchange adapter script. Each one gets its own
 * lua_State from sandbox_new(), built from allow-lists (base without dofile,
 * loadfile or binary chunks; string, table, math, utf8, a wrapped coroutine,
 * os.time/clock/date; a require that only reaches the operators' lib
 * directory), with a locked global table, a per-state memory cap enforced by
 * the allocator and a per-run instruction budget (with a wall-clock
 * backstop) enforced by a count hook that an operator's pcall cannot
 * swallow. sandbox.c explains the state and the budget, sandbox_lib.c what
 * the operator sees (with sandbox_require.c, sandbox_coroutine.c and
 * sandbox_json.c).
 *
 * Threads: only the engine loop thread may call these functions, and only
 * with states made by sandbox_new() (or threads of them).
 *
 * Ownership: sandbox_new() returns a state owned by the caller, released by
 * sandbox_free(). Strings passed in are borrowed for the duration of the
 * call (limits->lib_dir is copied). Error texts go to buffers the caller
 * owns; this module never logs.
 *
 * Running Lua: always go through sandbox_pcall() or sandbox_resume(). They
 * arm the instruction budget, add a short traceback and classify failures.
 * Calling lua_pcall/lua_resume directly after a killed run would run into
 * the still-armed kill. Like any Lua API call, the other functions that push
 * values may raise a memory error at the cap: call them in protected mode.
 */
#ifndef RX_SANDBOX_H
#define RX_SANDBOX_H

#include <stddef.h>

#include <lua.h>

/* Defaults of struct sandbox_limits. */
#define SANDBOX_DEFAULT_MEMORY (64u << 20)     /* bytes of Lua heap per state */
#define SANDBOX_DEFAULT_INSTRUCTIONS 50000000L /* VM instructions per run */
#define SANDBOX_DEFAULT_TIME_MS 2000L          /* wall-clock milliseconds per run */
#define SANDBOX_DEFAULT_PATTERN_STEPS 1000000L /* = LPATTERN_DEFAULT_BUDGET */
#define SANDBOX_DEFAULT_REP_MAX (16u << 20)    /* bytes of one string.rep result */
#define SANDBOX_SOURCE_MAX (1u << 20)          /* bytes of one source file */

struct sandbox_limits {
    size_t memory_bytes;  /* cap on the Lua heap; beyond it Lua raises "not enough memory" */
    long instructions;    /* budget of one run (sandbox_pcall, one sandbox_resume), in VM
                           * instructions plus charges for C work (see sandbox_charge) */
    long time_ms;         /* wall-clock backstop of one run, checked by the count hook */
    long pattern_steps;   /* base step budget of string.find/match/gmatch/gsub */
    size_t rep_max_bytes; /* largest string.rep result */
    const char *lib_dir;  /* where require looks (copied); NULL: require finds nothing */
};

/* Results of the run functions: 0, a positive non-error, or a negative error. */
enum sandbox_status {
    SANDBOX_OK = 0,
    SANDBOX_YIELDED = 1,      /* sandbox_resume: the engine sentinel was yielded */
    SANDBOX_ERR_RUNTIME = -1, /* a Lua error (including misuse of the API) */
    SANDBOX_ERR_MEMORY = -2,  /* the memory cap was hit */
    SANDBOX_ERR_BUDGET = -3,  /* the instruction (or wall-clock) budget ran out */
    SANDBOX_ERR_LOAD = -4,    /* the file could not be read, or did not compile */
};

/* Receives what the operator prints (one call per print, tab-separated, no newline). */
typedef void (*sandbox_print_fn)(void *ud, const char *text, size_t len);

void sandbox_limits_default(struct sandbox_limits *limits);

/*
 * Creates a sandboxed state with `limits` (NULL: the defaults; zero fields
 * take their default too). Returns NULL and fills err when the state cannot
 * be built (a memory cap too small for the libraries, for one).
 */
lua_State *sandbox_new(const struct sandbox_limits *limits, char *err, size_t errlen);

/* Closes the state and frees everything it owns. NULL is a no-op. */
void sandbox_free(lua_State *L);

/* Bytes of Lua heap in use, and the cap. */
size_t sandbox_memory_used(lua_State *L);
size_t sandbox_memory_limit(lua_State *L);

/* Routes print() to fn (NULL: print does nothing, the default). */
void sandbox_set_print(lua_State *L, sandbox_print_fn fn, void *ud);

/*
 * Resets the instruction budget of the next run and clears the kill. The run
 * functions below call it themselves (except when nested inside another run,
 * whose budget they share); call it only to run Lua some other way.
 */
void sandbox_arm(lua_State *L);

/* The wall-clock cap of the runs that follow (ms; <= 0: the limits' own
 * default). Operators set it per callback: a few ms for a message, a few
 * hundred for a poll between two waits. */
void sandbox_set_time_limit(lua_State *L, long ms);

/* True when the last run was killed by the instruction budget. */
int sandbox_killed(lua_State *L);

/*
 * Spends `instructions` of the current run's budget on behalf of C work the
 * count hook cannot see (a large decode, a big copy). Raises the budget
 * error, and arms the kill, when the budget runs out. Call from Lua C
 * functions only; outside a run it does nothing.
 */
void sandbox_charge(lua_State *L, long instructions);

/*
 * Calls the function below the top `nargs` values like lua_pcall, with the
 * budget armed and a message handler that appends a short traceback. On
 * failure nothing is left on the stack and err holds the message ("file:line:
 * message", then "\nstack traceback:" and a few frames). Returns an enum
 * sandbox_status: SANDBOX_OK or a negative error.
 */
int sandbox_pcall(lua_State *L, int nargs, int nresults, char *err, size_t errlen);

/*
 * Reads `path` (at most SANDBOX_SOURCE_MAX bytes, text only), compiles it in
 * the sandbox with `chunkname` (NULL: "@" followed by path; a name without
 * '@' or '=' is a file name to show, as if prefixed with '@') and runs it under
 * the budget. On success its single return value is left on the stack; on
 * failure nothing is, err holds "file:line: message" (or "file: reason")
 * and the result is negative (SANDBOX_ERR_LOAD for read and syntax errors).
 */
int sandbox_load_file(lua_State *L, const char *path, const char *chunkname, char *err,
                      size_t errlen);

/* The same for a chunk in memory (borrowed); chunkname as for lua_load. */
int sandbox_load_string(lua_State *L, const char *chunk, size_t len, const char *chunkname,
                        char *err, size_t errlen);

/*
 * Resumes the engine coroutine `co` (a thread of L made with lua_newthread)
 * with the top `nargs` values of its stack, under an armed budget.
 * - SANDBOX_OK: the body returned; *nresults values are on co's stack.
 * - SANDBOX_YIELDED: a primitive yielded the engine sentinel (first of the
 *   *nresults values on co's stack). Pop them, push the answer and resume
 *   `co` again: always the engine's thread, even when the primitive ran in an
 *   operator's own coroutine, whose wrapper relays the answer down.
 * - negative: an error (a yield of anything else is the runtime error
 *   "coroutine.yield outside an operator coroutine"); err holds the message
 *   and traceback. co is dead or stuck and must be dropped. It is never
 *   closed: a coroutine killed by the hook would run its __close handlers
 *   with hooks off, so its to-be-closed variables are left alone.
 * A yielding primitive should use sandbox_yieldable_guard() before it starts
 * any work: a yield that cannot reach the engine raises instead.
 */
int sandbox_resume(lua_State *L, lua_State *co, int nargs, int *nresults, char *err, size_t errlen);

/* The engine's yield sentinel: a unique light userdata. */
void sandbox_push_yield_sentinel(lua_State *L);
int sandbox_is_yield_sentinel(lua_State *L, int idx);

/*
 * For yielding primitives (x.http, x.sleep): raises `what` as a Lua error
 * (with the caller's position) unless this call may yield to the engine,
 * i.e. it runs in a coroutine the engine resumed with sandbox_resume and not
 * across a C boundary. Returns 0 when the call may yield.
 */
int sandbox_yieldable_guard(lua_State *L, const char *what);

/*
 * Pushes a fresh lua-cjson module table for x.json: encode, decode, null,
 * _NAME and _VERSION, with decode and encode depth capped at 64, the
 * encode buffer released after each call and sparse arrays encoded as
 * objects; the configuration functions and cjson.new are left out so the
 * operator cannot lift those limits. decode is charged one instruction per
 * input byte. Never set as a global. May raise a memory error: call it in a
 * protected context (inside a C function or a pcall).
 */
void sandbox_push_cjson(lua_State *L);

#endif
