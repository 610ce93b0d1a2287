/*
 * config_schema: every config key, described once.
 *
 * The tables below are the whole of DESIGN §6: name, type, where the value
 * lands in `struct config`, default, range, the check for what a type alone
 * cannot express (config_check.c), and the help sentence. config_walk.c
 * parses and defaults by them, config.c frees by them, config_dump.c prints
 * and lists them; nothing else in the code names a key. Adding a key is
 * adding a row here, a field in config.h and a row in docs/operations.md
 * (test_config fails when the docs miss a key).
 */
#include "config_schema.h"

#include <stddef.h>

/* ---- Names --------------------------------------------------------------- */

static const char *const role_names[] = {"all", "api", "scraper", NULL};
static const char *const level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const format_names[] = {"text", "json", NULL};

_Static_assert(sizeof(enum config_role) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum config_log_level) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum config_log_format) == sizeof(int), "enums are stored as int");

const char *config_role_name(enum config_role role)
{
    return (unsigned)role < 3 ? role_names[role] : "?";
}

const char *config_log_level_name(enum config_log_level level)
{
    return (unsigned)level < 4 ? level_names[level] : "?";
}

const char *config_log_format_name(enum config_log_format format)
{
    return (unsigned)format < 2 ? format_names[format] : "?";
}

const char *config_type_name(const struct config_key *k)
{
    switch (k->type) {
    case CONFIG_BOOL:
        return "boolean";
    case CONFIG_INT:
        return "integer";
    case CONFIG_NUM:
        return "number";
    case CONFIG_STR:
    case CONFIG_ENUM:
        return "string";
    case CONFIG_LIST:
        return "list of strings";
    case CONFIG_TABLE:
        return "table";
    case CONFIG_OPERATORS:
        return "table of name = table";
    case CONFIG_JSON:
        return "table (free-form)";
    }
    return "?";
}

/* ---- The schema ------------------------------------------------------------ */

/*
 * Most keys are plain integers with a default and a range, or booleans; these
 * macros keep such a row on one or two lines and take the key's name from the
 * field, so the two cannot drift apart. Other rows spell out their fields.
 */
#define INT_KEY(st, field, def_, lo, hi, help_)                                                    \
    {                                                                                              \
        .name = #field, .type = CONFIG_INT, .offset = offsetof(st, field), .def = (def_),          \
        .min = (lo), .max = (hi), .help = (help_)                                                  \
    }
#define BOOL_KEY(st, field, def_, help_)                                                           \
    {                                                                                              \
        .name = #field, .type = CONFIG_BOOL, .offset = offsetof(st, field), .def = (def_),         \
        .help = (help_)                                                                            \
    }

#define CFG(f) offsetof(struct config, f)
#define OP(f) offsetof(struct config_operator, f)

static const struct config_key limits_keys[] = {
    INT_KEY(struct config_limits, max_header_bytes, "8192", 1024, 1048576,
            "Largest request head (request line and headers); larger heads get 431."),
    INT_KEY(struct config_limits, max_url_bytes, "4096", 256, 1048576,
            "Longest request target (path and query); at most max_header_bytes."),
    INT_KEY(struct config_limits, max_per_ip, "256", 1, 1000000,
            "Open connections from one client address."),
    INT_KEY(struct config_limits, max_connections, "10000", 1, 1000000,
            "Open connections in total, REST and WebSocket."),
    INT_KEY(struct config_limits, head_timeout_ms, "2000", 100, 600000,
            "Time a client has to send its request head before it gets 408."),
    INT_KEY(struct config_limits, keepalive_timeout_ms, "5000", 100, 600000,
            "Time a kept-alive connection has, after an answer, to send its next whole "
            "request; then it is closed."),
    {.name = "trusted_proxies",
     .type = CONFIG_LIST,
     .offset = offsetof(struct config_limits, trusted_proxies),
     .aux = offsetof(struct config_limits, n_trusted_proxies),
     .item = config_check_trusted_proxy,
     .help = "Addresses or blocks (10.0.0.0/8) of reverse proxies: exempt from max_per_ip, "
             "and the access log shows the client from their X-Forwarded-For."},
    {0},
};

static const struct config_key ws_keys[] = {
    INT_KEY(struct config_ws, max_connections, "10000", 1, 1000000,
            "WebSocket connections in total."),
    INT_KEY(struct config_ws, max_per_ip, "256", 1, 1000000,
            "WebSocket connections from one client address."),
    INT_KEY(struct config_ws, max_subs, "64", 1, 100000, "Subscriptions per connection."),
    INT_KEY(struct config_ws, max_queue_bytes, "1048576", 4096, 1073741824,
            "A client's outbound queue; past it the client is closed with 1008."),
    INT_KEY(struct config_ws, max_queue_bytes_total, "268435456", 65536, 1099511627776,
            "All clients' queues together; past it the largest are closed with 1008 first."),
    INT_KEY(struct config_ws, snapshot_chunk, "500", 1, 100000,
            "Tickers per snapshot message after a subscribe."),
    INT_KEY(struct config_ws, max_message_bytes, "65536", 256, 16777216,
            "Largest message a client may send."),
    {0},
};

static const struct config_key compat_keys[] = {
    INT_KEY(struct config_compat, listener_max_s, "3000", 1, 604800,
            "Seconds after which /currency_listener closes, as the old service did."),
    {0},
};

/* Per-operator values have no default of their own: unset = the operator's. */
static const struct config_key budget_keys[] = {
    INT_KEY(struct config_budget, requests, NULL, 1, 1000000,
            "HTTP calls allowed per `per` seconds; calls beyond it wait."),
    {.name = "per",
     .type = CONFIG_NUM,
     .offset = offsetof(struct config_budget, per),
     .min = 0.001,
     .max = 86400,
     .unset = "operator's own",
     .help = "The budget's window in seconds; set together with requests."},
    {0},
};

/* Both within the engine's caps (operator/op_spec.c). */
static const struct config_key deadline_keys[] = {
    INT_KEY(struct config_deadlines, message_ms, NULL, 1, 1000,
            "Wall-clock limit of one on_message, on_ping or on_close call, in ms."),
    INT_KEY(struct config_deadlines, task_ms, NULL, 10, 10000,
            "Wall-clock limit of markets, poll, connections or on_open between two waits, in ms."),
    {0},
};

const struct config_key config_operator_keys[] = {
    BOOL_KEY(struct config_operator, enabled, "true",
             "false keeps the operator loaded but stopped (state disabled)."),
    {.name = "rest",
     .type = CONFIG_STR,
     .offset = OP(rest),
     .check = config_check_rest,
     .unset = "operator's own",
     .help = "Base http(s) URL replacing the operator's rest."},
    {.name = "ws",
     .type = CONFIG_STR,
     .offset = OP(ws),
     .check = config_check_ws_url,
     .unset = "operator's own",
     .help = "ws(s) URL replacing the operator's ws."},
    {.name = "poll_every",
     .type = CONFIG_NUM,
     .offset = OP(poll_every),
     .min = 0.1,
     .max = 86400,
     .unset = "operator's own",
     .help = "Seconds between poll() calls."},
    {.name = "pairs",
     .type = CONFIG_LIST,
     .offset = OP(pairs),
     .aux = OP(n_pairs),
     .item = config_check_pair,
     .unset = "all pairs",
     .help = "Allow-list of pairs (BTC_USDT, BTC/USDT or btc-usdt; kept as BTC_USDT)."},
    INT_KEY(struct config_operator, stale_after_ms, NULL, 100, 86400000,
            "Age after which this operator's tickers count as stale (unset: the global one)."),
    {.name = "budget",
     .type = CONFIG_TABLE,
     .offset = OP(budget),
     .sub = budget_keys,
     .check = config_check_budget,
     .help = "HTTP budget: { requests = N, per = seconds }."},
    {.name = "deadlines",
     .type = CONFIG_TABLE,
     .offset = OP(deadlines),
     .sub = deadline_keys,
     .help = "Callback time limits: { message_ms = N, task_ms = N } (unset: the operator's "
             "own, else 10 and 500)."},
    {.name = "allow_hosts",
     .type = CONFIG_LIST,
     .offset = OP(allow_hosts),
     .aux = OP(n_allow_hosts),
     .item = config_check_host,
     .help = "Hosts the operator may reach besides those of its rest and ws URLs: \"host\" "
             "(on the ports of those URLs) or \"host:port\"."},
    INT_KEY(struct config_operator, max_frame_bytes, NULL, 1024, 1073741824,
            "Largest WebSocket frame accepted from the exchange (unset: engine default)."),
    {.name = "options",
     .type = CONFIG_JSON,
     .offset = OP(options_json),
     .def = "{}",
     .help = "Free-form table handed to the operator (strings, numbers, booleans, tables; "
             "at most 16 levels, 1 MiB as JSON)."},
    {0},
};

const struct config_key config_root_keys[] = {
    {.name = "listen",
     .type = CONFIG_STR,
     .offset = CFG(listen),
     .def = "0.0.0.0:8080",
     .check = config_check_listen,
     .help = "host:port of the one port (REST and WebSocket); port 0 picks a free port. "
             "$PORT replaces the port."},
    {.name = "port_file",
     .type = CONFIG_STR,
     .offset = CFG(port_file),
     .help = "File the bound port is written to once listening (useful with port 0)."},
    BOOL_KEY(struct config, auth, "true",
             "false serves rate data without tokens (a warning is logged at start)."),
    {.name = "tokens",
     .type = CONFIG_LIST,
     .offset = CFG(tokens),
     .aux = CFG(n_tokens),
     .item = config_check_token,
     .flags = CONFIG_SECRET,
     .help = "Bearer tokens the API accepts; $API_AUTHENTICATION_TOKEN (comma list) "
             "replaces them. None at all: one is generated into token_file."},
    {.name = "token_file",
     .type = CONFIG_STR,
     .offset = CFG(token_file),
     .check = config_check_token_file,
     .unset = "explorer.token beside the config file",
     .help = "Where a generated token is written (mode 0600) when no token is configured."},
    {.name = "admin_tokens",
     .type = CONFIG_LIST,
     .offset = CFG(admin_tokens),
     .aux = CFG(n_admin_tokens),
     .item = config_check_token,
     .flags = CONFIG_SECRET,
     .help = "Tokens for /v1/admin/*; with none, those routes answer 403."},
    {.name = "public_paths",
     .type = CONFIG_LIST,
     .offset = CFG(public_paths),
     .aux = CFG(n_public_paths),
     .item = config_check_public_path,
     .def = "/healthz,/readyz,/metrics,/,/docs,/openapi.json",
     .help = "Paths served without a token."},
    {.name = "allowed_origins",
     .type = CONFIG_LIST,
     .offset = CFG(allowed_origins),
     .aux = CFG(n_allowed_origins),
     .item = config_check_origin,
     .help = "CORS origins (https://host[:port]); when set, WebSocket upgrades from other "
             "origins are refused."},
    {.name = "limits",
     .type = CONFIG_TABLE,
     .offset = CFG(limits),
     .sub = limits_keys,
     .check = config_check_limits,
     .help = "Front-door limits."},
    BOOL_KEY(struct config, access_log, "false",
             "Log one line per request (tokens are never logged)."),
    {.name = "operators_dir",
     .type = CONFIG_STR,
     .offset = CFG(operators_dir),
     .def = "operators",
     .help = "Directory scanned for operator files (*.lua)."},
    {.name = "operators",
     .type = CONFIG_OPERATORS,
     .offset = CFG(operators),
     .aux = CFG(n_operators),
     .sub = config_operator_keys,
     .unset = "{}",
     .help = "Per-operator settings, keyed by operator name ([a-z0-9_]+)."},
    {.name = "replay_url",
     .type = CONFIG_STR,
     .offset = CFG(replay_url),
     .check = config_check_rest,
     .help = "Recorded data: every operator's rest becomes <replay_url>/<name> and its ws the "
             "same with ws(s)://, unless operators.<name> sets them (the fake exchange; tests "
             "and demos)."},
    {.name = "ca_file",
     .type = CONFIG_STR,
     .offset = CFG(ca_file),
     .help = "Extra CA certificates (PEM) trusted for outbound TLS, besides the system store."},
    {.name = "store",
     .type = CONFIG_STR,
     .offset = CFG(store),
     .def = "memory",
     .check = config_check_store,
     .flags = CONFIG_URL_CREDS,
     .help = "\"memory\" or redis://[user:password@]host[:port][/db]; $REDIS_URL replaces it."},
    {.name = "role",
     .type = CONFIG_ENUM,
     .offset = CFG(role),
     .def = "all",
     .names = role_names,
     .help = "all (scrape and serve), api (serve from Redis) or scraper (fill Redis); "
             "api and scraper need a Redis store."},
    {.name = "node_id",
     .type = CONFIG_STR,
     .offset = CFG(node_id),
     .check = config_check_node_id,
     .unset = "<hostname>-<pid>",
     .help = "This node's name in Redis leases."},
    INT_KEY(struct config, lease_ttl_ms, "15000", 1000, 3600000,
            "TTL of an exchange's Redis lease; another node takes over within it."),
    INT_KEY(struct config, stale_after_ms, "60000", 100, 86400000,
            "Age after which a ticker counts as stale."),
    {.name = "outlier_pct",
     .type = CONFIG_NUM,
     .offset = CFG(outlier_pct),
     .def = "5",
     .min = 0.01,
     .max = 100,
     .help = "A mid further than this percentage from the median of the others is excluded "
             "from aggregates."},
    {.name = "ws",
     .type = CONFIG_TABLE,
     .offset = CFG(ws),
     .sub = ws_keys,
     .check = config_check_ws_limits,
     .help = "WebSocket server limits."},
    {.name = "compat",
     .type = CONFIG_TABLE,
     .offset = CFG(compat),
     .sub = compat_keys,
     .help = "The old service's endpoints."},
    {.name = "log_level",
     .type = CONFIG_ENUM,
     .offset = CFG(log_level),
     .def = "info",
     .names = level_names,
     .help = "Least severe level logged."},
    {.name = "log_format",
     .type = CONFIG_ENUM,
     .offset = CFG(log_format),
     .def = "text",
     .names = format_names,
     .help = "text, or json for one object per line."},
    {.name = "proxy",
     .type = CONFIG_STR,
     .offset = CFG(proxy),
     .check = config_check_proxy,
     .flags = CONFIG_URL_CREDS,
     .help = "Outbound HTTP proxy URL for both HTTP and WebSocket connections."},
    {0},
};
