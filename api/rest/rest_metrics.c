/*
 * rest_metrics: flat arrays of relaxed atomics, indexed by route slot.
 *
 * Per slot: 500 status counters (100-599; a few KiB per route, and exact
 * codes are what an operator greps for) and a histogram kept as
 * per-bucket counts (made cumulative when rendered) plus the sum in
 * microseconds. Only nonzero status counters are rendered.
 */
#include "rest_metrics.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "rest_int.h"
#include "core/xalloc.h"

#define CODE_MIN 100
#define CODE_COUNT 500

/* Upper bounds in microseconds; the last bucket is +Inf. */
static const uint64_t bucket_us[] = {500,   1000,   2500,   5000,   10000,  25000,
                                     50000, 100000, 250000, 500000, 1000000};
static const char *const bucket_le[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                                        "0.05",   "0.1",   "0.25",   "0.5",   "1"};
#define N_BUCKETS (sizeof bucket_us / sizeof bucket_us[0] + 1)

struct slot {
    _Atomic uint64_t codes[CODE_COUNT];
    _Atomic uint64_t buckets[N_BUCKETS];
    _Atomic uint64_t sum_us;
    _Atomic uint64_t count;
};

struct rest_metrics {
    size_t n_slots; /* routes + "none" */
    struct slot *slots;
};

struct rest_metrics *rest_metrics_new(void)
{
    struct rest_metrics *m = xcalloc(1, sizeof *m);

    m->n_slots = rest_route_count() + 1;
    m->slots = xcalloc(m->n_slots, sizeof *m->slots);
    return m;
}

void rest_metrics_free(struct rest_metrics *m)
{
    if (!m) {
        return;
    }
    free(m->slots);
    free(m);
}

void rest_metrics_observe(struct rest_metrics *m, size_t route, int status, uint64_t duration_us)
{
    struct slot *s = &m->slots[route < m->n_slots - 1 ? route : m->n_slots - 1];
    size_t code = status >= CODE_MIN && status < CODE_MIN + CODE_COUNT ? (size_t)(status - CODE_MIN)
                                                                       : CODE_COUNT - 1;
    size_t b = 0;

    while (b < N_BUCKETS - 1 && duration_us > bucket_us[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&s->codes[code], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, duration_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

static const char *slot_label(const struct rest_metrics *m, size_t i)
{
    return i < m->n_slots - 1 ? rest_route_at(i)->label : REST_ROUTE_NONE_LABEL;
}

static uint64_t load(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

void rest_metrics_render(const struct rest_metrics *m, struct jbuf *out)
{
    jbuf_adds(out, "# HELP rx_http_requests_total REST requests answered, by route and status.\n"
                   "# TYPE rx_http_requests_total counter\n");
    for (size_t i = 0; i < m->n_slots; i++) {
        for (size_t c = 0; c < CODE_COUNT; c++) {
            uint64_t n = load(&m->slots[i].codes[c]);
            if (n) {
                jbuf_addf(out, "rx_http_requests_total{route=\"%s\",code=\"%zu\"} %llu\n",
                          slot_label(m, i), c + CODE_MIN, (unsigned long long)n);
            }
        }
    }
    jbuf_adds(out, "# HELP rx_http_request_duration_seconds REST request time, from the "
                   "request line to the last byte sent.\n"
                   "# TYPE rx_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < m->n_slots; i++) {
        const struct slot *s = &m->slots[i];
        uint64_t count = load(&s->count);
        uint64_t cum = 0;
        if (!count) {
            continue;
        }
        for (size_t b = 0; b < N_BUCKETS; b++) {
            cum += load(&s->buckets[b]);
            jbuf_addf(out, "rx_http_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} %llu\n",
                      slot_label(m, i), b < N_BUCKETS - 1 ? bucket_le[b] : "+Inf",
                      (unsigned long long)cum);
        }
        jbuf_addf(out, "rx_http_request_duration_seconds_sum{route=\"%s\"} ", slot_label(m, i));
        jbuf_num(out, (double)load(&s->sum_us) / 1e6);
        /* The buckets were read one by one: +Inf is what count must match. */
        jbuf_addf(out, "\nrx_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                  slot_label(m, i), (unsigned long long)cum);
    }
}
