/*
 * currency_listener: the old service's WebSocket /currency_listener (DESIGN 4.3):
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
#ifndef RX_CURRENCY_LISTENER_H
#define RX_CURRENCY_LISTENER_H

#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "core/jbuf.h"

struct loop;
struct currency_listener;

#define CURRENCY_LISTENER_PARAM_MAX 128

/* The query of one /currency_listener request, checked. */
struct currency_listener_params {
    char exchange[CURRENCY_LISTENER_PARAM_MAX]; /* "" = every exchange */
    char pair[CURRENCY_LISTENER_PARAM_MAX];     /* "" = every pair */
    uint64_t every_ms;                    /* frequency_timeout, clamped */
};

/*
 * Checks the query values (NULL when absent) the way GET /currency does,
 * as of now_ms, plus frequency_timeout (seconds, a number). Returns 0 with
 * out filled, or 400 with the old service's {"detail": "..."} body in err.
 */
int currency_listener_parse(const struct api_ctx *ctx, const char *exchange, const char *pair,
                      const char *frequency, int64_t now_ms, struct currency_listener_params *out,
                      struct jbuf *err);

/* Called on the loop thread when the listener has something for the socket
 * (a tick, or the end of its time). */
typedef void (*currency_listener_wake_fn)(void *data);

/* Starts the ticks (the first body is due at once) and the max_ms deadline.
 * Borrows ctx; copies params. */
struct currency_listener *currency_listener_new(struct loop *loop, const struct api_ctx *ctx,
                                    const struct currency_listener_params *params, uint64_t max_ms,
                                    currency_listener_wake_fn wake, void *data);
void currency_listener_free(struct currency_listener *l);

enum currency_listener_next {
    CURRENCY_LISTENER_IDLE, /* nothing due */
    CURRENCY_LISTENER_SEND, /* out holds the body (appended) */
    CURRENCY_LISTENER_DONE, /* listener_max_s has passed: close the connection */
};

/* What the socket should do now; renders the body as of wall_ms. */
enum currency_listener_next currency_listener_next(struct currency_listener *l, int64_t wall_ms, struct jbuf *out);

/* Ticks that were due but skipped because the previous body had not been
 * taken yet. */
uint64_t currency_listener_skipped(const struct currency_listener *l);

#endif
