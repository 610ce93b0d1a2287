/*
 * expect: frames a client must answer (sidecar "expect" rules).
 *
 * Exchanges close connections that leave their heartbeats unanswered:
 * Crypto.com wants `public/respond-heartbeat` with the id of each
 * `public/heartbeat`, HTX a {"pong":N} for each {"ping":N}. A rule says
 * which frames need an answer (`when`), what the answer looks like
 * (`reply`, whose "{{path}}" values are taken from the frame) and how long
 * the client has. This module decides, on parsed JSON and without sockets,
 * which rules a sent frame arms and whether a client message answers one;
 * replay.c keeps the deadlines and closes the connection. Pure; any thread.
 */
#ifndef FAKEX_EXPECT_H
#define FAKEX_EXPECT_H

#include "fixtures.h"
#include "strset.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* One answer a connection waits for. */
struct expect_pending {
    const struct fixtures_expect *rule; /* borrowed from the fixtures */
    struct strset *values;              /* per reply condition: the values it wants */
    long long due_us;                   /* deadline, kept by the caller */
};

/*
 * The rules the frame `text` (len bytes) arms: for each rule whose `when`
 * conditions all hold, one pending answer with its reply values rendered
 * from the frame, written to `out` (at most `cap`). Returns the count; 0
 * for a frame that is not JSON. Each entry must be given to
 * expect_pending_free.
 */
size_t expect_arm(const struct fixtures_exchange *ex, const char *text, size_t len,
                  struct expect_pending *out, size_t cap);

/* Does the client message `msg` meet every reply condition of `p`? */
int expect_answers(const struct expect_pending *p, const cJSON *msg);

void expect_pending_free(struct expect_pending *p);

#endif
