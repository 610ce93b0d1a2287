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
 * Threads: the ingest loop only. Other threads read what the registry
 * publishes on env->board (statuses and markets, refreshed every
 * STATUS_PUBLISH_MS and after each change).
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
 * every reload has finished, with 0 and a JSON summary of per-operator
 * results ({"operators":[{"name","result"}...]}); at once with -EBUSY (and
 * an error object) while another round runs. */
typedef void (*operators_reload_fn)(int status, const char *summary_json, void *data);
void operators_reload_all(struct operators *reg, operators_reload_fn done, void *data);

/* Whether a file of this name is in the registry (loaded or not). */
bool operators_has(const struct operators *reg, const char *name);

/*
 * Leases (scale-out on Redis). A gated registry loads nothing by itself:
 * every file is in standby until operators_activate (its lease taken), and
 * back in standby with operators_standby (lost, given up, or another node
 * holds it). Set before operators_start.
 */
void operators_set_gated(struct operators *reg, bool gated);
/* Up to cap names of the files config does not disable; returns how many. */
size_t operators_names(const struct operators *reg, char (*out)[TICKER_EXCHANGE_MAX], size_t cap);
void operators_activate(struct operators *reg, const char *name);
/* holder: the node that holds the lease, "" when not known. */
void operators_standby(struct operators *reg, const char *name, const char *holder);

#endif
