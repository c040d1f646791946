"""RECORD messages written a chunk at a time from Arrow, where the SDK writes one record at a time.

`Stream._sync_records` turns each row into a dict, walks it through selection, conformance and
stream maps, serialises it and flushes stdout: ~15 µs a row, the ceiling of every pipe from this
tap. When none of that per-record machinery applies (no stream maps or flattening, every property
selected, no replication-key cursor, no record limit, the SDK's own message writer), a chunk's
lines are built by `jsonlines.record_lines` and written in one call, byte for byte what the SDK
would write (`time_extracted` is taken once per chunk). STATE messages go out at the same points as
on the SDK's path (every `STATE_MSG_FREQUENCY` records, after each file, at the end), and a chunk
with values left raw (cells that do not fit their type) is written record by record as before.
"""

from __future__ import annotations

import datetime
import sys
import typing as t

import pyarrow as pa
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.encoding import SimpleSingerWriter

from tap_dativo_csv.convert import as_records
from tap_dativo_csv.jsonlines import record_lines
from tap_dativo_csv.reader import ReadReport

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

    from tap_dativo_csv.streams import FileTask


def write_lines(lines: pa.Array) -> None:
    """Write newline-terminated message lines (a string array) to stdout as one block, after
    whatever the SDK's writer has buffered there: the array's data buffer, read in place."""
    _, offsets_buffer, data = lines.buffers()
    offsets = pa.Array.from_buffers(pa.int32(), len(lines) + 1, [None, offsets_buffer], offset=lines.offset)
    start, stop = offsets[0].as_py(), offsets[len(lines)].as_py()
    text = memoryview(data)[start:stop]
    sys.stdout.flush()
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stdout (redirected in-process)
        sys.stdout.write(bytes(text).decode())
        sys.stdout.flush()
        return
    binary.write(text)
    binary.flush()


class ArrowRecords:
    """`_sync_records` of `CSVFileStream` (a mixin: the stream supplies what is declared here)."""

    name: str
    selected: bool
    replication_key: str | None
    child_streams: list
    stream_maps: list
    mask: t.Any
    schema: dict
    config: t.Mapping[str, t.Any]
    logger: t.Any
    state_manager: t.Any
    stream_state: dict
    _tap: t.Any
    stream_version: int | None
    ABORT_AT_RECORD_COUNT: int | None
    STATE_MSG_FREQUENCY: int

    def _files_to_read(self) -> t.Iterator[FileTask]: ...
    def _read_chunks(self, task: FileTask, report: ReadReport) -> t.Iterator[tuple[pa.RecordBatch, dict]]: ...
    def _bookmark(self, task: FileTask, report: ReadReport, count: int) -> None: ...

    def per_record_reason(self) -> str | None:
        """Why RECORDs must take the SDK's per-record way (None: they can be written from Arrow)."""
        maps = self.stream_maps
        if self.replication_key:
            return "the replication_key cursor is kept per record"
        if self.child_streams:
            return "child streams"
        if (
            len(maps) != 1
            or not isinstance(maps[0], SameRecordTransform)
            or maps[0].stream_alias != self.name
        ):
            return "stream_maps apply to the stream"
        if self.config.get("flattening_enabled"):
            return "flattening_enabled is on"
        if not all(self.mask[("properties", name)] for name in self.schema.get("properties", {})):
            return "some properties are deselected"
        if self.ABORT_AT_RECORD_COUNT is not None:
            return "a record limit is set"
        if type(self._tap.message_writer) is not SimpleSingerWriter:
            return "a custom message writer is configured"
        return None

    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> t.Generator[dict, t.Any, t.Any]:
        reason = None if write_messages and self.selected else "records are not written"
        reason = reason or ("a partition context is given" if context is not None else None)
        reason = reason or self.per_record_reason()
        self.logger.info(
            "stream %s: RECORD messages %s",
            self.name,
            f"written record by record ({reason})" if reason else "written from Arrow chunks",
        )
        if reason:
            yield from super()._sync_records(context, write_messages=write_messages)  # type: ignore[misc]
            return
        self._sync_chunks()
        yield from ()

    def _sync_chunks(self) -> None:
        """The SDK's `_sync_records` for a stream without partitions, chunk by chunk."""
        counter, timer = self.get_record_counter(), self.get_sync_timer()  # type: ignore[attr-defined]
        written = 0
        with counter, timer:
            counter.with_context({})
            timer.with_context({})
            self.write_starting_replication_value(None)  # type: ignore[attr-defined]
            for task in self._files_to_read():
                report, count = ReadReport(), 0
                for batch, fallbacks in self._read_chunks(task, report):
                    written = self._write_chunk(batch, fallbacks, written, counter)
                    count += batch.num_rows
                    pa.default_memory_pool().release_unused()  # this chunk's buffers, to the OS
                self._bookmark(task, report, count)
            self.finalize_state(self.get_context_state(None))  # type: ignore[attr-defined]
        self.finalize_state(self.stream_state)  # type: ignore[attr-defined]
        self.write_state()  # type: ignore[attr-defined]

    def _write_chunk(self, batch: pa.RecordBatch, fallbacks: dict, written: int, counter: t.Any) -> int:
        """Write one chunk's RECORDs (a STATE after every `STATE_MSG_FREQUENCY`-th record of the
        stream, as the SDK does); returns the stream's records written so far."""
        lines = None
        if not fallbacks:
            now = datetime.datetime.now(datetime.timezone.utc).isoformat(sep="T")
            lines = record_lines(batch, self.name, now, self.stream_version, end="\n")
        records = as_records(batch, fallbacks) if lines is None else []
        start, total, every = 0, batch.num_rows, self.STATE_MSG_FREQUENCY
        while start < total:
            take = min(total - start, every - written % every)
            if lines is not None:
                write_lines(lines.slice(start, take))
            else:
                for record in records[start : start + take]:
                    self.write_record(record)  # type: ignore[attr-defined]
            self.state_manager.is_flushed = False
            counter.increment(take)
            start, written = start + take, written + take
            if written % every == 0:
                self.write_state()  # type: ignore[attr-defined]
        return written
