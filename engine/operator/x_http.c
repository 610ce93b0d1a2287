/*
 * x_http: x.http.get/post and x.sleep, the primitives that wait.
 *
 * Both park the running task (op_task.c) and yield; the loop resumes it
 * when the response or the timer arrives. Waiting is only possible inside a
 * coroutine the engine runs (markets, poll, connections, on_open): called
 * from on_message they raise a clear error instead of blocking a stream.
 *
 * x.http only reaches the operator's own hosts (from rest, ws and
 * allow_hosts), and on them only the ports of its own rest and ws URLs
 * unless an allow_hosts entry names another ("host:port"), checked on the
 * first URL and on every redirect, so an operator cannot reach Redis, the
 * admin API, the service's own port or a metadata service. Calls
 * are counted against the operator's budget (a token bucket of
 * budget.requests per budget.per seconds); a call beyond it waits for a
 * token rather than failing.
 */
#include "operator_int.h"

#include <curl/curl.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/http_client.h"
#include "core/loop.h"
#include "lua/sandbox.h"
#include "core/xalloc.h"

#define MAX_HEADERS 32
#define MAX_SLEEP_S 3600.0

/* A request waiting for its budget token or its response. */
struct pending_http {
    struct op_task *task;
    struct http_request req;
    char *url;
    char *body;
    char *headers[MAX_HEADERS];
    size_t n_headers;
    struct http_call *call;
    struct loop_timer *wait;
};

static int url_allowed(const char *url, void *ctx)
{
    return op_url_allowed(ctx, url);
}

/* Whether a host entry without a port reaches `port`: the ports of the
 * operator's own rest and ws URLs, or with neither, the standard ones. */
static bool own_port(const struct op_spec *spec, int port)
{
    if (spec->n_own_ports == 0) {
        return port == 80 || port == 443;
    }
    for (size_t i = 0; i < spec->n_own_ports; i++) {
        if (spec->own_ports[i] == port) {
            return true;
        }
    }
    return false;
}

bool op_url_allowed(const struct operator *op, const char *url)
{
    const struct op_spec *spec = &op->spec;
    char *host;
    int port;
    bool ok = false;

    if (op_url_host_port(url, &host, &port) < 0) {
        return false;
    }
    for (size_t i = 0; i < spec->n_hosts && !ok; i++) {
        const struct op_host *h = &spec->hosts[i];
        ok = strcasecmp(h->name, host) == 0 && (h->port ? h->port == port : own_port(spec, port));
    }
    free(host);
    return ok;
}

static void pending_free(struct pending_http *p)
{
    free(p->url);
    free(p->body);
    for (size_t i = 0; i < p->n_headers; i++) {
        free(p->headers[i]);
    }
    loop_timer_free(p->wait);
    free(p);
}

static void cancel_http(void *data)
{
    struct pending_http *p = data;
    http_call_cancel(p->call);
    pending_free(p);
}

/* Pushes the response as status, body, headers (a table of lower-cased
 * names), or nil, error. */
static int push_response(lua_State *co, const struct http_response *resp)
{
    if (resp->error) {
        lua_pushnil(co);
        lua_pushfstring(co, "%s: %s", http_error_name(resp->error),
                        resp->error_text ? resp->error_text : "");
        return 2;
    }
    lua_pushinteger(co, resp->status);
    lua_pushlstring(co, resp->body, resp->body_len);
    lua_newtable(co);
    const char *line = resp->headers;
    const char *end = resp->headers + resp->headers_len;
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        const char *colon = memchr(line, ':', (size_t)((eol ? eol : end) - line));
        if (colon) {
            luaL_Buffer b;
            luaL_buffinit(co, &b);
            for (const char *c = line; c < colon; c++) {
                luaL_addchar(&b, (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c));
            }
            luaL_pushresult(&b);
            const char *v = colon + 1;
            const char *vend = eol ? eol : end;
            while (v < vend && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (vend > v && (vend[-1] == '\r' || vend[-1] == ' ')) {
                vend--;
            }
            lua_pushlstring(co, v, (size_t)(vend - v));
            lua_rawset(co, -3);
        }
        line = eol ? eol + 1 : end;
    }
    return 3;
}

static void on_response(const struct http_response *resp, void *data)
{
    struct pending_http *p = data;
    struct op_task *task = p->task;
    struct operator *op = task->op;
    lua_State *co = task->co;

    p->call = NULL;
    if (op->env.on_traffic) {
        struct op_traffic ev = {.kind = OP_TRAFFIC_HTTP,
                                .method = p->req.method,
                                .url = p->url,
                                .status = resp->status,
                                .error = resp->error ? resp->error_text : NULL,
                                .data = resp->body,
                                .len = resp->body_len};
        op->env.on_traffic(op, &ev, op->env.ctx);
    }
    pending_free(p);
    if (!lua_checkstack(co, 4)) {
        op_task_resume(task, 0);
        return;
    }
    op_task_resume(task, push_response(co, resp));
}

static void send_now(struct pending_http *p)
{
    struct operator *op = p->task->op;
    op->facts.http_requests++;
    p->req.url = p->url;
    p->req.headers = (const char *const *)p->headers;
    p->req.n_headers = p->n_headers;
    p->req.url_allowed = url_allowed;
    p->req.url_allowed_ctx = op;
    p->call = http_client_start(op->env.http, &p->req, on_response, p);
}

/* Refills the bucket; the delay until the next token, 0 if one is here. */
static uint64_t take_token(struct operator *op)
{
    uint64_t now = loop_now_ms(op->env.loop);
    double rate = (double)op->spec.budget_requests / (op->spec.budget_per * 1000.0);
    op->tokens += (double)(now - op->tokens_at_ms) * rate;
    if (op->tokens > (double)op->spec.budget_requests) {
        op->tokens = (double)op->spec.budget_requests;
    }
    op->tokens_at_ms = now;
    if (op->tokens >= 1.0) {
        op->tokens -= 1.0;
        return 0;
    }
    return (uint64_t)((1.0 - op->tokens) / rate) + 1;
}

static void on_token(struct loop_timer *t, void *data)
{
    struct pending_http *p = data;
    uint64_t wait = take_token(p->task->op);
    if (wait) {
        loop_timer_start(p->wait, wait, 0);
        return;
    }
    send_now(p);
}

static void read_options(lua_State *L, int idx, struct pending_http *p)
{
    if (!lua_istable(L, idx)) {
        return;
    }
    if (lua_getfield(L, idx, "timeout") == LUA_TNUMBER) {
        p->req.timeout_ms = (long)(lua_tonumber(L, -1) * 1000.0);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "body") == LUA_TSTRING) {
        size_t len;
        const char *b = lua_tolstring(L, -1, &len);
        p->body = xmalloc(len + 1);
        memcpy(p->body, b, len + 1);
        p->req.body = p->body;
        p->req.body_len = len;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "headers") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) && p->n_headers < MAX_HEADERS) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING &&
                !strpbrk(lua_tostring(L, -2), "\r\n:") && !strpbrk(lua_tostring(L, -1), "\r\n")) {
                lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
                p->headers[p->n_headers++] = xstrdup(lua_tostring(L, -1));
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

/* Appends opts.query (a table of strings/numbers) to the URL, encoded. */
static char *build_url(lua_State *L, const char *url, int opts)
{
    luaL_Buffer b;
    char sep = strchr(url, '?') ? '&' : '?';
    /* Decided before luaL_buffinit, which pushes onto the stack (a missing
     * opts argument would then look present). */
    bool has_opts = lua_istable(L, opts);

    luaL_buffinit(L, &b);
    luaL_addstring(&b, url);
    if (has_opts && lua_getfield(L, opts, "query") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) == LUA_TSTRING &&
                (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
                char *k = curl_easy_escape(NULL, lua_tostring(L, -2), 0);
                char *v = curl_easy_escape(NULL, lua_tostring(L, -1), 0);
                luaL_addchar(&b, sep);
                luaL_addstring(&b, k);
                luaL_addchar(&b, '=');
                luaL_addstring(&b, v);
                curl_free(k);
                curl_free(v);
                sep = '&';
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    } else if (has_opts) {
        lua_pop(L, 1);
    }
    luaL_pushresult(&b);
    char *out = xstrdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return out;
}

static int http_call(lua_State *L, const char *method)
{
    struct operator *op = op_self(L);
    struct op_task *task = op->running;
    const char *url = luaL_checkstring(L, 1);

    if (!task) {
        return luaL_error(L, "x.http.%s cannot wait here: call it from markets, poll, "
                             "connections or on_open, not from on_message, on_ping or on_close",
                          method);
    }
    sandbox_yieldable_guard(L, "x.http cannot wait here: call it from markets, poll, "
                               "connections or on_open, not from on_message, on_ping or on_close");
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
    }
    struct pending_http *p = xcalloc(1, sizeof *p);
    p->task = task;
    p->req.method = method;
    read_options(L, 2, p);
    p->url = build_url(L, url, 2);
    p->wait = loop_timer_new(op->env.loop, on_token, p);
    task->cancel = cancel_http;
    task->pending = p;
    uint64_t wait = take_token(op);
    if (wait) {
        op->facts.budget_waits++;
        loop_timer_start(p->wait, wait, 0);
    } else {
        send_now(p);
    }
    sandbox_push_yield_sentinel(L);
    return lua_yield(L, 1);
}

static int x_http_get(lua_State *L)
{
    return http_call(L, "GET");
}

static int x_http_post(lua_State *L)
{
    return http_call(L, "POST");
}

static void cancel_sleep(void *data)
{
    loop_timer_free(data);
}

static void on_wake(struct loop_timer *t, void *data)
{
    struct op_task *task = data;
    loop_timer_free(t);
    op_task_resume(task, 0);
}

static int x_sleep(lua_State *L)
{
    struct operator *op = op_self(L);
    struct op_task *task = op->running;
    double s = luaL_checknumber(L, 1);

    if (!task) {
        return luaL_error(L, "x.sleep cannot wait here: call it from markets, poll, "
                             "connections or on_open");
    }
    sandbox_yieldable_guard(L, "x.sleep cannot wait here: call it from markets, poll, "
                               "connections or on_open");
    if (!(s >= 0 && s <= MAX_SLEEP_S)) {
        return luaL_error(L, "x.sleep: seconds must be between 0 and %f", MAX_SLEEP_S);
    }
    struct loop_timer *t = loop_timer_new(op->env.loop, on_wake, task);
    task->cancel = cancel_sleep;
    task->pending = t;
    loop_timer_start(t, (uint64_t)(s * 1000.0), 0);
    sandbox_push_yield_sentinel(L);
    return lua_yield(L, 1);
}

void op_http_open(lua_State *L, struct operator *op)
{
    static const luaL_Reg fns[] = {{"get", x_http_get}, {"post", x_http_post}, {NULL, NULL}};
    lua_newtable(L);
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushlightuserdata(L, op);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
    lua_setfield(L, -2, "http");
    lua_pushlightuserdata(L, op);
    lua_pushcclosure(L, x_sleep, 1);
    lua_setfield(L, -2, "sleep");
}
