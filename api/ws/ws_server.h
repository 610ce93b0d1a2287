/*
 * ws_server: the WebSocket side of the one port — /v1/stream (DESIGN 4.2)
 * and the old service's /currency_listener (4.3) — on the engine's loop,
 * with its own RFC 6455 wire code (ws_upgrade.h, ws_frame.h).
 *
 * The front door hands over each socket whose head asks for a WebSocket
 * upgrade (ws_server_adopt, the front_door_ops.ws callback). The head is
 * checked, in this order, and refused with an HTTP status and a JSON body
 * (never a bare hang-up): a malformed upgrade 400 (among others: no
 * Sec-WebSocket-Key, %00 in the URL; ws_upgrade.h), a method other than
 * GET 405, a version other than 13 426; unknown path 404; shutting down
 * 503; an Origin not in allowed_origins (when the list is set) 403; no
 * valid token (the Authorization: Bearer header or ?token=, the name
 * spelled exactly so) 401 with WWW-Authenticate: Bearer, a malformed
 * ?token= 400; ws.max_connections 503 and ws.max_per_ip 429; for the
 * listener, a bad query 400. Errors on /currency_listener use the old
 * service's {"detail": "..."} shape, the others {"error":{"code","message"}}.
 * Tokens are never logged.
 *
 * After the upgrade each /v1/stream connection is a ws_session (the
 * protocol and the conflating queue, ws_session.h) and each listener a
 * currency_listener (currency_listener.h). Stored changes reach sessions
 * through ws_server_publish_changes (the change feed, store/changes.h),
 * never by polling the store, and each message is written as it becomes
 * due. A client frame that breaks RFC 6455 (unmasked, among others:
 * ws_frame.h) closes the connection with 1002 (1007 for text that is not
 * UTF-8); a message over ws.max_message_bytes with 1009.
 *
 * Memory: what a connection holds — a stream's session's heap bytes
 * (replies and snapshots waiting, keys, subscriptions), its buffers (pongs
 * a client did not read included), and what the kernel has not sent on its
 * socket — is counted as the allocator and the kernel hold it. Past ws.max_queue_bytes the connection is closed
 * with 1008 (checked after its messages, when its socket refuses bytes and
 * once a second); past ws.max_queue_bytes_total across all connections the
 * ones holding the most are closed with 1008 first, until the rest fit
 * (once a second). A closed connection's queue is dropped at once, and
 * once clients have released a few MB the freed heap is returned to the
 * system.
 *
 * Threads: every function on the API loop thread. Ownership: the server
 * borrows the loop and ctx (they outlive it) and owns every connection and
 * the sockets handed to it.
 */
#ifndef RX_WS_SERVER_H
#define RX_WS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "api.h"
#include "store/changes.h"
#include "store/ticker.h"

struct loop;
struct ws_server;

/* A server with no connection yet, on the loop. Returns NULL with err
 * filled on failure (none today: the signature keeps room for one). */
struct ws_server *ws_server_new(struct loop *loop, struct api_ctx *ctx, char *err, size_t errlen);

/*
 * front_door_ops.ws: takes ownership of fd (an upgrade request's whole
 * head is still queued on it), answers the upgrade and keeps the
 * connection, or refuses it and closes the socket. After
 * ws_server_shutdown it answers 503.
 */
void ws_server_adopt(int fd, const struct sockaddr *addr, socklen_t len, void *ws_server);

/* What changed since the last call (the change feed's keys): each key's
 * current ticker is read from the store and pushed, in one fan-out pass
 * that then writes to each connection it touched once, what became due. A
 * key whose version is not newer than the last pushed is skipped. */
void ws_server_publish_changes(struct ws_server *ws, const struct change_key *keys, size_t n);

/* An operator changed state / was removed (sessions subscribed to it get a
 * status / removed message). */
void ws_server_status(struct ws_server *ws, const char *exchange, const char *state,
                      const char *reason);
void ws_server_removed(struct ws_server *ws, const char *exchange);

/*
 * Starts closing every client with code 1001 ("server shutting down") and
 * refuses new upgrades (503). The close frames go out as the loop runs
 * on; ws_server_free waits a short while for them. Idempotent.
 */
void ws_server_shutdown(struct ws_server *ws);

/*
 * Shuts down if that was not done, then runs the loop (loop_run) until the
 * clients have closed (at most WS_SERVER_DRAIN_MS), closes the sockets
 * left and frees everything. The loop must not be running (call it after
 * loop_run has returned). NULL is a no-op.
 */
#define WS_SERVER_DRAIN_MS 1000
void ws_server_free(struct ws_server *ws);

struct ws_server_stats {
    uint64_t connections;  /* open now (/v1/stream and /currency_listener) */
    uint64_t listeners;    /* of which /currency_listener */
    uint64_t accepted;     /* upgrades accepted since start */
    uint64_t refused;      /* upgrades refused with an HTTP status */
    uint64_t messages_in;  /* client messages */
    uint64_t messages_out; /* messages written */
    uint64_t conflated;    /* publishes folded into a rate still waiting */
    uint64_t closed_1008;  /* slow consumers (ws.max_queue_bytes, ws.max_queue_bytes_total) */
    uint64_t closed_1009;  /* inbound message over ws.max_message_bytes */
    uint64_t queue_bytes;  /* bytes connections held at the last sweep (1 s) */
};
void ws_server_stats(const struct ws_server *ws, struct ws_server_stats *out);

#endif
