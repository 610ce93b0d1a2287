"""The soak's driver and judge (tests/soak/run sets the stage and starts it).

This file holds the story: discover what the service serves, start the
threads, sample until the end, stop, settle, judge, report. Beside it:
soak_state.py (what the threads share), soak_clients.py (REST load,
subscribers, slow consumers), soak_chaos.py (faults, edits, signals),
soak_vitals.py (sampling and judging); each holds its own schedule's
constants.

For --minutes, against a running explorer whose operators all replay from
the fake exchange, it keeps up, each on its own thread and schedule:

  REST load      two clients, SOAK_REST_RATE requests/s between them
                 (default 6), rotating over /v1/rates (now and then with
                 If-None-Match), a page of it, /v1/rates/{pair} for a pair
                 with data and for its inverse, /v1/rates for a pair nobody
                 lists (404 expected), /v1/exchanges and
                 one exchange, /v1/markets, /v1/convert, the old service's
                 /currency and /aviable_exchanges, /metrics, /healthz and one
                 request without a token (401 expected); /v1/convert may
                 answer 404 no_consensus or no_path (the replay data was
                 recorded years apart). One request in ten
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
import csv
import os
import sys
import threading
import time

import requests

from soak_chaos import Chaos
from soak_clients import READERS, REST_RATE, readers_main, rest_worker, stall_worker
from soak_state import HTTP_TIMEOUT_S, Soak, fakex
from soak_vitals import (COLUMNS, TREND_MIN_S, Sampler, alive, fd_kinds, fmt, judge, warmup_s,
                         window_table)

SAMPLE_S = 5
SETTLE_S = 20


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


def parse_args():
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
    return ap.parse_args()


def start_threads(soak):
    """The REST clients, the slow consumers, the chaos scheduler and the
    subscribers' event loop, each on a daemon thread."""
    ws_loop = asyncio.new_event_loop()
    threads = [threading.Thread(target=rest_worker, args=(soak, n, 2 / REST_RATE), daemon=True)
               for n in range(2)]
    threads.append(threading.Thread(target=stall_worker, args=(soak,), daemon=True))
    threads.append(threading.Thread(target=Chaos(soak).run, daemon=True))
    threads.append(threading.Thread(target=ws_loop.run_until_complete,
                                    args=(readers_main(soak),), daemon=True))
    for t in threads:
        t.start()
    return threads


def watch(soak, sampler, total_s):
    """Samples every SAMPLE_S until the end; returns (explorer died,
    descriptors by kind after the warm-up)."""
    pid = soak.args.explorer_pid
    fds_warm = None
    next_sample = time.monotonic() + SAMPLE_S
    while time.monotonic() < soak.end:
        soak.stop.wait(max(0.0, next_sample - time.monotonic()))
        next_sample += SAMPLE_S
        try:
            row = sampler.sample() if alive(pid) else None
        except (OSError, requests.RequestException, KeyError, ValueError) as e:
            row = None if not alive(pid) else e
        if row is None:
            soak.fail("explorer", "explorer died")
            return True, fds_warm
        if isinstance(row, Exception):
            soak.fail("sample", f"{type(row).__name__}: {row}")
            continue
        if fds_warm is None and row["t"] >= warmup_s(total_s):
            fds_warm = fd_kinds(pid)
        if len(sampler.rows) % 12 == 0:
            print(f"  [{row['t']:7.1f}s] RSS {row['rss_kb'] / 1024:.1f} MiB, fds {row['fds']}, "
                  f"threads {row['threads']}, CPU {row['cpu']}, queue "
                  f"{row['ws_queue_bytes'] / 1024:.0f} KiB, ws {row['ws_connections']:.0f}, "
                  f"REST {row['rest_ok']} ok {row['rest_fail']} failed", flush=True)
    return False, fds_warm


def stop_threads(soak, threads):
    """Stops the load; every thread gets at most 30 s in all to finish."""
    soak.stop.set()
    deadline = time.monotonic() + 30
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        soak.note(f"threads still running at the end: {stuck}")


def report(soak, rows, total_s, died, fds_warm, status):
    """The report's lines and whether the soak passed."""
    out = window_table(rows, soak.latencies, total_s)
    out.append("")
    verdicts = judge(rows, total_s)
    judged = total_s >= TREND_MIN_S
    if not judged:
        out.append(f"a run under {TREND_MIN_S // 60} min: trends shown, not judged")
    out.append(f"{'series':32} {'first judged':>13} {'middle':>13} {'last':>13} "
               f"{'LSQ rise':>13} {'tolerance':>13}  verdict")
    for col, label, first, m_mid, m_last, rise, tol, up in verdicts:
        out.append(f"{label:32} {fmt(col, first):>13} {fmt(col, m_mid):>13} "
                   f"{fmt(col, m_last):>13} {fmt(col, rise):>13} {fmt(col, tol):>13}  "
                   f"{'UPWARD' if up else ('flat' if m_mid is not None else 'too short')}")
    out.append("")
    if rows:
        first, last = rows[0], rows[-1]
        out.append(f"first sample -> last: RSS {first['rss_kb'] / 1024:.1f} -> "
                   f"{last['rss_kb'] / 1024:.1f} MiB, fds {first['fds']} -> {last['fds']}, "
                   f"threads {first['threads']} -> {last['threads']}, loop lag max so far "
                   f"api {last['lag_max_api'] * 1000:.0f} ms, ingest "
                   f"{last['lag_max_ingest'] * 1000:.0f} ms; probes over 100 ms: api "
                   f"{last['lag_over_api']:.0f}, ingest {last['lag_over_ingest']:.0f}")
    if fds_warm is not None and not died:
        out.append(f"descriptors by kind after warm-up: {fds_warm}; at the end: "
                   f"{fd_kinds(soak.args.explorer_pid)}")
    with soak.lock:
        counts = dict(sorted(soak.counts.items()))
        failures = list(soak.failures)
    out.append("counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if status:
        out.append("operators at the end: " + ", ".join(
            f"{n} {e['state']}" + (f" ({e.get('reason')})" if e.get("reason") else "")
            + (" (rejected)" if e.get("rejected") else "")
            for n, e in sorted(status.items())))
    out.append(f"soak.py's own CPU: {sum(os.times()[:2]):.0f} s")
    out.append("")
    for t, kind, detail in failures[:40]:
        out.append(f"failure at {t:.1f} s, {kind}: {detail}")
    if len(failures) > 40:
        out.append(f"... and {len(failures) - 40} more")
    ups = [label for _, label, *_, up in verdicts if up] if judged else []
    by_kind = {}
    for _, kind, _ in failures:
        by_kind[kind] = by_kind.get(kind, 0) + 1
    ok = not failures and not ups and not died
    out.append("soak: " + ("PASS" if ok else "FAIL (" + "; ".join(
        [f"{n} {k} failure(s)" for k, n in by_kind.items()] +
        [f"{u} trends upward" for u in ups]) + ")"))
    return out, ok


def main():
    args = parse_args()
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
    threads = start_threads(soak)
    died, fds_warm = watch(soak, sampler, total_s)
    stop_threads(soak, threads)

    status = {}
    if not died:
        for ex in soak.exchanges:
            fakex(soak, ex, "reset")
        try:
            settle(soak)
            sampler.sample()
            status = soak.exchanges_status()
        except (OSError, requests.RequestException, KeyError, ValueError) as e:
            soak.fail("explorer", f"after the run: {type(e).__name__}: {e}")

    with open(os.path.join(args.work, "samples.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(sampler.rows)
    lines, ok = report(soak, sampler.rows, total_s, died, fds_warm, status)
    text = "\n".join(lines)
    print(text, flush=True)
    with open(os.path.join(args.work, "report.txt"), "w") as f:
        f.write(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
