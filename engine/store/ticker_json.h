/*
 * ticker_json: a ticker as the API serves it (DESIGN 3): stored fields plus
 * mid, spread_bps, and age_ms/stale computed as of `generated`, so a cached
 * render stays truthful. Any thread.
 */
#ifndef RX_TICKER_JSON_H
#define RX_TICKER_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/jbuf.h"
#include "ticker.h"

void ticker_json(struct jbuf *b, const struct ticker *t, int64_t generated_ms,
                 int64_t stale_after_ms);

/*
 * The reverse, for tickers read back from Redis (a warm start, an api-only
 * node): the stored fields of ticker_json's object (derived ones are
 * ignored), the decimal text kept as written and checked. Hostile input:
 * returns 0 only for a ticker that passes ticker_validate, else -EINVAL.
 */
int ticker_from_json(const char *text, size_t len, struct ticker *out);
/* The same for an object already parsed (an rx:u event's tickers). */
struct cJSON;
int ticker_from_cjson(const struct cJSON *o, struct ticker *out);

#endif
