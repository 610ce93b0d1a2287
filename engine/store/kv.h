/*
 * kv: small per-operator values that outlive a reload (x.kv), kept in
 * memory. With a Redis store they also outlive a restart: the Redis writer
 * loads rx:kv:{exchange} into memory before the operators start
 * (kv_load) and is told of every change (the hook) to write it behind, so
 * x.kv.set never waits on the network.
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
/* A value read back from a copy elsewhere (warm start): stored as kv_set
 * would, with its absolute expiry (0 = never; already expired: ignored),
 * and without calling the hook. */
int kv_load(struct kv *kv, const char *exchange, const char *key, const char *value, size_t len,
            int64_t expires_ms, int64_t now_ms);
/* Called after every kv_set (value set, expires_ms absolute or 0) and
 * kv_del (value NULL) that changed something. */
typedef void (*kv_hook_fn)(void *arg, const char *exchange, const char *key, const char *value,
                           size_t len, int64_t expires_ms);
void kv_set_hook(struct kv *kv, kv_hook_fn fn, void *arg);
/* Calls fn for every live value of the exchange (a rewrite after Redis
 * came back). */
void kv_each(struct kv *kv, const char *exchange, int64_t now_ms, kv_hook_fn fn, void *arg);
void kv_drop_exchange(struct kv *kv, const char *exchange);

#endif
