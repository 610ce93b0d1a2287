/* xalloc: the string helpers copy exactly and terminate; an allocation that
 * cannot be satisfied aborts with a message instead of returning NULL, and
 * a count times size that overflows is refused, not wrapped. */
#include "check.h"
#include "core/xalloc.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs fn in a child with stderr to /dev/null; whether the child died
 * instead of coming back from fn (abort in a plain build; the sanitizer's
 * own report and exit in an ASan build). */
static bool dies(void (*fn)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) {
            _exit(3);
        }
        fn();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

static void huge_malloc(void)
{
    volatile size_t n = SIZE_MAX - 4096;
    free(xmalloc(n));
}

static void overflowing_calloc(void)
{
    volatile size_t n = SIZE_MAX / 2 + 2;
    free(xcalloc(n, 2));
}

static void huge_realloc(void)
{
    volatile size_t n = SIZE_MAX - 4096;
    free(xrealloc(NULL, n));
}

int main(void)
{
    char *s = xstrndup("abcdef", 3);
    CHECK_STR_EQ(s, "abc");
    free(s);
    s = xstrndup("ab", 10);
    CHECK_STR_EQ(s, "ab");
    free(s);
    s = xstrdup("");
    CHECK_STR_EQ(s, "");
    free(s);
    /* Zero-size requests still give a pointer free() takes. */
    free(xmalloc(0));
    free(xcalloc(0, 8));

    CHECK(dies(huge_malloc));
    CHECK(dies(overflowing_calloc));
    CHECK(dies(huge_realloc));
    return CHECK_DONE();
}
