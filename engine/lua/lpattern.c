/*
 * lpattern.c: a backtracking matcher for Lua 5.4 patterns that counts its steps.
 *
 * Design. The sandbox needs the stock results bit for bit, errors included,
 * so this is a backtracking matcher that walks the pattern the way the Lua
 * manual describes it, one item at a time: a single-character class followed
 * by an optional '*', '+', '-' or '?', a capture bracket, a back-reference
 * "%n", a balance "%bxy", a frontier "%f[set]", or a final '$'. Items are not
 * compiled ahead: a malformed item is only reported when the matcher reaches
 * it, because that is when the stock matcher reports it (find("b", "a[")
 * returns nil, find("a", "a[") raises), and operators may rely on either.
 *
 * Backtracking happens at '?' (try with the character, then without), '*'
 * and '+' (longest run first, then shorter), '-' (shortest first, then
 * longer) and at captures (undo on failure). Each of those points recurses
 * once for "the rest of the pattern"; everything else loops in place. So the
 * recursion depth follows the pattern's structure, never the subject's
 * length, and LPATTERN_MAX_DEPTH (200, like the stock MAXCCALLS) bounds the C
 * stack to some tens of kilobytes (about 200 bytes a level when optimised).
 * A gsub callback runs after the recursion has unwound, so nested calls from
 * callbacks do not stack up matcher frames.
 *
 * Time is bounded by the step budget: entering an item and testing one
 * subject character each cost one step, and scans inside an item cost by the
 * bytes they look at (a balance one step per subject byte, a back-reference
 * one per 8 bytes compared, a set one per 4 pattern bytes scanned). When the
 * budget hits zero the whole call fails with LPATTERN_EBUDGET; no step does
 * more than a small constant amount of work.
 *
 * Results propagate as ptrdiff_t: an end offset (>= 0), NO_MATCH, or
 * MATCH_ERROR once m->error holds the message. No longjmp crosses this file.
 */
#include "lpattern.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define NO_MATCH ((ptrdiff_t)-1)
#define MATCH_ERROR ((ptrdiff_t)-2)

/* Bytes of a set that scanning costs one extra step (sets of under four bytes cost none). */
#define SET_BYTES_PER_STEP 4

/* Bytes of a back-reference that comparing costs one step (memcmp is fast). */
#define BACKREF_BYTES_PER_STEP 8

/* The characters that make find() use the matcher instead of a plain search. */
static const char specials[] = "^$*+?.([%-";

/* Records an error message and returns MATCH_ERROR. */
static ptrdiff_t fail(struct lpattern_match *m, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(m->error, sizeof(m->error), fmt, ap);
    va_end(ap);
    m->error_code = code;
    return MATCH_ERROR;
}

/*
 * Pattern and subject bytes past the end read as '\0', which is how the stock
 * matcher sees the terminator of a Lua string; it keeps the quantifier and
 * frontier checks at the end of either string identical without branches.
 */
static int pat_at(const struct lpattern_match *m, size_t p)
{
    return p < m->pattern_len ? (unsigned char)m->pattern[p] : '\0';
}

static int subj_at(const struct lpattern_match *m, size_t s)
{
    return s < m->subject_len ? (unsigned char)m->subject[s] : '\0';
}

/* Spends `n` steps; false once the budget is gone. */
static int spend(struct lpattern_match *m, long n)
{
    m->steps_left -= n;
    return m->steps_left >= 0;
}

static ptrdiff_t over_budget(struct lpattern_match *m)
{
    return fail(m, LPATTERN_EBUDGET, "pattern too complex (step budget exceeded)");
}

/* The %x classes of the manual; an upper-case letter is the complement. */
static int class_has(int c, int cls)
{
    int in;

    switch (tolower(cls)) {
    case 'a':
        in = isalpha(c);
        break;
    case 'c':
        in = iscntrl(c);
        break;
    case 'd':
        in = isdigit(c);
        break;
    case 'g':
        in = isgraph(c);
        break;
    case 'l':
        in = islower(c);
        break;
    case 'p':
        in = ispunct(c);
        break;
    case 's':
        in = isspace(c);
        break;
    case 'u':
        in = isupper(c);
        break;
    case 'w':
        in = isalnum(c);
        break;
    case 'x':
        in = isxdigit(c);
        break;
    case 'z':
        /* Undocumented since 5.2 but still accepted by 5.4.4: the NUL byte. */
        in = (c == 0);
        break;
    default:
        /* "%" before a non-class character escapes it. */
        return cls == c;
    }
    if (isupper(cls)) {
        in = !in;
    }
    return in != 0;
}

/*
 * Whether `c` is in the set that opens with '[' at `p` and closes with the
 * ']' at `close`. The first character after "[" or "[^" is always a member
 * character (so "[]]" is the set of ']'), which item_end already relies on.
 */
static int set_has(const struct lpattern_match *m, int c, size_t p, size_t close)
{
    int negated = 0;

    p++;
    if (pat_at(m, p) == '^') {
        negated = 1;
        p++;
    }
    while (p < close) {
        int first = pat_at(m, p);

        if (first == '%') {
            if (class_has(c, pat_at(m, p + 1))) {
                return !negated;
            }
            p += 2;
        } else if (pat_at(m, p + 1) == '-' && p + 2 < close) {
            if (first <= c && c <= pat_at(m, p + 2)) {
                return !negated;
            }
            p += 3;
        } else {
            if (first == c) {
                return !negated;
            }
            p++;
        }
    }
    return negated;
}

/*
 * Finds where the single-character class at `p` ends (where its quantifier
 * would be) and stores it in *end. Fails on a trailing '%' or an open set.
 */
static ptrdiff_t item_end(struct lpattern_match *m, size_t p, size_t *end)
{
    int c = pat_at(m, p++);

    if (c == '%') {
        if (p >= m->pattern_len) {
            return fail(m, LPATTERN_EPATTERN, "malformed pattern (ends with '%%')");
        }
        *end = p + 1;
        return 0;
    }
    if (c == '[') {
        if (pat_at(m, p) == '^') {
            p++;
        }
        do {
            if (p >= m->pattern_len) {
                return fail(m, LPATTERN_EPATTERN, "malformed pattern (missing ']')");
            }
            /* An escaped character, "%]" included, never closes the set. */
            if (m->pattern[p++] == '%' && p < m->pattern_len) {
                p++;
            }
        } while (pat_at(m, p) != ']');
        *end = p + 1;
        return 0;
    }
    *end = p;
    return 0;
}

/* What scanning the set or class [p, end) costs beyond its one step. */
static long scan_cost(size_t p, size_t end)
{
    return (long)((end - p) / SET_BYTES_PER_STEP);
}

/*
 * Tests the subject character at `s` against the class [p, end). Returns 1 or
 * 0, or -1 when the budget is gone. A set costs by its length, or one huge
 * set would make every step arbitrarily slow.
 */
static int char_matches(struct lpattern_match *m, size_t s, size_t p, size_t end)
{
    int c;

    if (!spend(m, 1)) {
        return -1;
    }
    if (s >= m->subject_len) {
        return 0;
    }
    c = (unsigned char)m->subject[s];
    switch (pat_at(m, p)) {
    case '.':
        return 1;
    case '%':
        return class_has(c, pat_at(m, p + 1));
    case '[':
        if (!spend(m, scan_cost(p, end))) {
            return -1;
        }
        return set_has(m, c, p, end - 1);
    default:
        return pat_at(m, p) == c;
    }
}

static ptrdiff_t match_here(struct lpattern_match *m, size_t s, size_t p);

/*
 * Matches the rest of the pattern from `p` at `s` one level deeper. This is
 * the only recursion in the matcher, and the depth cap lives here.
 */
static ptrdiff_t match_nested(struct lpattern_match *m, size_t s, size_t p)
{
    ptrdiff_t r;

    if (m->depth >= LPATTERN_MAX_DEPTH) {
        return fail(m, LPATTERN_ECOMPLEX, "pattern too complex");
    }
    m->depth++;
    r = match_here(m, s, p);
    m->depth--;
    return r;
}

/* Class [p, end) followed by '*' (or '+' with one character already taken). */
static ptrdiff_t match_greedy(struct lpattern_match *m, size_t s, size_t p, size_t end)
{
    size_t n = 0;
    int ok;

    while ((ok = char_matches(m, s + n, p, end)) == 1) {
        n++;
    }
    if (ok < 0) {
        return over_budget(m);
    }
    /* Longest run first, giving back one character at a time. */
    for (;;) {
        ptrdiff_t r = match_nested(m, s + n, end + 1);

        if (r != NO_MATCH) {
            return r;
        }
        if (n == 0) {
            return NO_MATCH;
        }
        n--;
    }
}

/* Class [p, end) followed by '-': shortest run first, one more at a time. */
static ptrdiff_t match_lazy(struct lpattern_match *m, size_t s, size_t p, size_t end)
{
    for (;;) {
        ptrdiff_t r = match_nested(m, s, end + 1);
        int ok;

        if (r != NO_MATCH) {
            return r;
        }
        ok = char_matches(m, s, p, end);
        if (ok < 0) {
            return over_budget(m);
        }
        if (!ok) {
            return NO_MATCH;
        }
        s++;
    }
}

/* '(' at `s`: opens capture `level`, undone if the rest fails. */
static ptrdiff_t open_capture(struct lpattern_match *m, size_t s, size_t p, ptrdiff_t kind)
{
    ptrdiff_t r;

    if (m->level >= LPATTERN_MAX_CAPTURES) {
        return fail(m, LPATTERN_EPATTERN, "too many captures");
    }
    m->capture[m->level].start = s;
    m->capture[m->level].len = kind;
    m->level++;
    r = match_nested(m, s, p);
    if (r == NO_MATCH) {
        m->level--;
    }
    return r;
}

/* ')' at `s`: closes the innermost open capture, reopened if the rest fails. */
static ptrdiff_t close_capture(struct lpattern_match *m, size_t s, size_t p)
{
    int i = m->level - 1;
    ptrdiff_t r;

    while (i >= 0 && m->capture[i].len != LPATTERN_CAP_UNFINISHED) {
        i--;
    }
    if (i < 0) {
        return fail(m, LPATTERN_EPATTERN, "invalid pattern capture");
    }
    m->capture[i].len = (ptrdiff_t)(s - m->capture[i].start);
    r = match_nested(m, s, p);
    if (r == NO_MATCH) {
        m->capture[i].len = LPATTERN_CAP_UNFINISHED;
    }
    return r;
}

/* "%bxy" with `p` at x: a balanced run from x to its matching y. */
static ptrdiff_t match_balance(struct lpattern_match *m, size_t s, size_t p)
{
    int open, close, depth = 1;

    if (p + 1 >= m->pattern_len) {
        return fail(m, LPATTERN_EPATTERN, "malformed pattern (missing arguments to '%%b')");
    }
    open = (unsigned char)m->pattern[p];
    close = (unsigned char)m->pattern[p + 1];
    if (s >= m->subject_len || (unsigned char)m->subject[s] != open) {
        return NO_MATCH;
    }
    for (s++; s < m->subject_len; s++) {
        int c = (unsigned char)m->subject[s];

        if (!spend(m, 1)) {
            return over_budget(m);
        }
        if (c == close) {
            if (--depth == 0) {
                return (ptrdiff_t)(s + 1);
            }
        } else if (c == open) {
            depth++;
        }
    }
    return NO_MATCH;
}

/* "%1".."%9" (digit `d`): the same text a closed capture matched. */
static ptrdiff_t match_backref(struct lpattern_match *m, size_t s, int d)
{
    int i = d - '1';
    ptrdiff_t len;

    if (i < 0 || i >= m->level || m->capture[i].len == LPATTERN_CAP_UNFINISHED) {
        return fail(m, LPATTERN_EPATTERN, "invalid capture index %%%d", i + 1);
    }
    len = m->capture[i].len;
    /* A position capture has no text, so a reference to it never matches. */
    if (len < 0 || m->subject_len - s < (size_t)len) {
        return NO_MATCH;
    }
    if (!spend(m, 1 + len / BACKREF_BYTES_PER_STEP)) {
        return over_budget(m);
    }
    if (memcmp(m->subject + m->capture[i].start, m->subject + s, (size_t)len) != 0) {
        return NO_MATCH;
    }
    return (ptrdiff_t)(s + (size_t)len);
}

/* "%f[set]" with `p` at the '['; on success *next is the item after it. */
static ptrdiff_t match_frontier(struct lpattern_match *m, size_t s, size_t p, size_t *next)
{
    int before = s == 0 ? '\0' : (unsigned char)m->subject[s - 1];

    if (pat_at(m, p) != '[') {
        return fail(m, LPATTERN_EPATTERN, "missing '[' after '%%f' in pattern");
    }
    if (item_end(m, p, next) < 0) {
        return MATCH_ERROR;
    }
    if (!spend(m, 3 * scan_cost(p, *next))) {
        return over_budget(m);
    }
    if (!set_has(m, before, p, *next - 1) && set_has(m, subj_at(m, s), p, *next - 1)) {
        return (ptrdiff_t)s;
    }
    return NO_MATCH;
}

/*
 * A single-character class at `p` with its optional quantifier. On a plain
 * one-character step it stores the new positions and returns s + 1 for the
 * caller's loop to continue with *next; '?', '*', '+' and '-' finish the
 * match here (through match_nested) and set *next to SIZE_MAX.
 */
static ptrdiff_t match_single(struct lpattern_match *m, size_t s, size_t p, size_t *next)
{
    size_t end = 0;
    int quant, ok;
    ptrdiff_t r;

    if (item_end(m, p, &end) < 0) {
        return MATCH_ERROR;
    }
    /* Finding the end of a set scanned it once already. */
    if (!spend(m, scan_cost(p, end))) {
        return over_budget(m);
    }
    quant = pat_at(m, end);
    ok = char_matches(m, s, p, end);
    if (ok < 0) {
        return over_budget(m);
    }
    *next = SIZE_MAX;
    if (!ok) {
        if (quant == '*' || quant == '?' || quant == '-') {
            *next = end + 1; /* zero repetitions: carry on after the quantifier */
            return (ptrdiff_t)s;
        }
        return NO_MATCH;
    }
    switch (quant) {
    case '?':
        r = match_nested(m, s + 1, end + 1);
        if (r != NO_MATCH) {
            return r;
        }
        *next = end + 1;
        return (ptrdiff_t)s;
    case '+':
        return match_greedy(m, s + 1, p, end);
    case '*':
        return match_greedy(m, s, p, end);
    case '-':
        return match_lazy(m, s, p, end);
    default:
        *next = end;
        return (ptrdiff_t)(s + 1);
    }
}

/*
 * Matches the pattern from item `p` at subject offset `s`. Items that cannot
 * backtrack advance in this loop; the others return their final answer.
 */
static ptrdiff_t match_here(struct lpattern_match *m, size_t s, size_t p)
{
    for (;;) {
        ptrdiff_t r;
        size_t next = 0;
        int c1;

        if (!spend(m, 1)) {
            return over_budget(m);
        }
        if (p >= m->pattern_len) {
            return (ptrdiff_t)s;
        }
        switch (m->pattern[p]) {
        case '(':
            if (pat_at(m, p + 1) == ')') {
                return open_capture(m, s, p + 2, LPATTERN_CAP_POSITION);
            }
            return open_capture(m, s, p + 1, LPATTERN_CAP_UNFINISHED);
        case ')':
            return close_capture(m, s, p + 1);
        case '$':
            if (p + 1 == m->pattern_len) {
                return s == m->subject_len ? (ptrdiff_t)s : NO_MATCH;
            }
            break; /* not last: an ordinary character */
        case '%':
            c1 = pat_at(m, p + 1);
            if (c1 == 'b') {
                r = match_balance(m, s, p + 2);
                if (r < 0) {
                    return r;
                }
                s = (size_t)r;
                p += 4;
                continue;
            }
            if (c1 == 'f') {
                r = match_frontier(m, s, p + 2, &next);
                if (r < 0) {
                    return r;
                }
                p = next;
                continue;
            }
            if (c1 >= '0' && c1 <= '9') {
                r = match_backref(m, s, c1);
                if (r < 0) {
                    return r;
                }
                s = (size_t)r;
                p += 2;
                continue;
            }
            break; /* an escaped character or a class */
        default:
            break;
        }
        r = match_single(m, s, p, &next);
        if (r < 0 || next == SIZE_MAX) {
            return r;
        }
        s = (size_t)r;
        p = next;
    }
}

/* Turns an internal result into the public 1 / 0 / negative code. */
static int finish(struct lpattern_match *m, ptrdiff_t r, size_t *end)
{
    if (r == MATCH_ERROR) {
        return m->error_code;
    }
    if (r == NO_MATCH) {
        return 0;
    }
    *end = (size_t)r;
    return 1;
}

void lpattern_init(struct lpattern_match *m, const char *subject, size_t subject_len,
                   const char *pattern, size_t pattern_len, int flags, long steps)
{
    m->subject = subject;
    m->subject_len = subject_len;
    m->pattern = pattern;
    m->pattern_len = pattern_len;
    m->anchored = 0;
    if ((flags & LPATTERN_CARET_ANCHORS) && pattern_len > 0 && pattern[0] == '^') {
        m->anchored = 1;
        m->pattern++;
        m->pattern_len--;
    }
    m->steps_left = steps;
    m->depth = 0;
    m->level = 0;
    m->error_code = 0;
    m->error[0] = '\0';
}

long lpattern_budget_for(long base, size_t subject_len)
{
    if (base <= 0) {
        base = LPATTERN_DEFAULT_BUDGET;
    }
    if (subject_len > (size_t)(LONG_MAX / LPATTERN_STEPS_PER_BYTE)) {
        return LONG_MAX;
    }
    if ((long)subject_len * LPATTERN_STEPS_PER_BYTE > base) {
        return (long)subject_len * LPATTERN_STEPS_PER_BYTE;
    }
    return base;
}

int lpattern_match_at(struct lpattern_match *m, size_t start, size_t *end)
{
    m->depth = 0;
    m->level = 0;
    /* The outermost attempt counts as a level too, as in the stock matcher. */
    return finish(m, match_nested(m, start, 0), end);
}

int lpattern_find(struct lpattern_match *m, size_t init, size_t *start, size_t *end)
{
    size_t s = init;

    for (;;) {
        int r = lpattern_match_at(m, s, end);

        if (r != 0) {
            *start = s;
            return r;
        }
        if (m->anchored || s >= m->subject_len) {
            return 0;
        }
        s++;
    }
}

int lpattern_get_capture(struct lpattern_match *m, int i, size_t mstart, size_t mend,
                         struct lpattern_capture *out)
{
    if (i >= m->level) {
        if (i != 0) {
            fail(m, LPATTERN_EPATTERN, "invalid capture index %%%d", i + 1);
            return LPATTERN_EPATTERN;
        }
        out->start = mstart;
        out->len = (ptrdiff_t)(mend - mstart);
        return LPATTERN_CAPTURE_TEXT;
    }
    *out = m->capture[i];
    if (out->len == LPATTERN_CAP_UNFINISHED) {
        fail(m, LPATTERN_EPATTERN, "unfinished capture");
        return LPATTERN_EPATTERN;
    }
    return out->len == LPATTERN_CAP_POSITION ? LPATTERN_CAPTURE_POSITION : LPATTERN_CAPTURE_TEXT;
}

int lpattern_result_count(const struct lpattern_match *m, int whole_if_none)
{
    return (m->level == 0 && whole_if_none) ? 1 : m->level;
}

int lpattern_expand(struct lpattern_match *m, const char *repl, size_t repl_len, size_t mstart,
                    size_t mend, lpattern_sink_fn sink, void *ud)
{
    size_t i = 0;

    while (i < repl_len) {
        const char *pct = memchr(repl + i, '%', repl_len - i);
        struct lpattern_capture cap;
        char digits[24];
        int d, kind;

        if (pct == NULL) {
            sink(ud, repl + i, repl_len - i);
            return 0;
        }
        sink(ud, repl + i, (size_t)(pct - (repl + i)));
        i = (size_t)(pct - repl) + 1;
        d = i < repl_len ? (unsigned char)repl[i] : '\0';
        i++;
        if (d == '%') {
            sink(ud, "%", 1);
            continue;
        }
        if (d < '0' || d > '9') {
            fail(m, LPATTERN_EPATTERN, "invalid use of '%%' in replacement string");
            return LPATTERN_EPATTERN;
        }
        if (d == '0') {
            sink(ud, m->subject + mstart, mend - mstart);
            continue;
        }
        kind = lpattern_get_capture(m, d - '1', mstart, mend, &cap);
        if (kind < 0) {
            return kind;
        }
        if (kind == LPATTERN_CAPTURE_POSITION) {
            int n = snprintf(digits, sizeof(digits), "%zu", cap.start + 1);

            sink(ud, digits, (size_t)n);
        } else {
            sink(ud, m->subject + cap.start, (size_t)cap.len);
        }
    }
    return 0;
}

int lpattern_is_plain(const char *pattern, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (pattern[i] != '\0' && strchr(specials, pattern[i]) != NULL) {
            return 0;
        }
    }
    return 1;
}
