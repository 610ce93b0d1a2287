/*
 * lua_crypto: the `x.crypto` Lua module, hashing and encodings for operators.
 *
 * Exchanges that need signed requests (HMAC-SHA256 for most, HMAC-SHA512 of
 * a SHA-256 for Kraken) build them from these functions; the public market
 * data the explorer reads rarely needs them, but the operator API promises
 * them. Digests come back as lowercase hex by default and as raw bytes from
 * the `_raw` variants. Every function is pure: no state, no allocation that
 * outlives the call outside Lua's own strings.
 *
 * Called only on the engine thread, from whichever lua_State opened it.
 */
#ifndef RX_LUA_CRYPTO_H
#define RX_LUA_CRYPTO_H

#include <lua.h>

/*
 * Push a new table: sha256, sha256_raw, sha512, sha512_raw, hmac_sha256,
 * hmac_sha256_raw, hmac_sha512, hmac_sha512_raw, base64, unbase64, hex.
 * Use with luaL_requiref.
 */
int luaopen_rx_crypto(lua_State *L);

#endif
