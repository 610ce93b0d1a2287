"""Token rotation and reloads on the real binary, under REST load.

SIGHUP re-reads the tokens while REST threads check requests and write the
access log: every token ever configured, user and admin alike, must stay
out of the log (each is sent in a request path, which the access log
writes whole), and each rotation must take effect. More rotations than the
old fixed table of 64 secrets held. A reload whose summary holds a reason
that escaping doubles must answer, not overflow (the ASan build aborts on
any heap overflow, so a crash fails the test).
"""
import json
import signal
import threading

import requests

from conftest import wait_until

ROTATIONS = 40  # two tokens each: 80 secrets, more than the old cap of 64


def _config_tokens(cfg_path, user, admin):
    """Rewrites the config's token lines (conftest writes one key a line)."""
    lines = cfg_path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  tokens = "):
            lines[i] = f'  tokens = {{ "{user}" }},'
        elif line.startswith("  admin_tokens = "):
            lines[i] = f'  admin_tokens = {{ "{admin}" }},'
    cfg_path.write_text("\n".join(lines) + "\n")


def test_rotation_under_load_never_logs_a_token(make_service, tmp_path):
    empty = tmp_path / "no-operators"
    empty.mkdir()
    svc = make_service(access_log="true", operators_dir=f'"{empty}"', operators="{}")
    cfg = svc.port_file.parent / "explorer.lua"
    used = [svc.token, svc.admin_token]
    stop = threading.Event()
    failures = []

    def load():
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    r = s.get(svc.url + "/healthz", timeout=10)
                    if r.status_code != 200:
                        failures.append(r.status_code)
                except requests.RequestException as e:
                    failures.append(str(e))

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(ROTATIONS):
            user, admin = f"user-token-{i:03d}-abcdef", f"admin-token-{i:03d}-uvwxyz"
            _config_tokens(cfg, user, admin)
            svc.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: requests.get(svc.url + "/v1/exchanges", timeout=10,
                                            headers={"Authorization": f"Bearer {user}"})
                       .status_code == 200, 20, f"rotation {i} to take effect")
            used += [user, admin]
            # The tokens in a request path: the access log writes the path.
            for token in used[-4:]:
                requests.get(f"{svc.url}/nope/{token}", timeout=10)
        old = requests.get(svc.url + "/v1/exchanges", timeout=10,
                           headers={"Authorization": f"Bearer {used[0]}"})
        assert old.status_code == 401
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:5]
    wait_until(lambda: f"/nope/{'REDACTED'}" in svc.log(), 10, "the access log lines")
    log = svc.log()
    leaked = [t for t in used if t in log]
    assert not leaked, leaked
    assert log.count("/nope/REDACTED") >= 4 * ROTATIONS


def test_reload_summary_with_a_reason_escaping_doubles(make_service, tmp_path):
    ops = tmp_path / "ops"
    ops.mkdir()
    (ops / "quotes.lua").write_text(
        "return { name = 'quotes', spec = 1, poll_every = 60,\n"
        "  markets = function(x) error(string.rep('\"', 300), 0) end,\n"
        "  poll = function(x) end }\n")
    svc = make_service(operators_dir=f'"{ops}"', operators="{}")
    r = requests.post(svc.url + "/v1/admin/reload", timeout=60,
                      headers={"Authorization": f"Bearer {svc.admin_token}"})
    assert r.status_code == 200, r.text
    summary = r.json()["operators"]
    assert [o["name"] for o in summary] == ["quotes"]
    assert summary[0]["result"].startswith('markets() failed: """')
    svc.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: svc.log().count("reload finished") >= 1, 20, "the SIGHUP reload")
    assert "AddressSanitizer" not in svc.log()
    assert requests.get(svc.url + "/healthz", timeout=10).status_code == 200
    json.loads(svc.log().split("reload finished: ", 1)[1].splitlines()[0])
