"""Fault injection for the crash tests: `DATIVO_FAULT=point:n` kills the process with SIGKILL the n-th
time `point` is reached (points: before_commit, after_commit, after_state). Unset in normal runs."""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("DATIVO_FAULT", "")
_counts: dict[str, int] = {}


def reached(point: str) -> None:
    """Count a pass through `point`; die abruptly when it is the configured one."""
    if not _SPEC:
        return
    _counts[point] = _counts.get(point, 0) + 1
    name, _, nth = _SPEC.partition(":")
    if name == point and str(_counts[point]) == nth:
        os.kill(os.getpid(), signal.SIGKILL)
