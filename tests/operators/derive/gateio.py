#!/usr/bin/python3
"""Expected Gate tickers, read from the recordings in tests/fixtures/gateio/.

Usage: derive/gateio.py CASE, CASE one of
  poll         --pairs BTC_USDT --no-stream: REST only, allow-list BTC_USDT
  poll_btc3l   --pairs BTC3L_USDT --no-stream: REST only, allow-list BTC3L_USDT
  poll_all     --no-stream: REST only, no allow-list
  stream       --no-poll: the spot.tickers capture, no allow-list
  both         poll and stream, no allow-list

Knows only the fixture README: pairs are the currency_pairs entries that are
not "untradable", the pair their base_quote (an id is never split); a ticker
gives bid=highest_bid, ask=lowest_ask, last=last, volume=base_volume; the
2021 data has no sizes (null); ts is the WebSocket message's top-level
`time` (seconds) in ms, and null for REST (its body has no time). Stream
tickers are the "update" messages of channel spot.tickers. Prints one JSON
line per pair, sorted by pair, in the expected-file format. It never runs
the operator.
"""
import json
import sys
from decimal import Decimal
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gateio"
CASES = {  # case: (allow-list or None, REST, stream)
    "poll": ({"BTC_USDT"}, True, False),
    "poll_btc3l": ({"BTC3L_USDT"}, True, False),
    "poll_all": (None, True, False),
    "stream": (None, False, True),
    "both": (None, True, True),
}


def listed_pairs():
    doc = json.loads((FIXTURES / "rest_api_v4_spot_currency_pairs.json").read_text())
    return {p["id"]: p["base"] + "_" + p["quote"] for p in doc if p["trade_status"] != "untradable"}


def ticker(pairs, r, ts):
    """The stored line for one ticker, or None when its pair is not listed or
    the engine would refuse it."""
    if r["currency_pair"] not in pairs:
        return None
    # Every ticker recorded has these fields and no sizes, so the last
    # accepted one of a pair is its whole stored ticker (nothing kept from
    # before).
    for field in ("highest_bid", "lowest_ask", "last", "base_volume"):
        assert isinstance(r.get(field), str) and r[field] != "", (r["currency_pair"], field)
    assert "highest_size" not in r and "lowest_size" not in r, r["currency_pair"]
    t = {"exchange": "gateio", "pair": pairs[r["currency_pair"]], "symbol": r["currency_pair"],
         "bid": r["highest_bid"], "ask": r["lowest_ask"], "bid_size": None, "ask_size": None,
         "last": r["last"], "volume": r["base_volume"], "ts": ts}
    bid, ask = Decimal(t["bid"]), Decimal(t["ask"])
    if bid <= 0 or ask <= 0 or bid > ask:
        return None
    return t


def rest_tickers(pairs):
    for r in json.loads((FIXTURES / "rest_api_v4_spot_tickers.docs_example.json").read_text()):
        yield ticker(pairs, r, None)


def stream_tickers(pairs):
    for line in (FIXTURES / "ws_spot_tickers.jsonl").read_text().splitlines():
        msg = json.loads(line)
        if msg["channel"] == "spot.tickers" and msg["event"] == "update":
            yield ticker(pairs, msg["result"], msg["time"] * 1000)


def main():
    case = sys.argv[1] if len(sys.argv) == 2 else None
    if case not in CASES:
        sys.exit("usage: gateio.py " + "|".join(CASES))
    allow, rest, stream = CASES[case]
    pairs = listed_pairs()
    stored, by_rest = {}, set()
    if rest:
        for t in rest_tickers(pairs):
            if t and (allow is None or t["pair"] in allow):
                stored[t["pair"]] = t
                by_rest.add(t["pair"])
    if stream:
        for t in stream_tickers(pairs):
            if t:
                # Poll and stream race in a run: a pair both gave would have
                # no single expected line.
                assert t["pair"] not in by_rest, t["pair"]
                stored[t["pair"]] = t  # the last accepted message of a pair wins
    for p in sorted(stored):
        print(json.dumps(stored[p], separators=(",", ":")))


if __name__ == "__main__":
    main()
