"""Every operator replaying at once in one service (the catalogue), and the
replay demo: config/replay.lua as scripts/run --replay runs it.

What each exchange's recordings hold is read from the expected files
(tests/operators/*.expected.jsonl, derived from the recordings, never from the
operators): every pair of an exchange's files, and as its stream's pairs those
of the files made with `--no-poll`. Nothing here lists the operators: one
added with fixtures and expected files is in both services.

The catalogue service runs each exchange whose recordings hold BTC_USDT
narrowed to it, as its data test does, keeping the replay profile's options
only where its stream's own capture carries BTC_USDT (elsewhere they would
turn off the REST ticker that holds it); the others run as in the replay
profile. /v1/rates/BTC_USDT must then list exactly those exchanges, with
their recorded prices — recorded years apart, so without consensus — and an
outlier pushed through the fake exchange's control API onto a pair that
otherwise agrees is excluded with its reason.

The demo runs config/replay.lua itself: after a warm-up no operator may be
degraded or in error, nor have counted a single error (a fake exchange's 404
is one), every stream capture's pairs are served and streaming, nothing is
served that no recording holds, and the prices move as the captures loop.

One exception, read from the recordings too: Bybit's stream is documented
examples whose delta crosses the unrelated snapshot's book (its stream
expected file says the engine refuses it as crossed). Replayed in a loop,
most of what Bybit emits is that crossed book, refused, and the engine shows
it `degraded` ("most emits refused ... (crossed N)"): the truth about that
data, which no setting can mend. A stream whose recordings document a
crossed quote may show that, and only that.
"""
import glob
import json
import math
import os
import re
import subprocess
import time

import pytest
import requests

from conftest import (FACTOR, SOURCE, TOKEN, Service, fakex_control, operator_names,
                      operators_config, wait_until)

EXPECTED = os.path.join(SOURCE, "tests", "operators")
REPLAY_CONFIG = os.path.join(SOURCE, "config", "replay.lua")
# How long the demo is watched once every operator has reached its state:
# longer than most operators' idle_timeout (30 s), so a socket that gets
# nothing from the captures would have been closed, reconnected and counted.
WATCH_S = 35


# ---------------------------------------------------------------------------
# What the recordings hold
# ---------------------------------------------------------------------------

def recordings():
    """exchange -> {"pairs": set, "stream": set, "quotes": {pair: {(bid, ask)}},
    "crossed": bool} from the expected files; the exchange is the one whose
    operator the file's command line runs (files with no ticker name it
    too). "crossed": a stream file says a recorded quote is refused as
    crossed."""
    out = {}
    for path in sorted(glob.glob(os.path.join(EXPECTED, "*.expected.jsonl"))):
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        m = re.search(r"operator run operators/(\w+)\.lua", lines[0] if lines else "")
        assert m, f"{path}: the first line names no operator run"
        rec = out.setdefault(m.group(1), {"pairs": set(), "stream": set(), "quotes": {},
                                           "crossed": False})
        for line in lines:
            if line.startswith("#") and "--no-poll" in lines[0] and \
                    "refuses it as crossed" in line:
                rec["crossed"] = True
            if not line.strip() or line.startswith("#"):
                continue
            t = json.loads(line)
            rec["pairs"].add(t["pair"])
            rec["quotes"].setdefault(t["pair"], set()).add((t["bid"], t["ask"]))
            if "--no-poll" in lines[0]:
                rec["stream"].add(t["pair"])
    return out


CROSSED_REFUSALS = re.compile(r"most emits refused: \d+ of \d+ in \d+ s \(crossed \d+\)$")


def state_ok(rec, name, entry, want):
    """entry's state is the wanted one, or the degraded state a stream whose
    recordings document a crossed quote shows when it loops (above)."""
    if entry["state"] == want:
        return True
    return (want == "streaming" and entry["state"] == "degraded" and
            rec.get(name, {}).get("crossed", False) and
            bool(CROSSED_REFUSALS.match(entry["reason"] or "")))


def state_for(served, streamed):
    """The state an operator shows once its data flows: streaming when a
    stream capture carries what it serves, polling when only REST does,
    starting when its recordings hold nothing it may serve."""
    if streamed:
        return "streaming"
    return "polling" if served else "starting"


# ---------------------------------------------------------------------------
# The replay profile (config/replay.lua, read through --check-config)
# ---------------------------------------------------------------------------

def lua(value):
    """A JSON value as Lua source."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "{ " + ", ".join(lua(v) for v in value) + " }"
    return "{ " + ", ".join(f"{k} = {lua(v)}" for k, v in value.items()) + " }"


def replay_profile(explorer_bin, fakex_url):
    """name -> {"pairs": [...], "options": {...}} of config/replay.lua, as the
    binary reads it."""
    out = subprocess.run([explorer_bin, "--config", REPLAY_CONFIG, "--check-config"],
                         cwd=SOURCE, env=dict(os.environ, FAKEX_URL=fakex_url),
                         capture_output=True, text=True, timeout=30 * FACTOR)
    assert out.returncode == 0, out.stderr
    profile = {}
    for line in out.stdout.splitlines():
        m = re.match(r"operators\.(\w+)\.(pairs|options) = (.*)$", line)
        if not m:
            continue
        entry = profile.setdefault(m.group(1), {"pairs": [], "options": {}})
        if m.group(2) == "options":
            entry["options"] = json.loads(m.group(3))
        else:
            entry["pairs"] = re.findall(r'"([^"]*)"', m.group(3))
    return profile


def profile_fields(entry):
    fields = {"pairs": lua(entry["pairs"])}
    if entry["options"]:
        fields["options"] = lua(entry["options"])
    return fields


# ---------------------------------------------------------------------------
# Reading the service
# ---------------------------------------------------------------------------

def get_json(service, path, **params):
    r = requests.get(service.url + path, params=params, headers=service.auth(), timeout=30)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def statuses(service):
    return {e["name"]: e for e in get_json(service, "/v1/exchanges")["exchanges"]}


def served(service):
    """exchange -> {pair: ticker}."""
    out = {}
    for rate in get_json(service, "/v1/rates")["rates"]:
        for t in rate["exchanges"]:
            out.setdefault(t["exchange"], {})[t["pair"]] = t
    return out


def wait_states(service, rec, want, seconds=90):
    """Waits until every operator shows its wanted state; returns the statuses."""
    last = {}

    def ready():
        last["s"] = statuses(service)
        return sorted(last["s"]) == sorted(want) and all(
            state_ok(rec, n, e, want[n]) for n, e in last["s"].items())

    try:
        wait_until(ready, seconds, "every operator in its state")
    except AssertionError:
        got = {n: (e["state"], e["reason"]) for n, e in last.get("s", {}).items()}
        raise AssertionError(f"states: want {want}, got {got}") from None
    return last["s"]


# ---------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------

@pytest.fixture
def catalogue(make_service, explorer_bin, fakex_url):
    rec = recordings()
    profile = replay_profile(explorer_bin, fakex_url)
    names = operator_names()
    fields, want = {}, {}
    for name in names:
        r = rec.get(name, {"pairs": set(), "stream": set()})
        entry = profile.get(name, {"pairs": [], "options": {}})
        if "BTC_USDT" in r["pairs"]:
            streamed = "BTC_USDT" in r["stream"]
            fields[name] = {"pairs": '{ "BTC_USDT" }'}
            if streamed and entry["options"]:
                fields[name]["options"] = lua(entry["options"])
            want[name] = state_for(True, streamed)
        else:
            fields[name] = profile_fields(entry)
            want[name] = state_for(r["pairs"], r["stream"])
    svc = make_service(operators=operators_config(enabled=names, fields=fields))
    svc.recorded, svc.want = rec, want
    return svc


def test_catalogue_btc_usdt_from_every_recording(catalogue):
    rec = catalogue.recorded
    holders = sorted(n for n in operator_names() if "BTC_USDT" in rec.get(n, {}).get("pairs", ()))
    assert len(holders) >= 9, holders  # the recordings of nine exchanges hold it
    last = {}

    def listed():
        r = requests.get(catalogue.url + "/v1/rates/BTC_USDT", headers=catalogue.auth(),
                         timeout=30)
        last["body"] = r.json() if r.status_code == 200 else {}
        return [t["exchange"] for t in last["body"].get("exchanges", [])] == holders

    wait_until(listed, 90, f"BTC_USDT from {holders}")
    body = last["body"]
    for t in body["exchanges"]:
        quotes = rec[t["exchange"]]["quotes"]["BTC_USDT"]
        if "BTC_USDT" in rec[t["exchange"]]["stream"]:
            # A capture replays in a loop: any of its quotes, near its last.
            mids = [(float(b) + float(a)) / 2 for b, a in quotes]
            assert any(t["mid"] == pytest.approx(m, rel=0.01) for m in mids), (t, quotes)
        else:
            assert (t["bid"], t["ask"]) in quotes, (t, quotes)
    # Recorded years apart (6,622 to 105,944): no majority agrees, nobody is
    # picked as the outlier, and some exchange bids above another's ask.
    assert body["aggregate"] == {
        "mid_median": None, "vwap": None, "best_bid": {"price": None, "exchange": None},
        "best_ask": {"price": None, "exchange": None}, "sources": len(holders),
        "excluded": [], "consensus": False, "crossed": True}

    status = wait_states(catalogue, rec, catalogue.want)
    assert sorted(status) == operator_names()
    for name, e in status.items():
        assert e["errors"] == 0, (name, e["reason"])


def gateio_ticker(pair, bid, ask):
    return {"time": 1700000000, "channel": "spot.tickers", "event": "update",
            "result": {"currency_pair": pair, "last": bid, "lowest_ask": ask,
                       "highest_bid": bid, "base_volume": "10"}}


def cryptocom_ticker(instrument, bid, ask):
    return {"id": -1, "method": "subscribe", "code": 0,
            "result": {"instrument_name": instrument, "subscription": "ticker." + instrument,
                       "channel": "ticker", "data": [{"i": instrument, "b": bid, "k": ask,
                                                      "a": bid, "v": "5", "t": 1700000000000}]}}


def gemini_book(symbol, bid, ask):
    """A first l2_updates: the whole book (one level a side) with its trades."""
    return {"type": "l2_updates", "symbol": symbol,
            "changes": [["buy", bid, "1"], ["sell", ask, "1"]],
            "trades": [{"type": "trade", "symbol": symbol, "event_id": 1,
                        "timestamp": 1700000000000, "price": bid, "quantity": "1",
                        "side": "buy"}]}


def test_catalogue_pushed_outlier_is_excluded(catalogue, fakex_url):
    """ETH_BTC is served by none of the recordings here. Gate and Crypto.com
    are pushed quotes that agree, Gemini one 60 % above them: Gemini is
    excluded as the outlier, the other two are the sources."""
    wait_states(catalogue, catalogue.recorded, catalogue.want)
    try:
        for ex, frame in (("gateio", gateio_ticker("ETH_BTC", "0.05000", "0.05010")),
                          ("cryptocom", cryptocom_ticker("ETH_BTC", "0.05002", "0.05008")),
                          ("gemini", gemini_book("ETHBTC", "0.08000", "0.08010"))):
            sent = fakex_control(fakex_url, ex, "push", {"ws": frame})
            assert sent["ws_sent"] >= 1, (ex, sent)
        last = {}

        def three():
            r = requests.get(catalogue.url + "/v1/rates/ETH_BTC", headers=catalogue.auth(),
                             timeout=30)
            last["body"] = r.json() if r.status_code == 200 else {}
            return [t["exchange"] for t in last["body"].get("exchanges", [])] == [
                "cryptocom", "gateio", "gemini"]

        wait_until(three, 30, "ETH_BTC from cryptocom, gateio and gemini")
        agg = last["body"]["aggregate"]
        assert agg["consensus"] is True and agg["crossed"] is False
        assert agg["excluded"] == [{"exchange": "gemini", "reason": "outlier"}]
        assert agg["sources"] == 2
        assert agg["mid_median"] == pytest.approx((0.05005 + 0.05005) / 2, rel=1e-12)
        assert agg["best_bid"] == {"price": "0.05002", "exchange": "cryptocom"}
        assert agg["best_ask"] == {"price": "0.05008", "exchange": "cryptocom"}
        conv = get_json(catalogue, "/v1/convert", **{"from": "ETH", "to": "BTC"})
        assert conv["path"][0]["exchanges"] == ["cryptocom", "gateio"]
    finally:
        for ex in ("gateio", "cryptocom", "gemini"):
            fakex_control(fakex_url, ex, "reset")


# ---------------------------------------------------------------------------
# The replay demo
# ---------------------------------------------------------------------------

@pytest.fixture
def demo(tmp_path, explorer_bin, fakex_url):
    """explorer --config config/replay.lua, as scripts/run --replay starts it,
    on a free port and with a token from the environment."""
    port_file = tmp_path / "port"
    log_path = tmp_path / "explorer.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "REDIS_URL")}
    env.update(FAKEX_URL=fakex_url, LISTEN="127.0.0.1:0", PORT_FILE=str(port_file),
               API_AUTHENTICATION_TOKEN=TOKEN)
    with open(log_path, "w") as log:
        proc = subprocess.Popen([explorer_bin, "--config", REPLAY_CONFIG], cwd=SOURCE, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    svc = Service(proc, log_path, port_file)
    try:
        wait_until(lambda: port_file.exists() and port_file.read_text().strip()
                   or proc.poll() is not None, 20, "the port file")
        assert proc.poll() is None, svc.log()
        svc.port = int(port_file.read_text())
        yield svc
    finally:
        svc.stop()


def changed(a, b):
    """Exchanges with a ticker whose bid or ask differs between two reads."""
    return {ex for ex, pairs in b.items() for pair, t in pairs.items()
            if pair in a.get(ex, {}) and (a[ex][pair]["bid"], a[ex][pair]["ask"]) !=
            (t["bid"], t["ask"])}


def test_replay_demo(demo, explorer_bin, fakex_url):
    rec = recordings()
    profile = replay_profile(explorer_bin, fakex_url)
    want = {}
    for name in operator_names():
        r = rec.get(name, {"pairs": set(), "stream": set()})
        allowed = set(profile.get(name, {}).get("pairs", []))
        stream = r["stream"] & allowed if allowed else r["stream"]
        pairs = r["pairs"] & allowed if allowed else r["pairs"]
        want[name] = state_for(pairs, stream)
    assert list(want.values()).count("streaming") >= 10, want

    wait_states(demo, rec, want)
    before = served(demo)
    missed = {n: fakex_control(fakex_url, n, "stats")["ws_heartbeats_missed"] for n in want}
    deadline = time.monotonic() + WATCH_S * FACTOR
    while time.monotonic() < deadline:
        for name, e in statuses(demo).items():
            assert state_ok(rec, name, e, want[name]), (name, e["state"], e["reason"])
            assert e["errors"] == 0, (name, e["reason"])
        time.sleep(1)
    after = served(demo)
    # Heartbeats the fake exchange wants answered (Crypto.com's, HTX's pings)
    # were, all through the loops.
    for name in want:
        assert fakex_control(fakex_url, name, "stats")["ws_heartbeats_missed"] == missed[name], name

    for name, state in want.items():
        pairs = set(after.get(name, {}))
        streamed = rec.get(name, {"stream": set()})["stream"]
        if state == "streaming":
            assert streamed <= pairs, (name, sorted(streamed - pairs))
        # Nothing that no recording holds: never a guessed pair.
        assert pairs <= rec.get(name, {"pairs": set()})["pairs"], (name, sorted(pairs))
        assert pairs or state == "starting", name

    # The captures loop: prices move on most streaming exchanges.
    streaming = [n for n, s in want.items() if s == "streaming"]
    moving = changed(before, after)
    assert len(moving & set(streaming)) >= math.ceil(len(streaming) / 2), (sorted(moving),
                                                                            streaming)
