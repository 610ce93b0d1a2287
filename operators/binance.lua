-- Binance spot: a bookTicker stream, with REST polling for what the stream
-- does not deliver (operator API spec 1, docs/operators.md).
--
-- markets(): /api/v3/exchangeInfo, symbols with status TRADING, split by the
-- exchange's own baseAsset/quoteAsset ("BTCUSDT" has no separator, so the
-- split is never guessed).
--
-- stream: <symbol>@bookTicker combined streams, the streams named in the URL
-- (/stream?streams=a@bookTicker/b@bookTicker, lower-case symbols), for every
-- market or, with a pairs allow-list, for the allowed ones; at most
-- options.streams_per_conn streams per socket (Binance allows 1024) and a
-- URL of at most options.max_url_bytes (the handshake must fit a 4 KiB
-- libwebsockets buffer; 200 real symbols make about 4 KB). A
-- message {"stream":"x@bookTicker","data":{"u","s","b","B","a","A"}} is the
-- best bid/ask and their sizes; it has no time, so ts is nil. Other streams
-- and {"result":null,"id":1} acks are ignored.
--
-- poll() has two strategies (DESIGN 6, the pairs allow-list is a hint):
--   * a short allow-list (at most options.per_symbol_max pairs): per symbol,
--     /api/v3/ticker/bookTicker (bid/ask and their sizes) plus
--     /api/v3/ticker/24hr?symbol= (last, 24h base volume, closeTime), merged
--     into one ticker. Two light requests per pair instead of the all-symbol
--     body, which Binance weighs 80 and which is large.
--   * otherwise: one /api/v3/ticker/24hr for every symbol, emitted in one batch.
-- It keeps running while the stream is up, because bookTicker has no last
-- price or 24h volume: for a symbol the open stream has delivered ("covered")
-- it emits only last, volume and ts (the engine keeps the stored bid/ask, so
-- the REST quote, older than the stream's, never overwrites it) and skips
-- the per-symbol bookTicker request. Symbols the stream has not delivered
-- (stream down, not yet connected, or silent) get the whole REST ticker.
--
-- Prices are passed to x.emit exactly as Binance wrote them (JSON strings);
-- the engine keeps the text and rejects crossed or non-positive quotes.

local rest = require "rest"
local market = require "market"
local options = require "options"
local batch = require "batch"
local stream = require "stream"
local values = require "values"
local dec = values.dec
-- on_message checks types on every message: a local, not a read through
-- the sandbox's read-only globals.
local type = type

local DEFAULT_PER_SYMBOL_MAX = 5
local TIMEOUT_S = 15

-- Filled by markets() and read by poll(): both run in this operator's own
-- Lua state, so an upvalue is enough (markets() runs again on every load).
-- lib/market.lua's index; halted symbols are named to it (known, not new).
local idx = nil

local DEFAULT_STREAMS_PER_CONN = 200
local MAX_STREAMS_PER_CONN = 1024 -- Binance closes a connection asking for more
-- The streams are named in the URL, and a WebSocket handshake has to fit the
-- client's (and, in tests, fakex's) 4 KiB libwebsockets header buffer: a
-- 200-stream URL of real symbols is about 4 KB. A socket is split off at
-- whichever limit comes first.
local DEFAULT_MAX_URL_BYTES = 3000

-- Stream coverage, shared by the stream callbacks and poll(): per socket,
-- whether it is open and which symbols its current connection delivered
-- (lib/stream.lua). The streams are named in the URL, so there is no
-- subscription to refuse: a symbol counts as delivered by the connection
-- that carried its bookTicker (coverage:covered_via).
local coverage = stream.coverage()

-- GET rest..path and decode the JSON answer; any failure is a clear error().
-- Binance explains refusals as {"code":-1121,"msg":"Invalid symbol."}.
local function get_json(x, path, query, what)
  return rest.get_json(x, path, what, { query = query, timeout = TIMEOUT_S, detail = "msg" })
end

-- Whether the open stream has delivered this symbol's quote.
local function covered(sym)
  return coverage:covered_via(sym)
end

local function load_markets(x)
  local doc = get_json(x, "/api/v3/exchangeInfo", nil, "exchangeInfo")
  idx = market.index(x, type(doc) == "table" and doc.symbols, function(s)
    -- Listed but not trading (BREAK, delisted): named, so that poll_all
    -- leaves it out rather than have the engine count it as unmapped.
    if s.status ~= "TRADING" then return nil, "not trading", s.symbol end
    return { symbol = s.symbol, base = s.baseAsset, quote = s.quoteAsset }
  end, "exchangeInfo")
  return idx.list
end

-- A per-symbol answer must be one object for the symbol asked (a bare array
-- means the server ignored ?symbol=).
local function one_object(doc, sym, what)
  if type(doc) ~= "table" or doc.symbol ~= sym then
    error(what .. ": expected one object for " .. sym, 0)
  end
  return doc
end

-- For a symbol the stream covers, keep only what bookTicker lacks: the engine
-- keeps the stored (stream) bid/ask and sizes for fields an emit leaves out.
-- Checked when the answer arrives, not when asked: the request waited.
local function without_stream_fields(t)
  if covered(t.symbol) then
    t.bid, t.ask, t.bid_size, t.ask_size = nil, nil, nil, nil
  end
  return t
end

-- bookTicker gives the quote, 24hr gives last/volume/time: one merged ticker.
-- The bookTicker request is skipped when the stream delivers the quote.
local function symbol_ticker(x, sym)
  local quote = {}
  if not covered(sym) then
    quote = one_object(get_json(x, "/api/v3/ticker/bookTicker", { symbol = sym },
      "ticker/bookTicker " .. sym), sym, "ticker/bookTicker")
  end
  local day = one_object(get_json(x, "/api/v3/ticker/24hr", { symbol = sym },
    "ticker/24hr " .. sym), sym, "ticker/24hr")
  return without_stream_fields({
    symbol = sym,
    bid = dec(quote.bidPrice), ask = dec(quote.askPrice),
    bid_size = dec(quote.bidQty), ask_size = dec(quote.askQty),
    last = dec(day.lastPrice), volume = dec(day.volume), ts = values.ms(day.closeTime),
  })
end

-- All symbols in one request; emits those keep() wants (market.keeper).
local function poll_all(x, keep)
  local doc = rest.array(get_json(x, "/api/v3/ticker/24hr", nil, "ticker/24hr"), "ticker/24hr")
  local list = {}
  for _, t in ipairs(doc) do
    local sym = type(t) == "table" and t.symbol
    if type(sym) == "string" and keep(sym) then
      list[#list + 1] = without_stream_fields({
        symbol = sym,
        bid = dec(t.bidPrice), ask = dec(t.askPrice),
        bid_size = dec(t.bidQty), ask_size = dec(t.askQty),
        last = dec(t.lastPrice), volume = dec(t.volume), ts = values.ms(t.closeTime),
      })
    end
  end
  x.emit_many(list)
end

local function poll(x)
  if not idx then load_markets(x) end -- markets() normally ran at load
  local symbols, narrowed = market.targets(x, idx)
  if narrowed and #symbols <= options.number(x, "per_symbol_max", DEFAULT_PER_SYMBOL_MAX) then
    -- One symbol failing must not hold back the others' data.
    return batch.emit_each(x, symbols, function(sym) return symbol_ticker(x, sym) end, "symbols")
  end
  return poll_all(x, market.keeper(idx, symbols, narrowed))
end

-- ---------------------------------------------------------------------------
-- Stream
-- ---------------------------------------------------------------------------

-- One socket per options.streams_per_conn symbols, the streams in the URL
-- (no SUBSCRIBE needed, so a reconnect resubscribes by itself).
local function connections(x, markets)
  if not idx then load_markets(x) end
  local symbols = market.targets(x, idx)
  local per = options.integer(x, "streams_per_conn", DEFAULT_STREAMS_PER_CONN, 1, MAX_STREAMS_PER_CONN)
  local prefix = stream.url(x, "/stream?streams=")
  local max_url = options.integer(x, "max_url_bytes", DEFAULT_MAX_URL_BYTES, 256)
  local list, names, syms, len = {}, {}, {}, #prefix
  local function flush()
    if #names == 0 then return end
    local id = #list + 1
    coverage:add(id)
    list[id] = { id = id, symbols = syms, url = prefix .. table.concat(names, "/") }
    names, syms, len = {}, {}, #prefix
  end
  -- Stream names are lower-case symbols; Binance symbols are [A-Z0-9].
  for _, sym in ipairs(stream.nameable(x, symbols, "^%w+$", "a stream URL")) do
    local name = string.lower(sym) .. "@bookTicker"
    if #names > 0 and len + 1 + #name > max_url then flush() end
    names[#names + 1] = name
    syms[#syms + 1] = sym
    len = len + (#names > 1 and 1 or 0) + #name
    if #names >= per then flush() end
  end
  flush()
  x.log.info("stream: " .. #symbols .. " bookTicker streams on " .. #list .. " connection(s)")
  return list
end

-- A new connection: whatever the previous one delivered no longer counts.
local function on_open(x, ws, conn)
  coverage:opened(conn.id)
end

-- Never raises and never waits: every message that is not a bookTicker
-- payload is ignored (depth, kline, aggTrade; {"result":null,"id":1} acks).
local function on_message(x, ws, msg, conn)
  local doc = stream.decode(x, msg)
  if not doc then return end
  local d = doc.data
  if type(d) == "table" then
    -- Combined stream: the stream name says what the payload is.
    if type(doc.stream) ~= "string" or not doc.stream:find("@bookTicker", 1, true) then return end
  elseif doc.u ~= nil and doc.s ~= nil and (doc.e == nil or doc.e == "bookTicker") then
    d = doc -- a raw /ws/<symbol>@bookTicker payload, unwrapped
  else
    if type(doc.error) == "table" then
      x.log.warn("stream: " .. tostring(doc.error.msg):sub(1, 200))
    end
    return
  end
  local sym = d.s
  if type(sym) ~= "string" or type(d.b) ~= "string" or type(d.a) ~= "string" then return end
  x.emit({ symbol = sym, bid = d.b, ask = d.a, bid_size = dec(d.B), ask_size = dec(d.A), ts = nil })
  coverage:delivered(sym, conn.id)
end

return {
  name = "binance",
  spec = 1,
  rest = "https://api.binance.com",
  ws = "wss://stream.binance.com:9443",
  poll_every = 10,
  -- Two requests per allowed pair per poll: 5 pairs every 10 s = 60 a minute.
  -- Binance's own limit is 6,000 request weight a minute; this stays far below.
  budget = { requests = 60, per = 60 },
  max_pairs = 5000,
  -- A quiet symbol's bookTicker can pause for a while; with many symbols per
  -- socket the stream is never silent this long.
  idle_timeout = 60,
  options = {
    -- Up to this many allowed pairs, poll per symbol; beyond, one all-symbol call.
    per_symbol_max = DEFAULT_PER_SYMBOL_MAX,
    -- bookTicker streams per socket (Binance allows 1024) ...
    streams_per_conn = DEFAULT_STREAMS_PER_CONN,
    -- ... and the longest stream URL (they are named in it).
    max_url_bytes = DEFAULT_MAX_URL_BYTES,
  },
  markets = load_markets,
  poll = poll,
  stream = {
    connections = connections,
    on_open = on_open,
    on_message = on_message,
    on_close = coverage:close_handler(),
    -- No on_ping: the engine sends WebSocket ping frames, which Binance
    -- accepts (it pings too; libwebsockets answers those).
    ping_every = 30,
  },
}
