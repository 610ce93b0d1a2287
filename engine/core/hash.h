/*
 * hash: FNV-1a, 64 bits — the one hash of the project's tables (the
 * store's index, the subscription keys, the render slots) and ETags.
 * Keys are exchange and pair names we validated, so a simple, fast,
 * well-spread hash is enough; hash_key finishes with a mixer so that the
 * low bits (a table's slot) depend on every byte.
 *
 * Pure functions: any thread.
 */
#ifndef RX_HASH_H
#define RX_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV_OFFSET 0xcbf29ce484222325u
#define HASH_FNV_PRIME 0x100000001b3u

/* Continues an FNV-1a hash h over n bytes. */
static inline uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * HASH_FNV_PRIME;
    }
    return h;
}

/* The hash of the key (exchange, pair): both names with a separator that
 * neither contains, mixed. */
static inline uint64_t hash_key(const char *exchange, const char *pair)
{
    uint64_t h = HASH_FNV_OFFSET;
    for (const char *p = exchange; *p; p++) {
        h = (h ^ (unsigned char)*p) * HASH_FNV_PRIME;
    }
    h *= HASH_FNV_PRIME;
    for (const char *p = pair; *p; p++) {
        h = (h ^ (unsigned char)*p) * HASH_FNV_PRIME;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h;
}

#endif
