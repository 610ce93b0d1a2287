-- benchfeed: a bench-only operator (tests/bench/fanout), never shipped in
-- operators/. It emits synthetic tickers BASE0_USDT .. BASE<n-1>_USDT at a
-- steady rate, round robin, and carries each emit's send time in the data so
-- that a /v1/stream client can measure update-to-client latency:
--
--   volume = x.now() as decimal digits (integer ms since the epoch, taken
--            just before x.emit; the engine keeps a string volume as written)
--
-- volume is a free decimal field that nothing downstream computes with (mid
-- and spread come from bid and ask), and a new send time always changes the
-- ticker, so every emit is a stored update and is published. bid and ask
-- move a little too, so the quotes look alive. x.now() has millisecond
-- resolution: a measured latency is up to 1 ms (0.5 ms on average) higher
-- than the true one.
--
-- poll() paces itself: it runs for options.seconds, waking every ~1 ms
-- (x.sleep), and emits whatever is due to keep options.rate emits per second
-- since it started, so a late wake-up is caught up, never lost. Then the
-- engine calls it again after poll_every.

local seq = 0 -- next pair, kept across polls

local function opt(x, name, default)
  local o = type(x.op.options) == "table" and x.op.options or {}
  return tonumber(o[name]) or default
end

local function emit_next(x, n_pairs)
  local i = seq % n_pairs
  seq = seq + 1
  local tick = seq % 1000
  x.emit({
    base = "BASE" .. i, quote = "USDT", symbol = "BASE" .. i .. "USDT",
    bid = x.num(100 + i + tick / 1000), ask = x.num(100.5 + i + tick / 1000),
    volume = tostring(x.now()),
  })
end

local function poll(x)
  local n_pairs = math.tointeger(opt(x, "pairs", 100)) or 100
  local rate = opt(x, "rate", 1000)
  local span_ms = opt(x, "seconds", 5) * 1000
  local t0, sent = x.now(), 0
  while true do
    local elapsed = x.now() - t0
    if elapsed >= span_ms then return end
    local due = math.floor(elapsed * rate / 1000)
    while sent < due do
      emit_next(x, n_pairs)
      sent = sent + 1
    end
    x.sleep(0.001)
  end
end

return {
  name = "benchfeed",
  spec = 1,
  poll_every = 0.05,
  max_pairs = 1000,
  options = { pairs = 100, rate = 1000, seconds = 5 },
  poll = poll,
}
