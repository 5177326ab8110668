"""Keep a long run's resident memory flat on glibc.

glibc gives each thread that calls malloc its own arena (up to 8 per core). A run's worker
threads (anyio's default limiter has 40: file hashing, fsync, store uploads) each touch one,
and freed memory scattered over many arenas is rarely handed back, so a 20,000-job run's
resident memory crept up with the jobs (benchmarks/bench_soak.py). Two arenas hold it flat;
the threads only hash and copy files, so they contend little for them.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

M_ARENA_MAX = -8
"""mallopt's parameter number for the arena limit (glibc's malloc.h)."""
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas` (once, before the worker threads start); True
    if it did. Elsewhere (musl, macOS, Windows), or when the user set MALLOC_ARENA_MAX
    themselves, it leaves malloc alone."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
