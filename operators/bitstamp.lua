-- Bitstamp: REST polling of the HTTP API v2 (https://www.bitstamp.net/api/v2/),
-- no stream (operator API spec 1, docs/operators.md).
--
-- markets(): GET /api/v2/trading-pairs-info/, the older v2 pair list (the
-- shape recorded in January 2022: url_symbol, name, trading, ...; Bitstamp
-- has since added /api/v2/markets/ with other field names). `url_symbol`
-- ("btcusd") names the pair in REST paths and is our `symbol`; base/quote
-- come from `name` ("BTC/USD"), split on the exchange's own "/", never from
-- the run-together url_symbol. Pairs whose `trading` is not "Enabled" are
-- left out.
--
-- poll() has two strategies, by the size of the pairs allow-list:
--   * a short allow-list (at most options.per_pair_max pairs): one
--     GET /api/v2/ticker/{url_symbol}/ per pair (REST paths end with "/");
--   * otherwise: one GET /api/v2/ticker/ for every pair, an array whose
--     elements add "pair":"BTC/USD"; that name is mapped to its url_symbol
--     through markets(). A name the markets do not list is emitted as it
--     is and counted unmapped by the engine, never split; a pair listed
--     with trading disabled is known and left out. (Only the btcusdt
--     ticker was recorded, not this one: tests cover the first strategy.)
-- Ticker fields: bid, ask, last, volume (24 h, base), all strings passed to
-- x.emit as written; timestamp is epoch seconds as a string. The ticker has
-- no bid/ask sizes (the rest of its fields, open/high/low/vwap/side, are not
-- a rate).
--
-- Why no stream: Bitstamp's WebSocket API (wss://ws.bitstamp.net) has no
-- ticker channel. The best bid/ask is in order_book_<pair> (the top 100
-- levels, resent whole on every change), of which no recording exists to
-- build and test against. diff_order_book_<pair> sends only changed levels:
-- without a REST order book to apply them to, a diff says nothing about the
-- best bid/ask. live_trades_<pair> gives trades, a last price and never a
-- quote. So every rate comes from the REST ticker.

local rest = require "rest"
local market = require "market"
local options = require "options"
local batch = require "batch"
local values = require "values"
local dec = values.dec

local DEFAULT_PER_PAIR_MAX = 5
local TIMEOUT_S = 15

-- Filled by markets() and read by poll() (same Lua state, rerun at every load).
local mk = nil -- { idx = market.index(...), by_name = {name = url_symbol}, disabled = {name = true} }

local function get_json(x, path, what)
  return rest.get_json(x, path, what, { timeout = TIMEOUT_S })
end

local function load_markets(x)
  local by_name, disabled = {}, {}
  local idx = market.index(x, get_json(x, "/api/v2/trading-pairs-info/", "trading-pairs-info"),
    function(p)
      -- url_symbol goes into REST paths: letters and digits only.
      if not p.url_symbol:match("^%w+$") then return nil, "malformed" end
      if p.trading ~= "Enabled" then
        disabled[p.name] = true
        return nil, "trading disabled"
      end
      local base, quote = p.name:match("^([^/]+)/([^/]+)$")
      if not base then return nil, "name not BASE/QUOTE" end
      return { symbol = p.url_symbol, base = base, quote = quote, name = p.name }
    end, "trading-pairs-info")
  for _, m in ipairs(idx.list) do by_name[m.name] = m.symbol end
  mk = { idx = idx, by_name = by_name, disabled = disabled }
  return idx.list
end

-- One ticker object as x.emit takes it.
local function ticker(symbol, t)
  return {
    symbol = symbol,
    bid = dec(t.bid), ask = dec(t.ask),
    last = dec(t.last), volume = dec(t.volume), ts = values.seconds_ms(t.timestamp),
  }
end

local function pair_ticker(x, sym)
  local what = "ticker/" .. sym
  local doc = get_json(x, "/api/v2/ticker/" .. sym .. "/", what)
  if type(doc) ~= "table" or doc[1] ~= nil then
    error(what .. ": expected one object", 0)
  end
  return ticker(sym, doc)
end

-- Every pair in one request; `only` (a set of symbols) narrows it to a long
-- allow-list.
local function poll_all(x, only)
  local list = {}
  for _, t in ipairs(rest.array(get_json(x, "/api/v2/ticker/", "ticker"), "ticker")) do
    local name = type(t) == "table" and t.pair
    if type(name) == "string" and not mk.disabled[name] then
      local sym = mk.by_name[name]
      if not only or only[sym] then
        list[#list + 1] = ticker(sym or name, t)
      end
    end
  end
  x.emit_many(list)
end

local function poll(x)
  if not mk then load_markets(x) end -- markets() normally ran at load
  local symbols, narrowed = market.targets(x, mk.idx)
  if not narrowed then
    return poll_all(x, nil)
  end
  if #symbols <= options.integer(x, "per_pair_max", DEFAULT_PER_PAIR_MAX, 0) then
    -- One pair failing must not hold back the others' data.
    return batch.emit_each(x, symbols, function(sym) return pair_ticker(x, sym) end, "pairs")
  end
  return poll_all(x, batch.set(symbols))
end

return {
  name = "bitstamp",
  spec = 1,
  rest = "https://www.bitstamp.net",
  poll_every = 10,
  -- At most options.per_pair_max requests per poll (else one): 30 a minute
  -- at the defaults. Bitstamp's API docs allow 400 requests a second and a
  -- default threshold of 10,000 requests per 10 minutes (older docs: 8,000
  -- per 10 minutes, or the IP is banned); 60 a minute is far below either.
  budget = { requests = 60, per = 60 },
  max_pairs = 5000,
  options = {
    -- Up to this many allowed pairs, one ticker request each; beyond, the
    -- all-pairs ticker.
    per_pair_max = DEFAULT_PER_PAIR_MAX,
  },
  markets = load_markets,
  poll = poll,
}
