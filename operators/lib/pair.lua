-- Canonical pairs, the markets' pair index and the configured allow-list.
--
-- The engine maps every emitted symbol through markets() and `aliases` to
-- BASE_QUOTE; an operator that looks markets up by pair (the allow-list)
-- has to form the same keys, or BTC_USDT would miss Kraken's XBT/USDT.

local M = {}

-- Upper-cased and aliased, the way the engine canonicalises base/quote.
function M.canon(x, code)
  code = string.upper(code)
  local aliases = x.op.aliases
  return type(aliases) == "table" and type(aliases[code]) == "string" and aliases[code] or code
end

-- The canonical BASE_QUOTE of an exchange's base and quote codes.
function M.key(x, base, quote)
  return M.canon(x, base) .. "_" .. M.canon(x, quote)
end

-- "btc/usdt", "BTC-USDT", "BTC_USDT" -> "BTC", "USDT" (nil when malformed).
-- The config accepts exactly these forms (and stores them as BASE_QUOTE).
function M.split(p)
  if type(p) ~= "string" then return nil end
  return string.upper(p):match("^([A-Z0-9]+)[_/%-]([A-Z0-9]+)$")
end

-- Files a market's symbol under its canonical pair: by_pair[BASE_QUOTE] is
-- the list of symbols trading it (one exchange may list a pair twice).
function M.add(x, by_pair, base, quote, symbol)
  local key = M.key(x, base, quote)
  by_pair[key] = by_pair[key] or {}
  table.insert(by_pair[key], symbol)
end

-- Sorts a markets() list by symbol and every by_pair entry, and returns the
-- symbols in that order: the exchange's order (or pairs()') is not one to
-- rely on, and a fixed order keeps sockets and requests the same each run.
function M.sort(list, by_pair)
  table.sort(list, function(l, r) return l.symbol < r.symbol end)
  for _, v in pairs(by_pair) do table.sort(v) end
  local symbols = {}
  for i, m in ipairs(list) do symbols[i] = m.symbol end
  return symbols
end

-- The configured allow-list (empty = all pairs).
function M.wanted(x)
  return type(x.op.pairs) == "table" and x.op.pairs or {}
end

-- The symbols of the allow-list entries, through the markets' base/quote
-- (never by concatenating names), in allow-list order and without repeats.
-- For an entry that names no market, missing(p, base, quote, seen) is called
-- (base/quote nil when p is not a pair; seen is the set of symbols returned
-- so far, for a caller that adds names of its own).
function M.select(x, by_pair, wanted, missing)
  local symbols, seen = {}, {}
  for _, p in ipairs(wanted) do
    local b, q = M.split(p)
    local found = b and by_pair[M.key(x, b, q)]
    if found then
      for _, sym in ipairs(found) do
        if not seen[sym] then seen[sym], symbols[#symbols + 1] = true, sym end
      end
    else
      missing(p, b, q, seen)
    end
  end
  return symbols
end

-- A `missing` for select(): logs "pairs: <p> <text>" once per entry (warned
-- is the operator's set of entries already reported) and skips it.
function M.warn_unknown(x, warned, text)
  return function(p)
    if not warned[tostring(p)] then
      warned[tostring(p)] = true
      x.log.warn("pairs: " .. tostring(p) .. " " .. text)
    end
  end
end

return M
