/*
 * bench_store: what the lock-free store costs and buys against the plain
 * designs it replaces, measured in the same run on the same 12 x 2,000 keys.
 * Each measurement runs argv[1] seconds (default 2), threads started
 * together, keys drawn at random:
 *
 *   1. writer only: store_put of a fresh ticker (new decimal-text bid/ask,
 *      ts); baseline: the same ticker memcpy'd into a plain array, the floor
 *      cost of producing a ticker.
 *   2. two readers: store_get; baseline: the same copies out of the array
 *      under a pthread_rwlock. The array is indexed by number, so the
 *      baseline skips the store's string-key hash lookup.
 *   3. mixed: a writer at full speed, a reader doing store_get, a reader
 *      doing full store_scan; baseline: the rwlock array, a write lock per
 *      put and one read lock per whole scan (a consistent naive snapshot).
 *
 * Every 64th get is timed with clock_gettime into a 10 ns histogram. This
 * is a benchmark, not a test: it exits 1 only if the store misbehaves (a
 * put not stored, a key lost, a scan short), never on timing.
 */
#include "store/store.h"
#include "store/ticker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define EXCHANGES 12
#define PAIRS 2000
#define KEYS (EXCHANGES * PAIRS)
#define SAMPLE_EVERY 64
#define HIST_NS 10
#define HIST_BUCKETS 10000 /* 10 ns each up to 100 us, then one overflow bucket */

enum backend { BACKEND_STORE, BACKEND_ARRAY, BACKEND_RWLOCK };
enum role { ROLE_PUT, ROLE_GET, ROLE_SCAN, ROLE_COUNT };

struct key {
    char exchange[TICKER_EXCHANGE_MAX];
    char pair[TICKER_PAIR_MAX];
    char symbol[TICKER_SYMBOL_MAX];
};

struct bench {
    enum backend backend;
    struct store *store;
    struct ticker *array; /* the baselines' table, same keys as the store */
    struct key *keys;
    double seconds;
    pthread_barrier_t start;
    _Alignas(64) atomic_int stop;
    _Alignas(64) pthread_rwlock_t lock;
    _Alignas(64) uint64_t tick; /* writer only: makes every put a change */
};

/* One thread's state, cache lines apart from the others'. */
struct worker {
    _Alignas(64) enum role role;
    struct bench *b;
    pthread_t thread;
    uint64_t rng, ops, max_ns;
    double sink; /* keeps the copies observable */
    struct ticker copy;
    uint32_t hist[HIST_BUCKETS];
};

struct scan_ctx {
    size_t count;
    double sum;
};

static void die(const char *what)
{
    fprintf(stderr, "bench_store: %s\n", what);
    exit(1);
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* xorshift64*, then a multiply-shift into [0, KEYS): no division. */
static uint32_t key_pick(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)(((*s * 0x2545f4914f6cdd1du) >> 32) * KEYS >> 32);
}

/* units / 10^8 as exchange-style text with 8 decimals ("25.35190000"). */
static void fmt_price(char *out, uint64_t units)
{
    char tmp[32];
    char *p = tmp + sizeof(tmp) - 1;

    *p = '\0';
    for (int i = 0; i < 9 || units; i++) {
        if (i == 8) {
            *--p = '.';
        }
        *--p = (char)('0' + units % 10);
        units /= 10;
    }
    memcpy(out, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* What an operator does per update: the key, new prices as text and double. */
static void ticker_fill(struct ticker *t, const struct key *key, uint32_t k, uint64_t tick)
{
    uint64_t bid = (uint64_t)(k % 9973 + 1) * 1000000u + tick * 7919u % 100000u;
    uint64_t ask = bid + 1000u + tick % 97u;

    memcpy(t->exchange, key->exchange, sizeof(t->exchange));
    memcpy(t->pair, key->pair, sizeof(t->pair));
    memcpy(t->symbol, key->symbol, sizeof(t->symbol));
    fmt_price(t->bid, bid);
    fmt_price(t->ask, ask);
    /* Exact: units and 10^8 are exact doubles and division rounds once. */
    t->bid_value = (double)bid / 1e8;
    t->ask_value = (double)ask / 1e8;
    t->ts = (int64_t)tick;
    t->received = (int64_t)tick;
}

static void ticker_init(struct ticker *t)
{
    memset(t, 0, sizeof(*t));
    strcpy(t->bid_size, "1.25000000");
    strcpy(t->ask_size, "0.75000000");
    strcpy(t->volume, "123456.78000000");
    t->source = TICKER_SOURCE_STREAM;
}

static void bench_put(struct bench *b, struct ticker *t, uint32_t k)
{
    if (b->backend == BACKEND_STORE) {
        if (store_put(b->store, t) != 1) {
            die("store_put did not store a changed ticker");
        }
        return;
    }
    if (b->backend == BACKEND_RWLOCK) {
        pthread_rwlock_wrlock(&b->lock);
    }
    memcpy(&b->array[k], t, sizeof(*t));
    if (b->backend == BACKEND_RWLOCK) {
        pthread_rwlock_unlock(&b->lock);
    }
}

static void bench_get(struct bench *b, uint32_t k, struct ticker *out)
{
    if (b->backend == BACKEND_STORE) {
        if (store_get(b->store, b->keys[k].exchange, b->keys[k].pair, out) != 0) {
            die("store_get lost a key");
        }
        return;
    }
    pthread_rwlock_rdlock(&b->lock);
    memcpy(out, &b->array[k], sizeof(*out));
    pthread_rwlock_unlock(&b->lock);
}

/* noinline: the baseline must hand over a whole copy, as store_scan does. */
__attribute__((noinline)) static int scan_cb(const struct ticker *t, void *ctx)
{
    struct scan_ctx *c = ctx;

    c->count++;
    c->sum += t->bid_value;
    return 0;
}

static void bench_scan(struct bench *b, struct scan_ctx *c)
{
    struct ticker copy;

    if (b->backend == BACKEND_STORE) {
        store_scan(b->store, NULL, scan_cb, c);
        return;
    }
    pthread_rwlock_rdlock(&b->lock);
    for (uint32_t k = 0; k < KEYS; k++) {
        memcpy(&copy, &b->array[k], sizeof(copy));
        scan_cb(&copy, c);
    }
    pthread_rwlock_unlock(&b->lock);
}

static void timed_get(struct worker *w, uint32_t k)
{
    int64_t t0 = now_ns();
    bench_get(w->b, k, &w->copy);
    uint64_t ns = (uint64_t)(now_ns() - t0);

    w->hist[ns / HIST_NS < HIST_BUCKETS ? ns / HIST_NS : HIST_BUCKETS - 1]++;
    w->max_ns = ns > w->max_ns ? ns : w->max_ns;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct ticker t;
    struct scan_ctx c;

    ticker_init(&t);
    pthread_barrier_wait(&w->b->start);
    for (; !atomic_load_explicit(&w->b->stop, memory_order_relaxed); w->ops++) {
        uint32_t k = key_pick(&w->rng);
        if (w->role == ROLE_PUT) {
            ticker_fill(&t, &w->b->keys[k], k, ++w->b->tick);
            bench_put(w->b, &t, k);
        } else if (w->role == ROLE_GET && w->ops % SAMPLE_EVERY == 0) {
            timed_get(w, k);
        } else if (w->role == ROLE_GET) {
            bench_get(w->b, k, &w->copy);
        } else {
            c = (struct scan_ctx){0, 0};
            bench_scan(w->b, &c);
            if (c.count != KEYS) {
                die("a scan did not see every ticker");
            }
            w->copy.bid_value = c.sum;
        }
        w->sink += w->copy.bid_value;
    }
    return NULL;
}

/* Runs the workers (role set, the rest zero) for b->seconds; the elapsed time. */
static double run(struct bench *b, enum backend be, struct worker *ws, int n)
{
    time_t whole = (time_t)b->seconds;
    struct timespec nap = {whole, (long)((b->seconds - (double)whole) * 1e9)};

    b->backend = be;
    atomic_store(&b->stop, 0);
    pthread_barrier_init(&b->start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        ws[i].b = b;
        ws[i].rng = 0x9e3779b97f4a7c15u * (uint64_t)(i + 1);
        pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
    }
    pthread_barrier_wait(&b->start);
    int64_t t0 = now_ns();
    nanosleep(&nap, NULL);
    atomic_store(&b->stop, 1);
    double elapsed = (double)(now_ns() - t0) / 1e9;
    for (int i = 0; i < n; i++) {
        pthread_join(ws[i].thread, NULL);
    }
    pthread_barrier_destroy(&b->start);
    return elapsed;
}

/* p99 (to the bucket's upper edge) and max of the workers' sampled gets. */
static void latency(const struct worker *ws, int n, double *p99, double *max)
{
    uint64_t total = 0, seen = 0;

    *p99 = 0;
    *max = 0;
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < HIST_BUCKETS; j++) {
            total += ws[i].hist[j];
        }
        *max = (double)ws[i].max_ns > *max ? (double)ws[i].max_ns : *max;
    }
    for (size_t j = 0; j < HIST_BUCKETS && seen * 100 < total * 99; j++) {
        for (int i = 0; i < n; i++) {
            seen += ws[i].hist[j];
        }
        *p99 = j == HIST_BUCKETS - 1 ? *max : (double)((j + 1) * HIST_NS);
    }
}

static void row(const char *what, double store, double base, const char *base_is)
{
    char num[2][16];

    for (int i = 0; i < 2; i++) {
        double v = i ? base : store;
        snprintf(num[i], sizeof(num[i]), v >= 1e5 ? "%.2fM" : "%.0f", v >= 1e5 ? v / 1e6 : v);
    }
    printf("  %-22s %10s %10s %8.2f   %s\n", what, num[0], num[1], base > 0 ? store / base : 0.0,
           base_is);
}

/* One measurement on the store, then on its baseline, printed as rows. */
static void measure(struct bench *b, enum backend base, const enum role *roles, int n,
                    const char *base_is)
{
    static const char *const unit[ROLE_COUNT] = {"puts/s", "gets/s", "scans/s"};
    struct worker ws[2][3]; /* 40 KB each, fine on the main stack */
    double rate[2][ROLE_COUNT] = {{0}}, p99[2], max[2];

    for (int v = 0; v < 2; v++) {
        memset(ws[v], 0, sizeof(ws[v]));
        for (int i = 0; i < n; i++) {
            ws[v][i].role = roles[i];
        }
        double secs = run(b, v ? base : BACKEND_STORE, ws[v], n);
        for (int i = 0; i < n; i++) {
            rate[v][roles[i]] += (double)ws[v][i].ops / secs;
        }
        latency(ws[v], n, &p99[v], &max[v]);
    }
    for (int r = 0; r < ROLE_COUNT; r++) {
        if (rate[0][r] > 0) {
            row(unit[r], rate[0][r], rate[1][r], base_is);
        }
    }
    if (rate[0][ROLE_GET] > 0) {
        row("get p99 ns (sampled)", p99[0], p99[1], "lower is better");
        row("get max ns (sampled)", max[0], max[1], "lower is better");
    }
}

static void preload(struct bench *b)
{
    static const char *const names[EXCHANGES] = {"binance", "okx",    "bybit",    "coinbase",
                                                 "kraken",  "kucoin", "gateio",   "bitget",
                                                 "htx",     "mexc",   "bitfinex", "bitstamp"};
    struct ticker t;

    ticker_init(&t);
    b->backend = BACKEND_STORE;
    for (uint32_t k = 0; k < KEYS; k++) {
        struct key *key = &b->keys[k];
        snprintf(key->exchange, sizeof(key->exchange), "%s", names[k / PAIRS]);
        snprintf(key->pair, sizeof(key->pair), "T%04u_USDT", k % PAIRS);
        snprintf(key->symbol, sizeof(key->symbol), "T%04uUSDT", k % PAIRS);
        ticker_fill(&t, key, k, ++b->tick);
        if (ticker_validate(&t) != TICKER_OK) {
            die("the generated ticker does not validate");
        }
        b->array[k] = t;
        bench_put(b, &t, k);
    }
}

int main(int argc, char **argv)
{
    static const enum role writer[] = {ROLE_PUT}, readers[] = {ROLE_GET, ROLE_GET};
    static const enum role mixed[] = {ROLE_PUT, ROLE_GET, ROLE_SCAN};
    struct bench b;
    struct utsname u;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    memset(&b, 0, sizeof(b));
    b.seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    if (!(b.seconds > 0 && b.seconds < 3600)) {
        die("usage: bench_store [seconds per run, default 2]");
    }
    b.store = store_new();
    b.array = calloc(KEYS, sizeof(*b.array));
    b.keys = calloc(KEYS, sizeof(*b.keys));
    if (!b.array || !b.keys) {
        die("out of memory");
    }
    pthread_rwlock_init(&b.lock, NULL);
    preload(&b);
    uname(&u);
    int64_t t0 = now_ns();
    for (int i = 0; i < 1000; i++) {
        now_ns();
    }
    printf("bench_store: %d exchanges x %d pairs = %d tickers, %.1f s per run, build %s\n",
           EXCHANGES, PAIRS, KEYS, b.seconds, RX_BUILD_TYPE);
    printf("machine: nproc %ld, %s %s %s; clock_gettime %.0f ns, included in latencies\n", cpus,
           u.sysname, u.release, u.machine, (double)(now_ns() - t0) / 1000);
    printf("\n  %-22s %10s %10s %8s   %s\n", "", "store", "baseline", "ratio", "baseline is");
    printf("1 writer only\n");
    measure(&b, BACKEND_ARRAY, writer, 1, "memcpy into a plain array");
    printf("2 readers only, 2 threads\n");
    measure(&b, BACKEND_RWLOCK, readers, 2, "array + pthread_rwlock");
    printf("3 mixed: writer + getter + scanner, 3 threads on %ld cpus%s\n", cpus,
           cpus < 3 ? " (oversubscribed)" : "");
    measure(&b, BACKEND_RWLOCK, mixed, 3, "array + pthread_rwlock");
    printf("\nratio = store / baseline, both measured in this run\n");
    pthread_rwlock_destroy(&b.lock);
    store_free(b.store);
    free(b.array);
    free(b.keys);
    return 0;
}
