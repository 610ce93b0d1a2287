/* board_json: the field names follow /v1/exchanges/{name} where it has one. */
#include "board_json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

static void add_uint(struct jbuf *b, const char *key, uint64_t v)
{
    jbuf_adds(b, ",\"");
    jbuf_adds(b, key);
    jbuf_adds(b, "\":");
    jbuf_uint(b, v);
}

static void add_int(struct jbuf *b, const char *key, int64_t v)
{
    jbuf_adds(b, ",\"");
    jbuf_adds(b, key);
    jbuf_adds(b, "\":");
    jbuf_int(b, v);
}

void board_status_json(struct jbuf *b, const struct board_status *st, uint64_t pairs,
                       const uint64_t *rejects, const char *node_id)
{
    jbuf_adds(b, "{\"name\":");
    jbuf_str(b, st->name);
    jbuf_adds(b, ",\"node_id\":");
    jbuf_str(b, node_id);
    jbuf_adds(b, ",\"state\":");
    jbuf_str(b, board_state_name(st->state));
    jbuf_adds(b, ",\"reason\":");
    jbuf_str(b, st->reason);
    jbuf_adds(b, ",\"source\":");
    jbuf_str(b, st->source);
    jbuf_adds(b, ",\"file\":");
    jbuf_str(b, st->file);
    add_int(b, "loaded_at", st->loaded_at);
    add_int(b, "last_update", st->last_update);
    add_uint(b, "errors", st->errors);
    add_uint(b, "emitted", st->emitted);
    add_uint(b, "http_requests", st->http_requests);
    add_int(b, "budget_requests", st->budget_requests);
    jbuf_adds(b, ",\"budget_per\":");
    jbuf_num(b, st->budget_per);
    add_uint(b, "budget_waits", st->budget_waits);
    add_int(b, "streams_open", st->streams_open);
    add_uint(b, "stream_messages", st->stream_messages);
    add_uint(b, "frames_dropped", st->frames_dropped);
    add_uint(b, "unmapped_total", st->unmapped_total);
    jbuf_adds(b, ",\"unmapped\":[");
    for (size_t i = 0; i < st->n_unmapped && i < BOARD_UNMAPPED_MAX; i++) {
        jbuf_adds(b, i ? ",{\"symbol\":" : "{\"symbol\":");
        jbuf_str(b, st->unmapped[i].symbol);
        add_uint(b, "count", st->unmapped[i].count);
        jbuf_adds(b, "}");
    }
    jbuf_adds(b, "],\"rejected\":");
    if (st->rejected) {
        jbuf_adds(b, "{\"error\":");
        jbuf_str(b, st->rejected_error);
        add_int(b, "line", st->rejected_line);
        add_int(b, "at", st->rejected_at);
        jbuf_adds(b, "}");
    } else {
        jbuf_adds(b, "null");
    }
    add_uint(b, "pairs", pairs);
    jbuf_adds(b, ",\"rejects\":{");
    for (int i = TICKER_OK + 1; i < TICKER_REJECT_COUNT; i++) {
        jbuf_adds(b, i > TICKER_OK + 1 ? "," : "");
        jbuf_str(b, ticker_reject_name((enum ticker_reject)i));
        jbuf_adds(b, ":");
        jbuf_uint(b, rejects ? rejects[i] : 0);
    }
    jbuf_adds(b, "}}");
}

/* ---- parsing --------------------------------------------------------------------- */

/* A string member into out (cap bytes with the terminator); absent: "".
 * -EINVAL for another type or a string too long. */
static int text(const cJSON *o, const char *key, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    out[0] = '\0';
    if (!v || cJSON_IsNull(v)) {
        return 0;
    }
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) {
        return -EINVAL;
    }
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

/* A number member that must be a whole number in [min, max]; absent: 0. */
static int whole(const cJSON *o, const char *key, double min, double max, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = 0;
    if (!v || cJSON_IsNull(v)) {
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < min ||
        v->valuedouble > max || v->valuedouble != floor(v->valuedouble)) {
        return -EINVAL;
    }
    *out = v->valuedouble;
    return 0;
}

/* 2^53: counts above it cannot come through a double exactly anyway. */
#define COUNT_MAX 9007199254740992.0

static int count(const cJSON *o, const char *key, uint64_t *out)
{
    double d;
    int rc = whole(o, key, 0, COUNT_MAX, &d);
    *out = (uint64_t)d;
    return rc;
}

static int signed_int(const cJSON *o, const char *key, int64_t *out)
{
    double d;
    int rc = whole(o, key, -COUNT_MAX, COUNT_MAX, &d);
    *out = (int64_t)d;
    return rc;
}

static int state_of(const char *name, enum board_state *out)
{
    for (int i = 0; i < BOARD_STATE_COUNT; i++) {
        if (strcmp(board_state_name((enum board_state)i), name) == 0) {
            *out = (enum board_state)i;
            return 0;
        }
    }
    return -EINVAL;
}

static int unmapped_list(const cJSON *o, struct board_status *st)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "unmapped");
    const cJSON *item;

    if (!list || cJSON_IsNull(list)) {
        return 0;
    }
    if (!cJSON_IsArray(list)) {
        return -EINVAL;
    }
    cJSON_ArrayForEach(item, list)
    {
        if (st->n_unmapped == BOARD_UNMAPPED_MAX) {
            break;
        }
        struct board_unmapped *u = &st->unmapped[st->n_unmapped];
        if (!cJSON_IsObject(item) || text(item, "symbol", u->symbol, sizeof u->symbol) < 0 ||
            count(item, "count", &u->count) < 0) {
            return -EINVAL;
        }
        st->n_unmapped++;
    }
    return 0;
}

static int rejected_of(const cJSON *o, struct board_status *st)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "rejected");
    double line;

    if (!r || cJSON_IsNull(r)) {
        return 0;
    }
    if (!cJSON_IsObject(r) || text(r, "error", st->rejected_error, sizeof st->rejected_error) < 0 ||
        whole(r, "line", 0, 1e9, &line) < 0 || signed_int(r, "at", &st->rejected_at) < 0) {
        return -EINVAL;
    }
    st->rejected = true;
    st->rejected_line = (int)line;
    return 0;
}

static int rejects_of(const cJSON *o, struct board_status *st)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "rejects");

    if (!r || cJSON_IsNull(r)) {
        return 0;
    }
    if (!cJSON_IsObject(r)) {
        return -EINVAL;
    }
    for (int i = TICKER_OK + 1; i < TICKER_REJECT_COUNT; i++) {
        if (count(r, ticker_reject_name((enum ticker_reject)i), &st->rejects[i]) < 0) {
            return -EINVAL;
        }
    }
    return 0;
}

int board_status_from_json(const char *json, size_t len, struct board_status *st)
{
    cJSON *o = cJSON_ParseWithLength(json, len);
    char state[16];
    double streams, budget;
    int rc = -EINVAL;

    memset(st, 0, sizeof *st);
    if (!cJSON_IsObject(o) || text(o, "name", st->name, sizeof st->name) < 0 || !st->name[0] ||
        text(o, "node_id", st->node_id, sizeof st->node_id) < 0 ||
        text(o, "state", state, sizeof state) < 0 || state_of(state, &st->state) < 0 ||
        text(o, "reason", st->reason, sizeof st->reason) < 0 ||
        text(o, "source", st->source, sizeof st->source) < 0 ||
        text(o, "file", st->file, sizeof st->file) < 0 ||
        signed_int(o, "loaded_at", &st->loaded_at) < 0 ||
        signed_int(o, "last_update", &st->last_update) < 0 || count(o, "errors", &st->errors) < 0 ||
        count(o, "emitted", &st->emitted) < 0 ||
        count(o, "http_requests", &st->http_requests) < 0 ||
        signed_int(o, "budget_requests", &st->budget_requests) < 0 ||
        count(o, "budget_waits", &st->budget_waits) < 0 ||
        whole(o, "streams_open", 0, 1e6, &streams) < 0 ||
        count(o, "stream_messages", &st->stream_messages) < 0 ||
        count(o, "frames_dropped", &st->frames_dropped) < 0 ||
        count(o, "unmapped_total", &st->unmapped_total) < 0 || unmapped_list(o, st) < 0 ||
        rejected_of(o, st) < 0 || count(o, "pairs", &st->pairs) < 0 || rejects_of(o, st) < 0) {
        goto done;
    }
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(o, "budget_per");
    budget = cJSON_IsNumber(per) && isfinite(per->valuedouble) && per->valuedouble >= 0
                 ? per->valuedouble
                 : 0;
    st->budget_per = budget;
    st->streams_open = (int)streams;
    st->remote = true;
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}
