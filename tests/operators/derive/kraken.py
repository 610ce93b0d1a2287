#!/usr/bin/python3
"""Expected Kraken tickers, read from the recordings in tests/fixtures/kraken/.

Usage: derive/kraken.py CASE, CASE one of
  poll      --pairs BTC_USDT --no-stream: REST only, allow-list BTC_USDT
  stream    --no-poll: the WS v1 ticker capture, no allow-list

Knows only tests/operators/README.md and the fixture README: a market is a
member of AssetPairs' result, its symbol the member's key, its pair the
`wsname` BASE/QUOTE written BASE_QUOTE with Kraken's aliases XBT -> BTC and
XDG -> DOGE; REST requests name it by `altname`, WS v1 by `wsname`. A ticker
(REST result.<key>, or a WS v1 [channelID, payload, "ticker", wsname]
payload) gives bid=b[0], ask=a[0], bid_size=b[2], ask_size=a[2] (lot
volume; [1] is the whole-lot volume), last=c[0], volume=v[1] (24 h; v[0] is
today only) and no time. In the stream the stored ticker of a pair is its
last accepted message. Prices are the recorded strings. Prints one JSON line
per pair, sorted by pair, in the expected-file format. It never runs the
operator.
"""
import json
import sys
from decimal import Decimal
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "kraken"
KEYS = ("exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last", "volume", "ts")
ALIAS = {"XBT": "BTC", "XDG": "DOGE"}


def load(name):
    return json.loads((FIXTURES / name).read_text())


def markets():
    """key -> (pair, altname, wsname) for every AssetPairs member."""
    out = {}
    for key, p in load("rest_0_public_AssetPairs.json")["result"].items():
        base, quote = (ALIAS.get(c, c) for c in p["wsname"].split("/"))
        out[key] = (base + "_" + quote, p["altname"], p["wsname"])
    return out


def text(v):
    """A price as the engine stores it: these recordings hold strings only."""
    if isinstance(v, str) and v != "":
        return v
    raise SystemExit(f"unexpected price {v!r}: extend derive/kraken.py")


def row(pair, key, t):
    """The stored line for one ticker payload, or None if the engine would refuse it."""
    r = dict(zip(KEYS, ("kraken", pair, key, text(t["b"][0]), text(t["a"][0]), text(t["b"][2]),
                        text(t["a"][2]), text(t["c"][0]), text(t["v"][1]), None)))
    b, a = Decimal(r["bid"]), Decimal(r["ask"])
    if b <= 0 or a <= 0 or b > a:
        return None
    return r


def real_ticker(altname):
    """The real (not documented-example) body recorded for Ticker?pair=altname."""
    for r in load("manifest.json")["rest"]:
        if (r["method"] == "GET" and r["path"] == "/0/public/Ticker"
                and r.get("query") == "pair=" + altname and r["status"] == "real"):
            return load(r["file"])
    return None


def poll(allow):
    out = []
    for key, (pair, altname, _) in markets().items():
        if pair not in allow:
            continue
        body = real_ticker(altname)
        if body is None:
            continue
        assert body["error"] == [], body["error"]
        t = row(pair, key, body["result"][key])
        if t:
            out.append(t)
    return out


def stream():
    """Replays ws_ticker.jsonl: a pair keeps its last accepted ticker."""
    by_wsname = {ws: (key, pair) for key, (pair, _, ws) in markets().items()}
    stored = {}
    for line in (FIXTURES / "ws_ticker.jsonl").read_text().splitlines():
        m = json.loads(line)
        if not isinstance(m, list) or m[-2] != "ticker":
            continue  # systemStatus, subscriptionStatus, heartbeat
        assert len(m) == 4, m
        if m[3] not in by_wsname:
            raise SystemExit(f"wsname {m[3]} of the capture is not in AssetPairs")
        key, pair = by_wsname[m[3]]
        t = row(pair, key, m[1])
        if t:
            stored[pair] = t
    return list(stored.values())


def main():
    cases = {"poll": lambda: poll({"BTC_USDT"}), "stream": stream}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        raise SystemExit(__doc__)
    for t in sorted(cases[sys.argv[1]](), key=lambda t: t["pair"]):
        print(json.dumps(t, separators=(",", ":")))


if __name__ == "__main__":
    main()
