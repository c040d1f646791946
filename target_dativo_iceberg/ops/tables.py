"""`dativo tables`: every table in the catalog with its rows on the tenant's branch and on main.

A quick look that needs no data read: row counts come from the snapshot summaries
(`total-records`), so it answers in the time of one metadata load per table. `dativo inspect`
reads the rows themselves (DuckDB); `dativo rejected TABLE` shows a `__rejected` table's rows.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pyiceberg.table import Table

from target_dativo_iceberg.contracts.enforcement import REJECTED_SUFFIX
from target_dativo_iceberg.ops.project import (
    add_source_arguments,
    all_tables,
    catalog_of,
    chosen_branch,
    load_project,
    table_name,
    where,
)


def _rows(table: Table, branch: str) -> int | None:
    """Rows at the head of `branch` per its snapshot summary; None when the branch does not exist."""
    snap = table.snapshot_by_name(branch)
    if snap is None:
        return None
    props = snap.summary.additional_properties if snap.summary else {}
    return int(props.get("total-records", 0))


def table_rows(table: Table, branch: str) -> dict[str, Any]:
    """One table's line: name, rows on the branch and on main, snapshots, last commit's run."""
    head = table.snapshot_by_name(branch)
    props = head.summary.additional_properties if head and head.summary else {}
    return {
        "table": table_name(table),
        "rejected_table": table_name(table).endswith(REJECTED_SUFFIX),
        "rows_on_branch": _rows(table, branch),
        "rows_on_main": _rows(table, "main"),
        "snapshots": len(table.metadata.snapshots),
        "last_run": props.get("dativo.run-id"),
        "location": table.location(),
    }


def tables_command(args: argparse.Namespace) -> int:
    """Print one line per table; say so when the catalog has none."""
    project = load_project(args)
    branch = chosen_branch(project, args)
    lines = [
        table_rows(t, branch) for t in all_tables(catalog_of(project.settings), settings=project.settings)
    ]
    if args.json:
        print(json.dumps(lines, indent=2))
        return 0
    if not lines:
        print(f"no tables in {where(project.settings, branch)}")
        return 0
    print(where(project.settings, branch))
    header = f"{'table':<48} {'rows on ' + branch:>16} {'rows on main':>14} {'snapshots':>10}"
    print(header)
    print("-" * len(header))
    for line in lines:
        on_branch = "-" if line["rows_on_branch"] is None else line["rows_on_branch"]
        on_main = "-" if line["rows_on_main"] is None else line["rows_on_main"]
        print(f"{line['table']:<48} {on_branch:>16} {on_main:>14} {line['snapshots']:>10}")
    return 0


def add_parser(sub: Any) -> None:
    """Register `dativo tables` on the `dativo` CLI's subparsers."""
    tables = sub.add_parser("tables", help="list tables with row counts on the branch and on main")
    add_source_arguments(tables)
    tables.add_argument("--branch", help="branch (default: the tenant's branch the target writes)")
    tables.add_argument("--json", action="store_true", help="machine-readable output")
    tables.set_defaults(func=tables_command)
