/*
 * mailbox: calls another thread asks a loop to make — the one way work
 * crosses from one loop thread (or a libmicrohttpd thread) to another.
 *
 * mailbox_post queues fn(arg) under a mutex and rings the loop's doorbell
 * (loop_async_send); the loop runs the queued calls in order, outside the
 * mutex. The poster never waits for the loop: a busy loop delays the call,
 * never the caller.
 *
 * Threads: mailbox_new and mailbox_free on the thread that owns the loop
 * (or after that loop has stopped for good); mailbox_post on any thread;
 * fn runs on the loop's thread. Ownership: arg is the poster's; a call
 * still queued when the mailbox is freed is dropped unrun, so an arg that
 * owns memory needs another way to be freed (ingest_bridge keeps a list).
 */
#ifndef RX_MAILBOX_H
#define RX_MAILBOX_H

struct loop;
struct mailbox;

typedef void (*mailbox_fn)(void *arg);

struct mailbox *mailbox_new(struct loop *loop);
void mailbox_free(struct mailbox *mb);

/* Any thread: run fn(arg) on the mailbox's loop soon. */
void mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg);

#endif
