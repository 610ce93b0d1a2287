/*
 * log: formatting, redaction and the single write per line.
 *
 * Redaction runs on the fully formatted message rather than on arguments,
 * because a token can arrive inside any string (a URL, a header dump, an
 * error from a library). The scan is linear and bounded by the line size.
 */
/*
 * log: formatting, redaction and the single write per line.
 *
 * Redaction runs on the fully formatted message rather than on arguments,
 * because a token can arrive inside any string (a URL, a header dump, an
 * error from a library). The scan is linear in the line size.
 *
 * Secrets are added rarely (at start, on every token rotation) and read for
 * every line, from any thread. They live in an append-only table of lists,
 * one list per first byte: a new secret is linked at the head of its list
 * with a release store, readers walk the lists with acquire loads and never
 * wait, and nothing is freed while other threads may log. Every secret ever
 * registered stays redacted (a rotated-out token can still show up in a
 * client's request), duplicates are registered once, and the per-position
 * cost is the few secrets that share its first byte.
 *
 * A record is one line: control characters in a message (an operator's
 * x.log text, a library's error) are escaped in both formats, so nobody
 * can forge a record or send terminal escapes through the log.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "jbuf.h"
#include "xalloc.h"

#define LOG_LINE_MAX 4096

struct secret {
    struct secret *next;
    size_t len;
    char text[];
};

static struct {
    enum log_level min_level;
    bool json;
} log_cfg = {LOG_INFO, false};

/* Heads of the secret lists, by first byte. */
static _Atomic(struct secret *) secrets[256];
/* Serialises writers; readers never take it. */
static pthread_mutex_t secrets_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level min_level, bool json)
{
    log_cfg.min_level = min_level;
    log_cfg.json = json;
}

bool log_enabled(enum log_level level)
{
    return level >= log_cfg.min_level;
}

void log_add_secret(const char *secret)
{
    /* Very short secrets would redact ordinary words; config validation
     * refuses tokens that short, so skipping them here loses nothing. */
    size_t len = secret ? strlen(secret) : 0;
    if (len < 4) {
        return;
    }
    _Atomic(struct secret *) *head = &secrets[(unsigned char)secret[0]];
    pthread_mutex_lock(&secrets_lock);
    for (struct secret *s = atomic_load_explicit(head, memory_order_relaxed); s; s = s->next) {
        if (s->len == len && memcmp(s->text, secret, len) == 0) {
            pthread_mutex_unlock(&secrets_lock);
            return;
        }
    }
    struct secret *fresh = xmalloc(sizeof *fresh + len + 1);
    fresh->len = len;
    memcpy(fresh->text, secret, len + 1);
    fresh->next = atomic_load_explicit(head, memory_order_relaxed);
    atomic_store_explicit(head, fresh, memory_order_release);
    pthread_mutex_unlock(&secrets_lock);
}

void log_clear_secrets(void)
{
    pthread_mutex_lock(&secrets_lock);
    for (size_t i = 0; i < 256; i++) {
        struct secret *s = atomic_exchange_explicit(&secrets[i], NULL, memory_order_acq_rel);
        while (s) {
            struct secret *next = s->next;
            explicit_bzero(s->text, s->len);
            free(s);
            s = next;
        }
    }
    pthread_mutex_unlock(&secrets_lock);
}

static bool is_value_end(char c)
{
    return c == '\0' || c == '&' || c == ' ' || c == '"' || c == '\'' || c == '#' || c == '\r' ||
           c == '\n' || c == ',' || c == ';';
}

/* Length of the longest registered secret starting at s, or 0. */
static size_t secret_at(const char *s)
{
    size_t found = 0;
    struct secret *p = atomic_load_explicit(&secrets[(unsigned char)*s], memory_order_acquire);
    for (; p; p = p->next) {
        if (p->len > found && strncmp(s, p->text, p->len) == 0) {
            found = p->len;
        }
    }
    return found;
}

void log_redact(const char *src, char *dst, size_t cap)
{
    static const char mask[] = "REDACTED";
    size_t o = 0;
    const char *s = src;

    if (cap == 0) {
        return;
    }
    while (*s && o + 1 < cap) {
        size_t skip = 0;
        size_t keep = 0;
        if (strncasecmp(s, "token=", 6) == 0) {
            keep = 6;
        } else if (strncasecmp(s, "bearer ", 7) == 0) {
            keep = 7;
        }
        if (keep) {
            while (!is_value_end(s[keep + skip])) {
                skip++;
            }
        } else {
            skip = secret_at(s);
        }
        if (skip == 0) {
            dst[o++] = *s++;
            continue;
        }
        for (size_t i = 0; i < keep && o + 1 < cap; i++) {
            dst[o++] = s[i];
        }
        for (size_t i = 0; mask[i] && o + 1 < cap; i++) {
            dst[o++] = mask[i];
        }
        s += keep + skip;
    }
    dst[o] = '\0';
}

/* Appends s with every control character escaped (\n, \r, \t, or \xNN),
 * so a message is one line of plain text whatever it holds. */
static void text_escape(struct jbuf *b, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != 0x7f) {
            continue;
        }
        jbuf_add(b, run, (size_t)(s - run));
        run = s + 1;
        if (c == '\n') {
            jbuf_adds(b, "\\n");
        } else if (c == '\r') {
            jbuf_adds(b, "\\r");
        } else if (c == '\t') {
            jbuf_adds(b, "\\t");
        } else {
            jbuf_addf(b, "\\x%02x", c);
        }
    }
    jbuf_add(b, run, (size_t)(s - run));
}

void log_write(enum log_level level, const char *component, const char *fmt, ...)
{
    char raw[LOG_LINE_MAX];
    char msg[LOG_LINE_MAX];
    char stamp[64];
    struct timespec now;
    struct tm tm;
    struct jbuf line;
    va_list ap;

    if (!log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    log_redact(raw, msg, sizeof msg);

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (now.tv_nsec / 1000000) % 1000);

    jbuf_init(&line);
    if (log_cfg.json) {
        jbuf_addf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", stamp,
                  level_names[level]);
        jbuf_str(&line, component);
        jbuf_adds(&line, ",\"msg\":");
        jbuf_str(&line, msg);
        jbuf_adds(&line, "}\n");
    } else {
        jbuf_addf(&line, "%s %-5s ", stamp, level_names[level]);
        text_escape(&line, component);
        jbuf_adds(&line, ": ");
        text_escape(&line, msg);
        jbuf_adds(&line, "\n");
    }
    /* One write per line keeps lines from different threads whole; a failed
     * write to stderr has nowhere better to be reported. */
    if (write(STDERR_FILENO, line.data, line.len) < 0) {
        line.len = 0;
    }
    jbuf_free(&line);
}
