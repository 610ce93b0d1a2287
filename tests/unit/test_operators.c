/*
 * Operators end to end in the real sandbox, against a private fake
 * exchange: the recorded data becomes exactly the expected tickers, hostile
 * operators fail alone with a clear reason while a healthy one keeps
 * delivering, exchange faults move the state and recover, the HTTP budget
 * holds, and hosts outside an operator's own are refused.
 */
#include "check.h"
#include "fakex_proc.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "config/config.h"
#include "net/http_client.h"
#include "store/kv.h"
#include "core/log.h"
#include "core/loop.h"
#include "operator/operators.h"
#include "store/board.h"
#include "store/store.h"

struct world {
    struct fakex_proc fx;
    char dir[64];
    char ops[96];
    struct config *cfg;
    struct loop *loop;
    struct store *store;
    struct board *board;
    struct kv *kv;
    struct http_client *http;
    size_t batches;        /* on_batch calls */
    size_t batch_sizes[8]; /* the n of call k, at k % 8 */
    size_t batch_changed;  /* tickers reported changed, over all batches */
    struct operators *reg;
};

static double time_factor(void)
{
    const char *f = getenv("TEST_TIME_FACTOR");
    return f && atof(f) > 0 ? atof(f) : 1.0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static void copy_operator(struct world *w, const char *name)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s/operators/%s.lua %s/", getenv("RX_SOURCE_DIR"), name, w->ops);
    CHECK_INT_EQ(system(cmd), 0);
}

/* extra_config: Lua table fields for `operators = { ... }`. */
static void world_start(struct world *w, const char *extra_config)
{
    char path[160], text[4096], err[512];

    memset(w, 0, sizeof *w);
    if (fakex_start(&w->fx, "http", NULL) != 0) {
        fprintf(stderr, "fake exchange did not start\n");
        exit(1);
    }
    snprintf(w->dir, sizeof w->dir, "/tmp/rx-ops.XXXXXX");
    if (!mkdtemp(w->dir)) {
        exit(2);
    }
    snprintf(w->ops, sizeof w->ops, "%s/operators", w->dir);
    mkdir(w->ops, 0700);
    /* The shared Lua modules the real operators require. */
    char cmd[768];
    const char *src = getenv("RX_SOURCE_DIR");
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/lib && if [ -d %s/operators/lib ]; then cp -r %s/operators/lib/. %s/lib/; fi",
             w->ops, src, src, w->ops);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not copy operators/lib\n");
        exit(2);
    }
    snprintf(path, sizeof path, "%s/config.lua", w->dir);
    snprintf(text, sizeof text,
             "local fx = '%s'\n"
             "return { operators_dir = '%s', stale_after_ms = 60000, operators = {\n"
             "  binance = { rest = fx .. '/binance', pairs = {'BTC_USDT'} },\n"
             "  kraken = { rest = fx .. '/kraken', pairs = {'BTC_USDT'} },\n"
             "  coinbase = { rest = fx .. '/coinbase', pairs = {'BTC_USDT'} },\n"
             "  %s } }\n",
             w->fx.url, w->ops, extra_config ? extra_config : "");
    write_file(path, text);
    if (config_load(path, &w->cfg, err, sizeof err) != 0) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    w->loop = loop_new();
    w->store = store_new();
    w->kv = kv_new();
    w->http = http_client_new(w->loop, NULL);
}

/* op_env.on_batch: what the engine's fan-out and Redis writer would see. */
static void count_batch(struct operator *op, const struct ticker *t, const bool *changed, size_t n,
                        void *ctx)
{
    struct world *w = ctx;
    w->batches++;
    w->batch_sizes[w->batches % 8] = n;
    for (size_t i = 0; i < n; i++) {
        w->batch_changed += changed[i];
    }
}

static void world_run_registry(struct world *w)
{
    char lib[128];
    snprintf(lib, sizeof lib, "%s/lib", w->ops);
    w->board = board_new();
    struct op_env env = {.loop = w->loop,
                         .store = w->store,
                         .board = w->board,
                         .http = w->http,
                         .kv = w->kv,
                         .config = w->cfg,
                         .lib_dir = lib,
                         .on_batch = count_batch,
                         .ctx = w};
    w->reg = operators_new(&env, w->ops);
    operators_start(w->reg);
}

static void world_stop(struct world *w)
{
    char cmd[128];
    operators_free(w->reg);
    board_free(w->board);
    http_client_free(w->http);
    kv_free(w->kv);
    CHECK_INT_EQ(loop_free(w->loop), 0);
    store_free(w->store);
    config_free(w->cfg);
    fakex_stop(&w->fx);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", w->dir);
    CHECK_INT_EQ(system(cmd), 0);
}

typedef bool (*cond_fn)(struct world *w, void *arg);

struct waiter {
    struct world *w;
    cond_fn fn;
    void *arg;
    bool met;
};

static void on_poll_cond(struct loop_timer *t, void *data)
{
    struct waiter *wt = data;
    if (wt->fn(wt->w, wt->arg)) {
        wt->met = true;
        loop_stop(wt->w->loop);
    }
}

static void on_deadline(struct loop_timer *t, void *data)
{
    loop_stop(data);
}

/* Runs the loop until fn holds or seconds (scaled) pass. */
static bool wait_for(struct world *w, cond_fn fn, void *arg, double seconds)
{
    struct waiter wt = {w, fn, arg, false};
    struct loop_timer *tick = loop_timer_new(w->loop, on_poll_cond, &wt);
    struct loop_timer *deadline = loop_timer_new(w->loop, on_deadline, w->loop);
    loop_timer_start(tick, 10, 10);
    loop_timer_start(deadline, (uint64_t)(seconds * time_factor() * 1000), 0);
    loop_run(w->loop);
    loop_timer_free(tick);
    loop_timer_free(deadline);
    return wt.met || fn(w, arg);
}

static bool status_of(struct world *w, const char *name, struct board_status *out)
{
    size_t n;
    struct board_status *all = board_statuses(w->board, &n);
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        if (strcmp(all[i].name, name) == 0) {
            *out = all[i];
            found = true;
        }
    }
    free(all);
    return found;
}

static bool has_ticker(struct world *w, void *arg)
{
    const char *const *key = arg;
    struct ticker t;
    return store_get(w->store, key[0], key[1], &t) == 0;
}

struct state_want {
    const char *name;
    enum board_state state;
};

static bool in_state(struct world *w, void *arg)
{
    struct state_want *want = arg;
    struct board_status st;
    return status_of(w, want->name, &st) && st.state == want->state;
}

/* Compares each expected line with the stored ticker, field by field. */
static void check_expected(struct world *w, const char *file)
{
    char path[512], line[4096];
    snprintf(path, sizeof path, "%s/tests/operators/%s", getenv("RX_SOURCE_DIR"), file);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) {
        return;
    }
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        if (!j) {
            continue;
        }
        lines++;
        struct ticker t;
        const char *ex = cJSON_GetObjectItem(j, "exchange")->valuestring;
        const char *pair = cJSON_GetObjectItem(j, "pair")->valuestring;
        CHECK_INT_EQ(store_get(w->store, ex, pair, &t), 0);
        static const struct {
            const char *name;
            size_t off;
        } fields[] = {
            {"symbol", offsetof(struct ticker, symbol)},
            {"bid", offsetof(struct ticker, bid)},
            {"ask", offsetof(struct ticker, ask)},
            {"bid_size", offsetof(struct ticker, bid_size)},
            {"ask_size", offsetof(struct ticker, ask_size)},
            {"last", offsetof(struct ticker, last)},
            {"volume", offsetof(struct ticker, volume)},
        };
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            cJSON *v = cJSON_GetObjectItem(j, fields[i].name);
            const char *want = cJSON_IsString(v) ? v->valuestring : "";
            CHECK_STR_EQ((const char *)&t + fields[i].off, want);
        }
        cJSON *ts = cJSON_GetObjectItem(j, "ts");
        CHECK_INT_EQ(t.ts, cJSON_IsNumber(ts) ? (long long)ts->valuedouble : TICKER_TS_NONE);
        cJSON_Delete(j);
    }
    CHECK(lines > 0);
    fclose(f);
}

static void test_recorded_data(void)
{
    struct world w;
    world_start(&w, NULL);
    copy_operator(&w, "binance");
    copy_operator(&w, "kraken");
    copy_operator(&w, "coinbase");
    world_run_registry(&w);
    const char *bin[] = {"binance", "BTC_USDT"};
    const char *kra[] = {"kraken", "BTC_USDT"};
    const char *cb[] = {"coinbase", "BTC_USDT"};
    CHECK(wait_for(&w, has_ticker, bin, 10));
    CHECK(wait_for(&w, has_ticker, kra, 10));
    CHECK(wait_for(&w, has_ticker, cb, 10));
    check_expected(&w, "binance.expected.jsonl");
    check_expected(&w, "kraken.expected.jsonl");
    check_expected(&w, "coinbase.expected.jsonl");

    struct state_want polling = {"binance", BOARD_POLLING};
    CHECK(wait_for(&w, in_state, &polling, 5));
    /* Only the allow-listed pair is stored. */
    struct store_exchange_stats stats;
    CHECK_INT_EQ(store_exchange_stats(w.store, "kraken", &stats), 0);
    CHECK_INT_EQ(stats.tickers, 1);
    polling.name = "kraken";
    CHECK(wait_for(&w, in_state, &polling, 5));
    CHECK(board_ready(w.board));
    world_stop(&w);
}

static void write_operator(struct world *w, const char *name, const char *body)
{
    char path[160], text[2048];
    snprintf(path, sizeof path, "%s/%s.lua", w->ops, name);
    snprintf(text, sizeof text,
             "return { name = '%s', spec = 1, poll_every = 0.2,\n"
             "  poll = function(x)\n%s\n  end }\n",
             name, body);
    write_file(path, text);
}

struct hostile {
    const char *name;
    const char *body;
    const char *reason; /* a part of the reason we expect, or NULL */
};

static const struct hostile hostiles[] = {
    {"h_io", "io.open('/etc/passwd')", "io"},
    {"h_exec", "os.execute('true')", "execute"},
    {"h_getenv", "return os.getenv('HOME') .. 1", "getenv"},
    {"h_require", "require 'socket'", "not found"},
    {"h_binary", "assert(load('\\27Lua\\84\\0'))", NULL},
    {"h_debug", "debug.getinfo(1)", "debug"},
    {"h_dump", "string.dump(function() end)", "dump"},
    {"h_meta", "getmetatable('').__index = { upper = function() end }", NULL},
    {"h_loop", "while true do end", "budget"},
    {"h_pcall", "while true do pcall(function() while true do end end) end", "budget"},
    {"h_rep", "local s = string.rep('x', 1e9)", "too large"},
    {"h_pattern", "string.find(string.rep('a', 400), '.-.-.-b')", "pattern too complex"},
    {"h_global", "leaked = 1", "global"},
};

static bool hostiles_failed(struct world *w, void *arg)
{
    for (size_t i = 0; i < sizeof hostiles / sizeof hostiles[0]; i++) {
        struct board_status st;
        if (!status_of(w, hostiles[i].name, &st) || st.state != BOARD_ERROR) {
            return false;
        }
    }
    return true;
}

static bool steady_advanced_counter(struct world *w, void *arg)
{
    struct ticker t;
    uint64_t *since = arg;
    return store_get(w->store, "counter", "AAA_BBB", &t) == 0 && t.v >= *since + 3;
}

static bool steady_advanced(struct world *w, void *arg)
{
    struct ticker t;
    uint64_t *since = arg;
    return store_get(w->store, "steady", "AAA_BBB", &t) == 0 && t.v >= *since + 3;
}

/* Each hostile operator fails alone, with its reason, while a healthy one
 * keeps delivering fresh data (asserted on its data, not on liveness). */
static void test_sandbox_isolation(void)
{
    struct world w;
    world_start(&w, NULL);
    write_operator(&w, "steady",
                   "x.state.n = (x.state.n or 0) + 1\n"
                   "assert(x.emit{base = 'aaa', quote = 'bbb', bid = 100 + x.state.n, "
                   "ask = 1000})");
    for (size_t i = 0; i < sizeof hostiles / sizeof hostiles[0]; i++) {
        write_operator(&w, hostiles[i].name, hostiles[i].body);
    }
    write_operator(&w, "sluggish",
                   "local t = os.clock()\n"
                   "while os.clock() - t < 0.12 do end\n"
                   "x.emit{base = 'ccc', quote = 'ddd', bid = 1, ask = 2}");
    world_run_registry(&w);
    CHECK(wait_for(&w, hostiles_failed, NULL, 20));
    for (size_t i = 0; i < sizeof hostiles / sizeof hostiles[0]; i++) {
        struct board_status st;
        CHECK(status_of(&w, hostiles[i].name, &st));
        CHECK_INT_EQ(st.state, BOARD_ERROR);
        if (hostiles[i].reason && !strstr(st.reason, hostiles[i].reason)) {
            CHECK_STR_EQ(st.reason, hostiles[i].reason);
        }
        CHECK(st.reason[0] != '\0');
    }
    struct ticker t;
    CHECK_INT_EQ(store_get(w.store, "steady", "AAA_BBB", &t), 0);
    uint64_t since = t.v;
    /* The loop-lag watchdog marks the operator whose callbacks keep
     * holding the loop, while it still delivers. */
    struct state_want slow = {"sluggish", BOARD_DEGRADED};
    CHECK(wait_for(&w, in_state, &slow, 10));
    struct board_status sl;
    CHECK(status_of(&w, "sluggish", &sl));
    CHECK(strstr(sl.reason, "stall the loop") != NULL);
    CHECK(wait_for(&w, steady_advanced, &since, 10));
    struct board_status st;
    CHECK(status_of(&w, "steady", &st));
    CHECK_INT_EQ(st.state, BOARD_POLLING);
    world_stop(&w);
}

/* A blocking HTTP call for the test itself (control API of the fake
 * exchange), run on the world's loop. */
struct fetch {
    struct world *w;
    long status;
    char body[2048];
};

static void on_fetched(const struct http_response *resp, void *data)
{
    struct fetch *f = data;
    f->status = resp->status;
    snprintf(f->body, sizeof f->body, "%s", resp->body);
    loop_stop(f->w->loop);
}

static long control(struct world *w, const char *method, const char *path, const char *body,
                    char *out, size_t cap)
{
    char url[256];
    struct fetch f = {.w = w};
    snprintf(url, sizeof url, "%s%s", w->fx.url, path);
    struct http_request req = {.method = method, .url = url, .body = body,
                               .body_len = body ? strlen(body) : 0};
    http_client_start(w->http, &req, on_fetched, &f);
    loop_run(w->loop);
    if (out) {
        snprintf(out, cap, "%s", f.body);
    }
    return f.status;
}

static long requests_of(struct world *w, const char *exchange)
{
    char path[128], body[2048];
    snprintf(path, sizeof path, "/_fakex/%s/stats", exchange);
    control(w, "GET", path, NULL, body, sizeof body);
    cJSON *j = cJSON_Parse(body);
    long n = j && cJSON_IsNumber(cJSON_GetObjectItem(j, "requests"))
                 ? (long)cJSON_GetObjectItem(j, "requests")->valuedouble
                 : -1;
    cJSON_Delete(j);
    return n;
}

static bool errors_at_least(struct world *w, void *arg)
{
    struct board_status st;
    return status_of(w, "binance", &st) && st.errors >= *(uint64_t *)arg;
}

/* Exchange faults: the state and reason follow, retries back off, and the
 * operator recovers when the exchange does. */
static void test_faults(void)
{
    static const struct {
        const char *fault;
        const char *reason;
    } faults[] = {
        {"{\"status\":500}", "500"},
        {"{\"garbage\":true}", "JSON"},
        {"{\"truncate\":40}", "JSON"},
        {"{\"delay_ms\":30000}", NULL},
        {"{\"refuse\":true}", NULL},
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        struct world w;
        world_start(&w, "");
        copy_operator(&w, "binance");
        CHECK_INT_EQ(control(&w, "POST", "/_fakex/binance/fault", faults[i].fault, NULL, 0), 200);
        world_run_registry(&w);
        struct state_want err = {"binance", BOARD_ERROR};
        CHECK(wait_for(&w, in_state, &err, 20));
        struct board_status st;
        CHECK(status_of(&w, "binance", &st));
        if (faults[i].reason && !strstr(st.reason, faults[i].reason)) {
            CHECK_STR_EQ(st.reason, faults[i].reason);
        }
        if (i == 0) {
            /* Backoff: markets() retries wait 2 s, then 4 s; without it a
             * failing operator would retry hundreds of times. */
            uint64_t two = 2;
            CHECK(wait_for(&w, errors_at_least, &two, 5));
            long before = requests_of(&w, "binance");
            uint64_t never = 1000;
            wait_for(&w, errors_at_least, &never, 3);
            CHECK(requests_of(&w, "binance") - before <= 2);
        }
        CHECK_INT_EQ(control(&w, "POST", "/_fakex/binance/reset", "{}", NULL, 0), 200);
        /* Recovered: data flows again (the state reads degraded for a
         * minute after the last error, then polling). */
        const char *key[] = {"binance", "BTC_USDT"};
        CHECK(wait_for(&w, has_ticker, key, 40));
        struct board_status after;
        CHECK(status_of(&w, "binance", &after));
        world_stop(&w);
    }
}

/* An operator looping on x.http is held to its budget, and a host outside
 * its own is refused. */
static void test_budget_and_hosts(void)
{
    struct world w;
    char extra[512];
    snprintf(extra, sizeof extra,
             "greedy = { rest = fx .. '/binance', budget = { requests = 3, per = 60 } },\n"
             "nosy = { rest = fx .. '/binance' },");
    world_start(&w, extra);
    write_operator(&w, "greedy",
                   "for i = 1, 10 do x.http.get(x.op.rest .. '/api/v3/ticker/price', "
                   "{query = {symbol = 'BTCUSDT'}}) end");
    write_operator(&w, "nosy",
                   "local s, err = x.http.get('http://127.0.0.2:9/latest/meta-data')\n"
                   "error(err)");
    world_run_registry(&w);
    struct state_want err = {"nosy", BOARD_ERROR};
    CHECK(wait_for(&w, in_state, &err, 10));
    struct board_status st;
    CHECK(status_of(&w, "nosy", &st));
    if (!strstr(st.reason, "refused")) {
        CHECK_STR_EQ(st.reason, "refused");
    }

    uint64_t never = 1000;
    wait_for(&w, errors_at_least, &never, 2);
    CHECK_INT_EQ(requests_of(&w, "binance"), 3);
    CHECK(status_of(&w, "greedy", &st));
    CHECK(st.budget_waits >= 1);
    CHECK_INT_EQ(st.http_requests, 3);
    world_stop(&w);
}

static bool ask_is(struct world *w, void *arg)
{
    struct ticker t;
    return store_get(w->store, "counter", "AAA_BBB", &t) == 0 && strcmp(t.ask, arg) == 0;
}

static bool rejected_at_line(struct world *w, void *arg)
{
    struct board_status st;
    return status_of(w, "counter", &st) && st.rejected && st.rejected_line == *(int *)arg;
}

static bool removed(struct world *w, void *arg)
{
    struct board_status st;
    struct ticker t;
    return !status_of(w, "counter", &st) && store_get(w->store, "counter", "AAA_BBB", &t) != 0;
}

static const char *counter_body(const char *ask)
{
    static char body[256];
    snprintf(body, sizeof body,
             "x.state.n = (x.state.n or 0) + 1\n"
             "x.emit{base = 'AAA', quote = 'BBB', bid = x.state.n, ask = '%s'}", ask);
    return body;
}

/* Hot reload: a changed file replaces the running version and keeps
 * x.state; a broken one is rejected with its line while the old version
 * keeps delivering; a deleted one takes its data with it. */
static void test_reload(void)
{
    struct world w;
    struct ticker before, after;
    char path[160];

    world_start(&w, NULL);
    write_operator(&w, "counter", counter_body("1000"));
    world_run_registry(&w);
    CHECK(wait_for(&w, ask_is, "1000", 10));

    write_operator(&w, "counter", counter_body("2000"));
    CHECK(wait_for(&w, ask_is, "2000", 10));
    CHECK_INT_EQ(store_get(w.store, "counter", "AAA_BBB", &before), 0);
    /* x.state.n went on counting across the reload: v1 had emitted at
     * least once, so the first v2 bid is above 1. */
    CHECK(before.bid_value > 1);

    snprintf(path, sizeof path, "%s/counter.lua", w.ops);
    write_file(path, "return {\n  name = 'counter', spec = 1,\n  poll = function(x) end\n"
                     "  oops oops\n}\n");
    int line = 4;
    CHECK(wait_for(&w, rejected_at_line, &line, 10));
    uint64_t since = before.v;
    CHECK(wait_for(&w, steady_advanced_counter, &since, 10));
    CHECK_INT_EQ(store_get(w.store, "counter", "AAA_BBB", &after), 0);
    CHECK_STR_EQ(after.ask, "2000");

    CHECK_INT_EQ(unlink(path), 0);
    CHECK(wait_for(&w, removed, NULL, 10));
    world_stop(&w);
}

static bool pair_stored(struct world *w, void *arg)
{
    return store_get(w->store, "counter", arg, NULL) == 0;
}

static bool rejected_now(struct world *w, void *arg)
{
    struct board_status st;
    return status_of(w, "counter", &st) && st.rejected;
}

/* A version that requires a module of lib/, and whose markets() emits a
 * ticker for CCC_BBB before it returns or fails (`fail`). */
static void write_lib_counter(struct world *w, bool fail)
{
    char path[160], text[1024];
    snprintf(path, sizeof path, "%s/counter.lua", w->ops);
    snprintf(text, sizeof text,
             "local v = require('askval')\n"
             "return { name = 'counter', spec = 1, poll_every = 0.2,\n"
             "  markets = function(x)\n"
             "    x.emit{base = 'CCC', quote = 'BBB', bid = '1', ask = '7777'}\n"
             "    %s\n"
             "  end,\n"
             "  poll = function(x)\n"
             "    x.state.n = (x.state.n or 0) + 1\n"
             "    x.emit{base = 'AAA', quote = 'BBB', bid = x.state.n, ask = v.ask}\n"
             "  end }\n",
             fail ? "error('markets broke')" : "return {}");
    write_file(path, text);
}

/* Reloads and what they let through: an edit in operators/lib/ reloads
 * the operator that requires the module; a version whose markets() emitted
 * and then failed is rejected with its data (none of it is stored) while
 * the reason says the running version goes on; a fixed version's markets()
 * emits are stored once it is accepted. */
static void test_reload_lib_and_held(void)
{
    struct world w;
    struct board_status st;
    char path[160];

    world_start(&w, NULL);
    snprintf(path, sizeof path, "%s/lib/askval.lua", w.ops);
    write_file(path, "return { ask = '1000' }\n");
    write_lib_counter(&w, false);
    world_run_registry(&w);
    CHECK(wait_for(&w, ask_is, "1000", 10));

    write_file(path, "return { ask = '3000' }\n");
    CHECK(wait_for(&w, ask_is, "3000", 10));

    /* Forget the first version's CCC_BBB: the broken one emits it again. */
    store_remove_exchange(w.store, "counter");
    write_lib_counter(&w, true);
    CHECK(wait_for(&w, rejected_now, NULL, 10));
    CHECK(wait_for(&w, ask_is, "3000", 10));
    CHECK(!pair_stored(&w, "CCC_BBB"));
    CHECK(status_of(&w, "counter", &st));
    CHECK_INT_EQ(st.state, BOARD_POLLING);
    if (!strstr(st.reason, "new version rejected") || !strstr(st.reason, "markets broke")) {
        CHECK_STR_EQ(st.reason, "new version rejected (... markets broke ...)");
    }
    CHECK(!strchr(st.reason, '\n'));

    write_lib_counter(&w, false);
    CHECK(wait_for(&w, pair_stored, "CCC_BBB", 10));
    CHECK(status_of(&w, "counter", &st));
    CHECK(!st.rejected);
    world_stop(&w);
}

static bool derived_stored(struct world *w, void *arg)
{
    return store_get(w->store, "deriver", "DDD_EEE", arg) == 0;
}

/* While a new version's emits are held, x.store still reads the shared
 * store: a derived operator's markets() sees the other exchanges. */
static void test_held_version_reads_the_store(void)
{
    struct world w;
    struct ticker t;
    char path[160];

    world_start(&w, NULL);
    write_operator(&w, "counter", counter_body("1000"));
    world_run_registry(&w);
    CHECK(wait_for(&w, ask_is, "1000", 10));
    snprintf(path, sizeof path, "%s/deriver.lua", w.ops);
    write_file(path, "return { name = 'deriver', spec = 1, poll_every = 0.2,\n"
                     "  markets = function(x)\n"
                     "    local t = x.store.get('counter', 'AAA_BBB')\n"
                     "    local ask = t and t.ask or '5'\n"
                     "    x.emit{ base = 'DDD', quote = 'EEE', bid = '1', ask = ask }\n"
                     "    return {}\n"
                     "  end,\n"
                     "  poll = function(x) end }\n");
    CHECK(wait_for(&w, derived_stored, &t, 10));
    CHECK_STR_EQ(t.ask, "1000");
    world_stop(&w);
}

static bool numbers_stored(struct world *w, void *arg)
{
    return store_get(w->store, "numbers", "AAA_BBB", arg) == 0;
}

/* x.json.decode(text, {numbers = "text"}) keeps the exchange's own number
 * text (a plain decode renders 472556.000000 as 472556); strings, nesting,
 * negative and exponent forms are kept too, a bad option is an error. */
static void test_json_numbers_as_text(void)
{
    struct world w;
    struct ticker t;

    world_start(&w, NULL);
    write_operator(&w, "numbers",
                   "    local text = '{\"b\":472556.000000,\"a\":\"472557.5\",'\n"
                   "      .. '\"q\":[-0.50,1e2,true,null,\"x\\\\\"9\"]}'\n"
                   "    local d = x.json.decode(text, { numbers = 'text' })\n"
                   "    assert(d.q[1] == '-0.50' and d.q[2] == '1e2' and d.q[3] == true, d.q[1])\n"
                   "    assert(d.q[5] == 'x\"9')\n"
                   "    assert(x.json.decode(text).b == 472556)\n"
                   "    assert(not pcall(x.json.decode, text, { numbers = 'float' }))\n"
                   "    assert(not pcall(x.json.decode, '[1-2]', { numbers = 'text' }))\n"
                   "    x.emit{ base = 'AAA', quote = 'BBB', bid = d.b, ask = d.a }");
    world_run_registry(&w);
    CHECK(wait_for(&w, numbers_stored, &t, 10));
    CHECK_STR_EQ(t.bid, "472556.000000");
    CHECK_STR_EQ(t.ask, "472557.5");
    world_stop(&w);
}

static bool batched_twice(struct world *w, void *arg)
{
    return w->batches >= 2;
}

/* One emit call is one batch: x.emit_many of five tickers reaches the
 * engine as one on_batch of five, an x.emit as one of one, and refused
 * emits are in neither. */
static void test_emit_batches(void)
{
    struct world w;
    world_start(&w, NULL);
    write_operator(&w, "batchy",
                   "    if x.state.done then return end\n"
                   "    x.state.done = true\n"
                   "    local list = {}\n"
                   "    for i = 1, 5 do\n"
                   "      list[i] = { base = 'A' .. i, quote = 'USD', bid = '1', ask = '2' }\n"
                   "    end\n"
                   "    list[6] = { base = 'BAD', quote = 'USD', bid = '3', ask = '2' }\n"
                   "    local ok, bad = x.emit_many(list)\n"
                   "    assert(ok == 5 and bad == 1)\n"
                   "    assert(x.emit{ base = 'A1', quote = 'USD', bid = '1', ask = '3' })");
    world_run_registry(&w);
    CHECK(wait_for(&w, batched_twice, NULL, 10));
    CHECK_INT_EQ(w.batches, 2);
    CHECK_INT_EQ(w.batch_sizes[1], 5);
    CHECK_INT_EQ(w.batch_sizes[2], 1);
    CHECK_INT_EQ(w.batch_changed, 6);
    world_stop(&w);
}

static bool failed_twice(struct world *w, void *arg)
{
    struct board_status st;
    return status_of(w, arg, &st) && st.errors >= 2;
}

/* A poll that would spin for seconds is stopped at its wall-clock limit
 * (deadlines.task_ms), well under the 2 s backstop, and pcall cannot hide
 * it; the limit is the operator's own, within the engine's cap. */
static void test_task_deadline(void)
{
    struct world w;
    char path[160];

    world_start(&w, NULL);
    snprintf(path, sizeof path, "%s/spinner.lua", w.ops);
    write_file(path, "return { name = 'spinner', spec = 1, poll_every = 0.05,\n"
                     "  deadlines = { task_ms = 50 },\n"
                     "  poll = function(x)\n"
                     "    local t = os.clock()\n"
                     "    pcall(function() while os.clock() - t < 5 do end end)\n"
                     "    while os.clock() - t < 5 do end\n"
                     "  end }\n");
    snprintf(path, sizeof path, "%s/greedy.lua", w.ops);
    write_file(path, "return { name = 'greedy', spec = 1, deadlines = { task_ms = 60000 },\n"
                     "  poll = function(x) end }\n");
    world_run_registry(&w);
    CHECK(wait_for(&w, failed_twice, "spinner", 10));
    struct board_status st;
    CHECK(status_of(&w, "spinner", &st));
    CHECK(strstr(st.reason, "time budget exceeded") != NULL);
    CHECK(st.callback_max_ms >= 50 && st.callback_max_ms < 50 + 450);
    /* Over the cap: the file is refused with the limits in the reason. */
    CHECK(status_of(&w, "greedy", &st));
    CHECK_INT_EQ(st.state, BOARD_ERROR);
    CHECK(strstr(st.reason, "deadlines: message_ms must be 1..1000 and task_ms 10..10000") != NULL);
    world_stop(&w);
}

static bool refusing(struct world *w, void *arg)
{
    struct board_status st;
    return status_of(w, arg, &st) && st.state == BOARD_DEGRADED &&
           strstr(st.reason, "most emits refused") != NULL;
}

static uint64_t rejects_of(struct world *w, const char *exchange, enum ticker_reject why)
{
    struct store_exchange_stats stats;
    return store_exchange_stats(w->store, exchange, &stats) == 0 ? stats.rejects[why] : 0;
}

/* Every refusal is counted by its reason where the API shows them (the
 * store's per-exchange counters): max_pairs, filtered and unmapped as well
 * as bad numbers and impossible timestamps, which are refused; and an
 * operator most of whose emits are refused says so in its state (it used
 * to show polling with nothing counted while 15 of 20 emits were refused). */
static void test_refusals_counted(void)
{
    struct world w;
    char path[160];

    world_start(&w, "picky = { pairs = { 'A1_USD' } },");
    snprintf(path, sizeof path, "%s/capped.lua", w.ops);
    write_file(path,
               "return { name = 'capped', spec = 1, poll_every = 0.2, max_pairs = 5,\n"
               "  poll = function(x)\n"
               "    local list = {}\n"
               "    for i = 1, 20 do\n"
               "      list[i] = { base = 'A' .. i, quote = 'USD', bid = '1', ask = '2' }\n"
               "    end\n"
               "    local ok, bad = x.emit_many(list)\n"
               "    assert(ok == 5 and bad == 15, ok .. ' ' .. bad)\n"
               "    if x.state.done then return end\n"
               "    x.state.done = true\n"
               "    local function why(t)\n"
               "      t.base, t.quote = t.base or 'A1', t.quote or 'USD'\n"
               "      t.bid, t.ask = t.bid or '1', t.ask or '2'\n"
               "      local ok, reason = x.emit(t)\n"
               "      return ok and 'stored' or reason\n"
               "    end\n"
               "    local got = table.concat({ why{ bid = '1e2', ask = '200' },\n"
               "      why{ ts = -1 }, why{ ts = 9e15 }, why{ ts = x.now() + 2 * 86400000 },\n"
               "      why{ ts = 1230767999999 }, why{ ts = 1.5 }, why{ ts = x.now() },\n"
               "      why{ base = 'A6' },\n"
               "      (select(2, x.emit_many{ 'nope' }) == 1 and 'one' or '?') }, ' ')\n"
               "    assert(got == 'bad_number bad_ts bad_ts bad_ts bad_ts bad_ts '\n"
               "      .. 'stored max_pairs one', got)\n"
               "    local ok, why_not = x.emit{ symbol = 'NOPE', bid = '1', ask = '2' }\n"
               "    assert(why_not == 'unmapped', why_not)\n"
               "  end }\n");
    write_operator(&w, "picky",
                   "    assert(select(2, x.emit{ base = 'B1', quote = 'USD', bid = 1, ask = 2 }) "
                   "== 'filtered')\n"
                   "    assert(x.emit{ base = 'A1', quote = 'USD', bid = 1, ask = 2 })");
    world_run_registry(&w);
    CHECK(wait_for(&w, refusing, "capped", 15));
    struct board_status st;
    CHECK(status_of(&w, "capped", &st));
    if (!strstr(st.reason, "max_pairs")) {
        CHECK_STR_EQ(st.reason, "most emits refused: ... (max_pairs ...)");
    }
    CHECK_INT_EQ(st.errors, 0);
    CHECK(rejects_of(&w, "capped", TICKER_REJECT_MAX_PAIRS) >= 15);
    CHECK_INT_EQ(rejects_of(&w, "capped", TICKER_REJECT_BAD_TS), 5);
    CHECK_INT_EQ(rejects_of(&w, "capped", TICKER_REJECT_BAD_NUMBER), 1);
    CHECK_INT_EQ(rejects_of(&w, "capped", TICKER_REJECT_NOT_A_TABLE), 1);
    CHECK_INT_EQ(rejects_of(&w, "capped", TICKER_REJECT_UNMAPPED), 1);
    CHECK(rejects_of(&w, "picky", TICKER_REJECT_FILTERED) >= 1);
    /* Filtered emits are the config's choice: they never make a state. */
    CHECK(status_of(&w, "picky", &st));
    CHECK_INT_EQ(st.state, BOARD_POLLING);
    struct ticker t;
    CHECK_INT_EQ(store_get(w.store, "capped", "A1_USD", &t), 0);
    CHECK_STR_EQ(t.ask, "2");
    world_stop(&w);
}

static bool failed_with(struct world *w, void *arg)
{
    const char *const *want = arg;
    struct board_status st;
    return status_of(w, want[0], &st) && st.errors >= 1 && strstr(st.reason, want[1]) != NULL;
}

/* x.http reaches the operator's own hosts on the ports of its own URLs
 * only (it used to reach any port of them, the service's own included);
 * an allow_hosts entry may name another port, and one that is neither
 * "host" nor "host:port" fails the load. */
static void test_host_ports(void)
{
    struct world w;
    char path[160];

    world_start(&w, "walled = { rest = fx .. '/binance' },\n"
                    "opened = { rest = fx .. '/binance', allow_hosts = { '127.0.0.1:1' } },");
    const char *probe = "    local s, err = x.http.get(x.op.rest .. '/api/v3/ping')\n"
                        "    assert(s, err)\n"
                        "    s, err = x.http.get('http://127.0.0.1:1/x')\n"
                        "    error('port 1: ' .. tostring(err), 0)";
    write_operator(&w, "walled", probe);
    write_operator(&w, "opened", probe);
    snprintf(path, sizeof path, "%s/sloppy.lua", w.ops);
    write_file(path, "return { name = 'sloppy', spec = 1, allow_hosts = { 'http://x.com' },\n"
                     "  poll = function(x) end }\n");
    world_run_registry(&w);
    const char *walled[] = {"walled", "port 1: refused"};
    const char *opened[] = {"opened", "port 1: network"};
    CHECK(wait_for(&w, failed_with, walled, 10));
    CHECK(wait_for(&w, failed_with, opened, 10));
    struct board_status st;
    CHECK(status_of(&w, "sloppy", &st));
    if (!strstr(st.reason, "allow_hosts[1]: 'http://x.com' is not \"host\" or \"host:port\"")) {
        CHECK_STR_EQ(st.reason, "allow_hosts[1]: 'http://x.com' is not ...");
    }
    world_stop(&w);
}

int main(void)
{
    log_setup(LOG_ERROR, false);
    test_refusals_counted();
    test_host_ports();
    test_task_deadline();
    test_emit_batches();
    test_recorded_data();
    test_sandbox_isolation();
    test_reload();
    test_reload_lib_and_held();
    test_json_numbers_as_text();
    test_held_version_reads_the_store();
    test_faults();
    test_budget_and_hosts();
    return CHECK_DONE();
}
