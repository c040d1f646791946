"""Typed chunks of one CSV file, at most `chunk_size` rows each: for RECORD messages (Arrow columns
with dates and timestamps as ISO text; `convert.as_records` makes Python records of them) and for
Parquet BATCH files (dates,
timestamps and contract decimals typed). Both read the file through `reader.read_batches`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from tap_dativo_csv.convert import convert_arrow, typed_batch
from tap_dativo_csv.reader import CSVOptions, FileLayout, Opener, ReadReport, read_batches


def iter_record_chunks(
    label: str,
    open_stream: Opener,
    options: CSVOptions,
    layout: FileLayout,
    kinds: dict[str, str],
    fill: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    report: ReadReport | None = None,
) -> Iterator[tuple[pa.RecordBatch, dict[str, list[Any]]]]:
    """Typed chunks of one file for RECORD messages, at most `chunk_size` rows each: the Arrow
    columns (dates and timestamps as ISO text) and the fallback values of misfit columns.

    `fill` names stream columns this file lacks (null, so every record of a stream has the same
    keys). With `metadata` (constant `_sdc_*` values) each row also gets `_sdc_source_lineno`.
    `report` collects skipped rows and cells left untyped.
    """
    report = report if report is not None else ReadReport()
    for batch, numbers in _chunks(label, open_stream, options, layout, report):
        typed, fallbacks, bad = typed_batch(batch, kinds)
        report.rows += typed.num_rows
        report.note_bad_cells(bad, numbers, kinds)
        yield _with_extra(typed, numbers, fill, metadata), fallbacks


def iter_arrow(
    label: str,
    open_stream: Opener,
    options: CSVOptions,
    layout: FileLayout,
    kinds: dict[str, str],
    fill: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    report: ReadReport | None = None,
    decimals: dict[str, tuple[int, int]] | None = None,
) -> Iterator[pa.RecordBatch]:
    """`iter_record_chunks` for Parquet BATCH files: same columns, same values, but dates and
    timestamps typed and contract decimals exact (RECORD messages carry text and JSON numbers)."""
    report = report if report is not None else ReadReport()
    for batch, numbers in _chunks(label, open_stream, options, layout, report):
        yield _typed_chunk(batch, numbers, kinds, fill, metadata, report, decimals)


def _chunks(
    label: str, open_stream: Opener, options: CSVOptions, layout: FileLayout, report: ReadReport
) -> Iterator[tuple[pa.RecordBatch, Sequence[int]]]:
    """The file's string columns in slices of at most `chunk_size` rows, with their line numbers."""
    if not layout.raw_names:
        return
    chunk = max(1, options.chunk_size)
    for whole, all_numbers in read_batches(label, open_stream, options, layout, report):
        for offset in range(0, whole.num_rows, chunk):
            yield whole.slice(offset, chunk), all_numbers[offset : offset + chunk]


def _typed_chunk(
    batch: pa.RecordBatch,
    numbers: Sequence[int],
    kinds: dict[str, str],
    fill: Sequence[str],
    metadata: dict[str, Any] | None,
    report: ReadReport,
    decimals: dict[str, tuple[int, int]] | None = None,
) -> pa.RecordBatch:
    typed, bad = convert_arrow(batch, kinds, decimals)
    report.rows += typed.num_rows
    report.note_bad_cells(bad, numbers, kinds)
    return _with_extra(typed, numbers, fill, metadata)


def _with_extra(
    typed: pa.RecordBatch, numbers: Sequence[int], fill: Sequence[str], metadata: dict[str, Any] | None
) -> pa.RecordBatch:
    """`typed` plus the null columns of `fill` and the `_sdc_*` metadata columns."""
    if not fill and not metadata:
        return typed
    arrays, names = list(typed.columns), list(typed.schema.names)
    for name in fill:
        arrays.append(pa.nulls(typed.num_rows))
        names.append(name)
    for name, value in (metadata or {}).items():
        arrays.append(
            pa.array(numbers, pa.int64())
            if name == "_sdc_source_lineno"
            else pa.array([value] * typed.num_rows)
        )
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)
