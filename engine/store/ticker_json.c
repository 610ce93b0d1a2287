/* ticker_json: field order follows the table in DESIGN 3. */
#include "ticker_json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "core/decimal.h"

void ticker_json(struct jbuf *b, const struct ticker *t, int64_t generated_ms,
                 int64_t stale_after_ms)
{
    int64_t age = generated_ms - t->received;

    jbuf_adds(b, "{\"exchange\":");
    jbuf_str(b, t->exchange);
    jbuf_adds(b, ",\"pair\":");
    jbuf_str(b, t->pair);
    jbuf_adds(b, ",\"symbol\":");
    jbuf_str(b, t->symbol);
    jbuf_adds(b, ",\"bid\":");
    jbuf_str_or_null(b, t->bid);
    jbuf_adds(b, ",\"ask\":");
    jbuf_str_or_null(b, t->ask);
    jbuf_adds(b, ",\"bid_size\":");
    jbuf_str_or_null(b, t->bid_size);
    jbuf_adds(b, ",\"ask_size\":");
    jbuf_str_or_null(b, t->ask_size);
    jbuf_adds(b, ",\"last\":");
    jbuf_str_or_null(b, t->last);
    jbuf_adds(b, ",\"volume\":");
    jbuf_str_or_null(b, t->volume);
    jbuf_adds(b, ",\"mid\":");
    jbuf_num(b, ticker_mid(t));
    jbuf_adds(b, ",\"spread_bps\":");
    jbuf_num(b, ticker_spread_bps(t));
    if (t->ts == TICKER_TS_NONE) {
        jbuf_adds(b, ",\"ts\":null");
    } else {
        jbuf_adds(b, ",\"ts\":");
        jbuf_int(b, t->ts);
    }
    jbuf_adds(b, ",\"received\":");
    jbuf_int(b, t->received);
    jbuf_adds(b, ",\"age_ms\":");
    jbuf_int(b, age);
    jbuf_adds(b, age > stale_after_ms ? ",\"stale\":true" : ",\"stale\":false");
    jbuf_adds(b, t->source == TICKER_SOURCE_STREAM ? ",\"source\":\"stream\",\"v\":"
                                                   : ",\"source\":\"poll\",\"v\":");
    jbuf_uint(b, t->v);
    jbuf_adds(b, "}");
}

/* A string field into out (at most cap - 1 bytes); absent or null = "". */
static int text_field(const cJSON *o, const char *name, char *out, size_t cap, bool required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    out[0] = '\0';
    if (!v || cJSON_IsNull(v)) {
        return required ? -EINVAL : 0;
    }
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) {
        return -EINVAL;
    }
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

/* A decimal field: the text as written, checked by decimal_parse. */
static int decimal_field(const cJSON *o, const char *name, char *out, double *value)
{
    char text[TICKER_DEC_MAX];
    double v = 0;
    if (text_field(o, name, text, sizeof text, false) < 0) {
        return -EINVAL;
    }
    if (text[0] && decimal_parse(text, strlen(text), out, TICKER_DEC_MAX, &v) < 0) {
        return -EINVAL;
    }
    if (!text[0]) {
        out[0] = '\0';
    }
    if (value) {
        *value = v;
    }
    return 0;
}

static int int_field(const cJSON *o, const char *name, int64_t *out, bool required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) {
        return required ? -EINVAL : 1;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble) {
        return -EINVAL;
    }
    *out = (int64_t)v->valuedouble;
    return 0;
}

int ticker_from_json(const char *text, size_t len, struct ticker *t)
{
    cJSON *o = cJSON_ParseWithLength(text, len);
    int rc = ticker_from_cjson(o, t);
    cJSON_Delete(o);
    return rc;
}

int ticker_from_cjson(const struct cJSON *o, struct ticker *t)
{
    int64_t v = 0;
    int rc = -EINVAL;

    memset(t, 0, sizeof *t);
    if (!cJSON_IsObject(o) ||
        text_field(o, "exchange", t->exchange, sizeof t->exchange, true) < 0 ||
        text_field(o, "pair", t->pair, sizeof t->pair, true) < 0 ||
        text_field(o, "symbol", t->symbol, sizeof t->symbol, false) < 0 ||
        decimal_field(o, "bid", t->bid, &t->bid_value) < 0 ||
        decimal_field(o, "ask", t->ask, &t->ask_value) < 0 ||
        decimal_field(o, "bid_size", t->bid_size, NULL) < 0 ||
        decimal_field(o, "ask_size", t->ask_size, NULL) < 0 ||
        decimal_field(o, "last", t->last, NULL) < 0 ||
        decimal_field(o, "volume", t->volume, NULL) < 0 ||
        int_field(o, "received", &t->received, true) < 0 || int_field(o, "v", &v, true) < 0) {
        goto done;
    }
    int ts = int_field(o, "ts", &t->ts, false);
    if (ts < 0) {
        goto done;
    }
    if (ts > 0) {
        t->ts = TICKER_TS_NONE;
    }
    const cJSON *source = cJSON_GetObjectItemCaseSensitive(o, "source");
    t->source = cJSON_IsString(source) && strcmp(source->valuestring, "stream") == 0
                    ? TICKER_SOURCE_STREAM
                    : TICKER_SOURCE_POLL;
    t->v = v > 0 ? (uint64_t)v : 0;
    rc = ticker_validate(t) == TICKER_OK ? 0 : -EINVAL;
done:
    return rc;
}
