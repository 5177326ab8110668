"""Shards in two git clones, merged by real `git` through `i2v lock merge` as its merge driver."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from i2v_pipeline.cli import cli
from i2v_pipeline.state.lock import read_lock

from ..conftest import IMAGES, REPO, ThreadedEmulator
from ..test_merge import succeeded, write
from .test_run import MANIFEST, run


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {args}: {done.stdout}{done.stderr}"
    return done.stdout


def clone(origin: Path, path: Path) -> Path:
    git(origin.parent, "clone", "-q", str(origin), str(path))
    git(path, "config", "user.name", "Shard")
    git(path, "config", "user.email", "shard@example.com")
    return path


def install(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    command = f"{shlex.quote(sys.executable)} -m i2v_pipeline"
    res = CliRunner().invoke(cli, ["lock", "install-merge-driver", "--command", command])
    assert res.exit_code == 0, res.output


def test_two_shards_merge_cleanly_and_the_merge_reruns_free(
    emulator: ThreadedEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--shard 1/2 and 2/2 in two clones, committed and merged by git: no conflict, a valid
    lock with every job, and a rerun of the merged checkout sends no request."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    git(origin, "config", "user.name", "Lead")
    git(origin, "config", "user.email", "lead@example.com")
    shutil.copytree(IMAGES, origin / "images")
    (origin / "m.yaml").write_text(MANIFEST.format(url=emulator.base_url))
    (origin / ".gitignore").write_text("*.run\n*.journal\n")
    install(origin, monkeypatch)
    install(origin, monkeypatch)  # idempotent: one attributes line
    assert (origin / ".gitattributes").read_text() == "*.lock.yaml merge=i2v-lock\n"
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "campaign")

    shards = [clone(origin, tmp_path / f"shard{k}") for k in (1, 2)]
    for k, repo in enumerate(shards, 1):
        code, summary, err = run(
            "run", str(repo / "m.yaml"), "--shard", f"{k}/2", "--yes", "--json"
        )
        assert code == 0 and summary is not None, err
        assert read_lock(repo / "m.lock.yaml"), f"shard {k}/2 ran no job"
        git(repo, "add", "m.lock.yaml", "out")
        git(repo, "commit", "-qm", f"shard {k}")

    one, two = shards
    install(one, monkeypatch)  # the driver lives in each clone's .git/config
    git(one, "pull", "-q", "--no-rebase", "--no-edit", str(two), "main")
    text = (one / "m.lock.yaml").read_text()
    assert "<<<<<<<" not in text and ">>>>>>>" not in text
    res = CliRunner().invoke(cli, ["validate", str(one / "m.lock.yaml")])
    assert res.exit_code == 0, res.output
    assert len(read_lock(one / "m.lock.yaml")) == 6 == emulator.creates()

    before = emulator.requests()
    code, summary, err = run("run", str(one / "m.yaml"), "--yes", "--json")
    assert code == 0, err
    assert emulator.requests() == before


def test_a_lock_truncated_on_one_side_is_a_conflict_not_an_empty_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One clone prunes a job, the other truncates the lock to 0 bytes: git stops on a conflict
    and the merged checkout keeps every paid record of ours."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    git(origin, "config", "user.name", "Lead")
    git(origin, "config", "user.email", "lead@example.com")
    paid = [succeeded(i, rid=f"r{i}") for i in range(3)]
    write(origin / "m.lock.yaml", paid)
    install(origin, monkeypatch)
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "campaign")

    one, two = (clone(origin, tmp_path / f"clone{k}") for k in (1, 2))
    pruned = write(one / "m.lock.yaml", paid[:2]).read_text()
    git(one, "commit", "-qam", "prune")
    (two / "m.lock.yaml").write_text("")
    git(two, "commit", "-qam", "truncate")

    install(one, monkeypatch)
    env = {**os.environ, "PYTHONPATH": str(REPO), "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(one)}
    done = subprocess.run(
        ["git", "pull", "--no-rebase", "--no-edit", str(two), "main"],
        cwd=one,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "CONFLICT" in done.stdout, done.stdout + done.stderr
    assert "THEIRS" in done.stderr and "is empty" in done.stderr, done.stderr
    assert (one / "m.lock.yaml").read_text() == pruned
    assert len(read_lock(one / "m.lock.yaml")) == 2
