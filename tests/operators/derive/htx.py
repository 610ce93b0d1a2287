#!/usr/bin/python3
"""Expected HTX tickers, derived from the recordings in tests/fixtures/htx.

Knows only the fixture README (tests/fixtures/htx/README.md): the symbol
list's base-currency/quote-currency, and the field table:

  REST /market/detail/merged (tick)  bid = [price, size], ask = [price, size],
                                     close (last), amount (24 h base volume),
                                     top-level ts
  REST /market/tickers (data[])      bid (bidSize), ask (askSize), close,
                                     amount, top-level ts
  WS depth.step0 (tick)              bids / asks [[price, size]], tick.ts

Usage: derive/htx.py CASE, CASE one of
  poll    --pairs BTC_USDT --no-stream: /market/detail/merged?symbol=btcusdt
  all     --no-stream: /market/tickers, every pair the symbol list maps
  stream  --no-poll: the last depth.step0 snapshot of each symbol in the
          capture; best bid = highest bid price, best ask = lowest ask price

Prints one JSON line per pair, sorted by pair, in the expected-file format.
Prices are JSON numbers in the recordings: printed as the engine renders a
number, the shortest round-trip decimal in positional form.
"""
import json
import sys
from decimal import Decimal
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "htx"
KEYS = ("exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last", "volume", "ts")


def load(name):
    return json.loads((FIXTURES / name).read_text())


def num(v):
    """A JSON number as the engine stores it: Python's repr, without exponent."""
    if v is None:
        return None
    text = format(Decimal(repr(float(v))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def markets():
    """symbol -> BASE_QUOTE for the online symbols of /v1/common/symbols."""
    doc = load("rest_v1_common_symbols.json")
    return {s["symbol"]: f'{s["base-currency"].upper()}_{s["quote-currency"].upper()}'
            for s in doc["data"] if s["state"] == "online"}


def row(pair, symbol, bid, ask, bid_size, ask_size, last, volume, ts):
    values = (num(bid), num(ask), num(bid_size), num(ask_size), num(last), num(volume))
    return dict(zip(KEYS, ("htx", pair, symbol) + values + (ts,)))


def case_poll(pairs):
    doc = load("rest_market_detail_merged_symbol_btcusdt.docs_example.json")
    t = doc["tick"]
    return [row(pairs["btcusdt"], "btcusdt", t["bid"][0], t["ask"][0], t["bid"][1],
                t["ask"][1], t["close"], t["amount"], doc["ts"])]


def case_all(pairs):
    doc = load("rest_market_tickers.docs_example.json")
    out = []
    for t in doc["data"]:
        if t["symbol"] not in pairs:
            print(f"unmapped (not in the symbol list): {t['symbol']}", file=sys.stderr)
            continue
        out.append(row(pairs[t["symbol"]], t["symbol"], t["bid"], t["ask"], t["bidSize"],
                       t["askSize"], t["close"], t["amount"], doc["ts"]))
    return out


def case_stream(pairs):
    last = {}
    for line in (FIXTURES / "ws_market_depth_step0.jsonl").read_text().splitlines():
        msg = json.loads(line)
        ch = msg.get("ch", "")
        if ch.startswith("market.") and ch.endswith(".depth.step0"):
            last[ch.split(".")[1]] = msg["tick"]
    out = []
    for symbol, t in last.items():
        bid = max(t["bids"], key=lambda level: level[0])
        ask = min(t["asks"], key=lambda level: level[0])
        assert bid[0] < ask[0], f"{symbol}: crossed book"
        out.append(row(pairs[symbol], symbol, bid[0], ask[0], bid[1], ask[1], None, None,
                       t["ts"]))
    return out


def main():
    cases = {"poll": case_poll, "all": case_all, "stream": case_stream}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(cases)}")
    for r in sorted(cases[sys.argv[1]](markets()), key=lambda r: r["pair"]):
        print(json.dumps(r, separators=(",", ":")))


if __name__ == "__main__":
    main()
