/*
 * fuzz_ws_wire: the WebSocket server's wire parsers on outside bytes —
 * the upgrade head (ws_upgrade_parse, then the query arguments the server
 * reads and the accept key) and client frames (ws_frame_read), fed the way
 * ws_peer.c feeds them: in reads of a few bytes, whole frames taken from
 * the front of what has arrived, a cut one kept for the next read.
 *
 * Input: any bytes, used twice — once as a head, once as the stream of
 * frames (its first byte also sets the read size, 1 to 64). Checked: an
 * accepted head has a path starting with '/' and a key of 24 characters,
 * and arguments decode into their buffer; the reader never takes more than
 * it was given nor waits for more than a frame header and max_message
 * allow, hands out text only as UTF-8 and close codes only as RFC 6455
 * allows, and is not fed again after a failure.
 */
#include "ws/ws_frame.h"
#include "ws/ws_upgrade.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE 1024

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_ws_wire: %s\n", what);
        abort();
    }
}

static void head(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    struct ws_upgrade up;
    char out[64], accept[WS_UPGRADE_ACCEPT_LEN + 1];
    static const char *const names[] = {"token", "exchange", "pair", "frequency_timeout"};

    memcpy(buf, data, size);
    buf[size] = '\0';
    if (ws_upgrade_parse(buf, size, &up) == 0) {
        check(up.path && up.path[0] == '/', "an accepted path starts with /");
        check(up.query != NULL, "an accepted head has a query (maybe empty)");
        check(up.key && strlen(up.key) == 24, "an accepted key is 24 characters");
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            int r = ws_upgrade_arg(&up, names[i], out, sizeof out);
            check(r >= -1 && r <= 1, "ws_upgrade_arg returns -1, 0 or 1");
            check(r != 1 || strlen(out) < sizeof out, "a value fits its buffer");
        }
        check(ws_upgrade_accept(up.key, accept) == 0 && strlen(accept) == WS_UPGRADE_ACCEPT_LEN,
              "the accept key is 28 characters");
    } else {
        check(up.error && up.error[0], "a refusal says why");
    }
    free(buf);
}

/* One event: what it hands out obeys the reader's contract. */
static void event(const struct ws_frame_event *ev)
{
    switch (ev->kind) {
    case WS_FRAME_EV_TEXT:
        check(ws_frame_utf8_valid((const uint8_t *)ev->data, ev->len), "text is UTF-8");
        check(ev->len <= MAX_MESSAGE, "a message within max_message");
        break;
    case WS_FRAME_EV_BINARY:
        check(ev->len <= MAX_MESSAGE, "a message within max_message");
        break;
    case WS_FRAME_EV_PING:
    case WS_FRAME_EV_PONG:
        check(ev->len <= WS_FRAME_CONTROL_MAX, "a control payload within 125 bytes");
        break;
    case WS_FRAME_EV_CLOSE:
        check(ev->code == 1005 || ws_frame_close_code_valid(ev->code), "a valid close code");
        check(ws_frame_utf8_valid((const uint8_t *)ev->data, ev->len), "a UTF-8 close reason");
        break;
    default:
        break;
    }
}

static void frames(const uint8_t *data, size_t size)
{
    struct ws_frame_reader r;
    struct ws_frame_event ev;
    uint8_t *buf = malloc(size + 1);
    size_t have = 0, at = 0, step = size ? (size_t)(data[0] % 64) + 1 : 1;
    int failed = 0;

    ws_frame_reader_init(&r, MAX_MESSAGE);
    while (at < size && !failed) {
        size_t n = size - at < step ? size - at : step;
        memcpy(buf + have, data + at, n);
        have += n;
        at += n;
        size_t off = 0, used;
        while ((used = ws_frame_read(&r, buf + off, have - off, &ev)) > 0 ||
               ev.kind == WS_FRAME_EV_FAIL) {
            if (ev.kind == WS_FRAME_EV_FAIL) {
                check(ev.code == 1002 || ev.code == 1007 || ev.code == 1009,
                      "a failure closes with 1002, 1007 or 1009");
                failed = 1;
                break;
            }
            check(used <= have - off, "the reader takes no more than it has");
            off += used;
            event(&ev);
        }
        memmove(buf, buf + off, have - off);
        have -= off;
        check(have <= WS_FRAME_CLIENT_HEADER_MAX + MAX_MESSAGE + step,
              "what waits is at most one frame (and the last read)");
    }
    ws_frame_reader_free(&r);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    head(data, size);
    frames(data, size);
    return 0;
}
