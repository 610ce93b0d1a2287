#!/usr/bin/python3
"""Expected OKX tickers, read from the recordings in tests/fixtures/okx/.

Usage: derive/okx.py CASE, CASE one of
  poll         --pairs BTC_USDT --no-stream: REST only, allow-list BTC_USDT
  poll_all     --no-stream: REST only, no allow-list
  stream       --no-poll: the tickers capture, no allow-list

Knows only the fixture README: spot instruments are the live SPOT entries
of public/instruments, the pair their baseCcy_quoteCcy (an instId is never
split); a ticker element gives bid=bidPx, ask=askPx, bid_size=bidSz,
ask_size=askSz, last=last, volume=vol24h (base), ts=ts (ms, a string); only
elements whose instType is SPOT are spot prices. Prints one JSON line per
pair, sorted by pair, in the expected-file format. It never runs the
operator.
"""
import json
import sys
from decimal import Decimal
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "okx"
FIELDS = {"bid": "bidPx", "ask": "askPx", "bid_size": "bidSz", "ask_size": "askSz",
          "last": "last", "volume": "vol24h"}
ALLOW = {"poll": {"BTC_USDT"}, "poll_all": None, "stream": None}


def spot_pairs():
    doc = json.loads((FIXTURES / "rest_api_v5_public_instruments_instType_SPOT.json").read_text())
    return {i["instId"]: i["baseCcy"] + "_" + i["quoteCcy"]
            for i in doc["data"] if i["instType"] == "SPOT" and i["state"] == "live"}


def ticker(pairs, e):
    """The stored line for one ticker element, or None when it is not a spot
    ticker of a listed instrument or the engine would refuse it."""
    if e.get("instType") != "SPOT" or e.get("instId") not in pairs:
        return None
    t = {"exchange": "okx", "pair": pairs[e["instId"]], "symbol": e["instId"]}
    for name, field in FIELDS.items():
        v = e.get(field)
        # Every element recorded has every field, so the last accepted one
        # of a pair is its whole stored ticker (no field kept from before).
        assert isinstance(v, str) and v != "", (e["instId"], field, v)
        t[name] = v
    t["ts"] = int(e["ts"])
    bid, ask = Decimal(t["bid"]), Decimal(t["ask"])
    if bid <= 0 or ask <= 0 or bid > ask:
        return None
    return t


def rest_elements():
    """Every element of every REST ticker body the manifest lists."""
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    for r in manifest["rest"]:
        if r["path"] in ("/api/v5/market/ticker", "/api/v5/market/tickers"):
            yield from json.loads((FIXTURES / r["file"]).read_text())["data"]


def stream_elements():
    for line in (FIXTURES / "ws_tickers.jsonl").read_text().splitlines():
        msg = json.loads(line)
        if "event" not in msg and msg.get("arg", {}).get("channel") == "tickers":
            yield from msg["data"]


def main():
    case = sys.argv[1] if len(sys.argv) == 2 else None
    if case not in ALLOW:
        sys.exit("usage: okx.py " + "|".join(ALLOW))
    pairs = spot_pairs()
    allow = ALLOW[case]
    stored = {}
    for e in stream_elements() if case == "stream" else rest_elements():
        t = ticker(pairs, e)
        if t and (allow is None or t["pair"] in allow):
            stored[t["pair"]] = t  # the last accepted message of a pair wins
    for p in sorted(stored):
        print(json.dumps(stored[p], separators=(",", ":")))


if __name__ == "__main__":
    main()
