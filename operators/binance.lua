-- Binance spot, REST polling (operator API spec 1, docs/operators.md).
--
-- markets(): /api/v3/exchangeInfo, symbols with status TRADING, split by the
-- exchange's own baseAsset/quoteAsset ("BTCUSDT" has no separator, so the
-- split is never guessed).
--
-- poll() has two strategies (DESIGN 6, the pairs allow-list is a hint):
--   * a short allow-list (at most options.per_symbol_max pairs): per symbol,
--     /api/v3/ticker/bookTicker (bid/ask and their sizes) plus
--     /api/v3/ticker/24hr?symbol= (last, 24h base volume, closeTime), merged
--     into one ticker. Two light requests per pair instead of the all-symbol
--     body, which Binance weighs 80 and which is large.
--   * otherwise: one /api/v3/ticker/24hr for every symbol, emitted in one batch.
--
-- Prices are passed to x.emit exactly as Binance wrote them (JSON strings);
-- the engine keeps the text and rejects crossed or non-positive quotes.

local DEFAULT_PER_SYMBOL_MAX = 5
local TIMEOUT_S = 15

-- Filled by markets() and read by poll(): both run in this operator's own
-- Lua state, so an upvalue is enough (markets() runs again on every load).
local mk = nil     -- { by_pair = {BASE_QUOTE = {symbol...}}, halted = {symbol = true} }
local warned = {}  -- allow-list entries already reported as unknown (log once)

-- A price/size as the engine accepts it: a string kept as written, a number
-- passed through; anything else (null, table, boolean) counts as absent.
local function dec(v)
  local t = type(v)
  if t == "string" or t == "number" then return v end
  return nil
end

-- closeTime as integer ms; lua-cjson decodes every number as a float.
local function ms(v)
  if type(v) ~= "number" then return nil end
  return math.tointeger(v)
end

-- GET rest..path and decode the JSON answer; any failure is a clear error().
local function get_json(x, path, query, what)
  local status, body = x.http.get(x.op.rest .. path, { query = query, timeout = TIMEOUT_S })
  if not status then
    error(what .. ": " .. tostring(body), 0)
  end
  if type(body) ~= "string" then
    error(what .. ": HTTP " .. tostring(status) .. " without a body", 0)
  end
  local ok, doc = pcall(x.json.decode, body)
  if status ~= 200 then
    -- Binance explains refusals as {"code":-1121,"msg":"Invalid symbol."}.
    local msg = ok and type(doc) == "table" and type(doc.msg) == "string" and doc.msg
    error(what .. ": HTTP " .. tostring(status) .. (msg and (" (" .. msg:sub(1, 200) .. ")") or ""), 0)
  end
  if not ok then
    error(what .. ": invalid JSON", 0)
  end
  return doc
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
  local doc = get_json(x, "/api/v3/exchangeInfo", nil, "exchangeInfo")
  if type(doc) ~= "table" or type(doc.symbols) ~= "table" then
    error("exchangeInfo: no symbols array", 0)
  end
  local list, by_pair, halted, bad = {}, {}, {}, 0
  for _, s in ipairs(doc.symbols) do
    local ok = type(s) == "table" and type(s.symbol) == "string" and s.symbol ~= ""
    if ok and s.status ~= "TRADING" then
      halted[s.symbol] = true -- listed but not trading (BREAK, delisted)
    elseif ok and type(s.baseAsset) == "string" and type(s.quoteAsset) == "string"
        and s.baseAsset ~= "" and s.quoteAsset ~= "" then
      list[#list + 1] = { symbol = s.symbol, base = s.baseAsset, quote = s.quoteAsset }
      local key = canon(x, s.baseAsset) .. "_" .. canon(x, s.quoteAsset)
      by_pair[key] = by_pair[key] or {}
      table.insert(by_pair[key], s.symbol)
    else
      bad = bad + 1
    end
  end
  if bad > 0 then
    x.log.warn("exchangeInfo: skipped " .. bad .. " malformed symbol entries")
  end
  if #list == 0 then
    error("exchangeInfo: no TRADING symbols", 0)
  end
  mk = { by_pair = by_pair, halted = halted }
  return list
end

-- The configured allow-list (empty = all pairs).
local function wanted_pairs(x)
  return type(x.op.pairs) == "table" and x.op.pairs or {}
end

-- Symbols of the allow-list, through the markets' base/quote (never by
-- concatenating names). Unknown pairs are logged once and skipped.
local function allowed_symbols(x, wanted)
  local symbols, seen = {}, {}
  for _, p in ipairs(wanted) do
    local key = norm_pair(x, p)
    local found = key and mk.by_pair[key]
    if found then
      for _, sym in ipairs(found) do
        if not seen[sym] then seen[sym], symbols[#symbols + 1] = true, sym end
      end
    elseif not warned[tostring(p)] then
      warned[tostring(p)] = true
      x.log.warn("pairs: " .. tostring(p) .. " is not a TRADING market on binance")
    end
  end
  return symbols
end

-- A per-symbol answer must be one object for the symbol asked (a bare array
-- means the server ignored ?symbol=).
local function one_object(doc, sym, what)
  if type(doc) ~= "table" or doc.symbol ~= sym then
    error(what .. ": expected one object for " .. sym, 0)
  end
  return doc
end

-- bookTicker gives the quote, 24hr gives last/volume/time: one merged ticker.
local function symbol_ticker(x, sym)
  local book = one_object(get_json(x, "/api/v3/ticker/bookTicker", { symbol = sym },
    "ticker/bookTicker " .. sym), sym, "ticker/bookTicker")
  local day = one_object(get_json(x, "/api/v3/ticker/24hr", { symbol = sym },
    "ticker/24hr " .. sym), sym, "ticker/24hr")
  return {
    symbol = sym,
    bid = dec(book.bidPrice), ask = dec(book.askPrice),
    bid_size = dec(book.bidQty), ask_size = dec(book.askQty),
    last = dec(day.lastPrice), volume = dec(day.volume), ts = ms(day.closeTime),
  }
end

local function poll_per_symbol(x, symbols)
  local list, failed, first = {}, 0, nil
  for _, sym in ipairs(symbols) do
    -- One symbol failing must not hold back the others' data.
    local ok, t = pcall(symbol_ticker, x, sym)
    if ok then
      list[#list + 1] = t
    else
      failed, first = failed + 1, first or tostring(t)
    end
  end
  if #list > 0 then x.emit_many(list) end
  if first then
    error(first .. (failed > 1 and (" (and " .. (failed - 1) .. " more symbols failed)") or ""), 0)
  end
end

-- All symbols in one request; `only` (a set) narrows it to a long allow-list.
local function poll_all(x, only)
  local doc = get_json(x, "/api/v3/ticker/24hr", nil, "ticker/24hr")
  if type(doc) ~= "table" or (doc[1] == nil and next(doc) ~= nil) then
    error("ticker/24hr: expected an array", 0)
  end
  local list = {}
  for _, t in ipairs(doc) do
    local sym = type(t) == "table" and t.symbol
    -- Halted symbols are known, not new: leave them out of the unmapped count.
    if type(sym) == "string" and not mk.halted[sym] and (not only or only[sym]) then
      list[#list + 1] = {
        symbol = sym,
        bid = dec(t.bidPrice), ask = dec(t.askPrice),
        bid_size = dec(t.bidQty), ask_size = dec(t.askQty),
        last = dec(t.lastPrice), volume = dec(t.volume), ts = ms(t.closeTime),
      }
    end
  end
  x.emit_many(list)
end

local function poll(x)
  if not mk then load_markets(x) end -- markets() normally ran at load
  local wanted = wanted_pairs(x)
  if #wanted == 0 then
    return poll_all(x, nil)
  end
  local symbols = allowed_symbols(x, wanted)
  if #symbols == 0 then
    error("pairs: none of the configured pairs is a TRADING market on binance", 0)
  end
  local opts = type(x.op.options) == "table" and x.op.options or {}
  local limit = tonumber(opts.per_symbol_max) or DEFAULT_PER_SYMBOL_MAX
  if #symbols <= limit then
    return poll_per_symbol(x, symbols)
  end
  local only = {}
  for _, sym in ipairs(symbols) do only[sym] = true end
  return poll_all(x, only)
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
  options = {
    -- Up to this many allowed pairs, poll per symbol; beyond, one all-symbol call.
    per_symbol_max = DEFAULT_PER_SYMBOL_MAX,
  },
  markets = load_markets,
  poll = poll,
}
