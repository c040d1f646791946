"""The hot path: read Singer messages in blocks and hand runs of RECORD lines to sinks as Arrow.

The SDK reads a line, parses it into Python objects and walks it through per-record bookkeeping;
at ~10 fields that caps a target near 40k records/s before any validation. Here stdin is read in
blocks of up to 8 MB (`stdin.read_blocks`), split into lines by Arrow, and every run of RECORD
lines between two other messages (SCHEMA, STATE, BATCH, ACTIVATE_VERSION, handled by the SDK's
handlers in input order) is parsed by pyarrow's JSON reader in one call, using both cores; the
next block is split and parsed on a worker thread while this one is handled (`intake.blocks`).
Each stream's rows then go to its sink as an Arrow slice together with the raw lines (kept for
the record path and for replay digests).

A stream takes the hot path when no stream maps are configured (flattening is done on the parsed
columns, `intake.flattening`) and it has a contract or a Singer schema the column rules cover
(`intake.routes.HotRoutes` decides and logs why not otherwise). The message fields
`time_extracted` and `version` are parsed too, as the `_sdc_extracted_at` / `_sdc_table_version`
columns `add_record_metadata` fills. Anything the block parse cannot settle — a parse error, a
line that is not what it seemed, a
stream on the record path — goes line by line through the SDK's handlers, exactly as before.
"""

from __future__ import annotations

import contextlib
import json
import sys
import typing as t
from collections import Counter
from concurrent.futures import Future

import pyarrow as pa
import pyarrow.compute as pc
from singer_sdk.exceptions import RecordsWithoutSchemaException
from singer_sdk.singerlib.encoding.base import SingerMessageType
from singer_sdk.singerlib.json import deserialize_json

from target_dativo_iceberg import faults
from target_dativo_iceberg.errors import InputError, RecordBeforeSchemaError
from target_dativo_iceberg.intake.blocks import Block, BlockParser, joined_lines, parse_records
from target_dativo_iceberg.intake.freshness import Freshness
from target_dativo_iceberg.intake.inputs import (
    MAX_DEPTH,
    DeepValue,
    deep_value,
    message_label,
    message_problem,
    openers,
    preview,
    stream_of,
    where,
)
from target_dativo_iceberg.intake.stdin import read_blocks
from target_dativo_iceberg.memory import release_unused
from target_dativo_iceberg.sdk_compat import SdkReader

if t.TYPE_CHECKING:
    from target_dativo_iceberg.delivery.shutdown import Shutdown
    from target_dativo_iceberg.intake.routes import HotRoutes

RECORD = SingerMessageType.RECORD


class BlockReader(SdkReader):
    """Message reader of the target (the SDK's `message_reader_class`)."""

    default_input = sys.stdin

    def __init__(self) -> None:
        super().__init__()
        self.routes: HotRoutes | None = None  # None until `connect`: every line takes the SDK's path
        self.shutdown: Shutdown | None = None
        self._idle: t.Callable[[], float | None] | None = None
        self._after_records: t.Callable[[], None] = lambda: None
        self._position: t.Callable[[str], int | None] = lambda _stream: None
        self.current_line: bytes | None = None  # the RECORD line being handled on the record path
        self.lines_read = 0  # input lines of the blocks read so far (error messages name lines)
        #: True while the records being handled are followed directly by a STATE in the block read:
        #: a sink they fill then drains after that STATE (`IcebergSink.is_full`), so its commit covers it.
        self.state_follows = False
        self.stats: Counter[str] = Counter()  # messages handled, by type (the run ledger's records received)
        self.freshness = Freshness()  # how recent each stream's records are (the lag metric)
        self.after_block: t.Callable[[], None] = lambda: None  # after each block (progress events)
        self._blocks = BlockParser(self.deserialize_json)  # blocks split and parsed one ahead

    def connect(
        self,
        routes: HotRoutes,
        shutdown: Shutdown,
        idle: t.Callable[[], float | None],
        after_records: t.Callable[[], None],
        next_position: t.Callable[[str], int | None],
    ) -> None:
        """The target's collaborators: which streams are hot, the stop request, what to do while the
        input is silent (time-based commits) and after each hot run (batch age, finished commits),
        and the position a stream's next record will have (error messages name it)."""
        self.routes, self.shutdown, self._idle = routes, shutdown, idle
        self._after_records, self._position = after_records, next_position

    def deserialize_json(
        self, line: str | bytes, number: int | None = None, position: int | None = None
    ) -> dict:
        """Like the SDK: floats as Decimal. A line that is not JSON, or nests deeper than `MAX_DEPTH`,
        is an InputError naming the input line `number` (or the record `position`) and the field."""
        data = line.encode() if isinstance(line, str) else line
        try:
            message = deserialize_json(data)
        except RecursionError:
            raise self._too_deep(data, deep_value(data), number, position, None) from None
        except json.JSONDecodeError as exc:
            problem = f"{exc.msg} at column {exc.colno}"
            raise InputError(
                f"{where(number, position=position)}: not valid JSON ({problem}): {preview(data, 200)}"
            ) from None
        except ValueError as exc:  # not UTF-8 (lines are checked per block; this is the fallback)
            raise InputError(f"{where(number, position=position)}: cannot be read ({exc})") from None
        if openers(data) > MAX_DEPTH:
            site = deep_value(data)
            if site is not None:
                raise self._too_deep(data, site, number, position, message)
        return message

    def _too_deep(
        self, data: bytes, site: DeepValue | None, number: int | None, position: int | None, message: t.Any
    ) -> InputError:
        """The error for a line nested deeper than `MAX_DEPTH`: line, stream, record, field, preview."""
        stream = message.get("stream") if isinstance(message, dict) else stream_of(data)
        field = site.field if site is not None else None
        if position is None and field is not None:
            position = self._next_position(stream)
        snippet = preview(data[site.offset :] if site is not None else data)
        return InputError(
            f"{where(number, stream, position, field)}: value nested more than {MAX_DEPTH} levels deep "
            f"(at most {MAX_DEPTH} levels of [ and {{ are accepted in an input line): {snippet}"
        )

    def _next_position(self, stream: t.Any) -> int | None:
        """Position the stream's next record will have (error messages at read time)."""
        return self._position(stream) if isinstance(stream, str) else None

    def process_lines(
        self, file_input: t.IO[str] | None, callbacks: dict[str, t.Callable[[dict], None]]
    ) -> t.Counter[str]:
        stats = self.stats
        shutdown = self.shutdown
        waiting = shutdown.interruptible if shutdown is not None else contextlib.nullcontext
        pending: list[Future[Block]] = []  # the block being prepared ahead (at most one)

        def settle() -> None:  # handle the block prepared ahead (before waiting for more input)
            while pending:
                self._handle(pending.pop().result(), callbacks, stats)

        source = file_input or sys.stdin
        for raw in read_blocks(source, idle=self._idle, waiting=waiting, before_wait=settle):
            ahead = self._blocks.submit(raw, self._hints())
            settle()
            pending.append(ahead)
        settle()
        return stats

    def _hints(self) -> pa.StructType | None:
        """The record type hints of the hot streams (None: no stream is hot)."""
        return self.routes.record_hints() if self._hot() else None

    def _handle(self, block: Block, callbacks: dict, stats: Counter[str]) -> None:
        """One block: runs of RECORD lines between the other messages, in input order.

        When the block's other messages are all STATEs (the usual case: a STATE every few thousand
        records), all its RECORD lines were parsed in one call (bigger parses use both cores better)
        and are sliced into the runs between the STATEs.
        """
        faults.reached("block")
        if self.shutdown is not None:
            self.shutdown.check()  # a stop signal: no new block is started
        hints = self._hints()
        if block.hints != hints:  # a SCHEMA handled since it was prepared changed the hot streams
            block = self._blocks.prepare(block.raw, hints, block.first)
        lines, first, others, n = block.lines, block.first, block.others, len(block.lines)
        self.lines_read = first - 1 + n
        messages = block.messages
        if messages is None:  # a line the worker could not read: read here, failing in order
            messages = {i: self.deserialize_json(lines[i].as_py(), first + i) for i in others}
        whole, safe = block.whole, block.safe
        retry = safe and not (block.tried and whole is None and not others)  # no second try of a failed run
        start = offset = 0
        for index in [*others, n] if n else []:
            if index > start:
                count = index - start
                at = start if block.aligned else offset
                part = None if whole is None else (whole[0].slice(at, count), whole[1].slice(at, count))
                follows = index < n and messages[index].get("type") == "STATE"
                self._records(
                    lines.slice(start, count), callbacks, stats, part, retry, first + start, follows
                )
                offset += count
            if index < n:
                self._message(messages[index], lines[index].as_py(), callbacks, stats, first + index)
            start = index + 1
        release_unused()
        self.after_block()

    def _hot(self) -> bool:
        return self.routes is not None and self.routes.any()

    def _line(self, line: bytes, callbacks: dict, stats: Counter[str], number: int) -> None:
        """Input line `number` through the SDK's handler (the record path for a RECORD)."""
        self._message(self.deserialize_json(line, number), line, callbacks, stats, number)

    def _message(self, message: dict, line: bytes, callbacks: dict, stats: Counter[str], number: int) -> None:
        if self.shutdown is not None:
            self.shutdown.check()  # a stop signal: no further message is handled
        problem = message_problem(message)
        if problem is not None:
            raise InputError(f"input line {number}: {message_label(message)} {problem}")
        kind = message["type"]
        self.current_line = line if kind == RECORD else None
        if kind == RECORD:
            self.freshness.record(message)
        if callback := callbacks.get(kind):
            try:
                callback(message)
            except RecordsWithoutSchemaException:
                raise RecordBeforeSchemaError(
                    f"input line {number}: RECORD of stream {message.get('stream')!r} before any SCHEMA "
                    "message of that stream (a tap sends a stream's SCHEMA before its records)"
                ) from None
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
        first: int = 1,
        follows: bool = False,
    ) -> None:
        """A run of (probable) RECORD lines, the first being input line `first`: parsed as one Arrow
        table when every stream in it is hot. `follows`: a STATE comes right after the run."""
        if parsed is None and parse and self._hot():
            hints = self._hints()
            parsed = None if hints is None else parse_records(joined_lines(lines), len(lines), hints)
        try:
            if parsed is None:
                last = len(lines) - 1
                for offset, line in enumerate(lines.to_pylist()):
                    self.state_follows = follows and offset == last
                    self._line(line, callbacks, stats, first + offset)
                return
            self.state_follows = follows
            streams, records = parsed
            names = pc.unique(streams).to_pylist()
            if len(names) == 1:
                self._route(names[0], lines, records, callbacks, stats, first)
            else:
                for name in names:
                    mask = pc.equal(streams, name)
                    self._route(name, lines.filter(mask), records.filter(mask), callbacks, stats, first, mask)
        finally:
            self.state_follows = False
        self._after_records()

    def _route(
        self,
        stream: str,
        lines: pa.Array,
        records: pa.Table,
        callbacks: dict,
        stats: Counter[str],
        first: int,
        mask: pa.Array | None = None,
    ) -> None:
        """A stream's rows of a run (`mask`: which lines of the run they are) to its hot sink, or
        line by line through the SDK's handler."""
        routes = self.routes
        sink = routes.sink(stream) if routes is not None else None
        rows = routes.rows(stream, lines, records) if routes is not None and sink is not None else None
        if sink is None or rows is None:  # rows None: flattening cannot settle the run as columns
            offsets = range(len(lines)) if mask is None else pc.indices_nonzero(mask).to_pylist()
            for offset, line in zip(offsets, lines.to_pylist(), strict=True):
                self._line(line, callbacks, stats, first + offset)
            return
        sink.add_rows(lines, rows)
        stats[RECORD] += len(lines)
        self.freshness.rows(stream, lines, records)
