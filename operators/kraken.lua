-- Kraken spot, REST polling (operator API spec 1, docs/operators.md).
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
-- poll(): /0/public/Ticker. With a pairs allow-list, the allowed pairs' altnames
-- as a comma list (chunked); without one, no `pair` parameter, which Kraken
-- documents as "all tradeable pairs": one request instead of one per chunk.
-- Kraken answers errors with HTTP 200 and a non-empty `error` array.

local CHUNK = 50 -- altnames per Ticker request (keeps the URL short)
local TIMEOUT_S = 15

-- Filled by markets() and read by poll() (same Lua state, rerun at every load).
local mk = nil    -- { by_key = {key = altname}, by_alt = {altname = key}, by_pair = {BASE_QUOTE = {key...}} }
local warned = {} -- allow-list entries already reported as unknown (log once)

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
  mk = { by_key = by_key, by_alt = by_alt, by_pair = by_pair }
  return list
end

-- Altnames of the allow-list, through the markets (BTC_USDT -> XBTUSDT);
-- unknown pairs are logged once and skipped.
local function allowed_altnames(x, wanted)
  local alts, seen = {}, {}
  for _, p in ipairs(wanted) do
    local key = norm_pair(x, p)
    local found = key and mk.by_pair[key]
    if found then
      for _, k in ipairs(found) do
        if not seen[k] then seen[k], alts[#alts + 1] = true, mk.by_key[k] end
      end
    elseif not warned[tostring(p)] then
      warned[tostring(p)] = true
      x.log.warn("pairs: " .. tostring(p) .. " is not a market on kraken")
    end
  end
  return alts
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

-- One Ticker request (pairlist nil = every pair); emits its tickers.
local function fetch(x, pairlist)
  local query = pairlist and { pair = pairlist } or nil
  local result = result_of(x, get_json(x, "/0/public/Ticker", query, "Ticker"), "Ticker")
  local list = {}
  for key, t in pairs(result) do
    if type(key) == "string" and type(t) == "table" then
      -- Answers are keyed by the AssetPairs key; map an altname key back
      -- to it should Kraken ever answer with the name we asked.
      local symbol = (mk.by_key[key] or not mk.by_alt[key]) and key or mk.by_alt[key]
      list[#list + 1] = ticker(symbol, t)
    end
  end
  table.sort(list, function(l, r) return l.symbol < r.symbol end)
  x.emit_many(list)
end

local function poll(x)
  if not mk then load_markets(x) end -- markets() normally ran at load
  local wanted = type(x.op.pairs) == "table" and x.op.pairs or {}
  if #wanted == 0 then
    return fetch(x, nil)
  end
  local alts = allowed_altnames(x, wanted)
  if #alts == 0 then
    error("pairs: none of the configured pairs is a market on kraken", 0)
  end
  local failed, first = 0, nil
  for i = 1, #alts, CHUNK do
    -- One failing chunk must not hold back the others' data.
    local ok, err = pcall(fetch, x, table.concat(alts, ",", i, math.min(i + CHUNK - 1, #alts)))
    if not ok then
      failed, first = failed + 1, first or tostring(err)
    end
  end
  if first then
    error(first .. (failed > 1 and (" (and " .. (failed - 1) .. " more requests failed)") or ""), 0)
  end
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
  markets = load_markets,
  poll = poll,
}
