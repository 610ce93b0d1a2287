/*
 * ws_listener: the old service's WebSocket /currency_listener (DESIGN 4.3):
 * the GET /currency body for the connection's exchange and pair, sent every
 * frequency_timeout seconds (default 1, clamped to 0.1-60), and the
 * connection closed after compat.listener_max_s.
 *
 * Latest only: a tick marks the body due and wakes the glue, which asks
 * for it when the socket can take a message; the body is rendered then, so
 * a client slower than its ticks skips them and nothing queues up.
 *
 * Threads: loop thread (it owns loop timers). The glue (ws_server.c) owns
 * each listener and frees it when the connection closes.
 */
#ifndef RX_WS_LISTENER_H
#define RX_WS_LISTENER_H

#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "jbuf.h"

struct loop;
struct ws_listener;

#define WS_LISTENER_PARAM_MAX 128

/* The query of one /currency_listener request, checked. */
struct ws_listener_params {
    char exchange[WS_LISTENER_PARAM_MAX]; /* "" = every exchange */
    char pair[WS_LISTENER_PARAM_MAX];     /* "" = every pair */
    uint64_t every_ms;                    /* frequency_timeout, clamped */
};

/*
 * Checks the query values (NULL when absent) the way GET /currency does,
 * as of now_ms, plus frequency_timeout (seconds, a number). Returns 0 with
 * out filled, or 400 with the old service's {"detail": "..."} body in err.
 */
int ws_listener_parse(const struct api_ctx *ctx, const char *exchange, const char *pair,
                      const char *frequency, int64_t now_ms, struct ws_listener_params *out,
                      struct jbuf *err);

/* Called on the loop thread when the listener has something for the socket
 * (a tick, or the end of its time). */
typedef void (*ws_listener_wake_fn)(void *data);

/* Starts the ticks (the first body is due at once) and the max_ms deadline.
 * Borrows ctx; copies params. */
struct ws_listener *ws_listener_new(struct loop *loop, const struct api_ctx *ctx,
                                    const struct ws_listener_params *params, uint64_t max_ms,
                                    ws_listener_wake_fn wake, void *data);
void ws_listener_free(struct ws_listener *l);

enum ws_listener_next {
    WS_LISTENER_IDLE, /* nothing due */
    WS_LISTENER_SEND, /* out holds the body (appended) */
    WS_LISTENER_DONE, /* listener_max_s has passed: close the connection */
};

/* What the socket should do now; renders the body as of wall_ms. */
enum ws_listener_next ws_listener_next(struct ws_listener *l, int64_t wall_ms, struct jbuf *out);

/* Ticks that were due but skipped because the previous body had not been
 * taken yet. */
uint64_t ws_listener_skipped(const struct ws_listener *l);

#endif
