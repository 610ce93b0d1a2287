/*
 * loop_probe: a 100 ms repeating timer on a loop that measures how late it
 * fires (the loop lag: how long the loop was busy with something else, a
 * slow callback or a large decode) and the thread's CPU time, into a
 * struct loop_gauges any thread may read. An optional tick function runs
 * after each measurement (the API loop copies its servers' counters then).
 *
 * Threads: new and free on the loop's thread (or before it runs / after it
 * stopped); the gauges are read anywhere.
 */
#ifndef RX_LOOP_PROBE_H
#define RX_LOOP_PROBE_H

#include "engine_stats.h"

struct loop;
struct loop_probe;

#define LOOP_PROBE_TICK_MS 100

struct loop_probe *loop_probe_new(struct loop *loop, struct loop_gauges *out,
                                  void (*tick)(void *arg), void *arg);
void loop_probe_free(struct loop_probe *p);

#endif
