/*
 * store under load: one writer at full speed, three readers, no locks.
 *
 * Every ticker the writer stores is derived from one counter c (bid
 * "c.25", ask "c.75", last "c.5", symbol, sizes, volume, ts and received
 * all follow from it), so a reader that copied half an old ticker and half
 * a new one sees fields that disagree. Readers also check that, key by
 * key, neither the version nor c ever goes backwards. Meanwhile the writer
 * re-puts unchanged tickers (received-only refreshes) and now and then
 * removes an exchange whose keys then come back.
 *
 * Runs ~2 s, scaled by TEST_TIME_FACTOR. Fails on any torn or regressed
 * read, on readers that made no real progress, or on a single store_get
 * slower than STORE_STRESS_MAX_MS (default 50). Four busy threads share
 * two cores here, often next to other tests, so a read's wall time may
 * include the reader being preempted for a whole time slice or more; that
 * measures the scheduler, not the store. The bound is therefore checked
 * on the reads during which the reader was not involuntarily switched out
 * (getrusage's ru_nivcsw did not move), which still includes any time
 * spent spinning or yielding for the writer. The maximum over all reads
 * is printed too.
 */
#include "check.h"
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#define EXCHANGES 4
#define PAIRS 500
#define KEYS (EXCHANGES * PAIRS)
#define READERS 3
/* Latency histogram: bucket b holds reads of [2^b, 2^(b+1)) ns. */
#define BUCKETS 40

static struct store *store;
static atomic_int stop;

struct writer_result {
    uint64_t puts;
    uint64_t unchanged;
    uint64_t removes;
    int errors;
};

struct reader_result {
    int id;
    uint64_t gets;
    uint64_t misses;
    uint64_t scans;
    uint64_t scanned;
    uint64_t torn;
    uint64_t regressions;
    uint64_t get_max_ns;         /* over all reads */
    uint64_t get_max_running_ns; /* over reads never switched out */
    uint64_t preempted;
    uint64_t scan_max_ns;
    uint64_t hist[BUCKETS];
    uint64_t last_v[KEYS];
    uint64_t last_c[KEYS];
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void key_names(int key, char *exchange, char *pair)
{
    snprintf(exchange, TICKER_EXCHANGE_MAX, "stress%d", key / PAIRS);
    snprintf(pair, TICKER_PAIR_MAX, "P%d_USDT", key % PAIRS);
}

/* The ticker of key at counter c: every field follows from c. */
static void fill(struct ticker *t, int key, uint64_t c)
{
    memset(t, 0, sizeof(*t));
    key_names(key, t->exchange, t->pair);
    snprintf(t->symbol, sizeof(t->symbol), "%s:%llu", t->pair, (unsigned long long)c);
    snprintf(t->bid, sizeof(t->bid), "%llu.25", (unsigned long long)c);
    snprintf(t->ask, sizeof(t->ask), "%llu.75", (unsigned long long)c);
    snprintf(t->last, sizeof(t->last), "%llu.5", (unsigned long long)c);
    snprintf(t->bid_size, sizeof(t->bid_size), "%llu", (unsigned long long)c * 3);
    snprintf(t->ask_size, sizeof(t->ask_size), "%llu", (unsigned long long)c * 5);
    snprintf(t->volume, sizeof(t->volume), "%llu", (unsigned long long)c * 7);
    t->bid_value = (double)c + 0.25;
    t->ask_value = (double)c + 0.75;
    t->ts = (int64_t)c;
    t->received = (int64_t)c * 1000;
    t->source = c & 1 ? TICKER_SOURCE_STREAM : TICKER_SOURCE_POLL;
}

/* Is t a whole ticker of key (not a mix of two)? Sets *c. */
static int consistent(const struct ticker *t, int key, uint64_t *c)
{
    struct ticker want;
    char *end;

    *c = strtoull(t->bid, &end, 10);
    fill(&want, key, *c);
    /* A refresh may have added up to 999 ms to received. */
    return ticker_same_quote(&want, t) && t->received / 1000 == (int64_t)*c && t->v > 0;
}

static void *writer_main(void *arg)
{
    struct writer_result *r = arg;
    uint64_t rng = 88172645463325252u;
    uint64_t c = 0;
    struct ticker t;

    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int key = (int)(xorshift(&rng) % (uint64_t)KEYS);
        fill(&t, key, ++c);
        if (store_put(store, &t) != 1) {
            r->errors++;
        }
        r->puts++;
        if ((c & 7) == 0) {
            /* Same quote, later receive: only received moves. */
            t.received++;
            if (store_put(store, &t) != 0) {
                r->errors++;
            }
            r->unchanged++;
        }
        if (c % 20000 == 0) {
            char exchange[TICKER_EXCHANGE_MAX];
            snprintf(exchange, sizeof(exchange), "stress%d", (int)(c / 20000) % EXCHANGES);
            if (store_remove_exchange(store, exchange) < 0) {
                r->errors++;
            }
            r->removes++;
        }
    }
    return NULL;
}

static void record_latency(struct reader_result *r, uint64_t ns, int preempted)
{
    int b = 0;

    if (preempted) {
        r->preempted++;
    } else if (ns > r->get_max_running_ns) {
        r->get_max_running_ns = ns;
    }

    while (b < BUCKETS - 1 && (ns >> (b + 1)) != 0) {
        b++;
    }
    r->hist[b]++;
    if (ns > r->get_max_ns) {
        r->get_max_ns = ns;
    }
}

static long involuntary_switches(void)
{
    struct rusage ru;

    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_nivcsw;
}

/* A read of key: whole, and never older than the last one this reader saw. */
static void check_read(struct reader_result *r, const struct ticker *t, int key)
{
    uint64_t c;

    if (!consistent(t, key, &c)) {
        if (r->torn++ < 5) {
            fprintf(stderr, "torn read of key %d: bid %s ask %s last %s symbol %s v %llu\n", key,
                    t->bid, t->ask, t->last, t->symbol, (unsigned long long)t->v);
        }
        return;
    }
    if (t->v < r->last_v[key] || c < r->last_c[key]) {
        if (r->regressions++ < 5) {
            fprintf(stderr, "key %d went back: v %llu after %llu\n", key, (unsigned long long)t->v,
                    (unsigned long long)r->last_v[key]);
        }
    }
    r->last_v[key] = t->v;
    r->last_c[key] = c;
}

static int key_of(const struct ticker *t)
{
    int e = atoi(t->exchange + strlen("stress"));
    int p = atoi(t->pair + 1);
    return e * PAIRS + p;
}

static int scan_cb(const struct ticker *t, void *ctx)
{
    struct reader_result *r = ctx;

    check_read(r, t, key_of(t));
    r->scanned++;
    return 0;
}

static void *reader_main(void *arg)
{
    struct reader_result *r = arg;
    uint64_t rng = 0x2545f4914f6cdd1du + (uint64_t)r->id * 7919;
    char exchange[TICKER_EXCHANGE_MAX];
    char pair[TICKER_PAIR_MAX];
    struct ticker t;

    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int key = (int)(xorshift(&rng) % (uint64_t)KEYS);
        uint64_t t0;
        uint64_t dt;
        int rc;
        long switches;

        key_names(key, exchange, pair);
        switches = involuntary_switches();
        t0 = now_ns();
        rc = store_get(store, exchange, pair, &t);
        dt = now_ns() - t0;
        record_latency(r, dt, involuntary_switches() != switches);
        r->gets++;
        if (rc == -ENOENT) {
            r->misses++;
        } else {
            check_read(r, &t, key);
        }
        if ((r->gets & 255) == 0) {
            t0 = now_ns();
            store_scan(store, (r->scans & 1) ? exchange : NULL, scan_cb, r);
            dt = now_ns() - t0;
            r->scan_max_ns = dt > r->scan_max_ns ? dt : r->scan_max_ns;
            r->scans++;
        }
        if (r->id == 2 && (r->gets & 1023) == 0) {
            struct store_exchange_stats st;
            char names[EXCHANGES + 1][TICKER_EXCHANGE_MAX];
            size_t n = store_exchange_names(store, names, EXCHANGES + 1);
            if (n > EXCHANGES) {
                r->torn++;
            }
            for (size_t i = 0; i < n; i++) {
                if (store_exchange_stats(store, names[i], &st) == 0 && st.tickers > PAIRS) {
                    r->torn++;
                }
            }
        }
    }
    return NULL;
}

static uint64_t percentile_ns(const uint64_t *hist, uint64_t total, double q)
{
    uint64_t want = (uint64_t)(q * (double)total);
    uint64_t seen = 0;

    for (int b = 0; b < BUCKETS; b++) {
        seen += hist[b];
        if (seen > want) {
            return (uint64_t)1 << (b + 1);
        }
    }
    return (uint64_t)1 << BUCKETS;
}

int main(void)
{
    const char *factor_env = getenv("TEST_TIME_FACTOR");
    const char *max_env = getenv("STORE_STRESS_MAX_MS");
    double factor = factor_env ? atof(factor_env) : 1;
    double seconds;
    double max_ms;
    struct writer_result w = {0};
    static struct reader_result readers[READERS];
    pthread_t writer;
    pthread_t reader_threads[READERS];
    struct timespec pause;
    uint64_t hist[BUCKETS] = {0};
    uint64_t gets = 0;
    uint64_t get_max = 0;
    uint64_t get_max_running = 0;
    uint64_t preempted = 0;
    uint64_t torn = 0;
    uint64_t regressions = 0;
    uint64_t t0;
    double elapsed;

    factor = factor > 0 ? factor : 1;
    seconds = 2 * factor;
    max_ms = max_env ? atof(max_env) : 50;
    pause.tv_sec = (time_t)seconds;
    pause.tv_nsec = (long)((seconds - (double)pause.tv_sec) * 1e9);
    store = store_new();
    t0 = now_ns();
    CHECK_INT_EQ(pthread_create(&writer, NULL, writer_main, &w), 0);
    for (int i = 0; i < READERS; i++) {
        readers[i].id = i;
        CHECK_INT_EQ(pthread_create(&reader_threads[i], NULL, reader_main, &readers[i]), 0);
    }
    nanosleep(&pause, NULL);
    atomic_store(&stop, 1);
    pthread_join(writer, NULL);
    for (int i = 0; i < READERS; i++) {
        pthread_join(reader_threads[i], NULL);
    }
    elapsed = (double)(now_ns() - t0) / 1e9;

    printf("%.2f s: writer %llu puts (%.0f/s), %llu unchanged re-puts, %llu removals\n", elapsed,
           (unsigned long long)w.puts, (double)w.puts / elapsed, (unsigned long long)w.unchanged,
           (unsigned long long)w.removes);
    for (int i = 0; i < READERS; i++) {
        struct reader_result *r = &readers[i];
        printf("reader %d: %llu gets (%.0f/s, %llu missing), %llu scans (%llu tickers), "
               "max get %.3f ms, max scan %.3f ms, torn %llu, regressions %llu\n",
               i, (unsigned long long)r->gets, (double)r->gets / elapsed,
               (unsigned long long)r->misses, (unsigned long long)r->scans,
               (unsigned long long)r->scanned, (double)r->get_max_ns / 1e6,
               (double)r->scan_max_ns / 1e6, (unsigned long long)r->torn,
               (unsigned long long)r->regressions);
        for (int b = 0; b < BUCKETS; b++) {
            hist[b] += r->hist[b];
        }
        gets += r->gets;
        torn += r->torn;
        regressions += r->regressions;
        get_max = r->get_max_ns > get_max ? r->get_max_ns : get_max;
        if (r->get_max_running_ns > get_max_running) {
            get_max_running = r->get_max_running_ns;
        }
        preempted += r->preempted;
        CHECK(r->gets >= 2000);
        CHECK(r->scans >= 5);
        CHECK(r->scanned >= 100);
    }
    printf("store_get latency: p50 < %.1f us, p99 < %.1f us, p99.9 < %.1f us, max %.3f ms; "
           "max %.3f ms over the reads not preempted (bound %.0f ms), %llu preempted\n",
           (double)percentile_ns(hist, gets, 0.5) / 1e3,
           (double)percentile_ns(hist, gets, 0.99) / 1e3,
           (double)percentile_ns(hist, gets, 0.999) / 1e3, (double)get_max / 1e6,
           (double)get_max_running / 1e6, max_ms, (unsigned long long)preempted);

    CHECK_INT_EQ(w.errors, 0);
    CHECK(w.puts >= 10000);
    CHECK(w.removes >= 1);
    CHECK_INT_EQ(torn, 0);
    CHECK_INT_EQ(regressions, 0);
    CHECK((double)get_max_running / 1e6 < max_ms);
    store_free(store);
    return CHECK_DONE();
}
