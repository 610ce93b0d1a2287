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

local CHUNK = 50 -- altnames per Ticker request (keeps the URL short)
local TIMEOUT_S = 15

-- Filled by markets() and read by poll() (same Lua state, rerun at every load).
local mk = nil    -- { keys = {key...} sorted, by_key = {key = altname}, by_alt = {altname = key},
                  --   by_pair = {BASE_QUOTE = {key...}}, ws_by_key = {key = wsname}, by_ws = {wsname = key} }
local warned = {} -- allow-list entries already reported as unknown (log once)

local DEFAULT_PAIRS_PER_CONN = 200

-- Stream coverage, shared by the stream callbacks and poll() (same Lua state;
-- the stream callbacks never wait, so no update is ever half done):
--   conns[id] = { open = bool, gen = n }: gen changes on every open and
--               close, so what an earlier connection delivered no longer
--               counts;
--   planned[key] = id of the socket that subscribes the pair;
--   got[key] = gen of its socket when that socket delivered a ticker;
--   refused[key] = gen when Kraken refused the subscription.
local conns, planned, got, refused = {}, {}, {}, {}
local reqid = 0

-- A price/volume as the engine accepts it: a string kept as written, a number
-- passed through; anything else counts as absent.
local function dec(v)
  local t = type(v)
  if t == "string" or t == "number" then return v end
  return nil
end

-- arr[i] of a Kraken [price, whole-lot volume, lot volume] style array.
local function at(arr, i)
  if type(arr) ~= "table" then return nil end
  return dec(arr[i])
end

local function get_json(x, path, query, what)
  local status, body = x.http.get(x.op.rest .. path, { query = query, timeout = TIMEOUT_S })
  if not status then
    error(what .. ": " .. tostring(body), 0)
  end
  if status ~= 200 then
    error(what .. ": HTTP " .. tostring(status), 0)
  end
  local ok, doc = pcall(x.json.decode, type(body) == "string" and body or "")
  if not ok then
    error(what .. ": invalid JSON", 0)
  end
  return doc
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

-- Upper-cased and aliased, the way the engine canonicalises base/quote.
local function canon(x, code)
  code = string.upper(code)
  local aliases = x.op.aliases
  return type(aliases) == "table" and type(aliases[code]) == "string" and aliases[code] or code
end

-- "btc/usdt", "BTC-USDT", "BTC_USDT" -> "BTC_USDT" (nil when malformed).
local function norm_pair(x, p)
  if type(p) ~= "string" then return nil end
  local b, q = string.upper(p):match("^([^_/%-]+)[_/%-]([^_/%-]+)$")
  if not b then return nil end
  return canon(x, b) .. "_" .. canon(x, q)
end

local function load_markets(x)
  local result = result_of(x, get_json(x, "/0/public/AssetPairs", nil, "AssetPairs"), "AssetPairs")
  local list, by_key, by_alt, by_pair, skipped = {}, {}, {}, {}, 0
  local ws_by_key, by_ws = {}, {}
  for key, p in pairs(result) do
    local b, q
    if type(key) == "string" and type(p) == "table" and type(p.wsname) == "string" then
      b, q = p.wsname:match("^([^/]+)/([^/]+)$")
    end
    if b then
      list[#list + 1] = { symbol = key, base = b, quote = q, wsname = p.wsname }
      -- altname is the documented request name; the key also works as one.
      local alt = type(p.altname) == "string" and p.altname ~= "" and p.altname or key
      by_key[key], by_alt[alt] = alt, key
      ws_by_key[key], by_ws[p.wsname] = p.wsname, key
      local pair = canon(x, b) .. "_" .. canon(x, q)
      by_pair[pair] = by_pair[pair] or {}
      table.insert(by_pair[pair], key)
    else
      skipped = skipped + 1
    end
  end
  if skipped > 0 then
    x.log.info("AssetPairs: skipped " .. skipped .. " entries without a wsname (dark pool or malformed)")
  end
  if #list == 0 then
    error("AssetPairs: no pairs with a wsname", 0)
  end
  table.sort(list, function(l, r) return l.symbol < r.symbol end) -- pairs() order is random
  for _, keys in pairs(by_pair) do table.sort(keys) end
  local keys = {}
  for i, m in ipairs(list) do keys[i] = m.symbol end
  mk = { keys = keys, by_key = by_key, by_alt = by_alt, by_pair = by_pair,
         ws_by_key = ws_by_key, by_ws = by_ws }
  return list
end

-- AssetPairs keys of the allow-list, through the markets (BTC_USDT ->
-- XBTUSDT); unknown pairs are logged once and skipped.
local function allowed_keys(x, wanted)
  local keys, seen = {}, {}
  for _, p in ipairs(wanted) do
    local pair = norm_pair(x, p)
    local found = pair and mk.by_pair[pair]
    if found then
      for _, k in ipairs(found) do
        if not seen[k] then seen[k], keys[#keys + 1] = true, k end
      end
    elseif not warned[tostring(p)] then
      warned[tostring(p)] = true
      x.log.warn("pairs: " .. tostring(p) .. " is not a market on kraken")
    end
  end
  return keys
end

-- The keys to deliver: the allow-list's, or every market's.
local function target_keys(x)
  local wanted = type(x.op.pairs) == "table" and x.op.pairs or {}
  if #wanted == 0 then
    return mk.keys, false
  end
  local keys = allowed_keys(x, wanted)
  if #keys == 0 then
    error("pairs: none of the configured pairs is a market on kraken", 0)
  end
  return keys, true
end

-- Whether the open stream delivers this pair: its socket is open and has
-- carried a ticker for it (and Kraken did not refuse it since).
local function covered(key)
  local id = planned[key]
  local c = id and conns[id]
  return c ~= nil and c.open and got[key] == c.gen and refused[key] ~= c.gen
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
      local symbol = (mk.by_key[key] or not mk.by_alt[key]) and key or mk.by_alt[key]
      if not covered(symbol) then
        list[#list + 1] = ticker(symbol, t)
      end
    end
  end
  table.sort(list, function(l, r) return l.symbol < r.symbol end)
  x.emit_many(list)
end

-- The target pairs the stream does not deliver (with poll_fallback = false:
-- those no socket subscribes).
local function uncovered(x, keys)
  local opts = type(x.op.options) == "table" and x.op.options or {}
  local fallback = opts.poll_fallback ~= false
  local out = {}
  for _, k in ipairs(keys) do
    if fallback and not covered(k) or not fallback and not planned[k] then
      out[#out + 1] = k
    end
  end
  return out
end

local function poll(x)
  if not mk then load_markets(x) end -- markets() normally ran at load
  local keys, listed = target_keys(x)
  local need = uncovered(x, keys)
  if #need == 0 then
    return -- the stream delivers every pair
  end
  if not listed then
    -- No allow-list: one request for every pair, keeping those still needed.
    -- (Never a list of names: Kraken fails a whole request naming one pair
    -- it does not know, e.g. one whose subscription it refused.)
    return fetch(x, nil)
  end
  local failed, first = 0, nil
  for i = 1, #need, CHUNK do
    local alts = {}
    for j = i, math.min(i + CHUNK - 1, #need) do alts[#alts + 1] = mk.by_key[need[j]] end
    -- One failing chunk must not hold back the others' data.
    local ok, err = pcall(fetch, x, table.concat(alts, ","))
    if not ok then
      failed, first = failed + 1, first or tostring(err)
    end
  end
  if first then
    error(first .. (failed > 1 and (" (and " .. (failed - 1) .. " more requests failed)") or ""), 0)
  end
end

-- ---------------------------------------------------------------------------
-- Stream (WebSocket API v1)
-- ---------------------------------------------------------------------------

local function connections(x, markets)
  if not mk then load_markets(x) end
  if type(x.op.ws) ~= "string" or x.op.ws == "" then
    error("stream: no ws URL configured", 0)
  end
  local keys = target_keys(x)
  local opts = type(x.op.options) == "table" and x.op.options or {}
  local per = math.tointeger(tonumber(opts.pairs_per_conn) or DEFAULT_PAIRS_PER_CONN)
  if not per or per < 1 then
    x.log.warn("options.pairs_per_conn must be a positive integer; using " .. DEFAULT_PAIRS_PER_CONN)
    per = DEFAULT_PAIRS_PER_CONN
  end
  local list = {}
  for i = 1, #keys, per do
    local id = #list + 1
    local wsnames = {}
    for j = i, math.min(i + per - 1, #keys) do
      wsnames[#wsnames + 1] = mk.ws_by_key[keys[j]]
      planned[keys[j]] = id
    end
    conns[id] = { open = false, gen = 0 }
    list[id] = { id = id, url = x.op.ws, wsnames = wsnames }
  end
  x.log.info("stream: " .. #keys .. " ticker subscriptions on " .. #list .. " connection(s)")
  return list
end

-- Runs after every (re)connect: subscribe again; what the previous
-- connection delivered no longer counts.
local function on_open(x, ws, conn)
  local c = conns[conn.id]
  if c then c.open, c.gen = true, c.gen + 1 end
  reqid = reqid + 1
  local ok, err = ws:send(x.json.encode({
    event = "subscribe", reqid = reqid, pair = conn.wsnames, subscription = { name = "ticker" },
  }))
  if not ok then
    error("subscribe: " .. tostring(err), 0)
  end
end

local function on_close(x, conn, code, reason)
  local c = conns[conn.id]
  if c then c.open, c.gen = false, c.gen + 1 end
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
    local c = conns[conn.id]
    if key and c then refused[key] = c.gen end
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
  local ok, doc = pcall(x.json.decode, msg)
  if not ok or type(doc) ~= "table" then return end
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
  local c = conns[conn.id]
  if key and c then got[key] = c.gen end
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
    on_close = on_close,
    ping_every = 30,
  },
}
