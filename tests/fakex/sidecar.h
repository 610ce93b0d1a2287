/*
 * sidecar: reading tests/fixtures/<exchange>/fakex.json.
 *
 * The sidecar is this server's own note about an exchange (the recorder's
 * manifest.json stays untouched): where the operation and channel live in a
 * subscribe message, how a URL selects streams, which leading capture lines
 * are connection-level, what to greet a connection with and which extra
 * host names to rewrite. The format is documented in README.md. Unknown
 * keys are errors, keys starting with '_' are comments. Pure; reports
 * problems through the caller's error buffer.
 */
#ifndef FAKEX_SIDECAR_H
#define FAKEX_SIDECAR_H

#include "fixtures.h"
#include "strset.h"
#include "submatch.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* "loop_skip": a leading line is connection-level when key's value is in values. */
struct sidecar_skip {
    struct submatch_key key;
    struct strset values;
};

struct sidecar_skips {
    struct sidecar_skip *v;
    size_t n;
};

/*
 * Apply the exchange-wide settings of a parsed fakex.json (NULL: none) to
 * `ex` and collect its loop_skip rules. Returns 0, or -1 with a message.
 */
int sidecar_apply(struct fixtures_exchange *ex, const cJSON *sidecar, struct sidecar_skips *skips,
                  char *err, size_t errlen);

/* Check the keys of one "files" entry. Returns 0, or -1 with a message. */
int sidecar_check_file(const cJSON *extra, const char *file, char *err, size_t errlen);

/* Is this capture line connection-level under the skip rules? */
int sidecar_skippable(const struct sidecar_skips *skips, const char *line, size_t len);

void sidecar_skips_free(struct sidecar_skips *skips);

/* Add the hosts of every URL in a string or array of strings. */
void sidecar_scan_hosts(struct strset *hosts, const cJSON *v);

#endif
