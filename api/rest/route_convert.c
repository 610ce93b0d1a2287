/*
 * route_convert: GET /v1/convert?from=ETH&to=EUR&amount=2 (DESIGN 4.1).
 *
 * The rate graph: every stored pair is an edge between its two assets,
 * weighted by its aggregate (rules of aggregate.h: stale tickers and
 * outliers left out); its rate is the median mid, its strength the number
 * of sources. An edge with no source is no edge, and neither is one
 * without consensus (its exchanges disagree, so it has no median: a mean
 * of two prices tenfold apart converts at a rate no exchange quotes).
 * Walking an edge against its direction (QUOTE to BASE) uses 1 / median.
 *
 * The path: a one-leg path (the pair itself, or its inverse) whenever one
 * exists — the one with more sources, the direct pair on a tie. Otherwise
 * two legs through one intermediate asset X, choosing the X whose weaker
 * leg has the most sources; ties go to USDT, USD, BTC, ETH, EUR in that
 * order, then to the other assets by name. No path: 404 no_path, or
 * 404 no_consensus when a path would exist through pairs without consensus
 * (the answer names them, so "the exchanges disagree" is not mistaken for
 * "nobody lists it").
 *
 * Only tickers of pairs that touch `from` or `to` are copied from the store:
 * both legs of any usable path do.
 *
 * from == to converts at rate 1 with an empty path. amount defaults to 1.
 */
#include "route.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "core/decimal.h"
#include "rates_view.h"
#include "core/xalloc.h"

/* One pair of the graph: set->t[first..first+n) with their aggregate. */
struct edge {
    const char *pair; /* borrowed from the set */
    size_t first;
    size_t n;
    double mid; /* median mid, BASE -> QUOTE; NAN without consensus */
    size_t sources;
    bool consensus; /* false: kept only to name it in a no_consensus answer */
};

/* A leg: an edge walked one way. */
struct leg {
    const struct edge *e; /* NULL: none */
    bool inverted;
};

struct graph {
    struct rates_set set;
    enum aggregate_use *use; /* set.n entries */
    struct edge *edges;      /* sorted by pair, usable ones only */
    size_t n_edges;
};

struct convert_query {
    char from[TICKER_ASSET_MAX + 1];
    char to[TICKER_ASSET_MAX + 1];
    double amount;
};

static const char *const preferred[] = {"USDT", "USD", "BTC", "ETH", "EUR"};

/* ------------------------------------------------------------------------
 * Parameters
 * --------------------------------------------------------------------- */

static int asset_param(const struct api_req *req, struct api_resp *resp, const char *name,
                       char *out)
{
    const char *v = api_query(req, name);
    if (rates_asset(v, out) < 0) {
        api_error(resp, 400, "bad_param",
                  "%s: '%.40s' is not an asset code; use letters and digits, 1 to 15, e.g. BTC",
                  name, v ? v : "");
        return -1;
    }
    return 0;
}

static int amount_param(const struct api_req *req, struct api_resp *resp, double *out)
{
    const char *v = api_query(req, "amount");
    char tmp[128];

    if (!v) {
        *out = 1;
        return 0;
    }
    if (decimal_parse(v, strlen(v), tmp, sizeof tmp, out) < 0 || !isfinite(*out) || *out <= 0) {
        api_error(resp, 400, "bad_param",
                  "amount: '%.40s' must be a positive decimal number, e.g. 2 or 0.5", v);
        return -1;
    }
    return 0;
}

static int parse_query(const struct api_req *req, struct api_resp *resp, struct convert_query *q)
{
    if (asset_param(req, resp, "from", q->from) < 0 || asset_param(req, resp, "to", q->to) < 0 ||
        amount_param(req, resp, &q->amount) < 0) {
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The graph
 * --------------------------------------------------------------------- */

/* Splits a canonical pair into its assets (each TICKER_ASSET_MAX + 1). */
static void pair_assets(const char *pair, char *base, char *quote)
{
    const char *us = strchr(pair, '_');
    size_t n = (size_t)(us - pair);
    memcpy(base, pair, n);
    base[n] = '\0';
    strcpy(quote, us + 1);
}

static int touches(const struct ticker *t, void *arg)
{
    const struct convert_query *q = arg;
    char base[TICKER_ASSET_MAX + 1];
    char quote[TICKER_ASSET_MAX + 1];

    pair_assets(t->pair, base, quote);
    return !strcmp(base, q->from) || !strcmp(base, q->to) || !strcmp(quote, q->from) ||
           !strcmp(quote, q->to);
}

static void graph_build(const struct api_ctx *ctx, const struct convert_query *q, int64_t now,
                        struct graph *g)
{
    struct rates_set *s = &g->set;

    memset(g, 0, sizeof *g);
    rates_set_init(s);
    rates_collect(ctx, touches, (void *)q, s);
    g->use = xmalloc((s->n ? s->n : 1) * sizeof *g->use);
    g->edges = xmalloc((s->n ? s->n : 1) * sizeof *g->edges);
    for (size_t i = 0; i < s->n;) {
        size_t n = 1;
        struct aggregate agg;
        while (i + n < s->n && strcmp(s->t[i + n].pair, s->t[i].pair) == 0) {
            n++;
        }
        rates_aggregate(ctx, s, i, n, now, &agg, g->use + i);
        bool priced = agg.consensus && isfinite(agg.mid_median) && agg.mid_median > 0;
        if (agg.sources && (priced || !agg.consensus)) {
            g->edges[g->n_edges++] =
                (struct edge){s->t[i].pair, i, n, agg.mid_median, agg.sources, agg.consensus};
        }
        i += n;
    }
}

static void graph_free(struct graph *g)
{
    free(g->use);
    free(g->edges);
    rates_set_free(&g->set);
}

static int cmp_edge(const void *key, const void *e)
{
    return strcmp(key, ((const struct edge *)e)->pair);
}

/* The edge base_quote; one without consensus only when `any`. */
static const struct edge *edge_find(const struct graph *g, const char *base, const char *quote,
                                    bool any)
{
    char pair[TICKER_PAIR_MAX];
    snprintf(pair, sizeof pair, "%s_%s", base, quote);
    const struct edge *e = bsearch(pair, g->edges, g->n_edges, sizeof *g->edges, cmp_edge);
    return e && (any || e->consensus) ? e : NULL;
}

/* The better leg a -> b: the pair a_b or the inverse b_a, by sources
 * (`any`: edges without consensus count too). */
static struct leg leg_find(const struct graph *g, const char *a, const char *b, bool any)
{
    const struct edge *direct = edge_find(g, a, b, any);
    const struct edge *inverse = edge_find(g, b, a, any);
    struct leg l = {direct, false};

    if (inverse && (!direct || inverse->sources > direct->sources)) {
        l.e = inverse;
        l.inverted = true;
    }
    return l;
}

static double leg_rate(const struct leg *l)
{
    return l->inverted ? 1.0 / l->e->mid : l->e->mid;
}

/* Rank of an intermediate asset: preferred ones first, in order. */
static size_t rank(const char *asset)
{
    for (size_t i = 0; i < sizeof preferred / sizeof *preferred; i++) {
        if (strcmp(asset, preferred[i]) == 0) {
            return i;
        }
    }
    return sizeof preferred / sizeof *preferred;
}

/* Whether (sources, via) beats the best so far. */
static bool better(size_t sources, const char *via, size_t best_sources, const char *best_via)
{
    if (!best_via || sources != best_sources) {
        return !best_via || sources > best_sources;
    }
    size_t ra = rank(via);
    size_t rb = rank(best_via);
    return ra != rb ? ra < rb : strcmp(via, best_via) < 0;
}

/* The best two-leg path from -> X -> to; legs[0].e is NULL if none. */
static void two_legs(const struct graph *g, const struct convert_query *q, bool any,
                     struct leg legs[2])
{
    char base[TICKER_ASSET_MAX + 1];
    char quote[TICKER_ASSET_MAX + 1];
    char best_via[TICKER_ASSET_MAX + 1];
    size_t best_sources = 0;
    bool found = false;

    legs[0].e = legs[1].e = NULL;
    for (size_t i = 0; i < g->n_edges; i++) {
        pair_assets(g->edges[i].pair, base, quote);
        const char *via = !strcmp(base, q->from) ? quote : !strcmp(quote, q->from) ? base : NULL;
        if (!via || !strcmp(via, q->to) || !strcmp(via, q->from)) {
            continue;
        }
        struct leg a = leg_find(g, q->from, via, any);
        struct leg b = leg_find(g, via, q->to, any);
        if (!a.e || !b.e) {
            continue;
        }
        size_t sources = a.e->sources < b.e->sources ? a.e->sources : b.e->sources;
        if (better(sources, via, best_sources, found ? best_via : NULL)) {
            found = true;
            best_sources = sources;
            strcpy(best_via, via);
            legs[0] = a;
            legs[1] = b;
        }
    }
}

/* ------------------------------------------------------------------------
 * The answer
 * --------------------------------------------------------------------- */

static void leg_json(struct jbuf *b, const struct graph *g, const struct leg *l)
{
    bool first = true;

    jbuf_adds(b, "{\"pair\":");
    jbuf_str(b, l->e->pair);
    jbuf_addf(b, ",\"inverted\":%s,\"rate\":", l->inverted ? "true" : "false");
    jbuf_num(b, leg_rate(l));
    jbuf_adds(b, ",\"exchanges\":[");
    for (size_t i = l->e->first; i < l->e->first + l->e->n; i++) {
        if (g->use[i] != AGGREGATE_USED) {
            continue;
        }
        if (!first) {
            jbuf_adds(b, ",");
        }
        jbuf_str(b, g->set.t[i].exchange);
        first = false;
    }
    jbuf_adds(b, "]}");
}

static void answer(struct jbuf *b, const struct convert_query *q, const struct graph *g,
                   const struct leg *legs, size_t n_legs, int64_t generated)
{
    double rate = 1;

    for (size_t i = 0; i < n_legs; i++) {
        rate *= leg_rate(&legs[i]);
    }
    jbuf_reset(b);
    jbuf_adds(b, "{\"from\":");
    jbuf_str(b, q->from);
    jbuf_adds(b, ",\"to\":");
    jbuf_str(b, q->to);
    jbuf_adds(b, ",\"amount\":");
    jbuf_num(b, q->amount);
    jbuf_adds(b, ",\"result\":");
    jbuf_num(b, q->amount * rate);
    jbuf_adds(b, ",\"rate\":");
    jbuf_num(b, rate);
    jbuf_adds(b, ",\"path\":[");
    for (size_t i = 0; i < n_legs; i++) {
        if (i) {
            jbuf_adds(b, ",");
        }
        leg_json(b, g, &legs[i]);
    }
    jbuf_addf(b, "],\"generated\":%lld}", (long long)generated);
}

/* The path from -> to into legs (one leg when it can, else two); returns
 * the number of legs, 0 when there is none. `any`: through pairs without
 * consensus too. */
static size_t path_find(const struct graph *g, const struct convert_query *q, bool any,
                        struct leg legs[2])
{
    legs[0] = leg_find(g, q->from, q->to, any);
    if (legs[0].e) {
        return 1;
    }
    two_legs(g, q, any, legs);
    return legs[0].e ? 2 : 0;
}

/* 404 no_consensus naming the pairs of legs without consensus, or
 * no_path when there is no path even through them. */
static void refuse(struct api_resp *resp, const struct graph *g, const struct convert_query *q)
{
    struct leg legs[2];
    size_t n = path_find(g, q, true, legs);
    const char *pairs[2] = {"", ""};
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        if (!legs[i].e->consensus) {
            pairs[k++] = legs[i].e->pair;
        }
    }
    if (!k) {
        api_error(resp, 404, "no_path",
                  "no fresh rate converts %s to %s, directly or through one other asset", q->from,
                  q->to);
        return;
    }
    api_error(resp, 404, "no_consensus",
              "no rate converts %s to %s: the exchanges quoting %s%s%s disagree (no majority "
              "within outlier_pct; see /v1/rates/%s)",
              q->from, q->to, pairs[0], k > 1 ? " and " : "", pairs[1], pairs[0]);
}

void api_route_convert(struct api_req *req, struct api_resp *resp)
{
    struct convert_query q;
    struct graph g;
    struct leg legs[2];
    size_t n_legs = 0;

    if (parse_query(req, resp, &q) < 0) {
        return;
    }
    graph_build(req->ctx, &q, req->now_ms, &g);
    if (strcmp(q.from, q.to) != 0) {
        n_legs = path_find(&g, &q, false, legs);
        if (!n_legs) {
            refuse(resp, &g, &q);
            graph_free(&g);
            return;
        }
    }
    answer(&resp->body, &q, &g, legs, n_legs, req->now_ms);
    graph_free(&g);
}
