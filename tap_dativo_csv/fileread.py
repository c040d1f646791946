"""One file of a stream to read (`FileRead`), and the shape every format's reader has (`BatchReader`).

A reader turns a `FileRead` into string batches: every column `pa.string()` (null for missing or
null values), named as the file names them, with the line/record number of every row. Typing,
filling missing columns and dropping unknown ones happen after it (`chunks.py`), the same for every
format, so a new format is one function registered in `chunks.READERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from tap_dativo_csv.reader import CSVOptions, FileLayout, Opener, ReadReport


@dataclass(frozen=True)
class FileRead:
    """One file of a stream to read: where, how, and the stream's columns.

    `fill` names stream columns this file lacks (null, so every record of a stream has the same
    keys). With `metadata` (constant `_sdc_*` values) each row also gets `_sdc_source_lineno`.
    `rows_before` is set when the read continues a grown file: `open_stream` then starts after the
    rows read by an earlier run (no header in it), and numbering continues after them.
    """

    label: str
    open_stream: Opener
    options: CSVOptions
    layout: FileLayout
    kinds: dict[str, str]
    fill: Sequence[str] = ()
    metadata: dict[str, Any] | None = None
    report: ReadReport = field(default_factory=ReadReport)  # skipped rows, cells left untyped
    format: str = "csv"
    rows_before: int | None = None


#: A format's reader: string batches of one file, with the line/record number of each row.
BatchReader = Callable[[FileRead], Iterator[tuple[pa.RecordBatch, Sequence[int]]]]
