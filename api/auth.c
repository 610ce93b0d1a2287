/*
 * auth: tokens as digests, checked in constant time, and the generated token
 * of a service started without one.
 *
 * Why digests: a check hashes the presented token once and compares 32-byte
 * digests with CRYPTO_memcmp against every configured token, without
 * stopping at the first match, so the timing says nothing about which
 * token matched, how long the configured tokens are or how much of one a
 * guess got right. It also means no plaintext token lives in this module.
 *
 * Why reuse the token file: a restarted service that generated a new token
 * every time would lock out every client that was given the old one. A file
 * we did not create ourselves with mode 0600 (someone else's, or readable by
 * others) is refused instead of trusted or overwritten: the operator fixes
 * it, the service does not guess.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "core/xalloc.h"

#define DIGEST_LEN 32
/* A token read back from the token file must be at least this long. */
#define AUTH_FILE_TOKEN_MIN 16
#define AUTH_GENERATED_BYTES 32

struct digest {
    unsigned char d[DIGEST_LEN];
};

struct auth {
    bool required;
    pthread_rwlock_t lock; /* guards the two sets below */
    struct digest *user;
    size_t n_user;
    struct digest *admin;
    size_t n_admin;
};

static void digest_of(const char *s, size_t n, struct digest *out)
{
    unsigned int len = 0;

    if (!EVP_Digest(s, n, out->d, &len, EVP_sha256(), NULL) || len != DIGEST_LEN) {
        /* Cannot happen with a working libcrypto; an all-zero digest could
         * only match another failed digest, and empty tokens never match. */
        memset(out->d, 0, sizeof out->d);
    }
}

bool auth_token_equal(const char *given, size_t given_len, const char *secret, size_t secret_len)
{
    struct digest a, b;

    digest_of(given, given_len, &a);
    digest_of(secret, secret_len, &b);
    return (CRYPTO_memcmp(a.d, b.d, DIGEST_LEN) == 0) & (given_len > 0) & (secret_len > 0);
}

/* Digests of the non-empty tokens; *n receives how many. */
static struct digest *digest_list(char **tokens, size_t count, size_t *n)
{
    struct digest *out = xcalloc(count ? count : 1, sizeof *out);

    *n = 0;
    for (size_t i = 0; i < count; i++) {
        if (tokens[i] && tokens[i][0]) {
            digest_of(tokens[i], strlen(tokens[i]), &out[(*n)++]);
        }
    }
    return out;
}

struct auth *auth_new(const struct config *cfg)
{
    struct auth *auth = xcalloc(1, sizeof *auth);

    auth->required = cfg->auth;
    pthread_rwlock_init(&auth->lock, NULL);
    auth->user = digest_list(cfg->tokens, cfg->n_tokens, &auth->n_user);
    auth->admin = digest_list(cfg->admin_tokens, cfg->n_admin_tokens, &auth->n_admin);
    return auth;
}

void auth_free(struct auth *auth)
{
    if (!auth) {
        return;
    }
    pthread_rwlock_destroy(&auth->lock);
    OPENSSL_cleanse(auth->user, auth->n_user * sizeof *auth->user);
    OPENSSL_cleanse(auth->admin, auth->n_admin * sizeof *auth->admin);
    free(auth->user);
    free(auth->admin);
    free(auth);
}

void auth_set_tokens(struct auth *auth, const struct config *cfg)
{
    size_t n_user, n_admin;
    struct digest *user = digest_list(cfg->tokens, cfg->n_tokens, &n_user);
    struct digest *admin = digest_list(cfg->admin_tokens, cfg->n_admin_tokens, &n_admin);

    pthread_rwlock_wrlock(&auth->lock);
    struct digest *old_user = auth->user, *old_admin = auth->admin;
    size_t old_n_user = auth->n_user, old_n_admin = auth->n_admin;
    auth->user = user, auth->n_user = n_user;
    auth->admin = admin, auth->n_admin = n_admin;
    pthread_rwlock_unlock(&auth->lock);

    OPENSSL_cleanse(old_user, old_n_user * sizeof *old_user);
    OPENSSL_cleanse(old_admin, old_n_admin * sizeof *old_admin);
    free(old_user);
    free(old_admin);
}

/* 1 if d matches any of list, visiting every entry whatever the outcome. */
static int match_any(const struct digest *d, const struct digest *list, size_t n)
{
    int hit = 0;

    for (size_t i = 0; i < n; i++) {
        hit |= CRYPTO_memcmp(d->d, list[i].d, DIGEST_LEN) == 0;
    }
    return hit;
}

enum auth_level auth_check_token(struct auth *auth, const char *token, size_t len)
{
    struct digest d;

    if (!token || len == 0 || len > AUTH_TOKEN_MAX) {
        return AUTH_DENIED;
    }
    digest_of(token, len, &d);
    pthread_rwlock_rdlock(&auth->lock);
    int user = match_any(&d, auth->user, auth->n_user);
    int admin = match_any(&d, auth->admin, auth->n_admin);
    pthread_rwlock_unlock(&auth->lock);
    if (admin) {
        return AUTH_ADMIN;
    }
    return user ? AUTH_USER : AUTH_DENIED;
}

enum auth_level auth_check_bearer(struct auth *auth, const char *header)
{
    if (!header || strncasecmp(header, "Bearer", 6) != 0 ||
        (header[6] != ' ' && header[6] != '\t')) {
        return AUTH_DENIED;
    }
    const char *t = header + 7;
    while (*t == ' ' || *t == '\t') {
        t++;
    }
    size_t len = strlen(t);
    while (len > 0 && (t[len - 1] == ' ' || t[len - 1] == '\t')) {
        len--;
    }
    return auth_check_token(auth, t, len);
}

bool auth_required(const struct auth *auth)
{
    return auth->required;
}

bool auth_has_admin(struct auth *auth)
{
    pthread_rwlock_rdlock(&auth->lock);
    bool any = auth->n_admin > 0;
    pthread_rwlock_unlock(&auth->lock);
    return any;
}

bool auth_public_path(const struct config *cfg, const char *path)
{
    for (size_t i = 0; i < cfg->n_public_paths; i++) {
        if (strcmp(cfg->public_paths[i], path) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- The generated token ----------------------------------------------- */

static bool token_chars_ok(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) {
            return false;
        }
    }
    return true;
}

/*
 * Reads the token kept in path into out (cap bytes). Returns 1 when read, 0
 * when the file does not exist, -1 with err when it exists but cannot be
 * trusted or holds no token.
 */
static int token_file_read(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n = 0;

    if (fd < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "token file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "token file %s: not a regular file", path);
        goto fail;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "token file %s must belong to this user with mode 0600 (it has mode %03o): "
                 "fix it or delete it to have a new token generated",
                 path, (unsigned)(st.st_mode & 0777));
        goto fail;
    }
    n = read(fd, out, cap - 1);
    if (n < 0) {
        snprintf(err, errlen, "token file %s: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ')) {
        out[--n] = '\0';
    }
    if (n < AUTH_FILE_TOKEN_MIN || !token_chars_ok(out)) {
        snprintf(err, errlen,
                 "token file %s does not hold a token (at least %d printable characters, "
                 "no spaces): delete it to have a new one generated",
                 path, AUTH_FILE_TOKEN_MIN);
        OPENSSL_cleanse(out, cap);
        return -1;
    }
    return 1;
fail:
    close(fd);
    return -1;
}

/* A new random token, as hex, into out (at least 2 * bytes + 1). */
static int token_generate(char *out, char *err, size_t errlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[AUTH_GENERATED_BYTES];
    size_t got = 0;

    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno != EINTR) {
            snprintf(err, errlen, "cannot generate a token: getrandom: %s", strerror(errno));
            return -1;
        }
        got += n > 0 ? (size_t)n : 0;
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * sizeof raw] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

/* Creates path (which must not exist) with mode 0600 holding token and a
 * newline. Returns 0, -EEXIST when the file appeared meanwhile, or -1. */
static int token_file_write(const char *path, const char *token, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t len = strlen(token);

    if (fd < 0) {
        if (errno == EEXIST) {
            return -EEXIST;
        }
        snprintf(err, errlen, "cannot create token file %s: %s", path, strerror(errno));
        return -1;
    }
    /* The umask can only take bits away from 0600; fchmod makes it exact. */
    if (fchmod(fd, 0600) != 0 || write(fd, token, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
        fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write token file %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

static void tokens_append(struct config *cfg, const char *token)
{
    cfg->tokens = xrealloc(cfg->tokens, (cfg->n_tokens + 1) * sizeof *cfg->tokens);
    cfg->tokens[cfg->n_tokens++] = xstrdup(token);
}

int auth_prepare(struct config *cfg, char *err, size_t errlen)
{
    char token[AUTH_TOKEN_MAX + 1];
    bool generated = false;
    int rc;

    if (!cfg->auth) {
        log_warn("auth", "auth = false: rate data is served to anyone without a token");
        return 0;
    }
    if (cfg->n_tokens > 0) {
        return 0;
    }
    if (!cfg->token_file || !cfg->token_file[0]) {
        snprintf(err, errlen, "no token configured and no token_file to generate one into");
        return -1;
    }
    rc = token_file_read(cfg->token_file, token, sizeof token, err, errlen);
    if (rc == 0) {
        if (token_generate(token, err, errlen) < 0) {
            return -1;
        }
        rc = token_file_write(cfg->token_file, token, err, errlen);
        if (rc == -EEXIST) {
            /* Another process created it first: use what it wrote. */
            rc = token_file_read(cfg->token_file, token, sizeof token, err, errlen) == 1 ? 0 : -1;
        } else {
            generated = rc == 0;
        }
        if (rc < 0) {
            OPENSSL_cleanse(token, sizeof token);
            return -1;
        }
    } else if (rc < 0) {
        return -1;
    }
    log_add_secret(token);
    tokens_append(cfg, token);
    OPENSSL_cleanse(token, sizeof token);
    log_info("auth", "no token configured: clients must use the token in %s (%s)", cfg->token_file,
             generated ? "generated now, mode 0600" : "kept from before");
    return 0;
}
