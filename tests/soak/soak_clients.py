"""The soak's clients: REST load, /v1/stream subscribers and slow
consumers, each run on its own thread (tests/soak/soak.py has the
schedule and what each must see)."""
import asyncio
import base64
import json
import os
import random
import socket
import struct
import time
import urllib.parse

import requests
import websockets

from soak_state import HTTP_TIMEOUT_S

REST_RATE = float(os.environ.get("SOAK_REST_RATE", "6"))
READERS = int(os.environ.get("SOAK_READERS", "3"))
STALL_EVERY_S = 30
STALL_SUBS = 8
UNKNOWN_PAIR = "SOAKX_SOAKY"


# ---- REST load ------------------------------------------------------------------------------

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


# ---- WebSocket subscribers (asyncio, one thread) --------------------------------------------

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


# ---- Slow consumers (raw sockets, one thread) -----------------------------------------------

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
