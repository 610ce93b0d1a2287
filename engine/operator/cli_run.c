/*
 * cli_run: `explorer operator run FILE --replay DIR`, the whole operator
 * against recorded data.
 *
 * A private fake exchange serves DIR's parent folder (so DIR's name is the
 * exchange's), replaying every WebSocket capture once, as fast as the
 * socket takes it. The operator's rest and ws are pointed at it through a
 * generated config — the same override path the service uses — and it runs
 * as in the service: markets(), one poll(), and its streams (connections,
 * on_open, on_message). Each stored ticker is printed as a JSON line,
 * flushed at once (or, with --stored, the final stored tickers in the
 * expected-file format of tests/operators/), then a summary on stderr.
 *
 * When is a replay over? The fake exchange counts the captures it started
 * and those it played to the end; once every capture started has ended and
 * the operator has received as many frames as the fake exchange sent, no
 * more data can come. A run also ends at --seconds. The fake exchange is
 * told to die with this process (PR_SET_PDEATHSIG), so a run that crashes
 * leaves nothing behind.
 */
#include "cli_run.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "core/jbuf.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"
#include "net/http_client.h"
#include "net/ws_client.h"
#include "operator.h"
#include "store/kv.h"
#include "store/store.h"
#include "store/ticker_json.h"

#define CHECK_MS 100
/* The operator's time limits, ten times over: a replay's result must not
 * depend on how busy the machine is (docs/operators.md). */
#define DEADLINE_SCALE 10

struct run {
    const struct cli_run_opts *opts;
    struct loop *loop;
    struct store *store;
    struct kv *kv;
    struct http_client *http;
    struct ws_client *ws;
    struct operator *op;
    char stats_url[128];
    struct http_call *stats_call;
    struct loop_timer *check;
    struct loop_timer *deadline;
    long by_source[2]; /* stored tickers, by enum ticker_source */
    bool calls_done;   /* markets() and the poll() have returned */
    bool calls_ok;
    bool replay_over;  /* every capture played and received */
    bool timed_out;
    char err[512];
};

/* ---- The fake exchange ---------------------------------------------------- */

/* Starts the fake exchange next to this binary (or $FAKEX_BIN) on a free
 * port, with its log in work/fakex.log; the pid, or -1. */
static pid_t start_fakex(const char *self_path, const char *fixtures, const char *work, int *port)
{
    char bin[PATH_MAX + 32], port_file[PATH_MAX], log_file[PATH_MAX], self[PATH_MAX];
    const char *env_bin = getenv("FAKEX_BIN");

    /* The binary's own path, not argv[0]: explorer run from PATH has no
     * folder in argv[0]. */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
    } else {
        snprintf(self, sizeof self, "%s", self_path);
    }
    if (env_bin) {
        snprintf(bin, sizeof bin, "%s", env_bin);
    } else {
        snprintf(bin, sizeof bin, "%s/../tests/fakex/fakex", dirname(self));
    }
    snprintf(port_file, sizeof port_file, "%s/port", work);
    snprintf(log_file, sizeof log_file, "%s/fakex.log", work);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Die with the run, however the run ends. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent ||
            !freopen(log_file, "w", stderr)) {
            _exit(127);
        }
        execl(bin, bin, "--fixtures", fixtures, "--listen", "127.0.0.1:0", "--port-file",
              port_file, "--once", "--rate", "0", (char *)NULL);
        fprintf(stderr, "cannot run the fake exchange %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    for (int i = 0; i < 400 && pid > 0; i++) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            int ok = fscanf(f, "%d", port) == 1;
            fclose(f);
            if (ok && *port > 0) {
                return pid;
            }
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            return -1;
        }
        nanosleep(&(struct timespec){0, 25 * 1000 * 1000}, NULL);
    }
    return -1;
}

/* Lines of the fake exchange's log that explain missing data: requests
 * and subscribe messages no recording matches. */
static void print_unmatched(const char *work)
{
    char path[PATH_MAX], line[1024];
    int shown = 0;

    snprintf(path, sizeof path, "%s/fakex.log", work);
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    while (fgets(line, sizeof line, f) && shown < 10) {
        if (strstr(line, "NO FIXTURE MATCHES") || strstr(line, "no capture") ||
            strstr(line, "unmatched")) {
            fprintf(stderr, "  fake exchange: %s", line);
            shown++;
        }
    }
    fclose(f);
}

/* A config that points the operator at the fake exchange, loaded through
 * config_load like any other. */
static struct config *replay_config(const char *work, const char *name, int port,
                                    const char *pairs)
{
    char path[PATH_MAX], err[512];
    struct config *cfg = NULL;
    snprintf(path, sizeof path, "%s/replay.lua", work);
    FILE *f = fopen(path, "w");
    if (!f) {
        return NULL;
    }
    fprintf(f, "return { operators = { %s = { rest = 'http://127.0.0.1:%d/%s', "
               "ws = 'ws://127.0.0.1:%d/%s', pairs = {",
            name, port, name, port, name);
    for (const char *p = pairs; p && *p;) {
        size_t n = strcspn(p, ",");
        fprintf(f, "'%.*s',", (int)n, p);
        p += n + (p[n] == ',');
    }
    fprintf(f, "} } } }\n");
    fclose(f);
    if (config_load(path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "explorer: %s\n", err);
    }
    return cfg;
}

/* ---- Output ------------------------------------------------------------------ */

/* The fields of tests/operators/<name>*.expected.jsonl, in that order: what
 * a replay determines (no receive time, version or derived numbers). */
static void expected_json(struct jbuf *b, const struct ticker *t)
{
    jbuf_adds(b, "{\"exchange\":");
    jbuf_str(b, t->exchange);
    jbuf_adds(b, ",\"pair\":");
    jbuf_str(b, t->pair);
    jbuf_adds(b, ",\"symbol\":");
    jbuf_str(b, t->symbol);
    const char *names[] = {"bid", "ask", "bid_size", "ask_size", "last", "volume"};
    const char *values[] = {t->bid, t->ask, t->bid_size, t->ask_size, t->last, t->volume};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        jbuf_addf(b, ",\"%s\":", names[i]);
        jbuf_str_or_null(b, values[i]);
    }
    if (t->ts == TICKER_TS_NONE) {
        jbuf_adds(b, ",\"ts\":null}");
    } else {
        jbuf_addf(b, ",\"ts\":%lld}", (long long)t->ts);
    }
}

static void on_batch(struct operator *op, const struct ticker *t, const bool *changed, size_t n,
                     void *data)
{
    struct run *r = data;
    struct jbuf b;

    jbuf_init(&b);
    for (size_t i = 0; i < n; i++) {
        r->by_source[t[i].source == TICKER_SOURCE_STREAM]++;
        if (!r->opts->stored) {
            jbuf_reset(&b);
            ticker_json(&b, &t[i], t[i].received, 60000);
            printf("%s\n", b.data);
        }
    }
    fflush(stdout);
    jbuf_free(&b);
}

struct collected {
    struct ticker *t;
    size_t n, cap;
};

static int collect(const struct ticker *t, void *data)
{
    struct collected *c = data;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->t = xrealloc(c->t, c->cap * sizeof *c->t);
    }
    c->t[c->n++] = *t;
    return 0;
}

static int by_pair(const void *a, const void *b)
{
    return strcmp(((const struct ticker *)a)->pair, ((const struct ticker *)b)->pair);
}

void cli_print_stored(const struct store *store, const char *exchange)
{
    struct collected c = {0};
    struct jbuf b;

    store_scan(store, exchange, collect, &c);
    if (c.n) {
        qsort(c.t, c.n, sizeof *c.t, by_pair);
    }
    jbuf_init(&b);
    for (size_t i = 0; i < c.n; i++) {
        jbuf_reset(&b);
        expected_json(&b, &c.t[i]);
        printf("%s\n", b.data);
    }
    fflush(stdout);
    jbuf_free(&b);
    free(c.t);
}

static void summary(struct run *r, const char *work)
{
    struct store_exchange_stats st = {0};
    struct board_status s;
    const char *name = op_name(r->op);

    store_exchange_stats(r->store, name, &st);
    op_status(r->op, loop_wall_ms(), &s);
    fprintf(stderr, "%s: %ld tickers stored (%ld from streams, %ld from poll), %llu pairs\n",
            name, r->by_source[1] + r->by_source[0], r->by_source[1], r->by_source[0],
            (unsigned long long)st.tickers);
    for (int i = TICKER_OK + 1; i < TICKER_REJECT_COUNT; i++) {
        if (st.rejects[i]) {
            fprintf(stderr, "  rejected (%s): %llu\n", ticker_reject_name((enum ticker_reject)i),
                    (unsigned long long)st.rejects[i]);
        }
    }
    if (s.over_max_pairs) {
        fprintf(stderr, "  refused (max_pairs): %llu\n", (unsigned long long)s.over_max_pairs);
    }
    if (s.filtered) {
        fprintf(stderr, "  outside the pairs list: %llu\n", (unsigned long long)s.filtered);
    }
    for (size_t i = 0; i < s.n_unmapped; i++) {
        fprintf(stderr, "  unmapped symbol %s: %llu\n", s.unmapped[i].symbol,
                (unsigned long long)s.unmapped[i].count);
    }
    if (r->opts->streams) {
        fprintf(stderr, "  stream frames: %llu received, %llu taken, %llu ignored\n",
                (unsigned long long)s.stream_messages, (unsigned long long)s.stream_taken,
                (unsigned long long)(s.stream_messages - s.stream_taken));
    }
    if (s.reason[0]) {
        fprintf(stderr, "  last error: %s\n", s.reason);
    }
    if (r->err[0]) {
        fprintf(stderr, "  %s\n", r->err);
    }
    if (r->timed_out && r->opts->streams && s.stream_messages == 0) {
        fprintf(stderr, "  no stream frame arrived: did connections() name a URL the fixtures "
                        "record, and did on_open subscribe to a recorded channel?\n");
    }
    print_unmatched(work);
}

/* ---- The run ----------------------------------------------------------------- */

static void on_calls_done(struct operator *op, int ok, const char *err, void *data)
{
    struct run *r = data;
    r->calls_done = true;
    r->calls_ok = ok;
    if (!ok) {
        snprintf(r->err, sizeof r->err, "failed: %s", err ? err : "?");
    }
}

static void on_deadline(struct loop_timer *t, void *data)
{
    struct run *r = data;
    r->timed_out = true;
    snprintf(r->err, sizeof r->err, "stopped after --seconds %g", r->opts->seconds);
    loop_stop(r->loop);
}

/* The fake exchange's counters: over when every capture started has
 * ended and the operator has received every frame sent. */
static void on_stats(const struct http_response *resp, void *data)
{
    struct run *r = data;
    struct board_status s;

    r->stats_call = NULL;
    cJSON *j = resp->error == HTTP_OK && resp->status == 200 ? cJSON_Parse(resp->body) : NULL;
    double started = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "ws_captures_started"));
    double done = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "ws_captures_done"));
    double sent = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "ws_frames_sent"));
    cJSON_Delete(j);
    op_status(r->op, loop_wall_ms(), &s);
    r->replay_over = started > 0 && done >= started && (double)s.stream_messages >= sent;
}

static void on_check(struct loop_timer *t, void *data)
{
    struct run *r = data;
    bool streams = r->opts->streams && op_has_stream(r->op);

    if (r->calls_done && (!r->calls_ok || !streams || r->replay_over)) {
        loop_stop(r->loop);
        return;
    }
    if (streams && !r->stats_call) {
        struct http_request req = {.url = r->stats_url, .timeout_ms = 5000};
        r->stats_call = http_client_start(r->http, &req, on_stats, r);
    }
}

static int run_operator(struct run *r, struct config *cfg, const char *lib)
{
    char err[512];
    int line;

    struct op_env env = {.loop = r->loop,
                         .store = r->store,
                         .http = r->http,
                         .kv = r->kv,
                         .ws = r->opts->streams ? r->ws : NULL,
                         .config = cfg,
                         .lib_dir = lib,
                         .on_batch = on_batch,
                         .deadline_scale = DEADLINE_SCALE,
                         .ctx = r};
    r->op = op_load(&env, r->opts->file, err, sizeof err, &line);
    if (!r->op) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    r->check = loop_timer_new(r->loop, on_check, r);
    r->deadline = loop_timer_new(r->loop, on_deadline, r);
    loop_timer_start(r->check, CHECK_MS, CHECK_MS);
    loop_timer_start(r->deadline, (uint64_t)(r->opts->seconds * 1000.0), 0);
    op_run_once(r->op, r->opts->poll, r->opts->streams, on_calls_done, r);
    loop_run(r->loop);
    if (r->stats_call) {
        http_call_cancel(r->stats_call);
    }
    loop_timer_free(r->check);
    loop_timer_free(r->deadline);
    if (r->opts->stored) {
        cli_print_stored(r->store, op_name(r->op));
    }
    return 0;
}

int cli_run(const char *self_path, const struct cli_run_opts *opts)
{
    char work[] = "/tmp/rx-oprun.XXXXXX";
    char fixtures[PATH_MAX], lib[PATH_MAX], file_copy[PATH_MAX], err[512];
    struct run r = {.opts = opts};
    int port = 0, code = 1;

    if (!mkdtemp(work)) {
        fprintf(stderr, "explorer: cannot make a work directory: %s\n", strerror(errno));
        return 2;
    }
    if (!realpath(opts->replay_dir, fixtures)) {
        fprintf(stderr, "explorer: --replay %s: %s\n", opts->replay_dir, strerror(errno));
        rmdir(work);
        return 2;
    }
    char *name = xstrdup(basename(fixtures));
    char *parent = dirname(fixtures);
    pid_t fakex = start_fakex(self_path, parent, work, &port);
    struct config *cfg = fakex > 0 ? replay_config(work, name, port, opts->pairs) : NULL;
    if (!cfg) {
        fprintf(stderr, "explorer: could not start the fake exchange for %s\n", opts->replay_dir);
        print_unmatched(work);
        goto out;
    }
    snprintf(r.stats_url, sizeof r.stats_url, "http://127.0.0.1:%d/_fakex/%s/stats", port, name);
    snprintf(file_copy, sizeof file_copy, "%s", opts->file);
    snprintf(lib, sizeof lib, "%s/lib", dirname(file_copy));
    r.loop = loop_new();
    r.store = store_new();
    r.kv = kv_new();
    r.http = http_client_new(r.loop, NULL);
    struct ws_client_options wso = {0};
    r.ws = ws_client_new(r.loop, &wso, err, sizeof err);
    if (!r.ws) {
        fprintf(stderr, "explorer: %s\n", err);
    } else if (run_operator(&r, cfg, lib) == 0) {
        summary(&r, work);
        code = r.by_source[0] + r.by_source[1] > 0 ? 0 : 1;
    }
    op_free(r.op);
    ws_client_free(r.ws);
    http_client_free(r.http);
    kv_free(r.kv);
    loop_free(r.loop);
    store_free(r.store);
out:
    if (fakex > 0) {
        kill(fakex, SIGTERM);
        waitpid(fakex, NULL, 0);
    }
    config_free(cfg);
    free(name);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", work);
    if (system(cmd) != 0) {
        fprintf(stderr, "explorer: could not remove %s\n", work);
    }
    return code;
}
