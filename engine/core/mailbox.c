/*
 * mailbox: a FIFO of calls under one mutex, and the loop's async doorbell.
 * The loop takes the whole list at once and runs it unlocked, so a call
 * may post again (it runs on the next wake-up, not in this one).
 */
#include "mailbox.h"

#include <pthread.h>
#include <stdlib.h>

#include "loop.h"
#include "xalloc.h"

struct letter {
    struct letter *next;
    mailbox_fn fn;
    void *arg;
};

struct mailbox {
    struct loop_async *async;
    pthread_mutex_t lock;
    struct letter *head, *tail;
};

static void on_async(struct loop_async *async, void *data)
{
    struct mailbox *mb = data;

    pthread_mutex_lock(&mb->lock);
    struct letter *l = mb->head;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->lock);
    while (l) {
        struct letter *next = l->next;
        l->fn(l->arg);
        free(l);
        l = next;
    }
}

struct mailbox *mailbox_new(struct loop *loop)
{
    struct mailbox *mb = xcalloc(1, sizeof *mb);

    pthread_mutex_init(&mb->lock, NULL);
    mb->async = loop_async_new(loop, on_async, mb);
    return mb;
}

void mailbox_free(struct mailbox *mb)
{
    if (!mb) {
        return;
    }
    loop_async_free(mb->async);
    while (mb->head) {
        struct letter *next = mb->head->next;
        free(mb->head);
        mb->head = next;
    }
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}

void mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg)
{
    struct letter *l = xmalloc(sizeof *l);

    l->next = NULL;
    l->fn = fn;
    l->arg = arg;
    pthread_mutex_lock(&mb->lock);
    if (mb->tail) {
        mb->tail->next = l;
    } else {
        mb->head = l;
    }
    mb->tail = l;
    loop_async_send(mb->async);
    pthread_mutex_unlock(&mb->lock);
}
