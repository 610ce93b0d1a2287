"""Redis as the shared store (DESIGN 7), against real redis-servers of the
test's own: the layout read back with a Redis client, the warm start, x.kv
across restarts, removals and expiry, and what the service does when Redis
is killed, paused or misconfigured (it keeps serving from memory)."""
import json
import os
import shutil
import threading
import time

import pytest
import requests

from conftest import (FACTOR, SOURCE, fakex_control, operators_config, wait_until)

TICKER_KEYS = {"exchange", "pair", "symbol", "bid", "ask", "bid_size", "ask_size", "last",
               "volume", "mid", "spread_bps", "ts", "received", "age_ms", "stale", "source", "v"}
FAST_BINANCE = {"binance": {"poll_every": "0.1", "budget": "{ requests = 100000, per = 1 }"}}


def expected_bid(name):
    with open(os.path.join(SOURCE, "tests", "operators", f"{name}.expected.jsonl")) as f:
        rows = [json.loads(l) for l in f if l.strip() and not l.startswith("#")]
    return {r["pair"]: r for r in rows}


def get(svc, path, **params):
    r = requests.get(svc.url + path, params=params, headers=svc.auth(), timeout=10)
    r.raise_for_status()
    return r.json()


def store_health(svc):
    return get(svc, "/v1/exchanges")["store"]


def metric(svc, name):
    for line in requests.get(svc.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def hget_json(r, key, field):
    v = r.hget(key, field)
    return json.loads(v) if v else None


def start(make_service, url, **overrides):
    overrides.setdefault("operators", operators_config(fields=FAST_BINANCE))
    return make_service(store=f'"{url}"', **overrides)


def test_layout_is_written_through(make_service, redis_server):
    srv = redis_server()
    r = srv.client()
    events = r.pubsub()
    events.subscribe("rx:u")
    svc = start(make_service, srv.url())
    wait_until(lambda: r.hexists("rx:t:binance", "BTC_USDT") and
               r.hexists("rx:t:kraken", "BTC_USDT"), 60, "both exchanges in Redis")
    want = expected_bid("binance")["BTC_USDT"]
    t = hget_json(r, "rx:t:binance", "BTC_USDT")
    assert set(t) == TICKER_KEYS
    for k in ("symbol", "bid", "ask", "bid_size", "ask_size", "last", "volume"):
        assert t[k] == want[k], k  # the decimal text exactly as recorded
    assert t["exchange"] == "binance" and t["v"] >= 1
    assert 0 < r.pttl("rx:t:binance") <= 10 * 60000
    assert {"binance", "kraken"} <= r.smembers("rx:exchanges")
    wait_until(lambda: r.hexists("rx:s", "binance"), 10, "binance's status")
    status = hget_json(r, "rx:s", "binance")
    assert status["name"] == "binance" and status["node_id"] and status["state"]
    market = hget_json(r, "rx:m:binance", "BTCUSDT")
    assert market == {"exchange": "binance", "symbol": "BTCUSDT", "pair": "BTC_USDT"}
    # One typed event per batch on rx:u.
    deadline = time.monotonic() + 30 * FACTOR
    seen = None
    while time.monotonic() < deadline and not seen:
        m = events.get_message(timeout=1)
        if m and m["type"] == "message":
            e = json.loads(m["data"])
            if e["type"] == "ticker" and e["exchange"] == "binance":
                seen = e
    assert seen, "no ticker event on rx:u"
    assert set(seen) == {"type", "exchange", "node_id", "tickers"}
    assert seen["tickers"][0]["pair"] == "BTC_USDT"
    assert store_health(svc)["connected"] is True
    assert metric(svc, "rx_redis_connected") == 1


def test_warm_start_serves_old_data_as_stale(make_service, redis_server, fakex_url):
    srv = redis_server()
    r = srv.client()
    svc = start(make_service, srv.url(), stale_after_ms="1000")
    wait_until(lambda: r.hexists("rx:t:binance", "BTC_USDT"), 60, "binance in Redis")
    wait_until(lambda: r.hexists("rx:t:kraken", "BTC_USDT"), 60, "kraken in Redis")
    assert svc.stop() == 0
    before = hget_json(r, "rx:t:binance", "BTC_USDT")
    try:
        # The fake exchange goes silent: only the warm start can bring data.
        for ex in ("binance", "kraken"):
            fakex_control(fakex_url, ex, "fault", {"refuse": True})
        # Redis is busy for 2 s as the engine starts: /readyz must wait.
        sleeper = threading.Thread(target=lambda: srv.client().execute_command("DEBUG", "SLEEP",
                                                                               "2"))
        sleeper.start()
        time.sleep(0.1)
        svc2 = start(make_service, srv.url(), stale_after_ms="1000")
        assert requests.get(svc2.url + "/readyz", timeout=10).status_code == 503
        sleeper.join()
        wait_until(lambda: requests.get(svc2.url + "/readyz", timeout=10).status_code == 200,
                   30, "ready after the warm start")
        body = get(svc2, "/v1/rates/BTC_USDT")
        by = {t["exchange"]: t for t in body["exchanges"]}
        assert set(by) == {"binance", "kraken"}
        old = by["binance"]
        assert old["received"] == before["received"] and old["v"] == before["v"]
        assert old["bid"] == before["bid"] and old["stale"] is True
        assert "stale" in {e["reason"] for e in body["aggregate"]["excluded"]}
    finally:
        for ex in ("binance", "kraken"):
            fakex_control(fakex_url, ex, "reset")


def test_redis_killed_then_back(make_service, redis_server):
    srv = redis_server()
    svc = start(make_service, srv.url())
    r = srv.client()
    wait_until(lambda: r.hexists("rx:t:binance", "BTC_USDT"), 60, "binance in Redis")
    srv.kill()
    wait_until(lambda: store_health(svc)["connected"] is False, 20, "the loss to show")
    dropped = store_health(svc)["dropped"]
    for _ in range(10):
        h = store_health(svc)
        assert h["pending"] <= 2000, h  # nothing piles up while Redis is away
        assert requests.get(svc.url + "/healthz", timeout=10).status_code == 200
        time.sleep(0.2)
    assert store_health(svc)["dropped"] > dropped
    assert svc.proc.poll() is None
    assert "last_error" in store_health(svc) and store_health(svc)["last_error"]
    srv.start()  # the same port, empty: Redis lost everything
    wait_until(lambda: store_health(svc)["connected"] is True, 60, "the reconnect")
    wait_until(lambda: srv.client().hexists("rx:t:kraken", "BTC_USDT"), 30,
               "the rewrite of every exchange")
    mine = get(svc, "/v1/rates", pair="BTC_USDT", exchange="kraken")["rates"][0]["exchanges"][0]
    theirs = hget_json(srv.client(), "rx:t:kraken", "BTC_USDT")
    assert theirs["bid"] == mine["bid"] and theirs["v"] == mine["v"]
    assert store_health(svc)["reconnects"] >= 1


def test_redis_paused_deadlines_fire_and_the_loop_goes_on(make_service, redis_server):
    srv = redis_server()
    svc = start(make_service, srv.url())
    wait_until(lambda: store_health(svc)["connected"] is True and
               srv.client().hexists("rx:t:binance", "BTC_USDT"), 60, "writing")
    lag_before = metric(svc, 'rx_loop_lag_max_seconds{loop="ingest"}')
    sleeper = threading.Thread(target=lambda: srv.client().execute_command("DEBUG", "SLEEP", "8"))
    sleeper.start()
    t0 = time.monotonic()
    while sleeper.is_alive():
        assert requests.get(svc.url + "/v1/rates/BTC_USDT", headers=svc.auth(),
                            timeout=5).status_code == 200
        time.sleep(0.2)
    sleeper.join()
    assert time.monotonic() - t0 >= 7
    # The log, not last_error: a reconnect tried while Redis still slept
    # fails on the connect deadline and becomes the last error.
    wait_until(lambda: "writer: no reply within" in svc.log(), 20, "the command deadline")
    lag = metric(svc, 'rx_loop_lag_max_seconds{loop="ingest"}')
    assert lag < max(lag_before, 0.1) * 2, lag  # Redis waits never held the loop
    wait_until(lambda: store_health(svc)["connected"] is True, 30, "the reconnect")


def ops_copy(tmp_path, names, extra=None):
    d = tmp_path / "ops"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(os.path.join(SOURCE, "operators", "lib"), d / "lib")
    for n in names:
        shutil.copy(os.path.join(SOURCE, "operators", f"{n}.lua"), d)
    for n, text in (extra or {}).items():
        (d / f"{n}.lua").write_text(text)
    return d


def test_removed_exchange_leaves_redis(make_service, redis_server, tmp_path):
    srv = redis_server()
    r = srv.client()
    d = ops_copy(tmp_path, ["binance", "kraken"])
    start(make_service, srv.url(), operators_dir=f'"{d}"')
    wait_until(lambda: r.hexists("rx:t:kraken", "BTC_USDT") and
               r.exists("rx:m:kraken"), 60, "kraken in Redis")
    events = r.pubsub()
    events.subscribe("rx:u")
    os.remove(d / "kraken.lua")
    wait_until(lambda: not r.exists("rx:t:kraken") and "kraken" not in r.smembers("rx:exchanges")
               and not r.exists("rx:m:kraken") and not r.hexists("rx:s", "kraken"), 20,
               "kraken's keys to go")
    removed = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not removed:
        m = events.get_message(timeout=1)
        if m and m["type"] == "message" and json.loads(m["data"])["type"] == "removed":
            removed = json.loads(m["data"])
    assert removed and removed["exchange"] == "kraken"


def test_an_exchange_nobody_scrapes_expires(make_service, redis_server, tmp_path):
    srv = redis_server()
    r = srv.client()
    d = ops_copy(tmp_path, ["binance", "kraken"])
    # 10 x stale_after_ms = 3 s of life in Redis after the last write.
    svc = start(make_service, srv.url(), operators_dir=f'"{d}"', stale_after_ms="300")
    wait_until(lambda: r.hexists("rx:t:kraken", "BTC_USDT"), 60, "kraken in Redis")
    assert svc.stop() == 0
    d = ops_copy(tmp_path, ["binance"])
    svc2 = start(make_service, srv.url(), operators_dir=f'"{d}"', stale_after_ms="300")
    if r.exists("rx:t:kraken"):
        # Loaded, served as stale, never scraped.
        wait_until(lambda: requests.get(svc2.url + "/readyz", timeout=10).status_code == 200, 30,
                   "ready")
    wait_until(lambda: not r.exists("rx:t:kraken"), 10, "the Redis key to expire")
    wait_until(lambda: not get(svc2, "/v1/rates", exchange="kraken")["rates"], 20,
               "kraken to be dropped from memory")


# Emits 1 while the value was absent when this process first polled, 2 when
# it was already there: a restart that kept x.kv turns 1 into 2.
KV_OPERATOR = """local seen_at_start
return { name = "kvkeeper", spec = 1, poll_every = 0.2,
  poll = function(x)
    if seen_at_start == nil then
      seen_at_start = x.kv.get("seen") ~= nil
      x.kv.set("seen", "41")
    end
    x.emit{ base = "KV", quote = "TEST", bid = seen_at_start and "2" or "1", ask = "3" }
  end }
"""


def test_kv_survives_a_restart(make_service, redis_server, tmp_path):
    srv = redis_server()
    r = srv.client()
    d = ops_copy(tmp_path, [], {"kvkeeper": KV_OPERATOR})
    ops = operators_config(enabled=("kvkeeper",), fields={"kvkeeper": {"pairs": "{}"}})
    svc = start(make_service, srv.url(), operators_dir=f'"{d}"', operators=ops)
    wait_until(lambda: r.hget("rx:kv:kvkeeper", "seen") == "0:41", 30, "the kv in Redis")
    assert get(svc, "/v1/rates/KV_TEST")["exchanges"][0]["bid"] == "1"
    assert svc.stop() == 0
    svc2 = start(make_service, srv.url(), operators_dir=f'"{d}"', operators=ops)
    wait_until(lambda: get(svc2, "/v1/rates/KV_TEST")["exchanges"][0]["bid"] == "2", 30,
               "the new run to see the value kept in Redis")
    # Written behind, at the end of the loop pass: it follows at once.
    wait_until(lambda: hget_json(r, "rx:t:kvkeeper", "KV_TEST")["bid"] == "2", 10,
               "the new value in Redis")


@pytest.mark.parametrize("case", ["password", "db", "port", "name"])
def test_misconfigured_redis_keeps_serving_from_memory(make_service, redis_server, case):
    secret = "s3cret-redis-password"
    if case == "password":
        srv = redis_server(password="right-password-123")
        url = f"redis://:{secret}@127.0.0.1:{srv.port}/0"
        said = "AUTH refused"
    elif case == "db":
        srv = redis_server(password=secret)
        url = f"redis://:{secret}@127.0.0.1:{srv.port}/99"
        said = "SELECT refused"
    elif case == "port":
        srv = redis_server()
        port = srv.port
        srv.kill()
        url = f"redis://127.0.0.1:{port}/0"
        said = "cannot connect"
    else:
        url = "redis://rx-no-such-host.invalid:6379/0"
        said = "cannot resolve"
    svc = start(make_service, url)
    wait_until(lambda: said in (store_health(svc).get("last_error") or ""), 30, "the error")
    wait_until(lambda: requests.get(svc.url + "/v1/rates/BTC_USDT", headers=svc.auth(),
                                    timeout=10).status_code == 200, 60,
               "serving from memory")
    assert store_health(svc)["connected"] is False
    wait_until(lambda: requests.get(svc.url + "/readyz", timeout=10).status_code == 200, 60,
               "ready without Redis")
    assert said in svc.log()
    assert secret not in svc.log() and secret not in json.dumps(get(svc, "/v1/exchanges"))
