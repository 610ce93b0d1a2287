"""The real binary on recorded data: it loads every operator, they poll the
fake exchange, and SIGTERM ends it cleanly with exit 0 (ASan reports leaks
at exit, so a clean exit also means no leak)."""
import json
import os
import signal
import subprocess

import pytest

from conftest import SOURCE, wait_until


def test_version(explorer_bin):
    out = subprocess.run([explorer_bin, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("explorer ")


def test_check_config_redacts_tokens(explorer_bin):
    env = dict(os.environ, API_AUTHENTICATION_TOKEN="sekrit-token-value")
    out = subprocess.run([explorer_bin, "--config", os.path.join(SOURCE, "config/replay.lua"),
                          "--check-config"], capture_output=True, text=True, env=env, check=True)
    assert "operators_dir" in out.stdout
    assert "sekrit-token-value" not in out.stdout


def test_bad_config_fails_with_key(explorer_bin, tmp_path):
    bad = tmp_path / "bad.lua"
    bad.write_text("return { stale_after_mss = 5 }\n")
    out = subprocess.run([explorer_bin, "--config", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "stale_after_mss" in out.stderr and "did you mean" in out.stderr


def test_service_polls_and_stops_cleanly(make_service):
    service = make_service(wait_port=False)
    wait_until(lambda: "binance: loaded" in service.log() and "kraken: loaded" in service.log(),
               20, "both operators to load")
    assert "open-file limit" in service.log()
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(timeout=60) == 0
    assert "stopped" in service.log()
    assert "ERROR: AddressSanitizer" not in service.log()


def test_operator_run_replays_recordings(explorer_bin):
    out = subprocess.run([explorer_bin, "operator", "run", "operators/kraken.lua", "--replay",
                          "tests/fixtures/kraken", "--pairs", "BTC_USDT", "--seconds", "30"],
                         cwd=SOURCE, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    assert [(t["pair"], t["source"]) for t in lines] == [("BTC_USDT", "poll")]
    assert "kraken: 1 tickers stored (0 from streams, 1 from poll)" in out.stderr
    # The stream ran too: its pairs are outside the allow-list.
    assert "stream frames: 60 received" in out.stderr
    assert "outside the pairs list: 18" in out.stderr


def test_operator_run_streams_until_the_captures_end(explorer_bin):
    out = subprocess.run([explorer_bin, "operator", "run", "operators/coinbase.lua", "--replay",
                          "tests/fixtures/coinbase", "--no-poll", "--seconds", "60"],
                         cwd=SOURCE, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    tickers = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    assert tickers and all(t["source"] == "stream" for t in tickers)
    assert "--seconds" not in out.stderr  # ended with the captures, not the clock
    assert "stream frames: 110 received" in out.stderr


@pytest.mark.parametrize("args,message", [
    (["--seconds", "abc"], "--seconds: 'abc' is not a number"),
    (["--seconds", "-1"], "--seconds: '-1' is not a number"),
    (["--bogus"], "unknown argument '--bogus'"),
    (["--replay"], "--replay needs a value"),
    ([], "run needs --replay DIR"),
])
def test_operator_run_names_bad_arguments(explorer_bin, args, message):
    out = subprocess.run([explorer_bin, "operator", "run", "operators/kraken.lua", *args],
                         cwd=SOURCE, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert message in out.stderr and "usage:" in out.stderr


def test_operator_run_leaves_no_fake_exchange_behind(explorer_bin, tmp_path):
    """A run killed outright takes its private fake exchange with it."""
    op = tmp_path / "kraken.lua"
    op.write_text("return { name = 'kraken', spec = 1, ws = 'wss://ws.kraken.com',\n"
                  "  stream = { connections = function(x) return { { url = x.op.ws } } end,\n"
                  "             on_message = function(x, ws, msg) end } }\n")
    run = subprocess.Popen([explorer_bin, "operator", "run", str(op), "--replay",
                            os.path.join(SOURCE, "tests/fixtures/kraken"), "--seconds", "120"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = f"/proc/{run.pid}/task/{run.pid}/children"
    wait_until(lambda: open(children).read().split(), 20, "the private fake exchange")
    fakex = int(open(children).read().split()[0])
    run.kill()
    run.wait(timeout=30)
    wait_until(lambda: not os.path.exists(f"/proc/{fakex}") or
               open(f"/proc/{fakex}/stat").read().split()[2] == "Z", 10,
               "the fake exchange to exit")


def test_operator_check_reports_line(explorer_bin, tmp_path):
    bad = tmp_path / "oops.lua"
    bad.write_text("return {\n  name = 'oops', spec = 1,\n  poll = function(x) end\n  oops\n}\n")
    out = subprocess.run([explorer_bin, "operator", "check", str(bad)], capture_output=True,
                         text=True)
    assert out.returncode == 1
    assert "oops.lua:4" in out.stderr


def test_unbuilt_store_and_roles_refuse_to_start(explorer_bin, tmp_path):
    """A config must not promise what the binary does not do."""
    for key, value, word in [("store", '"redis://127.0.0.1:6379/0"', "store"),
                             ("role", '"api"', "role")]:
        cfg = tmp_path / f"{key}.lua"
        extra = 'store = "redis://127.0.0.1:6379/0", ' if key == "role" else ""
        cfg.write_text(f'return {{ {extra}{key} = {value}, listen = "127.0.0.1:0", '
                       f'tokens = {{ "test-token-0123456789" }} }}\n')
        out = subprocess.run([explorer_bin, "--config", str(cfg)], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 1, out.stderr
        assert "not built yet" in out.stderr and word in out.stderr, out.stderr
