"""`dativo runs [--failed] [--limit N]`: the recent runs of the run ledger (`_dativo.ingestion_runs`).

Answers "what loaded last night, what failed, how many rows, how late" without a query engine: one
line per run, newest first (`--failed`: only runs that did not succeed), with status, exit code,
counts, files and bytes, and the error of a failed run. `--json` prints the rows as they are stored.
"""

from __future__ import annotations

import argparse
import datetime
import json
from typing import Any

from target_dativo_iceberg.iceberg.runtables import RUNS_TABLE, read_runs
from target_dativo_iceberg.ops.project import add_source_arguments, catalog_of, load_project


def recent(rows: list[dict[str, Any]], failed: bool, limit: int) -> list[dict[str, Any]]:
    """Runs newest first (`failed`: only those that did not succeed), at most `limit` (0: all)."""
    epoch = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    rows = sorted(rows, key=lambda r: r.get("started_at") or epoch, reverse=True)
    if failed:
        rows = [r for r in rows if r.get("status") != "success"]
    return rows[:limit] if limit > 0 else rows


def _size(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def line(row: dict[str, Any]) -> str:
    """One run as a line (and its error on the next, indented)."""
    started = row.get("started_at")
    when = started.strftime("%Y-%m-%d %H:%M:%S") if started else "-"
    counts = (
        f"{row.get('records_received') or 0} in, {row.get('records_committed') or 0} committed, "
        f"{row.get('records_rejected') or 0} rejected"
    )
    files = f"{row.get('data_files') or 0} file(s), {_size(row.get('bytes_added'))}"
    source = row.get("source") or "-"
    text = (
        f"{when}  {row.get('status', '-'):<11} exit {row.get('exit_code')}  {row.get('run_id')}  "
        f"{row.get('tenant_id')}@{row.get('branch')}  from {source}  {counts}  {files}  "
        f"{row.get('duration_seconds') or 0:.1f}s  tables: {', '.join(row.get('tables') or []) or '-'}"
    )
    if row.get("error"):
        text += f"\n    error: {row['error']}"
    return text


def runs_command(args: argparse.Namespace) -> int:
    """List recent runs of the ledger."""
    rows = recent(read_runs(catalog_of(load_project(args).settings)), args.failed, args.limit)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        what = "failed runs" if args.failed else "runs"
        print(f"no {what} recorded in {'.'.join(RUNS_TABLE)}")
        return 0
    for row in rows:
        print(line(row))
    return 0


def add_parser(sub: Any) -> None:
    """Register `dativo runs`."""
    runs = sub.add_parser("runs", help="recent runs from the run ledger (_dativo.ingestion_runs)")
    add_source_arguments(runs)
    runs.add_argument("--failed", action="store_true", help="only runs that did not succeed")
    runs.add_argument("--limit", type=int, default=20, help="runs to show (default 20; 0: all)")
    runs.add_argument("--json", action="store_true", help="machine-readable output")
    runs.set_defaults(func=runs_command)
