"""Shared fixtures: the real binary, started with a generated config against
the fake exchange that scripts/test started (FAKEX_URL)."""
import os
import subprocess
import time

import pytest

BUILD = os.environ.get("RX_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build-asan"))
SOURCE = os.environ.get("RX_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
FACTOR = float(os.environ.get("TEST_TIME_FACTOR", "1"))


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


class Service:
    def __init__(self, proc, log_path):
        self.proc = proc
        self.log_path = log_path

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


@pytest.fixture
def service(tmp_path, explorer_bin, fakex_url):
    """explorer with config/replay.lua and a private copy of operators/."""
    log_path = tmp_path / "explorer.log"
    env = dict(os.environ, FAKEX_URL=fakex_url, LISTEN="127.0.0.1:0",
               PORT_FILE=str(tmp_path / "port"))
    with open(log_path, "w") as log:
        proc = subprocess.Popen([explorer_bin, "--config", os.path.join(SOURCE, "config/replay.lua")],
                                cwd=SOURCE, env=env, stdout=log, stderr=subprocess.STDOUT)
    svc = Service(proc, log_path)
    yield svc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30 * FACTOR)
