/*
 * op_pairs: how an operator's asset codes and symbols become canonical
 * pairs — upper-cased, through the operator's `aliases` (XBT -> BTC), and
 * for symbols through the map markets() built. Shared by markets() (which
 * builds the map) and emit (which reads it); nothing is ever guessed.
 */
#include "operator_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Upper-cased, aliased asset code into out; 0 or negative. */
static int canonical_asset(struct operator *op, const char *code, char *out, size_t cap)
{
    lua_State *L = op->L;
    char upper[TICKER_ASSET_MAX + 1];
    size_t n = code ? strlen(code) : 0;
    int top = lua_gettop(L);
    int rc = 0;

    if (n == 0 || n > TICKER_ASSET_MAX) {
        return -EINVAL;
    }
    for (size_t i = 0; i <= n; i++) {
        char c = code[i];
        upper[i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, op->table_ref);
    if (lua_getfield(L, -1, "aliases") == LUA_TTABLE &&
        lua_getfield(L, -1, upper) == LUA_TSTRING) {
        const char *alias = lua_tostring(L, -1);
        if (strlen(alias) >= cap) {
            rc = -ENOSPC;
        } else {
            memcpy(out, alias, strlen(alias) + 1);
        }
    } else if (n >= cap) {
        rc = -ENOSPC;
    } else {
        memcpy(out, upper, n + 1);
    }
    lua_settop(L, top);
    return rc;
}

int op_pair_from_assets(struct operator *op, const char *base, const char *quote, char *out,
                        size_t cap)
{
    char b[TICKER_ASSET_MAX + 1];
    char q[TICKER_ASSET_MAX + 1];
    char joined[TICKER_PAIR_MAX];

    if (canonical_asset(op, base, b, sizeof b) < 0 || canonical_asset(op, quote, q, sizeof q) < 0) {
        return -EINVAL;
    }
    snprintf(joined, sizeof joined, "%s_%s", b, q);
    if (!ticker_pair_valid(joined) || strlen(joined) >= cap) {
        return -EINVAL;
    }
    memcpy(out, joined, strlen(joined) + 1);
    return 0;
}

int op_pair_from_symbol(struct operator *op, const char *symbol, char *out, size_t cap)
{
    lua_State *L = op->L;
    size_t len;
    int rc = -ENOENT;

    lua_rawgeti(L, LUA_REGISTRYINDEX, op->symbols_ref);
    if (lua_getfield(L, -1, symbol) == LUA_TSTRING) {
        const char *pair = lua_tolstring(L, -1, &len);
        rc = len < cap ? 0 : -ENOSPC;
        if (rc == 0) {
            memcpy(out, pair, len + 1);
        }
    }
    lua_pop(L, 2);
    return rc;
}
