/*
 * lua_zlib: bounded inflate of zlib, raw deflate and gzip data for Lua.
 *
 * Each call inflates one whole Lua string. Output is written straight into a
 * luaL_Buffer, at most ZS_CHUNK bytes per inflate() call and never more than
 * cap + 1 bytes in all: the one byte past the cap is how a stream that would
 * grow beyond it is told apart from one that ends exactly there. So a zip
 * bomb stops after producing cap + 1 bytes, whatever it claims.
 *
 * The z_stream sits in a userdata marked to-be-closed, whose __close (and
 * __gc, as a backstop) calls inflateEnd. Any exit, a normal return, an early
 * `nil, err` or a Lua error raised while growing the buffer, frees zlib's
 * window at once.
 *
 * Errors: bad argument types or an out-of-range cap raise a Lua error;
 * corrupt, truncated or oversized data returns nil and a message. Bytes after
 * the end of the (first) compressed stream are ignored.
 */
#include "lua_zlib.h"

#include <lauxlib.h>
#include <limits.h>

#include <zlib.h>

#define ZS_META "rx.zlib.stream"
#define ZS_CHUNK (64 * 1024)
#define ZS_DEFAULT_CAP (8 * 1024 * 1024)
#define ZS_MAX_CAP (64 * 1024 * 1024)
#define ZS_TOO_BIG 100 /* not a zlib return code */

/* zlib's windowBits: 15-bit window with a zlib header, none (raw), or gzip. */
enum zs_format { ZS_ZLIB = 15, ZS_RAW = -15, ZS_GZIP = 16 + 15 };

struct zstream {
    z_stream z;
    int live; /* inflateInit2 succeeded and inflateEnd is still owed */
};

/* __close and __gc: release zlib's state once. */
static int zs_close(lua_State *L)
{
    struct zstream *s = lua_touserdata(L, 1);
    if (s && s->live) {
        inflateEnd(&s->z);
        s->live = 0;
    }
    return 0;
}

/* Push a to-be-closed stream over `n` bytes at `in`; zlib is not started yet. */
static struct zstream *zs_push(lua_State *L, const char *in, size_t n)
{
    struct zstream *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->live = 0;
    s->z = (z_stream){.next_in = (Bytef *)in, .avail_in = n > UINT_MAX ? UINT_MAX : (uInt)n};
    luaL_setmetatable(L, ZS_META);
    lua_toclose(L, -1);
    return s;
}

/* True if `in` starts with a valid two-byte zlib header (RFC 1950). */
static int zs_has_zlib_header(const unsigned char *in, size_t n)
{
    return n >= 2 && (in[0] & 0x0f) == Z_DEFLATED && (in[0] >> 4) <= 7 &&
           ((in[0] << 8) | in[1]) % 31 == 0;
}

/* The optional cap argument at `arg`: 1 .. ZS_MAX_CAP, else a Lua error. */
static size_t zs_check_cap(lua_State *L, int arg)
{
    lua_Integer cap = luaL_optinteger(L, arg, ZS_DEFAULT_CAP);
    luaL_argcheck(L, cap > 0 && cap <= ZS_MAX_CAP, arg, "max_out must be 1 .. 67108864");
    return (size_t)cap;
}

/* Refill avail_in from the rest of the input (inputs beyond 4 GiB). */
static void zs_feed(struct zstream *s, const char *in, size_t n)
{
    size_t left = n - (size_t)((const char *)s->z.next_in - in);
    if (s->z.avail_in == 0 && left > 0) {
        s->z.avail_in = left > UINT_MAX ? UINT_MAX : (uInt)left;
    }
}

/*
 * One inflate() call into at most ZS_CHUNK bytes of `b`, never letting the
 * total pass cap + 1. Adds the output to *total; returns zlib's code.
 */
static int zs_step(struct zstream *s, luaL_Buffer *b, size_t cap, size_t *total)
{
    size_t room = cap + 1 - *total;
    uInt want = room < ZS_CHUNK ? (uInt)room : ZS_CHUNK;
    s->z.next_out = (Bytef *)luaL_prepbuffsize(b, want);
    s->z.avail_out = want;
    int rc = inflate(&s->z, Z_NO_FLUSH);
    luaL_addsize(b, want - s->z.avail_out);
    *total += want - s->z.avail_out;
    return rc;
}

/*
 * Inflate until the stream ends, fails or passes the cap. Returns
 * Z_STREAM_END, ZS_TOO_BIG, or the failing zlib code (Z_BUF_ERROR: the
 * input ran out first).
 */
static int zs_run(struct zstream *s, luaL_Buffer *b, const char *in, size_t n, size_t cap)
{
    size_t total = 0;
    int rc;
    do {
        zs_feed(s, in, n);
        rc = zs_step(s, b, cap, &total);
    } while (rc == Z_OK && total <= cap);
    return total > cap ? ZS_TOO_BIG : rc;
}

/* Return nil and the message for a failure code from zs_run or inflateInit2. */
static int zs_fail(lua_State *L, struct zstream *s, int rc, size_t cap)
{
    lua_pushnil(L);
    if (rc == ZS_TOO_BIG) {
        lua_pushfstring(L, "inflated size exceeds %I bytes", (lua_Integer)cap);
    } else if (rc == Z_BUF_ERROR) {
        lua_pushliteral(L, "compressed data is truncated");
    } else {
        lua_pushstring(L, s->z.msg ? s->z.msg : zError(rc));
    }
    return 2;
}

/*
 * Inflate all of `in` into a new Lua string of at most `cap` bytes. Pushes
 * the string (1 result) or nil and a message (2 results).
 */
static int zs_inflate(lua_State *L, const char *in, size_t n, enum zs_format fmt, size_t cap)
{
    struct zstream *s = zs_push(L, in, n);
    int rc = inflateInit2(&s->z, (int)fmt);
    s->live = rc == Z_OK;
    if (rc != Z_OK) {
        return zs_fail(L, s, rc, cap);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    rc = zs_run(s, &b, in, n, cap);
    if (rc != Z_STREAM_END) {
        return zs_fail(L, s, rc, cap);
    }
    luaL_pushresult(&b);
    return 1;
}

/* inflate(bytes [, max_out]): zlib-wrapped if it has a zlib header, else raw. */
static int zlib_inflate(lua_State *L)
{
    size_t n;
    const char *in = luaL_checklstring(L, 1, &n);
    size_t cap = zs_check_cap(L, 2);
    lua_settop(L, 2);
    enum zs_format fmt = zs_has_zlib_header((const unsigned char *)in, n) ? ZS_ZLIB : ZS_RAW;
    return zs_inflate(L, in, n, fmt, cap);
}

/* gunzip(bytes [, max_out]): one gzip member. */
static int zlib_gunzip(lua_State *L)
{
    size_t n;
    const char *in = luaL_checklstring(L, 1, &n);
    size_t cap = zs_check_cap(L, 2);
    lua_settop(L, 2);
    return zs_inflate(L, in, n, ZS_GZIP, cap);
}

static const luaL_Reg zs_meta[] = {
    {"__close", zs_close},
    {"__gc", zs_close},
    {NULL, NULL},
};

static const luaL_Reg zlib_funcs[] = {
    {"inflate", zlib_inflate},
    {"gunzip", zlib_gunzip},
    {NULL, NULL},
};

int luaopen_rx_zlib(lua_State *L)
{
    if (luaL_newmetatable(L, ZS_META)) {
        luaL_setfuncs(L, zs_meta, 0);
    }
    lua_pop(L, 1);
    luaL_newlib(L, zlib_funcs);
    return 1;
}
