"""The real binary on recorded data: it loads every operator, they poll the
fake exchange, and SIGTERM ends it cleanly with exit 0 (ASan reports leaks
at exit, so a clean exit also means no leak)."""
import json
import os
import re
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
    op.write_text("return { name = 'kraken', spec = 1, ws = 'ws://127.0.0.1:9',\n"
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


@pytest.mark.parametrize("role", ["api", "scraper"])
def test_split_roles_need_redis(explorer_bin, tmp_path, role):
    """An api or scraper node shares its work through Redis: without a
    Redis store it refuses to start, and says why."""
    cfg = tmp_path / "role.lua"
    cfg.write_text(f'return {{ role = "{role}", listen = "127.0.0.1:0", '
                   'tokens = { "test-token-0123456789" } }\n')
    out = subprocess.run([explorer_bin, "--config", str(cfg)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1, out.stderr
    assert "role" in out.stderr and "redis" in out.stderr.lower(), out.stderr


def _author_tree(tmp_path):
    """A folder laid out like the repository for the author's commands:
    operators/lib copied, nothing else."""
    import shutil
    shutil.copytree(os.path.join(SOURCE, "operators", "lib"), tmp_path / "operators" / "lib")
    return tmp_path


def test_operator_new_writes_a_working_skeleton_and_never_overwrites(explorer_bin, tmp_path):
    root = _author_tree(tmp_path)
    new = [explorer_bin, "operator", "new", "acme", "--rest", "http://127.0.0.1:9/acme",
           "--ws", "ws://127.0.0.1:9/acme"]
    out = subprocess.run(new, cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    skeleton = (root / "operators" / "acme.lua").read_text()
    assert 'rest = "http://127.0.0.1:9/acme"' in skeleton
    for part in ("markets = load_markets", "poll = poll", "on_message = on_message",
                 'require "market"'):
        assert part in skeleton
    manifest = json.loads((root / "tests" / "fixtures" / "acme" / "manifest.json").read_text())
    assert manifest["rest_base"] == ["http://127.0.0.1:9/acme"] and manifest["ws"] == []
    assert (root / "tests" / "operators" / "acme.expected.jsonl").read_text() == (
        "# explorer operator run operators/acme.lua --replay tests/fixtures/acme --stored\n")
    check = subprocess.run([explorer_bin, "operator", "check", "operators/acme.lua"], cwd=root,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr

    (root / "operators" / "acme.lua").write_text("-- mine\n")
    again = subprocess.run(new, cwd=root, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1
    assert "operators/acme.lua exists; nothing was written" in again.stderr
    assert (root / "operators" / "acme.lua").read_text() == "-- mine\n"

    for args, says in ((["Bad!"], "'Bad!' is not an exchange name"),
                       (["ok", "--rest", "ftp://x"], "--rest 'ftp://x' is not an http"),
                       (["ok", "--ws", 'ws://a"b'], "is not a ws:// or wss:// URL"),
                       (["ok", "--ws"], "--ws needs a value"),
                       (["ok", "--bogus"], "unknown argument '--bogus'")):
        bad = subprocess.run([explorer_bin, "operator", "new", *args], cwd=root,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and says in bad.stderr, bad.stderr
    assert not (root / "operators" / "ok.lua").exists()


def _pointed_at(fakex_url, root, name):
    """operators/<name>.lua with its rest and ws pointed at the fake exchange."""
    text = open(os.path.join(SOURCE, "operators", f"{name}.lua")).read()
    ws_url = fakex_url.replace("http://", "ws://")
    text = re.sub(r'\n  rest = "[^"]*"', f'\n  rest = "{fakex_url}/{name}"', text)
    text = re.sub(r'\n  ws = "[^"]*"', f'\n  ws = "{ws_url}/{name}"', text)
    (root / "operators" / f"{name}.lua").write_text(text)


def test_operator_record_from_the_fake_exchange_replays_the_same_tickers(explorer_bin,
                                                                         fakex_url, tmp_path):
    # Coinbase without an allow-list: markets from REST, ten pairs from the
    # stream; its per-product REST tickers are not in the fake exchange
    # (404), so they are counted, not recorded, and fail alike on replay.
    root = _author_tree(tmp_path)
    _pointed_at(fakex_url, root, "coinbase")
    rec = subprocess.run([explorer_bin, "operator", "record", "operators/coinbase.lua", "--out",
                          "rec/coinbase", "--seconds", "3"], cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert rec.returncode == 0, rec.stderr
    assert "coinbase: recorded 1 REST answers and " in rec.stderr, rec.stderr
    assert "not recorded: 10 failed or non-2xx HTTP answers" in rec.stderr
    folder = root / "rec" / "coinbase"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [(e["path"], e["file"]) for e in manifest["rest"]] == [("/products",
                                                                   "rest_products.json")]
    assert (folder / "rest_products.json").read_bytes() == open(
        os.path.join(SOURCE, "tests/fixtures/coinbase/rest_products.json"), "rb").read()
    [ws] = manifest["ws"]
    assert ws["lines"] > 10 and '"type":"subscribe"' in ws["subscribe"][0]
    assert len((folder / ws["file"]).read_text().splitlines()) == ws["lines"]
    recorded = rec.stdout.splitlines()
    assert len(recorded) == 10

    run = subprocess.run([explorer_bin, "operator", "run", "operators/coinbase.lua", "--replay",
                          "rec/coinbase", "--stored", "--seconds", "60"], cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert "from streams, 0 from poll), 10 pairs" in run.stderr, run.stderr
    assert run.stdout.splitlines() == recorded


def test_operator_record_names_bad_arguments(explorer_bin, tmp_path):
    for args, says in ((["--out"], "--out needs a value"),
                       ([], "record needs --out DIR"),
                       (["--out", "d", "--seconds", "abc"], "--seconds: 'abc' is not a number"),
                       (["--out", "d", "--nope"], "unknown argument '--nope'")):
        out = subprocess.run([explorer_bin, "operator", "record", "operators/kraken.lua", *args],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and says in out.stderr, out.stderr
    missing = subprocess.run([explorer_bin, "operator", "record", "nowhere/x.lua", "--out",
                              str(tmp_path / "o"), "--seconds", "1"], capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 2 and "nowhere/x.lua" in missing.stderr


def test_walkthrough(explorer_bin, make_service, tmp_path):
    """Runs every command of docs/operators.md "From scratch", in order, in a
    folder laid out like the repository (the Coinbase fixtures, the data
    test's harness), with the operator file written from the guide's Lua
    block, against a service that only has operators/lib."""
    import shutil
    guide = open(os.path.join(SOURCE, "docs", "operators.md")).read()
    blocks = re.findall(r"```(sh|lua)\n(.*?)```", guide[guide.index("## From scratch"):], re.S)
    assert [kind for kind, _ in blocks] == ["sh", "lua", "sh", "sh", "sh"]
    root = _author_tree(tmp_path / "repo")
    shutil.copytree(os.path.join(SOURCE, "tests", "fixtures", "coinbase"),
                    root / "tests" / "fixtures" / "coinbase")
    (root / "tests" / "operators").mkdir()
    shutil.copy(os.path.join(SOURCE, "tests", "operators", "run"), root / "tests" / "operators")
    served = tmp_path / "served"
    shutil.copytree(os.path.join(SOURCE, "operators", "lib"), served / "lib")
    svc = make_service(operators_dir=f'"{served}"', operators="{}", replay_url="nil")

    script = ["set -euo pipefail", "trap 'kill ${FAKEX:-} 2>/dev/null; true' EXIT"]
    for kind, body in blocks:
        if kind == "lua":
            script.append("cat > operators/cbdemo.lua <<'LUA'\n" + body + "LUA\n"
                          'sed -i "s/:PORT\\//:$P\\//" operators/cbdemo.lua')
        else:
            script.append(body)
    build = os.path.dirname(os.path.dirname(explorer_bin))
    env = dict(os.environ, RX_BUILD_DIR=build, OPERATORS_DIR=str(served), TOKEN=svc.token,
               API=svc.url, PATH=f"{build}/engine:{build}/tests/fakex:" + os.environ["PATH"])
    out = subprocess.run(["bash", "-c", "\n".join(script)], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "wrote operators/cbdemo.lua" in out.stdout
    assert "operators/cbdemo.lua: ok: operator 'cbdemo', spec 1" in out.stdout
    assert "cbdemo: recorded 1 REST answers and " in out.stderr
    assert '"source":"stream"' in out.stdout
    assert "ok   tests/operators/cbdemo.expected.jsonl (10 tickers)" in out.stdout
    assert re.search(r'"name":"cbdemo","node_id":"[^"]+","state":"streaming"', out.stdout), \
        out.stdout[-2000:]
