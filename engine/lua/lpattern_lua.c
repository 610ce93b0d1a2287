/*
 * lua_pattern.c: string.find, match, gmatch and gsub on the budgeted matcher.
 *
 * Design. These four functions replace the stock ones in a sandboxed state
 * and must be indistinguishable from them for every script that does not hit
 * the step budget: the same argument checks in the same order (so the same
 * "bad argument" messages), the same init arithmetic, the same plain-search
 * shortcut in find, the same results and types, and the same error texts.
 * The matching itself is lpattern.c; this file only moves values between Lua
 * and struct lpattern_match and turns a negative result into luaL_error,
 * which unwinds cleanly because the match state lives on the C stack (or, for
 * gmatch, in a userdata) and owns no heap memory.
 *
 * The budget settings live in one userdata per state, shared as an upvalue
 * by the four functions and reachable from the registry for the setters.
 * Each call gets a fresh budget (lpattern_budget_for the subject length); a
 * gmatch iterator gets one per step, because the count hook can fire between
 * steps. A per-call budget alone still lets a script loop over calls that
 * each stop just short of it, a few instructions per call, so the sandbox can
 * also switch on a pool (lpattern_set_pool) that every call spends from and
 * that it refills when it re-arms its instruction hook. The pool is charged
 * whenever control leaves the matcher: at the end of a call and around each
 * gsub replacement callback, which may itself run pattern calls. All of this
 * runs on the thread that owns L.
 */
#include "lpattern.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <string.h>

struct pattern_config {
    long base;  /* base step budget per call; <= 0 means the default */
    long pool;  /* steps left for all calls until the next refill */
    int pooled; /* whether the pool applies */
};

/* What a gmatch iterator remembers between steps. */
struct gmatch_state {
    struct lpattern_match m;
    size_t pos;      /* where the next search starts */
    size_t last_end; /* end of the previous match, to skip an empty repeat */
    int has_last;
};

/* Its address is the registry key of the state's struct pattern_config. */
static const char config_key = 'p';

static struct pattern_config *config_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* The steps one call may spend: the per-call rule, capped by the pool. */
static long grant(lua_State *L, size_t subject_len)
{
    const struct pattern_config *cfg = config_of(L);
    long steps = lpattern_budget_for(cfg->base, subject_len);

    if (cfg->pooled && cfg->pool < steps) {
        steps = cfg->pool;
    }
    return steps;
}

/*
 * Charges the pool with what `m` spent since it was granted *granted steps,
 * then caps what `m` may still spend by what the pool has left (a callback
 * may have drained it) and makes that the new grant.
 */
static void settle(lua_State *L, struct lpattern_match *m, long *granted)
{
    struct pattern_config *cfg = config_of(L);
    long left = m->steps_left > 0 ? m->steps_left : 0;

    if (!cfg->pooled) {
        return;
    }
    cfg->pool -= *granted - left;
    if (cfg->pool < 0) {
        cfg->pool = 0;
    }
    if (m->steps_left > cfg->pool) {
        m->steps_left = cfg->pool;
    }
    *granted = m->steps_left > 0 ? m->steps_left : 0;
}

static int raise_error(lua_State *L, const struct lpattern_match *m)
{
    return luaL_error(L, "%s", m->error);
}

/*
 * The 0-based start offset for a 1-based, possibly negative `init`; a value
 * past the end means there is nothing to search.
 */
static size_t start_offset(lua_Integer init, size_t len)
{
    if (init > 0) {
        return (size_t)init - 1;
    }
    if (init == 0 || init < -(lua_Integer)len) {
        return 0;
    }
    return len - (size_t)(-init);
}

/* Pushes capture `i` of the match [ms, me): a string or a 1-based position. */
static void push_capture(lua_State *L, struct lpattern_match *m, int i, size_t ms, size_t me)
{
    struct lpattern_capture cap;
    int kind = lpattern_get_capture(m, i, ms, me, &cap);

    if (kind < 0) {
        raise_error(L, m);
    }
    if (kind == LPATTERN_CAPTURE_POSITION) {
        lua_pushinteger(L, (lua_Integer)cap.start + 1);
    } else {
        lua_pushlstring(L, m->subject + cap.start, (size_t)cap.len);
    }
}

/* Pushes every capture (or the whole match if `whole_if_none`); returns the count. */
static int push_captures(lua_State *L, struct lpattern_match *m, size_t ms, size_t me,
                         int whole_if_none)
{
    int n = lpattern_result_count(m, whole_if_none);
    int i;

    luaL_checkstack(L, n, "too many captures");
    for (i = 0; i < n; i++) {
        push_capture(L, m, i, ms, me);
    }
    return n;
}

/* string.find (find != 0) and string.match. */
static int find_or_match(lua_State *L, int find)
{
    size_t ls, lp, ms, me;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    struct lpattern_match m;
    long granted;
    int r;

    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || lpattern_is_plain(p, lp))) {
        /* A plain search is linear, so it needs no budget. */
        const char *hit = memmem(s + init, ls - init, p, lp);

        if (hit == NULL) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
        lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
        return 2;
    }
    granted = grant(L, ls);
    lpattern_init(&m, s, ls, p, lp, LPATTERN_CARET_ANCHORS, granted);
    r = lpattern_find(&m, init, &ms, &me);
    settle(L, &m, &granted);
    if (r < 0) {
        return raise_error(L, &m);
    }
    if (r == 0) {
        luaL_pushfail(L);
        return 1;
    }
    if (!find) {
        return push_captures(L, &m, ms, me, 1);
    }
    lua_pushinteger(L, (lua_Integer)ms + 1);
    lua_pushinteger(L, (lua_Integer)me);
    return 2 + push_captures(L, &m, ms, me, 0);
}

static int pattern_find(lua_State *L)
{
    return find_or_match(L, 1);
}

static int pattern_match(lua_State *L)
{
    return find_or_match(L, 0);
}

/* One step of a gmatch iterator; upvalues: config, subject, pattern, state. */
static int gmatch_step(lua_State *L)
{
    struct gmatch_state *g = lua_touserdata(L, lua_upvalueindex(4));
    long granted = grant(L, g->m.subject_len);
    size_t src, end;

    g->m.steps_left = granted;
    for (src = g->pos; src <= g->m.subject_len; src++) {
        int r = lpattern_match_at(&g->m, src, &end);

        if (r != 0) {
            settle(L, &g->m, &granted);
        }
        if (r < 0) {
            return raise_error(L, &g->m);
        }
        /* An empty match right where the previous one ended is no progress. */
        if (r == 1 && !(g->has_last && end == g->last_end)) {
            g->pos = end;
            g->last_end = end;
            g->has_last = 1;
            return push_captures(L, &g->m, src, end, 1);
        }
    }
    settle(L, &g->m, &granted);
    return 0;
}

/* string.gmatch(s, pattern [, init]); '^' is an ordinary character here. */
static int pattern_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_offset(luaL_optinteger(L, 3, 1), ls);
    struct gmatch_state *g;

    /* The closure keeps both strings alive for the borrowed pointers. */
    lua_settop(L, 2);
    g = lua_newuserdatauv(L, sizeof(*g), 0);
    lpattern_init(&g->m, s, ls, p, lp, 0, 0);
    g->pos = init > ls ? ls + 1 : init;
    g->last_end = 0;
    g->has_last = 0;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_pushcclosure(L, gmatch_step, 4);
    return 1;
}

struct buffer_sink {
    luaL_Buffer *b;
};

static void add_to_buffer(void *ud, const char *text, size_t len)
{
    luaL_addlstring(((struct buffer_sink *)ud)->b, text, len);
}

/*
 * Adds the replacement for the match [ms, me) to `b`, from argument 3 of
 * type `tr`. Returns whether the text changed (nil or false keeps it). A
 * function, or a table's __index, runs Lua code that may spend from the pool
 * too, so the pool is settled on both sides of it.
 */
static int add_replacement(lua_State *L, struct lpattern_match *m, luaL_Buffer *b, size_t ms,
                           size_t me, int tr, long *granted)
{
    size_t len;
    const char *repl;
    struct buffer_sink sink = {b};
    int n;

    switch (tr) {
    case LUA_TFUNCTION:
        lua_pushvalue(L, 3);
        n = push_captures(L, m, ms, me, 1);
        settle(L, m, granted);
        lua_call(L, n, 1);
        settle(L, m, granted);
        break;
    case LUA_TTABLE:
        push_capture(L, m, 0, ms, me);
        settle(L, m, granted);
        lua_gettable(L, 3);
        settle(L, m, granted);
        break;
    default:
        repl = lua_tolstring(L, 3, &len);
        if (lpattern_expand(m, repl, len, ms, me, add_to_buffer, &sink) < 0) {
            raise_error(L, m);
        }
        return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, m->subject + ms, me - ms);
        return 0;
    }
    if (!lua_isstring(L, -1)) {
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    }
    luaL_addvalue(b);
    return 1;
}

/* string.gsub(s, pattern, repl [, n]). */
static int pattern_gsub(lua_State *L)
{
    size_t ls, lp, pos = 0, end, last_end = 0;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    lua_Integer n = 0;
    int changed = 0, has_last = 0;
    struct lpattern_match m;
    long granted;
    luaL_Buffer b;

    luaL_argexpected(
        L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
        "string/function/table");
    granted = grant(L, ls);
    lpattern_init(&m, s, ls, p, lp, LPATTERN_CARET_ANCHORS, granted);
    luaL_buffinit(L, &b);
    while (n < max_n) {
        int r = lpattern_match_at(&m, pos, &end);

        if (r < 0) {
            settle(L, &m, &granted);
            return raise_error(L, &m);
        }
        if (r == 1 && !(has_last && end == last_end)) {
            n++;
            changed |= add_replacement(L, &m, &b, pos, end, tr, &granted);
            pos = last_end = end;
            has_last = 1;
        } else if (pos < ls) {
            luaL_addchar(&b, s[pos++]);
        } else {
            break;
        }
        if (m.anchored) {
            break;
        }
    }
    settle(L, &m, &granted);
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, s + pos, ls - pos);
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

static const luaL_Reg pattern_functions[] = {
    {"find", pattern_find},
    {"match", pattern_match},
    {"gmatch", pattern_gmatch},
    {"gsub", pattern_gsub},
    {NULL, NULL},
};

/* Sets the four functions, sharing the config userdata, in the table at `t`. */
static void set_functions(lua_State *L, int t)
{
    lua_pushvalue(L, t);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &config_key);
    luaL_setfuncs(L, pattern_functions, 1);
    lua_pop(L, 1);
}

void lpattern_install(lua_State *L, long step_budget)
{
    int top = lua_gettop(L);
    int lib;
    struct pattern_config *cfg;

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, LUA_STRLIBNAME) != LUA_TTABLE) {
        luaL_error(L, "lpattern_install: the string library is not open");
    }
    lib = lua_gettop(L);
    cfg = lua_newuserdatauv(L, sizeof(*cfg), 0);
    cfg->base = step_budget;
    cfg->pool = 0;
    cfg->pooled = 0;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &config_key);
    set_functions(L, lib);

    /* Method calls ("s:find(p)") go through the string metatable's __index. */
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1) && lua_getfield(L, -1, "__index") == LUA_TTABLE &&
        !lua_rawequal(L, -1, lib)) {
        set_functions(L, lua_gettop(L));
    }
    lua_settop(L, top);
}

/* The state's settings; raises if lpattern_install was not called. */
static struct pattern_config *installed_config(lua_State *L, const char *caller)
{
    struct pattern_config *cfg;

    lua_rawgetp(L, LUA_REGISTRYINDEX, &config_key);
    cfg = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (cfg == NULL) {
        luaL_error(L, "%s: lpattern_install was not called", caller);
    }
    return cfg;
}

void lpattern_set_budget(lua_State *L, long step_budget)
{
    installed_config(L, "lpattern_set_budget")->base = step_budget;
}

void lpattern_set_pool(lua_State *L, long steps)
{
    struct pattern_config *cfg = installed_config(L, "lpattern_set_pool");

    cfg->pooled = steps >= 0;
    cfg->pool = steps >= 0 ? steps : 0;
}
