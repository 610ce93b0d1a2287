/*
 * cli_operator: `operator check` lints a file against spec 1 without
 * running its callbacks; `operator run` runs it against recorded data: a
 * private fake exchange serves DIR's parent folder, the operator's rest and
 * ws are pointed at it through a generated config (the same override path
 * the service uses), markets() and one poll() run, and every accepted
 * ticker is printed as a JSON line, flushed at once. The summary goes to
 * stderr. Exit 0 if at least one ticker was emitted, 1 otherwise, 2 on
 * usage errors.
 */
#include "cli_operator.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "net/http_client.h"
#include "core/jbuf.h"
#include "store/kv.h"
#include "core/log.h"
#include "core/loop.h"
#include "operator.h"
#include "store/store.h"
#include "store/ticker_json.h"
#include "core/xalloc.h"

struct run_ctx {
    struct loop *loop;
    struct store *store;
    long emitted;
    int ok;
    const char *err;
    char err_copy[512];
    bool finished;
};

struct parts {
    struct loop *loop;
    struct store *store;
    struct kv *kv;
    struct http_client *http;
};

static void parts_new(struct parts *p)
{
    p->loop = loop_new();
    p->store = store_new();
    p->kv = kv_new();
    p->http = http_client_new(p->loop, NULL);
}

static void parts_free(struct parts *p)
{
    http_client_free(p->http);
    kv_free(p->kv);
    loop_free(p->loop);
    store_free(p->store);
}

/* The directory part of path, into out (dirname without the aliasing). */
static void dir_of(const char *path, char *out, size_t cap)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(out, cap, "%s", dirname(copy));
}

static int usage(void)
{
    fprintf(stderr, "usage: explorer operator check FILE\n"
                    "       explorer operator run FILE --replay DIR [--seconds N] "
                    "[--pairs BTC_USDT,...]\n");
    return 2;
}

static int check(const char *file)
{
    struct parts p;
    char err[512];
    int line;
    char lib[PATH_MAX];

    parts_new(&p);
    dir_of(file, lib, sizeof lib - 4);
    strcat(lib, "/lib");
    struct op_env env = {.loop = p.loop, .store = p.store, .http = p.http, .kv = p.kv,
                         .lib_dir = lib};
    struct operator *op = op_load(&env, file, err, sizeof err, &line);
    if (!op) {
        fprintf(stderr, "%s\n", err);
        parts_free(&p);
        return 1;
    }
    printf("%s: ok: operator '%s', spec 1\n", file, op_name(op));
    op_free(op);
    parts_free(&p);
    return 0;
}

static void print_batch(struct operator *op, const struct ticker *t, const bool *changed,
                        size_t n, void *data)
{
    struct run_ctx *rc = data;
    struct jbuf b;
    jbuf_init(&b);
    for (size_t i = 0; i < n; i++) {
        jbuf_reset(&b);
        ticker_json(&b, &t[i], t[i].received, 60000);
        printf("%s\n", b.data);
        rc->emitted++;
    }
    fflush(stdout);
    jbuf_free(&b);
}

static void on_done(struct operator *op, int ok, const char *err, void *data)
{
    struct run_ctx *rc = data;
    rc->ok = ok;
    snprintf(rc->err_copy, sizeof rc->err_copy, "%s", err ? err : "");
    rc->finished = true;
    loop_stop(rc->loop);
}

static void on_deadline(struct loop_timer *t, void *data)
{
    struct run_ctx *rc = data;
    snprintf(rc->err_copy, sizeof rc->err_copy, "time limit reached");
    loop_stop(rc->loop);
}

/* Starts the fake exchange next to this binary on a free port. */
static pid_t start_fakex(const char *self_path, const char *fixtures, const char *work, int *port)
{
    char bin[PATH_MAX + 32], port_file[PATH_MAX];
    const char *env_bin = getenv("FAKEX_BIN");
    char self_dir[PATH_MAX - 32];

    dir_of(self_path, self_dir, sizeof self_dir);

    snprintf(bin, sizeof bin, "%s", env_bin ? env_bin : "");
    if (!env_bin) {
        snprintf(bin, sizeof bin, "%s/../tests/fakex/fakex", self_dir);
    }
    snprintf(port_file, sizeof port_file, "%s/port", work);
    pid_t pid = fork();
    if (pid == 0) {
        execl(bin, bin, "--fixtures", fixtures, "--listen", "127.0.0.1:0", "--port-file",
              port_file, (char *)NULL);
        fprintf(stderr, "explorer: cannot run the fake exchange %s: %s\n", bin, strerror(errno));
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

static void summary(struct store *store, const struct run_ctx *rc, struct operator *op)
{
    struct store_exchange_stats st = {0};
    struct board_status status;
    store_exchange_stats(store, op_name(op), &st);
    op_status(op, loop_wall_ms(), &status);
    fprintf(stderr, "%s: %ld tickers emitted, %llu pairs stored\n", op_name(op), rc->emitted,
            (unsigned long long)st.tickers);
    for (int r = 1; r < TICKER_REJECT_COUNT; r++) {
        if (st.rejects[r]) {
            fprintf(stderr, "  rejected %s: %llu\n", ticker_reject_name(r),
                    (unsigned long long)st.rejects[r]);
        }
    }
    for (size_t i = 0; i < status.n_unmapped; i++) {
        fprintf(stderr, "  unmapped symbol %s: %llu\n", status.unmapped[i].symbol,
                (unsigned long long)status.unmapped[i].count);
    }
    if (status.filtered) {
        fprintf(stderr, "  outside the pairs list: %llu\n", (unsigned long long)status.filtered);
    }
    if (rc->err_copy[0]) {
        fprintf(stderr, "  error: %s\n", rc->err_copy);
    }
}

static int run(const char *self_path, const char *file, const char *dir, double seconds,
               const char *pairs)
{
    char work[] = "/tmp/rx-oprun.XXXXXX";
    char fixtures[PATH_MAX], err[512], lib[PATH_MAX];
    struct run_ctx rc = {0};
    struct parts p;
    int port = 0, line, code = 1;

    if (!mkdtemp(work) || !realpath(dir, fixtures)) {
        fprintf(stderr, "explorer: cannot use %s: %s\n", dir, strerror(errno));
        return 2;
    }
    char *name = xstrdup(basename(fixtures));
    char *parent = dirname(fixtures);
    pid_t fakex = start_fakex(self_path, parent, work, &port);
    struct config *cfg = fakex > 0 ? replay_config(work, name, port, pairs) : NULL;
    if (!cfg) {
        fprintf(stderr, "explorer: could not start the fake exchange for %s\n", dir);
        goto out;
    }
    parts_new(&p);
    rc.loop = p.loop;
    rc.store = p.store;
    dir_of(file, lib, sizeof lib - 4);
    strcat(lib, "/lib");
    struct op_env env = {.loop = p.loop, .store = p.store, .http = p.http, .kv = p.kv,
                         .config = cfg, .lib_dir = lib, .on_batch = print_batch, .ctx = &rc};
    struct operator *op = op_load(&env, file, err, sizeof err, &line);
    if (!op) {
        fprintf(stderr, "%s\n", err);
    } else {
        struct loop_timer *deadline = loop_timer_new(p.loop, on_deadline, &rc);
        loop_timer_start(deadline, (uint64_t)(seconds * 1000.0), 0);
        op_run_once(op, on_done, &rc);
        if (!rc.finished) {
            loop_run(p.loop);
        }
        loop_timer_free(deadline);
        summary(p.store, &rc, op);
        op_free(op);
        code = rc.emitted > 0 ? 0 : 1;
    }
    parts_free(&p);
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

int cli_operator(int argc, char **argv, const char *self_path)
{
    if (argc == 3 && strcmp(argv[1], "check") == 0) {
        return check(argv[2]);
    }
    if (argc < 5 || strcmp(argv[1], "run") != 0) {
        return usage();
    }
    const char *dir = NULL, *pairs = NULL;
    double seconds = 30;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--replay") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--pairs") == 0 && i + 1 < argc) {
            pairs = argv[++i];
        } else {
            return usage();
        }
    }
    if (!dir || !(seconds > 0)) {
        return usage();
    }
    return run(self_path, argv[2], dir, seconds, pairs);
}
