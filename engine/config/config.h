/*
 * config: the service's configuration, read from a Lua file (DESIGN §6).
 *
 * config_load() evaluates the file as a Lua chunk in a fresh, capped
 * lua_State whose environment holds only env(name, default) and a handful of
 * pure helpers (see config.c), turns the table it returns into a plain C
 * `struct config`, then applies the environment overrides PORT,
 * API_AUTHENTICATION_TOKEN and REDIS_URL. Every key is described once, in the
 * schema table in config_schema.c: that table drives parsing, defaults,
 * validation, "did you mean" suggestions for unknown keys, config_dump() and
 * the key list in docs/operations.md.
 *
 * Threads: config_load() may run on any thread (the engine loads at start on
 * the main thread and again on SIGHUP on the engine thread); it reads the
 * environment, so nobody may setenv() meanwhile. A loaded config is plain
 * immutable data: any thread may read it, as long as the owner frees or
 * mutates it (config_reload_tokens) only when no other thread is reading.
 *
 * Ownership: config_load() hands the caller a config it must config_free();
 * every string and array inside belongs to the config. Nothing in this module
 * logs: failures are written into the caller's error buffer as
 * "<file>: <key path>: <reason>", e.g.
 *   config/explorer.lua: operators.binance.poll_evry: unknown key (did you mean 'poll_every'?)
 *
 * Relative paths (port_file, token_file, operators_dir, ca_file) are kept as
 * written and resolve against the working directory of the process, like any
 * path on a command line; the service never changes directory. The one path
 * derived from the config file's location is the default token_file,
 * "explorer.token" beside the config file (DESIGN §4).
 */
#ifndef RX_CONFIG_H
#define RX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The sandbox caps: a hostile or broken config cannot hang or bloat us. */
#define CONFIG_MAX_MEMORY ((size_t)16 << 20)
#define CONFIG_MAX_INSTRUCTIONS 10000000
/* Per operator: the serialised `options` table, and its nesting depth. */
#define CONFIG_MAX_OPTIONS_BYTES ((size_t)1 << 20)
#define CONFIG_MAX_OPTIONS_DEPTH 16

enum config_role {
    CONFIG_ROLE_ALL,     /* scrape and serve */
    CONFIG_ROLE_API,     /* serve what other nodes put into Redis */
    CONFIG_ROLE_SCRAPER, /* scrape into Redis, serve nothing but health */
};

enum config_log_level {
    CONFIG_LOG_DEBUG,
    CONFIG_LOG_INFO,
    CONFIG_LOG_WARN,
    CONFIG_LOG_ERROR,
};

enum config_log_format {
    CONFIG_LOG_TEXT,
    CONFIG_LOG_JSON,
};

/* Front-door limits (`limits = {...}`). */
struct config_limits {
    int64_t max_header_bytes;     /* request line + headers */
    int64_t max_url_bytes;        /* request target, at most max_header_bytes */
    int64_t max_per_ip;           /* open connections from one address */
    int64_t max_connections;      /* open connections in total */
    int64_t head_timeout_ms;      /* time allowed to send the request head */
    int64_t keepalive_timeout_ms; /* a kept-alive connection's wait for its next request */
    char **trusted_proxies;       /* "addr" or "addr/bits": exempt from max_per_ip */
    size_t n_trusted_proxies;
};

/* An address block of limits.trusted_proxies; IPv4 is held as
 * ::ffff:a.b.c.d, its prefix length plus 96. */
struct config_cidr {
    unsigned char addr[16];
    int bits;
};

/* WebSocket server limits (`ws = {...}`). */
struct config_ws {
    int64_t max_connections;
    int64_t max_per_ip;
    int64_t max_subs;          /* subscriptions per connection */
    int64_t max_queue_bytes;   /* a client's outbound queue; past it: close 1008 */
    int64_t max_queue_bytes_total; /* all clients' queues; past it the largest close 1008 */
    int64_t snapshot_chunk;    /* tickers per snapshot message */
    int64_t max_message_bytes; /* inbound message size */
};

/* The old service's endpoints (`compat = {...}`). */
struct config_compat {
    int64_t listener_max_s; /* /currency_listener closes after this */
};

/* An operator's HTTP budget; both fields -1 when unset (operator's own). */
struct config_budget {
    int64_t requests; /* calls allowed ... */
    double per;       /* ... per this many seconds */
};

/* An operator's callback time limits; -1 when unset (operator's own). */
struct config_deadlines {
    int64_t message_ms; /* on_message, on_ping, on_close */
    int64_t task_ms;    /* markets, poll, connections, on_open between waits */
};

/*
 * One entry of `operators = { [name] = {...} }`. A value the config leaves
 * out is "unset" and the operator file's own value (or the global one, for
 * stale_after_ms) applies: strings are NULL, numbers are negative.
 */
struct config_operator {
    char *name;        /* [a-z0-9_]+ */
    bool enabled;      /* default true */
    char *rest;        /* http(s) URL or NULL */
    char *ws;          /* ws(s) URL or NULL */
    double poll_every; /* seconds, < 0 = unset */
    char **pairs;      /* canonical BASE_QUOTE allow-list; empty = all */
    size_t n_pairs;
    int64_t stale_after_ms; /* < 0 = the global stale_after_ms */
    struct config_budget budget;
    struct config_deadlines deadlines;
    char **allow_hosts; /* extra reachable hosts (lower case) */
    size_t n_allow_hosts;
    int64_t max_frame_bytes; /* < 0 = engine default */
    char *options_json;      /* the free-form `options` table as JSON, "{}" if absent */
};

/* Parsed from `store` when it is a redis:// URL; host is NULL for "memory". */
struct config_redis {
    char *host; /* without IPv6 brackets */
    int port;   /* default 6379 */
    int db;     /* default 0 */
    char *user; /* NULL if none; percent-decoded */
    char *password;
};

struct config {
    char *path; /* the file this came from, as given */

    char *listen;      /* "host:port" after $PORT */
    char *listen_host; /* split from listen, IPv6 without brackets */
    int listen_port;   /* 0 = pick one and write it to port_file */
    char *port_file;   /* NULL = none */

    bool auth;
    char **tokens; /* never log or print these */
    size_t n_tokens;
    char *token_file; /* where a generated token goes */
    char **admin_tokens;
    size_t n_admin_tokens;
    char **public_paths;
    size_t n_public_paths;
    char **allowed_origins; /* "scheme://host[:port]", lower case */
    size_t n_allowed_origins;
    struct config_limits limits;
    bool access_log;

    char *operators_dir;
    struct config_operator *operators; /* sorted by name */
    size_t n_operators;
    char *ca_file; /* NULL = system store only */
    char *replay_url; /* NULL, or every operator's base: <replay_url>/<name> */

    char *store; /* "memory" or the redis:// URL (may hold a password) */
    struct config_redis redis;
    enum config_role role;
    char *node_id; /* default "<hostname>-<pid>" */
    int64_t lease_ttl_ms;
    int64_t stale_after_ms;
    double outlier_pct;

    struct config_ws ws;
    struct config_compat compat;
    enum config_log_level log_level;
    enum config_log_format log_format;
    char *proxy; /* outbound proxy URL or NULL */
};

/*
 * Load and validate `path`. On success returns 0 and stores a new config in
 * *out (the caller owns it); on failure returns -1, leaves *out NULL and
 * writes "<file>: <key>: <reason>" (or Lua's "<file>:<line>: <message>")
 * into err.
 */
int config_load(const char *path, struct config **out, char *err, size_t errlen);

/* Frees everything the config owns; config_free(NULL) does nothing. */
void config_free(struct config *cfg);

/* $EXPLORER_CONFIG if set and not empty, else "config/explorer.lua". */
const char *config_default_path(void);

/*
 * SIGHUP rotation: load `path` (NULL = cfg->path) afresh, environment
 * overrides included, and move its tokens and admin_tokens into cfg, freeing
 * the old ones; nothing else in cfg changes. On failure returns -1, fills err
 * and leaves cfg untouched. It frees the old token arrays, so the caller must
 * make sure no other thread reads cfg->tokens meanwhile (the auth code keeps
 * its own copy and is handed the new tokens after this returns).
 */
int config_reload_tokens(const char *path, struct config *cfg, char *err, size_t errlen);

/* The operator entry named `name`, or NULL; borrows from cfg. */
const struct config_operator *config_operator_find(const struct config *cfg, const char *name);

/*
 * Print the effective config to f, one key per line (`limits.max_url_bytes =
 * 4096`), for `explorer --check-config`. Tokens and passwords in URLs are
 * printed as <redacted>, never in clear.
 */
void config_dump(const struct config *cfg, FILE *f);

/* Names of the enum values as written in the config ("all", "info", "json"). */
const char *config_role_name(enum config_role role);
const char *config_log_level_name(enum config_log_level level);
const char *config_log_format_name(enum config_log_format format);

/*
 * "Did you mean": the closest of `names` (NULL-terminated) to `word` within
 * two edits (insert, delete, change, swap adjacent; one edit for words of
 * three letters or fewer), else a name that starts with `word` or that `word`
 * starts with; NULL when nothing is close. The config uses it for unknown
 * keys and enum values; other validators (operator files) may too.
 */
const char *config_suggest(const char *word, const char *const *names);

/* Index of `s` in `names` (NULL-terminated), or -1. */
int config_find_name(const char *const *names, const char *s);

/* Any thread: parses "192.0.2.7", "10.0.0.0/8", "::1" or "2001:db8::/32"
 * (an address alone is a block of one). Returns 0, or -1 for anything else. */
int config_cidr_parse(const char *text, struct config_cidr *out);

/* Any thread: whether addr (16 bytes, IPv4 mapped as above) is in cidr. */
bool config_cidr_match(const struct config_cidr *cidr, const unsigned char addr[16]);

/* One schema key, for docs and tests: path is e.g. "operators.<name>.rest". */
struct config_key_info {
    const char *path;
    const char *type; /* "integer", "list of strings", ... */
    const char *def;  /* default as text, e.g. "8192", "nil", "beside the config" */
    const char *help; /* one sentence */
    bool table;       /* a table whose keys are listed separately */
};
typedef void (*config_key_fn)(const struct config_key_info *info, void *arg);

/* Call fn for every key of the schema, parents before their children. */
void config_each_key(config_key_fn fn, void *arg);

#endif
