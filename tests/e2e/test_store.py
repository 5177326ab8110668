"""The shared store end to end, against a real S3 API (moto in server mode on a loopback port)
and file://: run uploads, push fills gaps, pull restores after the local files are gone, and a
rerun then costs nothing; a missing object is named, a wrong one refused, an interrupted upload
never seen."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from i2v_pipeline.errors import StoreError
from i2v_pipeline.run.store import Store

from ..conftest import ThreadedEmulator, WriteManifest
from .test_run import run

pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

BUCKET = "videos"
SECRET = "s3-secret-never-shown"
MANIFEST = """\
version: 1
name: shared
provider: {{endpoint: "{url}", image_base_url: "file://"}}
images:
  - glob: "images/*.png"
prompts:
  - id: dolly
    template: "Dolly in on {{{{ image.id }}}}"
output:
  dir: out
  path: "{{{{ image.id }}}}/{{{{ prompt.id }}}}.mp4"
store: {store}
limits: {{poll_interval: 0.1, create_rps: 50, request_rps: 100}}
"""


class S3:
    """A moto S3 server on 127.0.0.1, port 0, with one bucket."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # moto's state is per process, not per server: start from an empty account
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", b""))
        self.client = boto3.client("s3", endpoint_url=self.endpoint)
        self.client.create_bucket(Bucket=BUCKET)

    def list(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    def body(self, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return data


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """Credentials only in the environment, as the provider chain finds them."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    server = S3()
    yield server
    server.server.stop()


def s3_manifest(emulator: ThreadedEmulator, s3: S3) -> str:
    store = f'{{url: "s3://{BUCKET}/team", endpoint_url: "{s3.endpoint}"}}'
    return MANIFEST.format(url=emulator.base_url, store=store)


def videos(workdir: Path) -> dict[str, bytes]:
    out = workdir / "out"  # the emulator's render cache is in workdir too
    return {p.relative_to(workdir).as_posix(): p.read_bytes() for p in out.rglob("*.mp4")}


def test_run_push_pull_rerun_costs_nothing(
    emulator: ThreadedEmulator, s3: S3, write_manifest: WriteManifest, workdir: Path
) -> None:
    """run uploads each video and flags it; after the local files are gone pull restores
    them, byte for byte and hash-checked, leaving the lock as it was; the rerun sends 0 requests
    and spends 0 credits. No secret appears in any output or in the lock."""
    path = write_manifest(s3_manifest(emulator, s3))
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0, err
    assert summary is not None and summary["done"] == 3 and summary["stored"] == 3
    held = videos(workdir)
    lock = workdir / "m.lock.yaml"
    jobs = yaml.safe_load(lock.read_text())["jobs"]
    hashes = sorted(f["sha256"] for j in jobs for f in j["files"])
    assert all(f["stored"] is True for j in jobs for f in j["files"])
    assert s3.list() == sorted(f"team/sha256/{h[:2]}/{h[2:]}.mp4" for h in hashes)
    for rel, data in held.items():
        h = hashlib.sha256(data).hexdigest()
        assert s3.body(f"team/sha256/{h[:2]}/{h[2:]}.mp4") == data, rel

    code, pushed, err = run("push", str(path), "--json")
    assert code == 0, err
    assert pushed == {"store": f"s3://{BUCKET}/team", "pushed": [], "already": 3, "problems": []}

    lock_before = lock.read_text()
    for rel in held:
        (workdir / rel).unlink()
    code, doc, err = run("plan", str(path), "--json")
    assert doc is not None and doc["summary"]["store"] == 3 and doc["summary"]["credits"] == 0
    requests = emulator.requests()
    code, pulled, err = run("pull", str(path), "--json")
    assert code == 0, err
    assert pulled is not None and pulled["pulled"] == sorted(held) and pulled["problems"] == []
    assert videos(workdir) == held
    assert lock.read_text() == lock_before  # same files, same mtimes: not one line changed

    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0 and summary is not None
    assert summary["fresh"] == 3 and summary["credits"] == 0 and summary["requests"] == 0
    assert emulator.requests() == requests and emulator.creates() == 3
    everything = err + lock.read_text() + str(summary) + str(pulled) + str(pushed)
    assert SECRET not in everything


def test_a_run_after_expiry_fetches_from_the_store(
    emulator: ThreadedEmulator, s3: S3, write_manifest: WriteManifest, workdir: Path
) -> None:
    """With the local files gone, `run` takes them from the store: no API request, no credit,
    the store named in the plan; push then uploads what the store lost."""
    path = write_manifest(s3_manifest(emulator, s3))
    assert run("run", str(path), "--yes", "-q")[0] == 0
    held = videos(workdir)
    for rel in held:
        (workdir / rel).unlink()
    from click.testing import CliRunner

    from i2v_pipeline.cli import cli

    shown = CliRunner().invoke(cli, ["plan", str(path)]).stdout
    assert "⇣ store    garden.dolly" in shown and f"s3://{BUCKET}/team" in shown
    requests = emulator.requests()
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0, err
    assert summary is not None and summary["done"] == 3 and summary["requests"] == 0
    assert summary["credits"] == 0 and emulator.requests() == requests
    assert videos(workdir) == held

    lost = s3.list()[0]
    s3.client.delete_object(Bucket=BUCKET, Key=lost)
    code, pushed, err = run("push", str(path), "--json")
    assert code == 0, err
    assert pushed is not None and len(pushed["pushed"]) == 1 and pushed["already"] == 2
    assert lost in s3.list()


def test_pull_names_a_missing_object_and_refuses_a_wrong_one(
    emulator: ThreadedEmulator, s3: S3, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A missing object is an error naming its s3:// URL; an object whose bytes do not hash
    to its key is refused and nothing is written; the other videos are still pulled (exit 1)."""
    path = write_manifest(s3_manifest(emulator, s3))
    assert run("run", str(path), "--yes", "-q")[0] == 0
    held = videos(workdir)
    for rel in held:
        (workdir / rel).unlink()
    missing, wrong, _ = s3.list()
    s3.client.delete_object(Bucket=BUCKET, Key=missing)
    s3.client.put_object(Bucket=BUCKET, Key=wrong, Body=b"not the video")
    code, pulled, err = run("pull", str(path), "--json")
    assert code == 1
    assert pulled is not None and len(pulled["pulled"]) == 1
    errors = {p["error"].split(":")[0]: p for p in pulled["problems"]}
    assert errors["the store has no object s3"]["error"] == (
        f"the store has no object s3://{BUCKET}/{missing}"
    )
    refused = next(p for p in pulled["problems"] if "refused" in p["error"])
    assert f"s3://{BUCKET}/{wrong} holds 13 bytes, the lock records" in refused["error"]
    assert not (workdir / refused["path"]).exists()
    assert len(videos(workdir)) == 1

    code, _, err = run("pull", str(path))
    assert code == 1
    assert f"the store has no object s3://{BUCKET}/{missing}" in err


def test_a_run_falls_back_on_the_api_when_the_store_lacks_a_video(
    emulator: ThreadedEmulator, s3: S3, write_manifest: WriteManifest, workdir: Path
) -> None:
    """A `⇣ store` job whose object is gone says so and downloads from the API instead: the
    video is not lost while its result URL lives, and nothing is bought again."""
    path = write_manifest(s3_manifest(emulator, s3))
    assert run("run", str(path), "--yes", "-q")[0] == 0
    held = videos(workdir)
    for rel in held:
        (workdir / rel).unlink()
    for key in s3.list():
        s3.client.delete_object(Bucket=BUCKET, Key=key)
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0, err
    assert summary is not None and summary["done"] == 3 and summary["credits"] == 0
    assert emulator.creates() == 3 and videos(workdir) == held
    assert any("the store has no object" in p["detail"] for p in summary["problems"])  # type: ignore[union-attr]
    assert summary["stored"] == 3 and len(s3.list()) == 3  # downloaded again, so uploaded again


def test_endpoint_from_the_environment(
    emulator: ThreadedEmulator,
    s3: S3,
    write_manifest: WriteManifest,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AWS_ENDPOINT_URL (botocore's standard variable) points an s3:// store at an
    S3-compatible service without any endpoint in the manifest."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    store = f'{{url: "s3://{BUCKET}/env"}}'
    path = write_manifest(MANIFEST.format(url=emulator.base_url, store=store))
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0, err
    assert summary is not None and summary["stored"] == 3
    assert len([k for k in s3.list() if k.startswith("env/sha256/")]) == 3


class CuttingProxy:
    """A loopback TCP proxy that forwards the first `keep` bytes of each request, signals,
    holds the rest until released, then cuts the connection: an upload interrupted mid-body."""

    def __init__(self, upstream: str, keep: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.keep = keep
        self.midway = threading.Event()
        self.release = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            with client, socket.create_connection(self.upstream, timeout=10) as up:
                client.settimeout(10)
                # answers flow back untouched (botocore waits for `100 Continue` before a body)
                threading.Thread(target=self._pump, args=(up, client), daemon=True).start()
                sent = 0
                while sent < self.keep:
                    data = client.recv(min(65536, self.keep - sent))
                    if not data:
                        return
                    up.sendall(data)
                    sent += len(data)
                self.midway.set()
                self.release.wait(10)
        except OSError:  # the other side went first
            return

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        self.release.set()
        self.listener.close()


def test_an_interrupted_s3_upload_is_never_visible(s3: S3, tmp_path: Path) -> None:
    """Half an upload has reached S3 and the key is not there; the upload is cut and the key
    is still not there; a whole upload then lands. (S3 shows an object only once complete.)"""
    data = os.urandom(400_000)
    h = hashlib.sha256(data).hexdigest()
    local = tmp_path / "v.mp4"
    local.write_bytes(data)
    proxy = CuttingProxy(s3.endpoint, keep=100_000)
    store = Store(f"s3://{BUCKET}/cut", endpoint_url=proxy.endpoint)
    store.fs.retries = 1  # one attempt is enough to show; s3fs would retry with backoff
    failure: list[BaseException] = []

    def upload() -> None:
        try:
            store.put(local, h)
        except BaseException as exc:
            failure.append(exc)

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    try:
        assert proxy.midway.wait(30), "the upload never started"
        assert s3.list() == []  # a quarter of the body is at the server: nothing visible
    finally:
        proxy.close()
    uploader.join(60)
    assert not uploader.is_alive()
    assert failure and isinstance(failure[0], StoreError), failure
    assert store.where(h) in failure[0].message  # type: ignore[attr-defined]
    assert SECRET not in failure[0].message  # type: ignore[attr-defined]
    assert s3.list() == []
    whole = Store(f"s3://{BUCKET}/cut", endpoint_url=s3.endpoint)
    whole.put(local, h)
    assert s3.list() == [f"cut/sha256/{h[:2]}/{h[2:]}.mp4"]
    assert s3.body(s3.list()[0]) == data


def test_file_store_round_trip(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path, tmp_path: Path
) -> None:
    """The same flow on a file:// store: run uploads, pull restores, the rerun is free."""
    root = tmp_path / "shared-store"
    store = f'{{url: "{root.as_uri()}"}}'
    path = write_manifest(MANIFEST.format(url=emulator.base_url, store=store))
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0 and summary is not None and summary["stored"] == 3, err
    assert len([p for p in root.rglob("*.mp4")]) == 3
    assert not [p for p in root.rglob("*.part")]
    held = videos(workdir)
    for rel in held:
        (workdir / rel).unlink()
    code, pulled, err = run("pull", str(path), "--json")
    assert code == 0 and pulled is not None and pulled["pulled"] == sorted(held), err
    requests = emulator.requests()
    code, summary, _ = run("run", str(path), "--yes", "--json")
    assert code == 0 and summary is not None and summary["fresh"] == 3
    assert emulator.requests() == requests and videos(workdir) == held


def test_push_and_pull_without_a_store_say_how_to_add_one(
    write_manifest: WriteManifest,
) -> None:
    """A manifest without `store:` is a usage error (exit 2) naming the key to add."""
    path = write_manifest()
    for command in ("push", "pull"):
        code, _, err = run(command, str(path))
        assert code == 2 and "has no `store:`" in err and "store: {url: s3://" in err


def test_a_store_that_cannot_open_stops_the_run_before_buying(
    emulator: ThreadedEmulator, write_manifest: WriteManifest
) -> None:
    """An unknown protocol (or a missing s3fs/gcsfs) is exit 2 with the fix, and no create."""
    store = '{url: "nope://bucket/x"}'
    path = write_manifest(MANIFEST.format(url=emulator.base_url, store=store))
    code, _, err = run("run", str(path), "--yes")
    assert code == 2 and "store.url nope://bucket/x: Protocol not known: nope" in err
    assert "Traceback" not in err and emulator.creates() == 0


def _file_store(emulator: ThreadedEmulator, write_manifest: WriteManifest, root: Path) -> Path:
    store = f'{{url: "{root.as_uri()}"}}'
    return write_manifest(MANIFEST.format(url=emulator.base_url, store=store))


def test_pull_counts_present_files_and_keeps_local_edits(
    emulator: ThreadedEmulator,
    write_manifest: WriteManifest,
    workdir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With every file present pull counts them and leaves the lock byte-identical (header
    too); a file edited locally is named and kept, and replaced only with --force."""
    path = _file_store(emulator, write_manifest, tmp_path / "shared")
    assert run("run", str(path), "--yes", "-q")[0] == 0
    lock = workdir / "m.lock.yaml"
    before = lock.read_text()
    monkeypatch.setattr("sys.argv", ["i2v", "pull", str(path)])  # the lock header's command
    code, pulled, err = run("pull", str(path), "--json")
    assert code == 0, err
    assert pulled is not None and pulled["already"] == 3 and pulled["pulled"] == []
    assert lock.read_text() == before

    held = videos(workdir)
    edited = sorted(held)[0]
    (workdir / edited).write_bytes(b"my own cut")
    code, pulled, err = run("pull", str(path), "--json")
    assert code == 1 and pulled is not None and pulled["pulled"] == []
    assert [p["path"] for p in pulled["problems"]] == [edited]
    assert "differs from the video the lock records" in pulled["problems"][0]["error"]
    assert "--force" in pulled["problems"][0]["error"]
    assert (workdir / edited).read_bytes() == b"my own cut"
    code, pulled, err = run("pull", str(path), "--force", "--json")
    assert code == 0 and pulled is not None and pulled["pulled"] == [edited], err
    assert videos(workdir) == held and lock.read_text() == before


def test_a_run_tries_the_store_again_after_a_miss_once_the_url_expired(
    emulator: ThreadedEmulator, write_manifest: WriteManifest, workdir: Path, tmp_path: Path
) -> None:
    """One miss drops the `stored` flag, but with the result URL expired the next run still
    fetches from the store once the object is back: no API request."""
    root = tmp_path / "shared"
    path = _file_store(emulator, write_manifest, root)
    assert run("run", str(path), "--yes", "-q")[0] == 0
    held = videos(workdir)
    lock = workdir / "m.lock.yaml"
    doc = yaml.safe_load(lock.read_text())
    # the miss: the store lost its objects, the run fell back on the API, then the flag went
    for job in doc["jobs"]:
        job["expires_at"] = "2020-01-01T00:00:00Z"
        for f in job["files"]:
            f.pop("stored", None)
    lock.write_text(yaml.safe_dump(doc, sort_keys=False))
    for rel in held:
        (workdir / rel).unlink()
    requests = emulator.requests()
    code, summary, err = run("run", str(path), "--yes", "--json")
    assert code == 0, err
    assert summary is not None and summary["done"] == 3 and summary["requests"] == 0
    assert emulator.requests() == requests and videos(workdir) == held
