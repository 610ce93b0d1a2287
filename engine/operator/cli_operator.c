/*
 * cli_operator: the operator author's commands, parsed here and run by
 * their own files:
 *
 *   operator new NAME              the files a new operator starts from (cli_new.c)
 *   operator check FILE            spec lint, no callback runs (below)
 *   operator record FILE --out DIR an exchange's answers saved as fixtures (cli_record.c)
 *   operator run FILE --replay DIR the whole operator on recorded data (cli_run.c)
 *
 * Every bad argument is named in the error, with the usage after it; exit
 * status 2.
 */
#include "cli_operator.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_new.h"
#include "cli_record.h"
#include "cli_run.h"
#include "core/loop.h"
#include "net/http_client.h"
#include "operator.h"
#include "store/kv.h"
#include "store/store.h"

static const char usage_text[] =
    "usage: explorer operator new NAME [--rest URL] [--ws URL]\n"
    "       explorer operator check FILE\n"
    "       explorer operator record FILE --out DIR [--seconds N] [--pairs A_B,C_D]\n"
    "       explorer operator run FILE --replay DIR [--seconds N] [--pairs A_B,C_D]\n"
    "                                  [--no-poll] [--no-stream] [--stored]\n";

/* Names what was wrong, then the usage; the exit status of a usage error. */
static int usage(const char *fmt, const char *arg)
{
    if (fmt) {
        fprintf(stderr, "explorer operator: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
    }
    fputs(usage_text, stderr);
    return 2;
}

static int check(const char *file)
{
    char err[512], lib[PATH_MAX], copy[PATH_MAX];
    int line;

    snprintf(copy, sizeof copy, "%s", file);
    snprintf(lib, sizeof lib, "%s/lib", dirname(copy));
    struct loop *loop = loop_new();
    struct store *store = store_new();
    struct kv *kv = kv_new();
    struct http_client *http = http_client_new(loop, NULL);
    struct op_env env = {.loop = loop, .store = store, .http = http, .kv = kv, .lib_dir = lib};
    struct operator *op = op_load(&env, file, err, sizeof err, &line);
    int code = 1;
    if (op) {
        printf("%s: ok: operator '%s', spec 1\n", file, op_name(op));
        code = 0;
    } else {
        fprintf(stderr, "%s\n", err);
    }
    op_free(op);
    http_client_free(http);
    kv_free(kv);
    loop_free(loop);
    store_free(store);
    return code;
}

/* "12", "0.5": a number of seconds above 0 (at most a day); -1 otherwise. */
static double seconds_arg(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    return end != s && *end == '\0' && v > 0 && v <= 86400 ? v : -1;
}

static int run(int argc, char **argv, const char *self_path)
{
    struct cli_run_opts o = {.file = argv[2], .seconds = 30, .poll = true, .streams = true};

    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--replay") == 0 && has_value) {
            o.replay_dir = argv[++i];
        } else if (strcmp(a, "--seconds") == 0 && has_value) {
            o.seconds = seconds_arg(argv[++i]);
            if (o.seconds < 0) {
                return usage("--seconds: '%s' is not a number of seconds above 0 (at most 86400)",
                             argv[i]);
            }
        } else if (strcmp(a, "--pairs") == 0 && has_value) {
            o.pairs = argv[++i];
        } else if (strcmp(a, "--no-poll") == 0) {
            o.poll = false;
        } else if (strcmp(a, "--no-stream") == 0) {
            o.streams = false;
        } else if (strcmp(a, "--stored") == 0) {
            o.stored = true;
        } else if (strncmp(a, "--", 2) == 0 && !has_value &&
                   (strcmp(a, "--replay") == 0 || strcmp(a, "--seconds") == 0 ||
                    strcmp(a, "--pairs") == 0)) {
            return usage("%s needs a value", a);
        } else {
            return usage("unknown argument '%s'", a);
        }
    }
    if (!o.replay_dir) {
        return usage("run needs --replay DIR (a folder of tests/fixtures/, e.g. %s)",
                     "tests/fixtures/kraken");
    }
    return cli_run(self_path, &o);
}

static int new_operator(int argc, char **argv)
{
    const char *rest = "https://api.example.com", *ws = "wss://stream.example.com";

    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--rest") == 0 && i + 1 < argc) {
            rest = argv[++i];
        } else if (strcmp(argv[i], "--ws") == 0 && i + 1 < argc) {
            ws = argv[++i];
        } else if (strcmp(argv[i], "--rest") == 0 || strcmp(argv[i], "--ws") == 0) {
            return usage("%s needs a value", argv[i]);
        } else {
            return usage("unknown argument '%s'", argv[i]);
        }
    }
    return cli_new(argv[2], rest, ws);
}

static int record(int argc, char **argv)
{
    struct cli_record_opts o = {.file = argv[2], .seconds = 10};

    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--out") == 0 && has_value) {
            o.out_dir = argv[++i];
        } else if (strcmp(a, "--seconds") == 0 && has_value) {
            o.seconds = seconds_arg(argv[++i]);
            if (o.seconds < 0) {
                return usage("--seconds: '%s' is not a number of seconds above 0 (at most 86400)",
                             argv[i]);
            }
        } else if (strcmp(a, "--pairs") == 0 && has_value) {
            o.pairs = argv[++i];
        } else if (strcmp(a, "--out") == 0 || strcmp(a, "--seconds") == 0 ||
                   strcmp(a, "--pairs") == 0) {
            return usage("%s needs a value", a);
        } else {
            return usage("unknown argument '%s'", a);
        }
    }
    if (!o.out_dir) {
        return usage("record needs --out DIR (e.g. %s)", "tests/fixtures/NAME");
    }
    return cli_record(&o);
}

int cli_operator(int argc, char **argv, const char *self_path)
{
    if (argc < 2) {
        return usage("which command? new, check, record or run%s", "");
    }
    if (strcmp(argv[1], "new") == 0) {
        return argc >= 3 ? new_operator(argc, argv) : usage("new needs a NAME%s", "");
    }
    if (strcmp(argv[1], "record") == 0) {
        return argc >= 3 ? record(argc, argv) : usage("record needs a FILE%s", "");
    }
    if (strcmp(argv[1], "check") == 0) {
        return argc == 3 ? check(argv[2]) : usage("check takes one FILE%s", "");
    }
    if (strcmp(argv[1], "run") == 0) {
        return argc >= 3 ? run(argc, argv, self_path) : usage("run needs a FILE%s", "");
    }
    return usage("unknown command '%s': use new, check, record or run", argv[1]);
}
