"""Shared fixtures: a scratch folder with the repo's sample images and a manifest writer."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "manifests" / "images"

MINIMAL = """\
version: 1
name: t
images:
  - path: images/garden.png
prompts:
  - id: a
    template: "A calm scene"
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(IMAGES, tmp_path / "images")
    return tmp_path


WriteManifest = Callable[..., Path]


@pytest.fixture
def write_manifest(workdir: Path) -> WriteManifest:
    def write(text: str = MINIMAL, name: str = "m.yaml") -> Path:
        path = workdir / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


class ThreadedEmulator:
    """An Emulator on a loopback port 0, in its own thread and event loop, so that the CLI under
    test (which runs its own loop) can talk to it."""

    def __init__(self, config: object) -> None:
        import asyncio
        import threading

        from i2v_pipeline.emulator import Emulator

        self.loop = asyncio.new_event_loop()
        self.emu = Emulator(config)  # type: ignore[arg-type]
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.emu.start())
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.emu.stop())

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert ready.wait(10), "emulator did not start"

    @property
    def base_url(self) -> str:
        return self.emu.base_url

    def creates(self) -> int:
        return sum(self.emu.state.creates.values())

    def requests(self, endpoint: str | None = None) -> int:
        return sum(1 for r in self.emu.log if endpoint is None or r.endpoint == endpoint)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    from i2v_pipeline.emulator import EmulatorConfig

    monkeypatch.setenv("AKOOL_API_KEY", "emulator-key")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    server = ThreadedEmulator(
        EmulatorConfig(queue_time=0.05, processing_time=0.3, cache_dir=tmp_path / "renders")
    )
    yield server
    server.close()
