/*
 * fixtures: one exchange's recorded data, loaded from its folder.
 *
 * A folder under --fixtures is an exchange when it holds manifest.json (the
 * recorder's table of REST bodies and WebSocket captures) and optionally
 * fakex.json, the sidecar that tells this server how to read the exchange's
 * subscribe messages, which leading capture lines are connection-level,
 * what to greet a new connection with, whether frames travel gzipped and
 * which frames the client must answer (format in README.md). Everything is
 * read at startup and immutable afterwards, except the one-time host
 * rewrite once the listening port is known, so lookups hand out borrowed
 * pointers that stay valid until fixtures_free(). Low-level: never logs,
 * reports problems through the caller's error buffer. Single-threaded.
 */
#ifndef FAKEX_FIXTURES_H
#define FAKEX_FIXTURES_H

#include "query.h"
#include "strset.h"
#include "submatch.h"

#include <cjson/cJSON.h>
#include <stddef.h>

struct fixtures_rest {
    char *method;
    char *path;
    char *query_text; /* as recorded, for logs; NULL when none */
    char *file;
    struct query_params query;
    char *body; /* the recorded bytes */
    size_t len;
    char *served; /* body after host rewrite; == body when unchanged */
    size_t served_len;
};

struct fixtures_line {
    size_t off;
    size_t len;
};

struct fixtures_ws {
    char *file;
    char *url_path;          /* path of the recorded URL, NULL when none */
    int url_selected;        /* recorded with no subscribe: streams chosen by URL */
    struct strset url_chans; /* channels the recorded URL selects */
    cJSON **subs;            /* recorded (+ sidecar) subscribe messages, parsed */
    size_t n_subs;
    struct strset ops;   /* operations those messages carry */
    struct strset chans; /* channels they ask for (or the sidecar's list) */
    char *data;
    struct fixtures_line *lines;
    size_t n_lines;
    size_t start_from; /* first line sent on a fresh subscription */
    size_t loop_from;  /* where replay restarts when the capture ends */
};

/*
 * A condition on a JSON message: the values `key` selects include one of
 * `values`, or, with `any`, there is a value at all. In an expect rule's
 * reply, a value "{{a.b}}" stands for the values the frame that armed the
 * rule has at a.b (the same id, the same ping number).
 */
struct fixtures_cond {
    struct submatch_key key;
    struct strset values;
    int any;
};

/*
 * A sidecar "expect" rule: after sending a frame that meets every `when`
 * condition, the connection must receive a client message meeting every
 * `reply` condition within within_ms, or it is closed (heartbeats).
 */
struct fixtures_expect {
    struct fixtures_cond *when;
    size_t n_when;
    struct fixtures_cond *reply;
    size_t n_reply;
    long within_ms;
};

/* Expect rules per exchange, and the longest answer time one may give. */
#define FIXTURES_MAX_EXPECTS 16
#define FIXTURES_MAX_WITHIN_MS (10L * 60 * 1000)

/* How the exchange's WebSocket frames travel (sidecar "compress"). */
enum fixtures_compress {
    FIXTURES_COMPRESS_NONE,
    FIXTURES_COMPRESS_GZIP, /* binary frames holding the gzip of the text */
};

/* A canned answer to a client message (pings, Binance's SUBSCRIBE ack). */
struct fixtures_reply {
    struct submatch_key when; /* the message's value at this key ... */
    struct strset values;     /* ... is one of these */
    char *send;               /* template; {{a.b}} = the message's value at a.b, as JSON */
};

struct fixtures_exchange {
    char *name;
    struct fixtures_rest *rest;
    size_t n_rest;
    struct fixtures_ws *ws;
    size_t n_ws;
    struct strset hosts; /* exchange host names to rewrite in bodies */
    int has_rule;        /* sidecar gave operation + channel paths */
    struct submatch_key op_key;
    struct submatch_key chan_key;
    char *url_param; /* sidecar url_streams: query parameter, separator, filter */
    char *url_sep;
    struct submatch_key url_key;
    char **greeting; /* frames sent to every new WebSocket connection */
    size_t n_greeting;
    struct fixtures_reply *replies;
    size_t n_replies;
    enum fixtures_compress compress;
    struct fixtures_expect *expects;
    size_t n_expects;
};

/*
 * Load every exchange folder under `root` (sorted by name) into a new array.
 * Returns 0 with *out and *n set, or -1 with a message in err.
 */
int fixtures_scan(const char *root, struct fixtures_exchange **out, size_t *n, char *err,
                  size_t errlen);

/* Load one folder. Returns 0, or -1 with a message in err (ex is then empty). */
int fixtures_load(struct fixtures_exchange *ex, const char *dir, const char *name, char *err,
                  size_t errlen);

void fixtures_free(struct fixtures_exchange *ex);

/* Free an array from fixtures_scan. */
void fixtures_free_all(struct fixtures_exchange *v, size_t n);

/* Rewrite exchange URLs in every REST body (see rewrite.h). */
void fixtures_rewrite(struct fixtures_exchange *ex, const char *http_base, const char *ws_base);

/*
 * The recorded REST entry for a request: same method and path, recorded
 * parameters all present (query_match), most recorded parameters winning,
 * the manifest's order breaking ties. NULL when none; *specificity gets the
 * winner's parameter count.
 */
const struct fixtures_rest *fixtures_rest_find(const struct fixtures_exchange *ex,
                                               const char *method, const char *path,
                                               const struct query_params *request,
                                               int *specificity);

/*
 * Captures to replay at once for a WebSocket opened on `path` with `query`
 * (URL-selected streams). Writes up to `cap` indices into ex->ws to `out`;
 * returns the count, 0 meaning "wait for a subscribe message".
 */
size_t fixtures_ws_for_url(const struct fixtures_exchange *ex, const char *path,
                           const struct query_params *query, size_t *out, size_t cap);

/*
 * Captures a client's text message subscribes to. Returns the count written
 * to `out` (indices into ex->ws); 0 when the message matches nothing.
 */
size_t fixtures_ws_for_message(const struct fixtures_exchange *ex, const char *text, size_t len,
                               size_t *out, size_t cap);

/*
 * The reply owed to a client's text message: the first sidecar "replies"
 * rule it satisfies, rendered. NULL when none (or not JSON). Caller frees.
 */
char *fixtures_reply_for(const struct fixtures_exchange *ex, const char *text, size_t len);

/* Split a URL stream list ("a@bookTicker/b@bookTicker") into channels. */
void fixtures_url_channels(const struct fixtures_exchange *ex, const char *value,
                           struct strset *out);

#endif
