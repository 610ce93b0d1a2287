/* ticker_json: field order follows the table in DESIGN 3. */
#include "ticker_json.h"

void ticker_json(struct jbuf *b, const struct ticker *t, int64_t generated_ms,
                 int64_t stale_after_ms)
{
    int64_t age = generated_ms - t->received;

    jbuf_adds(b, "{\"exchange\":");
    jbuf_str(b, t->exchange);
    jbuf_adds(b, ",\"pair\":");
    jbuf_str(b, t->pair);
    jbuf_adds(b, ",\"symbol\":");
    jbuf_str(b, t->symbol);
    jbuf_adds(b, ",\"bid\":");
    jbuf_str_or_null(b, t->bid);
    jbuf_adds(b, ",\"ask\":");
    jbuf_str_or_null(b, t->ask);
    jbuf_adds(b, ",\"bid_size\":");
    jbuf_str_or_null(b, t->bid_size);
    jbuf_adds(b, ",\"ask_size\":");
    jbuf_str_or_null(b, t->ask_size);
    jbuf_adds(b, ",\"last\":");
    jbuf_str_or_null(b, t->last);
    jbuf_adds(b, ",\"volume\":");
    jbuf_str_or_null(b, t->volume);
    jbuf_adds(b, ",\"mid\":");
    jbuf_num(b, ticker_mid(t));
    jbuf_adds(b, ",\"spread_bps\":");
    jbuf_num(b, ticker_spread_bps(t));
    if (t->ts == TICKER_TS_NONE) {
        jbuf_adds(b, ",\"ts\":null");
    } else {
        jbuf_addf(b, ",\"ts\":%lld", (long long)t->ts);
    }
    jbuf_addf(b, ",\"received\":%lld,\"age_ms\":%lld,\"stale\":%s,\"source\":\"%s\",\"v\":%llu}",
              (long long)t->received, (long long)age, age > stale_after_ms ? "true" : "false",
              t->source == TICKER_SOURCE_STREAM ? "stream" : "poll", (unsigned long long)t->v);
}
