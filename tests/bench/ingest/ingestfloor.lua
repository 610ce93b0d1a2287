-- ingestfloor: a bench-only operator (tests/bench/ingest), never shipped in
-- operators/. It opens the same combined bookTicker stream as binance and
-- does less with each message, so the bench can show what the engine's
-- stream path costs before any operator logic:
--
--   options.mode = "decode": on_message decodes the message with
--                  x.json.decode and drops it; the best any operator that
--                  decodes its messages with lua-cjson can do here;
--   options.mode = "none":   on_message returns at once; libwebsockets, the
--                  engine's glue and the Lua call alone.
--
-- options.streams: the stream names for the URL ("a@bookTicker/b@...").

local decoding = true -- options.mode, read once per connection plan

local function connections(x)
  local o = x.op.options
  decoding = o.mode ~= "none"
  return { { id = 1, url = x.op.ws:gsub("/+$", "") .. "/stream?streams=" .. o.streams } }
end

local function on_message(x, ws, msg)
  if decoding then x.json.decode(msg) end
end

return {
  name = "ingestfloor",
  spec = 1,
  idle_timeout = 60,
  options = { mode = "decode", streams = "" },
  stream = { connections = connections, on_message = on_message },
}
