/*
 * sandbox_json: x.json, lua-cjson configured for operators. Depth is
 * capped both ways; decode is charged per input byte and, asked to, keeps
 * every number as the exchange's own text; encode measures its output
 * before lua-cjson builds it (in memory of its own, outside the state's
 * capped allocator): past SANDBOX_JSON_ENCODE_MAX it is refused, below it
 * charged to the budget. Ingest loop thread.
 */
#include <string.h>

#include <lauxlib.h>

#include "sandbox_int.h"

/* lua-cjson's entry point (liblua5.4-cjson, linked into rx_engine). */
int luaopen_cjson(lua_State *L);

#define SANDBOX_CJSON_DEPTH 64
/* The largest text x.json.encode may produce. */
#define SANDBOX_JSON_ENCODE_MAX (8u << 20)

/* ---------------------------------------------------------------------------
 * x.json: a configured lua-cjson.
 * ------------------------------------------------------------------------- */

/* Whether s[0..n) is a JSON number: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?. */
static int sandbox_json_number_ok(const char *s, size_t n)
{
    size_t i = s[0] == '-';
    size_t d = i;

    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    if (i == d || (s[d] == '0' && i > d + 1)) {
        return 0;
    }
    if (i < n && s[i] == '.') {
        d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == d) {
            return 0;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i += i + 1 < n && (s[i + 1] == '+' || s[i + 1] == '-') ? 2 : 1;
        d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == d) {
            return 0;
        }
    }
    return i == n;
}

/* Pushes text with every number token outside strings put in quotes, so
 * that cjson decodes it as the string the exchange wrote ("472556.000000"
 * stays that, not 472556). Only the tokenizing is ours: strings are
 * skipped with their escapes, and a token that is not a JSON number is
 * left as it is for cjson to refuse. */
static void sandbox_json_quote_numbers(lua_State *L, const char *s, size_t len)
{
    luaL_Buffer b;
    size_t i = 0;

    luaL_buffinit(L, &b);
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < len && s[j] != '"') {
                j += s[j] == '\\' ? 2 : 1;
            }
            j = j < len ? j + 1 : len;
            luaL_addlstring(&b, s + i, j - i);
            i = j;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i + 1;
            while (j < len && strchr("0123456789+-.eE", s[j])) {
                j++;
            }
            int quote = sandbox_json_number_ok(s + i, j - i);
            if (quote) {
                luaL_addchar(&b, '"');
            }
            luaL_addlstring(&b, s + i, j - i);
            if (quote) {
                luaL_addchar(&b, '"');
            }
            i = j;
        } else {
            luaL_addchar(&b, c);
            i++;
        }
    }
    luaL_pushresult(&b);
}

/* cjson's decode (upvalue 1), charged one instruction per input byte before
 * it runs. Its errors are re-raised with the caller's position, which a C
 * caller in between would otherwise hide. x.json.decode(text, {numbers =
 * "text"}) keeps every number as the exchange's own text. */
static int sandbox_json_decode(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) {
        sandbox_charge(L, (long)luaL_len(L, 1));
    }
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "numbers");
        const char *mode = lua_tostring(L, -1);
        if (mode && strcmp(mode, "text") != 0) {
            return luaL_error(L, "x.json.decode: numbers must be \"text\" or absent");
        }
        if (mode && lua_type(L, 1) == LUA_TSTRING) {
            size_t len;
            const char *text = lua_tolstring(L, 1, &len);
            sandbox_charge(L, (long)len);
            sandbox_json_quote_numbers(L, text, len);
            lua_replace(L, 1);
        }
        lua_settop(L, 1);
    }
    int n = lua_gettop(L);

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

/* Bytes of one string in cjson's output: quotes, and the escapes it writes
 * for '"', '\\', '/' and control characters. */
static size_t sandbox_json_string_size(const char *s, size_t len)
{
    size_t n = len + 2;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        n += c == '"' || c == '\\' || c == '/' ? 1 : c < 0x20 ? 5 : 0;
    }
    return n;
}

/*
 * Adds the size of the JSON text of the value at idx to *size, visiting it
 * the way the encoder will (a table shared k times is counted k times:
 * that is how {t, t} nested 27 deep grows to gigabytes of text). Stops as
 * soon as *size passes max, so the walk costs at most max steps whatever
 * the value; depth beyond the encoder's own limit is left to it.
 */
static void sandbox_json_size(lua_State *L, int idx, int depth, size_t max, size_t *size)
{
    size_t len;
    const char *s;

    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        *size += sandbox_json_string_size(s, len);
        return;
    case LUA_TTABLE:
        break;
    default:
        *size += 24; /* a number, a boolean, null: at most this long */
        return;
    }
    *size += 2;
    if (depth >= SANDBOX_CJSON_DEPTH || !lua_checkstack(L, 3)) {
        return;
    }
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (*size <= max && lua_next(L, idx)) {
        sandbox_json_size(L, -2, depth + 1, max, size); /* keys count as strings */
        sandbox_json_size(L, -1, depth + 1, max, size);
        *size += 2; /* the ':' or ',' around them */
        lua_pop(L, 1);
    }
    if (*size > max) {
        lua_pop(L, 1); /* the key lua_next left */
    }
}

/* cjson's encode (upvalue 1), after the size of its result was checked
 * against SANDBOX_JSON_ENCODE_MAX and charged to the budget. */
static int sandbox_json_encode(lua_State *L)
{
    size_t size = 0;

    luaL_checkany(L, 1);
    sandbox_json_size(L, 1, 0, SANDBOX_JSON_ENCODE_MAX, &size);
    if (size > SANDBOX_JSON_ENCODE_MAX) {
        return luaL_error(L, "x.json.encode: the text would be larger than %d bytes",
                          (int)SANDBOX_JSON_ENCODE_MAX);
    }
    sandbox_charge(L, (long)(size / SANDBOX_COPY_BYTES_PER_INSTRUCTION));
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, 1);
    return 1;
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
    lua_getfield(L, cjson, "encode");
    sandbox_set_closure(L, lua_gettop(L) - 1, "encode", sandbox_json_encode, 1);
    lua_remove(L, cjson);
}
