/*
 * server: the libwebsockets glue: one context, one vhost, one port.
 *
 * HTTP, WebSocket and (with a certificate) TLS share a single listening
 * socket and a single protocol callback, which only dispatches: HTTP
 * transactions to http.c, WebSocket sessions to replay.c. SIGINT and
 * SIGTERM arrive through a signalfd adopted into the same poll loop, so
 * shutdown is an ordinary event and needs no signal-handler globals.
 * Owned by the main thread; server_stop() closes every connection (their
 * CLOSED callbacks free per-connection memory) before returning.
 */
#ifndef FAKEX_SERVER_H
#define FAKEX_SERVER_H

#include "fakex.h"

#include <stddef.h>

/* Listen; sets ctx->port. Returns 0, or -1 with a message in err. */
int server_start(struct fakex *ctx, char *err, size_t errlen);

/* Serve until SIGINT/SIGTERM. Returns 0, or -1 if the loop failed. */
int server_run(struct fakex *ctx);

void server_stop(struct fakex *ctx);

#endif
