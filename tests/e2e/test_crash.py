"""Crash safety with real processes: SIGKILL at random moments, Ctrl-C, a second concurrent run.

The emulator runs as `i2v emulator serve` in its own process so it outlives the killed runner.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from i2v_pipeline.errors import LockError
from i2v_pipeline.spec import validation as schemas
from i2v_pipeline.spec.fingerprint import hash_file

from ..conftest import WriteManifest

I2V = [sys.executable, "-m", "i2v_pipeline"]

MANIFEST = """\
version: 1
name: crash
provider: {{endpoint: "{url}", image_base_url: "file://"}}
images:
  - glob: "images/*.png"
prompts:
{prompts}
matrix:
  mood: [calm, bold]
output:
  dir: out
limits: {{poll_interval: 0.1, create_rps: 40, request_rps: 80, jobs_in_flight: 20}}
"""


def wait_for(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AKOOL_API_KEY", "emulator-key")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    proc = subprocess.Popen(
        [
            *I2V,
            "emulator",
            "serve",
            "--port",
            "0",
            "--processing-time",
            "0.4",
            "--queue-time",
            "0.1",
            "--debug-routes",
            "--cache-dir",
            str(tmp_path / "renders"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:")
    yield url
    proc.terminate()
    proc.wait(10)


def creates(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/_emulator/debug/creates") as r:
        rows = json.load(r)["creates"]
    return {row["prompt"]: row["creates"] for row in rows}


def manifest(write: WriteManifest, url: str, n_prompts: int) -> Path:
    prompts = "\n".join(
        f"  - {{id: p{i}, template: 'Shot {i} of {{{{ image.id }}}}, {{{{ mood }}}}'}}"
        for i in range(n_prompts)
    )
    return write(MANIFEST.format(url=url, prompts=prompts))


def start_run(path: Path, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*I2V, "run", str(path), "--yes", "-q"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def journal_lines(workdir: Path) -> int:
    try:
        return (workdir / "m.lock.yaml.journal").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_sigkill_at_random_moments(
    served: str, write_manifest: WriteManifest, workdir: Path
) -> None:
    """Kill the runner with SIGKILL several times mid-run; then rerun to completion. Nothing is
    created twice except what was reported unknown, nothing is lost, files match the lock."""
    path = manifest(write_manifest, served, 9)  # 3 images x 9 prompts x 2 moods = 54 jobs
    rng = random.Random(1234)
    for _ in range(4):
        target = journal_lines(workdir) + rng.randint(5, 60)
        proc = start_run(path, workdir)
        try:
            wait_for(lambda t=target, p=proc: journal_lines(workdir) >= t or p.poll() is not None)  # type: ignore[misc]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    # finish without resubmitting unknowns: nothing may be created twice
    for _ in range(3):
        done = subprocess.run(
            [*I2V, "run", str(path), "--yes", "--json", "-q"],
            cwd=workdir,
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            break
    plan = json.loads(
        subprocess.run(
            [*I2V, "plan", str(path), "--json"], cwd=workdir, capture_output=True, text=True
        ).stdout
    )
    unknown = {j["id"] for j in plan["jobs"] if j["action"] == "unknown"}
    counts = creates(served)
    assert all(n == 1 for n in counts.values()), counts
    # then resubmit the unknowns as a user would after checking
    final = subprocess.run(
        [*I2V, "run", str(path), "--yes", "--resubmit-unknown", "--json", "-q"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert final.returncode == 0, final.stderr
    doc = yaml.safe_load((workdir / "m.lock.yaml").read_text())
    schemas.validate("lock", doc, error_class=LockError)
    assert len(doc["jobs"]) == 54
    for job in doc["jobs"]:
        assert job["state"] == "succeeded", job
        for f in job["files"]:
            assert hash_file(workdir / f["path"]) == f["sha256"]
    counts = creates(served)
    assert len(counts) == 54
    twice = {p for p, n in counts.items() if n > 1}
    assert len(twice) <= len(unknown)
    assert max(counts.values()) <= 2


@pytest.mark.slow
def test_ctrl_c_compacts_and_exits_130(
    served: str, write_manifest: WriteManifest, workdir: Path
) -> None:
    """Ctrl-C stops submitting, compacts the lock, says how to resume, exits 130."""
    path = manifest(write_manifest, served, 9)
    proc = subprocess.Popen(
        [*I2V, "run", str(path), "--yes"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(
        lambda: (
            b'"t":"created"'
            in (
                (workdir / "m.lock.yaml.journal").read_bytes()
                if (workdir / "m.lock.yaml.journal").exists()
                else b""
            )
        )
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "resume with: i2v run" in err
    assert not (workdir / "m.lock.yaml.journal").exists()
    doc = yaml.safe_load((workdir / "m.lock.yaml").read_text())
    schemas.validate("lock", doc, error_class=LockError)
    assert any(j["state"] in ("submitted", "succeeded") for j in doc["jobs"])
    done = subprocess.run(
        [*I2V, "run", str(path), "--yes", "-q"], cwd=workdir, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert all(n == 1 for n in creates(served).values())


@pytest.mark.slow
def test_ctrl_c_with_creates_queued_leaves_no_unknown(
    served: str, write_manifest: WriteManifest, workdir: Path
) -> None:
    """Ctrl-C while creates wait on a slow rate limiter: the never-sent ones are not unknown,
    and every create the server saw is in the lock."""
    path = manifest(write_manifest, served, 9)
    path.write_text(path.read_text().replace("create_rps: 40", "create_rps: 2"))
    proc = subprocess.Popen(
        [*I2V, "run", str(path), "--yes", "-q"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journal = workdir / "m.lock.yaml.journal"
    wait_for(lambda: journal.exists() and journal.read_bytes().count(b'"t":"created"') >= 2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    plan = json.loads(
        subprocess.run(
            [*I2V, "plan", str(path), "--json"], cwd=workdir, capture_output=True, text=True
        ).stdout
    )
    assert plan["summary"]["unknown"] == 0
    sent = creates(served)
    assert 2 <= len(sent) < 54
    assert 54 - plan["summary"]["create"] == len(sent)


@pytest.mark.slow
def test_second_run_is_refused(served: str, write_manifest: WriteManifest, workdir: Path) -> None:
    """While one run holds the manifest, another exits 2 naming the holder."""
    path = manifest(write_manifest, served, 9)
    proc = start_run(path, workdir)
    try:
        run_file = workdir / "m.lock.yaml.run"
        wait_for(lambda: run_file.exists() and run_file.read_text().startswith("{"))
        second = subprocess.run(
            [*I2V, "run", str(path), "--yes"], cwd=workdir, capture_output=True, text=True
        )
        assert second.returncode == 2
        assert "another i2v run is using this manifest" in second.stderr
        assert f"pid {proc.pid}" in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
