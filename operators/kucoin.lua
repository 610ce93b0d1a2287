-- KuCoin spot: a /market/ticker stream behind KuCoin's token handshake, with
-- REST polling for the 24 h volume the stream lacks and for the symbols it
-- does not deliver (operator API spec 1, docs/operators.md). KuCoin's REST
-- API v1 (/api/v1/symbols, /api/v1/market/allTickers,
-- /api/v1/bullet-public) and its classic spot WebSocket feed.
--
-- REST answers are {"code":"200000","data":...}: `code` is a string and
-- only "200000" is success (refusals carry a `msg`), so every answer is
-- checked before its data is read.
--
-- markets(): /api/v1/symbols. The symbol ("BTC-USDT") is our `symbol`;
-- base/quote are its baseCurrency/quoteCurrency, never a split of the
-- symbol: after a rename the symbol keeps the old name (BCHSV-USDT trades
-- BSV against USDT, its `name` is BSV-USDT). Symbols with enableTrading
-- false are left out, and their tickers are not emitted (known, not new).
--
-- poll(): one GET /api/v1/market/allTickers, every symbol at once: `buy` is
-- the best bid and `sell` the best ask (KuCoin's legacy docs had the two
-- swapped in a comment), bestBidSize/bestAskSize their sizes, `last`, `vol`
-- the 24 h base volume, data.time (ms) the time of the whole answer. With a
-- pairs allow-list only the allowed symbols are emitted; without one, every
-- symbol, so that one missing from /symbols is counted as unmapped by the
-- engine instead of being guessed. For a symbol the open stream delivers,
-- only volume and ts are kept: the stream's quote and last price are newer
-- than the REST answer and the engine keeps stored fields an emit leaves out.
-- /api/v1/market/orderbook/level1 is never asked: it has no volume, so a
-- per-symbol poll would need a second request (/market/stats, weight 15)
-- per symbol where allTickers (weight 15) answers for all of them. (Its
-- documented example, in the fixtures, holds placeholder prices - 0.037 for
-- BTC-USDT - that pass every check the engine makes; never requesting it
-- is what keeps them from being served.)
--
-- stream: KuCoin has no fixed WebSocket URL. connections() asks POST
-- /api/v1/bullet-public (no body, no key) once per socket for a token and
-- instanceServers[1] = {endpoint, pingInterval, pingTimeout}, and connects to
-- <endpoint>?token=<token>&connectId=<id>. The server greets with
-- {"id":...,"type":"welcome"}, and only then is the subscribe sent:
--   {"id":"<n>","type":"subscribe","topic":"/market/ticker:A-B,C-D",
--    "privateChannel":false,"response":true}
-- at most 100 symbols per topic (KuCoin's limit), one topic per socket,
-- for every market or the allowed ones. A ticker is
-- {"type":"message","topic":"/market/ticker:SNX-BTC","subject":"trade.ticker",
--  "data":{bestBid,bestBidSize,bestAsk,bestAskSize,price,size,time,sequence}}:
-- the symbol is the topic's, price the last trade, time in ms; no volume.
-- Anything else is not a ticker: "ack" (the subscribe's id echoed as a
-- string), "pong", "welcome", "notice", and messages of other topics or
-- subjects (level2 book deltas, l3match trades). An "error" refuses the
-- socket's subscription: its symbols are polled until it reconnects.
--
-- Keeping the link: KuCoin wants {"id":"<n>","type":"ping"} every
-- pingInterval ms (18 s) and answers {"id":"<n>","type":"pong"}; no pong
-- within pingTimeout ms means the link is dead. The engine calls on_ping
-- every ping_every = 1 s; on_ping pings each socket at its own pingInterval
-- and closes a socket whose pong is overdue (the engine reconnects it).
--
-- Tokens: a token is only read when connecting (it is valid for 24 h), and
-- the engine reconnects to conn.url, which it reads again at every connect.
-- A socket that closed and has not reopened needs a fresh token, which
-- poll(), the one recurring callback that may wait, fetches into conn.url;
-- a socket whose first token request failed starts without a URL (the
-- engine retries it with backoff) until poll() gets one. The endpoint's host
-- must be one of the operator's (`ws` below): another host is refused by
-- the engine, and then `allow_hosts` has to name it.
--
-- Prices are passed to x.emit exactly as KuCoin wrote them (JSON strings);
-- the engine keeps the text and rejects crossed or non-positive quotes.

local rest = require "rest"
local market = require "market"
local options = require "options"
local stream = require "stream"
local values = require "values"
local dec, ms = values.dec, values.ms

local TIMEOUT_S = 15
local SUCCESS = "200000"
local TICKER_TOPIC = "/market/ticker:"
local MAX_SYMBOLS_PER_TOPIC = 100 -- KuCoin refuses a longer topic list
-- Used when bullet-public leaves them out (its documented values).
local DEFAULT_PING_INTERVAL_MS = 18000
local DEFAULT_PING_TIMEOUT_MS = 10000

-- Filled by markets() and read by the others (same Lua state, rerun at every load).
-- lib/market.lua's index; symbols with trading disabled are named to it
-- (known, so their tickers are not emitted as new).
local idx = nil

-- Stream coverage, shared by the stream callbacks and poll() (lib/stream.lua):
-- which socket subscribes each symbol, whether its current connection
-- carried a ticker for it, and the sockets whose subscription was refused.
local coverage = stream.coverage()
local sockets = {} -- the entries connections() returned, for poll()'s token renewal
local by_ws = {}   -- open ws -> its entry: on_ping gets only the ws
local next_id = 0  -- ids of our subscribe and ping messages

local function new_id()
  next_id = next_id + 1
  return tostring(next_id)
end

-- The `data` of a KuCoin answer; anything but code "200000" is an error.
local function data_of(doc, what)
  if type(doc) ~= "table" then
    error(what .. ": expected an object", 0)
  end
  if doc.code ~= SUCCESS then
    error(what .. ": code " .. tostring(doc.code):sub(1, 20)
      .. (type(doc.msg) == "string" and (" (" .. doc.msg:sub(1, 200) .. ")") or ""), 0)
  end
  return doc.data
end

local function get_data(x, path, what)
  return data_of(rest.get_json(x, path, what, { timeout = TIMEOUT_S, detail = "msg" }), what)
end

-- bullet-public wants an empty POST.
local function post_data(x, path, what)
  local opts = { body = "", timeout = TIMEOUT_S, detail = "msg" }
  return data_of(rest.post_json(x, path, what, opts), what)
end

local function load_markets(x)
  idx = market.index(x, get_data(x, "/api/v1/symbols", "symbols"), function(s)
    if s.enableTrading == false then return nil, "trading disabled", s.symbol end
    return { symbol = s.symbol, base = s.baseCurrency, quote = s.quoteCurrency }
  end, "symbols")
  return idx.list
end

-- For a symbol the stream delivers, keep only what its ticker lacks.
-- Checked when the answer arrives, not when asked: the request waited.
local function without_stream_fields(t)
  if coverage:covered(t.symbol) then
    t.bid, t.ask, t.bid_size, t.ask_size, t.last = nil, nil, nil, nil, nil
  end
  return t
end

-- URL-encodes a query value (tokens are base64 text with '=', '+', '/').
local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

-- A new token and server for a socket: sets conn.url (read by the engine at
-- the next connect) and the socket's ping timing.
local function fetch_token(x, conn)
  local data = post_data(x, "/api/v1/bullet-public", "bullet-public")
  if type(data) ~= "table" then
    error("bullet-public: no data object", 0)
  end
  local server = type(data.instanceServers) == "table" and data.instanceServers[1]
  if type(data.token) ~= "string" or data.token == ""
      or type(server) ~= "table" or type(server.endpoint) ~= "string" or server.endpoint == "" then
    error("bullet-public: no token or endpoint", 0)
  end
  local interval, timeout = tonumber(server.pingInterval), tonumber(server.pingTimeout)
  conn.ping_ms = interval and interval >= 1000 and math.floor(interval) or DEFAULT_PING_INTERVAL_MS
  conn.timeout_ms = timeout and timeout >= 1000 and math.floor(timeout) or DEFAULT_PING_TIMEOUT_MS
  conn.url = server.endpoint .. (server.endpoint:find("?", 1, true) and "&" or "?")
    .. "token=" .. encode(data.token) .. "&connectId=rx" .. conn.id .. "-" .. x.now()
  conn.renew = false
end

-- Fresh tokens for the sockets that closed and have not reopened. A
-- failure is logged, not raised: it must not put the ticker poll into
-- backoff, and the next poll tries again.
local function renew_tokens(x)
  for _, conn in ipairs(sockets) do
    if conn.renew then
      local ok, err = pcall(fetch_token, x, conn)
      if not ok then
        x.log.warn("stream " .. conn.id .. ": " .. tostring(err) .. "; the next poll asks again")
      end
    end
  end
end

local function poll(x)
  if not idx then load_markets(x) end -- markets() normally ran at load
  renew_tokens(x) -- first: a failing allTickers must not hold it back
  local symbols, narrowed = market.targets(x, idx)
  local keep = market.keeper(idx, symbols, narrowed)
  local data = get_data(x, "/api/v1/market/allTickers", "market/allTickers")
  if type(data) ~= "table" or type(data.ticker) ~= "table" then
    error("market/allTickers: no ticker list", 0)
  end
  local ts = ms(data.time)
  local list = {}
  for _, t in ipairs(data.ticker) do
    local sym = type(t) == "table" and t.symbol
    if type(sym) == "string" and keep(sym) then
      list[#list + 1] = without_stream_fields({
        symbol = sym,
        bid = dec(t.buy), ask = dec(t.sell),
        bid_size = dec(t.bestBidSize), ask_size = dec(t.bestAskSize),
        last = dec(t.last), volume = dec(t.vol), ts = ts,
      })
    end
  end
  x.emit_many(list)
end

-- ---------------------------------------------------------------------------
-- Stream
-- ---------------------------------------------------------------------------

-- One socket (one token, one topic) per options.symbols_per_conn symbols.
local function connections(x)
  if not idx then load_markets(x) end
  -- A topic is a comma list after a colon: a symbol holding either would
  -- corrupt it.
  local symbols = stream.nameable(x, (market.targets(x, idx)), "^[%w%-]+$", "a topic")
  local per = options.integer(x, "symbols_per_conn", MAX_SYMBOLS_PER_TOPIC, 1, MAX_SYMBOLS_PER_TOPIC)
  sockets = coverage:plan(symbols, per, function(id, part)
    return { id = id, symbols = part }
  end)
  for _, conn in ipairs(sockets) do
    local ok, err = pcall(fetch_token, x, conn)
    if not ok then
      conn.renew = true
      x.log.warn("stream " .. conn.id .. ": " .. tostring(err) .. "; poll() asks again")
    end
  end
  x.log.info("stream: " .. #symbols .. " ticker symbols on " .. #sockets .. " connection(s)")
  return sockets
end

-- Runs after every (re)connect; the subscribe waits for the welcome.
local function on_open(x, ws, conn)
  coverage:opened(conn.id)
  conn.ws, conn.welcomed, conn.renew, conn.pong_due = ws, false, false, nil
  by_ws[ws] = conn
end

local function on_close(x, conn, code, reason)
  coverage:closed(conn.id)
  if conn.ws then by_ws[conn.ws] = nil end
  conn.ws, conn.welcomed, conn.renew = nil, false, true
end

-- A failed send (closed, queue full) is raised, to show in the operator's state.
local function subscribe(x, ws, conn)
  stream.send_json(x, ws, {
    id = new_id(), type = "subscribe",
    topic = TICKER_TOPIC .. table.concat(conn.symbols, ","),
    privateChannel = false, response = true,
  }, "stream " .. conn.id .. ": subscribe")
end

-- Every ping_every (1 s): ping the socket when its pingInterval has passed
-- since the last ping; close it when a pong is overdue.
local function on_ping(x, ws)
  local conn = by_ws[ws]
  if not conn or not conn.welcomed then return end
  local now = x.now()
  if conn.pong_due and now > conn.pong_due then
    x.log.warn("stream " .. conn.id .. ": no pong within " .. conn.timeout_ms .. " ms; reconnecting")
    ws:close()
    return
  end
  if now - conn.ping_at >= conn.ping_ms then
    conn.ping_at = now
    if ws:send(x.json.encode({ id = new_id(), type = "ping" })) and not conn.pong_due then
      conn.pong_due = now + conn.timeout_ms
    end
  end
end

-- A "message" of the ticker topic, subject trade.ticker; anything else on
-- the connection (book deltas, trades, other topics) is not a ticker.
local function on_data(x, doc, conn)
  local d = doc.data
  if doc.subject ~= "trade.ticker" or type(doc.topic) ~= "string" or type(d) ~= "table" then
    return
  end
  local sym = doc.topic:match("^/market/ticker:([^,]+)$")
  if not sym then return end
  x.emit({
    symbol = sym,
    bid = dec(d.bestBid), ask = dec(d.bestAsk),
    bid_size = dec(d.bestBidSize), ask_size = dec(d.bestAskSize),
    last = dec(d.price), ts = ms(d.time),
  })
  -- A symbol the markets do not know is counted unmapped by the engine.
  coverage:delivered(idx and idx.by_symbol[sym] and sym or nil, conn.id)
end

-- Never waits; raises only when the subscribe cannot be sent.
local function on_message(x, ws, msg, conn)
  local doc = stream.decode(x, msg)
  if not doc then return end
  local kind = doc.type
  if kind == "message" then
    on_data(x, doc, conn)
  elseif kind == "welcome" then
    conn.welcomed, conn.ping_at = true, x.now()
    subscribe(x, ws, conn)
  elseif kind == "pong" then
    conn.pong_due = nil
  elseif kind == "error" then
    -- e.g. a refused subscribe: nothing of this socket is coming.
    coverage:refuse_all(conn.id)
    x.log.warn("stream " .. conn.id .. ": error " .. tostring(doc.code):sub(1, 20) .. ": "
      .. tostring(doc.data):sub(1, 200))
  end
  -- ack, notice and anything else: nothing to store
end

return {
  name = "kucoin",
  spec = 1,
  rest = "https://api.kucoin.com",
  -- The host bullet-public names today; connections go to the endpoint it
  -- returns, and this field is what allows that host.
  ws = "wss://ws-api-spot.kucoin.com",
  poll_every = 10,
  -- KuCoin's public REST pool is 2,000 request weight per 30 s per IP;
  -- allTickers weighs 15, bullet-public 10, symbols 4. One allTickers per
  -- poll (6 a minute) plus a token per socket at start and per reconnect:
  -- at most 30 calls a minute, 450 weight: 225 per 30 s, a ninth of the pool.
  budget = { requests = 30, per = 60 },
  max_pairs = 5000,
  -- A pong answers every ping (18 s), so a live link is never this quiet.
  idle_timeout = 60,
  options = {
    -- Ticker symbols per socket (one topic each; KuCoin allows 100).
    symbols_per_conn = MAX_SYMBOLS_PER_TOPIC,
  },
  markets = load_markets,
  poll = poll,
  stream = {
    connections = connections,
    on_open = on_open,
    on_message = on_message,
    on_ping = on_ping,
    on_close = on_close,
    -- on_ping's tick; the pings themselves follow each token's pingInterval.
    ping_every = 1,
  },
}
