/*
 * fuzz_lpattern: the bounded Lua-pattern matcher that replaces the stock
 * one in the operators' sandbox, on patterns and subjects an operator
 * script could build from an exchange's answers.
 *
 * Input: byte 0 holds flags (bit 0: a leading '^' anchors), then the
 * pattern up to the first NUL byte, the subject up to the next one, and
 * the rest is a gsub replacement. It walks the matches like gmatch/gsub
 * (lpattern_find from the end of the previous match), reads every capture
 * and expands the replacement for each, under a small step budget so that
 * a catastrophic pattern costs microseconds, not the minutes stock Lua
 * would spend. Checked: matches, captures and replacement pieces lie inside
 * the subject (or the replacement), an error carries its message, the
 * budget is never overdrawn by more than one item's cost, and a plain
 * pattern (lpattern_is_plain) is found where memmem finds it.
 */
#include "lua/lpattern.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEP_BUDGET 20000L
#define MAX_MATCHES 64

/* Where the pieces of an expanded replacement may come from. */
struct sink {
    const struct lpattern_match *m;
    const char *repl;
    size_t repl_len;
};

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_lpattern: %s\n", what);
        abort();
    }
}

static int inside(const char *text, size_t len, const char *base, size_t base_len)
{
    return text >= base && len <= base_len && (size_t)(text - base) <= base_len - len;
}

/* A piece is the subject's, the replacement's, or a "%" or position number
 * the expander formats itself. */
static void check_piece(void *ud, const char *text, size_t len)
{
    const struct sink *s = ud;

    check(len == 0 || inside(text, len, s->m->subject, s->m->subject_len) ||
              inside(text, len, s->repl, s->repl_len) || (text != NULL && len <= 20),
          "a replacement piece from outside the subject and replacement");
}

/* Splits data at a NUL byte: [data, *len) is the part, *rest what follows. */
static const char *take_part(const uint8_t **data, size_t *size, size_t *len)
{
    const char *part = (const char *)*data;
    const uint8_t *nul = memchr(*data, '\0', *size);

    *len = nul ? (size_t)(nul - *data) : *size;
    *data += *len + (nul != NULL);
    *size -= *len + (nul != NULL);
    return part;
}

static void check_match(struct lpattern_match *m, size_t start, size_t end, const char *repl,
                        size_t repl_len)
{
    struct lpattern_capture cap;
    struct sink sink = {m, repl, repl_len};
    int n = lpattern_result_count(m, 1);

    check(start <= end && end <= m->subject_len, "match outside the subject");
    check(n >= 1 && n <= LPATTERN_MAX_CAPTURES, "capture count out of range");
    for (int i = 0; i < n; i++) {
        int kind = lpattern_get_capture(m, i, start, end, &cap);
        if (kind == LPATTERN_CAPTURE_TEXT) {
            check(cap.len >= 0 && cap.start + (size_t)cap.len <= m->subject_len,
                  "capture outside the subject");
        } else if (kind == LPATTERN_CAPTURE_POSITION) {
            check(cap.start <= m->subject_len, "position capture outside the subject");
        } else {
            check(kind == LPATTERN_EPATTERN && m->error[0], "capture error without a message");
        }
    }
    if (lpattern_expand(m, repl, repl_len, start, end, check_piece, &sink) < 0) {
        check(m->error[0] != '\0', "replacement error without a message");
    }
}

/* A pattern without special characters is a literal: the first match is
 * where memmem finds it. */
static void check_plain(const struct lpattern_match *m, int found, size_t start)
{
    const char *at = memmem(m->subject, m->subject_len, m->pattern, m->pattern_len);

    check(found ? at != NULL && (size_t)(at - m->subject) == start : at == NULL,
          "a plain pattern matched elsewhere than memmem finds it");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lpattern_match m;
    size_t pattern_len, subject_len, repl_len, init = 0, start = 0, end = 0;
    int flags;

    if (size < 1) {
        return 0;
    }
    flags = data[0] & 1 ? LPATTERN_CARET_ANCHORS : 0;
    data++, size--;
    const char *pattern = take_part(&data, &size, &pattern_len);
    const char *subject = take_part(&data, &size, &subject_len);
    const char *repl = (const char *)data;
    repl_len = size;

    int plain = lpattern_is_plain(pattern, pattern_len);
    lpattern_init(&m, subject, subject_len, pattern, pattern_len, flags, STEP_BUDGET);
    for (int i = 0; i < MAX_MATCHES && init <= subject_len; i++) {
        int r = lpattern_find(&m, init, &start, &end);
        if (i == 0 && plain && r >= 0) {
            check_plain(&m, r, start);
        }
        if (r < 0) {
            check(m.error[0] != '\0' && r == m.error_code, "matching error without a message");
            break;
        }
        if (r == 0) {
            break;
        }
        check_match(&m, start, end, repl, repl_len);
        /* gmatch's rule: an empty match moves on by one byte. */
        init = end > start ? end : end + 1;
    }
    check(m.steps_left >= -(long)(pattern_len + subject_len) - 1, "step budget overdrawn");
    return 0;
}
