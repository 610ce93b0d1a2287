/*
 * operators: scanning, make-before-break reloads, removal, and the status
 * copy the API threads read.
 *
 * Each file has an entry. An entry holds the live version (may be NULL when
 * the file never loaded), a candidate while a reload prepares, and what the
 * last failed load said. Reloads triggered by file events are debounced per
 * entry, because one save produces several inotify events.
 *
 * A candidate's emits are held (op_hold) until it is accepted, so a version
 * that is rejected never put anything in the store. With a live version and
 * streams, acceptance waits for the candidate's own sockets to carry data
 * (op_warm, at most HANDOVER_WAIT_MS) while the live version's sockets
 * still deliver: the old sockets close only once the new ones work.
 *
 * operators/lib is watched too: a changed module reloads the entries whose
 * files require it, directly or through other modules, as found by
 * scanning their text for require with a literal name (the sandbox does
 * not say what a state loaded, and a version that failed to load never
 * ran its requires; a scan of the text answers for both).
 */
#include "operators.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/jbuf.h"
#include "store/kv.h"
#include "core/log.h"
#include "core/loop.h"
#include "store/store.h"
#include "core/xalloc.h"

#define STATUS_PUBLISH_MS 200
#define RELOAD_DEBOUNCE_MS 150
/* How long a reload waits for the new version's streams to carry data
 * before it hands over anyway (an exchange that is down or slow to
 * answer a subscribe must not block reloads). */
#define HANDOVER_WAIT_MS 5000
#define MAX_OPERATORS 256
#define LIB_CHANGES_MAX 16
#define MODULE_MAX 129 /* sandbox_lib.c: module names are at most 128 bytes */
#define DEPS_MAX 64
#define SOURCE_MAX (1u << 20)

struct entry {
    struct operators *reg;
    char name[TICKER_EXCHANGE_MAX];
    char *file;
    struct operator *live;
    struct operator *candidate;
    struct loop_timer *debounce;
    /* The newest version that failed, while `live` (if any) runs on. */
    bool rejected;
    char error[BOARD_REASON_MAX];
    int error_line;
    int64_t error_at;
    bool reloading; /* part of an operators_reload_all round */
    const struct operator *markets_of; /* whose markets were last published */
    int last_state; /* as last published, for on_status; -1 before */
    char last_reason[BOARD_REASON_MAX];
    uint64_t markets_gen;
    char result[BOARD_REASON_MAX];
    bool result_pending; /* result holds the candidate's markets() failure */
    /* Gated (leases): not loaded, another node (holder, "" if unknown)
     * scrapes it or nobody has its lease yet. */
    bool standby;
    char holder[BOARD_NODE_ID_MAX];
};

struct operators {
    struct op_env env;
    char *dir;
    struct entry *entries[MAX_OPERATORS];
    size_t n;
    struct loop_watch *watch;
    struct loop_timer *publish;

    /* operators/lib: modules changed since the debounce started. */
    char *lib_dir;
    struct loop_watch *lib_watch;
    struct loop_timer *lib_debounce;
    char lib_changed[LIB_CHANGES_MAX][MODULE_MAX];
    size_t n_lib_changed;
    bool lib_overflow; /* more than LIB_CHANGES_MAX: every dependent reloads */

    size_t n_markets; /* as last published */

    operators_reload_fn reload_done;
    void *reload_data;
    int reloads_pending;

    bool gated; /* entries run only once activated (their lease taken) */
};

static void publish(struct operators *reg);

/* "binance.lua" -> "binance"; -1 for files that are not operators. */
static int name_of(const char *file, char *name, size_t cap)
{
    const char *dot = strrchr(file, '.');
    size_t n = dot ? (size_t)(dot - file) : 0;
    if (!dot || strcmp(dot, ".lua") != 0 || n == 0 || n >= cap) {
        return -1;
    }
    memcpy(name, file, n);
    name[n] = '\0';
    return ticker_exchange_valid(name) ? 0 : -1;
}

static struct entry *find(const struct operators *reg, const char *name)
{
    for (size_t i = 0; i < reg->n; i++) {
        if (strcmp(reg->entries[i]->name, name) == 0) {
            return reg->entries[i];
        }
    }
    return NULL;
}

static void reload_entry(struct entry *e);

static void on_debounce(struct loop_timer *t, void *data)
{
    reload_entry(data);
}

static struct entry *entry_add(struct operators *reg, const char *name)
{
    if (reg->n == MAX_OPERATORS) {
        log_error("operators", "more than %d operators; ignoring %s", MAX_OPERATORS, name);
        return NULL;
    }
    struct entry *e = xcalloc(1, sizeof *e);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.lua", reg->dir, name);
    e->reg = reg;
    snprintf(e->name, sizeof e->name, "%s", name);
    e->file = xstrdup(path);
    e->debounce = loop_timer_new(reg->env.loop, on_debounce, e);
    e->last_state = -1;
    e->standby = reg->gated;
    reg->entries[reg->n++] = e;
    return e;
}

static void entry_free(struct entry *e)
{
    op_free(e->live);
    op_free(e->candidate);
    loop_timer_free(e->debounce);
    free(e->file);
    free(e);
}

static void entry_remove(struct operators *reg, struct entry *e)
{
    for (size_t i = 0; i < reg->n; i++) {
        if (reg->entries[i] == e) {
            reg->entries[i] = reg->entries[--reg->n];
            break;
        }
    }
    store_remove_exchange(reg->env.store, e->name);
    kv_drop_exchange(reg->env.kv, e->name);
    if (reg->env.on_removed) {
        reg->env.on_removed(e->name, reg->env.ctx);
    }
    log_info("operators", "%s: file removed; exchange and its data dropped", e->name);
    entry_free(e);
    publish(reg);
}

static void reload_finished(struct entry *e, const char *result)
{
    struct operators *reg = e->reg;
    snprintf(e->result, sizeof e->result, "%s", result);
    op_reason_line(e->result);
    publish(reg);
    if (!e->reloading) {
        return;
    }
    e->reloading = false;
    if (--reg->reloads_pending > 0 || !reg->reload_done) {
        return;
    }
    struct jbuf summary;
    jbuf_init(&summary);
    jbuf_adds(&summary, "{\"operators\":[");
    for (size_t i = 0; i < reg->n; i++) {
        jbuf_adds(&summary, i ? ",{\"name\":" : "{\"name\":");
        jbuf_str(&summary, reg->entries[i]->name);
        jbuf_adds(&summary, ",\"result\":");
        jbuf_str(&summary, reg->entries[i]->result);
        jbuf_adds(&summary, "}");
    }
    jbuf_adds(&summary, "]}");
    operators_reload_fn fn = reg->reload_done;
    reg->reload_done = NULL;
    fn(0, summary.data, reg->reload_data);
    jbuf_free(&summary);
}

static void reject(struct entry *e, const char *err, int line)
{
    e->rejected = true;
    snprintf(e->error, sizeof e->error, "%s", err);
    op_reason_line(e->error);
    e->error_line = line;
    e->error_at = loop_wall_ms();
    log_error("operators", "%s: %s%s", e->name, err,
              e->live ? " (the previous version keeps running)" : "");
}

/* The candidate replaces the live version: the old one is freed (its
 * streams close), what the candidate emitted while held is stored, and it
 * starts polling (its streams run already when it was warmed). */
static void accept_candidate(struct entry *e, struct operator *op, bool state_taken)
{
    char msg[BOARD_REASON_MAX];
    bool markets_ok = !e->result_pending;

    e->candidate = NULL;
    if (e->live) {
        if (!state_taken && op_take_state(op, e->live, msg, sizeof msg) != 0) {
            log_warn("operators", "%s: x.state not carried over: %s", e->name, msg);
        }
        op_take_history(op, e->live);
        op_free(e->live);
        log_info("operators", "%s: reloaded from %s", e->name, e->file);
    } else {
        log_info("operators", "%s: loaded from %s", e->name, e->file);
    }
    e->live = op;
    e->rejected = false;
    e->result_pending = false;
    op_release(op);
    op_start(op);
    reload_finished(e, markets_ok ? "loaded" : e->result);
}

static void on_candidate_warm(struct operator *op, int ok, const char *err, void *data)
{
    struct entry *e = data;

    if (!ok) {
        log_warn("operators", "%s: %s; handing over after %d ms", e->name, err,
                 HANDOVER_WAIT_MS);
    }
    accept_candidate(e, op, true);
}

static void on_candidate_ready(struct operator *op, int ok, const char *err, void *data)
{
    struct entry *e = data;
    char msg[BOARD_REASON_MAX];

    if (!ok && e->live) {
        e->candidate = NULL;
        snprintf(msg, sizeof msg, "markets() failed: %s", err ? err : "?");
        reject(e, msg, 0);
        /* Freed with what it emitted: a rejected version's data never
         * reaches the store. */
        op_free(op);
        reload_finished(e, msg);
        return;
    }
    if (!ok) {
        /* Nothing runs yet: this version becomes live and keeps retrying
         * markets() with backoff, so an exchange that is down at start
         * comes up by itself. */
        snprintf(e->result, sizeof e->result, "markets() failed: %s", err ? err : "?");
        op_reason_line(e->result);
        e->result_pending = true;
    }
    if (ok && e->live && op_enabled(op) && op_has_stream(op)) {
        /* Make before break for streams too: the new version's sockets open
         * and subscribe (x.state already carried over) while the old ones
         * deliver; the hand-over waits for data on every new socket, or
         * HANDOVER_WAIT_MS at most. */
        if (op_take_state(op, e->live, msg, sizeof msg) != 0) {
            log_warn("operators", "%s: x.state not carried over: %s", e->name, msg);
        }
        op_warm(op, HANDOVER_WAIT_MS, on_candidate_warm, e);
        return;
    }
    accept_candidate(e, op, false);
}

static void reload_entry(struct entry *e)
{
    struct operators *reg = e->reg;
    char err[BOARD_REASON_MAX];
    int line = 0;
    FILE *f = fopen(e->file, "r");

    if (!f && errno == ENOENT) {
        bool counted = e->reloading;
        e->reloading = false;
        entry_remove(reg, e);
        if (counted && --reg->reloads_pending == 0 && reg->reload_done) {
            operators_reload_fn fn = reg->reload_done;
            reg->reload_done = NULL;
            fn(0, "{\"operators\":[]}", reg->reload_data);
        }
        return;
    }
    if (f) {
        fclose(f);
    }
    if (e->standby) {
        /* Loaded when its lease is taken (operators_activate), as it then is. */
        reload_finished(e, "standby");
        return;
    }
    op_free(e->candidate);
    e->candidate = NULL;
    e->result_pending = false;
    struct operator *op = op_load(&reg->env, e->file, err, sizeof err, &line);
    if (!op) {
        reject(e, err, line);
        reload_finished(e, err);
        return;
    }
    e->candidate = op;
    op_hold(op);
    if (!op_enabled(op)) {
        /* A disabled operator runs nothing, markets() included. */
        on_candidate_ready(op, 1, NULL, e);
        return;
    }
    op_prepare(op, on_candidate_ready, e);
}

static void on_dir_change(struct loop_watch *w, const char *file, void *data)
{
    struct operators *reg = data;
    char name[TICKER_EXCHANGE_MAX];

    if (name_of(file, name, sizeof name) != 0) {
        return;
    }
    struct entry *e = find(reg, name);
    if (!e) {
        e = entry_add(reg, name);
    }
    if (e) {
        loop_timer_start(e->debounce, RELOAD_DEBOUNCE_MS, 0);
    }
}

/* ---- operators/lib: which operators require a changed module ------------- */

/* The modules an operator depends on, found in its text and, transitively,
 * in theirs: require "m", require 'm', require("m"). A require with a
 * computed name is not seen (the docs say so). */
struct deps {
    char names[DEPS_MAX][MODULE_MAX];
    size_t n;
};

static bool module_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

static bool deps_has(const struct deps *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static void scan_requires(const char *text, struct deps *d)
{
    for (const char *p = strstr(text, "require"); p; p = strstr(p + 1, "require")) {
        if (p > text && (module_char(p[-1]) || (p[-1] >= 'A' && p[-1] <= 'Z'))) {
            continue;
        }
        const char *q = p + strlen("require");
        q += strspn(q, " \t");
        q += *q == '(';
        q += strspn(q, " \t");
        char quote = *q;
        if (quote != '"' && quote != '\'') {
            continue;
        }
        size_t n = 0;
        while (module_char(q[1 + n])) {
            n++;
        }
        if (q[1 + n] != quote || n == 0 || n >= MODULE_MAX || d->n == DEPS_MAX) {
            continue;
        }
        char name[MODULE_MAX];
        memcpy(name, q + 1, n);
        name[n] = '\0';
        if (!deps_has(d, name)) {
            memcpy(d->names[d->n++], name, n + 1);
        }
    }
}

/* Scans one file (at most SOURCE_MAX bytes); a missing file adds nothing. */
static void scan_file(const char *path, struct deps *d)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    char *text = xmalloc(SOURCE_MAX + 1);
    size_t n = fread(text, 1, SOURCE_MAX, f);
    fclose(f);
    text[n] = '\0';
    scan_requires(text, d);
    free(text);
}

static void deps_of(const struct operators *reg, const char *file, struct deps *d)
{
    char path[1024];

    d->n = 0;
    scan_file(file, d);
    for (size_t i = 0; i < d->n; i++) {
        char rel[MODULE_MAX];
        snprintf(rel, sizeof rel, "%s", d->names[i]);
        for (char *c = rel; *c; c++) {
            if (*c == '.') {
                *c = '/';
            }
        }
        snprintf(path, sizeof path, "%s/%s.lua", reg->lib_dir, rel);
        scan_file(path, d);
    }
}

static bool needs_reload(const struct operators *reg, const struct entry *e)
{
    struct deps *d = xmalloc(sizeof *d);
    bool hit = false;

    deps_of(reg, e->file, d);
    for (size_t i = 0; i < d->n && !hit; i++) {
        hit = reg->lib_overflow;
        for (size_t k = 0; k < reg->n_lib_changed && !hit; k++) {
            hit = strcmp(d->names[i], reg->lib_changed[k]) == 0;
        }
    }
    free(d);
    return hit;
}

static void on_lib_debounce(struct loop_timer *t, void *data)
{
    struct operators *reg = data;
    struct entry *due[MAX_OPERATORS];
    size_t n = 0;

    for (size_t i = 0; i < reg->n; i++) {
        if (needs_reload(reg, reg->entries[i])) {
            due[n++] = reg->entries[i];
        }
    }
    for (size_t i = 0; i < reg->n_lib_changed; i++) {
        log_info("operators", "lib/%s.lua changed: reloading the %zu operator(s) that require it",
                 reg->lib_changed[i], n);
    }
    reg->n_lib_changed = 0;
    reg->lib_overflow = false;
    /* A reload may remove its entry (file gone): the list was taken first. */
    for (size_t i = 0; i < n; i++) {
        reload_entry(due[i]);
    }
}

/* "market.lua" -> module "market"; other names are not modules. */
static void on_lib_change(struct loop_watch *w, const char *file, void *data)
{
    struct operators *reg = data;
    const char *dot = strrchr(file, '.');
    size_t n = dot ? (size_t)(dot - file) : 0;

    if (!dot || strcmp(dot, ".lua") != 0 || n == 0 || n >= MODULE_MAX) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!module_char(file[i]) || file[i] == '.') {
            return;
        }
    }
    char name[MODULE_MAX];
    memcpy(name, file, n);
    name[n] = '\0';
    bool known = false;
    for (size_t i = 0; i < reg->n_lib_changed && !known; i++) {
        known = strcmp(reg->lib_changed[i], name) == 0;
    }
    if (!known && reg->n_lib_changed == LIB_CHANGES_MAX) {
        reg->lib_overflow = true;
    } else if (!known) {
        memcpy(reg->lib_changed[reg->n_lib_changed++], name, n + 1);
    }
    loop_timer_start(reg->lib_debounce, RELOAD_DEBOUNCE_MS, 0);
}

static void on_publish(struct loop_timer *t, void *data)
{
    publish(data);
}

struct operators *operators_new(const struct op_env *env, const char *dir)
{
    struct operators *reg = xcalloc(1, sizeof *reg);
    reg->env = *env;
    reg->dir = xstrdup(dir);
    reg->publish = loop_timer_new(env->loop, on_publish, reg);
    reg->lib_debounce = loop_timer_new(env->loop, on_lib_debounce, reg);
    if (env->lib_dir) {
        reg->lib_dir = xstrdup(env->lib_dir);
    } else {
        size_t n = strlen(dir) + sizeof "/lib";
        reg->lib_dir = xmalloc(n);
        snprintf(reg->lib_dir, n, "%s/lib", dir);
    }
    /* Operators loaded later (reloads) must not depend on the caller's
     * string staying alive. */
    reg->env.lib_dir = reg->lib_dir;
    return reg;
}

void operators_free(struct operators *reg)
{
    if (!reg) {
        return;
    }
    loop_watch_free(reg->watch);
    loop_watch_free(reg->lib_watch);
    loop_timer_free(reg->lib_debounce);
    loop_timer_free(reg->publish);
    for (size_t i = 0; i < reg->n; i++) {
        entry_free(reg->entries[i]);
    }
    free(reg->dir);
    free(reg->lib_dir);
    free(reg);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int operators_start(struct operators *reg)
{
    DIR *d = opendir(reg->dir);
    struct dirent *de;
    char *names[MAX_OPERATORS];
    size_t n = 0;

    if (!d) {
        log_error("operators", "cannot open %s: %s", reg->dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) && n < MAX_OPERATORS) {
        char name[TICKER_EXCHANGE_MAX];
        if (name_of(de->d_name, name, sizeof name) == 0) {
            names[n++] = xstrdup(name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++) {
        struct entry *e = entry_add(reg, names[i]);
        if (e && !e->standby) {
            reload_entry(e);
        }
        free(names[i]);
    }
    reg->watch = loop_watch_new(reg->env.loop, reg->dir, on_dir_change, reg);
    if (!reg->watch) {
        log_warn("operators", "cannot watch %s: changes need SIGHUP", reg->dir);
    }
    /* The shared modules: a change reloads the operators that require
     * them (the directory watch above is not recursive). */
    reg->lib_watch = loop_watch_new(reg->env.loop, reg->lib_dir, on_lib_change, reg);
    loop_timer_start(reg->publish, STATUS_PUBLISH_MS, STATUS_PUBLISH_MS);
    publish(reg);
    int live = 0;
    for (size_t i = 0; i < reg->n; i++) {
        live += reg->entries[i]->live || reg->entries[i]->candidate;
    }
    log_info("operators", "%zu operator files in %s, %d loading", reg->n, reg->dir, live);
    return live;
}

void operators_reload_all(struct operators *reg, operators_reload_fn done, void *data)
{
    if (reg->reload_done) {
        /* A round is running; this request joins it by waiting for it. */
        if (done) {
            done(-EBUSY, "{\"error\":\"a reload is already running\"}", data);
        }
        return;
    }
    reg->reload_done = done;
    reg->reload_data = data;
    reg->reloads_pending = (int)reg->n;
    if (reg->n == 0) {
        reg->reload_done = NULL;
        if (done) {
            done(0, "{\"operators\":[]}", data);
        }
        return;
    }
    struct entry *copy[MAX_OPERATORS];
    size_t n = reg->n;
    memcpy(copy, reg->entries, n * sizeof *copy);
    for (size_t i = 0; i < n; i++) {
        copy[i]->reloading = true;
    }
    for (size_t i = 0; i < n; i++) {
        reload_entry(copy[i]);
    }
}

static void entry_status(const struct entry *e, int64_t now, struct board_status *st)
{
    if (e->standby) {
        memset(st, 0, sizeof *st);
        snprintf(st->name, sizeof st->name, "%s", e->name);
        snprintf(st->file, sizeof st->file, "%s", e->file);
        st->state = BOARD_STANDBY;
        snprintf(st->reason, sizeof st->reason, "%s",
                 e->holder[0] ? "another node holds its lease" : "waiting for its lease");
        snprintf(st->node_id, sizeof st->node_id, "%s", e->holder);
        return;
    }
    if (e->live) {
        op_status(e->live, now, st);
    } else {
        memset(st, 0, sizeof *st);
        snprintf(st->name, sizeof st->name, "%s", e->name);
        snprintf(st->file, sizeof st->file, "%s", e->file);
        st->state = e->candidate ? BOARD_STARTING : BOARD_ERROR;
        snprintf(st->reason, sizeof st->reason, "%s", e->error);
    }
    if (e->rejected && e->live) {
        /* The running version serves on; the reason says a newer file was
         * refused, as well as `rejected` does. */
        char reason[BOARD_REASON_MAX];
        snprintf(reason, sizeof reason, "%s", st->reason);
        snprintf(st->reason, sizeof st->reason,
                 "new version rejected (%.*s), previous one running%s%.*s", BOARD_REASON_MAX / 2,
                 e->error, reason[0] ? "; " : "", BOARD_REASON_MAX / 4, reason);
        st->rejected = true;
        snprintf(st->rejected_error, sizeof st->rejected_error, "%s", e->error);
        st->rejected_line = e->error_line;
        st->rejected_at = e->error_at;
    }
}

/* Markets change only when a markets() succeeds, so they are republished
 * only then, not every tick. */
static void publish_markets(struct operators *reg)
{
    bool changed = false;
    size_t total = 0;

    for (size_t i = 0; i < reg->n; i++) {
        struct entry *e = reg->entries[i];
        size_t n = 0;
        uint64_t gen = 0;
        if (e->live) {
            op_markets(e->live, &n, &gen);
        }
        if (e->markets_of != e->live || e->markets_gen != gen) {
            changed = true;
        }
        total += n;
    }
    if (!changed && total == reg->n_markets) {
        return;
    }
    struct board_market *fresh = xcalloc(total + 1, sizeof *fresh);
    size_t o = 0;
    for (size_t i = 0; i < reg->n; i++) {
        struct entry *e = reg->entries[i];
        size_t n = 0;
        uint64_t gen = 0;
        const struct board_market *m = NULL;
        if (e->live) {
            m = op_markets(e->live, &n, &gen);
            if (n) {
                memcpy(fresh + o, m, n * sizeof *m);
                o += n;
            }
        }
        if ((e->markets_of != e->live || e->markets_gen != gen) && e->live &&
            reg->env.on_markets) {
            reg->env.on_markets(e->name, m, n, reg->env.ctx);
        }
        e->markets_of = e->live;
        e->markets_gen = gen;
    }
    board_put_markets(reg->env.board, fresh, o);
    reg->n_markets = o;
    free(fresh);
}

static void publish(struct operators *reg)
{
    publish_markets(reg);
    int64_t now = loop_wall_ms();
    struct board_status *fresh = xcalloc(reg->n ? reg->n : 1, sizeof *fresh);
    for (size_t i = 0; i < reg->n; i++) {
        struct entry *e = reg->entries[i];
        entry_status(e, now, &fresh[i]);
        if ((int)fresh[i].state != e->last_state || strcmp(fresh[i].reason, e->last_reason)) {
            e->last_state = (int)fresh[i].state;
            snprintf(e->last_reason, sizeof e->last_reason, "%s", fresh[i].reason);
            if (reg->env.on_status) {
                reg->env.on_status(e->name, board_state_name(fresh[i].state), fresh[i].reason,
                                   reg->env.ctx);
            }
        }
    }
    board_put_statuses(reg->env.board, fresh, reg->n);
    free(fresh);
}

bool operators_has(const struct operators *reg, const char *name)
{
    return find(reg, name) != NULL;
}

void operators_set_gated(struct operators *reg, bool gated)
{
    reg->gated = gated;
}

size_t operators_names(const struct operators *reg, char (*out)[TICKER_EXCHANGE_MAX], size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < reg->n && n < cap; i++) {
        const struct config_operator *c =
            config_operator_find(reg->env.config, reg->entries[i]->name);
        if (!c || c->enabled) {
            memcpy(out[n++], reg->entries[i]->name, TICKER_EXCHANGE_MAX);
        }
    }
    return n;
}

void operators_activate(struct operators *reg, const char *name)
{
    struct entry *e = find(reg, name);
    if (!e || !e->standby) {
        return;
    }
    e->standby = false;
    e->holder[0] = '\0';
    reload_entry(e);
    publish(reg);
}

void operators_standby(struct operators *reg, const char *name, const char *holder)
{
    struct entry *e = find(reg, name);
    if (!e) {
        return;
    }
    snprintf(e->holder, sizeof e->holder, "%s", holder);
    if (!e->standby) {
        e->standby = true;
        /* Its streams close and its timers stop with it; what it stored
         * stays, and the new holder's updates replace it. */
        op_free(e->live);
        op_free(e->candidate);
        e->live = NULL;
        e->candidate = NULL;
        e->result_pending = false;
        log_info("operators", "%s: standing by%s%s", e->name, holder[0] ? "; held by " : "",
                 holder);
        if (e->reloading) {
            reload_finished(e, "standby");
        }
    }
    publish(reg);
}
