#!/usr/bin/python3
"""Expected Bitfinex tickers, derived from the recordings alone.

Usage: derive/bitfinex.py CASE, CASE one of
  poll    --pairs BTC_USDT --no-stream: rest_v2_ticker_tBTCUST.json
  all     --no-stream, no allow-list: rest_v2_tickers_symbols_ALL.docs_example.json
  stream  --no-poll, no allow-list: the last ticker of each channel in ws_ticker.jsonl
  both    no flags, no allow-list: stream and all together (different pairs)

It knows only what tests/fixtures/bitfinex/README.md says, never the
operator: the pair list is [[PAIR, ...]]; two 3-letter codes are written
together (BTCUSD), a longer one takes a colon (LINK:USD); the trading symbol
is "t" + pair; Bitfinex's own codes UST, UDC, EUT, IOT, MNA, SNG, DSH are
USDT, USDC, EURT, IOTA, MANA, SNGLS, DASH; DOG (one million DOGE) stays DOG;
a pair with a TEST code is a test market, never served. Fields by position:
ticker [BID, BID_SIZE, ASK, ASK_SIZE, DAILY_CHANGE, DAILY_CHANGE_RELATIVE,
LAST_PRICE, VOLUME, HIGH, LOW], a tickers row the same after SYMBOL; no time.
Prices are JSON numbers: the engine stores each as its shortest round-trip
decimal, positional (Python's repr of the float, without exponent).
"""
import json
import os
import sys
from decimal import Decimal

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "bitfinex")
ALIASES = {"UST": "USDT", "UDC": "USDC", "EUT": "EURT", "IOT": "IOTA",
           "MNA": "MANA", "SNG": "SNGLS", "DSH": "DASH"}
KEYS = ["exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last", "volume", "ts"]


def load(name):
    # Every JSON number as a float, as the engine's decoder reads them.
    with open(os.path.join(FIX, name)) as f:
        return json.load(f, parse_int=float)


def num(v):
    s = format(Decimal(repr(float(v))), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def split(pair):
    if ":" in pair:
        return tuple(pair.split(":"))
    return (pair[:3], pair[3:]) if len(pair) == 6 else None


def markets():
    """trading symbol -> canonical BASE_QUOTE, test pairs left out."""
    out = {}
    for p in load("rest_v2_conf_pub_list_pair_exchange.json")[0]:
        codes = split(p)
        if codes and not any(c.startswith("TEST") for c in codes):
            out["t" + p] = "_".join(ALIASES.get(c, c) for c in codes)
    return out


def ticker(mk, sym, f):
    """f: the 10 ticker fields."""
    return {"exchange": "bitfinex", "pair": mk[sym], "symbol": sym,
            "bid": num(f[0]), "ask": num(f[2]), "bid_size": num(f[1]), "ask_size": num(f[3]),
            "last": num(f[6]), "volume": num(f[7]), "ts": None}


def case_poll(mk):
    return [ticker(mk, "tBTCUST", load("rest_v2_ticker_tBTCUST.json"))]


def case_all(mk):
    # Funding rows ("fUSD") are not pairs; the example holds only tBTCUSD.
    return [ticker(mk, row[0], row[1:]) for row in load("rest_v2_tickers_symbols_ALL.docs_example.json")
            if row[0].startswith("t") and row[0] in mk]


def case_stream(mk):
    chan, last = {}, {}
    with open(os.path.join(FIX, "ws_ticker.jsonl")) as f:
        for line in f:
            msg = json.loads(line, parse_int=float)
            if isinstance(msg, dict):
                if msg.get("event") == "subscribed" and msg.get("channel") == "ticker":
                    chan[msg["chanId"]] = msg["symbol"]
            elif isinstance(msg[1], list):  # [chanId, ticker, seq]; [chanId, "hb", seq] is a heartbeat
                last[chan[msg[0]]] = msg[1]
    # The test pair tTESTBTC:TESTUSD is not a market: never subscribed nor served.
    return [ticker(mk, sym, f) for sym, f in last.items() if sym in mk]


def case_both(mk):
    # Well defined only because the two sources share no pair: which of two
    # tickers of one pair is stored last would depend on timing.
    stream, rest = case_stream(mk), case_all(mk)
    assert not {t["pair"] for t in stream} & {t["pair"] for t in rest}
    return stream + rest


CASES = {"poll": case_poll, "all": case_all, "stream": case_stream, "both": case_both}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit("usage: bitfinex.py " + "|".join(CASES))
    mk = markets()
    for t in sorted(CASES[sys.argv[1]](mk), key=lambda t: t["pair"]):
        print(json.dumps({k: t[k] for k in KEYS}, separators=(",", ":")))


if __name__ == "__main__":
    main()
