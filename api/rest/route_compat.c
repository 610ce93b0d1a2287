/*
 * route_compat: the old FastAPI service's REST routes, GET /currency and
 * GET /aviable_exchanges (sic: its spelling), DESIGN 4.3. The bodies are
 * currency.c's; errors use the old {"detail": "..."} shape (the route
 * table marks these routes REST_ROUTE_COMPAT).
 *
 * Threads: a libmicrohttpd worker.
 */
#include "route.h"

#include "currency.h"

void api_route_currency(struct api_req *req, struct api_resp *resp)
{
    resp->status = currency_body(req->ctx, api_query(req, "exchange"), api_query(req, "pair"),
                                 req->now_ms, &resp->body);
}

void api_route_aviable_exchanges(struct api_req *req, struct api_resp *resp)
{
    currency_exchanges(req->ctx, &resp->body);
}
