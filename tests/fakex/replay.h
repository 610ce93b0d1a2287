/*
 * replay: WebSocket sessions that play recorded captures back.
 *
 * A session is the WebSocket half of a connection's lws user data. It is
 * prepared while lws checks the handshake (replay_filter: which exchange,
 * and which captures the URL already selects), linked into its exchange's
 * list once established, and fed from four sources in priority order:
 * injected junk frames (faults), queued frames (greeting and /push), then
 * the active captures, round-robin, one frame per writeable callback and at
 * most --rate frames per second. Captures loop from their first data line.
 * Nothing is written unless lws says the socket is writeable, and the push
 * queue is capped, so a slow client costs bounded memory. An exchange with
 * "compress": "gzip" sends each of those frames as binary gzip; one with
 * "expect" rules closes a connection (1008) that leaves a frame unanswered
 * past its deadline, which the connection's one lws timer also watches.
 *
 * Single-threaded: called from the lws protocol callback only, except the
 * replay_push/replay_wake helpers, which the control API calls on the same
 * loop.
 */
#ifndef FAKEX_REPLAY_H
#define FAKEX_REPLAY_H

#include "expect.h"
#include "fakex.h"

#include <libwebsockets.h>
#include <stddef.h>

/* Captures one connection can replay at once. */
#define REPLAY_MAX_STREAMS 8
/* Queued frames per connection before pushes are dropped for it. */
#define REPLAY_MAX_QUEUE 1024
#define REPLAY_MAX_QUEUE_BYTES ((size_t)16 << 20)
/* A client message larger than this is ignored (and logged). */
#define REPLAY_MAX_RX ((size_t)256 << 10)
/* Answers one connection may owe at once; frames arming more arm nothing. */
#define REPLAY_MAX_EXPECTS 16

struct replay_frame {
    struct replay_frame *next;
    int binary;
    size_t len;
    char data[];
};

struct replay_stream {
    const struct fixtures_ws *cap;
    size_t next; /* index of the next line to send */
};

struct ws_session {
    struct ws_session *prev, *next; /* in exchange.sessions while linked */
    struct fakex *ctx;
    struct exchange *ex;
    struct lws *wsi;
    int linked;
    char path[256]; /* exchange-relative path, for logs */
    unsigned long id;
    size_t initial[REPLAY_MAX_STREAMS]; /* captures chosen by the URL */
    size_t n_initial;
    struct replay_stream streams[REPLAY_MAX_STREAMS];
    size_t n_streams;
    size_t rr; /* next stream in round-robin order */
    struct replay_frame *q_head, *q_tail;
    size_t q_count;
    size_t q_bytes;
    char *rx; /* partial client message */
    size_t rx_len;
    int rx_overflow;
    int rx_paused;        /* reading suspended by ws_stall */
    int closing;          /* a fault closed it; waiting for lws to finish */
    unsigned long frames; /* sent on this connection */
    long drop_left;       /* frames until a ws_drop_after close; -1 none */
    int garbage_pending;  /* 2: text then binary to send, 1: binary */
    long oversize_pending;
    lws_usec_t next_due; /* when --rate allows the next replay frame */
    struct expect_pending expects[REPLAY_MAX_EXPECTS]; /* answers owed, oldest first */
    size_t n_expects;
};

/*
 * Check a WebSocket handshake on `uri` (the full request path) with its
 * query: unknown exchange or a refuse fault rejects it (returns -1), else
 * the session is prepared and 0 returned.
 */
int replay_filter(struct fakex *ctx, struct ws_session *s, struct lws *wsi, const char *uri,
                  const struct query_params *query);

void replay_established(struct ws_session *s, struct lws *wsi);

/* A client frame (or fragment); returns -1 to close the connection. */
int replay_receive(struct ws_session *s, const void *in, size_t len);

/* Socket writeable (or timer fired): send at most one frame. -1 closes. */
int replay_writeable(struct ws_session *s);

void replay_closed(struct ws_session *s);

/*
 * Queue one text frame for every open session of `ex`. Returns how many
 * sessions took it; *dropped counts those whose queue was full.
 */
size_t replay_push(struct exchange *ex, const char *text, size_t len, size_t *dropped);

/* replay_wake flag: a reset forgets drop countdowns and pending junk frames. */
#define REPLAY_WAKE_RESET 0x100u

/*
 * Faults, stop/resume or reset changed: apply `events` (enum faults_event)
 * to every open session of `ex` and ask each for a writeable callback.
 */
void replay_wake(struct exchange *ex, unsigned events);

#endif
