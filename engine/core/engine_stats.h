/*
 * engine_stats: process-wide gauges the loop thread writes and the API's
 * /metrics reads (relaxed atomics: each value stands alone).
 *
 * Loop lag is measured by a 100 ms repeating timer: how late it fired is
 * how long the loop was busy with something else (a slow callback, a large
 * JSON decode). The same tick copies the subscription server's counters.
 */
#ifndef RX_ENGINE_STATS_H
#define RX_ENGINE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

struct engine_stats {
    _Atomic int64_t loop_lag_us_last;
    _Atomic int64_t loop_lag_us_max;
    _Atomic uint64_t loop_lag_over_100ms; /* ticks that came > 100 ms late */
    /* The subscription server's counters, copied from the loop thread on
     * every probe tick (its own stats may be read on the loop only). */
    _Atomic uint64_t ws_connections;
    _Atomic uint64_t ws_messages_out;
    _Atomic uint64_t ws_conflated;
    _Atomic uint64_t ws_closed_1008;
    _Atomic uint64_t ws_queue_bytes;
};

#endif
