-- Gate (gate.io) spot: the `spot.tickers` WebSocket channel, with REST
-- polling for the pairs the stream does not deliver. Gate API v4 (REST
-- /api/v4/spot/..., wss://api.gateio.ws/ws/v4/); operator API spec 1,
-- docs/operators.md.
--
-- markets(): GET /api/v4/spot/currency_pairs, every pair whose
-- trade_status is not "untradable" (a "buyable" or "sellable" pair still
-- has a book). The id ("BTC_USDT") is our `symbol`; base and quote are its
-- `base`/`quote` fields, never a split of the id (leveraged tokens such as
-- BTC3L_USDT are pairs of their own).
--
-- stream: one socket per options.pairs_per_conn pairs, each subscribing its
-- pairs in one message,
--   {"time":<s>,"channel":"spot.tickers","event":"subscribe","payload":[...]}
-- An {"event":"update","result":{currency_pair,highest_bid,lowest_ask,last,
-- base_volume,...}} message is a ticker; its time is the top-level `time`
-- (seconds; newer servers add `time_ms`). The 2021 feed has no sizes;
-- newer ones add highest_size/lowest_size, taken when present. Subscribe
-- acks, spot.pong and other channels (trades, order_book_update,
-- candlesticks) are not tickers; an error is logged, and a pair whose
-- subscription Gate refused never delivers, so it stays with poll()
-- without any bookkeeping here. JSON pings ({"time":<s>,"channel":
-- "spot.ping"}, answered by spot.pong) every ping_every seconds keep a quiet
-- connection alive.
--
-- poll(): a fallback for the pairs the stream does not deliver (all of them
-- while it is down, none while it delivers every one; the stream lacks
-- nothing but sizes on older feeds). Up to options.per_pair_max
-- allow-listed pairs: GET /api/v4/spot/tickers?currency_pair=, one each,
-- the answer a one-element array that must be the pair asked; otherwise
-- one GET /api/v4/spot/tickers for every pair, keeping those needed (and,
-- without an allow-list, pairs markets() does not list, which the engine
-- counts unmapped). The REST ticker has no time, so ts is nil.
--
-- Prices and volumes are JSON strings, passed to x.emit exactly as Gate
-- wrote them; Gate writes "" for a side it does not have, which counts as
-- absent. Refusals are {"label":"INVALID_CURRENCY_PAIR","message":"..."}.

local rest = require "rest"
local market = require "market"
local options = require "options"
local stream = require "stream"
local values = require "values"
local dec = values.dec_nonempty

local TIMEOUT_S = 15
local DEFAULT_PER_CONN = 200
local DEFAULT_PER_PAIR_MAX = 5
local WS_PATH = "/ws/v4/"

-- Filled by markets() and read by poll() and the stream (same Lua state,
-- rerun at every load): lib/market.lua's index of the currency pairs (the
-- untradable ones are named to it: known, so not unmapped).
local idx = nil

-- Stream coverage, shared by the stream callbacks and poll() (lib/stream.lua):
-- which socket subscribes each pair and whether its current connection
-- carried a ticker for it.
local coverage = stream.coverage()

-- Every answer read here is a JSON array.
local function get_array(x, path, query, what)
  local opts = { query = query, timeout = TIMEOUT_S, detail = "message" }
  return rest.array(rest.get_json(x, path, what, opts), what)
end

local function load_markets(x)
  local doc = get_array(x, "/api/v4/spot/currency_pairs", nil, "currency_pairs")
  idx = market.index(x, doc, function(p)
    if p.trade_status == "untradable" then return nil, "untradable", p.id end
    return { symbol = p.id, base = p.base, quote = p.quote }
  end, "currency_pairs")
  return idx.list
end

-- One REST ticker or spot.tickers `result`; nil without a pair name.
local function ticker(t, ts)
  if type(t) ~= "table" or type(t.currency_pair) ~= "string" then return nil end
  return {
    symbol = t.currency_pair,
    bid = dec(t.highest_bid), ask = dec(t.lowest_ask),
    bid_size = dec(t.highest_size), ask_size = dec(t.lowest_size),
    last = dec(t.last), volume = dec(t.base_volume), ts = ts,
  }
end

-- One pair's ticker, or nil when the stream delivered it meanwhile (the
-- request waited, and the stream's ticker is the newer one).
local function pair_ticker(x, id)
  local what = "spot/tickers " .. id
  local doc = get_array(x, "/api/v4/spot/tickers", { currency_pair = id }, what)
  local t = ticker(doc[1], nil)
  if not t or t.symbol ~= id or doc[2] ~= nil then
    error(what .. ": expected the ticker of " .. id .. " alone", 0)
  end
  if coverage:covered(id) then return nil end
  return t
end

-- Every pair's ticker in one request; emits those keep() wants.
local function poll_all(x, keep)
  local list = {}
  for _, e in ipairs(get_array(x, "/api/v4/spot/tickers", nil, "spot/tickers")) do
    local t = ticker(e, nil)
    if t and keep(t.symbol) then
      list[#list + 1] = t
    end
  end
  x.emit_many(list)
end

local function poll(x)
  if not idx then load_markets(x) end -- markets() normally ran at load
  return coverage:poll(x, idx, {
    max = options.integer(x, "per_pair_max", DEFAULT_PER_PAIR_MAX, 0),
    each = function(id) return pair_ticker(x, id) end, noun = "pairs",
    all = function(keep) return poll_all(x, keep) end,
  })
end

-- ---------------------------------------------------------------------------
-- Stream
-- ---------------------------------------------------------------------------

local function connections(x, markets)
  if not idx then load_markets(x) end
  local url = stream.url(x, WS_PATH)
  local ids = market.targets(x, idx)
  local per = options.integer(x, "pairs_per_conn", DEFAULT_PER_CONN, 1)
  return coverage:connections(x, url, ids, per, "spot.tickers pairs")
end

-- Runs after every (re)connect: subscribe again; what the previous
-- connection delivered no longer counts.
local function on_open(x, ws, conn)
  coverage:opened(conn.id)
  stream.send_json(x, ws, {
    time = x.now() // 1000, channel = "spot.tickers", event = "subscribe", payload = conn.symbols,
  }, "subscribe")
end

local function on_ping(x, ws)
  ws:send(x.json.encode({ time = x.now() // 1000, channel = "spot.ping" }))
end

-- A message's time as integer ms: time_ms when sent, else time (seconds).
local function message_ms(doc)
  return values.ms(doc.time_ms) or values.seconds_ms(doc.time)
end

-- Never raises and never waits.
local function on_message(x, ws, msg, conn)
  local doc = stream.decode(x, msg)
  if not doc then return end
  if type(doc.error) == "table" then
    x.log.warn("stream: " .. tostring(doc.channel):sub(1, 40) .. " " .. tostring(doc.event):sub(1, 20)
      .. ": " .. tostring(doc.error.message):sub(1, 200))
    return
  end
  -- acks (event "subscribe"), spot.pong, other channels: not tickers
  if doc.channel ~= "spot.tickers" or doc.event ~= "update" then return end
  local t = ticker(doc.result, message_ms(doc))
  if not t then return end
  x.emit(t)
  coverage:delivered(t.symbol, conn.id)
end

return {
  name = "gateio",
  spec = 1,
  rest = "https://api.gateio.ws",
  ws = "wss://api.gateio.ws",
  poll_every = 10,
  -- At most options.per_pair_max (5) requests per poll, only for what the
  -- stream does not deliver: 30 a minute at the defaults. Gate allows 200
  -- requests per 10 s per endpoint per IP on its public spot endpoints
  -- (1,200 a minute).
  budget = { requests = 60, per = 60 },
  max_pairs = 5000,
  -- The spot.ping every ping_every s is answered, so a healthy connection
  -- is never silent this long.
  idle_timeout = 30,
  options = {
    -- spot.tickers pairs per socket (one subscribe message each).
    pairs_per_conn = DEFAULT_PER_CONN,
    -- Up to this many allow-listed pairs, poll spot/tickers per pair;
    -- beyond, one spot/tickers for every pair.
    per_pair_max = DEFAULT_PER_PAIR_MAX,
    -- false: poll() never asks REST for a pair a socket subscribes, even
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
    on_close = coverage:close_handler(),
    ping_every = 20,
  },
}
