-- Rate Explorer on recorded data: no network beyond loopback.
--
-- Every operator talks to the fake exchange (tests/fakex), which serves the
-- recordings in tests/fixtures/<exchange>/ and addresses each exchange by a
-- path prefix. scripts/run --replay starts it and sets FAKEX_URL; the
-- defaults below match its default address. Same sandbox and rules as
-- config/explorer.lua; every key: docs/operations.md, "Configuration".

local fakex = env("FAKEX_URL", "http://127.0.0.1:8090")
-- http://... → ws://..., https://... → wss://...
local fakex_ws = env("FAKEX_WS_URL", "ws" .. string.sub(fakex, 5))

return {
    listen = env("LISTEN", "127.0.0.1:8080"),
    port_file = env("PORT_FILE", nil),

    -- No token here on purpose: a fixed development token would end up used
    -- elsewhere. API_AUTHENTICATION_TOKEN sets one; without it the service
    -- generates a token into token_file (explorer.token beside this file) and
    -- logs that path.
    tokens = {},

    -- The pairs the recordings hold; a short allow-list also makes the Binance
    -- and Kraken operators use their per-symbol REST bodies (BTCUSDT, XBTUSDT).
    operators = {
        binance = {
            rest = fakex .. "/binance",
            ws = fakex_ws .. "/binance",
            pairs = { "BTC_USDT" },
        },
        kraken = {
            rest = fakex .. "/kraken",
            ws = fakex_ws .. "/kraken",
            pairs = { "BTC_USDT" },
        },
        coinbase = {
            rest = fakex .. "/coinbase",
            ws = fakex_ws .. "/coinbase",
            pairs = { "BTC_USDT" },
        },
    },

    store = "memory",
    log_level = env("LOG_LEVEL", "info"),
}
