/*
 * backoff: exponential delays with jitter. Jitter keeps operators that
 * failed together (a shared network blip) from retrying in lockstep.
 */
#include "backoff.h"

double backoff_random(uint64_t *rng)
{
    uint64_t x = *rng ? *rng : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    return (double)((x * 0x2545f4914f6cdd1dull) >> 11) / (double)(1ull << 53);
}

uint64_t backoff_jitter_ms(uint64_t period_ms, double jitter, uint64_t *rng)
{
    double spread = ((backoff_random(rng) * 2.0) - 1.0) * jitter;
    double v = (double)period_ms * (1.0 + spread);
    return v < 1.0 ? 1 : (uint64_t)v;
}

uint64_t backoff_delay_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, double jitter,
                          uint64_t *rng)
{
    uint64_t delay = base_ms;

    if (attempt == 0) {
        return 0;
    }
    for (unsigned i = 1; i < attempt && delay < cap_ms; i++) {
        delay *= 2;
    }
    if (delay > cap_ms) {
        delay = cap_ms;
    }
    return backoff_jitter_ms(delay, jitter, rng);
}
