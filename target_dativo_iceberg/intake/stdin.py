"""stdin in blocks of whole lines, read ahead on a reader thread (from a pipe or a regular file).

A pipe holds 64 KB: a target that reads it only between parsing and validating blocks leaves the
tap blocked on a full pipe most of the time, and each process waits for the other. The reader
thread keeps draining the pipe (`os.read` and `select` release the GIL) into a short queue of
blocks, so the tap writes while the target works; the queue bounds memory (`QUEUED_BLOCKS`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import stat
import threading
import typing as t
from typing import Any

BLOCK_BYTES = 8 << 20
#: Below this a pipe read waits up to `PIPE_FILL_SECONDS` for more input (see `_read_pipe`).
PIPE_MIN_BYTES = 4 << 20
PIPE_FILL_SECONDS = 0.05
#: The smallest buffer a pipe read starts with (what a pipe holds).
PIPE_MIN_ROOM = 64 << 10
#: Blocks read ahead of the one being processed.
QUEUED_BLOCKS = 2


def read_blocks(
    stream: Any,
    size: int = BLOCK_BYTES,
    idle: t.Callable[[], float | None] | None = None,
    waiting: t.Callable[[], t.ContextManager[None]] = contextlib.nullcontext,
    before_wait: t.Callable[[], None] = lambda: None,
) -> t.Iterator[bytes]:
    """Blocks of whole lines from a binary or text stream.

    From a pipe, a block is what the tap has written so far (up to `size`): a slow tap's records
    are handled without waiting for 8 MB to arrive. While the pipe is silent, `idle` is called
    (time-based commits); it returns how long to wait before calling it again (None: until input).
    The wait for the next block runs inside `waiting()` (where a stop signal may interrupt it);
    `before_wait` runs first (the caller finishes what it holds before the input goes silent).
    """
    source = getattr(stream, "buffer", stream)
    fd = _pipe_fd(source)
    if fd is None and not _is_file(source):
        yield from _read_file(source, size)  # an in-memory stream: nothing to wait for
        return
    blocks: queue.Queue[tuple[bytes | None, BaseException | None]] = queue.Queue(QUEUED_BLOCKS)
    pump, args = (_pump, (fd, size, blocks)) if fd is not None else (_pump_file, (source, size, blocks))
    reader = threading.Thread(target=pump, args=args, name="dativo-stdin", daemon=True)
    reader.start()
    while True:
        try:
            block, error = blocks.get_nowait()
        except queue.Empty:  # nothing read ahead: finish the work in hand, then wait
            before_wait()
            timeout = idle() if idle else None
            try:
                with waiting():
                    block, error = blocks.get(timeout=timeout)
            except queue.Empty:
                continue  # still silent: `idle` again
        if error is not None:
            raise error
        if block is None:
            return
        yield block


def _pump(fd: int, size: int, blocks: queue.Queue) -> None:
    """Reader thread: whole-line blocks from the pipe into `blocks`, then (None, None) at its end."""
    try:
        carry, room = b"", size
        while True:
            block, ended = _read_pipe(fd, room, carry)
            got = len(block) - len(carry)
            # a block that filled its room: the tap is fast, read `size` next; else room for twice
            # what came (a slow tap's few records would not fill, zero and fault in 8 MB each time)
            room = size if got == room else min(size, max(PIPE_MIN_ROOM, 2 * got))
            if ended:
                if block:
                    blocks.put((block, None))  # an unterminated last line too
                blocks.put((None, None))
                return
            carry = _cut_at_last_line(block)
            if block:
                blocks.put((block, None))
    except BaseException as exc:  # handed to the main thread, which raises it
        blocks.put((None, exc))


def _pump_file(source: Any, size: int, blocks: queue.Queue) -> None:
    """Reader thread for a regular file: its blocks read ahead while the main thread parses (read
    on the main thread, 1M records' 308 MB took ~0.5 s of its time)."""
    try:
        for block in _read_file(source, size):
            blocks.put((block, None))
        blocks.put((None, None))
    except BaseException as exc:  # handed to the main thread, which raises it
        blocks.put((None, exc))


def _read_file(source: Any, size: int) -> t.Iterator[bytes | bytearray]:
    readinto = getattr(source, "readinto", None)
    if readinto is None:  # a text stream
        yield from _read_text(source, size)
        return
    carry = b""
    while True:
        block = _filled(carry, size)
        with memoryview(block) as view:
            total = len(carry)
            while total < len(block):
                got = readinto(view[total:])
                if not got:
                    break
                total += got
        del block[total:]
        if total == len(carry):  # the end of the input
            if carry:
                yield bytes(carry)  # an unterminated last line
            return
        carry = _cut_at_last_line(block)
        if block:
            yield block


def _read_text(source: Any, size: int) -> t.Iterator[bytes]:
    while True:
        block = source.read(size)
        if not block:
            return
        if isinstance(block, str):
            block = block.encode()
        if not block.endswith(b"\n"):
            rest = source.readline()
            block += rest.encode() if isinstance(rest, str) else rest
        yield block


def _filled(carry: bytes, size: int) -> bytearray:
    """A block's buffer: the carried start of a line, and room for `size` more bytes.

    Blocks are read into it in place (a bytes object per read, then one more to append the rest of
    the last line, copied every byte twice into fresh pages; a pipe's chunks were joined and cut as
    well); the block is handed on as this bytearray, never changed again."""
    block = bytearray(len(carry) + size)
    block[: len(carry)] = carry
    return block


def _cut_at_last_line(block: bytearray) -> bytes:
    """Cut `block` after its last newline; the part after it (the start of a line), or b""."""
    cut = block.rfind(b"\n") + 1
    rest = bytes(block[cut:])
    del block[cut:]
    return rest


def _is_file(source: Any) -> bool:
    """A stream over a regular file (stdin redirected from one)."""
    try:
        return stat.S_ISREG(os.fstat(source.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


def _pipe_fd(source: Any) -> int | None:
    """The file descriptor of a pipe or socket (stdin is read only here, so Python's buffer is empty)."""
    try:
        fd = source.fileno()
        return None if stat.S_ISREG(os.fstat(fd).st_mode) else fd
    except (AttributeError, OSError, ValueError):
        return None


def _read_pipe(fd: int, size: int, carry: bytes) -> tuple[bytearray, bool]:
    """`carry` and up to `size` bytes once input is there, and whether the input ended.

    A pipe hands over at most its buffer (64 KB) at a time: below `PIPE_MIN_BYTES` the read waits up
    to `PIPE_FILL_SECONDS` for more, so a fast tap's output is parsed in big blocks (5,000 blocks of
    64 KB per million records made the per-block work dominate) and a slow tap's records are
    handled at most that much later.
    """
    select.select([fd], [], [])
    block = _filled(carry, size)
    total, ended = len(carry), False
    with memoryview(block) as view:
        while total < len(block):
            got = os.readv(fd, [view[total : total + (1 << 20)]])
            if not got:
                ended = True
                break
            total += got
            wait = 0 if total - len(carry) >= PIPE_MIN_BYTES else PIPE_FILL_SECONDS
            if not select.select([fd], [], [], wait)[0]:
                break
    del block[total:]
    return block, ended
