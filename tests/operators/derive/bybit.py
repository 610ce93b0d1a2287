#!/usr/bin/python3
"""Expected Bybit (v5 spot) tickers, read from the recordings in tests/fixtures/bybit/.

Usage: derive/bybit.py CASE, CASE one of
  poll    --pairs BTC_USDT --no-stream: REST only, allow-list BTC_USDT
  stream  --no-poll: the spot orderbook and tickers captures, no allow-list
  both    --pairs BTC_USDT: poll and stream together

Knows only the fixture README and the documented message semantics:
  * markets: result.list of instruments-info?category=spot (the first
    manifest entry for that path: the fake exchange breaks ties by manifest
    order), status Trading; the pair is baseCoin_quoteCoin, a symbol is never
    split;
  * REST tickers (result.list[]): bid = bid1Price, ask = ask1Price, bid_size =
    bid1Size, ask_size = ask1Size, last = lastPrice, volume = volume24h, ts =
    the body's top-level time;
  * WebSocket, spot: tickers.<sym> gives only lastPrice and volume24h (no
    bid/ask); orderbook.<depth>.<sym> gives the book: a snapshot resets it,
    a delta sets [price, size] levels (size 0 removes the price); bid/ask
    and their sizes are the best levels (b[0]/a[0] of the book), ts the book
    message's ts. A ticker exists once the book has both sides, and is the
    book with the latest tickers fields; one whose bid is above its ask (or
    with a non-positive price) is refused by the engine and leaves the one
    stored before it. Captures are those subscribed with an orderbook or
    tickers topic; the linear/inverse samples (no subscribe, another
    endpoint) are not spot data.
Captures of one connection are played round-robin, line by line; the stored
result is computed for both orders in which two captures can take their
turns, and must not depend on it. Refused tickers go to stderr. Prints one
JSON line per pair, sorted by pair, in the expected-file format. It never
runs the operator.
"""
import json
import sys
from decimal import Decimal
from itertools import zip_longest, permutations
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bybit"
ALLOW = {"poll": {"BTC_USDT"}, "stream": None, "both": {"BTC_USDT"}}
KEYS = ("exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last", "volume", "ts")


def manifest():
    return json.loads((FIXTURES / "manifest.json").read_text())


def read(name):
    return json.loads((FIXTURES / name).read_text())


def spot_pairs():
    entry = next(r for r in manifest()["rest"] if r["path"] == "/v5/market/instruments-info")
    return {s["symbol"]: s["baseCoin"] + "_" + s["quoteCoin"]
            for s in read(entry["file"])["result"]["list"] if s["status"] == "Trading"}


def refused(t):
    bid, ask = Decimal(t["bid"]), Decimal(t["ask"])
    if bid <= 0 or ask <= 0:
        return "non-positive"
    return "crossed" if bid > ask else None


def line(pairs, symbol, fields):
    t = dict.fromkeys(KEYS)
    t.update(exchange="bybit", pair=pairs[symbol], symbol=symbol, **fields)
    return t


def poll(pairs):
    stored = {}
    for r in manifest()["rest"]:
        if r["path"] != "/v5/market/tickers":
            continue
        body = read(r["file"])
        for e in body["result"]["list"]:
            t = line(pairs, e["symbol"], {
                "bid": e["bid1Price"], "ask": e["ask1Price"],
                "bid_size": e["bid1Size"], "ask_size": e["ask1Size"],
                "last": e["lastPrice"], "volume": e["volume24h"], "ts": int(body["time"])})
            if not refused(t):
                stored[t["pair"]] = t
    return stored


def spot_captures():
    """The lines of each capture subscribed with an orderbook or tickers topic."""
    out = []
    for w in manifest()["ws"]:
        topics = [a for s in w["subscribe"] for a in json.loads(s).get("args", [])]
        if any(a.split(".")[0] in ("orderbook", "tickers") for a in topics):
            out.append((FIXTURES / w["file"]).read_text().splitlines())
    return out


def best(side, highest):
    price = (max if highest else min)(side, key=Decimal)
    return price, side[price]


def replay(pairs, captures, log):
    books, days, stored = {}, {}, {}
    for turn in zip_longest(*captures):
        for text in filter(None, turn):
            msg = json.loads(text)
            topic = msg.get("topic", "")
            if topic.startswith("orderbook."):
                d = msg["data"]
                sym = d["s"]
                if msg["type"] == "snapshot":
                    books[sym] = {"b": {}, "a": {}}
                for side in ("b", "a"):
                    for price, size in d[side]:
                        if Decimal(size) == 0:
                            books[sym][side].pop(price, None)
                        else:
                            books[sym][side][price] = size
                books[sym]["ts"] = int(msg["ts"])
            elif topic.startswith("tickers."):
                d = msg["data"]
                sym = d["symbol"]
                days[sym] = {"last": d["lastPrice"], "volume": d["volume24h"]}
            else:
                continue  # acks, pongs
            book = books.get(sym)
            if not book or not book["b"] or not book["a"]:
                continue
            bid, bid_size = best(book["b"], True)
            ask, ask_size = best(book["a"], False)
            t = line(pairs, sym, {"bid": bid, "ask": ask, "bid_size": bid_size,
                                  "ask_size": ask_size, "ts": book["ts"], **days.get(sym, {})})
            why = refused(t)
            if why:
                log.add(f"refused ({why}): {sym} bid {bid} ask {ask} ts {book['ts']}")
            else:
                stored[t["pair"]] = t
    return stored


def stream(pairs):
    captures = spot_captures()
    log = set()
    results = [replay(pairs, list(order), log) for order in permutations(captures)]
    assert all(r == results[0] for r in results), "the result depends on the interleaving"
    for entry in sorted(log):
        print(entry, file=sys.stderr)
    return results[0]


def main():
    case = sys.argv[1] if len(sys.argv) == 2 else None
    if case not in ALLOW:
        sys.exit("usage: bybit.py " + "|".join(ALLOW))
    pairs = spot_pairs()
    # Poll and stream together: the stream's ticker carries every field, so
    # it replaces the REST one whichever comes first, and a REST answer that
    # arrives after the stream delivered the symbol is dropped.
    stored = poll(pairs) if case == "poll" else stream(pairs)
    allow = ALLOW[case]
    for p in sorted(stored):
        if allow is None or p in allow:
            print(json.dumps(stored[p], separators=(",", ":")))


if __name__ == "__main__":
    main()
