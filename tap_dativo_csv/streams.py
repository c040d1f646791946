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
from tap_dativo_csv.reader import CSVOptions, FileLayout, ReadReport
from tap_dativo_csv.records import ArrowRecords
from tap_dativo_csv.settings import STRATEGIES
from tap_dativo_csv.sources import SourceFile, Sources, parse_timestamp
from target_dativo_iceberg.sdk_compat import BatchConfig, BatchFileFormat, SdkStream

if t.TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context, Record

UTC = datetime.timezone.utc
__all__ = ["STRATEGIES", "CSVFileStream", "StreamPlan"]


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


class CSVFileStream(ArrowRecords, SdkStream):
    """Reads every file of a stream in path order; unchanged files are skipped by their mtime.

    State: `bookmarks.<stream>.partitions[]`, one SDK partition per file with context `{"path"}`,
    plus `path` and `last_modified` (ISO-8601 UTC) written only once the file was read completely,
    so a STATE emitted mid-file never marks that file as done. With the `replication_key` strategy
    the SDK also keeps the stream's cursor (`replication_key`, `replication_key_value`) and changed
    files only emit rows whose cursor is at or after it.
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

    def needs_read(self, source: SourceFile, state: dict, now: datetime.datetime) -> bool:
        """Decide whether a file must be (re)read: unchanged files hold no new rows."""
        if self.strategy == "full_table":
            return True
        previous = parse_timestamp(state.get("last_modified", ""))
        if previous is None or previous != source.modified:
            return True
        return bool(self.lookback) and source.modified >= now - self.lookback

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
        for source, state in self._files_to_read():
            count = 0
            report = ReadReport()
            for record in self._read(source, report):
                if keep is None or keep(record):
                    count += 1
                    yield record
            self._bookmark(source, state, report, count)

    def _files_to_read(self) -> t.Iterator[tuple[SourceFile, dict]]:
        """The files that need reading (changed, or in the lookback window), with their state."""
        now = datetime.datetime.now(tz=UTC)
        for source in self.plan.files:
            state = self.file_state(source)
            if not self.needs_read(source, state, now):
                self.logger.info(
                    "Skipping unchanged file %s (last_modified %s)", source.path, source.last_modified
                )
                continue
            self.logger.info("Reading %s (last_modified %s)", source.path, source.last_modified)
            yield source, state

    def _bookmark(self, source: SourceFile, state: dict, report: ReadReport, count: int) -> None:
        """A file was read completely (and its rows sent): bookmark it and report what was odd."""
        state["path"] = source.path
        state["last_modified"] = source.last_modified
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
        for source, state in self._files_to_read():
            report = ReadReport()
            for batch in self._read_arrow(source, report):
                yield from writer.add(batch)
            yield from writer.flush()  # a file's rows are all sent before it is bookmarked
            self._bookmark(source, state, report, report.rows)

    def _read_arrow(self, source: SourceFile, report: ReadReport) -> t.Iterator[pa.RecordBatch]:
        return iter_arrow(self._file_read(source, report), self.plan.decimals)

    def _sdc_values(self, source: SourceFile) -> dict[str, t.Any] | None:
        if not self.plan.metadata_columns:
            return None
        return {
            "_sdc_source_file": source.path,
            "_sdc_source_lineno": None,  # set per record; listed here to keep the key order
            "_sdc_modified_at": source.last_modified,
        }

    def _read(self, source: SourceFile, report: ReadReport) -> t.Iterator[Record]:
        """Typed records of one file, with the `_sdc_*` columns when configured."""
        for batch, fallbacks in self._read_chunks(source, report):
            yield from as_records(batch, fallbacks)

    def _read_chunks(self, source: SourceFile, report: ReadReport) -> t.Iterator[tuple[pa.RecordBatch, dict]]:
        """`_read` as typed Arrow chunks (for `ArrowRecords`)."""
        return iter_record_chunks(self._file_read(source, report))

    def _file_read(self, source: SourceFile, report: ReadReport) -> FileRead:
        plan = self.plan
        layout = plan.layouts[source.path]
        return FileRead(
            label=source.path,
            open_stream=lambda: plan.sources.open(source.path),
            options=plan.options,
            layout=layout,
            kinds=plan.kinds,
            fill=[c for c in plan.columns if c not in layout.names],
            metadata=self._sdc_values(source),
            report=report,
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
        if report.bad_cells:
            self.logger.warning(
                "%d cell(s) in %s do not match their column type and are emitted as text; first: %s",
                report.bad_cells,
                source.path,
                "; ".join(report.bad_cell_examples),
            )
