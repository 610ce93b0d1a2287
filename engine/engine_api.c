/*
 * engine_api: the API side — its loop (the main thread's), the one port,
 * REST (libmicrohttpd's threads), WebSocket subscriptions, and the drain of
 * the change feed into them.
 *
 * Start order: auth (a generated token must exist before any thread
 * serves), REST, the WebSocket server, the front door (its port goes to
 * port_file). The feed's doorbell runs one fan-out pass for everything
 * that changed since the last one: under load many ingest batches fold
 * into one pass, and a key that changed twice is pushed once, at its
 * latest value.
 */
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/loop_probe.h"
#include "front_door.h"
#include "rest/ingest_bridge.h"
#include "rest/rest.h"
#include "rest/rest_metrics.h"
#include "store/changes.h"
#include "store/store.h"
#include "ws/ws_server.h"

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

/* The feed's wake function, on the ingest thread: ring the API loop. */
static void ring(void *arg)
{
    loop_async_send(arg);
}

/* The doorbell, on the API loop: one fan-out pass over what changed. */
static void on_changes(struct loop_async *async, void *data)
{
    struct engine *e = data;
    struct changes_taken *taken = &e->fanout;

    if (changes_take(e->changes, taken) == 0) {
        return;
    }
    ws_server_publish_changes(e->wss, taken->keys, taken->n_keys);
    for (size_t i = 0; i < taken->n_exchanges; i++) {
        const struct change_exchange *x = &taken->exchanges[i];
        if (x->removed) {
            ws_server_removed(e->wss, x->name);
        }
        if (x->status) {
            ws_server_status(e->wss, x->name, x->state, x->reason);
        }
    }
}

/* Every probe tick: the counters only this loop may read, for /metrics. */
static void on_api_tick(void *arg)
{
    struct engine *e = arg;
    struct engine_stats *s = &e->stats;
    struct ws_server_stats ws;
    struct changes_stats ch;

    ws_server_stats(e->wss, &ws);
    atomic_store_explicit(&s->ws_connections, ws.connections, memory_order_relaxed);
    atomic_store_explicit(&s->ws_messages_out, ws.messages_out, memory_order_relaxed);
    atomic_store_explicit(&s->ws_conflated, ws.conflated, memory_order_relaxed);
    atomic_store_explicit(&s->ws_closed_1008, ws.closed_1008, memory_order_relaxed);
    atomic_store_explicit(&s->ws_queue_bytes, ws.queue_bytes, memory_order_relaxed);
    changes_stats(e->changes, &ch);
    atomic_store_explicit(&s->changes_put, ch.keys_put, memory_order_relaxed);
    atomic_store_explicit(&s->changes_folded, ch.keys_folded, memory_order_relaxed);
    atomic_store_explicit(&s->changes_pending, ch.pending, memory_order_relaxed);
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

int engine_api_new(struct engine *e, char *err, size_t errlen)
{
    struct config *cfg = e->cfg;

    e->api_loop = loop_new();
    if (!e->api_loop) {
        snprintf(err, errlen, "cannot initialise the API event loop");
        return -1;
    }
    e->changes_bell = loop_async_new(e->api_loop, on_changes, e);
    e->changes = changes_new(ring, e->changes_bell);
    if (auth_prepare(cfg, err, errlen) < 0) {
        return -1;
    }
    e->api = (struct api_ctx){.cfg = cfg,
                              .store = e->store,
                              .board = e->board,
                              .engine = &e->stats,
                              .reload = engine_ingest_reload_here,
                              .reload_owner = e,
                              .started_ms = loop_wall_ms()};
    e->api.bridge = ingest_bridge_new(e->ingest_loop);
    e->api.metrics = rest_metrics_new();
    e->api.auth = auth_new(cfg);
    e->rest = rest_new(&e->api, err, errlen);
    if (!e->rest) {
        return -1;
    }
    e->wss = ws_server_new(e->api_loop, &e->api, err, errlen);
    if (!e->wss) {
        return -1;
    }
    struct front_door_limits lim = {.max_head_bytes = (size_t)cfg->limits.max_header_bytes,
                                    .head_timeout_ms = (uint64_t)cfg->limits.head_timeout_ms};
    /* A scraper serves no subscriptions: an upgrade goes to REST, which
     * answers it as any path a scraper does not serve (404). */
    bool scraper = cfg->role == CONFIG_ROLE_SCRAPER;
    struct front_door_ops ops = {.rest = on_rest, .ws = scraper ? on_rest : on_ws, .ctx = e};
    e->door =
        front_door_new(e->api_loop, cfg->listen_host, cfg->listen_port, &lim, &ops, err, errlen);
    if (!e->door) {
        return -1;
    }
    log_info("engine", "listening on %s:%d", cfg->listen_host, front_door_port(e->door));
    if (cfg->port_file &&
        write_port_file(cfg->port_file, front_door_port(e->door), err, errlen) != 0) {
        return -1;
    }
    e->api_probe = loop_probe_new(e->api_loop, &e->stats.api, on_api_tick, e);
    return 0;
}

void engine_api_drain(struct engine *e)
{
    front_door_stop_accepting(e->door);
    ws_server_shutdown(e->wss);
}

/* After the ingest thread stopped, before the ingest side is freed: REST
 * answers the requests suspended on the ingest bridge (503) and stops, so
 * no thread reads the store after this. */
void engine_api_free(struct engine *e)
{
    loop_probe_free(e->api_probe);
    front_door_free(e->door);
    /* Cleared first: a publish during its teardown's loop runs skips it. */
    struct ws_server *wss = e->wss;
    e->wss = NULL;
    ws_server_free(wss);
    loop_async_free(e->changes_bell);
    changes_taken_free(&e->fanout);
    rest_free(e->rest);
    ingest_bridge_free(e->api.bridge);
    rest_metrics_free(e->api.metrics);
    auth_free(e->api.auth);
    if (e->api_loop && loop_free(e->api_loop) != 0) {
        log_warn("engine", "the API loop closed with handles still open");
    }
}
