-- widebatch: a bench-only operator (tests/bench/redis), never shipped in
-- operators/. It opens the same bookTicker stream as binance and turns each
-- message into one batch of options.width tickers for synthetic pairs
-- W<n>_USDT (n cycling over options.keys), all with the message's prices,
-- so the Redis writer gets HSETs of many fields, as an exchange's "all
-- tickers" stream or poll gives it: the write-through's capacity, which
-- the one-ticker frames of binance never reach.
--
-- options.streams: the stream names for the URL ("a@bookTicker/b@...").

local width, keys, cursor = 64, 4096, 0

local function connections(x)
  local o = x.op.options
  width, keys = o.width or width, o.keys or keys
  return { { id = 1, url = x.op.ws:gsub("/+$", "") .. "/stream?streams=" .. o.streams } }
end

local function on_message(x, ws, msg)
  local d = x.json.decode(msg).data
  local batch = {}
  for i = 1, width do
    cursor = cursor % keys + 1
    batch[i] = { base = "W" .. cursor, quote = "USDT", bid = d.b, ask = d.a,
                 bid_size = d.B, ask_size = d.A }
  end
  x.emit_many(batch)
end

return {
  name = "widebatch",
  spec = 1,
  idle_timeout = 60,
  options = { width = 64, keys = 4096, streams = "" },
  stream = { connections = connections, on_message = on_message },
}
