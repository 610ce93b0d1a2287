/*
 * loop_probe: the lag is how much later than due the timer fired; the CPU
 * time is the thread's own clock, read on the tick, so it needs no handle
 * on the thread.
 */
#include "loop_probe.h"

#include <stdlib.h>
#include <time.h>

#include "loop.h"
#include "xalloc.h"

struct loop_probe {
    struct loop *loop;
    struct loop_timer *timer;
    struct loop_gauges *out;
    uint64_t expected_ms;
    void (*tick)(void *arg);
    void *arg;
};

static void on_tick(struct loop_timer *t, void *data)
{
    struct loop_probe *p = data;
    struct loop_gauges *g = p->out;
    uint64_t now = loop_now_ms(p->loop);
    /* The first tick may come long after the probe was made, before the
     * loop ran: it only sets the pace. */
    int64_t lag_us = p->expected_ms && now > p->expected_ms
                         ? (int64_t)(now - p->expected_ms) * 1000
                         : 0;
    struct timespec cpu;

    atomic_store_explicit(&g->lag_us_last, lag_us, memory_order_relaxed);
    if (lag_us > atomic_load_explicit(&g->lag_us_max, memory_order_relaxed)) {
        atomic_store_explicit(&g->lag_us_max, lag_us, memory_order_relaxed);
    }
    if (lag_us > 100000) {
        atomic_fetch_add_explicit(&g->lag_over_100ms, 1, memory_order_relaxed);
    }
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0) {
        atomic_store_explicit(&g->cpu_us,
                              (uint64_t)cpu.tv_sec * 1000000u + (uint64_t)cpu.tv_nsec / 1000u,
                              memory_order_relaxed);
    }
    p->expected_ms = now + LOOP_PROBE_TICK_MS;
    if (p->tick) {
        p->tick(p->arg);
    }
}

struct loop_probe *loop_probe_new(struct loop *loop, struct loop_gauges *out,
                                  void (*tick)(void *arg), void *arg)
{
    struct loop_probe *p = xcalloc(1, sizeof *p);

    p->loop = loop;
    p->out = out;
    p->tick = tick;
    p->arg = arg;
    p->timer = loop_timer_new(loop, on_tick, p);
    loop_timer_start(p->timer, LOOP_PROBE_TICK_MS, LOOP_PROBE_TICK_MS);
    return p;
}

void loop_probe_free(struct loop_probe *p)
{
    if (!p) {
        return;
    }
    loop_timer_free(p->timer);
    free(p);
}
