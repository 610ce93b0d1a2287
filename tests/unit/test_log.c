/* log: redaction of tokens in URLs, bearer headers and registered secrets
 * (any number, added while other threads log); one record per line, with
 * control characters escaped, in text and JSON. */
#include "check.h"
#include "core/log.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

static void redacts(const char *in, const char *want)
{
    char out[256];
    log_redact(in, out, sizeof out);
    CHECK_STR_EQ(out, want);
}

/* What one log_write puts on stderr, captured through a pipe. */
static char *captured(enum log_level level, const char *msg)
{
    static char buf[8192];
    int fds[2], saved = dup(STDERR_FILENO);
    if (pipe(fds) != 0) {
        return NULL;
    }
    dup2(fds[1], STDERR_FILENO);
    log_write(level, "op:x", "%s", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static int count(const char *s, char c)
{
    int n = 0;
    for (; *s; s++) {
        n += *s == c;
    }
    return n;
}

static void one_record_per_line(void)
{
    static const char forged[] = "line1\n2026-01-01T00:00:00.000Z error main: injected\r\x1b[31m\x7f";

    log_setup(LOG_DEBUG, false);
    char *text = captured(LOG_INFO, forged);
    CHECK_INT_EQ(count(text, '\n'), 1);
    CHECK(strchr(text, '\r') == NULL && strchr(text, '\x1b') == NULL && strchr(text, 0x7f) == NULL);
    CHECK(strstr(text, "line1\\n2026-01-01") != NULL);
    CHECK(strstr(text, "\\r\\x1b[31m\\x7f") != NULL);

    log_setup(LOG_DEBUG, true);
    text = captured(LOG_WARN, forged);
    CHECK_INT_EQ(count(text, '\n'), 1);
    cJSON *j = cJSON_Parse(text);
    CHECK(j != NULL);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(j, "msg")), forged);
    CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(j, "level")), "warn");
    cJSON_Delete(j);
    log_setup(LOG_INFO, false);
}

/* Secrets are added while other threads redact: every secret registered
 * before a redaction starts is hidden by it, however many there are. */
#define ROUNDS 500
static atomic_int published;
static char secret_text[ROUNDS][24];

static void *redactor(void *arg)
{
    char out[64];
    int bad = 0;
    for (int round = 0; round < ROUNDS * 4; round++) {
        int n = atomic_load(&published);
        if (n == 0) {
            continue;
        }
        const char *s = secret_text[round % n];
        log_redact(s, out, sizeof out);
        bad += strcmp(out, "REDACTED") != 0;
    }
    return (void *)(intptr_t)bad;
}

static void secrets_under_load(void)
{
    pthread_t t[2];
    for (int i = 0; i < ROUNDS; i++) {
        snprintf(secret_text[i], sizeof secret_text[i], "tok-%04d-%08x", i, (unsigned)i * 2654435761u);
    }
    for (int i = 0; i < 2; i++) {
        pthread_create(&t[i], NULL, redactor, NULL);
    }
    for (int i = 0; i < ROUNDS; i++) {
        log_add_secret(secret_text[i]);
        log_add_secret(secret_text[i]); /* a duplicate changes nothing */
        atomic_store(&published, i + 1);
    }
    for (int i = 0; i < 2; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        CHECK_INT_EQ((intptr_t)bad, 0);
    }
    /* All of them, the first and the last included, long after the cap the
     * old fixed table had (64). */
    redacts(secret_text[0], "REDACTED");
    redacts(secret_text[ROUNDS - 1], "REDACTED");
    log_clear_secrets();
}

int main(void)
{
    redacts("GET /v1/stream?token=abc123&x=1", "GET /v1/stream?token=REDACTED&x=1");
    redacts("GET /v1/stream?TOKEN=abc123", "GET /v1/stream?TOKEN=REDACTED");
    redacts("Authorization: Bearer s3cr3t-value", "Authorization: Bearer REDACTED");
    redacts("no secrets here", "no secrets here");
    redacts("token=&a=1", "token=&a=1"); /* nothing to hide */
    log_add_secret("hunter2-token");
    redacts("config said hunter2-token twice: hunter2-token",
            "config said REDACTED twice: REDACTED");
    log_add_secret("ab"); /* too short to register: ordinary words survive */
    redacts("abc", "abc");
    /* The longest secret at a position wins: no tail of it stays visible. */
    log_add_secret("hunter2");
    redacts("x hunter2-token y", "x REDACTED y");
    log_clear_secrets();
    redacts("hunter2-token", "hunter2-token");

    /* Truncation keeps the output terminated and never leaks a prefix of the
     * value: the value is dropped whole before the mask. */
    char small[12];
    log_redact("token=abcdefghijkl", small, sizeof small);
    CHECK(strlen(small) < sizeof small);
    CHECK(strstr(small, "abc") == NULL);

    one_record_per_line();
    secrets_under_load();
    return CHECK_DONE();
}
