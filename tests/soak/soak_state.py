"""Shared state of the soak's threads, and the two services' HTTP APIs
as the soak uses them (tests/soak/soak.py has the design)."""
import threading
import time

import requests

HTTP_TIMEOUT_S = 10


class Soak:
    """What the threads share: the clock, the stop flag, counters and failures
    (all under one lock)."""

    def __init__(self, args):
        self.args = args
        self.url = args.url
        self.ws_url = "ws" + args.url[len("http"):]
        self.auth = {"Authorization": f"Bearer {args.token}"}
        self.t0 = time.monotonic()
        self.end = self.t0 + args.minutes * 60
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []
        self.latencies = []          # (t, seconds) of successful REST requests
        self.faulted = set()         # exchanges under a fault now
        self.reloading = set()       # exchanges with an edit being checked
        self.pairs = []
        self.exchanges = []

    def now(self):
        return time.monotonic() - self.t0

    def count(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def get(self, key):
        with self.lock:
            return self.counts.get(key, 0)

    def fail(self, kind, detail):
        with self.lock:
            self.failures.append((self.now(), kind, detail))
        print(f"  [{self.now():7.1f}s] FAIL {kind}: {detail}", flush=True)

    def note(self, text):
        print(f"  [{self.now():7.1f}s] {text}", flush=True)

    def sleep(self, seconds):
        """Sleeps up to seconds; False if the soak is stopping."""
        return not self.stop.wait(max(0.0, seconds))

    def metrics(self):
        r = requests.get(self.url + "/metrics", timeout=HTTP_TIMEOUT_S)
        r.raise_for_status()
        return parse_metrics(r.text)

    def exchanges_status(self):
        r = requests.get(self.url + "/v1/exchanges", headers=self.auth, timeout=HTTP_TIMEOUT_S)
        r.raise_for_status()
        return {e["name"]: e for e in r.json()["exchanges"]}


def parse_metrics(text):
    """Prometheus text -> {"name{labels}": value}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def metric_sum(m, name):
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))


def fakex(soak, exchange, action, body=None, method="POST"):
    """One call to the fake exchange's control API; a refusal is the
    harness's failure, and is recorded as one."""
    url = f"{soak.args.fakex_url}/_fakex/{exchange}/{action}"
    try:
        r = requests.request(method, url, json=body, timeout=HTTP_TIMEOUT_S)
        if r.status_code != 200:
            soak.fail("harness", f"fakex {action} {exchange}: {r.status_code} {r.text[:200]}")
            return None
        return r.json()
    except requests.RequestException as e:
        soak.fail("harness", f"fakex {action} {exchange}: {e}")
        return None
