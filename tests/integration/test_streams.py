"""Streaming operators end to end: the real binary, real libwebsockets, and
a private fake exchange replaying the recorded captures.

Data: with `--once` each capture is replayed exactly once per connection,
so what the service stores is exactly the last value of every pair in the
capture (tests/operators/<name>_stream.expected.jsonl, derived from the
captures independently of the operators). Faults: a dropped connection is
reopened and resubscribed, a silent one is detected by idle_timeout, garbage
and oversize frames are counted without harm, and a refused stream backs
off with the reason shown in /v1/exchanges.
"""
import json
import os
import shutil
import subprocess
import time

import pytest
import requests

from conftest import BUILD, FACTOR, SOURCE, fakex_control, operators_config, wait_until

EXPECTED = os.path.join(SOURCE, "tests", "operators")
FIELDS = ("symbol", "bid", "ask", "bid_size", "ask_size", "last", "volume", "ts")


def expected(name):
    with open(os.path.join(EXPECTED, f"{name}_stream.expected.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip() and not line.startswith("#")]


@pytest.fixture
def private_fakex(tmp_path):
    """A fake exchange of our own, started with extra arguments."""
    procs = []

    def start(*args):
        port_file = tmp_path / f"fakex{len(procs)}.port"
        log = open(tmp_path / f"fakex{len(procs)}.log", "w")
        proc = subprocess.Popen([os.path.join(BUILD, "tests", "fakex", "fakex"), "--fixtures",
                                 os.path.join(SOURCE, "tests", "fixtures"), "--listen",
                                 "127.0.0.1:0", "--port-file", str(port_file), *args],
                                stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        wait_until(lambda: port_file.exists() and port_file.read_text().strip(), 10,
                   "the private fake exchange")
        return f"http://127.0.0.1:{int(port_file.read_text())}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


STREAMING = ("binance", "kraken", "coinbase")


def stream_operators(url, extra=None):
    """The streaming operators on the given fake exchange, no allow-lists, no
    REST fallback for streamed pairs (DESIGN 6); every other one disabled."""
    extra = extra or {}
    ws = "ws" + url[4:]
    fields = {}
    for name in STREAMING:
        fields[name] = {"rest": f'"{url}/{name}"', "ws": f'"{ws}/{name}"', "pairs": "{}"}
        if name != "binance":
            fields[name]["options"] = "{ poll_fallback = false }"
        fields[name].update(extra.get(name, {}))
    return operators_config(enabled=STREAMING, fields=fields)


def get(service, path, **params):
    r = requests.get(service.url + path, params=params, headers=service.auth(), timeout=10)
    r.raise_for_status()
    return r.json()


def stored(service, exchange):
    body = get(service, "/v1/rates", exchange=exchange)
    return {t["pair"]: t for rate in body["rates"] for t in rate["exchanges"]}


def matches(service, exchange, want):
    have = stored(service, exchange)
    for w in want:
        t = have.get(w["pair"])
        if not t or any(t[k] != w[k] for k in FIELDS) or t["source"] != "stream":
            return False
    return True



def test_stream_stays_streaming_while_poll_fills_in(make_service, private_fakex):
    """DESIGN 4.1: `streaming` means a stream is connected and delivering.
    Binance polls for the last price and volume its bookTicker stream lacks;
    those polls must not turn the state to `polling` while the stream is up."""
    url = private_fakex("--once", "--rate", "0")
    service = make_service(operators=stream_operators(url, {"binance": {
        "poll_every": "0.3", "budget": "{ requests = 100000, per = 1 }"}}))
    want = expected("binance")
    wait_until(lambda: matches(service, "binance", want), 60, "binance's stream data")
    # --once: the capture is over, the socket stays open, and from now on
    # every emit comes from poll.
    wait_until(lambda: (lambda d: d["source"] == "poll" and d["streams_open"] >= 1)(
        get(service, "/v1/exchanges/binance")), 10 * FACTOR, "a poll after the stream's data")
    detail = get(service, "/v1/exchanges/binance")
    assert detail["state"] == "streaming", detail

@pytest.mark.parametrize("exchange", ["binance", "kraken", "coinbase"])
def test_capture_replayed_once_is_stored_exactly(make_service, private_fakex, exchange):
    url = private_fakex("--once", "--rate", "0")
    service = make_service(operators=stream_operators(url))
    want = expected(exchange)
    wait_until(lambda: matches(service, exchange, want), 60, f"{exchange}'s stream data")
    have = stored(service, exchange)
    for w in want:
        for k in FIELDS:
            assert have[w["pair"]][k] == w[k], (exchange, w["pair"], k)
    # The status copy is published every 200 ms: wait for it to catch up.
    wait_until(lambda: get(service, f"/v1/exchanges/{exchange}")["streams_open"] >= 1, 10,
               "the open stream in the published status")
    detail = get(service, f"/v1/exchanges/{exchange}")
    assert detail["state"] in ("streaming", "degraded"), detail
    # Acks, heartbeats, trades and book messages are not taken for tickers:
    # nothing is rejected, and no pair appears that has no ticker message.
    assert sum(detail["reject_reasons"].values()) == 0
    streamed = {p for p, t in have.items() if t["source"] == "stream"}
    assert streamed == {w["pair"] for w in want}


def kraken_messages(service):
    return get(service, "/v1/exchanges/kraken")["stream_messages"]


def test_drop_reconnects_and_resubscribes(make_service, private_fakex):
    url = private_fakex("--rate", "50")
    service = make_service(operators=stream_operators(url))
    wait_until(lambda: kraken_messages(service) > 20, 30, "kraken's stream")
    before = fakex_control(url, "kraken", "stats")
    fakex_control(url, "kraken", "fault", {"ws_drop_after": 10})
    wait_until(lambda: fakex_control(url, "kraken", "stats")["ws_connections"]
               >= before["ws_connections"] + 2, 60, "two reconnects")
    fakex_control(url, "kraken", "fault", {"clear": True})
    after = fakex_control(url, "kraken", "stats")
    # Each new connection subscribed again (on_open ran after every connect).
    assert after["ws_client_messages"] >= before["ws_client_messages"] + 2
    count = kraken_messages(service)
    wait_until(lambda: kraken_messages(service) > count + 20, 30, "data flowing again")
    assert get(service, "/v1/exchanges/kraken")["errors"] >= 2


def test_stall_is_detected_by_idle_timeout(make_service, private_fakex, tmp_path):
    """A stream that stays open but silent is closed after idle_timeout and
    reopened. The operator copy gets a short idle_timeout; everything else
    is the shipped file."""
    ops = tmp_path / "operators"
    shutil.copytree(os.path.join(SOURCE, "operators"), ops)
    text = (ops / "kraken.lua").read_text()
    assert "idle_timeout = 30," in text
    (ops / "kraken.lua").write_text(text.replace("idle_timeout = 30,", "idle_timeout = 1,", 1))
    url = private_fakex("--rate", "50")
    service = make_service(operators=stream_operators(url), operators_dir=f'"{ops}"')
    wait_until(lambda: kraken_messages(service) > 10, 30, "kraken's stream")
    before = fakex_control(url, "kraken", "stats")["ws_connections"]
    fakex_control(url, "kraken", "fault", {"ws_stall": True})
    wait_until(lambda: fakex_control(url, "kraken", "stats")["ws_connections"] > before,
               30, "a reconnect after the stall")
    assert "idle" in service.log()
    fakex_control(url, "kraken", "fault", {"clear": True})
    count = kraken_messages(service)
    wait_until(lambda: kraken_messages(service) > count + 10, 30, "data flowing again")


def test_garbage_and_oversize_frames_are_harmless(make_service, private_fakex):
    url = private_fakex("--rate", "50")
    extra = {"kraken": {"max_frame_bytes": "4096"}}
    service = make_service(operators=stream_operators(url, extra))
    wait_until(lambda: kraken_messages(service) > 10, 30, "kraken's stream")
    fakex_control(url, "kraken", "fault", {"ws_garbage": True, "ws_oversize": 100000})
    wait_until(lambda: get(service, "/v1/exchanges/kraken")["frames_dropped"] >= 1, 30,
               "the oversize frame to be dropped and counted")
    count = kraken_messages(service)
    wait_until(lambda: kraken_messages(service) > count + 10, 30, "data flowing after garbage")
    assert requests.get(service.url + "/healthz", timeout=10).status_code == 200


def test_refused_stream_backs_off_with_reason(make_service, private_fakex):
    url = private_fakex("--rate", "50")
    service = make_service(operators=stream_operators(url))
    wait_until(lambda: get(service, "/v1/exchanges/coinbase")["streams_open"] >= 1, 60,
               "coinbase's stream")
    fakex_control(url, "coinbase", "fault", {"refuse": True})
    wait_until(lambda: "stream" in (get(service, "/v1/exchanges/coinbase")["reason"] or ""), 30,
               "the stream failure in coinbase's reason")
    start = fakex_control(url, "coinbase", "stats")["ws_connections"]
    time.sleep(6 * FACTOR)  # an observation window: how many attempts in it
    attempts = fakex_control(url, "coinbase", "stats")["ws_connections"] - start
    # Backoff 1, 2, 4 s (+-20 %): at most 4 attempts in 6 s; without it, hundreds.
    assert attempts <= 4 * FACTOR, attempts
    fakex_control(url, "coinbase", "fault", {"clear": True})
    wait_until(lambda: get(service, "/v1/exchanges/coinbase")["streams_open"] >= 1, 90,
               "the stream back after the refusal ends")
