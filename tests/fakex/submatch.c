/*
 * submatch: JSON path evaluation and the greedy choice of captures.
 *
 * Evaluation walks the parsed message recursively; messages are small
 * (subscribe requests), so recursion depth is bounded by the path length,
 * not by the message. The cover rule exists for Binance, where one capture
 * (bookTicker) is a subset of another (the combined stream): asking for
 * bookTicker alone must select the exact capture, not replay both.
 */
#include "submatch.h"

#include "core/xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int path_parse(struct submatch_path *p, const cJSON *spec, char *err, size_t errlen)
{
    const cJSON *path = spec, *re = NULL;
    int rc;

    memset(p, 0, sizeof(*p));
    if (cJSON_IsObject(spec)) {
        path = cJSON_GetObjectItemCaseSensitive(spec, "path");
        re = cJSON_GetObjectItemCaseSensitive(spec, "regex");
    }
    if (!cJSON_IsString(path) || (re && !cJSON_IsString(re))) {
        snprintf(err, errlen, "a match key needs a string \"path\" (and optional \"regex\")");
        return -1;
    }
    if (re) {
        rc = regcomp(&p->re, re->valuestring, REG_EXTENDED);
        if (rc != 0) {
            char msg[128];

            regerror(rc, &p->re, msg, sizeof(msg));
            snprintf(err, errlen, "bad regex \"%s\": %s", re->valuestring, msg);
            return -1;
        }
        p->has_re = 1;
    }
    p->path = xstrdup(path->valuestring);
    return 0;
}

int submatch_key_parse(struct submatch_key *key, const cJSON *spec, char *err, size_t errlen)
{
    int count = cJSON_IsArray(spec) ? cJSON_GetArraySize(spec) : 1;

    memset(key, 0, sizeof(*key));
    key->v = xcalloc((size_t)count, sizeof(*key->v));
    for (int i = 0; i < count; i++) {
        const cJSON *one = cJSON_IsArray(spec) ? cJSON_GetArrayItem(spec, i) : spec;

        if (path_parse(&key->v[i], one, err, errlen) != 0) {
            goto fail;
        }
        key->n++;
    }
    return 0;
fail:
    submatch_key_free(key);
    return -1;
}

void submatch_key_free(struct submatch_key *key)
{
    for (size_t i = 0; i < key->n; i++) {
        free(key->v[i].path);
        if (key->v[i].has_re) {
            regfree(&key->v[i].re);
        }
    }
    free(key->v);
    key->v = NULL;
    key->n = 0;
}

/* Keep `value` (or its capture) if the path has no regex or the regex matches. */
static void add_filtered(const struct submatch_path *p, const char *value, struct strset *out)
{
    regmatch_t m[2];

    if (!p->has_re) {
        strset_add(out, value);
        return;
    }
    if (regexec(&p->re, value, 2, m, 0) != 0) {
        return;
    }
    if (m[1].rm_so >= 0) {
        strset_addn(out, value + m[1].rm_so, (size_t)(m[1].rm_eo - m[1].rm_so));
    } else {
        strset_addn(out, value + m[0].rm_so, (size_t)(m[0].rm_eo - m[0].rm_so));
    }
}

static void add_scalar(const struct submatch_path *p, const cJSON *v, struct strset *out)
{
    char num[64];

    if (cJSON_IsString(v)) {
        add_filtered(p, v->valuestring, out);
    } else if (cJSON_IsNumber(v)) {
        /* Range first: converting an out-of-range double is undefined. */
        if (fabs(v->valuedouble) < 9e15 && v->valuedouble == (double)(long long)v->valuedouble) {
            snprintf(num, sizeof(num), "%lld", (long long)v->valuedouble);
        } else {
            snprintf(num, sizeof(num), "%.17g", v->valuedouble);
        }
        add_filtered(p, num, out);
    } else if (cJSON_IsBool(v)) {
        add_filtered(p, cJSON_IsTrue(v) ? "true" : "false", out);
    }
}

/* Walk the remaining dotted path `rest` from node `v`. */
static void walk(const struct submatch_path *p, const cJSON *v, const char *rest,
                 struct strset *out)
{
    size_t seg;
    const cJSON *child;

    if (!v) {
        return;
    }
    if (!*rest) {
        if (cJSON_IsArray(v)) {
            cJSON_ArrayForEach(child, v)
            {
                add_scalar(p, child, out);
            }
        } else {
            add_scalar(p, v, out);
        }
        return;
    }
    seg = strcspn(rest, ".");
    if (seg == 1 && rest[0] == '*') {
        if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
            cJSON_ArrayForEach(child, v)
            {
                walk(p, child, rest[seg] ? rest + seg + 1 : "", out);
            }
        }
        return;
    }
    if (!cJSON_IsObject(v)) {
        return;
    }
    cJSON_ArrayForEach(child, v)
    {
        if (child->string && strlen(child->string) == seg &&
            memcmp(child->string, rest, seg) == 0) {
            walk(p, child, rest[seg] ? rest + seg + 1 : "", out);
            return;
        }
    }
}

void submatch_values(const struct submatch_key *key, const cJSON *msg, struct strset *out)
{
    for (size_t i = 0; i < key->n; i++) {
        walk(&key->v[i], msg, key->v[i].path, out);
    }
}

void submatch_filter_value(const struct submatch_key *key, const char *value, struct strset *out)
{
    if (key->n == 0) {
        strset_add(out, value);
        return;
    }
    add_filtered(&key->v[0], value, out);
}

/* Lower rank is better: 0 exact, 1 superset, 2 overlap; -1 no overlap. */
static int cover_rank(const struct strset *want, const struct strset *cand, size_t *overlap)
{
    *overlap = strset_intersection(cand, want);
    if (*overlap == 0) {
        return -1;
    }
    if (*overlap == want->n) {
        return cand->n == want->n ? 0 : 1;
    }
    return 2;
}

/* Is candidate a (rank ra, overlap oa) better than b? */
static int better(int ra, size_t oa, size_t na, int rb, size_t ob, size_t nb)
{
    if (ra != rb) {
        return ra < rb;
    }
    if (ra == 1) {
        return na < nb;
    }
    if (ra == 2) {
        return oa > ob || (oa == ob && na < nb);
    }
    return 0;
}

size_t submatch_cover(const struct strset *want, const struct strset *const *cands, size_t n,
                      size_t *out, size_t out_cap)
{
    struct strset left = {0};
    size_t chosen = 0;

    strset_copy(&left, want);
    while (left.n > 0 && chosen < out_cap) {
        size_t best = n, best_ov = 0;
        int best_rank = -1;

        for (size_t i = 0; i < n; i++) {
            size_t ov;
            int r = cover_rank(&left, cands[i], &ov);

            if (r < 0) {
                continue;
            }
            if (best == n || better(r, ov, cands[i]->n, best_rank, best_ov, cands[best]->n)) {
                best = i;
                best_rank = r;
                best_ov = ov;
            }
        }
        if (best == n) {
            break;
        }
        out[chosen++] = best;
        strset_remove_all(&left, cands[best]);
    }
    strset_free(&left);
    return chosen;
}
