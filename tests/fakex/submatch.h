/*
 * submatch: decide which recorded WebSocket capture a client asked for.
 *
 * A client's subscribe message never equals the recorder's byte for byte
 * (other pairs, other ids), so messages are compared on what they mean: the
 * "operation" (Kraken `event`, Coinbase `type`, Binance `method`) and the
 * "channel" (Kraken `subscription.name`, Coinbase `channels`, the stream
 * suffix after '@' for Binance). Each exchange says where those live with a
 * list of JSON paths, optionally narrowed by a POSIX regular expression, in
 * its sidecar file (tests/fixtures/<exchange>/fakex.json), so adding an
 * exchange needs no recompile.
 *
 * A path is a dot-separated list of object keys; `*` steps into every
 * element of an array or member of an object. A leaf string, number or
 * boolean yields one value; a leaf array yields each scalar element. With a
 * regex, only values it matches are kept, reduced to capture group 1 when
 * the expression has one. Pure; any thread. The rule owns its compiled
 * expressions; submatch_key_free releases them.
 */
#ifndef FAKEX_SUBMATCH_H
#define FAKEX_SUBMATCH_H

#include "strset.h"

#include <cjson/cJSON.h>
#include <regex.h>
#include <stddef.h>

struct submatch_path {
    char *path;
    regex_t re;
    int has_re;
};

/* Values of a key are the union of what each of its paths yields. */
struct submatch_key {
    struct submatch_path *v;
    size_t n;
};

/*
 * Parse a key from a sidecar value: "a.b", {"path":"a.b","regex":"..."} or
 * an array of those. Returns 0, or -1 with a message in err.
 */
int submatch_key_parse(struct submatch_key *key, const cJSON *spec, char *err, size_t errlen);

void submatch_key_free(struct submatch_key *key);

/* Add the values `key` selects in `msg` to `out`. */
void submatch_values(const struct submatch_key *key, const cJSON *msg, struct strset *out);

/* Apply only the regex of the key's first path to a plain string (URL streams). */
void submatch_filter_value(const struct submatch_key *key, const char *value, struct strset *out);

/*
 * Greedy cover: choose captures for the channels a client wants. Candidate i
 * has channel set cands[i]. Repeatedly pick, among candidates sharing a
 * channel with what is still wanted, an exact match first, then the
 * smallest superset, then the largest overlap (ties: the earlier one), and
 * remove its channels from the wanted set. Writes up to out_cap chosen
 * indices to `out` and returns how many were chosen.
 */
size_t submatch_cover(const struct strset *want, const struct strset *const *cands, size_t n,
                      size_t *out, size_t out_cap);

#endif
