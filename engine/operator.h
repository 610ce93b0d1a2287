/*
 * operator: one loaded version of one exchange script, and its life.
 *
 * An operator is a Lua file in operators/ that returns a table (spec 1,
 * docs/operators.md). This module owns that file's lua_State and runs it:
 * load and validate, markets(), then poll() every poll_every seconds with
 * jitter, exponential backoff after failures, and the state of DESIGN 4.1
 * derived from what happened (data, errors, code failures).
 *
 * Threads: loop thread only, except op_status_* on a published copy.
 * Ownership: the registry (operators.c) owns operators; an operator borrows
 * the engine services in struct op_env, which outlive it.
 */
#ifndef RX_OPERATOR_H
#define RX_OPERATOR_H

#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

#include "ticker.h"

struct loop;
struct store;
struct http_client;
struct config;
struct config_operator;
struct kv;
struct ws_client;
struct operator;

enum op_state {
    OP_STATE_STARTING,
    OP_STATE_STREAMING,
    OP_STATE_POLLING,
    OP_STATE_DEGRADED,
    OP_STATE_ERROR,
    OP_STATE_DISABLED,
    OP_STATE_STANDBY,
};

const char *op_state_name(enum op_state state);

/* Engine services an operator borrows. */
struct op_env {
    struct loop *loop;
    struct store *store;
    struct http_client *http;
    struct kv *kv;
    struct ws_client *ws; /* NULL: streams are not started */
    const struct config *config;
    const char *lib_dir; /* operators/lib, for require */
    /* Called after each emit batch that changed the store (may be NULL). */
    void (*on_batch)(struct operator *op, int changed, void *ctx);
    /* Called for every accepted ticker; changed = 0 when only `received`
     * moved (the subscription server pushes changes only). */
    void (*on_ticker)(struct operator *op, const struct ticker *t, int changed, void *ctx);
    /* The registry's view changed: an operator's state, or its removal. */
    void (*on_status)(const char *exchange, const char *state, const char *reason, void *ctx);
    void (*on_removed)(const char *exchange, void *ctx);
    void *ctx;
};

#define OP_REASON_MAX 256
#define OP_UNMAPPED_MAX 64

struct op_unmapped {
    char symbol[TICKER_SYMBOL_MAX];
    uint64_t count;
};

/* One entry of markets(), as /v1/markets shows it. */
struct op_market {
    char exchange[TICKER_EXCHANGE_MAX];
    char symbol[TICKER_SYMBOL_MAX];
    char pair[TICKER_PAIR_MAX];
};

/* The markets of the running version and a counter that changes whenever
 * they do (loop thread). */
const struct op_market *op_markets(const struct operator *op, size_t *n, uint64_t *gen);

/* What the API shows about an operator: a plain copy, safe to hand to other
 * threads. */
struct op_status {
    char name[TICKER_EXCHANGE_MAX];
    char file[256];
    enum op_state state;
    char reason[OP_REASON_MAX];
    char source[8]; /* "poll", "stream" or "" */
    int64_t loaded_at;
    int64_t last_update;
    uint64_t errors;
    uint64_t emitted;
    uint64_t unmapped_total;
    uint64_t filtered; /* emits for pairs outside the config allow-list */
    uint64_t over_max_pairs;
    uint64_t http_requests;
    int64_t budget_requests;
    double budget_per;
    uint64_t budget_waits;
    uint64_t callbacks;
    double callback_max_ms; /* the longest callback so far */
    uint64_t slow_callbacks; /* callbacks that held the loop > 100 ms */
    int streams_open;
    uint64_t stream_messages;
    uint64_t frames_dropped; /* stream messages over max_frame_bytes */
    size_t memory_bytes;
    size_t n_unmapped;
    struct op_unmapped unmapped[OP_UNMAPPED_MAX];
    /* The newest file version that failed to load while this one runs. */
    bool rejected;
    char rejected_error[OP_REASON_MAX];
    int rejected_line;
    int64_t rejected_at;
};

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

/* Stops timers and cancels what is in flight; frees everything. */
void op_free(struct operator *op);

const char *op_name(const struct operator *op);
const char *op_file(const struct operator *op);
bool op_enabled(const struct operator *op);

/* Takes x.state from old (a plain-data deep copy across lua_States). */
int op_take_state(struct operator *op, struct operator *old, char *err, size_t errlen);

/* Carries counters and history across a reload so the API stays truthful. */
void op_take_history(struct operator *op, const struct operator *old);

/* Fills a status copy as of now_ms. */
void op_status(const struct operator *op, int64_t now_ms, struct op_status *out);

/* For the author's tools: run markets() then one poll(), calling done when
 * both have finished (ok = 1 when both succeeded). */
void op_run_once(struct operator *op, op_ready_fn done, void *data);

#endif
