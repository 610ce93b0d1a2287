"""Shared fixtures: the real binary, started with a generated config against
the fake exchange that scripts/test started (FAKEX_URL).

`service` starts explorer on a free port with the replay operators and
tokens; `make_service(**overrides)` starts one with extra top-level config
fields (Lua source text per key), for tests that need other settings.
"""
import os
import subprocess
import threading
import time

import pytest

BUILD = os.environ.get("RX_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build-asan"))
SOURCE = os.path.abspath(os.environ.get("RX_SOURCE_DIR",
                                        os.path.join(os.path.dirname(__file__), "../..")))
FACTOR = float(os.environ.get("TEST_TIME_FACTOR", "1"))
TOKEN = "test-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"


def wait_until(predicate, seconds, what):
    """Polls predicate until it holds or seconds (scaled) pass."""
    deadline = time.monotonic() + seconds * FACTOR
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def explorer_bin():
    path = os.path.join(BUILD, "engine", "explorer")
    assert os.access(path, os.X_OK), f"build first: {path}"
    return path


@pytest.fixture
def fakex_url():
    url = os.environ.get("FAKEX_URL")
    if not url:
        pytest.skip("FAKEX_URL not set: run through scripts/test")
    return url


def fakex_control(fakex_url, exchange, action, body=None):
    """POST (or GET for stats) to the fake exchange's control API."""
    import json
    import urllib.request
    url = f"{fakex_url}/_fakex/{exchange}/{action}"
    data = None if body is None else json.dumps(body).encode()
    method = "GET" if action == "stats" else "POST"
    req = urllib.request.Request(url, data=data if method == "POST" else None, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


class Service:
    def __init__(self, proc, log_path, port_file):
        self.proc = proc
        self.log_path = log_path
        self.port_file = port_file
        self.token = TOKEN
        self.admin_token = ADMIN_TOKEN
        self.port = None

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def auth(self, token=None):
        return {"Authorization": f"Bearer {token or self.token}"}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            return self.proc.wait(timeout=60 * FACTOR)
        return self.proc.returncode


def operator_names():
    """Every operator file in operators/ (found, never listed by hand)."""
    return sorted(f[:-4] for f in os.listdir(os.path.join(SOURCE, "operators"))
                  if f.endswith(".lua"))


# The operators a default test service runs: BTC_USDT then has exactly two
# sources. Every other operator file is configured too, disabled: none may
# run with its real exchange host (replay_url points them all at the fake
# exchange anyway).
DEFAULT_OPERATORS = ("binance", "kraken")


def operators_config(enabled=DEFAULT_OPERATORS, fields=None):
    """`operators = {...}`: `enabled` run (with `fields[name]`, Lua source
    per key; default the replay allow-list BTC_USDT), the others disabled."""
    fields = fields or {}
    rows = []
    for name in sorted(set(operator_names()) | set(enabled) | set(fields)):
        if name in enabled:
            f = {"pairs": '{ "BTC_USDT" }'}
            f.update(fields.get(name, {}))
        else:
            f = {"enabled": "false"}
        rows.append(f"    {name} = {{ " + ", ".join(f"{k} = {v}" for k, v in f.items()) + " },")
    return "{\n" + "\n".join(rows) + "\n  }"


def _config_text(fakex_url, tmp_path, overrides):
    fields = {
        "listen": '"127.0.0.1:0"',
        "port_file": f'"{tmp_path}/port"',
        "tokens": f'{{ "{TOKEN}" }}',
        "admin_tokens": f'{{ "{ADMIN_TOKEN}" }}',
        "operators_dir": f'"{SOURCE}/operators"',
        "replay_url": f'"{fakex_url}"',
        "log_level": '"debug"',
    }
    fields.update(overrides)
    if "operators" not in fields:
        fields["operators"] = operators_config()
    body = ",\n".join(f"  {k} = {v}" for k, v in fields.items())
    return f"return {{\n{body}\n}}\n"


@pytest.fixture
def make_service(tmp_path, explorer_bin, fakex_url):
    started = []

    def start(wait_port=True, **overrides):
        n = len(started)
        work = tmp_path / f"svc{n}"
        work.mkdir()
        cfg = work / "explorer.lua"
        cfg.write_text(_config_text(fakex_url, work, overrides))
        log_path = work / "explorer.log"
        env = {k: v for k, v in os.environ.items() if k not in ("API_AUTHENTICATION_TOKEN", "PORT")}
        with open(log_path, "w") as log:
            proc = subprocess.Popen([explorer_bin, "--config", str(cfg)], cwd=SOURCE, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
        svc = Service(proc, log_path, work / "port")
        started.append(svc)
        if wait_port:
            wait_until(lambda: svc.port_file.exists() and svc.port_file.read_text().strip()
                       or proc.poll() is not None, 20, "the port file")
            assert proc.poll() is None, svc.log()
            svc.port = int(svc.port_file.read_text())
        return svc

    yield start
    for svc in started:
        svc.stop()


@pytest.fixture
def service(make_service):
    return make_service()


class RedisServer:
    """A private redis-server on a free loopback port: its own directory, no
    persistence, DEBUG allowed (tests pause it with DEBUG SLEEP)."""

    def __init__(self, workdir, password=None):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.dir = workdir
        self.password = password
        self.proc = None

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "", "--appendonly", "no",
                "--enable-debug-command", "yes"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.pingable, 10, "redis-server to start")
        return self

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           decode_responses=True, socket_timeout=10)

    def pingable(self):
        try:
            return self.client().ping()
        except Exception:
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def url(self, db=0):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"


@pytest.fixture
def redis_server(tmp_path):
    """make(password=None) -> a started RedisServer, killed after the test."""
    started = []

    def make(password=None):
        d = tmp_path / f"redis{len(started)}"
        d.mkdir()
        srv = RedisServer(d, password).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.kill()


class Pusher:
    """Moves Binance's BTC_USDT on a fake exchange: a new lastPrice in the
    answer to /api/v3/ticker/24hr?symbol=BTCUSDT every `every` seconds,
    from a thread, which a fast-polling binance (poll_every 0.1) picks up.
    Use as a context manager; push() sets one price by hand."""

    def __init__(self, fakex_url, every=0.05, start=7000.0):
        self.fakex_url = fakex_url
        self.every = every
        self.price = start
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def push(self, last):
        body = {"askPrice": "99999.00000000", "askQty": "1.00000000",
                "bidPrice": "1.00000000", "bidQty": "1.00000000", "closeTime": 1586991278494,
                "lastPrice": f"{last:.2f}", "symbol": "BTCUSDT", "volume": "57857.49485700"}
        fakex_control(self.fakex_url, "binance", "push", {"rest": {
            "method": "GET", "path": "/api/v3/ticker/24hr", "query": "symbol=BTCUSDT",
            "body": body}})

    def loop(self):
        while not self.stop.is_set():
            self.price += 1
            try:
                self.push(self.price)
            except Exception:  # noqa: BLE001 - the test's own asserts decide
                pass
            self.stop.wait(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
