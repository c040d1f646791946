"""Checks on Singer input that name what is wrong: UTF-8, nesting depth, lone surrogates, the keys
each message type needs.

The checks are cheap where every line passes them (a whole-block UTF-8 check in C, byte counts
before any scan) and precise only on lines that may fail, so the hot path stays fast. Nesting is
capped because deep values break things far from where they came in: Python's JSON parser raises
RecursionError past ~1,000 levels, repr/json.dumps/jsonschema fail on values it did parse, and
Arrow's nested-type code (JSON type inference, concatenation, filters) crashes the process a few
thousand levels deep.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Levels of `[` and `{` accepted in one input line, the message object itself included.
MAX_DEPTH = 100
#: Lines with at least this many `[`/`{` are depth-checked before Arrow parses their block (Arrow
#: handles 2,000 levels and crashes at 3,000; shallower lines are caught when Python parses them).
ARROW_DEPTH = 1000
PREVIEW_CHARS = 40

#: Keys each Singer message type needs (what the SDK's handlers read).
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "RECORD": ("stream", "record"),
    "SCHEMA": ("stream", "schema"),
    "BATCH": ("stream", "encoding", "manifest"),
    "STATE": ("value",),
    "ACTIVATE_VERSION": ("stream", "version"),
}

_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}:]')
_STREAM = re.compile(rb'"stream"\s*:\s*("(?:[^"\\]++|\\.)*+")')


def where(
    line: int | None = None, stream: str | None = None, position: int | None = None, field: str | None = None
) -> str:
    """`input line 7, stream 'users', record 3, field 'name'` with whatever is known."""
    parts = [f"input line {line}"] if line is not None else []
    if stream is not None:
        parts.append(f"stream {stream!r}")
    if position is not None:
        parts.append(f"record {position}")
    if field:
        parts.append(f"field {field!r}")
    return ", ".join(parts) or "input"


def printable(text: str) -> str:
    """`text` as valid UTF-8: lone surrogates become their `\\udxxx` escape (as JSON writes them)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def preview(data: bytes | str, limit: int = PREVIEW_CHARS) -> str:
    """The first `limit` characters of `data`, for a message."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else printable(data)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------- UTF-8


def utf8_problem(lines: pa.Array) -> tuple[int, int, int] | None:
    """(line index, byte offset in the line, byte value) of the first invalid UTF-8, or None.

    Arrow's JSON reader copies invalid UTF-8 into string columns without complaint, so a block is
    checked as a whole (a cast that only validates) before anything parses it.
    """
    try:
        lines.cast(pa.large_string())
        return None
    except pa.ArrowInvalid:
        pass
    for index, line in enumerate(lines.to_pylist()):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return index, exc.start, line[exc.start]
    return None


# ---------------------------------------------------------------- nesting


@dataclass(frozen=True)
class DeepValue:
    """Where a line passes `MAX_DEPTH`: the keys leading there (None: an array level) and the offset."""

    path: tuple[str | None, ...]
    offset: int

    @property
    def field(self) -> str | None:
        """The record field holding the deep value (`a.b` for nested objects), if it is in `record`."""
        if not self.path or self.path[0] != "record":
            return None
        return ".".join(str(key) for key in takewhile(lambda k: k is not None, self.path[1:])) or None


def openers(line: bytes) -> int:
    """Upper bound of a line's nesting depth (brackets inside strings counted too)."""
    return line.count(b"[") + line.count(b"{")


def deep_value(line: bytes, limit: int = MAX_DEPTH) -> DeepValue | None:
    """The first place `line` nests deeper than `limit`, or None. Stops there: cheap on attacks."""
    keys: list[str | None] = []  # per open container: the key being filled (None: an array)
    last = b'""'
    for match in _TOKENS.finditer(line):
        token = match.group()
        if token[:1] == b'"':
            last = token
        elif token == b":":
            if keys:
                keys[-1] = _key_text(last)
        elif token in (b"[", b"{"):
            if len(keys) >= limit:
                return DeepValue(tuple(keys), match.start())
            keys.append("" if token == b"{" else None)
        elif keys:
            keys.pop()
    return None


def stream_of(line: bytes) -> str | None:
    """The `stream` of a line that could not be parsed (first `"stream": "..."` in it)."""
    match = _STREAM.search(line)
    return _key_text(match.group(1)) if match else None


def _key_text(token: bytes) -> str:
    try:
        return str(json.loads(token))
    except ValueError:
        return token[1:-1].decode("utf-8", "replace")


# ---------------------------------------------------------------- surrogates


# ---------------------------------------------------------------- message keys


def message_problem(message: Any) -> str | None:
    """What a parsed line lacks to be the Singer message it says it is (None: nothing)."""
    if not isinstance(message, dict):
        return f"is a JSON {type(message).__name__}, not a Singer message (a JSON object with 'type')"
    if "type" not in message:
        return f"lacks 'type' (one of {', '.join(REQUIRED_KEYS)})"
    kind = message["type"]
    if kind not in REQUIRED_KEYS:
        return f"has type {kind!r}; expected one of {', '.join(REQUIRED_KEYS)}"
    needed = REQUIRED_KEYS[kind]
    missing = [key for key in needed if key not in message]
    if missing:
        listed = ", ".join(repr(key) for key in missing)
        return f"lacks {listed} (a {kind} message needs {', '.join(needed)})"
    if kind == "RECORD" and not isinstance(message["record"], dict):
        return "has a 'record' that is not a JSON object"
    if kind == "SCHEMA" and not (isinstance(message["schema"], dict) and "properties" in message["schema"]):
        return "has a 'schema' that is not a JSON Schema object with 'properties'"
    if kind == "BATCH":
        encoding, manifest = message["encoding"], message["manifest"]
        if not isinstance(encoding, dict) or "format" not in encoding:
            return "has an 'encoding' without 'format' (expected e.g. {\"format\": \"jsonl\"} or parquet)"
        if not isinstance(manifest, list) or not all(isinstance(path, str) for path in manifest):
            return "has a 'manifest' that is not a list of file URLs"
    return None


def message_label(message: Any) -> str:
    """`BATCH message of stream 'users'` (as far as the message says)."""
    if not isinstance(message, dict):
        return "line"
    kind = message.get("type")
    label = f"{kind} message" if isinstance(kind, str) else "message"
    stream = message.get("stream")
    return f"{label} of stream {stream!r}" if isinstance(stream, str) else label


def long_lines(block: bytes, lines: pa.Array, min_openers: int) -> Sequence[int]:
    """Indices of the lines of `block` (split into `lines`) that may nest `min_openers` deep.

    Nearly free for blocks of lines shorter than twice that (the usual case: line lengths are in
    Arrow's offsets); longer lines are counted in place in `block`, at memchr speed.
    """
    if not len(lines):
        return []
    lengths = pc.binary_length(lines)
    if pc.max(lengths).as_py() < 2 * min_openers:
        return []
    sizes = lengths.to_numpy()
    starts = np.cumsum(sizes + 1) - (sizes + 1)  # each line is followed by its newline
    found = []
    for index in np.flatnonzero(sizes >= 2 * min_openers).tolist():
        start, end = int(starts[index]), int(starts[index] + sizes[index])
        if block.count(b"[", start, end) + block.count(b"{", start, end) >= min_openers:
            found.append(index)
    return found
