"""The REST core against the real binary: health and readiness, /metrics,
/v1/exchanges and /v1/markets, auth (none, wrong, right, admin, public paths,
the old routes' {"detail"} shape, the generated token file), 404/405, CORS,
%00 and over-long URLs, keep-alive, the admin reload through the loop, and
an access log that never shows a token.
"""
import http.client
import json
import os
import re
import socket
import stat
import time

import requests

from conftest import ADMIN_TOKEN, TOKEN, wait_until

EXCHANGE_KEYS = {"name", "node_id", "state", "reason", "source", "pairs", "last_update",
                 "errors", "rejects", "budget", "file", "loaded_at", "rejected"}
MARKET_KEYS = ["exchange", "symbol", "pair", "base", "quote", "has_data"]
# `name{labels} value` or `name value`; values as Prometheus writes them.
METRIC_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,|(?=\})))*\})? '
    r'(-?[0-9.]+([eE][-+]?[0-9]+)?|[-+]Inf|NaN)$')


def get(service, path, token=None, headers=None, **params):
    h = {} if token is False else service.auth(token)
    h.update(headers or {})
    return requests.get(service.url + path, params=params, headers=h, timeout=30)


def raw(service, method, target, headers=None):
    """One request with the target sent exactly as given (no quoting)."""
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def is_error(r, status, code=None):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"]["message"], str), body
    if code:
        assert body["error"]["code"] == code, body


def wait_exchanges(service, names):
    """Waits until every one of names has data and a state that says so
    (the status is published every few hundred ms, the store at once);
    returns {name: exchange}."""
    last = {}

    def ready():
        r = get(service, "/v1/exchanges")
        if r.status_code != 200:
            return False
        last["by"] = {e["name"]: e for e in r.json()["exchanges"]}
        return all(n in last["by"] and last["by"][n]["pairs"] >= 1
                   and last["by"][n]["state"] in ("polling", "streaming") for n in names)

    wait_until(ready, 60, f"data from {names}")
    return last["by"]


# ---- Health, readiness, metrics (public) ----------------------------------

def test_health_and_ready(service):
    r = get(service, "/healthz", token=False)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["status", "uptime_s"] and body["status"] == "ok"
    assert isinstance(body["uptime_s"], int) and body["uptime_s"] >= 0
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["Cache-Control"] == "no-store"

    wait_until(lambda: get(service, "/readyz", token=False).status_code == 200, 60,
               "/readyz to turn ready")
    assert get(service, "/readyz", token=False).json() == {"status": "ready"}


def test_readyz_names_what_it_waits_for(service):
    """Right after start nothing has data yet: a 503 lists the operators
    still starting (or, if the machine was quick, it is already ready)."""
    r = get(service, "/readyz", token=False)
    if r.status_code == 503:
        body = r.json()
        assert body["status"] == "starting" and isinstance(body["waiting"], list)
    else:
        assert r.status_code == 200


def test_metrics_is_prometheus_text(service):
    wait_exchanges(service, ["binance", "kraken"])
    get(service, "/healthz", token=False)
    get(service, "/nope", token=False)
    r = get(service, "/metrics", token=False)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = set()
    for line in r.text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$", line), line
            if line.startswith("# TYPE"):
                families.add(line.split()[2])
            continue
        assert METRIC_LINE.match(line), line
    for name in ["rx_http_requests_total", "rx_http_request_duration_seconds", "rx_tickers",
                 "rx_updates_total", "rx_rejects_total", "rx_operator_state",
                 "rx_operator_errors_total", "rx_operator_http_requests_total",
                 "rx_operator_budget", "rx_operator_budget_waits_total",
                 "rx_operator_callback_max_seconds", "rx_operator_slow_callbacks_total",
                 "rx_operator_memory_bytes", "rx_loop_lag_seconds", "rx_unmapped_total",
                 "rx_ws_connections", "rx_ws_messages_out_total", "rx_ws_conflated_total",
                 "rx_ws_closed_1008_total", "rx_ws_queue_bytes", "rx_loop_cpu_seconds_total",
                 "rx_changes_total", "rx_changes_folded_total", "rx_changes_pending"]:
        assert name in families, name
    text = r.text
    assert 'rx_http_requests_total{route="/healthz",code="200"} ' in text
    assert 'rx_http_requests_total{route="none",code="404"} ' in text
    assert 'rx_http_request_duration_seconds_bucket{route="/healthz",le="+Inf"} ' in text
    assert re.search(r'^rx_tickers\{exchange="binance"\} [1-9]', text, re.M)
    assert re.search(r'^rx_operator_state\{exchange="kraken",state="(polling|streaming)"\} 1$',
                     text, re.M)
    # Public, so counts only: no price ever appears.
    assert "bid" not in text and "BTC_USDT" not in text


# ---- Auth ----------------------------------------------------------------

def test_auth_cases(service):
    r = get(service, "/v1/exchanges", token=False)
    is_error(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"] == "Bearer"
    r = get(service, "/v1/exchanges", token="wrong-token-0123456789")
    is_error(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert get(service, "/v1/exchanges", token=False,
               headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    # ?token= is for WebSocket upgrades only.
    assert requests.get(f"{service.url}/v1/exchanges?token={TOKEN}",
                        timeout=30).status_code == 401
    assert get(service, "/v1/exchanges").status_code == 200
    assert get(service, "/v1/exchanges", token=ADMIN_TOKEN).status_code == 200
    # Public paths need no token; /readyz is the one that may be 503 (not
    # ready yet), and it is public too.
    for path in ["/healthz", "/metrics", "/", "/docs", "/openapi.json"]:
        assert get(service, path, token=False).status_code == 200, path
    assert get(service, "/readyz", token=False).status_code in (200, 503)


def test_compat_routes_answer_auth_errors_in_their_shape(service):
    for path in ["/currency?exchange=binance&pair=BTC_USDT", "/aviable_exchanges"]:
        r = requests.get(service.url + path, timeout=30)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == "Bearer"
        body = r.json()
        assert list(body) == ["detail"] and isinstance(body["detail"], str)
        r = requests.get(service.url + path, headers={"Authorization": "Bearer nope-nope"},
                         timeout=30)
        assert r.status_code == 401 and list(r.json()) == ["detail"]
    assert get(service, "/aviable_exchanges").status_code == 200


def test_generated_token(make_service):
    svc = make_service(tokens="{}")
    path = svc.port_file.parent / "explorer.token"
    assert path.exists(), svc.log()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = path.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert get(svc, "/v1/exchanges", token=False).status_code == 401
    assert get(svc, "/v1/exchanges", token=token).status_code == 200
    log = svc.log()
    assert str(path) in log
    assert token not in log


def test_auth_off_serves_without_token(make_service):
    svc = make_service(auth="false")
    assert get(svc, "/v1/exchanges", token=False).status_code == 200
    # The admin routes still need an admin token.
    assert requests.post(svc.url + "/v1/admin/reload", timeout=30).status_code == 401
    assert "auth = false" in svc.log()


# ---- Exchanges and markets -----------------------------------------------

def test_exchanges(service):
    by = wait_exchanges(service, ["binance", "kraken"])
    for name in ["binance", "kraken"]:
        e = by[name]
        assert set(e) == EXCHANGE_KEYS, e
        assert e["state"] in ("polling", "streaming"), e
        assert e["pairs"] >= 1
        assert e["reason"] is None or isinstance(e["reason"], str)
        assert e["source"] in (None, "poll", "stream")
        assert isinstance(e["last_update"], int) and e["last_update"] > 1_600_000_000_000
        assert isinstance(e["loaded_at"], int) and e["loaded_at"] <= e["last_update"]
        assert isinstance(e["errors"], int) and isinstance(e["rejects"], int)
        assert set(e["budget"]) == {"requests", "per", "used", "waits"}
        assert e["budget"]["requests"] >= 1 and e["budget"]["per"] > 0
        assert e["budget"]["used"] >= 1
        assert e["file"].endswith(f"{name}.lua")
        assert e["rejected"] is None
    r = get(service, "/v1/exchanges")
    assert list(r.json()) == ["exchanges", "store"]
    assert r.json()["store"] == {"kind": "memory"}
    names = [e["name"] for e in r.json()["exchanges"]]
    assert names == sorted(names)
    assert r.headers["Cache-Control"] == "no-store"


def test_exchange_detail(service):
    wait_exchanges(service, ["binance"])
    r = get(service, "/v1/exchanges/binance")
    assert r.status_code == 200
    e = r.json()
    assert EXCHANGE_KEYS <= set(e) and e["name"] == "binance"
    assert isinstance(e["unmapped"], list)
    for u in e["unmapped"]:
        assert set(u) == {"symbol", "count"}
    assert "crossed" in e["reject_reasons"]
    assert all(isinstance(v, int) for v in e["reject_reasons"].values())
    is_error(get(service, "/v1/exchanges/nope"), 404, "unknown_exchange")
    is_error(get(service, "/v1/exchanges/"), 404, "not_found")


def test_markets(service):
    wait_exchanges(service, ["binance", "kraken"])

    def has_btc_usdt():
        r = get(service, "/v1/markets", exchange="binance", base="btc", quote="usdt")
        return r.status_code == 200 and any(m["has_data"] for m in r.json()["markets"])

    wait_until(has_btc_usdt, 30, "binance BTC_USDT with data")
    body = get(service, "/v1/markets").json()
    assert list(body) == ["markets"] and body["markets"]
    for m in body["markets"]:
        assert list(m) == MARKET_KEYS
        assert m["pair"] == f'{m["base"]}_{m["quote"]}'
        assert isinstance(m["has_data"], bool)
    only = get(service, "/v1/markets", exchange="kraken").json()["markets"]
    assert only and all(m["exchange"] == "kraken" for m in only)
    both = get(service, "/v1/markets", exchange="binance,kraken").json()["markets"]
    assert {m["exchange"] for m in both} == {"binance", "kraken"}
    btc = get(service, "/v1/markets", base="BTC").json()["markets"]
    assert btc and all(m["base"] == "BTC" for m in btc)
    usdt = get(service, "/v1/markets", quote="usdt").json()["markets"]
    assert usdt and all(m["quote"] == "USDT" for m in usdt)
    assert get(service, "/v1/markets", exchange="nope").json() == {"markets": []}


# ---- What the core answers itself ----------------------------------------

def test_not_found_and_method_not_allowed(service):
    is_error(get(service, "/nope"), 404, "not_found")
    is_error(get(service, "/v1/nope", token=False), 404, "not_found")
    r = requests.post(service.url + "/healthz", timeout=30)
    is_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD, OPTIONS"
    r = get(service, "/v1/admin/reload", token=ADMIN_TOKEN)
    is_error(r, 405)
    assert r.headers["Allow"] == "POST, OPTIONS"
    r = requests.head(service.url + "/healthz", timeout=30)
    assert r.status_code == 200 and r.content == b""


def test_nul_and_long_url(service):
    for target in ["/healthz?x=%00", "/v1/rates/BTC%00_USDT", "/v1/rates?pair=BTC_USDT%00",
                   "/nope%00"]:
        status, _, body = raw(service, "GET", target, service.auth())
        assert status == 400, target
        assert json.loads(body)["error"]["code"] == "bad_request"
    status, _, body = raw(service, "GET", "/healthz?x=" + "a" * 5000)
    assert status == 414
    assert json.loads(body)["error"]["code"] == "url_too_long"


def test_keep_alive(service):
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        for _ in range(3):
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            r.read()
            assert r.status == 200
            assert (r.getheader("Connection") or "").lower() != "close"
            sock = conn.sock
            assert sock is not None
        conn.request("GET", "/v1/exchanges", headers=service.auth())
        r = conn.getresponse()
        r.read()
        assert r.status == 200 and conn.sock is sock
    finally:
        conn.close()


def test_cors(make_service):
    svc = make_service(allowed_origins='{ "http://ok.example" }')
    r = requests.options(svc.url + "/v1/rates", timeout=30, headers={
        "Origin": "http://ok.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "http://ok.example"
    assert "GET" in r.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    assert int(r.headers["Access-Control-Max-Age"]) > 0
    r = requests.options(svc.url + "/v1/rates", timeout=30,
                         headers={"Origin": "http://evil.example"})
    is_error(r, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in r.headers
    r = get(svc, "/v1/exchanges", headers={"Origin": "http://ok.example"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "http://ok.example"
    assert "Origin" in r.headers["Vary"]
    r = get(svc, "/v1/exchanges", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_no_cors_headers_by_default(service):
    r = get(service, "/healthz", headers={"Origin": "http://ok.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


# ---- Admin ---------------------------------------------------------------

def test_admin_reload(service):
    wait_exchanges(service, ["binance", "kraken"])
    url = service.url + "/v1/admin/reload"
    r = requests.post(url, timeout=30)
    is_error(r, 401, "unauthorized")
    r = requests.post(url, headers=service.auth(), timeout=30)
    is_error(r, 403, "forbidden")
    r = requests.post(url, headers=service.auth(ADMIN_TOKEN), timeout=60)
    assert r.status_code == 200, r.text
    results = {o["name"]: o["result"] for o in r.json()["operators"]}
    assert {"binance", "kraken"} <= set(results)
    assert all(isinstance(v, str) for v in results.values())
    # The service goes on serving afterwards.
    wait_exchanges(service, ["binance", "kraken"])


def test_admin_disabled_without_admin_tokens(make_service):
    svc = make_service(admin_tokens="{}")
    r = requests.post(svc.url + "/v1/admin/reload", headers=svc.auth(), timeout=30)
    is_error(r, 403, "forbidden")


# ---- Access log ----------------------------------------------------------

def test_access_log_never_shows_a_token(make_service):
    svc = make_service(access_log="true")
    requests.get(f"{svc.url}/v1/exchanges?token={TOKEN}&x=1", timeout=30)
    requests.get(f"{svc.url}/v1/exchanges", headers=svc.auth(), timeout=30)
    requests.post(f"{svc.url}/v1/admin/reload?token={ADMIN_TOKEN}", timeout=30)

    def logged():
        return "/v1/admin/reload?token=" in svc.log()

    wait_until(logged, 10, "the access log lines")
    log = svc.log()
    lines = [l for l in log.splitlines() if "/v1/exchanges" in l or "/v1/admin" in l]
    assert any("token=REDACTED" in l and " 401 " in l for l in lines), lines
    assert any("GET /v1/exchanges\"" in l and " 200 " in l for l in lines), lines
    assert TOKEN not in log and ADMIN_TOKEN not in log


def test_access_log_off_by_default(service):
    get(service, "/healthz")
    time.sleep(0.2)
    assert '"GET /healthz"' not in service.log()


# ---- Connections per address, behind a proxy (issue 16) ------------------

def hold(service, n, headers=""):
    """n kept-alive connections, one answered request each; returns the
    sockets and the statuses."""
    socks, got = [], []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", service.port), timeout=30)
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        head = s.recv(65536)
        got.append(int(head[9:12]) if head.startswith(b"HTTP/1.1 ") else None)
        socks.append(s)
    return socks, got


def test_max_per_ip_answers_429(make_service):
    """Over limits.max_per_ip a connection was reset; now it is told why,
    and the address is served again once its other connections close."""
    svc = make_service(limits="{ max_per_ip = 3 }")
    socks, got = hold(svc, 4)
    try:
        assert got == [200, 200, 200, 429], got
        socks[3].settimeout(5)
        assert socks[3].recv(65536) == b"", "closed after its answer"
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: requests.get(svc.url + "/healthz", timeout=10).status_code == 200, 5,
               "the address to be served again")
    status, headers, body = hold_one_refused(svc, 3)
    assert status == 429 and headers["Retry-After"] == "5", (status, headers)
    assert headers["Connection"] == "close"
    assert json.loads(body)["error"]["code"] == "too_many_connections"


def hold_one_refused(service, n):
    """Holds n connections, then one more with http.client: its answer."""
    socks, _ = hold(service, n)
    try:
        return raw(service, "GET", "/healthz")
    finally:
        for s in socks:
            s.close()


def test_trusted_proxy_is_not_limited_per_address(make_service):
    """Behind a TLS proxy every client shares its address: the proxy named in
    limits.trusted_proxies counts only against max_connections, and the
    access log shows the client it names in X-Forwarded-For."""
    svc = make_service(limits='{ max_per_ip = 2, trusted_proxies = { "10.0.0.0/8", "127.0.0.1" } }',
                       access_log="true")
    socks, got = hold(svc, 6, "X-Forwarded-For: 198.51.100.7, 203.0.113.9\r\n")
    for s in socks:
        s.close()
    assert got == [200] * 6, got
    requests.get(svc.url + "/healthz?spoofed=1", timeout=10,
                 headers={"X-Forwarded-For": "<script>, not-an-address"})
    wait_until(lambda: "/healthz?spoofed=1" in svc.log(), 10, "the access log lines")
    lines = [l for l in svc.log().splitlines() if "access" in l and "/healthz" in l]
    assert any(" 203.0.113.9 \"GET /healthz\" 200 " in l for l in lines), lines
    assert any(" 127.0.0.1 \"GET /healthz?spoofed=1\" 200 " in l for l in lines), lines
    assert "198.51.100.7" not in svc.log() and "<script>" not in svc.log()


def test_forwarded_for_is_ignored_from_other_addresses(make_service):
    svc = make_service(limits='{ trusted_proxies = { "10.0.0.0/8" } }', access_log="true")
    requests.get(svc.url + "/healthz", timeout=10, headers={"X-Forwarded-For": "203.0.113.9"})
    wait_until(lambda: '"GET /healthz"' in svc.log(), 10, "the access log line")
    assert "203.0.113.9" not in svc.log()
    assert ' 127.0.0.1 "GET /healthz" 200 ' in svc.log()


def test_many_query_parameters(service):
    status, _, body = raw(service, "GET", "/healthz?" + "&".join(["a=1"] * 65))
    assert status == 400 and json.loads(body)["error"]["code"] == "bad_request"
    status, _, _ = raw(service, "GET", "/healthz?" + "&".join(["a=1"] * 64))
    assert status == 200
