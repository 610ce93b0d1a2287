/*
 * fixtures: reading manifest.json and the data files it names, with the
 * fakex.json sidecar's settings (parsed in sidecar.c) applied on top.
 *
 * Loading is strict: a manifest entry naming a missing file, a sidecar key
 * this server does not know or a malformed regex stops startup with a
 * message naming the folder, because a fake exchange that silently serves
 * less than the fixtures promise makes tests fail far from the cause. Keys
 * starting with '_' are comments and ignored. The lookups that run per
 * request live in fixtures_match.c.
 */
#include "fixtures.h"

#include "sidecar.h"
#include "core/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Recorded files are small; anything bigger is a mistake, not data. */
#define FIXTURES_MAX_FILE ((size_t)64 << 20)

struct load_state {
    const char *dir;
    char *err;
    size_t errlen;
    cJSON *sidecar;
    const cJSON *files; /* sidecar "files" object, may be NULL */
    struct sidecar_skips skips;
};

static int failf(struct load_state *st, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(st->err, st->errlen, "%s: ", st->dir);

    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < st->errlen) {
        vsnprintf(st->err + n, st->errlen - (size_t)n, fmt, ap);
    }
    va_end(ap);
    return -1;
}

/* Read a whole file, NUL-terminated. Returns 0 or -errno. */
static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;
    int rc = -EIO;

    if (!f) {
        return -errno;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        goto fail;
    }
    if ((size_t)size > FIXTURES_MAX_FILE) {
        rc = -EFBIG;
        goto fail;
    }
    buf = xmalloc((size_t)size + 1);
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        goto fail;
    }
    buf[size] = '\0';
    fclose(f);
    *out = buf;
    *len = (size_t)size;
    return 0;
fail:
    free(buf);
    fclose(f);
    return rc;
}

static char *join_path(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = xmalloc(n);

    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

/* Read `file` of the exchange folder; names may not leave the folder. */
static int read_data(struct load_state *st, const char *file, char **out, size_t *len)
{
    char *path;
    int rc;

    if (strchr(file, '/') || strcmp(file, "..") == 0 || !*file) {
        return failf(st, "bad file name \"%s\"", file);
    }
    path = join_path(st->dir, file);
    rc = read_file(path, out, len);
    free(path);
    if (rc != 0) {
        return failf(st, "cannot read %s: %s", file, strerror(-rc));
    }
    return 0;
}

static cJSON *parse_json_file(struct load_state *st, const char *file, int optional)
{
    char *text, *path = join_path(st->dir, file);
    size_t len;
    cJSON *json;
    int rc = read_file(path, &text, &len);

    free(path);
    if (rc == -ENOENT && optional) {
        return NULL;
    }
    if (rc != 0) {
        failf(st, "cannot read %s: %s", file, strerror(-rc));
        return NULL;
    }
    json = cJSON_ParseWithLength(text, len);
    free(text);
    if (!json) {
        failf(st, "%s is not valid JSON", file);
    }
    return json;
}

static const char *string_item(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The path part of a URL ("wss://host:9443/stream?x" -> "/stream"). */
static char *url_path_of(const char *url)
{
    const char *s = strstr(url, "://");
    size_t n;

    s = s ? strchr(s + 3, '/') : url;
    if (!s) {
        return xstrdup("/");
    }
    n = strcspn(s, "?# ");
    return n ? xstrndup(s, n) : xstrdup("/");
}

static int load_rest(struct load_state *st, struct fixtures_exchange *ex, const cJSON *rest)
{
    const cJSON *item;

    ex->rest = xcalloc((size_t)cJSON_GetArraySize(rest) + 1, sizeof(*ex->rest));
    cJSON_ArrayForEach(item, rest)
    {
        struct fixtures_rest *r = &ex->rest[ex->n_rest];
        const char *method = string_item(item, "method");
        const char *path = string_item(item, "path");
        const char *query = string_item(item, "query");
        const char *file = string_item(item, "file");

        if (!path || !file || path[0] != '/') {
            return failf(st, "rest entry %zu needs \"path\" (starting with /) and \"file\"",
                         ex->n_rest);
        }
        r->method = xstrdup(method ? method : "GET");
        r->path = xstrdup(path);
        r->file = xstrdup(file);
        r->query_text = query && *query ? xstrdup(query) : NULL;
        query_parse(&r->query, query);
        ex->n_rest++;
        if (read_data(st, file, &r->body, &r->len) != 0) {
            return -1;
        }
        r->served = r->body;
        r->served_len = r->len;
    }
    return 0;
}

static void split_lines(struct fixtures_ws *w, size_t len)
{
    size_t cap = 64, start = 0;

    w->lines = xmalloc(cap * sizeof(*w->lines));
    for (size_t i = 0; i <= len; i++) {
        size_t end;

        if (i < len && w->data[i] != '\n') {
            continue;
        }
        end = i;
        if (end > start && w->data[end - 1] == '\r') {
            end--;
        }
        if (end > start) {
            if (w->n_lines == cap) {
                cap *= 2;
                w->lines = xrealloc(w->lines, cap * sizeof(*w->lines));
            }
            w->lines[w->n_lines].off = start;
            w->lines[w->n_lines].len = end - start;
            w->n_lines++;
        }
        start = i + 1;
    }
}

static int add_sub(struct load_state *st, struct fixtures_exchange *ex, struct fixtures_ws *w,
                   const cJSON *text)
{
    cJSON *msg;

    if (!cJSON_IsString(text) || !(msg = cJSON_Parse(text->valuestring))) {
        return failf(st, "%s: subscribe messages must be strings holding JSON", w->file);
    }
    w->subs = xrealloc(w->subs, (w->n_subs + 1) * sizeof(*w->subs));
    w->subs[w->n_subs++] = msg;
    if (ex->has_rule) {
        struct strset ops = {0}, chans = {0};

        submatch_values(&ex->op_key, msg, &ops);
        submatch_values(&ex->chan_key, msg, &chans);
        /* A message without both (Bitfinex's "conf") selects nothing. */
        if (ops.n && chans.n) {
            strset_copy(&w->ops, &ops);
            strset_copy(&w->chans, &chans);
        }
        strset_free(&ops);
        strset_free(&chans);
    }
    return 0;
}

void fixtures_url_channels(const struct fixtures_exchange *ex, const char *value,
                           struct strset *out)
{
    const char *s = value;
    size_t seplen = strlen(ex->url_sep);

    while (*s) {
        const char *e = seplen ? strstr(s, ex->url_sep) : NULL;
        size_t n = e ? (size_t)(e - s) : strlen(s);
        char *one = xstrndup(s, n);

        if (n) {
            submatch_filter_value(&ex->url_key, one, out);
        }
        free(one);
        s += n;
        if (e) {
            s += seplen;
        }
    }
}

/* Remember the path of a capture's URL and the streams its query selects. */
static void set_url(const struct fixtures_exchange *ex, struct fixtures_ws *w, const char *url)
{
    struct query_params qp = {0};

    free(w->url_path);
    w->url_path = url_path_of(url);
    strset_free(&w->url_chans);
    query_parse(&qp, strchr(url, '?'));
    if (ex->url_param && query_get(&qp, ex->url_param)) {
        fixtures_url_channels(ex, query_get(&qp, ex->url_param), &w->url_chans);
    }
    query_free(&qp);
}

static int size_item(struct load_state *st, const cJSON *obj, const char *key, size_t max,
                     size_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!v) {
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)max) {
        return failf(st, "\"%s\" must be a line index between 0 and %zu", key, max);
    }
    *out = (size_t)v->valuedouble;
    return 1;
}

/* Apply the sidecar's "files" entry for this capture, if any. */
static int apply_file_extras(struct load_state *st, struct fixtures_exchange *ex,
                             struct fixtures_ws *w)
{
    const cJSON *extra = st->files ? cJSON_GetObjectItemCaseSensitive(st->files, w->file) : NULL;
    const cJSON *item, *v;
    int has_loop = 0;
    char msg[256];

    if (sidecar_check_file(extra, w->file, msg, sizeof(msg)) != 0) {
        return failf(st, "%s", msg);
    }
    v = extra ? cJSON_GetObjectItemCaseSensitive(extra, "subscribe") : NULL;
    cJSON_ArrayForEach(item, v)
    {
        if (add_sub(st, ex, w, item) != 0) {
            return -1;
        }
    }
    v = extra ? cJSON_GetObjectItemCaseSensitive(extra, "channels") : NULL;
    if (v) {
        strset_free(&w->chans);
        cJSON_ArrayForEach(item, v)
        {
            if (cJSON_IsString(item)) {
                strset_add(&w->chans, item->valuestring);
            }
        }
    }
    if (extra && string_item(extra, "url")) {
        set_url(ex, w, string_item(extra, "url"));
        w->url_selected = 1;
    }
    if (extra && (size_item(st, extra, "start_from", w->n_lines, &w->start_from) < 0 ||
                  (has_loop = size_item(st, extra, "loop_from", w->n_lines, &w->loop_from)) < 0)) {
        return -1;
    }
    if (!has_loop) {
        w->loop_from = w->start_from;
        while (w->loop_from < w->n_lines &&
               sidecar_skippable(&st->skips, w->data + w->lines[w->loop_from].off,
                                 w->lines[w->loop_from].len)) {
            w->loop_from++;
        }
    }
    return 0;
}

static int load_one_ws(struct load_state *st, struct fixtures_exchange *ex, const cJSON *item,
                       struct fixtures_ws *w)
{
    const char *file = string_item(item, "file");
    const char *url = string_item(item, "url");
    const cJSON *subs = cJSON_GetObjectItemCaseSensitive(item, "subscribe"), *s;
    size_t len;

    if (!file) {
        return failf(st, "ws entry needs \"file\"");
    }
    w->file = xstrdup(file);
    if (read_data(st, file, &w->data, &len) != 0) {
        return -1;
    }
    split_lines(w, len);
    cJSON_ArrayForEach(s, subs)
    {
        if (add_sub(st, ex, w, s) != 0) {
            return -1;
        }
    }
    w->url_selected = w->n_subs == 0 && url;
    if (url) {
        set_url(ex, w, url);
    }
    return apply_file_extras(st, ex, w);
}

static int load_ws(struct load_state *st, struct fixtures_exchange *ex, const cJSON *ws)
{
    const cJSON *item;

    ex->ws = xcalloc((size_t)cJSON_GetArraySize(ws) + 1, sizeof(*ex->ws));
    cJSON_ArrayForEach(item, ws)
    {
        ex->n_ws++;
        if (load_one_ws(st, ex, item, &ex->ws[ex->n_ws - 1]) != 0) {
            return -1;
        }
    }
    return 0;
}

int fixtures_load(struct fixtures_exchange *ex, const char *dir, const char *name, char *err,
                  size_t errlen)
{
    struct load_state st = {.dir = dir, .err = err, .errlen = errlen};
    cJSON *manifest;
    char msg[256];
    int rc = -1;

    memset(ex, 0, sizeof(*ex));
    err[0] = '\0';
    ex->name = xstrdup(name);
    manifest = parse_json_file(&st, "manifest.json", 0);
    if (!manifest) {
        goto fail;
    }
    st.sidecar = parse_json_file(&st, "fakex.json", 1);
    if (!st.sidecar && *err) {
        goto fail;
    }
    if (sidecar_apply(ex, st.sidecar, &st.skips, msg, sizeof(msg)) != 0) {
        failf(&st, "%s", msg);
        goto fail;
    }
    st.files = cJSON_GetObjectItemCaseSensitive(st.sidecar, "files");
    sidecar_scan_hosts(&ex->hosts, cJSON_GetObjectItemCaseSensitive(manifest, "rest_base"));
    sidecar_scan_hosts(&ex->hosts, cJSON_GetObjectItemCaseSensitive(manifest, "ws_url"));
    if (load_rest(&st, ex, cJSON_GetObjectItemCaseSensitive(manifest, "rest")) != 0 ||
        load_ws(&st, ex, cJSON_GetObjectItemCaseSensitive(manifest, "ws")) != 0) {
        goto fail;
    }
    rc = 0;
fail:
    sidecar_skips_free(&st.skips);
    cJSON_Delete(st.sidecar);
    cJSON_Delete(manifest);
    if (rc != 0) {
        fixtures_free(ex);
    }
    return rc;
}

static void free_conds(struct fixtures_cond *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        submatch_key_free(&c[i].key);
        strset_free(&c[i].values);
    }
    free(c);
}

void fixtures_free(struct fixtures_exchange *ex)
{
    for (size_t i = 0; i < ex->n_rest; i++) {
        struct fixtures_rest *r = &ex->rest[i];

        if (r->served != r->body) {
            free(r->served);
        }
        free(r->body);
        free(r->method);
        free(r->path);
        free(r->query_text);
        free(r->file);
        query_free(&r->query);
    }
    for (size_t i = 0; i < ex->n_ws; i++) {
        struct fixtures_ws *w = &ex->ws[i];

        for (size_t j = 0; j < w->n_subs; j++) {
            cJSON_Delete(w->subs[j]);
        }
        free(w->subs);
        free(w->file);
        free(w->url_path);
        free(w->data);
        free(w->lines);
        strset_free(&w->url_chans);
        strset_free(&w->ops);
        strset_free(&w->chans);
    }
    for (size_t i = 0; i < ex->n_greeting; i++) {
        free(ex->greeting[i]);
    }
    for (size_t i = 0; i < ex->n_replies; i++) {
        submatch_key_free(&ex->replies[i].when);
        strset_free(&ex->replies[i].values);
        free(ex->replies[i].send);
    }
    for (size_t i = 0; i < ex->n_expects; i++) {
        free_conds(ex->expects[i].when, ex->expects[i].n_when);
        free_conds(ex->expects[i].reply, ex->expects[i].n_reply);
    }
    free(ex->expects);
    free(ex->replies);
    free(ex->greeting);
    free(ex->rest);
    free(ex->ws);
    free(ex->name);
    free(ex->url_param);
    free(ex->url_sep);
    submatch_key_free(&ex->op_key);
    submatch_key_free(&ex->chan_key);
    submatch_key_free(&ex->url_key);
    strset_free(&ex->hosts);
    memset(ex, 0, sizeof(*ex));
}

void fixtures_free_all(struct fixtures_exchange *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fixtures_free(&v[i]);
    }
    free(v);
}

static int valid_name(const char *name)
{
    if (name[0] == '.' || name[0] == '_' || !*name) {
        return 0;
    }
    for (const char *c = name; *c; c++) {
        if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') && !(*c >= '0' && *c <= '9') &&
            *c != '_' && *c != '-') {
            return 0;
        }
    }
    return 1;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fixtures_scan(const char *root, struct fixtures_exchange **out, size_t *n, char *err,
                  size_t errlen)
{
    DIR *d = opendir(root);
    struct dirent *de;
    char **names = NULL;
    size_t count = 0, loaded = 0;
    struct fixtures_exchange *v = NULL;
    int rc = -1;

    if (!d) {
        snprintf(err, errlen, "%s: %s", root, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        char *dir, *manifest;
        struct stat sb;

        if (!valid_name(de->d_name)) {
            continue;
        }
        dir = join_path(root, de->d_name);
        manifest = join_path(dir, "manifest.json");
        if (stat(manifest, &sb) == 0 && S_ISREG(sb.st_mode)) {
            names = xrealloc(names, (count + 1) * sizeof(*names));
            names[count++] = xstrdup(de->d_name);
        }
        free(manifest);
        free(dir);
    }
    closedir(d);
    if (count == 0) {
        snprintf(err, errlen, "%s: no exchange folder with a manifest.json", root);
        goto fail;
    }
    qsort(names, count, sizeof(*names), cmp_names);
    v = xcalloc(count, sizeof(*v));
    for (; loaded < count; loaded++) {
        char *dir = join_path(root, names[loaded]);
        int lrc = fixtures_load(&v[loaded], dir, names[loaded], err, errlen);

        free(dir);
        if (lrc != 0) {
            goto fail;
        }
    }
    *out = v;
    *n = count;
    v = NULL;
    rc = 0;
fail:
    if (v) {
        fixtures_free_all(v, loaded);
    }
    for (size_t i = 0; i < count; i++) {
        free(names[i]);
    }
    free(names);
    return rc;
}
