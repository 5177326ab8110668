"""Start `i2v emulator serve` in its own process for a benchmark; yields its base URL."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


@contextmanager
def emulator(tmp: Path, **config: Any) -> Iterator[str]:
    cfg = tmp / "emulator.yaml"
    cfg.write_text(
        yaml.safe_dump({"debug_routes": True, "cache_dir": str(tmp / "renders"), **config})
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "i2v_pipeline",
            "emulator",
            "serve",
            "--port",
            "0",
            "--config",
            str(cfg),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def counts(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/_emulator/debug/requests") as r:
        return json.load(r)["counts"]  # type: ignore[no-any-return]


def account_emulator(tmp: Path, rate: float, processing: float) -> Any:
    """The emulator as a rate-limited account: every API call past `rate`/s is throttled
    (code 1005), jobs take `processing` s, and neither credits nor the processing cap bind."""
    return emulator(
        tmp,
        queue_time=0.0,
        processing_time=processing,
        max_processing=1_000_000,  # the account's processing cap must not bind here
        credits=1e9,
        throttle={"rps": rate, "scope": "account"},
    )
