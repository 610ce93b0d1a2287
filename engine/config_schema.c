/*
 * config_schema: every config key, described once, and the plain-C checks
 * behind them.
 *
 * The tables below are the whole of DESIGN §6: name, type, where the value
 * lands in `struct config`, default, range, a check for formats that a type
 * alone cannot express, and the help sentence that docs/operations.md shows.
 * config.c walks them to parse, default, suggest, free and dump; nothing else
 * in the code names a key. Adding a key is adding a row (and a field, and a
 * line in the docs; test_config checks the docs list every key).
 *
 * The checks here never touch Lua: they also validate the environment
 * overrides, which are applied after the Lua state is gone. They never echo a
 * token or a URL that may carry a password.
 */
#include "config_schema.h"
#include "xalloc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Errors and key paths ------------------------------------------------ */

int cfg_fail(struct cfg_ctx *ctx, const char *fmt, ...)
{
    char reason[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (ctx->errlen == 0) {
        return -1;
    }
    if (ctx->path_len > 0) {
        snprintf(ctx->err, ctx->errlen, "%s: %s: %s", ctx->file, ctx->path, reason);
    } else {
        snprintf(ctx->err, ctx->errlen, "%s: %s", ctx->file, reason);
    }
    return -1;
}

static bool is_identifier(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_') {
        return false;
    }
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '_') {
            return false;
        }
    }
    return true;
}

static void path_append(struct cfg_ctx *ctx, const char *text)
{
    size_t room = sizeof(ctx->path) - ctx->path_len;
    int n = snprintf(ctx->path + ctx->path_len, room, "%s", text);

    if (n > 0) {
        ctx->path_len += (size_t)n < room ? (size_t)n : room - 1;
    }
}

size_t cfg_path_key(struct cfg_ctx *ctx, const char *key)
{
    size_t old = ctx->path_len;
    char quoted[80];
    size_t i;

    if (is_identifier(key)) {
        if (ctx->path_len > 0) {
            path_append(ctx, ".");
        }
        path_append(ctx, key);
        return old;
    }
    /* A key that is not an identifier is shown the way Lua would index it,
     * cut short and with unprintable bytes masked: it is user input. */
    for (i = 0; key[i] && i < 64; i++) {
        quoted[i] = isprint((unsigned char)key[i]) && key[i] != '"' ? key[i] : '?';
    }
    quoted[i] = '\0';
    path_append(ctx, "[\"");
    path_append(ctx, quoted);
    path_append(ctx, key[i] ? "...\"]" : "\"]");
    return old;
}

size_t cfg_path_index(struct cfg_ctx *ctx, size_t i)
{
    size_t old = ctx->path_len;
    char text[32];

    snprintf(text, sizeof(text), "[%zu]", i);
    path_append(ctx, text);
    return old;
}

void cfg_path_restore(struct cfg_ctx *ctx, size_t len)
{
    ctx->path_len = len;
    ctx->path[len] = '\0';
}

void cfg_path_set(struct cfg_ctx *ctx, const char *path)
{
    cfg_path_restore(ctx, 0);
    path_append(ctx, path);
}

/* ---- Did you mean -------------------------------------------------------- */

#define SUGGEST_MAX_LEN 64

/* Optimal string alignment distance: Levenshtein plus adjacent swaps, so
 * "poll_evrey" is one edit from "poll_every". Both strings are short. */
static size_t osa_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t d[SUGGEST_MAX_LEN + 1][SUGGEST_MAX_LEN + 1];

    for (size_t i = 0; i <= la; i++) {
        d[i][0] = i;
    }
    for (size_t j = 0; j <= lb; j++) {
        d[0][j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = d[i - 1][j] + 1;

            if (d[i][j - 1] + 1 < best) {
                best = d[i][j - 1] + 1;
            }
            if (d[i - 1][j - 1] + cost < best) {
                best = d[i - 1][j - 1] + cost;
            }
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best) {
                best = d[i - 2][j - 2] + 1;
            }
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/*
 * The nearest name within two edits (one for words of three letters or
 * fewer, where two edits reach almost anything), else a name that starts
 * with the word or that the word starts with ("max_conn", "poll_every_s").
 */
const char *cfg_suggest(const char *word, const char *const *names)
{
    size_t lw = strlen(word);
    size_t limit = lw <= 3 ? 1 : 2;
    const char *best = NULL;
    size_t best_d = limit + 1;

    if (lw == 0 || lw > SUGGEST_MAX_LEN) {
        return NULL;
    }
    for (size_t i = 0; names[i]; i++) {
        size_t ln = strlen(names[i]);

        if (ln <= SUGGEST_MAX_LEN) {
            size_t d = osa_distance(word, lw, names[i], ln);

            if (d < best_d) {
                best = names[i];
                best_d = d;
            }
        }
    }
    if (best || lw < 3) {
        return best;
    }
    for (size_t i = 0; names[i]; i++) {
        size_t ln = strlen(names[i]);

        if (strncmp(names[i], word, lw) == 0 || (ln >= 3 && strncmp(word, names[i], ln) == 0)) {
            return names[i];
        }
    }
    return NULL;
}

int cfg_find_name(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], s) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- Small parsers ----------------------------------------------------- */

/* A decimal port, 0-65535, digits only (no sign, no spaces). */
int cfg_port_parse(const char *s, int *port)
{
    long v = 0;
    size_t n = 0;

    for (; s[n]; n++) {
        if (!isdigit((unsigned char)s[n]) || n >= 5) {
            return -1;
        }
        v = v * 10 + (s[n] - '0');
    }
    if (n == 0 || v > 65535) {
        return -1;
    }
    *port = (int)v;
    return 0;
}

static bool has_space_or_control(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f) {
            return true;
        }
    }
    return false;
}

static bool is_host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

/*
 * Split "host:port" or "[v6]:port" (end marks the end of the authority).
 * The host is returned without brackets; *port is -1 when there is none.
 * Returns -1 on a malformed host or port.
 */
static int split_host_port(const char *s, const char *end, char **host, int *port)
{
    const char *h = s, *he, *colon;
    char digits[8];

    *port = -1;
    if (*s == '[') {
        h = s + 1;
        he = memchr(h, ']', (size_t)(end - h));
        if (!he || he == h) {
            return -1;
        }
        for (const char *p = h; p < he; p++) {
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.') {
                return -1;
            }
        }
        colon = he + 1 < end ? he + 1 : NULL;
        if (colon && *colon != ':') {
            return -1;
        }
    } else {
        colon = memchr(s, ':', (size_t)(end - s));
        he = colon ? colon : end;
        if (he == h) {
            return -1;
        }
        for (const char *p = h; p < he; p++) {
            if (!is_host_char(*p)) {
                return -1;
            }
        }
    }
    if (colon) {
        size_t n = (size_t)(end - colon - 1);

        if (n == 0 || n >= sizeof(digits)) {
            return -1;
        }
        memcpy(digits, colon + 1, n);
        digits[n] = '\0';
        if (cfg_port_parse(digits, port) < 0) {
            return -1;
        }
    }
    *host = xstrndup(h, (size_t)(he - h));
    return 0;
}

enum {
    URL_NO_PATH = 1,     /* an origin: scheme://host[:port] and nothing else */
    URL_NO_USERINFO = 2, /* no user:password@ */
    URL_QUIET = 4,       /* may hold a password: do not echo it */
};

static int url_check(struct cfg_ctx *ctx, const char *s, const char *const *schemes,
                     const char *expect, unsigned flags)
{
    const char *sep = strstr(s, "://"), *auth, *end, *at;
    char *host = NULL;
    int port, i;

    if (has_space_or_control(s)) {
        return cfg_fail(ctx, "a URL may not contain spaces or control characters");
    }
    for (i = 0; sep && schemes[i]; i++) {
        if ((size_t)(sep - s) == strlen(schemes[i]) && strncmp(s, schemes[i], (size_t)(sep - s)) == 0) {
            break;
        }
    }
    if (!sep || !schemes[i]) {
        if (flags & URL_QUIET) {
            return cfg_fail(ctx, "expected %s", expect);
        }
        return cfg_fail(ctx, "'%.100s' is not %s", s, expect);
    }
    auth = sep + 3;
    end = auth + strcspn(auth, "/?#");
    at = memchr(auth, '@', (size_t)(end - auth));
    if (at && (flags & URL_NO_USERINFO)) {
        return cfg_fail(ctx, "user:password@ is not allowed here");
    }
    if (at) {
        auth = at + 1;
    }
    if (split_host_port(auth, end, &host, &port) < 0 || port == 0) {
        if (flags & URL_QUIET) {
            return cfg_fail(ctx, "the URL's host or port is malformed");
        }
        return cfg_fail(ctx, "'%.100s': malformed host or port", s);
    }
    free(host);
    if ((flags & URL_NO_PATH) && *end) {
        return cfg_fail(ctx, "'%.100s': an origin is scheme://host[:port], without a path", s);
    }
    return 0;
}

static void lowercase(char *s)
{
    for (; *s; s++) {
        *s = (char)tolower((unsigned char)*s);
    }
}

/* ---- Checks ---------------------------------------------------------------- */

int cfg_listen_apply(struct cfg_ctx *ctx, struct config *cfg, const char *value)
{
    const char *end = value + strlen(value);
    char *host = NULL, *listen;
    size_t n;
    int port;

    if (*value != '[' && memchr(value, ':', (size_t)(end - value)) !=
                             memrchr(value, ':', (size_t)(end - value))) {
        return cfg_fail(ctx, "'%.100s': write an IPv6 address in brackets, as [::]:8080", value);
    }
    if (split_host_port(value, end, &host, &port) < 0 || port < 0) {
        free(host);
        return cfg_fail(ctx, "'%.100s' is not host:port with a port from 0 to 65535", value);
    }
    n = strlen(host) + 16;
    listen = xmalloc(n);
    snprintf(listen, n, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    free(cfg->listen);
    free(cfg->listen_host);
    cfg->listen = listen;
    cfg->listen_host = host;
    cfg->listen_port = port;
    return 0;
}

static int check_listen(struct cfg_ctx *ctx, void *base, const struct cfg_key *k)
{
    struct config *cfg = base;

    return cfg_listen_apply(ctx, cfg, cfg->listen);
}

void cfg_redis_clear(struct config_redis *r)
{
    free(r->host);
    free(r->user);
    free(r->password);
    memset(r, 0, sizeof(*r));
}

/* Percent-decode [s, end) into a new string; NULL if an escape is bad. */
static char *percent_decode(const char *s, const char *end)
{
    char *out = xmalloc((size_t)(end - s) + 1), *o = out;

    while (s < end) {
        if (*s == '%') {
            char hex[3] = {0};

            if (end - s < 3 || !isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2])) {
                free(out);
                return NULL;
            }
            hex[0] = s[1];
            hex[1] = s[2];
            *o++ = (char)strtol(hex, NULL, 16);
            s += 3;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

static const char redis_form[] = "\"memory\" or redis://[user:password@]host[:port][/db]";

/* redis://[user:password@]host[:port][/db]; never echoes the value. */
static int redis_parse(struct cfg_ctx *ctx, const char *s, struct config_redis *r)
{
    const char *auth, *end, *at, *colon;
    char *endp;
    long db = 0;

    if (strncmp(s, "rediss://", 9) == 0) {
        return cfg_fail(ctx, "TLS to Redis is not supported: put a TLS sidecar in front of it");
    }
    if (strncmp(s, "redis://", 8) != 0 || has_space_or_control(s)) {
        return cfg_fail(ctx, "expected %s", redis_form);
    }
    auth = s + 8;
    end = auth + strcspn(auth, "/");
    at = NULL;
    for (const char *p = auth; p < end; p++) {
        at = *p == '@' ? p : at;
    }
    if (at) {
        colon = memchr(auth, ':', (size_t)(at - auth));
        if (!colon) {
            return cfg_fail(ctx, "write Redis credentials as user:password@ or :password@");
        }
        r->user = colon > auth ? percent_decode(auth, colon) : NULL;
        r->password = percent_decode(colon + 1, at);
        if ((colon > auth && !r->user) || !r->password) {
            return cfg_fail(ctx, "bad %%-escape in the Redis credentials");
        }
        auth = at + 1;
    }
    if (split_host_port(auth, end, &r->host, &r->port) < 0 || r->port == 0) {
        return cfg_fail(ctx, "malformed Redis host or port; expected %s", redis_form);
    }
    if (r->port < 0) {
        r->port = 6379;
    }
    if (*end == '/' && end[1]) {
        if (!isdigit((unsigned char)end[1])) {
            return cfg_fail(ctx, "the Redis database must be a number; expected %s", redis_form);
        }
        db = strtol(end + 1, &endp, 10);
        if (*endp || db > 100000) {
            return cfg_fail(ctx, "the Redis database must be a number; expected %s", redis_form);
        }
    }
    r->db = (int)db;
    return 0;
}

int cfg_store_apply(struct cfg_ctx *ctx, struct config *cfg, const char *value)
{
    struct config_redis r = {0};
    char *store;

    if (strcmp(value, "memory") != 0 && redis_parse(ctx, value, &r) < 0) {
        cfg_redis_clear(&r);
        return -1;
    }
    store = xstrdup(value);
    free(cfg->store);
    cfg->store = store;
    cfg_redis_clear(&cfg->redis);
    cfg->redis = r;
    return 0;
}

static int check_store(struct cfg_ctx *ctx, void *base, const struct cfg_key *k)
{
    struct config *cfg = base;

    return cfg_store_apply(ctx, cfg, cfg->store);
}

/* Tokens travel in headers and URLs: printable ASCII, no spaces. The value
 * itself never appears in a message. */
int cfg_check_token(struct cfg_ctx *ctx, char **item)
{
    for (const char *p = *item; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            return cfg_fail(ctx, "a token may only hold printable ASCII characters, no spaces");
        }
    }
    return 0;
}

/* Default: "explorer.token" in the config file's directory (DESIGN §4). */
static int check_token_file(struct cfg_ctx *ctx, void *base, const struct cfg_key *k)
{
    struct config *cfg = base;
    const char *slash = strrchr(ctx->file, '/');
    size_t dir = slash ? (size_t)(slash - ctx->file) + 1 : 0;

    if (!cfg->token_file) {
        cfg->token_file = xmalloc(dir + sizeof("explorer.token"));
        memcpy(cfg->token_file, ctx->file, dir);
        memcpy(cfg->token_file + dir, "explorer.token", sizeof("explorer.token"));
    }
    return 0;
}

static int check_public_path(struct cfg_ctx *ctx, char **item)
{
    if (**item != '/' || has_space_or_control(*item) || strpbrk(*item, "?#")) {
        return cfg_fail(ctx, "'%.100s' is not a path (starts with /, no query)", *item);
    }
    return 0;
}

static const char *const http_schemes[] = {"http", "https", NULL};
static const char *const ws_schemes[] = {"ws", "wss", NULL};

static int check_origin(struct cfg_ctx *ctx, char **item)
{
    lowercase(*item);
    return url_check(ctx, *item, http_schemes, "an origin such as https://example.com",
                     URL_NO_PATH | URL_NO_USERINFO);
}

/* Default "<hostname>-<pid>": unique per process, readable in Redis. */
static int check_node_id(struct cfg_ctx *ctx, void *base, const struct cfg_key *k)
{
    struct config *cfg = base;

    if (!cfg->node_id) {
        char host[256] = "node", id[300];

        if (gethostname(host, sizeof(host) - 1) < 0) {
            strcpy(host, "node");
        }
        host[sizeof(host) - 1] = '\0';
        snprintf(id, sizeof(id), "%s-%ld", host, (long)getpid());
        cfg->node_id = xstrdup(id);
        return 0;
    }
    if (strlen(cfg->node_id) > 128 || strspn(cfg->node_id,
                                             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789._:-") != strlen(cfg->node_id)) {
        return cfg_fail(ctx, "'%.100s': use at most 128 letters, digits and . _ : -",
                        cfg->node_id);
    }
    return 0;
}

static int check_proxy(struct cfg_ctx *ctx, void *base, const struct cfg_key *k)
{
    char *v = *CFG_FIELD(base, k->offset, char *);

    return v ? url_check(ctx, v, http_schemes, "an http:// or https:// proxy URL", URL_QUIET) : 0;
}

static int check_rest(struct cfg_ctx *ctx, void *base, const struct cfg_key *k)
{
    char *v = *CFG_FIELD(base, k->offset, char *);

    return v ? url_check(ctx, v, http_schemes, "an http:// or https:// URL", 0) : 0;
}

static int check_ws_url(struct cfg_ctx *ctx, void *base, const struct cfg_key *k)
{
    char *v = *CFG_FIELD(base, k->offset, char *);

    return v ? url_check(ctx, v, ws_schemes, "a ws:// or wss:// URL", 0) : 0;
}

/* BTC_USDT, BTC/USDT, btc-usdt → BTC_USDT (DESIGN §3's accepted forms). */
static int check_pair(struct cfg_ctx *ctx, char **item)
{
    char *s = *item;
    size_t base = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    size_t quote = base + 1;

    if (base == 0 || base > 32 || !strchr("_/-", s[base]) || s[base] == '\0') {
        goto bad;
    }
    quote = strspn(s + base + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    if (quote == 0 || quote > 32 || s[base + 1 + quote] != '\0') {
        goto bad;
    }
    s[base] = '_';
    for (; *s; s++) {
        *s = (char)toupper((unsigned char)*s);
    }
    return 0;
bad:
    return cfg_fail(ctx, "'%.100s' is not a pair: write BASE_QUOTE, BASE/QUOTE or BASE-QUOTE",
                    *item);
}

static int check_host(struct cfg_ctx *ctx, char **item)
{
    char *host = NULL;
    int port;
    const char *end = *item + strlen(*item);

    lowercase(*item);
    if (split_host_port(*item, end, &host, &port) < 0 || port >= 0 ||
        strlen(*item) > 253) {
        free(host);
        return cfg_fail(ctx, "'%.100s' is not a host name (no scheme, port or path)", *item);
    }
    free(host);
    return 0;
}

static int check_limits(struct cfg_ctx *ctx, void *base, const struct cfg_key *k)
{
    struct config_limits *l = CFG_FIELD(base, k->offset, struct config_limits);

    if (l->max_url_bytes > l->max_header_bytes) {
        return cfg_fail(ctx, "max_url_bytes (%lld) exceeds max_header_bytes (%lld)",
                        (long long)l->max_url_bytes, (long long)l->max_header_bytes);
    }
    if (l->max_per_ip > l->max_connections) {
        return cfg_fail(ctx, "max_per_ip (%lld) exceeds max_connections (%lld)",
                        (long long)l->max_per_ip, (long long)l->max_connections);
    }
    return 0;
}

static int check_ws_limits(struct cfg_ctx *ctx, void *base, const struct cfg_key *k)
{
    struct config_ws *w = CFG_FIELD(base, k->offset, struct config_ws);

    if (w->max_per_ip > w->max_connections) {
        return cfg_fail(ctx, "max_per_ip (%lld) exceeds max_connections (%lld)",
                        (long long)w->max_per_ip, (long long)w->max_connections);
    }
    return 0;
}

static int check_budget(struct cfg_ctx *ctx, void *base, const struct cfg_key *k)
{
    struct config_budget *b = CFG_FIELD(base, k->offset, struct config_budget);

    if ((b->requests < 0) != (b->per < 0)) {
        return cfg_fail(ctx, "set both requests and per, e.g. { requests = 20, per = 60 }");
    }
    return 0;
}

/* Checks that span keys and sources (file and environment). */
int cfg_check_final(struct cfg_ctx *ctx, struct config *cfg)
{
    if (cfg->role != CONFIG_ROLE_ALL && !cfg->redis.host) {
        cfg_path_set(ctx, "role");
        return cfg_fail(ctx, "role '%s' needs a Redis store (store = \"redis://...\" or $REDIS_URL)",
                        config_role_name(cfg->role));
    }
    return 0;
}

/* Replace the password of scheme://user:password@host... by <redacted>. */
void cfg_redact_url(const char *url, char *out, size_t outlen)
{
    const char *sep = strstr(url, "://"), *auth, *end, *at = NULL, *colon;

    if (!sep) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    auth = sep + 3;
    end = auth + strcspn(auth, "/?#");
    for (const char *p = auth; p < end; p++) {
        at = *p == '@' ? p : at;
    }
    if (!at) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon) {
        colon = auth - 1; /* "user@" alone may be a token: hide all of it */
    }
    snprintf(out, outlen, "%.*s<redacted>%s", (int)(colon + 1 - url), url, at);
}

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

const char *cfg_type_name(const struct cfg_key *k)
{
    switch (k->type) {
    case CFG_BOOL:
        return "boolean";
    case CFG_INT:
        return "integer";
    case CFG_NUM:
        return "number";
    case CFG_STR:
    case CFG_ENUM:
        return "string";
    case CFG_LIST:
        return "list of strings";
    case CFG_TABLE:
        return "table";
    case CFG_OPERATORS:
        return "table of name = table";
    case CFG_JSON:
        return "table (free-form)";
    }
    return "?";
}

/* ---- The schema ------------------------------------------------------------ */

#define LIMIT(f) offsetof(struct config_limits, f)
#define WS(f) offsetof(struct config_ws, f)
#define OP(f) offsetof(struct config_operator, f)
#define CFG(f) offsetof(struct config, f)

static const struct cfg_key limits_keys[] = {
    {.name = "max_header_bytes", .type = CFG_INT, .offset = LIMIT(max_header_bytes),
     .def = "8192", .min = 1024, .max = 1048576,
     .help = "Largest request head (request line and headers) the front door accepts; "
             "larger heads get 431."},
    {.name = "max_url_bytes", .type = CFG_INT, .offset = LIMIT(max_url_bytes), .def = "4096",
     .min = 256, .max = 1048576,
     .help = "Longest request target (path and query); at most max_header_bytes."},
    {.name = "max_per_ip", .type = CFG_INT, .offset = LIMIT(max_per_ip), .def = "256", .min = 1,
     .max = 1000000, .help = "Open connections allowed from one client address."},
    {.name = "max_connections", .type = CFG_INT, .offset = LIMIT(max_connections),
     .def = "10000", .min = 1, .max = 1000000,
     .help = "Open connections allowed in total, REST and WebSocket."},
    {.name = "head_timeout_ms", .type = CFG_INT, .offset = LIMIT(head_timeout_ms),
     .def = "2000", .min = 100, .max = 600000,
     .help = "Time a client has to send its request head before it gets 408."},
    {0},
};

static const struct cfg_key ws_keys[] = {
    {.name = "max_connections", .type = CFG_INT, .offset = WS(max_connections),
     .def = "10000", .min = 1, .max = 1000000, .help = "WebSocket connections in total."},
    {.name = "max_per_ip", .type = CFG_INT, .offset = WS(max_per_ip), .def = "256", .min = 1,
     .max = 1000000, .help = "WebSocket connections from one client address."},
    {.name = "max_subs", .type = CFG_INT, .offset = WS(max_subs), .def = "64", .min = 1,
     .max = 100000, .help = "Subscriptions per connection."},
    {.name = "max_queue_bytes", .type = CFG_INT, .offset = WS(max_queue_bytes),
     .def = "1048576", .min = 4096, .max = 1073741824,
     .help = "A client's outbound queue; past it the client is closed with 1008."},
    {.name = "snapshot_chunk", .type = CFG_INT, .offset = WS(snapshot_chunk), .def = "500",
     .min = 1, .max = 100000, .help = "Tickers per snapshot message after a subscribe."},
    {.name = "max_message_bytes", .type = CFG_INT, .offset = WS(max_message_bytes),
     .def = "65536", .min = 256, .max = 16777216,
     .help = "Largest message a client may send."},
    {0},
};

static const struct cfg_key compat_keys[] = {
    {.name = "listener_max_s", .type = CFG_INT,
     .offset = offsetof(struct config_compat, listener_max_s), .def = "3000", .min = 1,
     .max = 604800, .help = "Seconds after which /currency_listener closes, as the old service did."},
    {0},
};

static const struct cfg_key budget_keys[] = {
    {.name = "requests", .type = CFG_INT, .offset = offsetof(struct config_budget, requests),
     .min = 1, .max = 1000000, .unset = "operator's own",
     .help = "HTTP calls the operator may make per `per` seconds; calls beyond wait."},
    {.name = "per", .type = CFG_NUM, .offset = offsetof(struct config_budget, per),
     .min = 0.001, .max = 86400, .unset = "operator's own",
     .help = "The budget's window in seconds; set together with requests."},
    {0},
};

const struct cfg_key cfg_operator_keys[] = {
    {.name = "enabled", .type = CFG_BOOL, .offset = OP(enabled), .def = "true",
     .help = "false keeps the operator loaded but stopped (state `disabled`)."},
    {.name = "rest", .type = CFG_STR, .offset = OP(rest), .check = check_rest,
     .unset = "operator's own", .help = "Base http(s) URL replacing the operator's `rest`."},
    {.name = "ws", .type = CFG_STR, .offset = OP(ws), .check = check_ws_url,
     .unset = "operator's own", .help = "ws(s) URL replacing the operator's `ws`."},
    {.name = "poll_every", .type = CFG_NUM, .offset = OP(poll_every), .min = 0.1, .max = 86400,
     .unset = "operator's own", .help = "Seconds between poll() calls."},
    {.name = "pairs", .type = CFG_LIST, .offset = OP(pairs), .aux = OP(n_pairs),
     .item = check_pair, .unset = "all",
     .help = "Allow-list of pairs (BTC_USDT, BTC/USDT or btc-usdt; stored as BTC_USDT); "
             "a short list lets the operator use per-symbol endpoints."},
    {.name = "stale_after_ms", .type = CFG_INT, .offset = OP(stale_after_ms), .min = 100,
     .max = 86400000, .unset = "global stale_after_ms",
     .help = "Age after which this operator's tickers count as stale."},
    {.name = "budget", .type = CFG_TABLE, .offset = OP(budget), .sub = budget_keys,
     .check = check_budget, .help = "HTTP budget: { requests = N, per = seconds }."},
    {.name = "allow_hosts", .type = CFG_LIST, .offset = OP(allow_hosts),
     .aux = OP(n_allow_hosts), .item = check_host, .unset = "{}",
     .help = "Hosts the operator may reach besides those of its rest and ws URLs."},
    {.name = "max_frame_bytes", .type = CFG_INT, .offset = OP(max_frame_bytes), .min = 1024,
     .max = 1073741824, .unset = "engine default",
     .help = "Largest WebSocket frame accepted from the exchange."},
    {.name = "options", .type = CFG_JSON, .offset = OP(options_json), .def = "{}",
     .help = "Free-form table handed to the operator (strings, numbers, booleans, tables; "
             "at most 16 levels, 1 MiB as JSON)."},
    {0},
};

const struct cfg_key cfg_root_keys[] = {
    {.name = "listen", .type = CFG_STR, .offset = CFG(listen), .def = "0.0.0.0:8080",
     .check = check_listen,
     .help = "host:port of the one port (REST and WebSocket); port 0 picks a free port. "
             "$PORT replaces the port."},
    {.name = "port_file", .type = CFG_STR, .offset = CFG(port_file), .unset = "none",
     .help = "File the bound port is written to once listening (useful with port 0)."},
    {.name = "auth", .type = CFG_BOOL, .offset = CFG(auth), .def = "true",
     .help = "false serves rate data without tokens (a warning is logged at start)."},
    {.name = "tokens", .type = CFG_LIST, .offset = CFG(tokens), .aux = CFG(n_tokens),
     .item = cfg_check_token, .flags = CFG_SECRET,
     .help = "Bearer tokens accepted by the API; $API_AUTHENTICATION_TOKEN (comma list) "
             "replaces them. None: one is generated into token_file."},
    {.name = "token_file", .type = CFG_STR, .offset = CFG(token_file), .check = check_token_file,
     .unset = "explorer.token beside the config file",
     .help = "Where a generated token is written (mode 0600) when no token is configured."},
    {.name = "admin_tokens", .type = CFG_LIST, .offset = CFG(admin_tokens),
     .aux = CFG(n_admin_tokens), .item = cfg_check_token, .flags = CFG_SECRET,
     .help = "Tokens for /v1/admin/*; none configured: those routes answer 403."},
    {.name = "public_paths", .type = CFG_LIST, .offset = CFG(public_paths),
     .aux = CFG(n_public_paths), .item = check_public_path,
     .def = "/healthz,/readyz,/metrics,/,/docs,/openapi.json",
     .help = "Paths served without a token."},
    {.name = "allowed_origins", .type = CFG_LIST, .offset = CFG(allowed_origins),
     .aux = CFG(n_allowed_origins), .item = check_origin,
     .help = "CORS origins (https://host[:port]); when set, WebSocket upgrades from other "
             "origins are refused."},
    {.name = "limits", .type = CFG_TABLE, .offset = CFG(limits), .sub = limits_keys,
     .check = check_limits, .help = "Front-door limits."},
    {.name = "access_log", .type = CFG_BOOL, .offset = CFG(access_log), .def = "false",
     .help = "Log one line per request (tokens are never logged)."},
    {.name = "operators_dir", .type = CFG_STR, .offset = CFG(operators_dir),
     .def = "operators", .help = "Directory scanned for operator files (*.lua)."},
    {.name = "operators", .type = CFG_OPERATORS, .offset = CFG(operators),
     .aux = CFG(n_operators), .sub = cfg_operator_keys, .unset = "{}",
     .help = "Per-operator settings, keyed by operator name ([a-z0-9_]+)."},
    {.name = "ca_file", .type = CFG_STR, .offset = CFG(ca_file), .unset = "none",
     .help = "Extra CA certificates (PEM) trusted for outbound TLS, besides the system store."},
    {.name = "store", .type = CFG_STR, .offset = CFG(store), .def = "memory",
     .check = check_store, .flags = CFG_URL_CREDS,
     .help = "\"memory\" or redis://[user:password@]host[:port][/db]; $REDIS_URL replaces it."},
    {.name = "role", .type = CFG_ENUM, .offset = CFG(role), .def = "all", .names = role_names,
     .help = "all (scrape and serve), api (serve from Redis) or scraper (fill Redis); "
             "api and scraper need a Redis store."},
    {.name = "node_id", .type = CFG_STR, .offset = CFG(node_id), .check = check_node_id,
     .unset = "hostname-pid", .help = "This node's name in Redis leases."},
    {.name = "lease_ttl_ms", .type = CFG_INT, .offset = CFG(lease_ttl_ms), .def = "15000",
     .min = 1000, .max = 3600000,
     .help = "TTL of an exchange's Redis lease; another node takes over within it."},
    {.name = "stale_after_ms", .type = CFG_INT, .offset = CFG(stale_after_ms), .def = "60000",
     .min = 100, .max = 86400000, .help = "Age after which a ticker counts as stale."},
    {.name = "outlier_pct", .type = CFG_NUM, .offset = CFG(outlier_pct), .def = "5",
     .min = 0.01, .max = 100,
     .help = "A mid further than this percentage from the median of the others is excluded "
             "from aggregates."},
    {.name = "ws", .type = CFG_TABLE, .offset = CFG(ws), .sub = ws_keys,
     .check = check_ws_limits, .help = "WebSocket server limits."},
    {.name = "compat", .type = CFG_TABLE, .offset = CFG(compat), .sub = compat_keys,
     .help = "The old service's endpoints."},
    {.name = "log_level", .type = CFG_ENUM, .offset = CFG(log_level), .def = "info",
     .names = level_names, .help = "debug, info, warn or error."},
    {.name = "log_format", .type = CFG_ENUM, .offset = CFG(log_format), .def = "text",
     .names = format_names, .help = "text or json (one object per line)."},
    {.name = "proxy", .type = CFG_STR, .offset = CFG(proxy), .check = check_proxy,
     .flags = CFG_URL_CREDS, .unset = "none",
     .help = "Outbound HTTP proxy URL for both HTTP and WebSocket connections."},
    {0},
};
