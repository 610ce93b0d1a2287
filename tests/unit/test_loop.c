/*
 * loop: timers fire in order and may free themselves, async sends from
 * another thread coalesce and wake the loop, fd watches report readability,
 * and loop_free leaves no handle behind.
 */
#include "check.h"
#include "core/loop.h"

#include <pthread.h>
#include <unistd.h>

struct state {
    struct loop *loop;
    int order[4];
    int n_order;
    int async_calls;
    int io_reads;
    struct loop_io *io;
    int pipe_fds[2];
};

static void on_timer(struct loop_timer *t, void *data)
{
    struct state *s = data;
    s->order[s->n_order] = s->n_order;
    s->n_order++;
    loop_timer_free(t);
}

static void on_async(struct loop_async *a, void *data)
{
    struct state *s = data;
    s->async_calls++;
    loop_async_free(a);
}

static void *ring(void *arg)
{
    for (int i = 0; i < 100; i++) {
        loop_async_send(arg);
    }
    return NULL;
}

static void on_io(struct loop_io *io, int events, void *data)
{
    struct state *s = data;
    char c;
    CHECK(events & LOOP_READ);
    CHECK_INT_EQ(read(s->pipe_fds[0], &c, 1), 1);
    s->io_reads++;
    loop_io_free(io);
}

int main(void)
{
    struct state s = {0};
    pthread_t th;

    s.loop = loop_new();
    CHECK(s.loop != NULL);
    loop_timer_start(loop_timer_new(s.loop, on_timer, &s), 20, 0);
    loop_timer_start(loop_timer_new(s.loop, on_timer, &s), 5, 0);

    struct loop_async *a = loop_async_new(s.loop, on_async, &s);
    pthread_create(&th, NULL, ring, a);
    pthread_join(th, NULL);

    CHECK_INT_EQ(pipe(s.pipe_fds), 0);
    s.io = loop_io_new(s.loop, s.pipe_fds[0], on_io, &s);
    CHECK_INT_EQ(loop_io_set(s.io, LOOP_READ), 0);
    CHECK_INT_EQ(write(s.pipe_fds[1], "x", 1), 1);

    uint64_t t0 = loop_now_ms(s.loop);
    loop_run(s.loop);
    CHECK_INT_EQ(s.n_order, 2);
    CHECK(loop_now_ms(s.loop) - t0 >= 19);
    CHECK_INT_EQ(s.async_calls, 1);
    CHECK_INT_EQ(s.io_reads, 1);
    CHECK(loop_wall_ms() > 1700000000000LL);
    close(s.pipe_fds[0]);
    close(s.pipe_fds[1]);
    CHECK_INT_EQ(loop_free(s.loop), 0);
    return CHECK_DONE();
}
