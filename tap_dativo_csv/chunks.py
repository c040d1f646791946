"""Typed chunks of one file, at most `chunk_size` rows each: for RECORD messages (Arrow columns
with dates and timestamps as ISO text; `convert.as_records` makes Python records of them) and for
Parquet BATCH files (dates, timestamps and contract decimals typed). Both read the file through the
reader of its format (`READERS`: CSV via `reader.read_batches`, JSON and NDJSON via `jsonfiles`, Markdown-KV via
`markdown_kv`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from tap_dativo_csv.convert import convert_arrow, typed_batch
from tap_dativo_csv.fileread import BatchReader, FileRead
from tap_dativo_csv.jsonfiles import read_json, read_ndjson
from tap_dativo_csv.markdown_kv import read_markdown_kv
from tap_dativo_csv.reader import EXAMPLES, FileLayout, read_batches

__all__ = ["READERS", "FileRead", "iter_arrow", "iter_record_chunks", "sample_layout"]


def read_csv(read: FileRead) -> Iterator[tuple[pa.RecordBatch, Sequence[int]]]:
    """CSV through pyarrow's streaming reader (`reader.read_batches`)."""
    if not read.layout.raw_names:
        return iter(())
    return read_batches(
        read.label, read.open_stream, read.options, read.layout, read.report, read.rows_before
    )


#: Format name → reader. A format is readable once it is listed here (see `fileread.BatchReader`).
READERS: dict[str, BatchReader] = {
    "csv": read_csv,
    "json": read_json,
    "ndjson": read_ndjson,
    "markdown_kv": read_markdown_kv,
}


def sample_layout(read: FileRead, sample_rows: int) -> FileLayout:
    """Columns of a file without a header (JSON and the like): the keys of its first `sample_rows`
    records, in order of first appearance."""
    names: dict[str, None] = {}
    count = 0
    chunk = max(1, min(read.options.chunk_size, sample_rows))  # batches end where the sample ends
    batches = READERS[read.format](
        dataclasses.replace(read, options=dataclasses.replace(read.options, chunk_size=chunk))
    )
    try:
        for batch, _ in batches:
            names.update(dict.fromkeys(batch.schema.names))
            count += batch.num_rows
            if count >= sample_rows:
                break
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return FileLayout(raw_names=tuple(names), names=tuple(names))


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
    chunk = max(1, read.options.chunk_size)
    for whole, all_numbers in READERS[read.format](read):
        whole = _aligned(read, whole)
        for offset in range(0, whole.num_rows, chunk):
            yield whole.slice(offset, chunk), all_numbers[offset : offset + chunk]


def _aligned(read: FileRead, batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch with exactly the layout's columns, in order: missing ones null, unknown ones dropped
    (and reported). CSV batches already have them; records of JSON files may not."""
    names = list(read.layout.names)
    if batch.schema.names == names:
        return batch
    have = set(batch.schema.names)
    for name in batch.schema.names:
        if name not in read.layout.names and name not in read.report.unknown_fields:
            read.report.unknown_fields.append(name)
    del read.report.unknown_fields[EXAMPLES * 4 :]
    arrays = [batch.column(n) if n in have else pa.nulls(batch.num_rows, pa.string()) for n in names]
    return pa.RecordBatch.from_arrays(arrays, names=names)


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
