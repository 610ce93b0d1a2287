"""What happens to the service during the soak: faults through the fake
exchange's control API, operator files edited, SIGHUPs and admin reloads,
on one scheduler thread (tests/soak/soak.py has the schedule)."""
import os
import signal
import threading

import requests

from soak_state import fakex

FAULT_EVERY_S = 20
FAULT_HOLD_S = 15
EDIT_EVERY_S = 45
SIGHUP_EVERY_S = 60
ADMIN_EVERY_S = 100
RELOAD_WITHIN_S = 25

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
