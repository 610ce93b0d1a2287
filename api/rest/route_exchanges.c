/*
 * route_exchanges: what the service knows about each exchange and what can
 * be asked of it (DESIGN 4.1).
 *
 *   GET /v1/exchanges         every operator, by name: state, data, errors, budget
 *   GET /v1/exchanges/{name}  one, plus unmapped symbols and reject reasons
 *   GET /v1/markets           the markets each operator's markets() returned
 *
 * Everything comes from copies: the statuses and markets on the board
 * (published by the ingest loop every few hundred milliseconds and after
 * each change) and the store's per-exchange counters, which are read lock-free.
 * The fields of an exchange, and where each comes from:
 *   node_id     the node that scrapes it (DESIGN 7)
 *   pairs       live tickers in the store now
 *   last_update the operator's last data, else the store's, ms; null if none
 *   rejects     tickers refused at emit, all reasons (store counters)
 *   budget      {"requests","per"}: the operator's HTTP budget;
 *               "used": HTTP calls made since it was loaded (the status
 *               copy has no per-window count); "waits": calls that waited
 *   loaded_at   when the running version was loaded, ms; null if none runs
 *   rejected    null, or the newest file version that failed to load while
 *               an older one keeps running: {"file","error","line","at"}
 * and, beside the list, "store": the health of the copy the service keeps
 * (memory, or Redis with its connection, errors, backlog and drops).
 *
 * Threads: a libmicrohttpd worker.
 */
#include "route.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "store/board.h"
#include "store/store.h"
#include "core/xalloc.h"

static void ms_or_null(struct jbuf *b, int64_t ms)
{
    if (ms > 0) {
        jbuf_addf(b, "%lld", (long long)ms);
    } else {
        jbuf_adds(b, "null");
    }
}

static void render_exchange(struct jbuf *b, const struct api_ctx *ctx, const struct board_status *st,
                            bool detail)
{
    struct store_exchange_stats stats;
    uint64_t rejects = 0;

    if (store_exchange_stats(ctx->store, st->name, &stats) != 0) {
        memset(&stats, 0, sizeof stats);
    }
    if (st->remote) {
        /* Read from Redis: the scraping node's counts (this store keeps no
         * rejects, and may lag it by a moment in pairs). */
        stats.tickers = st->pairs;
        memcpy(stats.rejects, st->rejects, sizeof stats.rejects);
    }
    for (size_t i = 0; i < TICKER_REJECT_COUNT; i++) {
        rejects += stats.rejects[i];
    }
    jbuf_adds(b, "{\"name\":");
    jbuf_str(b, st->name);
    /* Who scrapes it: the node named in the status (read from Redis, or a
     * standby's lease holder, null when not known), else this one. */
    jbuf_adds(b, ",\"node_id\":");
    if (st->node_id[0] || st->state == BOARD_STANDBY) {
        jbuf_str_or_null(b, st->node_id);
    } else {
        jbuf_str(b, ctx->cfg->node_id);
    }
    jbuf_adds(b, ",\"state\":");
    jbuf_str(b, board_state_name(st->state));
    jbuf_adds(b, ",\"reason\":");
    jbuf_str_or_null(b, st->reason);
    jbuf_adds(b, ",\"source\":");
    jbuf_str_or_null(b, st->source);
    jbuf_addf(b, ",\"pairs\":%llu,\"last_update\":", (unsigned long long)stats.tickers);
    ms_or_null(b, st->last_update > 0 ? st->last_update : stats.last_update);
    jbuf_addf(b, ",\"errors\":%llu,\"rejects\":%llu,\"budget\":{\"requests\":",
              (unsigned long long)st->errors, (unsigned long long)rejects);
    if (st->budget_requests > 0) {
        jbuf_addf(b, "%lld,\"per\":", (long long)st->budget_requests);
        jbuf_num(b, st->budget_per);
    } else {
        jbuf_adds(b, "null,\"per\":null");
    }
    jbuf_addf(b, ",\"used\":%llu,\"waits\":%llu},\"file\":", (unsigned long long)st->http_requests,
              (unsigned long long)st->budget_waits);
    jbuf_str_or_null(b, st->file);
    jbuf_adds(b, ",\"loaded_at\":");
    ms_or_null(b, st->loaded_at);
    jbuf_adds(b, ",\"rejected\":");
    if (st->rejected) {
        jbuf_adds(b, "{\"file\":");
        jbuf_str(b, st->file);
        jbuf_adds(b, ",\"error\":");
        jbuf_str(b, st->rejected_error);
        jbuf_addf(b, ",\"line\":%d,\"at\":", st->rejected_line);
        ms_or_null(b, st->rejected_at);
        jbuf_adds(b, "}");
    } else {
        jbuf_adds(b, "null");
    }
    if (detail) {
        jbuf_addf(b, ",\"streams_open\":%d,\"stream_messages\":%llu,\"frames_dropped\":%llu",
                  st->streams_open, (unsigned long long)st->stream_messages,
                  (unsigned long long)st->frames_dropped);
        jbuf_addf(b, ",\"unmapped_total\":%llu,\"unmapped\":[",
                  (unsigned long long)st->unmapped_total);
        for (size_t i = 0; i < st->n_unmapped && i < BOARD_UNMAPPED_MAX; i++) {
            jbuf_adds(b, i ? ",{\"symbol\":" : "{\"symbol\":");
            jbuf_str(b, st->unmapped[i].symbol);
            jbuf_addf(b, ",\"count\":%llu}", (unsigned long long)st->unmapped[i].count);
        }
        jbuf_adds(b, "],\"reject_reasons\":{");
        for (int i = TICKER_OK + 1; i < TICKER_REJECT_COUNT; i++) {
            jbuf_adds(b, i > TICKER_OK + 1 ? "," : "");
            jbuf_str(b, ticker_reject_name((enum ticker_reject)i));
            jbuf_addf(b, ":%llu", (unsigned long long)stats.rejects[i]);
        }
        jbuf_adds(b, "}");
    }
    jbuf_adds(b, "}");
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct board_status *)a)->name, ((const struct board_status *)b)->name);
}

/* {"kind","connected","last_error","last_error_at","pending","written",
 * "fields","dropped","reconnects"}: where the service keeps its copy, and how that
 * goes (DESIGN 7: Redis trouble shows here, never in /readyz). */
static void render_store(struct jbuf *b, const struct api_ctx *ctx)
{
    struct board_store s;
    board_store_health(ctx->board, &s);
    jbuf_adds(b, "{\"kind\":");
    jbuf_str(b, s.kind);
    if (strcmp(s.kind, "redis") == 0) {
        jbuf_addf(b, ",\"connected\":%s,\"last_error\":", s.connected ? "true" : "false");
        jbuf_str_or_null(b, s.last_error);
        jbuf_adds(b, ",\"last_error_at\":");
        ms_or_null(b, s.last_error_at);
        jbuf_addf(b,
                  ",\"pending\":%llu,\"written\":%llu,\"fields\":%llu,\"dropped\":%llu,"
                  "\"reconnects\":%llu",
                  (unsigned long long)s.pending, (unsigned long long)s.written,
                  (unsigned long long)s.fields,
                  (unsigned long long)s.dropped, (unsigned long long)s.reconnects);
    }
    jbuf_adds(b, "}");
}

void api_route_exchanges(struct api_req *req, struct api_resp *resp)
{
    size_t n;
    struct board_status *st = board_statuses(req->ctx->board, &n);

    /* The registry keeps files in scan order; a file added later comes
     * last there, but the list is by name. */
    qsort(st, n, sizeof *st, by_name);

    jbuf_adds(&resp->body, "{\"exchanges\":[");
    for (size_t i = 0; i < n; i++) {
        jbuf_adds(&resp->body, i ? "," : "");
        render_exchange(&resp->body, req->ctx, &st[i], false);
    }
    jbuf_adds(&resp->body, "],\"store\":");
    render_store(&resp->body, req->ctx);
    jbuf_adds(&resp->body, "}");
    free(st);
}

void api_route_exchange(struct api_req *req, struct api_resp *resp)
{
    size_t n;
    struct board_status *st = board_statuses(req->ctx->board, &n);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(st[i].name, req->param) == 0) {
            render_exchange(&resp->body, req->ctx, &st[i], true);
            free(st);
            return;
        }
    }
    free(st);
    api_error(resp, 404, "unknown_exchange",
              "no exchange named '%.64s'; GET /v1/exchanges lists them", req->param);
}

/* ---- /v1/markets ---------------------------------------------------------- */

/* Whether name is one of the comma-separated list (NULL list: any). */
static bool in_list(const char *list, const char *name)
{
    size_t len = strlen(name);

    if (!list) {
        return true;
    }
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == len && strncasecmp(p, name, n) == 0) {
            return true;
        }
        p += n;
        p += *p == ',';
    }
    return false;
}

void api_route_markets(struct api_req *req, struct api_resp *resp)
{
    const char *exchange = api_query(req, "exchange");
    const char *base = api_query(req, "base");
    const char *quote = api_query(req, "quote");
    struct board_market *m = NULL;
    struct jbuf *b = &resp->body;
    size_t n = 0, listed = 0;

    if (exchange && !*exchange) {
        exchange = NULL;
    }
    n = board_markets(req->ctx->board, NULL, &m);
    jbuf_adds(b, "{\"markets\":[");
    for (size_t i = 0; i < n; i++) {
        char pair_base[TICKER_PAIR_MAX];
        const char *sep = strchr(m[i].pair, '_');
        const char *pair_quote = sep ? sep + 1 : "";
        size_t blen = sep ? (size_t)(sep - m[i].pair) : strlen(m[i].pair);
        snprintf(pair_base, sizeof pair_base, "%.*s", (int)blen, m[i].pair);
        if (!in_list(exchange, m[i].exchange) ||
            (base && *base && strcasecmp(base, pair_base) != 0) ||
            (quote && *quote && strcasecmp(quote, pair_quote) != 0)) {
            continue;
        }
        jbuf_adds(b, listed++ ? ",{\"exchange\":" : "{\"exchange\":");
        jbuf_str(b, m[i].exchange);
        jbuf_adds(b, ",\"symbol\":");
        jbuf_str(b, m[i].symbol);
        jbuf_adds(b, ",\"pair\":");
        jbuf_str(b, m[i].pair);
        jbuf_adds(b, ",\"base\":");
        jbuf_str(b, pair_base);
        jbuf_adds(b, ",\"quote\":");
        jbuf_str(b, pair_quote);
        jbuf_addf(b, ",\"has_data\":%s}",
                  store_get(req->ctx->store, m[i].exchange, m[i].pair, NULL) == 0 ? "true"
                                                                                  : "false");
    }
    jbuf_adds(b, "]}");
    free(m);
}
