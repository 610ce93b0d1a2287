/*
 * op_stream: an operator's WebSocket streams.
 *
 * After markets(), stream.connections(x, markets) runs as a coroutine and
 * returns one entry per socket. Each entry becomes a struct op_stream that
 * lives as long as the operator version: connect, on_open (a coroutine: it
 * may wait, e.g. for a token, and (re)subscribes), on_message for every
 * message (a plain protected call: it may not wait, so a stream never
 * blocks on the network), and on a close or a silence longer than
 * idle_timeout, reconnect after a backoff with jitter (1 s doubling to
 * 60 s, reset once a connection delivers).
 *
 * The Lua side of a connection is a `ws` userdata (x_ws.c) holding the
 * connection; it is cut loose when the connection closes, so a stale `ws`
 * kept by the operator answers "closed" instead of reaching freed memory.
 */
#include "operator_int.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/log.h"
#include "core/loop.h"
#include "lua/sandbox.h"
#include "net/ws_client.h"
#include "core/xalloc.h"

#define RECONNECT_BASE_MS 1000
#define RECONNECT_CAP_MS 60000
#define RECONNECT_JITTER 0.2
#define DEFAULT_MAX_MESSAGE (1u << 20)
/* on_message calls failing (an error, or over the time limit) in a row
 * before the stream is closed and reopened with backoff: one bad message
 * is the exchange's, a run of them is the operator's. */
#define MESSAGE_FAILURES_MAX 5

struct op_stream {
    struct operator *op;
    struct op_stream *next;
    int index;    /* 1-based, for logs */
    int conn_ref; /* the entry connections() returned */
    int ws_ref;   /* the `ws` userdata of the open connection, or LUA_NOREF */
    char *url;    /* as connections() gave it, for logs and the traffic tap */
    struct ws_conn *conn;
    struct loop_timer *retry;
    struct loop_timer *watch; /* idle check and JSON pings */
    struct op_task *opening;  /* on_open while it runs */
    unsigned failures;         /* connections in a row that took no message */
    unsigned message_failures; /* on_message calls in a row that failed */
    bool delivered;            /* on_message succeeded on this connection */
    bool closed_for_failures;  /* we closed it: on_message kept failing */
    bool carried;              /* an on_message of this version emitted */
    uint64_t last_message_ms; /* loop time */
    uint64_t last_ping_ms;
    uint64_t dropped_seen; /* the connection's oversize count already added */
    uint64_t rng;
};

static void stream_connect(struct op_stream *s);

/* Pushes stream.<name> (a function or nil) onto L. */
static int push_stream_fn(struct operator *op, lua_State *L, const char *name)
{
    lua_rawgeti(op->L, LUA_REGISTRYINDEX, op->table_ref);
    lua_getfield(op->L, -1, "stream");
    lua_getfield(op->L, -1, name);
    lua_remove(op->L, -2);
    lua_remove(op->L, -2);
    if (L != op->L) {
        lua_xmove(op->L, L, 1);
    }
    return lua_type(L, -1);
}

static void push_ref(struct operator *op, lua_State *L, int ref)
{
    lua_rawgeti(op->L, LUA_REGISTRYINDEX, ref);
    if (L != op->L) {
        lua_xmove(op->L, L, 1);
    }
}

static double stream_number(struct operator *op, const char *name, double dflt)
{
    lua_rawgeti(op->L, LUA_REGISTRYINDEX, op->table_ref);
    lua_getfield(op->L, -1, "stream");
    lua_getfield(op->L, -1, name);
    double v = lua_isnumber(op->L, -1) ? lua_tonumber(op->L, -1) : dflt;
    lua_pop(op->L, 3);
    return v;
}

static void count_open(struct operator *op)
{
    int open = 0;
    for (struct op_stream *s = op->streams; s; s = s->next) {
        open += s->ws_ref != LUA_NOREF;
    }
    op->streams_open = open;
}

static void schedule_retry(struct op_stream *s)
{
    struct operator *op = s->op;
    if (op->freeing) {
        return;
    }
    s->failures++;
    uint64_t delay =
        backoff_delay_ms(s->failures, RECONNECT_BASE_MS, RECONNECT_CAP_MS, RECONNECT_JITTER, &s->rng);
    loop_timer_start(s->retry, delay, 0);
}

/* A plain protected call of stream.<name>(x, args...) that may not wait,
 * under the operator's message time limit. false when it failed (err then
 * holds why); a missing callback succeeds. */
static bool call_plain(struct op_stream *s, const char *name, int nargs_after_fn, char *err,
                       size_t errlen)
{
    struct operator *op = s->op;
    int base = lua_gettop(op->L) - nargs_after_fn;

    if (push_stream_fn(op, op->L, name) != LUA_TFUNCTION) {
        lua_settop(op->L, base);
        return true;
    }
    lua_insert(op->L, base + 1);
    op->emit_source = TICKER_SOURCE_STREAM;
    sandbox_set_time_limit(op->L, op->spec.message_ms);
    bool ok = sandbox_pcall(op->L, nargs_after_fn, 0, err, errlen) == SANDBOX_OK;
    if (!ok) {
        char what[48];
        snprintf(what, sizeof what, "stream.%s()", name);
        op_record_error(op, what, err);
    }
    lua_settop(op->L, base);
    return ok;
}

static void on_ws_open(struct ws_conn *conn, void *data);
static void on_ws_message(struct ws_conn *conn, const char *msg, size_t len, bool binary,
                          void *data);
static void on_ws_close(struct ws_conn *conn, int code, const char *reason, void *data);

static void opened_done(struct op_task *task, int ok, const char *err, void *data)
{
    struct op_stream *s = data;
    s->opening = NULL;
    op_task_free(task);
    if (!ok) {
        op_record_error(s->op, "stream.on_open()", err);
        if (s->conn) {
            ws_conn_close(s->conn, 1011, "on_open failed");
        }
    }
}

static void on_ws_open(struct ws_conn *conn, void *data)
{
    struct op_stream *s = data;
    struct operator *op = s->op;

    op_ws_push(op->L, op, conn);
    s->ws_ref = luaL_ref(op->L, LUA_REGISTRYINDEX);
    s->delivered = false;
    s->dropped_seen = 0;
    s->last_message_ms = s->last_ping_ms = loop_now_ms(op->env.loop);
    count_open(op);
    log_info(op->component, "stream %d connected", s->index);
    struct op_task *task = op_task_new(op, "stream.on_open()", opened_done, s);
    if (push_stream_fn(op, task->co, "on_open") != LUA_TFUNCTION) {
        op_task_free(task);
        return;
    }
    s->opening = task;
    task->source = TICKER_SOURCE_STREAM;
    lua_rawgeti(op->L, LUA_REGISTRYINDEX, op->x_ref);
    lua_xmove(op->L, task->co, 1);
    push_ref(op, task->co, s->ws_ref);
    push_ref(op, task->co, s->conn_ref);
    op_task_run(task, 3);
}

static void on_ws_message(struct ws_conn *conn, const char *msg, size_t len, bool binary,
                          void *data)
{
    struct op_stream *s = data;
    struct operator *op = s->op;

    char err[512];

    s->last_message_ms = loop_now_ms(op->env.loop);
    op->facts.stream_messages++;
    if (op->env.on_traffic) {
        struct op_traffic ev = {.kind = OP_TRAFFIC_WS_IN, .url = s->url, .stream = s->index,
                                .data = msg, .len = len, .binary = binary};
        op->env.on_traffic(op, &ev, op->env.ctx);
    }
    if (!lua_checkstack(op->L, 6)) {
        return;
    }
    lua_rawgeti(op->L, LUA_REGISTRYINDEX, op->x_ref);
    push_ref(op, op->L, s->ws_ref);
    lua_pushlstring(op->L, msg, len);
    push_ref(op, op->L, s->conn_ref);
    uint64_t attempts = op->facts.emit_attempts;
    bool ok = call_plain(s, "on_message", 4, err, sizeof err);
    op->facts.stream_taken += op->facts.emit_attempts != attempts;
    if (op->facts.emit_attempts != attempts && !s->carried) {
        s->carried = true;
        op_warm_check(op);
    }
    if (ok) {
        s->message_failures = 0;
        if (!s->delivered) {
            s->delivered = true;
            s->failures = 0;
        }
        return;
    }
    if (++s->message_failures >= MESSAGE_FAILURES_MAX && s->conn) {
        char why[640];
        snprintf(why, sizeof why, "stream %d: on_message failed %u times in a row (%.*s); "
                 "reopening it with backoff", s->index, s->message_failures,
                 (int)strcspn(err, "\n"), err);
        op_record_error(op, "stream", why);
        s->message_failures = 0;
        s->closed_for_failures = true;
        ws_conn_close(s->conn, 1011, "on_message keeps failing");
    }
}

static void on_ws_close(struct ws_conn *conn, int code, const char *reason, void *data)
{
    struct op_stream *s = data;
    struct operator *op = s->op;
    struct ws_conn_stats st;

    ws_conn_stats(conn, &st);
    if (st.dropped_oversize > s->dropped_seen) {
        op->facts.frames_dropped += st.dropped_oversize - s->dropped_seen;
    }
    s->conn = NULL;
    if (s->ws_ref != LUA_NOREF) {
        push_ref(op, op->L, s->ws_ref);
        op_ws_detach(op->L, -1);
        lua_pop(op->L, 1);
        luaL_unref(op->L, LUA_REGISTRYINDEX, s->ws_ref);
        s->ws_ref = LUA_NOREF;
    }
    if (s->opening) {
        op_task_free(s->opening);
        s->opening = NULL;
    }
    count_open(op);
    if (op->freeing) {
        return;
    }
    char msg[256];
    if (s->closed_for_failures) {
        /* The reason already says why we closed it; keep it shown. */
        s->closed_for_failures = false;
        log_warn(op->component, "stream %d closed by the engine; reconnecting", s->index);
    } else {
        log_warn(op->component, "stream %d closed (%d %s); reconnecting", s->index, code, reason);
        snprintf(msg, sizeof msg, "stream %d closed: %d %s", s->index, code, reason);
        op_record_error(op, "stream", msg);
    }
    lua_rawgeti(op->L, LUA_REGISTRYINDEX, op->x_ref);
    push_ref(op, op->L, s->conn_ref);
    lua_pushinteger(op->L, code);
    lua_pushstring(op->L, reason);
    call_plain(s, "on_close", 4, msg, sizeof msg);
    schedule_retry(s);
}

static void on_retry(struct loop_timer *t, void *data)
{
    stream_connect(data);
}

/* Idle detection and JSON pings share one timer per stream. */
static void on_watch(struct loop_timer *t, void *data)
{
    struct op_stream *s = data;
    struct operator *op = s->op;
    uint64_t now = loop_now_ms(op->env.loop);
    uint64_t idle_ms = (uint64_t)(op->spec.idle_timeout * 1000.0);
    uint64_t ping_ms = (uint64_t)(stream_number(op, "ping_every", 0) * 1000.0);

    if (s->ws_ref == LUA_NOREF || !s->conn) {
        return;
    }
    struct ws_conn_stats st;
    ws_conn_stats(s->conn, &st);
    if (st.dropped_oversize > s->dropped_seen) {
        op->facts.frames_dropped += st.dropped_oversize - s->dropped_seen;
        s->dropped_seen = st.dropped_oversize;
    }
    if (now - s->last_message_ms > idle_ms) {
        char msg[96];
        snprintf(msg, sizeof msg, "no message for %.0f s", op->spec.idle_timeout);
        op_record_error(op, "stream idle", msg);
        ws_conn_close(s->conn, 4000, "idle timeout");
        return;
    }
    if (ping_ms && now - s->last_ping_ms >= ping_ms) {
        s->last_ping_ms = now;
        char err[512];
        lua_rawgeti(op->L, LUA_REGISTRYINDEX, op->x_ref);
        push_ref(op, op->L, s->ws_ref);
        call_plain(s, "on_ping", 2, err, sizeof err);
    }
}

static void stream_connect(struct op_stream *s)
{
    struct operator *op = s->op;
    char err[256];

    push_ref(op, op->L, s->conn_ref);
    lua_getfield(op->L, -1, "url");
    const char *url = lua_tostring(op->L, -1);
    bool json_ping = false;
    if (url && !s->url) {
        s->url = xstrdup(url);
    }
    if (push_stream_fn(op, op->L, "on_ping") == LUA_TFUNCTION) {
        json_ping = true;
    }
    lua_pop(op->L, 1);
    double ping_every = stream_number(op, "ping_every", 0);
    struct ws_conn_options opts = {
        .url = url,
        .max_message_bytes = op->max_frame_bytes > 0 ? (size_t)op->max_frame_bytes
                                                     : DEFAULT_MAX_MESSAGE,
        .ping_every_ms = json_ping ? 0 : (uint64_t)(ping_every * 1000.0),
    };
    static const struct ws_conn_callbacks cb = {on_ws_open, on_ws_message, on_ws_close};
    if (!url || !op_url_allowed(op, url)) {
        snprintf(err, sizeof err, "stream %d: url %s is not one of the operator's hosts",
                 s->index, url ? url : "(none)");
        s->conn = NULL;
    } else {
        s->conn = ws_conn_open(op->env.ws, &opts, &cb, s, err, sizeof err);
    }
    lua_pop(op->L, 2);
    if (!s->conn) {
        op_record_error(op, "stream", err);
        schedule_retry(s);
    }
}

static void connections_done(struct op_task *task, int ok, const char *err, void *data)
{
    struct operator *op = data;
    char msg[512];

    snprintf(msg, sizeof msg, "%s", err ? err : "");
    op->connections_task = NULL;
    op->connections_returned = true;
    if (ok && !lua_istable(task->co, -1)) {
        ok = 0;
        snprintf(msg, sizeof msg, "must return a list of {url = ...}");
    }
    if (!ok) {
        op_task_free(task);
        op_record_error(op, "stream.connections()", msg);
        op_warm_check(op);
        return;
    }
    lua_xmove(task->co, op->L, 1);
    op_task_free(task);
    int list = lua_gettop(op->L);
    lua_Integer n = luaL_len(op->L, list);
    for (lua_Integer i = n; i >= 1 && i <= OP_MAX_STREAMS; i--) {
        if (lua_geti(op->L, list, i) != LUA_TTABLE) {
            lua_pop(op->L, 1);
            continue;
        }
        struct op_stream *s = xcalloc(1, sizeof *s);
        s->op = op;
        s->index = (int)i;
        s->conn_ref = luaL_ref(op->L, LUA_REGISTRYINDEX);
        s->ws_ref = LUA_NOREF;
        s->rng = (uint64_t)(uintptr_t)s ^ (uint64_t)loop_wall_ms();
        s->retry = loop_timer_new(op->env.loop, on_retry, s);
        s->watch = loop_timer_new(op->env.loop, on_watch, s);
        loop_timer_start(s->watch, 250, 250);
        s->next = op->streams;
        op->streams = s;
    }
    lua_settop(op->L, list - 1);
    for (struct op_stream *s = op->streams; s; s = s->next) {
        stream_connect(s);
    }
    op_warm_check(op);
}

bool op_streams_carried(const struct operator *op)
{
    if (!op->connections_returned) {
        return false;
    }
    for (const struct op_stream *s = op->streams; s; s = s->next) {
        if (!s->carried) {
            return false;
        }
    }
    return true;
}

void op_stream_sent(struct operator *op, struct ws_conn *conn, const char *msg, size_t len,
                    bool binary)
{
    if (!op || !op->env.on_traffic) {
        return;
    }
    struct op_stream *s = op->streams;
    while (s && s->conn != conn) {
        s = s->next;
    }
    struct op_traffic ev = {.kind = OP_TRAFFIC_WS_OUT, .url = s ? s->url : NULL,
                            .stream = s ? s->index : 0, .data = msg, .len = len,
                            .binary = binary};
    op->env.on_traffic(op, &ev, op->env.ctx);
}

void op_streams_start(struct operator *op)
{
    if (!op->spec.has_stream || op->streams || op->connections_task || !op->env.ws) {
        return;
    }
    struct op_task *task = op_task_new(op, "stream.connections()", connections_done, op);
    op->connections_task = task;
    push_stream_fn(op, task->co, "connections");
    lua_rawgeti(op->L, LUA_REGISTRYINDEX, op->x_ref);
    lua_xmove(op->L, task->co, 1);
    push_ref(op, task->co, op->markets_ref);
    if (lua_isnil(task->co, -1)) {
        lua_pop(task->co, 1);
        lua_newtable(task->co);
    }
    op_task_run(task, 2);
}

void op_streams_free(struct operator *op)
{
    while (op->streams) {
        struct op_stream *s = op->streams;
        op->streams = s->next;
        loop_timer_free(s->retry);
        loop_timer_free(s->watch);
        if (s->conn) {
            /* on_close runs later and finds nothing: cut the link now. */
            ws_conn_abandon(s->conn);
        }
        if (s->ws_ref != LUA_NOREF) {
            push_ref(op, op->L, s->ws_ref);
            op_ws_detach(op->L, -1);
            lua_pop(op->L, 1);
        }
        free(s->url);
        free(s);
    }
}
