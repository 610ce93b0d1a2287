/*
 * engine_ingest: the ingest side — its loop and thread, the clients
 * operators reach exchanges with, the operator registry, and what the
 * operators tell the rest of the service.
 *
 * Operators write the store themselves (x.emit); what the API must hear of
 * (stored batches, state changes, removals) goes into the change feed,
 * flushed, and the API loop rung, once per loop iteration. Nothing here
 * waits for the API side, and the API side never calls in: it posts to the
 * ingest mailbox.
 */
#include "engine_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/loop_probe.h"
#include "core/mailbox.h"
#include "core/xalloc.h"
#include "net/http_client.h"
#include "net/ws_client.h"
#include "operator/operators.h"
#include "store/changes.h"
#include "store/kv.h"
#include "store/redis_writer.h"

/* op_env callbacks, on the ingest loop: into the change feed, and with a
 * Redis store into the writer (it is NULL without one). */
static void on_batch(struct operator *op, const struct ticker *t, const bool *changed, size_t n,
                     void *ctx)
{
    struct engine *e = ctx;
    changes_put_tickers(e->changes, t, changed, n);
    redis_writer_batch(e->redis, t, changed, n);
}

static void on_status(const char *exchange, const char *state, const char *reason, void *ctx)
{
    struct engine *e = ctx;
    changes_put_status(e->changes, exchange, state, reason);
    redis_writer_status(e->redis, exchange, state, reason);
}

static void on_removed(const char *exchange, void *ctx)
{
    struct engine *e = ctx;
    changes_put_removed(e->changes, exchange);
    redis_writer_removed(e->redis, exchange);
}

static void on_markets(const char *exchange, const struct board_market *m, size_t n, void *ctx)
{
    struct engine *e = ctx;
    redis_writer_markets(e->redis, exchange, m, n);
}

/* What the iteration's callbacks put reaches the API loop; a doorbell the
 * feed held back (rung too recently) rings from a timer if no iteration
 * comes first. */
static void flush_changes(struct engine *e)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t again = changes_flush(e->changes, (uint64_t)now.tv_sec * 1000000u +
                                                  (uint64_t)now.tv_nsec / 1000u);
    if (again > 0) {
        loop_timer_start(e->ingest_flush_again, (uint64_t)(again + 999) / 1000, 0);
    }
}

static void on_iteration(struct loop_check *check, void *arg)
{
    struct engine *e = arg;
    redis_writer_flush(e->redis);
    flush_changes(e);
}

static void on_flush_again(struct loop_timer *timer, void *arg)
{
    flush_changes(arg);
}

/* What scrapes: the clients operators use, and the registry. */
static int operators_side_new(struct engine *e, char *err, size_t errlen)
{
    const struct config *cfg = e->cfg;
    size_t n = strlen(cfg->operators_dir) + 8;
    struct http_client_options http = {.ca_file = cfg->ca_file, .proxy = cfg->proxy};
    e->http = http_client_new(e->ingest_loop, &http);
    if (!e->http) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return -1;
    }
    struct ws_client_options ws = {.ca_file = cfg->ca_file, .proxy = cfg->proxy};
    e->ws = ws_client_new(e->ingest_loop, &ws, err, errlen);
    if (!e->ws) {
        return -1;
    }
    e->lib_dir = xmalloc(n);
    snprintf(e->lib_dir, n, "%s/lib", cfg->operators_dir);
    struct op_env env = {
        .loop = e->ingest_loop,
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
        .on_markets = on_markets,
        .ctx = e,
    };
    e->operators = operators_new(&env, cfg->operators_dir);
    return 0;
}

int engine_ingest_new(struct engine *e, char *err, size_t errlen)
{
    const struct config *cfg = e->cfg;

    e->ingest_loop = loop_new();
    if (!e->ingest_loop) {
        snprintf(err, errlen, "cannot initialise the ingest event loop");
        return -1;
    }
    e->ingest_mail = mailbox_new(e->ingest_loop);
    e->kv = kv_new();
    if (cfg->role != CONFIG_ROLE_API) {
        if (operators_side_new(e, err, errlen) != 0) {
            return -1;
        }
    }
    engine_redis_new(e);
    e->ingest_probe = loop_probe_new(e->ingest_loop, &e->stats.ingest, NULL, NULL);
    e->ingest_flush = loop_check_new(e->ingest_loop, on_iteration, e);
    e->ingest_flush_again = loop_timer_new(e->ingest_loop, on_flush_again, e);
    return 0;
}

static void *ingest_main(void *arg)
{
    struct engine *e = arg;
    loop_run(e->ingest_loop);
    return NULL;
}

int engine_ingest_start(struct engine *e)
{
    /* The registry is set up before the thread exists, so its loop is
     * touched by one thread at a time (pthread_create orders the two).
     * With Redis, the operators start once the warm start is over; an api
     * node has none. */
    if (e->operators) {
        DIR *d = opendir(e->cfg->operators_dir);
        if (!d) {
            log_error("engine", "cannot open operators_dir %s: %s", e->cfg->operators_dir,
                      strerror(errno));
            return -1;
        }
        closedir(d);
    }
    if (e->cfg->redis.host) {
        engine_redis_start(e);
    } else if (operators_start(e->operators) < 0) {
        return -1;
    }
    if (pthread_create(&e->ingest_thread, NULL, ingest_main, e) != 0) {
        log_error("engine", "cannot start the ingest thread");
        return -1;
    }
    e->ingest_running = true;
    return 0;
}

void engine_ingest_stop(struct engine *e)
{
    if (!e->ingest_running) {
        return;
    }
    /* With leases, they are released first (engine_redis.c). */
    engine_redis_stop(e);
    pthread_join(e->ingest_thread, NULL);
    e->ingest_running = false;
}

void engine_ingest_free(struct engine *e)
{
    /* The feed's flush goes first: the teardowns below run the loop, and
     * the API side's doorbell is gone by now. Unrun letters next:
     * ws_client_free runs the loop again, and a late reload must not find
     * the operators gone. */
    loop_check_free(e->ingest_flush);
    loop_timer_free(e->ingest_flush_again);
    mailbox_free(e->ingest_mail);
    loop_probe_free(e->ingest_probe);
    engine_redis_free(e);
    operators_free(e->operators);
    ws_client_free(e->ws);
    http_client_free(e->http);
    kv_free(e->kv);
    if (e->ingest_loop && loop_free(e->ingest_loop) != 0) {
        log_warn("engine", "the ingest loop closed with handles still open");
    }
    free(e->lib_dir);
}

/* ---- Reloads -------------------------------------------------------------- */

static void on_reload_done(int status, const char *summary, void *data)
{
    log_info("engine", "reload finished: %s", summary);
}

static void reload_now(void *arg)
{
    struct engine *e = arg;
    engine_ingest_reload_here(e, on_reload_done, e);
}

void engine_ingest_reload(struct engine *e)
{
    mailbox_post(e->ingest_mail, reload_now, e);
}

void engine_ingest_reload_here(void *owner, api_reload_done_fn done, void *data)
{
    struct engine *e = owner;
    if (!e->operators) {
        done(0, "{\"operators\":[]}", data); /* an api node scrapes nothing */
        return;
    }
    operators_reload_all(e->operators, done, data);
}
