/*
 * loop: libuv behind the facade of loop.h.
 *
 * Every handle is a small struct that embeds its uv handle; libuv callbacks
 * recover the struct with container_of and forward to the caller's function.
 * Freeing goes through uv_close, whose callback releases the memory, so a
 * handle may be freed from inside its own callback without a use after free.
 */
#include "loop.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <uv.h>

#include "xalloc.h"

struct loop {
    uv_loop_t uv;
};

struct loop_timer {
    uv_timer_t uv;
    loop_timer_fn fn;
    void *data;
};

struct loop_io {
    uv_poll_t uv;
    loop_io_fn fn;
    void *data;
};

struct loop_async {
    uv_async_t uv;
    loop_async_fn fn;
    void *data;
};

struct loop_check {
    uv_check_t uv;
    loop_check_fn fn;
    void *data;
};

struct loop_signal {
    uv_signal_t uv;
    loop_signal_fn fn;
    void *data;
};

struct loop_watch {
    uv_fs_event_t uv;
    loop_watch_fn fn;
    void *data;
};

struct loop_dns {
    uv_getaddrinfo_t uv;
    loop_dns_fn fn;
    void *data;
};

static void close_free(uv_handle_t *h)
{
    free(h->data);
}

/* Every facade struct starts with its uv handle, so h->data can point at the
 * struct itself and close_free releases it. */
static void handle_release(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, close_free);
    }
}

struct loop *loop_new(void)
{
    struct loop *loop = xcalloc(1, sizeof *loop);
    if (uv_loop_init(&loop->uv) != 0) {
        free(loop);
        return NULL;
    }
    return loop;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

int loop_free(struct loop *loop)
{
    int rc;

    if (!loop) {
        return 0;
    }
    /* Let pending close callbacks run first so our own structs are freed
     * by close_free; whatever is still open belongs to a library that did
     * not clean up, and is closed without a callback. */
    uv_run(&loop->uv, UV_RUN_NOWAIT);
    rc = uv_loop_close(&loop->uv);
    if (rc == UV_EBUSY) {
        uv_walk(&loop->uv, close_walk, NULL);
        uv_run(&loop->uv, UV_RUN_DEFAULT);
        rc = uv_loop_close(&loop->uv);
    }
    free(loop);
    return rc;
}

int loop_run(struct loop *loop)
{
    return uv_run(&loop->uv, UV_RUN_DEFAULT);
}

void loop_stop(struct loop *loop)
{
    uv_stop(&loop->uv);
}

void *loop_native(struct loop *loop)
{
    return &loop->uv;
}

uint64_t loop_now_ms(struct loop *loop)
{
    return uv_now(&loop->uv);
}

int64_t loop_wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void timer_cb(uv_timer_t *t)
{
    struct loop_timer *timer = container_of(t, struct loop_timer, uv);
    timer->fn(timer, timer->data);
}

struct loop_timer *loop_timer_new(struct loop *loop, loop_timer_fn fn, void *data)
{
    struct loop_timer *timer = xcalloc(1, sizeof *timer);
    uv_timer_init(&loop->uv, &timer->uv);
    timer->uv.data = timer;
    timer->fn = fn;
    timer->data = data;
    return timer;
}

void loop_timer_start(struct loop_timer *timer, uint64_t timeout_ms, uint64_t repeat_ms)
{
    uv_timer_start(&timer->uv, timer_cb, timeout_ms, repeat_ms);
}

void loop_timer_stop(struct loop_timer *timer)
{
    uv_timer_stop(&timer->uv);
}

void loop_timer_free(struct loop_timer *timer)
{
    if (timer) {
        uv_timer_stop(&timer->uv);
        handle_release((uv_handle_t *)&timer->uv);
    }
}

static void io_cb(uv_poll_t *p, int status, int uv_events)
{
    struct loop_io *io = container_of(p, struct loop_io, uv);
    int events = 0;

    if (status < 0) {
        events |= LOOP_ERROR;
    }
    if (uv_events & UV_READABLE) {
        events |= LOOP_READ;
    }
    if (uv_events & UV_WRITABLE) {
        events |= LOOP_WRITE;
    }
    if (uv_events & UV_DISCONNECT) {
        events |= LOOP_READ;
    }
    io->fn(io, events, io->data);
}

struct loop_io *loop_io_new(struct loop *loop, int fd, loop_io_fn fn, void *data)
{
    struct loop_io *io = xcalloc(1, sizeof *io);
    if (uv_poll_init(&loop->uv, &io->uv, fd) != 0) {
        free(io);
        return NULL;
    }
    io->uv.data = io;
    io->fn = fn;
    io->data = data;
    return io;
}

int loop_io_set(struct loop_io *io, int events)
{
    int uv_events = 0;

    if (events == 0) {
        return uv_poll_stop(&io->uv);
    }
    if (events & LOOP_READ) {
        uv_events |= UV_READABLE | UV_DISCONNECT;
    }
    if (events & LOOP_WRITE) {
        uv_events |= UV_WRITABLE;
    }
    return uv_poll_start(&io->uv, uv_events, io_cb);
}

void loop_io_free(struct loop_io *io)
{
    if (io) {
        uv_poll_stop(&io->uv);
        handle_release((uv_handle_t *)&io->uv);
    }
}

static void async_cb(uv_async_t *a)
{
    struct loop_async *async = container_of(a, struct loop_async, uv);
    async->fn(async, async->data);
}

struct loop_async *loop_async_new(struct loop *loop, loop_async_fn fn, void *data)
{
    struct loop_async *async = xcalloc(1, sizeof *async);
    uv_async_init(&loop->uv, &async->uv, async_cb);
    async->uv.data = async;
    async->fn = fn;
    async->data = data;
    return async;
}

void loop_async_send(struct loop_async *async)
{
    uv_async_send(&async->uv);
}

void loop_async_free(struct loop_async *async)
{
    if (async) {
        handle_release((uv_handle_t *)&async->uv);
    }
}

static void check_cb(uv_check_t *c)
{
    struct loop_check *check = container_of(c, struct loop_check, uv);
    check->fn(check, check->data);
}

struct loop_check *loop_check_new(struct loop *loop, loop_check_fn fn, void *data)
{
    struct loop_check *check = xcalloc(1, sizeof *check);
    uv_check_init(&loop->uv, &check->uv);
    check->uv.data = check;
    check->fn = fn;
    check->data = data;
    uv_check_start(&check->uv, check_cb);
    uv_unref((uv_handle_t *)&check->uv);
    return check;
}

void loop_check_free(struct loop_check *check)
{
    if (check) {
        uv_check_stop(&check->uv);
        handle_release((uv_handle_t *)&check->uv);
    }
}

static void signal_cb(uv_signal_t *s, int signum)
{
    struct loop_signal *sig = container_of(s, struct loop_signal, uv);
    sig->fn(sig, signum, sig->data);
}

struct loop_signal *loop_signal_new(struct loop *loop, int signum, loop_signal_fn fn, void *data)
{
    struct loop_signal *sig = xcalloc(1, sizeof *sig);
    uv_signal_init(&loop->uv, &sig->uv);
    sig->uv.data = sig;
    sig->fn = fn;
    sig->data = data;
    if (uv_signal_start(&sig->uv, signal_cb, signum) != 0) {
        handle_release((uv_handle_t *)&sig->uv);
        return NULL;
    }
    /* A pending signal watcher must not keep the loop alive on its own. */
    uv_unref((uv_handle_t *)&sig->uv);
    return sig;
}

void loop_signal_free(struct loop_signal *sig)
{
    if (sig) {
        uv_signal_stop(&sig->uv);
        handle_release((uv_handle_t *)&sig->uv);
    }
}

static void watch_cb(uv_fs_event_t *e, const char *name, int events, int status)
{
    struct loop_watch *watch = container_of(e, struct loop_watch, uv);
    if (status == 0) {
        watch->fn(watch, name ? name : "", watch->data);
    }
}

struct loop_watch *loop_watch_new(struct loop *loop, const char *dir, loop_watch_fn fn, void *data)
{
    struct loop_watch *watch = xcalloc(1, sizeof *watch);
    uv_fs_event_init(&loop->uv, &watch->uv);
    watch->uv.data = watch;
    watch->fn = fn;
    watch->data = data;
    if (uv_fs_event_start(&watch->uv, watch_cb, dir, 0) != 0) {
        handle_release((uv_handle_t *)&watch->uv);
        return NULL;
    }
    return watch;
}

void loop_watch_free(struct loop_watch *watch)
{
    if (watch) {
        uv_fs_event_stop(&watch->uv);
        handle_release((uv_handle_t *)&watch->uv);
    }
}

static void dns_cb(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    struct loop_dns *req = container_of(g, struct loop_dns, uv);
    req->fn(status, res, req->data);
    free(req);
}

struct loop_dns *loop_dns_resolve(struct loop *loop, const char *host, const char *port,
                                  loop_dns_fn fn, void *data)
{
    struct loop_dns *req = xcalloc(1, sizeof *req);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};

    req->fn = fn;
    req->data = data;
    if (uv_getaddrinfo(&loop->uv, &req->uv, dns_cb, host, port, &hints) != 0) {
        free(req);
        return NULL;
    }
    return req;
}

void loop_dns_cancel(struct loop_dns *req)
{
    if (req) {
        uv_cancel((uv_req_t *)&req->uv);
    }
}

void loop_dns_freeaddrinfo(struct addrinfo *res)
{
    uv_freeaddrinfo(res);
}

const char *loop_strerror(int code)
{
    return uv_strerror(code);
}
