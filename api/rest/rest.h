/*
 * rest: the REST server, libmicrohttpd with no listen socket of its own.
 *
 * The front door accepts on the one port, peeks at the request head and
 * hands every non-WebSocket connection to rest_add_connection. A pool of
 * two libmicrohttpd threads then serves it (keep-alive included): each
 * request goes through the route table (rest_router.c), the checks every
 * route shares (framing, URL limits, %00, CORS, auth) and the route's
 * handler, and is counted in rest_metrics and, if configured, the access
 * log. rest_conn.h keeps each connection to its deadlines (a thread of its
 * own closes the late ones) and to limits.max_per_ip.
 *
 * Threads: rest_new and rest_free on the engine (loop) thread;
 * rest_add_connection on any thread; handlers on libmicrohttpd's threads
 * (api.h says what they may touch).
 *
 * Ownership: ctx is borrowed and must outlive the server; rest_new fills
 * ctx->auth and ctx->metrics when they are NULL, with objects it owns and
 * rest_free frees. rest_free first answers every request suspended on the
 * loop bridge (ingest_bridge_cancel: 503), because libmicrohttpd must not stop
 * with suspended connections, then stops the daemon; call it before
 * freeing the operators and ctx->bridge (ingest_bridge.h has the full order).
 */
#ifndef RX_REST_H
#define RX_REST_H

#include <sys/socket.h>

#include "api.h"

struct rest;

/*
 * Starts the daemon: MHD_USE_NO_LISTEN_SOCKET | INTERNAL_POLLING_THREAD |
 * EPOLL | ALLOW_SUSPEND_RESUME | ERROR_LOG, a pool of 2 threads, an
 * inactivity timeout of 30 s or just over limits.keepalive_timeout_ms
 * (it matters while answering; rest_conn.h has the deadlines),
 * limits.max_connections, and a per-connection memory pool sized from
 * limits.max_header_bytes; and the reaper thread of rest_conn.h. Returns
 * NULL with err filled on failure.
 */
struct rest *rest_new(struct api_ctx *ctx, char *err, size_t errlen);

/* Any thread: serve an accepted socket. Takes ownership of fd, even on
 * failure (libmicrohttpd closes it, e.g. over the per-IP limit). addr is
 * borrowed. Returns 0 or -1. */
int rest_add_connection(struct rest *rest, int fd, const struct sockaddr *addr, socklen_t len);

/* Stops the daemon (see above); NULL is a no-op. */
void rest_free(struct rest *rest);

#endif
