/*
 * faults: validation and bookkeeping of injected failures.
 *
 * Each accepted key is described by one table row (name, kind, limits,
 * field), in the manner of Fluent Bit's config maps: validation, applying
 * and rendering walk the same table, so a new fault is one row plus the code
 * that acts on it.
 */
#include "faults.h"

#include <stdio.h>
#include <string.h>

enum fault_kind { KIND_BOOL, KIND_LONG, KIND_STATUS };

struct fault_row {
    const char *name;
    enum fault_kind kind;
    long min;
    long max;
    long off;       /* value meaning "no fault" */
    size_t field;   /* offsetof in struct faults */
    unsigned event; /* enum faults_event raised when set */
};

#define FIELD(f) offsetof(struct faults, f)

static const struct fault_row rows[] = {
    {"status", KIND_STATUS, 200, 599, 0, FIELD(status), 0},
    {"delay_ms", KIND_LONG, 0, FAULTS_MAX_DELAY_MS, 0, FIELD(delay_ms), 0},
    {"truncate", KIND_LONG, 0, 1L << 30, -1, FIELD(truncate), 0},
    {"garbage", KIND_BOOL, 0, 1, 0, FIELD(garbage), 0},
    {"refuse", KIND_BOOL, 0, 1, 0, FIELD(refuse), FAULTS_EV_STALL},
    {"ws_drop_after", KIND_LONG, 0, 1L << 30, -1, FIELD(ws_drop_after), FAULTS_EV_DROP},
    {"ws_stall", KIND_BOOL, 0, 1, 0, FIELD(ws_stall), FAULTS_EV_STALL},
    {"ws_garbage", KIND_BOOL, 0, 1, 0, FIELD(ws_garbage), FAULTS_EV_GARBAGE},
    {"ws_oversize", KIND_LONG, 1, FAULTS_MAX_OVERSIZE, 0, FIELD(ws_oversize), FAULTS_EV_OVERSIZE},
};

#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

static long get_field(const struct faults *f, const struct fault_row *r)
{
    const char *p = (const char *)f + r->field;

    if (r->kind == KIND_LONG) {
        return *(const long *)p;
    }
    return *(const int *)p;
}

static void set_field(struct faults *f, const struct fault_row *r, long v)
{
    char *p = (char *)f + r->field;

    if (r->kind == KIND_LONG) {
        *(long *)p = v;
    } else {
        *(int *)p = (int)v;
    }
}

void faults_clear(struct faults *f)
{
    for (size_t i = 0; i < N_ROWS; i++) {
        set_field(f, &rows[i], rows[i].off);
    }
}

/* Turn one JSON value into the field's value; -1 with err when invalid. */
static int convert(const struct fault_row *r, const cJSON *v, long *out, char *err, size_t errlen)
{
    if (cJSON_IsNull(v) || cJSON_IsFalse(v)) {
        *out = r->off;
        return 0;
    }
    if (r->kind == KIND_BOOL) {
        if (!cJSON_IsTrue(v)) {
            snprintf(err, errlen, "\"%s\" must be true or false", r->name);
            return -1;
        }
        *out = 1;
        return 0;
    }
    /* Range first: converting an out-of-range double to long is undefined. */
    if (!cJSON_IsNumber(v) || v->valuedouble < -1e15 || v->valuedouble > 1e15 ||
        v->valuedouble != (double)(long)v->valuedouble) {
        snprintf(err, errlen, "\"%s\" must be an integer", r->name);
        return -1;
    }
    *out = (long)v->valuedouble;
    if (*out == 0 && r->kind == KIND_STATUS) {
        return 0;
    }
    if (*out == 0 && r->off == 0) {
        return 0; /* zero switches the fault off */
    }
    if (*out < r->min || *out > r->max) {
        snprintf(err, errlen, "\"%s\" must be between %ld and %ld", r->name, r->min, r->max);
        return -1;
    }
    return 0;
}

static const struct fault_row *find_row(const char *name)
{
    for (size_t i = 0; i < N_ROWS; i++) {
        if (strcmp(rows[i].name, name) == 0) {
            return &rows[i];
        }
    }
    return NULL;
}

int faults_apply(struct faults *f, const cJSON *body, unsigned *events, char *err, size_t errlen)
{
    struct faults next = *f;
    const cJSON *item, *clear;
    unsigned ev = 0;

    if (!cJSON_IsObject(body)) {
        snprintf(err, errlen, "the body must be a JSON object");
        return -1;
    }
    clear = cJSON_GetObjectItemCaseSensitive(body, "clear");
    if (clear && !cJSON_IsBool(clear)) {
        snprintf(err, errlen, "\"clear\" must be true or false");
        return -1;
    }
    if (cJSON_IsTrue(clear)) {
        faults_clear(&next);
        ev |= FAULTS_EV_STALL | FAULTS_EV_DROP;
    }
    cJSON_ArrayForEach(item, body)
    {
        const struct fault_row *r;
        long v;

        if (strcmp(item->string, "clear") == 0) {
            continue;
        }
        if (!(r = find_row(item->string))) {
            snprintf(err, errlen, "unknown fault \"%s\"", item->string);
            return -1;
        }
        if (convert(r, item, &v, err, errlen) != 0) {
            return -1;
        }
        set_field(&next, r, v);
        /* Junk frames are one-shot when set; state-like faults act either way. */
        if (v != r->off || r->event == FAULTS_EV_STALL || r->event == FAULTS_EV_DROP) {
            ev |= r->event;
        }
    }
    *f = next;
    *events |= ev;
    return 0;
}

cJSON *faults_to_json(const struct faults *f)
{
    cJSON *o = cJSON_CreateObject();

    for (size_t i = 0; i < N_ROWS; i++) {
        long v = get_field(f, &rows[i]);

        if (v == rows[i].off) {
            continue;
        }
        if (rows[i].kind == KIND_BOOL) {
            cJSON_AddBoolToObject(o, rows[i].name, 1);
        } else {
            cJSON_AddNumberToObject(o, rows[i].name, (double)v);
        }
    }
    return o;
}
