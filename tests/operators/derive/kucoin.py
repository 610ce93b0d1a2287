#!/usr/bin/python3
"""Expected KuCoin tickers, derived from the recordings alone.

    /usr/bin/python3 tests/operators/derive/kucoin.py CASE

prints, one JSON line a pair sorted by pair, what the engine must store for
CASE after replaying tests/fixtures/kucoin/. It knows only the fixture
README's field table (tests/fixtures/kucoin/README.md, "Fields") and the
engine's documented rules (docs/operators.md); it never reads or runs the
operator, so that the expected files check it independently.

Cases (the allow-list is the run's --pairs; streams are played once):
  poll    --pairs BTC_USDT --no-stream: allTickers, the allowed pair only
  stream  --no-poll: the last trade.ticker message of each symbol
  all     no flags: allTickers (every symbol) and the stream together
  bsv     --pairs BSV_USDT --no-poll: the stream, the allowed pair only

Field table: allTickers `data.ticker[]` gives bid = buy, ask = sell,
bid_size = bestBidSize, ask_size = bestAskSize, last = last, volume = vol,
ts = data.time (one time for the whole answer). A trade.ticker message
(`type` "message", `subject` "trade.ticker", symbol = the topic after
"/market/ticker:") gives bid = bestBid, ask = bestAsk, bid_size =
bestBidSize, ask_size = bestAskSize, last = price, ts = time; no volume.
The pair of a symbol is baseCurrency_quoteCurrency of its entry in
/api/v1/symbols (BCHSV-USDT -> BSV_USDT), never a split of the symbol; a
symbol not listed there is unmapped and stored under no pair.
/api/v1/market/orderbook/level1 plays no part: its documented example holds
placeholder prices that must never be served.
"""
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "kucoin"
EXCHANGE = "kucoin"
FIELDS = ("bid", "ask", "bid_size", "ask_size", "last", "volume", "ts")
TICKER_TOPIC = "/market/ticker:"

# case -> (allow-list or None for all pairs, poll runs, stream runs)
CASES = {
    "poll": (["BTC_USDT"], True, False),
    "stream": (None, False, True),
    "all": (None, True, True),
    "bsv": (["BSV_USDT"], False, True),
}


def load(name):
    with open(FIXTURES / name, encoding="utf-8") as f:
        return json.load(f)


def pairs_by_symbol():
    """symbol -> BASE_QUOTE for every symbol open for trading."""
    out = {}
    for s in load("rest_api_v1_symbols.json")["data"]:
        if s.get("enableTrading") is not False:
            out[s["symbol"]] = (s["baseCurrency"] + "_" + s["quoteCurrency"]).upper()
    return out


def accepted(t):
    """The engine's checks on a quote: positive decimal prices, not crossed."""
    try:
        bid, ask = Decimal(t["bid"]), Decimal(t["ask"])
    except (InvalidOperation, TypeError, KeyError):
        return False
    return bid > 0 and ask > 0 and bid <= ask


def poll_tickers():
    data = load("rest_api_v1_market_allTickers.docs_example.json")["data"]
    for t in data["ticker"]:
        yield t["symbol"], {
            "bid": t["buy"], "ask": t["sell"],
            "bid_size": t["bestBidSize"], "ask_size": t["bestAskSize"],
            "last": t["last"], "volume": t["vol"], "ts": data["time"],
        }


def stream_tickers():
    """The last accepted trade.ticker message of each symbol, in capture order."""
    last = {}
    with open(FIXTURES / "ws_market_ticker.jsonl", encoding="utf-8") as f:
        for line in f:
            m = json.loads(line)
            topic = m.get("topic", "")
            if m.get("type") != "message" or m.get("subject") != "trade.ticker" \
                    or not topic.startswith(TICKER_TOPIC):
                continue
            d = m["data"]
            t = {
                "bid": d["bestBid"], "ask": d["bestAsk"],
                "bid_size": d["bestBidSize"], "ask_size": d["bestAskSize"],
                "last": d["price"], "volume": None, "ts": d["time"],
            }
            if accepted(t):
                last[topic[len(TICKER_TOPIC):]] = t
    return last.items()


def derive(case):
    allow, poll, stream = CASES[case]
    pair_of = pairs_by_symbol()
    stored = {}
    sources = ([poll_tickers()] if poll else []) + ([stream_tickers()] if stream else [])
    for tickers in sources:
        for symbol, t in tickers:
            pair = pair_of.get(symbol)
            if pair is None or (allow is not None and pair not in allow):
                continue  # unmapped, or filtered by the allow-list
            # Poll and stream run at the same time: a pair both deliver has
            # no single order to derive, and this data has none.
            assert pair not in stored, f"{pair} delivered twice: order-dependent"
            assert accepted(t), f"{pair}: the engine would refuse {t}"
            stored[pair] = dict({"exchange": EXCHANGE, "pair": pair, "symbol": symbol},
                                **{k: t.get(k) for k in FIELDS})
    return [stored[p] for p in sorted(stored)]


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit("usage: kucoin.py " + "|".join(CASES))
    for t in derive(sys.argv[1]):
        print(json.dumps(t, separators=(",", ":"), ensure_ascii=False))


if __name__ == "__main__":
    main()
