/*
 * engine_redis: the ingest side's Redis parts, wired by role (DESIGN 7).
 *
 *   role      writer  leases  reader                  operators
 *   all       yes     yes     others' exchanges       gated by leases
 *   scraper   yes     yes     no (it serves no rates) gated by leases
 *   api       no      no      everything, statuses    none
 *
 * With the memory store there is none of this: the operators run as they
 * load. Order at start: the writer's warm start (memory gets the last
 * known state), then the registry (every file in standby), the leases and
 * the reader. On a clean stop the leases are released before the ingest
 * loop ends, so another node takes over at once.
 *
 * Threads: the ingest loop for every hook; engine_redis_new and
 * engine_redis_start run before its thread exists.
 */
#include "engine_int.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/mailbox.h"
#include "operator/operators.h"
#include "store/board.h"
#include "store/changes.h"
#include "store/redis_lease.h"
#include "store/redis_reader.h"
#include "store/redis_writer.h"
#include "store/store.h"

/* ---- the writer's hooks ------------------------------------------------------------ */

/* The warm start is over: the registry (gated when there are leases), then
 * the leases and the reader. */
static void on_loaded(void *arg)
{
    struct engine *e = arg;
    operators_start(e->operators);
    if (e->leases) {
        redis_lease_start(e->leases);
    }
    if (e->reader) {
        redis_reader_start(e->reader);
    }
}

static bool runs_here(const char *exchange, void *arg)
{
    struct engine *e = arg;
    return operators_has(e->operators, exchange);
}

static void on_expired(const char *exchange, void *arg)
{
    struct engine *e = arg;
    store_remove_exchange(e->store, exchange);
    changes_put_removed(e->changes, exchange);
}

static bool may_write(const char *exchange, uint64_t *deadline_ms, void *arg)
{
    struct engine *e = arg;
    return redis_lease_held(e->leases, exchange, deadline_ms);
}

/* ---- the leases' hooks ---------------------------------------------------------- */

static size_t lease_names(char (*out)[TICKER_EXCHANGE_MAX], size_t cap, void *arg)
{
    struct engine *e = arg;
    return operators_names(e->operators, out, cap);
}

static void lease_sync(const char *exchange, void (*done)(bool ok, void *done_arg), void *done_arg,
                       void *arg)
{
    struct engine *e = arg;
    redis_writer_sync(e->redis, exchange, done, done_arg);
}

static void lease_acquired(const char *exchange, void *arg)
{
    struct engine *e = arg;
    redis_writer_owned(e->redis, exchange);
    operators_activate(e->operators, exchange);
}

static void lease_diverged(const char *exchange, void *arg)
{
    struct engine *e = arg;
    store_remove_exchange(e->store, exchange);
    changes_put_removed(e->changes, exchange);
    redis_reader_refresh(e->reader, exchange);
}

static void lease_standby(const char *exchange, const char *holder, void *arg)
{
    struct engine *e = arg;
    operators_standby(e->operators, exchange, holder);
}

/* ---- the reader's hooks --------------------------------------------------------- */

static void read_tickers(const struct ticker *t, const bool *changed, size_t n, void *arg)
{
    struct engine *e = arg;
    changes_put_tickers(e->changes, t, changed, n);
}

static void read_status(const char *exchange, const char *state, const char *reason, void *arg)
{
    struct engine *e = arg;
    changes_put_status(e->changes, exchange, state, reason);
}

static void read_removed(const char *exchange, void *arg)
{
    struct engine *e = arg;
    changes_put_removed(e->changes, exchange);
}

static bool scraped_here(const char *exchange, void *arg)
{
    struct engine *e = arg;
    uint64_t deadline;
    return e->leases && redis_lease_held(e->leases, exchange, &deadline);
}

static void read_synced(void *arg)
{
    struct engine *e = arg;
    if (e->cfg->role == CONFIG_ROLE_API) {
        board_set_loading(e->board, false);
    }
}

/* ---- life ------------------------------------------------------------------------ */

void engine_redis_new(struct engine *e)
{
    const struct config *cfg = e->cfg;
    bool api = cfg->role == CONFIG_ROLE_API;

    if (!cfg->redis.host) {
        return;
    }
    if (!api) {
        struct redis_writer_hooks w = {.loaded = on_loaded,
                                       .runs = runs_here,
                                       .expired = on_expired,
                                       .may_write = may_write,
                                       .arg = e};
        e->redis = redis_writer_new(e->ingest_loop, cfg, e->store, e->board, e->kv, &w);
        struct redis_lease_hooks l = {.names = lease_names,
                                      .sync = lease_sync,
                                      .acquired = lease_acquired,
                                      .standby = lease_standby,
                                      .diverged = lease_diverged,
                                      .arg = e};
        e->leases = redis_lease_new(e->ingest_loop, cfg, &l);
        operators_set_gated(e->operators, true);
    }
    if (cfg->role != CONFIG_ROLE_SCRAPER) {
        struct redis_reader_hooks r = {.tickers = read_tickers,
                                       .status = read_status,
                                       .removed = read_removed,
                                       .local = scraped_here,
                                       .synced = read_synced,
                                       .arg = e};
        e->reader = redis_reader_new(e->ingest_loop, cfg, e->store, e->board, api, &r);
    }
}

void engine_redis_start(struct engine *e)
{
    if (e->redis) {
        redis_writer_start(e->redis);
    } else if (e->reader) {
        /* An api node is not ready before its first load. */
        board_set_loading(e->board, true);
        redis_reader_start(e->reader);
    }
}

static void stop_loop(void *arg)
{
    loop_stop(arg);
}

static void release_then_stop(void *arg)
{
    struct engine *e = arg;
    redis_lease_release_all(e->leases, stop_loop, e->ingest_loop);
}

void engine_redis_stop(struct engine *e)
{
    mailbox_post(e->ingest_mail, e->leases ? release_then_stop : stop_loop,
                 e->leases ? (void *)e : (void *)e->ingest_loop);
}

void engine_redis_free(struct engine *e)
{
    redis_reader_free(e->reader);
    redis_lease_free(e->leases);
    redis_writer_free(e->redis);
}
