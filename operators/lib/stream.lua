-- Stream connections and what they deliver, shared by the stream callbacks
-- and poll(): poll() asks REST only for what the open stream does not
-- deliver. Both run in the operator's own Lua state and the stream
-- callbacks never wait, so no update is ever half done. Also the steps every
-- stream takes: its URL and the symbols a socket can name, the plan of
-- sockets connections() returns, decoding a message, sending a JSON one,
-- on_close, and poll() itself for an exchange that answers one ticker or
-- all of them.

local batch = require "batch"
local market = require "market"
local options = require "options"

local M = {}

-- Globals are read through the sandbox's read-only proxy, a metatable step
-- each time; decode runs once per stream message, so it reads locals.
local pcall, type = pcall, type

-- The configured WebSocket base URL, or, given a path ("/ws/2"), the base
-- without its trailing slashes followed by the path; an error when there is
-- no base.
function M.url(x, path)
  if type(x.op.ws) ~= "string" or x.op.ws == "" then
    error("stream: no ws URL configured", 0)
  end
  if path then
    return (x.op.ws:gsub("/+$", "")) .. path
  end
  return x.op.ws
end

-- The symbols that fit `pattern`, in order: a symbol that goes into a
-- channel name, a topic list or a URL must not break it. Each other one is
-- logged ("cannot be named in <where>") and skipped.
function M.nameable(x, symbols, pattern, where)
  local out = {}
  for _, sym in ipairs(symbols) do
    if sym:match(pattern) then
      out[#out + 1] = sym
    else
      x.log.warn("stream: symbol " .. sym:sub(1, 40) .. " cannot be named in " .. where
        .. "; skipped")
    end
  end
  return out
end

-- A message as a JSON object or array, or nil (not JSON, or a bare value):
-- on_message never raises, whatever the exchange sends.
function M.decode(x, msg)
  local ok, doc = pcall(x.json.decode, msg)
  if ok and type(doc) == "table" then return doc end
  return nil
end

-- Sends a table as one JSON text message; a failure (closed, queue full) is
-- an error naming `what` ("subscribe"), for on_open to fail with.
function M.send_json(x, ws, msg, what)
  local ok, err = ws:send(x.json.encode(msg))
  if not ok then
    error(what .. ": " .. tostring(err), 0)
  end
end

-- Coverage of one operator's sockets:
--   conns[id] = { open = bool, gen = n, refused = gen }: gen changes on every
--               open and close, so what an earlier connection delivered no
--               longer counts; refused = gen when the exchange refused the
--               whole socket's subscription;
--   planned[key] = id of the socket that subscribes key;
--   got[key] = gen of the socket that delivered a ticker for key, and
--   via[key] = that socket's id;
--   refused[key] = gen when the exchange refused key's subscription.
local Coverage = {}
Coverage.__index = Coverage

function M.coverage()
  return setmetatable({ conns = {}, planned = {}, got = {}, via = {}, refused = {} }, Coverage)
end

-- A socket-to-be (closed until on_open).
function Coverage:add(id)
  self.conns[id] = { open = false, gen = 0 }
end

-- on_open/on_close: a new connection, or none; either way what the previous
-- one delivered no longer counts.
function Coverage:opened(id)
  local c = self.conns[id]
  if c then c.open, c.gen = true, c.gen + 1 end
end

function Coverage:closed(id)
  local c = self.conns[id]
  if c then c.open, c.gen = false, c.gen + 1 end
end

-- Splits keys into sockets of at most `per` keys, registers each and which
-- socket subscribes each key; make(id, part) returns the socket's entry for
-- connections() (the `conn` the stream callbacks get back).
function Coverage:plan(keys, per, make)
  local list = {}
  for id, part in ipairs(batch.chunks(keys, per)) do
    self:add(id)
    for _, k in ipairs(part) do self.planned[k] = id end
    list[id] = make(id, part)
  end
  return list
end

-- What connections() returns for sockets that each subscribe a part of the
-- symbols, at most `per` a socket: plan()'s entries { id =, url =, symbols =
-- that part } (the `conn` the stream callbacks get), logged as
-- "stream: <n> <what> on <m> connection(s)".
function Coverage:connections(x, url, symbols, per, what)
  local list = self:plan(symbols, per, function(id, part)
    return { id = id, url = url, symbols = part }
  end)
  x.log.info("stream: " .. #symbols .. " " .. what .. " on " .. #list .. " connection(s)")
  return list
end

-- Whether socket id subscribes key: a message naming a symbol its socket
-- never asked for is not one of ours.
function Coverage:subscribes(id, key)
  return self.planned[key] == id
end

-- Socket id carried a ticker for key (key nil: a name the markets do not
-- know, nothing to record).
function Coverage:delivered(key, id)
  local c = self.conns[id]
  if key and c then self.got[key], self.via[key] = c.gen, id end
end

-- The exchange refused key's subscription on socket id (key nil: unknown).
function Coverage:refuse(key, id)
  local c = self.conns[id]
  if key and c then self.refused[key] = c.gen end
end

-- The exchange refused socket id's whole subscription: nothing of it comes
-- until it reconnects.
function Coverage:refuse_all(id)
  local c = self.conns[id]
  if c then c.refused = c.gen end
end

-- Whether the open stream delivers key: the socket that subscribes it is
-- open, has carried a ticker for it, and no refusal came since.
function Coverage:covered(key)
  local id = self.planned[key]
  local c = id and self.conns[id]
  return c ~= nil and c.open and self.got[key] == c.gen
    and self.refused[key] ~= c.gen and c.refused ~= c.gen
end

-- Whether the socket that last delivered key is still the open connection
-- that did (for streams whose URL names what they carry, without a
-- subscription to plan or refuse).
function Coverage:covered_via(key)
  local id = self.via[key]
  local c = id and self.conns[id]
  return c ~= nil and c.open and c.gen == self.got[key]
end

-- The keys poll() has to ask REST for, appended to out (a new list when
-- nil): those the stream does not deliver or, with the fallback off, those
-- no socket subscribes.
function Coverage:uncovered(keys, fallback, out)
  out = out or {}
  for _, k in ipairs(keys) do
    if fallback and not self:covered(k) or not fallback and not self.planned[k] then
      out[#out + 1] = k
    end
  end
  return out
end

-- uncovered() with the fallback read from the operator's options.poll_fallback
-- (on unless set to false): the keys poll() has to ask REST for.
function Coverage:to_poll(x, keys, out)
  return self:uncovered(keys, options.flag(x, "poll_fallback"), out)
end

-- poll() beside a stream, over the market index idx: nothing while the
-- stream delivers every target; each target on its own when an allow-list
-- narrowed them to at most how.max still needed (how.each(key) returns its
-- ticker, how.noun names them in errors), so one failing does not hold back
-- the others; otherwise how.all(keep), one request for every ticker, whose
-- answer goes through keep(key): the targets still needed (market.keeper),
-- and not what the stream delivered while the request was out.
function Coverage:poll(x, idx, how)
  local targets, narrowed = market.targets(x, idx)
  local need = self:to_poll(x, targets)
  if #need == 0 then
    return
  end
  if narrowed and #need <= how.max then
    return batch.emit_each(x, need, how.each, how.noun)
  end
  local wanted = market.keeper(idx, need, narrowed)
  return how.all(function(key) return wanted(key) and not self:covered(key) end)
end

-- A stream on_close callback: the socket's connection is gone, and with it
-- what it delivered.
function Coverage:close_handler()
  return function(x, conn) self:closed(conn.id) end
end

return M
