"""Streaming CSV reading with pyarrow: bounded memory, typed values, errors that name file and line.

Every column is read as a string and typed per chunk afterwards (`convert.py`). Files are opened
through a callable returning a native pyarrow stream, so local files, S3 objects and `.gz` files
all stream block by block: memory depends on `chunk_size`, never on the file size.

Line numbers (errors, `_sdc_source_lineno`) are pyarrow's row numbers: 1-based, counting skipped
rows and the header, not counting blank lines; a quoted value spanning lines counts as one row.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv

from tap_dativo_csv.convert import UNKNOWN, infer_kind, merge_kinds
from target_dativo_iceberg.errors import CSVReadError

_MIN_BLOCK = 64 * 1024
#: pyarrow reads up to 32 blocks ahead of the parser (its background reader queue), so the block
#: size, not the file size, bounds memory: about 40 blocks are alive at the peak.
MAX_BLOCK = 1024 * 1024
_SAMPLE_BYTES = 64 * 1024
_INFER_BLOCK = 1024 * 1024
_ROW_RE = re.compile(r"Row #(\d+)")
#: Examples kept per file for bad-row and bad-cell log lines.
EXAMPLES = 5
BAD_ROWS = ("fail", "skip")

#: Opens a fresh native input stream of one file (decompressed when gzipped).
Opener = Callable[[], pa.NativeFile]


@dataclass(frozen=True)
class CSVOptions:
    """CSV dialect and chunking settings shared by every file of the tap."""

    delimiter: str = ","
    quotechar: str = '"'
    escapechar: str | None = None
    encoding: str = "utf-8"
    header: bool = True
    null_values: tuple[str, ...] = ("",)
    chunk_size: int = 10_000
    skip_rows: int = 0
    on_bad_rows: str = "fail"
    markdown_kv_pattern: str | None = None  # Markdown-KV files (markdown_kv.py); default row_per_kv

    @property
    def first_data_row(self) -> int:
        """Row number of the first data row: after skipped rows and the header."""
        return self.skip_rows + (1 if self.header else 0) + 1


@dataclass(frozen=True)
class FileLayout:
    """Column names as pyarrow sees them (`raw_names`) and as records carry them (`names`)."""

    raw_names: tuple[str, ...]
    names: tuple[str, ...]
    block_size: int = _MIN_BLOCK


@dataclass
class ReadReport:
    """What reading one file skipped or could not type, for the log line after the file."""

    rows: int = 0
    bad_rows: int = 0
    bad_row_examples: list[str] = field(default_factory=list)
    bad_cells: int = 0
    bad_cell_examples: list[str] = field(default_factory=list)
    #: Fields of records (JSON) that are not columns of the stream, dropped (the first 20 names).
    unknown_fields: list[str] = field(default_factory=list)

    def note_bad_cells(
        self, bad: Sequence[tuple[int, str, Any]], numbers: Sequence[int], kinds: dict[str, str]
    ) -> None:
        """Count cells left untyped (row index within `numbers`) and keep the first examples."""
        for index, column, value in bad:
            self.bad_cells += 1
            if len(self.bad_cell_examples) < EXAMPLES:
                self.bad_cell_examples.append(
                    f"line {numbers[index]} column {column!r} ({kinds.get(column)}): {value!r}"
                )


def block_size_for(sample: bytes, chunk_size: int) -> int:
    """Bytes per pyarrow block so one block holds about `chunk_size` rows, from a sample of the file.

    The floor keeps long rows from straddling blocks; the ceiling keeps memory bounded, because
    pyarrow queues up to 32 blocks ahead of the parser. Files with wide rows therefore yield
    batches of fewer than `chunk_size` rows.
    """
    lines = sample.split(b"\n")
    avg_row = len(sample) / max(len(lines) - 1, 1) if sample else 64.0
    longest = max((len(line) for line in lines), default=0)
    wanted = int(chunk_size * avg_row * 1.2)
    return max(_MIN_BLOCK, 8 * longest, min(wanted, MAX_BLOCK))


def _read_options(
    options: CSVOptions, block_size: int, continued: Sequence[str] | None = None
) -> pa_csv.ReadOptions:
    """Single-threaded reads: pyarrow then reports row numbers of malformed rows. `continued`: the
    column names of a read that starts after the header (the rest of a grown file)."""
    if continued is not None:
        return pa_csv.ReadOptions(
            block_size=block_size, encoding=options.encoding, use_threads=False, column_names=list(continued)
        )
    return pa_csv.ReadOptions(
        block_size=block_size,
        encoding=options.encoding,
        use_threads=False,
        skip_rows=options.skip_rows,
        autogenerate_column_names=not options.header,
    )


def _parse_options(options: CSVOptions, handler: Callable[[Any], str] | None = None) -> pa_csv.ParseOptions:
    """Dialect options; `handler` decides about malformed rows (default: fail the read)."""
    return pa_csv.ParseOptions(
        delimiter=options.delimiter,
        quote_char=options.quotechar or False,
        escape_char=options.escapechar or False,
        newlines_in_values=True,
        invalid_row_handler=handler or (lambda _row: "error"),
    )


def _as_strings(options: CSVOptions, raw_names: Sequence[str]) -> pa_csv.ConvertOptions:
    """Read every column as nullable string; typing happens per chunk in `typed_batch`."""
    return pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in raw_names},
        null_values=list(options.null_values),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def _describe(row: Any) -> str:
    where = f"line {row.number}" if row.number is not None else "unknown line"
    return f"{where}: expected {row.expected_columns} columns, got {row.actual_columns}: {row.text!r}"


def _error(label: str, exc: Exception, invalid: Sequence[Any] = ()) -> CSVReadError:
    """Turn a pyarrow error into one that names the file and, when known, the line."""
    message = str(exc)
    if invalid:
        row = invalid[-1]
        where = f" at line {row.number}" if row.number is not None else ""
        return CSVReadError(
            f"{label}: malformed CSV{where}: expected {row.expected_columns} columns, "
            f"got {row.actual_columns}: {row.text!r} (on_bad_rows: skip skips such rows)"
        )
    match = _ROW_RE.search(message)
    where = f" at line {match.group(1)}" if match else ""
    hint = ""
    if "straddling" in message:
        hint = " (a row is longer than the read block; raise `chunk_size`, blocks grow up to 1 MiB)"
    elif "UTF8" in message or "decode" in message.lower():
        hint = " (check the `encoding` setting)"
    return CSVReadError(f"{label}: cannot read CSV{where}: {message}{hint}")


def _header_bytes(sample: bytes, options: CSVOptions) -> bytes | None:
    """The leading bytes holding the skipped rows and the first CSV row, so discovery parses no data.

    None when those rows do not end within the sample (then the file's first block is used).
    """
    quote = options.quotechar.encode(options.encoding, errors="ignore") if options.quotechar else b""
    escape = options.escapechar.encode(options.encoding, errors="ignore") if options.escapechar else b""
    wanted = options.skip_rows + 1
    start = row_start = 0
    while (newline := sample.find(b"\n", start)) >= 0:
        start = newline + 1
        row = sample[row_start:start]
        if quote:
            text = re.sub(re.escape(escape) + b".", b"", row, flags=re.DOTALL) if escape else row
            if text.count(quote) % 2:
                continue
        row_start = start
        if row.strip():
            wanted -= 1
            if wanted == 0:
                return sample[:start]
    return sample if len(sample) < _SAMPLE_BYTES else None


def _read_sample(open_stream: Opener) -> bytes:
    with open_stream() as stream:
        return stream.read(_SAMPLE_BYTES)


def inspect_file(
    label: str,
    open_stream: Opener,
    options: CSVOptions,
    fixed_names: Sequence[str] | None = None,
    given_names: Sequence[str] | None = None,
) -> FileLayout:
    """Read the first row to learn the columns and size the read blocks from a 64 KiB sample.

    Names: the header (or `given_names` replacing it); without a header `given_names`, else the
    contract's `fixed_names` in order, else column_N.
    """
    try:
        sample = _read_sample(open_stream)
        if not sample.strip():
            return FileLayout(raw_names=(), names=())
        head = _header_bytes(sample, options)
        reader = pa_csv.open_csv(
            # A native buffer, not io.BytesIO: pyarrow's reader threads must never call back into Python.
            pa.BufferReader(head) if head is not None else open_stream(),
            read_options=_read_options(options, _INFER_BLOCK),
            parse_options=_parse_options(options),
        )
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        if "Empty CSV file" in str(exc):
            return FileLayout(raw_names=(), names=())
        raise _error(label, exc) from exc
    raw = tuple(reader.schema.names)
    reader.close()
    block = block_size_for(sample, options.chunk_size)
    forced, source = (given_names, "column_names") if given_names else (fixed_names, "the contract")
    if options.header and not given_names:
        names = tuple(name.strip() or f"column_{i + 1}" for i, name in enumerate(raw))
    elif forced is not None:
        if len(forced) != len(raw):
            raise CSVReadError(
                f"{label}: has {len(raw)} columns but {source} names {len(forced)} "
                f"(with `header: {str(options.header).lower()}` the columns are taken from {source} in order)"
            )
        names = tuple(forced)
    else:
        names = tuple(f"column_{i + 1}" for i in range(len(raw)))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CSVReadError(f"{label}: duplicate column names: {', '.join(duplicates)}")
    return FileLayout(raw_names=raw, names=names, block_size=block)


class _Lines:
    """Assigns row numbers to the valid rows of each batch, stepping over skipped malformed rows.

    pyarrow parses ahead, so a skipped row may be reported before the batch that precedes it is
    returned: skipped numbers wait in a heap until the numbering reaches them.
    """

    def __init__(self, first: int) -> None:
        self.next = first
        self.skipped: list[int] = []

    def skip(self, number: int | None) -> None:
        if number is not None:
            heapq.heappush(self.skipped, number)

    def take(self, count: int) -> Sequence[int]:
        n, heap = self.next, self.skipped
        while heap and heap[0] < n:
            heapq.heappop(heap)
        if not heap or heap[0] >= n + count:
            self.next = n + count
            return range(n, n + count)
        out: list[int] = []
        need = count
        while need:
            while heap and heap[0] < n:
                heapq.heappop(heap)
            if heap and heap[0] < n + need:
                stop = heapq.heappop(heap)
                out.extend(range(n, stop))
                need -= stop - n
                n = stop + 1
            else:
                out.extend(range(n, n + need))
                n += need
                need = 0
        self.next = n
        return out


def read_batches(
    label: str,
    open_stream: Opener,
    options: CSVOptions,
    layout: FileLayout,
    report: ReadReport,
    rows_before: int | None = None,
) -> Iterator[tuple[pa.RecordBatch, Sequence[int]]]:
    """String batches of a file with the row number of every row; malformed rows fail or are skipped.

    With `rows_before` the stream is the rest of a grown file after that many rows: it has no
    header (the layout's names are given) and numbering continues after them.
    """
    invalid: list[Any] = []
    lines = _Lines(options.first_data_row + (rows_before or 0))
    continued = layout.raw_names if rows_before is not None else None

    def handler(row: Any) -> str:
        if options.on_bad_rows != "skip":
            invalid.append(row)
            return "error"
        report.bad_rows += 1
        lines.skip(row.number)
        if len(report.bad_row_examples) < EXAMPLES:
            report.bad_row_examples.append(_describe(row))
        return "skip"

    try:
        reader = pa_csv.open_csv(
            open_stream(),
            read_options=_read_options(options, layout.block_size, continued),
            parse_options=_parse_options(options, handler),
            convert_options=_as_strings(options, layout.raw_names),
        )
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        if continued is not None and "Empty CSV file" in str(exc):
            return  # nothing but blank lines were added
        raise _error(label, exc, invalid) from exc
    with reader:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
                raise _error(label, exc, invalid) from exc
            yield batch.rename_columns(list(layout.names)), lines.take(batch.num_rows)


def infer_kinds(
    names: Sequence[str], batches: Iterator[tuple[pa.RecordBatch, Sequence[int]]], sample_rows: int
) -> dict[str, str]:
    """Infer column kinds from the first `sample_rows` rows of a file's string batches (UNKNOWN:
    all null). Kinds are inferred per batch and widened, so sampling holds one batch, not the sample.
    """
    kinds = dict.fromkeys(names, UNKNOWN)
    count = 0
    try:
        for batch, _ in batches:
            batch = batch.slice(0, sample_rows - count)
            count += batch.num_rows
            for name, column in zip(batch.schema.names, batch.columns, strict=True):
                if kinds.get(name, UNKNOWN) != "string":
                    kinds[name] = merge_kinds(kinds.get(name, UNKNOWN), infer_kind(column))
            if count >= sample_rows:
                break
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return kinds
