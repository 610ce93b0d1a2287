/*
 * config_walk: turn the table a config file returned into a struct config.
 *
 * The walk loops over the schema (config_schema.c): for each key it reads the
 * value with raw accesses (the sandbox offers no way to set a metatable, and
 * raw reads keep it that way), checks its type and range, copies it into the
 * C struct and runs the key's check. Unknown keys are looked for first, so a
 * typo is reported with a suggestion before anything else about that table.
 *
 * It runs inside config_load's protected call, so a Lua error half-way (out
 * of memory in the capped state) unwinds through it: every string or array
 * is attached to the config as soon as it is made, and temporary arrays are
 * Lua userdata or live in the config_ctx, so nothing leaks on either path.
 *
 * `options` tables are serialised here to JSON for the operator's own state:
 * strings (valid UTF-8), numbers (finite; integers stay integers), booleans
 * and tables, at most CONFIG_MAX_OPTIONS_DEPTH levels and
 * CONFIG_MAX_OPTIONS_BYTES of text; object keys are written sorted, so the
 * text does not depend on hash order.
 */
#include "config_schema.h"
#include "core/jbuf.h"
#include "core/xalloc.h"

#include <lauxlib.h>
#include <lua.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int walk_table(struct config_ctx *ctx, lua_State *L, int idx, const struct config_key *keys,
                      void *base);

static int fail_type(struct config_ctx *ctx, lua_State *L, int idx, const char *expected)
{
    int t = lua_type(L, idx);

    if (t == LUA_TSTRING && (strcmp(expected, "integer") == 0 || strcmp(expected, "number") == 0 ||
                             strcmp(expected, "boolean") == 0)) {
        return config_fail(ctx, "expected %s, got string (env() returns strings: convert it)",
                           expected);
    }
    if (t == LUA_TNUMBER && strcmp(expected, "integer") == 0) {
        return config_fail(ctx, "expected integer, got %.14g", lua_tonumber(L, idx));
    }
    return config_fail(ctx, "expected %s, got %s", expected, lua_typename(L, t));
}

/* A string value: no NUL bytes, not empty (leave a key out for its default). */
static int get_string(struct config_ctx *ctx, lua_State *L, int idx, const char *expected,
                      const char **out)
{
    size_t len;

    if (lua_type(L, idx) != LUA_TSTRING) {
        return fail_type(ctx, L, idx, expected);
    }
    *out = lua_tolstring(L, idx, &len);
    if (len == 0) {
        return config_fail(ctx, "empty string (leave the key out for its default)");
    }
    if (strlen(*out) != len) {
        return config_fail(ctx, "contains a NUL byte");
    }
    return 0;
}

static int check_range(struct config_ctx *ctx, const struct config_key *k, double v)
{
    if (v < k->min || v > k->max) {
        return config_fail(ctx, "%.14g is out of range (%.14g to %.14g)", v, k->min, k->max);
    }
    return 0;
}

void config_list_free(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i]);
    }
    free(items);
}

/* Parse "a,b,c" (a schema default) into the list field. */
static void list_default(const struct config_key *k, void *base)
{
    char ***items = CONFIG_FIELD(base, k->offset, char **);
    size_t *n = CONFIG_FIELD(base, k->aux, size_t);
    const char *p = k->def;

    if (!p) {
        return;
    }
    *items = xcalloc(strlen(p) + 1, sizeof(char *));
    while (*p) {
        size_t len = strcspn(p, ",");

        (*items)[(*n)++] = xstrndup(p, len);
        p += len + (p[len] == ',');
    }
}

static int walk_list(struct config_ctx *ctx, lua_State *L, int idx, const struct config_key *k,
                     void *base)
{
    char ***items = CONFIG_FIELD(base, k->offset, char **);
    size_t *n = CONFIG_FIELD(base, k->aux, size_t);
    size_t len, count = 0;

    if (lua_type(L, idx) != LUA_TTABLE) {
        return fail_type(ctx, L, idx, "a list of strings");
    }
    len = lua_rawlen(L, idx);
    /* Duplicates are looked for pairwise: keep n small enough for that. */
    if (len > CONFIG_MAX_LIST_ITEMS) {
        return config_fail(ctx, "more than %d items", CONFIG_MAX_LIST_ITEMS);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_Integer i;
        int isint = 0;

        lua_pop(L, 1);
        i = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
        if (!isint || i < 1 || (size_t)i > len) {
            return config_fail(ctx, "expected a list of strings, found a named key");
        }
        count++;
    }
    if (count != len) {
        return config_fail(ctx, "expected a list of strings, found holes");
    }
    *items = xcalloc(len + 1, sizeof(char *));
    for (size_t i = 1; i <= len; i++) {
        size_t mark = config_path_index(ctx, i);
        const char *s = NULL;

        lua_rawgeti(L, idx, (lua_Integer)i);
        if (get_string(ctx, L, -1, "string", &s) < 0) {
            return -1;
        }
        (*items)[(*n)++] = xstrdup(s);
        lua_pop(L, 1);
        if (k->item && k->item(ctx, &(*items)[*n - 1]) < 0) {
            return -1;
        }
        /* A duplicate is always a slip; the values are not shown (tokens). */
        for (size_t j = 0; j + 1 < *n; j++) {
            if (strcmp((*items)[j], (*items)[*n - 1]) == 0) {
                return config_fail(ctx, "same value as %s[%zu]", k->name, j + 1);
            }
        }
        config_path_restore(ctx, mark);
    }
    return 0;
}

/* ---- options: a Lua table as JSON --------------------------------------- */

static void json_put(struct config_ctx *ctx, const char *s, size_t n)
{
    jbuf_add(&ctx->json, s, n);
}

static int json_string(struct config_ctx *ctx, const char *s, size_t n)
{
    if (jbuf_strn(&ctx->json, s, n) != 0) {
        return config_fail(ctx, "string is not valid UTF-8");
    }
    return 0;
}

/* Shortest "%.Ng" that reads back as the same double. */
void config_format_double(double d, char *buf, size_t n)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            return;
        }
    }
}

static int json_value(struct config_ctx *ctx, lua_State *L, int idx, int depth);

struct json_key {
    const char *s;
    size_t len;
};

static int json_key_cmp(const void *a, const void *b)
{
    const struct json_key *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);

    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/*
 * A table is a JSON array when its keys are exactly 1..n (n > 0), an object
 * when they are all strings (written in sorted order so the text is stable),
 * and an error otherwise: JSON has no mixed or sparse tables.
 */
static int json_table(struct config_ctx *ctx, lua_State *L, int idx, int depth)
{
    size_t len = lua_rawlen(L, idx), count = 0, nstr = 0;
    struct json_key *keys;

    for (int i = 0; i < depth; i++) {
        if (ctx->json_seen[i] == lua_topointer(L, idx)) {
            return config_fail(ctx, "cycle: the table contains itself");
        }
    }
    if (depth >= CONFIG_MAX_OPTIONS_DEPTH) {
        return config_fail(ctx, "nested deeper than %d levels", CONFIG_MAX_OPTIONS_DEPTH);
    }
    ctx->json_seen[depth] = lua_topointer(L, idx);
    luaL_checkstack(L, 8, "options");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int isint = 0;
        lua_Integer i;

        lua_pop(L, 1);
        count++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            nstr++;
            continue;
        }
        i = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
        if (!isint) {
            return config_fail(ctx, "a %s key cannot be written as JSON (keys are strings)",
                               luaL_typename(L, -1));
        }
        if (i < 1 || (size_t)i > len) {
            return config_fail(ctx, "key %lld: a list must have keys 1..n without holes",
                               (long long)i);
        }
    }
    if (nstr > 0 && nstr != count) {
        return config_fail(ctx, "the table mixes list items and named keys");
    }
    if (nstr == 0 && count > 0) {
        json_put(ctx, "[", 1);
        for (size_t i = 1; i <= len; i++) {
            size_t mark = config_path_index(ctx, i);

            json_put(ctx, i > 1 ? "," : "", i > 1);
            lua_rawgeti(L, idx, (lua_Integer)i);
            if (json_value(ctx, L, lua_gettop(L), depth + 1) < 0) {
                return -1;
            }
            lua_pop(L, 1);
            config_path_restore(ctx, mark);
        }
        json_put(ctx, "]", 1);
        return 0;
    }
    /* The key array is Lua memory (a userdata) so an error cannot leak it. */
    keys = lua_newuserdatauv(L, (nstr ? nstr : 1) * sizeof(*keys), 0);
    count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        keys[count].s = lua_tolstring(L, -1, &keys[count].len);
        count++;
    }
    qsort(keys, count, sizeof(*keys), json_key_cmp);
    json_put(ctx, "{", 1);
    for (size_t i = 0; i < count; i++) {
        size_t mark = config_path_key(ctx, keys[i].s);

        json_put(ctx, i > 0 ? "," : "", i > 0);
        if (json_string(ctx, keys[i].s, keys[i].len) < 0) {
            return -1;
        }
        json_put(ctx, ":", 1);
        lua_pushlstring(L, keys[i].s, keys[i].len);
        lua_rawget(L, idx);
        if (json_value(ctx, L, lua_gettop(L), depth + 1) < 0) {
            return -1;
        }
        lua_pop(L, 1);
        config_path_restore(ctx, mark);
    }
    lua_pop(L, 1);
    json_put(ctx, "}", 1);
    return 0;
}

static int json_value(struct config_ctx *ctx, lua_State *L, int idx, int depth)
{
    char buf[40];
    size_t len;
    const char *s = NULL;

    /* Shared subtables are written once per use, so a small table can stand
     * for an exponential text: cap the output, not only the depth. */
    if (ctx->json.len > CONFIG_MAX_OPTIONS_BYTES) {
        config_path_restore(ctx, ctx->json_root);
        return config_fail(ctx, "larger than %zu bytes as JSON", CONFIG_MAX_OPTIONS_BYTES);
    }
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        s = lua_toboolean(L, idx) ? "true" : "false";
        json_put(ctx, s, strlen(s));
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            snprintf(buf, sizeof(buf), "%lld", (long long)lua_tointeger(L, idx));
        } else if (!isfinite(lua_tonumber(L, idx))) {
            return config_fail(ctx, "NaN and infinity cannot be written as JSON");
        } else {
            config_format_double(lua_tonumber(L, idx), buf, sizeof(buf));
        }
        json_put(ctx, buf, strlen(buf));
        return 0;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        return json_string(ctx, s, len);
    case LUA_TTABLE:
        return json_table(ctx, L, idx, depth);
    default:
        return config_fail(ctx,
                           "a %s cannot be handed to the operator (only strings, numbers, "
                           "booleans and tables)",
                           luaL_typename(L, idx));
    }
}

static int walk_json(struct config_ctx *ctx, lua_State *L, int idx, const struct config_key *k,
                     void *base)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        return fail_type(ctx, L, idx, "table");
    }
    jbuf_reset(&ctx->json);
    ctx->json_root = ctx->path_len;
    if (json_table(ctx, L, idx, 0) < 0) {
        return -1;
    }
    if (ctx->json.len > CONFIG_MAX_OPTIONS_BYTES) {
        return config_fail(ctx, "larger than %zu bytes as JSON", CONFIG_MAX_OPTIONS_BYTES);
    }
    *CONFIG_FIELD(base, k->offset, char *) = xstrdup(ctx->json.data ? ctx->json.data : "");
    return 0;
}

/* ---- operators = { name = {...} } ---------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool is_operator_name(const char *s, size_t len)
{
    return len > 0 && len <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == len;
}

static int walk_operators(struct config_ctx *ctx, lua_State *L, int idx, const struct config_key *k,
                          void *base)
{
    struct config_operator **ops = CONFIG_FIELD(base, k->offset, struct config_operator *);
    size_t *n = CONFIG_FIELD(base, k->aux, size_t);
    const char **names;
    size_t count = 0;

    if (lua_type(L, idx) != LUA_TTABLE) {
        return fail_type(ctx, L, idx, "table");
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            return config_fail(ctx,
                               "keys are operator names, e.g. binance = { ... }; found a %s key",
                               luaL_typename(L, -1));
        }
        count++;
    }
    /* Sorted, so the array can be searched and the dump is stable. */
    names = lua_newuserdatauv(L, (count ? count : 1) * sizeof(*names), 0);
    count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        names[count++] = lua_tostring(L, -1);
    }
    qsort(names, count, sizeof(*names), name_cmp);
    *ops = xcalloc(count ? count : 1, sizeof(**ops));
    *n = count;
    for (size_t i = 0; i < count; i++) {
        size_t len, mark = config_path_key(ctx, names[i]);

        lua_pushstring(L, names[i]);
        len = lua_rawlen(L, -1);
        if (!is_operator_name(names[i], len)) {
            return config_fail(ctx, "an operator name is 1 to 64 of a-z, 0-9 and _");
        }
        (*ops)[i].name = xstrdup(names[i]);
        lua_rawget(L, idx);
        if (lua_type(L, -1) != LUA_TTABLE) {
            return fail_type(ctx, L, -1, "table");
        }
        if (walk_table(ctx, L, lua_gettop(L), k->sub, &(*ops)[i]) < 0) {
            return -1;
        }
        lua_pop(L, 1);
        config_path_restore(ctx, mark);
    }
    lua_pop(L, 1);
    return 0;
}

/* ---- One key --------------------------------------------------------------- */

/* Store the key's default (no value in the file). */
static void apply_default(const struct config_key *k, void *base)
{
    switch (k->type) {
    case CONFIG_BOOL:
        *CONFIG_FIELD(base, k->offset, bool) = k->def && strcmp(k->def, "true") == 0;
        break;
    case CONFIG_INT:
        *CONFIG_FIELD(base, k->offset, int64_t) = k->def ? strtoll(k->def, NULL, 10) : -1;
        break;
    case CONFIG_NUM:
        *CONFIG_FIELD(base, k->offset, double) = k->def ? strtod(k->def, NULL) : -1;
        break;
    case CONFIG_STR:
    case CONFIG_JSON:
        *CONFIG_FIELD(base, k->offset, char *) = k->def ? xstrdup(k->def) : NULL;
        break;
    case CONFIG_ENUM:
        *CONFIG_FIELD(base, k->offset, int) = config_find_name(k->names, k->def);
        break;
    case CONFIG_LIST:
        list_default(k, base);
        break;
    case CONFIG_TABLE:
    case CONFIG_OPERATORS:
        break;
    }
}

static int walk_enum(struct config_ctx *ctx, lua_State *L, int idx, const struct config_key *k,
                     void *base)
{
    const char *s = NULL, *hint;
    char names[128] = "";
    int i;

    if (get_string(ctx, L, idx, "string", &s) < 0) {
        return -1;
    }
    i = config_find_name(k->names, s);
    if (i >= 0) {
        *CONFIG_FIELD(base, k->offset, int) = i;
        return 0;
    }
    for (int j = 0; k->names[j]; j++) {
        strncat(names, j ? ", " : "", sizeof(names) - strlen(names) - 1);
        strncat(names, k->names[j], sizeof(names) - strlen(names) - 1);
    }
    hint = config_suggest(s, k->names);
    if (hint) {
        return config_fail(ctx, "'%.64s' is not one of %s (did you mean '%s'?)", s, names, hint);
    }
    return config_fail(ctx, "'%.64s' is not one of %s", s, names);
}

/* Parse the value at idx (or the default when idx is 0), then run the check. */
static int walk_value(struct config_ctx *ctx, lua_State *L, int idx, const struct config_key *k,
                      void *base)
{
    int isint = 0;
    double d;
    const char *s = NULL;

    if (idx == 0) {
        apply_default(k, base);
        if (k->type == CONFIG_TABLE &&
            walk_table(ctx, L, 0, k->sub, CONFIG_FIELD(base, k->offset, char)) < 0) {
            return -1;
        }
        return k->check ? k->check(ctx, base, k) : 0;
    }
    switch (k->type) {
    case CONFIG_BOOL:
        if (!lua_isboolean(L, idx)) {
            return fail_type(ctx, L, idx, "boolean");
        }
        *CONFIG_FIELD(base, k->offset, bool) = lua_toboolean(L, idx);
        break;
    case CONFIG_INT:
        if (lua_type(L, idx) == LUA_TNUMBER) {
            *CONFIG_FIELD(base, k->offset, int64_t) = lua_tointegerx(L, idx, &isint);
        }
        if (!isint) {
            return fail_type(ctx, L, idx, "integer");
        }
        if (check_range(ctx, k, (double)*CONFIG_FIELD(base, k->offset, int64_t)) < 0) {
            return -1;
        }
        break;
    case CONFIG_NUM:
        if (lua_type(L, idx) != LUA_TNUMBER) {
            return fail_type(ctx, L, idx, "number");
        }
        d = lua_tonumber(L, idx);
        if (isnan(d) || check_range(ctx, k, d) < 0) {
            return isnan(d) ? config_fail(ctx, "NaN is not a number here") : -1;
        }
        *CONFIG_FIELD(base, k->offset, double) = d;
        break;
    case CONFIG_STR:
        if (get_string(ctx, L, idx, "string", &s) < 0) {
            return -1;
        }
        *CONFIG_FIELD(base, k->offset, char *) = xstrdup(s);
        break;
    case CONFIG_ENUM:
        if (walk_enum(ctx, L, idx, k, base) < 0) {
            return -1;
        }
        break;
    case CONFIG_LIST:
        if (walk_list(ctx, L, idx, k, base) < 0) {
            return -1;
        }
        break;
    case CONFIG_TABLE:
        if (lua_type(L, idx) != LUA_TTABLE) {
            return fail_type(ctx, L, idx, "table");
        }
        if (walk_table(ctx, L, idx, k->sub, CONFIG_FIELD(base, k->offset, char)) < 0) {
            return -1;
        }
        break;
    case CONFIG_OPERATORS:
        if (walk_operators(ctx, L, idx, k, base) < 0) {
            return -1;
        }
        break;
    case CONFIG_JSON:
        if (walk_json(ctx, L, idx, k, base) < 0) {
            return -1;
        }
        break;
    }
    return k->check ? k->check(ctx, base, k) : 0;
}

/* ---- One table ------------------------------------------------------------- */

static const struct config_key *find_key(const struct config_key *keys, const char *name)
{
    for (; keys->name; keys++) {
        if (strcmp(keys->name, name) == 0) {
            return keys;
        }
    }
    return NULL;
}

static int fail_unknown(struct config_ctx *ctx, const struct config_key *keys, const char *key)
{
    const char *names[64], *hint;
    char list[512] = "";
    size_t n = 0, mark = config_path_key(ctx, key);

    for (; keys[n].name && n < 63; n++) {
        names[n] = keys[n].name;
        strncat(list, n ? ", " : "", sizeof(list) - strlen(list) - 1);
        strncat(list, keys[n].name, sizeof(list) - strlen(list) - 1);
    }
    names[n] = NULL;
    hint = config_suggest(key, names);
    if (hint) {
        config_fail(ctx, "unknown key (did you mean '%s'?)", hint);
    } else if (n <= 12) {
        config_fail(ctx, "unknown key (known keys: %s)", list);
    } else {
        config_fail(ctx, "unknown key (see docs/operations.md for the keys)");
    }
    config_path_restore(ctx, mark);
    return -1;
}

/*
 * Walk the table at idx (0: absent, all defaults) against `keys`, filling
 * the struct at base. Unknown keys are checked first and the alphabetically
 * first one is reported, so the message does not depend on hash order.
 */
static int walk_table(struct config_ctx *ctx, lua_State *L, int idx, const struct config_key *keys,
                      void *base)
{
    const char *unknown = NULL;
    int top = lua_gettop(L);

    if (idx != 0) {
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING) {
                if (lua_type(L, -1) == LUA_TNUMBER) {
                    lua_pushvalue(L, -1);
                    return config_fail(ctx,
                                       "unexpected list item [%s] (this table takes named keys)",
                                       lua_tostring(L, -1));
                }
                return config_fail(ctx, "unexpected %s key (this table takes named keys)",
                                   luaL_typename(L, -1));
            }
            if (!find_key(keys, lua_tostring(L, -1)) &&
                (!unknown || strcmp(lua_tostring(L, -1), unknown) < 0)) {
                unknown = lua_tostring(L, -1);
            }
        }
        if (unknown) {
            return fail_unknown(ctx, keys, unknown);
        }
    }
    for (const struct config_key *k = keys; k->name; k++) {
        size_t mark = config_path_key(ctx, k->name);
        int present = 0;

        if (idx != 0) {
            lua_pushstring(L, k->name);
            present = lua_rawget(L, idx) != LUA_TNIL;
        }
        if (walk_value(ctx, L, present ? lua_gettop(L) : 0, k, base) < 0) {
            return -1;
        }
        lua_settop(L, top);
        config_path_restore(ctx, mark);
    }
    return 0;
}

int config_walk(struct config_ctx *ctx, lua_State *L, int idx)
{
    return walk_table(ctx, L, idx, config_root_keys, ctx->cfg);
}
