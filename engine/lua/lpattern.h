/*
 * lpattern: Lua 5.4 patterns with a step budget.
 *
 * Operators are untrusted Lua scripts whose runaway loops the sandbox stops
 * with an instruction-count hook. That hook never fires inside one C call,
 * and Lua's own matcher backtracks exponentially (".-.-.-b" against 400 'a's
 * runs for half a minute), so the sandbox replaces string.find, match, gmatch
 * and gsub with this matcher. It implements the pattern language of the Lua
 * 5.4 manual (section 6.4.1) with the same results and the same error
 * messages as the stock library, including the errors the stock matcher only
 * raises when it reaches a malformed item, and adds two limits: every
 * elementary step (entering a pattern item, testing one subject character)
 * spends one unit of a per-call budget, and nesting (captures, '?', and the
 * continuation after '*', '+' and '-') is capped at LPATTERN_MAX_DEPTH levels
 * like the stock matcher, so neither time nor C stack grows without bound.
 *
 * lpattern.c is plain C and knows nothing of Lua; lua_pattern.c binds it and
 * defines the three functions at the end of this header, which only the
 * thread that owns the lua_State may call. A struct lpattern_match borrows
 * the subject and pattern, which must outlive it, and holds no heap memory;
 * any thread may use its own.
 */
#ifndef RX_LPATTERN_H
#define RX_LPATTERN_H

#include <stddef.h>

struct lua_State;

/* Limits shared with the stock Lua 5.4 matcher (LUA_MAXCAPTURES, MAXCCALLS). */
#define LPATTERN_MAX_CAPTURES 32
#define LPATTERN_MAX_DEPTH 200

/*
 * The per-call budget is max(base, LPATTERN_STEPS_PER_BYTE * subject length).
 * A pattern that runs in linear time spends a small constant number of steps
 * per subject byte (2 to 12 for the usual extraction patterns over a 1 MB
 * JSON body), so big bodies keep working with five times that in hand, while
 * anything quadratic or worse over a long subject, or exponential over a
 * short one, runs out. A step costs about 2-3 ns when optimised: the base
 * is a few milliseconds, and the per-byte part caps one call over a 1 MB body
 * at roughly 0.2 s where stock Lua could run for hours.
 */
#define LPATTERN_DEFAULT_BUDGET 1000000L
#define LPATTERN_STEPS_PER_BYTE 64L

/* Values of lpattern_capture.len that are not lengths. */
#define LPATTERN_CAP_UNFINISHED (-1)
#define LPATTERN_CAP_POSITION (-2)

/* Flags for lpattern_init. */
enum lpattern_flags {
    /* A leading '^' anchors the match (find, match, gsub; not gmatch). */
    LPATTERN_CARET_ANCHORS = 1,
};

/* Negative results of the matching functions; the message is in ->error. */
enum lpattern_error {
    LPATTERN_EPATTERN = -1, /* malformed pattern or replacement */
    LPATTERN_ECOMPLEX = -2, /* nesting deeper than LPATTERN_MAX_DEPTH */
    LPATTERN_EBUDGET = -3,  /* step budget exhausted */
};

struct lpattern_capture {
    size_t start;  /* byte offset into the subject */
    ptrdiff_t len; /* length, or LPATTERN_CAP_UNFINISHED / LPATTERN_CAP_POSITION */
};

/* What lpattern_get_capture hands back. */
enum lpattern_capture_kind {
    LPATTERN_CAPTURE_TEXT,     /* subject[start, start + len) */
    LPATTERN_CAPTURE_POSITION, /* the 1-based position start + 1 */
};

struct lpattern_match {
    const char *subject; /* borrowed */
    size_t subject_len;
    const char *pattern; /* borrowed; past the anchor if one was stripped */
    size_t pattern_len;
    int anchored;    /* pattern began with '^' and flags asked for anchors */
    long steps_left; /* budget remaining for this call */
    int depth;       /* current nesting */
    int level;       /* captures opened so far in the current attempt */
    struct lpattern_capture capture[LPATTERN_MAX_CAPTURES];
    int error_code; /* enum lpattern_error of the last failure */
    char error[64]; /* its message, e.g. "unfinished capture" */
};

/* Receives pieces of a replacement; see lpattern_expand. */
typedef void (*lpattern_sink_fn)(void *ud, const char *text, size_t len);

/*
 * Prepares `m` to match `pattern` against `subject` (both borrowed) with a
 * budget of `steps` elementary steps shared by every later call on `m`.
 */
void lpattern_init(struct lpattern_match *m, const char *subject, size_t subject_len,
                   const char *pattern, size_t pattern_len, int flags, long steps);

/* The budget rule above for a subject of `subject_len` bytes. */
long lpattern_budget_for(long base, size_t subject_len);

/*
 * Tries the pattern at exactly offset `start` (<= subject_len). Returns 1 and
 * sets *end on a match (captures in m->capture[0 .. m->level)), 0 if there is
 * none, or a negative enum lpattern_error.
 */
int lpattern_match_at(struct lpattern_match *m, size_t start, size_t *end);

/*
 * Finds the first match starting at or after `init` (<= subject_len), or only
 * at `init` when the pattern is anchored. Returns as lpattern_match_at, with
 * the match in [*start, *end).
 */
int lpattern_find(struct lpattern_match *m, size_t init, size_t *start, size_t *end);

/*
 * Capture `i` (0-based) of the last match [mstart, mend): when the pattern has
 * no captures, capture 0 is the whole match. Returns the kind, or
 * LPATTERN_EPATTERN for an index beyond the captures or an unfinished one.
 */
int lpattern_get_capture(struct lpattern_match *m, int i, size_t mstart, size_t mend,
                         struct lpattern_capture *out);

/*
 * How many values the last match yields: its captures, or when it has none,
 * 1 (the whole match) if `whole_if_none` and 0 otherwise (find's extra values).
 */
int lpattern_result_count(const struct lpattern_match *m, int whole_if_none);

/*
 * Expands a gsub replacement string for the last match [mstart, mend): "%0"
 * is the match, "%1".."%9" captures, "%%" a percent sign. Hands every piece
 * to `sink` in order. Returns 0, or LPATTERN_EPATTERN for an invalid escape or
 * capture (the pieces before it have already been handed over).
 */
int lpattern_expand(struct lpattern_match *m, const char *repl, size_t repl_len, size_t mstart,
                    size_t mend, lpattern_sink_fn sink, void *ud);

/* True when `pattern` has none of the characters that make find() match. */
int lpattern_is_plain(const char *pattern, size_t len);

/*
 * Installs the budgeted find, match, gmatch and gsub in the state's string
 * library table (package.loaded.string, the table string values index), and
 * in the string metatable's __index if that is a different table. Call it
 * after the string library is opened and before the sandbox copies the
 * table anywhere, once per state. `step_budget` is the base budget per call;
 * <= 0 means LPATTERN_DEFAULT_BUDGET. Raises a Lua error if there is no string
 * library. Matching errors, the budget's included, are Lua errors raised by
 * the call, which pcall can catch: the budget protects the loop, and the
 * instruction hook still ends a script that keeps retrying.
 */
void lpattern_install(struct lua_State *L, long step_budget);

/* Changes the base budget of the functions installed in this state. */
void lpattern_set_budget(struct lua_State *L, long step_budget);

/*
 * Makes every later pattern call in this state also spend from a pool of
 * `steps` shared by all calls, until the next lpattern_set_pool; steps < 0
 * turns the pool off (the default). The per-call budget bounds one call, but
 * a loop of calls that each stop just short of it costs the script only a few
 * instructions per call; the sandbox refills the pool whenever it re-arms its
 * instruction hook, so pattern work per callback is bounded as well.
 */
void lpattern_set_pool(struct lua_State *L, long steps);

#endif
