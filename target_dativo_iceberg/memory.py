"""Handing freed Arrow memory back to the OS between blocks and commits; the memory in use (progress).

pyarrow's default pool (mimalloc) keeps pages freed by a thread cached for that thread's next
allocations: with a block parsed, validated and dropped every few milliseconds on one thread and
Parquet files written on another, the target held ~80 MB more at its peak than it used (~480 vs
~400 MB on the 1M-record benchmark stream). Asking the pool to release what it holds once per
block and per commit costs nothing measurable. (Arrow's jemalloc pool returns memory by itself
but parsed 10-30% slower; in the tap it also aborted ~2% of runs at exit.)
"""

from __future__ import annotations

import os
import sys

import pyarrow as pa


def release_unused() -> None:
    """Return the calling thread's cached free Arrow memory to the OS."""
    pa.default_memory_pool().release_unused()


def resident_mb() -> float:
    """The process's resident memory now, in MB (Linux `/proc`; elsewhere its peak so far)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux, bytes on macOS
        return peak / (2**20 if sys.platform == "darwin" else 2**10)
