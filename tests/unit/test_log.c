/* log: redaction of tokens in URLs, bearer headers and registered secrets. */
#include "check.h"
#include "core/log.h"

static void redacts(const char *in, const char *want)
{
    char out[256];
    log_redact(in, out, sizeof out);
    CHECK_STR_EQ(out, want);
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
    log_clear_secrets();
    redacts("hunter2-token", "hunter2-token");

    /* Truncation keeps the output terminated and never leaks a prefix of the
     * value: the value is dropped whole before the mask. */
    char small[12];
    log_redact("token=abcdefghijkl", small, sizeof small);
    CHECK(strlen(small) < sizeof small);
    CHECK(strstr(small, "abc") == NULL);
    return CHECK_DONE();
}
