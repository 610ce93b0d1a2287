/*
 * kv: a flat array of entries. Operators keep a handful of values (a
 * listen key, a cursor), so a linear scan over a capped array beats a hash
 * table in code and in practice.
 */
#include "kv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

struct kv_entry {
    char *exchange;
    char *key;
    char *value;
    size_t len;
    int64_t expires; /* 0 = never */
};

struct kv {
    struct kv_entry *items;
    size_t n, cap;
    kv_hook_fn hook;
    void *hook_arg;
};

struct kv *kv_new(void)
{
    return xcalloc(1, sizeof(struct kv));
}

static void entry_clear(struct kv_entry *e)
{
    free(e->exchange);
    free(e->key);
    free(e->value);
}

void kv_free(struct kv *kv)
{
    if (!kv) {
        return;
    }
    for (size_t i = 0; i < kv->n; i++) {
        entry_clear(&kv->items[i]);
    }
    free(kv->items);
    free(kv);
}

static void remove_at(struct kv *kv, size_t i)
{
    entry_clear(&kv->items[i]);
    kv->items[i] = kv->items[--kv->n];
}

static struct kv_entry *find(struct kv *kv, const char *exchange, const char *key,
                             int64_t now_ms, size_t *count)
{
    struct kv_entry *hit = NULL;
    *count = 0;
    for (size_t i = 0; i < kv->n;) {
        struct kv_entry *e = &kv->items[i];
        if (strcmp(e->exchange, exchange) != 0) {
            i++;
            continue;
        }
        if (e->expires && e->expires <= now_ms) {
            remove_at(kv, i);
            continue;
        }
        (*count)++;
        if (strcmp(e->key, key) == 0) {
            hit = e;
        }
        i++;
    }
    return hit;
}

void kv_set_hook(struct kv *kv, kv_hook_fn fn, void *arg)
{
    kv->hook = fn;
    kv->hook_arg = arg;
}

/* kv_set with an absolute expiry; the hook is the caller's business. */
static int put(struct kv *kv, const char *exchange, const char *key, const char *value, size_t len,
               int64_t expires_ms, int64_t now_ms)
{
    size_t count;
    if (strlen(key) > KV_MAX_KEY || len > KV_MAX_VALUE) {
        return -E2BIG;
    }
    struct kv_entry *e = find(kv, exchange, key, now_ms, &count);
    if (!e) {
        if (count >= KV_MAX_KEYS) {
            return -ENOSPC;
        }
        if (kv->n == kv->cap) {
            kv->cap = kv->cap ? kv->cap * 2 : 16;
            kv->items = xrealloc(kv->items, kv->cap * sizeof *kv->items);
        }
        e = &kv->items[kv->n++];
        e->exchange = xstrdup(exchange);
        e->key = xstrdup(key);
        e->value = NULL;
    }
    free(e->value);
    e->value = xmalloc(len + 1);
    memcpy(e->value, value, len);
    e->value[len] = '\0';
    e->len = len;
    e->expires = expires_ms;
    return 0;
}

int kv_set(struct kv *kv, const char *exchange, const char *key, const char *value, size_t len,
           int64_t ttl_ms, int64_t now_ms)
{
    int64_t expires = ttl_ms > 0 ? now_ms + ttl_ms : 0;
    int rc = put(kv, exchange, key, value, len, expires, now_ms);
    if (rc == 0 && kv->hook) {
        kv->hook(kv->hook_arg, exchange, key, value, len, expires);
    }
    return rc;
}

int kv_load(struct kv *kv, const char *exchange, const char *key, const char *value, size_t len,
            int64_t expires_ms, int64_t now_ms)
{
    if (expires_ms && expires_ms <= now_ms) {
        return 0;
    }
    return put(kv, exchange, key, value, len, expires_ms, now_ms);
}

const char *kv_get(struct kv *kv, const char *exchange, const char *key, size_t *len,
                   int64_t now_ms)
{
    size_t count;
    struct kv_entry *e = find(kv, exchange, key, now_ms, &count);
    if (!e) {
        return NULL;
    }
    *len = e->len;
    return e->value;
}

void kv_del(struct kv *kv, const char *exchange, const char *key)
{
    for (size_t i = 0; i < kv->n; i++) {
        if (strcmp(kv->items[i].exchange, exchange) == 0 && strcmp(kv->items[i].key, key) == 0) {
            remove_at(kv, i);
            if (kv->hook) {
                kv->hook(kv->hook_arg, exchange, key, NULL, 0, 0);
            }
            return;
        }
    }
}

void kv_drop_exchange(struct kv *kv, const char *exchange)
{
    for (size_t i = 0; i < kv->n;) {
        if (strcmp(kv->items[i].exchange, exchange) == 0) {
            remove_at(kv, i);
        } else {
            i++;
        }
    }
}

void kv_each(struct kv *kv, const char *exchange, int64_t now_ms, kv_hook_fn fn, void *arg)
{
    for (size_t i = 0; i < kv->n; i++) {
        const struct kv_entry *e = &kv->items[i];
        if (strcmp(e->exchange, exchange) == 0 && (!e->expires || e->expires > now_ms)) {
            fn(arg, e->exchange, e->key, e->value, e->len, e->expires);
        }
    }
}
