/*
 * currency_listener: WS /currency_listener (design in currency_listener.h). Two loop
 * timers per connection: the tick and the deadline. The body itself comes
 * from currency_body, the same function GET /currency answers with,
 * so the two cannot drift apart.
 */
#include "currency_listener.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "currency.h"
#include "core/xalloc.h"

#define DEFAULT_EVERY_MS 1000
#define MIN_EVERY_MS 100
#define MAX_EVERY_MS 60000

struct currency_listener {
    const struct api_ctx *ctx;
    struct currency_listener_params params;
    struct loop_timer *tick;
    struct loop_timer *deadline;
    currency_listener_wake_fn wake;
    void *data;
    bool due;
    bool done;
    uint64_t skipped;
};

/* Seconds as text to clamped milliseconds; -1 if it is not a number. */
static int64_t every_ms(const char *text)
{
    char *end;
    double s;

    if (!text) {
        return DEFAULT_EVERY_MS;
    }
    s = strtod(text, &end);
    if (end == text || *end != '\0' || !isfinite(s)) {
        return -1;
    }
    int64_t ms = (int64_t)llround(s * 1000.0);
    return ms < MIN_EVERY_MS ? MIN_EVERY_MS : ms > MAX_EVERY_MS ? MAX_EVERY_MS : ms;
}

int currency_listener_parse(const struct api_ctx *ctx, const char *exchange, const char *pair,
                      const char *frequency, int64_t now_ms, struct currency_listener_params *out,
                      struct jbuf *err)
{
    int64_t every = every_ms(frequency);

    memset(out, 0, sizeof *out);
    if (every < 0) {
        jbuf_reset(err);
        jbuf_adds(err,
                  "{\"detail\":\"frequency_timeout must be a number of seconds (0.1 to 60)\"}");
        return 400;
    }
    /* The same checks as GET /currency, by asking it once. */
    if (currency_body(ctx, exchange, pair, now_ms, err) != 200) {
        return 400;
    }
    jbuf_reset(err);
    snprintf(out->exchange, sizeof out->exchange, "%s", exchange ? exchange : "");
    snprintf(out->pair, sizeof out->pair, "%s", pair ? pair : "");
    out->every_ms = (uint64_t)every;
    return 0;
}

static void on_tick(struct loop_timer *timer, void *data)
{
    struct currency_listener *l = data;
    if (l->due) {
        l->skipped++;
        return;
    }
    l->due = true;
    l->wake(l->data);
}

static void on_deadline(struct loop_timer *timer, void *data)
{
    struct currency_listener *l = data;
    l->done = true;
    loop_timer_stop(l->tick);
    l->wake(l->data);
}

struct currency_listener *currency_listener_new(struct loop *loop, const struct api_ctx *ctx,
                                    const struct currency_listener_params *params, uint64_t max_ms,
                                    currency_listener_wake_fn wake, void *data)
{
    struct currency_listener *l = xcalloc(1, sizeof *l);

    l->ctx = ctx;
    l->params = *params;
    l->wake = wake;
    l->data = data;
    l->due = true;
    l->tick = loop_timer_new(loop, on_tick, l);
    l->deadline = loop_timer_new(loop, on_deadline, l);
    loop_timer_start(l->tick, params->every_ms, params->every_ms);
    loop_timer_start(l->deadline, max_ms, 0);
    return l;
}

void currency_listener_free(struct currency_listener *l)
{
    if (!l) {
        return;
    }
    loop_timer_free(l->tick);
    loop_timer_free(l->deadline);
    free(l);
}

enum currency_listener_next currency_listener_next(struct currency_listener *l, int64_t wall_ms, struct jbuf *out)
{
    if (l->done) {
        return CURRENCY_LISTENER_DONE;
    }
    if (!l->due) {
        return CURRENCY_LISTENER_IDLE;
    }
    l->due = false;
    /* An exchange that disappeared since the upgrade makes this a 400
     * body ({"detail"}); the client sees it, as the old service's would.
     * Rendered aside: an error body resets its buffer, out may hold a
     * prefix of the caller's. */
    struct jbuf body;
    jbuf_init(&body);
    currency_body(l->ctx, l->params.exchange[0] ? l->params.exchange : NULL,
                        l->params.pair[0] ? l->params.pair : NULL, wall_ms, &body);
    jbuf_add(out, body.data, body.len);
    jbuf_free(&body);
    return CURRENCY_LISTENER_SEND;
}

uint64_t currency_listener_skipped(const struct currency_listener *l)
{
    return l->skipped;
}
