-- Gemini spot: the WebSocket market data v2 `l2` feed, from which the best
-- bid/ask are read off an order book kept here, with REST v1 polling for the
-- 24 h volume the feed lacks and for the symbols the feed does not deliver
-- (operator API spec 1, docs/operators.md).
--
-- markets(): GET /v1/symbols (lower-case, "btcusd") lists the live symbols;
-- base/quote come from their details (`base_currency`/`quote_currency`),
-- never from a split of the symbol: "gusdusd", "zecltc" and "1inchusd"
-- cannot be cut by length. One GET /v1/symbols/details/all gives every
-- symbol's details at once (not in Gemini's docs, but answered); a listed
-- symbol it lacks is asked for alone, GET /v1/symbols/details/<symbol>.
-- Our `symbol` is the details' upper-case one ("BTCUSD"), the name of the
-- feed and of /v1/pubticker. Markets with status "closed" (no book) and
-- other products than spot (perpetuals) are left out, and so is a symbol
-- without details: it is neither subscribed nor polled, and an emit naming
-- it would be counted unmapped by the engine. No pair is ever made from a
-- name: an allow-listed BTC_USDT that no market's details give (`btcusdt`
-- in the recordings, not in /v1/symbols) is reported and not asked for.
--
-- stream (wss://api.gemini.com/v2/marketdata): one subscribe per socket, at
-- most options.symbols_per_conn symbols each,
--   {"type":"subscribe","subscriptions":[{"name":"l2","symbols":[...]}]}
-- Gemini sends no ack. For each symbol the first `l2_updates` is the whole
-- book (every level in `changes`, with `trades`, the recent trades, and
-- `auction_events`); the later ones carry only changed levels. A change
-- ["buy"|"sell", price, quantity] gives a level's new total quantity (not a
-- difference), "0" removing the level. So a book started from the message
-- that carries `trades` and updated with every change is, after each
-- message, the exchange's book: its highest buy level is the best bid (no
-- buyer offers more) and its lowest sell level the best ask (no seller asks
-- less), each with its quantity as the size. A change is never a ticker by
-- itself: it may be a level deep in the book. `trade` messages and the
-- snapshot's trades give `last`; the snapshot's list is newest-first for
-- some symbols and oldest-first for others, so the last trade is the one
-- with the latest timestamp (then the highest event_id), not a position.
-- Every book or trade message emits the top of the book with that last
-- trade, once both sides have a level; ts is nil (the v2 book has no time,
-- and a trade's time would date the trade, not the quote). Heartbeats
-- ({"type":"heartbeat"}, about every 5 s; nothing is sent back) and anything
-- else are not data. A reconnect starts every book of that socket afresh.
--
-- poll(): GET /v1/pubticker/<symbol> (bid, ask, last, `volume.<BASE>` =
-- 24 h base volume, `volume.timestamp` in ms, a number or a string), one
-- request per symbol (Gemini has no all-symbols ticker with bid/ask). At
-- most options.poll_max requests per poll: first, taking turns, the symbols
-- the open stream does not deliver (the whole REST ticker), then, also in
-- turns, those it does (their volume only: the stream's quote and last are
-- newer than the REST answer's). /v2/ticker/<symbol> is not used: it has
-- bid/ask and `close` but neither volume nor time. options.poll_fallback =
-- false asks no quote for the symbols a socket subscribes (delivered or
-- not yet), and options.poll_volume = false no volume for those the stream
-- delivers: the replay profile sets both, as the recordings hold one
-- pubticker, and every other request would be a 404.
--
-- Prices are passed to x.emit exactly as Gemini wrote them (JSON strings).

local rest = require "rest"
local market = require "market"
local options = require "options"
local batch = require "batch"
local stream = require "stream"
local dec = require("values").dec

local TIMEOUT_S = 15
local DEFAULT_SYMBOLS_PER_CONN = 50
local DEFAULT_POLL_MAX = 5

-- Filled by markets() and read by the others (same Lua state, rerun at every load).
local idx = nil -- lib/market.lua's index of the spot markets

-- Stream coverage, shared by the stream callbacks and poll() (lib/stream.lua):
-- which socket subscribes each symbol and whether its current connection
-- delivered a ticker for it.
local coverage = stream.coverage()
-- books[conn id][symbol]: the order book of each symbol on that connection.
local books = {}
-- Where poll() resumes in each of its two lists when it cannot ask for all.
local turns = { quote = 0, volume = 0 }

-- Gemini explains refusals as {"result":"error","reason":...,"message":...}.
local function get_json(x, path, what)
  return rest.get_json(x, path, what, { timeout = TIMEOUT_S, detail = "message" })
end

-- volume.timestamp as integer ms: a JSON number, or digits in a string.
local function ms(v)
  if type(v) == "string" and v:match("^%d+$") then v = tonumber(v) end
  return type(v) == "number" and math.tointeger(v) or nil
end

-- ---------------------------------------------------------------------------
-- Markets
-- ---------------------------------------------------------------------------

-- Details of the listed symbols, by lower-case symbol: /details/all first,
-- then one request per listed symbol it lacks (one failing is logged and
-- its symbol left out, not a reason to list none).
local function load_details(x, listed)
  local details = {}
  local ok, all = pcall(get_json, x, "/v1/symbols/details/all", "symbols/details/all")
  if ok and type(all) == "table" then
    for _, d in ipairs(all) do
      if type(d) == "table" and type(d.symbol) == "string" then details[d.symbol:lower()] = d end
    end
  else
    x.log.warn(ok and "symbols/details/all: expected an array" or tostring(all))
  end
  local missing = {}
  for _, s in ipairs(listed) do
    if type(s) == "string" and s:match("^%w+$") and not details[s:lower()] then
      missing[#missing + 1] = s
    end
  end
  local _, err = batch.each(missing, function(s)
    local d = get_json(x, "/v1/symbols/details/" .. s, "symbols/details/" .. s)
    if type(d) == "table" then details[s:lower()] = d end
  end, "details requests")
  if err then x.log.warn(err) end
  return details
end

local function load_markets(x)
  local listed = rest.array(get_json(x, "/v1/symbols", "symbols"), "symbols")
  local details = load_details(x, listed)
  idx = market.index(x, listed, function(s)
    local d = details[s:lower()]
    if not d then return nil, "without details" end
    if d.status == "closed" then return nil, "closed" end
    if d.product_type ~= nil and d.product_type ~= "spot" then return nil, "not spot" end
    return { symbol = type(d.symbol) == "string" and d.symbol or s:upper(),
             base = d.base_currency, quote = d.quote_currency }
  end, "symbols")
  return idx.list
end

-- ---------------------------------------------------------------------------
-- Poll
-- ---------------------------------------------------------------------------

-- Appends up to n symbols of list to out, continuing where the previous
-- poll stopped in that list (turns[which]).
local function take(list, n, which, out)
  if n <= 0 or #list == 0 then return end
  if #list <= n then
    for _, s in ipairs(list) do out[#out + 1] = s end
    return
  end
  local from = turns[which] % #list
  for k = 0, n - 1 do out[#out + 1] = list[(from + k) % #list + 1] end
  turns[which] = from + n
end

-- One symbol's REST ticker: all of it, or only the volume when the stream
-- delivers the symbol (checked when the answer arrives: the request waited).
local function pubticker(x, sym)
  local doc = get_json(x, "/v1/pubticker/" .. sym, "pubticker/" .. sym)
  if type(doc) ~= "table" then
    error("pubticker/" .. sym .. ": expected an object", 0)
  end
  -- The volume object is keyed by currency code: {"BTC":..., "USD":..., "timestamp":...}.
  local vol = type(doc.volume) == "table" and doc.volume or {}
  local t = { symbol = sym, volume = dec(vol[idx.by_symbol[sym].base]), ts = ms(vol.timestamp) }
  if not coverage:covered(sym) then
    t.bid, t.ask, t.last = dec(doc.bid), dec(doc.ask), dec(doc.last)
  elseif t.volume == nil then
    return nil -- nothing the stream lacks
  end
  return t
end

local function poll(x)
  if not idx then load_markets(x) end -- markets() normally ran at load
  local symbols = market.targets(x, idx)
  local volume = {}
  if options.flag(x, "poll_volume") then
    for _, s in ipairs(symbols) do
      if coverage:covered(s) then volume[#volume + 1] = s end
    end
  end
  local quote = coverage:to_poll(x, symbols)
  local max = options.integer(x, "poll_max", DEFAULT_POLL_MAX, 1, 1000)
  local ask = {}
  take(quote, max, "quote", ask)
  take(volume, max - #ask, "volume", ask)
  -- One symbol failing must not hold back the others' data.
  batch.emit_each(x, ask, function(sym) return pubticker(x, sym) end, "symbols")
end

-- ---------------------------------------------------------------------------
-- Stream (market data v2, l2)
-- ---------------------------------------------------------------------------

-- One side of a book: qty[price] and text[price] (the level's quantity and
-- price as Gemini wrote them), keyed by the price's value so that "1.50"
-- and "1.5" are one level; best is the best price, nil when it has to be
-- looked for again (a new side, or its best level was removed).
local function new_side(higher)
  return { qty = {}, text = {}, best = nil, higher = higher }
end

local function better(side, p, q)
  if side.higher then return p > q end
  return p < q
end

-- One change: the level's new total quantity, "0" removing it.
local function set_level(side, price, qty)
  local p, q = tonumber(price), tonumber(qty)
  if not p or not q or p <= 0 or q < 0 then return end -- malformed row
  if q == 0 then
    side.qty[p], side.text[p] = nil, nil
    if side.best == p then side.best = nil end
  else
    side.qty[p], side.text[p] = qty, price
    if side.best ~= nil and better(side, p, side.best) then side.best = p end
  end
end

local function best(side)
  if side.best == nil then
    for p in pairs(side.qty) do
      if side.best == nil or better(side, p, side.best) then side.best = p end
    end
  end
  return side.best
end

-- A trade (snapshot list or `trade` message) becomes `last` when it is newer
-- than the one `last` came from: by timestamp, then by event_id.
local function note_trade(book, t)
  if type(t) ~= "table" or type(t.timestamp) ~= "number" or dec(t.price) == nil then return end
  local id = type(t.event_id) == "number" and t.event_id or 0
  if book.last_ts == nil or t.timestamp > book.last_ts
      or t.timestamp == book.last_ts and id >= book.last_id then
    book.last, book.last_ts, book.last_id = t.price, t.timestamp, id
  end
end

-- The top of the book with the last trade, once both sides have a level
-- (a one-sided book is no rate).
local function emit_top(x, sym, book, conn)
  local b, a = best(book.bids), best(book.asks)
  if b == nil or a == nil then return end
  x.emit({
    symbol = sym,
    bid = book.bids.text[b], ask = book.asks.text[a],
    bid_size = book.bids.qty[b], ask_size = book.asks.qty[a],
    last = book.last, ts = nil,
  })
  coverage:delivered(sym, conn.id)
end

local function on_l2(x, doc, conn, mine)
  local sym = doc.symbol
  if type(doc.changes) ~= "table" then return end
  local book = mine[sym]
  if doc.trades ~= nil then
    -- The first message of a symbol: the whole book, which replaces ours.
    book = { bids = new_side(true), asks = new_side(false) }
    mine[sym] = book
    if type(doc.trades) == "table" then
      for _, t in ipairs(doc.trades) do note_trade(book, t) end
    end
  elseif not book then
    return -- changes before the book they change: nothing to apply them to
  end
  for _, c in ipairs(doc.changes) do
    if type(c) == "table" then
      local side = c[1] == "buy" and book.bids or c[1] == "sell" and book.asks
      if side then set_level(side, c[2], c[3]) end
    end
  end
  emit_top(x, sym, book, conn)
end

local function connections(x, markets)
  if not idx then load_markets(x) end
  local url = stream.url(x, "/v2/marketdata")
  local symbols = market.targets(x, idx)
  local per = options.integer(x, "symbols_per_conn", DEFAULT_SYMBOLS_PER_CONN, 1)
  return coverage:connections(x, url, symbols, per, "l2 subscriptions")
end

-- Runs after every (re)connect: subscribe again, with no book yet (each
-- comes whole as the first message of its symbol).
local function on_open(x, ws, conn)
  coverage:opened(conn.id)
  books[conn.id] = {}
  stream.send_json(x, ws, {
    type = "subscribe", subscriptions = { { name = "l2", symbols = conn.symbols } },
  }, "subscribe")
end

local function on_close(x, conn, code, reason)
  coverage:closed(conn.id)
  books[conn.id] = nil
end

-- Never raises and never waits. Only symbols this socket subscribed are
-- booked: Gemini sends no others.
local function on_message(x, ws, msg, conn)
  local doc = stream.decode(x, msg)
  if not doc or not coverage:subscribes(conn.id, doc.symbol) then return end
  local mine = books[conn.id]
  if not mine then return end
  if doc.type == "l2_updates" then
    on_l2(x, doc, conn, mine)
  elseif doc.type == "trade" then
    local book = mine[doc.symbol]
    if book then
      note_trade(book, doc)
      emit_top(x, doc.symbol, book, conn)
    end
  end
  -- heartbeat, auction and candle messages: nothing to store
end

return {
  name = "gemini",
  spec = 1,
  rest = "https://api.gemini.com",
  ws = "wss://api.gemini.com",
  poll_every = 10,
  -- Up to options.poll_max requests per poll: 30 a minute at the defaults,
  -- plus two or so when markets() runs. Gemini's public REST limit is 120
  -- requests a minute, and it asks for no more than one a second.
  budget = { requests = 40, per = 60 },
  max_pairs = 5000,
  -- Gemini sends a heartbeat about every 5 s.
  idle_timeout = 30,
  -- A symbol's first l2_updates is its whole book: hundreds of levels (679
  -- for GRTUSD in the recording) and 50 trades, more than the default
  -- 10 ms allows on a loaded machine or a sanitizer build.
  deadlines = { message_ms = 50 },
  options = {
    -- l2 symbols per socket: each sends its whole book on subscribing.
    symbols_per_conn = DEFAULT_SYMBOLS_PER_CONN,
    -- REST tickers per poll.
    poll_max = DEFAULT_POLL_MAX,
    -- false: no REST quote for the symbols a socket subscribes.
    poll_fallback = true,
    -- false: no REST volume for the symbols the stream delivers.
    poll_volume = true,
  },
  markets = load_markets,
  poll = poll,
  stream = {
    connections = connections,
    on_open = on_open,
    on_message = on_message,
    on_close = on_close,
    -- No on_ping: v2 needs no application-level ping; WebSocket ping frames.
    ping_every = 30,
  },
}
