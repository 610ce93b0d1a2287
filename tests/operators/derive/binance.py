#!/usr/bin/python3
"""Expected Binance tickers, read from the recordings in tests/fixtures/binance/.

Usage: derive/binance.py CASE, CASE one of
  poll      --pairs BTC_USDT --no-stream: REST only, allow-list BTC_USDT
  all       --no-stream: REST only, no allow-list
  stream    --no-poll: the bookTicker capture, no allow-list

Knows only tests/operators/README.md and the fixture README: a symbol has no
separator and is split by exchangeInfo's baseAsset/quoteAsset, the pair
being BASE_QUOTE. poll: bid/ask/bid_size/ask_size are
bidPrice/askPrice/bidQty/askQty of ticker/bookTicker?symbol=S, and
last/volume/ts lastPrice/volume/closeTime of ticker/24hr?symbol=S (two
bodies recorded on different days). all: each element of ticker/24hr (no
parameter) gives every field from the one body. stream: each bookTicker
message gives bid=data.b, ask=data.a, bid_size=data.B, ask_size=data.A and
no last, volume or time; the stored ticker of a pair is its last accepted
message. Prices are the recorded strings. Prints one JSON line per pair,
sorted by pair, in the expected-file format. It never runs the operator.
"""
import json
import sys
from decimal import Decimal
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"
KEYS = ("exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last", "volume", "ts")


def load(name):
    return json.loads((FIXTURES / name).read_text())


def markets():
    """symbol -> BASE_QUOTE, from exchangeInfo (only TRADING symbols)."""
    return {s["symbol"]: s["baseAsset"] + "_" + s["quoteAsset"]
            for s in load("rest_api_v3_exchangeInfo.json")["symbols"] if s["status"] == "TRADING"}


def recorded(path, query=None):
    """The body the manifest records for GET path?query (None if none)."""
    for r in load("manifest.json")["rest"]:
        if r["method"] == "GET" and r["path"] == path and r.get("query") == query:
            return load(r["file"])
    return None


def text(v):
    """A price as the engine stores it: Binance sends strings only."""
    if isinstance(v, str) and v != "":
        return v
    raise SystemExit(f"unexpected price {v!r}: extend derive/binance.py")


def opt(v):
    return None if v is None else text(v)


def row(pair, symbol, bid, ask, bid_size, ask_size, last=None, volume=None, ts=None):
    t = dict(zip(KEYS, ("binance", pair, symbol, text(bid), text(ask), text(bid_size),
                        text(ask_size), opt(last), opt(volume), ts)))
    if ts is not None:
        assert isinstance(ts, int), ts
    b, a = Decimal(t["bid"]), Decimal(t["ask"])
    if b <= 0 or a <= 0 or b > a:
        return None  # the engine would refuse it
    return t


def poll(allow):
    """One bookTicker and one 24hr ticker per allow-listed market."""
    out = []
    for symbol, pair in markets().items():
        if pair not in allow:
            continue
        book = recorded("/api/v3/ticker/bookTicker", "symbol=" + symbol)
        day = recorded("/api/v3/ticker/24hr", "symbol=" + symbol)
        if book is None or day is None:
            continue
        assert book["symbol"] == symbol and day["symbol"] == symbol
        t = row(pair, symbol, book["bidPrice"], book["askPrice"], book["bidQty"], book["askQty"],
                day["lastPrice"], day["volume"], day["closeTime"])
        if t:
            out.append(t)
    return out


def poll_all():
    """Every element of the all-symbol 24hr body that exchangeInfo lists."""
    known = markets()
    out = []
    for e in recorded("/api/v3/ticker/24hr"):
        pair = known.get(e["symbol"])
        if pair is None:
            continue
        t = row(pair, e["symbol"], e["bidPrice"], e["askPrice"], e["bidQty"], e["askQty"],
                e["lastPrice"], e["volume"], e["closeTime"])
        if t:
            out.append(t)
    return out


def stream():
    """Replays ws_bookTicker.jsonl: a pair keeps its last accepted message."""
    known = markets()
    stored = {}
    for line in (FIXTURES / "ws_bookTicker.jsonl").read_text().splitlines():
        d = json.loads(line)["data"]
        pair = known.get(d["s"])
        if pair is None:
            raise SystemExit(f"symbol {d['s']} of the capture is not in exchangeInfo")
        t = row(pair, d["s"], d["b"], d["a"], d["B"], d["A"])
        if t:
            stored[pair] = t
    return list(stored.values())


def main():
    cases = {"poll": lambda: poll({"BTC_USDT"}), "all": poll_all, "stream": stream}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        raise SystemExit(__doc__)
    for t in sorted(cases[sys.argv[1]](), key=lambda t: t["pair"]):
        print(json.dumps(t, separators=(",", ":")))


if __name__ == "__main__":
    main()
