"""Self-test of the fake exchange (tests/fakex): the real binary on loopback.

Run: FAKEX_BIN=build/tests/fakex/fakex /usr/bin/python3 -m pytest -q tests/fakex/test_fakex.py
(ctest -R fakex_selftest sets FAKEX_BIN, FAKEX_FIXTURES and FAKEX_MAKE_CA).

Every server is started on port 0 with a port file and stopped with SIGTERM;
teardown asserts a clean exit (status 0, no sanitizer report in its log).
Every wait has a timeout; nothing sleeps and hopes. Timing checks only use
generous lower bounds, so a slow (ASan) build cannot make them flaky.
"""

import asyncio
import gzip
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import websockets
import websockets.exceptions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FAKEX_BIN = os.environ.get("FAKEX_BIN", str(ROOT / "build" / "tests" / "fakex" / "fakex"))
FIXTURES = Path(os.environ.get("FAKEX_FIXTURES", str(ROOT / "tests" / "fixtures")))
MAKE_CA = os.environ.get("FAKEX_MAKE_CA", str(HERE / "make-test-ca.sh"))
SCALE = float(os.environ.get("TEST_TIME_FACTOR", "1"))
WAIT = 15 * SCALE  # upper bound for anything that should happen "soon"
QUIET = 0.5 * SCALE  # a gap with no frame that counts as "the feed is silent"
EXCHANGES = ("binance", "coinbase", "kraken", "kucoin")



def session():
    """A requests session that ignores proxy settings: everything here is loopback."""
    sess = requests.Session()
    sess.trust_env = False
    return sess


HTTP = session()


# ---------------------------------------------------------------------------
# Process management
# ---------------------------------------------------------------------------


class Fakex:
    """One running fakex process."""

    def __init__(self, tmp: Path, *args: str, scheme: str = "http", fixtures: Path = FIXTURES):
        self.tmp = tmp
        self.port_file = tmp / "port"
        self.log_path = tmp / "fakex.log"
        self.log = open(self.log_path, "wb")
        cmd = [FAKEX_BIN, "--fixtures", str(fixtures), "--port-file", str(self.port_file), *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = self._wait_port()
        self.http = f"{scheme}://127.0.0.1:{self.port}"
        self.ws = f"{'wss' if scheme == 'https' else 'ws'}://127.0.0.1:{self.port}"

    def _wait_port(self) -> int:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"fakex exited early ({self.proc.returncode}):\n{self.text()}")
            if self.port_file.exists():
                text = self.port_file.read_text()
                if text.endswith("\n"):
                    return int(text)
            time.sleep(0.02)
        raise AssertionError("fakex did not write its port file in time:\n" + self.text())

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("fakex did not exit on signal:\n" + self.text())
        self.log.close()
        return rc

    def assert_clean_exit(self, sig=signal.SIGTERM):
        rc = self.stop(sig)
        log = self.text()
        assert rc == 0, log
        assert "Sanitizer" not in log and "runtime error:" not in log, log

    # control API helpers
    def ctl(self, exchange, action, body=None, method="POST"):
        r = HTTP.request(method, f"{self.http}/_fakex/{exchange}/{action}",
                             data=None if body is None else json.dumps(body), timeout=WAIT,
                             verify=getattr(self, "verify", True))
        assert r.status_code == 200, r.text
        return r.json()

    def stats(self, exchange):
        return self.ctl(exchange, "stats", method="GET")


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    server = Fakex(tmp_path_factory.mktemp("fakex"), "--rate", "500")
    yield server
    server.assert_clean_exit()


@pytest.fixture(autouse=True)
def _reset(request):
    if "fx" in request.fixturenames:
        server = request.getfixturevalue("fx")
        for ex in EXCHANGES:
            server.ctl(ex, "reset")
    yield


def fixture_lines(exchange, file):
    return [ln for ln in (FIXTURES / exchange / file).read_text().splitlines() if ln.strip()]


def manifest(exchange):
    return json.loads((FIXTURES / exchange / "manifest.json").read_text())


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, WAIT * 2))


async def recv(ws, timeout=WAIT):
    return await asyncio.wait_for(ws.recv(), timeout)


async def recv_n(ws, n):
    return [await recv(ws) for _ in range(n)]


async def drain(ws):
    """Read until the feed has been silent for QUIET seconds; return the count."""
    n = 0
    while True:
        try:
            await asyncio.wait_for(ws.recv(), QUIET)
            n += 1
        except asyncio.TimeoutError:
            return n


async def silent(ws, seconds=QUIET * 2):
    try:
        msg = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return True
    raise AssertionError(f"expected silence, got {msg[:120]!r}")


def connect(url, **kw):
    kw.setdefault("close_timeout", 2)
    kw.setdefault("open_timeout", WAIT)
    return websockets.connect(url, **kw)


def kraken_subscribe(name="ticker", pairs=("XBT/USD", "ETH/EUR")):
    return json.dumps({"event": "subscribe", "pair": list(pairs), "subscription": {"name": name}})


# ---------------------------------------------------------------------------
# REST
# ---------------------------------------------------------------------------


def test_health(fx):
    r = HTTP.get(f"{fx.http}/_fakex/health", timeout=WAIT)
    assert r.status_code == 200
    assert r.json()["ok"] is True
    assert set(EXCHANGES) <= set(r.json()["exchanges"])


@pytest.mark.parametrize("exchange", ["binance", "kraken", "coinbase"])
def test_rest_serves_recorded_bytes(fx, exchange):
    for entry in manifest(exchange)["rest"]:
        query = entry.get("query")
        url = f"{fx.http}/{exchange}{entry['path']}" + (f"?{query}" if query else "")
        r = HTTP.request(entry.get("method", "GET"), url, timeout=WAIT)
        assert r.status_code == 200, (url, r.text)
        assert r.headers["content-type"].startswith("application/json")
        assert r.content == (FIXTURES / exchange / entry["file"]).read_bytes(), url


def test_rest_most_specific_wins_and_extra_params_ignored(fx):
    base = f"{fx.http}/binance/api/v3/ticker/24hr"
    files = {
        "all": (FIXTURES / "binance" / "rest_api_v3_ticker_24hr.json").read_bytes(),
        "one": (FIXTURES / "binance" / "rest_api_v3_ticker_24hr_symbol_BTCUSDT.json").read_bytes(),
        "two": (FIXTURES / "binance" /
                "rest_api_v3_ticker_24hr_symbols_BTCUSDT_ETHUSDT.json").read_bytes(),
    }
    assert HTTP.get(base, timeout=WAIT).content == files["all"]
    r = HTTP.get(base, params={"recvWindow": "5000", "symbol": "BTCUSDT"}, timeout=WAIT)
    assert r.content == files["one"]
    # requests encodes the JSON array differently from the recording; decoded values match
    r = HTTP.get(base, params={"symbols": '["BTCUSDT","ETHUSDT"]'}, timeout=WAIT)
    assert r.content == files["two"]
    r = HTTP.get(base + "?timestamp=1&symbol=BTCUSDT&signature=x", timeout=WAIT)
    assert r.content == files["one"]


def test_rest_no_match_is_404_json_and_logged(fx):
    r = HTTP.get(f"{fx.http}/binance/api/v3/ticker/price?symbol=ETHUSDT", timeout=WAIT)
    assert r.status_code == 404
    body = r.json()
    assert body["path"] == "/api/v3/ticker/price" and body["exchange"] == "binance"
    assert "symbol=ETHUSDT" in body["query"]
    r = HTTP.get(f"{fx.http}/binance/api/v9/never", timeout=WAIT)
    assert r.status_code == 404 and "error" in r.json()
    r = HTTP.get(f"{fx.http}/nosuchexchange/x", timeout=WAIT)
    assert r.status_code == 404 and r.json()["error"] == "unknown exchange"
    assert "binance" in r.json()["exchanges"]
    r = HTTP.get(f"{fx.http}/", timeout=WAIT)
    assert r.status_code == 404
    log = fx.text()
    assert "GET /binance/api/v3/ticker/price?symbol=ETHUSDT -> 404" in log
    assert "NO FIXTURE MATCHES" in log


def test_host_rewrite(fx):
    r = HTTP.post(f"{fx.http}/kucoin/api/v1/bullet-public", timeout=WAIT)
    assert r.status_code == 200
    endpoint = r.json()["data"]["instanceServers"][0]["endpoint"]
    assert endpoint == f"ws://127.0.0.1:{fx.port}/kucoin/"
    assert b"kucoin.com" not in r.content


def test_stats_count_requests(fx):
    for _ in range(3):
        HTTP.get(f"{fx.http}/binance/api/v3/exchangeInfo", timeout=WAIT)
    HTTP.get(f"{fx.http}/binance/api/v3/ticker/24hr?symbol=BTCUSDT", timeout=WAIT)
    HTTP.get(f"{fx.http}/binance/nope", timeout=WAIT)
    st = fx.stats("binance")
    assert st["requests"] == 5
    assert st["by_path"] == {"/api/v3/exchangeInfo": 3, "/api/v3/ticker/24hr": 1, "/nope": 1}
    assert fx.stats("kraken")["requests"] == 0
    fx.ctl("binance", "reset")
    assert fx.stats("binance")["requests"] == 0


# ---------------------------------------------------------------------------
# WebSocket replay
# ---------------------------------------------------------------------------


def test_ws_binance_url_selected_bookticker_loops(fx):
    lines = fixture_lines("binance", "ws_bookTicker.jsonl")

    async def go():
        url = f"{fx.ws}/binance/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker"
        async with connect(url) as ws:
            got = await recv_n(ws, len(lines) + 2)
        assert got[:len(lines)] == lines
        assert got[len(lines):] == lines[:2]  # no connection-level lines: loops from the top

    run(go())
    assert fx.stats("binance")["ws_loops"] >= 1


def test_ws_binance_combined_and_subscribe(fx):
    combined = fixture_lines("binance", "ws_combined_stream.jsonl")
    book = fixture_lines("binance", "ws_bookTicker.jsonl")

    async def go():
        url = f"{fx.ws}/binance/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker"
        async with connect(url) as ws:
            assert await recv_n(ws, 20) == combined[:20]
        async with connect(f"{fx.ws}/binance/ws") as ws:
            await silent(ws)  # nothing selected yet
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"],
                                      "id": 7}))
            assert json.loads(await recv(ws)) == {"result": None, "id": 7}  # sidecar reply
            assert await recv_n(ws, 10) == book[:10]

    run(go())


def test_ws_kraken_subscribe_other_pairs_heartbeats_and_loop(fx):
    lines = fixture_lines("kraken", "ws_ticker.jsonl")
    loop_from = 11  # systemStatus + 10 subscriptionStatus are not repeated

    async def go():
        async with connect(f"{fx.ws}/kraken") as ws:
            await silent(ws)
            await ws.send(kraken_subscribe("ticker", ("XBT/USD", "DOGE/EUR")))
            got = await recv_n(ws, len(lines) + 5)
        assert got[:len(lines)] == lines
        assert got[len(lines):] == lines[loop_from:loop_from + 5]
        assert '{"event":"heartbeat"}' in got
        assert sum(1 for m in got if m.startswith("[")) >= 18  # ticker arrays

    run(go())
    st = fx.stats("kraken")
    assert st["ws_connections"] == 1 and st["ws_client_messages"] == 1
    assert st["ws_loops"] >= 1 and st["ws_frames_sent"] >= len(lines) + 5


def test_ws_kraken_unmatched_messages_are_ignored(fx):
    async def go():
        async with connect(f"{fx.ws}/kraken") as ws:
            await ws.send(json.dumps({"event": "ping", "reqid": 42}))
            assert json.loads(await recv(ws)) == {"event": "pong", "reqid": 42}  # sidecar reply
            await ws.send(kraken_subscribe("ohlc"))
            await ws.send("this is not json")
            await ws.send(b"\x00binary")
            await silent(ws)
            await ws.send(kraken_subscribe("trade"))
            first = await recv(ws)
        assert first == fixture_lines("kraken", "ws_trade.jsonl")[0]

    run(go())
    assert fx.stats("kraken")["ws_client_messages"] == 5
    assert "matches no capture" in fx.text() and "binary client message ignored" in fx.text()


def test_ws_coinbase_ticker(fx):
    lines = fixture_lines("coinbase", "ws_ticker.jsonl")

    async def go():
        async with connect(f"{fx.ws}/coinbase") as ws:
            await ws.send(json.dumps({"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"],
                                      "channels": ["ticker", "heartbeat"]}))
            got = await recv_n(ws, len(lines) + 3)
        assert got[:len(lines)] == lines
        assert got[len(lines):] == lines[2:5]  # the two leading acks are skipped on loop
        assert all(json.loads(m)["type"] in ("ticker", "subscriptions") for m in got)

    run(go())


def test_ws_htx_frames_are_gzip_and_pings_answered(fx):
    lines = fixture_lines("htx", "ws_market_depth_step0.jsonl")
    ping = next(i for i, ln in enumerate(lines) if ln.startswith('{"ping":'))

    async def go():
        async with connect(f"{fx.ws}/htx/ws") as ws:
            await ws.send(json.dumps({"sub": "market.btcusdt.depth.step0", "id": "btcusdt"}))
            got = await recv_n(ws, ping + 1)
            assert all(isinstance(m, bytes) for m in got)  # compress rule: binary frames
            assert [gzip.decompress(m).decode() for m in got] == lines[:ping + 1]
            await ws.send(json.dumps({"pong": json.loads(lines[ping])["ping"]}))
            fx.ctl("htx", "stop")
            await drain(ws)
            fx.ctl("htx", "push", {"ws": {"ping": 42}})  # pushes are gzipped too
            assert json.loads(gzip.decompress(await recv(ws))) == {"ping": 42}
            await ws.send('{"pong":42}')
            fx.ctl("htx", "resume")
            assert gzip.decompress(await recv(ws)).decode() in lines

    run(go())
    st = fx.stats("htx")
    assert st["ws_heartbeats_missed"] == 0 and st["ws_client_messages"] == 3
    assert "htx: client message matches no capture" not in fx.text()  # pongs answer pings


HEARTBEAT_MS = int(1000 * SCALE)  # long enough for a loaded (ASan) machine to answer


def heartbeat_exchange(root: Path) -> Path:
    """A throwaway exchange "hb" whose heartbeats must be answered within HEARTBEAT_MS."""
    (root / "hb").mkdir(parents=True)
    (root / "hb" / "manifest.json").write_text('{"rest":[],"ws":[]}')
    (root / "hb" / "fakex.json").write_text(json.dumps({"expect": [{
        "when": {"path": "method", "values": ["public/heartbeat"]},
        "reply": [{"path": "method", "values": ["public/respond-heartbeat"]},
                  {"path": "id", "values": ["{{id}}"]}],
        "within_ms": HEARTBEAT_MS}]}))
    return root


def test_expect_rule_closes_unanswered_connections(tmp_path):
    server = Fakex(tmp_path, fixtures=heartbeat_exchange(tmp_path / "fixtures"))

    def beat(n):
        server.ctl("hb", "push", {"ws": {"id": n, "method": "public/heartbeat", "code": 0}})

    async def closed_by_server(ws):
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            await recv(ws)
        return info.value.rcvd

    async def go():
        async with connect(f"{server.ws}/hb") as ws:
            for n in (1, 2, 3):  # answered, with the same id: the connection stays
                beat(n)
                assert json.loads(await recv(ws))["id"] == n
                await ws.send(json.dumps({"id": n, "method": "public/respond-heartbeat"}))
            await silent(ws, 3 * HEARTBEAT_MS / 1000)
            assert server.stats("hb")["ws_open"] == 1
            beat(4)
            await recv(ws)
            await ws.send(json.dumps({"id": 5, "method": "public/respond-heartbeat"}))
            close = await closed_by_server(ws)  # another id answers nothing
            assert (close.code, close.reason) == (1008, "heartbeat not answered")
        async with connect(f"{server.ws}/hb") as ws:
            beat(6)
            await recv(ws)
            assert (await closed_by_server(ws)).code == 1008  # not answered at all

    try:
        run(go())
        st = server.stats("hb")
        assert st["ws_heartbeats_missed"] == 2 and st["ws_connections"] == 2
        assert f"not answered within {HEARTBEAT_MS} ms" in server.text()
    finally:
        server.assert_clean_exit()


def test_ws_unknown_exchange_refused(fx):
    async def go():
        with pytest.raises((websockets.exceptions.WebSocketException, OSError, EOFError)):
            async with connect(f"{fx.ws}/nosuch"):
                pass

    run(go())


# ---------------------------------------------------------------------------
# Control API: push, stop/resume
# ---------------------------------------------------------------------------


def test_push_ws_frames_ahead_of_replay(fx):
    async def go():
        async with connect(f"{fx.ws}/kraken") as ws:
            await ws.send(kraken_subscribe())
            await recv(ws)
            fx.ctl("kraken", "stop")
            await drain(ws)
            res = fx.ctl("kraken", "push", {"ws": [1668, {"c": ["1.5", "1"]}, "ticker", "XBT/USD"]})
            assert res["ws_sent"] == 1
            assert json.loads(await recv(ws)) == [1668, {"c": ["1.5", "1"]}, "ticker", "XBT/USD"]
            fx.ctl("kraken", "push", {"ws": "raw text frame"})
            assert await recv(ws) == "raw text frame"
            await silent(ws)  # still stopped: pushes only
            fx.ctl("kraken", "resume")
            msg = await recv(ws)
            assert msg in fixture_lines("kraken", "ws_ticker.jsonl")

    run(go())


def test_push_rest_override_until_reset(fx):
    url = f"{fx.http}/binance/api/v3/ticker/24hr"
    recorded = (FIXTURES / "binance" / "rest_api_v3_ticker_24hr.json").read_bytes()
    fx.ctl("binance", "push", {"rest": {"method": "GET", "path": "/api/v3/ticker/24hr",
                                        "query": "symbol=BTCUSDT",
                                        "body": {"symbol": "BTCUSDT", "lastPrice": "1.00"}}})
    r = HTTP.get(url, params={"symbol": "BTCUSDT", "x": "1"}, timeout=WAIT)
    assert r.status_code == 200 and r.json() == {"symbol": "BTCUSDT", "lastPrice": "1.00"}
    assert HTTP.get(url, timeout=WAIT).content == recorded  # bare path still recorded
    fx.ctl("binance", "push", {"rest": {"path": "/api/v3/new", "body": "plain", "status": 503}})
    r = HTTP.get(f"{fx.http}/binance/api/v3/new", timeout=WAIT)
    assert r.status_code == 503 and r.text == "plain"
    fx.ctl("binance", "reset")
    r = HTTP.get(url, params={"symbol": "BTCUSDT"}, timeout=WAIT)
    assert r.json()["lastPrice"] != "1.00"
    assert HTTP.get(f"{fx.http}/binance/api/v3/new", timeout=WAIT).status_code == 404


def test_stop_and_resume(fx):
    async def go():
        async with connect(f"{fx.ws}/coinbase") as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["matches"]}))
            await recv_n(ws, 5)
            fx.ctl("coinbase", "stop")
            await drain(ws)
            await silent(ws)
            assert fx.stats("coinbase")["ws_open"] == 1  # connection stays open
            fx.ctl("coinbase", "resume")
            assert (await recv(ws)) in fixture_lines("coinbase", "ws_matches.jsonl")

    run(go())


# ---------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------


def test_fault_status_and_clear(fx):
    url = f"{fx.http}/binance/api/v3/exchangeInfo"
    fx.ctl("binance", "fault", {"status": 500})
    r = HTTP.get(url, timeout=WAIT)
    assert r.status_code == 500 and r.json()["status"] == 500
    assert HTTP.get(f"{fx.http}/kraken/0/public/AssetPairs", timeout=WAIT).status_code == 200
    assert fx.ctl("binance", "fault", method="GET")["faults"] == {"status": 500}
    fx.ctl("binance", "fault", {"clear": True})
    assert HTTP.get(url, timeout=WAIT).status_code == 200


def test_fault_delay_does_not_block_others(fx):
    fx.ctl("binance", "fault", {"delay_ms": 1500})
    result = {}

    def slow():
        t0 = time.monotonic()
        r = session().get(f"{fx.http}/binance/api/v3/exchangeInfo", timeout=WAIT)
        result["slow"] = (time.monotonic() - t0, r.status_code)

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.1)  # let the slow request reach the server first
    t0 = time.monotonic()
    r = HTTP.get(f"{fx.http}/kraken/0/public/AssetPairs", timeout=WAIT)
    fast = time.monotonic() - t0
    th.join(WAIT)
    assert r.status_code == 200
    assert not th.is_alive() and result["slow"][1] == 200
    assert result["slow"][0] >= 1.4
    assert fast < result["slow"][0]
    # the other answered while the delayed one was still pending
    assert "GET /kraken/0/public/AssetPairs" in fx.text()


def test_fault_truncate_garbage_and_combinations(fx):
    url = f"{fx.http}/binance/api/v3/ticker/price?symbol=BTCUSDT"
    recorded = (FIXTURES / "binance" / "rest_api_v3_ticker_price_symbol_BTCUSDT.json").read_bytes()
    fx.ctl("binance", "fault", {"truncate": 10})
    r = HTTP.get(url, timeout=WAIT)
    assert r.status_code == 200 and r.content == recorded[:10]
    assert r.headers["content-length"] == "10"
    fx.ctl("binance", "fault", {"clear": True, "garbage": True})
    r = HTTP.get(url, timeout=WAIT)
    assert r.status_code == 200 and r.text.startswith("<html>")
    with pytest.raises(ValueError):
        json.loads(r.text)
    fx.ctl("binance", "fault", {"status": 503, "truncate": 5})
    r = HTTP.get(url, timeout=WAIT)
    assert r.status_code == 503 and len(r.content) == 5


def test_fault_refuse_rest_and_ws(fx):
    async def go():
        async with connect(f"{fx.ws}/kraken") as ws:
            await ws.send(kraken_subscribe())
            await recv(ws)
            fx.ctl("kraken", "fault", {"refuse": True})
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                for _ in range(100000):
                    await recv(ws)
        with pytest.raises((websockets.exceptions.WebSocketException, OSError, EOFError)):
            async with connect(f"{fx.ws}/kraken"):
                pass

    run(go())
    with pytest.raises(requests.exceptions.ConnectionError):
        HTTP.get(f"{fx.http}/kraken/0/public/AssetPairs", timeout=WAIT)
    assert fx.stats("kraken")["requests"] == 1
    fx.ctl("kraken", "fault", {"refuse": False})
    assert HTTP.get(f"{fx.http}/kraken/0/public/AssetPairs", timeout=WAIT).status_code == 200


def test_fault_ws_drop_after(fx):
    async def go():
        async with connect(f"{fx.ws}/kraken") as ws:
            await ws.send(kraken_subscribe())
            await recv(ws)
            fx.ctl("kraken", "stop")
            await drain(ws)
            fx.ctl("kraken", "fault", {"ws_drop_after": 5})
            fx.ctl("kraken", "resume")
            got = 0
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                for _ in range(1000):
                    await recv(ws)
                    got += 1
            assert got == 5
        # new connections are dropped after 5 frames too
        async with connect(f"{fx.ws}/kraken") as ws:
            await ws.send(kraken_subscribe())
            got = 0
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                for _ in range(1000):
                    await recv(ws)
                    got += 1
            assert got == 5

    run(go())


def test_fault_ws_stall(fx):
    async def go():
        async with connect(f"{fx.ws}/coinbase") as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["ticker"]}))
            await recv(ws)
            fx.ctl("coinbase", "fault", {"ws_stall": True})
            await drain(ws)
            pong = await ws.ping()
            await silent(ws)
            assert not pong.done()  # pings are not answered either
            assert fx.stats("coinbase")["ws_open"] == 1
            fx.ctl("coinbase", "fault", {"ws_stall": False})
            await asyncio.wait_for(pong, WAIT)
            assert (await recv(ws)) in fixture_lines("coinbase", "ws_ticker.jsonl")

    run(go())


def test_fault_ws_garbage(fx):
    async def go():
        async with connect(f"{fx.ws}/kraken") as ws:
            await ws.send(kraken_subscribe())
            await recv(ws)
            fx.ctl("kraken", "stop")
            await drain(ws)
            fx.ctl("kraken", "fault", {"ws_garbage": True})
            text, binary = await recv_n(ws, 2)
            assert isinstance(text, str) and isinstance(binary, bytes)
            with pytest.raises(ValueError):
                json.loads(text)
            await silent(ws)

    run(go())


def test_fault_ws_oversize(fx):
    size = 2_000_000

    async def go():
        async with connect(f"{fx.ws}/kraken", max_size=None) as ws:
            fx.ctl("kraken", "fault", {"ws_oversize": size})
            msg = await recv(ws)
            assert len(msg) == size and json.loads(msg)["fakex"] == "oversize"
        # a client with the usual 1 MiB limit sees the frame as too big
        async with connect(f"{fx.ws}/kraken", max_size=1 << 20) as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                await recv(ws)
            assert info.value.sent is not None and info.value.sent.code == 1009

    run(go())


# ---------------------------------------------------------------------------
# Hostile input
# ---------------------------------------------------------------------------


def test_control_api_rejects_bad_input(fx):
    base = f"{fx.http}/_fakex"
    cases = [
        ("POST", "/binance/fault", "{not json", 400),
        ("POST", "/binance/fault", "[1,2]", 400),
        ("POST", "/binance/fault", '{"bogus":1}', 400),
        ("POST", "/binance/fault", '{"status":"x"}', 400),
        ("POST", "/binance/fault", '{"status":99}', 400),
        ("POST", "/binance/push", "{}", 400),
        ("POST", "/binance/push", '{"rest":{"path":"no-slash","body":1}}', 400),
        ("POST", "/nosuch/stop", "", 404),
        ("POST", "/binance/explode", "", 404),
        ("GET", "/binance/push", None, 405),
        ("PUT", "/binance/stop", "", 405),
    ]
    for method, path, body, status in cases:
        r = HTTP.request(method, base + path, data=body, timeout=WAIT)
        assert r.status_code == status, (method, path, body, r.text)
        assert "error" in r.json()
    assert fx.ctl("binance", "fault", method="GET")["faults"] == {}
    r = HTTP.post(f"{base}/binance/fault", data=b"x" * (2 << 20), timeout=WAIT)
    assert r.status_code == 413
    assert HTTP.get(f"{base}/health", timeout=WAIT).status_code == 200


def test_garbage_connections_and_many_clients(fx):
    for payload in (b"GARBAGE\r\n\r\n", b"\x16\x03\x01\x02\x00" + b"\x00" * 64,
                    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
                    b"GET /kraken HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", fx.port), timeout=WAIT) as s:
            s.sendall(payload)
            s.settimeout(2)
            try:
                s.recv(4096)
            except (socket.timeout, ConnectionResetError):
                pass
    socks = [socket.create_connection(("127.0.0.1", fx.port), timeout=WAIT) for _ in range(150)]

    async def many_ws():
        conns = [await connect(f"{fx.ws}/kraken") for _ in range(40)]
        for c in conns:
            await c.send(kraken_subscribe())
        for c in conns:
            await recv(c)
        assert fx.stats("kraken")["ws_open"] == 40
        for c in conns:
            await c.close()

    run(many_ws())
    for s in socks:
        s.close()
    assert HTTP.get(f"{fx.http}/_fakex/health", timeout=WAIT).json()["ok"] is True


# ---------------------------------------------------------------------------
# Options: rate, public URL, SIGINT; TLS
# ---------------------------------------------------------------------------


def test_rate_and_public_url(tmp_path):
    server = Fakex(tmp_path, "--rate", "20", "--public-url", "https://fake.example:8443/")
    try:
        r = HTTP.post(f"{server.http}/kucoin/api/v1/bullet-public", timeout=WAIT)
        endpoint = r.json()["data"]["instanceServers"][0]["endpoint"]
        assert endpoint == "wss://fake.example:8443/kucoin/"

        async def go():
            async with connect(f"{server.ws}/binance/stream?streams=a@bookTicker") as ws:
                await recv(ws)
                t0 = time.monotonic()
                await recv_n(ws, 10)
                return time.monotonic() - t0

        assert run(go()) >= 0.4  # 10 frames at 20/s take about 0.5 s
    finally:
        server.assert_clean_exit(signal.SIGINT)


def test_sigterm_while_busy_exits_cleanly(tmp_path):
    """Streaming, stalled and delayed work in flight must not leak or crash at exit."""
    server = Fakex(tmp_path, "--rate", "0")  # as fast as the sockets take frames
    server.ctl("coinbase", "fault", {"ws_stall": True})
    server.ctl("binance", "fault", {"delay_ms": 60000})
    errors = []

    def delayed():
        try:
            session().get(f"{server.http}/binance/api/v3/exchangeInfo", timeout=WAIT)
        except requests.exceptions.RequestException as e:
            errors.append(e)

    th = threading.Thread(target=delayed)
    th.start()

    async def go():
        flood = await connect(f"{server.ws}/kraken", max_queue=4)
        await flood.send(kraken_subscribe("book"))
        await recv(flood)
        stalled = await connect(f"{server.ws}/coinbase")
        await stalled.send(json.dumps({"type": "subscribe", "channels": ["ticker"]}))
        url = await connect(f"{server.ws}/binance/stream?streams=a@bookTicker")
        await recv(url)
        server.ctl("kraken", "push", {"ws": "x" * 100000})
        deadline = time.monotonic() + WAIT
        while "GET /binance/api/v3/exchangeInfo" not in server.text():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        server.assert_clean_exit()
        for ws in (flood, stalled, url):
            ws.transport.abort()

    run(go())
    th.join(WAIT)
    assert not th.is_alive() and len(errors) == 1


def make_certs(tmp):
    subprocess.run([MAKE_CA, str(tmp)], check=True, capture_output=True, timeout=60)
    subprocess.run([MAKE_CA, str(tmp), "--name", "wrong", "wrong.example"], check=True,
                   capture_output=True, timeout=60)
    return tmp / "ca.pem"


def test_tls_verifies_with_ca_and_fails_for_wrong_host(tmp_path):
    ca = make_certs(tmp_path / "certs")
    good = Fakex(tmp_path, "--tls-cert", str(tmp_path / "certs" / "server.pem"),
                 "--tls-key", str(tmp_path / "certs" / "server.key"), scheme="https")
    good.verify = str(ca)
    try:
        r = HTTP.get(f"{good.http}/binance/api/v3/exchangeInfo", verify=str(ca), timeout=WAIT)
        assert r.status_code == 200
        assert r.content == (FIXTURES / "binance" / "rest_api_v3_exchangeInfo.json").read_bytes()
        r = HTTP.post(f"{good.http}/kucoin/api/v1/bullet-public", verify=str(ca), timeout=WAIT)
        assert r.json()["data"]["instanceServers"][0]["endpoint"].startswith("wss://127.0.0.1:")
        with pytest.raises(requests.exceptions.SSLError):
            # a fresh session: requests < 2.32 reuses pooled TLS connections across verify=
            session().get(f"{good.http}/_fakex/health", timeout=WAIT)  # system CAs only
        with pytest.raises(requests.exceptions.ConnectionError):
            HTTP.get(f"http://127.0.0.1:{good.port}/_fakex/health", timeout=WAIT)

        ctx = ssl.create_default_context(cafile=str(ca))

        async def go():
            async with connect(f"{good.ws}/kraken", ssl=ctx) as ws:
                await ws.send(kraken_subscribe())
                assert await recv(ws) == fixture_lines("kraken", "ws_ticker.jsonl")[0]

        run(go())
    finally:
        good.assert_clean_exit()

    wrong_dir = tmp_path / "wrong"
    wrong_dir.mkdir()
    wrong = Fakex(wrong_dir, "--tls-cert", str(tmp_path / "certs" / "wrong.pem"),
                  "--tls-key", str(tmp_path / "certs" / "wrong.key"), scheme="https")
    try:
        ctx = ssl.create_default_context(cafile=str(ca))
        with socket.create_connection(("127.0.0.1", wrong.port), timeout=WAIT) as raw:
            with pytest.raises(ssl.SSLCertVerificationError) as info:
                ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            assert "match" in str(info.value) or "mismatch" in str(info.value)
        # the same certificate is fine for the name it was made for
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.check_hostname = True
        with socket.create_connection(("127.0.0.1", wrong.port), timeout=WAIT) as raw:
            with ctx.wrap_socket(raw, server_hostname="wrong.example") as tls:
                tls.sendall(b"GET /_fakex/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert b"200 OK" in tls.recv(4096)
    finally:
        wrong.assert_clean_exit()


def test_bad_command_lines_fail_cleanly(tmp_path):
    for args in (["--fixtures", str(tmp_path)], ["--fixtures", str(FIXTURES), "--rate", "-1"],
                 ["--fixtures", str(FIXTURES), "--listen", "nonsense"], ["--bogus"],
                 ["--fixtures", str(FIXTURES), "--tls-cert", "/nonexistent.pem",
                  "--tls-key", "/nonexistent.key"]):
        p = subprocess.run([FAKEX_BIN, *args], capture_output=True, timeout=WAIT)
        assert p.returncode != 0, args
        assert b"Sanitizer" not in p.stderr, p.stderr
