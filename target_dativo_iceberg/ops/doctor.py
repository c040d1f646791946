"""`dativo doctor`: the target's preflight checks, standalone, one line per check.

For operators setting up a catalog: it says which part (config, branch, catalog, storage) is wrong and
where, without running a pipeline. It changes nothing except a probe object it deletes again; a
missing Nessie branch is reported, not created (the target creates it on its first run).
Exit code 0 when every check passes, 2 otherwise.
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import Any

from target_dativo_iceberg.errors import DativoError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.retry import NO_RETRY, RetryPolicy
from target_dativo_iceberg.ops.preflight import DEFAULT_TIMEOUT, CheckResult, check_all
from target_dativo_iceberg.ops.project import add_source_arguments, load_project
from target_dativo_iceberg.redact import activate


def _line(result: CheckResult) -> str:
    status = "ok" if result.ok else "FAILED"
    timing = "" if result.skipped else f" [{result.duration_ms:.0f} ms]"
    return f"{status:<7} {result.name:<8} {result.detail}{timing}"


def doctor_command(args: argparse.Namespace) -> int:
    """Run the checks and print them; 0 when all pass, 2 otherwise."""
    try:
        settings = load_project(args).settings  # retry_config is checked too; doctor reports without waiting
        policy = (
            NO_RETRY if not args.retries else RetryPolicy(max_retries=args.retries, retry_delay_seconds=1)
        )
    except DativoError as exc:
        print(_line(CheckResult("config", False, str(exc))))
        return 2
    events = EventLog(
        settings.tenant_id,
        "doctor",
        settings.secret_values(),
        stream=sys.stderr if args.verbose else io.StringIO(),
    )
    activate(events.redactor)
    summary = (
        f"tenant {settings.tenant_id!r}, branch {settings.branch!r}, catalog_type {settings.catalog_type}, "
        f"warehouse {events.redact(settings.warehouse)}"
    )
    print(_line(CheckResult("config", True, summary, skipped=True)))
    results = check_all(settings, events, policy, create_branch=False, timeout=args.timeout)
    for result in results:
        print(_line(result))
    failed = [r.name for r in results if not r.ok]
    if failed:
        print(f"doctor: {len(failed)} check(s) failed: {', '.join(failed)}")
        return 2
    return 0


def add_parser(sub: Any) -> None:
    """Register `dativo doctor` on the `dativo` CLI's subparsers."""
    doctor = sub.add_parser("doctor", help="check catalog, storage and branch before running the target")
    add_source_arguments(doctor)
    doctor.add_argument(
        "--retries",
        type=int,
        default=0,
        help="retries of transient errors, 1 s apart and doubling (default 0: report the state now)",
    )
    doctor.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds each check may take (default 30)"
    )
    doctor.add_argument(
        "--verbose", action="store_true", help="also print the JSON events (retries) on stderr"
    )
    doctor.set_defaults(func=doctor_command)
