/*
 * kv: small per-operator values that outlive a reload (x.kv), kept in
 * memory. With a Redis store the same calls go to rx:kv:{exchange}
 * instead (redis issue); this is the embedded default.
 *
 * Caps keep a buggy operator from growing it without bound: KV_MAX_KEYS
 * keys per exchange, KV_MAX_VALUE bytes per value. Expired values vanish on
 * read. Loop thread only; the engine owns the kv.
 */
#ifndef RX_KV_H
#define RX_KV_H

#include <stddef.h>
#include <stdint.h>

#define KV_MAX_KEYS 256
#define KV_MAX_KEY 128
#define KV_MAX_VALUE 65536

struct kv;

struct kv *kv_new(void);
void kv_free(struct kv *kv);
/* ttl_ms 0 = no expiry. Returns 0, -E2BIG (value or key too long) or
 * -ENOSPC (the exchange has KV_MAX_KEYS keys). */
int kv_set(struct kv *kv, const char *exchange, const char *key, const char *value, size_t len,
           int64_t ttl_ms, int64_t now_ms);
/* Borrowed value valid until the next call, or NULL. */
const char *kv_get(struct kv *kv, const char *exchange, const char *key, size_t *len,
                   int64_t now_ms);
void kv_del(struct kv *kv, const char *exchange, const char *key);
void kv_drop_exchange(struct kv *kv, const char *exchange);

#endif
