"""The script a user writes without i2v: create, poll each id every 5 s, 64 at a time, sleep
1 s on a throttle answer (code 1005), download. A contender in bench_throughput.py.

    python3 benchmarks/naive_client.py URL IMAGE_URL N   -> prints {"seconds": .., "done": ..}
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp

V4 = "/api/open/v4/image2Video"
HEADERS = {"x-api-key": "emulator-key"}


async def call(s: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST until the answer is not a throttle."""
    while True:
        async with s.post(url, json=body, headers=HEADERS) as r:
            answer: dict[str, Any] = await r.json(content_type=None)
        if answer.get("code") != 1005:
            return answer
        await asyncio.sleep(1)


async def one(s: aiohttp.ClientSession, base: str, image: str, i: int) -> bool:
    body = {"image_url": image, "prompt": f"shot {i}", "video_length": 5, "resolution": "720p"}
    created = await call(s, base + V4 + "/createBySourcePrompt", body)
    if created.get("code") != 1000:
        return False
    vid = created["data"]["_id"]
    while True:
        await asyncio.sleep(5)
        got = await call(s, base + V4 + "/resultsByIds", {"_ids": vid})
        (job,) = got["data"]["result"]
        if job["status"] == 3:
            async with s.get(job["video_url"]) as r:
                await r.read()
            return True
        if job["status"] == 4:
            return False


async def main(base: str, image: str, n: int) -> None:
    gate = asyncio.Semaphore(64)

    async def limited(i: int) -> bool:
        async with gate:
            return await one(s, base, image, i)

    t0 = time.monotonic()
    async with aiohttp.ClientSession() as s:
        done = await asyncio.gather(*(limited(i) for i in range(n)))
    print(json.dumps({"seconds": time.monotonic() - t0, "done": sum(done)}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
