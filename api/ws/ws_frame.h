/*
 * ws_frame: the WebSocket wire format (RFC 6455 section 5) as a server sees
 * it — a reader that turns the bytes a client sent into whole messages and
 * control frames, enforcing what the RFC asks of a server, and the header
 * of the frames a server sends. Pure and feedable: no sockets, no loop.
 *
 * What the reader refuses, with the close code the server then sends
 * (RFC 6455 7.4.1), before the payload of the offending frame is buffered:
 *   - a frame that is not masked (5.1: "a server MUST close the connection
 *     upon receiving a frame that is not masked"): 1002;
 *   - a reserved bit set (no extension is ever negotiated), an unknown
 *     opcode, a fragmented control frame, a control frame over 125 bytes,
 *     a 64-bit length with its top bit set, a continuation outside a
 *     fragmented message or a new message inside one: 1002;
 *   - a message whose fragments add up to more than max_message bytes:
 *     1009, decided from the frame header, so an oversized message never
 *     occupies memory;
 *   - a close frame with a 1-byte payload or a code that may not be sent
 *     (7.4.2: below 1000, 1004-1006, 1015-2999, 5000 and up): 1002;
 *   - a text message or a close reason that is not UTF-8 (8.1): 1007,
 *     checked when the message is whole.
 *
 * Threads: a reader belongs to its owner's thread; the functions without a
 * reader are pure.
 */
#ifndef RX_WS_FRAME_H
#define RX_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/jbuf.h"

enum {
    WS_FRAME_CONTINUATION = 0x0,
    WS_FRAME_TEXT = 0x1,
    WS_FRAME_BINARY = 0x2,
    WS_FRAME_CLOSE = 0x8,
    WS_FRAME_PING = 0x9,
    WS_FRAME_PONG = 0xa,
};

/* The longest header a server frame needs (8-byte length, no mask). */
#define WS_FRAME_HEADER_MAX 10
/* The longest header of a client frame (8-byte length and the mask). */
#define WS_FRAME_CLIENT_HEADER_MAX 14
/* A control frame's payload limit (5.5). */
#define WS_FRAME_CONTROL_MAX 125

struct ws_frame_reader {
    size_t max_message; /* bytes of one message, all fragments together */
    int frag_opcode;    /* TEXT or BINARY while a fragmented message is open, else 0 */
    bool delivered;     /* msg was handed out by the last call: clear it on the next */
    struct jbuf msg;    /* the fragments of the open message */
};

enum ws_frame_kind {
    WS_FRAME_EV_NONE,   /* no whole frame yet, or a fragment was absorbed */
    WS_FRAME_EV_TEXT,   /* a whole text message (valid UTF-8) */
    WS_FRAME_EV_BINARY, /* a whole binary message */
    WS_FRAME_EV_PING,
    WS_FRAME_EV_PONG,
    WS_FRAME_EV_CLOSE, /* the client closes: code (1005 when it gave none) and reason */
    WS_FRAME_EV_FAIL,  /* a violation: close with code, reason `why` */
};

struct ws_frame_event {
    enum ws_frame_kind kind;
    const char *data; /* message, ping/pong payload or close reason; valid until the next call */
    size_t len;
    uint16_t code;   /* CLOSE: the client's code; FAIL: the code to close with */
    const char *why; /* FAIL: a short reason for the close frame (static text) */
};

void ws_frame_reader_init(struct ws_frame_reader *r, size_t max_message);
void ws_frame_reader_free(struct ws_frame_reader *r);

/*
 * Reads the first frame of buf[0..n), unmasking its payload in place.
 * Returns the bytes it took (the whole frame) with ev describing what it
 * completed — NONE for a fragment that was absorbed — or 0 with ev NONE
 * when buf does not hold a whole frame yet (the caller keeps the bytes and
 * calls again with more), or 0 with ev FAIL. After FAIL the connection is
 * to be closed: the reader must not be fed again. A frame the reader waits
 * for is never longer than WS_FRAME_CLIENT_HEADER_MAX + max_message.
 */
size_t ws_frame_read(struct ws_frame_reader *r, uint8_t *buf, size_t n, struct ws_frame_event *ev);

/* Heap bytes the reader holds now (an open fragmented message). */
size_t ws_frame_reader_bytes(const struct ws_frame_reader *r);

/* Writes the header of a final, unmasked frame of opcode with a payload of
 * len bytes into out; returns its length (2, 4 or 10). */
size_t ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], int opcode, size_t len);

/* Whether s[0..n) is UTF-8 as RFC 3629 defines it (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
bool ws_frame_utf8_valid(const uint8_t *s, size_t n);

/* Whether a client may send this close code (RFC 6455 7.4). */
bool ws_frame_close_code_valid(unsigned code);

#endif
