"""`i2v run` against the emulator in another process: N jobs, create rate R, processing time T.

Prints makespan / (N/R + T) (target <= 1.10), API requests per finished video excluding
downloads (target <= 1.2), the runner's CPU per job (target <= 3 ms) and its peak memory.
The CPU is the runner process's own (wait4 of the child), never the emulator's.

    python3 benchmarks/bench_run.py [--jobs 2000] [--rate 50] [--processing 5] [--profile F]

--profile F runs the runner under benchmarks/profile_cli.py (cProfile in CPU time) and writes
the raw profile to F (read it with `python3 -m pstats F`); its CPU figure is then inflated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import counts, emulator

BENCH_LIMITS = """{{create_rps: {rate}, request_rps: 50, jobs_in_flight: 100000, poll_interval: 1.0,
          poll_batch: 200, downloads: 8}}"""


def manifest(folder: Path, url: str, n: int, rate: float, limits: str | None = None) -> Path:
    """A manifest of n jobs (a multiple of 40); `limits` replaces this benchmark's own."""
    (folder / "img").mkdir()
    for i in range(4):
        Image.new("RGB", (320, 180), (40 * i, 90, 160)).save(folder / "img" / f"i{i}.png")
    prompts = n // 4 // 10
    lines = "\n".join(
        f"  - {{id: p{j}, template: 'Shot {j} of {{{{ image.id }}}}, {{{{ mood }}}}'}}"
        for j in range(prompts)
    )
    moods = ", ".join(f"m{k}" for k in range(10))
    text = f"""version: 1
name: bench
provider: {{endpoint: "{url}", image_base_url: "file://"}}
images: [{{glob: "img/*.png"}}]
prompts:
{lines}
matrix: {{mood: [{moods}]}}
output: {{dir: out}}
limits: {limits or BENCH_LIMITS.format(rate=rate)}
"""
    path = folder / "bench.yaml"
    path.write_text(text)
    return path


def verify_cost(out: Path, sample: int = 50) -> float:
    """CPU ms to hash and verify one downloaded video, measured here on a sample of them."""
    from i2v_pipeline.run import verify as media
    from i2v_pipeline.spec.fingerprint import hash_file

    files = sorted(out.rglob("*.mp4"))[:sample]
    if not files:
        return 0.0
    t = time.process_time()
    for f in files:
        hash_file(f)
        media.mismatch(media.probe(f, hint=f.suffix), seconds=5, resolution=None)
    return (time.process_time() - t) / len(files) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--processing", type=float, default=5.0)
    ap.add_argument("--profile", metavar="FILE", help="cProfile the runner into FILE")
    here = Path(__file__).resolve().parent
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with emulator(
            tmp,
            queue_time=0.0,
            processing_time=args.processing,
            max_processing=100_000,
            throttle_rps=None,
        ) as url:
            path = manifest(tmp, url, args.jobs, args.rate)
            env = {**os.environ, "AKOOL_API_KEY": "emulator-key", "XDG_CACHE_HOME": str(tmp / "c")}
            t0 = time.monotonic()
            cmd = [sys.executable, "-m", "i2v_pipeline", "run", str(path), "--json", "-q", "--yes"]
            if args.profile:  # the same CLI, wrapped in cProfile
                cmd = [sys.executable, str(here / "profile_cli.py"), *cmd[3:]]
                env["I2V_PROFILE_OUT"] = str(Path(args.profile).resolve())
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=tmp
            )
            assert proc.stdout is not None
            out = proc.stdout.read()
            _, _, usage = os.wait4(proc.pid, 0)  # the runner's own usage, not the emulator's
            wall = time.monotonic() - t0
            summary = json.loads(out)
            verify_ms = verify_cost(tmp / "out")
            api = {k: v for k, v in counts(url).items() if k not in ("video", "debug")}
    n = summary["done"]
    bound = args.jobs / args.rate + args.processing
    cpu = usage.ru_utime + usage.ru_stime
    requests = sum(api.values())
    print(
        f"jobs {args.jobs} (done {n}, failed {summary['failed']}), "
        f"R={args.rate}/s, T={args.processing}s"
    )
    print(
        f"makespan {summary['seconds']:.1f} s (process {wall:.1f} s) "
        f"vs bound N/R+T = {bound:.1f} s: "
        f"ratio {summary['seconds'] / bound:.3f}  [target <= 1.10]"
    )
    print(f"API requests {requests} {api} = {requests / max(n, 1):.3f} per video  [target <= 1.2]")
    print(
        f"runner CPU {cpu:.1f} s = {cpu / max(n, 1) * 1000:.2f} ms per job (incl. start-up, plan, "
        f"download hashing and PyAV verification)  [target <= 3 ms]"
    )
    user = usage.ru_utime
    print(f"  user {user:.1f} s, system {cpu - user:.1f} s (fsyncs, file and socket writes)")
    own = cpu / max(n, 1) * 1000 - verify_ms
    print(
        f"  of which hashing + PyAV verification ≈ {verify_ms:.2f} ms per video (measured on a "
        f"sample); the rest ≈ {own:.2f} ms per job"
    )
    print(f"runner peak memory {usage.ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
