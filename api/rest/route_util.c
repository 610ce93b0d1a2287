/*
 * api_util: the helpers every route uses to read a request and shape an
 * answer, so that parameter errors read the same everywhere and always name
 * the parameter and what it accepts.
 */
#include "route.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/ticker.h"

const char *api_query(const struct api_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *api_header(const struct api_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void api_add_header(struct api_resp *resp, const char *name, const char *fmt, ...)
{
    va_list ap;
    if (resp->n_headers == API_MAX_HEADERS) {
        return;
    }
    struct api_header *h = &resp->headers[resp->n_headers++];
    h->name = name;
    va_start(ap, fmt);
    vsnprintf(h->value, sizeof h->value, fmt, ap);
    va_end(ap);
}

void api_error(struct api_resp *resp, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    resp->status = status;
    resp->content_type = "application/json";
    jbuf_reset(&resp->body);
    jbuf_adds(&resp->body, "{\"error\":{\"code\":");
    jbuf_str(&resp->body, code);
    jbuf_adds(&resp->body, ",\"message\":");
    jbuf_str(&resp->body, msg);
    jbuf_adds(&resp->body, "}}");
}

int api_pair_param(struct api_resp *resp, const char *name, const char *value, char *out,
                   size_t cap)
{
    if (value && ticker_pair_canonical(value, out, cap) >= 0) {
        return 0;
    }
    api_error(resp, 400, "bad_pair",
              "%s: '%.64s' is not a pair; use BASE_QUOTE, BASE/QUOTE or BASE-QUOTE "
              "(letters and digits, 1 to 15 each, any case), e.g. BTC_USDT",
              name, value ? value : "");
    return -1;
}

int api_int_param(const struct api_req *req, struct api_resp *resp, const char *name,
                  int64_t lo, int64_t hi, int64_t dflt, int64_t *out)
{
    const char *v = api_query(req, name);
    char *end;

    if (!v) {
        *out = dflt;
        return 0;
    }
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        api_error(resp, 400, "bad_param", "%s: '%.32s' must be an integer from %lld to %lld", name,
                  v, (long long)lo, (long long)hi);
        return -1;
    }
    *out = n;
    return 0;
}
