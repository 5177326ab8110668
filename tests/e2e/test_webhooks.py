"""`i2v run --webhook-listen` against the emulator's real signed webhooks on loopback, and
`i2v webhook verify` on captured deliveries."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from i2v_pipeline.emulator import EmulatorConfig
from i2v_pipeline.webhook_crypto import seal

from ..conftest import ThreadedEmulator, WriteManifest
from .test_run import run

MANIFEST = """\
version: 1
name: hooks
provider: {{endpoint: "{url}", image_base_url: "file://"}}
images:
  - glob: "images/*.png"
prompts:
  - id: dolly
    template: "Dolly in on {{{{ image.id }}}}"
  - id: pan
    template: "Pan across {{{{ image.id }}}}"
output:
  dir: out
limits: {{poll_interval: 0.1, create_rps: 50, request_rps: 100, webhook_poll_interval: {wait}}}
"""

# the §10 self-made vector (akool-api.md): verifies with these keys
VECTOR = {
    "signature": "6d752740f3f347189a225c61cf8bc238719d617e",
    "dataEncrypt": "pwgBa28LPVRv7oLWryr57OgUHStUlyM75IXsXPUDCxyrZ+YW1k0trZ7U/k5ldMcF0uZkfQ56PO49fP"
    "Xq3c/JhhRB0Wv5Pdl6yNc6TlDniqj9JLNTuI4fTFNTznCtV/3kz3h2uHOk/7FrW5U9kEd9oQ==",
    "timestamp": 1710757981609,
    "nonce": "1529",
}


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's webhook keys: the emulator's clientId and clientSecret, as a user sets them."""
    config = EmulatorConfig()
    monkeypatch.setenv("AKOOL_CLIENT_ID", config.client_id)
    monkeypatch.setenv("AKOOL_CLIENT_SECRET", config.client_secret)


def test_webhooks_finish_the_run_without_polls(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, keys: None
) -> None:
    """With --webhook-listen every job finishes from its webhook: no resultsByIds call."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url, wait=60))
    code, summary, err = run("run", str(path), "--yes", "--json", "--webhook-listen", "127.0.0.1:0")
    assert code == 0, err
    assert summary is not None and summary["done"] == 6
    assert emulator.requests("results") == 0
    delivered = emulator.emu.webhooks.delivered
    assert sum(p["status"] == 3 for p in delivered) == 6


def test_embedded_emulator_webhooks_use_its_own_keys(
    write_manifest: WriteManifest, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`endpoint: emulator`: the URL comes from the listen address and the keys from the
    emulator, no AKOOL_CLIENT_* needed; the job's only API request is its create."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(workdir / "cache"))
    monkeypatch.delenv("AKOOL_CLIENT_ID", raising=False)
    monkeypatch.delenv("AKOOL_CLIENT_SECRET", raising=False)
    path = write_manifest()
    code, summary, err = run("run", str(path), "--yes", "--json", "--webhook-listen", "127.0.0.1:0")
    assert code == 0, err
    assert summary is not None and summary["done"] == 1 and summary["requests"] == 1


def test_a_lost_webhook_is_finished_by_the_safety_net_poll(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, keys: None
) -> None:
    """A job whose `succeeded` webhook never comes is polled after webhook_poll_interval."""
    sender = emulator.emu.webhooks
    send: Callable[..., Awaitable[None]] = sender._deliver
    lost: list[str] = []

    async def lose_one(job: Any, status: int, url: str) -> None:
        if status == 3 and not lost:
            lost.append(job.id)  # the emulator "forgets" this one
            return
        await send(job, status, url)

    sender._deliver = lose_one  # type: ignore[method-assign]
    path = write_manifest(MANIFEST.format(url=emulator.base_url, wait=1))
    code, summary, err = run("run", str(path), "--yes", "--json", "--webhook-listen", "127.0.0.1:0")
    assert code == 0, err
    assert summary is not None and summary["done"] == 6 and len(lost) == 1
    assert 1 <= emulator.requests("results") <= 3


def test_webhook_listen_errors_exit_2(
    write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch, keys: None
) -> None:
    """A bad address, a real endpoint without provider.webhook_url, missing keys: exit 2."""
    path = write_manifest(MANIFEST.format(url="http://127.0.0.1:9", wait=60))
    code, _, err = run("run", str(path), "--yes", "--webhook-listen", "localhost")
    assert code == 2 and "HOST:PORT" in err
    real = write_manifest(
        MANIFEST.format(url="https://openapi.akool.com", wait=60).replace(
            '"file://"', '"https://cdn.example.com/i"'
        ),
        name="real.yaml",
    )
    monkeypatch.setenv("AKOOL_API_KEY", "k" * 32)
    code, _, err = run("run", str(real), "--yes", "--webhook-listen", "127.0.0.1:0")
    assert code == 2 and "provider.webhook_url" in err and "Traceback" not in err
    monkeypatch.delenv("AKOOL_CLIENT_SECRET")
    code, _, err = run("run", str(path), "--yes", "--webhook-listen", "127.0.0.1:0")
    assert code == 2 and "AKOOL_CLIENT_SECRET" in err


@pytest.mark.parametrize("where", ["busy", "8.8.8.8:9999", "no such host!:9999"])
def test_webhook_listen_address_that_cannot_bind_exits_2_before_buying(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, keys: None, where: str
) -> None:
    """A port in use, an address not of this machine, a garbage host: exit 2 with the
    ConfigError message (no ExceptionGroup traceback), and no create was sent."""
    path = write_manifest(MANIFEST.format(url=emulator.base_url, wait=60))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        if where == "busy":
            where = f"127.0.0.1:{busy.getsockname()[1]}"
        code, _, err = run("run", str(path), "--yes", "--webhook-listen", where)
    assert code == 2 and "cannot listen there" in err, err
    assert "Traceback" not in err and "ExceptionGroup" not in err
    assert emulator.creates() == 0


def test_verify_prints_the_decrypted_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`webhook verify` on the §10 vector: exit 0, the payload, in text and in JSON."""
    monkeypatch.setenv("AKOOL_CLIENT_ID", "test-client-id-0001")
    monkeypatch.setenv("AKOOL_CLIENT_SECRET", "abcdefghijklmnopqrstuvwx")
    body = tmp_path / "d.json"
    body.write_text(json.dumps(VECTOR))
    code, _, err = run("webhook", "verify", "--body", str(body))
    assert code == 0, err
    code, doc, _ = run("webhook", "verify", "--body", str(body), "--json")
    assert code == 0 and doc is not None and doc["verified"] is True
    assert doc["payload"] == {
        "_id": "689174694b4dbdd4ab3d28c9",
        "status": 3,
        "type": "image2video",
        "url": "https://example.com/v.mp4",
    }
    assert doc["sent_at"].startswith("2024-03-18")


def test_verify_failures_exit_2_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tampered body, wrong keys, too old, no keys, no file: exit 2, no traceback, no secret."""
    monkeypatch.setenv("AKOOL_CLIENT_ID", "test-client-id-0001")
    monkeypatch.setenv("AKOOL_CLIENT_SECRET", "abcdefghijklmnopqrstuvwx")
    body = tmp_path / "d.json"
    body.write_text(json.dumps({**VECTOR, "nonce": "1530"}))
    code, _, err = run("webhook", "verify", "--body", str(body))
    assert code == 2 and "signature does not match" in err
    assert "abcdefghijklmnopqrstuvwx" not in err
    code, doc, _ = run("webhook", "verify", "--body", str(body), "--json")
    assert code == 2 and doc is not None and doc["ok"] is False and doc["verified"] is False
    assert "signature does not match" in str(doc["reason"])
    body.write_text(json.dumps(VECTOR))
    code, _, err = run("webhook", "verify", "--body", str(body), "--max-age", "300")
    assert code == 2 and "stale" in err
    code, doc, _ = run("webhook", "verify", "--body", str(body), "--max-age", "300", "--json")
    assert code == 2 and doc is not None and doc["ok"] is False and doc["verified"] is True
    assert "stale" in str(doc["reason"])
    code, _, err = run("webhook", "verify", "--body", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err
    monkeypatch.delenv("AKOOL_CLIENT_ID")
    code, _, err = run("webhook", "verify", "--body", str(body))
    assert code == 2 and "AKOOL_CLIENT_ID" in err and "Traceback" not in err


def test_verify_with_the_emulator_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--emulator checks a delivery the (embedded) emulator signed with its own keys."""
    monkeypatch.delenv("AKOOL_CLIENT_ID", raising=False)
    config = EmulatorConfig()
    sealed = seal({"_id": "ab" * 12, "status": 2}, config.client_id, config.client_secret, 1, "9")
    body = tmp_path / "d.json"
    body.write_text(json.dumps(sealed))
    code, doc, err = run("webhook", "verify", "--body", str(body), "--emulator", "--json")
    assert code == 0, err
    assert doc is not None and doc["payload"]["status"] == 2
