/*
 * op_spec: validation of the table an operator file returns (spec 1).
 *
 * Every field's name and type is checked here, unknown fields are refused
 * with a "did you mean", and the per-operator config overrides of DESIGN 6
 * are applied, so the rest of the engine reads one plain struct op_spec.
 * Errors read "field: reason" and are prefixed with the file by the caller.
 */
#include "operator_int.h"

#include <curl/curl.h>
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "core/xalloc.h"

#define DEFAULT_POLL_EVERY 10.0
#define DEFAULT_BUDGET_REQUESTS 60
#define DEFAULT_BUDGET_PER 60.0
#define DEFAULT_IDLE_TIMEOUT 30.0
#define DEFAULT_MAX_PAIRS 5000
/* Callback time limits (docs/operators.md, "Limits") and their caps. */
#define DEFAULT_MESSAGE_MS 10
#define MAX_MESSAGE_MS 1000
#define DEFAULT_TASK_MS 500
#define MAX_TASK_MS 10000

static const char *const top_fields[] = {
    "name",    "spec",      "rest",         "ws",     "poll_every", "aliases", "budget",
    "markets", "poll",      "idle_timeout", "stream", "max_pairs",  "options", "allow_hosts",
    "deadlines", NULL,
};

static const char *const stream_fields[] = {
    "connections", "on_open", "on_message", "on_ping", "on_close", "ping_every", NULL,
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int check_known(lua_State *L, int idx, const char *const *names, const char *where,
                       char *err, size_t errlen)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            return fail(err, errlen, "%skeys must be strings", where);
        }
        const char *key = lua_tostring(L, -1);
        if (config_find_name(names, key) < 0) {
            const char *near = config_suggest(key, names);
            if (near) {
                snprintf(err, errlen, "%s%s: unknown field (did you mean '%s'?)", where, key, near);
            } else {
                snprintf(err, errlen, "%s%s: unknown field", where, key);
            }
            lua_pop(L, 1);
            return -1;
        }
    }
    return 0;
}

/* The field's type, or LUA_TNIL; a wrong type is an error. */
static int field(lua_State *L, int idx, const char *name, int type, bool required, char *err,
                 size_t errlen)
{
    int t = lua_getfield(L, idx, name);
    lua_pop(L, 1);
    if (t == LUA_TNIL) {
        if (required) {
            return fail(err, errlen, "%s: required %s is missing", name, lua_typename(L, type));
        }
        return LUA_TNIL;
    }
    if (t != type) {
        snprintf(err, errlen, "%s: expected %s, got %s", name, lua_typename(L, type),
                 lua_typename(L, t));
        return -1;
    }
    return t;
}

static double number_field(lua_State *L, int idx, const char *name, double dflt)
{
    lua_getfield(L, idx, name);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

static char *string_field(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    char *v = lua_type(L, -1) == LUA_TSTRING ? xstrdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return v;
}

/* A host x.http may reach on `port` (0: the operator's own ports). */
static void add_host(struct op_spec *spec, const char *host, int port)
{
    for (size_t i = 0; i < spec->n_hosts; i++) {
        if (strcasecmp(spec->hosts[i].name, host) == 0 && spec->hosts[i].port == port) {
            return;
        }
    }
    spec->hosts = xrealloc(spec->hosts, (spec->n_hosts + 1) * sizeof *spec->hosts);
    spec->hosts[spec->n_hosts++] = (struct op_host){xstrdup(host), port};
}

/* The default port of the schemes an operator's URLs may have; 0 else. */
static int scheme_port(const char *scheme)
{
    if (strcmp(scheme, "http") == 0 || strcmp(scheme, "ws") == 0) {
        return 80;
    }
    if (strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0) {
        return 443;
    }
    return 0;
}

int op_url_host_port(const char *url, char **host, int *port)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *name = NULL, *digits = NULL;
    int rc = -1;

    *host = NULL;
    *port = 0;
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &name, 0) == CURLUE_OK && scheme_port(scheme)) {
        CURLUcode pc = curl_url_get(u, CURLUPART_PORT, &digits, 0);
        *port = pc == CURLUE_NO_PORT ? scheme_port(scheme) : pc == CURLUE_OK ? atoi(digits) : 0;
        if (*port > 0 && *port <= 65535) {
            *host = xstrdup(name);
            rc = 0;
        }
    }
    curl_free(digits);
    curl_free(name);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

/* The host of the operator's own rest or ws URL, reachable on the own
 * ports, and its port one of them; -1 if it is not such a URL. */
static int add_url_host(struct op_spec *spec, const char *url, const char *field_name,
                        char *err, size_t errlen)
{
    char *host;
    int port;

    if (op_url_host_port(url, &host, &port) < 0) {
        return fail(err, errlen, "%s: not an http(s) or ws(s) URL: %s", field_name, url);
    }
    add_host(spec, host, 0);
    free(host);
    for (size_t i = 0; i < spec->n_own_ports; i++) {
        if (spec->own_ports[i] == port) {
            return 0;
        }
    }
    spec->own_ports[spec->n_own_ports++] = port;
    return 0;
}

/*
 * An allow_hosts entry: "host" (reachable on the operator's own ports) or
 * "host:port" ("[v6]:port"), nothing else: no scheme, user, path or query.
 * Parsed as the authority of a URL, so it means what x.http's URLs mean.
 */
static int add_host_entry(struct op_spec *spec, const char *entry)
{
    char url[300];
    char *host;
    int port;

    size_t len = strlen(entry);

    if (!len || entry[len - 1] == ':' || strpbrk(entry, "/\\@?#% \t\r\n") ||
        (size_t)snprintf(url, sizeof url, "http://%s/", entry) >= sizeof url ||
        op_url_host_port(url, &host, &port) < 0) {
        return -1;
    }
    /* A port written out, even ":80", is that port alone. */
    const char *close = strrchr(entry, ']');
    bool explicit_port = strchr(close ? close : entry, ':') != NULL;
    add_host(spec, host, explicit_port ? port : 0);
    free(host);
    return 0;
}

static int read_stream(lua_State *L, int idx, struct op_spec *spec, char *err, size_t errlen)
{
    if (lua_getfield(L, idx, "stream") != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    int s = lua_gettop(L);
    int rc = check_known(L, s, stream_fields, "stream.", err, errlen);
    if (rc == 0 && (field(L, s, "connections", LUA_TFUNCTION, true, err, errlen) < 0 ||
                    field(L, s, "on_message", LUA_TFUNCTION, true, err, errlen) < 0 ||
                    field(L, s, "on_open", LUA_TFUNCTION, false, err, errlen) < 0 ||
                    field(L, s, "on_ping", LUA_TFUNCTION, false, err, errlen) < 0 ||
                    field(L, s, "on_close", LUA_TFUNCTION, false, err, errlen) < 0 ||
                    field(L, s, "ping_every", LUA_TNUMBER, false, err, errlen) < 0)) {
        rc = -1;
    }
    if (rc < 0 && strncmp(err, "stream.", 7) != 0) {
        char inner[400];
        snprintf(inner, sizeof inner, "%s", err);
        snprintf(err, errlen, "stream.%s", inner);
    }
    lua_pop(L, 1);
    spec->has_stream = rc == 0;
    return rc;
}

static int read_budget(lua_State *L, int idx, struct op_spec *spec, char *err, size_t errlen)
{
    spec->budget_requests = DEFAULT_BUDGET_REQUESTS;
    spec->budget_per = DEFAULT_BUDGET_PER;
    if (lua_getfield(L, idx, "budget") == LUA_TTABLE) {
        spec->budget_requests = (int64_t)number_field(L, -1, "requests", DEFAULT_BUDGET_REQUESTS);
        spec->budget_per = number_field(L, -1, "per", DEFAULT_BUDGET_PER);
    }
    lua_pop(L, 1);
    if (spec->budget_requests < 1 || !(spec->budget_per > 0)) {
        return fail(err, errlen, "budget: requests must be >= 1 and per > 0");
    }
    return 0;
}

/* deadlines = { message_ms = N, task_ms = N }, each within its cap. */
static int read_deadlines(lua_State *L, int idx, struct op_spec *spec, char *err, size_t errlen)
{
    static const char *const fields[] = {"message_ms", "task_ms", NULL};

    spec->message_ms = DEFAULT_MESSAGE_MS;
    spec->task_ms = DEFAULT_TASK_MS;
    if (lua_getfield(L, idx, "deadlines") != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    int t = lua_gettop(L);
    int rc = check_known(L, t, fields, "deadlines.", err, errlen);
    if (rc == 0) {
        spec->message_ms = (int64_t)number_field(L, t, "message_ms", DEFAULT_MESSAGE_MS);
        spec->task_ms = (int64_t)number_field(L, t, "task_ms", DEFAULT_TASK_MS);
        if (spec->message_ms < 1 || spec->message_ms > MAX_MESSAGE_MS || spec->task_ms < 10 ||
            spec->task_ms > MAX_TASK_MS) {
            rc = fail(err, errlen, "deadlines: message_ms must be 1..%d and task_ms 10..%d",
                      MAX_MESSAGE_MS, MAX_TASK_MS);
        }
    }
    lua_pop(L, 1);
    return rc;
}

static int read_types(lua_State *L, int idx, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        int type;
    } types[] = {
        {"rest", LUA_TSTRING},         {"ws", LUA_TSTRING},     {"poll_every", LUA_TNUMBER},
        {"aliases", LUA_TTABLE},       {"budget", LUA_TTABLE},  {"markets", LUA_TFUNCTION},
        {"poll", LUA_TFUNCTION},       {"stream", LUA_TTABLE},  {"idle_timeout", LUA_TNUMBER},
        {"max_pairs", LUA_TNUMBER},    {"options", LUA_TTABLE}, {"allow_hosts", LUA_TTABLE},
        {"deadlines", LUA_TTABLE},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (field(L, idx, types[i].name, types[i].type, false, err, errlen) < 0) {
            return -1;
        }
    }
    return 0;
}

static int read_identity(lua_State *L, int idx, struct op_spec *spec, char *err, size_t errlen)
{
    if (field(L, idx, "name", LUA_TSTRING, true, err, errlen) < 0 ||
        field(L, idx, "spec", LUA_TNUMBER, true, err, errlen) < 0) {
        return -1;
    }
    lua_getfield(L, idx, "name");
    const char *name = lua_tostring(L, -1);
    if (!ticker_exchange_valid(name)) {
        lua_pop(L, 1);
        return fail(err, errlen, "name: '%s' must match [a-z0-9_]{1,31}", name);
    }
    snprintf(spec->name, sizeof spec->name, "%s", name);
    lua_pop(L, 1);
    if (number_field(L, idx, "spec", 0) != 1) {
        return fail(err, errlen, "spec: this engine implements spec 1");
    }
    return 0;
}

/* replay_url: <url>/<name> for rest, and the same with ws(s):// for ws. */
static void apply_replay(struct op_spec *spec, const char *url)
{
    int len = (int)strlen(url);
    size_t n = (size_t)len + strlen(spec->name) + 4;

    while (len > 0 && url[len - 1] == '/') {
        len--;
    }
    free(spec->rest);
    free(spec->ws);
    spec->rest = xmalloc(n);
    snprintf(spec->rest, n, "%.*s/%s", len, url, spec->name);
    /* The config check let only http:// and https:// through: ws:// and
     * wss:// are the same with the "http" swapped. */
    spec->ws = xmalloc(n);
    snprintf(spec->ws, n, "ws%.*s/%s", len - 4, url + 4, spec->name);
}

static void apply_overrides(struct op_spec *spec, const struct config_operator *co)
{
    if (co->rest) {
        free(spec->rest);
        spec->rest = xstrdup(co->rest);
    }
    if (co->ws) {
        free(spec->ws);
        spec->ws = xstrdup(co->ws);
    }
    if (co->poll_every > 0) {
        spec->poll_every = co->poll_every;
    }
    if (co->stale_after_ms > 0) {
        spec->stale_after_ms = co->stale_after_ms;
    }
    if (co->budget.requests > 0) {
        spec->budget_requests = co->budget.requests;
    }
    if (co->budget.per > 0) {
        spec->budget_per = co->budget.per;
    }
    if (co->deadlines.message_ms > 0) {
        spec->message_ms = co->deadlines.message_ms;
    }
    if (co->deadlines.task_ms > 0) {
        spec->task_ms = co->deadlines.task_ms;
    }
    spec->enabled = co->enabled;
    /* The config checked these entries (config_check_host) as the
     * operator's own are checked below: none fails here. */
    for (size_t i = 0; i < co->n_allow_hosts; i++) {
        add_host_entry(spec, co->allow_hosts[i]);
    }
    spec->pairs = xcalloc(co->n_pairs + 1, sizeof *spec->pairs);
    for (size_t i = 0; i < co->n_pairs; i++) {
        spec->pairs[i] = xstrdup(co->pairs[i]);
    }
    spec->n_pairs = co->n_pairs;
}

static int read_allow_hosts(lua_State *L, int idx, struct op_spec *spec, char *err, size_t errlen)
{
    if (lua_getfield(L, idx, "allow_hosts") == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            int type = lua_geti(L, -1, i);
            if (type != LUA_TSTRING) {
                fail(err, errlen, "allow_hosts[%lld]: a %s, not \"host\" or \"host:port\"",
                     (long long)i, lua_typename(L, type));
                lua_pop(L, 2);
                return -1;
            }
            if (add_host_entry(spec, lua_tostring(L, -1)) < 0) {
                fail(err, errlen, "allow_hosts[%lld]: '%.100s' is not \"host\" or \"host:port\"",
                     (long long)i, lua_tostring(L, -1));
                lua_pop(L, 2);
                return -1;
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return 0;
}

int op_spec_read(lua_State *L, int idx, const struct config *cfg, struct op_spec *spec, char *err,
                 size_t errlen)
{
    idx = lua_absindex(L, idx);
    memset(spec, 0, sizeof *spec);
    spec->enabled = true;
    if (!lua_istable(L, idx)) {
        return fail(err, errlen, "the file must return a table (got %s)",
                    lua_typename(L, lua_type(L, idx)));
    }
    if (check_known(L, idx, top_fields, "", err, errlen) < 0 ||
        read_identity(L, idx, spec, err, errlen) < 0 || read_types(L, idx, err, errlen) < 0 ||
        read_stream(L, idx, spec, err, errlen) < 0 || read_budget(L, idx, spec, err, errlen) < 0 ||
        read_deadlines(L, idx, spec, err, errlen) < 0) {
        goto fail;
    }
    spec->has_markets = field(L, idx, "markets", LUA_TFUNCTION, false, err, errlen) > 0;
    spec->has_poll = field(L, idx, "poll", LUA_TFUNCTION, false, err, errlen) > 0;
    if (!spec->has_poll && !spec->has_stream) {
        fail(err, errlen, "needs poll or stream (or both)");
        goto fail;
    }
    spec->rest = string_field(L, idx, "rest");
    spec->ws = string_field(L, idx, "ws");
    spec->poll_every = number_field(L, idx, "poll_every", DEFAULT_POLL_EVERY);
    spec->idle_timeout = number_field(L, idx, "idle_timeout", DEFAULT_IDLE_TIMEOUT);
    spec->max_pairs = (int64_t)number_field(L, idx, "max_pairs", DEFAULT_MAX_PAIRS);
    spec->stale_after_ms = cfg ? cfg->stale_after_ms : 60000;
    if (!(spec->poll_every >= 0.05) || !(spec->idle_timeout > 0) || spec->max_pairs < 1) {
        fail(err, errlen, "poll_every (>= 0.05), idle_timeout (> 0) and max_pairs (>= 1) "
                          "must be positive");
        goto fail;
    }
    if (read_allow_hosts(L, idx, spec, err, errlen) < 0) {
        goto fail;
    }
    if (cfg && cfg->replay_url) {
        apply_replay(spec, cfg->replay_url);
    }
    const struct config_operator *co = cfg ? config_operator_find(cfg, spec->name) : NULL;
    if (co) {
        apply_overrides(spec, co);
    }
    if ((spec->rest && add_url_host(spec, spec->rest, "rest", err, errlen) < 0) ||
        (spec->ws && add_url_host(spec, spec->ws, "ws", err, errlen) < 0)) {
        goto fail;
    }
    return 0;
fail:
    op_spec_free(spec);
    return -1;
}

void op_spec_free(struct op_spec *spec)
{
    free(spec->rest);
    free(spec->ws);
    for (size_t i = 0; i < spec->n_hosts; i++) {
        free(spec->hosts[i].name);
    }
    free(spec->hosts);
    for (size_t i = 0; i < spec->n_pairs; i++) {
        free(spec->pairs[i]);
    }
    free(spec->pairs);
    memset(spec, 0, sizeof *spec);
}
