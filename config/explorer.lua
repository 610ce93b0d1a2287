-- Rate Explorer: the default config, against the real exchanges.
--
-- This file is Lua, run in an empty sandbox: it can read the environment with
-- env(name, default) and use tostring, tonumber, type, pairs, ipairs, next,
-- select, error, assert, string.format/lower/upper/sub and math.floor/min/max,
-- nothing else. It returns one table. A key left out takes its default; an
-- unknown key is an error. Every key and default: docs/operations.md,
-- "Configuration". Check a config without starting: explorer --check-config.
--
-- Relative paths resolve against the directory the service is started in
-- (scripts/run starts it from the repository root).
--
-- The environment overrides the file: PORT (the port in `listen`),
-- API_AUTHENTICATION_TOKEN (comma list, replaces `tokens`), REDIS_URL
-- (replaces `store`); EXPLORER_CONFIG picks another config file.

return {
    -- One port for REST and WebSocket. Port 0 picks a free one and writes it to
    -- port_file.
    listen = env("LISTEN", "0.0.0.0:8080"),
    port_file = env("PORT_FILE", nil),

    -- Clients send "Authorization: Bearer <token>". Tokens come from
    -- API_AUTHENTICATION_TOKEN; with none at all the service generates one into
    -- token_file (default: explorer.token beside this file) and logs the path.
    auth = true,
    tokens = {},
    -- /v1/admin/* (reload). { nil } is an empty list when the variable is unset.
    admin_tokens = { env("EXPLORER_ADMIN_TOKEN", nil) },

    -- Browsers on other origins (CORS); empty: none.
    allowed_origins = {},

    -- Where the exchanges are: one .lua file per exchange.
    operators_dir = "operators",

    -- Per-exchange settings. rest, ws, poll_every and budget are left to the
    -- operator files' own defaults; set them here to override (a mirror, a
    -- slower poll, a pairs allow-list, options = {...} for the operator).
    operators = {
        binance = { enabled = true },
        kraken = { enabled = true },
        coinbase = { enabled = true },
    },

    -- "memory", or Redis to keep data across restarts and share it between
    -- nodes (REDIS_URL overrides): "redis://host:6379/0".
    store = "memory",
    -- all: scrape and serve. With Redis, api nodes serve and scraper nodes
    -- scrape, each exchange scraped by the one node holding its lease.
    role = env("ROLE", "all"),

    -- A ticker older than this is served with "stale": true and left out of
    -- aggregates; a mid this many percent off the others' median is an outlier.
    stale_after_ms = 60000,
    outlier_pct = 5,

    log_level = env("LOG_LEVEL", "info"),
    log_format = env("LOG_FORMAT", "text"),

    -- Outbound proxy for both HTTP and WebSocket connections, if any.
    proxy = env("EXPLORER_PROXY", nil),
}
