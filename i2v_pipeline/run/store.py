"""The shared video store: verified videos under `<url>/sha256/ab/cdef….mp4`, on any filesystem
fsspec resolves (s3://, gs://, file://, ...), so a teammate holding only the lock can fetch them
after AKOOL deletes the results (7 days).

Content-addressed by the sha256 the lock records: the same video is one object whoever uploads
it, and a fetched file is hashed against its key before it gets its name (a wrong object is
refused, a missing one named). Uploads are never half-visible: S3 and GCS show an object only
once its upload completed (one PUT, or a multipart upload's completion); on every other
filesystem the bytes go to a temporary name beside the key and are renamed when whole.

Credentials come from the filesystem's own provider chain (AWS_* variables, AWS_PROFILE,
~/.aws; gcloud's application default credentials), never from the manifest or the lock.
fsspec is imported on first use and imports s3fs or gcsfs itself, so a manifest without a store
never loads them. The calls block: the async wrappers run them in worker threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ..errors import (
    ConfigError,
    StoreError,
    StoreIntegrityError,
    StoreMissingError,
    mask_userinfo,
    register_secret,
)
from ..spec.campaign import Campaign
from ..spec.fingerprint import hash_file
from ..spec.settings import StoreSettings

CHUNK = 1 << 20
SUFFIX = ".mp4"
ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs"})
"""Object stores whose PUT is all-or-nothing: an upload goes straight to its key."""
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
"""Protocol -> the i2v-pipeline extra that installs its filesystem."""
THREADS = 4
"""Store calls at once: uploads overlap the run without starving its own worker threads."""
SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
T = TypeVar("T")


def mask(url: str) -> str:
    """url with any `user:password@` masked: an endpoint from the environment may carry one."""
    return mask_userinfo(url)


def store_key(root: str, sha256: str) -> str:
    """`<root>/sha256/ab/cdef….mp4`: two hex digits of fan-out keep any one folder small."""
    return f"{root.rstrip('/')}/sha256/{sha256[:2]}/{sha256[2:]}{SUFFIX}"


def _open_fs(url: str, endpoint_url: str | None) -> tuple[Any, str]:
    """(fsspec filesystem, root path inside it) for url; ConfigError naming the fix."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:  # pragma: no cover - fsspec is a dependency
        raise ConfigError("the store needs fsspec", hint="pip install 'fsspec>=2024.3'") from None
    protocol = url.split("://", 1)[0].lower()
    # a fresh instance: fsspec caches them (and their listings) for the whole process
    options: dict[str, Any] = {"skip_instance_cache": True}
    if endpoint_url:
        if protocol not in ("s3", "s3a"):
            raise ConfigError(
                f"store.endpoint_url is for s3:// stores, not {protocol}://",
                hint="remove store.endpoint_url, or use an s3:// store.url",
            )
        options["endpoint_url"] = endpoint_url
    try:
        fs, root = url_to_fs(url, **options)
    except ImportError as exc:
        extra = EXTRAS.get(protocol)
        how = f"pip install 'i2v-pipeline[{extra}]'" if extra else "install its fsspec package"
        raise ConfigError(f"store.url {mask(url)}: {exc}", hint=how) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"store.url {mask(url)}: {exc}",
            hint="give an fsspec URL: s3://bucket/prefix, gs://bucket/prefix, file:///path",
        ) from None
    return fs, str(root)


def open_store(campaign: Campaign) -> Store | None:
    """The campaign's store (None without one); ConfigError if it cannot be opened."""
    return Store.from_settings(campaign.store) if campaign.store is not None else None


class Store:
    """One store: keys from hashes, and exists / put / get, blocking or (a…) in a thread."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, fs: Any = None) -> None:
        """fs: an fsspec filesystem to use instead of the one url names (tests)."""
        for name in SECRET_VARS:  # never in a message, whatever a backend echoes
            register_secret(os.environ.get(name))
        self.url = url.rstrip("/")
        self.endpoint_url = endpoint_url
        self.protocol = self.url.split("://", 1)[0].lower()
        if fs is None:
            self.fs, self.root = _open_fs(self.url, endpoint_url)
        else:
            self.fs, self.root = fs, self.url.split("://", 1)[-1]
        self.atomic = self.protocol in ATOMIC_PUT
        self._limiter: anyio.CapacityLimiter | None = None

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> Store:
        """The manifest's `store:`."""
        return cls(settings.url, endpoint_url=settings.endpoint_url)

    @property
    def display(self) -> str:
        """The store as messages name it (no credentials)."""
        return mask(self.url)

    def key(self, sha256: str) -> str:
        """Where the video with this hash lives, inside the filesystem."""
        return store_key(self.root, sha256)

    def where(self, sha256: str) -> str:
        """The object's full URL, for messages."""
        return mask(f"{self.url.split('://', 1)[0]}://{self.key(sha256)}")

    # ------------------------------------------------------------------ blocking
    def exists(self, sha256: str) -> bool:
        """True if the store holds an object under sha256's key."""
        try:
            return bool(self.fs.exists(self.key(sha256)))
        except Exception as exc:  # fsspec backends raise their own types: one translation
            raise self._error("cannot look up", sha256, exc) from None

    def put(self, local: Path, sha256: str) -> None:
        """Upload local under sha256's key; StoreIntegrityError if it no longer holds sha256
        (a store keyed by content must never hold other bytes under a key)."""
        try:
            held = hash_file(local)
        except OSError as exc:
            raise StoreError(f"cannot read {local} to upload it: {exc.strerror or exc}") from None
        if held != sha256:
            raise StoreIntegrityError(
                f"{local} no longer holds the video the lock records (sha256 "
                f"{sha256[:12]}…): not uploaded",
                hint="fetch the recorded video again (`i2v run`, or `i2v pull` if the store "
                "has it)",
            )
        key = self.key(sha256)
        try:
            if self.atomic:
                self.fs.put_file(str(local), key)
            else:
                self._put_renamed(local, key)
        except Exception as exc:
            raise self._error("cannot upload to", sha256, exc) from None

    def _put_renamed(self, local: Path, key: str) -> None:
        """A temp name beside the key, then a rename: the key only ever names whole bytes."""
        tmp = f"{key}.{uuid.uuid4().hex[:12]}.part"
        self.fs.makedirs(self.fs._parent(key), exist_ok=True)
        try:
            self.fs.put_file(str(local), tmp)
            self.fs.mv(tmp, key)
        except BaseException:
            with contextlib.suppress(Exception):  # it failed before the temp file existed
                self.fs.rm_file(tmp)
            raise

    def get(self, sha256: str, target: Path) -> int:
        """Fetch sha256's object to target (a temp name first, hashed, then renamed); its size.
        StoreMissingError when the store lacks it, StoreIntegrityError when it hashes wrong."""
        where = self.where(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f".{target.name}.{os.getpid()}.store.part")
        try:
            got, size = self._copy_out(sha256, part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        if got != sha256:
            part.unlink(missing_ok=True)
            raise StoreIntegrityError(
                f"{where} does not hold the video its key names (its sha256 is {got[:12]}…): "
                f"refused, {target} not written",
                hint="the object is damaged or was replaced: delete it from the store, then "
                "`i2v push` from a machine holding the video",
            )
        os.replace(part, target)
        return size

    def _copy_out(self, sha256: str, part: Path) -> tuple[str, int]:
        try:
            src = self.fs.open(self.key(sha256), "rb")
        except FileNotFoundError:
            raise StoreMissingError(
                f"the store has no object {self.where(sha256)}",
                hint="`i2v push MANIFEST` on a machine that holds the video uploads it; "
                "or `i2v run` downloads it from the API while its result URL lives (7 days)",
            ) from None
        except Exception as exc:
            raise self._error("cannot read", sha256, exc) from None
        digest, size = hashlib.sha256(), 0
        try:
            with src, open(part, "wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        except Exception as exc:
            raise self._error("cannot fetch", sha256, exc) from None
        return digest.hexdigest(), size

    def _error(self, what: str, sha256: str, exc: Exception) -> StoreError:
        detail = mask(f"{type(exc).__name__}: {exc}")
        return StoreError(
            f"{what} {self.where(sha256)}: {detail}",
            hint="check the store's credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE or ~/.aws for s3://), store.url and store.endpoint_url",
        )

    # ------------------------------------------------------------------ async
    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in a worker thread, at most THREADS at once; a cancelled caller does not
        wait for it (uploads are atomic and fetches land under a temp name)."""
        if self._limiter is None:  # built inside the running loop
            self._limiter = anyio.CapacityLimiter(THREADS)
        return await anyio.to_thread.run_sync(
            fn, *args, limiter=self._limiter, abandon_on_cancel=True
        )

    async def aput(self, local: Path, sha256: str) -> None:
        """put, off the event loop."""
        await self.call(self.put, local, sha256)

    async def aget(self, sha256: str, target: Path) -> int:
        """get, off the event loop."""
        return await self.call(self.get, sha256, target)
