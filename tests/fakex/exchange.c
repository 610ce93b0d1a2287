/*
 * exchange: the mutable side of one fake exchange.
 *
 * Recorded fixtures never change while running; what tests change through
 * the control API lives here: REST overrides, counters for request budgets
 * and the list of open WebSocket sessions (owned by libwebsockets, linked
 * here while established). Memory is bounded: overrides and distinct stats
 * paths have fixed caps, so a hostile or runaway test cannot grow the
 * process without limit.
 */
#include "fakex.h"

#include "core/xalloc.h"

#include <stdlib.h>
#include <string.h>

struct exchange *exchange_find(struct fakex *ctx, const char *name, size_t len)
{
    for (size_t i = 0; i < ctx->n_fixtures; i++) {
        const char *n = ctx->fixtures[i].name;

        if (strlen(n) == len && memcmp(n, name, len) == 0) {
            return &ctx->exchanges[i];
        }
    }
    return NULL;
}

void exchange_count_request(struct exchange *ex, const char *path)
{
    const char *key = path;

    ex->requests++;
    for (size_t i = 0; i < ex->n_paths; i++) {
        if (strcmp(ex->by_path[i].path, path) == 0) {
            ex->by_path[i].count++;
            return;
        }
    }
    if (ex->n_paths >= EXCHANGE_MAX_PATHS) {
        key = "(other)";
        for (size_t i = 0; i < ex->n_paths; i++) {
            if (strcmp(ex->by_path[i].path, key) == 0) {
                ex->by_path[i].count++;
                return;
            }
        }
    }
    ex->by_path = xrealloc(ex->by_path, (ex->n_paths + 1) * sizeof(*ex->by_path));
    ex->by_path[ex->n_paths].path = xstrdup(key);
    ex->by_path[ex->n_paths].count = 1;
    ex->n_paths++;
}

static void override_free(struct override *o)
{
    free(o->method);
    free(o->path);
    free(o->body);
    free(o->location);
    query_free(&o->query);
}

/* Same parameters in any order (the identity of an override). */
static int same_params(const struct query_params *a, const struct query_params *b)
{
    return a->n == b->n && query_match(a, b) >= 0 && query_match(b, a) >= 0;
}

int exchange_override_set(struct exchange *ex, const char *method, const char *path,
                          const char *query, int status, char *body, size_t len,
                          const char *location)
{
    struct override o = {0};

    o.location = location ? xstrdup(location) : NULL;
    o.method = xstrdup(method);
    o.path = xstrdup(path);
    query_parse(&o.query, query);
    o.status = status;
    o.body = body;
    o.len = len;
    for (size_t i = 0; i < ex->n_overrides; i++) {
        struct override *old = &ex->overrides[i];

        if (strcmp(old->method, method) == 0 && strcmp(old->path, path) == 0 &&
            same_params(&old->query, &o.query)) {
            if (ex->override_bytes - old->len + len > EXCHANGE_MAX_OVERRIDE_BYTES) {
                goto fail;
            }
            ex->override_bytes = ex->override_bytes - old->len + len;
            override_free(old);
            *old = o;
            return 0;
        }
    }
    if (ex->n_overrides >= EXCHANGE_MAX_OVERRIDES ||
        ex->override_bytes + len > EXCHANGE_MAX_OVERRIDE_BYTES) {
        goto fail;
    }
    ex->overrides = xrealloc(ex->overrides, (ex->n_overrides + 1) * sizeof(*ex->overrides));
    ex->overrides[ex->n_overrides++] = o;
    ex->override_bytes += len;
    return 0;
fail:
    o.body = NULL; /* the caller keeps ownership on failure */
    override_free(&o);
    return -1;
}

const struct override *exchange_override_find(const struct exchange *ex, const char *method,
                                              const char *path, const struct query_params *request,
                                              int *specificity)
{
    const struct override *best = NULL;
    int best_n = -1;

    /* Later overrides win ties: the newest instruction is the one meant. */
    for (size_t i = 0; i < ex->n_overrides; i++) {
        const struct override *o = &ex->overrides[i];
        int n;

        if (strcmp(o->method, method) != 0 || strcmp(o->path, path) != 0) {
            continue;
        }
        n = query_match(&o->query, request);
        if (n >= best_n && n >= 0) {
            best = o;
            best_n = n;
        }
    }
    *specificity = best_n;
    return best;
}

void exchange_reset(struct exchange *ex)
{
    for (size_t i = 0; i < ex->n_overrides; i++) {
        override_free(&ex->overrides[i]);
    }
    free(ex->overrides);
    ex->overrides = NULL;
    ex->n_overrides = 0;
    ex->override_bytes = 0;
    for (size_t i = 0; i < ex->n_paths; i++) {
        free(ex->by_path[i].path);
    }
    free(ex->by_path);
    ex->by_path = NULL;
    ex->n_paths = 0;
    faults_clear(&ex->faults);
    ex->stopped = 0;
    ex->requests = 0;
    ex->ws_connections = 0;
    ex->ws_frames_sent = 0;
    ex->ws_client_messages = 0;
    ex->ws_loops = 0;
    ex->ws_captures_started = 0;
    ex->ws_captures_done = 0;
    ex->ws_heartbeats_missed = 0;
}

cJSON *exchange_stats_json(const struct exchange *ex)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *paths = cJSON_AddObjectToObject(o, "by_path");

    cJSON_AddNumberToObject(o, "requests", (double)ex->requests);
    for (size_t i = 0; i < ex->n_paths; i++) {
        cJSON_AddNumberToObject(paths, ex->by_path[i].path, (double)ex->by_path[i].count);
    }
    cJSON_AddNumberToObject(o, "ws_connections", (double)ex->ws_connections);
    cJSON_AddNumberToObject(o, "ws_open", (double)ex->ws_open);
    cJSON_AddNumberToObject(o, "ws_frames_sent", (double)ex->ws_frames_sent);
    cJSON_AddNumberToObject(o, "ws_client_messages", (double)ex->ws_client_messages);
    cJSON_AddNumberToObject(o, "ws_loops", (double)ex->ws_loops);
    cJSON_AddNumberToObject(o, "ws_captures_started", (double)ex->ws_captures_started);
    cJSON_AddNumberToObject(o, "ws_captures_done", (double)ex->ws_captures_done);
    cJSON_AddNumberToObject(o, "ws_heartbeats_missed", (double)ex->ws_heartbeats_missed);
    cJSON_AddBoolToObject(o, "stopped", ex->stopped);
    cJSON_AddItemToObject(o, "faults", faults_to_json(&ex->faults));
    cJSON_AddNumberToObject(o, "overrides", (double)ex->n_overrides);
    return o;
}

void exchange_free(struct exchange *ex)
{
    exchange_reset(ex);
}
