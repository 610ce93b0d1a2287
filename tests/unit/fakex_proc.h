/*
 * fakex_proc: start and stop a private fake exchange from a C test.
 *
 * The binary comes from RX_BUILD_DIR/tests/fakex/fakex and the recordings
 * from RX_SOURCE_DIR/tests/fixtures. The process listens on a free loopback
 * port that it writes to a port file; fakex_start waits for that file with a
 * deadline instead of sleeping.
 */
#ifndef RX_FAKEX_PROC_H
#define RX_FAKEX_PROC_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fakex_proc {
    pid_t pid;
    int port;
    char url[64];
    char dir[64];
};

static inline const char *fakex_env(const char *name)
{
    const char *v = getenv(name);
    if (!v) {
        fprintf(stderr, "fakex_proc: %s is not set (run through ctest)\n", name);
        exit(2);
    }
    return v;
}

/* extra: NULL-terminated extra arguments (TLS options), or NULL. */
static inline int fakex_start(struct fakex_proc *f, const char *scheme, const char *const *extra)
{
    char bin[512], fixtures[512], port_file[128];
    const char *argv[24];
    int n = 0;

    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rx-fakex.XXXXXX");
    if (!mkdtemp(f->dir)) {
        return -1;
    }
    snprintf(bin, sizeof bin, "%s/tests/fakex/fakex", fakex_env("RX_BUILD_DIR"));
    snprintf(fixtures, sizeof fixtures, "%s/tests/fixtures", fakex_env("RX_SOURCE_DIR"));
    snprintf(port_file, sizeof port_file, "%s/port", f->dir);
    argv[n++] = bin;
    argv[n++] = "--fixtures";
    argv[n++] = fixtures;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--port-file";
    argv[n++] = port_file;
    for (; extra && *extra && n < 22; extra++) {
        argv[n++] = *extra;
    }
    argv[n] = NULL;
    f->pid = fork();
    if (f->pid == 0) {
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        FILE *fp = fopen(port_file, "r");
        if (fp) {
            int ok = fscanf(fp, "%d", &f->port) == 1;
            fclose(fp);
            if (ok && f->port > 0) {
                snprintf(f->url, sizeof f->url, "%s://127.0.0.1:%d", scheme, f->port);
                return 0;
            }
        }
        nanosleep(&(struct timespec){0, 25 * 1000 * 1000}, NULL);
    }
    fprintf(stderr, "fakex_proc: no port file after 10 s\n");
    return -1;
}

static inline void fakex_stop(struct fakex_proc *f)
{
    char cmd[128];
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
        f->pid = 0;
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "fakex_proc: could not remove %s\n", f->dir);
    }
}

/* A throwaway CA in dir (reused across calls) and a certificate `name`
 * signed by it for the given hosts (tests/fakex/make-test-ca.sh). 0 on
 * success. */
static inline int fakex_make_certs(const char *dir, const char *name, const char *hosts)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/tests/fakex/make-test-ca.sh %s --name %s %s >/dev/null 2>&1",
             fakex_env("RX_SOURCE_DIR"), dir, name, hosts);
    return system(cmd);
}

#endif
