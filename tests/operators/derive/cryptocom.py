#!/usr/bin/python3
"""Expected Crypto.com tickers, derived from the recordings in tests/fixtures/cryptocom.

Knows only the fixture README (tests/fixtures/cryptocom/README.md): the
instrument list (legacy v2 get-instruments: instrument_name, base_currency,
quote_currency; spot pairs only) and the v1 field table:

  REST get-tickers (result.data[])  b bid, k ask, a LAST trade, v 24 h base
                                    volume, t ms (a string in REST)
  WS ticker (result.data[])         b (bs size), k (ks size), a, v, t, i

Usage: derive/cryptocom.py CASE, CASE one of
  poll    --no-stream: get-tickers, every instrument the list maps
  stream  --no-poll: the last ticker push of each instrument in the capture

Prints one JSON line per pair, sorted by pair, in the expected-file format.
An instrument the list does not map (a perpetual such as BTCUSD-PERP: not a
spot pair) gives no line; it is reported on stderr.
"""
import json
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cryptocom"
KEYS = ("exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last", "volume", "ts")


def load(name):
    return json.loads((FIXTURES / name).read_text())


def markets():
    """instrument_name -> BASE_QUOTE, from the v2 instrument list."""
    doc = load("rest_v2_public_get-instruments.json")
    return {i["instrument_name"]: f'{i["base_currency"]}_{i["quote_currency"]}'.upper()
            for i in doc["result"]["instruments"]}


def row(pairs, d):
    if d["i"] not in pairs:
        print(f"unmapped (not a listed spot pair): {d['i']}", file=sys.stderr)
        return None
    ts = int(d["t"]) if d.get("t") is not None else None
    values = tuple(d.get(k) for k in ("b", "k", "bs", "ks", "a", "v"))
    return dict(zip(KEYS, ("cryptocom", pairs[d["i"]], d["i"]) + values + (ts,)))


def case_poll(pairs):
    doc = load("rest_exchange_v1_public_get-tickers.docs_example.json")
    return [r for r in (row(pairs, d) for d in doc["result"]["data"]) if r]


def case_stream(pairs):
    last = {}
    for line in (FIXTURES / "ws_ticker.docs_example.jsonl").read_text().splitlines():
        result = json.loads(line).get("result") or {}
        if result.get("channel") == "ticker":
            for d in result["data"]:
                last[d["i"]] = d
    return [r for r in (row(pairs, d) for d in last.values()) if r]


def main():
    cases = {"poll": case_poll, "stream": case_stream}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(cases)}")
    for r in sorted(cases[sys.argv[1]](markets()), key=lambda r: r["pair"]):
        print(json.dumps(r, separators=(",", ":")))


if __name__ == "__main__":
    main()
