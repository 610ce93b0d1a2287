/*
 * currency: the bodies of the old FastAPI service's GET /currency and
 * GET /aviable_exchanges (DESIGN 4.3), kept so that its clients keep
 * working; served by rest/route_compat.c and, on a timer, by WS
 * /currency_listener (ws/currency_listener.c).
 *
 * Compatibility means the same keys, in the same order, with the same JSON
 * types: the old service was Python, so `currency_rate` and
 * `last_update_timestamp` were floats and a client may have parsed them as
 * such; here they are always rendered with a decimal point (`6622.0`, never
 * `6622`), which is the one place where the API departs from the shortest
 * positional form of DESIGN 3. Errors use FastAPI's `{"detail": "..."}` shape,
 * not the v1 `{"error": {...}}` one, and the 400 messages are the old ones.
 *
 * What the old service kept was one rate per (exchange, pair), deleted after
 * 10 s without an update; here it is the mid of the stored ticker, and stale
 * tickers (age over the exchange's stale_after_ms) are left out. A pair asked
 * for as QUOTE_BASE that an exchange only lists as BASE_QUOTE is answered
 * with 1/mid under the name that was asked for, as the old service did for
 * USDT_BTC. Pairs are sorted by name and exchanges by name within a pair, so
 * the answer is deterministic (the old one followed dict order).
 *
 * Threads: any; reads the store, the board and the config only.
 */
#include "currency.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/decimal.h"
#include "store/board.h"
#include "rates_view.h"
#include "store/store.h"
#include "store/ticker.h"
#include "core/xalloc.h"

/* ---- Exchange names ---------------------------------------------------- */

/* Exchange names; sorted and without duplicates once names_collect is done. */
struct compat_names {
    char (*name)[TICKER_EXCHANGE_MAX];
    size_t n;
};

static int name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void names_add(struct compat_names *names, size_t *cap, const char *name)
{
    if (names->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        names->name = xrealloc(names->name, *cap * sizeof *names->name);
    }
    snprintf(names->name[names->n++], TICKER_EXCHANGE_MAX, "%s", name);
}

/* Appends the names of the exchanges on the board (they may have no data). */
static void names_from_board(const struct board *board, struct compat_names *names, size_t *cap)
{
    size_t want = 64;
    char(*buf)[TICKER_EXCHANGE_MAX] = NULL;
    size_t n;

    if (!board) {
        return;
    }
    for (;;) {
        buf = xrealloc(buf, want * sizeof *buf);
        n = board_names(board, buf, want);
        if (n <= want) {
            break;
        }
        want = n + 8;
    }
    for (size_t i = 0; i < n; i++) {
        names_add(names, cap, buf[i]);
    }
    free(buf);
}

/* Appends the names the store holds data or statistics for (on a role=api
 * node they come from Redis, with no operator running locally). */
static void names_from_store(const struct store *store, struct compat_names *names, size_t *cap)
{
    size_t want = 64;
    char(*buf)[TICKER_EXCHANGE_MAX] = NULL;
    size_t n;

    if (!store) {
        return;
    }
    for (;;) {
        buf = xrealloc(buf, want * sizeof *buf);
        n = store_exchange_names(store, buf, want);
        if (n < want) {
            break;
        }
        want *= 2;
    }
    for (size_t i = 0; i < n; i++) {
        names_add(names, cap, buf[i]);
    }
    free(buf);
}

/*
 * The exchanges the store has data for and, with all set, also every
 * operator this node runs (with or without data); sorted, without
 * duplicates. The caller frees names->name. The /currency path asks the
 * board only to tell an exchange without data from an unknown one.
 */
static void names_collect(const struct api_ctx *ctx, bool all, struct compat_names *names)
{
    size_t cap = 0, out = 0;

    names->name = NULL;
    names->n = 0;
    if (all) {
        names_from_board(ctx->board, names, &cap);
    }
    names_from_store(ctx->store, names, &cap);
    if (!names->n) {
        return;
    }
    qsort(names->name, names->n, sizeof *names->name, name_cmp);
    for (size_t i = 0; i < names->n; i++) {
        if (out == 0 || strcmp(names->name[out - 1], names->name[i]) != 0) {
            memmove(names->name[out++], names->name[i], TICKER_EXCHANGE_MAX);
        }
    }
    names->n = out;
}

static bool names_has(const struct compat_names *names, const char *name)
{
    if (!names->n) {
        return false;
    }
    return bsearch(name, names->name, names->n, sizeof *names->name, name_cmp) != NULL;
}

/* Whether an operator of that name runs here (it may have no data yet). */
static bool operator_known(const struct api_ctx *ctx, const char *name)
{
    struct compat_names ops;
    size_t cap = 0;
    bool known;

    ops.name = NULL;
    ops.n = 0;
    names_from_board(ctx->board, &ops, &cap);
    known = false;
    for (size_t i = 0; i < ops.n && !known; i++) {
        known = strcmp(ops.name[i], name) == 0;
    }
    free(ops.name);
    return known;
}

/* ---- Rendering --------------------------------------------------------- */

/*
 * A JSON float the way Python's json module writes one: always with a
 * decimal point (or an exponent), so `6622` becomes `6622.0`; null when the
 * value is not finite. Digits are the shortest that read back as v.
 */
static void compat_float(struct jbuf *b, double v)
{
    char text[400];
    int n;

    if (!isfinite(v)) {
        jbuf_adds(b, "null");
        return;
    }
    n = decimal_from_double(v, text, sizeof text - 2);
    if (n < 0) {
        /* Only for magnitudes beyond any price: fall back to an exponent. */
        n = snprintf(text, sizeof text, "%.17g", v);
    }
    jbuf_add(b, text, (size_t)n);
    if (!strpbrk(text, ".eE")) {
        jbuf_adds(b, ".0");
    }
}

/* A FastAPI-style error body: {"detail": message}. */
static void compat_detail(struct jbuf *body, const char *message)
{
    jbuf_reset(body);
    jbuf_adds(body, "{\"detail\":");
    jbuf_str(body, message);
    jbuf_adds(body, "}");
}

/* ---- GET /currency ------------------------------------------------------ */

/* One rate of the answer: `pair` as the client will see it. */
struct compat_rate {
    char pair[TICKER_PAIR_MAX];
    char exchange[TICKER_EXCHANGE_MAX];
    double rate;
    int64_t received;
};

struct compat_rates {
    struct compat_rate *v;
    size_t n, cap;
};

/* What a scan of the store needs to decide which tickers to keep. */
struct compat_scan {
    const struct config *cfg;
    int64_t now_ms;
    struct compat_rates *out;
};

/* Stale is what v1 calls stale: the per-operator threshold (rates_view.h). */
static bool is_fresh(const struct config *cfg, const struct ticker *t, int64_t now_ms)
{
    return now_ms - t->received <= rates_stale_after(cfg, t->exchange);
}

static void rates_add(struct compat_rates *rates, const char *pair, const struct ticker *t,
                      double rate)
{
    if (rates->n == rates->cap) {
        rates->cap = rates->cap ? rates->cap * 2 : 64;
        rates->v = xrealloc(rates->v, rates->cap * sizeof *rates->v);
    }
    struct compat_rate *r = &rates->v[rates->n++];
    snprintf(r->pair, sizeof r->pair, "%s", pair);
    snprintf(r->exchange, sizeof r->exchange, "%s", t->exchange);
    r->rate = rate;
    r->received = t->received;
}

static int scan_one(const struct ticker *t, void *arg)
{
    struct compat_scan *scan = arg;
    if (is_fresh(scan->cfg, t, scan->now_ms)) {
        rates_add(scan->out, t->pair, t, ticker_mid(t));
    }
    return 0;
}

/*
 * The rate of `pair` on one exchange: its own ticker's mid if it lists the
 * pair, else 1/mid of the swapped pair. Stale tickers count as absent, so a
 * stale direct ticker does not hide a fresh inverted one.
 */
static void rate_for_pair(const struct api_ctx *ctx, int64_t now_ms, const char *exchange,
                          const char *pair, const char *swapped, struct compat_rates *out)
{
    struct ticker t;

    if (store_get(ctx->store, exchange, pair, &t) == 0 && is_fresh(ctx->cfg, &t, now_ms)) {
        rates_add(out, pair, &t, ticker_mid(&t));
        return;
    }
    if (store_get(ctx->store, exchange, swapped, &t) == 0 && is_fresh(ctx->cfg, &t, now_ms)) {
        double mid = ticker_mid(&t);
        rates_add(out, pair, &t, mid > 0 ? 1.0 / mid : NAN);
    }
}

static int rate_cmp(const void *a, const void *b)
{
    const struct compat_rate *x = a, *y = b;
    int c = strcmp(x->pair, y->pair);
    return c ? c : strcmp(x->exchange, y->exchange);
}

/* {"result":[{"pair_name":...,"exchanges":[{...}]}]}, rates sorted. */
static void render_currency(struct jbuf *b, const struct compat_rates *rates)
{
    jbuf_adds(b, "{\"result\":[");
    for (size_t i = 0; i < rates->n; i++) {
        const struct compat_rate *r = &rates->v[i];
        bool first_of_pair = i == 0 || strcmp(rates->v[i - 1].pair, r->pair) != 0;
        if (first_of_pair) {
            jbuf_adds(b, i ? "]},{\"pair_name\":" : "{\"pair_name\":");
            jbuf_str(b, r->pair);
            jbuf_adds(b, ",\"exchanges\":[");
        } else {
            jbuf_adds(b, ",");
        }
        jbuf_adds(b, "{\"exchange\":");
        jbuf_str(b, r->exchange);
        jbuf_adds(b, ",\"currency_rate\":");
        compat_float(b, r->rate);
        jbuf_adds(b, ",\"last_update_timestamp\":");
        compat_float(b, (double)r->received / 1000.0);
        jbuf_adds(b, "}");
    }
    jbuf_adds(b, rates->n ? "]}]}" : "]}");
}

/*
 * GET /currency?exchange=&pair= — both optional. An unknown exchange or a
 * pair that is not BASE_QUOTE (also BASE/QUOTE, BASE-QUOTE, any case) is a
 * 400 with the old service's messages; a well-formed pair nobody lists is an
 * empty result.
 */
int currency_body(const struct api_ctx *ctx, const char *exchange, const char *pair_in,
                        int64_t now_ms, struct jbuf *body)
{
    char pair[TICKER_PAIR_MAX], swapped[TICKER_PAIR_MAX], msg[160];
    struct compat_names names;
    struct compat_rates rates = {0};
    int status = 400;

    names_collect(ctx, false, &names);
    if (exchange && !names_has(&names, exchange) && !operator_known(ctx, exchange)) {
        snprintf(msg, sizeof msg, "passed exchange name(%.64s) not found in a system", exchange);
        compat_detail(body, msg);
        goto done;
    }
    if (pair_in && (ticker_pair_canonical(pair_in, pair, sizeof pair) < 0 ||
                    ticker_pair_swap(pair, swapped, sizeof swapped) < 0)) {
        compat_detail(body, "pair string should be in format COIN1_COIN2 (also COIN1/COIN2 or "
                            "COIN1-COIN2; letters and digits, 1 to 15 each)");
        goto done;
    }

    if (pair_in) {
        for (size_t i = 0; i < names.n; i++) {
            if (!exchange || strcmp(exchange, names.name[i]) == 0) {
                rate_for_pair(ctx, now_ms, names.name[i], pair, swapped, &rates);
            }
        }
    } else {
        struct compat_scan scan = {.cfg = ctx->cfg, .now_ms = now_ms, .out = &rates};
        store_scan(ctx->store, exchange, scan_one, &scan);
    }
    if (rates.n) {
        qsort(rates.v, rates.n, sizeof *rates.v, rate_cmp);
    }
    status = 200;
    render_currency(body, &rates);
done:
    free(rates.v);
    free(names.name);
    return status;
}

void currency_exchanges(const struct api_ctx *ctx, struct jbuf *body)
{
    struct compat_names names;

    names_collect(ctx, true, &names);
    jbuf_adds(body, "{\"result\":[");
    for (size_t i = 0; i < names.n; i++) {
        if (i) {
            jbuf_adds(body, ",");
        }
        jbuf_str(body, names.name[i]);
    }
    jbuf_adds(body, "]}");
    free(names.name);
}
