-- Bitfinex: the public `ticker` channel of WebSocket API v2, with REST API v2
-- polling for the pairs the stream does not deliver (operator API spec 1,
-- docs/operators.md). Both speak Bitfinex API v2: REST /v2/..., WS /ws/2.
--
-- markets(): GET /v2/conf/pub:list:pair:exchange, a list inside a list,
-- [["BTCUSD","LINK:USD",...]]. A pair names two currency codes: two 3-letter
-- codes are written together ("BTCUSD"), and when either is longer a colon
-- separates them ("LINK:USD"). That is Bitfinex's documented rule, so the
-- split is the exchange's own, not a guess; a name that fits neither form is
-- left out. The trading symbol is "t" .. pair ("tBTCUSD", "tLINK:USD"): what
-- every request, subscription and tickers row names, so it is our `symbol`.
--
-- Currency codes are Bitfinex's own; `aliases` maps the known ones to the
-- common codes (UST = USDT, UDC = USDC, EUT = EURT, IOT = IOTA, MNA = MANA,
-- SNG = SNGLS, DSH = DASH). Bitfinex's full map is
-- /v2/conf/pub:map:currency:sym, not read here (it is not recorded, and a
-- code it misses is served under Bitfinex's name, never guessed).
-- DOG is not DOGE and is deliberately not aliased: Bitfinex lists a unit of
-- one million DOGE as DOG (tDOGUSD was bid at 278,200 USD in April 2021,
-- 0.28 USD a DOGE), so DOGE_USD from it would be a million times too high.
-- It stays a distinct code: DOG_USD.
-- Test pairs (a code starting with TEST, e.g. "TESTBTC:TESTUSD", Bitfinex's
-- paper-trading markets, listed and streamed like real ones) must never be
-- served: they are left out of the markets, never subscribed, and dropped
-- from tickers answers (not even emitted as unmapped).
--
-- stream (wss://api-pub.bitfinex.com/ws/2): Bitfinex allows 25 channel
-- subscriptions per connection and 20 connections a minute per IP, so at
-- most options.symbols_per_conn (<= 25) symbols per socket (about 300 pairs
-- make 12 sockets, opened at once: under the 20), each subscribed with
-- {"event":"subscribe","channel":"ticker","symbol":"tBTCUSD"}. The ack
-- {"event":"subscribed","channel":"ticker","chanId":N,"symbol":"tBTCUSD"}
-- names the channel id; every later frame of that subscription is an array
-- [chanId, payload] ([chanId, payload, seq] with the SEQ_ALL conf flag,
-- which we never set but accept). The payload is either the ticker
-- [BID, BID_SIZE, ASK, ASK_SIZE, DAILY_CHANGE, DAILY_CHANGE_RELATIVE,
-- LAST_PRICE, VOLUME, HIGH, LOW] or "hb", the heartbeat an idle channel
-- sends every 15 s, which is not data. Channel ids belong to one connection,
-- and only acks for symbols that connection asked for are mapped, so frames
-- of any other channel (book, trades) are ignored. Events: a refused
-- subscription ("error") is logged and hands its symbol to poll(); info
-- 20051 (server restart) and 20061 (maintenance over) ask clients to
-- reconnect and resubscribe, which closing the socket does (the engine
-- reopens it and on_open subscribes again); conf, pong and the rest are not
-- data. JSON pings {"event":"ping","cid":N} every ping_every seconds are
-- Bitfinex's documented liveness check; the pong, like a heartbeat, is not
-- data.
--
-- poll(): for the target pairs the stream does not deliver (all of them
-- while no stream runs, none while it delivers them all): up to
-- options.per_symbol_max of them by GET /v2/ticker/<symbol> each (a flat
-- array of the 10 ticker fields, no symbol inside), more by one
-- GET /v2/tickers?symbols=ALL (rows [SYMBOL, the same 10 fields]; it also
-- holds funding tickers such as "fUSD", which are not pairs and are left
-- out). Without an allow-list, a tickers row for a symbol the markets do not
-- list is emitted with its symbol only, so the engine counts it unmapped.
-- options.poll_fallback = false turns the REST fallback off for the symbols
-- a socket subscribes. No Bitfinex ticker carries a time: ts is nil.
-- (In tests/fixtures/bitfinex, /v2/ticker/tBTCUST is a real answer, the
-- /v2/tickers?symbols=ALL body only Bitfinex's documented example.)
--
-- Prices and sizes arrive as JSON numbers (floats such as
-- 1.7023900800000002 occur) and are passed to x.emit as those numbers (the
-- engine renders them shortest round-trip), never tostring'd.

local rest = require "rest"
local market = require "market"
local options = require "options"
local batch = require "batch"
local stream = require "stream"
local dec = require("values").dec

local TIMEOUT_S = 15
local MAX_CHANNELS_PER_CONN = 25 -- Bitfinex's limit per connection
local DEFAULT_PER_SYMBOL_MAX = 2

-- Info codes (Bitfinex WebSocket v2 "info" events).
local INFO_RESTART = 20051          -- the server restarts: reconnect
local INFO_MAINTENANCE = 20060      -- maintenance begins: data may pause
local INFO_MAINTENANCE_END = 20061  -- maintenance ended: resubscribe
local ERR_DUPLICATE = 10301         -- "subscribe: dup": already subscribed, data keeps coming

-- Filled by markets() and read by the others (same Lua state, rerun at every
-- load): the lib/market.lua index of the tradable pairs.
local idx = nil

-- Stream coverage, shared by the stream callbacks and poll() (lib/stream.lua):
-- which socket subscribes each symbol, whether its current connection
-- carried a ticker for it, and Bitfinex's per-symbol refusals.
local coverage = stream.coverage()
-- conn.id -> {chanId -> symbol} of the current connection (ids are per connection).
local chans = {}
local cid = 0

-- A code or version number as text: JSON numbers decode as floats (10300.0).
local function int_text(c)
  return tostring(type(c) == "number" and math.tointeger(c) or c)
end

-- "BTCUSD" -> "BTC", "USD"; "LINK:USD" -> "LINK", "USD"; nil otherwise.
local function split(p)
  local b, q = p:match("^(%w+):(%w+)$")
  if b then return b, q end
  if #p == 6 and p:match("^%w+$") then return p:sub(1, 3), p:sub(4, 6) end
  return nil
end

local function is_test_code(code)
  return code:sub(1, 4) == "TEST"
end

-- Whether a trading symbol ("tTESTBTC:TESTUSD") is one of the test pairs.
local function is_test_symbol(sym)
  local b, q = split(sym:sub(2))
  return b ~= nil and (is_test_code(b) or is_test_code(q))
end

-- Bitfinex explains refusals as {"error":"ERR_RATE_LIMIT"} (its other error
-- bodies are arrays, ["error",10020,"symbol: invalid"], and carry no field).
local function get_json(x, path, query, what)
  return rest.get_json(x, path, what, { query = query, timeout = TIMEOUT_S, detail = "error" })
end

local function read_pair(p)
  if type(p) ~= "string" then return nil, "malformed" end
  local b, q = split(p)
  if not b then return nil, "neither BASEQUOTE nor BASE:QUOTE" end
  if is_test_code(b) or is_test_code(q) then return nil, "test pair" end
  return { symbol = "t" .. p, base = b, quote = q }
end

local function load_markets(x)
  local doc = get_json(x, "/v2/conf/pub:list:pair:exchange", nil, "conf/pub:list:pair:exchange")
  idx = market.index(x, type(doc) == "table" and doc[1] or nil, read_pair,
    "conf/pub:list:pair:exchange")
  return idx.list
end

-- The ticker whose 10 fields start after `off` leading entries (0 for a
-- /v2/ticker answer and a stream payload, 1 for a /v2/tickers row).
local function ticker(sym, t, off)
  return {
    symbol = sym,
    bid = dec(t[off + 1]), bid_size = dec(t[off + 2]),
    ask = dec(t[off + 3]), ask_size = dec(t[off + 4]),
    last = dec(t[off + 7]), volume = dec(t[off + 8]), ts = nil,
  }
end

-- One symbol's REST ticker, or nil when the stream delivered it meanwhile
-- (the request waited, and the stream's ticker is the newer one).
local function symbol_ticker(x, sym)
  local what = "ticker " .. sym
  local t = get_json(x, "/v2/ticker/" .. sym, nil, what)
  -- An unknown symbol is answered with [] and HTTP 200.
  if type(t) ~= "table" or type(t[1]) ~= "number" then
    error(what .. ": no ticker in the answer", 0)
  end
  if coverage:covered(sym) then return nil end
  return ticker(sym, t, 0)
end

-- Every ticker in one request; emits the trading symbols keep() wants
-- (market.keeper), except what the stream delivered meanwhile.
local function poll_all(x, keep)
  local doc = rest.array(get_json(x, "/v2/tickers", { symbols = "ALL" }, "tickers"), "tickers")
  local list = {}
  for _, row in ipairs(doc) do
    local sym = type(row) == "table" and row[1]
    -- "t..." trading pairs only: "f..." rows are funding tickers.
    if type(sym) == "string" and sym:sub(1, 1) == "t" and not is_test_symbol(sym)
        and keep(sym) and not coverage:covered(sym) then
      list[#list + 1] = ticker(sym, row, 1)
    end
  end
  x.emit_many(list)
end

local function poll(x)
  if not idx then load_markets(x) end -- markets() normally ran at load
  local symbols, narrowed = market.targets(x, idx)
  -- The target pairs the stream does not deliver (with poll_fallback =
  -- false: those no socket subscribes).
  local need = coverage:to_poll(x, symbols)
  if #need == 0 then
    return -- the stream delivers every pair
  end
  if #need <= options.integer(x, "per_symbol_max", DEFAULT_PER_SYMBOL_MAX, 0) then
    -- One symbol failing must not hold back the others' data.
    return batch.emit_each(x, need, function(sym) return symbol_ticker(x, sym) end, "symbols")
  end
  return poll_all(x, market.keeper(idx, need, narrowed))
end

-- ---------------------------------------------------------------------------
-- Stream (WebSocket API v2)
-- ---------------------------------------------------------------------------

local function connections(x, markets)
  if not idx then load_markets(x) end
  local url = stream.url(x, "/ws/2")
  local symbols = market.targets(x, idx)
  local per = options.integer(x, "symbols_per_conn", MAX_CHANNELS_PER_CONN, 1, MAX_CHANNELS_PER_CONN)
  return coverage:connections(x, url, symbols, per, "ticker subscriptions")
end

-- Runs after every (re)connect: subscribe again; what the previous
-- connection delivered, and its channel ids, no longer count.
local function on_open(x, ws, conn)
  coverage:opened(conn.id)
  chans[conn.id] = {}
  for _, sym in ipairs(conn.symbols) do
    stream.send_json(x, ws, { event = "subscribe", channel = "ticker", symbol = sym }, "subscribe " .. sym)
  end
end

local function on_close(x, conn, code, reason)
  coverage:closed(conn.id)
  chans[conn.id] = nil
end

local function on_ping(x, ws)
  cid = cid + 1
  ws:send(x.json.encode({ event = "ping", cid = cid }))
end

-- Events: nothing to store.
local function on_event(x, ws, doc, conn)
  local ev = doc.event
  if ev == "subscribed" then
    local map = chans[conn.id]
    if map and doc.channel == "ticker" and coverage:subscribes(conn.id, doc.symbol)
        and type(doc.chanId) == "number" then
      map[doc.chanId] = doc.symbol
    end
  elseif ev == "error" and doc.code ~= ERR_DUPLICATE then
    local sym = type(doc.symbol) == "string" and doc.symbol or nil
    coverage:refuse(sym, conn.id)
    x.log.warn("stream: " .. (sym and ("subscribe " .. sym:sub(1, 40) .. " refused: ") or "")
      .. tostring(doc.msg):sub(1, 200) .. " (code " .. int_text(doc.code) .. ")")
  elseif ev == "info" then
    if doc.code == INFO_RESTART or doc.code == INFO_MAINTENANCE_END then
      x.log.info("stream: info " .. int_text(doc.code) .. ", reconnecting")
      ws:close()
    elseif doc.code == INFO_MAINTENANCE then
      x.log.warn("stream: Bitfinex entered maintenance")
    elseif type(doc.version) == "number" and doc.version ~= 2 then
      x.log.warn("stream: WebSocket API version " .. int_text(doc.version) .. ", expected 2")
    elseif type(doc.platform) == "table" and doc.platform.status == 0 then
      x.log.warn("stream: platform in maintenance")
    end
  end
  -- conf, pong, unsubscribed, a duplicate subscribe: nothing to do
end

-- Never raises and never waits.
local function on_message(x, ws, msg, conn)
  local doc = stream.decode(x, msg)
  if not doc then return end
  if doc.event ~= nil then
    return on_event(x, ws, doc, conn)
  end
  -- [chanId, payload(, seq)]: only channels this connection mapped as tickers.
  local map = chans[conn.id]
  local sym = map and type(doc[1]) == "number" and map[doc[1]]
  local t = doc[2]
  -- A heartbeat's payload is "hb"; a ticker is a flat array of numbers.
  if not sym or type(t) ~= "table" or type(t[1]) ~= "number" or type(t[3]) ~= "number" then
    return
  end
  x.emit(ticker(sym, t, 0))
  coverage:delivered(sym, conn.id)
end

return {
  name = "bitfinex",
  spec = 1,
  rest = "https://api-pub.bitfinex.com",
  ws = "wss://api-pub.bitfinex.com",
  poll_every = 15,
  aliases = {
    UST = "USDT", UDC = "USDC", EUT = "EURT",
    IOT = "IOTA", MNA = "MANA", SNG = "SNGLS", DSH = "DASH",
    -- DOG (one million DOGE) is deliberately absent: see the top of the file.
  },
  -- Bitfinex publishes a REST limit of 10 to 90 requests a minute per
  -- endpoint, depending on the endpoint and load, and blocks an IP that
  -- exceeds it for 60 s (docs.bitfinex.com/docs/requirements-and-limitations).
  -- A poll makes at most per_symbol_max (2) requests, or one, every 15 s:
  -- at most 8 a minute, which this budget holds to, below the lowest figure.
  budget = { requests = 8, per = 60 },
  max_pairs = 5000,
  -- An idle channel sends a heartbeat every 15 s.
  idle_timeout = 30,
  options = {
    -- Ticker subscriptions per socket (Bitfinex allows 25 channels).
    symbols_per_conn = MAX_CHANNELS_PER_CONN,
    -- Up to this many needed pairs, one /v2/ticker request each; beyond,
    -- one /v2/tickers?symbols=ALL.
    per_symbol_max = DEFAULT_PER_SYMBOL_MAX,
    -- false: poll() never asks REST for a symbol a socket subscribes, even
    -- while the stream is down or silent for it.
    poll_fallback = true,
  },
  markets = load_markets,
  poll = poll,
  stream = {
    connections = connections,
    on_open = on_open,
    on_message = on_message,
    on_ping = on_ping,
    on_close = on_close,
    ping_every = 30,
  },
}
