"""The soak's driver and judge (tests/soak/run sets the stage and starts it).

For --minutes, against a running explorer whose operators all replay from
the fake exchange, it keeps up, each on its own thread and schedule:

  REST load      two clients, SOAK_REST_RATE requests/s between them
                 (default 6), rotating over /v1/rates (now and then with
                 If-None-Match), a page of it, /v1/rates/{pair} for a pair
                 with data and for its inverse, /v1/rates for a pair nobody
                 lists (the one place a 404 is expected), /v1/exchanges and
                 one exchange, /v1/markets, /v1/convert, the old service's
                 /currency and /aviable_exchanges, /metrics, /healthz and one
                 request without a token (401 expected). One request in ten
                 goes on a fresh connection, the rest on kept-alive ones.
                 Any other status — a 5xx above all — a connection error or
                 a timeout (10 s) is a failure.
  subscribers    SOAK_READERS (3) /v1/stream clients at a time, each living
                 5-30 s: subscribed to everything, to a few pairs or to two
                 exchanges, at throttle 0, 250 or 1000 ms, authenticated by
                 header or ?token=; one in four also pings, unsubscribes and
                 subscribes again; one in four leaves by dropping its TCP
                 connection, the others with a close frame. Each must get
                 its ack and a complete snapshot within 10 s and a pong for
                 a ping, and must not be closed by the server.
  slow consumers every STALL_EVERY_S (30 s) a raw-socket client (4 KiB
                 receive buffer) subscribes eight times to everything at
                 throttle 0 and never reads. Every other one waits until
                 rx_ws_closed_1008_total moves (at most 60 s), then reads
                 what it was sent: the last frame must be a close with code
                 1008 (ws.max_queue_bytes as shipped). The others vanish
                 with a TCP reset after 3 s, their queue still full.
  faults         every FAULT_EVERY_S (20 s), on the next exchange in turn,
                 the next of eleven faults through the fake exchange's
                 control API (5xx, 5xx late, slow answers, truncated and
                 HTML bodies, refused connections, WebSocket drops, stalls,
                 garbage and oversize frames, stop), held FAULT_HOLD_S (15 s)
                 and cleared with a reset. Eleven faults and twelve
                 exchanges: every pairing comes round.
  reloads        every EDIT_EVERY_S (45 s) a comment appended to the next
                 operator file not under a fault (every fifth time a file
                 of operators/lib, which reloads its dependents); it must
                 be reloaded (its loaded_at moves) within 25 s. Every
                 SIGHUP_EVERY_S (60 s) a SIGHUP (tokens re-read, operators
                 reloaded: the log must say so), every ADMIN_EVERY_S (100 s)
                 POST /v1/admin/reload (200, or 409 while one runs).

Every SAMPLE_S (5 s) it samples explorer: VmRSS and Threads from
/proc/PID/status, open descriptors (/proc/PID/fd, sockets apart), its CPU
(and the fake exchange's) over the interval from /proc/PID/stat, and from
/metrics the WebSocket queue bytes and connections, each loop's lag (the
last 100 ms probe, and the maximum so far), the operators' Lua memory and
the tickers stored. If explorer has died the run stops there and fails.

At the end the load stops, the faults are cleared, and every WebSocket
connection and queued byte must be released within 20 s.

A trend, defined. The first third of the run, and at least WARMUP_MIN_S
(5 minutes), is warm-up and is not judged: operators connect, the
allocator's arenas and the Lua heaps reach their working size (RSS climbs
for about four minutes, to the high-water mark of the slow consumers'
queues). The rest is cut in two halves by time, "middle" and "last" (the
middle and last thirds of a run of 15 minutes or more). A series trends
upward when both
  (a) the median of the last half exceeds the median of the middle one
      by more than the series' tolerance, and
  (b) the least-squares slope over both halves, times their span,
      exceeds the same tolerance:
the median comparison ignores outliers (a sample taken while a slow
consumer is filling its queue), the slope ignores a single step that does
not continue, and a leak does both. Tolerances, from the level m (the
middle half's median): RSS max(2 MiB, 5% of m), for the allocator's
arenas and malloc_trim's timing (a 30-minute run moved by 1 MiB in steps
that did not continue); descriptors 8 and threads 2, absolute (clients
come and go between samples); queued WebSocket bytes 1 MiB (one slow
consumer's worth, ws.max_queue_bytes); Lua memory max(2 MiB, 20% of m), for
the collector's rhythm; loop lag max(25 ms, m); explorer's CPU max(0.1 CPU,
50% of m), because the machine is shared (2 CPUs, other work running) and
a slower machine changes what a frame costs. So a 30-minute run fails on
memory growing steadily by more than about 2 MiB per 10 minutes (3.5 KB/s):
a leak of 1.5 KB per request, as issue 16 found one, would grow RSS by
some 16 MB in that time at this REST rate alone. A run shorter than
TREND_MIN_S (9 minutes) leaves too little after its warm-up: the verdicts
are printed but do not fail it.

Exit status 0 when nothing failed and nothing trends upward, 1 otherwise.
Writes samples.csv and report.txt into --work.
"""
import argparse
import asyncio
import base64
import csv
import json
import os
import random
import signal
import socket
import statistics
import struct
import sys
import threading
import time
import urllib.parse

import requests
import websockets

SAMPLE_S = 5
REST_RATE = float(os.environ.get("SOAK_REST_RATE", "6"))
READERS = int(os.environ.get("SOAK_READERS", "3"))
STALL_EVERY_S = 30
FAULT_EVERY_S = 20
FAULT_HOLD_S = 15
EDIT_EVERY_S = 45
SIGHUP_EVERY_S = 60
ADMIN_EVERY_S = 100
HTTP_TIMEOUT_S = 10
RELOAD_WITHIN_S = 25
STALL_SUBS = 8
SETTLE_S = 20
WARMUP_MIN_S = 300
TREND_MIN_S = 540

# Faults in turn: (name, fault body or None, fakex action instead).
FAULTS = [
    ("5xx", {"status": 503}, None),
    ("5xx late", {"status": 500, "delay_ms": 1500}, None),
    ("slow REST", {"delay_ms": 4000}, None),
    ("truncated", {"truncate": 64}, None),
    ("HTML bodies", {"garbage": True}, None),
    ("refused", {"refuse": True}, None),
    ("WS drop", {"ws_drop_after": 25}, None),
    ("WS stall", {"ws_stall": True}, None),
    ("WS garbage", {"ws_garbage": True}, None),
    ("WS oversize", {"ws_oversize": 2 << 20}, None),
    ("stop", None, "stop"),
]

UNKNOWN_PAIR = "SOAKX_SOAKY"

MIB = 1 << 20
# Series judged for a trend: (column, label, tolerance from the level).
TRENDS = [
    ("rss_kb", "RSS (KiB)", lambda m: max(2048, 0.05 * m)),
    ("fds", "open descriptors", lambda m: 8),
    ("threads", "threads", lambda m: 2),
    ("ws_queue_bytes", "WebSocket queue bytes", lambda m: MIB),
    ("lua_bytes", "operators' Lua memory (bytes)", lambda m: max(2 * MIB, 0.20 * m)),
    ("lag_api", "API loop lag (s)", lambda m: max(0.025, m)),
    ("lag_ingest", "ingest loop lag (s)", lambda m: max(0.025, m)),
    ("cpu", "explorer CPU (CPUs)", lambda m: max(0.10, 0.50 * m)),
]

COLUMNS = ["t", "rss_kb", "fds", "fds_sock", "threads", "cpu", "fakex_cpu", "ws_queue_bytes",
           "ws_connections", "lag_api", "lag_ingest", "lag_max_api", "lag_max_ingest",
           "lag_over_api", "lag_over_ingest", "lua_bytes", "tickers", "closed_1008",
           "ws_messages_out", "rest_ok", "rest_fail", "ws_rx", "stalled_closed", "faults",
           "edits", "sighups"]


# ---- Shared state -------------------------------------------------------------------------

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


# ---- Explorer's vital signs -------------------------------------------------------------------

def proc_ticks(pid):
    """utime + stime of a process (fields 14 and 15; the name may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def fd_counts(pid):
    total = sockets = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        total += 1
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return total, sockets


def fd_kinds(pid):
    """Open descriptors by kind (socket, pipe, anon_inode:[eventfd], a path)."""
    kinds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":")[0] if ":" in target and not target.startswith("/") else target
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def alive(pid):
    try:
        return proc_status(pid).get("State", "Z")[0] not in "ZX"
    except OSError:
        return False


class Sampler:
    def __init__(self, soak):
        self.soak = soak
        self.pid = soak.args.explorer_pid
        self.fakex_pid = soak.args.fakex_pid
        self.tck = os.sysconf("SC_CLK_TCK")
        self.rows = []
        self.last = None

    def sample(self):
        s = self.soak
        st = proc_status(self.pid)
        now = time.monotonic()
        ticks, fx_ticks = proc_ticks(self.pid), proc_ticks(self.fakex_pid)
        fds, fds_sock = fd_counts(self.pid)
        m = s.metrics()
        row = {
            "t": round(s.now(), 1),
            "rss_kb": int(st["VmRSS"].split()[0]),
            "fds": fds,
            "fds_sock": fds_sock,
            "threads": int(st["Threads"]),
            "cpu": None,
            "fakex_cpu": None,
            "ws_queue_bytes": m.get("rx_ws_queue_bytes", 0),
            "ws_connections": m.get("rx_ws_connections", 0),
            "lag_api": m.get('rx_loop_lag_seconds{loop="api"}', 0),
            "lag_ingest": m.get('rx_loop_lag_seconds{loop="ingest"}', 0),
            "lag_max_api": m.get('rx_loop_lag_max_seconds{loop="api"}', 0),
            "lag_max_ingest": m.get('rx_loop_lag_max_seconds{loop="ingest"}', 0),
            "lag_over_api": m.get('rx_loop_lag_over_100ms_total{loop="api"}', 0),
            "lag_over_ingest": m.get('rx_loop_lag_over_100ms_total{loop="ingest"}', 0),
            "lua_bytes": metric_sum(m, "rx_operator_memory_bytes"),
            "tickers": metric_sum(m, "rx_tickers"),
            "closed_1008": m.get("rx_ws_closed_1008_total", 0),
            "ws_messages_out": m.get("rx_ws_messages_out_total", 0),
        }
        for key in ("rest_ok", "rest_fail", "ws_rx", "stalled_closed", "faults", "edits",
                    "sighups"):
            row[key] = s.get(key)
        if self.last:
            wall = now - self.last[0]
            row["cpu"] = round((ticks - self.last[1]) / self.tck / wall, 3)
            row["fakex_cpu"] = round((fx_ticks - self.last[2]) / self.tck / wall, 3)
        self.last = (now, ticks, fx_ticks)
        self.rows.append(row)
        return row


# ---- REST load -------------------------------------------------------------------------------

def rest_requests(soak):
    """The rotation: (name, path, with token, accepted statuses, accepted
    error codes for 4xx, key the JSON body must hold)."""
    pair = random.choice(soak.pairs)
    base, quote = pair.split("_")
    ex = random.choice(soak.exchanges)
    return [
        ("rates", "/v1/rates", True, {200, 304}, (), "rates"),
        ("rates page", "/v1/rates?quote=USDT&limit=5", True, {200}, (), "rates"),
        ("rate", f"/v1/rates/{pair}", True, {200}, (), "aggregate"),
        ("rate inverse", f"/v1/rates/{quote}-{base}", True, {200}, (), "aggregate"),
        ("rate unknown", f"/v1/rates/{UNKNOWN_PAIR}", True, {404}, ("unknown_pair",), "error"),
        ("exchanges", "/v1/exchanges", True, {200}, (), "exchanges"),
        ("exchange", f"/v1/exchanges/{ex}", True, {200}, (), "name"),
        ("markets", f"/v1/markets?exchange={ex}", True, {200}, (), "markets"),
        # The replay data was recorded years apart: exchanges may disagree,
        # and then no conversion exists (docs/api.md, /v1/convert).
        ("convert", "/v1/convert?from=BTC&to=USDT&amount=2", True, {200, 404},
         ("no_consensus", "no_path"), None),
        ("currency", f"/currency?pair={pair}", True, {200}, (), "result"),
        ("aviable_exchanges", "/aviable_exchanges", True, {200}, (), "result"),
        ("metrics", "/metrics", False, {200}, (), None),
        ("healthz", "/healthz", False, {200}, (), "status"),
        ("no token", "/v1/rates", False, {401}, ("unauthorized",), "error"),
    ]


def check_answer(r, statuses, codes, key):
    """None if the answer is as expected, else what is wrong."""
    if r.status_code not in statuses:
        return f"status {r.status_code}: {r.text[:200]!r}"
    if r.status_code == 304:
        return None
    if r.status_code >= 400 and codes:
        try:
            body = r.json()
            code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        except ValueError:
            code = None
        if code not in codes:
            return f"status {r.status_code} with code {code!r}, expected one of {codes}"
        return None
    if key is not None:
        try:
            if key not in r.json():
                return f"status {r.status_code} without {key!r}: {r.text[:200]!r}"
        except ValueError:
            return f"status {r.status_code}, not JSON: {r.text[:200]!r}"
    return None


def rest_worker(soak, n, interval):
    session = requests.Session()
    etag = None
    i = 0
    last_answer = time.monotonic()
    while not soak.stop.is_set():
        started = time.monotonic()
        table = rest_requests(soak)
        name, path, with_token, statuses, codes, key = table[(2 * i + n) % len(table)]
        headers = dict(soak.auth) if with_token else {}
        if name == "rates" and etag and i % 2 == 0:
            headers["If-None-Match"] = etag
        fresh = i % 10 == 9
        client = requests if fresh else session
        idle = started - last_answer
        try:
            r = client.get(soak.url + path, headers=headers, timeout=HTTP_TIMEOUT_S)
            last_answer = time.monotonic()
            problem = check_answer(r, statuses, codes, key)
            if name == "rates" and r.status_code == 200:
                etag = r.headers.get("ETag")
        except requests.RequestException as e:
            last_answer = time.monotonic()
            problem = f"{type(e).__name__}: {e}" + (
                "" if fresh else f" (kept-alive connection, idle {idle:.1f} s)")
        if problem:
            soak.count("rest_fail")
            soak.fail("REST", f"GET {path}: {problem}")
        else:
            soak.count("rest_ok")
            soak.count(f"rest {name} {r.status_code}")
            with soak.lock:
                soak.latencies.append((soak.now(), last_answer - started))
        i += 1
        soak.sleep(interval - (time.monotonic() - started))
    session.close()


# ---- WebSocket subscribers (asyncio, one thread) ------------------------------------------

class WsFailure(Exception):
    pass


async def expect(ws, soak, what, pred, timeout):
    """Reads messages until pred(message) holds; rates on the way are
    counted. Raises WsFailure on timeout or a server close."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WsFailure(f"no {what} within {timeout} s")
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except asyncio.TimeoutError:
            raise WsFailure(f"no {what} within {timeout} s") from None
        soak.count("ws_rx")
        if raw.startswith('{"type":"rate"'):
            continue
        msg = json.loads(raw)
        if msg.get("type") == "error":
            raise WsFailure(f"error while waiting for {what}: {raw[:200]}")
        if pred(msg):
            return msg


async def subscribe(ws, soak, req):
    await ws.send(json.dumps(req))
    ack = await expect(ws, soak, f"ack of {req['id']}",
                       lambda m: m.get("type") == "ack" and m.get("id") == req["id"], 10)
    await expect(ws, soak, f"last snapshot of sub {ack['sub']}",
                 lambda m: m.get("type") == "snapshot" and m.get("sub") == ack["sub"]
                 and m.get("last"), 10)
    return ack["sub"]


async def reader(soak, n):
    kind = n % 4
    req = {"op": "subscribe", "id": f"r{n}"}
    if kind == 0:
        req["throttle_ms"] = 1000
    elif kind == 1:
        req.update(pairs=random.sample(soak.pairs, min(3, len(soak.pairs))), throttle_ms=0)
    elif kind == 2:
        req.update(exchanges=random.sample(soak.exchanges, 2), throttle_ms=250)
    else:
        req.update(pairs=[random.choice(soak.pairs)], throttle_ms=0)
    headers = {}
    uri = soak.ws_url + "/v1/stream"
    if n % 3 == 0:
        uri += "?token=" + urllib.parse.quote(soak.args.token)
    else:
        headers = soak.auth
    life = random.uniform(5, 30)
    ws = None
    try:
        ws = await asyncio.wait_for(websockets.connect(uri, extra_headers=headers, max_size=1 << 24,
                                                       open_timeout=10, close_timeout=5), 15)
        t_end = time.monotonic() + life
        sub = await subscribe(ws, soak, req)
        if kind == 3:
            await asyncio.sleep(2)
            await ws.send(json.dumps({"op": "ping", "id": f"p{n}"}))
            await expect(ws, soak, "pong", lambda m: m.get("type") == "pong", 10)
            await ws.send(json.dumps({"op": "unsubscribe", "id": f"u{n}", "sub": sub}))
            await expect(ws, soak, "ack of the unsubscribe",
                         lambda m: m.get("type") == "ack" and m.get("id") == f"u{n}", 10)
            await subscribe(ws, soak, dict(req, id=f"r{n}b"))
        while not soak.stop.is_set():
            left = t_end - time.monotonic()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(ws.recv(), min(left, 1.0))
                soak.count("ws_rx")
            except asyncio.TimeoutError:
                pass
        if n % 4 == 1:
            ws.transport.abort()
            soak.count("ws readers dropped")
        else:
            await ws.close()
            soak.count("ws readers closed")
        soak.count("ws_readers_ok")
    except websockets.ConnectionClosed as e:
        if not soak.stop.is_set():
            soak.fail("WebSocket", f"reader {n} ({req}) closed by the server: {e}")
    except (WsFailure, OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
        if not soak.stop.is_set():
            soak.fail("WebSocket", f"reader {n} ({req}): {type(e).__name__}: {e}")
    finally:
        if ws is not None and not ws.closed:
            ws.transport.abort()


async def readers_main(soak):
    tasks = set()
    n = 0
    while not soak.stop.is_set():
        while len(tasks) < READERS:
            tasks.add(asyncio.ensure_future(reader(soak, n)))
            n += 1
            await asyncio.sleep(random.uniform(0.1, 1.0))
        done, tasks = await asyncio.wait(tasks, timeout=1, return_when=asyncio.FIRST_COMPLETED)
    # The readers, and the keepalive tasks of the connections they dropped.
    rest = asyncio.all_tasks() - {asyncio.current_task()}
    for t in rest:
        t.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


# ---- Slow consumers (raw sockets, one thread) --------------------------------------------------

def ws_frame(text):
    """A masked client text frame."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    head = bytes([0x81]) + length
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frames(buf):
    """(opcode, payload) of each whole server frame in buf."""
    i = 0
    while i + 2 <= len(buf):
        op, n, j = buf[i] & 0x0F, buf[i + 1] & 0x7F, i + 2
        if n == 126:
            n, j = struct.unpack("!H", buf[j:j + 2])[0], j + 2
        elif n == 127:
            n, j = struct.unpack("!Q", buf[j:j + 8])[0], j + 8
        if j + n > len(buf):
            return
        yield op, buf[j:j + n]
        i = j + n


def stalled_connect(soak):
    """A /v1/stream client with a 4 KiB receive buffer, subscribed
    STALL_SUBS times to everything at throttle 0; returns the socket and
    what followed the 101's head."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(HTTP_TIMEOUT_S)
    s.connect(socket.getaddrinfo(*soak.url.split("//")[1].split(":"))[0][4])
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {soak.args.token}\r\n\r\n")
              .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("closed during the handshake")
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise OSError(f"handshake answered {head[:60]!r}")
    for i in range(STALL_SUBS):
        s.sendall(ws_frame(json.dumps({"op": "subscribe", "id": i, "throttle_ms": 0})))
    return s, rest


def stalled_until_closed(soak, n):
    before = soak.metrics().get("rx_ws_closed_1008_total", 0)
    s, data = stalled_connect(soak)
    t0 = time.monotonic()
    try:
        while soak.metrics().get("rx_ws_closed_1008_total", 0) <= before:
            if time.monotonic() - t0 > 60:
                soak.fail("slow consumer", f"stalled client {n} not closed with 1008 within 60 s")
                return
            if not soak.sleep(0.5):
                return
        closed_after = time.monotonic() - t0
        deadline = time.monotonic() + 20
        s.settimeout(2)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(1 << 16)
            except socket.timeout:
                continue
            if not chunk:
                break
            data += chunk
        closes = [p for op, p in server_frames(data) if op == 0x8]
        if not closes:
            soak.fail("slow consumer", f"stalled client {n}: no close frame in the "
                      f"{len(data)} bytes it read (server closed {closed_after:.1f} s in)")
            return
        code = struct.unpack("!H", closes[-1][:2])[0] if len(closes[-1]) >= 2 else None
        if code != 1008:
            soak.fail("slow consumer", f"stalled client {n} closed with {code}, not 1008: "
                      f"{closes[-1][2:]!r}")
            return
        soak.count("stalled_closed")
        soak.note(f"stalled client {n}: 1008 after {closed_after:.1f} s "
                  f"({closes[-1][2:].decode(errors='replace')}); {len(data)} bytes read after")
    finally:
        s.close()


def stalled_vanish(soak, n):
    s, _ = stalled_connect(soak)
    soak.sleep(3)
    # Linger 0: a reset, not a FIN, with the queue still full.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    soak.count("stalled_vanished")


def stall_worker(soak):
    n = 0
    while soak.sleep(STALL_EVERY_S / 2 if n == 0 else STALL_EVERY_S):
        try:
            if n % 2 == 0:
                stalled_until_closed(soak, n)
            else:
                stalled_vanish(soak, n)
        except (OSError, requests.RequestException) as e:
            if not soak.stop.is_set():
                soak.fail("slow consumer", f"stalled client {n}: {type(e).__name__}: {e}")
        n += 1


# ---- Faults, edits, signals ------------------------------------------------------------------

class Chaos:
    """One scheduler for faults, operator edits, SIGHUPs and admin reloads;
    each check it starts is a deadline it polls, so nothing here blocks
    for long."""

    def __init__(self, soak):
        self.soak = soak
        self.k_fault = 0
        self.k_edit = 0
        self.active = []            # (clear_at, exchange, name)
        self.pending = []           # (deadline, exchange or None, before, label)
        self.sighup_checks = []     # (deadline, expected log count)
        self.sighups = 0
        ops = soak.args.operators_dir
        self.op_files = sorted(f for f in os.listdir(ops) if f.endswith(".lua"))
        self.lib_files = sorted(os.path.join("lib", f) for f in os.listdir(os.path.join(ops, "lib"))
                                if f.endswith(".lua"))
        self.log = os.path.join(soak.args.work, "explorer.log")

    def run(self):
        s = self.soak
        due = {"fault": 5, "edit": 15, "sighup": 30, "admin": 50}
        while not s.stop.is_set():
            t = s.now()
            for clear_at, ex, name in list(self.active):
                if t >= clear_at:
                    self.clear(ex, name)
            if t >= due["fault"]:
                self.fault()
                due["fault"] = t + FAULT_EVERY_S
            if t >= due["edit"]:
                self.edit()
                due["edit"] = t + EDIT_EVERY_S
            if t >= due["sighup"]:
                self.sighup()
                due["sighup"] = t + SIGHUP_EVERY_S
            if t >= due["admin"]:
                threading.Thread(target=self.admin_reload, daemon=True).start()
                due["admin"] = t + ADMIN_EVERY_S
            self.check()
            s.sleep(0.5)
        for _, ex, name in list(self.active):
            self.clear(ex, name)

    def fault(self):
        s = self.soak
        for _ in range(len(s.exchanges)):
            ex = s.exchanges[self.k_fault % len(s.exchanges)]
            name, body, action = FAULTS[self.k_fault % len(FAULTS)]
            self.k_fault += 1
            with s.lock:
                if ex in s.reloading or ex in s.faulted:
                    continue
                s.faulted.add(ex)
            ok = fakex(s, ex, action) if action else fakex(s, ex, "fault", body)
            if ok is not None:
                s.count("faults")
                s.count(f"fault {name}")
                self.active.append((s.now() + FAULT_HOLD_S, ex, name))
            else:
                with s.lock:
                    s.faulted.discard(ex)
            return

    def clear(self, ex, name):
        s = self.soak
        self.active = [a for a in self.active if a[1] != ex]
        fakex(s, ex, "reset")
        with s.lock:
            s.faulted.discard(ex)

    def edit(self):
        """Appends a comment to the next operator file (or lib file) no
        fault touches, and starts the check that it was reloaded."""
        s = self.soak
        self.k_edit += 1
        try:
            before = {n: e.get("loaded_at") or 0 for n, e in s.exchanges_status().items()}
        except (requests.RequestException, ValueError, KeyError) as e:
            s.fail("REST", f"GET /v1/exchanges before an edit: {e}")
            return
        if self.k_edit % 5 == 0:
            rel = self.lib_files[(self.k_edit // 5) % len(self.lib_files)]
            target = None
        else:
            with s.lock:
                free = [f for f in self.op_files if f[:-4] not in s.faulted]
                if not free:
                    return
                rel = free[self.k_edit % len(free)]
                target = rel[:-4]
                s.reloading.add(target)
        with open(os.path.join(s.args.operators_dir, rel), "a") as f:
            f.write(f"-- soak edit {self.k_edit} at {s.now():.1f} s\n")
        s.count("edits")
        self.pending.append((s.now() + RELOAD_WITHIN_S, target, before, rel))

    def sighup(self):
        s = self.soak
        self.sighups += 1
        os.kill(s.args.explorer_pid, signal.SIGHUP)
        s.count("sighups")
        self.sighup_checks.append((s.now() + 10, self.sighups))

    def admin_reload(self):
        s = self.soak
        try:
            r = requests.post(s.url + "/v1/admin/reload",
                              headers={"Authorization": f"Bearer {s.args.admin_token}"},
                              timeout=90)
            if r.status_code == 200:
                s.count("admin reloads")
            elif r.status_code == 409:
                s.count("admin reloads 409")
            else:
                s.fail("REST", f"POST /v1/admin/reload: status {r.status_code}: {r.text[:200]!r}")
        except requests.RequestException as e:
            if not s.stop.is_set():
                s.fail("REST", f"POST /v1/admin/reload: {type(e).__name__}: {e}")

    def check(self):
        s = self.soak
        if self.pending:
            try:
                status = s.exchanges_status()
            except (requests.RequestException, ValueError, KeyError) as e:
                s.fail("REST", f"GET /v1/exchanges: {e}")
                return
            still = []
            for deadline, target, before, rel in self.pending:
                names = [target] if target else list(status)
                moved = [n for n in names if (status[n].get("loaded_at") or 0) > before.get(n, 0)]
                if moved:
                    s.count("reloads seen")
                    if target:
                        with s.lock:
                            s.reloading.discard(target)
                elif s.now() > deadline:
                    rejected = status[target].get("rejected") if target else None
                    s.fail("reload", f"{rel} edited, nothing reloaded within {RELOAD_WITHIN_S} s"
                           + (f" (rejected: {rejected})" if rejected else ""))
                    if target:
                        with s.lock:
                            s.reloading.discard(target)
                else:
                    still.append((deadline, target, before, rel))
            self.pending = still
        if self.sighup_checks and s.now() > self.sighup_checks[0][0]:
            _, expected = self.sighup_checks.pop(0)
            with open(self.log, errors="replace") as f:
                seen = sum("SIGHUP: reloading operators" in line for line in f)
            if seen < expected:
                s.fail("SIGHUP", f"{expected} sent, the log shows {seen} reloads")


# ---- Judging ---------------------------------------------------------------------------------

def lstsq_slope(xs, ys):
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def warmup_s(total_s):
    return max(total_s / 3, WARMUP_MIN_S)


def judge(rows, total_s):
    """(column, label, first, mid median, last median, rise, tolerance, up)
    per series (the header defines a trend)."""
    a = warmup_s(total_s)
    b = a + (total_s - a) / 2
    out = []
    for col, label, tol_of in TRENDS:
        pts = [(r["t"], r[col]) for r in rows if r[col] is not None and r["t"] >= a]
        mid = [y for t, y in pts if t < b]
        last = [y for t, y in pts if t >= b]
        if len(mid) < 3 or len(last) < 3:
            out.append((col, label, None, None, None, None, None, False))
            continue
        m_mid, m_last = statistics.median(mid), statistics.median(last)
        rise = lstsq_slope([t for t, _ in pts], [y for _, y in pts]) * (pts[-1][0] - pts[0][0])
        tol = tol_of(m_mid)
        up = m_last - m_mid > tol and rise > tol
        out.append((col, label, pts[0][1], m_mid, m_last, rise, tol, up))
    return out


def fmt(col, v):
    if v is None:
        return "-"
    if col == "rss_kb":
        return f"{v / 1024:.1f} MiB"
    if col in ("ws_queue_bytes", "lua_bytes"):
        return f"{v / MIB:.2f} MiB"
    if col.startswith("lag"):
        return f"{v * 1000:.1f} ms"
    if col == "cpu":
        return f"{v:.3f}"
    return f"{v:.1f}" if v != int(v) else f"{int(v)}"


def window_table(rows, latencies, total_s):
    n_win = int(min(30, max(6, round(total_s / 60))))
    span = total_s / n_win
    lines = [f"per window of {span / 60:.1f} min (medians; queue KiB: the largest sample; lag: "
             "median/largest of the last-probe samples; REST: requests, their p99, failures; "
             "1008: slow consumers closed)",
             f"{'min':>5} {'RSS MiB':>8} {'fds':>4} {'sock':>4} {'thr':>4} {'CPU':>6} "
             f"{'fakex':>6} {'queue KiB':>10} {'lag api ms':>11} {'lag ing ms':>11} "
             f"{'Lua MiB':>8} {'ws':>4} {'REST':>6} {'p99 ms':>7} {'fail':>5} {'1008':>5}"]
    prev = None
    for w in range(n_win):
        lo, hi = w * span, (w + 1) * span
        rs = [r for r in rows if lo <= r["t"] < hi or (w == n_win - 1 and r["t"] >= hi)]
        if not rs:
            continue
        lat = sorted(d for t, d in latencies if lo <= t < hi)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0

        def med(col):
            vals = [r[col] for r in rs if r[col] is not None]
            return statistics.median(vals) if vals else 0

        end = rs[-1]
        base = prev or {"rest_ok": 0, "rest_fail": 0, "closed_1008": rs[0]["closed_1008"]}
        lines.append(
            f"{hi / 60:5.1f} {med('rss_kb') / 1024:8.1f} {med('fds'):4.0f} {med('fds_sock'):4.0f} "
            f"{med('threads'):4.0f} {med('cpu'):6.3f} {med('fakex_cpu'):6.3f} "
            f"{max(r['ws_queue_bytes'] for r in rs) / 1024:10.0f} "
            f"{med('lag_api') * 1000:5.1f}/{max(r['lag_api'] for r in rs) * 1000:5.0f} "
            f"{med('lag_ingest') * 1000:5.1f}/{max(r['lag_ingest'] for r in rs) * 1000:5.0f} "
            f"{med('lua_bytes') / MIB:8.2f} {med('ws_connections'):4.0f} "
            f"{end['rest_ok'] + end['rest_fail'] - base['rest_ok'] - base['rest_fail']:6d} "
            f"{p99:7.1f} {end['rest_fail'] - base['rest_fail']:5d} "
            f"{end['closed_1008'] - base['closed_1008']:5.0f}")
        prev = end
    return lines


# ---- The run --------------------------------------------------------------------------------

def discover(soak):
    """Pairs with data and the exchanges both explorer and fakex know."""
    r = requests.get(soak.url + "/v1/rates", headers=soak.auth, timeout=HTTP_TIMEOUT_S)
    r.raise_for_status()
    soak.pairs = sorted(p["pair"] for p in r.json()["rates"] if p.get("exchanges"))
    known = requests.get(soak.args.fakex_url + "/_fakex/health", timeout=HTTP_TIMEOUT_S).json()
    soak.exchanges = sorted(set(soak.exchanges_status()) & set(known["exchanges"]))
    if not soak.pairs or not soak.exchanges:
        raise SystemExit(f"soak: nothing to work with: pairs {soak.pairs}, exchanges "
                         f"{soak.exchanges}")


def settle(soak):
    """After the load, with the faults cleared: every WebSocket connection
    and queued byte released, and a reload loads every operator again (one
    reloaded while its exchange was failing kept its previous version and
    shows the rejection until then)."""
    deadline = time.monotonic() + SETTLE_S
    m = {}
    while time.monotonic() < deadline:
        m = soak.metrics()
        if m.get("rx_ws_connections", 0) == 0 and m.get("rx_ws_queue_bytes", 0) == 0:
            break
        time.sleep(0.5)
    else:
        soak.fail("release", f"{SETTLE_S} s after the load stopped: rx_ws_connections "
                  f"{m.get('rx_ws_connections')}, rx_ws_queue_bytes {m.get('rx_ws_queue_bytes')}")
    deadline = time.monotonic() + 60
    while True:
        r = requests.post(soak.url + "/v1/admin/reload", timeout=90,
                          headers={"Authorization": f"Bearer {soak.args.admin_token}"})
        if r.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(1)
    if r.status_code != 200:
        soak.fail("reload", f"final reload: status {r.status_code}: {r.text[:200]!r}")
        return
    bad = [o for o in r.json()["operators"] if o["result"] != "loaded"]
    if bad:
        soak.fail("reload", f"final reload, faults cleared: {bad}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--explorer-pid", type=int, required=True)
    ap.add_argument("--fakex-pid", type=int, required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--fakex-url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--admin-token", required=True)
    ap.add_argument("--operators-dir", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()

    soak = Soak(args)
    discover(soak)
    total_s = args.minutes * 60
    print(f"soak: {len(soak.exchanges)} exchanges ({', '.join(soak.exchanges)}), "
          f"{len(soak.pairs)} pairs with data; {REST_RATE:g} REST requests/s, {READERS} "
          f"subscribers at a time; sampling every {SAMPLE_S} s; warm-up {warmup_s(total_s):.0f} s"
          + ("" if total_s >= TREND_MIN_S else " (a short run: trends are shown, not judged)"),
          flush=True)

    sampler = Sampler(soak)
    sampler.sample()
    chaos = Chaos(soak)
    ws_loop = asyncio.new_event_loop()
    threads = [threading.Thread(target=rest_worker, args=(soak, n, 2 / REST_RATE), daemon=True)
               for n in range(2)]
    threads.append(threading.Thread(target=stall_worker, args=(soak,), daemon=True))
    threads.append(threading.Thread(target=chaos.run, daemon=True))
    threads.append(threading.Thread(target=ws_loop.run_until_complete,
                                    args=(readers_main(soak),), daemon=True))
    for t in threads:
        t.start()

    died = False
    fds_warm = None
    status = {}
    next_sample = time.monotonic() + SAMPLE_S
    while time.monotonic() < soak.end:
        soak.stop.wait(max(0.0, next_sample - time.monotonic()))
        next_sample += SAMPLE_S
        if not alive(args.explorer_pid):
            soak.fail("explorer", "explorer died")
            died = True
            break
        try:
            row = sampler.sample()
        except (OSError, requests.RequestException, KeyError, ValueError) as e:
            if not alive(args.explorer_pid):
                soak.fail("explorer", "explorer died")
                died = True
                break
            soak.fail("sample", f"{type(e).__name__}: {e}")
            continue
        if fds_warm is None and row["t"] >= warmup_s(total_s):
            fds_warm = fd_kinds(args.explorer_pid)
        if len(sampler.rows) % 12 == 0:
            print(f"  [{row['t']:7.1f}s] RSS {row['rss_kb'] / 1024:.1f} MiB, fds {row['fds']}, "
                  f"threads {row['threads']}, CPU {row['cpu']}, queue "
                  f"{row['ws_queue_bytes'] / 1024:.0f} KiB, ws {row['ws_connections']:.0f}, "
                  f"REST {row['rest_ok']} ok {row['rest_fail']} failed", flush=True)

    soak.stop.set()
    for t in threads:
        t.join(timeout=30)
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        soak.note(f"threads still running at the end: {stuck}")
    if not died:
        for ex in soak.exchanges:
            fakex(soak, ex, "reset")
        try:
            settle(soak)
            sampler.sample()
            status = soak.exchanges_status()
        except (OSError, requests.RequestException, KeyError, ValueError) as e:
            soak.fail("explorer", f"after the run: {type(e).__name__}: {e}")

    rows = sampler.rows
    with open(os.path.join(args.work, "samples.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)

    report = window_table(rows, soak.latencies, total_s)
    report.append("")
    verdicts = judge(rows, total_s)
    judged = total_s >= TREND_MIN_S
    report.append(("" if judged else f"a run under {TREND_MIN_S // 60} min: trends shown, "
                   "not judged\n") + f"{'series':32} {'first judged':>13} {'middle':>13} {'last':>13} "
                  f"{'LSQ rise':>13} {'tolerance':>13}  verdict")
    for col, label, first, m_mid, m_last, rise, tol, up in verdicts:
        report.append(f"{label:32} {fmt(col, first):>13} {fmt(col, m_mid):>13} "
                      f"{fmt(col, m_last):>13} {fmt(col, rise):>13} {fmt(col, tol):>13}  "
                      f"{'UPWARD' if up else ('flat' if m_mid is not None else 'too short')}")
    report.append("")
    if rows:
        first, last = rows[0], rows[-1]
        report.append(f"first sample -> last: RSS {first['rss_kb'] / 1024:.1f} -> "
                      f"{last['rss_kb'] / 1024:.1f} MiB, fds {first['fds']} -> {last['fds']}, "
                      f"threads {first['threads']} -> {last['threads']}, loop lag max so far "
                      f"api {last['lag_max_api'] * 1000:.0f} ms, ingest "
                      f"{last['lag_max_ingest'] * 1000:.0f} ms; probes over 100 ms: api "
                      f"{last['lag_over_api']:.0f}, ingest {last['lag_over_ingest']:.0f}")
    if fds_warm is not None and not died:
        report.append(f"descriptors by kind after warm-up: {fds_warm}; at the end: "
                      f"{fd_kinds(args.explorer_pid)}")
    with soak.lock:
        counts = dict(sorted(soak.counts.items()))
        failures = list(soak.failures)
    report.append("counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if not died and status:
        report.append("operators at the end: " + ", ".join(
            f"{n} {e['state']}" + (f" ({e.get('reason')})" if e.get("reason") else "")
            + (" (rejected)" if e.get("rejected") else "")
            for n, e in sorted(status.items())))
    report.append(f"soak.py's own CPU: {sum(os.times()[:2]):.0f} s")
    ups = [label for _, label, *_, up in verdicts if up] if judged else []
    by_kind = {}
    for _, kind, _ in failures:
        by_kind[kind] = by_kind.get(kind, 0) + 1
    report.append("")
    for t, kind, detail in failures[:40]:
        report.append(f"failure at {t:.1f} s, {kind}: {detail}")
    if len(failures) > 40:
        report.append(f"... and {len(failures) - 40} more")
    ok = not failures and not ups and not died
    report.append("soak: " + ("PASS" if ok else "FAIL (" + "; ".join(
        [f"{n} {k} failure(s)" for k, n in by_kind.items()] +
        [f"{u} trends upward" for u in ups]) + ")"))
    text = "\n".join(report)
    print(text, flush=True)
    with open(os.path.join(args.work, "report.txt"), "w") as f:
        f.write(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
