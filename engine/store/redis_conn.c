/*
 * redis_conn: the states of a connection, and hiredis glued to the loop.
 *
 *   idle -> resolving -> connecting -> handshake (AUTH, SELECT) -> up
 *     ^                                                             |
 *     +------------- backoff (1 s doubling to 30 s, +-20 %) <-------+  on any failure
 *
 * The adapter: hiredis asks for read and write interest through its ev
 * hooks; they set the events of one loop_io on the context's socket, and
 * the io callback hands readiness back (redisAsyncHandleRead/Write). A
 * poll error is a connection error, not something to ignore. hiredis may
 * free the context inside any of its calls (EOF, error): its connect,
 * disconnect and cleanup callbacks clear c->ac, and nothing touches the
 * context after a call that cleared it.
 *
 * Replies come back in order, so the callers' callbacks wait in a FIFO
 * beside the send times; every hiredis callback pops the front. The
 * deadline tick compares the front's send time with the command timeout.
 * A context is only ever freed from a timer callback, never from inside a
 * hiredis callback.
 */
#include "redis_conn.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/config.h"
#include "core/backoff.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"

#define DEFAULT_CONNECT_MS 2000
#define DEFAULT_COMMAND_MS 5000
#define RETRY_BASE_MS 1000
#define RETRY_CAP_MS 30000
#define RETRY_JITTER 0.2
#define TICK_MS 100

enum conn_state { IDLE, RESOLVING, CONNECTING, HANDSHAKE, UP, BACKOFF };

struct waiting {
    redis_reply_fn fn;
    void *data;
    uint64_t sent_ms;
};

struct redis_conn {
    struct loop *loop;
    char *host, *user, *password, *name;
    int port, db;
    uint64_t connect_ms, command_ms;
    struct redis_conn_events ev;
    enum conn_state state;
    redisAsyncContext *ac;
    struct loop_io *io;
    int io_events;
    struct loop_dns *dns;
    struct loop_timer *retry;
    struct loop_timer *tick;
    uint64_t connect_started;
    unsigned failures;
    uint64_t rng;
    char why[192]; /* the failure being handled */
    bool drop;     /* the tick must drop the connection (why says why) */
    /* FIFO of callbacks waiting for replies: a ring. */
    struct waiting *fifo;
    size_t head, count, cap;
    /* Loop ms by which the queued bytes must be written, else dropped
     * (0: no fence); cleared once hiredis' output buffer drains. */
    uint64_t fence_ms;
    /* Subscribe mode. */
    redis_reply_fn sub_fn;
    void *sub_data;
    struct redis_conn_stats stats;
};

static void connect_now(struct redis_conn *c);

/* ---- the FIFO ------------------------------------------------------------- */

static void fifo_push(struct redis_conn *c, redis_reply_fn fn, void *data)
{
    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct waiting *fresh = xmalloc(cap * sizeof *fresh);
        for (size_t i = 0; i < c->count; i++) {
            fresh[i] = c->fifo[(c->head + i) % c->cap];
        }
        free(c->fifo);
        c->fifo = fresh;
        c->cap = cap;
        c->head = 0;
    }
    c->fifo[(c->head + c->count) % c->cap] =
        (struct waiting){.fn = fn, .data = data, .sent_ms = loop_now_ms(c->loop)};
    c->count++;
}

static struct waiting fifo_pop(struct redis_conn *c)
{
    struct waiting w = c->fifo[c->head];
    c->head = (c->head + 1) % c->cap;
    c->count--;
    return w;
}

/* ---- failures -------------------------------------------------------------- */

static void note_error(struct redis_conn *c, const char *fmt, const char *detail)
{
    snprintf(c->stats.last_error, sizeof c->stats.last_error, fmt, detail);
    c->stats.last_error_at = loop_wall_ms();
}

/* Asks the tick to drop the connection: never free hiredis' context from
 * inside its own callbacks. */
static void fail_later(struct redis_conn *c, const char *why)
{
    if (!c->drop) {
        snprintf(c->why, sizeof c->why, "%s", why);
        c->drop = true;
    }
}

/* The context is gone (freed by hiredis or by us): back off and retry. */
static void lost(struct redis_conn *c, const char *why)
{
    bool was_up = c->state == UP;
    c->ac = NULL;
    c->fence_ms = 0;
    c->state = BACKOFF;
    c->drop = false;
    c->stats.up = false;
    c->stats.losses++;
    note_error(c, "%s", why);
    c->failures++;
    uint64_t delay =
        backoff_delay_ms(c->failures, RETRY_BASE_MS, RETRY_CAP_MS, RETRY_JITTER, &c->rng);
    log_warn("redis", "%s: %s; retrying in %llu ms", c->name, why, (unsigned long long)delay);
    loop_timer_start(c->retry, delay, 0);
    if (c->ev.down && (was_up || c->failures == 1)) {
        c->ev.down(c, why, c->ev.data);
    }
}

/* Timer context only: drop the live context (pending callbacks run with
 * NULL inside redisAsyncFree). */
static void drop_now(struct redis_conn *c)
{
    char why[sizeof c->why];
    snprintf(why, sizeof why, "%s", c->why);
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        ac->data = NULL; /* its disconnect callback must not find us */
        redisAsyncFree(ac);
    }
    while (c->count) {
        struct waiting w = fifo_pop(c);
        if (w.fn) {
            w.fn(c, NULL, w.data);
        }
    }
    lost(c, why);
}

/* ---- the adapter: hiredis' event hooks on one loop_io --------------------- */

static void set_events(struct redis_conn *c, int events)
{
    if (c->io && events != c->io_events) {
        c->io_events = events;
        loop_io_set(c->io, events);
    }
}

static void on_io(struct loop_io *io, int events, void *data)
{
    struct redis_conn *c = data;
    redisAsyncContext *ac = c->ac;

    if (!ac) {
        return;
    }
    if (events & LOOP_ERROR) {
        /* Let hiredis read the socket's error (SO_ERROR while connecting,
         * the failed read after): its callbacks then say what it was. */
        if (c->state == CONNECTING) {
            redisAsyncHandleWrite(ac);
        } else {
            redisAsyncHandleRead(ac);
        }
        if (c->ac == ac) {
            fail_later(c, "connection error");
            loop_io_set(io, 0);
        }
        return;
    }
    if (events & LOOP_READ) {
        redisAsyncHandleRead(ac);
    }
    if ((events & LOOP_WRITE) && c->ac == ac) {
        if (c->fence_ms && loop_now_ms(c->loop) >= c->fence_ms) {
            /* A paused process woke up after its lease ran out: what it
             * queued before must never reach Redis beside the new holder's
             * writes. Dropping the connection discards it. */
            set_events(c, c->io_events & ~LOOP_WRITE);
            fail_later(c, "fenced: a lease ran out before the writes made under it went out");
            return;
        }
        redisAsyncHandleWrite(ac);
    }
}

static void ev_add_read(void *p)
{
    struct redis_conn *c = p;
    set_events(c, c->io_events | LOOP_READ);
}

static void ev_del_read(void *p)
{
    struct redis_conn *c = p;
    set_events(c, c->io_events & ~LOOP_READ);
}

static void ev_add_write(void *p)
{
    struct redis_conn *c = p;
    set_events(c, c->io_events | LOOP_WRITE);
}

static void ev_del_write(void *p)
{
    struct redis_conn *c = p;
    set_events(c, c->io_events & ~LOOP_WRITE);
    c->fence_ms = 0; /* everything queued is on the socket */
}

static void ev_cleanup(void *p)
{
    struct redis_conn *c = p;
    loop_io_free(c->io);
    c->io = NULL;
    c->io_events = 0;
}

/* ---- replies ---------------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_conn *c = privdata;
    redisReply *reply = r;

    if (!c || c->count == 0) {
        return;
    }
    struct waiting w = fifo_pop(c);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        c->stats.errors++;
        note_error(c, "error reply: %.150s", reply->str ? reply->str : "?");
    }
    if (w.fn) {
        w.fn(c, reply, w.data);
    }
}

static void on_subscribed(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_conn *c = privdata;
    if (c && c->sub_fn) {
        c->sub_fn(c, r, c->sub_data);
    }
}

/* The handshake's last reply: the connection is usable. */
static void on_handshake(struct redis_conn *c, redisReply *reply, void *data)
{
    const char *what = data;

    if (!reply) {
        return; /* lost meanwhile: already handled */
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[160];
        /* The server's text names no secret (WRONGPASS, NOAUTH, ERR DB index). */
        snprintf(why, sizeof why, "%s refused: %.100s", what, reply->str ? reply->str : "?");
        fail_later(c, why);
        return;
    }
    /* The handshake is pipelined: after a refused AUTH or SELECT the PING
     * still answers, and must not make the connection count as up. */
    if (strcmp(what, "done") == 0 && c->state == HANDSHAKE && !c->drop) {
        c->state = UP;
        c->failures = 0;
        c->stats.up = true;
        c->stats.connects++;
        log_info("redis", "%s: connected to %s:%d (db %d)", c->name, c->host, c->port, c->db);
        if (c->ev.up) {
            c->ev.up(c, c->ev.data);
        }
    }
}

static void send_handshake(struct redis_conn *c)
{
    char db[16];
    c->state = HANDSHAKE;
    if (c->password) {
        const char *argv[3] = {"AUTH", c->user ? c->user : c->password, c->password};
        size_t lens[3] = {4, strlen(argv[1]), strlen(c->password)};
        fifo_push(c, on_handshake, "AUTH");
        redisAsyncCommandArgv(c->ac, on_reply, c, c->user ? 3 : 2, argv, lens);
    }
    snprintf(db, sizeof db, "%d", c->db);
    const char *argv[2] = {"SELECT", db};
    size_t lens[2] = {6, strlen(db)};
    fifo_push(c, on_handshake, "SELECT");
    redisAsyncCommandArgv(c->ac, on_reply, c, 2, argv, lens);
    /* A PING closes the handshake: its reply means all before it came. */
    const char *ping[1] = {"PING"};
    size_t plen[1] = {4};
    fifo_push(c, on_handshake, "done");
    redisAsyncCommandArgv(c->ac, on_reply, c, 1, ping, plen);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_conn *c = ac->data;
    if (!c) {
        return;
    }
    if (status != REDIS_OK) {
        char why[192];
        snprintf(why, sizeof why, "cannot connect to %s:%d: %.100s", c->host, c->port,
                 ac->errstr[0] ? ac->errstr : "refused");
        /* hiredis frees the context right after this callback (and its
         * cleanup hook frees our io). */
        c->ac = NULL;
        fail_later(c, why);
        return;
    }
    send_handshake(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_conn *c = ac->data;
    if (!c) {
        return;
    }
    c->ac = NULL;
    fail_later(c, status == REDIS_OK ? "closed" : (ac->errstr[0] ? ac->errstr : "lost"));
}

/* ---- connecting --------------------------------------------------------------- */

static void open_address(struct redis_conn *c, const char *ip)
{
    c->state = CONNECTING;
    c->connect_started = loop_now_ms(c->loop);
    redisAsyncContext *ac = redisAsyncConnect(ip, c->port);
    if (!ac || ac->err) {
        char why[192];
        snprintf(why, sizeof why, "cannot connect to %s:%d: %.100s", c->host, c->port,
                 ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }
        fail_later(c, why);
        return;
    }
    c->ac = ac;
    ac->data = c;
    c->io = loop_io_new(c->loop, ac->c.fd, on_io, c);
    c->io_events = 0;
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* A non-blocking connect completes on writability. */
    ev_add_write(c);
}

static void on_resolved(int status, struct addrinfo *res, void *data)
{
    struct redis_conn *c = data;
    char ip[64];

    c->dns = NULL;
    if (status != 0 || !res) {
        char why[192];
        snprintf(why, sizeof why, "cannot resolve %s: %s", c->host,
                 status ? loop_strerror(status) : "no address");
        loop_dns_freeaddrinfo(res);
        fail_later(c, why);
        return;
    }
    int rc = getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof ip, NULL, 0, NI_NUMERICHOST);
    loop_dns_freeaddrinfo(res);
    if (rc != 0) {
        fail_later(c, "cannot read the resolved address");
        return;
    }
    open_address(c, ip);
}

static void connect_now(struct redis_conn *c)
{
    char port[16];
    c->state = RESOLVING;
    c->connect_started = loop_now_ms(c->loop);
    snprintf(port, sizeof port, "%d", c->port);
    c->dns = loop_dns_resolve(c->loop, c->host, port, on_resolved, c);
    if (!c->dns) {
        fail_later(c, "cannot start resolving");
    }
}

static void on_retry(struct loop_timer *t, void *data)
{
    connect_now(data);
}

/* Deadlines and deferred drops. */
static void on_tick(struct loop_timer *t, void *data)
{
    struct redis_conn *c = data;
    uint64_t now = loop_now_ms(c->loop);

    if (!c->drop && (c->state == RESOLVING || c->state == CONNECTING || c->state == HANDSHAKE) &&
        now - c->connect_started > c->connect_ms) {
        char why[96];
        snprintf(why, sizeof why, "no connection within %llu ms",
                 (unsigned long long)c->connect_ms);
        fail_later(c, why);
    }
    if (!c->drop && c->count && now - c->fifo[c->head].sent_ms > c->command_ms) {
        char why[96];
        snprintf(why, sizeof why, "no reply within %llu ms", (unsigned long long)c->command_ms);
        fail_later(c, why);
    }
    if (c->drop) {
        if (c->dns) {
            loop_dns_cancel(c->dns);
            c->dns = NULL;
        }
        drop_now(c);
    }
}

/* ---- public ------------------------------------------------------------------- */

struct redis_conn *redis_conn_new(struct loop *loop, const struct redis_conn_opts *o,
                                  const struct redis_conn_events *events)
{
    struct redis_conn *c = xcalloc(1, sizeof *c);
    c->loop = loop;
    c->host = xstrdup(o->host);
    c->user = o->user ? xstrdup(o->user) : NULL;
    c->password = o->password ? xstrdup(o->password) : NULL;
    c->name = xstrdup(o->name ? o->name : "redis");
    c->port = o->port;
    c->db = o->db;
    c->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_MS;
    c->command_ms = o->command_timeout_ms ? o->command_timeout_ms : DEFAULT_COMMAND_MS;
    if (events) {
        c->ev = *events;
    }
    c->rng = (uint64_t)(uintptr_t)c ^ (uint64_t)loop_wall_ms();
    c->retry = loop_timer_new(loop, on_retry, c);
    c->tick = loop_timer_new(loop, on_tick, c);
    return c;
}

void redis_conn_start(struct redis_conn *c)
{
    if (c->state == IDLE) {
        loop_timer_start(c->tick, TICK_MS, TICK_MS);
        connect_now(c);
    }
}

struct redis_conn *redis_conn_for(struct loop *loop, const struct config *cfg, const char *name,
                                  const struct redis_conn_events *events)
{
    struct redis_conn_opts o = {.host = cfg->redis.host,
                                .port = cfg->redis.port,
                                .db = cfg->redis.db,
                                .user = cfg->redis.user,
                                .password = cfg->redis.password,
                                .name = name};
    return redis_conn_new(loop, &o, events);
}

void redis_conn_free(struct redis_conn *c)
{
    if (!c) {
        return;
    }
    loop_timer_free(c->retry);
    loop_timer_free(c->tick);
    if (c->dns) {
        loop_dns_cancel(c->dns);
    }
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    loop_io_free(c->io);
    while (c->count) {
        struct waiting w = fifo_pop(c);
        if (w.fn) {
            w.fn(c, NULL, w.data);
        }
    }
    if (c->password) {
        explicit_bzero(c->password, strlen(c->password));
    }
    free(c->fifo);
    free(c->host);
    free(c->user);
    free(c->password);
    free(c->name);
    free(c);
}

bool redis_conn_up(const struct redis_conn *c)
{
    return c->state == UP && !c->drop;
}

void *redis_conn_user(const struct redis_conn *c)
{
    return c->ev.data;
}

/* Room before the arguments for "*<argc>\r\n", written right-aligned when
 * the command is sent. */
#define RESP_HEAD_ROOM 24

void redis_cmd_init(struct redis_cmd *cmd)
{
    jbuf_init(&cmd->text);
    redis_cmd_reset(cmd);
}

void redis_cmd_free(struct redis_cmd *cmd)
{
    jbuf_free(&cmd->text);
}

void redis_cmd_reset(struct redis_cmd *cmd)
{
    static const char room[RESP_HEAD_ROOM];
    jbuf_reset(&cmd->text);
    jbuf_add(&cmd->text, room, sizeof room);
    cmd->argc = 0;
}

void redis_cmd_add(struct redis_cmd *cmd, const char *s, size_t len)
{
    jbuf_adds(&cmd->text, "$");
    jbuf_uint(&cmd->text, len);
    jbuf_add(&cmd->text, "\r\n", 2);
    jbuf_add(&cmd->text, s, len);
    jbuf_add(&cmd->text, "\r\n", 2);
    cmd->argc++;
}

void redis_cmd_adds(struct redis_cmd *cmd, const char *s)
{
    redis_cmd_add(cmd, s, strlen(s));
}

int redis_conn_send(struct redis_conn *c, struct redis_cmd *cmd, redis_reply_fn fn, void *data)
{
    char head[RESP_HEAD_ROOM];
    int n = snprintf(head, sizeof head, "*%zu\r\n", cmd->argc);
    char *start = cmd->text.data + RESP_HEAD_ROOM - n;
    int rc = 0;

    if (!redis_conn_up(c) || cmd->argc == 0) {
        rc = -1;
    } else {
        memcpy(start, head, (size_t)n);
        if (redisAsyncFormattedCommand(c->ac, on_reply, c, start,
                                       cmd->text.len - (RESP_HEAD_ROOM - (size_t)n)) != REDIS_OK) {
            fail_later(c, "cannot queue a command");
            rc = -1;
        } else {
            fifo_push(c, fn, data);
        }
    }
    redis_cmd_reset(cmd);
    return rc;
}

int redis_conn_subscribe(struct redis_conn *c, const char *channel, redis_reply_fn fn, void *data)
{
    if (!redis_conn_up(c)) {
        return -1;
    }
    c->sub_fn = fn;
    c->sub_data = data;
    const char *argv[2] = {"SUBSCRIBE", channel};
    size_t lens[2] = {9, strlen(channel)};
    return redisAsyncCommandArgv(c->ac, on_subscribed, c, 2, argv, lens) == REDIS_OK ? 0 : -1;
}

void redis_conn_fence(struct redis_conn *c, uint64_t deadline_ms)
{
    if (deadline_ms && (!c->fence_ms || deadline_ms < c->fence_ms)) {
        c->fence_ms = deadline_ms;
    }
}

size_t redis_conn_pending(const struct redis_conn *c)
{
    return c->count;
}

void redis_conn_stats(const struct redis_conn *c, struct redis_conn_stats *out)
{
    *out = c->stats;
    out->up = redis_conn_up(c);
}
