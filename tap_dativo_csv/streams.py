"""The CSV stream: one per configured `object`, fed by one or more files, bookmarked per file."""

from __future__ import annotations

import datetime
import typing as t
from dataclasses import dataclass, field

import pyarrow as pa
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_dativo_csv.batches import ParquetBatchWriter
from tap_dativo_csv.chunks import FileRead, iter_arrow, iter_record_chunks
from tap_dativo_csv.convert import as_records
from tap_dativo_csv.formats import RESUMABLE, is_compressed
from tap_dativo_csv.reader import CSVOptions, FileLayout, ReadReport
from tap_dativo_csv.records import ArrowRecords
from tap_dativo_csv.resume import (
    ReadStart,
    ascii_compatible,
    bookmark_fields,
    check_prefix,
    fresh,
    hash_range,
)
from tap_dativo_csv.settings import STRATEGIES
from tap_dativo_csv.shards import shard_of
from tap_dativo_csv.sources import SourceFile, Sources, parse_timestamp
from target_dativo_iceberg.errors import CSVReadError, SourceError
from target_dativo_iceberg.sdk_compat import BatchConfig, BatchFileFormat, SdkStream

if t.TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context, Record

UTC = datetime.timezone.utc
__all__ = ["STRATEGIES", "CSVFileStream", "FileTask", "StreamPlan"]


@dataclass(frozen=True)
class StreamPlan:
    """Everything discovery learned about a stream: files, their layouts, typed columns, keys."""

    name: str
    files: tuple[SourceFile, ...]
    layouts: dict[str, FileLayout]
    columns: tuple[str, ...]
    kinds: dict[str, str]
    schema: dict[str, t.Any]
    #: Contract decimal columns → (precision, scale), typed exactly in Parquet BATCH files.
    decimals: dict[str, tuple[int, int]] = field(default_factory=dict)
    primary_keys: tuple[str, ...] = ()
    contract_path: str | None = None
    replication_key: str | None = None
    options: CSVOptions = field(default_factory=CSVOptions)
    sources: Sources = field(default_factory=Sources)
    metadata_columns: bool = False
    #: File path → format (csv, json, ndjson, ...); files not listed are CSV.
    formats: dict[str, str] = field(default_factory=dict)
    on_file_error: str = "fail"
    #: (shard_count, shard_index): `files` holds this shard's files only.
    shard: tuple[int, int] = (1, 0)


@dataclass
class FileTask:
    """A file this run reads: its writable state partition, where the read starts, and the error
    that stopped it (with `on_file_error: skip`; the file is then not bookmarked)."""

    source: SourceFile
    state: dict
    start: ReadStart
    error: str | None = None


class CSVFileStream(ArrowRecords, SdkStream):
    """Reads every file of a stream in path order; unchanged files are skipped, grown ones resumed.

    State: `bookmarks.<stream>.partitions[]`, one SDK partition per file with context `{"path"}`,
    plus `path`, `last_modified` (ISO-8601 UTC), `rows` and for plain CSV/NDJSON files `bytes` and
    `prefix_hash` (`resume.py`: a grown file is read from where it stopped), written only once the
    file was read completely, so a STATE emitted mid-file never marks that file as done. With the
    `replication_key` strategy the SDK also keeps the stream's cursor (`replication_key`,
    `replication_key_value`) and changed files only emit rows whose cursor is at or after it.
    """

    #: Records are already JSON-ready and typed by the reader. SDK conformance would turn an invalid
    #: boolean cell such as "maybe" into True; without it the raw value reaches the target's validator.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, plan: StreamPlan) -> None:
        """Build the stream from its discovery plan."""
        self.plan = plan
        super().__init__(tap=tap, schema=plan.schema, name=plan.name)
        self.primary_keys = list(plan.primary_keys)
        if plan.replication_key:
            self.replication_key = plan.replication_key

    @property
    def strategy(self) -> str:
        """The configured incremental strategy (`incremental.strategy`)."""
        return str((self.config.get("incremental") or {}).get("strategy") or "file_modified_time")

    @property
    def lookback(self) -> datetime.timedelta:
        """Window in which files are re-read even when their mtime is unchanged."""
        days = (self.config.get("incremental") or {}).get("lookback_days") or 0
        return datetime.timedelta(days=float(days))

    @property
    def partitions(self) -> list[dict] | None:
        """No SDK-driven partitions: `get_records` walks the files itself and keys state per file.

        Returning None also stops the SDK from replaying partitions found in the input state.
        """
        return None

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: ACTIVATE_VERSION would make targets drop the rows of files skipped as unchanged."""
        return False

    def file_state(self, source: SourceFile) -> dict:
        """Writable SDK partition state of one file."""
        return self.get_context_state({"path": source.path})

    def _start(self, source: SourceFile, state: dict, now: datetime.datetime) -> ReadStart | None:
        """Where a file's read starts; None when it holds nothing new (skipped)."""
        plain = self._resumable(source)
        whole = fresh if plain else (lambda reason: ReadStart(reason=reason))
        if self.strategy == "full_table":
            return whole("incremental.strategy is full_table")
        previous = parse_timestamp(state.get("last_modified", ""))
        if previous is None:
            return whole("")
        if self.lookback and source.modified >= now - self.lookback:
            return whole("modified within incremental.lookback_days")
        same_time = previous == source.modified
        if not plain:
            return None if same_time else whole("modified")
        if same_time and state.get("bytes") in (None, source.size):
            return None
        return check_prefix(
            state, int(source.size or 0), lambda at, n: self.plan.sources.open_range(source.path, at, n)
        )

    def _resumable(self, source: SourceFile) -> bool:
        """A plain line-oriented file of known size in an ASCII-compatible encoding (`resume.py`)."""
        return (
            self.plan.formats.get(source.path, "csv") in RESUMABLE
            and source.size is not None
            and not is_compressed(source.path)
            and ascii_compatible(self.plan.options.encoding)
        )

    def _cursor_filter(self, context: Context | None) -> t.Callable[[Record], bool] | None:
        """Predicate keeping rows at or after the saved cursor (inclusive, like Singer taps)."""
        if not self.replication_key:
            return None
        start = self.get_starting_replication_key_value(context)
        if start is None:
            return None
        key = self.replication_key
        if self.plan.kinds.get(key) == "timestamp":
            start_ts = parse_timestamp(str(start))
            return lambda r: (
                (v := parse_timestamp(str(r.get(key)))) is not None and (start_ts is None or v >= start_ts)
            )

        def keep(record: Record) -> bool:
            value = record.get(key)
            if value is None:
                return False
            try:
                return bool(value >= start)
            except TypeError:
                return str(value) >= str(start)

        return keep

    def get_records(self, context: Context | None) -> t.Iterable[Record]:
        """Yield records of every file that needs reading, then bookmark it."""
        keep = self._cursor_filter(context)
        for task in self._files_to_read():
            count = 0
            report = ReadReport()
            for record in self._read(task, report):
                if keep is None or keep(record):
                    count += 1
                    yield record
            self._bookmark(task, report, count)

    def _files_to_read(self) -> t.Iterator[FileTask]:
        """The files that need reading (new, grown, changed, or in the lookback window)."""
        now = datetime.datetime.now(tz=UTC)
        self._forget_other_shards()
        for source in self.plan.files:
            state = self.file_state(source)
            task = FileTask(source, state, ReadStart())
            try:
                start = self._start(source, state, now)
                if start is None:
                    self.logger.info(
                        "Skipping unchanged file %s (last_modified %s)", source.path, source.last_modified
                    )
                    continue
                task.start = start
                if start.hasher is not None:  # hashed before it is parsed: see resume.py
                    size = int(source.size or 0)
                    opener = lambda at, n, p=source.path: self.plan.sources.open_range(p, at, n)  # noqa: E731
                    hash_range(opener, start.hasher, start.offset, size - start.offset)
            except (CSVReadError, SourceError) as exc:
                self._file_failed(task, exc, 0)
                continue
            if start.resumed:
                self.logger.info(
                    "Reading %s from byte %d (after %d rows read before; last_modified %s)",
                    source.path,
                    start.offset,
                    start.rows,
                    source.last_modified,
                )
            else:
                why = f" in full: {start.reason}" if start.reason else ""
                self.logger.info("Reading %s%s (last_modified %s)", source.path, why, source.last_modified)
            yield task

    def _forget_other_shards(self) -> None:
        """With `shard_count` > 1, drop bookmarks of files of other shards: a worker's state covers
        only its own files."""
        count, index = self.plan.shard
        partitions = self.stream_state.get("partitions") if count > 1 else None
        if partitions:
            partitions[:] = [
                p for p in partitions if shard_of(str((p.get("context") or {}).get("path")), count) == index
            ]

    def _file_failed(self, task: FileTask, exc: Exception, rows: int) -> None:
        """A file that cannot be read: fatal with `on_file_error: fail`, else reported and left out."""
        if self.plan.on_file_error != "skip":
            raise exc
        task.error = str(exc)
        self.logger.warning(
            "file_skipped: stream %r, file %s: %s (on_file_error: skip; %d row(s) of it were sent before "
            "the error; it is not bookmarked, so the next run reads it again)",
            self.name,
            task.source.path,
            exc,
            rows,
        )

    def _bookmark(self, task: FileTask, report: ReadReport, count: int) -> None:
        """A file was read completely (and its rows sent): bookmark it and report what was odd."""
        if task.error is not None:
            return
        source, state, start = task.source, task.state, task.start
        rows = (start.rows if start.resumed else 0) + report.rows + report.bad_rows
        state["path"] = source.path
        state["last_modified"] = source.last_modified
        state["rows"] = rows
        if start.hasher is not None:
            state.update(bookmark_fields(start, int(source.size or 0), rows))
        else:
            state.pop("bytes", None)
            state.pop("prefix_hash", None)
        self.state_manager.is_flushed = False
        self._log_report(source, report)
        self.logger.info("Emitted %d records from %s", count, source.path)

    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> t.Iterable[tuple[t.Any, list[str]]]:
        """BATCH messages straight from Arrow: each file's typed chunks are written to Parquet batch
        files of `batch_size` rows without building Python records (the SDK's batcher would).

        Other encodings, and the `replication_key` strategy (its cursor is kept per record by the
        SDK), use the SDK's record-based batcher.
        """
        if batch_config.encoding.format != BatchFileFormat.PARQUET or self.replication_key:
            yield from super().get_batches(batch_config, context)
            return
        writer = ParquetBatchWriter(batch_config, self.tap_name, self.name)
        for task in self._files_to_read():
            report = ReadReport()
            for batch in self._read_arrow(task, report):
                yield from writer.add(batch)
            yield from writer.flush()  # a file's rows are all sent before it is bookmarked
            self._bookmark(task, report, report.rows)

    def _read_arrow(self, task: FileTask, report: ReadReport) -> t.Iterator[pa.RecordBatch]:
        return self._guarded(task, report, iter_arrow(self._file_read(task, report), self.plan.decimals))

    def _guarded(self, task: FileTask, report: ReadReport, chunks: t.Iterator[t.Any]) -> t.Iterator[t.Any]:
        """`chunks` of one file, ending early (reported) on a read error with `on_file_error: skip`."""
        try:
            yield from chunks
        except (CSVReadError, SourceError) as exc:
            self._file_failed(task, exc, report.rows)

    def _sdc_values(self, source: SourceFile) -> dict[str, t.Any] | None:
        if not self.plan.metadata_columns:
            return None
        return {
            "_sdc_source_file": source.path,
            "_sdc_source_lineno": None,  # set per record; listed here to keep the key order
            "_sdc_modified_at": source.last_modified,
        }

    def _read(self, task: FileTask, report: ReadReport) -> t.Iterator[Record]:
        """Typed records of one file, with the `_sdc_*` columns when configured."""
        for batch, fallbacks in self._read_chunks(task, report):
            yield from as_records(batch, fallbacks)

    def _read_chunks(self, task: FileTask, report: ReadReport) -> t.Iterator[tuple[pa.RecordBatch, dict]]:
        """`_read` as typed Arrow chunks (for `ArrowRecords`)."""
        return self._guarded(task, report, iter_record_chunks(self._file_read(task, report)))

    def _file_read(self, task: FileTask, report: ReadReport) -> FileRead:
        plan, source, start = self.plan, task.source, task.start
        fmt = plan.formats.get(source.path, "csv")
        layout = plan.layouts[source.path]
        if fmt != "csv":  # records carry their own keys: align them to all the stream's columns
            layout = FileLayout(raw_names=plan.columns, names=plan.columns)
        opener = lambda: plan.sources.open(source.path)  # noqa: E731
        if start.hasher is not None:  # exactly the bytes hashed: [offset, size at listing)
            size = int(source.size or 0)
            opener = lambda: plan.sources.open_range(source.path, start.offset, size - start.offset)  # noqa: E731
        return FileRead(
            label=source.path,
            open_stream=opener,
            options=plan.options,
            layout=layout,
            kinds=plan.kinds,
            fill=[c for c in plan.columns if c not in layout.names],
            metadata=self._sdc_values(source),
            report=report,
            format=fmt,
            rows_before=start.rows if start.resumed else None,
        )

    def _log_report(self, source: SourceFile, report: ReadReport) -> None:
        """One warning per problem kind and file: the count and the first examples."""
        if report.bad_rows:
            self.logger.warning(
                "Skipped %d malformed row(s) in %s (on_bad_rows: skip); first: %s",
                report.bad_rows,
                source.path,
                "; ".join(report.bad_row_examples),
            )
        if report.unknown_fields:
            self.logger.warning(
                "Fields of %s that are not columns of stream %r were dropped: %s",
                source.path,
                self.name,
                ", ".join(report.unknown_fields),
            )
        if report.bad_cells:
            self.logger.warning(
                "%d cell(s) in %s do not match their column type and are emitted as text; first: %s",
                report.bad_cells,
                source.path,
                "; ".join(report.bad_cell_examples),
            )
