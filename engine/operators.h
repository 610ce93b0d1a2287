/*
 * operators: the registry of exchange scripts in operators/.
 *
 * At start every .lua file in operators/ is loaded and started; a file that fails
 * is reported (log, and state `error` with the reason and line) and never
 * stops the others. Afterwards a file change (inotify), SIGHUP or the admin
 * API reloads: the new version is loaded and its markets() run in a fresh
 * state first, and only then does it replace the running one (make before
 * break); a broken file leaves the old version running and shows the error.
 * Deleting a file removes the exchange and its data.
 *
 * Threads: everything on the loop thread, except operators_status_copy and
 * operators_ready, which read a copy published under a mutex (refreshed
 * every STATUS_PUBLISH_MS and after each change), for the API threads.
 */
#ifndef RX_OPERATORS_H
#define RX_OPERATORS_H

#include <stdbool.h>
#include <stddef.h>

#include "operator.h"

struct operators;

/* Borrows env (copied) and dir. */
struct operators *operators_new(const struct op_env *env, const char *dir);
void operators_free(struct operators *reg);

/* Loads and starts every operator file, then watches the directory.
 * Returns the number of operators running. */
int operators_start(struct operators *reg);

/* Reloads every file now (SIGHUP, admin API). done (may be NULL) runs once
 * every reload has finished, with a JSON summary of per-operator results. */
typedef void (*operators_reload_fn)(const char *summary_json, void *data);
void operators_reload_all(struct operators *reg, operators_reload_fn done, void *data);

/* Any thread: copies up to cap statuses; returns how many there are. */
size_t operators_status_copy(struct operators *reg, struct op_status *out, size_t cap);

/* Any thread: a malloc'd copy of the markets markets() returned, for one
 * exchange or all (exchange NULL); the caller frees *out. Returns the count. */
size_t operators_markets_copy(struct operators *reg, const char *exchange,
                              struct op_market **out);

/* Any thread: every enabled operator has produced data or reported an
 * error (DESIGN 4.1 /readyz). */
bool operators_ready(struct operators *reg);

#endif
