"""Plan 100,000 jobs against a full lock: expand, validate, fingerprint, diff.

Prints seconds and peak memory for the plan, and for a no-op plan of 10,000 done jobs, measured
in a fresh child process so that building the fixture does not count.
Targets (design §7): 100k plan < 5 s and < 300 MB; 10k no-op < 1.5 s.

    python3 benchmarks/bench_plan.py [--jobs 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from PIL import Image

EXTRA: list[str] = []
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = textwrap.dedent("""
    import gc, json, resource, sys, time
    gc.disable() if "--nogc" in sys.argv else None
    t0 = time.perf_counter()
    from i2v_pipeline.spec.campaign import load_campaign
    from i2v_pipeline.state.lock import load_state
    from i2v_pipeline.state.plan import make_plan, disk_check, output_prefix, summarize
    t1 = time.perf_counter()
    c = load_campaign(sys.argv[1])
    t2 = time.perf_counter()
    entries = load_state(c.lock_path)
    t3 = time.perf_counter()
    items = make_plan(c.specs, entries, prefix=output_prefix(c.manifest.base_dir, c.output_dir),
                      check=disk_check(c.manifest.base_dir), now=time.time())
    t4 = time.perf_counter()
    print(json.dumps({"jobs": len(c.specs), "import": t1 - t0, "expand_validate_fp": t2 - t1,
                      "read_lock": t3 - t2, "diff": t4 - t3, "total": t4 - t1,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "summary": {k: v for k, v in summarize(items).items() if v}}))
""")


def build(folder: Path, n_images: int, n_prompts: int, per_combo: int) -> Path:
    (folder / "img").mkdir()
    for i in range(n_images):
        Image.new("RGB", (8, 8), (i % 256, i // 256, 7)).save(folder / "img" / f"i{i:04d}.png")
    prompts = "\n".join(
        f"  - id: p{j}\n"
        f'    template: "Shot {j} of {{{{ image.id }}}} in {{{{ mood }}}} light, {{{{ brand }}}}"'
        for j in range(n_prompts)
    )
    moods = ", ".join(f"m{k}" for k in range(per_combo // 2))
    text = (
        "version: 1\nname: bench\nvars: {brand: Acme}\n"
        "images:\n  - glob: 'img/*.png'\n"
        f"prompts:\n{prompts}\n"
        f"matrix:\n  resolution: [720p, 1080p]\n  mood: [{moods}]\n"
        "output: {dir: out, path: '{{ image.id }}/{{ id }}.mp4'}\n"
    )
    path = folder / "bench.yaml"
    path.write_text(text)
    return path


def fill_lock(manifest: Path, make_files: bool) -> int:
    from i2v_pipeline.model import FileRecord, LockEntry
    from i2v_pipeline.spec.campaign import load_campaign
    from i2v_pipeline.state.journal import request_text
    from i2v_pipeline.state.lock import compact, lock_request

    c = load_campaign(manifest)
    entries = {}
    for n, s in enumerate(c.specs):
        path = f"out/{s.output}"
        if make_files:
            f = manifest.parent / path
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(b"x" * 16)
        entries[s.fingerprint] = LockEntry(
            job_id=s.id,
            fingerprint=s.fingerprint,
            state="succeeded",
            attempt=f"a{n}",
            request_json=request_text(lock_request(s)),
            remote_ids=(f"{n:024x}",),
            remote_status=(3,),
            video_urls=(f"https://cdn.example.com/{n}.mp4",),
            credits=20,
            files=(FileRecord(path, "a" * 64, 16),),
            intent_at="2026-11-01T00:00:00Z",
            submitted_at="2026-11-01T00:00:01Z",
            finished_at="2026-11-01T00:01:00Z",
            expires_at="2026-11-08T00:01:00Z",
        )
    compact(c.lock_path, entries, manifest=manifest.name, command="bench", endpoint="emulator")
    return len(entries)


def measure(manifest: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(manifest), *EXTRA],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big"
        big.mkdir()
        n_images = max(1, args.jobs // 1000)
        manifest = build(big, n_images, 50, 20)
        fill_lock(manifest, make_files=False)
        r = measure(manifest)
        print(
            f"plan {r['jobs']:,} jobs vs full lock: {r['total']:.2f} s "
            f"(expand+validate+fingerprint {r['expand_validate_fp']:.2f}, read lock "
            f"{r['read_lock']:.2f}, diff {r['diff']:.2f}); peak {r['peak_mb']:.0f} MB  "
            f"[target < 5 s: ratio {r['total'] / 5:.2f}; < 300 MB: ratio {r['peak_mb'] / 300:.2f}]"
        )
        small = Path(tmp) / "small"
        small.mkdir()
        manifest = build(small, 10, 50, 20)
        fill_lock(manifest, make_files=True)
        r = measure(manifest)
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "i2v_pipeline", "run", str(manifest), "--json", "--yes"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rerun = time.perf_counter() - t0
        summary = json.loads(out)
        print(
            f"no-op `i2v run` of {summary['fresh']:,} done jobs: {rerun:.2f} s wall, "
            f"{summary['requests']} requests  [target < 1.5 s: ratio {rerun / 1.5:.2f}]"
        )
        print(
            f"no-op plan of {r['jobs']:,} done jobs: {r['total'] + r['import']:.2f} s incl. import "
            f"({r['summary']}); [target < 1.5 s: ratio {(r['total'] + r['import']) / 1.5:.2f}]"
        )


if __name__ == "__main__":
    main()
