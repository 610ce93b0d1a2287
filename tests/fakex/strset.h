/*
 * strset: a small ordered set of strings (host names, channel names).
 *
 * The sets the fake exchange keeps hold a handful of members, so a growing
 * array with linear lookup beats any hashing. The set owns copies of its
 * members. Pure; any thread.
 */
#ifndef FAKEX_STRSET_H
#define FAKEX_STRSET_H

#include <stddef.h>

struct strset {
    char **v;
    size_t n;
    size_t cap;
};

/* Add a copy of `s` unless an equal member exists. Returns 1 if added. */
int strset_add(struct strset *set, const char *s);

/* Add `len` bytes of `s` (need not be terminated). Returns 1 if added. */
int strset_addn(struct strset *set, const char *s, size_t len);

int strset_has(const struct strset *set, const char *s);

/* Members of `a` also in `b`. */
size_t strset_intersection(const struct strset *a, const struct strset *b);

/* Every member of `small` is in `big`. */
int strset_subset(const struct strset *small, const struct strset *big);

void strset_remove_all(struct strset *set, const struct strset *gone);

void strset_copy(struct strset *dst, const struct strset *src);

void strset_free(struct strset *set);

#endif
