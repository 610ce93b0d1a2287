/*
 * auth: constant-time token comparison, bearer parsing, token rotation,
 * public paths, and the generated token file (mode 0600, content, reuse,
 * refusal of an unsafe file) — whose token must never reach the log.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "check.h"
#include "config/config.h"
#include "core/log.h"

static bool equal(const char *a, const char *b)
{
    return auth_token_equal(a, strlen(a), b, strlen(b));
}

static void test_equal(void)
{
    CHECK(equal("s3cret-token-value", "s3cret-token-value"));
    CHECK(!equal("s3cret-token-value", "s3cret-token-valuf"));
    CHECK(!equal("s3cret-token-value", "x3cret-token-value"));
    CHECK(!equal("s3cret", "s3cret-token-value")); /* prefix */
    CHECK(!equal("s3cret-token-value", "s3cret")); /* longer */
    CHECK(!equal("", ""));                         /* empty never matches */
    CHECK(!equal("", "s3cret"));
    CHECK(!equal("s3cret", ""));
    /* Lengths are explicit: bytes past them do not count. */
    CHECK(auth_token_equal("abcdef-XX", 6, "abcdef-YY", 6));
}

static void test_levels(void)
{
    char *tokens[] = {"user-token-1111", "user-token-2222"};
    char *admins[] = {"admin-token-3333"};
    char *public_paths[] = {"/healthz", "/"};
    struct config cfg = {
        .auth = true,
        .tokens = tokens,
        .n_tokens = 2,
        .admin_tokens = admins,
        .n_admin_tokens = 1,
        .public_paths = public_paths,
        .n_public_paths = 2,
    };
    struct auth *a = auth_new(&cfg);

    CHECK(auth_required(a));
    CHECK(auth_has_admin(a));
    CHECK_INT_EQ(auth_check_token(a, "user-token-1111", 15), AUTH_USER);
    CHECK_INT_EQ(auth_check_token(a, "user-token-2222", 15), AUTH_USER);
    CHECK_INT_EQ(auth_check_token(a, "admin-token-3333", 16), AUTH_ADMIN);
    CHECK_INT_EQ(auth_check_token(a, "user-token-111", 14), AUTH_DENIED);
    CHECK_INT_EQ(auth_check_token(a, "", 0), AUTH_DENIED);
    CHECK_INT_EQ(auth_check_token(a, NULL, 0), AUTH_DENIED);

    CHECK_INT_EQ(auth_check_bearer(a, "Bearer user-token-1111"), AUTH_USER);
    CHECK_INT_EQ(auth_check_bearer(a, "bearer  user-token-1111 "), AUTH_USER);
    CHECK_INT_EQ(auth_check_bearer(a, "BEARER admin-token-3333"), AUTH_ADMIN);
    CHECK_INT_EQ(auth_check_bearer(a, "Basic user-token-1111"), AUTH_DENIED);
    CHECK_INT_EQ(auth_check_bearer(a, "Beareruser-token-1111"), AUTH_DENIED);
    CHECK_INT_EQ(auth_check_bearer(a, "Bearer"), AUTH_DENIED);
    CHECK_INT_EQ(auth_check_bearer(a, "Bearer "), AUTH_DENIED);
    CHECK_INT_EQ(auth_check_bearer(a, "user-token-1111"), AUTH_DENIED);
    CHECK_INT_EQ(auth_check_bearer(a, NULL), AUTH_DENIED);

    /* SIGHUP rotation: the old token stops working, the new one works. */
    char *rotated[] = {"user-token-9999"};
    cfg.tokens = rotated;
    cfg.n_tokens = 1;
    cfg.n_admin_tokens = 0;
    auth_set_tokens(a, &cfg);
    CHECK_INT_EQ(auth_check_token(a, "user-token-1111", 15), AUTH_DENIED);
    CHECK_INT_EQ(auth_check_token(a, "user-token-9999", 15), AUTH_USER);
    CHECK_INT_EQ(auth_check_token(a, "admin-token-3333", 16), AUTH_DENIED);
    CHECK(!auth_has_admin(a));

    CHECK(auth_public_path(&cfg, "/healthz"));
    CHECK(auth_public_path(&cfg, "/"));
    CHECK(!auth_public_path(&cfg, "/healthz/"));
    CHECK(!auth_public_path(&cfg, "/v1/rates"));
    auth_free(a);

    cfg.auth = false;
    a = auth_new(&cfg);
    CHECK(!auth_required(a));
    auth_free(a);
    auth_free(NULL);
}

/* Runs auth_prepare with stderr (the log) captured into log_out. */
static int prepare_logged(struct config *cfg, char *err, size_t errlen, char *log_out, size_t cap)
{
    char path[] = "/tmp/test_auth_log_XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);

    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    int rc = auth_prepare(cfg, err, errlen);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, log_out, cap - 1);
    log_out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return rc;
}

static void free_tokens(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_tokens; i++) {
        free(cfg->tokens[i]);
    }
    free(cfg->tokens);
    cfg->tokens = NULL;
    cfg->n_tokens = 0;
}

static void test_prepare(void)
{
    char dir[] = "/tmp/test_auth_XXXXXX";
    char file[256], err[512], log[4096], content[256];
    struct stat st;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(file, sizeof file, "%s/explorer.token", dir);
    struct config cfg = {.auth = true, .token_file = file};

    /* First start: a new token, written 0600, added to tokens, not logged. */
    CHECK_INT_EQ(prepare_logged(&cfg, err, sizeof err, log, sizeof log), 0);
    CHECK_INT_EQ(cfg.n_tokens, 1);
    CHECK(stat(file, &st) == 0);
    CHECK_INT_EQ(st.st_mode & 0777, 0600);
    int fd = open(file, O_RDONLY);
    ssize_t n = read(fd, content, sizeof content - 1);
    close(fd);
    content[n > 0 ? n : 0] = '\0';
    CHECK_INT_EQ(n, 65);
    CHECK(content[64] == '\n');
    content[64] = '\0';
    CHECK_INT_EQ(strspn(content, "0123456789abcdef"), 64);
    CHECK_STR_EQ(cfg.tokens[0], content);
    CHECK(strstr(log, file) != NULL);
    CHECK(strstr(log, content) == NULL);
    /* The token is a registered secret: later log lines redact it. */
    char probe[256];
    log_redact(content, probe, sizeof probe);
    CHECK_STR_EQ(probe, "REDACTED");
    char first[256];
    snprintf(first, sizeof first, "%s", content);
    free_tokens(&cfg);

    /* A restart keeps the token (clients keep working). */
    CHECK_INT_EQ(prepare_logged(&cfg, err, sizeof err, log, sizeof log), 0);
    CHECK_INT_EQ(cfg.n_tokens, 1);
    CHECK_STR_EQ(cfg.tokens[0], first);
    CHECK(strstr(log, first) == NULL);
    CHECK(strstr(log, "kept") != NULL);
    free_tokens(&cfg);

    /* A file others can read is refused, never trusted or overwritten. */
    chmod(file, 0644);
    CHECK_INT_EQ(prepare_logged(&cfg, err, sizeof err, log, sizeof log), -1);
    CHECK(strstr(err, "0600") != NULL);
    CHECK(strstr(err, first) == NULL);
    CHECK_INT_EQ(cfg.n_tokens, 0);

    /* A file with no token in it is refused too. */
    chmod(file, 0600);
    fd = open(file, O_WRONLY | O_TRUNC);
    CHECK(write(fd, "short\n", 6) == 6);
    close(fd);
    CHECK_INT_EQ(prepare_logged(&cfg, err, sizeof err, log, sizeof log), -1);
    CHECK(strstr(err, "does not hold a token") != NULL);
    unlink(file);

    /* Configured tokens: nothing generated. */
    char *tokens[] = {"configured-token-1"};
    struct config given = {.auth = true, .token_file = file, .tokens = tokens, .n_tokens = 1};
    CHECK_INT_EQ(prepare_logged(&given, err, sizeof err, log, sizeof log), 0);
    CHECK(access(file, F_OK) != 0);

    /* auth = false: nothing generated, a warning. */
    struct config open_cfg = {.auth = false, .token_file = file};
    CHECK_INT_EQ(prepare_logged(&open_cfg, err, sizeof err, log, sizeof log), 0);
    CHECK(access(file, F_OK) != 0);
    CHECK(strstr(log, "auth = false") != NULL);
    CHECK_INT_EQ(open_cfg.n_tokens, 0);

    rmdir(dir);
}

int main(void)
{
    log_setup(LOG_INFO, false);
    test_equal();
    test_levels();
    test_prepare();
    log_clear_secrets();
    return CHECK_DONE();
}
