/*
 * query: parameter lists and the recorded-query matching rule.
 *
 * A request matches a recorded query when it carries at least the recorded
 * parameters with equal decoded values; the count of recorded parameters is
 * returned so that the caller can prefer the most specific fixture (the
 * bare `/ticker/24hr` body is the fallback, `?symbol=BTCUSDT` wins when the
 * request names the symbol). Lists are tiny (a handful of parameters), so
 * linear scans are the right data structure.
 */
#include "query.h"

#include "core/xalloc.h"

#include <stdlib.h>
#include <string.h>

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

size_t query_decode(const char *in, size_t len, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;

        if (in[i] == '+') {
            out[o++] = ' ';
            continue;
        }
        if (in[i] == '%' && i + 2 < len && (hi = hex_value(in[i + 1])) >= 0 &&
            (lo = hex_value(in[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
            continue;
        }
        out[o++] = in[i];
    }
    out[o] = '\0';
    return o;
}

void query_add(struct query_params *p, const char *key, const char *value)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4;
        p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
    }
    p->v[p->n].key = xstrdup(key);
    p->v[p->n].value = xstrdup(value);
    p->n++;
}

void query_add_fragment(struct query_params *p, const char *fragment)
{
    const char *eq = strchr(fragment, '=');
    char *key;

    if (!*fragment) {
        return;
    }
    if (!eq) {
        query_add(p, fragment, "");
        return;
    }
    key = xstrndup(fragment, (size_t)(eq - fragment));
    query_add(p, key, eq + 1);
    free(key);
}

void query_parse(struct query_params *p, const char *query)
{
    const char *s = query;

    if (!s) {
        return;
    }
    if (*s == '?') {
        s++;
    }
    while (*s) {
        size_t seg = strcspn(s, "&");
        const char *eq = memchr(s, '=', seg);
        size_t klen = eq ? (size_t)(eq - s) : seg;
        char *key = xmalloc(klen + 1);
        size_t vlen = eq ? seg - klen - 1 : 0;
        char *value = xmalloc(vlen + 1);

        query_decode(s, klen, key);
        query_decode(eq ? eq + 1 : "", vlen, value);
        if (seg > 0) {
            query_add(p, key, value);
        }
        free(key);
        free(value);
        s += seg;
        if (*s == '&') {
            s++;
        }
    }
}

const char *query_get(const struct query_params *p, const char *key)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->v[i].key, key) == 0) {
            return p->v[i].value;
        }
    }
    return NULL;
}

/* True when the request carries `key` with exactly `value` (any repeat). */
static int has_pair(const struct query_params *request, const char *key, const char *value)
{
    for (size_t i = 0; i < request->n; i++) {
        if (strcmp(request->v[i].key, key) == 0 && strcmp(request->v[i].value, value) == 0) {
            return 1;
        }
    }
    return 0;
}

int query_match(const struct query_params *recorded, const struct query_params *request)
{
    for (size_t i = 0; i < recorded->n; i++) {
        if (!has_pair(request, recorded->v[i].key, recorded->v[i].value)) {
            return -1;
        }
    }
    return (int)recorded->n;
}

char *query_to_text(const struct query_params *p)
{
    size_t len = 1;
    char *out, *o;

    for (size_t i = 0; i < p->n; i++) {
        len += strlen(p->v[i].key) + strlen(p->v[i].value) + 2;
    }
    out = xmalloc(len);
    o = out;
    *o = '\0';
    for (size_t i = 0; i < p->n; i++) {
        size_t kl = strlen(p->v[i].key), vl = strlen(p->v[i].value);

        if (i > 0) {
            *o++ = '&';
        }
        memcpy(o, p->v[i].key, kl);
        o += kl;
        *o++ = '=';
        memcpy(o, p->v[i].value, vl);
        o += vl;
        *o = '\0';
    }
    return out;
}

void query_free(struct query_params *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].key);
        free(p->v[i].value);
    }
    free(p->v);
    p->v = NULL;
    p->n = p->cap = 0;
}
