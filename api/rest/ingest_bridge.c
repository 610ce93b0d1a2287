/*
 * ingest_bridge: jobs reach the ingest loop through its mailbox; one mutex
 * guards the list of every reply not yet completed (so that cancel can
 * find the suspended connections and free can find the forgotten replies).
 *
 * Lock order: this mutex, then libmicrohttpd's own (MHD_suspend_connection
 * and MHD_resume_connection are called with it held). Suspending before the
 * job is posted means the loop can never resume a connection that is not
 * suspended yet; resuming under the mutex means cancel and complete never
 * both resume the same connection.
 */
#include "ingest_bridge.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/mailbox.h"
#include "core/xalloc.h"

struct ingest_reply {
    struct ingest_bridge *owner;
    struct ingest_reply *prev, *next; /* every outstanding reply */
    struct MHD_Connection *conn;      /* NULL once answered by cancel */
    struct api_resp *resp;            /* the suspended request's answer */
    ingest_job_fn job;
    void *job_ctx;
};

struct ingest_bridge {
    struct mailbox *mailbox;
    pthread_mutex_t lock;
    struct ingest_reply *live;
    bool closed;
};

/* On the ingest loop. After a cancel nobody waits for the answer: the
 * reply stays on the live list, unrun, until ingest_bridge_free. */
static void run_job(void *arg)
{
    struct ingest_reply *r = arg;

    pthread_mutex_lock(&r->owner->lock);
    bool closed = r->owner->closed;
    pthread_mutex_unlock(&r->owner->lock);
    if (!closed) {
        r->job(r->job_ctx, r); /* may complete (and free) r before it returns */
    }
}

struct ingest_bridge *ingest_bridge_new(struct loop *loop)
{
    struct ingest_bridge *al = xcalloc(1, sizeof *al);

    pthread_mutex_init(&al->lock, NULL);
    al->mailbox = mailbox_new(loop);
    return al;
}

void ingest_bridge_free(struct ingest_bridge *al)
{
    if (!al) {
        return;
    }
    pthread_mutex_lock(&al->lock);
    al->closed = true;
    struct ingest_reply *r = al->live;
    al->live = NULL;
    pthread_mutex_unlock(&al->lock);
    mailbox_free(al->mailbox);
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
    mailbox_post(al->mailbox, run_job, r);
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
