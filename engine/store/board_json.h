/*
 * board_json: an exchange's status as one JSON object, for rx:s (DESIGN 7),
 * and back. A scraping node writes what its board says, with the counts
 * its store keeps (pairs, rejects by reason) and its node_id; an api node
 * reads it into a board_status marked remote and shows it as written.
 *
 * Threads: any; no state.
 */
#ifndef RX_BOARD_JSON_H
#define RX_BOARD_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "core/jbuf.h"

/* Appends st as an object. pairs and rejects (TICKER_REJECT_COUNT counts)
 * are the store's; node_id names the writer. */
void board_status_json(struct jbuf *b, const struct board_status *st, uint64_t pairs,
                       const uint64_t *rejects, const char *node_id);

/* The reverse, for text read from Redis (hostile until checked): 0 and a
 * status with remote set, or -EINVAL for anything but a well-formed object
 * with a name and a known state. */
int board_status_from_json(const char *text, size_t len, struct board_status *out);

#endif
