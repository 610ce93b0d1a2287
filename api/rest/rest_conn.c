/*
 * rest_conn: per-connection state for the REST server, a deadline on every
 * request, and a per-address limit that knows a TLS proxy.
 *
 * Why not libmicrohttpd's own. Three things 0.9.75 does not do, each found
 * by hostile testing (issue 16):
 *
 * - Deadlines. Its MHD_OPTION_CONNECTION_TIMEOUT counts inactivity: any byte
 *   restarts it. The front door bounds a connection's first head (2 s), but
 *   the heads that follow on a keep-alive connection are libmicrohttpd's,
 *   and a client sending one byte every 29 s held a connection forever. Here
 *   every request has a deadline that bytes do not move: the first must be
 *   complete within head_timeout_ms of the hand-off, each later one within
 *   keepalive_timeout_ms of the previous answer (the idle time and the head
 *   together), and a body within head_timeout_ms of its head. While a
 *   request is being answered there is none (libmicrohttpd's inactivity
 *   timeout still catches a client that stops reading).
 * - Requests it forgets. When libmicrohttpd gives up on a request after the
 *   URI callback ran (its pool ran out parsing a query, for one), it may
 *   never call the completion callback, and the request's state leaked. The
 *   request in progress is therefore recorded here, on the connection, and
 *   dropped when the connection closes or the next request replaces it.
 * - A per-address limit behind a proxy. MHD_OPTION_PER_IP_CONNECTION_LIMIT
 *   resets the connection over the limit, and counts every address alike:
 *   behind the recommended TLS proxy every client shares the proxy's
 *   address, so a few hundred busy clients (or one slow one) locked
 *   everybody out. Here the proxies named in limits.trusted_proxies do not
 *   count against max_per_ip (the proxy limits its own clients; only
 *   max_connections applies to it), and a connection over the limit is
 *   answered 429 and closed instead of reset.
 *
 * The reaper. Deadlines are atomics, so a request costs three relaxed stores
 * and no lock. One thread wakes every tick (a tenth of the shorter timeout,
 * 10 to 250 ms), walks the connection list under the mutex and shuts down
 * the socket of every connection past its deadline. shutdown(2), not
 * close(2): the fd stays libmicrohttpd's, which sees the end of the stream
 * on its next wake-up and closes it as for a client that left. The fd is
 * valid while we hold the mutex because libmicrohttpd announces a closing
 * connection (rest_conns_notify, which takes the mutex to unlink it) before
 * it closes the socket. Nothing is written to the client: the reaper cannot
 * know whether libmicrohttpd is about to write, and a client that stalls its
 * own request has no use for an answer. Walking every connection costs a
 * few microseconds per thousand connections per tick, less than a sorted
 * structure would cost on every request.
 *
 * The address table counts open connections per client address (IPv4 held
 * as ::ffff:a.b.c.d), open addressing with linear probing, grown at half
 * full, entries removed by shifting back, so that no tombstone builds up
 * under churn.
 */
#include "rest_conn.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "config/config.h"
#include "core/hash.h"
#include "core/xalloc.h"

#define TICK_MIN_MS 10
#define TICK_MAX_MS 250
#define IP_TABLE_MIN 64

struct rest_conn {
    struct rest_conns *conns;
    struct rest_conn *prev, *next;
    int fd;
    unsigned char addr[16];
    bool counted;                 /* holds a place in the address table */
    bool refused;                 /* over max_per_ip */
    bool proxied;                 /* from a trusted proxy */
    bool reaped;                  /* shut down by the reaper */
    _Atomic uint64_t deadline_ms; /* monotonic; 0 = none */
    void *call;
};

struct ip_slot {
    unsigned char addr[16];
    uint32_t count; /* 0 = empty slot */
};

struct rest_conns {
    const struct config_limits *lim;
    rest_conn_drop_fn drop_call;
    struct config_cidr *trusted;
    size_t n_trusted;
    uint64_t tick_ms;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    bool stop;
    struct rest_conn *head;
    struct ip_slot *slots;
    size_t cap, used;
    pthread_t reaper;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- The address table (under mu) --------------------------------------- */

static size_t ip_home(const struct rest_conns *conns, const unsigned char addr[16])
{
    uint64_t h = hash_bytes(HASH_FNV_OFFSET, addr, 16);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return (size_t)h & (conns->cap - 1);
}

/* The slot holding addr, or the empty slot where it would go. */
static size_t ip_find(const struct rest_conns *conns, const unsigned char addr[16])
{
    size_t i = ip_home(conns, addr);
    while (conns->slots[i].count && memcmp(conns->slots[i].addr, addr, 16) != 0) {
        i = (i + 1) & (conns->cap - 1);
    }
    return i;
}

static void ip_grow(struct rest_conns *conns)
{
    struct ip_slot *old = conns->slots;
    size_t old_cap = conns->cap;

    conns->cap = old_cap ? old_cap * 2 : IP_TABLE_MIN;
    conns->slots = xcalloc(conns->cap, sizeof *conns->slots);
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].count) {
            conns->slots[ip_find(conns, old[i].addr)] = old[i];
        }
    }
    free(old);
}

/* Counts one more connection from addr unless it already has limit. */
static bool ip_admit(struct rest_conns *conns, const unsigned char addr[16], int64_t limit)
{
    if ((conns->used + 1) * 2 > conns->cap) {
        ip_grow(conns);
    }
    struct ip_slot *s = &conns->slots[ip_find(conns, addr)];
    if ((int64_t)s->count >= limit) {
        return false;
    }
    if (s->count++ == 0) {
        memcpy(s->addr, addr, 16);
        conns->used++;
    }
    return true;
}

/* Counts one connection from addr less; an emptied slot is filled by
 * shifting back the entries of its probe run. */
static void ip_release(struct rest_conns *conns, const unsigned char addr[16])
{
    size_t mask = conns->cap - 1;
    size_t i = ip_find(conns, addr);

    if (!conns->slots[i].count || --conns->slots[i].count) {
        return;
    }
    conns->used--;
    for (size_t j = (i + 1) & mask; conns->slots[j].count; j = (j + 1) & mask) {
        size_t home = ip_home(conns, conns->slots[j].addr);
        /* j's entry may move to i only if i lies on its probe path. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            conns->slots[i] = conns->slots[j];
            conns->slots[j].count = 0;
            i = j;
        }
    }
}

/* ---- Connections --------------------------------------------------------- */

/* The peer's address as 16 bytes, IPv4 mapped; all zero when unknown. */
static void peer_addr(struct MHD_Connection *mc, unsigned char out[16])
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    memset(out, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    }
}

static bool is_trusted(const struct rest_conns *conns, const unsigned char addr[16])
{
    for (size_t i = 0; i < conns->n_trusted; i++) {
        if (config_cidr_match(&conns->trusted[i], addr)) {
            return true;
        }
    }
    return false;
}

static void conn_started(struct rest_conns *conns, struct MHD_Connection *mc, void **socket_context)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct rest_conn *c = xcalloc(1, sizeof *c);

    c->conns = conns;
    c->fd = ci ? ci->connect_fd : -1;
    peer_addr(mc, c->addr);
    c->proxied = is_trusted(conns, c->addr);
    /* The first head is already queued (the front door saw it); the body
     * that may follow has head_timeout_ms. */
    atomic_store_explicit(&c->deadline_ms, mono_ms() + (uint64_t)conns->lim->head_timeout_ms,
                          memory_order_relaxed);
    pthread_mutex_lock(&conns->mu);
    if (!c->proxied) {
        c->counted = ip_admit(conns, c->addr, conns->lim->max_per_ip);
        c->refused = !c->counted;
    }
    c->next = conns->head;
    if (conns->head) {
        conns->head->prev = c;
    }
    conns->head = c;
    pthread_mutex_unlock(&conns->mu);
    *socket_context = c;
}

static void conn_closed(struct rest_conns *conns, struct rest_conn *c)
{
    pthread_mutex_lock(&conns->mu);
    if (c->counted) {
        ip_release(conns, c->addr);
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        conns->head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    pthread_mutex_unlock(&conns->mu);
    if (c->call) {
        conns->drop_call(c->call);
    }
    free(c);
}

void rest_conns_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
                       enum MHD_ConnectionNotificationCode code)
{
    struct rest_conns *conns = cls;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_started(conns, mc, socket_context);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        conn_closed(conns, *socket_context);
        *socket_context = NULL;
    }
}

struct rest_conn *rest_conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void *rest_conn_set_call(struct rest_conn *c, void *call)
{
    void *old = c->call;
    c->call = call;
    return old;
}

static void deadline_in(struct rest_conn *c, int64_t ms)
{
    atomic_store_explicit(&c->deadline_ms, mono_ms() + (uint64_t)ms, memory_order_relaxed);
}

void rest_conn_head_done(struct rest_conn *c)
{
    deadline_in(c, c->conns->lim->head_timeout_ms);
}

void rest_conn_request_done(struct rest_conn *c)
{
    atomic_store_explicit(&c->deadline_ms, 0, memory_order_relaxed);
}

void rest_conn_answered(struct rest_conn *c)
{
    deadline_in(c, c->conns->lim->keepalive_timeout_ms);
}

bool rest_conn_refused(const struct rest_conn *c)
{
    return c->refused;
}

bool rest_conn_proxied(const struct rest_conn *c)
{
    return c->proxied;
}

/* ---- The reaper ---------------------------------------------------------- */

static void reap(struct rest_conns *conns, uint64_t now)
{
    for (struct rest_conn *c = conns->head; c; c = c->next) {
        uint64_t d = atomic_load_explicit(&c->deadline_ms, memory_order_relaxed);
        if (d && d <= now && !c->reaped && c->fd >= 0) {
            shutdown(c->fd, SHUT_RDWR);
            c->reaped = true;
        }
    }
}

static void *reaper_main(void *arg)
{
    struct rest_conns *conns = arg;
    struct timespec until;

    pthread_mutex_lock(&conns->mu);
    while (!conns->stop) {
        reap(conns, mono_ms());
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)(conns->tick_ms * 1000000u);
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&conns->cv, &conns->mu, &until);
    }
    pthread_mutex_unlock(&conns->mu);
    return NULL;
}

struct rest_conns *rest_conns_new(const struct config_limits *lim, rest_conn_drop_fn drop_call)
{
    struct rest_conns *conns = xcalloc(1, sizeof *conns);
    pthread_condattr_t attr;
    int64_t shorter = lim->head_timeout_ms < lim->keepalive_timeout_ms ? lim->head_timeout_ms
                                                                       : lim->keepalive_timeout_ms;

    conns->lim = lim;
    conns->drop_call = drop_call;
    conns->tick_ms = (uint64_t)(shorter / 10);
    if (conns->tick_ms < TICK_MIN_MS) {
        conns->tick_ms = TICK_MIN_MS;
    } else if (conns->tick_ms > TICK_MAX_MS) {
        conns->tick_ms = TICK_MAX_MS;
    }
    conns->trusted = xcalloc(lim->n_trusted_proxies + 1, sizeof *conns->trusted);
    for (size_t i = 0; i < lim->n_trusted_proxies; i++) {
        /* The config check parsed each already, so this cannot fail. */
        if (config_cidr_parse(lim->trusted_proxies[i], &conns->trusted[conns->n_trusted]) == 0) {
            conns->n_trusted++;
        }
    }
    ip_grow(conns);
    pthread_mutex_init(&conns->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&conns->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&conns->reaper, NULL, reaper_main, conns) != 0) {
        pthread_cond_destroy(&conns->cv);
        pthread_mutex_destroy(&conns->mu);
        free(conns->slots);
        free(conns->trusted);
        free(conns);
        return NULL;
    }
    return conns;
}

void rest_conns_free(struct rest_conns *conns)
{
    if (!conns) {
        return;
    }
    pthread_mutex_lock(&conns->mu);
    conns->stop = true;
    pthread_cond_signal(&conns->cv);
    pthread_mutex_unlock(&conns->mu);
    pthread_join(conns->reaper, NULL);
    pthread_cond_destroy(&conns->cv);
    pthread_mutex_destroy(&conns->mu);
    free(conns->slots);
    free(conns->trusted);
    free(conns);
}
