/*
 * ingest_bridge: one mutex guards two lists, the jobs not yet run (FIFO) and
 * every reply not yet completed (so that cancel can find the suspended
 * connections and free can find the forgotten replies).
 *
 * Lock order: this mutex, then libmicrohttpd's own (MHD_suspend_connection
 * and MHD_resume_connection are called with it held). Suspending before the
 * job is queued means the loop can never resume a connection that is not
 * suspended yet; resuming under the mutex means cancel and complete never
 * both resume the same connection.
 */
#include "ingest_bridge.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "core/xalloc.h"

struct ingest_reply {
    struct ingest_bridge *owner;
    struct ingest_reply *next_job;    /* the pending queue */
    struct ingest_reply *prev, *next; /* every outstanding reply */
    struct MHD_Connection *conn;        /* NULL once answered by cancel */
    struct api_resp *resp;              /* the suspended request's answer */
    ingest_job_fn job;
    void *job_ctx;
};

struct ingest_bridge {
    struct loop_async *async;
    pthread_mutex_t lock;
    struct ingest_reply *jobs_head, *jobs_tail;
    struct ingest_reply *live;
    bool closed;
};

static void on_async(struct loop_async *async, void *data)
{
    struct ingest_bridge *al = data;

    pthread_mutex_lock(&al->lock);
    /* After a cancel nobody waits for the answers: the jobs stay queued
     * (and on the live list) until ingest_bridge_free drops them unrun. */
    struct ingest_reply *r = al->closed ? NULL : al->jobs_head;
    if (r) {
        al->jobs_head = al->jobs_tail = NULL;
    }
    pthread_mutex_unlock(&al->lock);
    while (r) {
        /* The job may complete (and free) the reply before it returns. */
        struct ingest_reply *next = r->next_job;
        r->next_job = NULL;
        r->job(r->job_ctx, r);
        r = next;
    }
}

struct ingest_bridge *ingest_bridge_new(struct loop *loop)
{
    struct ingest_bridge *al = xcalloc(1, sizeof *al);

    pthread_mutex_init(&al->lock, NULL);
    al->async = loop_async_new(loop, on_async, al);
    if (!al->async) {
        pthread_mutex_destroy(&al->lock);
        free(al);
        return NULL;
    }
    return al;
}

void ingest_bridge_free(struct ingest_bridge *al)
{
    if (!al) {
        return;
    }
    pthread_mutex_lock(&al->lock);
    al->closed = true;
    loop_async_free(al->async);
    al->async = NULL;
    struct ingest_reply *r = al->live;
    al->live = al->jobs_head = al->jobs_tail = NULL;
    pthread_mutex_unlock(&al->lock);
    while (r) {
        struct ingest_reply *next = r->next;
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

void ingest_bridge_post(struct api_req *req, struct api_resp *resp, ingest_job_fn job, void *job_ctx)
{
    struct ingest_bridge *al = req->ctx->bridge;

    if (!al) {
        answer_unavailable(resp);
        return;
    }
    struct ingest_reply *r = xcalloc(1, sizeof *r);
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

static void unlink_live(struct ingest_bridge *al, struct ingest_reply *r)
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

void ingest_bridge_complete(struct ingest_reply *reply, int status, const char *json)
{
    struct ingest_bridge *al = reply->owner;

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

void ingest_bridge_cancel(struct ingest_bridge *al)
{
    if (!al) {
        return;
    }
    pthread_mutex_lock(&al->lock);
    al->closed = true;
    for (struct ingest_reply *r = al->live; r; r = r->next) {
        if (r->conn) {
            answer_unavailable(r->resp);
            MHD_resume_connection(r->conn);
            r->conn = NULL;
            r->resp = NULL;
        }
    }
    pthread_mutex_unlock(&al->lock);
}
