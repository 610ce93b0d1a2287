/*
 * rest_conn: the connections libmicrohttpd holds for the REST server, as the
 * REST core tracks them — the request in progress on each, the deadline by
 * which its next request must have arrived, and how many connections each
 * client address holds (rest_conn.c says why libmicrohttpd's own timeout and
 * per-IP limit are not enough).
 *
 * A connection's life: rest_conns_notify (libmicrohttpd's
 * MHD_OPTION_NOTIFY_CONNECTION callback, cls = the rest_conns) makes its
 * struct when libmicrohttpd takes the socket and frees it when the socket
 * closes. In between, for each request: rest_conn_set_call when its request
 * line is parsed, rest_conn_head_done when its head is complete,
 * rest_conn_request_done when its body is too, rest_conn_answered when its
 * answer has gone out. A reaper thread closes (shutdown(2)) every connection
 * past its deadline; libmicrohttpd then sees the end of the stream and
 * cleans up as for a client that left.
 *
 * Threads: rest_conns_new and rest_conns_free on the thread that starts and
 * stops the daemon; rest_conns_notify and the rest_conn_* functions on the
 * libmicrohttpd thread serving that connection; the reaper on its own.
 *
 * Ownership: the rest_conns outlives the daemon (free it after
 * MHD_stop_daemon). A call set with rest_conn_set_call stays the caller's;
 * when a connection closes with a call still set (a request libmicrohttpd
 * gave up on without completing it), drop_call is called with it.
 */
#ifndef RX_REST_CONN_H
#define RX_REST_CONN_H

#include <microhttpd.h>
#include <stdbool.h>

struct config_limits;
struct rest_conns;
struct rest_conn;

/* Frees a call left on a connection that closed (see above). */
typedef void (*rest_conn_drop_fn)(void *call);

/* Takes the deadlines, max_per_ip and trusted_proxies from lim (borrowed;
 * must outlive the result) and starts the reaper. NULL when no thread can
 * be started. */
struct rest_conns *rest_conns_new(const struct config_limits *lim, rest_conn_drop_fn drop_call);

/* Stops the reaper; the daemon must have stopped. NULL is a no-op. */
void rest_conns_free(struct rest_conns *conns);

/* libmicrohttpd's MHD_NotifyConnectionCallback; cls is the rest_conns. */
void rest_conns_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);

/* The connection's state, or NULL when libmicrohttpd never announced it. */
struct rest_conn *rest_conn_of(struct MHD_Connection *mc);

/* Sets the request in progress (NULL = none) and returns the one it
 * replaces, which the caller frees if it is not call itself. */
void *rest_conn_set_call(struct rest_conn *c, void *call);

/* The request's head is complete: its body has limits.head_timeout_ms. */
void rest_conn_head_done(struct rest_conn *c);

/* The request is complete: no deadline while it is being answered. */
void rest_conn_request_done(struct rest_conn *c);

/* The answer went out: the next request (head and body) must be complete
 * within limits.keepalive_timeout_ms, or the connection is closed. */
void rest_conn_answered(struct rest_conn *c);

/* Whether the connection came over limits.max_per_ip: its request gets 429
 * and the connection closes. */
bool rest_conn_refused(const struct rest_conn *c);

/* Whether the peer is one of limits.trusted_proxies. */
bool rest_conn_proxied(const struct rest_conn *c);

#endif
