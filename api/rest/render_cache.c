/*
 * render_cache: a small map of refcounted rendered bodies.
 *
 * Why so small. Keys are normalized queries; the full dump is the one that
 * matters, a few filtered views may ride along, and a client sending ever
 * new cursors must not grow memory: the map holds at most max_entries and
 * evicts the oldest render when full. Lookups are linear: the map is tiny
 * and a string compare is cheaper than the render it saves.
 *
 * Why a reference count. MHD sends a body after the handler returns, maybe
 * slowly; meanwhile a newer render may replace the entry. The response holds
 * its own reference, so the bytes stay valid until MHD releases them.
 *
 * ETag: FNV-1a 64 of the identity body; the gzip variant carries the same
 * hash with a "-gz" suffix, as it is a different representation. The body
 * holds `generated` and every ticker's age, so two renders at different
 * times never share a tag: a 304 means "the render you have is the current
 * cached one", which is what a poller wants to know.
 */
#include "render_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "core/xalloc.h"
#include "core/hash.h"

struct render_entry {
    atomic_size_t refs;
    char *key;
    uint64_t generation;
    int64_t generated_ms;
    char *body;
    size_t len;
    char etag[32];
    char etag_gz[32];
    pthread_mutex_t gz_lock; /* guards gz, gz_len, gz_failed */
    char *gz;
    size_t gz_len;
    bool gz_failed;
};

struct render_cache {
    pthread_mutex_t lock; /* guards slots */
    struct render_entry **slots;
    size_t max_entries;
    int64_t max_age_ms;
};

struct render_cache *render_cache_new(size_t max_entries, int64_t max_age_ms)
{
    struct render_cache *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    c->max_entries = max_entries ? max_entries : 1;
    c->slots = xcalloc(c->max_entries, sizeof(struct render_entry *));
    c->max_age_ms = max_age_ms;
    return c;
}

void render_cache_free(struct render_cache *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->max_entries; i++) {
        render_entry_release(c->slots[i]);
    }
    free(c->slots);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void render_entry_ref(struct render_entry *e)
{
    atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
}

void render_entry_release(void *entry)
{
    struct render_entry *e = entry;
    if (!e || atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    pthread_mutex_destroy(&e->gz_lock);
    free(e->key);
    free(e->body);
    free(e->gz);
    free(e);
}

static bool entry_fresh(const struct render_cache *c, const struct render_entry *e,
                        uint64_t generation, int64_t now_ms)
{
    int64_t age = now_ms - e->generated_ms;
    return e->generation == generation && age <= c->max_age_ms && age >= -c->max_age_ms;
}

struct render_entry *render_cache_get(struct render_cache *c, const char *key, uint64_t generation,
                                      int64_t now_ms)
{
    struct render_entry *found = NULL;

    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->max_entries; i++) {
        struct render_entry *e = c->slots[i];
        if (e && strcmp(e->key, key) == 0) {
            if (entry_fresh(c, e, generation, now_ms)) {
                render_entry_ref(e);
                found = e;
            }
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

static struct render_entry *entry_new(const char *key, uint64_t generation, int64_t generated_ms,
                                      struct jbuf *body)
{
    struct render_entry *e = xcalloc(1, sizeof *e);
    atomic_init(&e->refs, 1);
    e->key = xstrdup(key);
    e->generation = generation;
    e->generated_ms = generated_ms;
    e->len = body->len;
    e->body = body->data ? body->data : xstrdup("");
    jbuf_init(body);
    uint64_t h = hash_bytes(HASH_FNV_OFFSET, e->body, e->len);
    snprintf(e->etag, sizeof e->etag, "\"%016llx\"", (unsigned long long)h);
    snprintf(e->etag_gz, sizeof e->etag_gz, "\"%016llx-gz\"", (unsigned long long)h);
    pthread_mutex_init(&e->gz_lock, NULL);
    return e;
}

/* The slot for key: its current one, else an empty one, else the oldest. */
static size_t slot_for(const struct render_cache *c, const char *key)
{
    size_t empty = c->max_entries;
    size_t oldest = 0;

    for (size_t i = 0; i < c->max_entries; i++) {
        struct render_entry *e = c->slots[i];
        if (!e) {
            if (empty == c->max_entries) {
                empty = i;
            }
            continue;
        }
        if (strcmp(e->key, key) == 0) {
            return i;
        }
        if (c->slots[oldest] && e->generated_ms < c->slots[oldest]->generated_ms) {
            oldest = i;
        }
    }
    return empty < c->max_entries ? empty : oldest;
}

struct render_entry *render_cache_put(struct render_cache *c, const char *key, uint64_t generation,
                                      int64_t generated_ms, struct jbuf *body)
{
    struct render_entry *e = entry_new(key, generation, generated_ms, body);
    struct render_entry *old = NULL;

    render_entry_ref(e); /* the caller's */
    pthread_mutex_lock(&c->lock);
    size_t i = slot_for(c, key);
    struct render_entry *cur = c->slots[i];
    if (cur && strcmp(cur->key, key) == 0 && cur->generated_ms > generated_ms) {
        old = e; /* a newer render got there first: keep it */
    } else {
        old = cur;
        c->slots[i] = e;
    }
    pthread_mutex_unlock(&c->lock);
    render_entry_release(old);
    return e;
}

const char *render_entry_body(const struct render_entry *e, size_t *len)
{
    *len = e->len;
    return e->body;
}

int64_t render_entry_generated(const struct render_entry *e)
{
    return e->generated_ms;
}

const char *render_entry_etag(const struct render_entry *e, bool gzip)
{
    return gzip ? e->etag_gz : e->etag;
}

/* gzip (RFC 1952) of the body at the default level; 0 or -1. */
static int compress_body(const struct render_entry *e, char **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        return -1;
    }
    size_t cap = deflateBound(&z, (uLong)e->len);
    char *buf = xmalloc(cap ? cap : 1);
    z.next_in = (Bytef *)e->body;
    z.avail_in = (uInt)e->len;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t n = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

int render_entry_gzip(struct render_entry *e, const char **data, size_t *len)
{
    int rc = 0;

    pthread_mutex_lock(&e->gz_lock);
    if (!e->gz && !e->gz_failed && compress_body(e, &e->gz, &e->gz_len) < 0) {
        e->gz_failed = true;
    }
    if (e->gz_failed) {
        rc = -1;
    } else {
        *data = e->gz;
        *len = e->gz_len;
    }
    pthread_mutex_unlock(&e->gz_lock);
    return rc;
}

/* Next comma-separated item of *s, trimmed, as [start, start + len). */
static bool next_item(const char **s, const char **start, size_t *len)
{
    const char *p = *s;
    while (*p == ' ' || *p == '\t' || *p == ',') {
        p++;
    }
    if (!*p) {
        return false;
    }
    const char *end = strchr(p, ',');
    if (!end) {
        end = p + strlen(p);
    }
    *s = end;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    *start = p;
    *len = (size_t)(end - p);
    return true;
}

/* q=0 (q=0, q=0.0, q=0.000) among an item's parameters. */
static bool refused(const char *params, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if ((params[i] == 'q' || params[i] == 'Q') && params[i + 1] == '=') {
            const char *v = params + i + 2;
            const char *end = params + len;
            if (v >= end || *v != '0') {
                return false;
            }
            for (v++; v < end && (*v == '.' || *v == '0'); v++) {
            }
            return v == end || *v == ' ' || *v == ';';
        }
    }
    return false;
}

bool render_accepts_gzip(const char *accept_encoding)
{
    const char *s = accept_encoding;
    const char *item;
    size_t len;

    while (s && next_item(&s, &item, &len)) {
        size_t name = 0;
        while (name < len && item[name] != ';' && item[name] != ' ') {
            name++;
        }
        bool gzip =
            (name == 4 && strncasecmp(item, "gzip", 4) == 0) || (name == 1 && item[0] == '*');
        if (gzip && !refused(item + name, len - name)) {
            return true;
        }
    }
    return false;
}

bool render_etag_match(const char *if_none_match, const char *etag)
{
    const char *s = if_none_match;
    const char *item;
    size_t len;
    size_t elen = strlen(etag);

    while (s && next_item(&s, &item, &len)) {
        if (len == 1 && item[0] == '*') {
            return true;
        }
        if (len > 2 && item[0] == 'W' && item[1] == '/') {
            item += 2;
            len -= 2;
        }
        if (len == elen && memcmp(item, etag, len) == 0) {
            return true;
        }
    }
    return false;
}

void render_entry_serve(struct render_entry *e, const struct api_req *req, struct api_resp *resp)
{
    bool gzip = render_accepts_gzip(api_header(req, "Accept-Encoding"));
    const char *data = NULL;
    size_t len = 0;

    if (gzip && render_entry_gzip(e, &data, &len) < 0) {
        gzip = false;
    }
    const char *etag = render_entry_etag(e, gzip);
    api_add_header(resp, "ETag", "%s", etag);
    api_add_header(resp, "Vary", "Accept-Encoding");
    /* Storable but revalidated every time: the ETag is what makes it cheap. */
    api_add_header(resp, "Cache-Control", "private, no-cache");
    if (render_etag_match(api_header(req, "If-None-Match"), etag)) {
        resp->status = 304;
        render_entry_release(e);
        return;
    }
    if (gzip) {
        api_add_header(resp, "Content-Encoding", "gzip");
    } else {
        data = render_entry_body(e, &len);
    }
    resp->status = 200;
    resp->content_type = "application/json";
    resp->shared = data;
    resp->shared_len = len;
    resp->shared_release = render_entry_release;
    resp->shared_ctx = e;
}
