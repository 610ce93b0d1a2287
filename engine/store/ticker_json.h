/*
 * ticker_json: a ticker as the API serves it (DESIGN 3): stored fields plus
 * mid, spread_bps, and age_ms/stale computed as of `generated`, so a cached
 * render stays truthful. Any thread.
 */
#ifndef RX_TICKER_JSON_H
#define RX_TICKER_JSON_H

#include <stdint.h>

#include "core/jbuf.h"
#include "ticker.h"

void ticker_json(struct jbuf *b, const struct ticker *t, int64_t generated_ms,
                 int64_t stale_after_ms);

#endif
