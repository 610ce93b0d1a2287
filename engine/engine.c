/*
 * engine: wiring and shutdown.
 *
 * Shutdown order matters: operators first (they use the HTTP client and
 * the store), then the HTTP client (it cancels what is in flight), then the
 * loop, which closes whatever handles remain, and last the store, which
 * other threads may read until the API is stopped.
 */
#include "engine.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http_client.h"
#include "kv.h"
#include "log.h"
#include "loop.h"
#include "operators.h"
#include "store.h"
#include "xalloc.h"

struct engine {
    struct config *cfg;
    struct loop *loop;
    struct store *store;
    struct kv *kv;
    struct http_client *http;
    struct operators *operators;
    struct loop_signal *sigint;
    struct loop_signal *sigterm;
    struct loop_signal *sighup;
    char *lib_dir;
};

static void on_shutdown(struct loop_signal *sig, int signum, void *data)
{
    struct engine *e = data;
    log_info("engine", "signal %d: shutting down", signum);
    loop_stop(e->loop);
}

static void on_reload_done(const char *summary, void *data)
{
    log_info("engine", "reload finished: %s", summary);
}

static void on_sighup(struct loop_signal *sig, int signum, void *data)
{
    struct engine *e = data;
    log_info("engine", "SIGHUP: reloading operators");
    operators_reload_all(e->operators, on_reload_done, e);
}

struct engine *engine_new(struct config *cfg, char *err, size_t errlen)
{
    struct engine *e = xcalloc(1, sizeof *e);
    size_t n = strlen(cfg->operators_dir) + 8;

    e->cfg = cfg;
    e->loop = loop_new();
    e->store = store_new();
    e->kv = kv_new();
    struct http_client_options http = {.ca_file = cfg->ca_file, .proxy = cfg->proxy};
    e->http = http_client_new(e->loop, &http);
    if (!e->loop || !e->http) {
        snprintf(err, errlen, "cannot initialise the event loop or libcurl");
        engine_free(e);
        return NULL;
    }
    e->lib_dir = xmalloc(n);
    snprintf(e->lib_dir, n, "%s/lib", cfg->operators_dir);
    struct op_env env = {
        .loop = e->loop,
        .store = e->store,
        .http = e->http,
        .kv = e->kv,
        .config = cfg,
        .lib_dir = e->lib_dir,
    };
    e->operators = operators_new(&env, cfg->operators_dir);
    e->sigint = loop_signal_new(e->loop, SIGINT, on_shutdown, e);
    e->sigterm = loop_signal_new(e->loop, SIGTERM, on_shutdown, e);
    e->sighup = loop_signal_new(e->loop, SIGHUP, on_sighup, e);
    return e;
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
    operators_free(e->operators);
    http_client_free(e->http);
    loop_signal_free(e->sigint);
    loop_signal_free(e->sigterm);
    loop_signal_free(e->sighup);
    kv_free(e->kv);
    if (loop_free(e->loop) != 0) {
        log_warn("engine", "event loop closed with handles still open");
    }
    store_free(e->store);
    config_free(e->cfg);
    free(e->lib_dir);
    free(e);
}
