/*
 * engine_stats: process-wide gauges the loop threads write and the API's
 * /metrics reads (relaxed atomics: each value stands alone).
 *
 * Each loop has a probe (loop_probe.h) writing its own struct loop_gauges;
 * the API loop's probe tick also copies the subscription server's counters
 * and the change feed's, which may be read on that loop only.
 */
#ifndef RX_ENGINE_STATS_H
#define RX_ENGINE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* One loop thread: how late its probe timer fires (how long the loop was
 * busy with something else) and the thread's CPU time. */
struct loop_gauges {
    _Atomic int64_t lag_us_last;
    _Atomic int64_t lag_us_max;
    _Atomic uint64_t lag_over_100ms; /* ticks that came > 100 ms late */
    _Atomic uint64_t cpu_us;         /* the loop thread's CPU time */
};

struct engine_stats {
    struct loop_gauges ingest; /* operators, Lua, outbound connections */
    struct loop_gauges api;    /* front door, WebSocket server, fan-out */
    _Atomic uint64_t ws_connections;
    _Atomic uint64_t ws_messages_out;
    _Atomic uint64_t ws_conflated;
    _Atomic uint64_t ws_closed_1008;
    _Atomic uint64_t ws_queue_bytes;
    /* The change feed from ingest to the API loop (store/changes.h). */
    _Atomic uint64_t changes_put;
    _Atomic uint64_t changes_folded;
    _Atomic uint64_t changes_pending;
};

#endif
