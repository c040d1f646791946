"""A stream's buffer: RECORD lines (hot runs or one by one) and BATCH files join it in arrival order.

The pieces (`intake.pieces`) live in the SDK's batch context of the sink (`context["pieces"]`), so
the SDK's size accounting, `is_full` and drains work as for any `BatchSink`; `IcebergSink.process_batch`
turns them into one commit. The buffer also remembers which STATE its oldest record follows (what the
STATE ledger needs to say which STATE a commit covers), keeps the per-STATE digests of what it took
(the commit's replay marker), and runs the replay check that holds a restarted run's first records
back until it is known whether they were committed already (see `delivery/replay.py`).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from target_dativo_iceberg.delivery.replay import ReplayGuard, SegmentLog, line_bytes, record_bytes
from target_dativo_iceberg.intake.metadata import add_sdk_metadata
from target_dativo_iceberg.intake.pieces import ArrowRows, Piece, RecordRows
from target_dativo_iceberg.intake.recordchecks import Rejected

if t.TYPE_CHECKING:
    from target_dativo_iceberg.delivery.ledger import StateLedger
    from target_dativo_iceberg.events import EventLog

#: Rows buffered before a long batch (`batch_size_rows` above this) streams them to files.
SPILL_ROWS = 100_000


class BufferHost(t.Protocol):
    """The SDK side of the sink the buffer fills: its batch context, counters, and its drains."""

    max_size: int
    include_sdc_metadata_properties: bool  # add_record_metadata
    sync_started_at: Any

    @property
    def current_size(self) -> int: ...

    @property
    def is_full(self) -> bool: ...

    @property
    def pending_batch(self) -> dict | None: ...

    def pending_context(self) -> dict: ...

    def tally_record_read(self, count: int = 1) -> None: ...

    def count_records(self, count: int) -> None:
        """The SDK's `record_count` metric."""

    def spill(self, context: dict) -> None:
        """Stream what is buffered into open Parquet files (long batches)."""

    def drain(self) -> None:
        """Commit the buffered batch now."""

    def take_findings(self) -> list[Any] | None:
        """Findings on the record just checked: in warn mode it is buffered as rejected."""

    def check_batch_record(self, record: dict) -> None:
        """Check a BATCH file's record as it is read."""


class LineSource(t.Protocol):
    """The reader: the raw line of the RECORD being handled on the record path (None otherwise)."""

    current_line: bytes | None


@dataclass(frozen=True)
class HeldRow:
    """A hot-path row held back by the replay check: row `index` of `lines`/`records`."""

    lines: pa.Array
    records: pa.Table
    index: int


def pieces_of(context: dict | None) -> list[Piece]:
    """The pieces buffered in an SDK batch context."""
    return (context or {}).get("pieces", [])


def _append_records(context: dict, records: list[Any]) -> None:
    """Buffer record-path records after whatever arrived before them."""
    if not records:
        return
    pieces = context.setdefault("pieces", [])
    if pieces and isinstance(pieces[-1], RecordRows):
        pieces[-1].records.extend(records)
    else:
        pieces.append(RecordRows(list(records)))


def _runs(rows: list[HeldRow]) -> list[tuple[pa.Array, pa.Table, int, int]]:
    """Consecutive held rows of the same run as (lines, records, start, count) slices."""
    runs: list[tuple[pa.Array, pa.Table, int, int]] = []
    for row in rows:
        if runs and runs[-1][0] is row.lines and runs[-1][2] + runs[-1][3] == row.index:
            lines, records, start, count = runs[-1]
            runs[-1] = (lines, records, start, count + 1)
        else:
            runs.append((row.lines, row.records, row.index, 1))
    return runs


class StreamBuffer:
    """One stream's buffered input, its STATE position and its replay check."""

    def __init__(
        self,
        stream: str,
        host: BufferHost,
        ledger: StateLedger,
        lines: LineSource,
        events: EventLog,
        read_file: t.Callable[[str, Any], tuple[pa.Table, bytes] | list[dict[str, Any]]],
        replay: tuple[dict[str, Any] | None, ReplayGuard] | None = None,
    ) -> None:
        self.stream = stream
        self._host = host
        self._ledger = ledger
        self._lines = lines
        self._events = events
        self._read_file = read_file
        #: The committed state a matched replay started from, and the check itself.
        self.base_state, self.replay = replay if replay is not None else (None, None)
        #: Number of STATE messages seen when the first record still buffered arrived (None: empty).
        self.first_pending_seq: int | None = None
        self.segments = SegmentLog()  # per-STATE-segment digests for the commit's replay marker
        self.tail = 0  # records of the last commit after the newest STATE then (delivery/coverage.py)

    def add_record(self, record: dict, context: dict) -> None:
        """Record path: buffer the record (the SDK counted it already).

        While a replay check is armed, the first records are held back until it is known whether
        they are exactly the ones the last run committed.
        """
        seq = self._ledger.seq
        if self.first_pending_seq is None:
            self.first_pending_seq = seq
        line = self._lines.current_line
        data = line_bytes(line) if line is not None else record_bytes(record)
        findings = self._host.take_findings()
        item = Rejected(record, findings) if findings else record
        guard = self.replay
        if guard is not None and not guard.decided:
            self._resolve(guard.offer(seq, item, data), context)
            return
        self.segments.add(seq, data)
        _append_records(context, [item])
        self._maybe_spill(context)

    def _maybe_spill(self, context: dict) -> None:
        """Batches longer than `SPILL_ROWS` stream each chunk to open Parquet files (bounded memory)."""
        if self._host.max_size <= SPILL_ROWS:
            return
        if sum(p.count for p in pieces_of(context)) >= SPILL_ROWS:
            self._host.spill(context)

    def add_rows(self, lines: pa.Array, records: pa.Table) -> None:
        """Hot path: buffer a run of this stream's rows (no STATE between them), draining when full."""
        seq = self._ledger.seq
        if self.first_pending_seq is None:
            self.first_pending_seq = seq
        host = self._host
        start, n = 0, len(lines)
        while start < n:
            guard = self.replay
            if guard is not None and not guard.decided:
                for line in lines.slice(start).to_pylist():
                    verdict = guard.offer(seq, HeldRow(lines, records, start), line_bytes(line))
                    start += 1
                    if verdict in ("replay", "fresh"):
                        self._resolve(verdict, None)
                        break
                continue
            if self.first_pending_seq is None:
                self.first_pending_seq = seq
            take = min(n - start, max(1, host.max_size - host.current_size))
            piece = ArrowRows(lines.slice(start, take), self._metadata(records.slice(start, take)))
            self.segments.add_lines(seq, piece.lines)
            host.pending_context().setdefault("pieces", []).append(piece)
            host.tally_record_read(take)
            host.count_records(take)
            start += take
            # Mid-run a full buffer drains now; at the run's end it may wait for a following STATE.
            if host.is_full if start == n else host.current_size >= host.max_size:
                host.drain()
            else:
                self._maybe_spill(host.pending_context())

    def _metadata(self, rows: pa.Table) -> pa.Table:
        """With `add_record_metadata`: the run's rows with the SDK's `_sdc_*` columns."""
        host = self._host
        if not host.include_sdc_metadata_properties:
            return rows
        batch_start = host.pending_context().get("batch_start_time")
        return add_sdk_metadata(rows, batch_start, host.sync_started_at)

    def add_files(self, encoding: Any, files: Any) -> None:
        """BATCH message: each file's rows join the buffer in arrival order (a Parquet file as one
        Arrow piece, checked and committed without Python records), then the buffer is committed.
        A file that may not be read (see batchfiles.py) fails the run before anything is committed."""
        seq = self._ledger.seq
        host = self._host
        for path in files:
            data = self._read_file(path, encoding)
            if isinstance(data, list):
                for record in data:
                    host.check_batch_record(record)
                    host.tally_record_read()
                    self.add_record(record, host.pending_context())
                continue
            table, raw = data
            if self.first_pending_seq is None:
                self.first_pending_seq = seq
            piece = ArrowRows(None, table)
            guard = self.replay
            if guard is not None and not guard.decided:
                self._resolve(guard.offer(seq, piece, raw, table.num_rows), None)
                continue
            self.segments.add_async(seq, raw, table.num_rows)
            host.pending_context().setdefault("pieces", []).append(piece)
            host.tally_record_read(table.num_rows)
            host.count_records(table.num_rows)
        host.drain()

    def on_state(self, value_hash: str) -> None:
        """A STATE arrived: it may complete (or refute) a pending replay check."""
        if self.replay is not None and not self.replay.decided:
            self._resolve(self.replay.on_state(value_hash), None)

    def release_held(self) -> None:
        """End of input with the replay check undecided: the held records are new, buffer them."""
        if self.replay is not None and not self.replay.decided:
            self.replay.decided = True
            self._resolve("fresh", None)

    def drained(self) -> None:
        """The buffered records went into a commit: records arriving from now on start the next batch."""
        self.first_pending_seq = None

    def _resolve(self, verdict: str, context: dict | None) -> None:
        """Act on a replay verdict: drop the held records (replay) or buffer them (fresh)."""
        guard = self.replay
        if guard is None or verdict not in ("replay", "fresh"):
            return
        held, guard.held = guard.held, []
        records, guard.count = guard.count, 0
        self.segments = guard.log
        if verdict == "replay":
            self._events.emit("replay_skipped", stream=self.stream, records=records)
            pending = context if context is not None else self._host.pending_batch
            if not pieces_of(pending):
                self.first_pending_seq = None
            return
        self.base_state = None
        self._events.emit("replay_mismatch", stream=self.stream, records=records)
        if not held:
            return
        host = self._host
        tally = context is None and host.current_size == 0  # the SDK tallied record-path rows itself
        context = context if context is not None else host.pending_context()
        pieces = context.setdefault("pieces", [])
        index = 0
        while index < len(held):  # in arrival order: upsert's last-wins depends on it
            item = held[index]
            if isinstance(item, HeldRow):
                rows = [item]
                while index + 1 < len(held) and isinstance(held[index + 1], HeldRow):
                    index += 1
                    rows.append(held[index])
                for lines, table, start, count in _runs(rows):
                    pieces.append(
                        ArrowRows(lines.slice(start, count), self._metadata(table.slice(start, count)))
                    )
                    host.tally_record_read(count)
            elif isinstance(item, ArrowRows):  # a BATCH file's rows
                pieces.append(item)
                host.tally_record_read(item.count)
            else:
                _append_records(context, [item])
                if tally:
                    host.tally_record_read(1)
            index += 1
