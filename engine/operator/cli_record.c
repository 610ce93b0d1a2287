/*
 * cli_record: `explorer operator record FILE --out DIR [--seconds N]
 * [--pairs A_B,C_D]`, an exchange turned into tests.
 *
 * The operator runs as in the service (markets(), poll() every poll_every,
 * its streams) against the endpoints its own table gives, for --seconds
 * (default 10). A tap on what it receives (op_env.on_traffic, fed by
 * x_http.c and op_stream.c) writes DIR in the fixture format of
 * tests/fakex/README.md:
 *
 *   rest_<path>[_<query>].json  the last 2xx body of each distinct request
 *                               (method, path, query); the path is taken
 *                               relative to the operator's `rest`, which is
 *                               what the fake exchange serves under
 *                               /<exchange>
 *   ws_<n>.jsonl                every text frame stream n received, one a
 *                               line, in order (reconnects append)
 *   manifest.json               rest[] and ws[] entries; a ws entry's
 *                               `subscribe` holds the distinct messages the
 *                               operator sent on that stream, its `url` the
 *                               stream's URL relative to `ws`
 *
 * so that `operator run FILE --replay DIR` replays exactly what was seen.
 * What cannot be replayed is counted and named in the summary instead of
 * written: non-2xx answers and failed requests, binary frames (a compressed
 * exchange needs a sidecar, docs/operators.md) and frames that span lines.
 * At the end the stored tickers are printed as `operator run --stored`
 * prints them, so a replay can be compared with the recording.
 */
#include "cli_record.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli_run.h"
#include "config/config.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "net/http_client.h"
#include "net/ws_client.h"
#include "operator_int.h"
#include "store/kv.h"
#include "store/store.h"

#define DEADLINE_SCALE 10
#define MAX_REST 256
#define MAX_SENT 32 /* distinct messages kept per stream */
#define NAME_MAX_CHARS 120

struct rest_entry {
    char method[8];
    char *path;
    char *query; /* NULL: none */
    char file[NAME_MAX_CHARS + 16];
};

struct ws_entry {
    char *url;
    FILE *f;
    unsigned frames;
    char *sent[MAX_SENT];
    size_t n_sent;
};

struct rec {
    const char *dir;
    const char *rest_base;
    const char *ws_base;
    struct loop *loop;
    struct rest_entry rest[MAX_REST];
    size_t n_rest;
    struct ws_entry ws[OP_MAX_STREAMS + 1]; /* by 1-based stream index */
    unsigned skipped_http, skipped_binary, skipped_lines, skipped_rest_full;
    int failed; /* a file could not be written */
};

/* "/api/v3/ticker" + "symbol=X" -> "rest_api_v3_ticker_symbol_X.json":
 * letters, digits, '-' and '.' kept, runs of anything else one '_', cut
 * to a length. */
static void file_name(const char *path, const char *query, char *out, size_t cap)
{
    char src[2 * NAME_MAX_CHARS];
    size_t o = (size_t)snprintf(out, cap, "rest_");

    snprintf(src, sizeof src, "%s%s%s", path, query ? "_" : "", query ? query : "");
    for (const char *c = src; *c && o < NAME_MAX_CHARS; c++) {
        bool keep = isalnum((unsigned char)*c) || *c == '-' || *c == '.';
        if (!keep && out[o - 1] == '_') {
            continue;
        }
        out[o++] = keep ? *c : '_';
    }
    while (o > 5 && out[o - 1] == '_') {
        o--;
    }
    snprintf(out + o, cap - o, ".json");
}

static int write_file(struct rec *r, const char *name, const char *data, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "explorer: cannot write %s: %s\n", path, strerror(errno));
        r->failed = 1;
        if (f) {
            fclose(f);
        }
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* The part of url after base ("http://h/x" + "/a?b" -> "/a?b"), or the
 * URL's own path when it is not under base. */
static const char *relative(const char *url, const char *base)
{
    size_t n = base ? strlen(base) : 0;
    while (n && base[n - 1] == '/') {
        n--;
    }
    if (n && strncmp(url, base, n) == 0 && (url[n] == '/' || url[n] == '?' || !url[n])) {
        return url + n;
    }
    const char *s = strstr(url, "://");
    s = s ? strchr(s + 3, '/') : NULL;
    return s ? s : "";
}

static void on_http(struct rec *r, const struct op_traffic *ev)
{
    if (ev->status < 200 || ev->status > 299) {
        r->skipped_http++;
        return;
    }
    const char *rel = relative(ev->url, r->rest_base);
    size_t plen = strcspn(rel, "?#");
    char *path = plen ? xstrndup(rel, plen) : xstrdup("/");
    const char *q = rel[plen] == '?' ? rel + plen + 1 : NULL;
    char *query = q && *q ? xstrndup(q, strcspn(q, "#")) : NULL;
    const char *method = ev->method ? ev->method : "GET";
    struct rest_entry *e = NULL;

    for (size_t i = 0; i < r->n_rest && !e; i++) {
        struct rest_entry *c = &r->rest[i];
        if (strcmp(c->method, method) == 0 && strcmp(c->path, path) == 0 &&
            ((!c->query && !query) || (c->query && query && strcmp(c->query, query) == 0))) {
            e = c;
        }
    }
    if (!e && r->n_rest == MAX_REST) {
        r->skipped_rest_full++;
    } else if (!e) {
        e = &r->rest[r->n_rest++];
        snprintf(e->method, sizeof e->method, "%s", method);
        e->path = path;
        e->query = query;
        file_name(path, query, e->file, sizeof e->file);
        /* Two requests whose names collide once cut: number the later. */
        for (size_t i = 0; i + 1 < r->n_rest; i++) {
            if (strcmp(r->rest[i].file, e->file) == 0) {
                snprintf(e->file + strlen(e->file) - 5, sizeof e->file - strlen(e->file) + 5,
                         "_%zu.json", r->n_rest);
            }
        }
        path = query = NULL;
    }
    if (e) {
        write_file(r, e->file, ev->data, ev->len);
    }
    free(path);
    free(query);
}

static struct ws_entry *ws_of(struct rec *r, const struct op_traffic *ev)
{
    if (ev->stream < 1 || ev->stream > OP_MAX_STREAMS) {
        return NULL;
    }
    struct ws_entry *w = &r->ws[ev->stream];
    if (!w->url && ev->url) {
        w->url = xstrdup(ev->url);
    }
    return w;
}

static void on_ws_in(struct rec *r, const struct op_traffic *ev)
{
    struct ws_entry *w = ws_of(r, ev);
    if (!w) {
        return;
    }
    if (ev->binary) {
        r->skipped_binary++;
        return;
    }
    if (memchr(ev->data, '\n', ev->len) || memchr(ev->data, '\r', ev->len) || ev->len == 0) {
        r->skipped_lines++;
        return;
    }
    if (!w->f) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/ws_%d.jsonl", r->dir, ev->stream);
        w->f = fopen(path, "w");
        if (!w->f) {
            fprintf(stderr, "explorer: cannot write %s: %s\n", path, strerror(errno));
            r->failed = 1;
            return;
        }
    }
    fwrite(ev->data, 1, ev->len, w->f);
    fputc('\n', w->f);
    w->frames++;
}

static void on_ws_out(struct rec *r, const struct op_traffic *ev)
{
    struct ws_entry *w = ws_of(r, ev);
    if (!w || ev->binary || w->n_sent == MAX_SENT) {
        return;
    }
    for (size_t i = 0; i < w->n_sent; i++) {
        if (strlen(w->sent[i]) == ev->len && memcmp(w->sent[i], ev->data, ev->len) == 0) {
            return;
        }
    }
    w->sent[w->n_sent++] = xstrndup(ev->data, ev->len);
}

static void on_traffic(struct operator *op, const struct op_traffic *ev, void *ctx)
{
    struct rec *r = ctx;
    switch (ev->kind) {
    case OP_TRAFFIC_HTTP:
        on_http(r, ev);
        break;
    case OP_TRAFFIC_WS_IN:
        on_ws_in(r, ev);
        break;
    case OP_TRAFFIC_WS_OUT:
        on_ws_out(r, ev);
        break;
    }
}

/* A stream URL as the manifest holds it: the base's scheme and host, then
 * the part after the base, so that the fake exchange's path matching sees
 * what the operator appends to `ws`. */
static char *manifest_url(const char *url, const char *base)
{
    const char *rel = relative(url, base);
    const char *host = strstr(url, "://");
    size_t n = host ? strcspn(host + 3, "/?#") + (size_t)(host + 3 - url) : 0;
    size_t len = n + strlen(rel) + 2;
    char *out = xmalloc(len);
    snprintf(out, len, "%.*s%s%s", (int)n, url, rel[0] == '/' ? "" : "/", rel);
    return out;
}

static void write_manifest(struct rec *r, const char *name)
{
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime(&now));
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "title", name);
    cJSON *rb = cJSON_AddArrayToObject(m, "rest_base");
    cJSON *wb = cJSON_AddArrayToObject(m, "ws_url");
    if (r->rest_base) {
        cJSON_AddItemToArray(rb, cJSON_CreateString(r->rest_base));
    }
    if (r->ws_base) {
        cJSON_AddItemToArray(wb, cJSON_CreateString(r->ws_base));
    }
    cJSON *rest = cJSON_AddArrayToObject(m, "rest");
    for (size_t i = 0; i < r->n_rest; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "file", r->rest[i].file);
        cJSON_AddStringToObject(e, "method", r->rest[i].method);
        cJSON_AddStringToObject(e, "path", r->rest[i].path);
        if (r->rest[i].query) {
            cJSON_AddStringToObject(e, "query", r->rest[i].query);
        }
        cJSON_AddStringToObject(e, "status", "recorded by explorer operator record");
        cJSON_AddStringToObject(e, "recorded", when);
        cJSON_AddItemToArray(rest, e);
    }
    cJSON *ws = cJSON_AddArrayToObject(m, "ws");
    for (int i = 1; i <= OP_MAX_STREAMS; i++) {
        struct ws_entry *w = &r->ws[i];
        if (!w->frames) {
            continue;
        }
        char file[32];
        snprintf(file, sizeof file, "ws_%d.jsonl", i);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "file", file);
        cJSON_AddNumberToObject(e, "lines", w->frames);
        char *url = manifest_url(w->url ? w->url : "", r->ws_base);
        cJSON_AddStringToObject(e, "url", url);
        free(url);
        cJSON *subs = cJSON_AddArrayToObject(e, "subscribe");
        for (size_t k = 0; k < w->n_sent; k++) {
            cJSON_AddItemToArray(subs, cJSON_CreateString(w->sent[k]));
        }
        cJSON_AddStringToObject(e, "status", "recorded by explorer operator record");
        cJSON_AddStringToObject(e, "recorded", when);
        cJSON_AddItemToArray(ws, e);
    }
    char *text = cJSON_Print(m);
    write_file(r, "manifest.json", text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(m);
}

static void on_stop(struct loop_timer *t, void *data)
{
    loop_stop(data);
}

/* A config that only narrows the pairs; NULL without --pairs. */
static struct config *pairs_config(const char *name, const char *pairs, int *bad)
{
    char path[] = "/tmp/rx-oprec.XXXXXX", err[512];
    struct config *cfg = NULL;

    *bad = 0;
    if (!pairs) {
        return NULL;
    }
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        *bad = 1;
        return NULL;
    }
    fprintf(f, "return { operators = { %s = { pairs = {", name);
    for (const char *p = pairs; *p;) {
        size_t n = strcspn(p, ",");
        fprintf(f, "'%.*s',", (int)n, p);
        p += n + (p[n] == ',');
    }
    fprintf(f, "} } } }\n");
    fclose(f);
    if (config_load(path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "explorer: --pairs: %s\n", err);
        *bad = 1;
    }
    unlink(path);
    return cfg;
}

static void summary(struct rec *r, const char *name)
{
    unsigned frames = 0, streams = 0;
    for (int i = 1; i <= OP_MAX_STREAMS; i++) {
        frames += r->ws[i].frames;
        streams += r->ws[i].frames > 0;
    }
    fprintf(stderr, "%s: recorded %zu REST answers and %u frames on %u stream(s) into %s\n", name,
            r->n_rest, frames, streams, r->dir);
    if (r->skipped_http) {
        fprintf(stderr, "  not recorded: %u failed or non-2xx HTTP answers\n", r->skipped_http);
    }
    if (r->skipped_rest_full) {
        fprintf(stderr, "  not recorded: %u answers past %d distinct requests\n",
                r->skipped_rest_full, MAX_REST);
    }
    if (r->skipped_binary) {
        fprintf(stderr, "  not recorded: %u binary frames (a compressed stream needs a sidecar "
                        "\"compress\", docs/operators.md)\n",
                r->skipped_binary);
    }
    if (r->skipped_lines) {
        fprintf(stderr, "  not recorded: %u empty frames or frames that span lines\n",
                r->skipped_lines);
    }
}

/* mkdir -p. */
static int make_dirs(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/", dir);
    for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            return -1;
        }
        *p = '/';
    }
    return 0;
}

static void rec_free(struct rec *r)
{
    for (size_t i = 0; i < r->n_rest; i++) {
        free(r->rest[i].path);
        free(r->rest[i].query);
    }
    for (int i = 0; i <= OP_MAX_STREAMS; i++) {
        struct ws_entry *w = &r->ws[i];
        if (w->f) {
            fclose(w->f);
        }
        free(w->url);
        for (size_t k = 0; k < w->n_sent; k++) {
            free(w->sent[k]);
        }
    }
}

int cli_record(const struct cli_record_opts *opts)
{
    char copy[PATH_MAX], lib[PATH_MAX], name[TICKER_EXCHANGE_MAX], err[512];
    struct rec *r = xcalloc(1, sizeof *r);
    int line, bad, code = 2;

    r->dir = opts->out_dir;
    snprintf(copy, sizeof copy, "%s", opts->file);
    const char *base = basename(copy);
    size_t n = strlen(base) > 4 ? strlen(base) - 4 : 0;
    snprintf(name, sizeof name, "%.*s", (int)n, base);
    snprintf(copy, sizeof copy, "%s", opts->file);
    snprintf(lib, sizeof lib, "%s/lib", dirname(copy));
    if (make_dirs(r->dir) != 0) {
        fprintf(stderr, "explorer: --out %s: %s\n", r->dir, strerror(errno));
        free(r);
        return 2;
    }
    struct config *cfg = pairs_config(name, opts->pairs, &bad);
    if (bad) {
        free(r);
        return 2;
    }
    r->loop = loop_new();
    struct store *store = store_new();
    struct kv *kv = kv_new();
    struct http_client *http = http_client_new(r->loop, NULL);
    struct ws_client_options wso = {0};
    struct ws_client *ws = ws_client_new(r->loop, &wso, err, sizeof err);
    struct operator *op = NULL;
    if (!ws) {
        fprintf(stderr, "explorer: %s\n", err);
        goto out;
    }
    struct op_env env = {.loop = r->loop,
                         .store = store,
                         .http = http,
                         .kv = kv,
                         .ws = ws,
                         .config = cfg,
                         .lib_dir = lib,
                         .deadline_scale = DEADLINE_SCALE,
                         .on_traffic = on_traffic,
                         .ctx = r};
    op = op_load(&env, opts->file, err, sizeof err, &line);
    if (!op) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    r->rest_base = op->spec.rest;
    r->ws_base = op->spec.ws;
    struct loop_timer *stop = loop_timer_new(r->loop, on_stop, r->loop);
    loop_timer_start(stop, (uint64_t)(opts->seconds * 1000.0), 0);
    op_start(op);
    loop_run(r->loop);
    loop_timer_free(stop);
    write_manifest(r, name);
    cli_print_stored(store, name);
    summary(r, name);
    struct board_status st;
    op_status(op, loop_wall_ms(), &st);
    if (st.reason[0]) {
        fprintf(stderr, "  last error: %s\n", st.reason);
    }
    code = r->failed ? 2 : r->n_rest == 0 && st.stream_messages == 0 ? 1 : 0;
out:
    op_free(op);
    ws_client_free(ws);
    http_client_free(http);
    kv_free(kv);
    loop_free(r->loop);
    store_free(store);
    config_free(cfg);
    rec_free(r);
    free(r);
    return code;
}
