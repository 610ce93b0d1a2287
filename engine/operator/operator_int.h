/*
 * operator_int: the operator's insides, shared by the files that implement
 * it. Nothing outside engine/operator/ includes this header.
 *
 * The files, each calling only those listed before it:
 *   op_spec.c    validation of the returned table (spec 1 + config)
 *   op_facts.c   what happened (data, errors, unmapped, callback times)
 *   op_pairs.c   asset codes and symbols to canonical pairs
 *   op_task.c    callbacks run as coroutines that may wait
 *   x_*.c        the `x` context's primitives (emit, http, store and kv,
 *                the `ws` userdata); x_ctx.c assembles `x`
 *   op_stream.c  an operator's WebSocket streams
 *   operator.c   load, markets(), poll() on timers, status
 *   operators.c  the registry: scan, reload, publish on the board
 *
 * Threads: the ingest loop only.
 */
#ifndef RX_OPERATOR_INT_H
#define RX_OPERATOR_INT_H

#include "operator.h"

#include <lua.h>

struct op_task;
struct op_stream;
struct ws_client;
struct ws_conn;

#define OP_MAX_STREAMS 64

/* A host x.http may reach, and on which port: 0 for the ports of the
 * operator's own rest and ws URLs (op_spec.own_ports). */
struct op_host {
    char *name;
    int port;
};

/* The validated operator table, with config overrides applied. */
struct op_spec {
    char name[TICKER_EXCHANGE_MAX];
    char *rest;
    char *ws;
    double poll_every; /* seconds */
    bool has_markets;
    bool has_poll;
    bool has_stream;
    int64_t budget_requests;
    double budget_per;
    double idle_timeout;
    int64_t max_pairs;
    int64_t stale_after_ms;
    int64_t message_ms; /* time limit of on_message, on_ping, on_close */
    int64_t task_ms;    /* of markets, poll, connections, on_open between waits */
    bool enabled;
    struct op_host *hosts; /* hosts x.http may reach: rest, ws, allow_hosts */
    size_t n_hosts;
    int own_ports[2]; /* the ports of rest and ws (scheme default if unwritten) */
    size_t n_own_ports;
    char **pairs; /* config allow-list; empty = all */
    size_t n_pairs;
};

/* Status facts; op_status() derives the state from them. */
struct op_facts {
    int64_t loaded_at;
    int64_t last_data;
    int64_t last_stream_data; /* the last emit a stream's callback made */
    int64_t last_error_at;
    char reason[BOARD_REASON_MAX];
    bool code_failed;
    uint64_t errors;
    uint64_t emitted;
    uint64_t unmapped_total;
    uint64_t filtered;
    uint64_t over_max_pairs;
    uint64_t http_requests;
    uint64_t budget_waits;
    uint64_t callbacks;
    double callback_max_ms;
    uint64_t slow_callbacks;
    uint64_t stream_messages;
    uint64_t stream_taken;  /* messages whose on_message emitted a ticker */
    uint64_t emit_attempts; /* tickers handed to x.emit/x.emit_many */
    uint64_t frames_dropped;
    size_t n_unmapped;
    struct board_unmapped unmapped[BOARD_UNMAPPED_MAX];
    /* x_emit.c: the current window of emits (filtered ones left out) and
     * the verdict on the last one: "" or why most of its emits were refused. */
    int64_t window_at;
    uint64_t window_emits;
    uint64_t window_refused;
    uint64_t window_rejects[TICKER_REJECT_COUNT];
    char refusing[BOARD_REASON_MAX];
};

/* The tickers one x.emit or x.emit_many stored (x_emit.c), for the one
 * on_batch call that ends it. */
struct op_batch {
    struct ticker *t;
    bool *changed;
    size_t n, cap;
};

struct operator {
    struct op_env env;
    char *file;
    char component[48]; /* "op:<name>", the log component */
    lua_State *L;
    int table_ref;   /* the table the file returned */
    int x_ref;       /* the context `x` */
    int symbols_ref; /* symbol -> canonical pair, from markets() */
    int markets_ref; /* the list markets() returned */
    struct op_spec spec;
    struct op_facts facts;
    int64_t max_frame_bytes;   /* config; <= 0 = the engine default */
    struct op_stream *streams; /* one per stream.connections() entry */
    struct op_task *connections_task;
    bool connections_returned; /* connections() has run, well or not */
    int streams_open;
    struct board_market *markets; /* what markets() returned, mapped */
    size_t n_markets;
    uint64_t markets_gen;

    /* Which source an emit is attributed to while a callback runs. */
    enum ticker_source emit_source;
    /* The task whose coroutine is running now (one at a time per state). */
    struct op_task *running;
    struct op_task *tasks; /* all live tasks, for cancellation */

    /* One timer drives markets() retries and then poll(). */
    struct loop_timer *timer;
    struct op_task *poll_task;
    struct op_task *markets_task;
    unsigned consecutive_failures;
    bool markets_ok;
    bool started;
    bool freeing;
    enum ticker_source last_source;

    op_ready_fn ready_fn; /* op_prepare's caller, told once markets() ends */
    void *ready_data;
    op_ready_fn run_once_fn; /* op_run_once's caller */
    op_ready_fn once_fn;     /* set while that single poll() runs */
    bool once_poll;          /* op_run_once: run one poll() */
    bool once_streams;       /* op_run_once: start the streams */

    struct op_batch batch;

    /* op_hold: while `held` is set, emits go there instead of the store
     * the registry gave, and on_batch is not called; real_env keeps both
     * for op_release. */
    struct store *held;
    struct op_env real_env;
    int64_t held_since; /* wall ms: held tickers are those received since */

    /* op_warm: told once the streams carry data or the wait is over. */
    op_ready_fn warm_fn;
    void *warm_data;
    struct loop_timer *warm_timer;

    /* HTTP budget: a token bucket of budget_requests per budget_per s. */
    double tokens;
    uint64_t tokens_at_ms;
};

/* The store x.store reads: the shared one, also while the version's own
 * emits are held (a derived operator reads other exchanges). */
static inline struct store *op_read_store(const struct operator *op)
{
    return op->held ? op->real_env.store : op->env.store;
}

/* The operator a C closure of `x` serves: its first upvalue. */
static inline struct operator *op_self(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* op_spec.c */
int op_spec_read(lua_State *L, int idx, const struct config *cfg, struct op_spec *spec, char *err,
                 size_t errlen);
void op_spec_free(struct op_spec *spec);
/* The host (malloc'd) and port of an http(s) or ws(s) URL, the port the
 * scheme's default when the URL names none; 0, or -1 for anything else. */
int op_url_host_port(const char *url, char **host, int *port);

/* op_facts.c */
void op_record_error(struct operator *op, const char *what, const char *msg);
void op_record_data(struct operator *op, const struct ticker *t);
void op_record_unmapped(struct operator *op, const char *symbol);
/* Records a callback's wall time for the loop-lag watchdog. */
void op_note_callback(struct operator *op, double ms);

/* op_pairs.c: canonical BASE_QUOTE from two asset codes, through the
 * operator's aliases (XBT -> BTC) and upper-casing; or from a symbol,
 * through the map markets() built (-ENOENT: unmapped). 0 or negative. */
int op_pair_from_assets(struct operator *op, const char *base, const char *quote, char *out,
                        size_t cap);
int op_pair_from_symbol(struct operator *op, const char *symbol, char *out, size_t cap);

/* op_task.c: a callback run as a coroutine. The function and arguments are
 * pushed on task->co by the caller before op_task_run. */
typedef void (*op_task_done_fn)(struct op_task *task, int ok, const char *err, void *data);
struct op_task {
    struct operator *op;
    struct op_task *next;
    lua_State *co;
    int co_ref;
    const char *what;
    enum ticker_source source; /* what its emits are attributed to */
    op_task_done_fn done;
    void *data;
    /* What the task waits on, cancelled if the operator goes away. */
    void (*cancel)(void *pending);
    void *pending;
};
struct op_task *op_task_new(struct operator *op, const char *what, op_task_done_fn done,
                            void *data);
void op_task_run(struct op_task *task, int nargs);
/* Resume after a wait: the primitive pushed nresults values on task->co. */
void op_task_resume(struct op_task *task, int nresults);
void op_task_free(struct op_task *task);

/* x_ctx.c: builds `x` and leaves it at the top of op->L. */
void op_ctx_push(struct operator *op);
/* x_emit.c, x_http.c, x_store.c: their parts of `x`. */
void op_emit_open(lua_State *L, struct operator *op);
void op_http_open(lua_State *L, struct operator *op);
void op_store_open(lua_State *L, struct operator *op);
/* x_http.c: whether url's host is one the operator may reach. */
bool op_url_allowed(const struct operator *op, const char *url);
/* x_ws.c: the `ws` userdata of an open connection, and cutting it loose
 * when the connection goes (ws:send then answers nil, "closed"). */
void op_ws_push(lua_State *L, struct operator *op, struct ws_conn *conn);
void op_ws_detach(lua_State *L, int idx);

/* op_stream.c */
void op_streams_start(struct operator *op);
void op_streams_free(struct operator *op);
/* Whether connections() has returned and every stream it gave has carried
 * data (a message whose on_message emitted). */
bool op_streams_carried(const struct operator *op);
/* x_ws.c, after ws:send queued a message: the traffic tap. */
void op_stream_sent(struct operator *op, struct ws_conn *conn, const char *msg, size_t len,
                    bool binary);

/* operator.c: a stream carried data for the first time (op_warm). */
void op_warm_check(struct operator *op);

#endif
