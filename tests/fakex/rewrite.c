/*
 * rewrite: find exchange URLs in text and substitute the fake's base URLs.
 *
 * The scan is byte-wise and allocation-free until the first hit, because
 * almost no recorded body contains a URL: the common case costs one pass and
 * returns NULL. A URL is only recognised at a word boundary (the scheme is
 * not preceded by a letter) and its host must end where host characters end,
 * so `api.venue.example.evil.org` is not taken for `api.venue.example`.
 */
#include "rewrite.h"

#include "core/xalloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum scheme_kind { SCHEME_NONE, SCHEME_HTTP, SCHEME_WS };

static int is_host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-';
}

/*
 * If a URL scheme and its separator start at s[0], return the kind and set
 * *after to the first byte of the host; else SCHEME_NONE.
 */
static enum scheme_kind scheme_at(const char *s, const char *end, const char **after)
{
    static const struct {
        const char *name;
        enum scheme_kind kind;
    } schemes[] = {
        {"https", SCHEME_HTTP},
        {"http", SCHEME_HTTP},
        {"wss", SCHEME_WS},
        {"ws", SCHEME_WS},
    };
    static const char *const seps[] = {"://", ":\\/\\/"};

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i].name);

        if ((size_t)(end - s) < n || strncasecmp(s, schemes[i].name, n) != 0) {
            continue;
        }
        for (size_t j = 0; j < sizeof(seps) / sizeof(seps[0]); j++) {
            size_t m = strlen(seps[j]);

            if ((size_t)(end - s - n) >= m && memcmp(s + n, seps[j], m) == 0) {
                *after = s + n + m;
                return schemes[i].kind;
            }
        }
    }
    return SCHEME_NONE;
}

void rewrite_scan_hosts(struct strset *hosts, const char *text)
{
    const char *end = text + strlen(text);

    for (const char *s = text; s < end; s++) {
        const char *h, *e;
        char *lower;
        int dotted = 0;

        if ((s > text && isalpha((unsigned char)s[-1])) || scheme_at(s, end, &h) == SCHEME_NONE) {
            continue;
        }
        for (e = h; e < end && is_host_char(*e); e++) {
            dotted |= *e == '.';
        }
        if (e == h || !dotted) {
            continue;
        }
        lower = xstrndup(h, (size_t)(e - h));
        for (char *c = lower; *c; c++) {
            *c = (char)tolower((unsigned char)*c);
        }
        strset_add(hosts, lower);
        free(lower);
        s = e - 1;
    }
}

/* Length of the known host at `h` (with an optional :port), or 0. */
static size_t host_len_at(const char *h, const char *end, const struct strset *hosts)
{
    size_t e = 0;

    while (h + e < end && is_host_char(h[e])) {
        e++;
    }
    for (size_t i = 0; i < hosts->n; i++) {
        if (strlen(hosts->v[i]) == e && strncasecmp(h, hosts->v[i], e) == 0) {
            if (h + e < end && h[e] == ':') {
                size_t p = e + 1;

                while (h + p < end && isdigit((unsigned char)h[p])) {
                    p++;
                }
                if (p > e + 1) {
                    e = p;
                }
            }
            return e;
        }
    }
    return 0;
}

struct outbuf {
    char *p;
    size_t len;
    size_t cap;
};

static void out_put(struct outbuf *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->p = xrealloc(o->p, o->cap);
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

char *rewrite_body(const char *body, size_t len, const struct strset *hosts, const char *http_base,
                   const char *ws_base, size_t *out_len)
{
    const char *end = body + len;
    const char *copied = body;
    struct outbuf o = {0};

    for (const char *s = body; s < end; s++) {
        const char *h;
        enum scheme_kind kind;
        size_t hl;

        if (*s != 'h' && *s != 'H' && *s != 'w' && *s != 'W') {
            continue;
        }
        if (s > body && isalpha((unsigned char)s[-1])) {
            continue;
        }
        kind = scheme_at(s, end, &h);
        if (kind == SCHEME_NONE || (hl = host_len_at(h, end, hosts)) == 0) {
            continue;
        }
        out_put(&o, copied, (size_t)(s - copied));
        out_put(&o, kind == SCHEME_HTTP ? http_base : ws_base,
                strlen(kind == SCHEME_HTTP ? http_base : ws_base));
        copied = h + hl;
        s = copied - 1;
    }
    if (!o.p) {
        return NULL;
    }
    out_put(&o, copied, (size_t)(end - copied));
    *out_len = o.len;
    return o.p;
}
