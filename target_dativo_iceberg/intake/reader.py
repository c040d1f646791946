"""The hot path: read Singer messages in blocks and hand runs of RECORD lines to sinks as Arrow.

The SDK reads a line, parses it into Python objects and walks it through per-record bookkeeping;
at ~10 fields that caps a target near 40k records/s before any validation. Here stdin is read in
blocks of up to 8 MB (`stdin.read_blocks`), split into lines by Arrow, and every run of RECORD
lines between two other messages (SCHEMA, STATE, BATCH, ACTIVATE_VERSION, handled by the SDK's
handlers in input order) is parsed by pyarrow's JSON reader in one call, using both cores. Each stream's rows then go to its sink as an
Arrow slice together with the raw lines (kept for the record path and for replay digests).

A stream takes the hot path when it has a contract, no stream maps or flattening are configured
and `add_record_metadata` is off (`intake.routes.HotRoutes` decides and logs why not otherwise).
Anything the block parse cannot settle — a parse error, a line that is not what it seemed, a
stream on the record path — goes line by line through the SDK's handlers, exactly as before.
"""

from __future__ import annotations

import contextlib
import json
import sys
import typing as t
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from singer_sdk.singerlib.encoding.base import SingerMessageType
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.singerlib.json import deserialize_json

from target_dativo_iceberg import faults
from target_dativo_iceberg.intake.stdin import read_blocks
from target_dativo_iceberg.memory import release_unused
from target_dativo_iceberg.sdk_compat import SdkReader

if t.TYPE_CHECKING:
    from target_dativo_iceberg.delivery.shutdown import Shutdown
    from target_dativo_iceberg.intake.routes import HotRoutes

PARSE_BLOCK_BYTES = 1 << 20  # pyarrow.json block: several per run so both cores parse
RECORD = SingerMessageType.RECORD


def split_lines(block: bytes) -> pa.Array:
    """The block's lines (without newlines) as an Arrow large_binary array."""
    lines = pc.split_pattern(pa.array([block], pa.large_binary()), b"\n").values
    if len(lines) and block.endswith(b"\n"):
        lines = lines.slice(0, len(lines) - 1)  # the empty piece after the final newline
    return lines


def concat_values(array: pa.Array) -> pa.Buffer:
    """The values of a large_binary array, concatenated (a zero-copy slice of its data buffer)."""
    _, offsets_buffer, data = array.buffers()
    offsets = pa.Array.from_buffers(pa.int64(), len(array) + 1, [None, offsets_buffer], offset=array.offset)
    start, end = offsets[0].as_py(), offsets[len(array)].as_py()
    return data.slice(start, end - start) if data is not None else pa.py_buffer(b"")


def joined_lines(lines: pa.Array) -> pa.Buffer:
    """`lines` as one newline-terminated buffer."""
    newline = pa.scalar(b"\n", lines.type)
    return concat_values(pc.binary_join_element_wise(lines, pa.scalar(b"", lines.type), newline))


class BlockReader(SdkReader):
    """Message reader of the target (the SDK's `message_reader_class`)."""

    default_input = sys.stdin

    def __init__(self) -> None:
        super().__init__()
        self.routes: HotRoutes | None = None  # None until `connect`: every line takes the SDK's path
        self.shutdown: Shutdown | None = None
        self._idle: t.Callable[[], float | None] | None = None
        self._after_records: t.Callable[[], None] = lambda: None
        self.current_line: bytes | None = None  # the RECORD line being handled on the record path

    def connect(
        self,
        routes: HotRoutes,
        shutdown: Shutdown,
        idle: t.Callable[[], float | None],
        after_records: t.Callable[[], None],
    ) -> None:
        """The target's collaborators: which streams are hot, the stop request, what to do while the
        input is silent (time-based commits) and after each hot run (batch age, finished commits)."""
        self.routes, self.shutdown, self._idle, self._after_records = routes, shutdown, idle, after_records

    def deserialize_json(self, line: str | bytes) -> dict:
        """Like the SDK: floats as Decimal; a bad line is an InvalidInputLine naming it."""
        try:
            return deserialize_json(line)
        except json.JSONDecodeError as exc:
            text = line.decode(errors="replace") if isinstance(line, bytes) else line
            raise InvalidInputLine(f"Unable to parse line as JSON: {text[:500]}") from exc

    def process_lines(
        self, file_input: t.IO[str] | None, callbacks: dict[str, t.Callable[[dict], None]]
    ) -> t.Counter[str]:
        stats: Counter[str] = Counter()
        shutdown = self.shutdown
        waiting = shutdown.interruptible if shutdown is not None else contextlib.nullcontext
        for block in read_blocks(file_input or sys.stdin, idle=self._idle, waiting=waiting):
            faults.reached("block")
            if shutdown is not None:
                shutdown.check()  # a stop signal: no new block is started
            self._block(block, callbacks, stats)
            release_unused()
        return stats

    def _block(self, block: bytes, callbacks: dict, stats: Counter[str]) -> None:
        """One block: runs of RECORD lines between the other messages, in input order.

        When the block's other messages are all STATEs (the usual case: a STATE every few thousand
        records), all its RECORD lines are parsed in one call (bigger parses use both cores better)
        and sliced into the runs between the STATEs.
        """
        lines = split_lines(block)
        n = len(lines)
        if not n:
            return
        maybe_record = pc.match_substring(lines, '"RECORD"')
        others = pc.indices_nonzero(pc.invert(maybe_record)).to_pylist()
        messages = {i: self.deserialize_json(lines[i].as_py()) for i in others}
        whole = None
        only_states = all(m.get("type") == "STATE" for m in messages.values())
        tried = self._hot() and only_states and len(others) < n
        if tried:
            whole = self._parse(lines.filter(maybe_record) if others else lines)
        retry = not (tried and whole is None and not others)  # one run that just failed: no second try
        start = offset = 0
        for index in [*others, n]:
            if index > start:
                count = index - start
                part = (
                    None if whole is None else (whole[0].slice(offset, count), whole[1].slice(offset, count))
                )
                self._records(lines.slice(start, count), callbacks, stats, part, retry)
                offset += count
            if index < n:
                self._message(messages[index], lines[index].as_py(), callbacks, stats)
            start = index + 1

    def _hot(self) -> bool:
        return self.routes is not None and self.routes.any()

    def _line(self, line: bytes, callbacks: dict, stats: Counter[str]) -> None:
        """One message through the SDK's handler (the record path for a RECORD)."""
        self._message(self.deserialize_json(line), line, callbacks, stats)

    def _message(self, message: dict, line: bytes, callbacks: dict, stats: Counter[str]) -> None:
        if self.shutdown is not None:
            self.shutdown.check()  # a stop signal: no further message is handled
        self.assert_line_requires(message, requires={"type"})
        kind = message["type"]
        self.current_line = line if kind == RECORD else None
        if callback := callbacks.get(kind):
            callback(message)
        else:
            self.unknown_message(message)
        self.current_line = None
        stats[kind] += 1

    def _records(
        self,
        lines: pa.Array,
        callbacks: dict,
        stats: Counter[str],
        parsed: tuple[pa.Array, pa.Table] | None = None,
        parse: bool = True,
    ) -> None:
        """A run of (probable) RECORD lines: parsed as one Arrow table when every stream in it is hot."""
        if parsed is None and parse and self._hot():
            parsed = self._parse(lines)
        if parsed is None:
            for line in lines.to_pylist():
                self._line(line, callbacks, stats)
            return
        streams, records = parsed
        names = pc.unique(streams).to_pylist()
        if len(names) == 1:
            self._route(names[0], lines, records, callbacks, stats)
        else:
            for name in names:
                mask = pc.equal(streams, name)
                self._route(name, lines.filter(mask), records.filter(mask), callbacks, stats)
        self._after_records()

    def _route(
        self, stream: str, lines: pa.Array, records: pa.Table, callbacks: dict, stats: Counter[str]
    ) -> None:
        sink = self.routes.sink(stream) if self.routes is not None else None
        if sink is None:
            for line in lines.to_pylist():
                self._line(line, callbacks, stats)
            return
        sink.add_rows(lines, records)
        stats[RECORD] += len(lines)

    def _parse(self, lines: pa.Array) -> tuple[pa.Array, pa.Table] | None:
        """(stream per line, record columns) or None when Arrow cannot parse the run as RECORDs."""
        assert self.routes is not None
        schema = pa.schema(
            [("type", pa.string()), ("stream", pa.string()), ("record", self.routes.record_hints())]
        )
        try:
            table = pj.read_json(
                pa.BufferReader(joined_lines(lines)),
                read_options=pj.ReadOptions(block_size=PARSE_BLOCK_BYTES),
                parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None
        if table.num_rows != len(lines):
            return None
        kinds = table.column("type")
        if kinds.null_count or not pc.all(pc.equal(kinds, RECORD.value)).as_py():
            return None
        streams = table.column("stream").combine_chunks()
        struct = table.column("record").combine_chunks()
        if streams.null_count or struct.null_count or not pa.types.is_struct(struct.type):
            return None
        fields = struct.type
        columns = struct.flatten()
        names = [fields.field(i).name for i in range(fields.num_fields)]
        if len(set(names)) != len(names):
            return None
        return streams, pa.Table.from_arrays(columns, names=names)
