/*
 * loop: the engine's event loop, a small facade over libuv.
 *
 * One loop runs on the main thread and owns all I/O: curl multi, the
 * libwebsockets contexts, hiredis, the front door and every lua_State. This
 * file and loop.c are the only code that calls libuv; everything else uses
 * the handles below, so the loop's rules live in one place.
 *
 * Threads: every function here must be called on the loop thread, except
 * loop_async_send(), which is the one doorbell other threads may ring.
 *
 * Ownership: each *_new() returns a handle owned by the caller; *_free()
 * stops it and releases it once libuv has let go of it (after the close
 * callback), so a handle may be freed from inside its own callback.
 * *_free(NULL) is a no-op.
 */
#ifndef RX_LOOP_H
#define RX_LOOP_H

#include <stdint.h>

struct addrinfo;
struct loop;
struct loop_timer;
struct loop_io;
struct loop_async;
struct loop_check;
struct loop_signal;
struct loop_watch;
struct loop_dns;

struct loop *loop_new(void);
/* Closes every handle still open, runs their close callbacks and frees the
 * loop. Returns 0, or a negative code if handles stayed open. */
int loop_free(struct loop *loop);
/* Runs until loop_stop() or until nothing is left to do. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);
/* The libuv loop, for libraries that must share it (libwebsockets'
 * foreign-loop mode). Only glue files for such libraries may use it. */
void *loop_native(struct loop *loop);
/* Monotonic milliseconds, cached at the start of this loop iteration. */
uint64_t loop_now_ms(struct loop *loop);
/* Milliseconds since the epoch, read now (for timestamps that leave the
 * process). */
int64_t loop_wall_ms(void);

typedef void (*loop_timer_fn)(struct loop_timer *timer, void *data);
struct loop_timer *loop_timer_new(struct loop *loop, loop_timer_fn fn, void *data);
/* First fire after timeout_ms, then every repeat_ms (0 = once). Restarting a
 * running timer reschedules it. */
void loop_timer_start(struct loop_timer *timer, uint64_t timeout_ms, uint64_t repeat_ms);
void loop_timer_stop(struct loop_timer *timer);
void loop_timer_free(struct loop_timer *timer);

enum { LOOP_READ = 1, LOOP_WRITE = 2, LOOP_ERROR = 4 };
typedef void (*loop_io_fn)(struct loop_io *io, int events, void *data);
/* Watches fd (not owned: the caller closes it after loop_io_free). */
struct loop_io *loop_io_new(struct loop *loop, int fd, loop_io_fn fn, void *data);
/* Sets the events of interest; 0 pauses the watch. Returns 0 or negative. */
int loop_io_set(struct loop_io *io, int events);
/* Stops watching at once (the fd leaves epoll before this returns, so it may
 * be handed to another library right after). */
void loop_io_free(struct loop_io *io);

typedef void (*loop_async_fn)(struct loop_async *async, void *data);
struct loop_async *loop_async_new(struct loop *loop, loop_async_fn fn, void *data);
/* Any thread. Several sends before the loop runs the callback coalesce into
 * one call: the callback must drain its queue. */
void loop_async_send(struct loop_async *async);
void loop_async_free(struct loop_async *async);

/* Calls fn once per loop iteration, after that iteration's I/O callbacks:
 * where work those callbacks queued is handed on in one piece (the change
 * feed's doorbell rings once per iteration, not once per message). It does
 * not keep the loop alive on its own. */
typedef void (*loop_check_fn)(struct loop_check *check, void *data);
struct loop_check *loop_check_new(struct loop *loop, loop_check_fn fn, void *data);
void loop_check_free(struct loop_check *check);

typedef void (*loop_signal_fn)(struct loop_signal *sig, int signum, void *data);
struct loop_signal *loop_signal_new(struct loop *loop, int signum, loop_signal_fn fn, void *data);
void loop_signal_free(struct loop_signal *sig);

/* Watches a directory; fn gets the name of the entry that changed. */
typedef void (*loop_watch_fn)(struct loop_watch *watch, const char *name, void *data);
struct loop_watch *loop_watch_new(struct loop *loop, const char *dir, loop_watch_fn fn,
                                  void *data);
void loop_watch_free(struct loop_watch *watch);

/* Asynchronous name resolution. fn gets 0 and a list it must release with
 * loop_dns_freeaddrinfo(), or a negative code and NULL. The request frees
 * itself after fn; loop_dns_cancel() before that means fn gets a negative
 * code (ECANCELED). */
typedef void (*loop_dns_fn)(int status, struct addrinfo *res, void *data);
struct loop_dns *loop_dns_resolve(struct loop *loop, const char *host, const char *port,
                                  loop_dns_fn fn, void *data);
void loop_dns_cancel(struct loop_dns *req);
void loop_dns_freeaddrinfo(struct addrinfo *res);

/* The text of a negative code returned by this module. */
const char *loop_strerror(int code);

#endif
