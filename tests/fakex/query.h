/*
 * query: URL query strings as lists of decoded parameters, and the rule that
 * decides whether a request's parameters satisfy a recorded query.
 *
 * The fake exchange matches a request against recorded manifest entries on
 * their parameters, never on the raw query text: parameter order, encoding
 * (%2C or a literal comma) and extra parameters such as timestamps must not
 * decide whether a fixture is served. Everything here is pure and owns only
 * the memory inside a struct query_params; any thread may use it.
 */
#ifndef FAKEX_QUERY_H
#define FAKEX_QUERY_H

#include <stddef.h>

struct query_param {
    char *key;
    char *value;
};

struct query_params {
    struct query_param *v;
    size_t n;
    size_t cap;
};

/*
 * Decode %XX escapes and '+' (a space in form encoding) from `len` bytes of
 * `in` into `out`, which must hold len + 1 bytes. A malformed escape is kept
 * literally. Returns the decoded length; `out` is NUL-terminated.
 */
size_t query_decode(const char *in, size_t len, char *out);

/*
 * Parse "a=1&b=%5B%5D" into `p` (appending), decoding keys and values. Empty
 * segments are skipped; a segment without '=' is a key with an empty value.
 */
void query_parse(struct query_params *p, const char *query);

/* Append one already-decoded "key=value" fragment (what lws hands out). */
void query_add_fragment(struct query_params *p, const char *fragment);

/* Append a decoded key and value pair; copies both. */
void query_add(struct query_params *p, const char *key, const char *value);

/* The first value of `key`, or NULL. Borrowed from `p`. */
const char *query_get(const struct query_params *p, const char *key);

/*
 * Does `request` satisfy `recorded`? Every recorded parameter must be
 * present in the request with the same decoded value (any of the request's
 * values if it repeats a key); extra request parameters are ignored.
 * Returns the number of recorded parameters (the match's specificity), or -1
 * when some recorded parameter is missing or different.
 */
int query_match(const struct query_params *recorded, const struct query_params *request);

/* Render as "k=v&k2=v2" without encoding, for log lines. Caller frees. */
char *query_to_text(const struct query_params *p);

void query_free(struct query_params *p);

#endif
