/*
 * lua_zlib: round trips through zlib's own compressor in all three formats,
 * real HTX gzip frames (tests/fixtures/htx/ws_raw_gzip_frames.b64, the first
 * two frames of the shared HTX capture), truncated and corrupt input as
 * nil + message, the output cap against a 100 MB zip bomb (checked for time
 * and for the memory the Lua state actually allocated), a memory-capped state
 * whose refusal is a Lua error, and wrong arguments as Lua errors.
 */
#include "check.h"
#include "lua/lua_crypto.h"
#include "lua/lua_zlib.h"
#include "core/xalloc.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <time.h>
#include <zlib.h>

#define CHECK_HAS(hay, needle)                                                                     \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (h_ && strstr(h_, (needle))) {                                                          \
            check_passed++;                                                                        \
        } else {                                                                                   \
            CHECK_FAIL_("%s contains \"%s\": \"%s\"", #hay, (needle), h_ ? h_ : "(null)");         \
        }                                                                                          \
    } while (0)

#define MIB (1024 * 1024)
#define RAW_BITS (-15)
#define ZLIB_BITS 15
#define GZIP_BITS (16 + 15)

/* A Lua allocator that counts live bytes, remembers the peak and may refuse. */
struct budget {
    size_t used, peak, limit; /* limit 0: unlimited */
};

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct budget *m = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        m->used -= old;
        return NULL;
    }
    if (m->limit && m->used - old + nsize > m->limit) {
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) {
        m->used = m->used - old + nsize;
        m->peak = m->used > m->peak ? m->used : m->peak;
    }
    return p;
}

static lua_State *new_state(struct budget *m)
{
    lua_State *L = lua_newstate(budget_alloc, m);
    luaL_openlibs(L);
    luaL_requiref(L, "zlib", luaopen_rx_zlib, 1);
    luaL_requiref(L, "crypto", luaopen_rx_crypto, 1);
    lua_pop(L, 2);
    return L;
}

/* Run `code`; return its first result as text or "error: <message>". */
static const char *eval(lua_State *L, const char *code)
{
    lua_settop(L, 0);
    if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        return lua_pushfstring(L, "error: %s", lua_tostring(L, -1));
    }
    return luaL_tolstring(L, -1, NULL);
}

static void set_global(lua_State *L, const char *name, const void *s, size_t n)
{
    lua_pushlstring(L, s, n);
    lua_setglobal(L, name);
}

/*
 * Deflate `n` bytes at `src`, `repeat` times over, with zlib's windowBits
 * `bits` (raw, zlib or gzip). Streams, so 100 MB of input never exists at
 * once. Sets the global `name` to the result.
 */
static void set_deflated(lua_State *L, const char *name, int bits, const void *src, size_t n,
                         size_t repeat)
{
    z_stream z = {0};
    size_t cap = 1 << 16, used = 0;
    unsigned char *out = xmalloc(cap);
    int ok = deflateInit2(&z, 9, Z_DEFLATED, bits, 9, Z_DEFAULT_STRATEGY) == Z_OK;
    for (size_t i = 0; ok && i <= repeat; i++) {
        int flush = i == repeat ? Z_FINISH : Z_NO_FLUSH, rc;
        z.next_in = (Bytef *)src;
        z.avail_in = i == repeat ? 0 : (uInt)n;
        do {
            if (cap - used < 4096) {
                out = xrealloc(out, cap *= 2);
            }
            z.next_out = out + used;
            z.avail_out = (uInt)(cap - used);
            rc = deflate(&z, flush);
            used = cap - z.avail_out;
        } while (flush == Z_FINISH ? rc == Z_OK : z.avail_in > 0);
        ok = rc == Z_OK || rc == Z_STREAM_END;
    }
    CHECK(ok);
    deflateEnd(&z);
    set_global(L, name, out, used);
    free(out);
}

/* 300 kB, half text and half noise, so output spans many inflate chunks. */
static void set_plain(lua_State *L)
{
    size_t n = 300 * 1000;
    unsigned char *p = xmalloc(n);
    for (size_t i = 0; i < n; i++) {
        p[i] = i % 1000 < 500 ? "rate explorer "[i % 14] : (unsigned char)((i * 2654435761u) >> 24);
    }
    set_global(L, "plain", p, n);
    set_deflated(L, "zraw", RAW_BITS, p, n, 1);
    set_deflated(L, "zzlib", ZLIB_BITS, p, n, 1);
    set_deflated(L, "zgzip", GZIP_BITS, p, n, 1);
    free(p);
}

static void test_round_trips(lua_State *L)
{
    set_plain(L);
    CHECK_STR_EQ(eval(L, "return #plain"), "300000");
    CHECK_STR_EQ(eval(L, "return #zraw < #plain and zlib.inflate(zraw) == plain"), "true");
    CHECK_STR_EQ(eval(L, "return zlib.inflate(zzlib) == plain"), "true");
    CHECK_STR_EQ(eval(L, "return zlib.gunzip(zgzip) == plain"), "true");
    CHECK_STR_EQ(eval(L, "return zlib.inflate(zraw, #plain) == plain"), "true");
    CHECK_STR_EQ(eval(L, "return zlib.gunzip(zgzip .. 'trailing bytes') == plain"), "true");

    unsigned char buf[128];
    uLongf len = sizeof buf;
    const char *hello = "hello hello hello, compress2";
    CHECK_INT_EQ(compress2(buf, &len, (const Bytef *)hello, strlen(hello), 9), Z_OK);
    set_global(L, "z", buf, len);
    CHECK_STR_EQ(eval(L, "return zlib.inflate(z)"), hello);
    len = sizeof buf;
    CHECK_INT_EQ(compress2(buf, &len, (const Bytef *)"", 0, 9), Z_OK);
    set_global(L, "z", buf, len);
    CHECK_STR_EQ(eval(L, "local s = zlib.inflate(z) return type(s) .. #s"), "string0");
    set_deflated(L, "z", GZIP_BITS, "", 0, 0);
    CHECK_STR_EQ(eval(L, "local s = zlib.gunzip(z) return type(s) .. #s"), "string0");
}

static void test_htx_frames(lua_State *L)
{
    const char *dir = getenv("RX_SOURCE_DIR");
    lua_pushfstring(L, "%s/tests/fixtures/htx/ws_raw_gzip_frames.b64", dir ? dir : ".");
    lua_setglobal(L, "path");
    CHECK_STR_EQ(eval(L, "frames = {} for line in io.lines(path) do frames[#frames + 1] = line end"
                         " return #frames >= 2"),
                 "true");
    CHECK_STR_EQ(eval(L, "return zlib.gunzip(crypto.unbase64(frames[1]))"),
                 "{\"id\":1,\"status\":\"ok\",\"subbed\":\"market.trioeth.depth.step0\","
                 "\"ts\":1618678070653}");
    CHECK_STR_EQ(eval(L, "return zlib.gunzip(crypto.unbase64(frames[2])):sub(1, 35)"),
                 "{\"ch\":\"market.trioeth.depth.step0\",");
    CHECK_STR_EQ(eval(L, "local s = zlib.gunzip(crypto.unbase64(frames[2]))"
                         " return s:sub(1, 1) .. s:sub(-1) .. tostring(#s > 1000)"),
                 "{}true");
    CHECK_STR_EQ(eval(L, "local v, err = zlib.inflate(crypto.unbase64(frames[1]))"
                         " return tostring(v) .. ' ' .. type(err)"),
                 "nil string");
}

static void test_bad_input(lua_State *L)
{
    static const char *const cases[][2] = {
        {"zlib.inflate('')", "compressed data is truncated"},
        {"zlib.gunzip('')", "compressed data is truncated"},
        {"zlib.inflate(zzlib:sub(1, #zzlib // 2))", "compressed data is truncated"},
        {"zlib.inflate(zraw:sub(1, -2))", "compressed data is truncated"},
        {"zlib.gunzip(zgzip:sub(1, 10))", "compressed data is truncated"},
        {"zlib.gunzip(zgzip:sub(1, -2))", "compressed data is truncated"},
        {"zlib.gunzip(zzlib)", "incorrect header check"},
        {"zlib.gunzip('not gzip at all')", "incorrect header check"},
        {"zlib.inflate(zzlib:sub(1, -2) .. string.char((zzlib:byte(-1) + 1) % 256))",
         "incorrect data check"},
        {"zlib.gunzip(zgzip:sub(1, -9) .. string.char((zgzip:byte(-8) + 1) % 256)"
         " .. zgzip:sub(-7))",
         "incorrect data check"},
        {"zlib.gunzip(zgzip:sub(1, -2) .. string.char((zgzip:byte(-1) + 1) % 256))",
         "incorrect length check"},
        {"zlib.inflate('\\255\\255\\255\\255')", "invalid"},
    };
    char code[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(code, sizeof code, "local v, err = %s return tostring(v) .. ': ' .. err",
                 cases[i][0]);
        CHECK_HAS(eval(L, code), "nil: ");
        CHECK_HAS(eval(L, code), cases[i][1]);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 100 MB of zeros stops at the cap, quickly, allocating about the cap only. */
static void test_bomb(lua_State *L, struct budget *m)
{
    static const unsigned char zeros[64 * 1024];
    set_deflated(L, "bomb", GZIP_BITS, zeros, sizeof zeros, 1600);
    set_deflated(L, "zbomb", ZLIB_BITS, zeros, sizeof zeros, 1600);
    CHECK_STR_EQ(eval(L, "return #bomb < 200 * 1024"), "true");
    eval(L, "collectgarbage()");
    size_t base = m->used;
    m->peak = base;
    double t0 = now_s();
    CHECK_STR_EQ(eval(L, "local v, err = zlib.gunzip(bomb) return tostring(v) .. ' ' .. err"),
                 "nil inflated size exceeds 8388608 bytes");
    CHECK(now_s() - t0 < 10.0);
    CHECK(m->peak - base < 4 * 8 * MIB);
    eval(L, "collectgarbage()");
    m->peak = base = m->used;
    CHECK_STR_EQ(
        eval(L, "local v, err = zlib.inflate(zbomb, 1000) return tostring(v) .. ' ' .. err"),
        "nil inflated size exceeds 1000 bytes");
    CHECK(m->peak - base < 256 * 1024);
    CHECK_STR_EQ(eval(L, "local v, err = zlib.inflate(zbomb, 64 * 1024 * 1024)"
                         " return tostring(v) .. ' ' .. err"),
                 "nil inflated size exceeds 67108864 bytes");
    CHECK_STR_EQ(eval(L, "local v, err = zlib.gunzip(bomb:sub(1, 4096), 64 * 1024 * 1024)"
                         " return tostring(v) .. ' ' .. err"),
                 "nil compressed data is truncated");
}

/* The output cap is exact: cap bytes pass, cap - 1 do not. */
static void test_cap_boundary(lua_State *L)
{
    CHECK_STR_EQ(eval(L, "return zlib.gunzip(zgzip, #plain) == plain"), "true");
    CHECK_STR_EQ(eval(L, "local v, err = zlib.gunzip(zgzip, #plain - 1) return err"),
                 "inflated size exceeds 299999 bytes");
    CHECK_STR_EQ(eval(L, "return zlib.inflate(zzlib, 64 * 1024 * 1024) == plain"), "true");
}

/* An operator's memory cap refusing the output buffer is a Lua error. */
static void test_memory_cap(void)
{
    struct budget m = {0};
    lua_State *L = new_state(&m);
    static const unsigned char zeros[64 * 1024];
    set_deflated(L, "bomb", GZIP_BITS, zeros, sizeof zeros, 160);
    m.limit = m.used + 2 * MIB;
    CHECK_HAS(eval(L, "return zlib.gunzip(bomb)"), "error: not enough memory");
    CHECK_STR_EQ(eval(L, "local v, err = zlib.gunzip(bomb, 256 * 1024) return err"),
                 "inflated size exceeds 262144 bytes");
    m.limit = 0;
    CHECK_STR_EQ(eval(L, "return #zlib.gunzip(bomb, 16 * 1024 * 1024)"), "10485760");
    lua_close(L);
    CHECK_INT_EQ(m.used, 0);
}

static void test_misuse(lua_State *L)
{
    static const char *const calls[] = {
        "zlib.inflate()",
        "zlib.inflate({})",
        "zlib.gunzip(nil)",
        "zlib.gunzip(true)",
        "zlib.inflate(zraw, 'x')",
        "zlib.inflate(zraw, 1.5)",
        "zlib.gunzip(zgzip, 0)",
        "zlib.gunzip(zgzip, -1)",
        "zlib.gunzip(zgzip, 64 * 1024 * 1024 + 1)",
        "zlib.inflate(zraw, {})",
    };
    char code[128];
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        snprintf(code, sizeof code, "return %s", calls[i]);
        CHECK_HAS(eval(L, code), "error: ");
        CHECK_HAS(eval(L, code), "bad argument #");
    }
    CHECK_HAS(eval(L, "return zlib.gunzip(zgzip, 0)"), "max_out must be 1 .. 67108864");
    CHECK_STR_EQ(eval(L, "return zlib.inflate(zraw, nil) == plain"), "true");
}

int main(void)
{
    struct budget m = {0};
    lua_State *L = new_state(&m);
    test_round_trips(L);
    test_htx_frames(L);
    test_bad_input(L);
    test_bomb(L, &m);
    test_cap_boundary(L);
    test_misuse(L);
    lua_close(L);
    CHECK_INT_EQ(m.used, 0);
    test_memory_cap();
    return CHECK_DONE();
}
