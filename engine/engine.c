/*
 * engine: wiring, signals and shutdown.
 *
 * Start: auth (a generated token must exist before any thread serves),
 * the REST server (libmicrohttpd threads), the front door on the one port
 * (its port goes to port_file), then the operators.
 *
 * Shutdown order matters. On SIGINT or SIGTERM /readyz turns 503, the
 * front door stops accepting and WebSocket clients get close 1001, with a
 * short grace for the close frames to leave; when the loop returns, the
 * front door, the subscription and REST servers go first (no thread reads
 * the store after that), then operators (they use the HTTP and WebSocket
 * clients and the store), the clients (they cancel what is in flight), the
 * loop (closing whatever handles remain) and last the store.
 */
#include "engine.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "rest/ingest_bridge.h"
#include "rest/rest_metrics.h"
#include "auth.h"
#include "config/config.h"
#include "core/engine_stats.h"
#include "front_door.h"
#include "net/http_client.h"
#include "store/kv.h"
#include "core/log.h"
#include "core/loop.h"
#include "operator/operators.h"
#include "rest/rest.h"
#include "store/board.h"
#include "store/store.h"
#include "net/ws_client.h"
#include "ws/ws_server.h"
#include "core/xalloc.h"

#define LAG_TICK_MS 100
/* Time WebSocket clients get to receive their 1001 close before the loop
 * stops. */
#define CLOSE_GRACE_MS 200

struct engine {
    struct config *cfg;
    struct loop *loop;
    struct store *store;
    struct board *board;
    struct kv *kv;
    struct http_client *http;
    struct operators *operators;
    struct loop_signal *sigint;
    struct loop_signal *sigterm;
    struct loop_signal *sighup;
    struct loop_timer *lag_timer;
    uint64_t lag_expected_ms;
    char *lib_dir;
    struct engine_stats stats;
    struct api_ctx api;
    struct rest *rest;
    struct front_door *door;
    struct ws_client *ws;      /* operators' outbound streams */
    struct ws_server *wss;     /* clients' subscriptions */
    struct loop_timer *grace;  /* shutdown: lets close frames go out */
};

static void on_rest(int fd, const struct sockaddr *addr, socklen_t len, void *ctx)
{
    struct engine *e = ctx;
    rest_add_connection(e->rest, fd, addr, len);
}

static void on_ws(int fd, const struct sockaddr *addr, socklen_t len, void *ctx)
{
    struct engine *e = ctx;
    ws_server_adopt(fd, addr, len, e->wss);
}

/* The emit path: every stored batch goes to the subscribers at once. */
static void on_batch(struct operator *op, const struct ticker *t, const bool *changed, size_t n,
                     void *ctx)
{
    struct engine *e = ctx;
    ws_server_publish_batch(e->wss, t, changed, n);
}

static void on_status(const char *exchange, const char *state, const char *reason, void *ctx)
{
    struct engine *e = ctx;
    if (e->wss) {
        ws_server_status(e->wss, exchange, state, reason);
    }
}

static void on_removed(const char *exchange, void *ctx)
{
    struct engine *e = ctx;
    if (e->wss) {
        ws_server_removed(e->wss, exchange);
    }
}

static void on_grace_over(struct loop_timer *t, void *data)
{
    struct engine *e = data;
    loop_stop(e->loop);
}

static void on_shutdown(struct loop_signal *sig, int signum, void *data)
{
    struct engine *e = data;
    if (atomic_exchange(&e->api.draining, true)) {
        return;
    }
    log_info("engine", "signal %d: shutting down", signum);
    front_door_stop_accepting(e->door);
    ws_server_shutdown(e->wss);
    loop_timer_start(e->grace, CLOSE_GRACE_MS, 0);
}

static void on_reload_done(int status, const char *summary, void *data)
{
    log_info("engine", "reload finished: %s", summary);
}

/* api_ctx.reload: the admin route's job, on the loop. */
static void reload_operators(void *owner, api_reload_done_fn done, void *data)
{
    struct engine *e = owner;
    operators_reload_all(e->operators, done, data);
}

/* Every token the config holds, registered with the log's redaction (a
 * token registered before stays registered). */
static void register_secrets(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_tokens; i++) {
        log_add_secret(cfg->tokens[i]);
    }
    for (size_t i = 0; i < cfg->n_admin_tokens; i++) {
        log_add_secret(cfg->admin_tokens[i]);
    }
}

/* Config keys that parse but that this build cannot honour yet: a config
 * must never promise what the binary does not do. */
static int not_built_yet(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->role != CONFIG_ROLE_ALL) {
        snprintf(err, errlen, "role: role = \"%s\" is not built yet; use role = \"all\"",
                 config_role_name(cfg->role));
        return -1;
    }
    if (cfg->redis.host) {
        snprintf(err, errlen, "store: the Redis store is not built yet; use store = \"memory\" "
                              "(and unset REDIS_URL)");
        return -1;
    }
    return 0;
}

/* SIGHUP: rotate tokens (re-read from the config; with none configured,
 * the token file's again) and reload operators. */
static void on_sighup(struct loop_signal *sig, int signum, void *data)
{
    struct engine *e = data;
    char err[512];

    if (config_reload_tokens(NULL, e->cfg, err, sizeof err) == 0 &&
        auth_prepare(e->cfg, err, sizeof err) == 0) {
        register_secrets(e->cfg);
        auth_set_tokens(e->api.auth, e->cfg);
        log_info("engine", "SIGHUP: tokens re-read from %s", e->cfg->path);
    } else {
        log_error("engine", "SIGHUP: tokens kept: %s", err);
    }
    log_info("engine", "SIGHUP: reloading operators");
    operators_reload_all(e->operators, on_reload_done, e);
}

/* How late a repeating timer fires is how long the loop was busy. The tick
 * also publishes the subscription server's counters for /metrics. */
static void on_lag_tick(struct loop_timer *t, void *data)
{
    struct engine *e = data;
    uint64_t now = loop_now_ms(e->loop);
    int64_t lag_us = now > e->lag_expected_ms ? (int64_t)(now - e->lag_expected_ms) * 1000 : 0;

    atomic_store_explicit(&e->stats.loop_lag_us_last, lag_us, memory_order_relaxed);
    if (lag_us > atomic_load_explicit(&e->stats.loop_lag_us_max, memory_order_relaxed)) {
        atomic_store_explicit(&e->stats.loop_lag_us_max, lag_us, memory_order_relaxed);
    }
    if (lag_us > 100000) {
        atomic_fetch_add_explicit(&e->stats.loop_lag_over_100ms, 1, memory_order_relaxed);
    }
    e->lag_expected_ms = now + LAG_TICK_MS;
    if (e->wss) {
        struct ws_server_stats ws;
        ws_server_stats(e->wss, &ws);
        atomic_store_explicit(&e->stats.ws_connections, ws.connections, memory_order_relaxed);
        atomic_store_explicit(&e->stats.ws_messages_out, ws.messages_out, memory_order_relaxed);
        atomic_store_explicit(&e->stats.ws_conflated, ws.conflated, memory_order_relaxed);
        atomic_store_explicit(&e->stats.ws_closed_1008, ws.closed_1008, memory_order_relaxed);
        atomic_store_explicit(&e->stats.ws_queue_bytes, ws.queue_bytes, memory_order_relaxed);
    }
}

/* Written to a temporary name and renamed, so a reader never sees half. */
static int write_port_file(const char *path, int port, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "port_file %s: cannot write it", path);
        return -1;
    }
    return 0;
}

static int start_api(struct engine *e, char *err, size_t errlen)
{
    struct config *cfg = e->cfg;

    if (auth_prepare(cfg, err, errlen) < 0) {
        return -1;
    }
    e->api = (struct api_ctx){.cfg = cfg,
                              .store = e->store,
                              .board = e->board,
                              .engine = &e->stats,
                              .reload = reload_operators,
                              .reload_owner = e,
                              .started_ms = loop_wall_ms()};
    e->api.bridge = ingest_bridge_new(e->loop);
    e->api.metrics = rest_metrics_new();
    e->api.auth = auth_new(cfg);
    e->rest = rest_new(&e->api, err, errlen);
    if (!e->rest) {
        return -1;
    }
    e->wss = ws_server_new(e->loop, &e->api, err, errlen);
    if (!e->wss) {
        return -1;
    }
    struct front_door_limits lim = {.max_head_bytes = (size_t)cfg->limits.max_header_bytes,
                                    .head_timeout_ms = (uint64_t)cfg->limits.head_timeout_ms};
    struct front_door_ops ops = {.rest = on_rest, .ws = on_ws, .ctx = e};
    e->door = front_door_new(e->loop, cfg->listen_host, cfg->listen_port, &lim, &ops, err, errlen);
    if (!e->door) {
        return -1;
    }
    log_info("engine", "listening on %s:%d", cfg->listen_host, front_door_port(e->door));
    if (cfg->port_file &&
        write_port_file(cfg->port_file, front_door_port(e->door), err, errlen) != 0) {
        return -1;
    }
    return 0;
}

struct engine *engine_new(struct config *cfg, char *err, size_t errlen)
{
    struct engine *e = xcalloc(1, sizeof *e);
    size_t n = strlen(cfg->operators_dir) + 8;

    register_secrets(cfg);
    e->cfg = cfg;
    if (not_built_yet(cfg, err, errlen) != 0) {
        goto fail;
    }
    e->loop = loop_new();
    e->store = store_new();
    e->board = board_new();
    e->kv = kv_new();
    struct http_client_options http = {.ca_file = cfg->ca_file, .proxy = cfg->proxy};
    e->http = e->loop ? http_client_new(e->loop, &http) : NULL;
    if (!e->loop || !e->http) {
        snprintf(err, errlen, "cannot initialise the event loop or libcurl");
        goto fail;
    }
    struct ws_client_options ws = {.ca_file = cfg->ca_file, .proxy = cfg->proxy};
    e->ws = ws_client_new(e->loop, &ws, err, errlen);
    if (!e->ws) {
        goto fail;
    }
    e->lib_dir = xmalloc(n);
    snprintf(e->lib_dir, n, "%s/lib", cfg->operators_dir);
    struct op_env env = {
        .loop = e->loop,
        .store = e->store,
        .board = e->board,
        .http = e->http,
        .kv = e->kv,
        .ws = e->ws,
        .config = cfg,
        .lib_dir = e->lib_dir,
        .on_batch = on_batch,
        .on_status = on_status,
        .on_removed = on_removed,
        .ctx = e,
    };
    e->operators = operators_new(&env, cfg->operators_dir);
    if (start_api(e, err, errlen) != 0) {
        goto fail;
    }
    e->sigint = loop_signal_new(e->loop, SIGINT, on_shutdown, e);
    e->sigterm = loop_signal_new(e->loop, SIGTERM, on_shutdown, e);
    e->sighup = loop_signal_new(e->loop, SIGHUP, on_sighup, e);
    e->grace = loop_timer_new(e->loop, on_grace_over, e);
    e->lag_timer = loop_timer_new(e->loop, on_lag_tick, e);
    e->lag_expected_ms = loop_now_ms(e->loop) + LAG_TICK_MS;
    loop_timer_start(e->lag_timer, LAG_TICK_MS, LAG_TICK_MS);
    return e;
fail:
    engine_free(e);
    return NULL;
}

int engine_run(struct engine *e)
{
    if (operators_start(e->operators) < 0) {
        return 1;
    }
    loop_run(e->loop);
    return 0;
}

void engine_free(struct engine *e)
{
    if (!e) {
        return;
    }
    atomic_store(&e->api.draining, true);
    /* ws_server_free and ws_client_free run the loop for their close
     * handshakes: no timer or signal of ours may fire into half-freed
     * parts. */
    loop_timer_free(e->lag_timer);
    loop_timer_free(e->grace);
    loop_signal_free(e->sigint);
    loop_signal_free(e->sigterm);
    loop_signal_free(e->sighup);
    front_door_free(e->door);
    /* Cleared first: emits during the teardown's loop runs skip it. */
    struct ws_server *wss = e->wss;
    e->wss = NULL;
    ws_server_free(wss);
    rest_free(e->rest);
    operators_free(e->operators);
    ws_client_free(e->ws);
    ingest_bridge_free(e->api.bridge);
    rest_metrics_free(e->api.metrics);
    auth_free(e->api.auth);
    http_client_free(e->http);
    kv_free(e->kv);
    if (e->loop && loop_free(e->loop) != 0) {
        log_warn("engine", "event loop closed with handles still open");
    }
    store_free(e->store);
    board_free(e->board);
    config_free(e->cfg);
    free(e->lib_dir);
    free(e);
}
