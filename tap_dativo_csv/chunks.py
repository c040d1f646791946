"""Typed chunks of one CSV file, at most `chunk_size` rows each: for RECORD messages (Arrow columns
with dates and timestamps as ISO text; `convert.as_records` makes Python records of them) and for
Parquet BATCH files (dates, timestamps and contract decimals typed). Both read the file through
`reader.read_batches`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from tap_dativo_csv.convert import convert_arrow, typed_batch
from tap_dativo_csv.reader import CSVOptions, FileLayout, Opener, ReadReport, read_batches


@dataclass(frozen=True)
class FileRead:
    """One file of a stream to read: where, how, and the stream's columns.

    `fill` names stream columns this file lacks (null, so every record of a stream has the same
    keys). With `metadata` (constant `_sdc_*` values) each row also gets `_sdc_source_lineno`.
    """

    label: str
    open_stream: Opener
    options: CSVOptions
    layout: FileLayout
    kinds: dict[str, str]
    fill: Sequence[str] = ()
    metadata: dict[str, Any] | None = None
    report: ReadReport = field(default_factory=ReadReport)  # skipped rows, cells left untyped


def iter_record_chunks(read: FileRead) -> Iterator[tuple[pa.RecordBatch, dict[str, list[Any]]]]:
    """Chunks for RECORD messages: the Arrow columns (dates and timestamps as ISO text) and the
    fallback values of misfit columns."""
    for batch, numbers in _chunks(read):
        typed, fallbacks, bad = typed_batch(batch, read.kinds)
        yield _finish(read, typed, numbers, bad), fallbacks


def iter_arrow(
    read: FileRead, decimals: dict[str, tuple[int, int]] | None = None
) -> Iterator[pa.RecordBatch]:
    """Chunks for Parquet BATCH files: the columns of `iter_record_chunks`, but dates and timestamps
    typed and contract decimals exact (RECORD messages carry text and JSON numbers)."""
    for batch, numbers in _chunks(read):
        typed, bad = convert_arrow(batch, read.kinds, decimals)
        yield _finish(read, typed, numbers, bad)


def _chunks(read: FileRead) -> Iterator[tuple[pa.RecordBatch, Sequence[int]]]:
    """The file's string columns in slices of at most `chunk_size` rows, with their line numbers."""
    if not read.layout.raw_names:
        return
    chunk = max(1, read.options.chunk_size)
    for whole, all_numbers in read_batches(
        read.label, read.open_stream, read.options, read.layout, read.report
    ):
        for offset in range(0, whole.num_rows, chunk):
            yield whole.slice(offset, chunk), all_numbers[offset : offset + chunk]


def _finish(
    read: FileRead, typed: pa.RecordBatch, numbers: Sequence[int], bad: Sequence[Any]
) -> pa.RecordBatch:
    """Count the chunk and its bad cells; add the null columns of `fill` and the `_sdc_*` columns."""
    read.report.rows += typed.num_rows
    read.report.note_bad_cells(bad, numbers, read.kinds)
    if not read.fill and not read.metadata:
        return typed
    arrays, names = list(typed.columns), list(typed.schema.names)
    for name in read.fill:
        arrays.append(pa.nulls(typed.num_rows))
        names.append(name)
    for name, value in (read.metadata or {}).items():
        arrays.append(
            pa.array(numbers, pa.int64())
            if name == "_sdc_source_lineno"
            else pa.array([value] * typed.num_rows)
        )
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)
