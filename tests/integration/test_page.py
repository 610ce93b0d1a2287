"""The live page at GET / in a real browser: Debian's Chromium, driven by
playwright-core from tests/integration/page_test.js (node).

The page gets its token from #token=..., subscribes to /v1/stream and must
show Binance's BTC_USDT bid; a new price pushed to the fake exchange must
appear within 1 s; when Binance's REST answers 500 the cell must turn stale
(stale_after_ms 1500 for the service, so within a few seconds); when an
operator file is deleted and the operators reloaded, its column goes. A
screenshot is saved to tests/artifacts/page.png.

Binance polls every 0.2 s here. Its replayed bookTicker stream carries other
symbols only, so BTC_USDT's quote comes from REST /api/v3/ticker/bookTicker,
which the test overrides through the fake exchange's control API.

Python and node talk over the node process's stdin/stdout, one JSON object a
line (page_test.js documents the commands); every wait on either side has a
timeout. Skips when node, chromium or playwright-core is missing
(scripts/test installs them).
"""
import json
import os
import queue
import shutil
import subprocess
import threading
import time

import pytest
import requests

from conftest import ADMIN_TOKEN, FACTOR, SOURCE, fakex_control, operators_config, wait_until

CHROMIUM = os.environ.get("RX_CHROMIUM", "/usr/bin/chromium")
PLAYWRIGHT = os.environ.get("RX_PLAYWRIGHT_CORE",
                            os.path.join(SOURCE, ".tools/node_modules/playwright-core"))
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page_test.js")
SCREENSHOT = os.path.join(SOURCE, "tests/artifacts/page.png")

OPERATORS = operators_config(fields={
    "binance": {"poll_every": "0.2", "budget": "{ requests = 100000, per = 1 }"},
    "kraken": {"stale_after_ms": "600000"},
})

BOOK_TICKER = {"method": "GET", "path": "/api/v3/ticker/bookTicker", "query": "symbol=BTCUSDT"}


def tools_or_skip():
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed (scripts/test installs nodejs)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    major = int(version.lstrip("v").split(".")[0]) if version[1:2].isdigit() else 0
    if major < 20:
        pytest.skip(f"node {version or '?'} is too old for playwright-core (needs 20 or later)")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium; scripts/test installs it)")
    if not os.path.isfile(os.path.join(PLAYWRIGHT, "package.json")):
        pytest.skip(f"playwright-core is not installed in {PLAYWRIGHT} "
                    "(scripts/test installs it into .tools/)")
    return node


class Browser:
    """page_test.js as a child process: commands in, answers out."""

    def __init__(self, node, url, log_path):
        self.log_path = log_path
        self.stderr = open(log_path, "w")
        self.proc = subprocess.Popen(
            [node, SCRIPT, "--url", url, "--chromium", CHROMIUM, "--playwright", PLAYWRIGHT,
             "--ready-timeout-ms", str(int(60000 * FACTOR))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    def next(self, seconds):
        """The next answer, waiting at most seconds (scaled)."""
        try:
            line = self.lines.get(timeout=seconds * FACTOR)
        except queue.Empty:
            raise AssertionError(f"page_test.js said nothing for {seconds * FACTOR} s; "
                                 f"stderr:\n{self.log()}") from None
        if line is None:
            raise AssertionError(f"page_test.js exited ({self.proc.wait(10)}); "
                                 f"stderr:\n{self.log()}")
        return json.loads(line)

    def call(self, seconds, **cmd):
        """Sends one command; returns its answer, which must be ok. The
        command's own timeout (timeout_ms) is seconds, the answer may take
        a little longer."""
        cmd.setdefault("timeout_ms", int(seconds * FACTOR * 1000))
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        answer = self.next(seconds + 10)
        assert answer.get("ok"), answer
        return answer

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd":"quit"}\n')
                self.proc.stdin.flush()
                self.proc.stdin.close()
                self.proc.wait(30 * FACTOR)
            except (OSError, subprocess.TimeoutExpired):
                # SIGTERM lets Playwright close Chromium; SIGKILL if even that hangs.
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        self.stderr.close()


def btc_tickers(service):
    r = requests.get(service.url + "/v1/rates", params={"pair": "BTC_USDT"},
                     headers=service.auth(), timeout=10)
    if r.status_code != 200:
        return {}
    return {t["exchange"]: t for p in r.json()["rates"] for t in p["exchanges"]}


def push_book_ticker(fakex_url, bid, ask):
    body = {"symbol": "BTCUSDT", "bidPrice": bid, "bidQty": "0.50000000",
            "askPrice": ask, "askQty": "0.25000000"}
    fakex_control(fakex_url, "binance", "push", {"rest": dict(BOOK_TICKER, body=body)})


@pytest.fixture
def fakex_clean(fakex_url):
    for ex in ("binance", "kraken"):
        fakex_control(fakex_url, ex, "reset")
    yield fakex_url
    for ex in ("binance", "kraken"):
        fakex_control(fakex_url, ex, "reset")


def test_live_page(make_service, fakex_clean, tmp_path):
    node = tools_or_skip()
    # Operators from a directory of our own, so one can be deleted below.
    ops_dir = tmp_path / "operators"
    ops_dir.mkdir()
    for name in ("binance", "kraken"):
        shutil.copy(os.path.join(SOURCE, "operators", f"{name}.lua"), ops_dir)
    if os.path.isdir(os.path.join(SOURCE, "operators", "lib")):  # what require() reaches
        shutil.copytree(os.path.join(SOURCE, "operators", "lib"), ops_dir / "lib")
    service = make_service(operators=OPERATORS, operators_dir=f'"{ops_dir}"',
                           stale_after_ms="1500")
    wait_until(lambda: {"binance", "kraken"} <= set(btc_tickers(service)), 60,
               "BTC_USDT from binance and kraken")
    first_bid = btc_tickers(service)["binance"]["bid"]
    assert first_bid == "6621.55000000"  # the recorded bookTicker

    browser = Browser(node, f"{service.url}/#token={service.token}", tmp_path / "node.log")
    try:
        ready = browser.next(90)
        assert ready.get("event") == "ready", ready
        # The token left the address bar and stays in this tab's storage.
        assert "token" not in ready["location"], ready["location"]
        assert ready["stored_token"] == service.token
        cell = browser.call(30, cmd="wait_bid", exchange="binance", pair="BTC_USDT",
                            text="6621.55")["cell"]
        assert cell["ask"] == "6622.10" and cell["mid"] == "mid 6621.825", cell
        assert not cell["stale"] and cell["flag"] == "", cell
        assert cell["age"].endswith(" s"), cell
        browser.call(30, cmd="wait_bid", exchange="kraken", pair="BTC_USDT", text="105944.20")
        browser.call(30, cmd="wait_status", exchange="binance", states=["polling", "streaming"])

        # A new price reaches the page within a second.
        t0 = time.monotonic()
        push_book_ticker(fakex_clean, "7123.45000000", "7124.55000000")
        answer = browser.call(10, cmd="wait_bid", exchange="binance", pair="BTC_USDT",
                              text="7123.45")
        elapsed = time.monotonic() - t0
        print(f"new price shown after {elapsed:.3f} s")
        assert elapsed <= 1.0 * FACTOR, f"the new price took {elapsed:.3f} s to show"
        cell = answer["cell"]
        assert cell["ask"] == "7124.55" and cell["mid"] == "mid 7124", cell
        assert not cell["stale"], cell

        # Binance's REST fails from now on: no new data, so after
        # stale_after_ms (1.5 s) the cell must say stale, and the status bar
        # shows the trouble.
        t1 = time.monotonic()
        fakex_control(fakex_clean, "binance", "fault", {"status": 500})
        answer = browser.call(15, cmd="wait_stale", exchange="binance", pair="BTC_USDT")
        stale_after = time.monotonic() - t1
        print(f"stale mark shown {stale_after:.3f} s after the fault")
        # Not before the data was 1.5 s old (the last good poll was at most
        # one poll interval, 0.2 s, before the fault) ...
        assert stale_after >= 1.2, f"marked stale after only {stale_after:.3f} s"
        # ... and soon after (the page re-asks within about a second).
        assert stale_after <= 6 * FACTOR, f"marked stale only after {stale_after:.3f} s"
        cell = answer["cell"]
        assert cell["flag"] == "stale" and cell["bid"] == "7123.45", cell
        state = browser.call(15, cmd="wait_status", exchange="binance",
                             states=["degraded", "error"])["state"]
        assert state in ("degraded", "error")
        kraken = browser.call(10, cmd="cell", exchange="kraken", pair="BTC_USDT")["cell"]
        assert kraken and not kraken["stale"], kraken
        assert btc_tickers(service)["binance"]["stale"] is True

        browser.call(30, cmd="screenshot", path=SCREENSHOT)
        with open(SCREENSHOT, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"

        # An operator whose file is deleted is removed: its column goes.
        os.unlink(ops_dir / "kraken.lua")
        r = requests.post(service.url + "/v1/admin/reload",
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
        assert r.status_code == 200, r.text
        answer = browser.call(30, cmd="wait_gone", exchange="kraken")
        assert answer["columns"] == ["binance"], answer

        browser.proc.stdin.write('{"cmd":"quit"}\n')
        browser.proc.stdin.flush()
        bye = browser.next(30)
        # No script error, no CSP violation, no failed request.
        assert bye.get("problems") == [], bye
    finally:
        browser.close()
    assert service.token not in service.log()
