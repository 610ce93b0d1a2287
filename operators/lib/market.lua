-- An exchange's markets, indexed once in markets() and read by poll() and
-- the stream: the list markets() returns, each symbol filed under its
-- canonical pair (lib/pair.lua), and the symbols to deliver — the config's
-- allow-list, looked up through those pairs, or every market.
--
--   local idx = market.index(x, doc.symbols, function(s)
--     if s.status ~= "TRADING" then return nil, "not trading" end
--     return { symbol = s.symbol, base = s.baseAsset, quote = s.quoteAsset }
--   end, "exchangeInfo")
--   local symbols, narrowed = market.targets(x, idx)

local pair = require "pair"
local batch = require "batch"

local M = {}

local function usable(m)
  return type(m) == "table" and type(m.symbol) == "string" and m.symbol ~= ""
    and type(m.base) == "string" and m.base ~= "" and type(m.quote) == "string" and m.quote ~= ""
end

-- read(entry) gives a market {symbol=, base=, quote=, ...} (other fields are
-- kept for the operator), or nil and a short reason ("halted", "no wsname")
-- for an entry to leave out; an entry it returns without the three strings
-- counts as "malformed". An entry left out may be named too, as a third
-- value (`return nil, "halted", s.symbol`): the exchange still lists it, so
-- poll() does not take its tickers for a market listed since (keeper()).
-- Entries left out are logged once, counted by reason; none usable is an
-- error naming `what`. The index:
--   list       what markets() returns, sorted by symbol
--   symbols    the symbols in that order
--   by_symbol  symbol -> market
--   by_pair    BASE_QUOTE -> {symbol...} (one exchange may list a pair twice)
--   left_out   reason -> count
--   unserved   symbol -> true for the entries left out that read() named
function M.index(x, entries, read, what)
  if type(entries) ~= "table" then
    error(what .. ": no list of markets", 0)
  end
  local idx = { list = {}, by_symbol = {}, by_pair = {}, left_out = {}, unserved = {} }
  local function leave(reason)
    idx.left_out[reason] = (idx.left_out[reason] or 0) + 1
  end
  for key, entry in pairs(entries) do
    local ok, m, why, named = pcall(read, entry, key)
    if not ok then
      leave("malformed")
    elseif m == nil then
      leave(tostring(why or "left out"))
      if type(named) == "string" then idx.unserved[named] = true end
    elseif not usable(m) or idx.by_symbol[m.symbol] then
      leave(usable(m) and "listed twice" or "malformed")
    else
      idx.list[#idx.list + 1] = m
      idx.by_symbol[m.symbol] = m
      pair.add(x, idx.by_pair, m.base, m.quote, m.symbol)
    end
  end
  local counts = {}
  for reason, n in pairs(idx.left_out) do counts[#counts + 1] = n .. " " .. reason end
  if #counts > 0 then
    table.sort(counts)
    x.log.info(what .. ": left out " .. table.concat(counts, ", "))
  end
  if #idx.list == 0 then
    error(what .. ": no usable markets", 0)
  end
  idx.symbols = pair.sort(idx.list, idx.by_pair) -- pairs() order is random
  return idx
end

-- The symbols to deliver and whether the config's allow-list narrowed
-- them: the allow-list's symbols (in its order; an entry that names no
-- market is logged once, "pairs: <entry> is not a market on <name>"), or
-- every market. An allow-list that names no market at all is an error.
function M.targets(x, idx)
  local wanted = pair.wanted(x)
  if #wanted == 0 then
    return idx.symbols, false
  end
  local where = "is not a market on " .. tostring(x.op.name)
  idx.warned = idx.warned or {}
  local symbols = pair.select(x, idx.by_pair, wanted, pair.warn_unknown(x, idx.warned, where))
  if #symbols == 0 then
    error("pairs: none of the configured pairs is a market on " .. tostring(x.op.name), 0)
  end
  return symbols, true
end

-- Whether the exchange lists sym: a market of the index, or an entry that
-- read() left out and named.
function M.listed(idx, sym)
  return idx.by_symbol[sym] ~= nil or idx.unserved[sym] == true
end

-- What poll() keeps of an answer that holds every ticker, as a function of
-- the symbol: those of `wanted` (the list poll() asked for) and, unless an
-- allow-list narrowed the targets, those the exchange does not list at all.
-- Those are markets listed since markets() ran: emitted by symbol alone,
-- the engine counts them as unmapped instead of guessing a pair. A listed
-- market that is not wanted (delivered by the stream, left out as halted)
-- is not kept.
function M.keeper(idx, wanted, narrowed)
  local want = batch.set(wanted)
  return function(sym)
    return want[sym] or not narrowed and not M.listed(idx, sym)
  end
end

return M
