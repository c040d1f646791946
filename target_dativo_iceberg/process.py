"""Ending a console-script process without Python's teardown, after flushing what it wrote.

pyarrow's native thread pools (CSV/JSON readers, Parquet, S3) can still be alive while the
interpreter tears down; their `std::thread` destructors then abort the process ("terminate called
without an active exception", exit -6, apache/arrow#34314, #38352) after a run that succeeded — seen
here about once in a few hundred tap runs. Orchestrators read that as a failed run. The console
scripts therefore flush the log handlers, stdout and stderr and leave with `os._exit`, keeping the
exit code: nothing is left to do at that point (every commit was joined, every message written), and
skipping the teardown skips the native destructors that abort.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import typing as t


def run_and_exit(entry: t.Callable[[], object]) -> t.NoReturn:
    """Run a CLI entry point (which may `sys.exit`) and end the process with its exit code."""
    code: object = 0
    try:
        entry()
    except SystemExit as exc:
        code = exc.code
    logging.shutdown()  # log handlers flushed
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)  # what sys.exit("message") prints
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be delivered
            stream.flush()
    os._exit(code)
