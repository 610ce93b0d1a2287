/*
 * config_schema: the internal contract between the config files: config.c
 * (the sandbox, loading, environment overrides), config_walk.c (the walk
 * over the returned table), config_dump.c (dump and key listing) and
 * config_schema.c (the table of keys and the plain-C checks). Only they
 * include it.
 *
 * A key is one `struct cfg_key`: its name, type, where it lives in the C
 * struct, its default as text, its range or allowed names, an optional check
 * that validates or canonicalises the value (and may derive a default), and
 * a help sentence. Everything that handles keys loops over these tables.
 */
#ifndef RX_CONFIG_SCHEMA_H
#define RX_CONFIG_SCHEMA_H

#include "config.h"

#include <stdarg.h>

enum cfg_type {
    CFG_BOOL,      /* bool */
    CFG_INT,       /* int64_t; unset (no default) = -1 */
    CFG_NUM,       /* double; unset (no default) = -1 */
    CFG_STR,       /* char *; unset = NULL; never empty */
    CFG_ENUM,      /* an enum stored as int, written as one of `names` */
    CFG_LIST,      /* char ** at offset, size_t count at aux */
    CFG_TABLE,     /* a nested struct at offset, keys in `sub` */
    CFG_OPERATORS, /* struct config_operator * at offset, count at aux */
    CFG_JSON,      /* char *: a free-form table serialised as JSON */
};

/* Flags. */
#define CFG_SECRET 1u     /* list of secrets: dump and errors never show values */
#define CFG_URL_CREDS 2u  /* a URL that may carry user:password@: dump redacts it */

/* The walk's state: where we are (for messages) and where errors go. */
struct cfg_ctx {
    const char *file;
    struct config *cfg;
    char path[512]; /* the key path being parsed: "operators.binance.budget" */
    size_t path_len;
    char *err;
    size_t errlen;
    int rc;
    char *json; /* scratch for options serialisation, freed by config_load */
    size_t json_len, json_cap;
    const void *json_seen[CONFIG_MAX_OPTIONS_DEPTH + 1];
};

struct cfg_key;

/*
 * Called after a value was parsed or defaulted, with `base` the struct that
 * holds the field. It validates, canonicalises in place, or derives a default
 * for an unset value. Returns 0, or -1 after cfg_fail().
 */
typedef int (*cfg_check_fn)(struct cfg_ctx *ctx, void *base, const struct cfg_key *k);
/* Called for each string of a CFG_LIST; may replace *item. */
typedef int (*cfg_item_fn)(struct cfg_ctx *ctx, char **item);

struct cfg_key {
    const char *name;
    enum cfg_type type;
    size_t offset;
    size_t aux;            /* CFG_LIST, CFG_OPERATORS: offset of the count */
    const char *def;       /* default as text (lists: comma separated); NULL = unset */
    double min, max;       /* CFG_INT, CFG_NUM: inclusive range */
    const char *const *names; /* CFG_ENUM: NULL-terminated, index = value */
    const struct cfg_key *sub; /* CFG_TABLE, CFG_OPERATORS: nested keys */
    cfg_check_fn check;
    cfg_item_fn item;
    unsigned flags;
    const char *unset; /* docs: what no value means, when def is NULL */
    const char *help;
};

extern const struct cfg_key cfg_root_keys[];
extern const struct cfg_key cfg_operator_keys[];

#define CFG_FIELD(base, off, type) ((type *)((char *)(base) + (off)))

/* Error reporting: "<file>: <path>: <reason>", returns -1. */
int cfg_fail(struct cfg_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append ".key" (or "[\"odd key\"]") to the path; returns the length to restore. */
size_t cfg_path_key(struct cfg_ctx *ctx, const char *key);
/* Append "[i]" (1-based, as Lua counts). */
size_t cfg_path_index(struct cfg_ctx *ctx, size_t i);
void cfg_path_restore(struct cfg_ctx *ctx, size_t len);
void cfg_path_set(struct cfg_ctx *ctx, const char *path);

/* The closest of `names` (NULL-terminated) to `word`, or NULL. */
const char *cfg_suggest(const char *word, const char *const *names);

/* Typed helpers shared by the walker and the environment overrides. */
const char *cfg_type_name(const struct cfg_key *k);
int cfg_find_name(const char *const *names, const char *s);
int cfg_listen_apply(struct cfg_ctx *ctx, struct config *cfg, const char *value);
int cfg_port_parse(const char *s, int *port);
int cfg_store_apply(struct cfg_ctx *ctx, struct config *cfg, const char *value);
int cfg_check_token(struct cfg_ctx *ctx, char **item);
int cfg_check_final(struct cfg_ctx *ctx, struct config *cfg);
void cfg_redis_clear(struct config_redis *r);
/* Copy url into out with any password replaced by <redacted>. */
void cfg_redact_url(const char *url, char *out, size_t outlen);

/* config_walk.c: walk the table at idx into ctx->cfg (inside lua_pcall). */
struct lua_State;
int cfg_walk(struct cfg_ctx *ctx, struct lua_State *L, int idx);
void cfg_list_free(char **items, size_t n);
/* Shortest "%.Ng" of d that reads back as d. */
void cfg_format_double(double d, char *buf, size_t n);

#endif
