/*
 * ws_frame: client frames in, server frame headers out (design in
 * ws_frame.h).
 *
 * The reader works on whole frames: it looks at the header first, refuses
 * what it must from the header alone (so the payload of a frame it refuses
 * is never waited for), and otherwise takes the frame only once all of it
 * is in the caller's buffer. A single-frame message — every message the
 * /v1/stream protocol expects — is handed out where it lies, unmasked in
 * place, with no copy; only a fragmented message is gathered in msg.
 */
#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>

/* An open message's buffer larger than this is freed once it is handed
 * out, so a connection that once sent a big message does not keep it. */
#define MSG_KEEP_BYTES 4096

void ws_frame_reader_init(struct ws_frame_reader *r, size_t max_message)
{
    memset(r, 0, sizeof *r);
    r->max_message = max_message;
    jbuf_init(&r->msg);
}

void ws_frame_reader_free(struct ws_frame_reader *r)
{
    jbuf_free(&r->msg);
}

size_t ws_frame_reader_bytes(const struct ws_frame_reader *r)
{
    return r->msg.cap;
}

bool ws_frame_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

bool ws_frame_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        /* The second byte's range depends on the first (RFC 3629 4). */
        uint8_t lo = 0x80, hi = 0xbf;
        size_t more;
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80;
            hi = c == 0xed ? 0x9f : 0xbf;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3;
            lo = c == 0xf0 ? 0x90 : 0x80;
            hi = c == 0xf4 ? 0x8f : 0xbf;
        } else {
            return false;
        }
        if (n - i <= more || s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= more; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) {
                return false;
            }
        }
        i += more + 1;
    }
    return true;
}

size_t ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], int opcode, size_t len)
{
    out[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    return 10;
}

static size_t fail(struct ws_frame_event *ev, uint16_t code, const char *why)
{
    ev->kind = WS_FRAME_EV_FAIL;
    ev->code = code;
    ev->why = why;
    return 0;
}

static void unmask(uint8_t *p, size_t n, const uint8_t key[4])
{
    for (size_t i = 0; i < n; i++) {
        p[i] ^= key[i & 3];
    }
}

/* A whole text or binary message at data: checked and handed out. */
static size_t deliver(struct ws_frame_event *ev, int opcode, const char *data, size_t len,
                      size_t used)
{
    if (opcode == WS_FRAME_TEXT && !ws_frame_utf8_valid((const uint8_t *)data, len)) {
        return fail(ev, 1007, "a text message must be UTF-8");
    }
    ev->kind = opcode == WS_FRAME_TEXT ? WS_FRAME_EV_TEXT : WS_FRAME_EV_BINARY;
    ev->data = data;
    ev->len = len;
    return used;
}

static size_t control(struct ws_frame_event *ev, int opcode, uint8_t *p, size_t len, size_t used)
{
    if (opcode != WS_FRAME_CLOSE) {
        ev->kind = opcode == WS_FRAME_PING ? WS_FRAME_EV_PING : WS_FRAME_EV_PONG;
        ev->data = (const char *)p;
        ev->len = len;
        return used;
    }
    if (len == 1) {
        return fail(ev, 1002, "a close frame's payload is a code of 2 bytes");
    }
    ev->code = len ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
    if (len && !ws_frame_close_code_valid(ev->code)) {
        return fail(ev, 1002, "invalid close code");
    }
    if (len > 2 && !ws_frame_utf8_valid(p + 2, len - 2)) {
        return fail(ev, 1007, "a close reason must be UTF-8");
    }
    ev->kind = WS_FRAME_EV_CLOSE;
    ev->data = len > 2 ? (const char *)p + 2 : "";
    ev->len = len > 2 ? len - 2 : 0;
    return used;
}

size_t ws_frame_read(struct ws_frame_reader *r, uint8_t *buf, size_t n, struct ws_frame_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (r->delivered) {
        r->delivered = false;
        if (r->msg.cap > MSG_KEEP_BYTES) {
            jbuf_free(&r->msg);
        } else {
            jbuf_reset(&r->msg);
        }
    }
    if (n < 2) {
        return 0;
    }
    bool fin = buf[0] & 0x80;
    int opcode = buf[0] & 0x0f;
    bool is_control = opcode & 0x8;
    uint64_t len = buf[1] & 0x7f;
    size_t head = 2;

    if (buf[0] & 0x70) {
        return fail(ev, 1002, "reserved bits set: no extension was negotiated");
    }
    if (opcode > WS_FRAME_PONG || (opcode > WS_FRAME_BINARY && opcode < WS_FRAME_CLOSE)) {
        return fail(ev, 1002, "unknown opcode");
    }
    if (!(buf[1] & 0x80)) {
        return fail(ev, 1002, "client frames must be masked (RFC 6455 5.1)");
    }
    if (is_control && (!fin || len > WS_FRAME_CONTROL_MAX)) {
        return fail(ev, 1002, "a control frame must be final and at most 125 bytes");
    }
    if (len == 126) {
        if (n < 4) {
            return 0;
        }
        len = (uint64_t)buf[2] << 8 | buf[3];
        head = 4;
    } else if (len == 127) {
        if (n < 10) {
            return 0;
        }
        if (buf[2] & 0x80) {
            return fail(ev, 1002, "frame length with its top bit set");
        }
        len = 0;
        for (int i = 0; i < 8; i++) {
            len = len << 8 | buf[2 + i];
        }
        head = 10;
    }
    if (!is_control) {
        if (opcode == WS_FRAME_CONTINUATION && !r->frag_opcode) {
            return fail(ev, 1002, "a continuation frame with no message to continue");
        }
        if (opcode != WS_FRAME_CONTINUATION && r->frag_opcode) {
            return fail(ev, 1002, "a new message before the last fragment of the previous one");
        }
        if (len > r->max_message - r->msg.len) {
            return fail(ev, 1009, "message too big");
        }
    }
    head += 4; /* the masking key */
    if (n < head || n - head < len) {
        return 0;
    }
    uint8_t *p = buf + head;
    size_t used = head + (size_t)len;
    unmask(p, (size_t)len, buf + head - 4);
    if (is_control) {
        return control(ev, opcode, p, (size_t)len, used);
    }
    if (opcode != WS_FRAME_CONTINUATION && fin) {
        return deliver(ev, opcode, (const char *)p, (size_t)len, used);
    }
    if (opcode != WS_FRAME_CONTINUATION) {
        r->frag_opcode = opcode;
        jbuf_reset(&r->msg);
    }
    jbuf_add(&r->msg, (const char *)p, (size_t)len);
    if (!fin) {
        return used;
    }
    opcode = r->frag_opcode;
    r->frag_opcode = 0;
    r->delivered = true;
    return deliver(ev, opcode, r->msg.data ? r->msg.data : "", r->msg.len, used);
}
