"""Opening the files i2v writes beside a lock, never through a symbolic link.

The journal, its `.damaged` copy, the run guard and the lock's temp file sit in a folder that a
pull request controls: a committed symlink named `x.lock.yaml.journal` would otherwise have every
record appended to a file of the attacker's choosing outside the repository. O_NOFOLLOW makes
such a link an error instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO, Any

from ..errors import LockError

MODES = {
    "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
    "r+b": os.O_RDWR,
    "a+": os.O_RDWR | os.O_APPEND | os.O_CREAT,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
}


def open_own(path: Path, mode: str, **kw: Any) -> IO[Any]:
    """open(path, mode) for a file i2v owns; a symbolic link there is a LockError."""
    try:
        fd = os.open(path, MODES[mode] | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockError(
                "this is a symbolic link, and i2v writes its own files only as regular files",
                where=str(path),
                hint="remove the link (i2v makes the file itself)",
            ) from None
        raise
    return os.fdopen(fd, mode, **kw)
