/*
 * rewrite: point exchange URLs inside recorded bodies at the fake exchange.
 *
 * Some recorded bodies name the exchange's own hosts (KuCoin's bullet-public
 * answer carries the WebSocket endpoint a client must dial next). Serving
 * them unchanged would send a test client to the internet, so every
 * `scheme://host[:port]` whose host the manifest names (in `rest_base` or
 * `ws_url`) is replaced by the fake exchange's base URL for that exchange:
 * http/https by the HTTP base, ws/wss by the WebSocket base. JSON's escaped
 * form `https:\/\/host` is recognised too. Pure; any thread.
 */
#ifndef FAKEX_REWRITE_H
#define FAKEX_REWRITE_H

#include "strset.h"

#include <stddef.h>

/*
 * Collect the lower-cased host names of every http(s):// or ws(s):// URL in
 * free text such as the manifest's "wss://ws.venue.example (WebSocket API v1)".
 * Strings without a dotted host name after the scheme add nothing.
 */
void rewrite_scan_hosts(struct strset *hosts, const char *text);

/*
 * Return a new buffer holding `body` with every URL on one of `hosts`
 * (matched case-insensitively, any port) replaced by `http_base` or
 * `ws_base`, and its length in *out_len; the buffer is NUL-terminated.
 * Returns NULL when nothing needed rewriting (the caller keeps the
 * original). Caller frees.
 */
char *rewrite_body(const char *body, size_t len, const struct strset *hosts, const char *http_base,
                   const char *ws_base, size_t *out_len);

#endif
