/*
 * http: one HTTP transaction on the fake exchange's port.
 *
 * lws delivers a request in steps (headers, body chunks, completion) and
 * lets us write only when the socket is writeable, so a transaction is a
 * small state machine kept in the connection's lws user data. Once the
 * request is complete it is routed (the control API under /_fakex/, else
 * /<exchange>/<path> to recorded data), faults shape the response, and the
 * response is written in chunks from HTTP_WRITEABLE, possibly after a
 * delay timer. Nothing blocks the loop.
 *
 * Bodies are borrowed from the fixtures when served as recorded, owned by
 * the transaction otherwise; http_txn_free releases them. Single-threaded
 * (lws callback only).
 */
#ifndef FAKEX_HTTP_H
#define FAKEX_HTTP_H

#include "fakex.h"

#include <cjson/cJSON.h>
#include <libwebsockets.h>
#include <stddef.h>

/* Request bodies above this get 413 (they are read and thrown away). */
#define HTTP_MAX_BODY ((size_t)1 << 20)
/* A client still sending after this much is disconnected. */
#define HTTP_MAX_DISCARD ((size_t)64 << 20)

struct http_txn {
    char method[8];
    char *uri; /* decoded path, without the query */
    struct query_params query;
    int loopback; /* peer is 127.0.0.0/8 or ::1 */
    int want_body;
    char *body;
    size_t body_len;
    size_t body_seen;
    int body_too_large;
    /* the response */
    int status;
    const char *ctype;
    char *owned;     /* freed with the transaction */
    const char *out; /* `owned` or a fixture body */
    size_t out_len;
    size_t sent;
    int responding;
    int headers_sent;
    int hangup; /* refuse fault: close without answering */
    long delay_ms;
    char *location; /* Location header of an override (owned), or NULL */
    char note[160]; /* what was served, for the log line */
};

/* LWS_CALLBACK_HTTP: a request's headers are in. -1 closes the connection. */
int http_begin(struct fakex *ctx, struct http_txn *t, struct lws *wsi, const char *uri, size_t len);

int http_body(struct http_txn *t, const void *in, size_t len);

int http_body_done(struct fakex *ctx, struct http_txn *t, struct lws *wsi);

int http_writeable(struct fakex *ctx, struct http_txn *t, struct lws *wsi);

/* The delay timer fired. */
void http_timer(struct http_txn *t, struct lws *wsi);

void http_txn_free(struct http_txn *t);

/* Copy the request's URL arguments (already decoded by lws) into `q`. */
void http_copy_args(struct lws *wsi, struct query_params *q);

/* Respond with a JSON document (takes ownership of `doc`). */
void http_respond_json(struct http_txn *t, int status, cJSON *doc);

/* Respond with {"error": msg} and `status`. */
void http_respond_error(struct http_txn *t, int status, const char *msg);

#endif
