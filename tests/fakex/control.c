/*
 * control: routes of the control API, one small function per action,
 * selected from a table (name, allowed methods, handler).
 *
 * Handlers validate the whole request before changing anything, so a 400
 * leaves the exchange exactly as it was. Changes that affect open
 * WebSocket connections go through replay_wake/replay_push, which only mark
 * work and request writeable callbacks: the frames themselves go out from
 * each connection's own callback.
 */
#include "control.h"

#include "replay.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ALLOW_GET = 1, ALLOW_POST = 2 };

struct action {
    const char *name;
    int allow;
    void (*run)(struct exchange *ex, struct http_txn *t, const cJSON *body);
};

static void ok_reply(struct http_txn *t, cJSON *doc)
{
    cJSON_AddBoolToObject(doc, "ok", 1);
    http_respond_json(t, 200, doc);
}

/* Text of a frame or body given as a JSON string (verbatim) or any value. */
static char *value_text(const cJSON *v, size_t *len)
{
    char *s = cJSON_IsString(v) ? xstrdup(v->valuestring) : cJSON_PrintUnformatted(v);

    *len = strlen(s);
    return s;
}

static int check_rest(const cJSON *rest, char *err, size_t errlen)
{
    const cJSON *method = cJSON_GetObjectItemCaseSensitive(rest, "method");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(rest, "path");
    const cJSON *query = cJSON_GetObjectItemCaseSensitive(rest, "query");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(rest, "status");

    if (!cJSON_IsObject(rest) || !cJSON_IsString(path) || path->valuestring[0] != '/' ||
        !cJSON_GetObjectItemCaseSensitive(rest, "body")) {
        snprintf(err, errlen, "\"rest\" needs \"path\" (starting with /) and \"body\"");
        return -1;
    }
    if ((method && (!cJSON_IsString(method) || strlen(method->valuestring) > 7)) ||
        (query && !cJSON_IsString(query) && !cJSON_IsNull(query))) {
        snprintf(err, errlen, "\"method\" and \"query\" must be strings");
        return -1;
    }
    const cJSON *location = cJSON_GetObjectItemCaseSensitive(rest, "location");
    if (location && (!cJSON_IsString(location) || strpbrk(location->valuestring, "\r\n") ||
                     strlen(location->valuestring) > 1024)) {
        snprintf(err, errlen, "\"location\" must be a URL on one line");
        return -1;
    }
    if (status &&
        (!cJSON_IsNumber(status) || status->valuedouble < 200 || status->valuedouble > 599)) {
        snprintf(err, errlen, "\"status\" must be a number from 200 to 599");
        return -1;
    }
    return 0;
}

static void do_push(struct exchange *ex, struct http_txn *t, const cJSON *body)
{
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(body, "ws");
    const cJSON *rest = cJSON_GetObjectItemCaseSensitive(body, "rest");
    cJSON *doc;
    char err[160];

    if (!ws && !rest) {
        http_respond_error(t, 400, "push needs \"ws\" and/or \"rest\"");
        return;
    }
    if (rest && check_rest(rest, err, sizeof(err)) != 0) {
        http_respond_error(t, 400, err);
        return;
    }
    doc = cJSON_CreateObject();
    if (rest) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(rest, "method");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(rest, "query");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(rest, "status");
        const cJSON *loc = cJSON_GetObjectItemCaseSensitive(rest, "location");
        size_t len;
        char *text = value_text(cJSON_GetObjectItemCaseSensitive(rest, "body"), &len);

        if (exchange_override_set(ex, m ? m->valuestring : "GET",
                                  cJSON_GetObjectItemCaseSensitive(rest, "path")->valuestring,
                                  cJSON_IsString(q) ? q->valuestring : NULL,
                                  st ? (int)st->valuedouble : 200, text, len,
                                  cJSON_IsString(loc) ? loc->valuestring : NULL) != 0) {
            free(text);
            cJSON_Delete(doc);
            http_respond_error(t, 507,
                               "REST override table full (256 entries, 16 MiB); reset first");
            return;
        }
        cJSON_AddNumberToObject(doc, "overrides", (double)ex->n_overrides);
    }
    if (ws) {
        size_t len, dropped;
        char *text = value_text(ws, &len);

        cJSON_AddNumberToObject(doc, "ws_sent", (double)replay_push(ex, text, len, &dropped));
        cJSON_AddNumberToObject(doc, "ws_dropped", (double)dropped);
        free(text);
    }
    ok_reply(t, doc);
    snprintf(t->note, sizeof(t->note), "push%s%s", ws ? " ws" : "", rest ? " rest" : "");
}

static void do_stop(struct exchange *ex, struct http_txn *t, const cJSON *body)
{
    cJSON *doc = cJSON_CreateObject();

    ex->stopped = 1;
    replay_wake(ex, 0);
    cJSON_AddBoolToObject(doc, "stopped", 1);
    ok_reply(t, doc);
    snprintf(t->note, sizeof(t->note), "replay stopped");
}

static void do_resume(struct exchange *ex, struct http_txn *t, const cJSON *body)
{
    cJSON *doc = cJSON_CreateObject();

    ex->stopped = 0;
    replay_wake(ex, 0);
    cJSON_AddBoolToObject(doc, "stopped", 0);
    ok_reply(t, doc);
    snprintf(t->note, sizeof(t->note), "replay resumed");
}

static void do_fault(struct exchange *ex, struct http_txn *t, const cJSON *body)
{
    unsigned events = 0;
    char err[160];
    cJSON *doc = cJSON_CreateObject();
    char *text;

    if (strcmp(t->method, "GET") != 0) {
        if (faults_apply(&ex->faults, body, &events, err, sizeof(err)) != 0) {
            cJSON_Delete(doc);
            http_respond_error(t, 400, err);
            return;
        }
        replay_wake(ex, events);
    }
    cJSON_AddItemToObject(doc, "faults", faults_to_json(&ex->faults));
    text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc, "faults"));
    snprintf(t->note, sizeof(t->note), "faults now %s", text);
    free(text);
    ok_reply(t, doc);
}

static void do_reset(struct exchange *ex, struct http_txn *t, const cJSON *body)
{
    exchange_reset(ex);
    replay_wake(ex, REPLAY_WAKE_RESET);
    ok_reply(t, cJSON_CreateObject());
    snprintf(t->note, sizeof(t->note), "reset");
}

static void do_stats(struct exchange *ex, struct http_txn *t, const cJSON *body)
{
    http_respond_json(t, 200, exchange_stats_json(ex));
    snprintf(t->note, sizeof(t->note), "stats");
}

static const struct action actions[] = {
    {"push", ALLOW_POST, do_push},     {"stop", ALLOW_POST, do_stop},
    {"resume", ALLOW_POST, do_resume}, {"fault", ALLOW_POST | ALLOW_GET, do_fault},
    {"reset", ALLOW_POST, do_reset},   {"stats", ALLOW_GET | ALLOW_POST, do_stats},
};

static void health(struct fakex *ctx, struct http_txn *t)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(doc, "exchanges");

    for (size_t i = 0; i < ctx->n_fixtures; i++) {
        cJSON_AddItemToArray(list, cJSON_CreateString(ctx->fixtures[i].name));
    }
    ok_reply(t, doc);
    snprintf(t->note, sizeof(t->note), "health");
}

/* Run `a` for `ex`, parsing the body when the action changes something. */
static void run_action(const struct action *a, struct exchange *ex, struct http_txn *t)
{
    int is_get = strcmp(t->method, "GET") == 0;
    cJSON *body = NULL;

    if (!(a->allow & (is_get ? ALLOW_GET : ALLOW_POST)) ||
        (!is_get && strcmp(t->method, "POST") != 0)) {
        http_respond_error(t, 405, "method not allowed for this action");
        return;
    }
    if (!is_get && (a->run == do_push || a->run == do_fault)) {
        body = t->body ? cJSON_ParseWithLength(t->body, t->body_len) : NULL;
        if (!cJSON_IsObject(body)) {
            cJSON_Delete(body);
            http_respond_error(t, 400, "the body must be a JSON object");
            return;
        }
    }
    a->run(ex, t, body);
    cJSON_Delete(body);
}

void control_handle(struct fakex *ctx, struct http_txn *t)
{
    const char *route = t->uri + strlen("/_fakex");
    const char *name, *act;
    struct exchange *ex;
    size_t n;

    if (!t->loopback) {
        http_respond_error(t, 403, "the control API answers loopback clients only");
        return;
    }
    if (strcmp(route, "/health") == 0) {
        health(ctx, t);
        return;
    }
    name = route[0] == '/' ? route + 1 : route;
    n = strcspn(name, "/");
    act = name[n] == '/' ? name + n + 1 : "";
    ex = exchange_find(ctx, name, n);
    if (!ex) {
        http_respond_error(t, 404, "unknown exchange");
        return;
    }
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        if (strcmp(act, actions[i].name) == 0) {
            run_action(&actions[i], ex, t);
            return;
        }
    }
    http_respond_error(t, 404, "unknown control action");
}
