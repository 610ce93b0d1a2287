"""Hostile traffic: 10,000 malformed requests (random paths and queries,
huge heads, bad UTF-8, %00, garbage request lines, half-sent heads) against
the real binary. Each is answered with a 4xx or a closed connection, never a
5xx, a hang or a crash; afterwards the service is healthy and still serves
the right data, and its log has no sanitizer report."""
import json
import random
import re
import socket
import threading
import time
import urllib.parse

import requests

from conftest import FACTOR, wait_until

TOTAL = 10_000
WORKERS = 8
SEED = 20261127


def exchange(port, raw, read_timeout=5.0):
    """Sends raw bytes; returns the status code, or None if the server closed
    without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout * FACTOR) as s:
        try:
            s.sendall(raw)
        except OSError:
            return None
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            return None
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data[9:12])


def rand_bytes(rng, n):
    return bytes(rng.randrange(256) for _ in range(n))


def rand_text(rng, n):
    return "".join(rng.choice("abcXYZ019_-./%?&=~") for _ in range(n))


def malformed(rng, i, token):
    auth = f"Authorization: Bearer {token}\r\n"
    kind = i % 8
    if kind == 0:  # random path
        path = "/" + urllib.parse.quote(rand_text(rng, rng.randrange(1, 60)), safe="/")
        return f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode()
    if kind == 1:  # malformed query values on real routes
        target = rng.choice(["/v1/rates?pair=%FF%FE", "/v1/rates?limit=-1x",
                             "/v1/rates?max_age_ms=1e999", "/v1/rates?pair=BTC__USDT",
                             "/v1/rates?stale=maybe", "/v1/convert?amount=-3&from=BTC&to=",
                             "/currency?pair=BTC__USDT",
                             "/v1/rates/" + "Z" * 300])
        return f"GET {target} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode()
    if kind == 2:  # huge head
        big = "X-Junk: " + "a" * rng.randrange(9000, 40000) + "\r\n"
        return f"GET /v1/rates HTTP/1.1\r\nHost: x\r\n{big}\r\n".encode()
    if kind == 3:  # bad UTF-8 in the path
        return b"GET /v1/rates/" + rand_bytes(rng, 8).replace(b"\r", b"").replace(b"\n", b"") + \
            b" HTTP/1.1\r\nHost: x\r\n" + auth.encode() + b"Connection: close\r\n\r\n"
    if kind == 4:  # %00 in path or query
        target = rng.choice(["/v1/rates%00", "/v1/rates?pair=BTC%00_USDT", "/healthz%00x",
                             "/v1/exchanges/bin%00ance"])
        return f"GET {target} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode()
    if kind == 5:  # garbage request line
        return rand_bytes(rng, rng.randrange(1, 200)).replace(b"\r\n\r\n", b"") + b"\r\n\r\n"
    if kind == 6:  # a method or version nobody speaks
        m = rng.choice(["BREW", "GET\x01", "PUT", "DELETE", "PATCH"])
        v = rng.choice(["HTTP/1.1", "HTTP/9.9", "HTTP/1.1 extra", ""])
        return f"{m} /v1/rates {v}\r\nHost: x\r\n{auth}Connection: close\r\n\r\n".encode(
            "latin-1")
    # header without a colon, or a broken upgrade
    bad = rng.choice(["NoColonHere\r\n", "Upgrade: websocket\r\nConnection: Upgrade\r\n",
                      "Content-Length: -5\r\n", "Transfer-Encoding: bogus\r\n"])
    return f"GET /v1/rates HTTP/1.1\r\nHost: x\r\n{bad}\r\n".encode()


def test_ten_thousand_malformed_requests(make_service):
    service = make_service(limits="{ head_timeout_ms = 300 }")
    wait_until(lambda: len(requests.get(service.url + "/v1/rates/BTC_USDT",
                                        headers=service.auth(), timeout=10)
                           .json().get("exchanges", [])) == 2, 30, "BTC_USDT from both")
    before = requests.get(service.url + "/v1/rates/BTC_USDT", headers=service.auth(),
                          timeout=10).json()
    failures = []
    counts = {}
    lock = threading.Lock()

    def worker(w):
        rng = random.Random(SEED + w)
        for i in range(w, TOTAL, WORKERS):
            raw = malformed(rng, i, service.token)
            try:
                status = exchange(service.port, raw)
            except socket.timeout:
                status = "timeout"
            except OSError as e:
                status = f"{type(e).__name__}"
            # 505 is libmicrohttpd's own answer to an HTTP version it does
            # not speak, given before our handler runs (DESIGN 4).
            ok = status is None or (isinstance(status, int) and (
                400 <= status < 500 or (status == 505 and i % 8 == 6)))
            with lock:
                counts[status] = counts.get(status, 0) + 1
                if isinstance(status, str) or not ok:
                    failures.append((status, raw[:120]))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A few half-sent heads: answered 408 (or closed) after head_timeout_ms.
    for _ in range(20):
        status = exchange(service.port, b"GET /v1/rates HTTP/1.1\r\nHo", read_timeout=5)
        if status not in (408, None):
            failures.append((status, b"half-sent head"))
    assert sum(counts.values()) == TOTAL
    assert not failures, (counts, failures[:10])

    # Still healthy, and still serving the same data.
    assert requests.get(service.url + "/healthz", timeout=10).status_code == 200
    after = requests.get(service.url + "/v1/rates/BTC_USDT", headers=service.auth(),
                         timeout=10).json()
    key = lambda t: (t["exchange"], t["bid"], t["ask"], t["last"], t["volume"])
    assert sorted(map(key, after["exchanges"])) == sorted(map(key, before["exchanges"]))
    assert service.stop() == 0
    log = service.log()
    assert "AddressSanitizer" not in log and "runtime error" not in log


# ---- Issue 16: what hostile testing found --------------------------------

def converse(port, raw, timeout=5.0):
    """Sends raw bytes and reads until the server closes or timeout (scaled)
    passes; returns (bytes read, closed, seconds until the close)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout * FACTOR) as s:
        s.sendall(raw)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return data, True, time.monotonic() - t0
                data += chunk
        except ConnectionResetError:
            return data, True, time.monotonic() - t0
        except socket.timeout:
            return data, False, time.monotonic() - t0


def statuses(data):
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_many_query_parameters_are_answered_and_do_not_leak(service):
    """600 parameters in ~4 KB got no answer (libmicrohttpd's pool ran out
    splitting them) and leaked 1.5 KB per request."""
    def target(n):
        return "/healthz?" + "&".join(f"a{i}=1" for i in range(n))

    assert len(target(550)) < 4096 < len(target(600))
    for n, want in ((550, 400), (600, 414)):
        raw = f"GET {target(n)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        data, closed, _ = converse(service.port, raw)
        assert closed and statuses(data) == [want], data[:200]
        body = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["code"] == ("bad_request" if want == 400 else "url_too_long")
    # The same as the second request of a kept-alive connection, which the
    # front door never sees.
    raw = GET + f"GET {target(550)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    data, closed, _ = converse(service.port, raw)
    assert closed and statuses(data) == [200, 400], data[:300]
    for _ in range(200):
        converse(service.port, f"GET {target(550)} HTTP/1.1\r\nHost: x\r\n"
                 "Connection: close\r\n\r\n".encode())
    assert requests.get(service.url + "/healthz", timeout=10).status_code == 200
    assert service.stop() == 0
    log = service.log()
    assert "AddressSanitizer" not in log and "LeakSanitizer" not in log


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
AMBIGUOUS = {
    "Content-Length with chunked": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two Transfer-Encodings": b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                              b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    "two Content-Lengths": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                           b"Content-Length: 36\r\n\r\n",
    "chunked in HTTP/1.0": b"POST /healthz HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "no Host": b"GET /healthz HTTP/1.1\r\n\r\n",
    "two Hosts": b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "space before the colon": b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked"
                              b"\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    "bare CR": b"GET /healthz HTTP/1.1\r\nHost: x\rTransfer-Encoding: chunked\r\n\r\n",
}
# libmicrohttpd reads the later heads of a kept-alive connection itself and
# takes a bare CR for a line end, which no API shows: the front door refuses
# it in a connection's first head only (docs/operations.md says so).
FIRST_HEAD_ONLY = {"bare CR"}


def test_request_smuggling_is_refused(service):
    """Heads a proxy and libmicrohttpd could frame differently were served
    and the connection kept open: now 400 and closed, on a connection's
    first head (the front door or the REST core) and on a later one (the
    REST core), and what was smuggled behind them is never answered."""
    for name, head in AMBIGUOUS.items():
        for first in (b"", GET):
            if first and name in FIRST_HEAD_ONLY:
                continue
            data, closed, _ = converse(service.port, first + head + SMUGGLED)
            want = [200, 400] if first else [400]
            assert closed, (name, first, data[:300])
            assert statuses(data) == want, (name, first, data[:400])
            if want[-1] == 400:
                assert b"\r\nConnection: close\r\n" in data.split(b"HTTP/1.1 400")[1], name
                assert b'"code":"bad_request"' in data, name


def test_nul_in_a_header_is_refused(service):
    """`Authorization: Bearer <token>\\0junk` was accepted, cut at the NUL."""
    raw = (b"GET /v1/exchanges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           service.token.encode() + b"\x00junk\r\nConnection: close\r\n\r\n")
    data, closed, _ = converse(service.port, raw)
    assert closed and statuses(data) == [400], data[:300]
    ok = raw.replace(b"\x00junk", b"")
    assert statuses(converse(service.port, ok)[0]) == [200]


def test_keep_alive_slowloris(make_service):
    """After one request a client could dribble its next head a byte every
    29 s and hold the connection forever. Now a kept-alive connection has
    keepalive_timeout_ms for its next whole request, bytes or not."""
    svc = make_service(limits="{ head_timeout_ms = 300, keepalive_timeout_ms = 1000 }")
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10 * FACTOR) as s:
        s.sendall(GET)
        assert statuses(s.recv(4096)) == [200]
        t0 = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        closed = None
        for c in b"Host: x\r\nX-Slow: " + b"a" * 100:
            time.sleep(0.1)
            try:
                s.sendall(bytes([c]))
                s.setblocking(False)
                if s.recv(4096) == b"":
                    closed = time.monotonic() - t0
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = time.monotonic() - t0
                break
            finally:
                s.setblocking(True)
        assert closed is not None and 0.8 <= closed < 3 * FACTOR, closed
    # An idle kept-alive connection is closed too, without an answer.
    data, closed, waited = converse(svc.port, GET, timeout=10)
    assert closed and statuses(data) == [200] and 0.8 <= waited < 3 * FACTOR, waited
    # A body that stops after its head: head_timeout_ms.
    data, closed, waited = converse(svc.port, b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
                                    b"Content-Length: 100\r\n\r\nabc", timeout=10)
    assert closed and data == b"" and waited < 2 * FACTOR, (data, waited)
    assert svc.stop() == 0
    assert "AddressSanitizer" not in svc.log()
