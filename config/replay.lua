-- Rate Explorer on recorded data: no network beyond loopback.
--
-- Every operator talks to the fake exchange (tests/fakex), which serves the
-- recordings in tests/fixtures/<exchange>/, addresses each exchange by a
-- path prefix and replays every WebSocket capture in a loop. replay_url
-- points every operator at it (<url>/<name>, ws:// for streams), so an
-- operator added to operators/ is covered without an edit here.
-- scripts/run --replay starts it and sets FAKEX_URL; the default matches
-- its default address. Same sandbox and rules as config/explorer.lua;
-- every key: docs/operations.md, "Configuration".

return {
    listen = env("LISTEN", "127.0.0.1:8080"),
    port_file = env("PORT_FILE", nil),

    -- No token here on purpose: a fixed development token would end up used
    -- elsewhere. API_AUTHENTICATION_TOKEN sets one; without it the service
    -- generates a token into token_file (explorer.token beside this file) and
    -- logs that path.
    tokens = {},

    replay_url = env("FAKEX_URL", "http://127.0.0.1:8090"),

    -- No allow-lists where a stream carries the data: every market is
    -- subscribed, and every pair a capture holds streams in a loop. The
    -- recordings hold REST tickers for a few pairs only, and an operator
    -- that polls what its stream has not delivered would ask REST for
    -- hundreds of markets the captures never mention: 404s from the fake
    -- exchange, and the operator shown `degraded`. So the stream operators
    -- whose REST fallback would ask for unrecorded tickers are told not to
    -- ask for what a socket subscribes (poll_fallback = false); the REST
    -- they still use (markets, and binance's, bitfinex's, gateio's, htx's
    -- and kucoin's all-markets tickers) was recorded.
    -- tests/integration/test_catalogue.py runs this file and fails if any
    -- operator turns degraded or in error.
    operators = {
        kraken = { options = { poll_fallback = false } },
        coinbase = { options = { poll_fallback = false } },
        okx = { options = { poll_fallback = false } },
        bybit = { options = { poll_fallback = false } },
        -- Gemini polls a pubticker per symbol, also for the 24 h volume of
        -- streamed ones; one was recorded (BTCUSD).
        gemini = { options = { poll_fallback = false, poll_volume = false } },
        -- Bitstamp has no stream, and its all-pairs ticker was not
        -- recorded: the one ticker that was is all it can show.
        bitstamp = { pairs = { "BTC_USDT" } },
    },

    store = "memory",
    log_level = env("LOG_LEVEL", "info"),
}
