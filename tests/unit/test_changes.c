/*
 * changes: the feed from the ingest loop to the API loop. Puts are staged
 * and reach the consumer only through changes_flush; a flush rings the
 * consumer at most once per take and at most once per CHANGES_RING_GAP_US
 * (the doorbell used to ring on every emit, which cost the emit path more
 * than the emit itself); keys fold, and an exchange's entry comes after
 * the tickers put before it.
 */
#include "check.h"
#include "store/changes.h"

static int rings;

static void ring(void *arg)
{
    (*(int *)arg)++;
}

static struct ticker key(const char *pair, uint64_t v)
{
    struct ticker t;

    memset(&t, 0, sizeof t);
    strcpy(t.exchange, "ex");
    snprintf(t.pair, sizeof t.pair, "%s", pair);
    t.v = v;
    return t;
}

static void put(struct changes *c, const char *pair, uint64_t v)
{
    struct ticker t = key(pair, v);
    bool changed = true;

    changes_put_tickers(c, &t, &changed, 1);
}

/* Staged puts wait for a flush; a flush rings once, and not again until
 * the consumer has taken. */
static void test_flush_rings_once_per_take(void)
{
    struct changes *c = changes_new(ring, &rings);
    struct changes_taken taken = {0};
    uint64_t now = 1000000;

    rings = 0;
    put(c, "A_B", 1);
    put(c, "A_B", 2);
    put(c, "C_D", 1);
    CHECK_INT_EQ(rings, 0);
    CHECK_INT_EQ(changes_take(c, &taken), 0); /* nothing before the flush */
    CHECK_INT_EQ(changes_flush(c, now), 0);
    CHECK_INT_EQ(rings, 1);
    put(c, "E_F", 1);
    CHECK_INT_EQ(changes_flush(c, now + 10 * CHANGES_RING_GAP_US), 0);
    CHECK_INT_EQ(rings, 1); /* rung, not taken yet: no second doorbell */
    CHECK_INT_EQ(changes_take(c, &taken), 3);
    CHECK_INT_EQ(taken.n_keys, 3);
    CHECK_STR_EQ(taken.keys[0].pair, "A_B");
    CHECK_INT_EQ(taken.keys[0].v, 2); /* folded */
    CHECK_STR_EQ(taken.keys[2].pair, "E_F");
    /* Nothing new: a flush is free and silent. */
    CHECK_INT_EQ(changes_flush(c, now + 20 * CHANGES_RING_GAP_US), 0);
    CHECK_INT_EQ(rings, 1);
    changes_taken_free(&taken);
    changes_free(c);
}

/* Within the gap of the last ring, a flush holds the doorbell back and
 * says when to try again; the next flush after the gap rings. */
static void test_gap_holds_a_ring(void)
{
    struct changes *c = changes_new(ring, &rings);
    struct changes_taken taken = {0};
    uint64_t now = 5000000;

    rings = 0;
    put(c, "A_B", 1);
    CHECK_INT_EQ(changes_flush(c, now), 0);
    CHECK_INT_EQ(rings, 1);
    CHECK_INT_EQ(changes_take(c, &taken), 1);
    put(c, "A_B", 2);
    CHECK_INT_EQ(changes_flush(c, now + 50), CHANGES_RING_GAP_US - 50);
    CHECK_INT_EQ(rings, 1);
    /* The held ring is owed even with nothing new put since. */
    CHECK_INT_EQ(changes_flush(c, now + CHANGES_RING_GAP_US), 0);
    CHECK_INT_EQ(rings, 2);
    CHECK_INT_EQ(changes_take(c, &taken), 1);
    CHECK_INT_EQ(taken.keys[0].v, 2);
    changes_taken_free(&taken);
    changes_free(c);
}

/* A removal follows the tickers put before it, in one take. */
static void test_exchanges_after_their_tickers(void)
{
    struct changes *c = changes_new(ring, &rings);
    struct changes_taken taken = {0};
    struct changes_stats st;

    rings = 0;
    put(c, "A_B", 7);
    changes_put_removed(c, "ex");
    changes_put_status(c, "other", "polling", NULL);
    CHECK_INT_EQ(changes_take(c, &taken), 3); /* staged tickers went with the removal */
    CHECK_INT_EQ(taken.n_keys, 1);
    CHECK_INT_EQ(taken.n_exchanges, 2);
    CHECK(taken.exchanges[0].removed);
    CHECK(taken.exchanges[1].status);
    CHECK_STR_EQ(taken.exchanges[1].state, "polling");
    CHECK_INT_EQ(rings, 0); /* rung by the flush alone */
    put(c, "A_B", 8);
    changes_put_status(c, "ex", "streaming", "");
    CHECK_INT_EQ(changes_flush(c, 1), 0);
    CHECK_INT_EQ(rings, 1);
    changes_stats(c, &st);
    CHECK_INT_EQ(st.keys_put, 2);
    CHECK_INT_EQ(st.pending, 2);
    changes_taken_free(&taken);
    changes_free(c);
}

/* Many keys in one iteration: all arrive, folded, the index grown. */
static void test_many_keys(void)
{
    struct changes *c = changes_new(ring, &rings);
    struct changes_taken taken = {0};
    char pair[16];

    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3000; i++) {
            snprintf(pair, sizeof pair, "P%d_Q", i);
            put(c, pair, (uint64_t)round + 1);
        }
    }
    changes_flush(c, 1);
    CHECK_INT_EQ(changes_take(c, &taken), 3000);
    CHECK_INT_EQ(taken.keys[2999].v, 2);
    changes_taken_free(&taken);
    changes_free(c);
}

int main(void)
{
    test_flush_rings_once_per_take();
    test_gap_holds_a_ring();
    test_exchanges_after_their_tickers();
    test_many_keys();
    return CHECK_DONE();
}
