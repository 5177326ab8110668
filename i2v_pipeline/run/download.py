"""Downloads: confined to http(s) and public addresses, capped in size, abandoned on a stall,
streamed to a temp file in the target folder, hashed on the fly, checked, renamed.

A result file is never half-written under its real name: a crash leaves only a `.part` file,
which the next download replaces. A video that decodes is kept even when its duration or frame
size differs from the request (the API documents neither): the difference is returned for the
lock, and only `verify: strict` turns it into a failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import aiohttp
import anyio
from yarl import URL

from ..errors import DownloadError, ExpiredResultError, TransientDownloadError
from ..model import Verify
from ..spec.fingerprint import hash_file
from . import offload
from . import verify as media

INLINE_BYTES = 4 << 20
"""A download up to this size may be sealed (fsync, check, rename) on the event loop while
sealing has been quick (run/offload.py's Lane); a larger one always goes to a thread."""
GIB = 1 << 30
MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
DOWNLOAD_DEADLINE = 600.0
"""A whole download's time limit: 10 minutes is ~3 MB/s for a 2 GB file, far more than a
video of this API needs on any working link."""


@dataclass(frozen=True)
class Policy:
    """How results are fetched and checked (manifest `verify` and `limits`)."""

    verify: Verify = "warn"
    """Duration and frame size: `strict` fails a mismatch, `warn` keeps and records it, `off`
    skips the check. A file that does not decode always fails."""
    max_bytes: int = 2 * GIB
    stall: float = 60.0
    """Seconds without a single byte before a download is abandoned (and retried)."""
    deadline: float = DOWNLOAD_DEADLINE
    """Seconds for the whole download, redirects included: the stall timer alone restarts on
    every byte, so a server dripping one byte a second would hold the run forever."""
    connect: float = 60.0
    allow_local: bool = False
    need_audio: bool = False
    """The file must have an audio stream (the audio stage's results); without one it fails."""
    """Result URLs may point at loopback or private addresses: true when the endpoint itself is
    local (the emulator), never for a remote API, whose URLs could otherwise reach the LAN."""


@dataclass(frozen=True)
class Downloaded:
    sha256: str
    bytes: int
    mtime_ns: int | None = None
    mismatch: str | None = None


def _part(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.part")


PART = re.compile(r"\..+\.(\d+)\.part")
"""A part file's name (see _part): the pid of the run that wrote it."""


def sweep_parts(folder: Path) -> int:
    """Remove the part files a killed run left in folder (its pid no longer runs); how many.
    A part of a run still going (another manifest's, sharing the folder) is left alone."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        m = PART.fullmatch(entry.name)
        if m is None or int(m.group(1)) == os.getpid() or _running(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or no pid at all): not ours to judge
    return True


def is_local_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, link-local (cloud metadata), private, unspecified or multicast."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (
        addr.is_loopback
        or addr.is_link_local
        or addr.is_private
        or addr.is_unspecified
        or addr.is_multicast
    )


def is_local_host(host: str) -> bool:
    """A host name or literal address that is not on the public internet (no DNS lookup)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return is_local_address(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return False


async def check_url(url: str, *, allow_local: bool) -> None:
    """DownloadError unless url is http(s) and, for a remote endpoint, resolves only to public
    addresses. (A name that does not resolve is left to the download to report.)"""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DownloadError(f"refusing the result URL: scheme {parts.scheme or '(none)'!r}")
    host = parts.hostname
    if not host:
        raise DownloadError("refusing the result URL: it names no host")
    if allow_local:
        return
    if is_local_host(host):
        raise DownloadError(f"refusing the result URL: {host} is a local or private address")
    try:
        infos = await anyio.getaddrinfo(host, parts.port or 443)
    except OSError:
        return
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        if is_local_host(addr):
            raise DownloadError(
                f"refusing the result URL: {host} resolves to {addr}, a private address"
            )


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    target: Path,
    *,
    seconds: float | None,
    resolution: str | None,
    policy: Policy,
    seals: offload.Lane | None = None,
) -> Downloaded:
    """Download url to target atomically. ExpiredResultError on 403/404 (re-query the result),
    TransientDownloadError when another try may work, DownloadError otherwise. seals: where
    the file is sealed (fsync, check, rename); by default a worker thread. target's folder
    is made when missing (_save)."""
    part = _part(target)
    f = None
    try:
        f, sha256, size = await _stream(session, url, part, policy)
        got = Downloaded(sha256, size)
        seal = lambda: _seal(f, part, target, got, seconds, resolution, policy)  # noqa: E731
        if seals is None:
            return await offload.run_blocking(seal)
        return await seals.run(seal, may_inline=size <= INLINE_BYTES)
    except OSError as exc:
        _discard(f, part)
        raise DownloadError(f"cannot write {target}: {exc}") from None
    except BaseException:
        _discard(f, part)
        raise


def _discard(f: BinaryIO | None, part: Path) -> None:
    if f is not None:
        f.close()
    with contextlib.suppress(OSError):  # never made (its folder is missing, or is a file)
        part.unlink()


async def _stream(
    session: aiohttp.ClientSession, url: str, part: Path, policy: Policy
) -> tuple[BinaryIO, str, int]:
    with anyio.move_on_after(policy.deadline):
        return await _hops(session, url, part, policy)
    # Not retried in this run (another try would wait as long again); a rerun tries again.
    raise DownloadError(f"download too slow: not finished within {policy.deadline:g} s")


async def _hops(
    session: aiohttp.ClientSession, url: str, part: Path, policy: Policy
) -> tuple[BinaryIO, str, int]:
    # The stall timer is per read; the whole-download deadline is _stream's.
    timeout = aiohttp.ClientTimeout(sock_connect=policy.connect, sock_read=policy.stall)
    for _ in range(MAX_REDIRECTS + 1):
        await check_url(url, allow_local=policy.allow_local)  # every hop: a redirect may go local
        try:
            async with session.get(url, timeout=timeout, allow_redirects=False) as resp:
                if resp.status in REDIRECTS and "Location" in resp.headers:
                    url = str(resp.url.join(URL(resp.headers["Location"])))
                    continue
                _check_status(resp.status)
                return await _save(resp, part, policy.max_bytes)
        except TimeoutError:  # aiohttp's read timeout is both a ClientError and a TimeoutError
            raise TransientDownloadError(
                f"download stalled: no data for {policy.stall:g} s"
            ) from None
        except aiohttp.ClientError as exc:  # refused, reset, truncated body (ClientPayloadError)
            raise TransientDownloadError(f"download failed: {type(exc).__name__}: {exc}") from None
    raise DownloadError(f"the result URL redirected more than {MAX_REDIRECTS} times")


def _check_status(status: int) -> None:
    if status in (403, 404):
        raise ExpiredResultError(f"result URL answered HTTP {status} (expired?)")
    if status >= 500 or status in (408, 429):
        raise TransientDownloadError(f"result URL answered HTTP {status}")
    if status != 200:
        raise DownloadError(f"result URL answered HTTP {status}")


async def _save(
    resp: aiohttp.ClientResponse, part: Path, max_bytes: int
) -> tuple[BinaryIO, str, int]:
    """The body into part: (the file, still open for _seal's fsync, its sha256 and size)."""
    expected = resp.content_length
    if resp.headers.get("Content-Encoding", "identity") != "identity":
        expected = None  # aiohttp inflates the body: the length is of the compressed bytes
    too_big = f"over limits.max_download_bytes ({max_bytes:,} bytes); no video is that large"
    if expected is not None and expected > max_bytes:
        raise DownloadError(f"the result is {expected:,} bytes, {too_big}")
    digest = hashlib.sha256()
    size = 0
    f = _create(part)
    try:
        # as the bytes come (a read buffer's worth at most): no copy to re-cut them in chunks
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > max_bytes:
                raise DownloadError(f"the result went {too_big}; abandoned")
            digest.update(chunk)
            f.write(chunk)
        if expected is not None and size != expected:
            raise TransientDownloadError(f"truncated: got {size} bytes of {expected}")
    except BaseException:
        f.close()
        raise
    return f, digest.hexdigest(), size


def _create(part: Path) -> BinaryIO:
    """part, new and open for _seal (which reads it back to check it); its folder is made only
    when the open says it is missing (one syscall a download, not three)."""
    try:
        return open(part, "w+b")
    except FileNotFoundError:
        part.parent.mkdir(parents=True, exist_ok=True)
        return open(part, "w+b")


def _seal(
    f: BinaryIO,
    part: Path,
    target: Path,
    got: Downloaded,
    seconds: float | None,
    resolution: str | None,
    policy: Policy,
) -> Downloaded:
    """Off the event loop: make the bytes durable, check the video, rename it into place.
    f is the part file as _save wrote it (still open: no second open to fsync it)."""
    with f:
        f.flush()
        os.fsync(f.fileno())
        mtime_ns = os.fstat(f.fileno()).st_mtime_ns  # a rename keeps it
        try:
            info = media.probe(part, hint=target.suffix, opened=f)
        except media.VerifyError as exc:  # most likely a bad transfer: worth another download
            raise TransientDownloadError(
                f"the downloaded file is not a usable video: {exc}"
            ) from None
    if policy.need_audio and not info.audio:
        raise DownloadError("the downloaded video has no audio stream (the audio stage's result)")
    problem = None
    if policy.verify != "off":
        problem = media.mismatch(info, seconds=seconds, resolution=resolution)
    if problem and policy.verify == "strict":
        raise DownloadError(f"the downloaded video {problem} (verify: strict)")
    os.replace(part, target)
    return Downloaded(got.sha256, got.bytes, mtime_ns, problem)


def copy_into_place(source: Path, target: Path) -> Downloaded:
    """For a relocated output: copy (never move: the old path may be another job's), atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = _part(target)
    shutil.copyfile(source, part)
    digest = hashlib.sha256()
    with open(part, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    os.replace(part, target)
    st = target.stat()
    return Downloaded(digest.hexdigest(), st.st_size, st.st_mtime_ns)


def holds(path: Path, size: int, sha256: str) -> bool:
    """The file at path has this content (size first: a cheap no)."""
    try:
        return path.stat().st_size == size and hash_file(path) == sha256
    except OSError:
        return False
