/*
 * api_loop: the bridge from a REST request to the loop thread.
 *
 * A route that needs the loop (the admin reload: Lua, timers, operators)
 * calls api_loop_post from its handler. That suspends the libmicrohttpd
 * connection, queues the job under a mutex and rings the loop's doorbell
 * (loop_async_send); the handler returns at once, so no REST thread ever
 * waits for the loop. The loop thread runs the job, which may finish at
 * once or much later (after callbacks of its own) by calling
 * api_loop_complete exactly once; that stores the answer in the request's
 * response and resumes the connection, and the REST core then sends it.
 *
 *   handler ── api_loop_post ──► [queue] ──async──► job(job_ctx, reply)
 *                                                        │ … later …
 *   response sent ◄── MHD_resume_connection ◄── api_loop_complete(reply)
 *
 * A reply outlives its connection if it has to: at shutdown the REST core
 * calls api_loop_cancel before stopping libmicrohttpd (which must not stop
 * with suspended connections); every waiting request is answered 503 and
 * resumed, later completions of those replies only free them, and posts
 * after that answer 503 without suspending.
 *
 * Threads: api_loop_new and api_loop_free on the loop thread; api_loop_post
 * on a libmicrohttpd thread inside a route handler; jobs run on the loop
 * thread; api_loop_complete and api_loop_cancel on any thread.
 *
 * Ownership: job_ctx is borrowed (it must outlive the job). A reply belongs
 * to this module; the job hands it to api_loop_complete, which frees it.
 * Order at shutdown: rest_free (cancels), then whatever jobs call into
 * (operators_free), then api_loop_free, which frees replies whose jobs never
 * completed and jobs that never ran.
 */
#ifndef RX_API_LOOP_H
#define RX_API_LOOP_H

#include "api.h"

struct loop;
struct api_loop;
struct api_loop_reply;

typedef void (*api_loop_job_fn)(void *job_ctx, struct api_loop_reply *reply);

/* Loop thread. Borrows loop. */
struct api_loop *api_loop_new(struct loop *loop);
void api_loop_free(struct api_loop *al);

/*
 * From a route handler: run job(job_ctx, reply) on the loop thread and
 * answer the request with what it completes. Sets resp->suspended; the
 * handler must return right after and not touch resp again. Without a
 * bridge (req->ctx->loop NULL) or after api_loop_cancel, answers 503 at once
 * instead (resp->suspended stays false).
 */
void api_loop_post(struct api_req *req, struct api_resp *resp, api_loop_job_fn job, void *job_ctx);

/* Any thread, once per reply: answer with status and a JSON body (copied;
 * NULL = empty) and resume the request. Frees reply. */
void api_loop_complete(struct api_loop_reply *reply, int status, const char *json);

/* Any thread: answers every waiting request 503 and resumes it; later posts
 * answer 503 at once. Idempotent. */
void api_loop_cancel(struct api_loop *al);

#endif
