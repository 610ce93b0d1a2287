/*
 * route_rates: GET /v1/rates (every pair, filtered and paged) and
 * GET /v1/rates/{pair} (one pair, inverted when only the other side is
 * listed). DESIGN 4.1.
 *
 * Both go through the render cache (render_cache.h): for /v1/rates the query is
 * validated and normalized into a key ("the same question"), and a render
 * of the same key from the same store generation, at most 100 ms old, is
 * served as is, with its own `generated` (every age_ms and stale in it is
 * computed as of that time, so it stays truthful). Filtered views share the
 * mechanism, so they get ETag, 304 and gzip too; the map is bounded, so
 * arbitrary cursors cannot grow it.
 *
 * Paging is by pair, in name order: `cursor` is the last pair of the
 * previous page, in plain text (pair names need no escaping), and `next` is
 * null on the last page. Pairs left with no ticker after the filters are
 * not listed. The list shows pairs as stored: `pair=USDT_BTC` does not
 * invert BTC_USDT here (GET /v1/rates/USDT_BTC does), so pages stay a plain
 * walk over stored names. A `pair` filter reads those pairs directly
 * (rates_collect_pair) instead of scanning the store.
 *
 * The cache is one per process (the API contract gives routes no place to
 * keep state); its keys carry the store's address, so two stores in one
 * process never share renders.
 */
#include "route.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "rates_view.h"
#include "render_cache.h"
#include "store/store.h"
#include "core/xalloc.h"

#define RATES_LIST_MAX 64
#define RATES_CACHE_ENTRIES 64
#define RATES_CACHE_MAX_AGE_MS 100
#define RATES_LIMIT_MAX 1000

/* A validated /v1/rates query. Lists are sorted and without duplicates. */
struct rates_query {
    char pairs[RATES_LIST_MAX][TICKER_PAIR_MAX];
    size_t n_pairs;
    char exchanges[RATES_LIST_MAX][TICKER_EXCHANGE_MAX];
    size_t n_exchanges;
    char base[TICKER_ASSET_MAX + 1]; /* "" = any */
    char quote[TICKER_ASSET_MAX + 1];
    bool stale_exclude;
    int64_t max_age_ms;           /* -1 = no limit */
    int64_t limit;                /* 0 = all */
    char cursor[TICKER_PAIR_MAX]; /* "" = from the start */
};

/* ------------------------------------------------------------------------
 * The shared cache
 * --------------------------------------------------------------------- */

static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static struct render_cache *cache;

static void cache_init(void)
{
    cache = render_cache_new(RATES_CACHE_ENTRIES, RATES_CACHE_MAX_AGE_MS);
}

/* ------------------------------------------------------------------------
 * Parameters
 * --------------------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Sort and deduplicate n names of `size` bytes each; returns the new n. */
static size_t sort_unique(void *names, size_t n, size_t size)
{
    char *p = names;
    size_t k = 0;

    qsort(names, n, size, cmp_name);
    for (size_t i = 0; i < n; i++) {
        if (k == 0 || strcmp(p + (k - 1) * size, p + i * size) != 0) {
            memmove(p + k * size, p + i * size, size);
            k++;
        }
    }
    return k;
}

/* Splits a comma list into items and calls item() on each with a
 * terminated copy; stops at the first nonzero return. An empty list is no
 * filter; an empty item in a list ("a,,b", ",,,") is a 400 naming the
 * parameter, not a filter that silently matches everything. */
static int each_item(const char *list, const char *name, struct api_resp *resp,
                     int (*item)(const char *s, void *arg), void *arg)
{
    char buf[API_PARAM_MAX];

    if (!list || !*list) {
        return 0;
    }
    for (;;) {
        const char *end = strchr(list, ',');
        size_t len = end ? (size_t)(end - list) : strlen(list);
        if (len == 0) {
            api_error(resp, 400, "bad_param",
                      "%s: an empty item in the comma list; give names separated by single "
                      "commas, e.g. %s",
                      name, strcmp(name, "pair") == 0 ? "BTC_USDT,ETH_USDT" : "binance,kraken");
            return -1;
        }
        if (len >= sizeof buf) {
            len = sizeof buf - 1; /* too long for any name: still refused below */
        }
        memcpy(buf, list, len);
        buf[len] = '\0';
        int rc = item(buf, arg);
        if (rc || !end) {
            return rc;
        }
        list = end + 1;
    }
}

struct list_ctx {
    struct rates_query *q;
    struct api_resp *resp;
};

static int pair_item(const char *s, void *arg)
{
    struct list_ctx *c = arg;
    if (c->q->n_pairs == RATES_LIST_MAX) {
        api_error(c->resp, 400, "bad_param", "pair: at most %d pairs", RATES_LIST_MAX);
        return -1;
    }
    if (api_pair_param(c->resp, "pair", s, c->q->pairs[c->q->n_pairs], TICKER_PAIR_MAX) < 0) {
        return -1;
    }
    c->q->n_pairs++;
    return 0;
}

static int exchange_item(const char *s, void *arg)
{
    struct list_ctx *c = arg;
    char name[TICKER_EXCHANGE_MAX];
    size_t i = 0;

    if (c->q->n_exchanges == RATES_LIST_MAX) {
        api_error(c->resp, 400, "bad_param", "exchange: at most %d exchanges", RATES_LIST_MAX);
        return -1;
    }
    for (; s[i] && i < sizeof name - 1; i++) {
        name[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    }
    name[i] = '\0';
    if (s[i] || !ticker_exchange_valid(name)) {
        api_error(c->resp, 400, "bad_param",
                  "exchange: '%.40s' is not an exchange name; use a comma list of names "
                  "([a-z0-9_], 1 to 31 characters), e.g. binance,kraken",
                  s);
        return -1;
    }
    memcpy(c->q->exchanges[c->q->n_exchanges++], name, i + 1);
    return 0;
}

static int asset_param(const struct api_req *req, struct api_resp *resp, const char *name,
                       char out[TICKER_ASSET_MAX + 1])
{
    const char *v = api_query(req, name);
    out[0] = '\0';
    if (!v || !*v) {
        return 0;
    }
    if (rates_asset(v, out) < 0) {
        api_error(resp, 400, "bad_param",
                  "%s: '%.40s' is not an asset code; use letters and digits, 1 to 15, e.g. BTC",
                  name, v);
        return -1;
    }
    return 0;
}

static int stale_param(const struct api_req *req, struct api_resp *resp, bool *exclude)
{
    const char *v = api_query(req, "stale");
    *exclude = false;
    if (!v || !*v || strcmp(v, "include") == 0) {
        return 0;
    }
    if (strcmp(v, "exclude") == 0) {
        *exclude = true;
        return 0;
    }
    api_error(resp, 400, "bad_param", "stale: '%.40s' must be include or exclude", v);
    return -1;
}

static int cursor_param(const struct api_req *req, struct api_resp *resp, char *out)
{
    const char *v = api_query(req, "cursor");
    out[0] = '\0';
    if (!v || !*v) {
        return 0;
    }
    if (ticker_pair_canonical(v, out, TICKER_PAIR_MAX) < 0) {
        api_error(resp, 400, "bad_param",
                  "cursor: '%.40s' is not a cursor; pass the `next` value of the previous page", v);
        return -1;
    }
    return 0;
}

/* Fills q from the request, or fills resp with a 400 and returns -1. */
static int parse_query(const struct api_req *req, struct api_resp *resp, struct rates_query *q)
{
    struct list_ctx lc = {q, resp};

    if (each_item(api_query(req, "pair"), "pair", resp, pair_item, &lc) ||
        each_item(api_query(req, "exchange"), "exchange", resp, exchange_item, &lc) ||
        asset_param(req, resp, "base", q->base) < 0 ||
        asset_param(req, resp, "quote", q->quote) < 0 ||
        stale_param(req, resp, &q->stale_exclude) < 0 ||
        api_int_param(req, resp, "max_age_ms", 0, INT64_MAX / 2, -1, &q->max_age_ms) < 0 ||
        api_int_param(req, resp, "limit", 1, RATES_LIMIT_MAX, 0, &q->limit) < 0 ||
        cursor_param(req, resp, q->cursor) < 0) {
        return -1;
    }
    q->n_pairs = sort_unique(q->pairs, q->n_pairs, sizeof q->pairs[0]);
    q->n_exchanges = sort_unique(q->exchanges, q->n_exchanges, sizeof q->exchanges[0]);
    return 0;
}

/* The cache key: the same answer for the same key and store generation. */
static void query_key(const struct api_ctx *ctx, const struct rates_query *q, struct jbuf *k)
{
    jbuf_addf(k, "%p|p=", (void *)ctx->store);
    for (size_t i = 0; i < q->n_pairs; i++) {
        jbuf_addf(k, "%s,", q->pairs[i]);
    }
    jbuf_adds(k, "|e=");
    for (size_t i = 0; i < q->n_exchanges; i++) {
        jbuf_addf(k, "%s,", q->exchanges[i]);
    }
    jbuf_addf(k, "|b=%s|q=%s|s=%d|a=%lld|l=%lld|c=%s", q->base, q->quote, q->stale_exclude,
              (long long)q->max_age_ms, (long long)q->limit, q->cursor);
}

/* ------------------------------------------------------------------------
 * Rendering
 * --------------------------------------------------------------------- */

/* Whether pair's base (side 0) or quote (side 1) equals asset. */
static bool pair_side_is(const char *pair, int side, const char *asset)
{
    const char *us = strchr(pair, '_');
    if (!us) {
        return false;
    }
    if (side == 0) {
        size_t n = (size_t)(us - pair);
        return strlen(asset) == n && memcmp(pair, asset, n) == 0;
    }
    return strcmp(us + 1, asset) == 0;
}

static int keep_ticker(const struct ticker *t, void *arg)
{
    const struct rates_query *q = arg;
    if (q->cursor[0] && strcmp(t->pair, q->cursor) <= 0) {
        return 0;
    }
    if (q->n_pairs && !bsearch(t->pair, q->pairs, q->n_pairs, sizeof q->pairs[0], cmp_name)) {
        return 0;
    }
    if (q->n_exchanges &&
        !bsearch(t->exchange, q->exchanges, q->n_exchanges, sizeof q->exchanges[0], cmp_name)) {
        return 0;
    }
    if (q->base[0] && !pair_side_is(t->pair, 0, q->base)) {
        return 0;
    }
    return !q->quote[0] || pair_side_is(t->pair, 1, q->quote);
}

/* Drop the tickers the filters refuse (keep_ticker, then the age filters,
 * as of generated), keeping the order. */
static void drop_refused(struct rates_set *s, const struct rates_query *q, int64_t generated)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        int64_t age = generated - s->t[i].received;
        if (!keep_ticker(&s->t[i], (void *)q) || (q->stale_exclude && age > s->stale_after[i]) ||
            (q->max_age_ms >= 0 && age > q->max_age_ms)) {
            continue;
        }
        s->t[k] = s->t[i];
        s->stale_after[k] = s->stale_after[i];
        k++;
    }
    s->n = k;
}

/*
 * {"pair",["inverted",]"aggregate","exchanges":[...] for set[first..first+n),
 * without the closing brace. inverted: -1 no "inverted" field (the list),
 * 0 or 1 its value (one pair); inverted tickers carry "inverted":true too.
 */
static void pair_json(struct jbuf *b, const struct api_ctx *ctx, const struct rates_set *s,
                      size_t first, size_t n, int64_t generated, int inverted,
                      enum aggregate_use *use)
{
    struct aggregate agg;

    rates_aggregate(ctx, s, first, n, generated, &agg, use);
    jbuf_adds(b, "{\"pair\":");
    jbuf_str(b, s->t[first].pair);
    if (inverted >= 0) {
        jbuf_adds(b, inverted ? ",\"inverted\":true" : ",\"inverted\":false");
    }
    jbuf_adds(b, ",\"aggregate\":");
    rates_aggregate_json(b, s->t + first, n, &agg, use);
    jbuf_adds(b, ",\"exchanges\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) {
            jbuf_adds(b, ",");
        }
        rates_ticker_json(b, &s->t[first + i], generated, s->stale_after[first + i], inverted > 0);
    }
    jbuf_adds(b, "]");
}

/* The /v1/rates body for q as of generated. */
static void render_rates(const struct api_ctx *ctx, const struct rates_query *q, int64_t generated,
                         struct jbuf *b)
{
    struct rates_set s;
    size_t count = 0;
    size_t i = 0;

    rates_set_init(&s);
    if (q->n_pairs) {
        /* A few named pairs: one store_get per exchange each, no full scan.
         * q->pairs is sorted, so the set comes out sorted too. */
        for (size_t p = 0; p < q->n_pairs; p++) {
            rates_collect_pair(ctx, q->pairs[p], &s);
        }
    } else {
        rates_collect(ctx, keep_ticker, (void *)q, &s);
    }
    drop_refused(&s, q, generated);
    enum aggregate_use *use = xmalloc((s.n ? s.n : 1) * sizeof *use);
    jbuf_adds(b, "{\"rates\":[");
    while (i < s.n && (!q->limit || count < (size_t)q->limit)) {
        size_t n = 1;
        while (i + n < s.n && strcmp(s.t[i + n].pair, s.t[i].pair) == 0) {
            n++;
        }
        if (count) {
            jbuf_adds(b, ",");
        }
        pair_json(b, ctx, &s, i, n, generated, -1, use);
        jbuf_adds(b, "}");
        count++;
        i += n;
    }
    jbuf_addf(b, "],\"count\":%zu,\"generated\":%lld,\"next\":", count, (long long)generated);
    if (i < s.n && count) {
        jbuf_str(b, s.t[i - 1].pair);
    } else {
        jbuf_adds(b, "null");
    }
    jbuf_adds(b, "}");
    free(use);
    rates_set_free(&s);
}

void api_route_rates(struct api_req *req, struct api_resp *resp)
{
    const struct api_ctx *ctx = req->ctx;
    struct rates_query *q = xcalloc(1, sizeof *q);
    struct jbuf key;

    jbuf_init(&key);
    if (parse_query(req, resp, q) < 0) {
        goto done;
    }
    pthread_once(&cache_once, cache_init);
    query_key(ctx, q, &key);
    /* Read the generation before rendering (store.h): a render keyed by it
     * used nothing newer. */
    uint64_t gen = store_generation(ctx->store);
    struct render_entry *e = render_cache_get(cache, key.data, gen, req->now_ms);
    if (!e) {
        struct jbuf body;
        jbuf_init(&body);
        render_rates(ctx, q, req->now_ms, &body);
        e = render_cache_put(cache, key.data, gen, req->now_ms, &body);
    }
    render_entry_serve(e, req, resp);
done:
    jbuf_free(&key);
    free(q);
}

/* ------------------------------------------------------------------------
 * One pair
 * --------------------------------------------------------------------- */

/* Replace every ticker of s by its inversion; drop those that cannot be. */
static void invert_all(struct rates_set *s)
{
    for (size_t i = 0; i < s->n;) {
        if (aggregate_invert(&s->t[i], &s->t[i]) < 0) {
            rates_set_remove(s, i);
        } else {
            i++;
        }
    }
}

/* Renders one pair into body; 0, or -1 with resp set to the 404. */
static int render_pair(const struct api_ctx *ctx, const char *pair, int64_t now_ms,
                       struct jbuf *body, struct api_resp *resp)
{
    char swapped[TICKER_PAIR_MAX];
    struct rates_set s;
    bool inverted = false;

    rates_set_init(&s);
    if (!rates_collect_pair(ctx, pair, &s) && ticker_pair_swap(pair, swapped, sizeof swapped) > 0 &&
        rates_collect_pair(ctx, swapped, &s)) {
        inverted = true;
        invert_all(&s);
    }
    if (!s.n) {
        api_error(resp, 404, "unknown_pair", "no exchange lists %s (nor %s)", pair,
                  ticker_pair_swap(pair, swapped, sizeof swapped) > 0 ? swapped : pair);
        rates_set_free(&s);
        return -1;
    }
    enum aggregate_use *use = xmalloc(s.n * sizeof *use);
    pair_json(body, ctx, &s, 0, s.n, now_ms, inverted ? 1 : 0, use);
    jbuf_addf(body, ",\"generated\":%lld}", (long long)now_ms);
    free(use);
    rates_set_free(&s);
    return 0;
}

/* One pair goes through the render cache too: rendering (number
 * formatting above all) is most of its cost, and an answer stays exact
 * while the store's generation has not moved. */
void api_route_rate_pair(struct api_req *req, struct api_resp *resp)
{
    const struct api_ctx *ctx = req->ctx;
    char pair[TICKER_PAIR_MAX];
    char key[TICKER_PAIR_MAX + 8];

    if (api_pair_param(resp, "pair", req->param, pair, sizeof pair) < 0) {
        return;
    }
    pthread_once(&cache_once, cache_init);
    snprintf(key, sizeof key, "pair:%s", pair);
    uint64_t gen = store_generation(ctx->store);
    struct render_entry *e = render_cache_get(cache, key, gen, req->now_ms);
    if (!e) {
        struct jbuf body;
        jbuf_init(&body);
        if (render_pair(ctx, pair, req->now_ms, &body, resp) < 0) {
            jbuf_free(&body);
            return;
        }
        e = render_cache_put(cache, key, gen, req->now_ms, &body);
    }
    render_entry_serve(e, req, resp);
}
