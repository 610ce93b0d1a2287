/*
 * x_emit: x.emit and x.emit_many, the only way data enters the store.
 *
 * An emit is hostile input twice over (exchange data, through operator
 * code), so everything is checked here: the pair is resolved from base and
 * quote through the aliases, or from the symbol through markets() — never
 * guessed; prices become decimal text (strings kept as written, numbers
 * rendered by decimal.c; a string with an exponent is refused, since it
 * could be served neither as written nor as the engine writes numbers);
 * ticker_validate refuses crossed, non-positive and malformed quotes and
 * impossible timestamps. Every refusal is counted per reason in the store
 * (reject_reasons, rx_rejects_total), filtered, unmapped and max_pairs
 * included, and a window of emits tells the operator's state when most of
 * them are refused. Bad data is a return value, not a Lua error: one odd
 * message must not kill a stream.
 *
 * One call is one batch: every ticker it stores is collected, and the
 * engine hears of the batch once (op_env.on_batch) — one fan-out pass, one
 * Redis pipeline — however many tickers it held. Each emit looks its key up
 * in the store once (store_find), for merging and for the max_pairs check
 * alike, and stores through that lookup.
 *
 * Cost. A stream emits once per message, so this path is paid some 200k
 * times a second at full speed: field keys are interned once (upvalues)
 * rather than hashed from C strings on every lua_getfield, each price is
 * parsed once here and only bid and ask again by ticker_validate, and a
 * batch reads the clock once.
 */
#include "operator_int.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "core/decimal.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "store/store.h"

/* How long a window of emits runs before it is judged: long enough to hold
 * several polls of a fast operator, short enough to show a fault soon. */
#define EMIT_WINDOW_MS 5000

/* The fields an emit table is read for, in the order of their keys among
 * the upvalues of x.emit and x.emit_many (upvalue 1 is the operator). */
enum emit_field {
    F_SYMBOL,
    F_BASE,
    F_QUOTE,
    F_BID,
    F_ASK,
    F_BID_SIZE,
    F_ASK_SIZE,
    F_LAST,
    F_VOLUME,
    F_TS,
    F_COUNT,
};

static const char *const field_names[F_COUNT] = {
    [F_SYMBOL] = "symbol",     [F_BASE] = "base",
    [F_QUOTE] = "quote",       [F_BID] = "bid",
    [F_ASK] = "ask",           [F_BID_SIZE] = "bid_size",
    [F_ASK_SIZE] = "ask_size", [F_LAST] = "last",
    [F_VOLUME] = "volume",     [F_TS] = "ts",
};

/* Pushes field f of the table at (absolute) idx, metamethods honoured, and
 * returns its type. The key is the interned string in an upvalue: a
 * lua_getfield would intern its C string again on every call. */
static int get_field(lua_State *L, int idx, enum emit_field f)
{
    lua_pushvalue(L, lua_upvalueindex(2 + f));
    return lua_gettable(L, idx);
}

/* The pair for the emit table at idx: TICKER_OK, unmapped or bad_pair. */
static enum ticker_reject resolve_pair(lua_State *L, int idx, struct operator *op, struct ticker *t)
{
    int rc;

    get_field(L, idx, F_BASE);
    get_field(L, idx, F_QUOTE);
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
        rc = op_pair_from_assets(op, lua_tostring(L, -2), lua_tostring(L, -1), t->pair,
                                 sizeof t->pair);
        lua_pop(L, 2);
    } else {
        lua_pop(L, 2);
        if (!t->symbol[0]) {
            rc = -EINVAL;
        } else if ((rc = op_pair_from_symbol(op, t->symbol, t->pair, sizeof t->pair)) == -ENOENT) {
            op_record_unmapped(op, t->symbol);
            return TICKER_REJECT_UNMAPPED;
        }
    }
    return rc < 0 ? TICKER_REJECT_BAD_PAIR : TICKER_OK;
}

/* A price field: a string kept as written, a number rendered, nil = "".
 * value (NULL: not wanted) receives the number. */
static int price_field(lua_State *L, int idx, enum emit_field f, char *out, double *value)
{
    int type = get_field(L, idx, f);
    int rc = 0;

    out[0] = '\0';
    if (type == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        /* "1e2" could be kept as written (an exponent, which DESIGN 3 never
         * serves) or served as "100" (not as written): refused instead. */
        if (memchr(s, 'e', len) || memchr(s, 'E', len)) {
            rc = -EINVAL;
        } else {
            rc = decimal_parse(s, len, out, TICKER_DEC_MAX, value);
        }
    } else if (type == LUA_TNUMBER) {
        double v = lua_tonumber(L, -1);
        rc = decimal_from_double(v, out, TICKER_DEC_MAX);
        if (value) {
            *value = v;
        }
    } else if (type != LUA_TNIL) {
        rc = -EINVAL;
    }
    lua_pop(L, 1);
    return rc < 0 ? rc : 0;
}

/* ts: integer milliseconds (a float with no fraction is one), or nil. */
static int ts_field(lua_State *L, int idx, int64_t *ts)
{
    int type = get_field(L, idx, F_TS);
    int rc = 0;
    *ts = TICKER_TS_NONE;
    if (type == LUA_TNUMBER) {
        lua_Integer i;
        if (lua_isinteger(L, -1)) {
            *ts = lua_tointeger(L, -1);
        } else if (lua_numbertointeger(lua_tonumber(L, -1), &i) &&
                   (lua_Number)i == lua_tonumber(L, -1)) {
            *ts = i;
        } else {
            rc = -EINVAL;
        }
    } else if (type != LUA_TNIL) {
        rc = -EINVAL;
    }
    lua_pop(L, 1);
    return rc;
}

static bool pair_allowed(const struct operator *op, const char *pair)
{
    if (op->spec.n_pairs == 0) {
        return true;
    }
    for (size_t i = 0; i < op->spec.n_pairs; i++) {
        if (strcmp(op->spec.pairs[i], pair) == 0) {
            return true;
        }
    }
    return false;
}

static void keep(char *field, const char *stored)
{
    if (!field[0]) {
        memcpy(field, stored, TICKER_DEC_MAX);
    }
}

/* Fields an emit leaves out keep their stored values, so a stream that
 * delivers bid and ask and a poll that delivers the 24 h volume combine into
 * one ticker. A side's size travels with its price; ts never carries over
 * (it dates the emit that gave it). */
static void merge_stored(struct ticker *t, const struct ticker *old)
{
    if (!t->bid[0]) {
        keep(t->bid, old->bid);
        keep(t->bid_size, old->bid_size);
        t->bid_value = old->bid_value;
    }
    if (!t->ask[0]) {
        keep(t->ask, old->ask);
        keep(t->ask_size, old->ask_size);
        t->ask_value = old->ask_value;
    }
    keep(t->last, old->last);
    keep(t->volume, old->volume);
}

/* Reads the emit table at idx into t, received at `now`. */
static enum ticker_reject read_ticker(lua_State *L, int idx, struct operator *op, int64_t now,
                                      struct ticker *t)
{
    memset(t, 0, sizeof *t);
    /* The name was checked against [a-z0-9_]{1,31} when the operator loaded. */
    memcpy(t->exchange, op->spec.name, strlen(op->spec.name) + 1);
    t->source = op->emit_source;
    t->received = now;

    if (get_field(L, idx, F_SYMBOL) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (len >= sizeof t->symbol) {
            lua_pop(L, 1);
            return TICKER_REJECT_TOO_LONG;
        }
        memcpy(t->symbol, s, len + 1);
    }
    lua_pop(L, 1);
    enum ticker_reject why = resolve_pair(L, idx, op, t);
    if (why != TICKER_OK) {
        return why;
    }
    if (price_field(L, idx, F_BID, t->bid, &t->bid_value) < 0 ||
        price_field(L, idx, F_ASK, t->ask, &t->ask_value) < 0 ||
        price_field(L, idx, F_BID_SIZE, t->bid_size, NULL) < 0 ||
        price_field(L, idx, F_ASK_SIZE, t->ask_size, NULL) < 0 ||
        price_field(L, idx, F_LAST, t->last, NULL) < 0 ||
        price_field(L, idx, F_VOLUME, t->volume, NULL) < 0) {
        return TICKER_REJECT_BAD_NUMBER;
    }
    return ts_field(L, idx, &t->ts) < 0 ? TICKER_REJECT_BAD_TS : TICKER_OK;
}

/* A new key over max_pairs? Only a key that is not stored yet can be. */
static bool over_max_pairs(struct operator *op)
{
    struct store_exchange_stats stats;
    return store_exchange_stats(op->env.store, op->spec.name, &stats) == 0 &&
           stats.tickers >= (uint64_t)op->spec.max_pairs;
}

static void batch_add(struct operator *op, const struct ticker *t, bool changed)
{
    struct op_batch *b = &op->batch;
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->t = xrealloc(b->t, b->cap * sizeof *b->t);
        b->changed = xrealloc(b->changed, b->cap * sizeof *b->changed);
    }
    b->t[b->n] = *t;
    b->changed[b->n++] = changed;
}

/* One emit, received at `now`: stored (into the batch), or why not. */
static enum ticker_reject emit_one(lua_State *L, int idx, struct operator *op, int64_t now)
{
    struct ticker t, old;
    struct store_ref ref;

    op->facts.emit_attempts++;
    if (!lua_istable(L, idx)) {
        return TICKER_REJECT_NOT_A_TABLE;
    }
    enum ticker_reject why = read_ticker(L, idx, op, now, &t);
    if (why != TICKER_OK) {
        return why;
    }
    if (!pair_allowed(op, t.pair)) {
        op->facts.filtered++;
        return TICKER_REJECT_FILTERED;
    }
    bool stored = store_find(op->env.store, t.exchange, t.pair, &old, &ref) == 1;
    if (stored) {
        merge_stored(&t, &old);
    }
    why = ticker_validate(&t);
    if (why != TICKER_OK) {
        return why;
    }
    if (!stored && over_max_pairs(op)) {
        op->facts.over_max_pairs++;
        return TICKER_REJECT_MAX_PAIRS;
    }
    int changed = store_put_ref(op->env.store, &ref, &t);
    if (changed < 0) {
        /* Only an invalid key fails, which ticker_validate has refused. */
        return TICKER_REJECT_BAD_PAIR;
    }
    op->facts.emitted++;
    op_record_data(op, &t);
    batch_add(op, &t, changed > 0);
    return TICKER_OK;
}

/* Counts an emit's outcome: a refusal in the store, where the API shows
 * it, and in the current window (filtered ones only in the store: a pair
 * the config leaves out is the config's choice, not a fault). */
static void count(struct operator *op, enum ticker_reject why)
{
    struct op_facts *f = &op->facts;

    if (why != TICKER_OK) {
        store_count_reject(op->env.store, op->spec.name, why);
    }
    if (why == TICKER_REJECT_FILTERED) {
        return;
    }
    f->window_emits++;
    if (why != TICKER_OK) {
        f->window_refused++;
        f->window_rejects[why]++;
    }
}

/*
 * Judges the window once it is EMIT_WINDOW_MS old: when most of its emits
 * were refused, the operator's state says so (facts.refusing, which
 * op_status shows as degraded) until a later window is mostly stored.
 */
static void window_close(struct operator *op, int64_t now)
{
    struct op_facts *f = &op->facts;
    char *p = f->refusing;
    size_t cap = sizeof f->refusing;
    int n;

    if (now - f->window_at < EMIT_WINDOW_MS) {
        return;
    }
    f->refusing[0] = '\0';
    if (f->window_refused * 2 > f->window_emits) {
        n = snprintf(p, cap, "most emits refused: %llu of %llu in %.0f s (",
                     (unsigned long long)f->window_refused, (unsigned long long)f->window_emits,
                     (double)(now - f->window_at) / 1000.0);
        for (int i = TICKER_OK + 1; i < TICKER_REJECT_COUNT && n > 0 && (size_t)n < cap; i++) {
            if (f->window_rejects[i]) {
                n += snprintf(p + n, cap - (size_t)n, "%s%s %llu", p[n - 1] == '(' ? "" : ", ",
                              ticker_reject_name((enum ticker_reject)i),
                              (unsigned long long)f->window_rejects[i]);
            }
        }
        if (n > 0 && (size_t)n < cap - 1) {
            snprintf(p + n, cap - (size_t)n, ")");
        }
    }
    f->window_at = now;
    f->window_emits = 0;
    f->window_refused = 0;
    memset(f->window_rejects, 0, sizeof f->window_rejects);
}

static void end_batch(struct operator *op, int64_t now)
{
    if (op->batch.n && op->env.on_batch) {
        op->env.on_batch(op, op->batch.t, op->batch.changed, op->batch.n, op->env.ctx);
    }
    op->batch.n = 0;
    window_close(op, now);
}

static int x_emit(lua_State *L)
{
    struct operator *op = op_self(L);
    int64_t now = loop_wall_ms();

    luaL_checktype(L, 1, LUA_TTABLE);
    enum ticker_reject why = emit_one(L, 1, op, now);
    count(op, why);
    end_batch(op, now);
    if (why != TICKER_OK) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, ticker_reject_name(why));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int x_emit_many(lua_State *L)
{
    struct operator *op = op_self(L);
    int64_t now = loop_wall_ms();
    lua_Integer accepted = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        enum ticker_reject why = emit_one(L, lua_gettop(L), op, now);
        lua_pop(L, 1);
        count(op, why);
        accepted += why == TICKER_OK;
    }
    end_batch(op, now);
    lua_pushinteger(L, accepted);
    lua_pushinteger(L, n - accepted);
    return 2;
}

/* Pushes fn as a closure over the operator and the interned field keys. */
static void push_emit_fn(lua_State *L, struct operator *op, lua_CFunction fn)
{
    lua_pushlightuserdata(L, op);
    for (int f = 0; f < F_COUNT; f++) {
        lua_pushstring(L, field_names[f]);
    }
    lua_pushcclosure(L, fn, 1 + F_COUNT);
}

void op_emit_open(lua_State *L, struct operator *op)
{
    op->facts.window_at = loop_wall_ms();
    push_emit_fn(L, op, x_emit);
    lua_setfield(L, -2, "emit");
    push_emit_fn(L, op, x_emit_many);
    lua_setfield(L, -2, "emit_many");
}
