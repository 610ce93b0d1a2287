/*
 * ws_upgrade: the head of a WebSocket upgrade request (RFC 6455 4.2.1),
 * checked, and the server's answer key. Pure and feedable: the WebSocket
 * server gives it the head it read from the socket; the tests give it
 * strings.
 *
 * A head is refused with a status and a reason, never by hanging up:
 *   - 405: a method other than GET;
 *   - 400: a request line that is not GET /path HTTP/1.1 (or a later 1.x),
 *     a target that is not a path or holds a control byte or an escaped
 *     NUL (%00) anywhere, a field line that is not "name: value" (or folds
 *     onto the next line, or holds a control byte), no Host or two, no
 *     Upgrade naming websocket, no Connection naming upgrade, no or a
 *     malformed Sec-WebSocket-Key (24 characters of base64 for 16 bytes) or
 *     two, no Sec-WebSocket-Version, two Authorization or Origin fields;
 *   - 426 (with Sec-WebSocket-Version: 13): a version other than 13.
 *
 * Names are matched as written. The path is compared with the endpoints'
 * without decoding escapes, and a query argument is found by its exact
 * name: `?%74oken=` is not `token`. Only values are percent-decoded (and a
 * value that decodes to a control byte is malformed). One spelling per
 * name means every filter that looks for `token=` (our log redaction, a
 * proxy's) sees every token that can authenticate; RFC 3986 lets a server
 * treat the two spellings alike, not oblige it to.
 *
 * Threads: pure functions, any thread.
 */
#ifndef RX_WS_UPGRADE_H
#define RX_WS_UPGRADE_H

#include <stddef.h>

/* Sec-WebSocket-Accept's length: base64 of a SHA-1 digest. */
#define WS_UPGRADE_ACCEPT_LEN 28

/* A checked upgrade request; the strings point into the head, which
 * ws_upgrade_parse cuts into NUL-terminated pieces. */
struct ws_upgrade {
    const char *path;          /* the target up to '?', as written */
    const char *query;         /* after '?', "" when none */
    const char *key;           /* Sec-WebSocket-Key */
    const char *origin;        /* NULL when absent */
    const char *authorization; /* NULL when absent */
    const char *error;         /* why it was refused (static text), NULL if not */
};

/*
 * Checks the request head in head[0..len) (ending with its empty line; the
 * caller's buffer is edited). Returns 0 with up filled, or the HTTP status
 * to refuse it with (400, 405 or 426) with up->error set.
 */
int ws_upgrade_parse(char *head, size_t len, struct ws_upgrade *up);

/*
 * The value of the query argument named exactly `name`, percent-decoded
 * into out (cap bytes, NUL-terminated); the first one when it repeats.
 * Returns 1, 0 when absent, -1 when malformed (a bad escape, a control
 * byte once decoded, or longer than cap - 1).
 */
int ws_upgrade_arg(const struct ws_upgrade *up, const char *name, char *out, size_t cap);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + the RFC's GUID)).
 * Returns 0, or -1 if OpenSSL failed (out is then ""). */
int ws_upgrade_accept(const char *key, char out[WS_UPGRADE_ACCEPT_LEN + 1]);

#endif
