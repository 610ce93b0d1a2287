/*
 * route_admin: POST /v1/admin/reload (admin token), DESIGN 4.1.
 *
 * Reloading touches Lua states and timers, which belong to the ingest
 * loop, so the handler only posts a job through the bridge
 * (ingest_bridge.h): the request is suspended, the ingest loop runs the
 * engine's reload (api_ctx.reload), and its summary
 * ({"operators":[{"name","result"}...]}) becomes the 200 answer once every
 * operator's reload has finished. A second reload while one is running is
 * answered 409 at once.
 *
 * Threads: the handler on a libmicrohttpd worker; the job and its callback
 * on the ingest loop.
 */
#include "route.h"

#include <errno.h>

#include "ingest_bridge.h"

static void reload_done(int status, const char *summary, void *data)
{
    struct ingest_reply *reply = data;

    if (status == -EBUSY) {
        ingest_bridge_complete(reply, 409,
                               "{\"error\":{\"code\":\"reload_running\",\"message\":\"a reload is "
                               "already running; try again when it has finished\"}}");
        return;
    }
    ingest_bridge_complete(reply, 200, summary);
}

static void reload_job(void *job_ctx, struct ingest_reply *reply)
{
    const struct api_ctx *ctx = job_ctx;
    ctx->reload(ctx->reload_owner, reload_done, reply);
}

void api_route_admin_reload(struct api_req *req, struct api_resp *resp)
{
    if (!req->ctx->reload) {
        api_error(resp, 503, "unavailable", "this node runs no operators");
        return;
    }
    ingest_bridge_post(req, resp, reload_job, (void *)req->ctx);
}
