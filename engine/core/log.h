/*
 * log: one line per event on stderr, as text or JSON.
 *
 * Every line carries the wall-clock time, the level and a component (the
 * module, or "op:<name>" for an operator). Secrets are redacted by
 * construction: the formatter rewrites `token=<value>` in any URL and
 * `Bearer <value>` in any header, and replaces every string registered with
 * log_add_secret(), so a careless caller cannot leak a token.
 *
 * Any thread may log; each line is written with one write(2), so lines from
 * different threads never interleave, and control characters in a message
 * are escaped, so one call is one line. log_setup runs before other threads
 * start; log_add_secret may run on any thread at any time (token rotation),
 * and every secret registered stays redacted until log_clear_secrets, which
 * runs when no other thread logs any more (at exit).
 */
#ifndef RX_LOG_H
#define RX_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_setup(enum log_level min_level, bool json);
bool log_enabled(enum log_level level);

/* Registers a secret that must never appear in a log line (copied; a
 * secret already registered is ignored). */
void log_add_secret(const char *secret);
void log_clear_secrets(void);

void log_write(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Redacts `src` into `dst` (always NUL-terminated); exposed for tests and for
 * the access log, which formats its own lines. */
void log_redact(const char *src, char *dst, size_t cap);

#define log_debug(component, ...) log_write(LOG_DEBUG, component, __VA_ARGS__)
#define log_info(component, ...) log_write(LOG_INFO, component, __VA_ARGS__)
#define log_warn(component, ...) log_write(LOG_WARN, component, __VA_ARGS__)
#define log_error(component, ...) log_write(LOG_ERROR, component, __VA_ARGS__)

#endif
