"""`dativo maintain`: compaction, snapshot expiry on every branch, and file cleanup, per table.

The target keeps tables in shape as it goes (`iceberg/upkeep.py`: the partitions a run wrote to,
expiry after commits); this command does the whole job for operators, e.g. nightly:

1. compaction of every branch (or the `--branch`es named): small files bin-packed per partition,
   one commit per table and branch (`iceberg/compaction.py`);
2. expiry of old snapshots on every branch, unpublished tenant branches included, and deletion of
   the files only they referenced (`iceberg/maintenance.py`);
3. deletion of orphan files older than `orphan_file_age_hours` (`iceberg/cleanup.py`).

Expiry and cleanup look at the whole table (every branch's history decides what stays), so `--branch`
narrows only compaction. `--dry-run` prints what would be done and changes nothing. A table that
fails is reported and the others are still maintained; the exit code is then 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pyiceberg.table import Table

from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.branches import branches
from target_dativo_iceberg.iceberg.cleanup import list_orphans, remove_orphans
from target_dativo_iceberg.iceberg.compaction import compact, plan_compaction
from target_dativo_iceberg.iceberg.maintenance import expire_old_snapshots, plan_expiry
from target_dativo_iceberg.iceberg.retry import describe
from target_dativo_iceberg.ops.project import (
    add_source_arguments,
    all_tables,
    catalog_of,
    load_project,
    table_name,
)
from target_dativo_iceberg.settings import Settings

MB = 1024 * 1024


def _compact(table: Table, branch: str, settings: Settings, events: EventLog, dry_run: bool) -> str:
    target = settings.parquet_target_bytes
    if dry_run:
        plan = plan_compaction(table, branch, target)
        if not plan.bins:
            return "nothing to compact"
        size = sum(b.bytes for b in plan.bins) / MB
        deletes = sum(b.deletes for b in plan.bins)
        return f"would compact {plan.files} files ({size:.1f} MB, {deletes} delete files) in {len(plan.bins)} bin(s)"
    result = compact(table, branch, target, events)
    if result is None:
        return "nothing to compact"
    return f"compacted {result.files_before} files into {result.files_after} ({result.rows} rows), snapshot {result.snapshot_id}"


def _expire(table: Table, settings: Settings, dry_run: bool) -> str:
    table.refresh()
    plan = plan_expiry(table.metadata, settings.max_snapshots, settings.max_snapshot_age_hours)
    if not plan.expire:
        return "no snapshot to expire"
    if dry_run:
        return f"would expire {len(plan.expire)} of {len(table.metadata.snapshots)} snapshots"
    expired = expire_old_snapshots(table, settings.max_snapshots, settings.max_snapshot_age_hours, slack=1)
    return f"expired {expired} snapshots and deleted the files only they referenced"


def _orphans(table: Table, settings: Settings, dry_run: bool) -> str:
    window = settings.orphan_file_age_hours
    if dry_run:
        found = list_orphans(table)
        due = [o for o in found if o.superseded or o.age_hours >= window]
        return (
            f"would delete {len(due)} orphan files ({len(found) - len(due)} younger than {window:g} h kept)"
        )
    removed = remove_orphans(table, window)
    size = sum(o.size for o in removed) / MB
    superseded = sum(o.superseded for o in removed)
    return (
        f"deleted {len(removed) - superseded} orphan files older than {window:g} h and {superseded} "
        f"superseded metadata files ({size:.1f} MB)"
    )


def maintain_command(args: argparse.Namespace) -> int:
    """Maintain the selected tables; 0 when all went through, 2 when one failed."""
    settings = load_project(args).settings
    events = EventLog(settings.tenant_id, "maintain", settings.secret_values(), stream=sys.stderr)
    failed = 0
    prefix = "[dry run] " if args.dry_run else ""
    tables = all_tables(catalog_of(settings), args.table, settings)
    if not tables:
        print(f"no tables in catalog {settings.catalog_name!r}")
    for table in tables:
        name = table_name(table)
        try:
            names = args.branch or branches(table)
            for branch in names:
                if table.snapshot_by_name(branch) is None:
                    continue
                print(f"{prefix}{name} {branch}: {_compact(table, branch, settings, events, args.dry_run)}")
            print(f"{prefix}{name}: {_expire(table, settings, args.dry_run)}")
            print(f"{prefix}{name}: {_orphans(table, settings, args.dry_run)}")
        except Exception as exc:  # one table's failure does not stop the others
            failed += 1
            events.emit("maintenance_failed", table=name, error=events.redact(str(exc)))
            print(f"{name}: FAILED: {events.redact(describe(exc))}")
    return 2 if failed else 0


def add_parser(sub: Any) -> None:
    """Register `dativo maintain` on the `dativo` CLI's subparsers."""
    maintain = sub.add_parser(
        "maintain", help="compact small files, expire old snapshots on every branch, delete orphan files"
    )
    add_source_arguments(maintain)
    maintain.add_argument(
        "--table", action="append", help="namespace.table (repeatable; default: all tables)"
    )
    maintain.add_argument(
        "--branch", action="append", help="branch to compact (repeatable; default: every branch)"
    )
    maintain.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
    maintain.set_defaults(func=maintain_command)
