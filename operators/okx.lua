-- OKX spot: the public `tickers` WebSocket channel, with REST polling for the
-- instruments the stream does not deliver. OKX API v5 (REST /api/v5/...,
-- wss://ws.okx.com:8443/ws/v5/public); operator API spec 1, docs/operators.md.
--
-- markets(): GET /api/v5/public/instruments?instType=SPOT, the instruments
-- whose state is "live". The instId ("BTC-USDT") is our `symbol`; base and
-- quote are its baseCcy/quoteCcy, never a split of the id (derivative ids
-- such as "BTC-USD-SWAP" or "BTC-USD-220527" look alike but are not spot).
--
-- stream: one socket per options.instruments_per_conn instruments, each
-- subscribing its instruments in one message,
--   {"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"},...]}
-- (OKX caps a subscribe message at 64 KB; 200 args are about 9 KB). A push
-- {"arg":{"channel":"tickers",...},"data":[{instType,instId,bidPx,bidSz,
-- askPx,askSz,last,vol24h,ts,...}]} carries everything a ticker needs. Only
-- data whose instType is "SPOT" is taken: a FUTURES or SWAP ticker is never
-- served as a spot pair (the recorded connection also carried
-- BTC-USD-220527 and UNI-USD-SWAP). A spot instId that markets() does not
-- list (listed since) is emitted by symbol alone and counted as unmapped by
-- the engine. {"event":"subscribe"} acks are not data; "error" and
-- "notice" events are logged. An instrument whose subscription OKX refused
-- never delivers, so it stays with poll() without any bookkeeping here.
-- Heartbeat: OKX closes a connection silent for 30 s; the client sends the
-- plain-text frame "ping" (not JSON) and gets the text "pong", which is
-- never fed to the JSON decoder.
--
-- poll(): a fallback only, since the stream lacks nothing: the instruments
-- the stream does not deliver (all of them while it is down, none while it
-- delivers every one). Up to options.per_symbol_max allow-listed
-- instruments: GET /api/v5/market/ticker?instId=, one each; otherwise one
-- GET /api/v5/market/tickers?instType=SPOT, keeping those needed. Every
-- answer element must be a SPOT ticker (for the instId asked, per
-- instrument); anything else is dropped or fails the request. The recorded
-- REST tickers are OKX's documented examples for SWAP instruments
-- (placeholder prices): nothing recorded answers a SPOT request, so a replay
-- polls nothing, which is the point — a swap price never becomes a spot one.
--
-- Every value is a JSON string in OKX's answers and is passed to x.emit as
-- written; OKX writes "" for a value it does not have (an empty book side,
-- no trade yet), which counts as absent. Times are ms since the epoch, as
-- strings. A REST answer is {"code":"0","msg":"","data":[...]}: a code
-- other than "0" is a refusal, with HTTP 200 or not.

local rest = require "rest"
local market = require "market"
local options = require "options"
local stream = require "stream"
local dec = require("values").dec_nonempty

local TIMEOUT_S = 15
local DEFAULT_PER_CONN = 200
local DEFAULT_PER_SYMBOL_MAX = 5
local WS_PATH = "/ws/v5/public"

-- Filled by markets() and read by poll() and the stream (same Lua state,
-- rerun at every load): lib/market.lua's index of the live spot instruments
-- (those not live are named to it: known, so not unmapped).
local idx = nil

-- Stream coverage, shared by the stream callbacks and poll() (lib/stream.lua):
-- which socket subscribes each instId and whether its current connection
-- carried a ticker for it.
local coverage = stream.coverage()

-- "1652459235637" -> 1652459235637; nil for anything else.
local function ms(v)
  if type(v) ~= "string" or #v > 16 or not v:match("^%d+$") then return nil end
  return math.tointeger(tonumber(v))
end

-- The `data` array of an OKX answer; a refusal is an error naming the
-- request, with OKX's code and msg.
local function get_data(x, path, query, what)
  local doc = rest.get_json(x, path, what, { query = query, timeout = TIMEOUT_S, detail = "msg" })
  if type(doc) ~= "table" then
    error(what .. ": expected an object", 0)
  end
  if doc.code ~= "0" then
    local msg = type(doc.msg) == "string" and doc.msg ~= "" and (" (" .. doc.msg:sub(1, 200) .. ")") or ""
    error(what .. ": code " .. tostring(doc.code):sub(1, 20) .. msg, 0)
  end
  if type(doc.data) ~= "table" then
    error(what .. ": no data array", 0)
  end
  return doc.data
end

local function load_markets(x)
  local data = get_data(x, "/api/v5/public/instruments", { instType = "SPOT" }, "instruments")
  idx = market.index(x, data, function(i)
    if i.instType ~= "SPOT" then return nil, "not spot" end
    if i.state ~= "live" then return nil, "not live", i.instId end -- suspend, preopen, test
    return { symbol = i.instId, base = i.baseCcy, quote = i.quoteCcy }
  end, "instruments")
  return idx.list
end

-- One element of a REST answer or a tickers push; nil unless it is a spot
-- ticker.
local function ticker(t)
  if type(t) ~= "table" or t.instType ~= "SPOT" or type(t.instId) ~= "string" then
    return nil
  end
  return {
    symbol = t.instId,
    bid = dec(t.bidPx), ask = dec(t.askPx),
    bid_size = dec(t.bidSz), ask_size = dec(t.askSz),
    last = dec(t.last), volume = dec(t.vol24h), ts = ms(t.ts),
  }
end

-- One instrument's ticker, or nil when the stream delivered it meanwhile
-- (the request waited, and the stream's ticker is the newer one).
local function instrument_ticker(x, id)
  local what = "market/ticker " .. id
  local t = ticker(get_data(x, "/api/v5/market/ticker", { instId = id }, what)[1])
  if not t or t.symbol ~= id then
    error(what .. ": expected the SPOT ticker of " .. id, 0)
  end
  if coverage:covered(id) then return nil end
  return t
end

-- Every spot ticker in one request; emits those keep() wants.
local function poll_all(x, keep)
  local list = {}
  for _, e in ipairs(get_data(x, "/api/v5/market/tickers", { instType = "SPOT" }, "market/tickers")) do
    local t = ticker(e)
    if t and keep(t.symbol) then
      list[#list + 1] = t
    end
  end
  x.emit_many(list)
end

local function poll(x)
  if not idx then load_markets(x) end -- markets() normally ran at load
  return coverage:poll(x, idx, {
    max = options.integer(x, "per_symbol_max", DEFAULT_PER_SYMBOL_MAX, 0),
    each = function(id) return instrument_ticker(x, id) end, noun = "instruments",
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
  local per = options.integer(x, "instruments_per_conn", DEFAULT_PER_CONN, 1)
  return coverage:connections(x, url, ids, per, "tickers subscriptions")
end

-- Runs after every (re)connect: subscribe again; what the previous
-- connection delivered no longer counts.
local function on_open(x, ws, conn)
  coverage:opened(conn.id)
  local args = {}
  for i, id in ipairs(conn.symbols) do args[i] = { channel = "tickers", instId = id } end
  stream.send_json(x, ws, { op = "subscribe", args = args }, "subscribe")
end

-- The heartbeat OKX requires on a connection that could fall silent.
local function on_ping(x, ws)
  ws:send("ping")
end

-- Never raises and never waits.
local function on_message(x, ws, msg, conn)
  if msg == "pong" then return end -- the heartbeat's answer, not JSON
  local doc = stream.decode(x, msg)
  if not doc then return end
  local ev = doc.event
  if ev == "error" or ev == "notice" then
    x.log.warn("stream: " .. ev .. " " .. tostring(doc.code):sub(1, 20) .. ": "
      .. tostring(doc.msg):sub(1, 200))
    return
  elseif ev ~= nil then
    return -- subscribe/unsubscribe acks
  end
  -- trades, books and anything else we did not ask for: not tickers
  if type(doc.arg) ~= "table" or doc.arg.channel ~= "tickers" or type(doc.data) ~= "table" then
    return
  end
  local list = {}
  for _, e in ipairs(doc.data) do
    local t = ticker(e) -- nil for a FUTURES/SWAP/OPTION ticker: never a spot pair
    if t then list[#list + 1] = t end
  end
  if #list == 0 then return end
  x.emit_many(list)
  for _, t in ipairs(list) do coverage:delivered(t.symbol, conn.id) end
end

return {
  name = "okx",
  spec = 1,
  rest = "https://www.okx.com",
  ws = "wss://ws.okx.com:8443",
  poll_every = 10,
  -- At most options.per_symbol_max (5) requests per poll, only for what the
  -- stream does not deliver: 30 a minute at the defaults. OKX allows 20
  -- requests per 2 s per IP on market/ticker(s) and public/instruments
  -- (600 a minute).
  budget = { requests = 60, per = 60 },
  max_pairs = 5000,
  -- The text ping every ping_every s is answered, so a healthy connection is
  -- never silent this long (OKX itself gives up after 30 s).
  idle_timeout = 30,
  options = {
    -- tickers subscriptions per socket (one subscribe message each).
    instruments_per_conn = DEFAULT_PER_CONN,
    -- Up to this many allow-listed instruments, poll market/ticker per
    -- instrument; beyond, one market/tickers?instType=SPOT.
    per_symbol_max = DEFAULT_PER_SYMBOL_MAX,
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
    on_ping = on_ping,
    on_close = coverage:close_handler(),
    -- Well inside the 30 s after which OKX closes a silent connection.
    ping_every = 20,
  },
}
