"""The emulator must never be the runner's bottleneck: resultsByIds requests per second on
loopback, from a client in this process to `i2v emulator serve` in another (2 cores: one each).
Target >= 1,000 requests/s.

    python3 benchmarks/bench_emulator.py [--seconds 5] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import emulator


async def load(url: str, seconds: float, concurrency: int) -> tuple[int, float]:
    headers = {"x-api-key": "emulator-key"}
    async with aiohttp.ClientSession(headers=headers) as s:
        body = {
            "image_url": "https://example.com/a.png",
            "prompt": "p",
            "resolution": "720p",
            "video_length": 5,
            "count": 10,
        }
        ids: list[str] = []
        for _ in range(10):
            async with s.post(
                f"{url}/api/open/v4/image2Video/createBySourcePrompt/batch", json=body
            ) as r:
                ids += [i["_id"] for i in (await r.json())["data"]["successList"]]
        query = {"_ids": ",".join(ids)}
        done = 0
        stop = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop:
                async with s.post(f"{url}/api/open/v4/image2Video/resultsByIds", json=query) as r:
                    doc = await r.json()
                    assert doc["code"] == 1000 and len(doc["data"]["result"]) == 100
                done += 1

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, emulator(Path(tmp)) as url:
        done, elapsed = asyncio.run(load(url, args.seconds, args.concurrency))
    rps = done / elapsed
    print(
        f"resultsByIds (100 ids each): {done} requests in {elapsed:.1f} s = {rps:.0f} req/s "
        f"[target >= 1000: ratio {rps / 1000:.2f}]"
    )


if __name__ == "__main__":
    main()
