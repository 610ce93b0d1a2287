/*
 * auth: who may call the API (DESIGN 4, "Auth").
 *
 * A client presents a bearer token (`Authorization: Bearer <token>`; the
 * WebSocket server also takes `?token=`, browsers cannot set headers there).
 * It is compared in constant time with every configured token: `tokens`
 * grant normal access, `admin_tokens` grant normal access and the admin
 * routes (/v1/admin/...).
 * Paths listed in `public_paths` need no token; `auth = false` serves rate
 * data without tokens, but the admin routes still need an admin token and
 * answer 403 when none is configured.
 *
 * struct auth keeps its own copy of the tokens, as SHA-256 digests, so that
 * SIGHUP can rotate them while requests are checked: the engine reloads
 * cfg's tokens (config_reload_tokens) and then hands them over with
 * auth_set_tokens. Comparing digests makes the time of a check independent
 * of the configured tokens' lengths and contents; it depends only on the
 * length of the presented token and on how many tokens are configured.
 *
 * Threads: auth_prepare and auth_new/auth_free on the engine thread, before
 * the API threads start / after they stop; every other function on any
 * thread (readers share a rwlock with auth_set_tokens).
 */
#ifndef RX_AUTH_H
#define RX_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct auth;

enum auth_level {
    AUTH_DENIED = 0, /* no token, or a token nobody configured */
    AUTH_USER = 1,   /* one of `tokens` */
    AUTH_ADMIN = 2,  /* one of `admin_tokens` (also grants AUTH_USER's access) */
};

/* The longest token accepted anywhere (a longer one is simply wrong). */
#define AUTH_TOKEN_MAX 512

/*
 * Engine start, before any thread reads cfg. When auth is on and no token is
 * configured, makes sure there is one: the token already in cfg->token_file
 * if that file exists, is a regular file owned by us and not accessible by
 * group or others (so a restart keeps clients working); otherwise a new
 * random token (32 bytes from getrandom, as 64 hex digits) written to a new
 * file created with O_CREAT|O_EXCL and mode 0600. The token is appended to
 * cfg->tokens, registered with log_add_secret, and only the file's path is
 * logged. An existing file that is accessible by others, not ours, or holds
 * no token is an error (we never overwrite it). With auth = false, logs the
 * warning that rate data is served without tokens. Returns 0 or -1 with err.
 */
int auth_prepare(struct config *cfg, char *err, size_t errlen);

/* Copies cfg's auth switch and tokens (borrows nothing after it returns). */
struct auth *auth_new(const struct config *cfg);
void auth_free(struct auth *auth);

/* Any thread: replaces the token sets with cfg's current ones (SIGHUP). */
void auth_set_tokens(struct auth *auth, const struct config *cfg);

/* Any thread: what the presented token grants (len bytes, not terminated). */
enum auth_level auth_check_token(struct auth *auth, const char *token, size_t len);

/* Any thread: what an Authorization header value grants: "Bearer <token>",
 * the scheme case-insensitive; NULL or any other form is AUTH_DENIED. */
enum auth_level auth_check_bearer(struct auth *auth, const char *header);

/* Whether rate data needs a token (config `auth`). */
bool auth_required(const struct auth *auth);

/* Any thread: whether any admin token is configured. */
bool auth_has_admin(struct auth *auth);

/* Whether path (decoded, no query) is one of cfg->public_paths. */
bool auth_public_path(const struct config *cfg, const char *path);

/*
 * Token equality in constant time: both sides are hashed (SHA-256) and the
 * digests compared with CRYPTO_memcmp, so neither a common prefix nor the
 * secret's length shows in the timing. An empty token never matches.
 */
bool auth_token_equal(const char *given, size_t given_len, const char *secret, size_t secret_len);

#endif
