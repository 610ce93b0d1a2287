"""The rate routes against the real binary on recorded data: /v1/rates (full
dump, filters, paging, age filters, ETag/304, gzip), /v1/rates/{pair}
(direct and inverted), the aggregate's consensus and crossed rules, and
/v1/convert (direct, inverted, through one asset, refused without consensus).

Binance and Kraken both serve BTC_USDT from their recordings; the exact
decimal text they must store is in tests/operators/*.expected.jsonl. Without
an allow-list Binance polls its all-symbol body instead, which gives six more
pairs (binance_all.expected.jsonl) and a graph to convert over.

The recordings come from different years: Binance's BTC_USDT is 6,622,
Kraken's 105,944 and Coinbase's 73,365, so those sources never agree. Tests
that need sources which do move Kraken's REST answer next to Binance's
through the fake exchange's control API (push_kraken).
"""
import gzip
import json
import os
from decimal import Decimal

import pytest
import requests

from conftest import SOURCE, fakex_control, operators_config, wait_until

EXPECTED = os.path.join(SOURCE, "tests", "operators")
TICKER_KEYS = ["exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last",
               "volume", "mid", "spread_bps", "ts", "received", "age_ms", "stale", "source", "v"]
AGGREGATE_KEYS = ["mid_median", "vwap", "best_bid", "best_ask", "sources", "excluded",
                  "consensus", "crossed"]
NO_PRICE = {"price": None, "exchange": None}
KRAKEN_TICKER = os.path.join(SOURCE, "tests", "fixtures", "kraken",
                             "rest_0_public_Ticker_pair_XBTUSDT.json")
THREE = ("binance", "coinbase", "kraken")


def expected(name):
    with open(os.path.join(EXPECTED, f"{name}.expected.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip() and not line.startswith("#")]


BINANCE = expected("binance")[0]
KRAKEN = expected("kraken")[0]
COINBASE = expected("coinbase")[0]
BINANCE_ALL = expected("binance_all")
# Without an allow-list binance also streams the pairs of its bookTicker
# capture.
BINANCE_STREAM = expected("binance_stream")


def get(service, path, headers=None, **params):
    h = dict(service.auth())
    h.update(headers or {})
    return requests.get(service.url + path, params=params, headers=h, timeout=30)


def get_json(service, path, status=200, **params):
    r = get(service, path, **params)
    assert r.status_code == status, (path, params, r.status_code, r.text)
    return r.json()


def mid(t):
    return (float(t["bid"]) + float(t["ask"])) / 2


def sig12(x):
    """x with 12 significant digits, positional, trailing zeros trimmed (decimal_sig)."""
    text = format(Decimal(f"{x:.12g}"), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def pairs_of(body):
    return [r["pair"] for r in body["rates"]]


def entry(body, pair):
    found = [r for r in body["rates"] if r["pair"] == pair]
    assert len(found) == 1, (pair, pairs_of(body))
    return found[0]


def wait_pair(service, pair, exchanges, **params):
    """Waits until /v1/rates lists pair with exactly these exchanges; returns the body."""
    last = {}

    def ready():
        r = get(service, "/v1/rates", **params)
        if r.status_code != 200:
            return False
        last["body"] = r.json()
        rows = [e for e in last["body"]["rates"] if e["pair"] == pair]
        return bool(rows) and sorted(t["exchange"] for t in rows[0]["exchanges"]) == exchanges

    wait_until(ready, 60, f"{pair} from {exchanges}")
    return last["body"]


def all_operators(fields=None):
    """An operators table: Binance without allow-list (all symbols), Kraken on BTC_USDT."""
    return operators_config(fields={"binance": dict({"pairs": "{}"}, **(fields or {}))})


def push_kraken(fakex_url, bid, ask, last):
    """Kraken's REST BTC_USDT answer with these prices (the recording's other fields)."""
    with open(KRAKEN_TICKER, encoding="utf-8") as f:
        body = json.load(f)
    t = body["result"]["XBTUSDT"]
    t["b"][0], t["a"][0], t["c"][0] = bid, ask, last
    fakex_control(fakex_url, "kraken", "push", {"rest": {
        "method": "GET", "path": "/0/public/Ticker", "query": "pair=XBTUSDT", "body": body}})


def wait_kraken_bid(service, bid):
    def ready():
        r = get(service, "/v1/rates", pair="BTC_USDT", exchange="kraken")
        rows = r.json()["rates"] if r.status_code == 200 else []
        return bool(rows) and rows[0]["exchanges"][0]["bid"] == bid

    wait_until(ready, 30, f"kraken's BTC_USDT bid {bid}")


@pytest.fixture
def both(service):
    wait_pair(service, "BTC_USDT", ["binance", "kraken"])
    return service


@pytest.fixture
def three(make_service, fakex_url):
    """Binance, Coinbase and Kraken on BTC_USDT, Kraken's answer moved next to
    Binance's (bid 6621, ask 6623): two agree, and Coinbase's 73,365 is the
    outlier. Kraken polls every second, so a later push_kraken shows soon."""
    push_kraken(fakex_url, "6621.00000", "6623.00000", "6622.00000")
    try:
        svc = make_service(operators=operators_config(
            enabled=THREE, fields={"kraken": {"poll_every": "1"}}))
        wait_pair(svc, "BTC_USDT", list(THREE))
        wait_kraken_bid(svc, "6621.00000")
        yield svc
    finally:
        fakex_control(fakex_url, "kraken", "reset")


@pytest.fixture
def graph(make_service):
    svc = make_service(operators=all_operators())
    wait_pair(svc, "BTC_USDT", ["kraken"])
    for t in BINANCE_ALL + BINANCE_STREAM:
        wait_pair(svc, t["pair"], ["binance"])
    return svc


# ---------------------------------------------------------------------------
# /v1/rates
# ---------------------------------------------------------------------------

def check_ticker(t, want, generated):
    assert list(t.keys()) == TICKER_KEYS
    for k in ("exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last",
              "volume", "ts"):
        assert t[k] == want[k], (k, t[k], want[k])
    assert t["mid"] == pytest.approx(mid(want), rel=1e-15)
    assert t["age_ms"] == generated - t["received"]
    assert t["stale"] is False
    assert t["source"] == "poll"
    assert isinstance(t["v"], int) and t["v"] >= 1


def test_full_dump(both):
    body = get_json(both, "/v1/rates")
    assert list(body.keys()) == ["rates", "count", "generated", "next"]
    assert body["count"] == len(body["rates"]) >= 1
    assert body["next"] is None
    assert pairs_of(body) == sorted(pairs_of(body))
    row = entry(body, "BTC_USDT")
    assert list(row.keys()) == ["pair", "aggregate", "exchanges"]
    ex = row["exchanges"]
    assert [t["exchange"] for t in ex] == ["binance", "kraken"]
    check_ticker(ex[0], BINANCE, body["generated"])
    check_ticker(ex[1], KRAKEN, body["generated"])

    agg = row["aggregate"]
    assert list(agg.keys()) == AGGREGATE_KEYS
    # Two sources sixteenfold apart: neither can be called the outlier of the
    # other, and no median or vwap of the two is a price anyone quotes.
    # Kraken's bid is above Binance's ask: crossed, so no best bid or ask.
    assert agg == {"mid_median": None, "vwap": None, "best_bid": NO_PRICE,
                   "best_ask": NO_PRICE, "sources": 2, "excluded": [],
                   "consensus": False, "crossed": True}


def test_filters(both):
    one = get_json(both, "/v1/rates", exchange="binance")
    assert [t["exchange"] for t in entry(one, "BTC_USDT")["exchanges"]] == ["binance"]
    assert entry(one, "BTC_USDT")["aggregate"]["sources"] == 1
    assert entry(one, "BTC_USDT")["aggregate"]["mid_median"] == pytest.approx(mid(BINANCE))
    assert entry(one, "BTC_USDT")["aggregate"]["consensus"] is True
    assert entry(one, "BTC_USDT")["aggregate"]["best_ask"] == {"price": BINANCE["ask"],
                                                                "exchange": "binance"}

    two = get_json(both, "/v1/rates", exchange="Kraken,binance")
    assert [t["exchange"] for t in entry(two, "BTC_USDT")["exchanges"]] == ["binance", "kraken"]

    for params in ({"pair": "btc-usdt"}, {"pair": "BTC/USDT,ETH_BTC"}, {"base": "btc"},
                   {"quote": "USDT"}, {"base": "BTC", "quote": "usdt"}):
        body = get_json(both, "/v1/rates", **params)
        assert pairs_of(body) == ["BTC_USDT"], params
        assert body["count"] == 1 and body["next"] is None

    for params in ({"exchange": "nosuch"}, {"pair": "ETH_BTC"}, {"base": "USDT"},
                   {"quote": "EUR"}):
        body = get_json(both, "/v1/rates", **params)
        assert body["rates"] == [] and body["count"] == 0 and body["next"] is None, params


@pytest.mark.parametrize("params,name", [
    ({"pair": "BTCUSDT"}, "pair"),
    ({"pair": "BTC_USDT,??"}, "pair"),
    ({"exchange": "Bad Name!"}, "exchange"),
    ({"exchange": ",,,"}, "exchange"),
    ({"exchange": "binance,,kraken"}, "exchange"),
    ({"pair": "BTC_USDT,"}, "pair"),
    ({"base": "B-T"}, "base"),
    ({"quote": "x" * 16}, "quote"),
    ({"stale": "maybe"}, "stale"),
    ({"max_age_ms": "-1"}, "max_age_ms"),
    ({"max_age_ms": "soon"}, "max_age_ms"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"cursor": "not a cursor"}, "cursor"),
])
def test_bad_params(service, params, name):
    r = get(service, "/v1/rates", **params)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] in ("bad_param", "bad_pair")
    assert err["message"].startswith(name + ":"), err


def test_paging(graph):
    full = get_json(graph, "/v1/rates")
    names = pairs_of(full)
    want = sorted(["BTC_USDT"] + [t["pair"] for t in BINANCE_ALL + BINANCE_STREAM])
    assert names == want
    assert full["next"] is None

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = get_json(graph, "/v1/rates", **params)
        pages += 1
        assert page["count"] == len(page["rates"]) <= 2
        seen += pairs_of(page)
        cursor = page["next"]
        if cursor is None:
            break
        assert cursor == page["rates"][-1]["pair"]
        assert pages < 10
    assert seen == want
    assert pages == (len(want) + 1) // 2

    # A cursor past the end: an empty last page.
    last = get_json(graph, "/v1/rates", cursor=want[-1])
    assert last["rates"] == [] and last["next"] is None

    # Paging composes with filters.
    btc = get_json(graph, "/v1/rates", quote="BTC", limit=1000)
    assert pairs_of(btc) == [p for p in want if p.endswith("_BTC")]
    two = get_json(graph, "/v1/rates", pair="ltc_btc,ETH-BTC,ltc/btc")
    assert pairs_of(two) == ["ETH_BTC", "LTC_BTC"]
    page = get_json(graph, "/v1/rates", pair="LTC_BTC,ETH_BTC", limit=1)
    assert pairs_of(page) == ["ETH_BTC"] and page["next"] == "ETH_BTC"
    page = get_json(graph, "/v1/rates", pair="LTC_BTC,ETH_BTC", limit=1, cursor=page["next"])
    assert pairs_of(page) == ["LTC_BTC"] and page["next"] is None
    mixed = get_json(graph, "/v1/rates", pair="BTC_USDT,ETH_BTC", exchange="kraken")
    assert pairs_of(mixed) == ["BTC_USDT"]


def test_max_age(both):
    body = get_json(both, "/v1/rates", max_age_ms=86400000)
    assert len(entry(body, "BTC_USDT")["exchanges"]) == 2
    for limit in (0, 50, 2000, 5000):
        body = get_json(both, "/v1/rates", max_age_ms=limit)
        for row in body["rates"]:
            assert row["exchanges"], row
            for t in row["exchanges"]:
                assert t["age_ms"] <= limit, (limit, t)


def test_stale_exclude(make_service, fakex_url):
    """Binance stops delivering (its REST answers 500) and goes stale after the
    global 1 s; Kraken's own override keeps it fresh for a minute."""
    ops = operators_config(fields={"kraken": {"stale_after_ms": "600000"}})
    svc = make_service(stale_after_ms="1000", operators=ops)
    try:
        wait_pair(svc, "BTC_USDT", ["binance", "kraken"])
        fakex_control(fakex_url, "binance", "fault", {"status": 500})

        def binance_stale():
            row = entry(get_json(svc, "/v1/rates"), "BTC_USDT")
            return [t["stale"] for t in row["exchanges"]] == [True, False]

        wait_until(binance_stale, 30, "binance to go stale")
        body = get_json(svc, "/v1/rates")
        row = entry(body, "BTC_USDT")
        b, k = row["exchanges"]
        assert b["age_ms"] > 1000 and b["age_ms"] == body["generated"] - b["received"]
        assert row["aggregate"]["excluded"] == [{"exchange": "binance", "reason": "stale"}]
        assert row["aggregate"]["sources"] == 1
        # A stale source does not vote: Kraken alone is a majority.
        assert row["aggregate"]["consensus"] is True
        assert row["aggregate"]["mid_median"] == pytest.approx(mid(KRAKEN))
        assert row["aggregate"]["best_bid"] == {"price": KRAKEN["bid"], "exchange": "kraken"}

        fresh = get_json(svc, "/v1/rates", stale="exclude")
        row = entry(fresh, "BTC_USDT")
        assert [t["exchange"] for t in row["exchanges"]] == ["kraken"]
        assert row["aggregate"]["excluded"] == []
        only_binance = get_json(svc, "/v1/rates", stale="exclude", exchange="binance")
        assert only_binance["rates"] == [] and only_binance["count"] == 0

        single = get_json(svc, "/v1/rates/BTC_USDT")
        assert single["aggregate"]["excluded"] == [{"exchange": "binance", "reason": "stale"}]
        assert [t["stale"] for t in single["exchanges"]] == [True, False]

        conv = get_json(svc, "/v1/convert", **{"from": "BTC", "to": "USDT"})
        assert conv["path"][0]["exchanges"] == ["kraken"]
        assert conv["rate"] == pytest.approx(mid(KRAKEN))
    finally:
        fakex_control(fakex_url, "binance", "reset")


def test_etag_304(both):
    got_304 = False
    for _ in range(40):
        r1 = get(both, "/v1/rates")
        etag = r1.headers.get("ETag")
        assert etag and etag.startswith('"') and etag.endswith('"')
        assert "Accept-Encoding" in r1.headers.get("Vary", "")
        r2 = get(both, "/v1/rates", headers={"If-None-Match": etag})
        if r2.status_code == 304:
            assert r2.content == b""
            assert r2.headers.get("ETag") == etag
            got_304 = True
            break
        # A newer render (over 100 ms, or the store changed): a new tag.
        assert r2.status_code == 200
        assert r2.headers["ETag"] != etag
    assert got_304, "no 304 within 40 tries"

    r = get(both, "/v1/rates", headers={"If-None-Match": '"nope"'})
    assert r.status_code == 200 and r.json()["rates"]


def test_cached_render_is_shared(both):
    """Two requests close together get the same render: same generated, same bytes."""
    for _ in range(40):
        a = get(both, "/v1/rates")
        b = get(both, "/v1/rates")
        if a.json()["generated"] == b.json()["generated"]:
            assert a.content == b.content
            assert a.headers["ETag"] == b.headers["ETag"]
            return
    pytest.fail("no two requests shared a render")


def test_gzip(both):
    r = get(both, "/v1/rates", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers.get("Content-Encoding") == "gzip"
    assert "Accept-Encoding" in r.headers.get("Vary", "")
    assert entry(r.json(), "BTC_USDT")  # requests inflates it

    raw = requests.get(both.url + "/v1/rates", headers={**both.auth(), "Accept-Encoding": "gzip"},
                       stream=True, timeout=30)
    data = raw.raw.read(decode_content=False)
    assert data[:2] == b"\x1f\x8b"
    body = json.loads(gzip.decompress(data))
    assert entry(body, "BTC_USDT")["exchanges"][0]["bid"] == BINANCE["bid"]

    plain = get(both, "/v1/rates", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert entry(plain.json(), "BTC_USDT")
    refused = get(both, "/v1/rates", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers


# ---------------------------------------------------------------------------
# /v1/rates/{pair}
# ---------------------------------------------------------------------------

def test_pair_direct(both):
    for spelled in ("BTC_USDT", "btc-usdt", "BTC%2FUSDT"):
        body = get_json(both, "/v1/rates/" + spelled)
        assert list(body.keys()) == ["pair", "inverted", "aggregate", "exchanges", "generated"]
        assert body["pair"] == "BTC_USDT" and body["inverted"] is False
        assert [t["exchange"] for t in body["exchanges"]] == ["binance", "kraken"]
        check_ticker(body["exchanges"][0], BINANCE, body["generated"])
        check_ticker(body["exchanges"][1], KRAKEN, body["generated"])
        assert list(body["aggregate"].keys()) == AGGREGATE_KEYS
        assert body["aggregate"]["sources"] == 2


def test_pair_inverted(both):
    body = get_json(both, "/v1/rates/usdt_btc")
    assert body["pair"] == "USDT_BTC" and body["inverted"] is True
    b, k = body["exchanges"]
    for t, want in ((b, BINANCE), (k, KRAKEN)):
        assert t["pair"] == "USDT_BTC" and t["inverted"] is True
        assert t["symbol"] == want["symbol"]
        assert t["bid"] == sig12(1 / float(want["ask"]))
        assert t["ask"] == sig12(1 / float(want["bid"]))
        assert t["last"] == sig12(1 / float(want["last"]))
        assert t["bid_size"] == sig12(float(want["ask_size"]) * float(want["ask"]))
        assert t["ask_size"] == sig12(float(want["bid_size"]) * float(want["bid"]))
        assert t["volume"] == sig12(float(want["volume"]) * mid(want))
        assert t["ts"] == want["ts"]
        assert t["age_ms"] == body["generated"] - t["received"]
    assert b["bid"] == "0.000151009498497"  # 1 / 6622.10000000, 12 digits
    assert k["bid"] == "0.0000094389221506"  # 1 / 105944.30000, trailing 0 trimmed
    # Inverted, they disagree just as much (and Binance's bid is above
    # Kraken's ask now).
    agg = body["aggregate"]
    assert agg["consensus"] is False and agg["crossed"] is True
    assert agg["mid_median"] is None and agg["vwap"] is None
    assert agg["best_bid"] == NO_PRICE and agg["best_ask"] == NO_PRICE
    assert agg["sources"] == 2 and agg["excluded"] == []


def test_pair_errors(both):
    r = get(both, "/v1/rates/ETH_EUR")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_pair"
    for bad in ("BTCUSDT", "BTC__USDT", "BTC_" + "X" * 16):
        r = get(both, "/v1/rates/" + bad)
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "bad_pair"


# ---------------------------------------------------------------------------
# /v1/convert
# ---------------------------------------------------------------------------

def test_convert_direct_and_inverted(three):
    both = three
    median = (mid(BINANCE) + 6622.0) / 2  # Coinbase's the outlier
    body = get_json(both, "/v1/convert", **{"from": "btc", "to": "USDT", "amount": "2"})
    assert list(body.keys()) == ["from", "to", "amount", "result", "rate", "path", "generated"]
    assert body["from"] == "BTC" and body["to"] == "USDT" and body["amount"] == 2
    assert body["rate"] == pytest.approx(median, rel=1e-12)
    assert body["result"] == pytest.approx(2 * median, rel=1e-12)
    assert body["path"] == [{"pair": "BTC_USDT", "inverted": False, "rate": body["rate"],
                             "exchanges": ["binance", "kraken"]}]

    back = get_json(both, "/v1/convert", **{"from": "USDT", "to": "BTC", "amount": "1000.5"})
    assert back["rate"] == pytest.approx(1 / median, rel=1e-12)
    assert back["result"] == pytest.approx(1000.5 / median, rel=1e-12)
    assert back["path"][0]["pair"] == "BTC_USDT" and back["path"][0]["inverted"] is True

    same = get_json(both, "/v1/convert", **{"from": "BTC", "to": "BTC", "amount": "3"})
    assert same["rate"] == 1 and same["result"] == 3 and same["path"] == []

    default = get_json(both, "/v1/convert", **{"from": "BTC", "to": "USDT"})
    assert default["amount"] == 1


def test_convert_through_one_asset(graph):
    by_pair = {t["pair"]: t for t in BINANCE_ALL}
    # LTC -> BTC -> ETH: LTC_BTC forward, ETH_BTC backward.
    body = get_json(graph, "/v1/convert", **{"from": "LTC", "to": "ETH", "amount": "10"})
    rate = mid(by_pair["LTC_BTC"]) / mid(by_pair["ETH_BTC"])
    assert body["rate"] == pytest.approx(rate, rel=1e-12)
    assert body["result"] == pytest.approx(10 * rate, rel=1e-12)
    assert [(p["pair"], p["inverted"], p["exchanges"]) for p in body["path"]] == [
        ("LTC_BTC", False, ["binance"]), ("ETH_BTC", True, ["binance"])]

    # BNB -> BTC (binance) -> USDT (kraken).
    body = get_json(graph, "/v1/convert", **{"from": "BNB", "to": "USDT"})
    assert [(p["pair"], p["inverted"], p["exchanges"]) for p in body["path"]] == [
        ("BNB_BTC", False, ["binance"]), ("BTC_USDT", False, ["kraken"])]
    assert body["rate"] == pytest.approx(mid(by_pair["BNB_BTC"]) * mid(KRAKEN), rel=1e-12)

    # EOS -> ETH -> BTC: the intermediate is ETH.
    body = get_json(graph, "/v1/convert", **{"from": "EOS", "to": "BTC"})
    assert [p["pair"] for p in body["path"]] == ["EOS_ETH", "ETH_BTC"]

    # Two hops are not enough for EOS -> USDT (EOS-ETH-BTC-USDT).
    r = get(graph, "/v1/convert", **{"from": "EOS", "to": "USDT"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_path"


@pytest.mark.parametrize("params,name", [
    ({"to": "USDT"}, "from"),
    ({"from": "BTC"}, "to"),
    ({"from": "B/TC", "to": "USDT"}, "from"),
    ({"from": "BTC", "to": "USDT", "amount": "-1"}, "amount"),
    ({"from": "BTC", "to": "USDT", "amount": "0"}, "amount"),
    ({"from": "BTC", "to": "USDT", "amount": "two"}, "amount"),
    ({"from": "BTC", "to": "USDT", "amount": ""}, "amount"),
    ({"from": "BTC", "to": "USDT", "amount": "1,5"}, "amount"),
])
def test_convert_bad_params(service, params, name):
    r = get(service, "/v1/convert", **params)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_param" and err["message"].startswith(name + ":"), err


def test_convert_no_path(both):
    r = get(both, "/v1/convert", **{"from": "BTC", "to": "XYZ", "amount": "1"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "no_path"


def test_convert_refuses_pair_without_consensus(both):
    """Binance's 6,622 and Kraken's 105,944: no rate converts BTC to USDT
    (the mean of the two would be 56,283, which nobody quotes), either way."""
    for frm, to in (("BTC", "USDT"), ("usdt", "btc")):
        r = get(both, "/v1/convert", **{"from": frm, "to": to, "amount": "2"})
        assert r.status_code == 404, r.text
        err = r.json()["error"]
        assert err["code"] == "no_consensus", err
        assert "BTC_USDT" in err["message"], err


def test_convert_refuses_two_legs_without_consensus(make_service):
    """A two-leg path through a pair whose sources disagree is no path
    either: LTC -> BTC (Binance) -> USDT (Kraken and Coinbase, 105,944
    against 73,365) is refused, while LTC -> BTC -> ETH still converts."""
    svc = make_service(operators=operators_config(
        enabled=THREE, fields={"binance": {"pairs": "{}"}}))
    wait_pair(svc, "BTC_USDT", ["coinbase", "kraken"])
    wait_pair(svc, "LTC_BTC", ["binance"])
    wait_pair(svc, "ETH_BTC", ["binance"])
    r = get(svc, "/v1/convert", **{"from": "LTC", "to": "USDT"})
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert err["code"] == "no_consensus" and "BTC_USDT" in err["message"], err
    ok = get_json(svc, "/v1/convert", **{"from": "LTC", "to": "ETH"})
    assert [p["pair"] for p in ok["path"]] == ["LTC_BTC", "ETH_BTC"]


# ---------------------------------------------------------------------------
# Consensus and crossed
# ---------------------------------------------------------------------------

def test_three_sources_that_all_disagree(make_service):
    """The replay data's BTC_USDT on Binance (6,622), Coinbase (73,365) and
    Kraken (105,944): no majority agrees, so nobody is called the outlier
    and the aggregate has no price; Kraken's bid is above Binance's ask."""
    svc = make_service(operators=operators_config(enabled=THREE))
    wait_pair(svc, "BTC_USDT", list(THREE))
    for body in (get_json(svc, "/v1/rates/BTC_USDT"),
                 entry(get_json(svc, "/v1/rates"), "BTC_USDT")):
        assert body["aggregate"] == {
            "mid_median": None, "vwap": None, "best_bid": NO_PRICE, "best_ask": NO_PRICE,
            "sources": 3, "excluded": [], "consensus": False, "crossed": True}
        assert [t["exchange"] for t in body["exchanges"]] == list(THREE)
    r = get(svc, "/v1/convert", **{"from": "BTC", "to": "USDT"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_consensus", r.text


def test_majority_excludes_the_outlier(three):
    """Binance and Kraken agree (6,621.8 and 6,622); Coinbase's 73,365 is the
    outlier, excluded with its reason."""
    body = get_json(three, "/v1/rates/BTC_USDT")
    agg = body["aggregate"]
    assert agg["consensus"] is True and agg["crossed"] is False
    assert agg["sources"] == 2
    assert agg["excluded"] == [{"exchange": "coinbase", "reason": "outlier"}]
    assert agg["mid_median"] == pytest.approx((mid(BINANCE) + 6622.0) / 2, rel=1e-12)
    assert agg["best_bid"] == {"price": BINANCE["bid"], "exchange": "binance"}  # 6621.55
    assert agg["best_ask"] == {"price": BINANCE["ask"], "exchange": "binance"}  # 6622.10
    vb, vk = float(BINANCE["volume"]), float(KRAKEN["volume"])
    assert agg["vwap"] == pytest.approx((mid(BINANCE) * vb + 6622.0 * vk) / (vb + vk), rel=1e-12)
    conv = get_json(three, "/v1/convert", **{"from": "BTC", "to": "USDT"})
    assert conv["path"][0]["exchanges"] == ["binance", "kraken"]


def test_crossed_across_exchanges(three, fakex_url):
    """Kraken's bid (6,622.50) above Binance's ask (6,622.10): the sources
    agree, so the median stands, but the best bid and ask are not served."""
    push_kraken(fakex_url, "6622.50000", "6623.00000", "6622.75000")
    wait_kraken_bid(three, "6622.50000")
    agg = get_json(three, "/v1/rates/BTC_USDT")["aggregate"]
    assert agg["consensus"] is True and agg["crossed"] is True
    assert agg["best_bid"] == NO_PRICE and agg["best_ask"] == NO_PRICE
    assert agg["mid_median"] == pytest.approx((mid(BINANCE) + 6622.75) / 2, rel=1e-12)
    assert agg["excluded"] == [{"exchange": "coinbase", "reason": "outlier"}]
    # A crossed pair with consensus still converts, at its median.
    conv = get_json(three, "/v1/convert", **{"from": "BTC", "to": "USDT"})
    assert conv["rate"] == pytest.approx(agg["mid_median"], rel=1e-12)


def test_rates_need_auth(service):
    for path in ("/v1/rates", "/v1/rates/BTC_USDT", "/v1/convert?from=BTC&to=USDT"):
        r = requests.get(service.url + path, timeout=30)
        assert r.status_code == 401, path
