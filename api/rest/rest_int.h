/*
 * rest_int: the REST core's route table, shared by rest.c (dispatch),
 * rest_router.c (the table and path matching) and rest_metrics.c (one
 * metrics slot per route). Not for routes: they see route.h only. The
 * table is constant data: any thread.
 */
#ifndef RX_REST_INT_H
#define RX_REST_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "route.h"

enum rest_route_flag {
    REST_ROUTE_ADMIN = 1,  /* needs an admin token (/v1/admin/...) */
    REST_ROUTE_COMPAT = 2, /* the old service's shapes: errors are {"detail":"..."} */
    REST_ROUTE_OPS = 4,    /* health, readiness, metrics, reload: on every role (scrapers too) */
};

struct rest_route {
    const char *method;  /* "GET" (also answers HEAD) or "POST" */
    const char *pattern; /* "/v1/rates/{pair}": a {..} segment is the parameter */
    api_route_fn fn;
    unsigned flags;
    const char *label; /* the metrics label */
};

/* The table, and the metrics label of "no route matched" (index count). */
size_t rest_route_count(void);
const struct rest_route *rest_route_at(size_t i);
#define REST_ROUTE_NONE_LABEL "none"

enum rest_match {
    REST_MATCH_OK,         /* *index is the route; param filled */
    REST_MATCH_NOT_FOUND,  /* no pattern matches the path (or the parameter is too long) */
    REST_MATCH_BAD_METHOD, /* the path exists for other methods: allow lists them */
};

/*
 * Matches method and the raw (still percent-encoded) path, without its
 * query, against the table. Each path segment is percent-decoded on its own,
 * so "/v1/rates/BTC%2FUSDT" reaches {pair} as "BTC/USDT". param receives
 * the decoded parameter ("" if the route has none; at most API_PARAM_MAX - 1
 * bytes, longer is NOT_FOUND). For BAD_METHOD (and for OK, for OPTIONS
 * answers), allow receives the methods of the path, e.g. "GET, HEAD, OPTIONS".
 * HEAD matches GET routes; OPTIONS matches any route of the path.
 */
enum rest_match rest_route_match(const char *method, const char *raw_path, size_t path_len,
                                 size_t *index, char *param, char *allow, size_t allow_cap);

#endif
