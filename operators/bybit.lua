-- Bybit spot, API v5: an orderbook.1 + tickers WebSocket stream, with REST
-- polling for the symbols the stream does not deliver (operator API spec 1,
-- docs/operators.md).
--
-- markets(): GET /v5/market/instruments-info?category=spot (spot answers
-- every symbol in one page: limit/cursor apply to the derivative
-- categories), symbols with status "Trading", split by the exchange's own
-- baseCoin/quoteCoin ("BTCUSDT" has no separator, so the split is never
-- guessed). The same string names the linear perpetual on Bybit's linear
-- endpoint: only the category and the spot endpoint make it the spot pair.
--
-- stream: wss://stream.bybit.com/v5/public/spot (the path chooses the
-- category; linear and inverse have their own, whose tickers are never
-- read here). Spot `tickers.<symbol>` messages carry no bid/ask, only
-- lastPrice, volume24h (base) and ts, so each symbol takes two topics:
--   {"req_id":"7","op":"subscribe","args":["orderbook.1.BTCUSDT","tickers.BTCUSDT",...]}
-- at most ARGS_PER_SUBSCRIBE args per request (Bybit's spot limit) and
-- options.symbols_per_conn symbols per socket. Subscribe acks
-- ({"success":true,"op":"subscribe",...}), pongs and publicTrade messages
-- are not data; a refused subscribe ("success":false) is logged with
-- ret_msg and hands that request's symbols to poll() until the socket
-- reconnects. JSON pings ({"op":"ping"}) every 20 s, as Bybit asks (it
-- drops a connection silent for 10 minutes).
--
-- The book: an orderbook message is a `snapshot` (reset the book; so is
-- any message with data.u = 1, which Bybit sends after a restart of its
-- service) or a `delta` applied to it: levels [price, size], size "0"
-- removes the price. A delta is never a ticker by itself, and one without
-- a snapshot on this connection is dropped. Each side keeps only the
-- topic's depth of best levels (what lies beyond has left the window
-- Bybit updates).
--
-- The ticker: per symbol, that book and the last tickers fields, emitted
-- merged whenever either changes, once the book has both sides: the two
-- channels arrive in any order, and a tickers message ahead of the first
-- book would otherwise be refused for lack of a quote. ts is the book
-- message's: it dates the quote a rate is made of, and the stored ts does
-- not depend on which channel spoke last. A book whose best bid is above
-- its best ask is emitted as it is, so the engine refuses and counts it
-- (crossed) and the stored quote stays the last sound one; it is never
-- mended here. Until a message makes the book sound again, the symbol's
-- tickers messages are refused with it: a ticker is stored whole or not
-- at all.
--
-- poll(): GET /v5/market/tickers?category=spot for the symbols the stream
-- does not deliver: bid1Price/bid1Size, ask1Price/ask1Size, lastPrice,
-- volume24h and the answer's top-level `time` (ms). With a short allow-list
-- (options.per_symbol_max), one &symbol= request each; otherwise one
-- request for every spot symbol, keeping those needed (without an
-- allow-list, every one the stream does not cover: a symbol listed since
-- markets() ran is counted unmapped by the engine, not guessed). A symbol
-- counts as delivered once the open connection gave it an accepted ticker
-- with both the book and the ticker fields. options.poll_fallback = false
-- turns the REST fallback off for the symbols a socket subscribes.
--
-- Bybit answers most errors with HTTP 200 and a non-zero retCode, others
-- with an HTTP error status; either fails the request, with retMsg in the
-- error. Prices and sizes are JSON strings, passed to x.emit exactly as
-- Bybit wrote them.

local rest = require "rest"
local market = require "market"
local options = require "options"
local batch = require "batch"
local stream = require "stream"
local values = require "values"
local dec = values.dec

local SPOT_PATH = "/v5/public/spot"
local TIMEOUT_S = 15
local ARGS_PER_SUBSCRIBE = 10 -- Bybit spot refuses a subscribe with more args
local TOPICS = { "orderbook.1.", "tickers." } -- per symbol: best bid/ask, last/volume
local DEFAULT_PER_SYMBOL_MAX = 5
local DEFAULT_SYMBOLS_PER_CONN = 50

-- Filled by markets() and read by the others (same Lua state, rerun at every load).
local idx = nil -- lib/market.lua index of the spot instruments

-- Stream state, shared by the stream callbacks and poll() (lib/stream.lua
-- coverage). books[symbol] = { bids = {price = size}, asks = {...}, bid =,
-- ask = (best prices), ts = }; days[symbol] = { last =, volume = } from
-- tickers; requests[req_id] = { conn = id, symbols = {...} } until acked.
local coverage = stream.coverage()
local books, days, requests = {}, {}, {}
local next_req = 0

-- GET rest..path and return result.list and the answer's `time`. Refusals
-- come as {"retCode":10001,"retMsg":"..."}, with HTTP 200 or an error status.
local function get_list(x, path, query, what)
  local doc = rest.get_json(x, path, what, { query = query, timeout = TIMEOUT_S, detail = "retMsg" })
  if type(doc) ~= "table" then
    error(what .. ": expected an object", 0)
  end
  if doc.retCode ~= 0 then
    local code = type(doc.retCode) == "number" and x.num(doc.retCode) or "missing"
    error(what .. ": retCode " .. code .. " (" .. tostring(doc.retMsg):sub(1, 200) .. ")", 0)
  end
  if type(doc.result) ~= "table" or type(doc.result.list) ~= "table" then
    error(what .. ": no result.list", 0)
  end
  return doc.result.list, doc.time
end

local function load_markets(x)
  local list = get_list(x, "/v5/market/instruments-info", { category = "spot" }, "instruments-info")
  idx = market.index(x, list, function(s)
    if s.status ~= "Trading" then return nil, "not trading" end
    return { symbol = s.symbol, base = s.baseCoin, quote = s.quoteCoin }
  end, "instruments-info")
  return idx.list
end

-- One element of a REST tickers list; `time` is the answer's.
local function rest_ticker(t, time)
  return {
    symbol = t.symbol,
    bid = dec(t.bid1Price), ask = dec(t.ask1Price),
    bid_size = dec(t.bid1Size), ask_size = dec(t.ask1Size),
    last = dec(t.lastPrice), volume = dec(t.volume24h), ts = values.ms(time),
  }
end

-- One symbol's REST ticker, or nil when the stream delivered it while the
-- request waited (the stream's ticker is the newer one).
local function poll_one(x, sym)
  local what = "tickers " .. sym
  local list, time = get_list(x, "/v5/market/tickers", { category = "spot", symbol = sym }, what)
  local t = list[1]
  if #list ~= 1 or type(t) ~= "table" or t.symbol ~= sym then
    error(what .. ": expected one ticker for " .. sym, 0)
  end
  if coverage:covered(sym) then return nil end
  return rest_ticker(t, time)
end

-- Every spot ticker in one request; `only` (a set) narrows it to a long allow-list.
local function poll_all(x, only)
  local list, time = get_list(x, "/v5/market/tickers", { category = "spot" }, "tickers")
  local out = {}
  for _, t in ipairs(list) do
    local sym = type(t) == "table" and t.symbol
    if type(sym) == "string" and (not only or only[sym]) and not coverage:covered(sym) then
      out[#out + 1] = rest_ticker(t, time)
    end
  end
  x.emit_many(out)
end

local function poll(x)
  if not idx then load_markets(x) end -- markets() normally ran at load
  local symbols, narrowed = market.targets(x, idx)
  local need = coverage:to_poll(x, symbols)
  if #need == 0 then
    return -- the stream delivers every symbol
  end
  if not narrowed then
    return poll_all(x, nil)
  end
  if #need <= options.integer(x, "per_symbol_max", DEFAULT_PER_SYMBOL_MAX, 1) then
    return batch.emit_each(x, need, function(sym) return poll_one(x, sym) end, "symbols")
  end
  return poll_all(x, batch.set(need))
end

-- ---------------------------------------------------------------------------
-- Stream
-- ---------------------------------------------------------------------------

local function connections(x, markets)
  if not idx then load_markets(x) end
  local url = stream.url(x, SPOT_PATH)
  local symbols = market.targets(x, idx)
  local per = options.integer(x, "symbols_per_conn", DEFAULT_SYMBOLS_PER_CONN, 1)
  return coverage:connections(x, url, symbols, per, "symbols (orderbook.1 + tickers)")
end

-- Runs after every (re)connect: what the previous connection built and
-- delivered no longer counts; subscribe again.
local function on_open(x, ws, conn)
  coverage:opened(conn.id)
  for _, sym in ipairs(conn.symbols) do books[sym], days[sym] = nil, nil end
  for rid, r in pairs(requests) do
    if r.conn == conn.id then requests[rid] = nil end
  end
  for _, part in ipairs(batch.chunks(conn.symbols, ARGS_PER_SUBSCRIBE // #TOPICS)) do
    local args = {}
    for _, sym in ipairs(part) do
      for _, topic in ipairs(TOPICS) do args[#args + 1] = topic .. sym end
    end
    next_req = next_req + 1
    local rid = tostring(next_req)
    requests[rid] = { conn = conn.id, symbols = part }
    stream.send_json(x, ws, { req_id = rid, op = "subscribe", args = args }, "subscribe")
  end
end

local function on_ping(x, ws)
  ws:send('{"op":"ping"}')
end

-- Applies [price, size] levels to one side (price text -> size text); a
-- size of 0 removes the price.
local function apply(side, levels)
  if type(levels) ~= "table" then return end
  for _, l in ipairs(levels) do
    if type(l) == "table" and type(l[1]) == "string" and type(l[2]) == "string" then
      local p, s = tonumber(l[1]), tonumber(l[2])
      if p and s then side[l[1]] = s ~= 0 and l[2] or nil end
    end
  end
end

-- The best price of a side (highest bid, lowest ask) after dropping what
-- lies beyond the best `depth` levels; nil when the side is empty.
local function trim(side, depth, bids)
  local prices = {}
  for price in pairs(side) do prices[#prices + 1] = price end
  table.sort(prices, function(l, r)
    if bids then return tonumber(l) > tonumber(r) end
    return tonumber(l) < tonumber(r)
  end)
  for i = depth + 1, #prices do side[prices[i]] = nil end
  return prices[1]
end

-- The symbol's book and ticker fields as one ticker, once the book has a
-- bid and an ask. Delivered (for poll) when stored with both parts.
local function emit(x, sym, conn)
  local book, day = books[sym], days[sym] or {}
  if not (book and book.bid and book.ask) then return end
  local stored = x.emit({
    symbol = sym,
    bid = book.bid, ask = book.ask,
    bid_size = book.bids[book.bid], ask_size = book.asks[book.ask],
    last = day.last, volume = day.volume, ts = book.ts,
  })
  if stored and day.last then
    coverage:delivered(sym, conn.id)
  end
end

local function on_book(x, doc, depth, conn)
  local d = doc.data
  local sym = d.s
  if type(sym) ~= "string" then return end
  local book = books[sym]
  if doc.type == "snapshot" or d.u == 1 then
    book = { bids = {}, asks = {} }
    books[sym] = book
  elseif doc.type ~= "delta" or not book then
    return
  end
  apply(book.bids, d.b)
  apply(book.asks, d.a)
  book.bid = trim(book.bids, depth, true)
  book.ask = trim(book.asks, depth, false)
  book.ts = values.ms(doc.ts)
  emit(x, sym, conn)
end

-- Spot tickers are snapshots; should a partial delta come, what it carries
-- replaces what was kept.
local function on_ticker(x, doc, conn)
  local d = doc.data
  local sym = d.symbol
  if type(sym) ~= "string" then return end
  local day = days[sym] or {}
  days[sym] = day
  day.last = dec(d.lastPrice) or day.last
  day.volume = dec(d.volume24h) or day.volume
  emit(x, sym, conn)
end

-- Replies to our requests: a refused subscribe hands its symbols to poll().
local function on_reply(x, doc, conn)
  local rid = doc.req_id
  local r = type(rid) == "string" and requests[rid]
  if r then requests[rid] = nil end
  if doc.success ~= false then return end -- acks and pongs
  if r then
    for _, sym in ipairs(r.symbols) do coverage:refuse(sym, conn.id) end
  end
  x.log.warn("stream: " .. tostring(doc.op):sub(1, 20) .. " refused: " .. tostring(doc.ret_msg):sub(1, 200))
end

-- Never raises and never waits.
local function on_message(x, ws, msg, conn)
  local doc = stream.decode(x, msg)
  if not doc then return end
  local topic = doc.topic
  if type(topic) ~= "string" then
    if doc.op ~= nil then on_reply(x, doc, conn) end
    return
  end
  if type(doc.data) ~= "table" then return end
  local depth = tonumber(topic:match("^orderbook%.(%d+)%."))
  if depth and depth >= 1 then
    on_book(x, doc, depth, conn)
  elseif topic:find("^tickers%.") then
    on_ticker(x, doc, conn)
  end
  -- publicTrade and anything else: not ticker data
end

return {
  name = "bybit",
  spec = 1,
  rest = "https://api.bybit.com",
  ws = "wss://stream.bybit.com",
  poll_every = 10,
  -- At most options.per_symbol_max (or one) requests per poll, and none
  -- while the stream delivers: 30 a minute at most at the defaults.
  -- Bybit's HTTP limit is 600 requests per 5-second window per IP.
  budget = { requests = 60, per = 60 },
  max_pairs = 5000,
  -- orderbook.1 repeats its snapshot every 3 s when nothing changes, and
  -- the pings get pongs: a socket is never silent this long.
  idle_timeout = 30,
  options = {
    -- Up to this many allowed symbols, poll one request each; beyond, one for all.
    per_symbol_max = DEFAULT_PER_SYMBOL_MAX,
    -- Symbols (two topics each) per socket.
    symbols_per_conn = DEFAULT_SYMBOLS_PER_CONN,
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
    on_close = coverage:close_handler(),
    ping_every = 20,
  },
}
