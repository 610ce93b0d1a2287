/*
 * route_metrics: GET /metrics, Prometheus text format 0.0.4.
 *
 * Public by default, so it carries counts and gauges only, never a price.
 * Sources: the REST core's own counters (rest_metrics), the store's
 * per-exchange counters, the board's statuses and the loop's
 * lag gauges (engine_stats). Every family is written with its HELP and TYPE
 * lines even when it has no samples yet, so a scraper sees the full schema
 * from the first scrape. Label values are exchange names ([a-z0-9_]),
 * state and reason names and route patterns: none needs escaping.
 *
 * Threads: a libmicrohttpd worker.
 */
#include "route.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "rest_metrics.h"
#include "core/engine_stats.h"
#include "store/board.h"
#include "store/store.h"
#include "core/xalloc.h"

#define METRICS_MAX_EXCHANGES 1024

static void family(struct jbuf *b, const char *name, const char *type, const char *help)
{
    jbuf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct jbuf *b, const char *name, const char *exchange, double v)
{
    jbuf_addf(b, "%s{exchange=\"%s\"} ", name, exchange);
    jbuf_num(b, v);
    jbuf_adds(b, "\n");
}

static void store_metrics(struct jbuf *b, const struct store *store)
{
    char(*names)[TICKER_EXCHANGE_MAX] = xcalloc(METRICS_MAX_EXCHANGES, sizeof *names);
    size_t n = store ? store_exchange_names(store, names, METRICS_MAX_EXCHANGES) : 0;
    struct store_exchange_stats *stats = xcalloc(n ? n : 1, sizeof *stats);

    for (size_t i = 0; i < n; i++) {
        store_exchange_stats(store, names[i], &stats[i]);
    }
    family(b, "rx_tickers", "gauge", "Live tickers in the store, per exchange.");
    for (size_t i = 0; i < n; i++) {
        sample(b, "rx_tickers", names[i], (double)stats[i].tickers);
    }
    family(b, "rx_updates_total", "counter", "Ticker changes stored, per exchange.");
    for (size_t i = 0; i < n; i++) {
        sample(b, "rx_updates_total", names[i], (double)stats[i].updates);
    }
    family(b, "rx_rejects_total", "counter",
           "Tickers refused at emit (never served), per exchange and reason.");
    for (size_t i = 0; i < n; i++) {
        for (int r = TICKER_OK + 1; r < TICKER_REJECT_COUNT; r++) {
            jbuf_addf(b, "rx_rejects_total{exchange=\"%s\",reason=\"%s\"} %llu\n", names[i],
                      ticker_reject_name((enum ticker_reject)r),
                      (unsigned long long)stats[i].rejects[r]);
        }
    }
    free(stats);
    free(names);
}

/* One gauge or counter per operator, read by field. */
enum op_field {
    F_ERRORS,
    F_HTTP,
    F_BUDGET,
    F_BUDGET_PER,
    F_WAITS,
    F_CB_MAX,
    F_SLOW,
    F_MEMORY,
    F_UNMAPPED,
    F_EMITTED,
};

static double op_value(const struct board_status *st, enum op_field f)
{
    switch (f) {
    case F_ERRORS:
        return (double)st->errors;
    case F_HTTP:
        return (double)st->http_requests;
    case F_BUDGET:
        return (double)st->budget_requests;
    case F_BUDGET_PER:
        return st->budget_per;
    case F_WAITS:
        return (double)st->budget_waits;
    case F_CB_MAX:
        return st->callback_max_ms / 1000.0;
    case F_SLOW:
        return (double)st->slow_callbacks;
    case F_MEMORY:
        return (double)st->memory_bytes;
    case F_UNMAPPED:
        return (double)st->unmapped_total;
    case F_EMITTED:
        return (double)st->emitted;
    }
    return 0;
}

static const struct {
    const char *name;
    const char *type;
    enum op_field field;
    const char *help;
} op_families[] = {
    {"rx_operator_errors_total", "counter", F_ERRORS, "Operator failures (code or network)."},
    {"rx_operator_http_requests_total", "counter", F_HTTP, "HTTP calls the operator made."},
    {"rx_operator_budget", "gauge", F_BUDGET,
     "HTTP calls the operator may make per budget period."},
    {"rx_operator_budget_period_seconds", "gauge", F_BUDGET_PER,
     "The operator's budget period in seconds."},
    {"rx_operator_budget_waits_total", "counter", F_WAITS,
     "HTTP calls that waited for the operator's budget."},
    {"rx_operator_callback_max_seconds", "gauge", F_CB_MAX,
     "The longest single callback of the operator so far."},
    {"rx_operator_slow_callbacks_total", "counter", F_SLOW,
     "Operator callbacks that held the loop longer than 100 ms."},
    {"rx_operator_memory_bytes", "gauge", F_MEMORY, "Memory of the operator's Lua state."},
    {"rx_operator_emitted_total", "counter", F_EMITTED, "Tickers the operator emitted."},
    {"rx_unmapped_total", "counter", F_UNMAPPED,
     "Emitted symbols the operator's markets could not map to a pair."},
};

static void operator_metrics(struct jbuf *b, const struct board *board)
{
    size_t n;
    struct board_status *st = board_statuses(board, &n);

    family(b, "rx_operator_state", "gauge",
           "1 for the operator's current state, 0 for the others.");
    for (size_t i = 0; i < n; i++) {
        for (int s = BOARD_STARTING; s <= BOARD_STANDBY; s++) {
            jbuf_addf(b, "rx_operator_state{exchange=\"%s\",state=\"%s\"} %d\n", st[i].name,
                      board_state_name((enum board_state)s), st[i].state == (enum board_state)s);
        }
    }
    for (size_t f = 0; f < sizeof op_families / sizeof op_families[0]; f++) {
        family(b, op_families[f].name, op_families[f].type, op_families[f].help);
        for (size_t i = 0; i < n; i++) {
            sample(b, op_families[f].name, st[i].name, op_value(&st[i], op_families[f].field));
        }
    }
    free(st);
}

/* One line of a loop gauge family, per loop thread. */
static void loop_sample(struct jbuf *b, const char *name, const char *loop, double v)
{
    jbuf_addf(b, "%s{loop=\"%s\"} ", name, loop);
    jbuf_num(b, v);
    jbuf_adds(b, "\n");
}

static void loop_metrics(struct jbuf *b, const struct engine_stats *es)
{
    static const char *const names[] = {"ingest", "api"};
    const struct loop_gauges *g[] = {&es->ingest, &es->api};
    const size_t n = sizeof names / sizeof names[0];

    family(b, "rx_loop_lag_seconds", "gauge",
           "How late the loop's 100 ms probe timer fired last time.");
    for (size_t i = 0; i < n; i++) {
        loop_sample(b, "rx_loop_lag_seconds", names[i],
                    (double)atomic_load_explicit(&g[i]->lag_us_last, memory_order_relaxed) / 1e6);
    }
    family(b, "rx_loop_lag_max_seconds", "gauge", "The largest loop lag seen so far.");
    for (size_t i = 0; i < n; i++) {
        loop_sample(b, "rx_loop_lag_max_seconds", names[i],
                    (double)atomic_load_explicit(&g[i]->lag_us_max, memory_order_relaxed) / 1e6);
    }
    family(b, "rx_loop_lag_over_100ms_total", "counter", "Probe ticks that came over 100 ms late.");
    for (size_t i = 0; i < n; i++) {
        loop_sample(b, "rx_loop_lag_over_100ms_total", names[i],
                    (double)atomic_load_explicit(&g[i]->lag_over_100ms, memory_order_relaxed));
    }
    family(b, "rx_loop_cpu_seconds_total", "counter", "CPU time of the loop's thread.");
    for (size_t i = 0; i < n; i++) {
        loop_sample(b, "rx_loop_cpu_seconds_total", names[i],
                    (double)atomic_load_explicit(&g[i]->cpu_us, memory_order_relaxed) / 1e6);
    }
}

static void ws_metric(struct jbuf *b, const char *name, const char *type, const char *help,
                      const _Atomic uint64_t *v)
{
    family(b, name, type, help);
    jbuf_addf(b, "%s %llu\n", name,
              (unsigned long long)atomic_load_explicit(v, memory_order_relaxed));
}

static void ws_metrics(struct jbuf *b, const struct engine_stats *es)
{
    ws_metric(b, "rx_ws_connections", "gauge", "WebSocket clients connected now.",
              &es->ws_connections);
    ws_metric(b, "rx_ws_messages_out_total", "counter", "Messages sent to WebSocket clients.",
              &es->ws_messages_out);
    ws_metric(b, "rx_ws_conflated_total", "counter",
              "Updates folded into a rate message still waiting (conflation).",
              &es->ws_conflated);
    ws_metric(b, "rx_ws_closed_1008_total", "counter",
              "Slow consumers closed with 1008 (queue over ws.max_queue_bytes).",
              &es->ws_closed_1008);
    ws_metric(b, "rx_ws_queue_bytes", "gauge", "Bytes queued for WebSocket clients now.",
              &es->ws_queue_bytes);
    ws_metric(b, "rx_changes_total", "counter",
              "Stored changes handed from the ingest loop to the API loop.", &es->changes_put);
    ws_metric(b, "rx_changes_folded_total", "counter",
              "Changes folded into a key still waiting for the API loop.", &es->changes_folded);
    ws_metric(b, "rx_changes_pending", "gauge",
              "Keys and exchanges waiting for the API loop now.", &es->changes_pending);
}

/* The Redis copy's health (nothing with the memory store). */
static void store_health_metrics(struct jbuf *b, const struct board *board)
{
    struct board_store s;
    board_store_health(board, &s);
    if (strcmp(s.kind, "redis") != 0) {
        return;
    }
    family(b, "rx_redis_connected", "gauge", "1 while the Redis writer's connection is up.");
    jbuf_addf(b, "rx_redis_connected %d\n", s.connected ? 1 : 0);
    family(b, "rx_redis_pending_replies", "gauge", "Replies Redis owes the writer now.");
    jbuf_addf(b, "rx_redis_pending_replies %llu\n", (unsigned long long)s.pending);
    family(b, "rx_redis_written_total", "counter", "Ticker batches Redis acknowledged.");
    jbuf_addf(b, "rx_redis_written_total %llu\n", (unsigned long long)s.written);
    family(b, "rx_redis_fields_total", "counter", "Tickers (hash fields) in them.");
    jbuf_addf(b, "rx_redis_fields_total %llu\n", (unsigned long long)s.fields);
    family(b, "rx_redis_dropped_total", "counter",
           "Emit batches not sent while Redis was slow or away (rewritten from memory later).");
    jbuf_addf(b, "rx_redis_dropped_total %llu\n", (unsigned long long)s.dropped);
    family(b, "rx_redis_reconnects_total", "counter", "Redis connections lost or refused.");
    jbuf_addf(b, "rx_redis_reconnects_total %llu\n", (unsigned long long)s.reconnects);
}

void api_route_metrics(struct api_req *req, struct api_resp *resp)
{
    const struct api_ctx *ctx = req->ctx;
    struct jbuf *b = &resp->body;
    int64_t up = req->now_ms - ctx->started_ms;

    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (ctx->metrics) {
        rest_metrics_render(ctx->metrics, b);
    }
    store_metrics(b, ctx->store);
    operator_metrics(b, ctx->board);
    if (ctx->engine) {
        loop_metrics(b, ctx->engine);
        ws_metrics(b, ctx->engine);
    }
    store_health_metrics(b, ctx->board);
    family(b, "rx_uptime_seconds", "gauge", "Seconds since the service started.");
    jbuf_addf(b, "rx_uptime_seconds %lld\n", (long long)(up > 0 ? up / 1000 : 0));
}
