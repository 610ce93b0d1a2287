/*
 * ws_client_io: what happens on an attached connection, event by event.
 *
 * The glue (ws_client_lws.c) calls these from the libwebsockets callback:
 * the handshake completing, data arriving (joined into whole messages up to
 * max_message bytes; a longer message is skipped to its end and counted,
 * never buffered), the socket becoming writeable (one queued message or
 * ping per call, so a busy connection cannot starve the loop), the peer's
 * close frame, the close itself, and errors before the connection opened,
 * which are worded here ("connect failed: ...", "tls: ...").
 *
 * A user callback may call ws_conn_close or ws_conn_send (and ws_conn_open
 * for other connections); none of them frees the conn it is called for
 * while it is open, so the code after each callback may still touch it.
 */
#include "ws_client_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "core/xalloc.h"

#define RX_KEEP_BYTES (256u << 10) /* a larger assembly buffer is let go after use */

void ws_conn_on_established(struct ws_conn *conn)
{
    if (conn->state != WS_CONNECTING) {
        return;
    }
    conn->state = WS_OPEN;
    loop_timer_stop(conn->timer);
    if (conn->ping_every_ms) {
        loop_timer_start(conn->timer, conn->ping_every_ms, conn->ping_every_ms);
    }
    if (conn->cb.on_open) {
        conn->client->depth++;
        conn->cb.on_open(conn, conn->data);
        conn->client->depth--;
    }
}

static void deliver(struct ws_conn *conn, const char *msg, size_t len, bool binary)
{
    conn->stats.messages++;
    conn->stats.bytes += len;
    if (conn->cb.on_message && !conn->abandoned) {
        conn->client->depth++;
        conn->cb.on_message(conn, msg, len, binary, conn->data);
        conn->client->depth--;
    }
}

/* Fragments (and libwebsockets' partial deliveries of one frame) are joined
 * up to max_message bytes; a longer message is skipped to its end and
 * counted. A message that arrives whole is passed on without a copy. */
void ws_conn_on_receive(struct ws_conn *conn, const void *in, size_t len, bool first, bool final,
                        bool binary)
{
    if (conn->state != WS_OPEN) {
        return;
    }
    if (first) {
        conn->rx_len = 0;
        conn->rx_dropping = false;
        conn->rx_binary = binary;
        if (final && len <= conn->max_message) {
            deliver(conn, in, len, binary);
            return;
        }
    }
    if (!conn->rx_dropping && len > conn->max_message - conn->rx_len) {
        conn->rx_dropping = true;
        conn->stats.dropped_oversize++;
    }
    if (!conn->rx_dropping) {
        if (conn->rx_len + len + 1 > conn->rx_cap) {
            size_t cap = conn->rx_cap ? conn->rx_cap : 4096;
            while (cap < conn->rx_len + len + 1) {
                cap *= 2;
            }
            conn->rx = xrealloc(conn->rx, cap);
            conn->rx_cap = cap;
        }
        memcpy(conn->rx + conn->rx_len, in, len);
        conn->rx_len += len;
    }
    if (!final) {
        return;
    }
    if (!conn->rx_dropping) {
        conn->rx[conn->rx_len] = '\0';
        deliver(conn, conn->rx, conn->rx_len, conn->rx_binary);
    }
    conn->rx_len = 0;
    conn->rx_dropping = false;
    if (conn->rx_cap > RX_KEEP_BYTES) {
        free(conn->rx);
        conn->rx = NULL;
        conn->rx_cap = 0;
    }
}

int ws_conn_on_writeable(struct ws_conn *conn, struct lws *wsi)
{
    if (conn->state == WS_CLOSING) {
        ws_lws_close_reason(wsi, conn->close_code, conn->close_reason);
        return -1;
    }
    if (conn->state != WS_OPEN) {
        return 0;
    }
    if (conn->ping_due) {
        conn->ping_due = false;
        unsigned char ping[WS_LWS_PRE + 1];
        if (ws_lws_write(wsi, ping + WS_LWS_PRE, 0, WS_WRITE_PING) < 0) {
            return -1;
        }
    } else if (conn->out_head) {
        struct ws_out *o = conn->out_head;
        conn->out_head = o->next;
        if (!conn->out_head) {
            conn->out_tail = NULL;
        }
        conn->out_bytes -= o->len;
        int rc = ws_lws_write(wsi, o->buf + WS_LWS_PRE, o->len,
                              o->binary ? WS_WRITE_BINARY : WS_WRITE_TEXT);
        free(o);
        if (rc < 0) {
            return -1;
        }
        conn->stats.sent++;
    }
    if (conn->out_head || conn->ping_due) {
        ws_lws_want_write(wsi);
    }
    return 0;
}

void ws_conn_on_peer_close(struct ws_conn *conn, const unsigned char *payload, size_t len)
{
    conn->peer_closed = true;
    conn->peer_code = 1005; /* no status code in the frame */
    conn->peer_reason[0] = '\0';
    if (len >= 2) {
        size_t n = len - 2 < sizeof conn->peer_reason - 1 ? len - 2 : sizeof conn->peer_reason - 1;
        conn->peer_code = payload[0] << 8 | payload[1];
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = payload[2 + i];
            conn->peer_reason[i] = ch < ' ' || ch == 0x7f ? '?' : (char)ch;
        }
        conn->peer_reason[n] = '\0';
    }
}

void ws_conn_on_closed(struct ws_conn *conn)
{
    if (conn->state == WS_CONNECTING) {
        ws_conn_finish(conn, 1006, "connect failed: closed during the handshake");
    } else if (conn->state == WS_CLOSING) {
        ws_conn_finish(conn, conn->close_code, conn->close_reason);
    } else if (conn->peer_closed) {
        ws_conn_finish(conn, conn->peer_code,
                       conn->peer_reason[0] ? conn->peer_reason : "closed by peer");
    } else {
        ws_conn_finish(conn, 1006, "connection lost");
    }
}

static bool looks_like_tls(const char *msg)
{
    static const char *const words[] = {"cert", "ssl", "tls", "x509", "handshake failure"};
    char low[160];
    size_t i;

    for (i = 0; msg[i] && i < sizeof low - 1; i++) {
        low[i] = (char)tolower((unsigned char)msg[i]);
    }
    low[i] = '\0';
    for (i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (strstr(low, words[i])) {
            return true;
        }
    }
    return false;
}

void ws_conn_on_error(struct ws_conn *conn, const char *msg, size_t len)
{
    char text[160], reason[WS_REASON_MAX];
    size_t n = 0;

    for (size_t i = 0; msg && i < len && msg[i] && n < sizeof text - 1; i++) {
        unsigned char ch = (unsigned char)msg[i];
        if (ch == '\r' || ch == '\n') {
            continue;
        }
        text[n++] = ch < ' ' ? ' ' : (char)ch;
    }
    text[n] = '\0';
    if (conn->tls_error[0]) {
        snprintf(reason, sizeof reason, "tls: certificate verification failed: %s",
                 conn->tls_error);
    } else if (conn->url.tls && looks_like_tls(text)) {
        snprintf(reason, sizeof reason, "tls: %s", text);
    } else {
        snprintf(reason, sizeof reason, "connect failed: %s", n ? text : "unknown error");
    }
    if (conn->in_connect) {
        ws_conn_defer(conn, 1006, reason);
    } else {
        ws_conn_finish(conn, 1006, reason);
    }
}

void ws_conn_on_tls_error(struct ws_conn *conn, const char *what)
{
    if (!conn->tls_error[0]) {
        snprintf(conn->tls_error, sizeof conn->tls_error, "%s", what);
    }
}

int ws_conn_append_headers(struct ws_conn *conn, char **p, size_t room)
{
    for (size_t i = 0; i < conn->n_headers; i++) {
        size_t n = strlen(conn->headers[i]);
        if (n + 3 > room) {
            return -1;
        }
        memcpy(*p, conn->headers[i], n);
        memcpy(*p + n, "\r\n", 2);
        *p += n + 2;
        room -= n + 2;
    }
    return 0;
}
