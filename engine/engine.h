/*
 * engine: the running service, one struct that owns every part of it.
 *
 * engine_new builds the parts from a loaded config (loop, store, HTTP
 * client, operators), engine_run runs the loop until SIGINT or SIGTERM, and
 * engine_free takes it all down in reverse order. There is no global state:
 * whatever needs the engine's services is handed them explicitly.
 *
 * Threads: the loop thread (main) only.
 */
#ifndef RX_ENGINE_H
#define RX_ENGINE_H

#include <stddef.h>

struct config;
struct engine;

/* Takes ownership of cfg. Returns NULL with a message in err. */
struct engine *engine_new(struct config *cfg, char *err, size_t errlen);
/* Runs until a shutdown signal; returns the process exit code. */
int engine_run(struct engine *engine);
void engine_free(struct engine *engine);

#endif
