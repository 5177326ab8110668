"""API requests per video with and without webhooks (`i2v run --webhook-listen`).

The emulator (its own process) throttles every API call of the account at R requests/s and
takes T seconds per job; it posts a signed, encrypted webhook on each status change to the
run's receiver. Each mode runs against a fresh emulator:

  polls      `i2v run` as usual: resultsByIds finds the finished jobs
  webhooks   `i2v run --webhook-listen 127.0.0.1:0`: webhooks bring the statuses; polls are a
             safety net after limits.webhook_poll_interval (60 s), which a run of this size
             never reaches

Reported: API requests per video (downloads excluded), resultsByIds calls, webhooks the
emulator delivered, makespan / (N/R + T).

    python3 benchmarks/bench_webhooks.py [--jobs 200] [--rate 20] [--processing 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import account_emulator, counts
from bench_run import manifest
from bench_throughput import api_counts, measured, user_limits

from i2v_pipeline.emulator import EmulatorConfig


def one_run(webhooks: bool, n: int, rate: float, t: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with account_emulator(tmp, rate, t) as url:
            path = manifest(tmp, url, n, rate, user_limits(rate))
            keys = EmulatorConfig()  # the emulator signs with its default client id and secret
            env = {
                **os.environ,
                "AKOOL_API_KEY": "emulator-key",
                "AKOOL_CLIENT_ID": keys.client_id,
                "AKOOL_CLIENT_SECRET": keys.client_secret,
                "XDG_CACHE_HOME": str(tmp / "c"),
            }
            cmd = [sys.executable, "-m", "i2v_pipeline", "run", str(path), "--json", "-q", "--yes"]
            if webhooks:
                cmd += ["--webhook-listen", "127.0.0.1:0"]
            answer, _, _ = measured(cmd, tmp, env)
            requests, throttled = api_counts(url)
            results = counts(url).get("results", 0)
    done = max(int(answer["done"]), 1)
    return {
        "done": float(answer["done"]),
        "per_video": requests / done,
        "results": float(results),
        "throttled": float(throttled),
        "ratio": float(answer["seconds"]) / (n / rate + t),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--processing", type=float, default=5.0)
    args = ap.parse_args()
    n, rate, t = args.jobs, args.rate, args.processing
    print(f"N={n}, R={rate:g}/s (throttle on all calls), T={t:g} s")
    print(
        f"{'mode':<10} {'done':>5} {'requests/video':>15} {'resultsByIds':>13} "
        f"{'throttled':>10} {'makespan/(N/R+T)':>17}"
    )
    for mode in ("polls", "webhooks"):
        r = one_run(mode == "webhooks", n, rate, t)
        print(
            f"{mode:<10} {r['done']:>5.0f} {r['per_video']:>15.3f} {r['results']:>13.0f} "
            f"{r['throttled']:>10.0f} {r['ratio']:>17.3f}",
            flush=True,
        )


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"({time.monotonic() - t0:.0f} s)")
