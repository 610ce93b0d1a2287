/*
 * replay: per-connection WebSocket state machine.
 *
 * Every write happens in replay_writeable, which lws calls only when the
 * socket can take data; everything else (a subscribe, a push, a fault, a
 * rate timer) just records what is owed and asks lws for a writeable
 * callback. That is what keeps memory bounded with a slow client: lws holds
 * at most the unsent rest of one frame, and our own queue is capped.
 *
 * Faults are read from the exchange on every callback rather than copied
 * into sessions, so stall, refuse and stop take effect on the next callback
 * of every connection. Only the one-shot ones (a drop countdown, a garbage
 * or oversize frame) are copied in, by replay_wake and at establishment.
 *
 * Every frame the exchange itself sends (greeting, reply, push, capture
 * line) goes through send_frame, the one place that gzips it for a
 * "compress" exchange and arms the "expect" rules it triggers; fault frames
 * are junk by design and go out as they are. Deadlines share the
 * connection's lws timer with --rate: schedule() sets it to whichever comes
 * first, and the writeable callback it leads to closes a connection whose
 * oldest owed answer is late. A stalled exchange reads nothing, so it
 * forgets what it was owed rather than blaming the client.
 */
#include "replay.h"

#include "gzip.h"
#include "core/xalloc.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frames one writeable callback may send while the socket takes them: one
 * per callback cost a wake-up per frame, so at --rate 0 fakex, not the
 * client under test, was the bottleneck for a light consumer. */
#define WRITE_BATCH_MAX 64

#define GARBAGE_TEXT "<html><body><h1>502 Bad Gateway</h1></body></html> not json {"

static void link_session(struct ws_session *s)
{
    struct exchange *ex = s->ex;

    s->prev = NULL;
    s->next = ex->sessions;
    if (ex->sessions) {
        ex->sessions->prev = s;
    }
    ex->sessions = s;
    s->linked = 1;
    ex->ws_open++;
}

static void unlink_session(struct ws_session *s)
{
    struct exchange *ex = s->ex;

    if (!s->linked) {
        return;
    }
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        ex->sessions = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    s->linked = 0;
    ex->ws_open--;
}

/* Append a frame to the session's queue; -1 when the queue is full. */
static int queue_frame(struct ws_session *s, const char *data, size_t len, int binary)
{
    struct replay_frame *f;

    if (s->q_count >= REPLAY_MAX_QUEUE || s->q_bytes + len > REPLAY_MAX_QUEUE_BYTES) {
        return -1;
    }
    f = xmalloc(sizeof(*f) + len);
    f->next = NULL;
    f->binary = binary;
    f->len = len;
    memcpy(f->data, data, len);
    if (s->q_tail) {
        s->q_tail->next = f;
    } else {
        s->q_head = f;
    }
    s->q_tail = f;
    s->q_count++;
    s->q_bytes += len;
    return 0;
}

/* Start replaying capture `idx`; no-op if this connection already plays it. */
static void activate(struct ws_session *s, size_t idx)
{
    const struct fixtures_ws *cap = &s->ex->fx->ws[idx];

    for (size_t i = 0; i < s->n_streams; i++) {
        if (s->streams[i].cap == cap) {
            return;
        }
    }
    if (s->n_streams == REPLAY_MAX_STREAMS) {
        fakex_log("ws #%lu %s: too many captures on one connection, %s ignored", s->id,
                  s->ex->fx->name, cap->file);
        return;
    }
    s->streams[s->n_streams].cap = cap;
    s->streams[s->n_streams].next = cap->start_from;
    s->n_streams++;
    s->ex->ws_captures_started++;
    fakex_log("ws #%lu %s: replaying %s (%zu lines, loops from line %zu)", s->id, s->ex->fx->name,
              cap->file, cap->n_lines, cap->loop_from);
}

int replay_filter(struct fakex *ctx, struct ws_session *s, struct lws *wsi, const char *uri,
                  const struct query_params *query)
{
    const char *name = uri[0] == '/' ? uri + 1 : uri;
    size_t n = strcspn(name, "/");
    struct exchange *ex = exchange_find(ctx, name, n);
    const char *rest = name[n] ? name + n : "/";

    memset(s, 0, sizeof(*s));
    if (!ex) {
        fakex_log("ws %s: no such exchange, connection refused", uri);
        return -1;
    }
    if (ex->faults.refuse) {
        fakex_log("ws %s: refused (fault)", uri);
        return -1;
    }
    s->ctx = ctx;
    s->ex = ex;
    s->wsi = wsi;
    s->drop_left = -1;
    snprintf(s->path, sizeof(s->path), "%s", rest);
    s->n_initial = fixtures_ws_for_url(ex->fx, rest, query, s->initial, REPLAY_MAX_STREAMS);
    return 0;
}

void replay_established(struct ws_session *s, struct lws *wsi)
{
    struct exchange *ex = s->ex;

    s->wsi = wsi;
    s->id = ++s->ctx->next_session_id;
    link_session(s);
    ex->ws_connections++;
    fakex_log("ws #%lu %s %s: open%s", s->id, ex->fx->name, s->path,
              s->n_initial ? "" : ", waiting for a subscribe message");
    for (size_t i = 0; i < ex->fx->n_greeting; i++) {
        queue_frame(s, ex->fx->greeting[i], strlen(ex->fx->greeting[i]), 0);
    }
    for (size_t i = 0; i < s->n_initial; i++) {
        activate(s, s->initial[i]);
    }
    s->drop_left = ex->faults.ws_drop_after;
    s->garbage_pending = ex->faults.ws_garbage ? 2 : 0;
    s->oversize_pending = ex->faults.ws_oversize;
    lws_callback_on_writable(wsi);
}

/* Drop owed answer i, keeping the others in order. */
static void drop_expect(struct ws_session *s, size_t i)
{
    expect_pending_free(&s->expects[i]);
    memmove(&s->expects[i], &s->expects[i + 1], (s->n_expects - i - 1) * sizeof(s->expects[0]));
    s->n_expects--;
}

static void forget_expects(struct ws_session *s)
{
    while (s->n_expects > 0) {
        drop_expect(s, s->n_expects - 1);
    }
}

/* Owe the answers the frame just sent asks for. A full table arms nothing:
 * it fills only when a client ignores that many frames within one answer
 * time, and the oldest of them closes the connection anyway. */
static void arm_expects(struct ws_session *s, const char *text, size_t len)
{
    lws_usec_t now = lws_now_usecs();
    size_t n = expect_arm(s->ex->fx, text, len, &s->expects[s->n_expects],
                          REPLAY_MAX_EXPECTS - s->n_expects);

    for (size_t i = s->n_expects; i < s->n_expects + n; i++) {
        s->expects[i].due_us = now + (lws_usec_t)s->expects[i].rule->within_ms * 1000;
    }
    s->n_expects += n;
}

/* Settle the owed answers a client message gives; how many it settled. */
static size_t answer_expects(struct ws_session *s, const char *text, size_t len)
{
    size_t settled = 0;
    cJSON *msg;

    if (s->n_expects == 0 || !(msg = cJSON_ParseWithLength(text, len))) {
        return 0;
    }
    for (size_t i = 0; i < s->n_expects;) {
        if (expect_answers(&s->expects[i], msg)) {
            drop_expect(s, i);
            settled++;
        } else {
            i++;
        }
    }
    cJSON_Delete(msg);
    return settled;
}

/* A client text message may answer a frame, earn a canned reply, start
 * captures, or none of these. */
static void handle_text(struct ws_session *s, const char *text, size_t len)
{
    size_t idx[REPLAY_MAX_STREAMS];
    size_t n = fixtures_ws_for_message(s->ex->fx, text, len, idx, REPLAY_MAX_STREAMS);
    char *reply = fixtures_reply_for(s->ex->fx, text, len);
    size_t settled = answer_expects(s, text, len);

    if (reply) {
        if (queue_frame(s, reply, strlen(reply), 0) != 0) {
            fakex_log("ws #%lu %s: queue full, reply dropped", s->id, s->ex->fx->name);
        }
        free(reply);
    } else if (n == 0 && settled == 0) {
        fakex_log("ws #%lu %s: client message matches no capture, ignored: %.200s", s->id,
                  s->ex->fx->name, text);
    }
    for (size_t i = 0; i < n; i++) {
        activate(s, idx[i]);
    }
    lws_callback_on_writable(s->wsi);
}

int replay_receive(struct ws_session *s, const void *in, size_t len)
{
    if (!s->linked) {
        return 0;
    }
    if (!s->rx_overflow) {
        if (s->rx_len + len > REPLAY_MAX_RX) {
            s->rx_overflow = 1;
        } else {
            s->rx = xrealloc(s->rx, s->rx_len + len + 1);
            memcpy(s->rx + s->rx_len, in, len);
            s->rx_len += len;
            s->rx[s->rx_len] = '\0';
        }
    }
    if (!lws_is_final_fragment(s->wsi) || lws_remaining_packet_payload(s->wsi) > 0) {
        return 0;
    }
    s->ex->ws_client_messages++;
    if (s->rx_overflow) {
        fakex_log("ws #%lu %s: client message over %zu bytes ignored", s->id, s->ex->fx->name,
                  REPLAY_MAX_RX);
    } else if (lws_frame_is_binary(s->wsi)) {
        fakex_log("ws #%lu %s: binary client message ignored", s->id, s->ex->fx->name);
    } else {
        handle_text(s, s->rx ? s->rx : "", s->rx_len);
    }
    free(s->rx);
    s->rx = NULL;
    s->rx_len = 0;
    s->rx_overflow = 0;
    return 0;
}

/* Write one frame from `data`; -1 when lws reports the connection broken. */
static int write_frame(struct ws_session *s, const char *data, size_t len, int binary)
{
    unsigned char *buf = fakex_wbuf(s->ctx, len);

    memcpy(buf + LWS_PRE, data, len);
    if (lws_write(s->wsi, buf + LWS_PRE, len, binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
        (int)len) {
        return -1;
    }
    return 1;
}

/* One of the exchange's own frames: gzipped for a "compress" exchange, and
 * arming the expect rules it triggers once it is out. */
static int send_frame(struct ws_session *s, const char *data, size_t len, int binary)
{
    int rc;

    if (s->ex->fx->compress == FIXTURES_COMPRESS_GZIP) {
        size_t zlen;
        unsigned char *z = gzip_compress(data, len, &zlen);

        rc = write_frame(s, (const char *)z, zlen, 1);
        free(z);
    } else {
        rc = write_frame(s, data, len, binary);
    }
    if (rc > 0 && s->ex->fx->n_expects > 0) {
        arm_expects(s, data, len);
    }
    return rc;
}

/* One text frame of exactly n bytes, still valid JSON when n allows. */
static int write_oversize(struct ws_session *s, size_t n)
{
    static const char head[] = "{\"fakex\":\"oversize\",\"pad\":\"";
    unsigned char *buf = fakex_wbuf(s->ctx, n);
    char *p = (char *)buf + LWS_PRE;
    int rc;

    memset(p, 'x', n);
    if (n >= sizeof(head) + 1) {
        memcpy(p, head, sizeof(head) - 1);
        p[n - 2] = '"';
        p[n - 1] = '}';
    }
    rc = lws_write(s->wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n ? -1 : 1;
    fakex_wbuf(s->ctx, 0); /* give a huge scratch buffer back */
    return rc;
}

/* The next capture line in round-robin order; NULL when nothing is left. */
static const char *next_line(struct ws_session *s, size_t *len)
{
    while (s->n_streams > 0) {
        size_t i = s->rr % s->n_streams;
        struct replay_stream *st = &s->streams[i];
        const struct fixtures_ws *cap = st->cap;

        if (st->next >= cap->n_lines) {
            st->next = s->ctx->opts.once ? cap->n_lines : cap->loop_from;
            s->ex->ws_loops++;
            s->ex->ws_captures_done += s->ctx->opts.once;
            if (st->next >= cap->n_lines) {
                /* Nothing but connection-level lines: nothing to loop. */
                memmove(&s->streams[i], &s->streams[i + 1],
                        (s->n_streams - i - 1) * sizeof(s->streams[0]));
                s->n_streams--;
                continue;
            }
        }
        s->rr = i + 1;
        *len = cap->lines[st->next].len;
        return cap->data + cap->lines[st->next++].off;
    }
    return NULL;
}

/* Send what is owed, highest priority first. 1 sent, 0 nothing due, -1 error. */
static int send_next(struct ws_session *s)
{
    double rate = s->ctx->opts.rate;
    const char *line;
    size_t len;

    if (s->garbage_pending == 2) {
        s->garbage_pending = 1;
        return write_frame(s, GARBAGE_TEXT, sizeof(GARBAGE_TEXT) - 1, 0);
    }
    if (s->garbage_pending == 1) {
        static const char junk[] = {0x00, (char)0xff, (char)0xfe, 0x13, 0x37, (char)0xc3,
                                    0x28, (char)0x80, 0x7f,       0x01, 0x02, 0x03};

        s->garbage_pending = 0;
        return write_frame(s, junk, sizeof(junk), 1);
    }
    if (s->oversize_pending > 0) {
        size_t n = (size_t)s->oversize_pending;

        s->oversize_pending = 0;
        return write_oversize(s, n);
    }
    if (s->q_head) {
        struct replay_frame *f = s->q_head;
        int rc = send_frame(s, f->data, f->len, f->binary);

        s->q_head = f->next;
        if (!s->q_head) {
            s->q_tail = NULL;
        }
        s->q_count--;
        s->q_bytes -= f->len;
        free(f);
        return rc;
    }
    if (s->ex->stopped || s->n_streams == 0) {
        return 0;
    }
    if (rate > 0) {
        lws_usec_t now = lws_now_usecs(), interval = (lws_usec_t)(1e6 / rate);

        if (now < s->next_due) {
            return 0;
        }
        if (s->next_due + interval < now) {
            s->next_due = now; /* no burst to catch up after a pause */
        }
        s->next_due += interval;
    }
    line = next_line(s, &len);
    return line ? send_frame(s, line, len, 0) : 0;
}

/* The owed answer due first, or NULL when nothing is owed. */
static const struct expect_pending *first_due(const struct ws_session *s)
{
    const struct expect_pending *first = NULL;

    for (size_t i = 0; i < s->n_expects; i++) {
        if (!first || s->expects[i].due_us < first->due_us) {
            first = &s->expects[i];
        }
    }
    return first;
}

/*
 * Ask for the next callback: at once, or by the timer when the rate
 * interval ends or an owed answer falls due, whichever is first; or never.
 */
static void schedule(struct ws_session *s)
{
    const struct expect_pending *owed = first_due(s);
    lws_usec_t now = lws_now_usecs(), wake = owed ? owed->due_us : 0;

    if (s->drop_left == 0 || s->garbage_pending || s->oversize_pending || s->q_head) {
        lws_callback_on_writable(s->wsi);
    } else if (!s->ex->stopped && s->n_streams > 0) {
        if (s->ctx->opts.rate <= 0 || s->next_due <= now) {
            lws_callback_on_writable(s->wsi);
        } else if (wake == 0 || s->next_due < wake) {
            wake = s->next_due;
        }
    }
    if (wake != 0) {
        lws_set_timer_usecs(s->wsi, wake > now ? wake - now : 1);
    }
}

int replay_writeable(struct ws_session *s)
{
    const struct expect_pending *owed;
    const struct faults *f;
    int rc;

    if (!s->linked) {
        return 0;
    }
    if (s->closing) {
        return -1; /* lws may call once more while its close frame goes out */
    }
    f = &s->ex->faults;
    if (f->refuse) {
        fakex_log("ws #%lu %s: closing (refuse fault)", s->id, s->ex->fx->name);
        s->closing = 1;
        return -1;
    }
    if (f->ws_stall) {
        if (!s->rx_paused) {
            lws_rx_flow_control(s->wsi, 0);
            s->rx_paused = 1;
        }
        forget_expects(s);
        return 0;
    }
    if (s->rx_paused) {
        lws_rx_flow_control(s->wsi, 1);
        s->rx_paused = 0;
    }
    if (s->drop_left == 0) {
        fakex_log("ws #%lu %s: closing (ws_drop_after)", s->id, s->ex->fx->name);
        s->closing = 1;
        lws_close_reason(s->wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)"fakex drop", 10);
        return -1;
    }
    owed = first_due(s);
    if (owed && owed->due_us <= lws_now_usecs()) {
        static const char why[] = "heartbeat not answered";

        fakex_log("ws #%lu %s: closing (1008), a frame was not answered within %ld ms", s->id,
                  s->ex->fx->name, owed->rule->within_ms);
        s->ex->ws_heartbeats_missed++;
        s->closing = 1;
        lws_close_reason(s->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)why,
                         sizeof(why) - 1);
        return -1;
    }
    /* Corked, a batch leaves in full segments: one loopback transmit, and
     * one wake-up of the reader, per batch rather than per frame. */
    int fd = lws_get_socket_fd(s->wsi), on = 1, off = 0;
    bool cork = s->ctx->opts.rate <= 0;
    if (cork) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    }
    for (int n = 0; n < WRITE_BATCH_MAX && s->drop_left != 0; n++) {
        rc = send_next(s);
        if (rc < 0) {
            return -1;
        }
        if (rc == 0) {
            break;
        }
        s->frames++;
        s->ex->ws_frames_sent++;
        if (s->drop_left > 0) {
            s->drop_left--;
        }
        if (lws_send_pipe_choked(s->wsi)) {
            break;
        }
    }
    if (cork) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
    }
    schedule(s);
    return 0;
}

void replay_closed(struct ws_session *s)
{
    if (s->linked) {
        fakex_log("ws #%lu %s: closed after %lu frames", s->id, s->ex->fx->name, s->frames);
    }
    unlink_session(s);
    while (s->q_head) {
        struct replay_frame *f = s->q_head;

        s->q_head = f->next;
        free(f);
    }
    s->q_tail = NULL;
    s->q_count = s->q_bytes = 0;
    free(s->rx);
    s->rx = NULL;
    forget_expects(s);
}

size_t replay_push(struct exchange *ex, const char *text, size_t len, size_t *dropped)
{
    size_t n = 0;

    *dropped = 0;
    for (struct ws_session *s = ex->sessions; s; s = s->next) {
        if (queue_frame(s, text, len, 0) == 0) {
            n++;
        } else {
            (*dropped)++;
        }
        lws_callback_on_writable(s->wsi);
    }
    return n;
}

void replay_wake(struct exchange *ex, unsigned events)
{
    for (struct ws_session *s = ex->sessions; s; s = s->next) {
        if (events & FAULTS_EV_DROP) {
            s->drop_left = ex->faults.ws_drop_after;
        }
        if (events & FAULTS_EV_GARBAGE) {
            s->garbage_pending = 2;
        }
        if (events & FAULTS_EV_OVERSIZE) {
            s->oversize_pending = ex->faults.ws_oversize;
        }
        if (events & REPLAY_WAKE_RESET) {
            s->drop_left = -1;
            s->garbage_pending = 0;
            s->oversize_pending = 0;
        }
        lws_callback_on_writable(s->wsi);
    }
}
