/*
 * lib_log: what the network libraries log goes through our logger, so a
 * JSON-format log stays one JSON record per line and nothing reaches
 * stderr unformatted or unredacted. libwebsockets' own lines (its banner
 * at context creation among them) come in as `libwebsockets` warnings and
 * errors; its notices and debug lines are dropped. libcurl logs nothing
 * unless asked (we never set CURLOPT_VERBOSE).
 *
 * Threads: call lib_log_route once, on the main thread, before any
 * libwebsockets context exists; libwebsockets may then log from any loop
 * thread, which log_write allows.
 */
#ifndef RX_LIB_LOG_H
#define RX_LIB_LOG_H

void lib_log_route(void);

#endif
