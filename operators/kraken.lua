-- Kraken spot: a WebSocket v1 ticker stream, with REST polling for the pairs
-- the stream does not deliver (operator API spec 1, docs/operators.md).
--
-- Symbols: a Kraken pair has three names. The AssetPairs key ("XXBTZUSD")
-- is what Ticker answers are keyed by, so it is our `symbol`; `altname`
-- ("XBTUSD") is what REST requests should name; `wsname` ("XBT/USD") is the
-- WebSocket v1 name. base/quote come from wsname, not from the `base`/`quote`
-- fields: those carry Kraken's legacy X/Z class prefixes ("XXBT", "ZUSD")
-- on old assets and none on newer ones ("ADA", "USDT"), so stripping them
-- would be a guess. wsname is always the plain codes; `aliases` then maps
-- XBT -> BTC and XDG -> DOGE. Entries without a wsname (".d" dark-pool
-- pairs) have no public ticker and are skipped.
--
-- stream (wss://ws.kraken.com, v1): one subscribe per socket,
-- {"event":"subscribe","pair":[wsnames],"subscription":{"name":"ticker"}},
-- for every pair or, with a pairs allow-list, the allowed ones (at most
-- options.pairs_per_conn per socket). A data message is an array
-- [channelID, {a,b,c,v,...}, "ticker", wsname]; the wsname is mapped back
-- to the AssetPairs key through markets() (an unknown wsname is emitted as
-- is and counted unmapped by the engine, never guessed). Fields as in REST.
-- heartbeat/pong/systemStatus/subscriptionStatus events are not data; a
-- failed subscription is logged with Kraken's errorMessage. JSON pings
-- ({"event":"ping"}) every ping_every seconds.
--
-- poll(): /0/public/Ticker for the pairs the stream does not deliver: all of
-- them when no stream runs or it is down, none when it delivers every pair.
-- A pair counts as delivered once the open connection carried a ticker for
-- it (Kraken sends one per pair right after subscribing, so a poll just
-- after a (re)connect may ask REST once for pairs about to arrive). With a
-- pairs allow-list, the needed pairs' altnames as a comma list (chunked);
-- without one, no `pair` parameter, which Kraken documents as "all tradeable
-- pairs" (one request instead of one per chunk), keeping the needed ones.
-- options.poll_fallback = false turns the REST fallback off for the pairs a
-- socket subscribes. Kraken answers errors with HTTP 200 and a non-empty
-- `error` array.

local rest = require "rest"
local market = require "market"
local options = require "options"
local batch = require "batch"
local stream = require "stream"
local dec = require("values").dec

local CHUNK = 50 -- altnames per Ticker request (keeps the URL short)
local TIMEOUT_S = 15

-- Filled by markets() and read by poll() (same Lua state, rerun at every load).
local mk = nil    -- { idx = market.index(...) (markets keyed by AssetPairs key, with
                  --   altname and wsname), by_alt = {altname = key}, by_ws = {wsname = key} }

local DEFAULT_PAIRS_PER_CONN = 200

-- Stream coverage, shared by the stream callbacks and poll() (lib/stream.lua):
-- which socket subscribes each pair (by AssetPairs key), whether its current
-- connection carried a ticker for it, and Kraken's per-pair refusals.
local coverage = stream.coverage()
local reqid = 0

-- arr[i] of a Kraken [price, whole-lot volume, lot volume] style array.
local function at(arr, i)
  if type(arr) ~= "table" then return nil end
  return dec(arr[i])
end

-- Kraken's refusals carry no detail worth decoding (errors that matter come
-- with HTTP 200, see result_of).
local function get_json(x, path, query, what)
  return rest.get_json(x, path, what, { query = query, timeout = TIMEOUT_S })
end

-- The `result` of a Kraken answer. Messages in `error` start with a severity:
-- "E..." fails the call, "W..." is a warning that comes with a result.
local function result_of(x, doc, what)
  if type(doc) ~= "table" then
    error(what .. ": expected an object", 0)
  end
  local errs = doc.error
  if errs ~= nil and type(errs) ~= "table" then
    error(what .. ": malformed error field", 0)
  end
  local hard = {}
  for _, e in ipairs(errs or {}) do
    local text = type(e) == "string" and e or "(non-string error)"
    if text:sub(1, 1) == "W" then
      x.log.warn(what .. ": " .. text:sub(1, 200))
    else
      hard[#hard + 1] = text:sub(1, 200)
    end
  end
  if #hard > 0 then
    error(what .. ": " .. table.concat(hard, "; "), 0)
  end
  if type(doc.result) ~= "table" then
    error(what .. ": no result object", 0)
  end
  return doc.result
end

local function load_markets(x)
  local result = result_of(x, get_json(x, "/0/public/AssetPairs", nil, "AssetPairs"), "AssetPairs")
  local idx = market.index(x, result, function(p, key)
    local b, q
    if type(p.wsname) == "string" then b, q = p.wsname:match("^([^/]+)/([^/]+)$") end
    if not b then return nil, "without a wsname (dark pool)" end
    -- altname is the documented request name; the key also works as one.
    local alt = type(p.altname) == "string" and p.altname ~= "" and p.altname or key
    return { symbol = key, base = b, quote = q, wsname = p.wsname, altname = alt }
  end, "AssetPairs")
  local by_alt, by_ws = {}, {}
  for _, m in ipairs(idx.list) do by_alt[m.altname], by_ws[m.wsname] = m.symbol, m.symbol end
  mk = { idx = idx, by_alt = by_alt, by_ws = by_ws }
  return idx.list
end

-- One Ticker entry: a = ask, b = bid as [price, whole-lot volume, lot volume];
-- c = [last price, lot volume]; v = volume [today, last 24 h]. No timestamp.
local function ticker(symbol, t)
  return {
    symbol = symbol,
    bid = at(t.b, 1), ask = at(t.a, 1),
    bid_size = at(t.b, 3), ask_size = at(t.a, 3),
    last = at(t.c, 1), volume = at(t.v, 2), ts = nil,
  }
end

-- One Ticker request (pairlist nil = every pair); emits its tickers, except
-- those of pairs the stream delivered meanwhile (the request waited, and the
-- stream's ticker is the newer one).
local function fetch(x, pairlist)
  local query = pairlist and { pair = pairlist } or nil
  local result = result_of(x, get_json(x, "/0/public/Ticker", query, "Ticker"), "Ticker")
  local list = {}
  for key, t in pairs(result) do
    if type(key) == "string" and type(t) == "table" then
      -- Answers are keyed by the AssetPairs key; map an altname key back
      -- to it should Kraken ever answer with the name we asked.
      local symbol = (mk.idx.by_symbol[key] or not mk.by_alt[key]) and key or mk.by_alt[key]
      -- Not if the stream delivers it: its socket is open and has carried a
      -- ticker for it (and Kraken did not refuse it since).
      if not coverage:covered(symbol) then
        list[#list + 1] = ticker(symbol, t)
      end
    end
  end
  table.sort(list, function(l, r) return l.symbol < r.symbol end)
  x.emit_many(list)
end

local function poll(x)
  if not mk then load_markets(x) end -- markets() normally ran at load
  local keys, listed = market.targets(x, mk.idx)
  -- The target pairs the stream does not deliver (with poll_fallback = false:
  -- those no socket subscribes).
  local need = coverage:to_poll(x, keys)
  if #need == 0 then
    return -- the stream delivers every pair
  end
  if not listed then
    -- No allow-list: one request for every pair, keeping those still needed.
    -- (Never a list of names: Kraken fails a whole request naming one pair
    -- it does not know, e.g. one whose subscription it refused.)
    return fetch(x, nil)
  end
  -- One failing chunk must not hold back the others' data.
  local _, err = batch.each(batch.chunks(need, CHUNK), function(part)
    local alts = {}
    for _, k in ipairs(part) do alts[#alts + 1] = mk.idx.by_symbol[k].altname end
    fetch(x, table.concat(alts, ","))
  end, "requests")
  if err then error(err, 0) end
end

-- ---------------------------------------------------------------------------
-- Stream (WebSocket API v1)
-- ---------------------------------------------------------------------------

local function connections(x, markets)
  if not mk then load_markets(x) end
  local url = stream.url(x)
  local keys = market.targets(x, mk.idx)
  local per = options.integer(x, "pairs_per_conn", DEFAULT_PAIRS_PER_CONN, 1)
  return coverage:connections(x, url, keys, per, "ticker subscriptions")
end

-- Runs after every (re)connect: subscribe again, by wsname; what the
-- previous connection delivered no longer counts.
local function on_open(x, ws, conn)
  coverage:opened(conn.id)
  local wsnames = {}
  for _, k in ipairs(conn.symbols) do wsnames[#wsnames + 1] = mk.idx.by_symbol[k].wsname end
  reqid = reqid + 1
  stream.send_json(x, ws, {
    event = "subscribe", reqid = reqid, pair = wsnames, subscription = { name = "ticker" },
  }, "subscribe")
end

local function on_ping(x, ws)
  reqid = reqid + 1
  ws:send(x.json.encode({ event = "ping", reqid = reqid }))
end

-- Events: nothing to store; a refused subscription is logged and left to poll().
local function on_event(x, doc, conn)
  local ev = doc.event
  if ev == "subscriptionStatus" and doc.status == "error" then
    local key = mk and type(doc.pair) == "string" and mk.by_ws[doc.pair]
    coverage:refuse(key, conn.id)
    x.log.warn("stream: subscribe " .. tostring(doc.pair):sub(1, 40) .. " refused: "
      .. tostring(doc.errorMessage):sub(1, 200))
  elseif ev == "systemStatus" and doc.status ~= "online" then
    x.log.warn("stream: system status " .. tostring(doc.status):sub(1, 40))
  elseif ev == "error" then
    x.log.warn("stream: " .. tostring(doc.errorMessage):sub(1, 200))
  end
  -- heartbeat, pong, subscribed/unsubscribed acks: nothing to do
end

-- Never raises and never waits.
local function on_message(x, ws, msg, conn)
  local doc = stream.decode(x, msg)
  if not doc then return end
  if doc.event ~= nil then
    return on_event(x, doc, conn)
  end
  -- [channelID, payload, "ticker", wsname]
  local n = #doc
  if n < 4 or doc[n - 1] ~= "ticker" or type(doc[2]) ~= "table" or type(doc[n]) ~= "string" then
    return
  end
  local wsname = doc[n]
  local key = mk and mk.by_ws[wsname]
  x.emit(ticker(key or wsname, doc[2]))
  coverage:delivered(key, conn.id)
end

return {
  name = "kraken",
  spec = 1,
  rest = "https://api.kraken.com",
  ws = "wss://ws.kraken.com",
  poll_every = 10,
  aliases = { XBT = "BTC", XDG = "DOGE" },
  -- One request per poll (per 50 allowed pairs): 6 a minute at poll_every 10;
  -- Kraken's public REST limit is about one call a second.
  budget = { requests = 20, per = 60 },
  max_pairs = 5000,
  -- Kraken sends a heartbeat every second on an idle connection.
  idle_timeout = 30,
  options = {
    -- Ticker subscriptions per socket.
    pairs_per_conn = DEFAULT_PAIRS_PER_CONN,
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
    ping_every = 30,
  },
}
