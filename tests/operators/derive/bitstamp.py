#!/usr/bin/python3
"""Expected Bitstamp tickers, derived from the recordings alone.

Usage: derive/bitstamp.py CASE, CASE one of
  poll        --pairs BTC_USDT
  unrecorded  --pairs ETH_USDT,BTC_USDT,DOGE_USD

It knows only what tests/fixtures/bitstamp/README.md and manifest.json say,
never the operator: a market of trading-pairs-info is `url_symbol` (the
symbol, and the name in REST paths) with base/quote from `name` split on
"/", and only if `trading` is "Enabled"; GET /api/v2/ticker/{url_symbol}/
answers bid, ask, last, volume (24 h, base) as strings and timestamp in
epoch seconds (a string), with no sizes. A case's allow-list gives the pairs
asked for; a pair is stored when it is a market and the manifest holds a
recorded ticker for its url_symbol. Strings are stored exactly as recorded.
"""
import json
import os
import sys

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "bitstamp")
KEYS = ["exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last", "volume", "ts"]
CASES = {"poll": ["BTC_USDT"], "unrecorded": ["ETH_USDT", "BTC_USDT", "DOGE_USD"]}


def load(name):
    with open(os.path.join(FIX, name)) as f:
        return json.load(f)


def markets():
    """BASE_QUOTE -> url_symbol, enabled pairs only."""
    out = {}
    for p in load("rest_api_v2_trading-pairs-info.json"):
        if p["trading"] == "Enabled":
            base, quote = p["name"].split("/")
            out[base + "_" + quote] = p["url_symbol"]
    return out


def recorded_tickers():
    """url_symbol -> file of its recorded /api/v2/ticker/{url_symbol}/ answer."""
    out = {}
    for r in load("manifest.json")["rest"]:
        parts = r["path"].split("/")  # "", "api", "v2", "ticker", sym, ""
        if r["method"] == "GET" and len(parts) == 6 and parts[1:4] == ["api", "v2", "ticker"] and parts[4]:
            out[parts[4]] = r["file"]
    return out


def ticker(pair, sym, t):
    for k in ("bid", "ask", "last", "volume", "timestamp"):
        assert isinstance(t[k], str), k  # the README: REST values are strings
    return {"exchange": "bitstamp", "pair": pair, "symbol": sym,
            "bid": t["bid"], "ask": t["ask"], "bid_size": None, "ask_size": None,
            "last": t["last"], "volume": t["volume"], "ts": int(t["timestamp"]) * 1000}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit("usage: bitstamp.py " + "|".join(CASES))
    mk, files = markets(), recorded_tickers()
    out = []
    for pair in CASES[sys.argv[1]]:
        sym = mk.get(pair)
        if sym in files:
            out.append(ticker(pair, sym, load(files[sym])))
    for t in sorted(out, key=lambda t: t["pair"]):
        print(json.dumps({k: t[k] for k in KEYS}, separators=(",", ":")))


if __name__ == "__main__":
    main()
