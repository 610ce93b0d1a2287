/*
 * engine_int: the engine's parts, shared by the files that wire them:
 * engine.c (the story: start, run, signals, shutdown), engine_ingest.c (the
 * ingest side: its loop thread, operators and what they tell the API),
 * engine_redis.c (the ingest side's Redis parts, by role) and
 * engine_api.c (the API side: the port, REST, WebSocket and fan-out).
 *
 * Two loop threads, and who owns what (docs/architecture.md):
 *   ingest loop (its own thread)  operators and every lua_State, curl multi,
 *                                 the WebSocket client, kv, the registry
 *   API loop (the main thread)    signals, the front door, the WebSocket
 *                                 server and its sessions, fan-out
 *   libmicrohttpd's threads       REST handlers
 * Shared, built for it: the store and the board (many readers, one writer:
 * the ingest loop), the change feed (ingest -> API), the config (immutable;
 * its tokens are swapped on SIGHUP by the API loop and read only by auth),
 * the gauges (atomics). Work crosses between loops only through mailboxes:
 * SIGHUP's reload and the stop reach the ingest loop that way.
 */
#ifndef RX_ENGINE_INT_H
#define RX_ENGINE_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "api.h"
#include "core/engine_stats.h"
#include "store/changes.h"

struct board;
struct config;
struct front_door;
struct http_client;
struct kv;
struct loop;
struct loop_async;
struct loop_probe;
struct loop_signal;
struct loop_timer;
struct mailbox;
struct operators;
struct redis_lease;
struct redis_reader;
struct redis_writer;
struct rest;
struct store;
struct ws_client;
struct ws_server;

struct engine {
    struct config *cfg;
    struct store *store;
    struct board *board;
    struct changes *changes; /* ingest -> API */
    struct engine_stats stats;

    /* Ingest side (engine_ingest.c). */
    struct loop *ingest_loop;
    pthread_t ingest_thread;
    bool ingest_running;
    struct mailbox *ingest_mail; /* calls for the ingest loop */
    struct loop_probe *ingest_probe;
    struct loop_check *ingest_flush;       /* the change feed, once per iteration */
    struct loop_timer *ingest_flush_again; /* ... and once more after a held ring */
    struct kv *kv;
    struct http_client *http;
    struct ws_client *ws; /* operators' outbound streams */
    struct operators *operators;
    struct redis_writer *redis;   /* NULL with the memory store, and on api nodes */
    struct redis_lease *leases;   /* with the writer (scale-out) */
    struct redis_reader *reader;  /* other nodes' exchanges (api, all) */
    char *lib_dir;

    /* API side (engine_api.c). */
    struct loop *api_loop;
    struct loop_probe *api_probe;
    struct loop_async *changes_bell; /* the feed turned non-empty */
    struct changes_taken fanout;     /* what the last drain took (reused) */
    struct api_ctx api;
    struct rest *rest;
    struct front_door *door;
    struct ws_server *wss; /* clients' subscriptions */

    /* engine.c */
    struct loop_signal *sigint;
    struct loop_signal *sigterm;
    struct loop_signal *sighup;
    struct loop_timer *grace; /* shutdown: lets close frames go out */
};

/* engine_ingest.c */
int engine_ingest_new(struct engine *e, char *err, size_t errlen);
/* Loads the operators and starts the ingest thread; -1 when the operators
 * directory cannot be read. */
int engine_ingest_start(struct engine *e);
/* Main thread: asks the ingest loop to stop and joins its thread. */
void engine_ingest_stop(struct engine *e);
/* Main thread, after engine_ingest_stop and engine_api_free (which frees
 * the ingest bridge, so no REST job is left to run): frees what the ingest
 * side owns (operators first: they use the clients). */
void engine_ingest_free(struct engine *e);
/* Any thread: reload every operator on the ingest loop and log the
 * summary (SIGHUP). */
void engine_ingest_reload(struct engine *e);
/* api_ctx.reload: the same, on the ingest loop already (the admin route's
 * job runs there), answering through done. */
void engine_ingest_reload_here(void *owner, api_reload_done_fn done, void *data);

/* engine_redis.c: the Redis parts by role; all no-ops with the memory
 * store. new: before the ingest thread, after the registry; start: the
 * warm start (the registry, leases and reader follow it), or an api
 * node's reader; stop: main thread, asks the ingest loop to release its
 * leases and then end; free: with the ingest side. */
void engine_redis_new(struct engine *e);
void engine_redis_start(struct engine *e);
void engine_redis_stop(struct engine *e);
void engine_redis_free(struct engine *e);

/* engine_api.c */
int engine_api_new(struct engine *e, char *err, size_t errlen);
/* API loop: stop accepting, close WebSocket clients with 1001. */
void engine_api_drain(struct engine *e);
void engine_api_free(struct engine *e);

#endif
