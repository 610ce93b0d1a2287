#!/usr/bin/python3
"""Expected Coinbase Exchange tickers, read from the recordings in tests/fixtures/coinbase/.

Usage: derive/coinbase.py CASE, CASE one of
  poll      --pairs BTC_USDT --no-stream: REST only, allow-list BTC_USDT
  stream    --no-poll: the ticker capture, no allow-list

Knows only tests/operators/README.md and the fixture README: a product id is
BASE-QUOTE and /products gives its base_currency/quote_currency, the pair
being BASE_QUOTE. poll: Coinbase has no all-products ticker, so each
allow-listed pair is asked at /products/{id}/ticker, the id being the listed
product's, or BASE-QUOTE of the allow-list entry when /products (2021) does
not list it; bid=bid, ask=ask, last=price, volume=volume, ts=time, no sizes.
stream: each "type":"ticker" message gives bid=best_bid, ask=best_ask,
last=price, volume=volume_24h, ts=time and no sizes (best_bid_size and
best_ask_size came after 2021); the stored ticker of a pair is its last
accepted message. ts is the ISO 8601 time in ms since the epoch, the
fraction truncated. Prices are the recorded strings. Prints one JSON line
per pair, sorted by pair, in the expected-file format. It never runs the
operator.
"""
import calendar
import json
import re
import sys
from decimal import Decimal
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "coinbase"
KEYS = ("exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last", "volume", "ts")
ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z")


def load(name):
    return json.loads((FIXTURES / name).read_text())


def products():
    """product id -> BASE_QUOTE."""
    return {p["id"]: p["base_currency"] + "_" + p["quote_currency"] for p in load("rest_products.json")}


def ms(iso):
    """'2021-04-17T16:44:06.669388Z' -> 1618677846669 (fraction truncated)."""
    m = ISO.fullmatch(iso)
    if not m:
        raise SystemExit(f"unexpected time {iso!r}: extend derive/coinbase.py")
    secs = calendar.timegm(tuple(int(g) for g in m.groups()[:6]))
    return secs * 1000 + int(((m.group(7) or "") + "000")[:3])


def text(v):
    """A price as the engine stores it: these recordings hold strings only."""
    if isinstance(v, str) and v != "":
        return v
    raise SystemExit(f"unexpected price {v!r}: extend derive/coinbase.py")


def row(pair, pid, bid, ask, last, volume, time):
    """The stored line, or None if the engine would refuse it."""
    t = dict(zip(KEYS, ("coinbase", pair, pid, text(bid), text(ask), None, None,
                        text(last), text(volume), ms(time))))
    b, a = Decimal(t["bid"]), Decimal(t["ask"])
    if b <= 0 or a <= 0 or b > a:
        return None
    return t


def recorded_ticker(pid):
    for r in load("manifest.json")["rest"]:
        if r["method"] == "GET" and r["path"] == f"/products/{pid}/ticker" and not r.get("query"):
            return load(r["file"])
    return None


def poll(allow):
    ids = {pair: pid for pid, pair in products().items()}
    out = []
    for pair in allow:
        pid = ids.get(pair, pair.replace("_", "-"))
        body = recorded_ticker(pid)
        if body is None:
            continue
        t = row(pair, pid, body["bid"], body["ask"], body["price"], body["volume"], body["time"])
        if t:
            out.append(t)
    return out


def stream():
    """Replays ws_ticker.jsonl: a pair keeps its last accepted ticker."""
    known = products()
    stored = {}
    for line in (FIXTURES / "ws_ticker.jsonl").read_text().splitlines():
        m = json.loads(line)
        if m["type"] != "ticker":
            continue  # the subscriptions acks
        pid = m["product_id"]
        if pid not in known:
            raise SystemExit(f"product {pid} of the capture is not in /products")
        t = row(known[pid], pid, m["best_bid"], m["best_ask"], m["price"], m["volume_24h"], m["time"])
        if t:
            stored[t["pair"]] = t
    return list(stored.values())


def main():
    cases = {"poll": lambda: poll({"BTC_USDT"}), "stream": stream}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        raise SystemExit(__doc__)
    for t in sorted(cases[sys.argv[1]](), key=lambda t: t["pair"]):
        print(json.dumps(t, separators=(",", ":")))


if __name__ == "__main__":
    main()
