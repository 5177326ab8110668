"""Synthetic campaigns for report tests: a manifest, a lock written directly (no API), and one
small real MP4 linked to every output path, so thousands of cards cost one encode."""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import yaml

from i2v_pipeline.model import ErrorRecord, FileRecord, JobSpec, LockEntry
from i2v_pipeline.spec.campaign import load_campaign
from i2v_pipeline.spec.fingerprint import hash_file
from i2v_pipeline.state.journal import request_text
from i2v_pipeline.state.lock import compact
from i2v_pipeline.state.plan import lock_request

HOSTILE_TAG = '"><img src=x onerror=alert(1)>'
HOSTILE_PROMPT = "<script>alert('p')</script> \"quoted\" & {{ image.id }}"


def make_mp4(path: Path, seconds: int = 2, fps: int = 10, size: int = 64) -> Path:
    """A real H.264 MP4 of `seconds` seconds, like the emulator's renders but tiny."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i in range(seconds * fps):
            pixels = np.full((size, size, 3), (i * 12) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_manifest(workdir: Path, prompts: int, *, hostile: bool = False) -> Path:
    """Three images (garden and sunrise tagged `day`, tower `night`) times `prompts` prompts;
    hostile puts markup and quotes in the first prompt (tags are identifiers in a manifest)."""
    doc = {
        "version": 1,
        "name": "synth",
        "defaults": {"model": "AkoolImage2VideoFastV1", "resolution": "720p", "duration": 5},
        "images": [
            {"path": "images/garden.png", "tags": ["day"]},
            {"path": "images/sunrise.png", "tags": ["day"]},
            {"path": "images/tower.png", "tags": ["night"]},
        ],
        "prompts": [
            {"id": f"p{i}", "template": f"Shot {i} of the {{{{ image.id }}}}"}
            for i in range(prompts)
        ],
        "output": {"dir": "out", "path": "{{ image.id }}/{{ prompt.id }}.mp4"},
    }
    if hostile:
        doc["prompts"][0]["template"] = HOSTILE_PROMPT  # type: ignore[index]
    path = workdir / "synth.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


State = Callable[[int, JobSpec], str]
"""The lock state to record for the n-th job: succeeded, missing (succeeded, file deleted),
failed, unknown, or none (not in the lock: planned)."""


def write_lock(manifest: Path, sample: Path, state: State) -> dict[str, str]:
    """Record every job in the lock as state() says; link sample to each succeeded output.
    Returns the state given to each job id."""
    campaign = load_campaign(manifest)
    base = campaign.manifest.base_dir
    sha, size = hash_file(sample), sample.stat().st_size
    entries: dict[str, LockEntry] = {}
    given: dict[str, str] = {}
    for n, spec in enumerate(campaign.specs):
        kind = given[spec.id] = state(n, spec)
        if kind == "none":
            continue
        rel = os.path.relpath(campaign.output_dir / spec.output, base)
        files: tuple[FileRecord | None, ...] = ()
        if kind in ("succeeded", "missing"):
            files = (FileRecord(rel, sha, size),)
            if kind == "succeeded":
                (base / rel).parent.mkdir(parents=True, exist_ok=True)
                os.link(sample, base / rel)
        entries[spec.fingerprint] = LockEntry(
            job_id=spec.id,
            fingerprint=spec.fingerprint,
            state="succeeded" if kind == "missing" else kind,  # type: ignore[arg-type]
            attempt=f"a{n:011d}",
            request_json=request_text(lock_request(spec)),
            remote_ids=(f"r{n:023d}",) if kind != "unknown" else (),
            remote_status=((4 if kind == "failed" else 3),) if kind != "unknown" else (),
            credits=20 if kind != "unknown" else None,
            files=files,
            intent_at="2026-01-02T10:00:00Z",
            submitted_at="2026-01-02T10:00:00Z" if kind != "unknown" else None,
            finished_at="2026-01-02T10:01:30Z" if kind != "unknown" else None,
            error=ErrorRecord(1015, "<b>moderation</b> refused") if kind == "failed" else None,
        )
    compact(campaign.lock_path, entries, manifest=manifest.name, command="test", endpoint="x")
    return given
