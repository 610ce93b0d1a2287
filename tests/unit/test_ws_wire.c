/*
 * The WebSocket server's wire code without sockets: the frame reader
 * (ws_frame.h) fed client frames whole, cut anywhere and broken every way
 * RFC 6455 forbids, each with the close code the server must send; the
 * server's frame headers; UTF-8 checks; and the upgrade head parser
 * (ws_upgrade.h): what is refused with which status, query arguments found
 * by their exact name and decoded, and the RFC's own accept-key example.
 */
#include "check.h"
#include "ws/ws_frame.h"
#include "ws/ws_upgrade.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Frames ----------------------------------------------------------- */

/* A client frame: fin, opcode, masked with key (or not), payload. */
static size_t client_frame(uint8_t *out, bool fin, int opcode, bool masked, const void *payload,
                           size_t len)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;

    out[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[h++] = (uint8_t)((masked ? 0x80 : 0) | len);
    } else if (len <= 0xffff) {
        out[h++] = (uint8_t)((masked ? 0x80 : 0) | 126);
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = (uint8_t)((masked ? 0x80 : 0) | 127);
        for (int i = 7; i >= 0; i--) {
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
        }
    }
    if (masked) {
        memcpy(out + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++) {
        out[h + i] = ((const uint8_t *)payload)[i] ^ (masked ? key[i & 3] : 0);
    }
    return h + len;
}

/* Feeds a whole buffer; returns the last event (and how many bytes went). */
static struct ws_frame_event read_all(struct ws_frame_reader *r, uint8_t *buf, size_t n,
                                      size_t *used_total)
{
    struct ws_frame_event ev = {0};
    size_t off = 0, used;

    while ((used = ws_frame_read(r, buf + off, n - off, &ev)) > 0) {
        off += used;
        if (ev.kind != WS_FRAME_EV_NONE) {
            break;
        }
    }
    if (used_total) {
        *used_total = off;
    }
    return ev;
}

static void test_masked_text(void)
{
    struct ws_frame_reader r;
    uint8_t buf[256];
    const char *msg = "{\"op\":\"ping\",\"id\":1}";
    size_t n = client_frame(buf, true, WS_FRAME_TEXT, true, msg, strlen(msg));
    struct ws_frame_event ev;

    ws_frame_reader_init(&r, 65536);
    /* Every cut short of the whole frame asks for more and takes nothing. */
    for (size_t cut = 0; cut < n; cut++) {
        CHECK_INT_EQ(ws_frame_read(&r, buf, cut, &ev), 0);
        CHECK_INT_EQ(ev.kind, WS_FRAME_EV_NONE);
    }
    CHECK_INT_EQ(ws_frame_read(&r, buf, n, &ev), n);
    CHECK_INT_EQ(ev.kind, WS_FRAME_EV_TEXT);
    CHECK_INT_EQ(ev.len, strlen(msg));
    CHECK(ev.len == strlen(msg) && memcmp(ev.data, msg, ev.len) == 0);
    ws_frame_reader_free(&r);
}

static void test_unmasked_is_refused(void)
{
    struct ws_frame_reader r;
    uint8_t buf[64];
    struct ws_frame_event ev;
    size_t n = client_frame(buf, true, WS_FRAME_TEXT, false, "{\"op\":\"ping\"}", 13);

    ws_frame_reader_init(&r, 65536);
    /* Refused from its first two bytes: the payload is never waited for. */
    CHECK_INT_EQ(ws_frame_read(&r, buf, 2, &ev), 0);
    CHECK_INT_EQ(ev.kind, WS_FRAME_EV_FAIL);
    CHECK_INT_EQ(ev.code, 1002);
    CHECK(ev.why && strstr(ev.why, "masked"));
    CHECK_INT_EQ(ws_frame_read(&r, buf, n, &ev), 0);
    CHECK_INT_EQ(ev.kind, WS_FRAME_EV_FAIL);
    /* Control frames too. */
    n = client_frame(buf, true, WS_FRAME_PING, false, "", 0);
    CHECK_INT_EQ(ws_frame_read(&r, buf, n, &ev), 0);
    CHECK_INT_EQ(ev.code, 1002);
    ws_frame_reader_free(&r);
}

static void expect_fail(const uint8_t *frame, size_t n, int code, size_t max)
{
    struct ws_frame_reader r;
    uint8_t buf[512];
    struct ws_frame_event ev;

    memcpy(buf, frame, n);
    ws_frame_reader_init(&r, max);
    ev = read_all(&r, buf, n, NULL);
    if (ev.kind != WS_FRAME_EV_FAIL || ev.code != code) {
        fprintf(stderr, "  frame %02x %02x...: kind %d code %u, want FAIL %d\n", frame[0], frame[1],
                ev.kind, ev.code, code);
    }
    CHECK_INT_EQ(ev.kind, WS_FRAME_EV_FAIL);
    CHECK_INT_EQ(ev.code, code);
    ws_frame_reader_free(&r);
}

static void test_violations(void)
{
    uint8_t f[512], big[300];
    size_t n;

    memset(big, 'a', sizeof big);
    n = client_frame(f, true, WS_FRAME_TEXT, true, "x", 1);
    f[0] |= 0x40; /* RSV1: no extension was negotiated */
    expect_fail(f, n, 1002, 65536);
    for (int op = 3; op <= 0xf; op++) {
        if (op == WS_FRAME_CLOSE || op == WS_FRAME_PING || op == WS_FRAME_PONG) {
            continue;
        }
        n = client_frame(f, true, op, true, "x", 1);
        expect_fail(f, n, 1002, 65536);
    }
    n = client_frame(f, false, WS_FRAME_PING, true, "x", 1); /* fragmented control */
    expect_fail(f, n, 1002, 65536);
    n = client_frame(f, true, WS_FRAME_PING, true, big, 126); /* control over 125 */
    expect_fail(f, n, 1002, 65536);
    n = client_frame(f, true, WS_FRAME_CONTINUATION, true, "x", 1); /* nothing to continue */
    expect_fail(f, n, 1002, 65536);
    /* A new message inside a fragmented one. */
    n = client_frame(f, false, WS_FRAME_TEXT, true, "a", 1);
    n += client_frame(f + n, true, WS_FRAME_TEXT, true, "b", 1);
    expect_fail(f, n, 1002, 65536);
    /* Too big: one frame, or fragments that add up; decided from the header. */
    n = client_frame(f, true, WS_FRAME_TEXT, true, big, 300);
    expect_fail(f, 4, 1009, 256);
    n = client_frame(f, false, WS_FRAME_BINARY, true, big, 200);
    n += client_frame(f + n, true, WS_FRAME_CONTINUATION, true, big, 100);
    expect_fail(f, n, 1009, 256);
    /* A 64-bit length with its top bit set. */
    uint8_t huge[14] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    expect_fail(huge, sizeof huge, 1002, 1u << 30);
    /* Text that is not UTF-8: whole, split across fragments, in a close reason. */
    n = client_frame(f, true, WS_FRAME_TEXT, true, "\xc3\x28", 2);
    expect_fail(f, n, 1007, 65536);
    n = client_frame(f, false, WS_FRAME_TEXT, true, "ok\xe2\x82", 4);
    n += client_frame(f + n, true, WS_FRAME_CONTINUATION, true, "\x28", 1);
    expect_fail(f, n, 1007, 65536);
    n = client_frame(f, true, WS_FRAME_CLOSE, true, "\x03\xe8\xff", 3);
    expect_fail(f, n, 1007, 65536);
    /* Close payloads: one byte, codes a client may not send. */
    n = client_frame(f, true, WS_FRAME_CLOSE, true, "\x03", 1);
    expect_fail(f, n, 1002, 65536);
    static const unsigned bad_codes[] = {0, 999, 1004, 1005, 1006, 1015, 2000, 2999, 5000};
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        uint8_t code[2] = {(uint8_t)(bad_codes[i] >> 8), (uint8_t)bad_codes[i]};
        n = client_frame(f, true, WS_FRAME_CLOSE, true, code, 2);
        expect_fail(f, n, 1002, 65536);
    }
}

static void test_fragments_and_control(void)
{
    struct ws_frame_reader r;
    uint8_t buf[512];
    struct ws_frame_event ev;
    size_t n = 0, used;

    ws_frame_reader_init(&r, 64);
    /* "hello world" in three fragments with a ping between them. */
    n += client_frame(buf + n, false, WS_FRAME_TEXT, true, "hello", 5);
    n += client_frame(buf + n, true, WS_FRAME_PING, true, "p!", 2);
    n += client_frame(buf + n, false, WS_FRAME_CONTINUATION, true, " wor", 4);
    n += client_frame(buf + n, true, WS_FRAME_CONTINUATION, true, "ld", 2);
    n += client_frame(buf + n, true, WS_FRAME_CLOSE, true,
                      "\x03\xe8"
                      "bye",
                      5);
    ev = read_all(&r, buf, n, &used);
    CHECK_INT_EQ(ev.kind, WS_FRAME_EV_PING);
    CHECK(ev.len == 2 && memcmp(ev.data, "p!", 2) == 0);
    size_t off = used;
    ev = read_all(&r, buf + off, n - off, &used);
    CHECK_INT_EQ(ev.kind, WS_FRAME_EV_TEXT);
    CHECK(ev.len == 11 && memcmp(ev.data, "hello world", 11) == 0);
    off += used;
    ev = read_all(&r, buf + off, n - off, &used);
    CHECK_INT_EQ(ev.kind, WS_FRAME_EV_CLOSE);
    CHECK_INT_EQ(ev.code, 1000);
    CHECK(ev.len == 3 && memcmp(ev.data, "bye", 3) == 0);
    CHECK_INT_EQ(off + used, n);
    /* A message at exactly the limit passes; a close with no code is 1005. */
    uint8_t max[64];
    memset(max, 'z', sizeof max);
    n = client_frame(buf, true, WS_FRAME_BINARY, true, max, 64);
    ev = read_all(&r, buf, n, NULL);
    CHECK_INT_EQ(ev.kind, WS_FRAME_EV_BINARY);
    CHECK_INT_EQ(ev.len, 64);
    n = client_frame(buf, true, WS_FRAME_CLOSE, true, "", 0);
    ev = read_all(&r, buf, n, NULL);
    CHECK_INT_EQ(ev.kind, WS_FRAME_EV_CLOSE);
    CHECK_INT_EQ(ev.code, 1005);
    /* 16- and 64-bit lengths. */
    ws_frame_reader_free(&r);
    ws_frame_reader_init(&r, 1 << 20);
    uint8_t *big = malloc(70000 + 14), *payload = malloc(70000);
    memset(payload, 'q', 70000);
    n = client_frame(big, true, WS_FRAME_BINARY, true, payload, 300);
    ev = read_all(&r, big, n, &used);
    CHECK_INT_EQ(ev.kind, WS_FRAME_EV_BINARY);
    CHECK_INT_EQ(ev.len, 300);
    n = client_frame(big, true, WS_FRAME_BINARY, true, payload, 70000);
    CHECK_INT_EQ(ws_frame_read(&r, big, n - 1, &ev), 0);
    ev = read_all(&r, big, n, &used);
    CHECK_INT_EQ(ev.kind, WS_FRAME_EV_BINARY);
    CHECK_INT_EQ(ev.len, 70000);
    CHECK_INT_EQ(used, n);
    free(big);
    free(payload);
    ws_frame_reader_free(&r);
}

static void test_headers_and_utf8(void)
{
    uint8_t h[WS_FRAME_HEADER_MAX];

    CHECK_INT_EQ(ws_frame_header(h, WS_FRAME_TEXT, 0), 2);
    CHECK(h[0] == 0x81 && h[1] == 0);
    CHECK_INT_EQ(ws_frame_header(h, WS_FRAME_TEXT, 125), 2);
    CHECK_INT_EQ(h[1], 125);
    CHECK_INT_EQ(ws_frame_header(h, WS_FRAME_BINARY, 126), 4);
    CHECK(h[0] == 0x82 && h[1] == 126 && h[2] == 0 && h[3] == 126);
    CHECK_INT_EQ(ws_frame_header(h, WS_FRAME_TEXT, 65535), 4);
    CHECK_INT_EQ(ws_frame_header(h, WS_FRAME_TEXT, 65536), 10);
    CHECK(h[1] == 127 && h[7] == 1 && h[8] == 0 && h[9] == 0);
    CHECK_INT_EQ(ws_frame_header(h, WS_FRAME_CLOSE, 2), 2);
    CHECK_INT_EQ(h[0], 0x88);

    CHECK(ws_frame_utf8_valid((const uint8_t *)"", 0));
    CHECK(ws_frame_utf8_valid((const uint8_t *)"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
    CHECK(ws_frame_utf8_valid((const uint8_t *)"\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    CHECK(!ws_frame_utf8_valid((const uint8_t *)"\xc0\xaf", 2));         /* overlong */
    CHECK(!ws_frame_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));     /* overlong */
    CHECK(!ws_frame_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!ws_frame_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!ws_frame_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* cut short */
    CHECK(!ws_frame_utf8_valid((const uint8_t *)"\x80", 1));
    CHECK(!ws_frame_utf8_valid((const uint8_t *)"\xff", 1));
}

/* ---- Upgrade heads ---------------------------------------------------- */

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define GOOD_FIELDS                                                                                \
    "Host: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"                         \
    "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n"

/* Parses text; returns the status (0 = accepted). */
static int parse(const char *text, struct ws_upgrade *up, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", text);
    return ws_upgrade_parse(buf, strlen(buf), up);
}

static void expect_status(const char *text, int status)
{
    char buf[2048];
    struct ws_upgrade up;
    int got = parse(text, &up, buf, sizeof buf);

    if (got != status) {
        fprintf(stderr, "  head %.60s...: %d (%s), want %d\n", text, got, up.error ? up.error : "-",
                status);
    }
    CHECK_INT_EQ(got, status);
    CHECK(got == 0 || (up.error && up.error[0]));
}

static void test_upgrade_accepted(void)
{
    char buf[2048], out[64];
    struct ws_upgrade up;

    CHECK_INT_EQ(parse("\r\nGET /v1/stream?token=abc&x=1 HTTP/1.1\r\n" GOOD_FIELDS
                       "Origin:  https://a.example \r\nAuthorization: Bearer t0k\r\n\r\n",
                       &up, buf, sizeof buf),
                 0);
    CHECK_STR_EQ(up.path, "/v1/stream");
    CHECK_STR_EQ(up.query, "token=abc&x=1");
    CHECK_STR_EQ(up.key, KEY);
    CHECK_STR_EQ(up.origin, "https://a.example");
    CHECK_STR_EQ(up.authorization, "Bearer t0k");
    CHECK_INT_EQ(ws_upgrade_arg(&up, "token", out, sizeof out), 1);
    CHECK_STR_EQ(out, "abc");
    CHECK_INT_EQ(ws_upgrade_arg(&up, "tok", out, sizeof out), 0);
    /* Bare LF line ends, a header name in any case, no query. */
    CHECK_INT_EQ(parse("GET /currency_listener HTTP/1.1\nhOsT: y\nupgrade: WebSocket\n"
                       "connection: upgrade\nsec-websocket-key: " KEY
                       "\nsec-websocket-version: 13\n\n",
                       &up, buf, sizeof buf),
                 0);
    CHECK_STR_EQ(up.path, "/currency_listener");
    CHECK_STR_EQ(up.query, "");
    CHECK(up.origin == NULL && up.authorization == NULL);
}

static void test_upgrade_refused(void)
{
    /* The hardening cases of issue 16. */
    expect_status("GET /v1/stream?token=x%00y HTTP/1.1\r\n" GOOD_FIELDS "\r\n", 400);
    expect_status("GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
                  400);
    /* The request line. */
    expect_status("POST /v1/stream HTTP/1.1\r\n" GOOD_FIELDS "\r\n", 405);
    expect_status("GET /v1/stream HTTP/1.0\r\n" GOOD_FIELDS "\r\n", 400);
    expect_status("GET /v1/stream HTTP/2.0\r\n" GOOD_FIELDS "\r\n", 400);
    expect_status("GET http://x/v1/stream HTTP/1.1\r\n" GOOD_FIELDS "\r\n", 400);
    expect_status("GET /v1/stream  HTTP/1.1\r\n" GOOD_FIELDS "\r\n", 400);
    expect_status("GET /v1/%00stream HTTP/1.1\r\n" GOOD_FIELDS "\r\n", 400);
    expect_status("GET /v1/stream\x01 HTTP/1.1\r\n" GOOD_FIELDS "\r\n", 400);
    /* Fields. */
    expect_status("GET /v1/stream HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                  400); /* no Host */
    expect_status("GET /v1/stream HTTP/1.1\r\nHost: y\r\n" GOOD_FIELDS "\r\n", 400);
    expect_status("GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                  400);
    expect_status("GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: keep-alive\r\nSec-WebSocket-Key: " KEY
                  "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                  400);
    expect_status("GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: short==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n",
                  400);
    expect_status("GET /v1/stream HTTP/1.1\r\n" GOOD_FIELDS "Sec-WebSocket-Key: " KEY "\r\n\r\n",
                  400);
    expect_status("GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n\r\n",
                  400); /* no version */
    expect_status("GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY
                  "\r\nSec-WebSocket-Version: 8\r\n\r\n",
                  426);
    expect_status("GET /v1/stream HTTP/1.1\r\n" GOOD_FIELDS "Authorization: a\r\n"
                  "Authorization: b\r\n\r\n",
                  400);
    expect_status("GET /v1/stream HTTP/1.1\r\n" GOOD_FIELDS " folded: line\r\n\r\n", 400);
    expect_status("GET /v1/stream HTTP/1.1\r\n" GOOD_FIELDS "Bad Name: x\r\n\r\n", 400);
    expect_status("GET /v1/stream HTTP/1.1\r\n" GOOD_FIELDS "NoColon\r\n\r\n", 400);
    expect_status("GET /v1/stream HTTP/1.1\r\n" GOOD_FIELDS "X: a\x01z\r\n\r\n", 400);
    expect_status("GET /v1/stream HTTP/1.1\r\n" GOOD_FIELDS, 400); /* no end */
    /* A NUL in the head (a C string cannot carry it: built by hand). */
    char head[] = "GET /v1/stream HTTP/1.1\r\nAuthorization: Bearer t\0junk\r\n" GOOD_FIELDS "\r\n";
    struct ws_upgrade up;
    CHECK_INT_EQ(ws_upgrade_parse(head, sizeof head - 1, &up), 400);
}

static void test_upgrade_args(void)
{
    char buf[2048], out[32];
    struct ws_upgrade up;

    CHECK_INT_EQ(
        parse(
            "GET /v1/stream?%74oken=secret&a=%41%62+c&b&c=&token=2nd&"
            "bad=%zz&nl=%0a&long=0123456789012345678901234567890123456789 HTTP/1.1\r\n" GOOD_FIELDS
            "\r\n",
            &up, buf, sizeof buf),
        0);
    /* Names are matched as written: %74oken is not token. */
    CHECK_INT_EQ(ws_upgrade_arg(&up, "token", out, sizeof out), 1);
    CHECK_STR_EQ(out, "2nd");
    CHECK_INT_EQ(ws_upgrade_arg(&up, "%74oken", out, sizeof out), 1);
    CHECK_STR_EQ(out, "secret");
    /* Values are decoded; + stays +. */
    CHECK_INT_EQ(ws_upgrade_arg(&up, "a", out, sizeof out), 1);
    CHECK_STR_EQ(out, "Ab+c");
    CHECK_INT_EQ(ws_upgrade_arg(&up, "b", out, sizeof out), 1);
    CHECK_STR_EQ(out, "");
    CHECK_INT_EQ(ws_upgrade_arg(&up, "c", out, sizeof out), 1);
    CHECK_STR_EQ(out, "");
    CHECK_INT_EQ(ws_upgrade_arg(&up, "bad", out, sizeof out), -1);
    CHECK_INT_EQ(ws_upgrade_arg(&up, "nl", out, sizeof out), -1);
    CHECK_INT_EQ(ws_upgrade_arg(&up, "long", out, sizeof out), -1);
    CHECK_INT_EQ(ws_upgrade_arg(&up, "missing", out, sizeof out), 0);
}

static void test_accept_key(void)
{
    char out[WS_UPGRADE_ACCEPT_LEN + 1];

    /* RFC 6455 1.3's example. */
    CHECK_INT_EQ(ws_upgrade_accept(KEY, out), 0);
    CHECK_STR_EQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

int main(void)
{
    test_masked_text();
    test_unmasked_is_refused();
    test_violations();
    test_fragments_and_control();
    test_headers_and_utf8();
    test_upgrade_accepted();
    test_upgrade_refused();
    test_upgrade_args();
    test_accept_key();
    return CHECK_DONE();
}
