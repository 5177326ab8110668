"""Keep a long run's resident memory flat on glibc.

Two of glibc's malloc defaults made a 20,000-job run's memory creep up with the jobs
(benchmarks/bench_soak.py):

- The mmap threshold moves. A block of at least M_MMAP_THRESHOLD bytes (128 KiB to begin
  with) gets its own mmap and goes back to the kernel when freed; but freeing such a block
  raises the threshold to its size. The run's first 1 MiB read buffer (hashing a file) does
  that at once, and from then on every 1 MiB read buffer, every decoded 720p frame (PyAV's
  0.9 MB luma plane, 0.23 MB chroma planes) and PyAV's per-file buffers (32-62 kB, a dozen
  per verification) are carved from the heap instead. Freed there, they leave holes that the
  small allocations made meanwhile pin; the next buffer does not fit a hole split by smaller
  ones, and the heap grows: at 6,000 jobs the two arenas held 17 MB in 56 MB. Pinned at
  32 KiB, every such buffer is a mapping of its own (an mmap and a munmap, microseconds
  beside the decode) and the arenas stay at 20 MB from the first thousand jobs to the last.
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

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
"""mallopt's parameter numbers (glibc's malloc.h)."""
ARENAS = 2
MMAP_THRESHOLD = 32 * 1024
"""Below PyAV's per-file buffers (32 to 62 kB: FFmpeg's I/O buffer, the decoder's tables) as
well as its frames and the 1 MiB read buffers: none of them enters the heap. At glibc's own
128 KiB the 32-62 kB ones still fragmented the worker threads' arena (11 MB of arena holding
1 MB at 6,000 jobs); at 32 KiB both arenas stay flat."""
TRIM_THRESHOLD = 128 * 1024
"""glibc's default, set back: the moving mmap threshold drags this one up with it (to twice
its value), and the threshold's setting stops that, not what it had already done."""


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
    """Fix glibc's mmap threshold at `size` bytes (which also stops it moving) and the trim
    threshold at TRIM_THRESHOLD; True if it did. Elsewhere, or when the user set either
    threshold themselves, nothing. Blocks carved from the heap before (a plan hashes its
    images with 1 MiB reads) are reused as they are: only new growth is kept out of it."""
    mallopt = _mallopt()
    if mallopt is None or any(
        _user_set(f"MALLOC_{name.upper()}_", name) for name in ("mmap_threshold", "trim_threshold")
    ):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, size)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def steady_malloc() -> None:
    """Both settings, for a run: called once when it starts, before its worker threads."""
    limit_arenas()
    pin_mmap_threshold()
