/*
 * config: run the config file in a sandbox and walk what it returns.
 *
 * The file is Lua because operators are Lua and because a config wants a few
 * computed values (`env("FAKEX_URL", ...) .. "/binance"`). It must not be able
 * to do anything else, so it runs in a state of its own with:
 *   - an environment holding only env(name, default), tostring, tonumber,
 *     type, pairs, ipairs, next, select, error, assert, string.format,
 *     string.lower, string.upper, string.sub, math.floor, math.min and
 *     math.max (also reachable as string methods: ("x"):upper()). No io, os,
 *     require, load, dofile, setmetatable, pcall or string patterns, whose
 *     matcher can backtrack for minutes inside one C call;
 *   - text chunks only (no precompiled bytecode);
 *   - an allocator capped at CONFIG_MAX_MEMORY and a count hook that raises
 *     an error after CONFIG_MAX_INSTRUCTIONS. Without pcall the config cannot
 *     catch either, and Lua's messages keep their file:line.
 *
 * The walk over the returned table (config_walk.c) runs inside the same
 * protected call; on any failure the half-built config is freed whole.
 * Environment overrides come after the walk, with the Lua state closed, and
 * go through the same checks as the file's values (config_check.c).
 */
#include "config.h"
#include "config_schema.h"
#include "core/xalloc.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- The sandbox ---------------------------------------------------------- */

struct config_mem {
    size_t used;
    size_t limit;
};

/* lua_Alloc with a ceiling: a refusal becomes Lua's "not enough memory". */
static void *config_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct config_mem *m = ud;
    size_t old = ptr ? osize : 0;
    void *p;

    if (nsize == 0) {
        m->used -= old;
        free(ptr);
        return NULL;
    }
    if (nsize > old && m->used + (nsize - old) > m->limit) {
        return NULL;
    }
    p = realloc(ptr, nsize);
    if (p) {
        m->used = m->used - old + nsize;
    }
    return p;
}

static void config_count_hook(lua_State *L, lua_Debug *ar)
{
    lua_getinfo(L, "Sl", ar);
    lua_pushfstring(L, "%s:%d: instruction limit exceeded (%d instructions)", ar->short_src,
                    ar->currentline, CONFIG_MAX_INSTRUCTIONS);
    lua_error(L);
}

/* env(name [, default]): the variable's value, or default when it is unset
 * or empty (so `FOO= explorer` and compose's `FOO=${FOO}` mean "unset"). */
static int config_env(lua_State *L)
{
    const char *v = getenv(luaL_checkstring(L, 1));

    if (v && *v) {
        lua_pushstring(L, v);
    } else {
        lua_settop(L, 2);
    }
    return 1;
}

/* Copy the named fields of the table on top into a new table at `into`. */
static void config_pick(lua_State *L, int into, const char *const *names)
{
    for (; *names; names++) {
        lua_getfield(L, -1, *names);
        lua_setfield(L, into, *names);
    }
}

/* Push the environment the chunk sees. */
static void config_sandbox(lua_State *L)
{
    static const char *const base[] = {"tostring", "tonumber", "type",  "pairs",  "ipairs",
                                       "next",     "select",   "error", "assert", NULL};
    static const char *const str[] = {"format", "lower", "upper", "sub", NULL};
    static const char *const math[] = {"floor", "min", "max", NULL};
    int env;

    lua_newtable(L);
    env = lua_gettop(L);
    lua_pushcfunction(L, config_env);
    lua_setfield(L, env, "env");
    luaL_requiref(L, "_G", luaopen_base, 0);
    config_pick(L, env, base);
    lua_pop(L, 1);

    lua_newtable(L);
    luaL_requiref(L, "string", luaopen_string, 0);
    config_pick(L, env + 1, str);
    lua_pop(L, 1);
    /* luaopen_string made the full library the strings' metatable; point it
     * at the restricted copy instead, so ("x"):rep(...) does not exist. */
    lua_pushliteral(L, "");
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, env + 1);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    lua_setfield(L, env, "string");

    lua_newtable(L);
    luaL_requiref(L, "math", luaopen_math, 0);
    config_pick(L, env + 1, math);
    lua_pop(L, 1);
    lua_setfield(L, env, "math");
}

/* ---- Loading -------------------------------------------------------------- */

/* Runs under lua_pcall: build the sandbox, run the chunk, walk its result. */
static int config_run(lua_State *L)
{
    struct config_ctx *ctx = lua_touserdata(L, 1);
    int env;

    config_sandbox(L);
    env = lua_gettop(L);
    if (luaL_loadfilex(L, ctx->file, "t") != LUA_OK) {
        return lua_error(L);
    }
    /* A main chunk's only upvalue is _ENV: point it at the sandbox. */
    lua_pushvalue(L, env);
    lua_setupvalue(L, -2, 1);
    lua_sethook(L, config_count_hook, LUA_MASKCOUNT, CONFIG_MAX_INSTRUCTIONS);
    lua_call(L, 0, 1);
    lua_sethook(L, NULL, 0, 0);
    if (lua_type(L, -1) != LUA_TTABLE) {
        ctx->rc = config_fail(ctx, "the file must return a table, got %s", luaL_typename(L, -1));
        return 0;
    }
    ctx->rc = config_walk(ctx, L, lua_gettop(L));
    return 0;
}

/*
 * Turn a Lua error into the message for the caller. Lua writes "<src>:<line>:
 * ..." with the source cut to LUA_IDSIZE ("...nfig/explorer.lua:3: ..."):
 * put the full file name back. Messages without a position get the file.
 */
static void config_lua_failure(struct config_ctx *ctx, lua_State *L, int status)
{
    const char *msg = lua_tostring(L, -1);
    size_t flen = strlen(ctx->file);

    if (status == LUA_ERRMEM || (msg && strcmp(msg, "not enough memory") == 0)) {
        snprintf(ctx->err, ctx->errlen, "%s: memory limit exceeded (%zu MiB)", ctx->file,
                 CONFIG_MAX_MEMORY >> 20);
        return;
    }
    if (!msg) {
        snprintf(ctx->err, ctx->errlen, "%s: error with a %s value instead of a message", ctx->file,
                 luaL_typename(L, -1));
        return;
    }
    if (strncmp(msg, ctx->file, flen) == 0 && msg[flen] == ':') {
        snprintf(ctx->err, ctx->errlen, "%s", msg);
        return;
    }
    if (strncmp(msg, "...", 3) == 0) {
        for (const char *c = strchr(msg + 3, ':'); c; c = strchr(c + 1, ':')) {
            size_t tail = (size_t)(c - msg - 3);

            if (tail <= flen && memcmp(ctx->file + flen - tail, msg + 3, tail) == 0) {
                snprintf(ctx->err, ctx->errlen, "%s%s", ctx->file, c);
                return;
            }
        }
    }
    snprintf(ctx->err, ctx->errlen, "%s: %s", ctx->file, msg);
}

static const char *env_value(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

/* $API_AUTHENTICATION_TOKEN: a comma list; spaces trimmed, empty items
 * dropped; a list with no item at all counts as unset. */
static int env_tokens(struct config_ctx *ctx, struct config *cfg, const char *v)
{
    size_t cap = 1, n = 0;
    char **items;

    for (const char *p = v; *p; p++) {
        cap += *p == ',';
    }
    config_path_set(ctx, "$API_AUTHENTICATION_TOKEN");
    if (cap > CONFIG_MAX_LIST_ITEMS) {
        return config_fail(ctx, "more than %d items", CONFIG_MAX_LIST_ITEMS);
    }
    items = xcalloc(cap + 1, sizeof(*items));
    for (const char *p = v;; p++) {
        size_t len = strcspn(p, ",");
        const char *s = p, *e = p + len;

        while (s < e && (*s == ' ' || *s == '\t')) {
            s++;
        }
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }
        if (e > s) {
            items[n++] = xstrndup(s, (size_t)(e - s));
            config_path_set(ctx, "$API_AUTHENTICATION_TOKEN");
            config_path_index(ctx, n);
            if (config_check_token(ctx, &items[n - 1]) < 0) {
                goto fail;
            }
            for (size_t j = 0; j + 1 < n; j++) {
                if (strcmp(items[j], items[n - 1]) == 0) {
                    config_fail(ctx, "same value as item %zu", j + 1);
                    goto fail;
                }
            }
        }
        p += len;
        if (!*p) {
            break;
        }
    }
    if (n > 0) {
        config_list_free(cfg->tokens, cfg->n_tokens);
        cfg->tokens = items;
        cfg->n_tokens = n;
    } else {
        free(items);
    }
    return 0;
fail:
    config_list_free(items, n);
    return -1;
}

static int env_port(struct config_ctx *ctx, struct config *cfg, const char *v)
{
    size_t n = strlen(cfg->listen_host) + 16;
    char *listen;
    int port, rc;

    config_path_set(ctx, "$PORT");
    if (config_port_parse(v, &port) < 0) {
        return config_fail(ctx, "'%.32s' is not a port number (0 to 65535)", v);
    }
    listen = xmalloc(n);
    snprintf(listen, n, strchr(cfg->listen_host, ':') ? "[%s]:%d" : "%s:%d", cfg->listen_host,
             port);
    rc = config_listen_apply(ctx, cfg, listen);
    free(listen);
    return rc;
}

/* PORT, API_AUTHENTICATION_TOKEN, REDIS_URL: after the file, in that order. */
static int apply_env(struct config_ctx *ctx, struct config *cfg)
{
    const char *v;

    if ((v = env_value("PORT")) && env_port(ctx, cfg, v) < 0) {
        return -1;
    }
    if ((v = env_value("API_AUTHENTICATION_TOKEN")) && env_tokens(ctx, cfg, v) < 0) {
        return -1;
    }
    if ((v = env_value("REDIS_URL"))) {
        config_path_set(ctx, "$REDIS_URL");
        if (config_store_apply(ctx, cfg, v) < 0) {
            return -1;
        }
    }
    config_path_set(ctx, "");
    return 0;
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
    struct config_mem mem = {0, CONFIG_MAX_MEMORY};
    struct config_ctx ctx = {.file = path, .err = err, .errlen = errlen};
    struct config *cfg = NULL;
    lua_State *L = NULL;
    FILE *f;
    int status;

    *out = NULL;
    if (errlen > 0) {
        err[0] = '\0';
    }
    /* Say "cannot open" in our own words before Lua says it in its. */
    f = fopen(path, "r");
    if (!f) {
        config_fail(&ctx, "cannot open: %s", strerror(errno));
        goto fail;
    }
    fclose(f);
    cfg = xcalloc(1, sizeof(*cfg));
    cfg->path = xstrdup(path);
    ctx.cfg = cfg;
    L = lua_newstate(config_alloc, &mem);
    if (!L) {
        config_fail(&ctx, "cannot create a Lua state");
        goto fail;
    }
    lua_pushcfunction(L, config_run);
    lua_pushlightuserdata(L, &ctx);
    status = lua_pcall(L, 1, 0, 0);
    if (status != LUA_OK) {
        config_lua_failure(&ctx, L, status);
        goto fail;
    }
    if (ctx.rc < 0) {
        goto fail;
    }
    lua_close(L);
    L = NULL;
    if (apply_env(&ctx, cfg) < 0 || config_check_final(&ctx, cfg) < 0) {
        goto fail;
    }
    jbuf_free(&ctx.json);
    *out = cfg;
    return 0;
fail:
    if (L) {
        lua_close(L);
    }
    jbuf_free(&ctx.json);
    config_free(cfg);
    return -1;
}

/* ---- Freeing, finding, reloading ----------------------------------------- */

static void free_fields(const struct config_key *keys, void *base)
{
    for (const struct config_key *k = keys; k->name; k++) {
        struct config_operator *ops;

        switch (k->type) {
        case CONFIG_STR:
        case CONFIG_JSON:
            free(*CONFIG_FIELD(base, k->offset, char *));
            break;
        case CONFIG_LIST:
            config_list_free(*CONFIG_FIELD(base, k->offset, char **),
                             *CONFIG_FIELD(base, k->aux, size_t));
            break;
        case CONFIG_TABLE:
            free_fields(k->sub, CONFIG_FIELD(base, k->offset, char));
            break;
        case CONFIG_OPERATORS:
            ops = *CONFIG_FIELD(base, k->offset, struct config_operator *);
            for (size_t i = 0; ops && i < *CONFIG_FIELD(base, k->aux, size_t); i++) {
                free(ops[i].name);
                free_fields(k->sub, &ops[i]);
            }
            free(ops);
            break;
        default:
            break;
        }
    }
}

void config_free(struct config *cfg)
{
    if (!cfg) {
        return;
    }
    free_fields(config_root_keys, cfg);
    free(cfg->listen_host);
    config_redis_clear(&cfg->redis);
    free(cfg->path);
    free(cfg);
}

const char *config_default_path(void)
{
    const char *v = env_value("EXPLORER_CONFIG");

    return v ? v : "config/explorer.lua";
}

int config_reload_tokens(const char *path, struct config *cfg, char *err, size_t errlen)
{
    struct config *fresh;
    char **items;
    size_t n;

    if (config_load(path ? path : cfg->path, &fresh, err, errlen) < 0) {
        return -1;
    }
    items = cfg->tokens, n = cfg->n_tokens;
    cfg->tokens = fresh->tokens, cfg->n_tokens = fresh->n_tokens;
    fresh->tokens = items, fresh->n_tokens = n;
    items = cfg->admin_tokens, n = cfg->n_admin_tokens;
    cfg->admin_tokens = fresh->admin_tokens, cfg->n_admin_tokens = fresh->n_admin_tokens;
    fresh->admin_tokens = items, fresh->n_admin_tokens = n;
    config_free(fresh);
    return 0;
}

static int operator_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct config_operator *)elem)->name);
}

const struct config_operator *config_operator_find(const struct config *cfg, const char *name)
{
    if (!cfg->n_operators) {
        return NULL;
    }
    return bsearch(name, cfg->operators, cfg->n_operators, sizeof(*cfg->operators), operator_cmp);
}
