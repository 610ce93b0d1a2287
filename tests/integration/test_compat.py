"""The old FastAPI service's routes (DESIGN 4.3) against the golden files in
tests/compat/: same keys, same key order, same JSON types.

Each golden file is one case: the request (query, which token), the status
and the body. Objects are compared as ordered lists of (key, value) pairs,
so a key out of place fails. Values that vary from run to run are
placeholders, checked by type and number instead of text:

    "<mid EX PAIR>"      a float equal (relative 1e-12) to (bid+ask)/2 of EX's
                         PAIR in tests/operators/EX.expected.jsonl
    "<1/mid EX PAIR>"    a float equal to 1/mid of the same
    "<timestamp>"        a float (Unix seconds) between the service's start
                         and now
    "<str>"              any string
    "<exchange names>"   a sorted list of distinct names including binance and
                         kraken

A float must be a JSON float: json.loads turns `6622.0` into a float and
`6622` into an int, so the type check is the decimal-point check; the raw
text is checked as well.
"""
import json
import os
import re
import time

import pytest
import requests

from conftest import SOURCE, fakex_control, operators_config, wait_until

GOLDEN_DIR = os.path.join(SOURCE, "tests", "compat")
OPERATORS_DIR = os.path.join(SOURCE, "tests", "operators")
REL = 1e-12


class Obj(list):
    """A JSON object as its ordered (key, value) pairs."""


def loads_ordered(text):
    return json.loads(text, object_pairs_hook=Obj)


def golden_cases(service_kind):
    out = []
    for name in sorted(os.listdir(GOLDEN_DIR)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(GOLDEN_DIR, name), encoding="utf-8") as f:
            case = json.load(f)
        if case["service"] == service_kind:
            out.append((name[:-5], case))
    return out


def expected_mids():
    """(exchange, pair) -> mid from the operator expectations."""
    mids = {}
    for name in os.listdir(OPERATORS_DIR):
        if not name.endswith(".expected.jsonl"):
            continue
        with open(os.path.join(OPERATORS_DIR, name), encoding="utf-8") as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    t = json.loads(line)
                    mids.setdefault((t["exchange"], t["pair"]),
                                    (float(t["bid"]) + float(t["ask"])) / 2)
    return mids


def is_float(v):
    return isinstance(v, float)


def check_placeholder(ph, actual, where, ctx):
    m = re.fullmatch(r"<(1/)?mid (\w+) (\w+)>", ph)
    if m:
        mid = ctx["mids"][(m.group(2), m.group(3))]
        want = 1 / mid if m.group(1) else mid
        assert is_float(actual), f"{where}: {actual!r} is not a JSON float"
        assert actual == pytest.approx(want, rel=REL), f"{where}: {actual} != {want}"
        return
    if ph == "<timestamp>":
        assert is_float(actual), f"{where}: {actual!r} is not a JSON float"
        assert ctx["t0"] - 1 <= actual <= time.time() + 1, \
            f"{where}: {actual} is not between the service's start and now"
        return
    if ph == "<str>":
        assert isinstance(actual, str), f"{where}: {actual!r} is not a string"
        return
    if ph == "<exchange names>":
        assert isinstance(actual, list) and all(isinstance(n, str) for n in actual), \
            f"{where}: {actual!r} is not a list of names"
        assert actual == sorted(set(actual)), f"{where}: {actual} is not sorted and distinct"
        assert {"binance", "kraken"} <= set(actual), f"{where}: {actual}"
        return
    raise AssertionError(f"{where}: unknown placeholder {ph}")


def compare(golden, actual, where, ctx):
    """Golden vs actual, both from loads_ordered: keys, order and types."""
    if isinstance(golden, str) and golden.startswith("<") and golden.endswith(">"):
        check_placeholder(golden, actual, where, ctx)
    elif isinstance(golden, Obj):
        assert isinstance(actual, Obj), f"{where}: expected an object, got {actual!r}"
        gk, ak = [k for k, _ in golden], [k for k, _ in actual]
        assert gk == ak, f"{where}: keys {ak} != golden {gk}"
        for (k, gv), (_, av) in zip(golden, actual):
            compare(gv, av, f"{where}.{k}", ctx)
    elif isinstance(golden, list):
        assert isinstance(actual, list) and not isinstance(actual, Obj), \
            f"{where}: expected an array, got {actual!r}"
        assert len(golden) == len(actual), f"{where}: {len(actual)} items, golden {len(golden)}"
        for i, (gv, av) in enumerate(zip(golden, actual)):
            compare(gv, av, f"{where}[{i}]", ctx)
    else:
        assert type(golden) is type(actual) and golden == actual, \
            f"{where}: {actual!r} != golden {golden!r}"


FLOAT_FIELD = re.compile(r'"(currency_rate|last_update_timestamp)":(-?[0-9][0-9.eE+-]*|null)')


def check_floats_text(text, where):
    """Every currency_rate / last_update_timestamp has a point or exponent."""
    for field, num in FLOAT_FIELD.findall(text):
        assert num == "null" or re.search(r"[.eE]", num), f"{where}: {field} rendered as {num}"


def run_case(service, name, case, ctx):
    req = case["request"]
    headers = {}
    if req["auth"] == "token":
        headers = service.auth()
    elif req["auth"] == "wrong":
        headers = service.auth("not-the-token")
    r = requests.request(req["method"], service.url + req["path"], params=req["query"],
                         headers=headers, timeout=10)
    where = f"{name} ({case['case']})"
    assert r.status_code == case["status"], f"{where}: status {r.status_code}: {r.text}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), where
    if r.status_code == 401:
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), where
    check_floats_text(r.text, where)
    compare(loads_ordered(json.dumps(case["body"])), loads_ordered(r.text), where, ctx)


def exchanges_listed(service, pair="BTC_USDT"):
    """Exchanges /currency lists for pair; None while the service cannot say."""
    try:
        r = requests.get(service.url + "/currency", params={"pair": pair},
                         headers=service.auth(), timeout=10)
    except requests.RequestException:
        return None
    if r.status_code != 200:
        return None
    return [e["exchange"] for p in r.json()["result"] for e in p["exchanges"]]


def start(make_service, kraken_extra=None):
    """A service on the replay data with binance and kraken only."""
    ops = operators_config(fields={"kraken": kraken_extra or {}})
    t0 = time.time()
    svc = make_service(operators=ops)
    return svc, t0


def run_golden(service, kind, ctx):
    failures = []
    cases = golden_cases(kind)
    assert cases, f"no golden case for service {kind}"
    for name, case in cases:
        try:
            run_case(service, name, case, ctx)
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n".join(failures)


def test_compat_golden(make_service):
    service, t0 = start(make_service)
    wait_until(lambda: exchanges_listed(service) == ["binance", "kraken"], 30,
               "binance and kraken in /currency")
    run_golden(service, "default", {"mids": expected_mids(), "t0": t0})


def test_compat_golden_stale(make_service):
    # kraken polls once, then its ticker turns stale after 1 s and stays so.
    service, t0 = start(make_service, {"stale_after_ms": "1000", "poll_every": "3600"})

    def kraken_stale():
        try:
            r = requests.get(service.url + "/v1/rates", params={"pair": "BTC_USDT",
                                                               "exchange": "kraken"},
                             headers=service.auth(), timeout=10)
        except requests.RequestException:
            return False
        if r.status_code != 200:
            return False
        tickers = [t for p in r.json()["rates"] for t in p["exchanges"]]
        return len(tickers) == 1 and tickers[0]["stale"] is True

    wait_until(kraken_stale, 30, "kraken's ticker to be stored and turn stale")
    wait_until(lambda: exchanges_listed(service) == ["binance"], 30, "binance in /currency")
    run_golden(service, "stale", {"mids": expected_mids(), "t0": t0})


def test_compat_integral_rate_keeps_decimal_point(make_service, fakex_url):
    """A mid that is a whole number is still a float: 6622.0, never 6622."""
    with open(os.path.join(SOURCE, "tests/fixtures/kraken/rest_0_public_Ticker_pair_XBTUSDT.json"),
              encoding="utf-8") as f:
        body = json.load(f)
    ticker = body["result"]["XBTUSDT"]
    ticker["a"][0], ticker["b"][0], ticker["c"][0] = "6623.00000", "6621.00000", "6622.00000"
    fakex_control(fakex_url, "kraken", "push", {"rest": {
        "method": "GET", "path": "/0/public/Ticker", "query": "pair=XBTUSDT", "body": body}})
    try:
        service, t0 = start(make_service)
        wait_until(lambda: "kraken" in exchanges_listed(service), 30, "kraken in /currency")
        r = requests.get(service.url + "/currency", params={"exchange": "kraken"},
                         headers=service.auth(), timeout=10)
        assert r.status_code == 200
        assert '"currency_rate":6622.0,' in r.text, r.text
        check_floats_text(r.text, "integral")
        golden = loads_ordered(json.dumps({"result": [{"pair_name": "BTC_USDT", "exchanges": [
            {"exchange": "kraken", "currency_rate": 6622.0,
             "last_update_timestamp": "<timestamp>"}]}]}))
        compare(golden, loads_ordered(r.text), "integral", {"mids": {}, "t0": t0})
        inv = requests.get(service.url + "/currency", params={"exchange": "kraken",
                                                              "pair": "USDT_BTC"},
                           headers=service.auth(), timeout=10).json()
        assert inv["result"][0]["exchanges"][0]["currency_rate"] == pytest.approx(1 / 6622, rel=REL)
    finally:
        fakex_control(fakex_url, "kraken", "reset")


def test_aviable_exchanges_matches_v1(make_service):
    """The old list names the same exchanges the v1 API knows."""
    service, _ = start(make_service)
    wait_until(lambda: exchanges_listed(service) == ["binance", "kraken"], 30, "data")
    names = requests.get(service.url + "/aviable_exchanges", headers=service.auth(),
                         timeout=10).json()["result"]
    v1 = requests.get(service.url + "/v1/exchanges", headers=service.auth(), timeout=10)
    assert v1.status_code == 200, v1.text
    assert set(e["name"] for e in v1.json()["exchanges"]) <= set(names)
    # An exchange from the list is accepted by /currency.
    for name in names:
        r = requests.get(service.url + "/currency", params={"exchange": name},
                         headers=service.auth(), timeout=10)
        assert r.status_code == 200, (name, r.text)
