/* ws_render: a direct-mapped cache of rendered tickers (see ws_render.h). */
#include "ws_render.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/jbuf.h"
#include "store/ticker_json.h"
#include "core/xalloc.h"
#include "core/hash.h"

#define SLOTS 1024 /* a power of two */

struct slot {
    bool used;
    struct ticker t;
    int64_t wall_ms;
    int64_t stale_after_ms;
    struct jbuf json; /* ticker_json's output, opening brace included */
};

struct ws_render {
    struct slot slot[SLOTS];
};

struct ws_render *ws_render_new(void)
{
    struct ws_render *r = xcalloc(1, sizeof *r);
    for (size_t i = 0; i < SLOTS; i++) {
        jbuf_init(&r->slot[i].json);
    }
    return r;
}

void ws_render_free(struct ws_render *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; i < SLOTS; i++) {
        jbuf_free(&r->slot[i].json);
    }
    free(r);
}

static size_t slot_of(const struct ticker *t)
{
    return (size_t)(hash_key(t->exchange, t->pair) & (SLOTS - 1));
}

/* Every field ticker_json reads. */
static bool same_ticker(const struct ticker *a, const struct ticker *b)
{
    return a->v == b->v && a->received == b->received && a->ts == b->ts &&
           a->source == b->source && a->bid_value == b->bid_value &&
           a->ask_value == b->ask_value && strcmp(a->exchange, b->exchange) == 0 &&
           strcmp(a->pair, b->pair) == 0 && strcmp(a->symbol, b->symbol) == 0 &&
           strcmp(a->bid, b->bid) == 0 && strcmp(a->ask, b->ask) == 0 &&
           strcmp(a->bid_size, b->bid_size) == 0 && strcmp(a->ask_size, b->ask_size) == 0 &&
           strcmp(a->last, b->last) == 0 && strcmp(a->volume, b->volume) == 0;
}

const char *ws_render_ticker(struct ws_render *r, const struct ticker *t, int64_t wall_ms,
                             int64_t stale_after_ms, size_t *len)
{
    struct slot *s = &r->slot[slot_of(t)];

    if (!s->used || s->wall_ms != wall_ms || s->stale_after_ms != stale_after_ms ||
        !same_ticker(&s->t, t)) {
        jbuf_reset(&s->json);
        ticker_json(&s->json, t, wall_ms, stale_after_ms);
        s->t = *t;
        s->wall_ms = wall_ms;
        s->stale_after_ms = stale_after_ms;
        s->used = true;
    }
    *len = s->json.len - 1;
    return s->json.data + 1;
}
