"""Throughput at the account's limit, with the settings a user actually writes.

The emulator throttles every API call of the account at R requests/s (code 1005 past it), jobs
take T seconds; the manifest sets only the rate (create_rps = request_rps), everything else is
a default. Contenders, each in its own process, each against a fresh emulator:

  (a) `i2v run`, rate configured at the limit R          targets: ratio <= 1.08, <= 1.10
      requests per video, throttle answers <= 2 % of requests
  (b) `i2v run`, rate configured at 2 R                  target: ratio <= 1.20
  (naive) benchmarks/naive_client.py: create, poll each id every 5 s, 64 at a time, sleep 1 s on
      a throttle answer

For each: makespan / (N/R + T), API requests per video (downloads excluded), throttle answers,
CPU per job and peak memory of the contender's process; min/median/max over --repeat runs.

    python3 benchmarks/bench_throughput.py [--jobs 600 2000] [--rate 20] [--processing 5]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import account_emulator
from bench_run import manifest

HERE = Path(__file__).resolve().parent


@dataclass
class Result:
    ratio: float
    per_video: float
    throttled: int
    requests: int
    cpu_ms: float
    peak_mb: float
    done: int


def api_counts(url: str) -> tuple[int, int]:
    """(API requests, downloads and debug excluded; throttle answers) the emulator counted."""
    with urllib.request.urlopen(f"{url}/_emulator/debug/requests") as r:
        got = json.load(r)
    counts = {k: v for k, v in got["counts"].items() if k not in ("video", "debug")}
    return sum(counts.values()), int(got["throttled"])


def measured(
    cmd: list[str], cwd: Path, env: dict[str, str]
) -> tuple[dict[str, float], float, float]:
    """Run cmd; its JSON answer, its own CPU seconds and its peak memory in MB (wait4)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):
            err.seek(0)
            raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {err.read()[-2000:]!r}")
    return json.loads(out), usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


WORK = Path(tempfile.gettempdir())
"""Where runs make their folders; main() points it at one folder it removes at the end."""


def one_run(contender: str, n: int, rate: float, t: float, profile: Path | None = None) -> Result:
    # Each run's folder is kept until the benchmark ends: on ext4 without a journal (this
    # machine's disk) a file made soon after many were deleted costs several times the CPU
    # (the inode allocator skips recently deleted inodes one by one), so a run would pay for
    # the previous run's clean-up, which no user's run does.
    tmp = Path(tempfile.mkdtemp(dir=WORK))
    with account_emulator(tmp, rate, t) as url:
        path = manifest(tmp, url, n, rate, user_limits(rate * (2 if contender == "b" else 1)))
        env = {**os.environ, "AKOOL_API_KEY": "emulator-key", "XDG_CACHE_HOME": str(tmp / "c")}
        if contender == "naive":
            image = (tmp / "img" / "i0.png").as_uri()
            cmd = [sys.executable, str(HERE / "naive_client.py"), url, image, str(n)]
        else:
            cmd = [sys.executable, "-m", "i2v_pipeline", "run", str(path), "--json", "-q"]
            cmd.append("--yes")
            if profile is not None:  # the same run under cProfile (its CPU figure is inflated)
                cmd[1:3] = [str(HERE / "profile_cli.py")]
                env["I2V_PROFILE_OUT"] = str(profile)
        answer, cpu, peak = measured(cmd, tmp, env)
        requests, throttled = api_counts(url)
    done = int(answer["done"])
    return Result(
        ratio=float(answer["seconds"]) / (n / rate + t),
        per_video=requests / max(done, 1),
        throttled=throttled,
        requests=requests,
        cpu_ms=cpu / max(done, 1) * 1000,
        peak_mb=peak,
        done=done,
    )


def user_limits(rps: float) -> str:
    """What a user writes: the account's rate, nothing else."""
    return f"{{create_rps: {rps:g}, request_rps: {rps:g}}}"


def spread(values: list[float], fmt: Callable[[float], str]) -> str:
    return "/".join(fmt(v) for v in (min(values), statistics.median(values), max(values)))


def profile(out: Path, n: int, rate: float, t: float) -> None:
    """One run of contender (a) under cProfile: the top functions by own time into out."""
    raw = Path(tempfile.gettempdir()) / f"{out.stem}.prof"  # kept, for python3 -m pstats
    got = one_run("a", n, rate, t, profile=raw)
    split = json.loads(Path(f"{raw}.json").read_text())
    per_job = {k: f"{v / max(got.done, 1) * 1000:.2f}" for k, v in split.items()}
    with out.open("w") as f:
        f.write(
            f"N={n} R={rate:g}/s T={t:g} s, done {got.done}, under cProfile (inflated), "
            f"CPU ms/job: {per_job} (main_thread = the event loop, profiled below; the rest "
            "is worker threads: fsyncs, hashing, PyAV)\n"
        )
        pstats.Stats(str(raw), stream=f).sort_stats("tottime").print_stats(40)
    Path(f"{raw}.json").unlink()
    print(out.read_text())


NAMES = {"a": "i2v, rate = limit", "b": "i2v, rate = 2x limit", "naive": "naive script"}


def create_cost(folder: Path, files: int = 300) -> float:
    """CPU ms to make one empty file in a new folder under folder (the disk's inode allocator:
    high just after many deletions on ext4 without a journal). The files stay: see one_run."""
    made = Path(tempfile.mkdtemp(dir=folder))
    started = time.process_time()
    for i in range(files):
        os.close(os.open(made / f"f{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    return (time.process_time() - started) / files * 1000


def main() -> None:
    global WORK
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as work:
        WORK = Path(work)
        _main()


def _main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, nargs="+", default=[600])
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--processing", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=sorted(NAMES), default=["a", "b", "naive"])
    ap.add_argument("--profile", metavar="FILE", type=Path, help="one run of (a) under cProfile")
    args = ap.parse_args()
    if args.profile is not None:
        profile(args.profile.resolve(), args.jobs[0], args.rate, args.processing)
        return
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(
        f"R={args.rate:g}/s (throttle on all calls, account scope), T={args.processing:g} s, "
        f"load average {' '.join(load)} at start; min/median/max of {args.repeat} runs; "
        f"making a file here costs {create_cost(WORK):.3f} ms CPU (part of each job's)"
    )
    print(
        f"{'N':>5} {'contender':<22} {'makespan/(N/R+T)':>18} {'requests/video':>16} "
        f"{'throttled (% req)':>20} {'CPU ms/job':>14} {'peak MB':>12}"
    )
    for n in args.jobs:
        for who in args.only:
            runs = [one_run(who, n, args.rate, args.processing) for _ in range(args.repeat)]
            if any(r.done != n for r in runs):
                print(f"  warning: {who} finished {[r.done for r in runs]} of {n}")
            share = [100 * r.throttled / max(r.requests, 1) for r in runs]
            print(
                f"{n:>5} {NAMES[who]:<22} {spread([r.ratio for r in runs], '{:.3f}'.format):>18} "
                f"{spread([r.per_video for r in runs], '{:.2f}'.format):>16} "
                f"{spread([float(r.throttled) for r in runs], '{:.0f}'.format):>11} "
                f"({spread(share, '{:.1f}'.format)}) "
                f"{spread([r.cpu_ms for r in runs], '{:.1f}'.format):>14} "
                f"{spread([r.peak_mb for r in runs], '{:.0f}'.format):>12}",
                flush=True,
            )
    print(
        "targets: (a) ratio <= 1.08, requests/video <= 1.10, throttled <= 2 % of requests; "
        "(b) ratio <= 1.20"
    )


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"({time.monotonic() - t0:.0f} s)")
