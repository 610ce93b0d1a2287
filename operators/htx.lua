-- HTX (formerly Huobi Global) spot: full order-book snapshots over a gzip
-- WebSocket for the best bid/ask, with REST polling for the last price and
-- 24 h volume, and for the pairs the stream does not deliver (operator API
-- spec 1, docs/operators.md).
--
-- API: HTX spot API v1 on api.huobi.pro (still the documented host; the
-- recordings date from April 2021, when the exchange was called Huobi):
-- REST /v1/common/symbols, /market/tickers and /market/detail/merged, and
-- the market WebSocket wss://api.huobi.pro/ws. /v1/common/symbols is the v1
-- symbol list (its newer equivalent, /v2/settings/common/symbols, renames
-- every field); it is what was recorded, so it is what this reads.
--
-- markets(): /v1/common/symbols, "online" symbols only. A symbol is a
-- lower-case concatenation ("btcusdt", "fil3susdt") with no separator, so
-- base/quote are the entry's own `base-currency`/`quote-currency`, never a
-- split. `ht` and `husd` are HTX's own token and stablecoin, kept as such.
--
-- stream: one {"sub":"market.<symbol>.depth.step0","id":"<symbol>"} per
-- symbol, for every market or, with a pairs allow-list, the allowed ones, at
-- most options.subs_per_conn per socket. depth.step0 is the channel that was
-- recorded; HTX's lighter `bbo` and `ticker` channels were not, so nothing
-- here could show this operator reads them right. Every depth.step0 push is
-- a whole snapshot of the top 150 levels, unaggregated (step0), bids from
-- the highest price down and asks from the lowest up, and it replaces the
-- previous one: its first bid and first ask are therefore the best bid and
-- ask at tick.ts, whatever came before (nothing is applied to an older
-- book, so no lost or reordered message can leave a stale top). A push with
-- an empty side has no best price on that side and is skipped. Quirks:
--   * every frame is binary gzip: x.gunzip first; a frame that does not
--     inflate is ignored;
--   * HTX sends {"ping":N} every 5 s and drops the connection after two
--     unanswered ones: answered at once with {"pong":N}, N copied as sent;
--   * acks ({"status":"ok","subbed":...}) and pings are not data; a refused
--     subscription ({"status":"error","err-msg":...,"id":<symbol>}) is
--     logged and leaves that symbol to poll();
--   * prices and sizes are JSON numbers, often in exponent form (9.121E-7):
--     passed to x.emit as the numbers they are (the engine writes them in
--     positional form), never through tostring.
--
-- poll() (the stream has no last price or volume) has two strategies:
--   * a short allow-list (at most options.per_symbol_max pairs): per symbol,
--     /market/detail/merged?symbol= (bid and ask as [price, size], close,
--     amount, top-level ts);
--   * otherwise one /market/tickers for every pair (bid, bidSize, ask,
--     askSize, close, amount, top-level ts), narrowed to the allow-list.
-- `close` is the last price and `amount` the 24 h base volume (`vol` is the
-- quote turnover). For a symbol the open stream delivers, only last, volume
-- and ts are emitted: the engine keeps the stream's bid/ask, which are newer
-- than the REST quote. A symbol /market/tickers lists but the markets do
-- not (the recorded docs example's `smtusdt`) is emitted by symbol alone,
-- for the engine to count as unmapped. HTX answers errors with
-- {"status":"error","err-msg":...}, often with HTTP 200.

local rest = require "rest"
local market = require "market"
local options = require "options"
local batch = require "batch"
local stream = require "stream"
local values = require "values"
local dec, ms = values.dec, values.ms

local TIMEOUT_S = 15
local DEFAULT_PER_SYMBOL_MAX = 5
local DEFAULT_SUBS_PER_CONN = 100

-- The markets index (lib/market.lua), built by markets() and read by poll()
-- and the stream (same Lua state, rebuilt at every load).
local idx = nil

-- Stream coverage (lib/stream.lua): which socket subscribes each symbol,
-- whether its current connection delivered a snapshot, and refusals.
local coverage = stream.coverage()

-- GET and decode; HTX reports failures in the body ({"status":"error",
-- "err-code":...,"err-msg":...}), with HTTP 200 as often as not.
local function get_ok(x, path, query, what)
  local doc = rest.get_json(x, path, what, { query = query, timeout = TIMEOUT_S, detail = "err-msg" })
  if type(doc) ~= "table" then
    error(what .. ": expected an object", 0)
  end
  if doc.status ~= "ok" then
    error(what .. ": " .. tostring(doc["err-msg"] or doc.status):sub(1, 200), 0)
  end
  return doc
end

local function load_markets(x)
  local doc = get_ok(x, "/v1/common/symbols", nil, "common/symbols")
  idx = market.index(x, doc.data, function(s)
    if s.state ~= "online" then
      return nil, "not online"
    end
    return { symbol = s.symbol, base = s["base-currency"], quote = s["quote-currency"] }
  end, "common/symbols")
  return idx.list
end

-- The REST ticker of a symbol the stream delivers keeps only what the stream
-- lacks (checked when the answer arrives: the request waited).
local function without_stream_fields(t)
  if coverage:covered(t.symbol) then
    t.bid, t.ask, t.bid_size, t.ask_size = nil, nil, nil, nil
  end
  return t
end

-- /market/detail/merged?symbol=: tick.bid and tick.ask are [price, size].
local function merged_ticker(x, sym)
  local what = "detail/merged " .. sym
  local doc = get_ok(x, "/market/detail/merged", { symbol = sym }, what)
  local t = doc.tick
  -- The answer names its symbol only in ch: one for another symbol is not ours.
  if type(t) ~= "table" or doc.ch ~= "market." .. sym .. ".detail.merged" then
    error(what .. ": expected the tick of " .. sym, 0)
  end
  local bid = type(t.bid) == "table" and t.bid or {}
  local ask = type(t.ask) == "table" and t.ask or {}
  return without_stream_fields({
    symbol = sym,
    bid = dec(bid[1]), bid_size = dec(bid[2]), ask = dec(ask[1]), ask_size = dec(ask[2]),
    last = dec(t.close), volume = dec(t.amount), ts = ms(doc.ts),
  })
end

-- Every pair in one request; emits those keep() wants (market.keeper).
local function poll_all(x, keep)
  local doc = get_ok(x, "/market/tickers", nil, "market/tickers")
  if type(doc.data) ~= "table" then
    error("market/tickers: no data array", 0)
  end
  local ts, list = ms(doc.ts), {}
  for _, t in ipairs(doc.data) do
    local sym = type(t) == "table" and t.symbol
    if type(sym) == "string" and keep(sym) then
      list[#list + 1] = without_stream_fields({
        symbol = sym,
        bid = dec(t.bid), bid_size = dec(t.bidSize), ask = dec(t.ask), ask_size = dec(t.askSize),
        last = dec(t.close), volume = dec(t.amount), ts = ts,
      })
    end
  end
  x.emit_many(list)
end

local function poll(x)
  if not idx then load_markets(x) end -- markets() normally ran at load
  local symbols, narrowed = market.targets(x, idx)
  if narrowed and #symbols <= options.integer(x, "per_symbol_max", DEFAULT_PER_SYMBOL_MAX, 0) then
    -- One symbol failing must not hold back the others' data.
    return batch.emit_each(x, symbols, function(sym) return merged_ticker(x, sym) end, "symbols")
  end
  return poll_all(x, market.keeper(idx, symbols, narrowed))
end

-- ---------------------------------------------------------------------------
-- Stream
-- ---------------------------------------------------------------------------

local function connections(x, markets)
  if not idx then load_markets(x) end
  local url = stream.url(x, "/ws")
  -- The symbol is a segment of a dotted channel name.
  local symbols = stream.nameable(x, (market.targets(x, idx)), "^%w+$", "a channel")
  local per = options.integer(x, "subs_per_conn", DEFAULT_SUBS_PER_CONN, 1)
  return coverage:connections(x, url, symbols, per, "depth.step0 subscriptions")
end

-- Runs after every (re)connect: subscribe again, each symbol its own id so
-- that a refusal names it; what the previous connection delivered no
-- longer counts.
local function on_open(x, ws, conn)
  coverage:opened(conn.id)
  for _, sym in ipairs(conn.symbols) do
    stream.send_json(x, ws, { sub = "market." .. sym .. ".depth.step0", id = sym }, "subscribe")
  end
end

-- Never raises and never waits.
local function on_message(x, ws, msg, conn)
  local text = x.gunzip(msg)
  if not text then return end
  local doc = stream.decode(x, text)
  if not doc then return end
  if doc.ping ~= nil then
    -- Echo the number as HTX wrote it: a float round trip could alter it.
    local n = text:match('"ping"%s*:%s*(%d+)')
    ws:send(n and ('{"pong":' .. n .. '}') or x.json.encode({ pong = doc.ping }))
    return
  end
  if doc.status == "error" then
    coverage:refuse(type(doc.id) == "string" and doc.id or nil, conn.id)
    x.log.warn("stream: " .. tostring(doc.id):sub(1, 40) .. " refused: "
      .. tostring(doc["err-msg"]):sub(1, 200))
    return
  end
  -- Acks carry "subbed", not "ch"; trades and other channels are not quotes.
  local sym = type(doc.ch) == "string" and doc.ch:match("^market%.(%w+)%.depth%.step0$")
  local t = doc.tick
  if not sym or type(t) ~= "table" or type(t.bids) ~= "table" or type(t.asks) ~= "table" then
    return
  end
  local bid, ask = t.bids[1], t.asks[1]
  if type(bid) ~= "table" or type(ask) ~= "table" then return end
  x.emit({
    symbol = sym,
    bid = dec(bid[1]), bid_size = dec(bid[2]), ask = dec(ask[1]), ask_size = dec(ask[2]),
    ts = ms(t.ts),
  })
  coverage:delivered(sym, conn.id)
end

return {
  name = "htx",
  spec = 1,
  rest = "https://api.huobi.pro",
  ws = "wss://api.huobi.pro",
  poll_every = 10,
  -- At most options.per_symbol_max (5) requests per poll, every 10 s: 30 a
  -- minute. HTX's spot docs ("Rate Limiting Rule") allow an IP 10 requests a
  -- second on public endpoints (800 a second on market data today).
  budget = { requests = 60, per = 60 },
  max_pairs = 5000,
  -- HTX pings every 5 s, so 30 s of silence is a dead connection.
  idle_timeout = 30,
  options = {
    -- Up to this many allowed pairs, poll per symbol; beyond, one all-pairs call.
    per_symbol_max = DEFAULT_PER_SYMBOL_MAX,
    -- depth.step0 subscriptions per socket.
    subs_per_conn = DEFAULT_SUBS_PER_CONN,
  },
  markets = load_markets,
  poll = poll,
  stream = {
    connections = connections,
    on_open = on_open,
    on_message = on_message,
    on_close = coverage:close_handler(),
    -- No on_ping: HTX pings the client (answered in on_message); the
    -- engine's WebSocket ping frames are answered by HTX's server.
    ping_every = 30,
  },
}
