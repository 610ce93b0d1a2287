/*
 * render_cache: rendered /v1/rates bodies shared by libmicrohttpd threads,
 * so that many clients asking for the same dump within 100 ms cost one
 * render (DESIGN 4.1).
 *
 * An entry is an immutable, reference-counted body: its bytes, its ETag
 * (a hash of the bytes), the time it describes (`generated`), and the store
 * generation it was rendered from. It is found by key — the normalized
 * query — and is valid only while the store generation is the one it was
 * rendered from and for at most max_age_ms after `generated`. A gzip
 * variant is made once per entry, by the first client that accepts gzip,
 * and shared by the later ones.
 *
 * Threads: every function may be called from any thread. The map is
 * guarded by one mutex held only for lookups and swaps (never while
 * rendering or compressing); each entry has its own mutex for making its
 * gzip variant. An entry stays alive while anyone holds a reference: the
 * map holds one, and each response being sent holds one, released by the
 * REST core through api_resp.shared_release after MHD is done with it.
 */
#ifndef RX_RENDER_CACHE_H
#define RX_RENDER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route.h"
#include "core/jbuf.h"

struct render_cache;
struct render_entry;

/* A cache of at most max_entries bodies, each valid max_age_ms. */
struct render_cache *render_cache_new(size_t max_entries, int64_t max_age_ms);
/* Drops the map's references; entries still referenced live on until
 * released. render_cache_free(NULL) does nothing. */
void render_cache_free(struct render_cache *c);

/*
 * A referenced entry for key if one exists that was rendered from store
 * generation `generation` and whose `generated` is within max_age_ms of
 * now_ms; NULL otherwise. The caller releases it (render_entry_release).
 */
struct render_entry *render_cache_get(struct render_cache *c, const char *key, uint64_t generation,
                                      int64_t now_ms);

/*
 * Takes ownership of body's bytes (body is left empty) and publishes them as
 * the entry for key, replacing an older one (a concurrent render that is
 * newer is kept, but the caller still gets its own entry). Returns the new
 * entry, referenced for the caller.
 */
struct render_entry *render_cache_put(struct render_cache *c, const char *key, uint64_t generation,
                                      int64_t generated_ms, struct jbuf *body);

void render_entry_ref(struct render_entry *e);
/* Drops one reference (void * so it can be api_resp.shared_release). */
void render_entry_release(void *entry);

const char *render_entry_body(const struct render_entry *e, size_t *len);
int64_t render_entry_generated(const struct render_entry *e);
/* The quoted ETag of the identity body or of the gzip variant. */
const char *render_entry_etag(const struct render_entry *e, bool gzip);
/* The gzip variant, made on first use; -1 if zlib failed (serve identity). */
int render_entry_gzip(struct render_entry *e, const char **data, size_t *len);

/* Whether an Accept-Encoding value accepts gzip (a token "gzip" or "*"
 * without q=0). NULL: no. */
bool render_accepts_gzip(const char *accept_encoding);
/* Whether an If-None-Match value (a list, "*", weak tags allowed) matches
 * etag. NULL: no. */
bool render_etag_match(const char *if_none_match, const char *etag);

/*
 * Answer req from e: 304 when If-None-Match matches, else the body (gzip
 * when accepted), with ETag and Vary: Accept-Encoding. Takes ownership of
 * the caller's reference to e (it passes to resp, or is released).
 */
void render_entry_serve(struct render_entry *e, const struct api_req *req, struct api_resp *resp);

#endif
