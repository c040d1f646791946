"""Reading grown files from where the last run stopped: bytes and rows consumed, and a prefix hash.

A file's bookmark records how many bytes (`bytes`) and rows (`rows`) the last run consumed and the
SHA-256 of those bytes (`prefix_hash`). When the file is larger now and its first `bytes` bytes
still hash the same, only the rest is read (no header in it: the layout's names are used); when
they differ (rewritten, truncated, reordered), the file is read again in full.

The hash is computed in a pass of its own before the rows are parsed (a native stream, 1 MiB
blocks): SHA-256 runs at ~1.1 GB/s here, so the check of a 1 GB prefix costs about a second plus
its I/O, a page-cache hit for local files but a second download of those bytes for S3. Hashing
before parsing is the safe order: a file rewritten while it is read gets a hash that does not match
what a later run finds, so that run re-reads it rather than skipping rows.

Only plain (uncompressed) line-oriented files resume (`formats.RESUMABLE`); an appended `.gz`
changes bytes that were already consumed, and a grown JSON array moves its closing `]`, so both are
re-read in full. A prefix that did not end with a newline is also re-read in full: its last row may
have been cut off while a writer was still appending it.
"""

from __future__ import annotations

import codecs
import hashlib
import typing as t
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

HASH = "sha256"
_BLOCK = 1024 * 1024

#: Opens `length` raw bytes of a file from `offset` (`Sources.open_range` bound to one path).
RangeOpener = Callable[[int, int], pa.NativeFile]


@dataclass
class ReadStart:
    """Where one file's read begins: `offset` bytes (and `rows` rows) were consumed by an earlier
    run, `hasher` has hashed exactly them (None: the file is not hashed, its bookmark holds no
    `bytes`/`prefix_hash`). `reason` says why a full read was chosen, for the log."""

    offset: int = 0
    rows: int = 0
    hasher: t.Any = None
    reason: str = ""

    @property
    def resumed(self) -> bool:
        """Whether the read continues after rows read before."""
        return self.offset > 0


def ascii_compatible(encoding: str) -> bool:
    """Byte offsets and newlines mean the same in this encoding as in ASCII (utf-8, latin-1, ...)."""
    try:
        return "a,\n".encode(codecs.lookup(encoding).name) == b"a,\n"
    except (LookupError, UnicodeError):
        return False


def hash_range(open_range: RangeOpener, hasher: t.Any, offset: int, length: int) -> bytes:
    """Feed `length` bytes from `offset` to `hasher`; returns the last byte read (b'' if none)."""
    last = b""
    if length <= 0:
        return last
    with open_range(offset, length) as stream:
        while block := stream.read_buffer(_BLOCK):
            hasher.update(memoryview(block))
            last = memoryview(block)[-1:].tobytes()
    return last


def check_prefix(state: dict, size: int, open_range: RangeOpener) -> ReadStart:
    """Whether a plain file can be read from its bookmarked offset: where to start, and the hasher
    over the bytes before it."""
    consumed, rows, expected = state.get("bytes"), state.get("rows"), state.get("prefix_hash")
    if not isinstance(consumed, int) or not isinstance(rows, int) or not isinstance(expected, str):
        return fresh("no byte offset bookmarked")
    if size < consumed:
        return fresh(f"it shrank from {consumed} to {size} bytes")
    hasher = hashlib.new(HASH)
    last = hash_range(open_range, hasher, 0, consumed)
    if f"{HASH}:{hasher.hexdigest()}" != expected:
        return fresh(f"its first {consumed} bytes changed")
    if consumed and last not in (b"\n", b"\r"):
        return fresh("its last row read before did not end with a newline")
    return ReadStart(offset=consumed, rows=rows, hasher=hasher)


def fresh(reason: str = "") -> ReadStart:
    """A read from the start, hashing the file as it goes."""
    return ReadStart(hasher=hashlib.new(HASH), reason=reason)


def bookmark_fields(start: ReadStart, size: int, rows: int) -> dict[str, t.Any]:
    """The bookmark keys of a file read up to `size` bytes, `rows` rows in all."""
    return {"bytes": size, "rows": rows, "prefix_hash": f"{HASH}:{start.hasher.hexdigest()}"}
