/*
 * operator: one loaded version of one exchange script, and its life.
 *
 * An operator is a Lua file in operators/ that returns a table (spec 1,
 * docs/operators.md). This module owns that file's lua_State and runs it:
 * load and validate, markets(), then poll() every poll_every seconds with
 * jitter, exponential backoff after failures, and the state of DESIGN 4.1
 * derived from what happened (data, errors, code failures).
 *
 * Threads: the ingest loop only. What other threads see of an operator is
 * what the registry publishes on the board (store/board.h).
 * Ownership: the registry (operators.c) owns operators; an operator borrows
 * the engine services in struct op_env, which outlive it.
 */
#ifndef RX_OPERATOR_H
#define RX_OPERATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/board.h"
#include "store/ticker.h"

struct loop;
struct store;
struct board;
struct http_client;
struct config;
struct config_operator;
struct kv;
struct ws_client;
struct operator;

/* What op_env.on_traffic sees. Every pointer is borrowed for the call. */
enum op_traffic_kind {
    OP_TRAFFIC_HTTP,   /* a response: method, url (as requested), status, data */
    OP_TRAFFIC_WS_IN,  /* a frame received on stream `stream` (url), data, binary */
    OP_TRAFFIC_WS_OUT, /* a frame the operator sent there */
};
struct op_traffic {
    enum op_traffic_kind kind;
    const char *method;
    const char *url;
    long status; /* HTTP; 0 when no response came (error set) */
    const char *error;
    int stream; /* 1-based index of the stream, as in the logs */
    const char *data;
    size_t len;
    bool binary;
};

/* Engine services an operator borrows. */
struct op_env {
    struct loop *loop;
    struct store *store;
    struct board *board; /* where the registry publishes statuses and markets */
    struct http_client *http;
    struct kv *kv;
    struct ws_client *ws; /* NULL: streams are not started */
    const struct config *config;
    const char *lib_dir; /* operators/lib, for require */
    /* Multiplies the operator's callback time limits (0 or 1: as set). The
     * author's tools run with room to spare, so that a loaded machine or a
     * sanitizer build cannot turn a replay into a race. */
    int deadline_scale;
    /* Called once per emit batch (one x.emit, or one x.emit_many) that
     * stored at least one ticker, with the tickers it stored (changed[i]
     * = 0 when only `received` moved). May be NULL. */
    void (*on_batch)(struct operator *op, const struct ticker *t, const bool *changed, size_t n,
                     void *ctx);
    /* A tap on the exchange traffic an operator sees (operator record):
     * every HTTP response and every WebSocket frame received or sent.
     * May be NULL; must not call back into the operator. */
    void (*on_traffic)(struct operator *op, const struct op_traffic *ev, void *ctx);
    /* The registry's view changed: an operator's state, or its removal. */
    void (*on_status)(const char *exchange, const char *state, const char *reason, void *ctx);
    void (*on_removed)(const char *exchange, void *ctx);
    /* An operator's markets() list changed (m borrowed for the call). */
    void (*on_markets)(const char *exchange, const struct board_market *m, size_t n, void *ctx);
    void *ctx;
};

/* The markets of the running version and a counter that changes whenever
 * they do (loop thread). */
const struct board_market *op_markets(const struct operator *op, size_t *n, uint64_t *gen);

/*
 * Loads `file` into a fresh sandbox and validates it (spec 1 plus config
 * overrides). Returns the operator, not yet started, or NULL with a
 * "file:line: message" error. *line receives the line of the error, or 0.
 */
struct operator *op_load(const struct op_env *env, const char *file, char *err, size_t errlen,
                         int *line);

/* Runs markets() and starts polling; the operator then lives on timers. */
void op_start(struct operator *op);

/* Runs markets() only and reports through done (make-before-break reload):
 * ok = 1 when markets() succeeded (or the operator has none). */
typedef void (*op_ready_fn)(struct operator *op, int ok, const char *err, void *data);
void op_prepare(struct operator *op, op_ready_fn done, void *data);

/* Holds the version's emits (a candidate's, until the registry accepts
 * it): they go to a private copy of the exchange's stored tickers, so
 * they merge and count as they would, but reach neither env->store nor
 * on_batch. op_free drops what is held. */
void op_hold(struct operator *op);
/* Stops holding: every held ticker newer than the stored one is stored,
 * in one on_batch, and emits go to env->store from now on. */
void op_release(struct operator *op);

/* Make before break: starts the streams of a prepared version that is not
 * started (its emits held) and calls done once every stream has carried
 * data (ok = 1), or after wait_ms (ok = 0), or at once when there are no
 * streams to wait for; never inside this call. */
void op_warm(struct operator *op, uint64_t wait_ms, op_ready_fn done, void *data);

/* Stops timers and cancels what is in flight; frees everything. */
void op_free(struct operator *op);

const char *op_name(const struct operator *op);
const char *op_file(const struct operator *op);
bool op_enabled(const struct operator *op);
bool op_has_stream(const struct operator *op);

/* Takes x.state from old (a plain-data deep copy across lua_States). */
int op_take_state(struct operator *op, struct operator *old, char *err, size_t errlen);

/* Carries counters and history across a reload so the API stays truthful. */
void op_take_history(struct operator *op, const struct operator *old);

/* Cuts an error text to the one line a person reads in a status: the
 * message without the traceback sandbox_pcall appends (the log keeps it)
 * and with control characters made spaces. In place. */
void op_reason_line(char *text);

/* Fills a status copy as of now_ms. */
void op_status(const struct operator *op, int64_t now_ms, struct board_status *out);

/* For the author's tools: markets(), then one poll() (when `poll` and the
 * operator has one) and its streams (when `streams`). done is called once
 * markets() and that poll() have finished (ok = 1 when both succeeded);
 * the streams go on until op_free. */
void op_run_once(struct operator *op, bool poll, bool streams, op_ready_fn done, void *data);

#endif
