"""Fault injection for the crash and signal tests: `DATIVO_FAULT=point:n[:action]` acts the n-th time
`point` is reached. Unset in normal runs.

Points: `block` (an input block was read, main thread), `drain` (a batch starts to drain, main
thread), `before_commit` / `after_commit` (commit thread), `after_state`, `after_spill`.
Actions: `kill` (default: SIGKILL), `term` / `int` (SIGTERM / SIGINT to the process: the handler
runs on the main thread at its next bytecode, wherever that is), `term2` (two SIGTERMs: the second
one aborts at once).
"""

from __future__ import annotations

import os
import signal
import threading

_SPEC = os.environ.get("DATIVO_FAULT", "")
_counts: dict[str, int] = {}
#: Set by the target's signal handler: a second signal is sent only once the first was handled
#: (two signals sent at once coalesce into one).
handled = threading.Event()
_ACTIONS = {
    "kill": (signal.SIGKILL,),
    "term": (signal.SIGTERM,),
    "int": (signal.SIGINT,),
    "term2": (signal.SIGTERM, signal.SIGTERM),
}


def reached(point: str) -> None:
    """Count a pass through `point`; send the configured signal(s) when it is the configured one."""
    if not _SPEC:
        return
    _counts[point] = _counts.get(point, 0) + 1
    name, nth, action = (_SPEC.split(":") + ["kill"])[:3]
    if name == point and str(_counts[point]) == nth:
        for signum in _ACTIONS[action]:
            handled.clear()
            os.kill(os.getpid(), signum)
            handled.wait(30)
