"""Explorer's vital signs, sampled from /proc and /metrics, and the
judging of their trends (tests/soak/soak.py defines a trend)."""
import os
import statistics
import time

from soak_state import metric_sum

WARMUP_MIN_S = 300
TREND_MIN_S = 540

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


# ---- Judging --------------------------------------------------------------------------------

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
