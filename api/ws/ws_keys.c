/*
 * ws_keys: a hash table of nodes keyed by (exchange, pair), and on top of
 * it the newest version seen per key. The WebSocket session keeps its
 * per-key state in one (ws_session.c); the server filters publishes with
 * the other (ws_server.c).
 */
#include "ws_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "core/hash.h"

struct ws_keynode *ws_keys_find(const struct ws_keytab *kt, const char *exchange, const char *pair)
{
    if (!kt->nslots) {
        return NULL;
    }
    uint64_t h = hash_key(exchange, pair);
    for (struct ws_keynode *k = kt->slot[h & (kt->nslots - 1)]; k; k = k->next) {
        if (k->hash == h && strcmp(k->exchange, exchange) == 0 && strcmp(k->pair, pair) == 0) {
            return k;
        }
    }
    return NULL;
}

static void keys_grow(struct ws_keytab *kt)
{
    size_t n = kt->nslots ? kt->nslots * 2 : 64;
    struct ws_keynode **slot = xcalloc(n, sizeof *slot);

    for (size_t i = 0; i < kt->nslots; i++) {
        struct ws_keynode *k = kt->slot[i];
        while (k) {
            struct ws_keynode *next = k->next;
            k->next = slot[k->hash & (n - 1)];
            slot[k->hash & (n - 1)] = k;
            k = next;
        }
    }
    free(kt->slot);
    kt->slot = slot;
    kt->nslots = n;
}

void ws_keys_insert(struct ws_keytab *kt, struct ws_keynode *node)
{
    if (kt->n >= kt->nslots) {
        keys_grow(kt);
    }
    node->hash = hash_key(node->exchange, node->pair);
    node->next = kt->slot[node->hash & (kt->nslots - 1)];
    kt->slot[node->hash & (kt->nslots - 1)] = node;
    kt->n++;
}

void ws_keys_unlink(struct ws_keytab *kt, struct ws_keynode *node)
{
    struct ws_keynode **pp = &kt->slot[node->hash & (kt->nslots - 1)];
    while (*pp && *pp != node) {
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = node->next;
        kt->n--;
    }
}

void ws_keys_free(struct ws_keytab *kt)
{
    for (size_t i = 0; i < kt->nslots; i++) {
        struct ws_keynode *k = kt->slot[i];
        while (k) {
            struct ws_keynode *next = k->next;
            free(k);
            k = next;
        }
    }
    free(kt->slot);
    memset(kt, 0, sizeof *kt);
}

void ws_keys_fill(struct ws_keynode *node, const char *exchange, const char *pair)
{
    snprintf(node->exchange, sizeof node->exchange, "%s", exchange);
    snprintf(node->pair, sizeof node->pair, "%s", pair);
}

/* ---- Versions seen ----------------------------------------------------- */

struct version_node {
    struct ws_keynode node; /* first: ws_keys_free frees it whole */
    uint64_t v;
};

struct ws_keys_versions {
    struct ws_keytab tab;
};

struct ws_keys_versions *ws_keys_versions_new(void)
{
    return xcalloc(1, sizeof(struct ws_keys_versions));
}

void ws_keys_versions_free(struct ws_keys_versions *vs)
{
    if (!vs) {
        return;
    }
    ws_keys_free(&vs->tab);
    free(vs);
}

int ws_keys_versions_advance(struct ws_keys_versions *vs, const struct ticker *t)
{
    struct version_node *e = (struct version_node *)ws_keys_find(&vs->tab, t->exchange, t->pair);

    if (!e) {
        e = xcalloc(1, sizeof *e);
        ws_keys_fill(&e->node, t->exchange, t->pair);
        ws_keys_insert(&vs->tab, &e->node);
        e->v = t->v;
        return 1;
    }
    if (t->v == 0 || t->v > e->v) {
        e->v = t->v > e->v ? t->v : e->v;
        return 1;
    }
    return 0;
}
