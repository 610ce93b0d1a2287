/*
 * currency: the bodies of the old service's GET /currency and
 * GET /aviable_exchanges (DESIGN 4.3), shared by the REST routes
 * (rest/route_compat.c) and WS /currency_listener
 * (ws/currency_listener.c), which sends the /currency body on a timer.
 *
 * Any thread: it reads the store, the board and the config only.
 */
#ifndef RX_CURRENCY_H
#define RX_CURRENCY_H

#include <stdint.h>

#include "api.h"
#include "core/jbuf.h"

/*
 * The /currency answer for exchange and pair (either may be NULL: all) as
 * of now_ms, appended to body (reset first on an error). Returns 200 with
 * {"result":[...]}, or 400 with the old service's {"detail":"..."} for an
 * unknown exchange or a malformed pair.
 */
int currency_body(const struct api_ctx *ctx, const char *exchange, const char *pair, int64_t now_ms,
                  struct jbuf *body);

/* {"result":[names]}: every exchange with data or an operator, sorted. */
void currency_exchanges(const struct api_ctx *ctx, struct jbuf *body);

#endif
