/*
 * gzip: one deflate stream per frame, created and ended in the call.
 *
 * A stream kept across frames would save only an allocation: deflateReset
 * clears the same hash table deflateInit2 does, and compressed frames are
 * rare (one exchange's replay, never a benchmark's).
 */
#include "gzip.h"

#include "core/xalloc.h"

#include <stdlib.h>
#include <zlib.h>

/* 15-bit window, +16: a gzip wrapper instead of zlib's. */
#define GZIP_WINDOW_BITS (15 + 16)
#define GZIP_MEM_LEVEL 8

unsigned char *gzip_compress(const char *data, size_t len, size_t *out_len)
{
    z_stream z = {0};
    gz_header head = {0}; /* OS 0, no name or time: as Java writes it */
    unsigned char *out;
    uLong cap;

    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK ||
        deflateSetHeader(&z, &head) != Z_OK) {
        abort(); /* only out of memory: the arguments are constants */
    }
    cap = deflateBound(&z, (uLong)len);
    out = xmalloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    /* deflateBound is enough for one Z_FINISH call to end the stream. */
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
        abort();
    }
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}
