"""Splits `perf script` output (call graphs) of explorer into the stages of
ingest, for tests/bench/ingest/run BENCH_PERF=1.

Each sample goes to the first stage whose frame its stack holds, in the
order below (innermost stages first), so the shares add up to 100%. The
Debian Lua and lua-cjson libraries have no symbols for their internals:
their frames are attributed through the named engine frames around them.
Reads stdin, prints one line per stage.

With `--inclusive NAME...` it prints instead, for each named frame, the
share of samples whose stack holds it (inclusive time; shares overlap), as
tests/bench/fanout/run uses it.
"""
import collections
import re
import sys

# (label, frame names that put a sample in the stage); first match wins.
STAGES = [
    ("emit: prices read and parsed (price_field)", ["price_field"]),
    ("emit: ticker_validate (bid and ask parsed again)", ["ticker_validate"]),
    ("emit: store_find + store_put_ref (one lookup)", ["store_find", "store_put_ref"]),
    ("emit: the batch and the change feed (on_batch)", ["on_batch", "changes_put_tickers"]),
    ("emit: the rest (fields, pair, clocks, counters)", ["x_emit", "x_emit_many", "emit_one"]),
    ("change feed handed over, doorbell (changes_flush)", ["changes_flush"]),
    ("x.json.decode (lua-cjson, sandbox charge)", ["sandbox_json_decode"]),
    ("operator Lua: on_message's own code, VM, GC", ["sandbox_pcall"]),
    ("stream glue around the callback (engine)", ["ws_conn_on_receive", "on_ws_message"]),
    ("libwebsockets: socket reads, WS framing", ["lws_service_fd_tsi"]),
    ("libuv loop, timers, other engine", ["uv_run"]),
]

FRAME = re.compile(r"^\s*[0-9a-f]+ (\S+?)(?:\+0x[0-9a-f]+)? \(")


def stacks(lines):
    frames = []
    for line in lines:
        if not line.strip():
            if frames:
                yield frames
            frames = []
            continue
        m = FRAME.match(line)
        if m:
            frames.append(m.group(1))
    if frames:
        yield frames


def inclusive(names):
    counts = collections.Counter()
    total = 0
    for frames in stacks(sys.stdin):
        total += 1
        counts.update(set(frames).intersection(names))
    for name in names:
        print(f"  {counts[name] * 100 / max(total, 1):5.1f}%  {name}")
    print(f"  ({total} samples)")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--inclusive":
        inclusive(sys.argv[2:])
        return
    counts = collections.Counter()
    total = 0
    for frames in stacks(sys.stdin):
        total += 1
        names = set(frames)
        for label, keys in STAGES:
            if names.intersection(keys):
                counts[label] += 1
                break
        else:
            counts["elsewhere (kernel-only stacks, unwinding failed)"] += 1
    if not total:
        print("  no samples")
        return
    for label, _ in STAGES + [("elsewhere (kernel-only stacks, unwinding failed)", [])]:
        print(f"  {counts[label] * 100 / total:5.1f}%  {label}")
    print(f"  ({total} samples)")


main()
