/*
 * fakex: the fake exchange's shared state.
 *
 * One `struct fakex` holds everything the process owns: options, the loaded
 * fixtures, one `struct exchange` of mutable run-time state per fixture
 * folder (faults, REST overrides, counters, open WebSocket sessions), the
 * libwebsockets context and a scratch buffer for writes. It is created in
 * fakex_main.c and passed explicitly (lws hands it back through the
 * context user pointer). There is no other global state: even signals
 * arrive as readable data on a signalfd in the same loop.
 *
 * Threads: none. Everything runs on the lws service loop, so no locking.
 */
#ifndef FAKEX_H
#define FAKEX_H

#include "faults.h"
#include "fixtures.h"
#include "query.h"

#include <libwebsockets.h>
#include <stddef.h>

struct ws_session;

struct fakex_opts {
    const char *fixtures;
    char listen_host[64];
    int listen_port;
    const char *port_file;
    double rate; /* replay messages/s per connection; 0 = as fast as the socket takes */
    int once;    /* replay each capture once per connection, then stay silent */
    const char *tls_cert;
    const char *tls_key;
    const char *public_url;
    int verbose;
};

/* A REST answer set through the control API, matched like a recorded one. */
struct override {
    char *method;
    char *path;
    struct query_params query;
    int status;
    char *body;
    size_t len;
    char *location; /* a Location header to send (redirect tests), or NULL */
};

struct path_count {
    char *path;
    unsigned long count;
};

/* Distinct paths kept per exchange in stats; the rest count as "(other)". */
#define EXCHANGE_MAX_PATHS 256
/* Overrides per exchange; a test that needs more is doing something else. */
#define EXCHANGE_MAX_OVERRIDES 256
#define EXCHANGE_MAX_OVERRIDE_BYTES ((size_t)16 << 20)

struct exchange {
    const struct fixtures_exchange *fx; /* borrowed from fakex.fixtures */
    struct faults faults;
    int stopped; /* replay paused by /stop */
    struct override *overrides;
    size_t n_overrides;
    size_t override_bytes;
    unsigned long requests;
    unsigned long ws_connections;
    unsigned long ws_frames_sent;
    unsigned long ws_client_messages;
    unsigned long ws_loops;             /* captures restarted from loop_from */
    unsigned long ws_captures_started;  /* captures a connection began to play */
    unsigned long ws_captures_done;     /* of those, played to the end (--once) */
    unsigned long ws_heartbeats_missed; /* connections closed for a frame left unanswered */
    struct path_count *by_path;
    size_t n_paths;
    struct ws_session *sessions; /* open connections (intrusive list) */
    size_t ws_open;
};

struct fakex {
    struct fakex_opts opts;
    struct fixtures_exchange *fixtures;
    size_t n_fixtures;
    struct exchange *exchanges; /* parallel to fixtures */
    struct lws_context *lws;
    struct lws_vhost *vhost;
    int port;
    int tls;
    int stop;
    int sigfd;
    int sigfd_adopted; /* lws owns (and closes) the signalfd */
    unsigned long next_session_id;
    char public_base[256]; /* "http://127.0.0.1:PORT" or --public-url */
    unsigned char *wbuf;   /* LWS_PRE + payload scratch for lws_write */
    size_t wbuf_cap;
};

/* One line to stderr, prefixed with the time and "fakex:". */
void fakex_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The scratch buffer with room for LWS_PRE + n bytes; grows as needed. */
unsigned char *fakex_wbuf(struct fakex *ctx, size_t n);

/* The exchange named `name` (len bytes), or NULL. */
struct exchange *exchange_find(struct fakex *ctx, const char *name, size_t len);

/* Count one REST request on `path` in the exchange's stats. */
void exchange_count_request(struct exchange *ex, const char *path);

/*
 * Set (or replace: same method, path and parameters) a REST override. Takes
 * ownership of `body` on success. Returns 0, or -1 when the table is full
 * (EXCHANGE_MAX_OVERRIDES entries or EXCHANGE_MAX_OVERRIDE_BYTES of bodies).
 */
int exchange_override_set(struct exchange *ex, const char *method, const char *path,
                          const char *query, int status, char *body, size_t len,
                          const char *location);

/* Best override for a request, like fixtures_rest_find. */
const struct override *exchange_override_find(const struct exchange *ex, const char *method,
                                              const char *path, const struct query_params *request,
                                              int *specificity);

/* Forget faults, overrides, stop and counters (open sessions stay open). */
void exchange_reset(struct exchange *ex);

/* The /stats document (caller deletes). */
cJSON *exchange_stats_json(const struct exchange *ex);

void exchange_free(struct exchange *ex);

#endif
