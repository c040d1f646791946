"""Merge-on-read deletes by key: position delete files for the rows an upsert or a deletion replaces.

Copy-on-write (pyiceberg's `Transaction.delete`) rewrites every data file that holds one matched
key, so an upsert whose keys are spread over the table rewrites the whole table: 10.4 s for 200k
rows into a 2M-row table, against 2.5 s to append them. Here only the key columns of the data files
that can hold a matched key are read, and for each one a position delete file (`file_path`, `pos`:
the Iceberg v2 layout, one delete file per data file it refers to, its path as both bounds) is
written next to it. pyiceberg 0.12 reads position deletes but raises on equality deletes
(`FileScanTask` planning); DuckDB 1.5.5's iceberg extension applies these position deletes (every
upsert test reads the rows back with both), so position deletes are what both readers handle.

A data file is read only when, for every key column, some incoming key lies within the file's
lower/upper bound of that column (manifest statistics), and, for partition fields derived from a
key column (identity, bucket, truncate), the file's partition value is one an incoming key maps
to. Positions already deleted by an earlier delete file are not deleted again, so
`total-records - total-position-deletes` stays the live row count.
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.conversions import from_bytes, to_bytes
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestContent
from pyiceberg.schema import Schema
from pyiceberg.table import Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.upsert_util import create_match_filter
from pyiceberg.types import LongType, NestedField, PrimitiveType, StringType

from target_dativo_iceberg.iceberg.rows import strictly_increasing

PATH_ID, POS_ID = 2147483546, 2147483545
#: How the name of every position delete file the target writes ends.
DELETE_FILE_SUFFIX = "-deletes.parquet"
DELETE_SCHEMA = pa.schema(
    [
        pa.field(
            "file_path", pa.string(), nullable=False, metadata={b"PARQUET:field_id": str(PATH_ID).encode()}
        ),
        pa.field("pos", pa.int64(), nullable=False, metadata={b"PARQUET:field_id": str(POS_ID).encode()}),
    ]
)


#: Snapshot summary keys of a commit that deleted rows by key.
DELETE_KEYS = (
    "dativo.files-scanned",
    "dativo.files-skipped",
    "dativo.files-rewritten",
    "dativo.delete-files",
    "dativo.rows-deleted",
)


@dataclass
class KeyDeletes:
    """What deleting a batch's keys from a branch took and produced."""

    delete_files: list[DataFile] = field(default_factory=list)
    files_scanned: int = 0  # data files whose key columns were read
    files_skipped: int = 0  # data files ruled out by statistics or partition
    rows_deleted: int = 0

    def summary(self) -> dict[str, str]:
        """The snapshot summary keys (and commit event fields) of these deletes."""
        counts = (self.files_scanned, self.files_skipped, 0, len(self.delete_files), self.rows_deleted)
        return {key: str(count) for key, count in zip(DELETE_KEYS, counts, strict=True)}


def _comparable(column: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """Sorted distinct non-null key values in the form `from_bytes` decodes bounds to, or None
    (no pruning on a column of another type)."""
    column = column.drop_null()
    ordered = strictly_increasing(column)  # distinct and sorted already (most taps): no hashing
    if not ordered:
        column = pc.unique(column)
    kind = column.type
    if pa.types.is_timestamp(kind):
        column = column.cast(pa.timestamp("us", kind.tz)).cast(pa.int64())
    elif pa.types.is_date32(kind):
        column = column.cast(pa.int32())
    elif not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return None
    values = column.to_numpy(zero_copy_only=False)
    return values if ordered else np.sort(values)


class _Pruner:
    """Decides from manifest statistics and partition values whether a data file can hold a key."""

    def __init__(self, metadata: TableMetadata, keys: pa.Table) -> None:
        self.schema: Schema = metadata.schema()
        self.fields = [self.schema.find_field(name) for name in keys.column_names]
        self.values = {f.field_id: _comparable(keys.column(f.name)) for f in self.fields}
        self.partitions: dict[int, list[tuple[int, set]]] = {}  # spec id -> (position, values)
        for spec_id, spec in metadata.specs().items():
            tests = []
            for pos, part in enumerate(spec.fields):
                source = next((f for f in self.fields if f.field_id == part.source_id), None)
                if source is None:
                    continue
                try:
                    mapped = part.transform.pyarrow_transform(source.field_type)(
                        keys.column(source.name).combine_chunks()
                    )
                except Exception:  # a transform pyarrow cannot compute here: no pruning on it
                    continue
                values = set(mapped.to_pylist())
                # partition values are ints and strings in the files' Records only for these
                # (identity/bucket/truncate of integers and strings): anything else is not compared
                if all(type(v) in (int, str) for v in values):
                    tests.append((pos, values))
            self.partitions[spec_id] = tests

    def may_hold(self, data_file: DataFile) -> bool:
        lower, upper = data_file.lower_bounds or {}, data_file.upper_bounds or {}
        for key in self.fields:
            values = self.values[key.field_id]
            if values is None or key.field_id not in lower or key.field_id not in upper:
                continue
            if not values.size:
                return False
            kind = key.field_type
            assert isinstance(kind, PrimitiveType)
            try:
                low, high = from_bytes(kind, lower[key.field_id]), from_bytes(kind, upper[key.field_id])
            except (ValueError, TypeError, struct.error):  # bounds of a narrower type (int before long)
                continue
            first = np.searchsorted(values, low, side="left")
            if first >= values.size or values[first] > high:
                return False
        for pos, allowed in self.partitions.get(data_file.spec_id, []):
            if data_file.partition[pos] not in allowed:
                return False
        return True


def _key_columns(io: FileIO, path: str, fields: list[NestedField], keys: pa.Schema) -> pa.Table | None:
    """The key columns of a data file (matched by Parquet field id, else by name), cast to the
    incoming key types; None when the file lacks one (it predates the column: no key matches)."""
    with io.new_input(path).open() as stream:
        parquet = pq.ParquetFile(stream)
        arrow = parquet.schema_arrow
        by_id = {
            int(f.metadata[b"PARQUET:field_id"]): f.name
            for f in arrow
            if f.metadata and b"PARQUET:field_id" in f.metadata
        }
        names = [by_id.get(f.field_id, f.name if f.name in arrow.names else None) for f in fields]
        if any(n is None for n in names):
            return None
        table = parquet.read(columns=names, use_threads=False)
    return pa.table([table.column(i).cast(keys.field(i).type) for i in range(len(names))], names=keys.names)


def _positions(columns: pa.Table, keys: pa.Table) -> np.ndarray:
    """Row positions of `columns` whose key is among `keys`, sorted."""
    if keys.num_columns == 1:
        mask = pc.is_in(columns.column(0), value_set=keys.column(0).combine_chunks(), skip_nulls=True)
        return np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    numbered = columns.append_column("__pos", pa.array(np.arange(columns.num_rows, dtype=np.int64)))
    joined = numbered.join(keys, keys.column_names, join_type="inner", use_threads=False)
    return np.sort(joined.column("__pos").to_numpy())


def _deleted_before(io: FileIO, delete_files: list[DataFile], path: str) -> np.ndarray:
    """Positions of `path` that earlier position delete files already delete."""
    found = []
    for delete_file in delete_files:
        table = pq.read_table(io.new_input(delete_file.file_path).open(), use_threads=False)
        found.append(table.filter(pc.equal(table.column("file_path"), path)).column("pos").to_numpy())
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def _write_delete_file(io: FileIO, data_file: DataFile, positions: np.ndarray) -> DataFile:
    """A position delete file for `positions` of `data_file`, next to it (same partition)."""
    folder = os.path.dirname(data_file.file_path)
    path = f"{folder}/{uuid.uuid4()}{DELETE_FILE_SUFFIX}"
    table = pa.table(
        [pa.array([data_file.file_path] * positions.size, pa.string()), pa.array(positions, pa.int64())],
        schema=DELETE_SCHEMA,
    )
    with io.new_output(path).create() as stream:
        pq.write_table(table, stream, compression="zstd")
    bounds_low = {
        PATH_ID: to_bytes(StringType(), data_file.file_path),
        POS_ID: to_bytes(LongType(), int(positions[0])),
    }
    bounds_high = {PATH_ID: bounds_low[PATH_ID], POS_ID: to_bytes(LongType(), int(positions[-1]))}
    delete_file = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=data_file.partition,
        record_count=int(positions.size),
        file_size_in_bytes=len(io.new_input(path)),
        value_counts={PATH_ID: int(positions.size), POS_ID: int(positions.size)},
        null_value_counts={PATH_ID: 0, POS_ID: 0},
        lower_bounds=bounds_low,
        upper_bounds=bounds_high,
        sort_order_id=None,
        equality_ids=None,
        key_metadata=None,
    )
    delete_file.spec_id = data_file.spec_id  # a property of the object, not of the from_args struct
    return delete_file


def _referenced_path(delete_file: DataFile) -> str | None:
    low, high = (delete_file.lower_bounds or {}).get(PATH_ID), (delete_file.upper_bounds or {}).get(PATH_ID)
    return low.decode() if low is not None and low == high else None


def delete_keys(metadata: TableMetadata, io: FileIO, branch: str, keys: pa.Table) -> KeyDeletes:
    """Position delete files that delete every live row of `branch` whose key is in `keys` (the
    key columns, distinct). Nothing is committed: the caller adds the files to its snapshot."""
    result = KeyDeletes()
    snapshot = metadata.snapshot_by_name(branch)
    keys = keys.filter(pc.invert(pc.is_null(keys.column(0)))) if keys.num_columns == 1 else keys
    if snapshot is None or not keys.num_rows:
        return result
    pruner = _Pruner(metadata, keys)
    data_files: list[DataFile] = []
    by_path: dict[str, list[DataFile]] = {}
    shared: list[DataFile] = []  # delete files not scoped to one data file (other writers)
    for manifest in snapshot.manifests(io):
        for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
            content = entry.data_file.content
            if manifest.content == ManifestContent.DATA and content == DataFileContent.DATA:
                data_files.append(entry.data_file)
            elif content == DataFileContent.POSITION_DELETES:
                path = _referenced_path(entry.data_file)
                (by_path.setdefault(path, []) if path else shared).append(entry.data_file)
    for data_file in data_files:
        if not pruner.may_hold(data_file):
            result.files_skipped += 1
            continue
        result.files_scanned += 1
        columns = _key_columns(io, data_file.file_path, pruner.fields, keys.schema)
        if columns is None:
            continue
        positions = _positions(columns, keys)
        if positions.size:
            earlier = [*by_path.get(data_file.file_path, []), *shared]
            if earlier:
                positions = positions[~np.isin(positions, _deleted_before(io, earlier, data_file.file_path))]
        if positions.size:
            result.delete_files.append(_write_delete_file(io, data_file, positions))
            result.rows_deleted += int(positions.size)
    return result


def delete_rows(
    tx: Transaction, io: FileIO, keys: pa.Table | None, props: dict[str, str], branch: str
) -> list[DataFile] | None:
    """Delete the branch's rows whose key is in `keys` (distinct): on a v2 table, position delete
    files (returned, maybe none, to be committed with the batch; their counts go into `props`); on
    a v1 table (no delete files) pyiceberg's copy-on-write delete, in `tx` (None returned, as for
    no keys)."""
    if keys is None or not keys.num_rows:
        return None
    if tx.table_metadata.format_version < 2:
        tx.delete(create_match_filter(keys, keys.column_names), snapshot_properties=props, branch=branch)
        return None
    deletes = delete_keys(tx.table_metadata, io, branch, keys)
    props.update(deletes.summary())
    return deletes.delete_files
