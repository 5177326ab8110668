"""Soak: one `i2v run` of N jobs (default 20,000) against the emulator in its own process (fast
jobs, no throttle), the runner's memory sampled while it runs.

Prints the runner's resident memory (VmRSS) as the jobs go by, its peak (VmHWM), and the growth
per 1,000 jobs between a quarter and the end of the run: memory must stay flat, so the peak at
20,000 jobs stays near the peak at 2,000 (run both: `--n 2000`, then the default).

With `--store URL` the manifest gets `store: {url: URL}` (the content-addressed video store);
after the run the bench counts the objects under the store's `sha256/` prefix and checks each
video of the lock is stored exactly once.

    python3 benchmarks/bench_soak.py [--n 20000] [--rate 100] [--processing 2] [--store URL]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import emulator
from bench_run import manifest

SOAK_LIMITS = """{{create_rps: {rate}, request_rps: {rate}, jobs_in_flight: 100000,
          poll_interval: 1.0, poll_batch: 200, downloads: 8}}"""


RUNNER = """
import os, threading, time, tracemalloc
if os.environ.get("SOAK_TRACE"):  # Python's own heap beside the RSS: what is live objects
    every, out = float(os.environ["SOAK_TRACE"]), os.environ["SOAK_TRACE_OUT"]
    tracemalloc.start(1)
    def _trace():
        while True:
            time.sleep(every)
            size = tracemalloc.get_traced_memory()[0]
            with open(out, "a") as f, open("/proc/self/status") as st:
                rss = next(l.split()[1] for l in st if l.startswith("VmRSS"))
                f.write(f"traced {size / 2**20:.1f} MB, RSS {int(rss) / 1024:.1f} MB\\n")
    threading.Thread(target=_trace, daemon=True).start()
import i2v_pipeline.run.preflight as preflight
preflight.disk_free = lambda path: 1 << 50
from i2v_pipeline.cli import main
main()
"""
"""`i2v run`, its pre-flight disk check lifted: it budgets a 720p 5 s video generously (about
4.6 MB, 92 GB for 20,000), the emulator's are a few kB."""


def proc_kb(pid: int, field: str) -> int | None:
    """A `VmRSS`/`VmHWM` line of /proc/PID/status, in kB (None once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def creates(url: str) -> int:
    """Jobs created so far (one batch request per job here: count 1)."""
    try:
        with urllib.request.urlopen(f"{url}/_emulator/debug/requests", timeout=5) as r:
            return int(json.load(r)["counts"].get("batch", 0))
    except OSError:
        return -1


def sample(
    proc: subprocess.Popen[bytes], url: str, every: float
) -> tuple[list[tuple[float, int, int]], int]:
    """(seconds, jobs created, VmRSS kB) every `every` s until the runner exits; its VmHWM."""
    t0, rows, hwm = time.monotonic(), [], 0
    while proc.poll() is None:
        rss = proc_kb(proc.pid, "VmRSS")
        hwm = max(hwm, proc_kb(proc.pid, "VmHWM") or 0)
        if rss is not None:
            rows.append((time.monotonic() - t0, creates(url), rss))
        time.sleep(every)
    return rows, hwm


def store_check(store: str, lock: Path) -> str:
    """Objects under the store's sha256/ prefix against the lock's videos: one object per
    distinct video (keys are `sha256/<2 hex>/<62 hex>.mp4`, run/store.py), none missing, none
    extra, and every file of the lock flagged `stored`."""
    import fsspec
    import yaml

    fs, root = fsspec.core.url_to_fs(store.rstrip("/") + "/sha256")
    objects = [p for p in fs.find(root) if not p.endswith("/")]
    doc = yaml.safe_load(lock.read_text())
    files = [f for j in doc["jobs"] for f in j.get("files") or [] if f]
    videos = {f["sha256"] for f in files}
    held = [Path(p).parent.name + Path(p).name.split(".")[0] for p in objects]
    missing, extra = len(videos - set(held)), len(set(held) - videos)
    twice = len(held) - len(set(held))
    unflagged = sum(1 for f in files if not f.get("stored"))
    ok = not (missing or extra or twice or unflagged)
    return (
        f"store {store}: {len(objects)} objects under sha256/ for {len(files)} files "
        f"({len(videos)} distinct videos) in the lock: {missing} missing, {extra} extra, "
        f"{twice} duplicated, {unflagged} files not flagged stored: "
        f"{'OK (each video stored exactly once)' if ok else 'MISMATCH'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000, help="jobs (a multiple of 40)")
    ap.add_argument("--rate", type=float, default=100.0, help="create and request rate")
    ap.add_argument("--processing", type=float, default=2.0, help="seconds per emulated job")
    ap.add_argument("--every", type=float, default=1.0, help="sampling period, seconds")
    ap.add_argument("--store", metavar="URL", help="set `store: {url: URL}` in the manifest")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with emulator(
            tmp,
            queue_time=0.0,
            processing_time=args.processing,
            max_processing=1_000_000,
            credits=1e12,
        ) as url:
            path = manifest(tmp, url, args.n, args.rate, SOAK_LIMITS.format(rate=args.rate))
            if args.store:
                path.write_text(path.read_text() + f"store: {{url: {json.dumps(args.store)}}}\n")
            env = {**os.environ, "AKOOL_API_KEY": "emulator-key", "XDG_CACHE_HOME": str(tmp / "c")}
            cmd = [sys.executable, "-c", RUNNER, "run", str(path), "--json", "-q", "--yes"]
            with open(tmp / "stderr.txt", "w+b") as err:
                proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=err)
                rows, hwm = sample(proc, url, args.every)
                out = proc.stdout.read() if proc.stdout else b""
                if proc.wait() not in (0, 1):
                    err.seek(0)
                    raise SystemExit(f"the run failed ({proc.returncode}): {err.read()[-2000:]!r}")
            # the runner is the only child reaped so far (the emulator still runs)
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            summary = json.loads(out)
            report(args.n, summary, rows, hwm)
            print(
                f"runner CPU {usage.ru_utime + usage.ru_stime:.1f} s "
                f"({(usage.ru_utime + usage.ru_stime) * 1000 / args.n:.2f} ms per job); "
                f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
            )
            if args.store:
                print(store_check(args.store, tmp / "bench.lock.yaml"))


def report(
    n: int, summary: dict[str, object], rows: list[tuple[float, int, int]], hwm: int
) -> None:
    print(f"jobs {n}: done {summary['done']}, failed {summary['failed']}, {summary['seconds']} s")
    if "uploaded" in summary:
        print(f"store: {summary['stored']} files flagged stored, {summary['uploaded']} uploads")
    elif summary.get("stored"):
        print(f"store: {summary['stored']} uploads")
    print(f"{'t (s)':>7} {'created':>8} {'RSS MB':>7}")
    step = max(1, len(rows) // 12)
    for t, made, rss in rows[::step] + rows[-1:]:
        print(f"{t:>7.0f} {made:>8} {rss / 1024:>7.1f}")
    quarter = next((r for r in rows if r[1] >= n // 4), None)
    last = rows[-1] if rows else None
    if quarter and last and last[1] > quarter[1]:
        per_k = (last[2] - quarter[2]) / 1024 / ((last[1] - quarter[1]) / 1000)
        print(
            f"RSS growth from {quarter[1]} to {last[1]} jobs created: {per_k:+.2f} MB per 1000 jobs"
        )
    print(f"runner peak RSS (VmHWM) {hwm / 1024:.1f} MB at {n} jobs")


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"({time.monotonic() - t0:.0f} s)")
