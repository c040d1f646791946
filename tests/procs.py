"""Process helpers for test servers: free ports, waiting, stopping process groups by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0


# --------------------------------------------------------------------------- helpers


def free_port(pair_offset: int | None = None) -> int:
    """A TCP port free on 127.0.0.1 (and, with `pair_offset`, port + offset free too)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if pair_offset is None:
            return port
        if port + pair_offset < 65536 and port_is_free(port + pair_offset):
            return port
    raise RuntimeError("no free TCP port pair on 127.0.0.1")


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port (SO_REUSEADDR, as servers bind: TIME_WAIT is free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def wait_until(check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], str | None]) -> None:
    """Poll `check` until true; `alive` returns an error text when the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = alive()
        if dead:
            raise RuntimeError(f"{what}: {dead}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f}s")


def http_status(url: str, timeout: float = 2.0) -> int:
    """HTTP status of a GET (errors included), raising only when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.replace("\x00", "").splitlines()[-lines:])


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float, kill: bool = False) -> None:
    """Stop a process started with start_new_session=True: SIGTERM (or SIGKILL) to its group, then wait."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
