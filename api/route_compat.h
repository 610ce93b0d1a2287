/*
 * route_compat: the body of the old service's GET /currency, shared by the
 * REST route (route_compat.c) and WS /currency_listener (ws_listener.c),
 * which sends the same body on a timer (DESIGN 4.3).
 *
 * Any thread: it reads the store, the operators' published status and the
 * config only.
 */
#ifndef RX_ROUTE_COMPAT_H
#define RX_ROUTE_COMPAT_H

#include <stdint.h>

#include "api.h"
#include "jbuf.h"

/*
 * The /currency answer for exchange and pair (either may be NULL: all) as
 * of now_ms, appended to body (reset first on an error). Returns 200 with
 * {"result":[...]}, or 400 with the old service's {"detail":"..."} for an
 * unknown exchange or a malformed pair.
 */
int api_compat_currency(const struct api_ctx *ctx, const char *exchange, const char *pair,
                        int64_t now_ms, struct jbuf *body);

#endif
