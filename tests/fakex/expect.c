/*
 * expect: arming rules on sent frames and matching the answers.
 *
 * Conditions reuse the subscribe matcher's keys (submatch.h), so a value is
 * compared as the same text on both sides: the number 1587523073344 in a
 * heartbeat and in its answer both read "1587523073344", whatever the JSON
 * spelling. A reply value "{{path}}" is rendered when the frame is sent,
 * which is what ties an answer to its own heartbeat rather than any earlier
 * one.
 */
#include "expect.h"

#include "submatch.h"
#include "core/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* Does condition `c` hold in `msg`, wanting one of `want`? */
static int holds(const struct fixtures_cond *c, const struct strset *want, const cJSON *msg)
{
    struct strset got = {0};
    int ok;

    submatch_values(&c->key, msg, &got);
    ok = c->any ? got.n > 0 : strset_intersection(&got, want) > 0;
    strset_free(&got);
    return ok;
}

/* Add the values of `frame` at the dotted `path` (len bytes) to `out`. */
static void frame_values(const cJSON *frame, const char *path, size_t len, struct strset *out)
{
    struct submatch_key key;
    char err[128];
    char *p = xstrndup(path, len);
    cJSON *spec = cJSON_CreateString(p);

    /* A plain path always parses: there is no regex to reject. */
    if (submatch_key_parse(&key, spec, err, sizeof(err)) == 0) {
        submatch_values(&key, frame, out);
        submatch_key_free(&key);
    }
    cJSON_Delete(spec);
    free(p);
}

/* The values a reply condition wants, "{{path}}" ones read from `frame`. */
static void render(const struct fixtures_cond *c, const cJSON *frame, struct strset *out)
{
    for (size_t i = 0; i < c->values.n; i++) {
        const char *v = c->values.v[i];
        size_t n = strlen(v);

        if (n > 4 && strncmp(v, "{{", 2) == 0 && strcmp(v + n - 2, "}}") == 0) {
            frame_values(frame, v + 2, n - 4, out);
        } else {
            strset_add(out, v);
        }
    }
}

size_t expect_arm(const struct fixtures_exchange *ex, const char *text, size_t len,
                  struct expect_pending *out, size_t cap)
{
    size_t n = 0;
    cJSON *frame;

    if (ex->n_expects == 0 || !(frame = cJSON_ParseWithLength(text, len))) {
        return 0;
    }
    for (size_t i = 0; i < ex->n_expects && n < cap; i++) {
        const struct fixtures_expect *e = &ex->expects[i];
        size_t j = 0;

        while (j < e->n_when && holds(&e->when[j], &e->when[j].values, frame)) {
            j++;
        }
        if (j < e->n_when) {
            continue;
        }
        out[n].rule = e;
        out[n].values = xcalloc(e->n_reply, sizeof(*out[n].values));
        for (j = 0; j < e->n_reply; j++) {
            render(&e->reply[j], frame, &out[n].values[j]);
        }
        out[n].due_us = 0;
        n++;
    }
    cJSON_Delete(frame);
    return n;
}

int expect_answers(const struct expect_pending *p, const cJSON *msg)
{
    for (size_t j = 0; j < p->rule->n_reply; j++) {
        if (!holds(&p->rule->reply[j], &p->values[j], msg)) {
            return 0;
        }
    }
    return 1;
}

void expect_pending_free(struct expect_pending *p)
{
    if (p->rule) {
        for (size_t j = 0; j < p->rule->n_reply; j++) {
            strset_free(&p->values[j]);
        }
    }
    free(p->values);
    p->values = NULL;
    p->rule = NULL;
}
