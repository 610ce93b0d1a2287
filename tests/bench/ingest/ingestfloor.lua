-- ingestfloor: a bench-only operator (tests/bench/ingest), never shipped in
-- operators/. It opens the same combined bookTicker stream as binance and
-- does less with each message, so the bench can show what the engine's
-- stream path costs before any operator logic:
--
--   options.mode = "decode": on_message decodes the message with
--                  x.json.decode and drops it; the best any operator that
--                  decodes its messages with lua-cjson can do here;
--   options.mode = "none":   on_message returns at once; libwebsockets, the
--                  engine's glue and the Lua call alone;
--   options.mode = "table":  decodes and builds the table binance emits;
--   options.mode = "emit":   decodes and emits it: decode plus x.emit and
--                  nothing of binance's own logic, so the three show what
--                  the emit table, x.emit and the operator's checks cost.
--
-- options.streams: the stream names for the URL ("a@bookTicker/b@...").

local mode = "decode" -- options.mode, read once per connection plan

local function connections(x)
  local o = x.op.options
  mode = o.mode
  return { { id = 1, url = x.op.ws:gsub("/+$", "") .. "/stream?streams=" .. o.streams } }
end

local function on_message(x, ws, msg)
  if mode == "none" then return end
  local doc = x.json.decode(msg)
  if mode == "decode" then return end
  local d = doc.data
  local t = { symbol = d.s, bid = d.b, ask = d.a, bid_size = d.B, ask_size = d.A }
  if mode == "emit" then x.emit(t) end
end

-- The capture's three symbols (tests/fixtures/binance/ws_bookTicker.jsonl),
-- for "emit": mapped the way binance's markets() maps them.
local function markets(x)
  return { { symbol = "NKNUSDT", base = "NKN", quote = "USDT" },
           { symbol = "LRCBTC", base = "LRC", quote = "BTC" },
           { symbol = "BLZETH", base = "BLZ", quote = "ETH" } }
end

return {
  name = "ingestfloor",
  spec = 1,
  idle_timeout = 60,
  options = { mode = "decode", streams = "" },
  markets = markets,
  stream = { connections = connections, on_message = on_message },
}
