/*
 * check.h: the assertions every unit test uses.
 *
 * Each failed check prints the file, line, expression and both sides, and
 * counts the failure; CHECK_DONE() prints the "N passed, N failed" line and
 * yields the process exit code. Tests keep going after a failure so one run
 * shows every broken case.
 */
#ifndef RX_CHECK_H
#define RX_CHECK_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_passed;
static int check_failed;

#define CHECK_FAIL_(fmt, ...)                                                                      \
    do {                                                                                           \
        check_failed++;                                                                            \
        fprintf(stderr, "%s:%d: FAIL " fmt "\n", __FILE__, __LINE__, __VA_ARGS__);                \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            CHECK_FAIL_("%s", #cond);                                                              \
        }                                                                                          \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ == b_) {                                                                            \
            check_passed++;                                                                        \
        } else {                                                                                   \
            CHECK_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);                                 \
        }                                                                                          \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                         \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ && b_ && strcmp(a_, b_) == 0) {                                                     \
            check_passed++;                                                                        \
        } else {                                                                                   \
            CHECK_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",                  \
                        b_ ? b_ : "(null)");                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_DBL_NEAR(a, b, eps)                                                                  \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (fabs(a_ - b_) <= (eps)) {                                                              \
            check_passed++;                                                                        \
        } else {                                                                                   \
            CHECK_FAIL_("%s ~= %s: %.17g != %.17g", #a, #b, a_, b_);                               \
        }                                                                                          \
    } while (0)

#define CHECK_DONE()                                                                               \
    (printf("%d passed, %d failed\n", check_passed, check_failed), check_failed ? 1 : 0)

#endif
