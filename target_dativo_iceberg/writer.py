"""Parquet data files rolled at `parquet_target_size_mb` of compressed bytes on disk.

pyiceberg sizes files by Arrow bytes (`write.target-file-size-bytes`), 3-10x off the Parquet size,
and writes a whole batch at once. `RollingWriter` keeps one open Parquet file per partition,
streams each chunk into it as row groups (so a long batch never sits in memory), starts a new file
once the bytes written reach the target, and hands the finished files to the commit as Iceberg
`DataFile`s (a fast append in the batch's transaction).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyiceberg.io.pyarrow import (
    FileFormatFactory,
    ParquetFormatWriter,
    _determine_partitions,
    _to_requested_schema,
    pyarrow_to_schema,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionKey
from pyiceberg.schema import sanitize_column_names
from pyiceberg.table import Table
from pyiceberg.table.locations import load_location_provider
from pyiceberg.typedef import Record

MB = 1024 * 1024


@dataclass
class _OpenFile:
    path: str
    output: Any
    writer: ParquetFormatWriter
    partition_key: PartitionKey | None
    rows: int = 0


class RollingWriter:
    """Data files of one table (at its current schema and spec) for one commit."""

    def __init__(self, table: Table, target_bytes: int) -> None:
        self.metadata = table.metadata
        self.io = table.io
        self.target_bytes = max(1, target_bytes)
        schema = self.metadata.schema()
        sanitized = sanitize_column_names(schema)
        self.file_schema = sanitized if sanitized != schema else schema
        self.locations = load_location_provider(self.metadata.location, self.metadata.properties)
        self.write_id = uuid.uuid4()
        self.files: list[DataFile] = []
        self.rows = 0
        self._open: dict[str, _OpenFile] = {}
        self._count = 0

    def write(self, data: pa.Table) -> None:
        """Append rows (in the table's Arrow schema) to the open file of each partition."""
        if not data.num_rows:
            return
        spec = self.metadata.spec()
        if spec.is_unpartitioned():
            self._write(None, data)
            return
        for part in _determine_partitions(spec=spec, schema=self.metadata.schema(), arrow_table=data):
            self._write(part.partition_key, part.arrow_table_partition)

    def _write(self, key: PartitionKey | None, data: pa.Table) -> None:
        slot = key.to_path() if key is not None else ""
        current = self._open.get(slot) or self._new_file(slot, key)
        task_schema = pyarrow_to_schema(data.schema, name_mapping=self.metadata.schema().name_mapping)
        batches = [
            _to_requested_schema(
                requested_schema=self.file_schema,
                file_schema=task_schema,
                batch=batch,
                include_field_ids=True,
                format_model=FileFormatFactory.get(FileFormat.PARQUET),
            )
            for batch in data.to_batches()
        ]
        current.writer.write(pa.Table.from_batches(batches))
        current.output = current.writer._fos  # noqa: SLF001 - its position: the bytes on disk so far
        current.rows += data.num_rows
        self.rows += data.num_rows
        if current.output.tell() >= self.target_bytes:
            self._close(slot)

    def _new_file(self, slot: str, key: PartitionKey | None) -> _OpenFile:
        self._count += 1
        name = f"00000-{self._count}-{self.write_id}.parquet"
        path = self.locations.new_data_location(data_file_name=name, partition_key=key)
        output_file = self.io.new_output(path)
        writer = ParquetFormatWriter(output_file, self.file_schema, self.metadata.properties)
        opened = _OpenFile(path, None, writer, key)
        self._open[slot] = opened
        return opened

    def _close(self, slot: str) -> None:
        current = self._open.pop(slot)
        statistics = current.writer.close()
        self.files.append(
            DataFile.from_args(
                content=DataFileContent.DATA,
                file_path=current.path,
                file_format=FileFormat.PARQUET,
                partition=current.partition_key.partition if current.partition_key else Record(),
                file_size_in_bytes=len(self.io.new_input(current.path)),
                sort_order_id=None,
                spec_id=self.metadata.default_spec_id,
                equality_ids=None,
                key_metadata=None,
                **statistics.to_serialized_dict(),
            )
        )

    def finish(self) -> list[DataFile]:
        """Close the open files; every file written, in order."""
        for slot in list(self._open):
            self._close(slot)
        return self.files
