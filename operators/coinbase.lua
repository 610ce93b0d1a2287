-- Coinbase Exchange (formerly Coinbase Pro; not the Advanced Trade API): a
-- `ticker` channel stream, with REST polling for the products the stream does
-- not deliver (operator API spec 1, docs/operators.md).
--
-- markets(): GET /products. The product id ("BTC-USD") is our `symbol`;
-- base/quote are its `base_currency`/`quote_currency`, never a split of the
-- id. Products whose status is not "online" or whose trading is disabled
-- are left out (no ticker to serve).
--
-- stream: one subscribe per socket (at most options.products_per_conn
-- products each), for every product or, with a pairs allow-list, the
-- allowed ones that /products lists:
--   {"type":"subscribe","product_ids":[...],
--    "channels":["ticker",{"name":"heartbeat","product_ids":[<first>]}]}
-- The heartbeat of one product gives a message a second, so a socket whose
-- products are all quiet is not taken for a stalled one. A "ticker" message
-- gives best_bid/best_ask (and best_bid_size/best_ask_size on newer feeds),
-- price (the last trade), volume_24h (base) and time (ISO 8601, to ms).
-- "subscriptions" acks and heartbeats are not data; an "error" is logged and
-- hands the socket's products to poll() until it reconnects. Only ids from
-- /products are subscribed: Coinbase refuses a whole subscribe naming an
-- unknown product.
--
-- poll(): GET /products/{id}/ticker (bid, ask, price, volume, time; there is
-- no all-products ticker) for the products the stream does not deliver: all
-- of them when the stream is down, none while it delivers them all. At most
-- options.poll_max requests per poll, taking turns when more products need
-- one. A product counts as delivered once the open connection carried a
-- ticker for it (Coinbase sends one per product right after subscribing, so
-- a poll just after a (re)connect may ask REST once for products about to
-- arrive). options.poll_fallback = false turns the REST fallback off for the
-- products a socket subscribes.
--
-- Allow-listed pairs that /products does not list: the allow-list entry is
-- configuration, not a symbol to be guessed, so for BASE_QUOTE poll() asks
-- /products/BASE-QUOTE/ticker and emits with base/quote taken from that
-- entry. (The recorded 2021 /products predates BTC-USDT, whose recorded
-- ticker is from 2024; a live /products that misses a pair has usually just
-- not been re-read since the listing.) A 404 there is an error of that poll.
--
-- Prices are passed to x.emit exactly as Coinbase wrote them (JSON strings).
-- REST requests carry a User-Agent: Coinbase refuses requests without one.

local rest = require "rest"
local market = require "market"
local pair = require "pair"
local options = require "options"
local batch = require "batch"
local stream = require "stream"
-- Coinbase sends "" for a side it does not have: absent, not malformed.
local dec = require("values").dec_nonempty

local TIMEOUT_S = 15
local USER_AGENT = "rate-explorer"
local DEFAULT_PRODUCTS_PER_CONN = 100
local DEFAULT_POLL_MAX = 10

-- Filled by markets() and read by the others (same Lua state, rerun at every load).
local idx = nil   -- market.index(...) of /products
local warned = {} -- allow-list entries already reported (log once)

-- Stream coverage, shared by the stream callbacks and poll() (lib/stream.lua):
-- which socket subscribes each product, whether its current connection
-- carried a ticker for it, and the sockets whose subscription Coinbase
-- refused (an "error" message refuses the whole subscribe).
local coverage = stream.coverage()
local turn = 0 -- where the next poll starts when it cannot ask for every product

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
-- days_from_civil), integers only.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- "2021-04-17T16:43:30.244075Z" (or with a +hh:mm offset) -> integer ms since
-- the epoch, fraction truncated; nil for anything else (no offset = no time).
local function iso_ms(s)
  if type(s) ~= "string" or #s > 40 then return nil end
  local y, mo, d, h, mi, sec, rest =
    s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  local frac, tz = rest:match("^[%.,](%d+)(.*)$")
  if not frac then frac, tz = "", rest end
  local off
  if tz == "Z" or tz == "z" then
    off = 0
  else
    local sign, oh, om = tz:match("^([%+%-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    off = (tonumber(oh) * 60 + tonumber(om)) * 60
    if sign == "-" then off = -off end
  end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  h, mi, sec = tonumber(h), tonumber(mi), tonumber(sec)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or sec > 60 then
    return nil
  end
  local ms = tonumber((frac .. "000"):sub(1, 3))
  local t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec - off
  return t * 1000 + ms
end

-- Coinbase explains refusals as {"message":"NotFound"}.
local function get_json(x, path, what)
  return rest.get_json(x, path, what, {
    headers = { ["User-Agent"] = USER_AGENT, Accept = "application/json" },
    timeout = TIMEOUT_S,
    detail = "message",
  })
end

local function load_markets(x)
  idx = market.index(x, get_json(x, "/products", "products"), function(p)
    if not p.id:match("^[%w%-]+$") then return nil, "malformed" end
    if (p.status ~= nil and p.status ~= "online") or p.trading_disabled == true then
      return nil, "not online or trading disabled"
    end
    return { symbol = p.id, base = p.base_currency, quote = p.quote_currency }
  end, "products")
  return idx.list
end

-- What to deliver: product ids from /products, and `extra` = {id = {base,
-- quote}} for allow-listed pairs /products does not list (poll only).
local function targets(x)
  local wanted = pair.wanted(x)
  if #wanted == 0 then
    return idx.symbols, {}, {}
  end
  local extra, extra_ids = {}, {}
  local ids = pair.select(x, idx.by_pair, wanted, function(p, b, q, seen)
    if b then
      local id = b .. "-" .. q
      if not seen[id] then
        seen[id], extra[id], extra_ids[#extra_ids + 1] = true, { base = b, quote = q }, id
        if not warned[id] then
          warned[id] = true
          x.log.info("pairs: " .. tostring(p) .. " is not in /products; polling /products/"
            .. id .. "/ticker for it")
        end
      end
    elseif not warned[tostring(p)] then
      warned[tostring(p)] = true
      x.log.warn("pairs: " .. tostring(p):sub(1, 40) .. " is not a BASE_QUOTE pair; skipped")
    end
  end)
  if #ids == 0 and #extra_ids == 0 then
    error("pairs: none of the configured pairs is usable on coinbase", 0)
  end
  return ids, extra, extra_ids
end

-- One product's REST ticker, or nil when the stream delivered it meanwhile.
local function product_ticker(x, id, extra)
  local doc = get_json(x, "/products/" .. id .. "/ticker", "products/" .. id .. "/ticker")
  if type(doc) ~= "table" then
    error("products/" .. id .. "/ticker: expected an object", 0)
  end
  -- Not if the stream delivered it meanwhile: its socket is open and has
  -- carried a ticker for it (and Coinbase reported no error since).
  if coverage:covered(id) then return nil end
  local e = extra[id]
  return {
    symbol = id, base = e and e.base, quote = e and e.quote,
    bid = dec(doc.bid), ask = dec(doc.ask),
    last = dec(doc.price), volume = dec(doc.volume), ts = iso_ms(doc.time),
  }
end

local function poll(x)
  if not idx then load_markets(x) end -- markets() normally ran at load
  local ids, extra, extra_ids = targets(x)
  local need = {}
  for _, id in ipairs(extra_ids) do need[#need + 1] = id end
  -- Without the fallback, nothing a socket subscribes is asked for.
  coverage:to_poll(x, ids, need)
  if #need == 0 then
    return -- the stream delivers every product
  end
  local max = math.floor(options.number(x, "poll_max", DEFAULT_POLL_MAX, 1, 1000))
  local from = 1
  if #need > max then
    from = turn % #need + 1
    turn = turn + max
  end
  local turn_ids = {}
  for k = 0, math.min(max, #need) - 1 do
    turn_ids[#turn_ids + 1] = need[(from - 1 + k) % #need + 1]
  end
  -- One product failing must not hold back the others' data.
  batch.emit_each(x, turn_ids, function(id) return product_ticker(x, id, extra) end, "products")
end

-- ---------------------------------------------------------------------------
-- Stream
-- ---------------------------------------------------------------------------

local function connections(x, markets)
  if not idx then load_markets(x) end
  local url = stream.url(x)
  local ids = targets(x) -- only what /products lists: see the top of the file
  local per = math.floor(options.number(x, "products_per_conn", DEFAULT_PRODUCTS_PER_CONN, 1, 10000))
  return coverage:connections(x, url, ids, per, "ticker products")
end

-- Runs after every (re)connect: subscribe again; what the previous
-- connection delivered no longer counts.
local function on_open(x, ws, conn)
  coverage:opened(conn.id)
  stream.send_json(x, ws, {
    type = "subscribe",
    product_ids = conn.symbols,
    channels = { "ticker", { name = "heartbeat", product_ids = { conn.symbols[1] } } },
  }, "subscribe")
end

-- Never raises and never waits.
local function on_message(x, ws, msg, conn)
  local doc = stream.decode(x, msg)
  if not doc then return end
  local kind = doc.type
  if kind == "ticker" then
    local id = doc.product_id
    if type(id) ~= "string" then return end
    x.emit({
      symbol = id,
      bid = dec(doc.best_bid), ask = dec(doc.best_ask),
      bid_size = dec(doc.best_bid_size), ask_size = dec(doc.best_ask_size),
      last = dec(doc.price), volume = dec(doc.volume_24h), ts = iso_ms(doc.time),
    })
    coverage:delivered(id, conn.id)
  elseif kind == "error" then
    -- e.g. "Failed to subscribe": nothing of this socket is coming.
    coverage:refuse_all(conn.id)
    x.log.warn("stream: " .. tostring(doc.message):sub(1, 100) .. ": "
      .. tostring(doc.reason):sub(1, 200))
  end
  -- subscriptions, heartbeat and anything else: nothing to store
end

return {
  name = "coinbase",
  spec = 1,
  rest = "https://api.exchange.coinbase.com",
  ws = "wss://ws-feed.exchange.coinbase.com",
  poll_every = 10,
  -- Up to options.poll_max requests per poll (only while the stream does not
  -- deliver): 60 a minute at the defaults. Coinbase's public REST limit is
  -- 10 requests a second per IP.
  budget = { requests = 60, per = 60 },
  max_pairs = 5000,
  -- The heartbeat channel sends a message a second.
  idle_timeout = 30,
  options = {
    products_per_conn = DEFAULT_PRODUCTS_PER_CONN,
    -- REST tickers per poll, when the stream does not deliver the products.
    poll_max = DEFAULT_POLL_MAX,
    -- false: poll() never asks REST for a product a socket subscribes, even
    -- while the stream is down or silent for it.
    poll_fallback = true,
  },
  markets = load_markets,
  poll = poll,
  stream = {
    connections = connections,
    on_open = on_open,
    on_message = on_message,
    on_close = coverage:close_handler(),
    -- Coinbase needs no application-level ping: WebSocket ping frames.
    ping_every = 30,
  },
}
