"""The STATE ledger: numbers each STATE, says which one a commit makes safe, prints it once.

This is the exactly-once promise in one place: a STATE line reaches stdout only once every record
that came before it, on every stream, is committed. Each buffering sink reports the number of the
last STATE seen when its oldest still-buffered record arrived (`first_pending_seq`); a commit of one
sink covers the newest STATE no *other* sink still holds records before. The ledger keeps only the
STATE values a commit can still report (the newest, the printed one, those a buffer or an in-flight
commit follows), so memory stays bounded however many STATEs a tap sends.
"""

from __future__ import annotations

import decimal
import json
import sys
import typing as t
from typing import Any

from target_dativo_iceberg import faults
from target_dativo_iceberg.delivery.replay import state_hash

if t.TYPE_CHECKING:
    from target_dativo_iceberg.events import EventLog


class Buffering(t.Protocol):
    """What the ledger reads of a sink: the STATE number its oldest buffered record follows."""

    first_pending_seq: int | None


class StateLedger:
    """STATE numbering, coverage and emission for one run."""

    def __init__(
        self,
        events: EventLog,
        buffers: t.Callable[[], t.Iterable[Any]],
        held: t.Callable[[], bool] = lambda: False,
        out: t.TextIO | None = None,
    ) -> None:
        self._events = events
        self._buffers = buffers  # the sinks (objects without `first_pending_seq` are ignored)
        self._held = held  # True while nothing may be printed (an overwrite is staged)
        self._out = out
        self.seq = 0  #: number of distinct STATE messages received
        self.emitted_seq = 0  #: number of the last STATE printed (0: none yet)
        self.emitted_state: Any = None  #: the last STATE printed
        self.hashes: dict[int, str] = {}  #: STATE number → value hash, for replay markers
        self._states: dict[int, Any] = {}
        self._latest: Any = None
        self._pinned: set[int] = set()  # STATE numbers an in-flight commit will report
        self.carried_seq = 0  #: the newest STATE number a commit of this run reported

    def _pending(self, exclude: Any = None) -> list[int]:
        return [
            pending
            for sink in self._buffers()
            if sink is not exclude and (pending := getattr(sink, "first_pending_seq", None)) is not None
        ]

    def receive(self, state: Any) -> str | None:
        """A STATE message: number it and return its hash (None when it repeats the newest one)."""
        if state == self._latest:
            return None
        previous = self.seq
        self._latest = state
        self.seq += 1
        self._states[self.seq] = state
        digest = state_hash(state)
        self.hashes[self.seq] = digest
        # The previous STATE stays only if a commit can still report it.
        if previous != self.emitted_seq and previous not in {*self._pending(), *self._pinned}:
            self._states.pop(previous, None)
        return digest

    def covered(self, committing: Any) -> tuple[int, Any]:
        """The newest STATE all of whose preceding records are committed once `committing` commits."""
        bound = min([self.seq, *self._pending(exclude=committing)])
        return bound, self._states.get(bound)

    def resume_points(self, committing: Any) -> list[int]:
        """STATEs a resumed run may start from while `committing`'s next commit is its newest: the
        last one printed, the newest received, and each one another sink's buffered records follow
        (another stream's commit can make those printable later). The commit's replay marker holds a
        candidate for each, so the records of this commit a resumed tap re-sends are recognised."""
        points = {self.emitted_seq, self.seq, *self._pending(exclude=committing)}
        return sorted(p for p in points if p >= self.emitted_seq)

    def pin(self, seq: int) -> None:
        """An in-flight commit will report STATE `seq`: keep its value."""
        self._pinned.add(seq)
        self.carried_seq = max(self.carried_seq, seq)

    def all_committed(self) -> bool:
        """Whether every record received so far is committed (nothing buffered, no commit in flight)."""
        return not self._pending() and not self._pinned

    def unpin(self, seq: int) -> None:
        self._pinned.discard(seq)

    @property
    def behind(self) -> bool:
        """Whether a received STATE is not printed yet."""
        return self.seq > self.emitted_seq

    def emit(self, seq: int | None = None) -> None:
        """Print STATE number `seq` (default: the newest) unless it or a newer one already was.

        Floats arrive as Decimal (the SDK parses them so) and are written back as numbers. Held back
        while an overwrite is staged: its records are not on the branch until the swap.
        """
        seq = self.seq if seq is None else seq
        if seq <= self.emitted_seq or seq not in self._states or self._held():
            return
        out = self._out or sys.stdout
        out.write(json.dumps(self._states[seq], default=_decimal_default) + "\n")
        out.flush()
        self.emitted_seq = seq
        self.emitted_state = self._states[seq]  # the run ledger records the last STATE printed
        for old in [k for k in self.hashes if k <= seq]:
            del self.hashes[old]
        for old in [k for k in self._states if k < seq]:
            del self._states[old]
        self._events.emit("state_emitted", state_seq=seq)
        faults.reached("after_state")


def _decimal_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
