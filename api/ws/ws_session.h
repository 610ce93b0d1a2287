/*
 * ws_session: one /v1/stream client's state (DESIGN 4.2) — its
 * subscriptions, the replies it is owed and the rates waiting to be sent —
 * as a state machine fed without sockets: the WebSocket glue (ws_server.c)
 * hands it the client's messages and the stored changes, and asks it for
 * the next message whenever the socket can take one.
 *
 * What goes out, in order: replies (ack, error, pong), snapshot chunks and
 * status/removed events first, in the order they arose, then rates. A
 * snapshot is rendered one chunk at a time, when the socket asks for it, so
 * subscribing to everything costs a list of keys, not a rendered copy of
 * the store.
 *
 * Rates are conflated. A publish only marks its (exchange, pair) key
 * dirty; the ticker itself is read from the store when the rate message is
 * rendered, so however many versions arrive while the client is slow or
 * its throttle window is closed, one message carries the latest (its `v`
 * tells the client how many it skipped). A key is due at once when it was
 * not sent within the last throttle_ms of the best matching subscription
 * (the one with the smallest throttle; ties go to the oldest), else when
 * that window ends. Overlapping subscriptions therefore send a key once,
 * at the smallest throttle, labelled with that subscription's id. Keys are
 * kept in a hash table (dirty or inside their window) and a min-heap of
 * due times; a key outside its window and not dirty is forgotten.
 *
 * Protocol details this module decides: an id may be a number or a string
 * (at most 100 bytes) and is echoed as given, null when absent; error
 * codes are bad_json, bad_request, unknown_op, bad_pair, bad_exchange,
 * bad_param, too_many_subscriptions, unknown_subscription; pairs and
 * exchanges, when given, are non-empty arrays (at most
 * WS_SESSION_MAX_LIST); throttle_ms is an integer from 0 to
 * WS_SESSION_MAX_THROTTLE_MS; subscription ids count from 1 per connection
 * and are never reused; snapshots hold every live ticker the subscription
 * covers (stale ones flagged), sorted by pair then exchange, each chunk
 * rendered from the store when it is sent; status and removed events go
 * to sessions with a subscription covering the exchange.
 *
 * Threads: a session belongs to the loop thread (or a test); it reads the
 * store through its lock-free readers and the config, both borrowed from
 * the api_ctx, which must outlive it.
 *
 * Times: `now` arguments are monotonic milliseconds (throttling); `wall_ms`
 * is the epoch time the rendered tickers' age_ms and stale describe.
 */
#ifndef RX_WS_SESSION_H
#define RX_WS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "core/jbuf.h"
#include "store/ticker.h"

struct ws_session;

/* throttle_ms accepted in a subscribe. */
#define WS_SESSION_MAX_THROTTLE_MS 60000
/* Entries accepted in a subscribe's pairs / exchanges lists. */
#define WS_SESSION_MAX_LIST 10000

/* A zero field means the config default (ws.max_subs 64, snapshot_chunk 500). */
struct ws_session_limits {
    size_t max_subs;
    size_t snapshot_chunk;
};

/* Borrows ctx (store and cfg are read). */
struct ws_session *ws_session_new(const struct api_ctx *ctx, const struct ws_session_limits *lim);
void ws_session_free(struct ws_session *s);

/*
 * One whole text message from the client: subscribe, unsubscribe or ping
 * (DESIGN 4.2). Every message earns exactly one reply queued for
 * ws_session_next: an ack (then the subscription's snapshot), a pong, or an
 * error naming the request's id when it had one. Malformed input is an
 * error reply, never a reason to close.
 */
void ws_session_receive(struct ws_session *s, const char *msg, size_t len);

/* A binary message: answered with an error (the protocol is JSON text). */
void ws_session_receive_binary(struct ws_session *s);

/*
 * A stored change of t's key (t->exchange, t->pair). Returns 1 when a
 * subscription wants it (the key is now dirty), 0 otherwise. Only the key
 * is used: the message is rendered from the store when it is due.
 */
int ws_session_publish(struct ws_session *s, const struct ticker *t, uint64_t now);

/* An operator changed state / was removed: queued for a session with a
 * subscription that covers the exchange. */
void ws_session_status(struct ws_session *s, const char *exchange, const char *state,
                       const char *reason);
void ws_session_removed(struct ws_session *s, const char *exchange);

/*
 * The next message to send at `now`, appended to out (so the caller may
 * keep a prefix there, such as the room for a frame header), with
 * tickers described as of wall_ms. Returns 1, or 0 when nothing is due.
 */
int ws_session_next(struct ws_session *s, uint64_t now, int64_t wall_ms, struct jbuf *out);

/* When ws_session_next will next have something: `now` or earlier if it has
 * something already, the due time of the next throttled key, or UINT64_MAX
 * when nothing is waiting. */
uint64_t ws_session_next_due(const struct ws_session *s, uint64_t now);

/* Heap bytes the session holds now, as the allocator counts them (each
 * block with its header and rounding): rendered replies waiting, snapshot
 * jobs, the keys it tracks and their heap, its subscriptions, itself. What
 * a client can make the server hold through its session is this number.
 * Costs O(subscriptions). */
size_t ws_session_bytes(const struct ws_session *s);

/* What one malloc of n bytes takes from the heap (0 for n = 0): the unit
 * ws_session_bytes counts in, for the server's own buffers. */
size_t ws_session_block_bytes(size_t n);

/*
 * Told of every subscription opened (added true, after its ack is queued)
 * and closed (added false: an unsubscribe, or ws_session_free for those
 * still open), with the lists it covers: exchanges NULL = every exchange,
 * pairs NULL = every pair (pairs sorted and unique, exchanges unique). A
 * close passes the same lists as the open did. The WebSocket server keeps
 * its fan-out index (ws_index.h) with it. fn must not call back into s.
 */
typedef void ws_session_watch_fn(void *arg, bool added,
                                 const char (*exchanges)[TICKER_EXCHANGE_MAX],
                                 size_t n_exchanges, const char (*pairs)[TICKER_PAIR_MAX],
                                 size_t n_pairs);
void ws_session_set_watch(struct ws_session *s, ws_session_watch_fn *fn, void *arg);

/*
 * Rate messages take their ticker fields from render (ws_render.h), shared
 * with the other sessions of the same loop thread, instead of rendering
 * them each time; the bytes are the same. render is borrowed and must
 * outlive s; NULL (the default) renders in the session.
 */
struct ws_render;
void ws_session_set_render(struct ws_session *s, struct ws_render *render);

/* Subscriptions now open. */
size_t ws_session_subs(const struct ws_session *s);

struct ws_session_stats {
    uint64_t messages_out; /* messages ws_session_next returned */
    uint64_t rates_out;    /* of which rate messages */
    uint64_t conflated;    /* publishes folded into a key already waiting */
};
void ws_session_stats(const struct ws_session *s, struct ws_session_stats *out);

#endif
