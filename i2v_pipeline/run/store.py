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
import re
import threading
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
    StoreUnreachableError,
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


_SHA256 = re.compile(r"[0-9a-f]{64}")


def store_key(root: str, sha256: str) -> str:
    """`<root>/sha256/ab/cdef….mp4`: two hex digits of fan-out keep any one folder small.
    StoreError for anything but 64 lowercase hex digits: the lock may come from a pull request,
    and `../` in a hash would name a key outside the store's prefix."""
    if not _SHA256.fullmatch(sha256):
        raise StoreError(
            f"the lock records a malformed sha256 {sha256[:16]!r}: no store key is built from it",
            hint="a sha256 is 64 lowercase hex digits; restore the lock from version control",
        )
    return f"{root.rstrip('/')}/sha256/{sha256[:2]}/{sha256[2:]}{SUFFIX}"


DAMAGED_HINT = (
    "the object is damaged or was replaced: delete it from the store, then `i2v push` from a "
    "machine holding the video"
)


def part_path(target: Path) -> Path:
    """The temp name a fetch writes before the bytes are checked (hidden, beside target)."""
    return target.with_name(f".{target.name}.{os.getpid()}.store.part")


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
    except OSError as exc:  # some filesystems (ftp://, sftp://) connect when opened
        raise ConfigError(
            f"cannot reach the store {mask(url)}: {mask(f'{type(exc).__name__}: {exc}')}",
            hint="check store.url (host, port) and that the store's server is up",
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
        """The object's full URL, for messages (http's paths are whole URLs already)."""
        key = self.key(sha256)
        return mask(key if "://" in key else f"{self.protocol}://{key}")

    def size(self, sha256: str) -> int | None:
        """The object's size if the filesystem tells it cheaply; None if it has no object
        there or does not say (a damaged object may be a directory)."""
        try:
            info = self.fs.info(self.key(sha256))
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._error("cannot look up", sha256, exc) from None
        size = info.get("size") if info.get("type", "file") == "file" else -1
        return size if isinstance(size, int) else None

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
            if not self.atomic and self.fs.isdir(key):  # a rename would land inside it
                raise StoreError(
                    f"a folder stands where the video {sha256[:12]}… belongs in the store "
                    f"({self.where(sha256)}): not uploaded",
                    hint="remove that folder from the store, then run `i2v push`",
                )
            if self.atomic:
                self.fs.put_file(str(local), key)
            else:
                self._put_renamed(local, key)
        except StoreError:
            raise
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

    def get(self, sha256: str, target: Path, size: int, stop: threading.Event | None = None) -> int:
        """Fetch sha256's object to target (a temp name first, hashed, then renamed); its size.
        size: the bytes the lock records; an object that is longer is refused as soon as more
        arrived (a key pointing at an endless stream must not fill the disk). stop: set by a
        cancelled caller, the copy ends at its next chunk. The temp file never outlives a
        failure. StoreMissingError when the store lacks the object, StoreIntegrityError when
        it is not the recorded video."""
        target.parent.mkdir(parents=True, exist_ok=True)
        part = part_path(target)
        try:
            got = self._copy_out(sha256, part, size, stop)
            if got != sha256:
                raise StoreIntegrityError(
                    f"{self.where(sha256)} does not hold the video its key names (its sha256 is "
                    f"{got[:12]}…): refused, {target} not written",
                    hint=DAMAGED_HINT,
                )
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
        return size

    def _copy_out(self, sha256: str, part: Path, limit: int, stop: threading.Event | None) -> str:
        """Copy the object to part (at most limit bytes, or it is refused); its sha256."""
        held = self.size(sha256)
        if held is not None and held != limit:
            raise self._wrong_size(sha256, held, limit)
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
                # one byte past the limit is enough to know the object is too long
                while chunk := src.read(min(CHUNK, limit + 1 - size)):
                    if stop is not None and stop.is_set():
                        raise StoreError(f"the fetch of {self.where(sha256)} was cancelled")
                    size += len(chunk)
                    if size > limit:
                        raise self._wrong_size(sha256, None, limit)
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        except StoreError:
            raise
        except Exception as exc:
            raise self._error("cannot fetch", sha256, exc) from None
        return digest.hexdigest()

    def _wrong_size(self, sha256: str, held: int | None, limit: int) -> StoreIntegrityError:
        if held == -1:
            what = "is not a file"
        else:
            what = "is longer" if held is None else f"holds {held:,} bytes"
        return StoreIntegrityError(
            f"{self.where(sha256)} {what}, the lock records {limit:,} bytes: refused",
            hint=DAMAGED_HINT,
        )

    def _error(self, what: str, sha256: str, exc: Exception) -> StoreError:
        detail = mask(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return StoreUnreachableError(
                f"cannot reach the store {self.display} ({what} {self.where(sha256)}): {detail}",
                hint="check store.url (host, port), store.endpoint_url and the network",
            )
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

    async def aget(self, sha256: str, target: Path, size: int) -> int:
        """get, off the event loop; a cancelled caller stops the copy and removes its temp
        file (the worker thread is abandoned, not waited for)."""
        stop = threading.Event()
        try:
            return await self.call(self.get, sha256, target, size, stop)
        except BaseException:
            stop.set()
            part_path(target).unlink(missing_ok=True)
            raise
