/*
 * backoff: delays for retrying after failures, and jitter for schedules.
 *
 * Pure functions over a caller-owned random state, so any thread may call
 * them and tests can replay a sequence.
 */
#ifndef RX_BACKOFF_H
#define RX_BACKOFF_H

#include <stdint.h>

/* base_ms * 2^(attempt-1), capped at cap_ms, then spread by +-jitter (0..1)
 * of itself; attempt 0 gives 0. Never exceeds cap_ms * (1 + jitter). */
uint64_t backoff_delay_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, double jitter,
                          uint64_t *rng);

/* period_ms spread by +-jitter of itself (0..1). */
uint64_t backoff_jitter_ms(uint64_t period_ms, double jitter, uint64_t *rng);

/* A uniform double in [0, 1) from a xorshift64* state (seed must not be 0). */
double backoff_random(uint64_t *rng);

#endif
