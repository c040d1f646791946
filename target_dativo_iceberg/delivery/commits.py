"""The commit thread: one sink commit runs in the background while the main thread reads on.

Parsing and validating the next records (main thread) overlaps with writing Parquet files and
committing (this thread): on two cores that is most of the hot path's speed. One commit is in flight
at a time, and its completion is reported on the main thread, in input order, before the next one
starts or the run ends — so the STATE it covers is printed only once it has landed.
"""

from __future__ import annotations

import typing as t
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

if t.TYPE_CHECKING:
    from target_dativo_iceberg.delivery.ledger import StateLedger


class CommitQueue:
    """At most one commit in flight; `done` callbacks run on the caller's (main) thread."""

    def __init__(self, ledger: StateLedger) -> None:
        self._ledger = ledger
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dativo-commit")
        self._inflight: tuple[Future, t.Callable[[Any], None]] | None = None

    @property
    def busy(self) -> bool:
        """Whether a commit is in flight (finished or not, it has not been reported yet)."""
        return self._inflight is not None

    def submit(self, covered_seq: int, work: t.Callable[[], Any], done: t.Callable[[Any], None]) -> None:
        """Run `work` on the commit thread once the previous commit is reported; `done(result)`
        runs on the main thread when it is joined. STATE `covered_seq` is kept until then."""
        self.join()
        self._ledger.pin(covered_seq)

        def finish(result: Any) -> None:
            self._ledger.unpin(covered_seq)
            done(result)

        self._inflight = (self._thread.submit(work), finish)

    def poll(self) -> None:
        """Report the commit in flight if it has finished (never waits)."""
        if self._inflight is not None and self._inflight[0].done():
            self.join()

    def join(self) -> None:
        """Wait for the commit in flight (if any) and report it; its failure is raised here."""
        if self._inflight is None:
            return
        future, finish = self._inflight
        self._inflight = None
        finish(future.result())
