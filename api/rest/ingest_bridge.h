/*
 * ingest_bridge: the bridge from a REST request to the ingest loop thread.
 *
 * A route that needs the loop (the admin reload: Lua, timers, operators)
 * calls ingest_bridge_post from its handler. That suspends the libmicrohttpd
 * connection, queues the job under a mutex and rings the loop's doorbell
 * (loop_async_send); the handler returns at once, so no REST thread ever
 * waits for the loop. The loop thread runs the job, which may finish at
 * once or much later (after callbacks of its own) by calling
 * ingest_bridge_complete exactly once; that stores the answer in the request's
 * response and resumes the connection, and the REST core then sends it.
 *
 *   handler ── ingest_bridge_post ──► [queue] ──async──► job(job_ctx, reply)
 *                                                        │ … later …
 *   response sent ◄── MHD_resume_connection ◄── ingest_bridge_complete(reply)
 *
 * A reply outlives its connection if it has to: at shutdown the REST core
 * calls ingest_bridge_cancel before stopping libmicrohttpd (which must not stop
 * with suspended connections); every waiting request is answered 503 and
 * resumed, later completions of those replies only free them, and posts
 * after that answer 503 without suspending.
 *
 * Threads: ingest_bridge_new and ingest_bridge_free on the loop thread; ingest_bridge_post
 * on a libmicrohttpd thread inside a route handler; jobs run on the loop
 * thread; ingest_bridge_complete and ingest_bridge_cancel on any thread.
 *
 * Ownership: job_ctx is borrowed (it must outlive the job). A reply belongs
 * to this module; the job hands it to ingest_bridge_complete, which frees it.
 * Order at shutdown: rest_free (cancels), then whatever jobs call into
 * (operators_free), then ingest_bridge_free, which frees replies whose jobs never
 * completed and jobs that never ran.
 */
#ifndef RX_INGEST_BRIDGE_H
#define RX_INGEST_BRIDGE_H

#include "route.h"

struct loop;
struct ingest_bridge;
struct ingest_reply;

typedef void (*ingest_job_fn)(void *job_ctx, struct ingest_reply *reply);

/* Loop thread. Borrows loop. */
struct ingest_bridge *ingest_bridge_new(struct loop *loop);
void ingest_bridge_free(struct ingest_bridge *al);

/*
 * From a route handler: run job(job_ctx, reply) on the loop thread and
 * answer the request with what it completes. Sets resp->suspended; the
 * handler must return right after and not touch resp again. Without a
 * bridge (req->ctx->bridge NULL) or after ingest_bridge_cancel, answers 503 at once
 * instead (resp->suspended stays false).
 */
void ingest_bridge_post(struct api_req *req, struct api_resp *resp, ingest_job_fn job, void *job_ctx);

/* Any thread, once per reply: answer with status and a JSON body (copied;
 * NULL = empty) and resume the request. Frees reply. */
void ingest_bridge_complete(struct ingest_reply *reply, int status, const char *json);

/* Any thread: answers every waiting request 503 and resumes it; later posts
 * answer 503 at once. Idempotent. */
void ingest_bridge_cancel(struct ingest_bridge *al);

#endif
