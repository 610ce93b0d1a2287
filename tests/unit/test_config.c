/*
 * config: the shipped configs load; every default, override and check holds;
 * errors name the file, the key path and the reason; the sandbox stops loops
 * and memory bombs; options become JSON; dumps never show a token; the docs
 * list every key.
 *
 * Sample files live in tests/unit/config/; one-off cases are written to a
 * temporary directory as case.lua.
 */
#include "check.h"
#include "config/config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHECK_HAS(hay, needle)                                                                     \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (h_ && strstr(h_, n_)) {                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            CHECK_FAIL_("\"%s\" contains \"%s\"", h_ ? h_ : "(null)", n_);                         \
        }                                                                                          \
    } while (0)

#define CHECK_LACKS(hay, needle)                                                                   \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (h_ && !strstr(h_, n_)) {                                                               \
            check_passed++;                                                                        \
        } else {                                                                                   \
            CHECK_FAIL_("\"%s\" lacks \"%s\"", h_ ? h_ : "(null)", n_);                            \
        }                                                                                          \
    } while (0)

static char src_dir[1024];
static char tmp_dir[256];
static char case_path[300];
static char err[1024];

static const char *in_src(const char *rel)
{
    static char path[4][1300];
    static int next;
    char *p = path[next++ % 4];

    snprintf(p, sizeof(path[0]), "%s/%s", src_dir, rel);
    return p;
}

static void write_case(const char *src)
{
    FILE *f = fopen(case_path, "w");

    fputs(src, f);
    fclose(f);
}

/* Load a file that must load; NULL (and a failed check) otherwise. */
static struct config *load_ok(const char *path)
{
    struct config *cfg = NULL;
    int rc = config_load(path, &cfg, err, sizeof(err));

    if (rc != 0) {
        fprintf(stderr, "unexpected failure: %s\n", err);
    }
    CHECK_INT_EQ(rc, 0);
    return cfg;
}

static struct config *load_src(const char *src)
{
    write_case(src);
    return load_ok(case_path);
}

/* Load a file that must fail; returns the message. */
static const char *load_fail(const char *path)
{
    struct config *cfg = (struct config *)1;

    CHECK_INT_EQ(config_load(path, &cfg, err, sizeof(err)), -1);
    CHECK(cfg == NULL);
    return err;
}

/* A one-off source must fail with "<case path>: <want>". */
static void expect_error(const char *src, const char *want)
{
    char full[1400];

    write_case(src);
    load_fail(case_path);
    /* Lua's own messages read "<file>:<line>: ...", ours "<file>: <key>: ...". */
    snprintf(full, sizeof(full), "%s:%s%s", case_path, isdigit((unsigned char)want[0]) ? "" : " ",
             want);
    CHECK_HAS(err, full);
}

static void clear_env(void)
{
    static const char *const vars[] = {"PORT",           "API_AUTHENTICATION_TOKEN",
                                       "REDIS_URL",      "EXPLORER_CONFIG",
                                       "LISTEN",         "PORT_FILE",
                                       "ROLE",           "LOG_LEVEL",
                                       "LOG_FORMAT",     "EXPLORER_ADMIN_TOKEN",
                                       "EXPLORER_PROXY", "FAKEX_URL",
                                       "FAKEX_WS_URL",   NULL};

    for (int i = 0; vars[i]; i++) {
        unsetenv(vars[i]);
    }
}

static void test_shipped_explorer(void)
{
    struct config *cfg = load_ok(in_src("config/explorer.lua"));
    char token_file[1300];

    if (!cfg) {
        return;
    }
    /* Every default of DESIGN §6. */
    CHECK_STR_EQ(cfg->listen, "0.0.0.0:8080");
    CHECK_STR_EQ(cfg->listen_host, "0.0.0.0");
    CHECK_INT_EQ(cfg->listen_port, 8080);
    CHECK(cfg->port_file == NULL);
    CHECK(cfg->auth);
    CHECK_INT_EQ(cfg->n_tokens, 0);
    snprintf(token_file, sizeof(token_file), "%s/config/explorer.token", src_dir);
    CHECK_STR_EQ(cfg->token_file, token_file);
    CHECK_INT_EQ(cfg->n_admin_tokens, 0);
    CHECK_INT_EQ(cfg->n_public_paths, 6);
    if (cfg->n_public_paths == 6) {
        CHECK_STR_EQ(cfg->public_paths[0], "/healthz");
        CHECK_STR_EQ(cfg->public_paths[1], "/readyz");
        CHECK_STR_EQ(cfg->public_paths[2], "/metrics");
        CHECK_STR_EQ(cfg->public_paths[3], "/");
        CHECK_STR_EQ(cfg->public_paths[4], "/docs");
        CHECK_STR_EQ(cfg->public_paths[5], "/openapi.json");
    }
    CHECK_INT_EQ(cfg->n_allowed_origins, 0);
    CHECK_INT_EQ(cfg->limits.max_header_bytes, 8192);
    CHECK_INT_EQ(cfg->limits.max_url_bytes, 4096);
    CHECK_INT_EQ(cfg->limits.max_per_ip, 256);
    CHECK_INT_EQ(cfg->limits.max_connections, 10000);
    CHECK_INT_EQ(cfg->limits.head_timeout_ms, 2000);
    CHECK_INT_EQ(cfg->limits.keepalive_timeout_ms, 5000);
    CHECK_INT_EQ(cfg->limits.n_trusted_proxies, 0);
    CHECK(!cfg->access_log);
    CHECK_STR_EQ(cfg->operators_dir, "operators");
    CHECK(cfg->ca_file == NULL);
    CHECK_STR_EQ(cfg->store, "memory");
    CHECK(cfg->redis.host == NULL);
    CHECK_INT_EQ(cfg->role, CONFIG_ROLE_ALL);
    CHECK(cfg->node_id && strchr(cfg->node_id, '-'));
    CHECK_INT_EQ(cfg->lease_ttl_ms, 15000);
    CHECK_INT_EQ(cfg->stale_after_ms, 60000);
    CHECK_DBL_NEAR(cfg->outlier_pct, 5, 0);
    CHECK_INT_EQ(cfg->ws.max_connections, 10000);
    CHECK_INT_EQ(cfg->ws.max_per_ip, 256);
    CHECK_INT_EQ(cfg->ws.max_subs, 64);
    CHECK_INT_EQ(cfg->ws.max_queue_bytes, 1048576);
    CHECK_INT_EQ(cfg->ws.snapshot_chunk, 500);
    CHECK_INT_EQ(cfg->ws.max_message_bytes, 65536);
    CHECK_INT_EQ(cfg->compat.listener_max_s, 3000);
    CHECK_INT_EQ(cfg->log_level, CONFIG_LOG_INFO);
    CHECK_INT_EQ(cfg->log_format, CONFIG_LOG_TEXT);
    CHECK(cfg->proxy == NULL);

    /* The operators it names, sorted, with every per-operator value unset. */
    CHECK_INT_EQ(cfg->n_operators, 3);
    if (cfg->n_operators == 3) {
        const struct config_operator *op = &cfg->operators[0];

        CHECK_STR_EQ(cfg->operators[0].name, "binance");
        CHECK_STR_EQ(cfg->operators[1].name, "coinbase");
        CHECK_STR_EQ(cfg->operators[2].name, "kraken");
        CHECK(op->enabled);
        CHECK(op->rest == NULL && op->ws == NULL);
        CHECK(op->poll_every < 0);
        CHECK_INT_EQ(op->n_pairs, 0);
        CHECK_INT_EQ(op->stale_after_ms, -1);
        CHECK_INT_EQ(op->budget.requests, -1);
        CHECK(op->budget.per < 0);
        CHECK_INT_EQ(op->n_allow_hosts, 0);
        CHECK_INT_EQ(op->max_frame_bytes, -1);
        CHECK_STR_EQ(op->options_json, "{}");
    }
    CHECK(config_operator_find(cfg, "kraken") == &cfg->operators[2]);
    CHECK(config_operator_find(cfg, "binance") == &cfg->operators[0]);
    CHECK(config_operator_find(cfg, "bitfinex") == NULL);
    config_free(cfg);

    /* The variables the shipped file reads itself. */
    setenv("LISTEN", "127.0.0.1:0", 1);
    setenv("EXPLORER_ADMIN_TOKEN", "adm-secret", 1);
    cfg = load_ok(in_src("config/explorer.lua"));
    if (cfg) {
        CHECK_INT_EQ(cfg->listen_port, 0);
        CHECK_INT_EQ(cfg->n_admin_tokens, 1);
        config_free(cfg);
    }
    clear_env();
}

static void test_shipped_replay(void)
{
    struct config *cfg = load_ok(in_src("config/replay.lua"));

    if (!cfg) {
        return;
    }
    CHECK_STR_EQ(cfg->listen, "127.0.0.1:8080");
    CHECK_INT_EQ(cfg->n_tokens, 0);
    CHECK_STR_EQ(cfg->replay_url, "http://127.0.0.1:8090");
    /* Every operator replays every pair it has recordings for: no
     * allow-list but Bitstamp's, whose one recorded ticker is all it has;
     * and no URL overrides (replay_url points them all at the fake
     * exchange). */
    for (size_t i = 0; i < cfg->n_operators; i++) {
        const struct config_operator *op = &cfg->operators[i];
        if (strcmp(op->name, "bitstamp") == 0) {
            CHECK_INT_EQ(op->n_pairs, 1);
            CHECK_STR_EQ(op->pairs[0], "BTC_USDT");
        } else {
            CHECK_INT_EQ(op->n_pairs, 0);
        }
        CHECK(op->rest == NULL && op->ws == NULL);
    }
    config_free(cfg);

    /* A TLS fake exchange. */
    setenv("FAKEX_URL", "https://127.0.0.1:9443", 1);
    setenv("PORT_FILE", "/tmp/rx.port", 1);
    cfg = load_ok(in_src("config/replay.lua"));
    if (cfg) {
        CHECK_STR_EQ(cfg->replay_url, "https://127.0.0.1:9443");
        CHECK_STR_EQ(cfg->port_file, "/tmp/rx.port");
        config_free(cfg);
    }
    clear_env();
}

static void test_every_key_set(void)
{
    struct config *cfg = load_ok(in_src("tests/unit/config/good_full.lua"));
    const struct config_operator *op;

    if (!cfg) {
        return;
    }
    CHECK_STR_EQ(cfg->listen, "127.0.0.1:9001");
    CHECK_INT_EQ(cfg->listen_port, 9001);
    CHECK_STR_EQ(cfg->port_file, "run/explorer.port");
    CHECK(!cfg->auth);
    CHECK_INT_EQ(cfg->n_tokens, 2);
    CHECK_STR_EQ(cfg->tokens[1], "tok-two");
    CHECK_STR_EQ(cfg->token_file, "/tmp/rx.token");
    CHECK_INT_EQ(cfg->n_admin_tokens, 1);
    CHECK_INT_EQ(cfg->n_public_paths, 2);
    CHECK_STR_EQ(cfg->public_paths[1], "/status");
    CHECK_INT_EQ(cfg->n_allowed_origins, 2);
    CHECK_STR_EQ(cfg->allowed_origins[0], "https://example.com");
    CHECK_INT_EQ(cfg->limits.max_header_bytes, 16384);
    CHECK_INT_EQ(cfg->limits.max_url_bytes, 4096);
    CHECK_INT_EQ(cfg->limits.max_per_ip, 10);
    CHECK_INT_EQ(cfg->limits.max_connections, 100);
    CHECK_INT_EQ(cfg->limits.head_timeout_ms, 500);
    CHECK_INT_EQ(cfg->limits.keepalive_timeout_ms, 15000);
    CHECK_INT_EQ(cfg->limits.n_trusted_proxies, 2);
    CHECK_STR_EQ(cfg->limits.trusted_proxies[0], "10.0.0.0/8");
    CHECK(cfg->access_log);
    CHECK_STR_EQ(cfg->operators_dir, "/opt/rx/operators");
    CHECK_STR_EQ(cfg->ca_file, "/etc/rx/ca.pem");
    CHECK_STR_EQ(cfg->store, "redis://rx:p%40ss@redis.local:6380/2");
    CHECK_STR_EQ(cfg->redis.host, "redis.local");
    CHECK_INT_EQ(cfg->redis.port, 6380);
    CHECK_INT_EQ(cfg->redis.db, 2);
    CHECK_STR_EQ(cfg->redis.user, "rx");
    CHECK_STR_EQ(cfg->redis.password, "p@ss");
    CHECK_INT_EQ(cfg->role, CONFIG_ROLE_SCRAPER);
    CHECK_STR_EQ(cfg->node_id, "node-a");
    CHECK_INT_EQ(cfg->lease_ttl_ms, 30000);
    CHECK_INT_EQ(cfg->stale_after_ms, 120000);
    CHECK_DBL_NEAR(cfg->outlier_pct, 2.5, 0);
    CHECK_INT_EQ(cfg->ws.max_connections, 50);
    CHECK_INT_EQ(cfg->ws.max_per_ip, 5);
    CHECK_INT_EQ(cfg->ws.max_subs, 8);
    CHECK_INT_EQ(cfg->ws.max_queue_bytes, 65536);
    CHECK_INT_EQ(cfg->ws.snapshot_chunk, 100);
    CHECK_INT_EQ(cfg->ws.max_message_bytes, 4096);
    CHECK_INT_EQ(cfg->compat.listener_max_s, 60);
    CHECK_INT_EQ(cfg->log_level, CONFIG_LOG_DEBUG);
    CHECK_INT_EQ(cfg->log_format, CONFIG_LOG_JSON);
    CHECK_STR_EQ(cfg->proxy, "http://proxy.local:3128");

    op = config_operator_find(cfg, "kraken");
    CHECK(op != NULL);
    if (op) {
        CHECK(!op->enabled);
        CHECK_STR_EQ(op->rest, "https://mirror.example:8443/kraken");
        CHECK_STR_EQ(op->ws, "wss://mirror.example/kraken/ws");
        CHECK_DBL_NEAR(op->poll_every, 2.5, 0);
        CHECK_INT_EQ(op->n_pairs, 3);
        if (op->n_pairs == 3) {
            CHECK_STR_EQ(op->pairs[0], "BTC_USDT");
            CHECK_STR_EQ(op->pairs[1], "ETH_USD");
            CHECK_STR_EQ(op->pairs[2], "XBT_EUR");
        }
        CHECK_INT_EQ(op->stale_after_ms, 5000);
        CHECK_INT_EQ(op->budget.requests, 20);
        CHECK_DBL_NEAR(op->budget.per, 60, 0);
        CHECK_INT_EQ(op->n_allow_hosts, 3);
        if (op->n_allow_hosts == 3) {
            CHECK_STR_EQ(op->allow_hosts[0], "futures.example.com");
            CHECK_STR_EQ(op->allow_hosts[1], "[::1]");
            CHECK_STR_EQ(op->allow_hosts[2], "feeds.example.com:8443");
        }
        CHECK_INT_EQ(op->max_frame_bytes, 262144);
        CHECK_STR_EQ(op->options_json,
                     "{\"channels\":[\"ticker\",\"trade\"],\"depth\":10,\"private\":false}");
    }
    op = config_operator_find(cfg, "binance");
    CHECK(op && op->enabled && op->rest == NULL);
    config_free(cfg);
}

static void test_env_overrides(void)
{
    struct config *cfg;

    setenv("PORT", "9090", 1);
    setenv("API_AUTHENTICATION_TOKEN", " alpha , beta,,gamma , ", 1);
    setenv("REDIS_URL", "redis://:pw@cache:6381/3", 1);
    cfg = load_src("return { listen = '10.0.0.1:80', tokens = { 'from-file' } }");
    if (cfg) {
        CHECK_STR_EQ(cfg->listen, "10.0.0.1:9090");
        CHECK_STR_EQ(cfg->listen_host, "10.0.0.1");
        CHECK_INT_EQ(cfg->listen_port, 9090);
        CHECK_INT_EQ(cfg->n_tokens, 3);
        if (cfg->n_tokens == 3) {
            CHECK_STR_EQ(cfg->tokens[0], "alpha");
            CHECK_STR_EQ(cfg->tokens[1], "beta");
            CHECK_STR_EQ(cfg->tokens[2], "gamma");
        }
        CHECK_STR_EQ(cfg->store, "redis://:pw@cache:6381/3");
        CHECK_STR_EQ(cfg->redis.host, "cache");
        CHECK_INT_EQ(cfg->redis.port, 6381);
        CHECK_INT_EQ(cfg->redis.db, 3);
        CHECK(cfg->redis.user == NULL);
        CHECK_STR_EQ(cfg->redis.password, "pw");
        config_free(cfg);
    }
    clear_env();

    /* IPv6 keeps its brackets; a blank token list and empty values are unset. */
    setenv("PORT", "0", 1);
    setenv("API_AUTHENTICATION_TOKEN", " , ", 1);
    setenv("REDIS_URL", "", 1);
    cfg = load_src("return { listen = '[::1]:80', tokens = { 'from-file' } }");
    if (cfg) {
        CHECK_STR_EQ(cfg->listen, "[::1]:0");
        CHECK_STR_EQ(cfg->listen_host, "::1");
        CHECK_INT_EQ(cfg->n_tokens, 1);
        CHECK_STR_EQ(cfg->store, "memory");
        config_free(cfg);
    }
    clear_env();

    /* Redis defaults and a Redis store from the environment enabling a role. */
    setenv("REDIS_URL", "redis://r", 1);
    cfg = load_src("return { role = 'api' }");
    if (cfg) {
        CHECK_INT_EQ(cfg->redis.port, 6379);
        CHECK_INT_EQ(cfg->redis.db, 0);
        CHECK_INT_EQ(cfg->role, CONFIG_ROLE_API);
        config_free(cfg);
    }
    clear_env();

    setenv("PORT", "80a", 1);
    expect_error("return {}", "$PORT: '80a' is not a port number (0 to 65535)");
    setenv("PORT", "65536", 1);
    expect_error("return {}", "$PORT: '65536' is not a port number");
    clear_env();
    setenv("API_AUTHENTICATION_TOKEN", "a,b,a", 1);
    expect_error("return {}", "$API_AUTHENTICATION_TOKEN[3]: same value as item 1");
    {
        static char many[10001 * 2 + 1];

        for (int i = 0; i < 10001; i++) {
            many[2 * i] = 'a';
            many[2 * i + 1] = ',';
        }
        setenv("API_AUTHENTICATION_TOKEN", many, 1);
        expect_error("return {}", "$API_AUTHENTICATION_TOKEN: more than 10000 items");
    }
    setenv("API_AUTHENTICATION_TOKEN", "ok,bad\001x", 1);
    expect_error("return {}", "$API_AUTHENTICATION_TOKEN[2]: a token may only hold printable");
    clear_env();
    setenv("REDIS_URL", "http://secretpw@x", 1);
    expect_error("return {}", "$REDIS_URL: expected \"memory\" or redis://");
    CHECK_LACKS(err, "secretpw");
    clear_env();

    /* env() inside the file: value, default, nil default, empty = unset. */
    setenv("RX_TEST_HOST", "1.2.3.4:5", 1);
    setenv("RX_TEST_EMPTY", "", 1);
    cfg = load_src("return { listen = env('RX_TEST_HOST', 'x'),\n"
                   "  port_file = env('RX_TEST_UNSET'),\n"
                   "  node_id = env('RX_TEST_EMPTY', 'fallback'),\n"
                   "  lease_ttl_ms = tonumber(env('RX_TEST_UNSET', '20000')) }");
    if (cfg) {
        CHECK_STR_EQ(cfg->listen, "1.2.3.4:5");
        CHECK(cfg->port_file == NULL);
        CHECK_STR_EQ(cfg->node_id, "fallback");
        CHECK_INT_EQ(cfg->lease_ttl_ms, 20000);
        config_free(cfg);
    }
    unsetenv("RX_TEST_HOST");
    unsetenv("RX_TEST_EMPTY");

    /* EXPLORER_CONFIG picks the file; main passes it to config_load. */
    CHECK_STR_EQ(config_default_path(), "config/explorer.lua");
    setenv("EXPLORER_CONFIG", "/etc/rx.lua", 1);
    CHECK_STR_EQ(config_default_path(), "/etc/rx.lua");
    setenv("EXPLORER_CONFIG", "", 1);
    CHECK_STR_EQ(config_default_path(), "config/explorer.lua");
    clear_env();
}

struct bad_case {
    const char *src;
    const char *want; /* after "<file>: " */
};

static const struct bad_case bad_cases[] = {
    /* Formats. */
    {"return { listen = 'nohost' }", "listen: 'nohost' is not host:port"},
    {"return { listen = '0.0.0.0:70000' }", "listen: '0.0.0.0:70000' is not host:port with a port"},
    {"return { listen = ':8080' }", "listen: ':8080' is not host:port"},
    {"return { listen = '::1:80' }", "listen: '::1:80': write an IPv6 address in brackets"},
    {"return { store = 'postgres://db' }", "store: expected \"memory\" or redis://"},
    {"return { store = 'rediss://h:1/0' }", "store: TLS to Redis is not supported"},
    {"return { store = 'redis://h:99999/0' }", "store: malformed Redis host or port"},
    {"return { store = 'redis://h:1/zero' }", "store: the Redis database must be a number"},
    {"return { store = 'redis://secretpw@h:1/0' }", "store: write Redis credentials as"},
    {"return { role = 'master' }", "role: 'master' is not one of all, api, scraper"},
    {"return { role = 'api' }", "role: role 'api' needs a Redis store"},
    {"return { log_level = 'warning' }",
     "log_level: 'warning' is not one of debug, info, warn, error (did you mean 'warn'?)"},
    {"return { log_format = 'xml' }", "log_format: 'xml' is not one of text, json"},
    {"return { node_id = 'a b' }", "node_id: 'a b': use at most 128 letters"},
    {"return { public_paths = { 'healthz' } }", "public_paths[1]: 'healthz' is not a path"},
    {"return { allowed_origins = { 'https://a.com/x' } }",
     "allowed_origins[1]: 'https://a.com/x': an origin is scheme://host[:port], without a path"},
    {"return { allowed_origins = { 'a.com' } }", "allowed_origins[1]: 'a.com' is not an origin"},
    {"return { proxy = 'socks://u:secretpw@h:1' }",
     "proxy: expected an http:// or https:// proxy URL"},
    {"return { tokens = { 'a b' } }",
     "tokens[1]: a token may only hold printable ASCII characters, no spaces"},
    {"return { tokens = { 'x', 'y', 'x' } }", "tokens[3]: same value as tokens[1]"},
    {"return { operators = { Binance = {} } }",
     "operators.Binance: an operator name is 1 to 64 of a-z, 0-9 and _"},
    {"return { operators = { ['my exchange'] = {} } }", "operators[\"my exchange\"]: an operator"},
    {"return { operators = { { rest = 'x' } } }",
     "operators: keys are operator names, e.g. binance = { ... }; found a number key"},
    {"return { operators = { binance = true } }", "operators.binance: expected table, got boolean"},
    {"return { operators = { binance = { pairs = { 'BTCUSDT' } } } }",
     "operators.binance.pairs[1]: 'BTCUSDT' is not a pair: write BASE_QUOTE, BASE/QUOTE"},
    {"return { operators = { binance = { pairs = { 'btc-usdt', 'BTC/USDT' } } } }",
     "operators.binance.pairs[2]: same value as pairs[1]"},
    {"return { operators = { binance = { pairs = { 'BTC_USDT_X' } } } }",
     "operators.binance.pairs[1]: 'BTC_USDT_X' is not a pair"},
    {"return { operators = { binance = { rest = 'ftp://x' } } }",
     "operators.binance.rest: 'ftp://x' is not an http:// or https:// URL"},
    {"return { operators = { binance = { rest = 'https://' } } }",
     "operators.binance.rest: 'https://': malformed host or port"},
    {"return { operators = { binance = { ws = 'https://x' } } }",
     "operators.binance.ws: 'https://x' is not a ws:// or wss:// URL"},
    {"return { operators = { binance = { ws = 'wss://x y' } } }",
     "operators.binance.ws: a URL may not contain spaces"},
    {"return { operators = { binance = { allow_hosts = { 'https://x.com' } } } }",
     "operators.binance.allow_hosts[1]: 'https://x.com' is not \"host\" or \"host:port\""},
    {"return { operators = { binance = { allow_hosts = { 'x.com:0' } } } }",
     "operators.binance.allow_hosts[1]: 'x.com:0' is not \"host\" or \"host:port\""},
    {"return { operators = { binance = { budget = { requests = 5 } } } }",
     "operators.binance.budget: set both requests and per"},
    {"return { operators = { binance = { poll_every = 0.01 } } }",
     "operators.binance.poll_every: 0.01 is out of range (0.1 to 86400)"},
    {"return { operators = { binance = { options = 'depth=5' } } }",
     "operators.binance.options: expected table, got string"},
    /* Types and ranges. */
    {"return { lease_ttl_ms = 10 }", "lease_ttl_ms: 10 is out of range (1000 to 3600000)"},
    {"return { lease_ttl_ms = 1.5 }", "lease_ttl_ms: expected integer, got 1.5"},
    {"return { lease_ttl_ms = '15000' }",
     "lease_ttl_ms: expected integer, got string (env() returns strings: convert it)"},
    {"return { outlier_pct = 0 }", "outlier_pct: 0 is out of range (0.01 to 100)"},
    {"return { outlier_pct = 0/0 }", "outlier_pct: NaN is not a number here"},
    {"return { auth = 'yes' }", "auth: expected boolean, got string"},
    {"return { tokens = 'abc' }", "tokens: expected a list of strings, got string"},
    {"return { tokens = { x = 'y' } }", "tokens: expected a list of strings, found a named key"},
    {"return { tokens = { 5 } }", "tokens[1]: expected string, got number"},
    {"return { port_file = '' }", "port_file: empty string (leave the key out for its default)"},
    {"return { operators_dir = 'a\\0b' }", "operators_dir: contains a NUL byte"},
    {"return { limits = 5 }", "limits: expected table, got number"},
    {"return { limits = { max_url_bytes = 9000 } }",
     "limits: max_url_bytes (9000) exceeds max_header_bytes (8192)"},
    {"return { limits = { max_per_ip = 20000 } }",
     "limits: max_per_ip (20000) exceeds max_connections (10000)"},
    {"return { ws = { max_per_ip = 20000 } }",
     "ws: max_per_ip (20000) exceeds max_connections (10000)"},
    {"return { limits = { trusted_proxies = { 'proxy.local' } } }",
     "limits.trusted_proxies[1]: 'proxy.local' is not an IP address or address block"},
    {"return { limits = { trusted_proxies = { '10.0.0.0/33' } } }",
     "limits.trusted_proxies[1]: '10.0.0.0/33' is not an IP address"},
    {"return { limits = { trusted_proxies = { '::1/129' } } }",
     "limits.trusted_proxies[1]: '::1/129' is not an IP address"},
    {"return { limits = { trusted_proxies = { '10.0.0.0/' } } }",
     "limits.trusted_proxies[1]: '10.0.0.0/' is not an IP address"},
    {"return { limits = { keepalive_timeout_ms = 50 } }",
     "limits.keepalive_timeout_ms: 50 is out of range (100 to 600000)"},
    {"return { compat = { listener_max_s = 0 } }", "compat.listener_max_s: 0 is out of range"},
    {"local t = {} for i = 1, 10001 do t[i] = 'p' .. i end return { public_paths = t }",
     "public_paths: more than 10000 items"},
    {"return { 'x' }", "unexpected list item [1] (this table takes named keys)"},
    {"return { [true] = 1 }", "unexpected boolean key (this table takes named keys)"},
    /* Unknown keys: at every level, with a suggestion when one is close. */
    {"return { listne = 'x' }", "listne: unknown key (did you mean 'listen'?)"},
    {"return { tokenz = {} }", "tokenz: unknown key (did you mean 'tokens'?)"},
    {"return { Auth = false }", "Auth: unknown key (did you mean 'auth'?)"},
    {"return { max_conn = 1 }", "max_conn: unknown key (see docs/operations.md for the keys)"},
    {"return { ws = { max_conn = 1 } }",
     "ws.max_conn: unknown key (did you mean 'max_connections'?)"},
    {"return { ws = { max_sub = 1 } }", "ws.max_sub: unknown key (did you mean 'max_subs'?)"},
    {"return { compat = { foo = 1 } }", "compat.foo: unknown key (known keys: listener_max_s)"},
    {"return { limits = { max_header = 1 } }",
     "limits.max_header: unknown key (did you mean 'max_header_bytes'?)"},
    {"return { operators = { kraken = { pair = {} } } }",
     "operators.kraken.pair: unknown key (did you mean 'pairs'?)"},
    {"return { operators = { kraken = { budget = { request = 1 } } } }",
     "operators.kraken.budget.request: unknown key (did you mean 'requests'?)"},
    {"return { operators = { kraken = { idle_timeout = 30 } } }",
     "operators.kraken.idle_timeout: unknown key (known keys: enabled, rest, ws, poll_every"},
    /* The alphabetically first unknown key is the one reported. */
    {"return { zeta = 1, alpha = 2, mid = 3 }", "alpha: unknown key"},
    /* options: what JSON cannot hold. */
    {"return { operators = { x = { options = { f = function() end } } } }",
     "operators.x.options.f: a function cannot be handed to the operator"},
    {"local t = { a = {} } t.a.back = t\n"
     "return { operators = { x = { options = t } } }",
     "operators.x.options.a.back: cycle: the table contains itself"},
    {"return { operators = { x = { options = { 1, 2, k = 3 } } } }",
     "operators.x.options: the table mixes list items and named keys"},
    {"return { operators = { x = { options = { list = { [1] = 1, [3] = 3 } } } } }",
     "operators.x.options.list: key 3: a list must have keys 1..n without holes"},
    {"return { operators = { x = { options = { [true] = 1 } } } }",
     "operators.x.options: a boolean key cannot be written as JSON"},
    {"return { operators = { x = { options = { v = 1/0 } } } }",
     "operators.x.options.v: NaN and infinity cannot be written as JSON"},
    {"return { operators = { x = { options = { s = '\\xff' } } } }",
     "operators.x.options.s: string is not valid UTF-8"},
    {"local t = {} for i = 1, 16 do t = { t } end\n"
     "return { operators = { x = { options = t } } }",
     "operators.x.options[1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1]: nested deeper than 16 "
     "levels"},
    {"local a = {} for i = 1, 100 do a[i] = 'xxxxxxxxxx' end\n"
     "local b = {} for i = 1, 100 do b[i] = a end\n"
     "local c = {} for i = 1, 100 do c[i] = b end\n"
     "return { operators = { x = { options = { c = c } } } }",
     "operators.x.options: larger than 1048576 bytes as JSON"},
    /* The sandbox: nothing but env() and the few helpers. */
    {"local f = io.open('/etc/passwd')\nreturn {}", "1: attempt to index a nil value"},
    {"return { x = os.getenv('HOME') }", "1: attempt to index a nil value (global 'os')"},
    {"require('os')\nreturn {}", "1: attempt to call a nil value (global 'require')"},
    {"load('return 1')\nreturn {}", "1: attempt to call a nil value (global 'load')"},
    {"return { listen = ('x'):rep(10) }", "1: attempt to call a nil value (method 'rep')"},
    {"setmetatable({}, {})\nreturn {}", "1: attempt to call a nil value (global 'setmetatable')"},
    {"pcall(error)\nreturn {}", "1: attempt to call a nil value (global 'pcall')"},
    {"string.find('a', 'a')\nreturn {}", "1: attempt to call a nil value (field 'find')"},
    {"return env({})", "1: bad argument #1 to 'env' (string expected, got table)"},
    {"error('need FOO')", "1: need FOO"},
    {"error('bare', 0)", "bare"},
    {"error({})", "error with a table value instead of a message"},
};

static void test_validation(void)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        expect_error(bad_cases[i].src, bad_cases[i].want);
    }
    /* Errors echo no secrets. */
    expect_error("return { store = 'redis://secretpw@h:1/0' }", "store:");
    CHECK_LACKS(err, "secretpw");
    expect_error("return { proxy = 'socks://u:secretpw@h:1' }", "proxy:");
    CHECK_LACKS(err, "secretpw");
    expect_error("return { tokens = { 'my secret' } }", "tokens[1]:");
    CHECK_LACKS(err, "secret");
}

static void test_sample_errors(void)
{
    char want[1400];
    const char *path;

    path = in_src("tests/unit/config/bad_typo_operator.lua");
    snprintf(want, sizeof(want),
             "%s: operators.binance.poll_evry: unknown key (did you mean 'poll_every'?)", path);
    CHECK_STR_EQ(load_fail(path), want);

    path = in_src("tests/unit/config/bad_typo_top.lua");
    snprintf(want, sizeof(want), "%s: stale_after_sm: unknown key (did you mean 'stale_after_ms'?)",
             path);
    CHECK_STR_EQ(load_fail(path), want);

    path = in_src("tests/unit/config/bad_typo_ws.lua");
    snprintf(want, sizeof(want),
             "%s: ws.max_conections: unknown key (did you mean 'max_connections'?)", path);
    CHECK_STR_EQ(load_fail(path), want);

    /* Syntax and runtime errors keep Lua's file:line. */
    path = in_src("tests/unit/config/bad_syntax.lua");
    snprintf(want, sizeof(want), "%s:4: '}' expected (to close '{' at line 1) near 'tokens'", path);
    CHECK_STR_EQ(load_fail(path), want);

    path = in_src("tests/unit/config/bad_runtime.lua");
    snprintf(want, sizeof(want), "%s:4: attempt to index a nil value (field 'missing')", path);
    CHECK_STR_EQ(load_fail(path), want);

    path = in_src("tests/unit/config/bad_not_table.lua");
    snprintf(want, sizeof(want), "%s: the file must return a table, got string", path);
    CHECK_STR_EQ(load_fail(path), want);

    expect_error("local x = 1", "the file must return a table, got nil");

    /* A binary chunk is refused before it runs. */
    expect_error("\033Lua\x54", "attempt to load a binary chunk");

    /* Lua cuts long file names in its messages ("...h/file.lua:2:"); ours are whole. */
    {
        char dir[512], file[600];

        snprintf(dir, sizeof(dir), "%s/a-directory-name-long-enough-to-make-lua-cut-it-short",
                 tmp_dir);
        mkdir(dir, 0700);
        snprintf(file, sizeof(file), "%s/case.lua", dir);
        FILE *f = fopen(file, "w");
        fputs("return {\n  listen = = 1 }\n", f);
        fclose(f);
        snprintf(want, sizeof(want), "%s:2: unexpected symbol near '='", file);
        CHECK_STR_EQ(load_fail(file), want);
        unlink(file);
        rmdir(dir);
    }

    snprintf(want, sizeof(want), "%s/nope.lua", tmp_dir);
    CHECK_HAS(load_fail(want), "nope.lua: cannot open: No such file or directory");
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_sandbox_caps(void)
{
    double t0 = now_s();
    const char *path = in_src("tests/unit/config/bad_loop.lua");
    char want[1400];

    snprintf(want, sizeof(want), "%s:", path);
    load_fail(path);
    CHECK_HAS(err, want);
    CHECK_HAS(err, "instruction limit exceeded (10000000 instructions)");
    CHECK(now_s() - t0 < 20);

    path = in_src("tests/unit/config/bad_memory.lua");
    snprintf(want, sizeof(want), "%s: memory limit exceeded (16 MiB)", path);
    CHECK_STR_EQ(load_fail(path), want);

    expect_error("local s = 'x' while true do s = s .. s end", "memory limit exceeded (16 MiB)");
    /* Lua calls do not use the C stack: deep recursion meets the memory cap. */
    expect_error("local function f() return 1 + f() end\nreturn f()", "memory limit exceeded");
    /* The string metatable offers the restricted functions only. */
    expect_error("return { listen = ('x'):upper() .. ('y'):sub(1) }",
                 "listen: 'Xy' is not host:port");
}

static void test_options(void)
{
    struct config *cfg = load_ok(in_src("tests/unit/config/good_options.lua"));
    const struct config_operator *op;

    if (!cfg) {
        return;
    }
    op = config_operator_find(cfg, "kucoin");
    CHECK(op != NULL);
    if (op) {
        CHECK_STR_EQ(op->options_json,
                     "{\"empty\":{},\"flag\":false,\"levels\":[1,2.5,-3,1e+300],"
                     "\"name\":\"quote\\\" back\\\\ nl\\u000a tab\\u0009 \xc3\xa9\","
                     "\"nested\":{\"a\":{\"b\":{\"c\":true}}}}");
    }
    config_free(cfg);

    /* A shared (not cyclic) subtable is fine; 16 levels, options included, are fine. */
    cfg = load_src("local s = { 1 } local t = {} for i = 1, 14 do t = { t } end\n"
                   "return { operators = { x = { options = { a = s, b = s, d = t } } } }");
    if (cfg) {
        CHECK_STR_EQ(cfg->operators[0].options_json,
                     "{\"a\":[1],\"b\":[1],\"d\":[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]}");
        config_free(cfg);
    }
}

static void test_dump(void)
{
    struct config *cfg;
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    setenv("API_AUTHENTICATION_TOKEN", "env-sekrit-1,env-sekrit-2", 1);
    cfg = load_src("return { tokens = { 'file-sekrit' }, admin_tokens = { 'adm-sekrit' },\n"
                   "  store = 'redis://user:sekrit-pw@h:6379/0',\n"
                   "  proxy = 'http://puser:sekrit-pw@p:3128',\n"
                   "  operators = { kraken = { pairs = { 'btc/usd' }, options = { d = 1 } } } }");
    clear_env();
    if (!cfg) {
        return;
    }
    f = open_memstream(&text, &len);
    config_dump(cfg, f);
    fclose(f);
    CHECK_LACKS(text, "sekrit");
    CHECK_HAS(text, "\ntokens = { <redacted>, <redacted> }\n");
    CHECK_HAS(text, "\nadmin_tokens = { <redacted> }\n");
    CHECK_HAS(text, "\nstore = \"redis://user:<redacted>@h:6379/0\"\n");
    CHECK_HAS(text, "\nproxy = \"http://puser:<redacted>@p:3128\"\n");
    CHECK_HAS(text, "\nlisten = \"0.0.0.0:8080\"\n");
    CHECK_HAS(text, "\nport_file = nil\n");
    CHECK_HAS(text, "\nlimits.max_header_bytes = 8192\n");
    CHECK_HAS(text, "\nws.max_queue_bytes = 1048576\n");
    CHECK_HAS(text, "\noutlier_pct = 5\n");
    CHECK_HAS(text, "\nrole = \"all\"\n");
    CHECK_HAS(text, "\noperators.kraken.pairs = { \"BTC_USD\" }\n");
    CHECK_HAS(text, "\noperators.kraken.poll_every = nil\n");
    CHECK_HAS(text, "\noperators.kraken.budget.requests = nil\n");
    CHECK_HAS(text, "\noperators.kraken.options = {\"d\":1}\n");
    CHECK_HAS(text, "\npublic_paths = { \"/healthz\", \"/readyz\"");
    free(text);
    config_free(cfg);

    cfg = load_src("return {}");
    if (cfg) {
        text = NULL;
        f = open_memstream(&text, &len);
        config_dump(cfg, f);
        fclose(f);
        CHECK_HAS(text, "\noperators = {}\n");
        CHECK_HAS(text, "\ntokens = {}\n");
        free(text);
        config_free(cfg);
    }
}

static void test_reload_tokens(void)
{
    struct config *cfg = load_src("return { listen = '127.0.0.1:1', tokens = { 't1' } }");

    if (!cfg) {
        return;
    }
    write_case(
        "return { listen = '127.0.0.1:2', tokens = { 't2', 't3' }, admin_tokens = { 'a' } }");
    CHECK_INT_EQ(config_reload_tokens(NULL, cfg, err, sizeof(err)), 0);
    CHECK_INT_EQ(cfg->n_tokens, 2);
    CHECK_STR_EQ(cfg->tokens[0], "t2");
    CHECK_INT_EQ(cfg->n_admin_tokens, 1);
    CHECK_STR_EQ(cfg->listen, "127.0.0.1:1");

    /* A broken file leaves the tokens as they were. */
    write_case("return { tokens = { 't4' }, bogus = 1 }");
    CHECK_INT_EQ(config_reload_tokens(case_path, cfg, err, sizeof(err)), -1);
    CHECK_HAS(err, "bogus: unknown key");
    CHECK_INT_EQ(cfg->n_tokens, 2);
    CHECK_STR_EQ(cfg->tokens[1], "t3");
    config_free(cfg);
    config_free(NULL);
}

/* limits.trusted_proxies: addresses and blocks, IPv4 as mapped IPv6. */
static void test_cidr(void)
{
    struct config_cidr c;
    unsigned char a[16] = {0};

    a[10] = a[11] = 0xff;
    a[12] = 10, a[13] = 1, a[14] = 2, a[15] = 3;
    CHECK_INT_EQ(config_cidr_parse("10.0.0.0/8", &c), 0);
    CHECK(config_cidr_match(&c, a));
    CHECK_INT_EQ(config_cidr_parse("10.1.2.0/23", &c), 0);
    CHECK(config_cidr_match(&c, a));
    CHECK_INT_EQ(config_cidr_parse("10.1.4.0/23", &c), 0);
    CHECK(!config_cidr_match(&c, a));
    CHECK_INT_EQ(config_cidr_parse("10.1.2.3", &c), 0);
    CHECK(config_cidr_match(&c, a));
    CHECK_INT_EQ(config_cidr_parse("::ffff:10.1.2.3", &c), 0);
    CHECK(config_cidr_match(&c, a));
    CHECK_INT_EQ(config_cidr_parse("10.1.2.4", &c), 0);
    CHECK(!config_cidr_match(&c, a));
    CHECK_INT_EQ(config_cidr_parse("0.0.0.0/0", &c), 0);
    CHECK(config_cidr_match(&c, a));
    CHECK_INT_EQ(config_cidr_parse("::/0", &c), 0);
    CHECK(config_cidr_match(&c, a));
    CHECK_INT_EQ(config_cidr_parse("2001:db8::/32", &c), 0);
    CHECK(!config_cidr_match(&c, a));
    memset(a, 0, sizeof a);
    a[15] = 1;
    CHECK_INT_EQ(config_cidr_parse("::1", &c), 0);
    CHECK(config_cidr_match(&c, a));
    CHECK_INT_EQ(config_cidr_parse("127.0.0.1", &c), 0);
    CHECK(!config_cidr_match(&c, a));
    CHECK_INT_EQ(config_cidr_parse("", &c), -1);
    CHECK_INT_EQ(config_cidr_parse("/8", &c), -1);
    CHECK_INT_EQ(config_cidr_parse("10.0.0.0/-1", &c), -1);
    CHECK_INT_EQ(config_cidr_parse("10.0.0.0/8x", &c), -1);
    CHECK_INT_EQ(config_cidr_parse("10.0.0.0/0008", &c), -1);
    CHECK_INT_EQ(config_cidr_parse("[::1]", &c), -1);
}

struct docs_check {
    const char *docs;
    int keys;
};

static void check_documented(const struct config_key_info *info, void *arg)
{
    struct docs_check *dc = arg;
    char quoted[200];

    snprintf(quoted, sizeof(quoted), "`%s`", info->path);
    CHECK_HAS(dc->docs, quoted);
    CHECK(info->help && *info->help);
    dc->keys++;
}

static void test_docs_list_every_key(void)
{
    struct docs_check dc = {0};
    FILE *f = fopen(in_src("docs/operations.md"), "r");
    char *docs;
    long n;

    CHECK(f != NULL);
    if (!f) {
        return;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    docs = calloc(1, (size_t)n + 1);
    CHECK_INT_EQ(fread(docs, 1, (size_t)n, f), n);
    fclose(f);
    dc.docs = docs;
    config_each_key(check_documented, &dc);
    CHECK(dc.keys > 40);
    for (const char *v = "PORT\0API_AUTHENTICATION_TOKEN\0REDIS_URL\0EXPLORER_CONFIG\0"; *v;
         v += strlen(v) + 1) {
        CHECK_HAS(docs, v);
    }
    free(docs);
}

int main(void)
{
    const char *src = getenv("RX_SOURCE_DIR");

    snprintf(src_dir, sizeof(src_dir), "%s", src ? src : ".");
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/test_config.XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(case_path, sizeof(case_path), "%s/case.lua", tmp_dir);
    clear_env();

    test_shipped_explorer();
    test_shipped_replay();
    test_every_key_set();
    test_env_overrides();
    test_validation();
    test_sample_errors();
    test_sandbox_caps();
    test_options();
    test_dump();
    test_reload_tokens();
    test_cidr();
    test_docs_list_every_key();

    unlink(case_path);
    rmdir(tmp_dir);
    return CHECK_DONE();
}
