/*
 * api: the services the whole API reads, shared by the REST side (rest/)
 * and the WebSocket side (ws/).
 *
 * Everything here is borrowed: the engine owns it and it outlives the API.
 * What the API may read from other threads is built for many readers: the
 * store (lock-free), the board of operator statuses and markets (published
 * copies), the config (immutable while the API runs) and the gauges. The
 * API never sees Lua or the ingest loop's structures; REST work that needs
 * the ingest loop goes through the bridge (rest/ingest_bridge.h).
 */
#ifndef RX_API_H
#define RX_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct config;
struct store;
struct board;
struct rest_metrics;
struct ingest_bridge;
struct auth;
struct engine_stats;

/* Reloads every operator on the ingest loop (the admin route's job); done
 * gets 0 and the per-operator summary as JSON, or -EBUSY while another
 * reload runs. NULL on a node that runs no operators. */
typedef void (*api_reload_done_fn)(int status, const char *summary_json, void *data);
typedef void (*api_reload_fn)(void *owner, api_reload_done_fn done, void *data);

struct api_ctx {
    const struct config *cfg;
    struct store *store;
    struct board *board;                /* operator statuses and markets */
    struct rest_metrics *metrics;
    struct ingest_bridge *bridge;       /* REST jobs for the ingest loop */
    const struct engine_stats *engine;  /* loop lag gauges (core/engine_stats.h) */
    struct auth *auth;                  /* tokens (auth.h); rest_new creates one when NULL */
    api_reload_fn reload;               /* runs on the ingest loop; may be NULL */
    void *reload_owner;
    int64_t started_ms;
    atomic_bool draining;               /* set on shutdown: /readyz answers 503 */
};

#endif
