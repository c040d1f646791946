"""Streaming CSV reading with pyarrow: bounded memory, typed values, errors that name file and line.

Every column is read as a string and converted per chunk afterwards. That way a value that does not
fit its declared type never aborts the whole file: it is emitted as the raw string and the target's
contract validation decides what to do with it (reject in warn mode, fail in strict mode).
"""

from __future__ import annotations

import datetime
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

UTC = datetime.timezone.utc
_MIN_BLOCK = 64 * 1024
_MAX_BLOCK = 512 * 1024 * 1024
_SAMPLE_BYTES = 64 * 1024
_INFER_BLOCK = 1024 * 1024
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_ROW_RE = re.compile(r"Row #(\d+)")


class CSVReadError(ValueError):
    """A CSV file that cannot be parsed; the message names the file (and line when known)."""


@dataclass(frozen=True)
class CSVOptions:
    """CSV dialect and chunking settings shared by every file of the tap."""

    delimiter: str = ","
    quotechar: str = '"'
    encoding: str = "utf-8"
    header: bool = True
    null_values: tuple[str, ...] = ("",)
    chunk_size: int = 10_000


@dataclass(frozen=True)
class FileLayout:
    """Column names as pyarrow sees them (`raw_names`) and as records carry them (`names`)."""

    raw_names: tuple[str, ...]
    names: tuple[str, ...]


def block_size_for(path: str, chunk_size: int) -> int:
    """Bytes per pyarrow block so one block holds about `chunk_size` rows, from a sample of the file.

    The floor keeps long rows from straddling blocks; the ceiling keeps memory bounded.
    """
    with open(path, "rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    lines = sample.split(b"\n")
    avg_row = len(sample) / max(len(lines) - 1, 1) if sample else 64.0
    longest = max((len(line) for line in lines), default=0)
    wanted = int(chunk_size * avg_row * 1.2)
    return max(_MIN_BLOCK, 8 * longest, min(wanted, _MAX_BLOCK))


def _read_options(options: CSVOptions, block_size: int) -> pa_csv.ReadOptions:
    """Single-threaded reads: pyarrow then reports row numbers of malformed rows."""
    return pa_csv.ReadOptions(
        block_size=block_size,
        encoding=options.encoding,
        use_threads=False,
        autogenerate_column_names=not options.header,
    )


def _parse_options(options: CSVOptions, invalid: list[Any] | None = None) -> pa_csv.ParseOptions:
    """Dialect options; malformed rows are recorded (for the error message) and then fail the read."""

    def handler(row: Any) -> str:
        if invalid is not None:
            invalid.append(row)
        return "error"

    return pa_csv.ParseOptions(
        delimiter=options.delimiter,
        quote_char=options.quotechar or False,
        newlines_in_values=True,
        invalid_row_handler=handler,
    )


def _as_strings(options: CSVOptions, raw_names: Sequence[str]) -> pa_csv.ConvertOptions:
    """Read every column as nullable string; typing happens per chunk in `convert_batch`."""
    return pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in raw_names},
        null_values=list(options.null_values),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def _error(path: str, exc: Exception, invalid: Sequence[Any] = ()) -> CSVReadError:
    """Turn a pyarrow error into one that names the file and, when known, the line."""
    message = str(exc)
    if invalid:
        row = invalid[-1]
        where = f" at line {row.number}" if row.number is not None else ""
        return CSVReadError(
            f"{path}: malformed CSV{where}: expected {row.expected_columns} columns, "
            f"got {row.actual_columns}: {row.text!r}"
        )
    match = _ROW_RE.search(message)
    where = f" at line {match.group(1)}" if match else ""
    hint = ""
    if "straddling" in message:
        hint = " (a row is longer than the read block; raise `chunk_size`)"
    elif "UTF8" in message or "decode" in message.lower():
        hint = " (check the `encoding` setting)"
    return CSVReadError(f"{path}: cannot read CSV{where}: {message}{hint}")


def _header_bytes(path: str, options: CSVOptions) -> bytes | None:
    """The leading bytes holding the first CSV row, so discovery never parses data rows.

    None when the first row does not end within the sample (then the whole first block is used).
    """
    with open(path, "rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    quote = options.quotechar.encode(options.encoding, errors="ignore") if options.quotechar else b""
    start = 0
    while (newline := sample.find(b"\n", start)) >= 0:
        head = sample[: newline + 1]
        if not quote or head.count(quote) % 2 == 0:
            return head
        start = newline + 1
    return sample if len(sample) < _SAMPLE_BYTES else None


def inspect_file(path: str, options: CSVOptions, fixed_names: Sequence[str] | None = None) -> FileLayout:
    """Read just the first row to learn the columns. Without a header, use `fixed_names` or column_N."""
    try:
        if os.path.getsize(path) == 0:
            return FileLayout(raw_names=(), names=())
        head = _header_bytes(path, options)
        reader = pa_csv.open_csv(
            # A native buffer, not io.BytesIO: pyarrow's reader threads must never call back into
            # Python, or a readahead still pending at interpreter exit aborts the process.
            pa.BufferReader(head) if head is not None else path,
            read_options=_read_options(options, _INFER_BLOCK),
            parse_options=_parse_options(options),
        )
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise _error(path, exc) from exc
    raw = tuple(reader.schema.names)
    reader.close()
    if options.header:
        names = tuple(name.strip() or f"column_{i + 1}" for i, name in enumerate(raw))
    elif fixed_names is not None:
        if len(fixed_names) != len(raw):
            raise CSVReadError(
                f"{path}: has {len(raw)} columns but the contract declares {len(fixed_names)} "
                "(with `header: false` the columns are taken from the contract in order)"
            )
        names = tuple(fixed_names)
    else:
        names = tuple(f"column_{i + 1}" for i in range(len(raw)))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CSVReadError(f"{path}: duplicate column names in header: {', '.join(duplicates)}")
    return FileLayout(raw_names=raw, names=names)


def _kind_of_arrow(dtype: pa.DataType) -> str:
    """Only integer/number/boolean are inferred; dates and timestamps stay strings."""
    if pa.types.is_integer(dtype):
        return "integer"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_boolean(dtype):
        return "boolean"
    return "string"


def infer_kinds(path: str, options: CSVOptions, layout: FileLayout) -> dict[str, str]:
    """Infer column kinds from the first block of the file (about 1 MiB) with pyarrow's inference."""
    if not layout.raw_names:
        return {}
    convert = pa_csv.ConvertOptions(null_values=list(options.null_values), strings_can_be_null=True)
    invalid: list[Any] = []
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=_read_options(options, _INFER_BLOCK),
            parse_options=_parse_options(options, invalid),
            convert_options=convert,
        )
        schema = reader.schema
        reader.close()
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise _error(path, exc, invalid) from exc
    return {name: _kind_of_arrow(field.type) for name, field in zip(layout.names, schema, strict=True)}


def merge_kinds(a: str, b: str) -> str:
    """Widen two inferred kinds seen in different files of one stream."""
    if a == b:
        return a
    if {a, b} == {"integer", "number"}:
        return "number"
    return "string"


# -- per-value fallbacks, used only when a whole chunk does not convert in Arrow ------------------


def _py_integer(value: str) -> Any:
    try:
        return int(value.strip())
    except ValueError:
        return value


def _py_number(value: str) -> Any:
    try:
        number = float(value.strip())
    except ValueError:
        return value
    return number if math.isfinite(number) else None


def _py_boolean(value: str) -> Any:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return value


def _py_date(value: str) -> Any:
    try:
        return datetime.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        return value


def _py_timestamp(value: str) -> Any:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_PY_CONVERTERS = {
    "integer": _py_integer,
    "number": _py_number,
    "boolean": _py_boolean,
    "date": _py_date,
    "timestamp": _py_timestamp,
}


def _arrow_convert(column: pa.Array, kind: str) -> pa.Array:
    """Vectorised conversion of a string column; raises when any value does not fit."""
    if kind == "integer":
        return pc.cast(column, pa.int64())
    if kind == "number":
        numbers = pc.cast(column, pa.float64())
        return pc.if_else(pc.is_finite(numbers), numbers, pa.scalar(None, pa.float64()))
    if kind == "boolean":
        return pc.cast(column, pa.bool_())
    if kind == "date":
        return pc.cast(pc.cast(column, pa.date32()), pa.string())
    if kind == "timestamp":
        try:
            stamps = pc.cast(column, pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid:
            stamps = pc.assume_timezone(pc.cast(column, pa.timestamp("us")), "UTC")
        return pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ")
    return column


def convert_batch(batch: pa.RecordBatch, kinds: dict[str, str]) -> list[dict[str, Any]]:
    """Type one chunk of string columns and return JSON-serialisable records."""
    arrays: list[pa.Array] = []
    fallbacks: dict[str, list[Any]] = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        kind = kinds.get(name, "string")
        if kind == "string":
            arrays.append(column)
            continue
        try:
            arrays.append(_arrow_convert(column, kind))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            convert = _PY_CONVERTERS[kind]
            fallbacks[name] = [None if v is None else convert(v) for v in column.to_pylist()]
            arrays.append(pa.nulls(len(column)))
    records = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names).to_pylist()
    for name, values in fallbacks.items():
        for record, value in zip(records, values, strict=True):
            record[name] = value
    return records


def iter_records(
    path: str,
    options: CSVOptions,
    layout: FileLayout,
    kinds: dict[str, str],
    fill: Sequence[str] = (),
) -> Iterator[dict[str, Any]]:
    """Yield typed records of one file, at most `chunk_size` rows converted at a time.

    `fill` names stream columns this file lacks; they are emitted as null so every record of a
    stream has the same keys.
    """
    if not layout.raw_names:
        return
    invalid: list[Any] = []
    chunk = max(1, options.chunk_size)
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=_read_options(options, block_size_for(path, chunk)),
            parse_options=_parse_options(options, invalid),
            convert_options=_as_strings(options, layout.raw_names),
        )
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise _error(path, exc, invalid) from exc
    missing = dict.fromkeys(fill)
    with reader:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
                raise _error(path, exc, invalid) from exc
            batch = batch.rename_columns(list(layout.names))
            for offset in range(0, batch.num_rows, chunk):
                for record in convert_batch(batch.slice(offset, chunk), kinds):
                    if missing:
                        record.update(missing)
                    yield record
