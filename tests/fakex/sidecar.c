/*
 * sidecar: validation and application of fakex.json.
 *
 * Strict on purpose: a misspelt key would otherwise silently turn a
 * subscribe rule off, and the failing test would blame the operator.
 */
#include "sidecar.h"

#include "rewrite.h"
#include "core/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int known_key(const char *key, const char *const *known, size_t n)
{
    if (key[0] == '_') {
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(key, known[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

void sidecar_scan_hosts(struct strset *hosts, const cJSON *v)
{
    const cJSON *item;

    if (cJSON_IsString(v)) {
        rewrite_scan_hosts(hosts, v->valuestring);
    } else if (cJSON_IsArray(v)) {
        cJSON_ArrayForEach(item, v)
        {
            sidecar_scan_hosts(hosts, item);
        }
    }
}

static int parse_key(const cJSON *spec, struct submatch_key *key, char *err, size_t errlen)
{
    char msg[256];

    if (submatch_key_parse(key, spec, msg, sizeof(msg)) != 0) {
        snprintf(err, errlen, "fakex.json: %s", msg);
        return -1;
    }
    return 0;
}

static int parse_skips(struct sidecar_skips *skips, const cJSON *list, char *err, size_t errlen)
{
    const cJSON *item, *v;

    skips->v = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*skips->v));
    cJSON_ArrayForEach(item, list)
    {
        struct sidecar_skip *r = &skips->v[skips->n];

        if (parse_key(item, &r->key, err, errlen) != 0) {
            return -1;
        }
        skips->n++;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(item, "values"))
        {
            if (cJSON_IsString(v)) {
                strset_add(&r->values, v->valuestring);
            }
        }
    }
    return 0;
}

static int parse_url_rule(struct fixtures_exchange *ex, const cJSON *rule, char *err, size_t errlen)
{
    const cJSON *param = cJSON_GetObjectItemCaseSensitive(rule, "param");
    const cJSON *sep = cJSON_GetObjectItemCaseSensitive(rule, "separator");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(rule, "regex");
    cJSON *spec;
    int rc;

    if (!cJSON_IsString(param) || (sep && !cJSON_IsString(sep))) {
        snprintf(err, errlen, "fakex.json: url_streams needs a string \"param\"");
        return -1;
    }
    ex->url_param = xstrdup(param->valuestring);
    ex->url_sep = xstrdup(sep ? sep->valuestring : "/");
    if (!re) {
        return 0;
    }
    /* The regex applies to each stream name itself: an empty path. */
    spec = cJSON_CreateObject();
    cJSON_AddStringToObject(spec, "path", "");
    cJSON_AddItemReferenceToObject(spec, "regex", (cJSON *)re);
    rc = parse_key(spec, &ex->url_key, err, errlen);
    cJSON_Delete(spec);
    return rc;
}

static int parse_replies(struct fixtures_exchange *ex, const cJSON *list, char *err, size_t errlen)
{
    const cJSON *item, *v;

    ex->replies = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*ex->replies));
    cJSON_ArrayForEach(item, list)
    {
        struct fixtures_reply *r = &ex->replies[ex->n_replies];
        const cJSON *when = cJSON_GetObjectItemCaseSensitive(item, "when");
        const cJSON *send = cJSON_GetObjectItemCaseSensitive(item, "send");

        if (!when || !cJSON_IsString(send)) {
            snprintf(err, errlen, "fakex.json: a reply needs \"when\" and a string \"send\"");
            return -1;
        }
        if (parse_key(when, &r->when, err, errlen) != 0) {
            return -1;
        }
        r->send = xstrdup(send->valuestring);
        ex->n_replies++;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(when, "values"))
        {
            if (cJSON_IsString(v)) {
                strset_add(&r->values, v->valuestring);
            }
        }
    }
    return 0;
}

/* One expect condition: {"path": ..., "regex": ..., "values": [...]}. */
static int parse_cond(struct fixtures_cond *c, const cJSON *spec, char *err, size_t errlen)
{
    static const char *const known[] = {"path", "regex", "values"};
    const cJSON *item, *values;

    if (!cJSON_IsObject(spec)) {
        snprintf(err, errlen, "fakex.json: an expect condition must be an object");
        return -1;
    }
    cJSON_ArrayForEach(item, spec)
    {
        if (!known_key(item->string, known, sizeof(known) / sizeof(known[0]))) {
            snprintf(err, errlen, "fakex.json: unknown key \"%s\" in an expect condition",
                     item->string);
            return -1;
        }
    }
    if (parse_key(spec, &c->key, err, errlen) != 0) {
        return -1;
    }
    values = cJSON_GetObjectItemCaseSensitive(spec, "values");
    c->any = values == NULL;
    if (values && !cJSON_IsArray(values)) {
        snprintf(err, errlen, "fakex.json: expect \"values\" must be a list of strings");
        return -1;
    }
    cJSON_ArrayForEach(item, values)
    {
        if (!cJSON_IsString(item)) {
            snprintf(err, errlen, "fakex.json: expect \"values\" must be a list of strings");
            return -1;
        }
        strset_add(&c->values, item->valuestring);
    }
    return 0;
}

/* "when" or "reply": one condition or a non-empty list, all of which must hold. */
static int parse_conds(struct fixtures_cond **out, size_t *n, const cJSON *spec, const char *what,
                       char *err, size_t errlen)
{
    int count = cJSON_IsArray(spec) ? cJSON_GetArraySize(spec) : 1;

    if (!cJSON_IsObject(spec) && !(cJSON_IsArray(spec) && count > 0)) {
        snprintf(err, errlen, "fakex.json: an expect rule needs \"%s\": a condition or a list",
                 what);
        return -1;
    }
    *out = xcalloc((size_t)count, sizeof(**out));
    for (int i = 0; i < count; i++) {
        /* Counted first: fixtures_free frees a half-parsed (zeroed) one too. */
        (*n)++;
        if (parse_cond(&(*out)[i], cJSON_IsArray(spec) ? cJSON_GetArrayItem(spec, i) : spec, err,
                       errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

static int parse_expects(struct fixtures_exchange *ex, const cJSON *list, char *err, size_t errlen)
{
    static const char *const known[] = {"when", "reply", "within_ms"};
    const cJSON *item, *key, *within;

    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > FIXTURES_MAX_EXPECTS) {
        snprintf(err, errlen, "fakex.json: \"expect\" must be a list of at most %d rules",
                 FIXTURES_MAX_EXPECTS);
        return -1;
    }
    ex->expects = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*ex->expects));
    cJSON_ArrayForEach(item, list)
    {
        struct fixtures_expect *e = &ex->expects[ex->n_expects++];
        const cJSON *rule = cJSON_IsObject(item) ? item : NULL;

        cJSON_ArrayForEach(key, rule)
        {
            if (!known_key(key->string, known, sizeof(known) / sizeof(known[0]))) {
                snprintf(err, errlen, "fakex.json: unknown key \"%s\" in an expect rule",
                         key->string);
                return -1;
            }
        }
        within = cJSON_GetObjectItemCaseSensitive(item, "within_ms");
        if (!cJSON_IsNumber(within) || within->valuedouble < 1 ||
            within->valuedouble > FIXTURES_MAX_WITHIN_MS) {
            snprintf(err, errlen, "fakex.json: an expect rule needs \"within_ms\" from 1 to %ld",
                     FIXTURES_MAX_WITHIN_MS);
            return -1;
        }
        e->within_ms = (long)within->valuedouble;
        if (parse_conds(&e->when, &e->n_when, cJSON_GetObjectItemCaseSensitive(item, "when"),
                        "when", err, errlen) != 0 ||
            parse_conds(&e->reply, &e->n_reply, cJSON_GetObjectItemCaseSensitive(item, "reply"),
                        "reply", err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

static int parse_compress(struct fixtures_exchange *ex, const cJSON *v, char *err, size_t errlen)
{
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "gzip") != 0) {
        snprintf(err, errlen, "fakex.json: \"compress\" must be \"gzip\"");
        return -1;
    }
    ex->compress = FIXTURES_COMPRESS_GZIP;
    return 0;
}

static int check_top_keys(const cJSON *sidecar, char *err, size_t errlen)
{
    static const char *const known[] = {"operation", "channel", "url_streams", "loop_skip",
                                        "greeting",  "replies", "hosts",       "files",
                                        "compress",  "expect"};
    const cJSON *item;

    if (!cJSON_IsObject(sidecar)) {
        snprintf(err, errlen, "fakex.json must hold an object");
        return -1;
    }
    cJSON_ArrayForEach(item, sidecar)
    {
        if (!known_key(item->string, known, sizeof(known) / sizeof(known[0]))) {
            snprintf(err, errlen, "fakex.json: unknown key \"%s\"", item->string);
            return -1;
        }
    }
    return 0;
}

int sidecar_apply(struct fixtures_exchange *ex, const cJSON *sidecar, struct sidecar_skips *skips,
                  char *err, size_t errlen)
{
    const cJSON *item, *op, *chan;

    if (!sidecar) {
        return 0;
    }
    if (check_top_keys(sidecar, err, errlen) != 0) {
        return -1;
    }
    op = cJSON_GetObjectItemCaseSensitive(sidecar, "operation");
    chan = cJSON_GetObjectItemCaseSensitive(sidecar, "channel");
    if (!op != !chan) {
        snprintf(err, errlen, "fakex.json: give both \"operation\" and \"channel\", or neither");
        return -1;
    }
    if (op && (parse_key(op, &ex->op_key, err, errlen) != 0 ||
               parse_key(chan, &ex->chan_key, err, errlen) != 0)) {
        return -1;
    }
    ex->has_rule = op != NULL;
    item = cJSON_GetObjectItemCaseSensitive(sidecar, "url_streams");
    if (item && parse_url_rule(ex, item, err, errlen) != 0) {
        return -1;
    }
    item = cJSON_GetObjectItemCaseSensitive(sidecar, "loop_skip");
    if (item && parse_skips(skips, item, err, errlen) != 0) {
        return -1;
    }
    item = cJSON_GetObjectItemCaseSensitive(sidecar, "replies");
    if (item && parse_replies(ex, item, err, errlen) != 0) {
        return -1;
    }
    item = cJSON_GetObjectItemCaseSensitive(sidecar, "expect");
    if (item && parse_expects(ex, item, err, errlen) != 0) {
        return -1;
    }
    item = cJSON_GetObjectItemCaseSensitive(sidecar, "compress");
    if (item && parse_compress(ex, item, err, errlen) != 0) {
        return -1;
    }
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(sidecar, "greeting"))
    {
        if (cJSON_IsString(item)) {
            ex->greeting = xrealloc(ex->greeting, (ex->n_greeting + 1) * sizeof(char *));
            ex->greeting[ex->n_greeting++] = xstrdup(item->valuestring);
        }
    }
    /* "hosts" may hold URLs or bare host names. */
    sidecar_scan_hosts(&ex->hosts, cJSON_GetObjectItemCaseSensitive(sidecar, "hosts"));
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(sidecar, "hosts"))
    {
        if (cJSON_IsString(item) && !strstr(item->valuestring, "://")) {
            strset_add(&ex->hosts, item->valuestring);
        }
    }
    return 0;
}

int sidecar_check_file(const cJSON *extra, const char *file, char *err, size_t errlen)
{
    static const char *const known[] = {"subscribe", "channels", "loop_from", "start_from", "url"};
    const cJSON *item;

    cJSON_ArrayForEach(item, extra)
    {
        if (!known_key(item->string, known, sizeof(known) / sizeof(known[0]))) {
            snprintf(err, errlen, "fakex.json: unknown key \"%s\" for %s", item->string, file);
            return -1;
        }
    }
    return 0;
}

int sidecar_skippable(const struct sidecar_skips *skips, const char *line, size_t len)
{
    cJSON *msg;
    int hit = 0;

    if (skips->n == 0) {
        return 0;
    }
    msg = cJSON_ParseWithLength(line, len);
    for (size_t i = 0; msg && i < skips->n && !hit; i++) {
        struct strset vals = {0};

        submatch_values(&skips->v[i].key, msg, &vals);
        hit = strset_intersection(&vals, &skips->v[i].values) > 0;
        strset_free(&vals);
    }
    cJSON_Delete(msg);
    return hit;
}

void sidecar_skips_free(struct sidecar_skips *skips)
{
    for (size_t i = 0; i < skips->n; i++) {
        submatch_key_free(&skips->v[i].key);
        strset_free(&skips->v[i].values);
    }
    free(skips->v);
    skips->v = NULL;
    skips->n = 0;
}
