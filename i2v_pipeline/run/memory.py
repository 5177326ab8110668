"""Keep a long run's resident memory flat on glibc.

Two of glibc's malloc defaults made a 20,000-job run's memory creep up with the jobs
(benchmarks/bench_soak.py):

- The mmap threshold moves. A block of at least M_MMAP_THRESHOLD bytes (128 KiB to begin
  with) gets its own mmap and goes back to the kernel when freed; but freeing such a block
  raises the threshold to its size. The run's first 1 MiB read buffer (hashing a file) does
  that at once, and from then on every 1 MiB read buffer, every decoded 720p frame (PyAV's
  0.9 MB luma plane) and aiohttp's larger buffers are carved from the heap instead. Freed
  there, they leave holes that the small long-lived allocations made in between pin, the
  next large buffer does not fit in a hole split by smaller ones, and the heap grows by a
  buffer every few hundred jobs: 56 MB of heap holding 17 MB at 6,000 jobs. A fixed threshold
  keeps large buffers out of the heap (an mmap and a munmap each, a few microseconds).
- Each thread that calls malloc gets an arena of its own (up to 8 per core): the run's worker
  threads (hashing, fsync, PyAV verification, store uploads) spread freed memory over a dozen
  arenas, rarely handed back. Two arenas are plenty for threads that mostly wait on files.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Callable

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
"""mallopt's parameter numbers (glibc's malloc.h)."""
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024
"""glibc's own starting threshold, pinned: a frame buffer or a 1 MiB read never enters the heap."""


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's mallopt, or None elsewhere (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def _user_set(variable: str, tunable: str) -> bool:
    """The user chose this setting themselves (glibc's variable or its GLIBC_TUNABLES name)."""
    return variable in os.environ or f"glibc.malloc.{tunable}=" in os.environ.get(
        "GLIBC_TUNABLES", ""
    )


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas` (once, before the worker threads start); True
    if it did. Elsewhere, or when the user set MALLOC_ARENA_MAX themselves, it leaves malloc
    alone."""
    mallopt = _mallopt()
    if mallopt is None or _user_set("MALLOC_ARENA_MAX", "arena_max"):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def pin_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `size` bytes (which also stops it moving); True if it
    did. Elsewhere, or when the user set MALLOC_MMAP_THRESHOLD_ themselves, nothing."""
    mallopt = _mallopt()
    if mallopt is None or _user_set("MALLOC_MMAP_THRESHOLD_", "mmap_threshold"):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, size))


def steady_malloc() -> None:
    """Both settings, for a run: called once when it starts, before its worker threads."""
    limit_arenas()
    pin_mmap_threshold()
