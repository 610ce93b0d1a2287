/*
 * lua_crypto: known-answer vectors (FIPS 180-2 digests, RFC 4231 HMACs,
 * RFC 4648 base64, Kraken's documented request signature), binary round
 * trips, bad base64 as nil + message, and wrong argument types as Lua errors.
 * Everything runs as Lua in a plain state, as an operator would call it.
 */
#include "check.h"
#include "lua/lua_crypto.h"

#include <lauxlib.h>
#include <lualib.h>

#define CHECK_HAS(hay, needle)                                                                     \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (h_ && strstr(h_, (needle))) {                                                          \
            check_passed++;                                                                        \
        } else {                                                                                   \
            CHECK_FAIL_("%s contains \"%s\": \"%s\"", #hay, (needle), h_ ? h_ : "(null)");         \
        }                                                                                          \
    } while (0)

/*
 * Run `code` and return its first result as text (luaL_tolstring), or
 * "error: <message>". The text stays on the stack until the next eval.
 */
static const char *eval(lua_State *L, const char *code)
{
    lua_settop(L, 0);
    if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        return lua_pushfstring(L, "error: %s", lua_tostring(L, -1));
    }
    return luaL_tolstring(L, -1, NULL);
}

static void test_digests(lua_State *L)
{
    CHECK_STR_EQ(eval(L, "return crypto.sha256('')"),
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_STR_EQ(eval(L, "return crypto.sha256('abc')"),
                 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK_STR_EQ(eval(L, "return crypto.sha512('')"),
                 "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
                 "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e");
    CHECK_STR_EQ(eval(L, "return crypto.sha512('abc')"),
                 "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                 "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
    CHECK_STR_EQ(eval(L, "return #crypto.sha256_raw('abc')"), "32");
    CHECK_STR_EQ(eval(L, "return #crypto.sha512_raw('abc')"), "64");
    CHECK_STR_EQ(eval(L, "return crypto.hex(crypto.sha256_raw('abc')) == crypto.sha256('abc')"),
                 "true");
    CHECK_STR_EQ(eval(L, "return crypto.hex(crypto.sha512_raw('')) == crypto.sha512('')"), "true");
    CHECK_STR_EQ(eval(L, "return crypto.sha256('a\\0b') == crypto.sha256('a')"), "false");
}

static void test_hmacs(lua_State *L)
{
    /* RFC 4231 test case 2. */
    CHECK_STR_EQ(eval(L, "return crypto.hmac_sha256('Jefe', 'what do ya want for nothing?')"),
                 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK_STR_EQ(eval(L, "return crypto.hmac_sha512('Jefe', 'what do ya want for nothing?')"),
                 "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
                 "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737");
    /* RFC 4231 test case 1: a binary key. */
    CHECK_STR_EQ(eval(L, "return crypto.hmac_sha256(string.rep('\\x0b', 20), 'Hi There')"),
                 "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    CHECK_STR_EQ(eval(L, "return #crypto.hmac_sha256_raw('k', 'm')"), "32");
    CHECK_STR_EQ(eval(L, "return #crypto.hmac_sha512_raw('k', 'm')"), "64");
    CHECK_STR_EQ(eval(L, "return crypto.hex(crypto.hmac_sha512_raw('Jefe', 'x'))"
                         " == crypto.hmac_sha512('Jefe', 'x')"),
                 "true");
    CHECK_STR_EQ(eval(L, "return #crypto.hmac_sha256('', '')"), "64");
}

/* Kraken's documented example: base64(HMAC-SHA512(secret, path .. SHA256(nonce .. body))). */
static void test_kraken_signature(lua_State *L)
{
    CHECK_STR_EQ(
        eval(L, "local secret = 'kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5"
                "nE9qa99HAZtuZuj6F1huXg=='\n"
                "local nonce = '1616492376594'\n"
                "local body = 'nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500"
                "&type=buy&volume=1.25'\n"
                "local msg = '/0/private/AddOrder' .. crypto.sha256_raw(nonce .. body)\n"
                "return crypto.base64(crypto.hmac_sha512_raw(crypto.unbase64(secret), msg))"),
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==");
}

static void test_base64(lua_State *L)
{
    static const char *const rfc4648[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        lua_pushstring(L, rfc4648[i][0]);
        lua_setglobal(L, "plain");
        lua_pushstring(L, rfc4648[i][1]);
        lua_setglobal(L, "coded");
        CHECK_STR_EQ(eval(L, "return crypto.base64(plain)"), rfc4648[i][1]);
        CHECK_STR_EQ(eval(L, "return crypto.unbase64(coded)"), rfc4648[i][0]);
        CHECK_STR_EQ(eval(L, "return crypto.unbase64((coded:gsub('=', '')))"), rfc4648[i][0]);
    }
    CHECK_STR_EQ(eval(L, "return crypto.base64('\\0\\255\\254')"), "AP/+");
    CHECK_STR_EQ(eval(L, "return crypto.hex(crypto.unbase64('AP/+'))"), "00fffe");
    CHECK_STR_EQ(eval(L, "local all = {}\n"
                         "for i = 0, 255 do all[#all + 1] = string.char(i) end\n"
                         "all = table.concat(all)\n"
                         "for n = 0, #all do\n"
                         "  local s = all:sub(1, n)\n"
                         "  if crypto.unbase64(crypto.base64(s)) ~= s then return n end\n"
                         "end\n"
                         "return 'ok'"),
                 "ok");
}

static void test_bad_base64(lua_State *L)
{
    static const char *const bad[][2] = {
        {"Z", "truncated input"},
        {"Zm9vY", "truncated input"},
        {"Zg=", "bad padding"},
        {"=", "bad padding"},
        {"Zm9v!", "invalid character"},
        {"Zm 9v", "invalid character"},
        {"Zm9v\\n", "invalid character"},
        {"Z===", "invalid character"},
        {"Zg==Zg==", "invalid character"},
        {"Zm-_", "invalid character"},
    };
    char code[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(code, sizeof code,
                 "local v, err = crypto.unbase64('%s') return tostring(v) .. ' ' .. err",
                 bad[i][0]);
        CHECK_HAS(eval(L, code), "nil invalid base64: ");
        CHECK_HAS(eval(L, code), bad[i][1]);
    }
}

static void test_hex(lua_State *L)
{
    CHECK_STR_EQ(eval(L, "return crypto.hex('')"), "");
    CHECK_STR_EQ(eval(L, "return crypto.hex('\\0\\1\\127\\128\\255 Az')"), "00017f80ff20417a");
}

static void test_misuse(lua_State *L)
{
    static const char *const calls[] = {
        "crypto.sha256()",
        "crypto.sha256({})",
        "crypto.sha512_raw(nil)",
        "crypto.hmac_sha256('k')",
        "crypto.hmac_sha512({}, 'm')",
        "crypto.hmac_sha256_raw('k', true)",
        "crypto.base64()",
        "crypto.unbase64({})",
        "crypto.hex(print)",
    };
    char code[128];
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        snprintf(code, sizeof code, "return %s", calls[i]);
        CHECK_HAS(eval(L, code), "error: ");
        CHECK_HAS(eval(L, code), "bad argument #");
    }
    /* Numbers are strings to Lua's string functions, as with string.len. */
    CHECK_STR_EQ(eval(L, "return crypto.hex(12)"), "3132");
}

int main(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "crypto", luaopen_rx_crypto, 1);
    lua_pop(L, 1);
    test_digests(L);
    test_hmacs(L);
    test_kraken_signature(L);
    test_base64(L);
    test_bad_base64(L);
    test_hex(L);
    test_misuse(L);
    lua_close(L);
    return CHECK_DONE();
}
