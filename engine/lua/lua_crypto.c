/*
 * lua_crypto: SHA-2 digests, HMAC, base64 and hex for Lua.
 *
 * Digests and MACs are one-shot OpenSSL calls (EVP_Digest, HMAC) over whole
 * Lua strings; the result is at most EVP_MAX_MD_SIZE bytes on the C stack,
 * pushed either raw or as lowercase hex. base64 is written here rather than
 * with EVP_EncodeBlock/EVP_DecodeBlock: those take int lengths, and the
 * decoder silently skips whitespace and returns padding bytes as zeros, while
 * an operator decoding an exchange secret wants bad input reported.
 *
 * Errors follow the house rule: a wrong argument type raises a Lua error;
 * undecodable base64 or an OpenSSL failure returns nil and a message.
 */
#include "lua_crypto.h"

#include <lauxlib.h>
#include <limits.h>
#include <stdint.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char hex_digits[] = "0123456789abcdef";
static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---------------------------------------------------------------------------
 * Encoders shared by the digests and the Lua-facing functions
 * ------------------------------------------------------------------------- */

/* Push `n` bytes at `s` as a lowercase hex string. */
static void push_hex(lua_State *L, const unsigned char *s, size_t n)
{
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, 2 * n);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[s[i] >> 4];
        out[2 * i + 1] = hex_digits[s[i] & 15];
    }
    luaL_pushresultsize(&b, 2 * n);
}

/* Push a digest raw or as hex; returns the Lua result count. */
static int push_digest(lua_State *L, const unsigned char *md, unsigned int len, int raw)
{
    if (raw) {
        lua_pushlstring(L, (const char *)md, len);
    } else {
        push_hex(L, md, len);
    }
    return 1;
}

/* Return nil and "<what>: <OpenSSL reason>", draining OpenSSL's error queue. */
static int crypto_fail(lua_State *L, const char *what)
{
    char reason[256];
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    ERR_error_string_n(code, reason, sizeof reason);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, code ? reason : "OpenSSL failure");
    return 2;
}

/* ---------------------------------------------------------------------------
 * Digests and MACs
 * ------------------------------------------------------------------------- */

/* digest(s): the `md` digest of string argument 1. */
static int crypto_digest(lua_State *L, const EVP_MD *md, int raw)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(s, n, out, &len, md, NULL)) {
        return crypto_fail(L, EVP_MD_get0_name(md));
    }
    return push_digest(L, out, len, raw);
}

/* hmac(key, msg): the HMAC of argument 2 keyed with argument 1. */
static int crypto_hmac(lua_State *L, const EVP_MD *md, int raw)
{
    size_t key_len, n;
    const char *key = luaL_checklstring(L, 1, &key_len);
    const char *msg = luaL_checklstring(L, 2, &n);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    luaL_argcheck(L, key_len <= INT_MAX, 1, "key too long");
    if (!HMAC(md, key, (int)key_len, (const unsigned char *)msg, n, out, &len)) {
        return crypto_fail(L, "hmac");
    }
    return push_digest(L, out, len, raw);
}

static int crypto_sha256(lua_State *L)
{
    return crypto_digest(L, EVP_sha256(), 0);
}

static int crypto_sha256_raw(lua_State *L)
{
    return crypto_digest(L, EVP_sha256(), 1);
}

static int crypto_sha512(lua_State *L)
{
    return crypto_digest(L, EVP_sha512(), 0);
}

static int crypto_sha512_raw(lua_State *L)
{
    return crypto_digest(L, EVP_sha512(), 1);
}

static int crypto_hmac_sha256(lua_State *L)
{
    return crypto_hmac(L, EVP_sha256(), 0);
}

static int crypto_hmac_sha256_raw(lua_State *L)
{
    return crypto_hmac(L, EVP_sha256(), 1);
}

static int crypto_hmac_sha512(lua_State *L)
{
    return crypto_hmac(L, EVP_sha512(), 0);
}

static int crypto_hmac_sha512_raw(lua_State *L)
{
    return crypto_hmac(L, EVP_sha512(), 1);
}

/* ---------------------------------------------------------------------------
 * base64 (RFC 4648 standard alphabet) and hex
 * ------------------------------------------------------------------------- */

/* The 6-bit value of a base64 character, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/*
 * Check `n` bytes of base64 text. Padding is optional but, when present, must
 * complete the last quantum; no whitespace is allowed. Returns NULL and sets
 * *len to the length without padding, or returns the reason it is invalid.
 */
static const char *b64_validate(const unsigned char *s, size_t n, size_t *len)
{
    size_t m = n;
    while (m > 0 && n - m < 2 && s[m - 1] == '=') {
        m--;
    }
    for (size_t i = 0; i < m; i++) {
        if (b64_value(s[i]) < 0) {
            return "invalid character";
        }
    }
    if (m < n && n % 4 != 0) {
        return "bad padding";
    }
    if (m % 4 == 1) {
        return "truncated input";
    }
    *len = m;
    return NULL;
}

/* base64(s): standard alphabet, padded, no line breaks. */
static int crypto_base64(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4);
    for (size_t i = 0; i < n; i += 3, out += 4) {
        uint32_t v = (uint32_t)s[i] << 16;
        v |= i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0;
        v |= i + 2 < n ? s[i + 2] : 0;
        out[0] = b64_alphabet[v >> 18];
        out[1] = b64_alphabet[(v >> 12) & 63];
        out[2] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        out[3] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    luaL_pushresultsize(&b, (n + 2) / 3 * 4);
    return 1;
}

/* unbase64(s): the decoded bytes, or nil and "invalid base64: <reason>". */
static int crypto_unbase64(lua_State *L)
{
    size_t n, m, k = 0;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    const char *why = b64_validate(s, n, &m);
    if (why) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid base64: %s", why);
        return 2;
    }
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, m / 4 * 3 + 2);
    uint32_t acc = 0;
    for (size_t i = 0, bits = 0; i < m; i++) {
        acc = (acc << 6 | (uint32_t)b64_value(s[i])) & 0xffffff;
        if ((bits += 6) >= 8) {
            bits -= 8;
            out[k++] = (char)(acc >> bits);
        }
    }
    luaL_pushresultsize(&b, k);
    return 1;
}

/* hex(s): the bytes of s as lowercase hex. */
static int crypto_hex(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    push_hex(L, (const unsigned char *)s, n);
    return 1;
}

static const luaL_Reg crypto_funcs[] = {
    {"sha256", crypto_sha256},
    {"sha256_raw", crypto_sha256_raw},
    {"sha512", crypto_sha512},
    {"sha512_raw", crypto_sha512_raw},
    {"hmac_sha256", crypto_hmac_sha256},
    {"hmac_sha256_raw", crypto_hmac_sha256_raw},
    {"hmac_sha512", crypto_hmac_sha512},
    {"hmac_sha512_raw", crypto_hmac_sha512_raw},
    {"base64", crypto_base64},
    {"unbase64", crypto_unbase64},
    {"hex", crypto_hex},
    {NULL, NULL},
};

int luaopen_rx_crypto(lua_State *L)
{
    luaL_newlib(L, crypto_funcs);
    return 1;
}
