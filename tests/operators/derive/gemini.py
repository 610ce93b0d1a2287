#!/usr/bin/python3
"""Expected Gemini tickers, read from the recordings in tests/fixtures/gemini/.

Usage: derive/gemini.py CASE, CASE one of
  poll      --pairs BTC_USD --no-stream: REST only, allow-list BTC_USD
  btcusdt   --pairs BTC_USDT --no-stream: REST only, allow-list BTC_USDT
  stream    --no-poll: the l2 capture, no allow-list

Knows only the fixture README: the markets are the symbols of /v1/symbols
whose details (details/all, or the symbol's own details) give
base_currency/quote_currency, the pair being BASE_QUOTE (a symbol is never
cut by length); a market whose status is "closed" has no book. REST
/v1/pubticker gives bid, ask, last, volume.<BASE> and volume.timestamp (ms).
WS v2 l2: a symbol's first l2_updates (the one with `trades`) is its whole
book, later ones change levels, a row [side, price, quantity] sets the
level's quantity and "0" removes it; best bid = highest buy level, best ask
= lowest sell level, sizes their quantities; `last` = price of the trade
with the latest timestamp (then event_id) among the snapshot's trades and
the trade messages; the feed has no time and no volume. Prints one JSON
line per pair, sorted by pair, in the expected-file format. It never runs
the operator.
"""
import json
import sys
from decimal import Decimal
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gemini"
KEYS = ("exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last", "volume", "ts")


def load(name):
    return json.loads((FIXTURES / name).read_text())


def text(v):
    """A recorded price as the engine stores it: these recordings hold strings only."""
    if v is None or isinstance(v, str):
        return v
    raise SystemExit(f"unexpected non-string price {v!r}: extend derive/gemini.py")


def markets():
    """Upper-case symbol -> BASE_QUOTE for the listed symbols with details."""
    details = {d["symbol"].lower(): d for d in load("rest_v1_symbols_details_all.json")}
    for f in FIXTURES.glob("rest_v1_symbols_details_*.json"):
        d = json.loads(f.read_text())
        if isinstance(d, dict):
            details.setdefault(d["symbol"].lower(), d)
    out = {}
    for s in load("rest_v1_symbols.json"):
        d = details.get(s)
        if d and d["status"] != "closed":
            out[d["symbol"]] = d["base_currency"] + "_" + d["quote_currency"]
    return out


def row(pair, symbol, bid, ask, bid_size=None, ask_size=None, last=None, volume=None, ts=None):
    vals = ("gemini", pair, symbol, bid, ask, bid_size, ask_size, last, volume, ts)
    return dict(zip(KEYS, vals))


def poll(allow):
    """One /v1/pubticker per allow-listed market that a recording answers."""
    rows = []
    for symbol, pair in markets().items():
        if pair not in allow:
            continue
        f = FIXTURES / f"rest_v1_pubticker_{symbol}.json"
        t = json.loads(f.read_text())
        vol = t["volume"]
        rows.append(row(pair, symbol, text(t["bid"]), text(t["ask"]), last=text(t["last"]),
                        volume=text(vol.get(pair.split("_")[0])), ts=int(vol["timestamp"])))
    return rows


def better(side, p, q):
    return p > q if side == "buy" else p < q


def top(levels, side):
    best = None
    for p in levels:
        if best is None or better(side, Decimal(p), Decimal(best)):
            best = p
    return best


def stream():
    """Replays the capture: the stored ticker of a symbol is its last valid one."""
    known = markets()
    books, last, stored = {}, {}, {}

    def trade(sym, t):
        key = (t["timestamp"], t.get("event_id", 0))
        if sym not in last or key >= last[sym][0]:
            last[sym] = (key, t["price"])

    for line in (FIXTURES / "ws_v2_marketdata_l2.jsonl").read_text().splitlines():
        m = json.loads(line)
        sym = m.get("symbol")
        if m["type"] == "l2_updates":
            if "trades" in m:
                books[sym] = {"buy": {}, "sell": {}}
                for t in m["trades"]:
                    trade(sym, t)
            for side, price, qty in m["changes"]:
                if Decimal(qty) == 0:
                    books[sym][side].pop(price, None)
                else:
                    books[sym][side][price] = qty
        elif m["type"] == "trade":
            trade(sym, m)
        else:
            continue
        b, a = top(books[sym]["buy"], "buy"), top(books[sym]["sell"], "sell")
        if b is None or a is None:
            continue
        if Decimal(b) > Decimal(a):
            raise SystemExit(f"{sym}: crossed book ({b} > {a}): the engine would refuse it")
        stored[sym] = row(known.get(sym), sym, b, a, books[sym]["buy"][b], books[sym]["sell"][a],
                          last[sym][1] if sym in last else None)
    missing = [s for s in stored if s not in known]
    if missing:
        raise SystemExit(f"unmapped symbols in the capture: {missing}")
    return list(stored.values())


def main():
    cases = {"poll": lambda: poll({"BTC_USD"}), "btcusdt": lambda: poll({"BTC_USDT"}),
             "stream": stream}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        raise SystemExit(__doc__)
    for r in sorted(cases[sys.argv[1]](), key=lambda r: r["pair"]):
        print(json.dumps(r, separators=(",", ":")))


if __name__ == "__main__":
    main()
