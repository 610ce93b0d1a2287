/* backoff: growth, cap, jitter bounds and the zero attempt. */
#include "core/backoff.h"
#include "check.h"

int main(void)
{
    uint64_t rng = 42;

    CHECK_INT_EQ(backoff_delay_ms(0, 1000, 60000, 0.0, &rng), 0);
    CHECK_INT_EQ(backoff_delay_ms(1, 1000, 60000, 0.0, &rng), 1000);
    CHECK_INT_EQ(backoff_delay_ms(2, 1000, 60000, 0.0, &rng), 2000);
    CHECK_INT_EQ(backoff_delay_ms(5, 1000, 60000, 0.0, &rng), 16000);
    CHECK_INT_EQ(backoff_delay_ms(7, 1000, 60000, 0.0, &rng), 60000);
    CHECK_INT_EQ(backoff_delay_ms(4000, 1000, 60000, 0.0, &rng), 60000);

    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t d = backoff_delay_ms(3, 1000, 60000, 0.2, &rng);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    CHECK(lo >= 3200 && lo < 3300);
    CHECK(hi <= 4800 && hi > 4700);

    double sum = 0;
    for (int i = 0; i < 10000; i++) {
        double r = backoff_random(&rng);
        CHECK(r >= 0.0 && r < 1.0);
        sum += r;
    }
    CHECK(sum / 10000 > 0.45 && sum / 10000 < 0.55);
    CHECK_INT_EQ(backoff_jitter_ms(0, 0.5, &rng), 1);
    return CHECK_DONE();
}
