/*
 * route_health: GET /healthz (the process is alive and answering) and
 * GET /readyz (ready to serve: every enabled operator has produced data or
 * reported an error, DESIGN 4.1; 503 while starting or draining). Both are
 * public by default and carry no rate data, so a load balancer can probe
 * them without a token.
 *
 * Threads: a libmicrohttpd worker; reads the board.
 */
#include "route.h"

#include <stdlib.h>

#include "store/board.h"

void api_route_healthz(struct api_req *req, struct api_resp *resp)
{
    int64_t up = req->now_ms - req->ctx->started_ms;

    jbuf_addf(&resp->body, "{\"status\":\"ok\",\"uptime_s\":%lld}",
              (long long)(up > 0 ? up / 1000 : 0));
}

void api_route_readyz(struct api_req *req, struct api_resp *resp)
{
    const struct api_ctx *ctx = req->ctx;
    struct jbuf *b = &resp->body;

    if (atomic_load(&ctx->draining)) {
        resp->status = 503;
        jbuf_adds(b, "{\"status\":\"draining\"}");
        return;
    }
    if (!ctx->board || board_ready(ctx->board)) {
        jbuf_adds(b, "{\"status\":\"ready\"}");
        return;
    }
    size_t n;
    struct board_status *st = board_statuses(ctx->board, &n);
    size_t listed = 0;
    resp->status = 503;
    jbuf_adds(b, "{\"status\":\"starting\",\"waiting\":[");
    for (size_t i = 0; i < n; i++) {
        if (st[i].state == BOARD_STARTING) {
            jbuf_adds(b, listed++ ? "," : "");
            jbuf_str(b, st[i].name);
        }
    }
    jbuf_adds(b, "]}");
    free(st);
}
