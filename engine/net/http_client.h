/*
 * http_client: non-blocking HTTP(S) over libcurl's multi interface, driven
 * by the engine loop (curl_multi_socket_action), so no call here ever blocks.
 *
 * Outbound TLS verifies certificates against the system store plus the
 * configured ca_file. Redirects are followed by this module, not by curl, so
 * that each new URL passes the caller's url_allowed check (an operator must
 * not be redirected to a host it may not reach).
 *
 * Threads: loop thread only. Ownership: the client owns every call it
 * started; the response handed to a callback is borrowed for the duration
 * of the callback.
 */
#ifndef RX_HTTP_CLIENT_H
#define RX_HTTP_CLIENT_H

#include <stddef.h>

struct loop;
struct http_client;
struct http_call;

struct http_client_options {
    const char *ca_file;    /* extra CA bundle, or NULL */
    const char *proxy;      /* outbound proxy URL, or NULL */
    const char *user_agent; /* or NULL for the default */
};

enum http_error {
    HTTP_OK = 0,
    HTTP_ERR_NETWORK = -1,   /* connect, DNS, reset */
    HTTP_ERR_TIMEOUT = -2,   /* the request's timeout passed */
    HTTP_ERR_TLS = -3,       /* certificate or handshake failure */
    HTTP_ERR_TOO_LARGE = -4, /* the body passed max_body_bytes */
    HTTP_ERR_REDIRECTS = -5, /* more than max_redirects hops */
    HTTP_ERR_REFUSED = -6,   /* url_allowed said no, or a scheme other than http(s) */
    HTTP_ERR_CANCELLED = -7, /* the client was freed first */
};

struct http_request {
    const char *method; /* "GET" or "POST" (NULL = GET) */
    const char *url;
    const char *const *headers; /* "Name: value" strings */
    size_t n_headers;
    const char *body; /* POST body, copied by the client */
    size_t body_len;
    long timeout_ms;       /* whole request; 0 = 10 s */
    size_t max_body_bytes; /* 0 = 16 MiB */
    int max_redirects;     /* -1 = none followed; 0 = 5 */
    /* Asked before the first request and before each redirect; nonzero =
     * allowed. NULL allows any http(s) URL. */
    int (*url_allowed)(const char *url, void *ctx);
    void *url_allowed_ctx;
};

struct http_response {
    int error;              /* enum http_error */
    const char *error_text; /* human text when error != 0 */
    long status;            /* HTTP status, 0 if none was received */
    const char *body;       /* NUL-terminated for convenience */
    size_t body_len;
    const char *headers; /* the last response's header block, raw */
    size_t headers_len;
    const char *final_url;
    double total_ms;
};

typedef void (*http_done_fn)(const struct http_response *resp, void *data);

struct http_client *http_client_new(struct loop *loop, const struct http_client_options *opts);
/* Cancels every call still running: each done callback runs once with
 * HTTP_ERR_CANCELLED, so callers can release what they hold. */
void http_client_free(struct http_client *client);

/* Starts a request. done runs exactly once, later, on the loop thread (never
 * from inside this call). Returns NULL only when the request cannot start
 * (a URL url_allowed refuses is reported through done, like other errors). */
struct http_call *http_client_start(struct http_client *client, const struct http_request *req,
                                    http_done_fn done, void *data);
/* Abandons a call: done will not run. */
void http_call_cancel(struct http_call *call);

size_t http_client_active(const struct http_client *client);
const char *http_error_name(int error);

#endif
