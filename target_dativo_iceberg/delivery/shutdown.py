"""SIGTERM/SIGINT: stop at a safe point, never print a STATE ahead of the committed data.

Orchestrators send SIGTERM on every timeout and cancellation (Meltano, Airflow, Dagster, Kubernetes),
and a user presses Ctrl-C. The SDK's own handler drains every sink from inside the signal handler,
at whatever line the main thread was on — possibly in the middle of a drain whose records it then
skipped — prints the newest STATE and exits 0: a resumed run lost the batch being drained.

Here the first signal only sets a flag. The main thread stops at the next safe point: between input
blocks and lines, before a drain starts, or at once while it waits for input or for the preflight.
A commit already running (on the commit thread or the main thread) finishes and its STATE is
printed; records still buffered are abandoned: the tap sends them again from the last STATE the
target printed, so nothing is lost and, since they were never committed, nothing is doubled. The
exit code is 128 + the signal number (143 for SIGTERM, 130 for SIGINT), as shells report it.

A second signal ends the process at once (`os._exit`, no STATE printed after it): whatever commit
was in flight is then in the state a SIGKILL leaves, which the replay markers already cover.
"""

from __future__ import annotations

import contextlib
import os
import signal
import typing as t
from types import FrameType

from target_dativo_iceberg import faults
from target_dativo_iceberg.errors import Interrupted

if t.TYPE_CHECKING:
    from target_dativo_iceberg.events import EventLog

#: Signals that stop a run (those the SDK handles).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_code(signum: int) -> int:
    """The shell convention for a process ended by a signal: 128 + its number."""
    return 128 + signum


class Shutdown:
    """The run's stop request: set by a signal, acted on by the main thread at safe points."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._interruptible = 0
        #: Where the signals are reported (set once the run's event log exists).
        self.events: EventLog | None = None

    def install(self) -> None:
        """Route SIGTERM and SIGINT here (main thread only, as `signal.signal` requires)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.handle)

    @property
    def requested(self) -> bool:
        """Whether a stop signal has arrived."""
        return self.signum is not None

    @property
    def name(self) -> str | None:
        """The signal's name (SIGTERM, SIGINT) once one arrived."""
        return signal.Signals(self.signum).name if self.signum is not None else None

    def handle(self, signum: int, frame: FrameType | None) -> None:  # `frame`: the signal API passes it
        """Signal handler: the first signal asks for a stop; a second one ends the process now."""
        name = signal.Signals(signum).name
        if self.signum is not None:
            if self.events is not None:
                self.events.emit_now("job_aborted", signal=name, exit_code=exit_code(signum))
            os._exit(exit_code(signum))
        self.signum = signum
        faults.handled.set()
        if self.events is not None:
            self.events.emit_now("signal_received", signal=name)
        if self._interruptible:
            raise Interrupted(signum)

    def check(self) -> None:
        """At a safe point: stop here if a signal arrived."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    @contextlib.contextmanager
    def interruptible(self) -> t.Iterator[None]:
        """A stretch where stopping at once is safe (waiting for input, the preflight): a signal
        raises `Interrupted` right away instead of waiting for the next safe point."""
        self.check()
        self._interruptible += 1
        try:
            yield
        finally:
            self._interruptible -= 1
