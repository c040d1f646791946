"""An input block split into lines and its RECORD lines parsed as Arrow, one block ahead of the main thread.

Splitting an 8 MB block into lines and parsing its RECORDs with `pyarrow.json` was ~60% of the
main thread's time on the 1M-record benchmark stream (split ~0.45 s, parse ~1 s of 308 MB); the
rest is handing the runs to sinks, STATE handling and reporting commits. `BlockParser` prepares the
next block on its own thread while the main thread handles the current one (the Arrow kernels
release the GIL), so the two overlap on two cores. Nothing here touches a sink: a block is
prepared with the record type hints in force when it was read, and the main thread parses it again
when a SCHEMA it handled since has changed them (`BlockReader._handle`).
"""

from __future__ import annotations

import typing as t
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from singer_sdk.singerlib.encoding.base import SingerMessageType

from target_dativo_iceberg.errors import InputError
from target_dativo_iceberg.intake.inputs import ARROW_DEPTH, deep_value, long_lines, utf8_problem
from target_dativo_iceberg.intake.metadata import MESSAGE_TYPES, with_message_fields
from target_dativo_iceberg.memory import release_unused

PARSE_BLOCK_BYTES = 1 << 20  # pyarrow.json block: several per run so both cores parse
RECORD = SingerMessageType.RECORD

Parsed = tuple[pa.Array, pa.Table]  # (stream per line, record columns)


def split_lines(block: bytes) -> pa.Array:
    """The block's lines (without newlines) as an Arrow large_binary array.

    The block is handed to Arrow in place: `pa.array([block])` copied it first, 308 MB into freshly
    zeroed pages for 1M records (page zeroing was ~11% of the target's CPU on the benchmark stream)."""
    whole = pa.Array.from_buffers(
        pa.large_binary(), 1, [None, pa.py_buffer(np.array([0, len(block)], np.int64)), pa.py_buffer(block)]
    )
    lines = pc.split_pattern(whole, b"\n").values
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


def parse_records(
    data: pa.Buffer, rows: int, hints: pa.StructType, records: pa.Array | None = None
) -> Parsed | None:
    """(stream per line, record columns) of `rows` newline-terminated lines, or None when Arrow
    cannot parse them as RECORDs. `hints`: record fields parsed with a given type. `records`: which
    lines are RECORDs (the others are STATEs, parsed along so the block is read in place rather than
    copied without them)."""
    schema = pa.schema(
        [("type", pa.string()), ("stream", pa.string()), ("record", hints), *MESSAGE_TYPES.items()]
    )
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(block_size=PARSE_BLOCK_BYTES),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != rows:
        return None
    try:
        kinds = table.column("type").combine_chunks()
        streams = table.column("stream").combine_chunks()
        struct = table.column("record").combine_chunks()
    except pa.ArrowException:  # pyarrow 26 cannot combine a struct with a list<null> child
        return None
    if not pa.types.is_struct(struct.type):
        return None
    if records is None:
        if kinds.null_count or streams.null_count or struct.null_count:
            return None
        if not pc.all(pc.equal(kinds, RECORD.value)).as_py():
            return None
    else:
        wrong = pc.or_kleene(pc.is_null(streams), pc.is_null(struct))
        wrong = pc.or_kleene(wrong, pc.not_equal(pc.fill_null(kinds, ""), RECORD.value))
        if pc.any(pc.and_(records, wrong)).as_py():
            return None
    fields = struct.type
    columns = struct.flatten()
    names = [fields.field(i).name for i in range(fields.num_fields)]
    if len(set(names)) != len(names):
        return None
    return streams, with_message_fields(pa.Table.from_arrays(columns, names=names), table)


def arrow_safe(block: bytes, lines: pa.Array, first: int) -> bool:
    """Before anything parses the block: every line must be UTF-8 (Arrow would copy invalid bytes
    into columns). False when a line nests deeper than `ARROW_DEPTH` and long enough that Arrow
    might crash on it (its nested-type code recurses: a few thousand levels take the process down):
    the block then goes line by line, and that line's error names its record like any other."""
    bad = utf8_problem(lines)
    if bad is not None:
        index, offset, byte = bad
        raise InputError(
            f"input line {first + index}: not valid UTF-8 at byte offset {offset} of the line "
            f"(0x{byte:02x}); Singer messages are UTF-8 encoded JSON, one per line"
        )
    return not any(deep_value(lines[i].as_py()) for i in long_lines(block, lines, ARROW_DEPTH))


@dataclass
class Block:
    """A block ready for the main thread: its lines, the other messages, and its RECORDs parsed."""

    raw: bytes
    lines: pa.Array
    first: int  # input line number of lines[0]
    safe: bool  # Arrow may parse its lines
    others: list[int]  # indices of the lines that are not RECORDs
    messages: dict[int, dict] | None  # those lines read (None: one failed; the main thread reads them)
    hints: pa.StructType | None  # the record hints it was parsed with (None: no stream was hot)
    whole: Parsed | None = None  # its RECORD lines parsed, when the other messages are all STATEs
    aligned: bool = False  # whole's rows are the block's lines (STATE rows included), not only RECORDs
    tried: bool = False  # a whole parse was tried


class BlockParser:
    """Prepares blocks in input order on one worker thread (`submit`), or in place (`prepare`)."""

    def __init__(self, deserialize: t.Callable[[bytes, int], dict]) -> None:
        self._deserialize = deserialize  # a non-RECORD line (and its input line number) read
        self._lines = 0  # input lines of the blocks prepared so far
        self._whole_blocks = True  # parse a block's STATE lines along with its RECORDs (until it fails)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dativo-parse")

    def submit(self, raw: bytes, hints: pa.StructType | None) -> Future[Block]:
        """`prepare` the next block on the worker thread."""
        return self._worker.submit(self._prepared_ahead, raw, hints)

    def _prepared_ahead(self, raw: bytes, hints: pa.StructType | None) -> Block:
        try:
            return self.prepare(raw, hints)
        finally:
            release_unused()  # this thread's cached Arrow pages (see memory.py)

    def prepare(self, raw: bytes, hints: pa.StructType | None, first: int | None = None) -> Block:
        """Split `raw` into lines, read its other messages and, when they are all STATEs and a stream
        is hot (`hints` given), parse its RECORD lines in one call. `first`: parse again a block
        prepared before (its first line number), else the next block of the input."""
        lines = split_lines(raw)
        if first is None:
            first = self._lines + 1
            self._lines += len(lines)
        n = len(lines)
        if not n:
            return Block(raw, lines, first, False, [], {}, hints)
        safe = arrow_safe(raw, lines, first)
        maybe_record = pc.match_substring(lines, '"RECORD"')
        others = pc.indices_nonzero(pc.invert(maybe_record)).to_pylist()
        try:
            messages: dict[int, dict] | None = {
                i: self._deserialize(lines[i].as_py(), first + i) for i in others
            }
        except InputError:
            messages = None  # the main thread reads them again, in order, and fails there
        block = Block(raw, lines, first, safe, others, messages, hints)
        only_states = messages is not None and all(m.get("type") == "STATE" for m in messages.values())
        block.tried = safe and hints is not None and only_states and len(others) < n
        if not block.tried:
            return block
        assert hints is not None
        if others and self._whole_blocks:
            block.whole = parse_records(pa.py_buffer(raw), n, hints, maybe_record)
            block.aligned = block.whole is not None
        if block.whole is None:
            data = joined_lines(lines.filter(maybe_record) if others else lines)
            block.whole = parse_records(data, n - len(others), hints)
            if block.whole is not None and others:  # the STATEs broke the parse: filter from now on
                self._whole_blocks = False
        return block
