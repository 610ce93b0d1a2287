-- operators/lib's Coverage:poll (lib/stream.lua), the poll() of gateio, okx
-- and cryptocom, with a fake x: which tickers it asks REST for, one by one
-- or all at once, and which of an all-tickers answer it keeps. The engine's
-- own sandbox is not needed for this: the module is plain Lua over x.
--
--   lua5.4 tests/operators/lib_poll_test.lua operators/lib
local lib = assert(arg[1], "usage: lua5.4 lib_poll_test.lua OPERATORS_LIB_DIR")
package.path = lib .. "/?.lua"

local market = require "market"
local stream = require "stream"

local failures = 0
local function check(cond, what)
  if not cond then
    failures = failures + 1
    io.stderr:write("FAIL " .. what .. "\n")
  end
end

local function fake_x(pairs)
  local x = { op = { name = "t", pairs = pairs, options = {} }, emitted = {} }
  x.log = { info = function() end, warn = function() end }
  function x.emit_many(list)
    for _, t in ipairs(list) do x.emitted[#x.emitted + 1] = t.symbol end
  end
  return x
end

local MARKETS = {
  { symbol = "AAAUSDT", base = "AAA", quote = "USDT" },
  { symbol = "BBBUSDT", base = "BBB", quote = "USDT" },
  { symbol = "CCCUSDT", base = "CCC", quote = "USDT" },
}

-- One socket subscribing every market, open, having delivered `delivered`.
local function setup(pairs, delivered)
  local x = fake_x(pairs)
  local idx = market.index(x, MARKETS, function(m) return m end, "markets")
  local cov = stream.coverage()
  cov:plan((market.targets(x, idx)), 10, function(id, part) return { id = id, symbols = part } end)
  cov:opened(1)
  for _, sym in ipairs(delivered) do cov:delivered(sym, 1) end
  return x, idx, cov
end

-- Runs cov:poll with recording callbacks; `answer` is what the all-tickers
-- request returns, `during` runs while it is out.
local function poll(x, idx, cov, max, answer, during)
  local asked = { each = {}, all = 0 }
  cov:poll(x, idx, {
    max = max, noun = "symbols",
    each = function(sym)
      asked.each[#asked.each + 1] = sym
      return { symbol = sym }
    end,
    all = function(keep)
      asked.all = asked.all + 1
      if during then during() end
      local list = {}
      for _, sym in ipairs(answer) do
        if keep(sym) then list[#list + 1] = { symbol = sym } end
      end
      x.emit_many(list)
    end,
  })
  return asked
end

local function same(list, want)
  return table.concat(list, ",") == table.concat(want, ",")
end

local ANSWER = { "AAAUSDT", "BBBUSDT", "CCCUSDT", "NEWUSDT" }

do -- the stream delivers every target: no request at all
  local x, idx, cov = setup(nil, { "AAAUSDT", "BBBUSDT", "CCCUSDT" })
  local asked = poll(x, idx, cov, 5, ANSWER)
  check(asked.all == 0 and #asked.each == 0 and #x.emitted == 0, "covered: nothing asked")
end

do -- no allow-list: one request for all, even for a few; keeps what the
   -- stream lacks and markets listed since, not what the stream delivers
  local x, idx, cov = setup(nil, { "AAAUSDT" })
  local asked = poll(x, idx, cov, 5, ANSWER)
  check(asked.all == 1 and #asked.each == 0, "no allow-list: one request for all")
  check(same(x.emitted, { "BBBUSDT", "CCCUSDT", "NEWUSDT" }), "no allow-list: kept " .. table.concat(x.emitted, ","))
end

do -- an allow-list of few: each one on its own, only those uncovered
  local x, idx, cov = setup({ "AAA_USDT", "BBB_USDT" }, { "AAAUSDT" })
  local asked = poll(x, idx, cov, 5, ANSWER)
  check(asked.all == 0 and same(asked.each, { "BBBUSDT" }), "allow-list: each " .. table.concat(asked.each, ","))
  check(same(x.emitted, { "BBBUSDT" }), "allow-list: emitted " .. table.concat(x.emitted, ","))
end

do -- an allow-list of more than max: all at once, keeping only the wanted
  local x, idx, cov = setup({ "AAA_USDT", "BBB_USDT", "CCC_USDT" }, { "AAAUSDT" })
  local asked = poll(x, idx, cov, 1, ANSWER)
  check(asked.all == 1 and #asked.each == 0, "allow-list over max: one request")
  check(same(x.emitted, { "BBBUSDT", "CCCUSDT" }), "allow-list over max: kept " .. table.concat(x.emitted, ","))
end

do -- max 0 (an exchange without a one-ticker request): always all at once
  local x, idx, cov = setup({ "BBB_USDT" }, {})
  local asked = poll(x, idx, cov, 0, ANSWER)
  check(asked.all == 1 and same(x.emitted, { "BBBUSDT" }), "max 0: kept " .. table.concat(x.emitted, ","))
end

do -- what the stream delivers while the request is out is not overwritten
  local x, idx, cov = setup(nil, {})
  poll(x, idx, cov, 5, ANSWER, function() cov:delivered("BBBUSDT", 1) end)
  check(same(x.emitted, { "AAAUSDT", "CCCUSDT", "NEWUSDT" }), "meanwhile: kept " .. table.concat(x.emitted, ","))
end

if failures > 0 then
  os.exit(1)
end
print("lib_poll_test: all passed")
