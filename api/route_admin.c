/*
 * route_admin: POST /v1/admin/reload (admin token), DESIGN 4.1.
 *
 * Reloading touches Lua states and timers, which belong to the loop thread,
 * so the handler only posts a job through the loop bridge (api_loop.h): the
 * request is suspended, the loop runs operators_reload_all, and its summary
 * ({"operators":[{"name","result"}...]}) becomes the 200 answer once every
 * operator's reload has finished. A second reload while one is running is
 * answered 409 at once.
 *
 * Threads: the handler on a libmicrohttpd worker; the job and its callback
 * on the loop thread.
 */
#include "api.h"

#include <string.h>

#include "api_loop.h"
#include "operators.h"

static void reload_done(const char *summary, void *data)
{
    struct api_loop_reply *reply = data;

    if (strncmp(summary, "{\"error\"", 8) == 0) {
        api_loop_complete(reply, 409,
                          "{\"error\":{\"code\":\"reload_running\",\"message\":\"a reload is "
                          "already running; try again when it has finished\"}}");
        return;
    }
    api_loop_complete(reply, 200, summary);
}

static void reload_job(void *job_ctx, struct api_loop_reply *reply)
{
    operators_reload_all(job_ctx, reload_done, reply);
}

void api_route_admin_reload(struct api_req *req, struct api_resp *resp)
{
    if (!req->ctx->ops) {
        api_error(resp, 503, "unavailable", "this node runs no operators");
        return;
    }
    api_loop_post(req, resp, reload_job, req->ctx->ops);
}
