/*
 * route: what every REST route sees — the request, the response it fills,
 * and the helpers they share (rest/route_util.c).
 *
 * Routes run on libmicrohttpd worker threads. They may read what api.h
 * lists (the store, the board, the config, the gauges) and nothing else;
 * work that needs the ingest loop goes through ingest_bridge_post
 * (ingest_bridge.h), which runs a job there and resumes the suspended
 * request afterwards.
 *
 * Ownership: the request is borrowed for the duration of the handler; the
 * response (body, headers) belongs to the REST core, which sends and frees
 * it. A handler fills resp and returns; it must not keep pointers to req.
 */
#ifndef RX_ROUTE_H
#define RX_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "core/jbuf.h"

struct MHD_Connection;

#define API_MAX_HEADERS 8
#define API_PARAM_MAX 128

struct api_req {
    const struct api_ctx *ctx;
    struct MHD_Connection *conn;
    const char *method;             /* "GET", "POST", ... */
    const char *path;               /* decoded, without the query */
    char param[API_PARAM_MAX];      /* the {pair} or {name} segment, decoded */
    int64_t now_ms;                 /* wall clock at the start of the request */
    bool admin;                     /* a valid admin token was given */
};

struct api_header {
    const char *name; /* static strings only */
    char value[160];
};

struct api_resp {
    int status;                /* default 200 */
    const char *content_type;  /* static; default "application/json" */
    struct jbuf body;          /* the body; the core frees it */
    struct api_header headers[API_MAX_HEADERS];
    size_t n_headers;
    /* A cacheable body may share a buffer instead (render cache, rates.c):
     * when `shared` is set the core sends shared/shared_len and calls
     * shared_release(shared_ctx) once MHD no longer needs the bytes. */
    const char *shared;
    size_t shared_len;
    void (*shared_release)(void *shared_ctx);
    void *shared_ctx;
    bool suspended; /* set by api_loop_post: the core answers later */
};

typedef void (*api_route_fn)(struct api_req *req, struct api_resp *resp);

/* Query parameter `name`, decoded, or NULL when absent (MHD's lookup). */
const char *api_query(const struct api_req *req, const char *name);
/* A request header, or NULL. */
const char *api_header(const struct api_req *req, const char *name);
/* Adds a response header (name must be a static string). */
void api_add_header(struct api_resp *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {"error":{"code":code,"message":...}} with the status. */
void api_error(struct api_resp *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Parses pair input (BTC_USDT, btc/usdt, BTC-USDT) into out; on failure
 * fills resp with 400 bad_pair naming the accepted forms and returns -1. */
int api_pair_param(struct api_resp *resp, const char *name, const char *value, char *out,
                   size_t cap);
/* An integer parameter in [lo, hi]; absent = dflt. 400 bad_param on error. */
int api_int_param(const struct api_req *req, struct api_resp *resp, const char *name,
                  int64_t lo, int64_t hi, int64_t dflt, int64_t *out);

/* Routes (one file per resource). */
void api_route_healthz(struct api_req *req, struct api_resp *resp);
void api_route_readyz(struct api_req *req, struct api_resp *resp);
void api_route_metrics(struct api_req *req, struct api_resp *resp);
void api_route_exchanges(struct api_req *req, struct api_resp *resp);
void api_route_exchange(struct api_req *req, struct api_resp *resp);
void api_route_markets(struct api_req *req, struct api_resp *resp);
void api_route_rates(struct api_req *req, struct api_resp *resp);
void api_route_rate_pair(struct api_req *req, struct api_resp *resp);
void api_route_convert(struct api_req *req, struct api_resp *resp);
void api_route_currency(struct api_req *req, struct api_resp *resp);
void api_route_aviable_exchanges(struct api_req *req, struct api_resp *resp);
void api_route_openapi(struct api_req *req, struct api_resp *resp);
void api_route_docs(struct api_req *req, struct api_resp *resp);
void api_route_page(struct api_req *req, struct api_resp *resp);
void api_route_admin_reload(struct api_req *req, struct api_resp *resp);

#endif
