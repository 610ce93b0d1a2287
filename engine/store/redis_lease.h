/*
 * redis_lease: which exchanges this node scrapes when several nodes share
 * one Redis (DESIGN 7). An operator runs only while its node holds
 * rx:lease:{exchange} (value: the node_id):
 *
 *   taken      SET NX PX ttl; then the exchange's tickers and x.kv are read
 *              back (versions continue where the last holder's stopped),
 *              and only then does the operator start;
 *   renewed    every ttl/3, by a script that sets PEXPIRE only while the
 *              value is still this node's;
 *   given up   locally, at (last successful take or renewal, as sent) +
 *              ttl - ttl/5, if no renewal came back by then: the operator
 *              stops, and writes made under the lease are fenced by that
 *              same deadline (redis_lease_held, redis_conn_fence), so a
 *              node paused past its ttl writes nothing after it wakes;
 *   released   at once on a clean shutdown or when the file is removed, by
 *              a script that deletes the key only while it is this node's,
 *              so a planned restart leaves no gap.
 *
 * Fall back (role all only: it serves, so it must not go stale): when
 * Redis has been unreachable for a whole ttl, no lease anywhere can be
 * vouched for; this node then scrapes what it has no lease for, writing
 * none of it, until Redis is back and the leases decide again.
 *
 * Exchanges another node holds are in standby, with that node's id. The
 * deadlines use the loop's monotonic clock, so a wall-clock step changes
 * nothing; Redis' own expiry runs on its clock, and the margin covers the
 * network and the two clocks' rates.
 *
 * Threads: the ingest loop, for every function and callback.
 * Ownership: borrows the loop and config; owns its connection.
 */
#ifndef RX_REDIS_LEASE_H
#define RX_REDIS_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ticker.h"

struct config;
struct loop;
struct redis_lease;

struct redis_lease_hooks {
    /* The exchanges this node could scrape now (its operator files, minus
     * those disabled by config); up to cap, returns how many. */
    size_t (*names)(char (*out)[TICKER_EXCHANGE_MAX], size_t cap, void *arg);
    /* Bring the exchange up to date from Redis before it runs; done(ok)
     * (the Redis writer's redis_writer_sync). */
    void (*sync)(const char *exchange, void (*done)(bool ok, void *done_arg), void *done_arg,
                 void *arg);
    /* Ours and synced: run the operator. */
    void (*acquired)(const char *exchange, void *arg);
    /* Not ours: stop the operator, show standby; holder is the node that
     * holds the lease, "" when not known. Called whenever that changes. */
    void (*standby)(const char *exchange, const char *holder, void *arg);
    /* Scraped here while Redis was away (see fall back) and now another
     * node holds it: this node's versions of it are not comparable with
     * the holder's; drop them and read the holder's back. */
    void (*diverged)(const char *exchange, void *arg);
    void *arg;
};

struct redis_lease *redis_lease_new(struct loop *loop, const struct config *cfg,
                                    const struct redis_lease_hooks *hooks);
/* Drops the connection without releasing anything (see release_all).
 * NULL is a no-op. */
void redis_lease_free(struct redis_lease *l);

void redis_lease_start(struct redis_lease *l);

/* Whether this node holds the exchange's lease now, and until when (the
 * loop's monotonic ms) it may write under it. */
bool redis_lease_held(const struct redis_lease *l, const char *exchange, uint64_t *deadline_ms);

/* Clean shutdown: stops treating any lease as held (writes stop at once)
 * and deletes every key still this node's; done(arg) once Redis answered,
 * or after a second at most. */
void redis_lease_release_all(struct redis_lease *l, void (*done)(void *arg), void *arg);

#endif
