-- Crypto.com Exchange spot: the market-data WebSocket's ticker channel, with
-- REST polling for the instruments the stream does not deliver (operator API
-- spec 1, docs/operators.md).
--
-- API: Exchange API v1 for every price (REST
-- https://api.crypto.com/exchange/v1/public/get-tickers, WebSocket
-- wss://stream.crypto.com/exchange/v1/market); the instrument list from the
-- legacy API v2, https://api.crypto.com/v2/public/get-instruments.
--
-- Why the v2 list: it is the one real recording of Crypto.com's instruments
-- (60 spot pairs, November 2021), and it lists spot pairs only, by the very
-- names v1 gives them ("BTC_USDT", with base_currency/quote_currency). v1's
-- public/get-instruments mixes spot (inst_type CCY_PAIR) with perpetuals
-- and futures, and its recorded form is a documented example that lists one
-- perpetual (BTCUSD-PERP) and no spot pair at all: built on it, this
-- operator would have no market to serve. Should v2 be retired, v1's
-- CCY_PAIR entries (symbol, base_ccy, quote_ccy) are the replacement.
--
-- Spot only: a perpetual or future (BTCUSD-PERP, BTCUSD-210528m2) is not a
-- currency pair, and its price is not BTC/USD's. No such instrument is in
-- the markets, so a ticker for one (the recorded examples, REST and
-- WebSocket, are both BTCUSD-PERP) is emitted by its name alone and the
-- engine counts it as unmapped; it is never served under a spot pair.
--
-- stream: one subscribe per socket, after a 1 s wait (Crypto.com counts its
-- rate limit from the connect and advises the wait),
-- {"id":<socket>,"method":"subscribe","params":{"channels":["ticker.BTC_USDT",...]},"nonce":<ms>},
-- at most options.channels_per_conn channels per socket, for every market
-- or, with a pairs allow-list, the allowed ones. A ticker push is
-- {"id":-1,"method":"subscribe","result":{"channel":"ticker","data":[...]}}
-- with single-letter fields: b bid (bs size), k ask (ks size), a the LAST
-- TRADE price (not the ask), v 24 h base volume, t ms, i the instrument.
-- Values are strings and may be null (no bid, no trade yet): null is absent.
-- The subscribe confirmation ({"id":N,"method":"subscribe","code":0}, no
-- result) is not data; a non-zero code refuses the socket's channels, which
-- go to poll() until it reconnects. Heartbeats: the server sends
-- {"id":N,"method":"public/heartbeat"} every 30 s and closes a connection
-- that does not answer {"id":N,"method":"public/respond-heartbeat"} within
-- 5 s: answered at once in on_message, N copied as sent.
--
-- poll(): one public/get-tickers (every instrument; same fields, without
-- sizes; `t` is a string in the REST documentation) for what the stream
-- does not deliver: nothing while it delivers every instrument. Without an
-- allow-list every instrument it lists is emitted (non-spot ones to be
-- counted unmapped); with one, only the allowed ones. `code` is 0 on success,
-- a number on the WebSocket and a string ("0") in REST answers.

local rest = require "rest"
local market = require "market"
local options = require "options"
local stream = require "stream"
local dec = require("values").dec

local TIMEOUT_S = 15
local DEFAULT_CHANNELS_PER_CONN = 100
local SUBSCRIBE_DELAY_S = 1

-- The markets index (lib/market.lua), built by markets() (same Lua state,
-- rebuilt at every load).
local idx = nil

-- Stream coverage (lib/stream.lua): which socket subscribes each
-- instrument, whether its current connection carried a ticker for it, and
-- sockets whose subscription was refused.
local coverage = stream.coverage()

-- Integer ms from a number or a numeric string.
local function ms(v)
  local n = tonumber(v)
  return n and math.tointeger(n) or nil
end

-- GET and decode; a Crypto.com answer carries code 0 when it succeeded.
local function get_ok(x, path, what)
  local doc = rest.get_json(x, path, what, { timeout = TIMEOUT_S, detail = "message" })
  if type(doc) ~= "table" or type(doc.result) ~= "table" then
    error(what .. ": expected an object with a result", 0)
  end
  if tonumber(doc.code) ~= 0 then
    error(what .. ": code " .. tostring(doc.code):sub(1, 20) .. " "
      .. tostring(doc.message):sub(1, 200), 0)
  end
  return doc.result
end

local function load_markets(x)
  local result = get_ok(x, "/v2/public/get-instruments", "get-instruments")
  idx = market.index(x, result.instruments, function(i)
    return { symbol = i.instrument_name, base = i.base_currency, quote = i.quote_currency }
  end, "get-instruments")
  return idx.list
end

-- One ticker item, REST or WebSocket (the sizes come only with the latter).
local function ticker(d)
  return {
    symbol = d.i,
    bid = dec(d.b), bid_size = dec(d.bs), ask = dec(d.k), ask_size = dec(d.ks),
    last = dec(d.a), volume = dec(d.v), ts = ms(d.t),
  }
end

local function poll(x)
  if not idx then load_markets(x) end -- markets() normally ran at load
  -- No per-instrument requests (max 0): get-tickers answers every one.
  return coverage:poll(x, idx, { max = 0, all = function(keep)
    local result = get_ok(x, "/exchange/v1/public/get-tickers", "get-tickers")
    if type(result.data) ~= "table" then
      error("get-tickers: no data array", 0)
    end
    local list = {}
    for _, d in ipairs(result.data) do
      local sym = type(d) == "table" and d.i
      if type(sym) == "string" and keep(sym) then
        list[#list + 1] = ticker(d)
      end
    end
    x.emit_many(list)
  end })
end

-- ---------------------------------------------------------------------------
-- Stream
-- ---------------------------------------------------------------------------

local function connections(x, markets)
  if not idx then load_markets(x) end
  local url = stream.url(x, "/exchange/v1/market")
  local symbols = market.targets(x, idx)
  local per = options.integer(x, "channels_per_conn", DEFAULT_CHANNELS_PER_CONN, 1)
  return coverage:connections(x, url, symbols, per, "ticker channels")
end

-- Runs after every (re)connect: wait, then subscribe again; what the previous
-- connection delivered no longer counts.
local function on_open(x, ws, conn)
  coverage:opened(conn.id)
  x.sleep(SUBSCRIBE_DELAY_S)
  local channels = {}
  for i, sym in ipairs(conn.symbols) do channels[i] = "ticker." .. sym end
  stream.send_json(x, ws, {
    id = conn.id, method = "subscribe", params = { channels = channels }, nonce = x.now(),
  }, "subscribe")
end

-- Never raises and never waits.
local function on_message(x, ws, msg, conn)
  local doc = stream.decode(x, msg)
  if not doc then return end
  if doc.method == "public/heartbeat" then
    -- Echo the id as Crypto.com wrote it: a float round trip could alter it.
    local id = msg:match('"id"%s*:%s*(%-?%d+)')
    ws:send(id and ('{"id":' .. id .. ',"method":"public/respond-heartbeat"}')
      or x.json.encode({ id = doc.id, method = "public/respond-heartbeat" }))
    return
  end
  local code = tonumber(doc.code)
  if code and code ~= 0 then
    coverage:refuse_all(conn.id)
    x.log.warn("stream: " .. tostring(doc.method):sub(1, 40) .. " refused: code "
      .. tostring(doc.code):sub(1, 20) .. " " .. tostring(doc.message):sub(1, 200))
    return
  end
  local r = doc.result
  -- The subscribe confirmation has no result; book, trade and other
  -- channels are not tickers.
  if type(r) ~= "table" or r.channel ~= "ticker" or type(r.data) ~= "table" then return end
  for _, d in ipairs(r.data) do
    if type(d) == "table" and type(d.i) == "string" then
      x.emit(ticker(d))
      coverage:delivered(d.i, conn.id)
    end
  end
end

return {
  name = "cryptocom",
  spec = 1,
  rest = "https://api.crypto.com",
  ws = "wss://stream.crypto.com",
  poll_every = 10,
  -- One request per poll (none while the stream delivers everything): 6 a
  -- minute. Crypto.com's public market-data limit is 100 requests a second
  -- per method per IP (Exchange v1 docs, "Rate Limits").
  budget = { requests = 20, per = 60 },
  max_pairs = 5000,
  -- The server's heartbeat arrives every 30 s even when no ticker moves.
  idle_timeout = 45,
  options = {
    -- Ticker channels per socket (one subscribe message each).
    channels_per_conn = DEFAULT_CHANNELS_PER_CONN,
    -- false: poll() never asks REST for an instrument a socket subscribes,
    -- even while the stream is down or silent for it.
    poll_fallback = true,
  },
  markets = load_markets,
  poll = poll,
  stream = {
    connections = connections,
    on_open = on_open,
    on_message = on_message,
    on_close = coverage:close_handler(),
    -- No on_ping: Crypto.com's heartbeat is answered in on_message, and
    -- WebSocket ping frames keep the socket itself alive.
    ping_every = 30,
  },
}
