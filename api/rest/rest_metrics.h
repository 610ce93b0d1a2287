/*
 * rest_metrics: request counters and latency histograms of the REST API, for
 * /metrics (Prometheus text format 0.0.4).
 *
 * One slot per route of the route table (rest_router.c) plus one for
 * requests that matched no route; per slot, a counter per status code
 * (100-599) and a duration histogram. Every counter is a relaxed atomic:
 * recording a request costs a few uncontended increments and never a lock,
 * and /metrics reads each value on its own (a scrape is not a snapshot).
 *
 * Threads: rest_metrics_new/free on the owner's thread; rest_metrics_observe
 * and rest_metrics_render on any thread.
 */
#ifndef RX_API_METRICS_H
#define RX_API_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/jbuf.h"

struct rest_metrics;

/* Slots for every route of the REST route table. */
struct rest_metrics *rest_metrics_new(void);
void rest_metrics_free(struct rest_metrics *m);

/* Records one answered request: route is the index in the route table, or
 * any out-of-range value for "no route"; status outside 100-599 counts as
 * 599. */
void rest_metrics_observe(struct rest_metrics *m, size_t route, int status, uint64_t duration_us);

/* Appends rx_http_requests_total and rx_http_request_duration_seconds, with
 * their HELP and TYPE lines. */
void rest_metrics_render(const struct rest_metrics *m, struct jbuf *out);

#endif
