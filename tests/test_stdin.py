"""stdin in blocks: whole lines, big blocks from a fast pipe, prompt blocks and idle calls from a slow one."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

from target_dativo_iceberg.stdin import PIPE_MIN_BYTES, read_blocks


def _pipe_writer(chunks: list[bytes], pause: float = 0.0) -> tuple[io.BufferedReader, threading.Thread]:
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as out:
            for chunk in chunks:
                out.write(chunk)
                time.sleep(pause)

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


def test_slow_pipe_hands_over_each_line_promptly_and_calls_idle() -> None:
    source, writer = _pipe_writer([b"one\n", b"two\n", b"three"], pause=0.4)
    idle_calls: list[float] = []

    def idle() -> float:
        idle_calls.append(time.monotonic())
        return 0.05

    started = time.monotonic()
    seen = []
    for block in read_blocks(source, idle=idle):
        seen.append((block, time.monotonic() - started))
    writer.join()
    assert [block for block, _ in seen] == [b"one\n", b"two\n", b"three"]  # the unterminated tail too
    assert seen[0][1] < 0.3 and 0.3 < seen[1][1] < 0.7  # each line as it arrives, not at the end
    assert len(idle_calls) >= 5  # called while the pipe was silent


def test_regular_file_is_read_in_blocks_of_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)))
    with path.open("rb") as source:
        blocks = list(read_blocks(source, size=65_536))
    assert b"".join(blocks) == path.read_bytes() and all(b.endswith(b"\n") for b in blocks)
    assert len(blocks) > 10
