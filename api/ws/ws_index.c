/*
 * ws_index: subscriptions filed by (exchange, pair), exchange, pair or
 * nothing (design in ws_index.h).
 */
#include "ws_index.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_keys.h"
#include "core/xalloc.h"

struct ix_ent {
    void *owner;
    size_t count; /* the owner's subscriptions filed under this key */
};

struct ix_node {
    struct ws_keynode node; /* first */
    struct ix_ent *ent;
    size_t n, cap;
};

struct ws_index {
    struct ws_keytab tab;
};

struct ws_index *ws_index_new(void)
{
    return xcalloc(1, sizeof(struct ws_index));
}

void ws_index_free(struct ws_index *ix)
{
    if (!ix) {
        return;
    }
    for (size_t i = 0; i < ix->tab.nslots; i++) {
        for (struct ws_keynode *k = ix->tab.slot[i]; k; k = k->next) {
            struct ix_node *node = (struct ix_node *)k;
            free(node->ent);
            node->ent = NULL;
        }
    }
    ws_keys_free(&ix->tab);
    free(ix);
}

static void file_one(struct ws_index *ix, void *owner, const char *exchange, const char *pair)
{
    struct ix_node *node = (struct ix_node *)ws_keys_find(&ix->tab, exchange, pair);

    if (!node) {
        node = xcalloc(1, sizeof *node);
        ws_keys_fill(&node->node, exchange, pair);
        ws_keys_insert(&ix->tab, &node->node);
    }
    for (size_t i = 0; i < node->n; i++) {
        if (node->ent[i].owner == owner) {
            node->ent[i].count++;
            return;
        }
    }
    if (node->n == node->cap) {
        node->cap = node->cap ? node->cap * 2 : 4;
        node->ent = xrealloc(node->ent, node->cap * sizeof *node->ent);
    }
    node->ent[node->n++] = (struct ix_ent){.owner = owner, .count = 1};
}

static void unfile_one(struct ws_index *ix, void *owner, const char *exchange, const char *pair)
{
    struct ix_node *node = (struct ix_node *)ws_keys_find(&ix->tab, exchange, pair);

    if (!node) {
        return;
    }
    for (size_t i = 0; i < node->n; i++) {
        if (node->ent[i].owner != owner) {
            continue;
        }
        if (--node->ent[i].count == 0) {
            node->ent[i] = node->ent[--node->n];
        }
        break;
    }
    if (node->n == 0) {
        ws_keys_unlink(&ix->tab, &node->node);
        free(node->ent);
        free(node);
    }
}

/* Visits every key a subscription is filed under (ws_index.h). */
static void file(struct ws_index *ix, void *owner, const char (*exchanges)[TICKER_EXCHANGE_MAX],
                 size_t n_exchanges, const char (*pairs)[TICKER_PAIR_MAX], size_t n_pairs,
                 void (*op)(struct ws_index *, void *, const char *, const char *))
{
    if (!exchanges && !pairs) {
        op(ix, owner, "", "");
    } else if (!pairs) {
        for (size_t e = 0; e < n_exchanges; e++) {
            op(ix, owner, exchanges[e], "");
        }
    } else if (!exchanges || (uint64_t)n_exchanges * n_pairs > WS_INDEX_EXACT_MAX) {
        for (size_t p = 0; p < n_pairs; p++) {
            op(ix, owner, "", pairs[p]);
        }
    } else {
        for (size_t e = 0; e < n_exchanges; e++) {
            for (size_t p = 0; p < n_pairs; p++) {
                op(ix, owner, exchanges[e], pairs[p]);
            }
        }
    }
}

void ws_index_add(struct ws_index *ix, void *owner, const char (*exchanges)[TICKER_EXCHANGE_MAX],
                  size_t n_exchanges, const char (*pairs)[TICKER_PAIR_MAX], size_t n_pairs)
{
    file(ix, owner, exchanges, n_exchanges, pairs, n_pairs, file_one);
}

void ws_index_remove(struct ws_index *ix, void *owner, const char (*exchanges)[TICKER_EXCHANGE_MAX],
                     size_t n_exchanges, const char (*pairs)[TICKER_PAIR_MAX], size_t n_pairs)
{
    file(ix, owner, exchanges, n_exchanges, pairs, n_pairs, unfile_one);
}

static void visit(const struct ws_index *ix, const char *exchange, const char *pair,
                  void (*fn)(void *owner, void *arg), void *arg)
{
    const struct ix_node *node = (const struct ix_node *)ws_keys_find(&ix->tab, exchange, pair);

    if (node) {
        for (size_t i = 0; i < node->n; i++) {
            fn(node->ent[i].owner, arg);
        }
    }
}

void ws_index_each(const struct ws_index *ix, const char *exchange, const char *pair,
                   void (*fn)(void *owner, void *arg), void *arg)
{
    if (!ix->tab.n) {
        return;
    }
    visit(ix, exchange, pair, fn, arg);
    visit(ix, exchange, "", fn, arg);
    visit(ix, "", pair, fn, arg);
    visit(ix, "", "", fn, arg);
}

bool ws_index_any(const struct ws_index *ix, const char *exchange, const char *pair)
{
    return ix->tab.n &&
           (ws_keys_find(&ix->tab, exchange, pair) || ws_keys_find(&ix->tab, exchange, "") ||
            ws_keys_find(&ix->tab, "", pair) || ws_keys_find(&ix->tab, "", ""));
}

size_t ws_index_keys(const struct ws_index *ix)
{
    return ix->tab.n;
}
