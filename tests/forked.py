"""Run the target CLI in processes forked from a server that imported it once.

The corpus runs the target ~50 times; a fresh interpreter spends ~1 s importing pyiceberg, pyarrow
and the SDK before reading a line. A `forkserver` child starts with those modules loaded, yet is
still its own process: `main()` (the console script's entry) parses the same arguments, reads its
input from a pipe on stdin, writes STATE to fd 1 and logs to fd 2, and its exit code is the one
`sys.exit` gave, as with `helpers.run_target`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import threading
from pathlib import Path
from typing import Any

from helpers import Run, target_config

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["target_dativo_iceberg.target", "forked"])


def _feed(path: str, fd: int) -> None:
    """Write the input file into the pipe, then close it (end of input), as a tap would."""
    with open(path, "rb") as source, os.fdopen(fd, "wb") as pipe:
        for block in iter(lambda: source.read(1 << 16), b""):
            pipe.write(block)


def _child(argv: list[str], cwd: str, input_path: str, out: str, err: str) -> None:
    """In the forked child: stdio onto a pipe and two files, then the console script's `main()`."""
    from target_dativo_iceberg.target import main

    os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(handle, fd)
        os.close(handle)
    read_end, write_end = os.pipe()
    os.dup2(read_end, 0)
    os.close(read_end)
    threading.Thread(target=_feed, args=(input_path, write_end), daemon=True).start()
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - stdin for the rest of the process
    sys.argv = argv
    main()


def run_target_forked(root: Path, data: str | bytes, **config: Any) -> Run:
    """Like `helpers.run_target` (config under `root`, `data` on stdin: bytes as they are), in a forked child."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "target.json"
    cfg.write_text(json.dumps(target_config(root, **config)))
    source, out, err = root / "stdin.singer", root / "stdout.txt", root / "stderr.txt"
    source.write_bytes(data.encode() if isinstance(data, str) else data)
    argv = ["target-dativo-iceberg", "--config", str(cfg)]
    child = _CONTEXT.Process(target=_child, args=(argv, str(root), str(source), str(out), str(err)))
    child.start()
    child.join(timeout=300)
    if child.exitcode is None:
        child.kill()
        child.join()
        raise AssertionError(f"the target did not finish within 300 s:\n{err.read_text()[-3000:]}")
    return Run(child.exitcode, out.read_text(), err.read_text(errors="replace"))
