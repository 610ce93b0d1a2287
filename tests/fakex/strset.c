/*
 * strset: growing array of owned strings with set semantics.
 *
 * Insertion order is kept so that log lines and stats list members in the
 * order the fixtures gave them.
 */
#include "strset.h"

#include "core/xalloc.h"

#include <stdlib.h>
#include <string.h>

int strset_addn(struct strset *set, const char *s, size_t len)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strlen(set->v[i]) == len && memcmp(set->v[i], s, len) == 0) {
            return 0;
        }
    }
    if (set->n == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 4;
        set->v = xrealloc(set->v, set->cap * sizeof(*set->v));
    }
    set->v[set->n++] = xstrndup(s, len);
    return 1;
}

int strset_add(struct strset *set, const char *s)
{
    return strset_addn(set, s, strlen(s));
}

int strset_has(const struct strset *set, const char *s)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->v[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

size_t strset_intersection(const struct strset *a, const struct strset *b)
{
    size_t k = 0;

    for (size_t i = 0; i < a->n; i++) {
        k += (size_t)strset_has(b, a->v[i]);
    }
    return k;
}

int strset_subset(const struct strset *small, const struct strset *big)
{
    return strset_intersection(small, big) == small->n;
}

void strset_remove_all(struct strset *set, const struct strset *gone)
{
    size_t o = 0;

    for (size_t i = 0; i < set->n; i++) {
        if (strset_has(gone, set->v[i])) {
            free(set->v[i]);
        } else {
            set->v[o++] = set->v[i];
        }
    }
    set->n = o;
}

void strset_copy(struct strset *dst, const struct strset *src)
{
    for (size_t i = 0; i < src->n; i++) {
        strset_add(dst, src->v[i]);
    }
}

void strset_free(struct strset *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->v[i]);
    }
    free(set->v);
    set->v = NULL;
    set->n = set->cap = 0;
}
