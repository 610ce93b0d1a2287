/*
 * ws_render: a small cache of rendered rate tickers shared by a WebSocket
 * server's sessions, so a ticker sent to many subscribers is rendered once
 * per millisecond instead of once per subscriber.
 *
 * An entry is reused only when every input of ticker_json is the same:
 * the ticker's fields (key, v, prices, times, source), the wall_ms it is
 * described as of and the stale threshold. age_ms and stale therefore stay
 * exactly what a fresh render would say; a new millisecond renders again.
 *
 * Threads: the owner's (the loop thread). The returned bytes live until
 * the next ws_render_ticker call on the same cache.
 */
#ifndef RX_WS_RENDER_H
#define RX_WS_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "store/ticker.h"

struct ws_render;

struct ws_render *ws_render_new(void);
void ws_render_free(struct ws_render *r);

/* ticker_json(t, wall_ms, stale_after_ms) without its opening '{'; *len
 * is set to the length. */
const char *ws_render_ticker(struct ws_render *r, const struct ticker *t, int64_t wall_ms,
                             int64_t stale_after_ms, size_t *len);

#endif
