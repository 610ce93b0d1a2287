/*
 * render_cache: hits and misses by key, store generation and age; the
 * bound on entries; an entry replaced while a response still holds it
 * (ASan would see a use after free); the gzip variant made once and
 * inflating back to the body; ETags; and the Accept-Encoding and
 * If-None-Match parsers. Several threads hammer one key at the end.
 */
#include "check.h"
#include "rest/render_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static struct jbuf body_of(const char *text)
{
    struct jbuf b;
    jbuf_init(&b);
    jbuf_adds(&b, text);
    return b;
}

static void test_get_put(void)
{
    struct render_cache *c = render_cache_new(4, 100);
    struct jbuf b = body_of("{\"a\":1}");
    size_t len;

    CHECK(render_cache_get(c, "k", 1, 1000) == NULL);
    struct render_entry *e = render_cache_put(c, "k", 1, 1000, &b);
    CHECK(b.data == NULL && b.len == 0); /* ownership taken */
    CHECK_STR_EQ(render_entry_body(e, &len), "{\"a\":1}");
    CHECK_INT_EQ(len, 7);
    CHECK_INT_EQ(render_entry_generated(e), 1000);

    struct render_entry *h = render_cache_get(c, "k", 1, 1100);
    CHECK(h == e); /* 100 ms old: still valid */
    render_entry_release(h);
    CHECK(render_cache_get(c, "k", 1, 1101) == NULL); /* too old */
    CHECK(render_cache_get(c, "k", 2, 1050) == NULL); /* the store changed */
    CHECK(render_cache_get(c, "other", 1, 1050) == NULL);

    /* Replaced while the first response still holds e. */
    b = body_of("{\"a\":2}");
    struct render_entry *e2 = render_cache_put(c, "k", 2, 1200, &b);
    CHECK_STR_EQ(render_entry_body(e, &len), "{\"a\":1}");
    render_entry_release(e);
    h = render_cache_get(c, "k", 2, 1250);
    CHECK(h == e2);
    render_entry_release(h);

    /* An older concurrent render does not displace a newer one. */
    b = body_of("{\"a\":0}");
    struct render_entry *late = render_cache_put(c, "k", 1, 1150, &b);
    CHECK_STR_EQ(render_entry_body(late, &len), "{\"a\":0}");
    render_entry_release(late);
    h = render_cache_get(c, "k", 2, 1250);
    CHECK(h == e2);
    render_entry_release(h);
    render_entry_release(e2);
    render_cache_free(c);
    render_cache_free(NULL);
}

static void test_bound(void)
{
    struct render_cache *c = render_cache_new(3, 100);
    char key[16];

    for (int i = 0; i < 10; i++) {
        struct jbuf b = body_of("x");
        snprintf(key, sizeof key, "k%d", i);
        render_entry_release(render_cache_put(c, key, 1, 1000 + i, &b));
    }
    /* The three newest remain; the oldest were evicted. */
    int hits = 0;
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        struct render_entry *e = render_cache_get(c, key, 1, 1010);
        if (e) {
            hits++;
            CHECK(i >= 7);
            render_entry_release(e);
        }
    }
    CHECK_INT_EQ(hits, 3);
    render_cache_free(c);
}

static void test_gzip_and_etag(void)
{
    struct render_cache *c = render_cache_new(2, 100);
    struct jbuf b;
    jbuf_init(&b);
    for (int i = 0; i < 1000; i++) {
        jbuf_adds(&b, "{\"pair\":\"BTC_USDT\",\"bid\":\"6621.55000000\"},");
    }
    char *copy = strdup(b.data);
    struct render_entry *e = render_cache_put(c, "k", 1, 1000, &b);
    const char *gz;
    const char *gz2;
    size_t gz_len;
    size_t gz2_len;

    CHECK_INT_EQ(render_entry_gzip(e, &gz, &gz_len), 0);
    CHECK_INT_EQ(render_entry_gzip(e, &gz2, &gz2_len), 0);
    CHECK(gz == gz2 && gz_len == gz2_len); /* made once */
    CHECK(gz_len < strlen(copy) / 10);
    CHECK((unsigned char)gz[0] == 0x1f && (unsigned char)gz[1] == 0x8b); /* gzip magic */

    char *out = malloc(strlen(copy) + 16);
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK_INT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)gz;
    z.avail_in = (uInt)gz_len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)(strlen(copy) + 16);
    CHECK_INT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
    CHECK_INT_EQ(z.total_out, strlen(copy));
    CHECK(memcmp(out, copy, strlen(copy)) == 0);
    inflateEnd(&z);

    const char *tag = render_entry_etag(e, false);
    const char *tag_gz = render_entry_etag(e, true);
    CHECK(tag[0] == '"' && tag[strlen(tag) - 1] == '"');
    CHECK(strcmp(tag, tag_gz) != 0);
    /* Same bytes, same tag. */
    struct jbuf b2 = body_of(copy);
    struct render_entry *e2 = render_cache_put(c, "k2", 1, 1000, &b2);
    CHECK_STR_EQ(render_entry_etag(e2, false), tag);

    render_entry_release(e2);
    render_entry_release(e);
    render_cache_free(c);
    free(out);
    free(copy);
}

static void test_parsers(void)
{
    CHECK(render_accepts_gzip("gzip"));
    CHECK(render_accepts_gzip("gzip, deflate, br"));
    CHECK(render_accepts_gzip("deflate, GZIP;q=0.5"));
    CHECK(render_accepts_gzip("*"));
    CHECK(!render_accepts_gzip(NULL));
    CHECK(!render_accepts_gzip(""));
    CHECK(!render_accepts_gzip("identity"));
    CHECK(!render_accepts_gzip("gzip;q=0"));
    CHECK(!render_accepts_gzip("gzip; q=0.000, br"));
    CHECK(!render_accepts_gzip("x-gzip"));
    CHECK(render_accepts_gzip("gzip;q=0.1"));

    CHECK(render_etag_match("\"abc\"", "\"abc\""));
    CHECK(render_etag_match("W/\"abc\"", "\"abc\""));
    CHECK(render_etag_match("\"x\", \"abc\"", "\"abc\""));
    CHECK(render_etag_match("*", "\"abc\""));
    CHECK(!render_etag_match("\"abcd\"", "\"abc\""));
    CHECK(!render_etag_match("abc", "\"abc\""));
    CHECK(!render_etag_match(NULL, "\"abc\""));
    CHECK(!render_etag_match("", "\"abc\""));
}

struct hammer {
    struct render_cache *c;
    int hits;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 2000; i++) {
        int64_t now = 1000 + i / 10;
        struct render_entry *e = render_cache_get(h->c, "full", (uint64_t)(i / 50), now);
        if (!e) {
            struct jbuf b = body_of("{\"rates\":[]}");
            e = render_cache_put(h->c, "full", (uint64_t)(i / 50), now, &b);
        } else {
            h->hits++;
        }
        const char *gz;
        size_t len;
        render_entry_gzip(e, &gz, &len);
        render_entry_release(e);
    }
    return NULL;
}

static void test_threads(void)
{
    struct hammer h[4];
    pthread_t th[4];
    struct render_cache *c = render_cache_new(4, 100);

    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){c, 0};
        pthread_create(&th[i], NULL, hammer_run, &h[i]);
    }
    int hits = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        hits += h[i].hits;
    }
    CHECK(hits > 0);
    render_cache_free(c);
}

int main(void)
{
    test_get_put();
    test_bound();
    test_gzip_and_etag();
    test_parsers();
    test_threads();
    return CHECK_DONE();
}
