/*
 * lib_log: libwebsockets' emit callback into log_write. Its lines end in a
 * newline, which log_write would escape; it is trimmed first.
 */
#include "lib_log.h"

#include <libwebsockets.h>
#include <string.h>

#include "core/log.h"

static void emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        n--;
    }
    log_write(level & LLL_ERR ? LOG_ERROR : LOG_WARN, "libwebsockets", "%.*s", (int)n, line);
}

void lib_log_route(void)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, emit);
}
