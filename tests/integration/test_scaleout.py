"""Scale-out on one Redis (DESIGN 7): scraper nodes that share the exchanges
by lease and api nodes that serve what they scrape, as real processes on
loopback with one real redis-server and a fake exchange of the test's own
(its connection counts are then this test's alone).

What is checked over time, not once: each exchange has at most one open
stream at the fake exchange and one lease holder; a killed holder is
replaced within one lease ttl; a paused holder that wakes after its ttl
writes nothing beside the new one (fencing) and stands by; api nodes push
what another node scraped, in order; a removal on a scraper reaches an api
node's subscribers; an api node restarted mid-feed resyncs without going
backwards; Redis restarted under the nodes: leases taken again, nothing
scraped twice for longer than a ttl.
"""
import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
import requests
import websockets

from conftest import BUILD, FACTOR, SOURCE, TOKEN, Pusher, operators_config, wait_until

TTL_MS = 2000
TTL = TTL_MS / 1000
EXCHANGES = ("binance", "kraken")
# Binance polls BTC_USDT fast, and the fake exchange's answer moves (a
# Pusher), so its versions keep growing; Kraken's stream loops its capture.
OPERATORS = operators_config(enabled=EXCHANGES, fields={
    "binance": {"poll_every": "0.1", "budget": "{ requests = 100000, per = 1 }"}})


class Fakex:
    """A fake exchange of the test's own, on a free port."""

    def __init__(self, workdir):
        port_file = workdir / "fakex.port"
        self.log = open(workdir / "fakex.log", "w")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "tests", "fakex", "fakex"), "--fixtures",
             os.path.join(SOURCE, "tests", "fixtures"), "--listen", "127.0.0.1:0",
             "--port-file", str(port_file)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: port_file.exists() and port_file.read_text().strip(), 10,
                   "the fake exchange's port")
        self.url = f"http://127.0.0.1:{int(port_file.read_text())}"

    def ws_open(self, exchange):
        return requests.get(f"{self.url}/_fakex/{exchange}/stats", timeout=10).json()["ws_open"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def fakex(tmp_path):
    fx = Fakex(tmp_path)
    with Pusher(fx.url):
        yield fx
    fx.stop()


class Cluster:
    """Nodes on one Redis: start(role, node_id) -> Service."""

    def __init__(self, make_service, redis_server, fakex, tmp_path):
        self.make_service = make_service
        self.srv = redis_server()
        self.r = self.srv.client()
        self.fakex = fakex
        self.ops = tmp_path / "operators"
        os.makedirs(self.ops / "lib")
        for f in os.listdir(os.path.join(SOURCE, "operators", "lib")):
            shutil.copy(os.path.join(SOURCE, "operators", "lib", f), self.ops / "lib")
        for name in EXCHANGES:
            shutil.copy(os.path.join(SOURCE, "operators", f"{name}.lua"), self.ops)
        self.nodes = {}

    def start(self, role, node_id):
        svc = self.make_service(
            store=f'"{self.srv.url()}"', role=f'"{role}"', node_id=f'"{node_id}"',
            lease_ttl_ms=str(TTL_MS), replay_url=f'"{self.fakex.url}"',
            # An api node needs no operators: give it none to find.
            operators_dir=f'"{self.ops if role != "api" else "/nonexistent"}"',
            operators=OPERATORS)
        svc.node_id = node_id
        self.nodes[node_id] = svc
        return svc

    def holder(self, exchange):
        return self.r.get(f"rx:lease:{exchange}")

    def holders(self):
        return {ex: self.holder(ex) for ex in EXCHANGES}


def get(svc, path):
    return requests.get(svc.url + path, headers=svc.auth(), timeout=10)


def rates(svc):
    """{exchange: ticker} of BTC_USDT on this node, {} before there is one."""
    r = get(svc, "/v1/rates/BTC_USDT")
    return {t["exchange"]: t for t in r.json()["exchanges"]} if r.status_code == 200 else {}


def state(svc, exchange):
    """The operator's state on a scraper node, from /metrics."""
    for line in requests.get(svc.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(f'rx_operator_state{{exchange="{exchange}"') and line.endswith(" 1"):
            return line.split('state="')[1].split('"')[0]
    return None


class Subscriber(threading.Thread):
    """A /v1/stream client subscribed to everything, keeping what it gets."""

    def __init__(self, svc):
        super().__init__(daemon=True)
        self.url = f"ws://127.0.0.1:{svc.port}/v1/stream?token={TOKEN}"
        self.messages = []
        self.lock = threading.Lock()
        self.stopping = False
        self.subscribed = threading.Event()
        self.start()

    def run(self):
        asyncio.run(self.main())

    async def main(self):
        async with websockets.connect(self.url, max_size=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "id": 1, "throttle_ms": 0}))
            while not self.stopping:
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                except asyncio.TimeoutError:
                    continue
                if msg.get("type") == "ack":
                    self.subscribed.set()
                with self.lock:
                    self.messages.append((time.monotonic(), msg))

    def stop(self):
        self.stopping = True
        self.join(timeout=10)

    def rates(self, exchange, since=0.0):
        with self.lock:
            return [m for t, m in self.messages
                    if t >= since and m.get("type") == "rate" and m.get("exchange") == exchange]

    def of_type(self, kind):
        with self.lock:
            return [m for _, m in self.messages if m.get("type") == kind]


def assert_in_order(rates_seen):
    """Per key, every push carries a larger v than the one before."""
    last = {}
    for m in rates_seen:
        key = (m["exchange"], m["pair"])
        assert m["v"] > last.get(key, 0), (key, m["v"], last.get(key))
        last[key] = m["v"]


def scraping_cluster(make_service, redis_server, fakex, tmp_path, api_nodes=2):
    c = Cluster(make_service, redis_server, fakex, tmp_path)
    c.start("scraper", "s1")
    c.start("scraper", "s2")
    for i in range(api_nodes):
        c.start("api", f"a{i + 1}")
    wait_until(lambda: all(h in ("s1", "s2") for h in c.holders().values()), 30,
               "a lease holder for every exchange")
    for i in range(api_nodes):
        api = c.nodes[f"a{i + 1}"]
        wait_until(lambda: requests.get(api.url + "/readyz", timeout=10).status_code == 200, 30,
                   f"a{i + 1} ready")
        wait_until(lambda: set(rates(api)) == set(EXCHANGES), 60,
                   f"a{i + 1} serving both exchanges")
    return c


def test_one_scraper_per_exchange_and_pushes_across_nodes(make_service, redis_server, fakex,
                                                         tmp_path):
    c = scraping_cluster(make_service, redis_server, fakex, tmp_path)
    subs = [Subscriber(c.nodes["a1"]), Subscriber(c.nodes["a2"])]
    for s in subs:
        assert s.subscribed.wait(30 * FACTOR)

    # Over time: one holder per exchange, never two streams to the exchange.
    first = c.holders()
    deadline = time.monotonic() + 4 * TTL
    while time.monotonic() < deadline:
        for ex in EXCHANGES:
            assert fakex.ws_open(ex) <= 1, f"{ex} streamed to by two nodes"
        assert c.holders() == first
        time.sleep(0.1)

    for ex, holder in first.items():
        other = "s2" if holder == "s1" else "s1"
        assert state(c.nodes[holder], ex) in ("streaming", "polling")
        assert state(c.nodes[other], ex) == "standby"
    # The statuses api nodes show are the scraping node's, with its id.
    listed = {e["name"]: e for e in get(c.nodes["a1"], "/v1/exchanges").json()["exchanges"]}
    for ex, holder in first.items():
        assert listed[ex]["node_id"] == holder and listed[ex]["state"] in ("streaming", "polling")

    # So are the markets, read from rx:m:{exchange}.
    markets = get(c.nodes["a1"], "/v1/markets").json()["markets"]
    assert {m["exchange"] for m in markets} == set(EXCHANGES)
    assert any(m["exchange"] == "binance" and m["pair"] == "BTC_USDT" and m["has_data"]
               for m in markets)

    # A scraper serves its health, readiness and metrics, and no rates.
    s1 = c.nodes["s1"]
    assert requests.get(s1.url + "/healthz", timeout=10).status_code == 200
    assert requests.get(s1.url + "/metrics", timeout=10).status_code == 200
    assert get(s1, "/v1/rates").status_code == 404

    # Both api nodes pushed what the scrapers scraped, in order.
    wait_until(lambda: all(s.rates(ex) for s in subs for ex in EXCHANGES), 30,
               "pushes of both exchanges on both api nodes")
    for s in subs:
        s.stop()
        assert_in_order(s.rates("binance") + s.rates("kraken"))


def test_killed_holder_is_replaced_within_a_ttl(make_service, redis_server, fakex, tmp_path):
    c = scraping_cluster(make_service, redis_server, fakex, tmp_path)
    subs = [Subscriber(c.nodes["a1"]), Subscriber(c.nodes["a2"])]
    for s in subs:
        assert s.subscribed.wait(30 * FACTOR)
    holder = c.holder("binance")
    other = "s2" if holder == "s1" else "s1"
    v_before = rates(c.nodes["a1"])["binance"]["v"]

    c.nodes[holder].proc.kill()
    killed = time.monotonic()
    wait_until(lambda: c.holder("binance") == other, TTL + 1, "the other scraper's lease")
    took = time.monotonic() - killed
    assert took <= (TTL + 1) * FACTOR, took

    # Data keeps flowing to REST and WebSocket clients of both api nodes.
    for api in ("a1", "a2"):
        wait_until(lambda: rates(c.nodes[api])["binance"]["v"] > v_before, 30,
                   f"new binance data on {api}")
    after = time.monotonic()
    wait_until(lambda: all(s.rates("binance", since=after) for s in subs), 30,
               "pushes from the new holder")
    for s in subs:
        s.stop()
        assert_in_order(s.rates("binance"))
    assert fakex.ws_open("binance") <= 1


def test_paused_holder_is_fenced_and_stands_by(make_service, redis_server, fakex, tmp_path):
    c = scraping_cluster(make_service, redis_server, fakex, tmp_path, api_nodes=1)
    holder = c.holder("binance")
    other = "s2" if holder == "s1" else "s1"
    pid = c.nodes[holder].proc.pid

    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: c.holder("binance") == other, TTL + 2, "the other scraper's lease")
        # The new holder writes for a while; the paused one is far past its ttl.
        time.sleep(TTL)
        events = c.r.pubsub()
        events.subscribe("rx:u")
        events.get_message(timeout=5)
    finally:
        os.kill(pid, signal.SIGCONT)
    woke = time.monotonic()
    seen = []
    while time.monotonic() < woke + 3 * TTL:
        m = events.get_message(timeout=0.2)
        if m and m["type"] == "message":
            seen.append(json.loads(m["data"]))
    from_old = [e for e in seen if e.get("node_id") == holder and e.get("exchange") == "binance"]
    assert not from_old, from_old[:3]
    assert any(e.get("node_id") == other and e.get("type") == "ticker" for e in seen)
    wait_until(lambda: state(c.nodes[holder], "binance") == "standby", 10,
               "the woken node standing by")
    assert c.holder("binance") == other
    assert fakex.ws_open("binance") <= 1


def test_api_node_restarted_mid_feed_resyncs(make_service, redis_server, fakex, tmp_path):
    c = scraping_cluster(make_service, redis_server, fakex, tmp_path)
    a2 = c.nodes["a2"]
    seen = rates(c.nodes["a1"])
    a2.stop()
    fresh = c.start("api", "a2")
    wait_until(lambda: requests.get(fresh.url + "/readyz", timeout=10).status_code == 200, 30,
               "the restarted node ready")
    now = rates(fresh)
    for ex in EXCHANGES:
        assert now[ex]["v"] >= seen[ex]["v"], ex  # never behind what was served before
    sub = Subscriber(fresh)
    assert sub.subscribed.wait(30 * FACTOR)
    wait_until(lambda: sub.rates("binance"), 30, "pushes on the restarted node")
    snapshot = {t["exchange"]: t["v"] for m in sub.of_type("snapshot") for t in m["rates"]
                if t["pair"] == "BTC_USDT"}
    sub.stop()
    assert_in_order(sub.rates("binance") + sub.rates("kraken"))
    for m in sub.rates("binance"):
        if m["pair"] == "BTC_USDT":
            assert m["v"] > snapshot["binance"]


def test_removal_reaches_subscribers_of_another_node(make_service, redis_server, fakex,
                                                     tmp_path):
    c = scraping_cluster(make_service, redis_server, fakex, tmp_path, api_nodes=1)
    sub = Subscriber(c.nodes["a1"])
    assert sub.subscribed.wait(30 * FACTOR)
    os.remove(c.ops / "kraken.lua")  # both scrapers share the directory
    wait_until(lambda: any(m["exchange"] == "kraken" for m in sub.of_type("removed")), 30,
               "the removal pushed on the api node")
    sub.stop()
    names = [e["name"] for e in get(c.nodes["a1"], "/v1/exchanges").json()["exchanges"]]
    assert "kraken" not in names and "binance" in names
    assert "kraken" not in rates(c.nodes["a1"])
    assert "kraken" not in c.r.smembers("rx:exchanges")
    wait_until(lambda: c.holder("kraken") is None, TTL + 1, "kraken's lease let go")


def test_redis_restarted_leases_taken_again(make_service, redis_server, fakex, tmp_path):
    c = scraping_cluster(make_service, redis_server, fakex, tmp_path, api_nodes=1)
    # How long each exchange has had two streams open, sampled as it goes.
    doubled = {ex: 0.0 for ex in EXCHANGES}
    longest = {ex: 0.0 for ex in EXCHANGES}

    def sample(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.monotonic()
            for ex in EXCHANGES:
                if fakex.ws_open(ex) > 1:
                    doubled[ex] = doubled[ex] or t
                    longest[ex] = max(longest[ex], t - doubled[ex])
                else:
                    doubled[ex] = 0.0
            time.sleep(0.05)

    c.srv.kill()
    sample(2 * TTL)
    c.srv.start()
    c.r = c.srv.client()
    wait_until(lambda: all(h in ("s1", "s2") for h in c.holders().values()), 30,
               "leases taken again")
    sample(3 * TTL)
    for ex in EXCHANGES:
        assert longest[ex] <= TTL, (ex, longest[ex])
        assert fakex.ws_open(ex) <= 1
    a1 = c.nodes["a1"]
    v = rates(a1)["binance"]["v"]
    wait_until(lambda: rates(a1)["binance"]["v"] > v, 30, "data flowing again on the api node")


def test_api_node_not_ready_before_its_first_load(make_service, redis_server, fakex,
                                                  tmp_path):
    c = Cluster(make_service, redis_server, fakex, tmp_path)
    c.srv.kill()  # Redis down before the api node ever reached it
    api = c.start("api", "a1")
    for _ in range(10):
        assert requests.get(api.url + "/healthz", timeout=10).status_code == 200
        assert requests.get(api.url + "/readyz", timeout=10).status_code == 503
        time.sleep(0.2)
    c.srv.start()
    wait_until(lambda: requests.get(api.url + "/readyz", timeout=10).status_code == 200, 30,
               "ready after the first load")
