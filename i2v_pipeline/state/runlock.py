"""One run per manifest at a time: an advisory flock on `<lock>.run`, naming its holder.

flock is released by the kernel when the holder dies, even by SIGKILL, so a crashed run never
leaves a stale lock on a local disk. The file's text (pid, host, start time, command) is only for
the message a second run prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import IO, Any

from ..errors import RunLockedError
from .files import open_own
from .journal import utc_iso


class RunLock:
    """One i2v process per manifest: an flock on `<lock>.run`, naming its holder."""

    def __init__(self, lock_path: Path, command: str) -> None:
        self.path = lock_path.with_name(lock_path.name + ".run")
        self.command = command
        self._f: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise RunLockedError naming who holds it."""
        f = open_own(self.path, "a+", encoding="utf-8")  # the lock lives until release()
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = _describe(f.read())
            f.close()
            raise RunLockedError(
                f"another i2v run is using this manifest ({holder})",
                where=str(self.path),
                hint=(
                    "wait for it to finish, or stop it; if no run is active (a crashed run on a "
                    f"shared drive), delete {self.path}"
                ),
            ) from None
        f.seek(0)
        f.truncate()
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": utc_iso(),
            "command": self.command,
        }
        f.write(json.dumps(info))
        f.flush()
        self._f = f

    def release(self) -> None:
        if self._f is None:
            return
        self.path.unlink(missing_ok=True)
        fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
        self._f.close()
        self._f = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
