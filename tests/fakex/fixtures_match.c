/*
 * fixtures_match: the per-request lookups over loaded fixtures.
 *
 * REST: method and path must be equal, the recorded query must be satisfied
 * (query.h), and the entry with the most recorded parameters wins. WebSocket:
 * a connection either names its streams in the URL (Binance's
 * /stream?streams=...) and gets the captures that cover them at once, or
 * sends subscribe messages that are compared on operation and channel
 * (submatch.h); canned replies (pongs, acks) are rendered from sidecar
 * templates. Sets are tiny, so everything is a linear scan.
 */
#include "fixtures.h"

#include "rewrite.h"
#include "core/xalloc.h"

#include <stdlib.h>
#include <string.h>

/* Capture candidates handed to the cover rule; more would be a strange folder. */
#define MATCH_MAX_CANDIDATES 64

void fixtures_rewrite(struct fixtures_exchange *ex, const char *http_base, const char *ws_base)
{
    for (size_t i = 0; i < ex->n_rest; i++) {
        struct fixtures_rest *r = &ex->rest[i];
        size_t len;
        char *out = rewrite_body(r->body, r->len, &ex->hosts, http_base, ws_base, &len);

        if (r->served != r->body) {
            free(r->served);
        }
        r->served = out ? out : r->body;
        r->served_len = out ? len : r->len;
    }
}

const struct fixtures_rest *fixtures_rest_find(const struct fixtures_exchange *ex,
                                               const char *method, const char *path,
                                               const struct query_params *request, int *specificity)
{
    const struct fixtures_rest *best = NULL;
    int best_n = -1;

    for (size_t i = 0; i < ex->n_rest; i++) {
        const struct fixtures_rest *r = &ex->rest[i];
        int n;

        if (strcmp(r->method, method) != 0 || strcmp(r->path, path) != 0) {
            continue;
        }
        n = query_match(&r->query, request);
        if (n > best_n) {
            best = r;
            best_n = n;
        }
    }
    if (specificity) {
        *specificity = best_n;
    }
    return best;
}

/* Paths equal up to one trailing slash ("/stream" and "/stream/"). */
static int same_path(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    while (la > 1 && a[la - 1] == '/') {
        la--;
    }
    while (lb > 1 && b[lb - 1] == '/') {
        lb--;
    }
    return la == lb && memcmp(a, b, la) == 0;
}

size_t fixtures_ws_for_url(const struct fixtures_exchange *ex, const char *path,
                           const struct query_params *query, size_t *out, size_t cap)
{
    const struct strset *cands[MATCH_MAX_CANDIDATES];
    size_t idx[MATCH_MAX_CANDIDATES], n = 0, chosen;
    struct strset want = {0};
    const char *streams;

    for (size_t i = 0; i < ex->n_ws && n < MATCH_MAX_CANDIDATES; i++) {
        const struct fixtures_ws *w = &ex->ws[i];

        if (w->url_selected && w->url_path && same_path(w->url_path, path)) {
            cands[n] = &w->url_chans;
            idx[n++] = i;
        }
    }
    if (n == 0 || cap == 0) {
        return 0;
    }
    if (!ex->url_param) {
        out[0] = idx[0];
        return 1;
    }
    streams = query_get(query, ex->url_param);
    if (!streams) {
        return 0;
    }
    fixtures_url_channels(ex, streams, &want);
    chosen = submatch_cover(&want, cands, n, out, cap);
    for (size_t i = 0; i < chosen; i++) {
        out[i] = idx[out[i]];
    }
    strset_free(&want);
    return chosen;
}

/* Without a sidecar rule: the first capture recorded with an equal message. */
static size_t match_exact(const struct fixtures_exchange *ex, const cJSON *msg, size_t *out)
{
    for (size_t i = 0; i < ex->n_ws; i++) {
        for (size_t j = 0; j < ex->ws[i].n_subs; j++) {
            if (cJSON_Compare(ex->ws[i].subs[j], msg, 1)) {
                out[0] = i;
                return 1;
            }
        }
    }
    return 0;
}

size_t fixtures_ws_for_message(const struct fixtures_exchange *ex, const char *text, size_t len,
                               size_t *out, size_t cap)
{
    const struct strset *cands[MATCH_MAX_CANDIDATES];
    size_t idx[MATCH_MAX_CANDIDATES], n = 0, chosen = 0;
    struct strset ops = {0}, chans = {0};
    cJSON *msg = cJSON_ParseWithLength(text, len);

    if (!msg || cap == 0) {
        goto done;
    }
    if (!ex->has_rule) {
        chosen = match_exact(ex, msg, out);
        goto done;
    }
    submatch_values(&ex->op_key, msg, &ops);
    submatch_values(&ex->chan_key, msg, &chans);
    for (size_t i = 0; i < ex->n_ws && n < MATCH_MAX_CANDIDATES; i++) {
        if (strset_intersection(&ops, &ex->ws[i].ops) > 0) {
            cands[n] = &ex->ws[i].chans;
            idx[n++] = i;
        }
    }
    chosen = submatch_cover(&chans, cands, n, out, cap);
    for (size_t i = 0; i < chosen; i++) {
        out[i] = idx[out[i]];
    }
done:
    strset_free(&ops);
    strset_free(&chans);
    cJSON_Delete(msg);
    return chosen;
}

/* The node at a plain dotted path ("a.b"), or NULL. */
static const cJSON *node_at(const cJSON *msg, const char *path, size_t len)
{
    const cJSON *v = msg;

    while (v && len > 0) {
        const char *dot = memchr(path, '.', len);
        size_t seg = dot ? (size_t)(dot - path) : len;
        const cJSON *child, *found = NULL, *obj = cJSON_IsObject(v) ? v : NULL;

        cJSON_ArrayForEach(child, obj)
        {
            if (child->string && strlen(child->string) == seg &&
                memcmp(child->string, path, seg) == 0) {
                found = child;
                break;
            }
        }
        v = found;
        path += seg;
        len -= seg;
        if (len > 0) {
            path++;
            len--;
        }
    }
    return v;
}

/* Expand {{path}} in `tmpl` with the JSON of msg's value there (null if absent). */
static char *render(const char *tmpl, const cJSON *msg)
{
    size_t cap = strlen(tmpl) + 64, len = 0;
    char *out = xmalloc(cap);

    while (*tmpl) {
        const char *open = strstr(tmpl, "{{");
        const char *close = open ? strstr(open + 2, "}}") : NULL;
        size_t lit = close ? (size_t)(open - tmpl) : strlen(tmpl);
        char *val = NULL;
        size_t vlen = 0;

        if (close) {
            const cJSON *node = node_at(msg, open + 2, (size_t)(close - open - 2));

            val = node ? cJSON_PrintUnformatted(node) : NULL;
            vlen = val ? strlen(val) : 4;
        }
        if (len + lit + vlen + 1 > cap) {
            cap = (len + lit + vlen + 1) * 2;
            out = xrealloc(out, cap);
        }
        memcpy(out + len, tmpl, lit);
        len += lit;
        if (close) {
            memcpy(out + len, val ? val : "null", vlen);
            len += vlen;
            free(val);
            tmpl = close + 2;
        } else {
            tmpl += lit;
        }
    }
    out[len] = '\0';
    return out;
}

char *fixtures_reply_for(const struct fixtures_exchange *ex, const char *text, size_t len)
{
    cJSON *msg;
    char *out = NULL;

    if (ex->n_replies == 0 || !(msg = cJSON_ParseWithLength(text, len))) {
        return NULL;
    }
    for (size_t i = 0; i < ex->n_replies && !out; i++) {
        struct strset vals = {0};

        submatch_values(&ex->replies[i].when, msg, &vals);
        if (strset_intersection(&vals, &ex->replies[i].values) > 0) {
            out = render(ex->replies[i].send, msg);
        }
        strset_free(&vals);
    }
    cJSON_Delete(msg);
    return out;
}
