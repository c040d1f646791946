"""How records reach a sink's buffer: RECORD lines (hot runs or one by one), BATCH files, and the
replay check that holds a restarted run's first records back (see replay.py).

The buffer (`context["pieces"]`) keeps everything in arrival order: hot pieces (raw lines + Arrow
columns, or a BATCH file's table) and lists of record-path records. `IcebergSink.process_batch`
turns it into one commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from target_dativo_iceberg.batchfiles import read_batch_file
from target_dativo_iceberg.recordchecks import RecordChecks, Rejected
from target_dativo_iceberg.replay import (
    ReplayGuard,
    SegmentLog,
    line_bytes,
    record_bytes,
)

if TYPE_CHECKING:
    from target_dativo_iceberg.target import TargetDativoIceberg

#: Buffered hot-path rows: the raw RECORD lines (None: a BATCH file's rows) and their columns.
HotPiece = tuple[pa.Array | None, pa.Table]
#: Buffered input in arrival order: hot pieces and lists of records from the record path
#: (a record failing its checks in warn mode is buffered as `recordchecks.Rejected`).
Piece = HotPiece | list[Any]


@dataclass(frozen=True)
class HeldRow:
    """A hot-path row held back by the replay check: row `index` of `lines`/`records`."""

    lines: pa.Array
    records: pa.Table
    index: int


def _append_records(context: dict, records: list[Any]) -> None:
    """Buffer record-path records after whatever arrived before them."""
    if not records:
        return
    pieces = context.setdefault("pieces", [])
    if pieces and isinstance(pieces[-1], list):
        pieces[-1].extend(records)
    else:
        pieces.append(list(records))


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


#: Rows buffered before a long batch (`batch_size_rows` above this) streams them to files.
SPILL_ROWS = 100_000


class Intake(RecordChecks):
    """Buffering and the replay check of `IcebergSink` (a mixin: the sink supplies the state below)."""

    dativo: TargetDativoIceberg
    replay: ReplayGuard | None
    segments: SegmentLog
    first_pending_seq: int | None
    base_state: dict[str, Any] | None
    stream_name: str
    max_size: int
    is_full: bool

    def spill(self, context: dict) -> None: ...  # IcebergSink.spill

    def process_record(self, record: dict, context: dict) -> None:
        """Buffer the record; remember which STATE it follows so covered state can be computed.

        While a replay check is armed, the first records are held back until it is known whether
        they are exactly the ones the last run committed (see replay.py).
        """
        seq = self.dativo.ledger.seq
        if self.first_pending_seq is None:
            self.first_pending_seq = seq
        line = self.dativo.message_reader.current_line
        data = line_bytes(line) if line is not None else record_bytes(record)
        errors, self.intake_errors = self.intake_errors, None
        item = Rejected(record, errors) if errors else record
        guard = self.replay
        if guard is not None and not guard.decided:
            self._resolve(guard.offer(seq, item, data), context)
            return
        self.segments.add(seq, data)
        _append_records(context, [item])
        self._maybe_spill(context)

    def _maybe_spill(self, context: dict) -> None:
        """Batches longer than `SPILL_ROWS` stream each chunk to open Parquet files (bounded memory)."""
        if self.max_size <= SPILL_ROWS:
            return
        pieces = context.get("pieces", [])
        if sum(len(p) if isinstance(p, list) else p[1].num_rows for p in pieces) >= SPILL_ROWS:
            self.spill(context)

    def add_rows(self, lines: pa.Array, records: pa.Table) -> None:
        """Hot path: buffer a run of this stream's rows (no STATE between them), draining when full."""
        seq = self.dativo.ledger.seq
        if self.first_pending_seq is None:
            self.first_pending_seq = seq
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
            take = min(n - start, max(1, self.max_size - self.current_size))
            piece = (lines.slice(start, take), records.slice(start, take))
            self.segments.add_lines(seq, piece[0])
            self._get_context({}).setdefault("pieces", []).append(piece)
            self.tally_record_read(take)
            self.record_counter_metric.increment(take)
            start += take
            if self.is_full:
                self.dativo.drain_one(self)
            else:
                self._maybe_spill(self._get_context({}))

    def process_batch_files(self, encoding: Any, files: Any) -> None:
        """BATCH message: each file's rows join the buffer in arrival order (a Parquet file as one
        Arrow piece, checked and committed without Python records), then the buffer is committed.
        A file that may not be read (see batchfiles.py) fails the run before anything is committed."""
        seq = self.dativo.ledger.seq
        for path in files:
            data = read_batch_file(path, encoding, self.batch_config, self.stream_name, self.dativo.settings)
            if isinstance(data, list):
                for record in data:
                    errors = self.record_errors(record, full=False) if self.enforcer is None else None
                    if errors:
                        self.reject_or_fail(errors)
                    self.tally_record_read()
                    self.process_record(record, self._get_context(record))
                continue
            table, raw = data
            if self.first_pending_seq is None:
                self.first_pending_seq = seq
            piece = (None, table)
            guard = self.replay
            if guard is not None and not guard.decided:
                self._resolve(guard.offer(seq, piece, raw, table.num_rows), None)
                continue
            self.segments.add_async(seq, raw, table.num_rows)
            self._get_context({}).setdefault("pieces", []).append(piece)
            self.tally_record_read(table.num_rows)
            self.record_counter_metric.increment(table.num_rows)
        self.dativo.drain_one(self)

    def on_state(self, value_hash: str) -> None:
        """A STATE arrived: it may complete (or refute) a pending replay check."""
        if self.replay is not None and not self.replay.decided:
            self._resolve(self.replay.on_state(value_hash), None)

    def release_held(self) -> None:
        """End of input with the replay check undecided: the held records are new, buffer them."""
        if self.replay is not None and not self.replay.decided:
            self.replay.decided = True
            self._resolve("fresh", None)

    def _resolve(self, verdict: str, context: dict | None) -> None:
        """Act on a replay verdict: drop the held records (replay) or buffer them (fresh)."""
        guard = self.replay
        if guard is None or verdict not in ("replay", "fresh"):
            return
        held, guard.held = guard.held, []
        records, guard.count = guard.count, 0
        self.segments = guard.log
        if verdict == "replay":
            self.dativo.events.emit("replay_skipped", stream=self.stream_name, records=records)
            pending = context if context is not None else self._pending_batch
            if not (pending or {}).get("pieces"):
                self.first_pending_seq = None
            return
        self.base_state = None
        self.dativo.events.emit("replay_mismatch", stream=self.stream_name, records=records)
        if not held:
            return
        tally = context is None and self.current_size == 0  # the SDK tallied record-path rows itself
        context = context if context is not None else self._get_context({})
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
                    pieces.append((lines.slice(start, count), table.slice(start, count)))
                    self.tally_record_read(count)
            elif isinstance(item, tuple):  # a BATCH file's rows
                pieces.append(item)
                self.tally_record_read(item[1].num_rows)
            else:
                _append_records(context, [item])
                if tally:
                    self.tally_record_read(1)
            index += 1
