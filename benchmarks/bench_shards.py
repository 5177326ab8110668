"""Shards share one account's limit: K `i2v run --shard k/K` processes against one emulator.

The emulator throttles every API call of the account at R requests/s (code 1005 past it), jobs
take T seconds. Each shard runs in its own folder (as on its own CI machine: one run lock per
manifest), with the manifest setting only the account's rate, as a user writes it; no shard
knows the others exist, so each must learn its share of the limit from the throttle answers.

Prints, per setting: makespan / (N/R + T) with N the whole campaign (target 1.1-1.2), API
requests per video (downloads excluded), throttle answers, failures. The makespan runs from
the first shard's run start to the last shard's end (Python start-up excluded, as `seconds` in
`i2v run --json`).

    python3 benchmarks/bench_shards.py [--jobs 600] [--rate 20] [--processing 5] [--shards 4]
                                       [--mult 1 2] [--baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import account_emulator
from bench_run import manifest
from bench_throughput import api_counts, user_limits


@dataclass
class Shard:
    done: int
    failed: int
    start: float
    end: float


def run_shards(folders: list[Path], env: dict[str, str]) -> list[Shard]:
    """Start every shard at once; each one's run window on this machine's monotonic clock."""
    k = len(folders)
    with ExitStack() as stack:
        procs = []
        for i, folder in enumerate(folders, 1):
            cmd = [sys.executable, "-m", "i2v_pipeline", "run", str(folder / "bench.yaml")]
            cmd += ["--shard", f"{i}/{k}", "--json", "-q", "--yes"]
            err = stack.enter_context(open(folder / "stderr.txt", "w+b"))
            pipe = subprocess.PIPE
            procs.append((subprocess.Popen(cmd, cwd=folder, env=env, stdout=pipe, stderr=err), err))
        out: list[Shard] = []
        for proc, err in procs:
            stdout, _ = proc.communicate()
            end = time.monotonic()
            if proc.returncode not in (0, 1):
                err.seek(0)
                raise SystemExit(f"a shard failed ({proc.returncode}): {err.read()[-2000:]!r}")
            answer = json.loads(stdout)
            seconds = float(answer["seconds"])
            out.append(Shard(int(answer["done"]), int(answer["failed"]), end - seconds, end))
    return out


def one(n: int, rate: float, t: float, k: int, mult: float) -> None:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with account_emulator(tmp, rate, t) as url:
            first = tmp / "s1"
            first.mkdir()
            manifest(first, url, n, rate, user_limits(rate * mult))
            folders = [first]
            for i in range(2, k + 1):  # the same campaign checked out on another machine
                shutil.copytree(first, tmp / f"s{i}")
                folders.append(tmp / f"s{i}")
            env = {**os.environ, "AKOOL_API_KEY": "emulator-key", "XDG_CACHE_HOME": str(tmp / "c")}
            shards = run_shards(folders, env)
            requests, throttled = api_counts(url)
    done = sum(s.done for s in shards)
    failed = sum(s.failed for s in shards)
    makespan = max(s.end for s in shards) - min(s.start for s in shards)
    share = 100 * throttled / max(requests, 1)
    print(
        f"{n:>5} {k:>6} {mult:>6g}x {makespan:>9.1f} {makespan / (n / rate + t):>17.3f} "
        f"{requests / max(done, 1):>15.2f} {throttled:>9} ({share:.1f} %) {failed:>8} {done:>6}",
        flush=True,
    )
    t0 = min(s.start for s in shards)
    windows = ", ".join(f"{s.start - t0:.1f}-{s.end - t0:.1f} s ({s.done})" for s in shards)
    print(f"        each shard's run (jobs done): {windows}")
    if done != n:
        print(f"  warning: {done} of {n} finished")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, nargs="+", default=[600])
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--processing", type=float, default=5.0)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--mult", type=float, nargs="+", default=[1.0], help="configured rate / R")
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="first run the whole campaign in one process: on a shared machine, what the load "
        "allows at all",
    )
    args = ap.parse_args()
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(
        f"R={args.rate:g}/s (throttle on all calls, account scope), T={args.processing:g} s, "
        f"{args.shards} shards each configured at mult x R; load average {load} at start"
    )
    print(
        f"{'N':>5} {'shards':>6} {'rate':>7} {'makespan':>9} {'/(N/R+T)':>17} "
        f"{'requests/video':>15} {'throttled':>9} {'failed':>14} {'done':>6}"
    )
    for n in args.jobs:
        if args.baseline:
            one(n, args.rate, args.processing, 1, 1.0)
        for mult in args.mult:
            one(n, args.rate, args.processing, args.shards, mult)
    print("target: makespan/(N/R+T) near 1.1-1.2, no failures, every job done")


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"({time.monotonic() - t0:.0f} s)")
