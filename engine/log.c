/*
 * log: formatting, redaction and the single write per line.
 *
 * Redaction runs on the fully formatted message rather than on arguments,
 * because a token can arrive inside any string (a URL, a header dump, an
 * error from a library). The scan is linear and bounded by the line size.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "xalloc.h"

#define LOG_LINE_MAX 4096
#define LOG_MAX_SECRETS 64

static struct {
    enum log_level min_level;
    bool json;
    char *secrets[LOG_MAX_SECRETS];
    size_t n_secrets;
} log_cfg = {LOG_INFO, false, {0}, 0};

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
    if (!secret || strlen(secret) < 4 || log_cfg.n_secrets == LOG_MAX_SECRETS) {
        return;
    }
    log_cfg.secrets[log_cfg.n_secrets++] = xstrdup(secret);
}

void log_clear_secrets(void)
{
    for (size_t i = 0; i < log_cfg.n_secrets; i++) {
        free(log_cfg.secrets[i]);
    }
    log_cfg.n_secrets = 0;
}

static bool is_value_end(char c)
{
    return c == '\0' || c == '&' || c == ' ' || c == '"' || c == '\'' || c == '#' || c == '\r' ||
           c == '\n' || c == ',' || c == ';';
}

/* Length of a registered secret starting at s, or 0. */
static size_t secret_at(const char *s)
{
    for (size_t i = 0; i < log_cfg.n_secrets; i++) {
        size_t n = strlen(log_cfg.secrets[i]);
        if (strncmp(s, log_cfg.secrets[i], n) == 0) {
            return n;
        }
    }
    return 0;
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

/* Appends `s` JSON-escaped; control bytes become \u00XX. */
static size_t json_escape(char *out, size_t o, size_t cap, const char *s)
{
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

void log_write(enum log_level level, const char *component, const char *fmt, ...)
{
    char raw[LOG_LINE_MAX];
    char msg[LOG_LINE_MAX];
    char line[LOG_LINE_MAX * 2];
    char stamp[64];
    struct timespec now;
    struct tm tm;
    va_list ap;
    size_t o;

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

    if (log_cfg.json) {
        o = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"",
                             stamp, level_names[level]);
        o = json_escape(line, o, sizeof line, component);
        o += (size_t)snprintf(line + o, sizeof line - o, "\",\"msg\":\"");
        o = json_escape(line, o, sizeof line, msg);
        o += (size_t)snprintf(line + o, sizeof line - o, "\"}\n");
    } else {
        o = (size_t)snprintf(line, sizeof line, "%s %-5s %s: %s\n", stamp, level_names[level],
                             component, msg);
    }
    if (o >= sizeof line) {
        o = sizeof line - 1;
        line[o - 1] = '\n';
    }
    /* One write per line keeps lines from different threads whole; a failed
     * write to stderr has nowhere better to be reported. */
    if (write(STDERR_FILENO, line, o) < 0) {
        return;
    }
}
