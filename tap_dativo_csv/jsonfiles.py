"""JSON sources as string batches: NDJSON streamed line by line, JSON arrays element by element.

Values become text the way a CSV cell is text (strings as they are, numbers and booleans as JSON
writes them, objects and arrays as compact JSON), so the contract (or `infer_types`) types them
exactly like CSV columns. Memory stays bounded by `chunk_size` records plus one 1 MiB read block:
NDJSON is split at newlines (a JSON string never holds a raw one); a JSON array is parsed one
element at a time by the standard library's `raw_decode` on a sliding text window (no incremental
JSON parser is a dependency here), so only a single element must fit in memory — at most
`MAX_VALUE` characters, a larger (or unterminated) one stops the file with a clear error.

Numbers (`_sdc_source_lineno`, messages): NDJSON rows are numbered by their non-blank line, like CSV
rows; JSON arrays by element (1-based).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from tap_dativo_csv.fileread import FileRead
from tap_dativo_csv.reader import EXAMPLES
from target_dativo_iceberg.errors import CSVReadError

_BLOCK = 1024 * 1024
#: Longest NDJSON line / JSON array element, in characters.
MAX_VALUE = 64 * 1024 * 1024
_WHITESPACE = " \t\r\n"


def _text(value: Any) -> str | None:
    """A JSON value as cell text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _Rows:
    """Records collected into string batches of at most `chunk_size` rows."""

    def __init__(self, read: FileRead) -> None:
        self.read = read
        self.names: dict[str, None] = {}
        self.rows: list[dict[str, str | None]] = []
        self.numbers: list[int] = []

    def add(self, value: Any, number: int, where: str) -> None:
        """Add one parsed value; a value that is not an object is a bad row."""
        if not isinstance(value, dict):
            self.bad(number, where, f"expected a JSON object, got {type(value).__name__}", _text(value))
            return
        row = {str(k): _text(v) for k, v in value.items()}
        for key in row:
            if key not in self.names:
                self.names[key] = None
        self.rows.append(row)
        self.numbers.append(number)

    def bad(self, number: int, where: str, problem: str, text: Any) -> None:
        """A record that cannot be read: skipped and counted with `on_bad_rows: skip`, else fatal."""
        sample = str(text)[:200]
        if self.read.options.on_bad_rows != "skip":
            raise CSVReadError(
                f"{self.read.label}: invalid JSON at {where} {number}: {problem}: {sample!r} "
                "(on_bad_rows: skip skips such records)"
            )
        report = self.read.report
        report.bad_rows += 1
        if len(report.bad_row_examples) < EXAMPLES:
            report.bad_row_examples.append(f"{where} {number}: {problem}: {sample!r}")

    @property
    def full(self) -> bool:
        return len(self.rows) >= max(1, self.read.options.chunk_size)

    def take(self) -> Iterator[tuple[pa.RecordBatch, Sequence[int]]]:
        """The collected rows as one batch (if any), then start afresh."""
        if not self.rows:
            return
        schema = pa.schema([(name, pa.string()) for name in self.names])
        batch = pa.RecordBatch.from_pylist(self.rows, schema=schema)
        numbers = self.numbers
        self.names, self.rows, self.numbers = {}, [], []
        yield batch, numbers


class _Text:
    """Decoded text of a native stream, read block by block."""

    def __init__(self, read: FileRead, stream: pa.NativeFile) -> None:
        self.label = read.label
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder(read.options.encoding)("strict")
        self.eof = False
        self.started = False

    def more(self) -> str:
        """The next block of text ('' at the end)."""
        if self.eof:
            return ""
        try:
            block = self.stream.read(_BLOCK)
        except OSError as exc:
            raise CSVReadError(f"{self.label}: cannot read: {exc}") from exc
        self.eof = not block
        try:
            text = self.decoder.decode(block, final=self.eof)
        except UnicodeDecodeError as exc:
            raise CSVReadError(f"{self.label}: cannot decode: {exc} (check the `encoding` setting)") from exc
        if not self.started and text:
            self.started = True
            text = text.removeprefix("\ufeff")
        return text


def read_ndjson(read: FileRead) -> Iterator[tuple[pa.RecordBatch, Sequence[int]]]:
    """NDJSON: one JSON object per line; blank lines are skipped."""
    rows = _Rows(read)
    number = read.rows_before or 0
    with read.open_stream() as stream:
        text = _Text(read, stream)
        rest = ""
        while True:
            block = text.more()
            lines = (rest + block).split("\n")
            rest = lines.pop() if not text.eof else ""
            if len(rest) > MAX_VALUE:
                raise CSVReadError(f"{read.label}: line {number + 1} is longer than {MAX_VALUE} characters")
            for line in lines:
                if not line.strip():
                    continue
                number += 1
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    rows.bad(number, "line", str(exc), line)
                    continue
                rows.add(value, number, "line")
                if rows.full:
                    yield from rows.take()
            if text.eof:
                break
    yield from rows.take()


def read_json(read: FileRead) -> Iterator[tuple[pa.RecordBatch, Sequence[int]]]:
    """A JSON array of objects (or objects one after another, e.g. a single object)."""
    rows = _Rows(read)
    decoder = json.JSONDecoder()
    with read.open_stream() as stream:
        text = _Text(read, stream)
        buf, pos, number = text.more(), 0, 0

        def skip_space() -> None:
            nonlocal buf, pos
            while True:
                while pos < len(buf) and buf[pos] in _WHITESPACE:
                    pos += 1
                if pos < len(buf) or text.eof:
                    return
                buf, pos = text.more(), 0

        skip_space()
        array = pos < len(buf) and buf[pos] == "["
        if array:
            pos += 1
        while True:
            skip_space()
            if pos >= len(buf):
                if array:
                    raise CSVReadError(f"{read.label}: invalid JSON: the array is not closed with ']'")
                break
            if array and buf[pos] == "]":
                pos += 1
                skip_space()
                if pos < len(buf):
                    raise CSVReadError(
                        f"{read.label}: invalid JSON after the closing ']': {buf[pos : pos + 40]!r}"
                    )
                break
            if array and number and buf[pos] == ",":
                pos += 1
                skip_space()
            elif array and number:
                raise CSVReadError(
                    f"{read.label}: invalid JSON after element {number}: expected ',' or ']', "
                    f"got {buf[pos : pos + 40]!r}"
                )
            number += 1
            while True:  # decode one element, reading more text while it is cut off
                try:
                    value, end = decoder.raw_decode(buf, pos)
                    if end < len(buf) or text.eof:
                        break
                except json.JSONDecodeError as exc:
                    if text.eof or len(buf) - pos > MAX_VALUE:
                        where = "element" if array else "value"
                        raise CSVReadError(f"{read.label}: invalid JSON at {where} {number}: {exc}") from exc
                buf, pos = buf[pos:] + text.more(), 0
            rows.add(value, number, "element")
            pos = end
            if pos > _BLOCK:
                buf, pos = buf[pos:], 0
            if rows.full:
                yield from rows.take()
    yield from rows.take()
