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

    -- No allow-lists: every pair the recordings hold. The recordings hold
    -- REST tickers for only a few pairs; operators whose stream covers the
    -- rest are told not to ask REST for the pairs their stream subscribes
    -- (asking would only earn 404s from the fake exchange).
    operators = {
        kraken = { options = { poll_fallback = false } },
        coinbase = { options = { poll_fallback = false } },
    },

    store = "memory",
    log_level = env("LOG_LEVEL", "info"),
}
