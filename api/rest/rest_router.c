/*
 * rest_router: the one route table of the REST API and path matching.
 *
 * The table says which paths exist, for which method, who may call them
 * (public paths come from the config, not from here: auth decides) and
 * under which label they are counted. Matching works on the raw request
 * target, segment by segment, each segment percent-decoded on its own:
 * libmicrohttpd hands handlers a path decoded as a whole, where an encoded
 * slash in a parameter ("BTC%2FUSDT") would already have split it. A table
 * this small is scanned linearly; patterns hold at most one parameter.
 */
#include "rest_int.h"

#include <stdio.h>
#include <string.h>

#include "core/pct.h"

static const struct rest_route routes[] = {
    {"GET", "/healthz", api_route_healthz, REST_ROUTE_OPS, "/healthz"},
    {"GET", "/readyz", api_route_readyz, REST_ROUTE_OPS, "/readyz"},
    {"GET", "/metrics", api_route_metrics, REST_ROUTE_OPS, "/metrics"},
    {"GET", "/openapi.json", api_route_openapi, 0, "/openapi.json"},
    {"GET", "/docs", api_route_docs, 0, "/docs"},
    {"GET", "/", api_route_page, 0, "/"},
    {"GET", "/v1/exchanges", api_route_exchanges, 0, "/v1/exchanges"},
    {"GET", "/v1/exchanges/{name}", api_route_exchange, 0, "/v1/exchanges/{name}"},
    {"GET", "/v1/markets", api_route_markets, 0, "/v1/markets"},
    {"GET", "/v1/rates", api_route_rates, 0, "/v1/rates"},
    {"GET", "/v1/rates/{pair}", api_route_rate_pair, 0, "/v1/rates/{pair}"},
    {"GET", "/v1/convert", api_route_convert, 0, "/v1/convert"},
    {"POST", "/v1/admin/reload", api_route_admin_reload, REST_ROUTE_ADMIN | REST_ROUTE_OPS,
     "/v1/admin/reload"},
    {"GET", "/currency", api_route_currency, REST_ROUTE_COMPAT, "/currency"},
    {"GET", "/aviable_exchanges", api_route_aviable_exchanges, REST_ROUTE_COMPAT,
     "/aviable_exchanges"},
};

#define N_ROUTES (sizeof routes / sizeof routes[0])

size_t rest_route_count(void)
{
    return N_ROUTES;
}

const struct rest_route *rest_route_at(size_t i)
{
    return i < N_ROUTES ? &routes[i] : NULL;
}

/* Whether the raw path matches pattern; fills param for a {..} segment. */
static bool path_matches(const char *pattern, const char *path, size_t len, char *param)
{
    const char *p = pattern;
    size_t s = 0;
    char seg[64];

    if (len == 0 || path[0] != '/') {
        return false;
    }
    for (;;) {
        /* p and path[s] are both at a '/'. */
        p++, s++;
        const char *p_end = strchr(p, '/');
        size_t p_len = p_end ? (size_t)(p_end - p) : strlen(p);
        size_t s_end = s;
        while (s_end < len && path[s_end] != '/') {
            s_end++;
        }
        if (p_len > 2 && p[0] == '{' && p[p_len - 1] == '}') {
            if (s_end == s ||
                pct_decode(path + s, s_end - s, param, API_PARAM_MAX, false) <= 0) {
                return false;
            }
        } else {
            long n = pct_decode(path + s, s_end - s, seg, sizeof seg, false);
            if (n < 0 || (size_t)n != p_len || memcmp(seg, p, p_len) != 0) {
                return false;
            }
        }
        p += p_len;
        s = s_end;
        if (*p == '\0' || s == len) {
            return *p == '\0' && s == len;
        }
    }
}

static bool method_matches(const struct rest_route *r, const char *method)
{
    return strcmp(r->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

enum rest_match rest_route_match(const char *method, const char *raw_path, size_t path_len,
                                 size_t *index, char *param, char *allow, size_t allow_cap)
{
    char scratch[API_PARAM_MAX];
    bool found = false;
    bool options = strcmp(method, "OPTIONS") == 0;
    size_t o = 0;

    param[0] = '\0';
    if (allow_cap) {
        allow[0] = '\0';
    }
    for (size_t i = 0; i < N_ROUTES; i++) {
        /* path_matches writes only a {..} segment: a route without one must
         * not hand on what an earlier attempt (or the stack) left here. */
        scratch[0] = '\0';
        if (!path_matches(routes[i].pattern, raw_path, path_len, scratch)) {
            continue;
        }
        if (!found || method_matches(&routes[i], method)) {
            *index = i;
            snprintf(param, API_PARAM_MAX, "%s", scratch);
        }
        found = true;
        if (o < allow_cap) {
            int n = snprintf(allow + o, allow_cap - o, "%s%s",
                             strcmp(routes[i].method, "GET") == 0 ? "GET, HEAD" : routes[i].method,
                             ", ");
            o += n > 0 ? (size_t)n : 0;
        }
    }
    if (!found) {
        return REST_MATCH_NOT_FOUND;
    }
    if (o < allow_cap) {
        snprintf(allow + o, allow_cap - o, "OPTIONS");
    }
    if (options || method_matches(&routes[*index], method)) {
        return REST_MATCH_OK;
    }
    return REST_MATCH_BAD_METHOD;
}
