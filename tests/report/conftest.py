"""Fixtures for report tests: a synthetic campaign with a lock in every state."""

from __future__ import annotations

from pathlib import Path

import pytest

from .synth import make_mp4

KINDS = ("succeeded", "missing", "failed", "unknown", "none")


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mp4(tmp_path_factory.mktemp("media") / "sample.mp4")
