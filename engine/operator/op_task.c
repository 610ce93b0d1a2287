/*
 * op_task: an operator callback run as a Lua coroutine.
 *
 * markets(), poll(), connections() and on_open() may wait on the network
 * or a timer. Each runs in its own coroutine: a primitive that must wait
 * starts its work, records how to cancel it in the task, and yields the
 * sandbox's sentinel; its completion pushes the results and resumes the
 * task. The engine thread never blocks.
 *
 * The coroutine is anchored in the registry (co_ref) so the collector
 * cannot take it while it waits. Every resume is timed for the loop-lag
 * watchdog.
 */
#include "operator_int.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <time.h>

#include "lua/sandbox.h"
#include "core/xalloc.h"

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct op_task *op_task_new(struct operator *op, const char *what, op_task_done_fn done,
                            void *data)
{
    struct op_task *task = xcalloc(1, sizeof *task);
    task->op = op;
    task->what = what;
    task->done = done;
    task->data = data;
    task->co = lua_newthread(op->L);
    task->co_ref = luaL_ref(op->L, LUA_REGISTRYINDEX);
    task->next = op->tasks;
    op->tasks = task;
    return task;
}

static void task_unlink(struct op_task *task)
{
    struct op_task **p = &task->op->tasks;
    while (*p && *p != task) {
        p = &(*p)->next;
    }
    if (*p) {
        *p = task->next;
    }
}

void op_task_free(struct op_task *task)
{
    if (!task) {
        return;
    }
    if (task->cancel) {
        task->cancel(task->pending);
    }
    task_unlink(task);
    luaL_unref(task->op->L, LUA_REGISTRYINDEX, task->co_ref);
    free(task);
}

/* One resume segment. Finishing (well or not) calls done exactly once; the
 * done callback owns the task from then on and frees it. */
static void task_step(struct op_task *task, int nargs)
{
    struct operator *op = task->op;
    char err[512];
    int nres = 0;
    struct op_task *outer = op->running;
    enum ticker_source outer_source = op->emit_source;
    double t0 = mono_ms();

    /* Set on every resume: a poll that waited on x.http while stream
     * messages arrived must still emit as a poll. */
    op->running = task;
    op->emit_source = task->source;
    sandbox_set_time_limit(op->L, op->spec.task_ms);
    int rc = sandbox_resume(op->L, task->co, nargs, &nres, err, sizeof err);
    op->running = outer;
    op->emit_source = outer_source;
    op_note_callback(op, mono_ms() - t0);

    if (rc == SANDBOX_YIELDED) {
        lua_pop(task->co, nres);
        if (!task->cancel) {
            /* A yield that registered nothing to wait for would never be
             * resumed: treat it as the error it is. */
            task->done(task, 0, "yielded without waiting on anything", task->data);
        }
        return;
    }
    if (rc == SANDBOX_OK) {
        task->done(task, 1, NULL, task->data);
    } else {
        task->done(task, 0, err, task->data);
    }
}

void op_task_run(struct op_task *task, int nargs)
{
    task_step(task, nargs);
}

void op_task_resume(struct op_task *task, int nresults)
{
    task->cancel = NULL;
    task->pending = NULL;
    task_step(task, nresults);
}
