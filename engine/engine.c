/*
 * engine: the story of a run — build both sides, run, take them down.
 *
 * engine_new builds the shared parts (store, board), the ingest side
 * (engine_ingest.c) and the API side (engine_api.c); engine_run starts the
 * operators and the ingest thread and runs the API loop on this thread
 * until SIGINT or SIGTERM. Signals are the API loop's: it stays responsive
 * whatever an operator does.
 *
 * Shutdown order matters. On SIGINT or SIGTERM /readyz turns 503, the
 * front door stops accepting and WebSocket clients get close 1001, with a
 * short grace for the close frames to leave; when the API loop returns, the
 * ingest loop is stopped and its thread joined, then the API side goes
 * (front door, subscription server, REST: no thread reads the store after
 * that), then the ingest side (operators first: they use the clients), and
 * last the shared parts.
 */
#include "engine.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "auth.h"
#include "config/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "engine_int.h"
#include "store/board.h"
#include "store/changes.h"
#include "store/store.h"

/* Time WebSocket clients get to receive their 1001 close before the loop
 * stops. */
#define CLOSE_GRACE_MS 200

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

static void on_grace_over(struct loop_timer *t, void *data)
{
    struct engine *e = data;
    loop_stop(e->api_loop);
}

static void on_shutdown(struct loop_signal *sig, int signum, void *data)
{
    struct engine *e = data;
    if (atomic_exchange(&e->api.draining, true)) {
        return;
    }
    log_info("engine", "signal %d: shutting down", signum);
    engine_api_drain(e);
    loop_timer_start(e->grace, CLOSE_GRACE_MS, 0);
}

/* SIGHUP: rotate tokens (re-read from the config; with none configured,
 * the token file's again) here, and reload operators on the ingest loop. */
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
    engine_ingest_reload(e);
}

struct engine *engine_new(struct config *cfg, char *err, size_t errlen)
{
    struct engine *e = xcalloc(1, sizeof *e);

    register_secrets(cfg);
    e->cfg = cfg;
    e->store = store_new();
    e->board = board_new();
    if (engine_ingest_new(e, err, errlen) != 0 || engine_api_new(e, err, errlen) != 0) {
        goto fail;
    }
    e->sigint = loop_signal_new(e->api_loop, SIGINT, on_shutdown, e);
    e->sigterm = loop_signal_new(e->api_loop, SIGTERM, on_shutdown, e);
    e->sighup = loop_signal_new(e->api_loop, SIGHUP, on_sighup, e);
    e->grace = loop_timer_new(e->api_loop, on_grace_over, e);
    return e;
fail:
    engine_free(e);
    return NULL;
}

int engine_run(struct engine *e)
{
    if (engine_ingest_start(e) < 0) {
        return 1;
    }
    loop_run(e->api_loop);
    engine_ingest_stop(e);
    return 0;
}

void engine_free(struct engine *e)
{
    if (!e) {
        return;
    }
    atomic_store(&e->api.draining, true);
    engine_ingest_stop(e);
    /* The teardowns below run the loops for their close handshakes: no
     * timer or signal of ours may fire into half-freed parts. */
    loop_timer_free(e->grace);
    loop_signal_free(e->sigint);
    loop_signal_free(e->sigterm);
    loop_signal_free(e->sighup);
    engine_api_free(e);
    engine_ingest_free(e);
    changes_free(e->changes);
    store_free(e->store);
    board_free(e->board);
    config_free(e->cfg);
    free(e);
}
