/*
 * control: the test-facing API under /_fakex/ on the same port.
 *
 *   GET  /_fakex/health               {"ok":true,"exchanges":[...]}
 *   POST /_fakex/<exchange>/push      {"ws": <frame>} and/or {"rest": {...}}
 *   POST /_fakex/<exchange>/stop      pause replay (connections stay open)
 *   POST /_fakex/<exchange>/resume
 *   POST /_fakex/<exchange>/fault     {"status":500, "ws_stall":true, ...}
 *   GET  /_fakex/<exchange>/fault     the active faults
 *   POST /_fakex/<exchange>/reset     faults, overrides, stop and counters
 *   GET  /_fakex/<exchange>/stats     request and WebSocket counters
 *
 * Only loopback peers may use it (403 otherwise). Every answer is JSON; bad
 * JSON or values are 400, an unknown exchange or action 404, a wrong method
 * 405. Called from http.c on the lws loop; fills the transaction's
 * response and never blocks.
 */
#ifndef FAKEX_CONTROL_H
#define FAKEX_CONTROL_H

#include "fakex.h"
#include "http.h"

void control_handle(struct fakex *ctx, struct http_txn *t);

#endif
