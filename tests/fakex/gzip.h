/*
 * gzip: the gzip member one compressed WebSocket frame holds.
 *
 * Some exchanges (HTX) send every frame as binary gzip of the JSON text; a
 * sidecar's "compress": "gzip" makes fakex do the same (README.md). The
 * member is what zlib's deflate writes at its default level with an all-zero
 * header (no name, no time, OS 0), which is what Java's GZIPOutputStream
 * writes: HTX's recorded frames are reproduced byte for byte. Pure; any
 * thread.
 */
#ifndef FAKEX_GZIP_H
#define FAKEX_GZIP_H

#include <stddef.h>

/*
 * The gzip of `len` bytes at `data`, in a new buffer (caller frees) of
 * *out_len bytes. Aborts on out-of-memory, like xmalloc.
 */
unsigned char *gzip_compress(const char *data, size_t len, size_t *out_len);

#endif
