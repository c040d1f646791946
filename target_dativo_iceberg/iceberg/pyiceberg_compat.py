"""Every private pyiceberg API the target relies on, behind typed functions, so an upgrade touches one file.

pyiceberg's public `Table.append` sizes data files by Arrow bytes and gives no way to choose the
Parquet encoding per column or to learn which files a lost transaction wrote, so `iceberg/writer.py`
and `iceberg/conflicts.py` use a few internals. They are used from here only (a test fails on a
private pyiceberg name anywhere else in the package). Checked against pyiceberg 0.12.0; the
dependency is pinned to `>=0.12,<0.13` in pyproject.toml — on an upgrade, re-check each below:

- `pyiceberg.io.pyarrow._check_pyarrow_schema_compatible(requested_schema, provided_schema,
  format_version=)`: the check `Transaction.append` makes before writing (`check_schema_compatible`),
  so a batch is refused with the message pyiceberg users know.
- `pyiceberg.io.pyarrow._determine_partitions(spec=, schema=, arrow_table=)` and the
  `partition_key` / `arrow_table_partition` of what it yields: split a batch by partition the
  way `append` does (`split_by_partition`).
- `pyiceberg.io.pyarrow._to_requested_schema(requested_schema=, file_schema=, batch=,
  include_field_ids=, format_model=)`: cast a batch to the file schema with Parquet field ids, as
  pyiceberg's own `write_file` does (`to_file_schema`).
- `pyiceberg.io.pyarrow.ArrowProjectionVisitor`, the projection behind `_to_requested_schema` on
  every pyiceberg read and write: its `list` rebuilds a list of structs (and its `map` a map with
  struct values) from the offsets alone, so a null list or map becomes an empty one — in the Parquet
  files written (`to_file_schema`, and the files pyiceberg rewrites for a delete or an upsert) and in
  what a scan returns. apache/iceberg-python#3833, fixed by #3834 (not in 0.12). Importing this
  module replaces the class in `pyiceberg.io.pyarrow` by `_NullKeepingProjection`, which gives the
  rebuilt array the validity of its input (`keep_nested_nulls`); readers that do not commit
  (`ops/readback.py`) call `keep_nested_nulls` themselves. Remove it once pyiceberg ships #3834
  (`tests/test_nested_nulls.py` shows whether it is still needed).
- `ParquetFormatWriter._writer`, `._parquet_writer_kwargs` and `._fos`: the Parquet writer is opened
  on the first `write` with `_parquet_writer_kwargs`, so `ParquetFileWriter` sets `use_dictionary`
  there; `_fos` is the open output stream, whose `tell()` is the bytes written so far
  (`ParquetFileWriter.bytes_written`), what files are rolled at.
- `Transaction._snapshot_producers` and each producer's `_added_data_files`: the data files a
  transaction wrote, deleted after it lost a conflict (`added_data_files`). Read with `getattr`
  defaults: if they disappear, the cleanup is skipped (orphans, which `dativo maintain` removes)
  rather than the commit failing.
- `pyiceberg.table.update.snapshot._FastAppendFiles` (its `_manifests`, `_summary`,
  `_validate_concurrency`, `_commit_window`, `_compression`, `_added_data_files`) and `pyiceberg.manifest.ManifestWriterV2`: pyiceberg
  reads position delete files but has no API to commit them. `MergeOnReadAppend` is a fast append
  that also writes a delete manifest (`_DeleteManifestWriter`: content `deletes`) for the position
  delete files of an upsert, in the same snapshot (`merge_on_read_append`), and refuses pyiceberg's
  commit retry on a moved branch head (a fast append's retry skips validation).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyiceberg.io.pyarrow as pyiceberg_arrow
from pyiceberg.exceptions import ValidationException
from pyiceberg.io import OutputFile
from pyiceberg.io.pyarrow import (
    ArrowProjectionVisitor,
    FileFormatFactory,
    ParquetFormatWriter,
    _check_pyarrow_schema_compatible,
    _determine_partitions,
    _to_requested_schema,
)
from pyiceberg.manifest import (
    DataFile,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriterV2,
)
from pyiceberg.partitioning import PartitionKey, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Transaction
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.table.update.snapshot import _FastAppendFiles, _OverwriteFiles
from pyiceberg.typedef import EMPTY_DICT, Properties
from pyiceberg.types import ListType, MapType

#: Chooses Parquet's `use_dictionary` (True, or the columns to encode) from a file's first rows.
DictionaryChoice = Callable[[pa.Table], bool | list[str]]


def check_schema_compatible(schema: Schema, provided: pa.Schema, format_version: int) -> None:
    """Raise ValueError (pyiceberg's message) unless Arrow data of `provided` fits `schema`."""
    _check_pyarrow_schema_compatible(schema, provided_schema=provided, format_version=format_version)


def split_by_partition(
    spec: PartitionSpec, schema: Schema, data: pa.Table
) -> Iterator[tuple[PartitionKey, pa.Table]]:
    """The rows of `data` grouped by partition of `spec`, each with its partition key."""
    for part in _determine_partitions(spec=spec, schema=schema, arrow_table=data):
        yield part.partition_key, part.arrow_table_partition


def to_file_schema(file_schema: Schema, data_schema: Schema, batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` (whose Iceberg schema is `data_schema`) cast to `file_schema`, with Parquet field ids.

    Null lists, structs and maps stay null at any depth (`_NullKeepingProjection`), sliced or not."""
    return _to_requested_schema(
        requested_schema=file_schema,
        file_schema=data_schema,
        batch=batch,
        include_field_ids=True,
        format_model=FileFormatFactory.get(FileFormat.PARQUET),
    )


def _unsliced(offsets: pa.Array) -> pa.Array:
    """The same offsets as an array starting at offset 0 (zero-copy): `from_arrays` refuses a
    validity mask with sliced offsets, which a rebuilt slice of a batch has."""
    if not offsets.offset:
        return offsets
    width = offsets.type.bit_width // 8
    data = offsets.buffers()[1].slice(offsets.offset * width)
    return pa.Array.from_buffers(offsets.type, len(offsets), [None, data])


def _with_validity_of(source: pa.Array | None, rebuilt: pa.Array | None) -> pa.Array | None:
    """`rebuilt` (a list or map array pyiceberg made from `source`'s offsets) null where `source` is.

    No copy of the values: the offsets and children are reused with `source`'s null mask."""
    if rebuilt is None or source is None or rebuilt.null_count == source.null_count:
        return rebuilt
    offsets, mask = _unsliced(rebuilt.offsets), source.is_null()
    if isinstance(rebuilt, pa.MapArray):
        return pa.MapArray.from_arrays(offsets, rebuilt.keys, rebuilt.items, type=rebuilt.type, mask=mask)
    lists = pa.LargeListArray if isinstance(rebuilt, pa.LargeListArray) else pa.ListArray
    return lists.from_arrays(offsets, rebuilt.values, type=rebuilt.type, mask=mask)


class _NullKeepingProjection(ArrowProjectionVisitor):
    """pyiceberg's Arrow projection, with null lists and maps kept null (apache/iceberg-python#3833)."""

    def list(
        self, list_type: ListType, list_array: pa.Array | None, value_array: pa.Array | None
    ) -> pa.Array | None:
        return _with_validity_of(list_array, super().list(list_type, list_array, value_array))

    def map(
        self,
        map_type: MapType,
        map_array: pa.Array | None,
        key_result: pa.Array | None,
        value_result: pa.Array | None,
    ) -> pa.Array | None:
        return _with_validity_of(map_array, super().map(map_type, map_array, key_result, value_result))


def keep_nested_nulls() -> None:
    """Make every pyiceberg read and write of this process keep null lists and maps null
    (idempotent; done when this module is imported)."""
    if not issubclass(pyiceberg_arrow.ArrowProjectionVisitor, _NullKeepingProjection):
        pyiceberg_arrow.ArrowProjectionVisitor = _NullKeepingProjection


class ParquetFileWriter(ParquetFormatWriter):
    """pyiceberg's Parquet writer (table properties, field ids, statistics) with the dictionary-encoded
    columns chosen on the first write, and the bytes written so far."""

    def __init__(
        self, output_file: OutputFile, file_schema: Schema, properties: Properties, choose: DictionaryChoice
    ) -> None:
        super().__init__(output_file, file_schema, properties)
        self._choose_dictionary = choose

    def write(self, table: pa.Table) -> None:
        """Append `table` as row groups (the first call opens the file)."""
        if self._writer is None:
            self._parquet_writer_kwargs = {
                **self._parquet_writer_kwargs,
                "use_dictionary": self._choose_dictionary(table),
            }
        super().write(table)

    def bytes_written(self) -> int:
        """Bytes of the file on disk so far (0 before the first write)."""
        return self._fos.tell() if self._fos is not None else 0


def added_data_files(tx: Transaction | None) -> list[DataFile]:
    """The data and delete files `tx` wrote (its appends, the rewrites of its deletes, its position
    delete files); [] if unknown."""
    producers: list[Any] = getattr(tx, "_snapshot_producers", None) or []
    return [
        f
        for producer in producers
        for f in [
            *(getattr(producer, "_added_data_files", None) or []),
            *(getattr(producer, "added_delete_files", None) or []),
        ]
    ]


class _DeleteManifestWriter(ManifestWriterV2):
    """A v2 manifest of delete files (manifest content `deletes`)."""

    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


class _DeleteFileSummary:
    """A snapshot producer's summary that counts the delete files it adds and drops too (pyiceberg
    counts the data files it was given only)."""

    added_delete_files: list[DataFile]
    removed_delete_files: list[DataFile]

    def _summary(self, snapshot_properties: dict[str, str] = EMPTY_DICT) -> Summary:
        data_files, deleted = self._added_data_files, self._deleted_data_files  # type: ignore[attr-defined]
        self._added_data_files = [*data_files, *self.added_delete_files]
        self._deleted_data_files = {*deleted, *self.removed_delete_files}
        try:
            return super()._summary(snapshot_properties)  # type: ignore[misc]
        finally:
            self._added_data_files, self._deleted_data_files = data_files, deleted


def _delete_manifest(producer: Any, spec_id: int, entries: list[ManifestEntry]) -> ManifestFile:
    """A delete manifest (content `deletes`) of `producer`'s snapshot holding `entries`."""
    spec, output = producer.spec(spec_id), producer.new_manifest_output()
    schema, snapshot_id = producer.schema(), producer.snapshot_id
    with _DeleteManifestWriter(spec, schema, output, snapshot_id, producer._compression) as writer:
        for entry in entries:
            writer.add_entry(entry)
    return writer.to_manifest_file()


class MergeOnReadAppend(_DeleteFileSummary, _FastAppendFiles):
    """A fast append that also adds position delete files, in one snapshot (operation `overwrite`
    when it deletes rows, as Iceberg's row-level writers record it), valid only on the head read."""

    def __init__(
        self, tx: Transaction, props: dict[str, str], branch: str, deletes: bool, drop_deletes: bool
    ) -> None:
        super().__init__(
            operation=Operation.OVERWRITE if deletes or drop_deletes else Operation.APPEND,
            transaction=tx,
            io=tx._table.io,
            branch=branch,
            snapshot_properties=props,
        )
        self.added_delete_files: list[DataFile] = []
        self.drop_deletes = drop_deletes  # the branch holds no data file: its delete files go too
        self.removed_delete_files: list[DataFile] = []

    def _validate_concurrency(self) -> None:
        """Refuse pyiceberg's own retry on a moved head (`_commit_window`): the rows to delete were
        matched against the head this transaction read (even when none matched), and a commit since
        may have added rows with these keys or rewritten the files the deletes name. The ValidationException makes the committer
        redo the whole commit on the new head (`conflicts.retry_conflicts`)."""
        window = self._commit_window
        if window is not None and not window.is_empty():
            raise ValidationException("the branch moved since its rows were matched for deletion")

    def _existing_manifests(self) -> list[ManifestFile]:
        manifests = super()._existing_manifests()
        if not self.drop_deletes:
            return manifests
        kept = []
        for manifest in manifests:
            if manifest.content != ManifestContent.DELETES:
                kept.append(manifest)
                continue
            entries = manifest.fetch_manifest_entry(self._io, discard_deleted=True)
            self.removed_delete_files.extend(entry.data_file for entry in entries)
        return kept

    def _manifests(self) -> list[ManifestFile]:
        manifests = super()._manifests()
        by_spec: dict[int, list[DataFile]] = {}
        for delete_file in self.added_delete_files:
            by_spec.setdefault(delete_file.spec_id, []).append(delete_file)
        for spec_id, files in by_spec.items():
            added = [
                ManifestEntry.from_args(
                    status=ManifestEntryStatus.ADDED, snapshot_id=self.snapshot_id, data_file=f
                )
                for f in files
            ]
            manifests.append(_delete_manifest(self, spec_id, added))
        return manifests


class DeleteDroppingOverwrite(_DeleteFileSummary, _OverwriteFiles):
    """pyiceberg's overwrite that also drops the delete files `obsolete` picks (every row they name
    is in a data file the overwrite removes, or one already gone). pyiceberg 0.12 drops data files only: it
    writes a partly kept manifest again as a data manifest, which would turn delete entries into
    data. Here a delete manifest that keeps entries is written again as a delete manifest, its
    entries keeping their sequence numbers."""

    def __init__(
        self, tx: Transaction, props: dict[str, str], branch: str, obsolete: Callable[[DataFile], bool]
    ) -> None:
        super().__init__(
            operation=Operation.OVERWRITE,
            transaction=tx,
            io=tx._table.io,
            branch=branch,
            snapshot_properties=props,
        )
        self.obsolete = obsolete
        self.added_delete_files: list[DataFile] = []
        self.removed_delete_files: list[DataFile] = []

    def _existing_manifests(self) -> list[ManifestFile]:
        manifests = super()._existing_manifests()
        self.removed_delete_files = []
        kept = []
        for manifest in manifests:
            entries = (
                manifest.fetch_manifest_entry(self._io, discard_deleted=True)
                if manifest.content == ManifestContent.DELETES
                else []
            )
            gone = [e for e in entries if self.obsolete(e.data_file)]
            if not gone:
                kept.append(manifest)
                continue
            self.removed_delete_files.extend(e.data_file for e in gone)
            rest = [e for e in entries if not self.obsolete(e.data_file)]
            if rest:
                existing = [
                    ManifestEntry.from_args(
                        status=ManifestEntryStatus.EXISTING,
                        snapshot_id=e.snapshot_id,
                        sequence_number=e.sequence_number,
                        file_sequence_number=e.file_sequence_number,
                        data_file=e.data_file,
                    )
                    for e in rest
                ]
                kept.append(_delete_manifest(self, manifest.partition_spec_id, existing))
        return kept


def merge_on_read_append(
    tx: Transaction,
    data_files: list[DataFile],
    delete_files: list[DataFile],
    props: dict[str, str],
    branch: str,
    drop_deletes: bool = False,
) -> None:
    """Register `data_files` and position `delete_files` (matched against the head `tx` read; maybe
    none) on `branch` in `tx`, one snapshot that pyiceberg never re-applies on a moved head.
    `drop_deletes`: the branch's existing delete files are dropped (every data file they named is
    gone: an overwrite's first batch)."""
    producer = MergeOnReadAppend(tx, props, branch, bool(delete_files), drop_deletes)
    for data_file in data_files:
        producer.append_data_file(data_file)
    producer.added_delete_files.extend(delete_files)
    producer.commit()


def quiet_expected_warnings() -> None:
    """pyiceberg warns "Delete operation did not match any records" (with a source line) whenever a
    delete finds nothing — on every upsert of new keys and every ACTIVATE_VERSION with nothing older:
    the normal case for us, so it is not shown."""
    warnings.filterwarnings(
        "ignore", message="Delete operation did not match any records", category=UserWarning
    )


keep_nested_nulls()
quiet_expected_warnings()
