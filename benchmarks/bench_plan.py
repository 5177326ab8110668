"""Plan at scale: a 100,000-job plan against a full lock, a 50 MB manifest of explicit jobs,
and a no-op rerun of 10,000 done jobs.

Each case runs the command a user types (`python -m i2v_pipeline plan M`, its listing written
to a file as CI would) in a fresh child process (building the fixtures does not count), --runs
times (default 3), and prints min/median/max of its wall seconds, CPU seconds (user + system, from
the child's own rusage: a loaded machine inflates wall time, not CPU time) and peak RSS.
The plan case also times `--json` and splits one run of the library calls by phase.
Targets (issue 9): `i2v plan` of 100k <= 3 s and <= 300 MB; validate the explicit manifest <= 10 s;
no-op `i2v run` of 10k done jobs <= 1 s.

    python3 benchmarks/bench_plan.py [--jobs 100000] [--explicit 100000] [--noop 10000]
                                     [--runs 3] [--only plan|explicit|noop]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = textwrap.dedent("""
    import json, sys, time
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
                      "read_lock": t3 - t2, "diff": t4 - t3,
                      "summary": {k: v for k, v in summarize(items).items() if v}}))
""")

WORDS = " ".join(
    (
        "slow dolly in across a sunlit studio where the product turns on a marble plinth while",
        "soft shadows drift and dust motes glitter in the warm afternoon light cinematic shallow",
        "depth of field gentle camera sway reflections ripple over brushed aluminium",
    )
).split(" ")


def build(folder: Path, n_images: int, n_prompts: int, per_combo: int) -> Path:
    """A matrix manifest: n_images x n_prompts x per_combo jobs."""
    _images(folder, n_images)
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


def _images(folder: Path, n: int) -> None:
    (folder / "img").mkdir()
    for i in range(n):
        Image.new("RGB", (8, 8), (i % 256, i // 256, 7)).save(folder / "img" / f"i{i:04d}.png")


def build_explicit(folder: Path, n_jobs: int, n_images: int = 100) -> Path:
    """A manifest of n_jobs explicit jobs, each with its own ~400-character prompt text (some
    with variables), fields and tags: about 500 bytes a job (50 MB for 100,000)."""
    _images(folder, n_images)
    lines = [
        "version: 1",
        "name: explicit",
        "vars: {brand: Acme}",
        "images:\n  - glob: 'img/*.png'",
        "output: {dir: out, path: '{{ image.id }}/{{ id }}.mp4'}",
        "limits: {max_jobs: 200000}",
        "jobs:",
    ]
    n = len(WORDS)
    for j in range(n_jobs):
        words = " ".join(WORDS[(j * 7 + k * 3) % n] for k in range(60))
        var = " for {{ brand }}" if j % 2 else ""
        lines.append(
            f"  - id: j{j:06d}\n"
            f"    image: i{j % n_images:04d}\n"
            f'    template: "Take {j}: {words}{var}, variation {j * 7919 % 100003}"\n'
            f"    fields: {{resolution: {'1080p' if j % 3 else '720p'}, duration: 5}}\n"
            f"    tags: [batch{j % 10}]"
        )
    path = folder / "explicit.yaml"
    path.write_text("\n".join(lines) + "\n")
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
        size, mtime = 16, None
        if make_files:
            f = manifest.parent / path
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(b"x" * 16)
            mtime = f.stat().st_mtime_ns
        entries[s.fingerprint] = LockEntry(
            job_id=s.id,
            fingerprint=s.fingerprint,
            state="succeeded",
            attempt=f"a{n}",
            request_json=request_text(lock_request(s)),
            remote_ids=(f"{n:024x}",),
            remote_status=(3,),
            credits=20,
            files=(FileRecord(path, "a" * 64, size, mtime),),
            intent_at="2026-11-01T00:00:00Z",
            submitted_at="2026-11-01T00:00:01Z",
            finished_at="2026-11-01T00:01:00Z",
            expires_at="2026-11-08T00:01:00Z",
        )
    compact(c.lock_path, entries, manifest=manifest.name, command="bench", endpoint="emulator")
    return len(entries)


TAIL = 64 * 1024


def child(argv: Sequence[str]) -> tuple[str, float, float, float]:
    """Run argv; (stdout, wall s, CPU s, peak RSS MB) of that child alone (os.wait4)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode:
            raise SystemExit(f"{argv[1:4]} failed ({proc.returncode}): {err[-2000:]}")
        # only the tail (the summary line, a small JSON answer): this process stays small, as
        # a child's peak RSS counts its memory from before its exec (a 40 MB `--json` kept here
        # made the next child's peak read 300 MB)
        out.seek(max(0, out.seek(0, os.SEEK_END) - TAIL))
        text = out.read().decode(errors="replace")
    return text, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def repeat(runs: int, argv: Sequence[str]) -> tuple[str, str]:
    """The last stdout, and `wall a/b/c s, CPU a/b/c s, peak a/b/c MB` (min/median/max)."""
    results = [child(argv) for _ in range(runs)]

    def spread(i: int, fmt: Callable[[float], str]) -> str:
        values = sorted(r[i] for r in results)
        return "/".join(fmt(v) for v in (values[0], statistics.median(values), values[-1]))

    two = "{:.2f}".format
    stats = f"wall {spread(1, two)} s, CPU {spread(2, two)} s, peak {spread(3, '{:.0f}'.format)} MB"
    return results[-1][0], stats


def make(kind: str, folder: Path, n: int) -> Path:
    """Build one fixture in a child process: a child's peak RSS counts its memory from before
    its exec, so this process stays small."""
    folder.mkdir()
    argv = [sys.executable, __file__, "--build", kind, str(folder), str(n)]
    return Path(subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip())


def build_fixture(kind: str, folder: Path, n: int) -> Path:
    if kind == "plan":
        manifest = build(folder, max(1, n // 1000), 50, 20)
        fill_lock(manifest, make_files=False)
    elif kind == "explicit":
        manifest = build_explicit(folder, n)
    else:
        manifest = build(folder, max(1, n // 1000), 50, 20)
        fill_lock(manifest, make_files=True)
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--explicit", type=int, default=100_000)
    ap.add_argument("--noop", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=("plan", "explicit", "noop"))
    ap.add_argument("--build", nargs=3, metavar=("KIND", "DIR", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build:
        print(build_fixture(args.build[0], Path(args.build[1]), int(args.build[2])))
        return
    print("min/median/max of", args.runs, "runs")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "plan"):
            manifest = make("plan", Path(tmp) / "big", args.jobs)
            cli = [sys.executable, "-m", "i2v_pipeline", "plan", str(manifest)]
            out, stats = repeat(args.runs, cli)
            print(
                f"`i2v plan` of {args.jobs:,} jobs vs full lock: {stats}  "
                f"[target <= 3 s, <= 300 MB]\n  last line: {out.splitlines()[-1]}"
            )
            _, stats = repeat(args.runs, [*cli, "--json"])
            print(f"`i2v plan --json` of the same: {stats}")
            out, _ = repeat(1, [sys.executable, "-c", CHILD, str(manifest)])
            r = json.loads(out)
            print(
                f"  where the time goes (library calls, one run): expand+validate+fingerprint "
                f"{r['expand_validate_fp']:.2f} s, read lock {r['read_lock']:.2f} s, "
                f"diff {r['diff']:.2f} s, import {r['import']:.2f} s"
            )
        if args.only in (None, "explicit"):
            manifest = make("explicit", Path(tmp) / "explicit", args.explicit)
            mb = manifest.stat().st_size / 1e6
            _, stats = repeat(
                args.runs, [sys.executable, "-m", "i2v_pipeline", "validate", str(manifest)]
            )
            print(
                f"`i2v validate` of {args.explicit:,} explicit jobs ({mb:.0f} MB manifest): "
                f"{stats}  [target <= 10 s]"
            )
        if args.only in (None, "noop"):
            manifest = make("noop", Path(tmp) / "small", args.noop)
            argv = [sys.executable, "-m", "i2v_pipeline", "run", str(manifest), "--json", "--yes"]
            out, stats = repeat(args.runs, argv)
            summary = json.loads(out)
            print(
                f"no-op `i2v run` of {summary['fresh']:,} done jobs "
                f"({summary['requests']} requests): {stats}  [target <= 1 s]"
            )


if __name__ == "__main__":
    main()
