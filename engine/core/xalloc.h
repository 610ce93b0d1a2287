/*
 * xalloc: allocation that cannot fail.
 *
 * The engine treats running out of memory as fatal: every caller would
 * otherwise need a recovery path it cannot test. The one exception is each
 * operator's capped Lua allocator (sandbox.c), whose refusal becomes a Lua
 * memory error inside that operator only. Any thread may call these.
 */
#ifndef RX_XALLOC_H
#define RX_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Recover the struct that embeds `ptr` as `member` (libuv's handle idiom). */
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
