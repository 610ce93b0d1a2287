/*
 * config_schema: the internal contract between the config files: config.c
 * (the sandbox, loading, environment overrides), config_walk.c (the walk
 * over the returned table), config_dump.c (dump and key listing),
 * config_schema.c (the table of keys) and config_check.c (the plain-C checks
 * and the error helpers). Only they include it; nothing here is for other
 * modules.
 *
 * A key is one `struct config_key`: its name, type, where it lives in the C
 * struct, its default as text, its range or allowed names, an optional check
 * that validates or canonicalises the value (and may derive a default), and
 * a help sentence. Everything that handles keys loops over these tables.
 *
 * Threads: config loading runs on the main thread before others start; the
 * tables are constant data.
 */
#ifndef RX_CONFIG_SCHEMA_H
#define RX_CONFIG_SCHEMA_H

#include "core/jbuf.h"

#include "config.h"

#include <stdarg.h>

enum config_type {
    CONFIG_BOOL,      /* bool */
    CONFIG_INT,       /* int64_t; unset (no default) = -1 */
    CONFIG_NUM,       /* double; unset (no default) = -1 */
    CONFIG_STR,       /* char *; unset = NULL; never empty */
    CONFIG_ENUM,      /* an enum stored as int, written as one of `names` */
    CONFIG_LIST,      /* char ** at offset, size_t count at aux */
    CONFIG_TABLE,     /* a nested struct at offset, keys in `sub` */
    CONFIG_OPERATORS, /* struct config_operator * at offset, count at aux */
    CONFIG_JSON,      /* char *: a free-form table serialised as JSON */
};

/* Items in one list (tokens, pairs, ...), from the file or the environment. */
#define CONFIG_MAX_LIST_ITEMS 10000

/* Flags. */
#define CONFIG_SECRET 1u    /* list of secrets: dump and errors never show values */
#define CONFIG_URL_CREDS 2u /* a URL that may carry user:password@: dump redacts it */

/* The walk's state: where we are (for messages) and where errors go. */
struct config_ctx {
    const char *file;
    struct config *cfg;
    char path[512]; /* the key path being parsed: "operators.binance.budget" */
    size_t path_len;
    char *err;
    size_t errlen;
    int rc;
    struct jbuf json; /* scratch for options serialisation, freed by config_load */
    size_t json_root; /* path length at the options table, for size errors */
    const void *json_seen[CONFIG_MAX_OPTIONS_DEPTH + 1];
};

struct config_key;

/*
 * Called after a value was parsed or defaulted, with `base` the struct that
 * holds the field. It validates, canonicalises in place, or derives a default
 * for an unset value. Returns 0, or -1 after config_fail().
 */
typedef int (*config_check_fn)(struct config_ctx *ctx, void *base, const struct config_key *k);
/* Called for each string of a CONFIG_LIST; may replace *item. */
typedef int (*config_item_fn)(struct config_ctx *ctx, char **item);

struct config_key {
    const char *name;
    enum config_type type;
    size_t offset;
    size_t aux;                   /* CONFIG_LIST, CONFIG_OPERATORS: offset of the count */
    const char *def;              /* default as text (lists: comma separated); NULL = unset */
    double min, max;              /* CONFIG_INT, CONFIG_NUM: inclusive range */
    const char *const *names;     /* CONFIG_ENUM: NULL-terminated, index = value */
    const struct config_key *sub; /* CONFIG_TABLE, CONFIG_OPERATORS: nested keys */
    config_check_fn check;
    config_item_fn item;
    unsigned flags;
    const char *unset; /* docs: what no value means, when def is NULL */
    const char *help;
};

extern const struct config_key config_root_keys[];
extern const struct config_key config_operator_keys[];

#define CONFIG_FIELD(base, off, type) ((type *)((char *)(base) + (off)))

/* Error reporting: "<file>: <path>: <reason>", returns -1. */
int config_fail(struct config_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append ".key" (or "[\"odd key\"]") to the path; returns the length to restore. */
size_t config_path_key(struct config_ctx *ctx, const char *key);
/* Append "[i]" (1-based, as Lua counts). */
size_t config_path_index(struct config_ctx *ctx, size_t i);
void config_path_restore(struct config_ctx *ctx, size_t len);
void config_path_set(struct config_ctx *ctx, const char *path);


/* Typed helpers shared by the walker and the environment overrides. */
const char *config_type_name(const struct config_key *k);
int config_listen_apply(struct config_ctx *ctx, struct config *cfg, const char *value);
int config_port_parse(const char *s, int *port);
int config_store_apply(struct config_ctx *ctx, struct config *cfg, const char *value);
int config_check_token(struct config_ctx *ctx, char **item);
int config_check_final(struct config_ctx *ctx, struct config *cfg);

/* The checks the schema names (config_check.c). */
int config_check_listen(struct config_ctx *ctx, void *base, const struct config_key *k);
int config_check_store(struct config_ctx *ctx, void *base, const struct config_key *k);
int config_check_token_file(struct config_ctx *ctx, void *base, const struct config_key *k);
int config_check_node_id(struct config_ctx *ctx, void *base, const struct config_key *k);
int config_check_proxy(struct config_ctx *ctx, void *base, const struct config_key *k);
int config_check_rest(struct config_ctx *ctx, void *base, const struct config_key *k);
int config_check_ws_url(struct config_ctx *ctx, void *base, const struct config_key *k);
int config_check_limits(struct config_ctx *ctx, void *base, const struct config_key *k);
int config_check_ws_limits(struct config_ctx *ctx, void *base, const struct config_key *k);
int config_check_budget(struct config_ctx *ctx, void *base, const struct config_key *k);
int config_check_public_path(struct config_ctx *ctx, char **item);
int config_check_origin(struct config_ctx *ctx, char **item);
int config_check_pair(struct config_ctx *ctx, char **item);
int config_check_host(struct config_ctx *ctx, char **item);
int config_check_trusted_proxy(struct config_ctx *ctx, char **item);
void config_redis_clear(struct config_redis *r);
/* Copy url into out with any password replaced by <redacted>. */
void config_redact_url(const char *url, char *out, size_t outlen);

/* config_walk.c: walk the table at idx into ctx->cfg (inside lua_pcall). */
struct lua_State;
int config_walk(struct config_ctx *ctx, struct lua_State *L, int idx);
void config_list_free(char **items, size_t n);
/* Shortest "%.Ng" of d that reads back as d. */
void config_format_double(double d, char *buf, size_t n);

#endif
