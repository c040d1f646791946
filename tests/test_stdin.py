"""stdin in blocks: whole lines, big blocks from a fast pipe, prompt blocks and idle calls from a slow one."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

from target_dativo_iceberg.intake.stdin import PIPE_MIN_BYTES, read_blocks


def _pipe_writer(chunks: list[bytes]) -> tuple[io.BufferedReader, threading.Thread]:
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as out:
            for chunk in chunks:
                out.write(chunk)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return os.fdopen(read_fd, "rb", buffering=0), thread


def test_fast_pipe_gives_big_blocks_of_whole_lines() -> None:
    line = b'{"type":"RECORD","stream":"s","record":{"id":1}}\n'
    data = line * 400_000  # ~19 MB, written 64 KB at a time
    source, writer = _pipe_writer([data[i : i + 65_536] for i in range(0, len(data), 65_536)])
    blocks = list(read_blocks(source))
    writer.join()
    assert b"".join(blocks) == data
    assert all(block.endswith(b"\n") for block in blocks)
    assert len(blocks) <= len(data) // PIPE_MIN_BYTES + 2  # not 300 blocks of 64 KB


def test_slow_pipe_hands_over_each_line_before_the_next_arrives_and_calls_idle() -> None:
    """The writer sends the next piece only once the reader has the previous one (or gives up after
    10 s): a reader that waited for more input than the pipe holds would stall it."""
    read_fd, write_fd = os.pipe()
    received = threading.Event()
    stalled: list[bytes] = []

    def write() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as out:
            for piece in (b"one\n", b"two\n", b"three"):
                received.clear()
                out.write(piece)
                if piece != b"three" and not received.wait(10):
                    stalled.append(piece)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    idle_calls = 0

    def idle() -> float:
        nonlocal idle_calls
        idle_calls += 1
        return 0.01

    blocks = []
    for block in read_blocks(os.fdopen(read_fd, "rb", buffering=0), idle=idle):
        blocks.append(block)
        received.set()
    writer.join()
    assert blocks == [b"one\n", b"two\n", b"three"]  # the unterminated tail too
    assert stalled == []  # each line was handed over while the writer waited for it
    assert idle_calls >= 3  # called while the pipe was silent (before each piece at least)


def test_regular_file_is_read_in_blocks_of_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)))
    with path.open("rb") as source:
        blocks = list(read_blocks(source, size=65_536))
    assert b"".join(blocks) == path.read_bytes() and all(b.endswith(b"\n") for b in blocks)
    assert len(blocks) > 10
