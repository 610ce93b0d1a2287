/*
 * config_check: the plain-C checks behind the schema (config_schema.c), and
 * the error and key-path helpers every config file uses.
 *
 * A check validates a value the type alone cannot (listen, URLs, the Redis
 * URL, pairs, host names, ranges that span two keys), canonicalises it in
 * place (BTC/usdt -> BTC_USDT, origins and hosts to lower case) or derives a
 * default that depends on the run (token_file beside the config, node_id from
 * hostname and pid). None touches Lua, because the same checks validate the
 * environment overrides after the Lua state is gone. None echoes a token or a
 * URL that may carry a password: those messages describe the problem only.
 */
#include "config_schema.h"
#include "core/xalloc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Errors and key paths ------------------------------------------------ */

int config_fail(struct config_ctx *ctx, const char *fmt, ...)
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

static void path_append(struct config_ctx *ctx, const char *text)
{
    size_t room = sizeof(ctx->path) - ctx->path_len;
    int n = snprintf(ctx->path + ctx->path_len, room, "%s", text);

    if (n > 0) {
        ctx->path_len += (size_t)n < room ? (size_t)n : room - 1;
    }
}

size_t config_path_key(struct config_ctx *ctx, const char *key)
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

size_t config_path_index(struct config_ctx *ctx, size_t i)
{
    size_t old = ctx->path_len;
    char text[32];

    snprintf(text, sizeof(text), "[%zu]", i);
    path_append(ctx, text);
    return old;
}

void config_path_restore(struct config_ctx *ctx, size_t len)
{
    ctx->path_len = len;
    ctx->path[len] = '\0';
}

void config_path_set(struct config_ctx *ctx, const char *path)
{
    config_path_restore(ctx, 0);
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
const char *config_suggest(const char *word, const char *const *names)
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

int config_find_name(const char *const *names, const char *s)
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
int config_port_parse(const char *s, int *port)
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
        if (config_port_parse(digits, port) < 0) {
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

static int url_check(struct config_ctx *ctx, const char *s, const char *const *schemes,
                     const char *expect, unsigned flags)
{
    const char *sep = strstr(s, "://"), *auth, *end, *at;
    char *host = NULL;
    int port, i;

    if (has_space_or_control(s)) {
        return config_fail(ctx, "a URL may not contain spaces or control characters");
    }
    for (i = 0; sep && schemes[i]; i++) {
        if ((size_t)(sep - s) == strlen(schemes[i]) &&
            strncmp(s, schemes[i], (size_t)(sep - s)) == 0) {
            break;
        }
    }
    if (!sep || !schemes[i]) {
        if (flags & URL_QUIET) {
            return config_fail(ctx, "expected %s", expect);
        }
        return config_fail(ctx, "'%.100s' is not %s", s, expect);
    }
    auth = sep + 3;
    end = auth + strcspn(auth, "/?#");
    at = memchr(auth, '@', (size_t)(end - auth));
    if (at && (flags & URL_NO_USERINFO)) {
        return config_fail(ctx, "user:password@ is not allowed here");
    }
    if (at) {
        auth = at + 1;
    }
    if (split_host_port(auth, end, &host, &port) < 0 || port == 0) {
        if (flags & URL_QUIET) {
            return config_fail(ctx, "the URL's host or port is malformed");
        }
        return config_fail(ctx, "'%.100s': malformed host or port", s);
    }
    free(host);
    if ((flags & URL_NO_PATH) && *end) {
        return config_fail(ctx, "'%.100s': an origin is scheme://host[:port], without a path", s);
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

int config_listen_apply(struct config_ctx *ctx, struct config *cfg, const char *value)
{
    const char *end = value + strlen(value);
    char *host = NULL, *listen;
    size_t n;
    int port;

    if (*value != '[' &&
        memchr(value, ':', (size_t)(end - value)) != memrchr(value, ':', (size_t)(end - value))) {
        return config_fail(ctx, "'%.100s': write an IPv6 address in brackets, as [::]:8080", value);
    }
    if (split_host_port(value, end, &host, &port) < 0 || port < 0) {
        free(host);
        return config_fail(ctx, "'%.100s' is not host:port with a port from 0 to 65535", value);
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

int config_check_listen(struct config_ctx *ctx, void *base, const struct config_key *k)
{
    struct config *cfg = base;

    return config_listen_apply(ctx, cfg, cfg->listen);
}

void config_redis_clear(struct config_redis *r)
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
static int redis_parse(struct config_ctx *ctx, const char *s, struct config_redis *r)
{
    const char *auth, *end, *at, *colon;
    char *endp;
    long db = 0;

    if (strncmp(s, "rediss://", 9) == 0) {
        return config_fail(ctx, "TLS to Redis is not supported: put a TLS sidecar in front of it");
    }
    if (strncmp(s, "redis://", 8) != 0 || has_space_or_control(s)) {
        return config_fail(ctx, "expected %s", redis_form);
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
            return config_fail(ctx, "write Redis credentials as user:password@ or :password@");
        }
        r->user = colon > auth ? percent_decode(auth, colon) : NULL;
        r->password = percent_decode(colon + 1, at);
        if ((colon > auth && !r->user) || !r->password) {
            return config_fail(ctx, "bad %%-escape in the Redis credentials");
        }
        auth = at + 1;
    }
    if (split_host_port(auth, end, &r->host, &r->port) < 0 || r->port == 0) {
        return config_fail(ctx, "malformed Redis host or port; expected %s", redis_form);
    }
    if (r->port < 0) {
        r->port = 6379;
    }
    if (*end == '/' && end[1]) {
        if (!isdigit((unsigned char)end[1])) {
            return config_fail(ctx, "the Redis database must be a number; expected %s", redis_form);
        }
        db = strtol(end + 1, &endp, 10);
        if (*endp || db > 100000) {
            return config_fail(ctx, "the Redis database must be a number; expected %s", redis_form);
        }
    }
    r->db = (int)db;
    return 0;
}

int config_store_apply(struct config_ctx *ctx, struct config *cfg, const char *value)
{
    struct config_redis r = {0};
    char *store;

    if (strcmp(value, "memory") != 0 && redis_parse(ctx, value, &r) < 0) {
        config_redis_clear(&r);
        return -1;
    }
    store = xstrdup(value);
    free(cfg->store);
    cfg->store = store;
    config_redis_clear(&cfg->redis);
    cfg->redis = r;
    return 0;
}

int config_check_store(struct config_ctx *ctx, void *base, const struct config_key *k)
{
    struct config *cfg = base;

    return config_store_apply(ctx, cfg, cfg->store);
}

/* Tokens travel in headers and URLs: printable ASCII, no spaces. The value
 * itself never appears in a message. */
int config_check_token(struct config_ctx *ctx, char **item)
{
    for (const char *p = *item; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            return config_fail(ctx, "a token may only hold printable ASCII characters, no spaces");
        }
    }
    return 0;
}

/* Default: "explorer.token" in the config file's directory (DESIGN §4). */
int config_check_token_file(struct config_ctx *ctx, void *base, const struct config_key *k)
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

int config_check_public_path(struct config_ctx *ctx, char **item)
{
    if (**item != '/' || has_space_or_control(*item) || strpbrk(*item, "?#")) {
        return config_fail(ctx, "'%.100s' is not a path (starts with /, no query)", *item);
    }
    return 0;
}

static const char *const http_schemes[] = {"http", "https", NULL};
static const char *const ws_schemes[] = {"ws", "wss", NULL};

int config_check_origin(struct config_ctx *ctx, char **item)
{
    lowercase(*item);
    return url_check(ctx, *item, http_schemes, "an origin such as https://example.com",
                     URL_NO_PATH | URL_NO_USERINFO);
}

/* Default "<hostname>-<pid>": unique per process, readable in Redis. */
int config_check_node_id(struct config_ctx *ctx, void *base, const struct config_key *k)
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
    if (strlen(cfg->node_id) > 128 ||
        strspn(cfg->node_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789._:-") != strlen(cfg->node_id)) {
        return config_fail(ctx, "'%.100s': use at most 128 letters, digits and . _ : -",
                           cfg->node_id);
    }
    return 0;
}

int config_check_proxy(struct config_ctx *ctx, void *base, const struct config_key *k)
{
    char *v = *CONFIG_FIELD(base, k->offset, char *);

    return v ? url_check(ctx, v, http_schemes, "an http:// or https:// proxy URL", URL_QUIET) : 0;
}

int config_check_rest(struct config_ctx *ctx, void *base, const struct config_key *k)
{
    char *v = *CONFIG_FIELD(base, k->offset, char *);

    return v ? url_check(ctx, v, http_schemes, "an http:// or https:// URL", 0) : 0;
}

int config_check_ws_url(struct config_ctx *ctx, void *base, const struct config_key *k)
{
    char *v = *CONFIG_FIELD(base, k->offset, char *);

    return v ? url_check(ctx, v, ws_schemes, "a ws:// or wss:// URL", 0) : 0;
}

/* BTC_USDT, BTC/USDT, btc-usdt → BTC_USDT (DESIGN §3's accepted forms). */
int config_check_pair(struct config_ctx *ctx, char **item)
{
    char *s = *item;
    size_t base = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    size_t quote;

    if (base == 0 || base > 32 || s[base] == '\0' || !strchr("_/-", s[base])) {
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
    return config_fail(ctx, "'%.100s' is not a pair: write BASE_QUOTE, BASE/QUOTE or BASE-QUOTE",
                       *item);
}

int config_check_host(struct config_ctx *ctx, char **item)
{
    char *host = NULL;
    int port;
    const char *end = *item + strlen(*item);

    lowercase(*item);
    if (split_host_port(*item, end, &host, &port) < 0 || port == 0 || strlen(*item) > 253) {
        free(host);
        return config_fail(ctx, "'%.100s' is not \"host\" or \"host:port\" (no scheme or path)",
                           *item);
    }
    free(host);
    return 0;
}

int config_cidr_parse(const char *text, struct config_cidr *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    unsigned char v4[4];
    long bits = -1;

    if (n == 0 || n >= sizeof host) {
        return -1;
    }
    memcpy(host, text, n);
    host[n] = '\0';
    if (slash) {
        char *end;
        if (!isdigit((unsigned char)slash[1]) || strlen(slash + 1) > 3) {
            return -1;
        }
        bits = strtol(slash + 1, &end, 10);
        if (*end) {
            return -1;
        }
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, host, v4) == 1 && bits <= 32) {
        out->addr[10] = out->addr[11] = 0xff;
        memcpy(out->addr + 12, v4, 4);
        out->bits = bits < 0 ? 128 : 96 + (int)bits;
        return 0;
    }
    if (inet_pton(AF_INET6, host, out->addr) == 1 && bits <= 128) {
        out->bits = bits < 0 ? 128 : (int)bits;
        return 0;
    }
    return -1;
}

bool config_cidr_match(const struct config_cidr *cidr, const unsigned char addr[16])
{
    int whole = cidr->bits / 8, rest = cidr->bits % 8;

    if (memcmp(cidr->addr, addr, (size_t)whole) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return ((cidr->addr[whole] ^ addr[whole]) & mask) == 0;
}

int config_check_trusted_proxy(struct config_ctx *ctx, char **item)
{
    struct config_cidr cidr;

    if (config_cidr_parse(*item, &cidr) < 0) {
        return config_fail(ctx,
                           "'%.100s' is not an IP address or address block (192.0.2.7, "
                           "10.0.0.0/8, 2001:db8::/32)",
                           *item);
    }
    return 0;
}

int config_check_limits(struct config_ctx *ctx, void *base, const struct config_key *k)
{
    struct config_limits *l = CONFIG_FIELD(base, k->offset, struct config_limits);

    if (l->max_url_bytes > l->max_header_bytes) {
        return config_fail(ctx, "max_url_bytes (%lld) exceeds max_header_bytes (%lld)",
                           (long long)l->max_url_bytes, (long long)l->max_header_bytes);
    }
    if (l->max_per_ip > l->max_connections) {
        return config_fail(ctx, "max_per_ip (%lld) exceeds max_connections (%lld)",
                           (long long)l->max_per_ip, (long long)l->max_connections);
    }
    return 0;
}

int config_check_ws_limits(struct config_ctx *ctx, void *base, const struct config_key *k)
{
    struct config_ws *w = CONFIG_FIELD(base, k->offset, struct config_ws);

    if (w->max_per_ip > w->max_connections) {
        return config_fail(ctx, "max_per_ip (%lld) exceeds max_connections (%lld)",
                           (long long)w->max_per_ip, (long long)w->max_connections);
    }
    return 0;
}

int config_check_budget(struct config_ctx *ctx, void *base, const struct config_key *k)
{
    struct config_budget *b = CONFIG_FIELD(base, k->offset, struct config_budget);

    if ((b->requests < 0) != (b->per < 0)) {
        return config_fail(ctx, "set both requests and per, e.g. { requests = 20, per = 60 }");
    }
    return 0;
}

/* Checks that span keys and sources (file and environment). */
int config_check_final(struct config_ctx *ctx, struct config *cfg)
{
    if (cfg->role != CONFIG_ROLE_ALL && !cfg->redis.host) {
        config_path_set(ctx, "role");
        return config_fail(ctx,
                           "role '%s' needs a Redis store (store = \"redis://...\" or $REDIS_URL)",
                           config_role_name(cfg->role));
    }
    return 0;
}

/* Replace the password of scheme://user:password@host... by <redacted>. */
void config_redact_url(const char *url, char *out, size_t outlen)
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
