/*
 * api_loop: one mutex guards two lists, the jobs not yet run (FIFO) and
 * every reply not yet completed (so that cancel can find the suspended
 * connections and free can find the forgotten replies).
 *
 * Lock order: this mutex, then libmicrohttpd's own (MHD_suspend_connection
 * and MHD_resume_connection are called with it held). Suspending before the
 * job is queued means the loop can never resume a connection that is not
 * suspended yet; resuming under the mutex means cancel and complete never
 * both resume the same connection.
 */
#include "api_loop.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "xalloc.h"

struct api_loop_reply {
    struct api_loop *owner;
    struct api_loop_reply *next_job;    /* the pending queue */
    struct api_loop_reply *prev, *next; /* every outstanding reply */
    struct MHD_Connection *conn;        /* NULL once answered by cancel */
    struct api_resp *resp;              /* the suspended request's answer */
    api_loop_job_fn job;
    void *job_ctx;
};

struct api_loop {
    struct loop_async *async;
    pthread_mutex_t lock;
    struct api_loop_reply *jobs_head, *jobs_tail;
    struct api_loop_reply *live;
    bool closed;
};

static void on_async(struct loop_async *async, void *data)
{
    struct api_loop *al = data;

    pthread_mutex_lock(&al->lock);
    /* After a cancel nobody waits for the answers: the jobs stay queued
     * (and on the live list) until api_loop_free drops them unrun. */
    struct api_loop_reply *r = al->closed ? NULL : al->jobs_head;
    if (r) {
        al->jobs_head = al->jobs_tail = NULL;
    }
    pthread_mutex_unlock(&al->lock);
    while (r) {
        /* The job may complete (and free) the reply before it returns. */
        struct api_loop_reply *next = r->next_job;
        r->next_job = NULL;
        r->job(r->job_ctx, r);
        r = next;
    }
}

struct api_loop *api_loop_new(struct loop *loop)
{
    struct api_loop *al = xcalloc(1, sizeof *al);

    pthread_mutex_init(&al->lock, NULL);
    al->async = loop_async_new(loop, on_async, al);
    if (!al->async) {
        pthread_mutex_destroy(&al->lock);
        free(al);
        return NULL;
    }
    return al;
}

void api_loop_free(struct api_loop *al)
{
    if (!al) {
        return;
    }
    pthread_mutex_lock(&al->lock);
    al->closed = true;
    loop_async_free(al->async);
    al->async = NULL;
    struct api_loop_reply *r = al->live;
    al->live = al->jobs_head = al->jobs_tail = NULL;
    pthread_mutex_unlock(&al->lock);
    while (r) {
        struct api_loop_reply *next = r->next;
        free(r);
        r = next;
    }
    pthread_mutex_destroy(&al->lock);
    free(al);
}

/* The 503 of a request the loop will not answer. */
static void answer_unavailable(struct api_resp *resp)
{
    api_error(resp, 503, "unavailable", "the service is shutting down or not fully started");
}

void api_loop_post(struct api_req *req, struct api_resp *resp, api_loop_job_fn job, void *job_ctx)
{
    struct api_loop *al = req->ctx->loop;

    if (!al) {
        answer_unavailable(resp);
        return;
    }
    struct api_loop_reply *r = xcalloc(1, sizeof *r);
    r->owner = al;
    r->conn = req->conn;
    r->resp = resp;
    r->job = job;
    r->job_ctx = job_ctx;

    pthread_mutex_lock(&al->lock);
    if (al->closed) {
        pthread_mutex_unlock(&al->lock);
        free(r);
        answer_unavailable(resp);
        return;
    }
    resp->suspended = true;
    MHD_suspend_connection(req->conn);
    r->next = al->live;
    if (al->live) {
        al->live->prev = r;
    }
    al->live = r;
    if (al->jobs_tail) {
        al->jobs_tail->next_job = r;
    } else {
        al->jobs_head = r;
    }
    al->jobs_tail = r;
    loop_async_send(al->async);
    pthread_mutex_unlock(&al->lock);
}

static void unlink_live(struct api_loop *al, struct api_loop_reply *r)
{
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        al->live = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    }
    r->prev = r->next = NULL;
}

void api_loop_complete(struct api_loop_reply *reply, int status, const char *json)
{
    struct api_loop *al = reply->owner;

    pthread_mutex_lock(&al->lock);
    unlink_live(al, reply);
    if (reply->conn) {
        struct api_resp *resp = reply->resp;
        resp->status = status;
        resp->content_type = "application/json";
        jbuf_reset(&resp->body);
        if (json) {
            jbuf_adds(&resp->body, json);
        }
        MHD_resume_connection(reply->conn);
    }
    pthread_mutex_unlock(&al->lock);
    free(reply);
}

void api_loop_cancel(struct api_loop *al)
{
    if (!al) {
        return;
    }
    pthread_mutex_lock(&al->lock);
    al->closed = true;
    for (struct api_loop_reply *r = al->live; r; r = r->next) {
        if (r->conn) {
            answer_unavailable(r->resp);
            MHD_resume_connection(r->conn);
            r->conn = NULL;
            r->resp = NULL;
        }
    }
    pthread_mutex_unlock(&al->lock);
}
