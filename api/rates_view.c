/*
 * rates_view: store reads and JSON pieces shared by the rate routes.
 *
 * Reading. A full scan (store_scan) copies every live ticker the filter
 * keeps; a single pair is read with one store_get per exchange the store
 * knows, which costs the number of exchanges, not the number of tickers.
 * Sorting happens here once, so routes page and group by walking the set.
 */
#include "rates_view.h"

#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "store/store.h"
#include "store/ticker_json.h"
#include "core/xalloc.h"

/* Exchanges a single-pair read asks the store about. */
#define RATES_EXCHANGES_MAX 512

void rates_set_init(struct rates_set *s)
{
    memset(s, 0, sizeof *s);
}

void rates_set_free(struct rates_set *s)
{
    free(s->t);
    free(s->stale_after);
    rates_set_init(s);
}

void rates_set_push(struct rates_set *s, const struct ticker *t, int64_t stale_after_ms)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->t = xrealloc(s->t, s->cap * sizeof *s->t);
        s->stale_after = xrealloc(s->stale_after, s->cap * sizeof *s->stale_after);
    }
    s->t[s->n] = *t;
    s->stale_after[s->n] = stale_after_ms;
    s->n++;
}

void rates_set_remove(struct rates_set *s, size_t i)
{
    memmove(&s->t[i], &s->t[i + 1], (s->n - i - 1) * sizeof *s->t);
    memmove(&s->stale_after[i], &s->stale_after[i + 1], (s->n - i - 1) * sizeof *s->stale_after);
    s->n--;
}

int64_t rates_stale_after(const struct config *cfg, const char *exchange)
{
    const struct config_operator *op = config_operator_find(cfg, exchange);
    if (op && op->stale_after_ms >= 0) {
        return op->stale_after_ms;
    }
    return cfg->stale_after_ms;
}

struct collect {
    rates_keep_fn keep;
    void *arg;
    struct rates_set *out;
};

static int collect_one(const struct ticker *t, void *arg)
{
    struct collect *c = arg;
    if (!c->keep || c->keep(t, c->arg)) {
        rates_set_push(c->out, t, 0);
    }
    return 0;
}

static int cmp_ticker(const void *a, const void *b)
{
    const struct ticker *x = a;
    const struct ticker *y = b;
    int d = strcmp(x->pair, y->pair);
    return d ? d : strcmp(x->exchange, y->exchange);
}

/* Sort t[first..n) and fill their thresholds (sorted after, so the
 * threshold array needs no permutation). */
static void sort_and_thresholds(const struct api_ctx *ctx, struct rates_set *s, size_t first)
{
    if (s->n - first > 1) { /* t may still be NULL when empty: keep it from qsort */
        qsort(s->t + first, s->n - first, sizeof *s->t, cmp_ticker);
    }
    for (size_t i = first; i < s->n; i++) {
        s->stale_after[i] = rates_stale_after(ctx->cfg, s->t[i].exchange);
    }
}

void rates_collect(const struct api_ctx *ctx, rates_keep_fn keep, void *arg, struct rates_set *out)
{
    struct collect c = {keep, arg, out};
    size_t first = out->n;
    store_scan(ctx->store, NULL, collect_one, &c);
    sort_and_thresholds(ctx, out, first);
}

size_t rates_collect_pair(const struct api_ctx *ctx, const char *pair, struct rates_set *out)
{
    char(*names)[TICKER_EXCHANGE_MAX] = xmalloc(RATES_EXCHANGES_MAX * sizeof *names);
    size_t n = store_exchange_names(ctx->store, names, RATES_EXCHANGES_MAX);
    size_t first = out->n;
    struct ticker t;

    for (size_t i = 0; i < n; i++) {
        if (store_get(ctx->store, names[i], pair, &t) == 0) {
            rates_set_push(out, &t, 0);
        }
    }
    free(names);
    sort_and_thresholds(ctx, out, first);
    return out->n - first;
}

void rates_aggregate(const struct api_ctx *ctx, const struct rates_set *set, size_t first, size_t n,
                     int64_t now_ms, struct aggregate *agg, enum aggregate_use *use)
{
    struct aggregate_opts o = {
        .now_ms = now_ms,
        .stale_after_ms = ctx->cfg->stale_after_ms,
        .stale_after_each = set->stale_after + first,
        .outlier_pct = ctx->cfg->outlier_pct,
    };
    aggregate_compute(set->t + first, n, &o, agg, use);
}

void rates_ticker_json(struct jbuf *b, const struct ticker *t, int64_t generated_ms,
                       int64_t stale_after_ms, bool inverted)
{
    ticker_json(b, t, generated_ms, stale_after_ms);
    if (inverted && b->len && b->data[b->len - 1] == '}') {
        b->len--;
        jbuf_adds(b, ",\"inverted\":true}");
    }
}

static void best_json(struct jbuf *b, const struct ticker *tickers, int best, bool bid)
{
    if (best < 0) {
        jbuf_adds(b, "{\"price\":null,\"exchange\":null}");
        return;
    }
    jbuf_adds(b, "{\"price\":");
    jbuf_str_or_null(b, bid ? tickers[best].bid : tickers[best].ask);
    jbuf_adds(b, ",\"exchange\":");
    jbuf_str(b, tickers[best].exchange);
    jbuf_adds(b, "}");
}

void rates_aggregate_json(struct jbuf *b, const struct ticker *tickers, size_t n,
                          const struct aggregate *agg, const enum aggregate_use *use)
{
    bool first = true;

    jbuf_adds(b, "{\"mid_median\":");
    jbuf_num(b, agg->mid_median);
    jbuf_adds(b, ",\"vwap\":");
    jbuf_num(b, agg->vwap);
    jbuf_adds(b, ",\"best_bid\":");
    best_json(b, tickers, agg->best_bid, true);
    jbuf_adds(b, ",\"best_ask\":");
    best_json(b, tickers, agg->best_ask, false);
    jbuf_addf(b, ",\"sources\":%zu,\"excluded\":[", agg->sources);
    for (size_t i = 0; i < n; i++) {
        if (use[i] == AGGREGATE_USED) {
            continue;
        }
        jbuf_adds(b, first ? "{\"exchange\":" : ",{\"exchange\":");
        jbuf_str(b, tickers[i].exchange);
        jbuf_adds(b, ",\"reason\":");
        jbuf_str(b, aggregate_use_name(use[i]));
        jbuf_adds(b, "}");
        first = false;
    }
    jbuf_adds(b, agg->consensus ? "],\"consensus\":true" : "],\"consensus\":false");
    jbuf_adds(b, agg->crossed ? ",\"crossed\":true}" : ",\"crossed\":false}");
}

int rates_asset(const char *in, char out[TICKER_ASSET_MAX + 1])
{
    size_t i = 0;

    if (!in) {
        return -1;
    }
    for (; in[i]; i++) {
        char c = in[i];
        if (i == TICKER_ASSET_MAX) {
            return -1;
        }
        if (c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        } else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            return -1;
        }
        out[i] = c;
    }
    out[i] = '\0';
    return i ? 0 : -1;
}
