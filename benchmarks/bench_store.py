"""What the shared store costs a run: `i2v run` of N jobs against the emulator (another
process) without a store, with a file:// store and with an s3:// store (moto's S3 server on
loopback). Uploads go on in the background, so the run's time should barely move.

Prints, per mode, the run's makespan, the process's wall time (start-up and the last uploads
included), its CPU, and how many videos reached the store; then `pull` of all N after the
local files are deleted.

    python3 benchmarks/bench_store.py [--jobs 200] [--rate 20] [--processing 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import emulator
from bench_run import manifest

LIMITS = (
    "{{create_rps: {rate}, request_rps: 50, poll_interval: 1.0, poll_batch: 200, downloads: 8}}"
)


def moto() -> tuple[object, str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", b""))
    return server, endpoint


def i2v(*args: str, env: dict[str, str], cwd: Path) -> tuple[dict[str, object], float, float]:
    """(JSON summary, wall seconds, CPU seconds) of one CLI call in its own process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "i2v_pipeline", *args, "--json", "-q"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
    if out.returncode not in (0,):
        raise SystemExit(f"{' '.join(args)} exited {out.returncode}: {out.stderr[-2000:]}")
    return json.loads(out.stdout), wall, cpu


def one(mode: str, args: argparse.Namespace, endpoint: str) -> None:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with emulator(
            tmp, queue_time=0.0, processing_time=args.processing, throttle_rps=None
        ) as url:
            path = manifest(tmp, url, args.jobs, args.rate, LIMITS.format(rate=args.rate))
            store = {
                "none": "",
                "file": f"store: {{url: '{(tmp / 'store').as_uri()}'}}\n",
                "s3": f"store: {{url: 's3://bench/{mode}', endpoint_url: '{endpoint}'}}\n",
            }[mode]
            path.write_text(path.read_text() + store)
            env = {
                **os.environ,
                "AKOOL_API_KEY": "emulator-key",
                "XDG_CACHE_HOME": str(tmp / "c"),
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench-secret",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            summary, wall, cpu = i2v("run", str(path), "--yes", env=env, cwd=tmp)
            print(
                f"{mode:>5}: makespan {summary['seconds']:.2f} s, process {wall:.2f} s, "
                f"CPU {cpu:.2f} s; {summary['done']} done, {summary['stored']} stored"
            )
            if mode == "none":
                return
            shutil.rmtree(tmp / "out")
            pulled, wall, cpu = i2v("pull", str(path), env=env, cwd=tmp)
            n = len(pulled["pulled"])  # type: ignore[arg-type]
            print(f"       pull of {n} videos: {wall:.2f} s, CPU {cpu:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--processing", type=float, default=2.0)
    ap.add_argument("--modes", default="none,file,s3")
    args = ap.parse_args()
    server, endpoint = moto()
    import boto3

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret")
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
    print(f"jobs {args.jobs}, R={args.rate}/s, T={args.processing} s")
    try:
        for mode in args.modes.split(","):
            one(mode, args, endpoint)
    finally:
        server.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
