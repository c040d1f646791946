"""`dativo`: the operator CLI — inspect what landed, branches (list/diff/publish), committed state.

Settings come from `--config FILE`, the Meltano project (`--meltano`, the default inside one) or
`TARGET_DATIVO_ICEBERG_*` variables (`ops/project.py`); the branch shown is the tenant's, the one
the target writes. On Nessie the tenant's branch is a Nessie reference: the catalog is opened on it
and the tables' own `main` is read (the target writes there), and `branch diff` compares the
reference with the `main` reference. Everything printed goes through the redaction of the
settings' secrets (`redact.py`). Subcommands with more to them live in their own `ops/` modules,
each registering itself with `add_parser(sub)`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from importlib import metadata
from typing import Any

from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of

from target_dativo_iceberg.errors import DativoError, PublishError
from target_dativo_iceberg.iceberg.branches import branches, diff, publish_tables
from target_dativo_iceberg.iceberg.catalogs import catalog_endpoint
from target_dativo_iceberg.iceberg.retry import describe
from target_dativo_iceberg.ops.project import (
    Project,
    add_source_arguments,
    all_tables,
    catalog_of,
    chosen_branch,
    load_project,
    table_name,
    where,
)
from target_dativo_iceberg.redact import RedactingStream, activate

SUMMARY_KEYS = ("dativo.run-id", "dativo.records", "dativo.records-rejected", "dativo.singer-state")


def _nessie_diff(project: Project, tables: list[Table]) -> int:
    """Nessie: what the tenant's reference holds that the `main` reference does not, per table."""
    settings = project.settings
    on_main = catalog_of(dataclasses.replace(settings, branch="main"))
    shown = 0
    for table in tables:
        try:
            other = on_main.load_table(table.name())
            main_ids = {s.snapshot_id for s in ancestors_of(other.snapshot_by_name("main"), other.metadata)}
        except NoSuchTableError:
            main_ids = set()
        own = [
            s
            for s in ancestors_of(table.snapshot_by_name("main"), table.metadata)
            if s.snapshot_id not in main_ids
        ]
        if not own:
            continue
        shown += 1
        rows = sum(
            int((s.summary.additional_properties if s.summary else {}).get("added-records", 0)) for s in own
        )
        print(
            f"{table_name(table)}: {len(own)} snapshot(s), {rows} record(s) on reference {settings.branch!r} not on main"
        )
    if not shown:
        print(
            f"no differences: Nessie reference {settings.branch!r} holds nothing that main lacks ({len(tables)} table(s))"
        )
    return 0


def branch_command(args: argparse.Namespace) -> int:
    """`dativo branch list|diff|publish`."""
    project = load_project(args)
    settings = project.settings
    tables = all_tables(catalog_of(settings), args.table, settings)
    if not tables:
        print(f"no tables in {where(settings, chosen_branch(project, args))}")
        return 0
    if args.action == "list":
        for table in tables:
            for name in branches(table):
                snap = table.snapshot_by_name(name)
                print(f"{table_name(table):<40} {name:<20} {snap.snapshot_id if snap else '-'}")
        return 0
    if settings.catalog_type == "nessie" and not args.branch:
        if args.action == "diff":
            return _nessie_diff(project, tables)
        raise PublishError(
            f"on Nessie the tenant's data is on reference {settings.branch!r}: publish it by merging that "
            "reference into main with Nessie (`nessie merge`), not with a table branch"
        )
    branch = chosen_branch(project, args)
    if args.action == "diff":
        changes = [d for d in (diff(t, branch) for t in tables) if d.branch_snapshot_id is not None]
        if not any(d.snapshots for d in changes):
            missing = "" if changes else f"; no table has a branch {branch!r}"
            print(
                f"no differences: branch {branch!r} holds nothing that main lacks ({len(tables)} table(s){missing})"
            )
        for change in changes:
            if not change.snapshots:
                continue
            state = "fast-forward possible" if change.fast_forward else "diverged from main"
            print(
                f"{change.table}: {len(change.snapshots)} snapshot(s), {change.records_added} record(s) "
                f"on {branch!r} not on main ({state})"
            )
            for snap in change.snapshots:
                props = snap.summary.additional_properties if snap.summary else {}
                print(
                    f"  {snap.snapshot_id}  +{props.get('added-records', 0)} rows  run {props.get('dativo.run-id', '-')}"
                )
        return 0
    for change in publish_tables(tables, branch):
        print(f"published {change.table}: main -> {change.branch_snapshot_id} (+{change.records_added} rows)")
    return 0


def inspect_command(args: argparse.Namespace) -> int:
    """Print every table with its rows on the branch and on main, read back by DuckDB."""
    from target_dativo_iceberg.ops.readback import report

    project = load_project(args)
    settings = project.settings
    branch = chosen_branch(project, args)
    reports = report(catalog_of(settings), branch, owned=settings.owns_namespace)
    if args.json:
        print(json.dumps([r.__dict__ for r in reports], indent=2, default=str))
        return 0
    print(f"settings from {project.source}", file=sys.stderr)
    if not reports:
        print(f"no tables in {where(settings, branch)}")
        return 0
    endpoint = catalog_endpoint(settings.catalog_type, settings.catalog_load_properties())
    print(f"{where(settings, branch)} (read by DuckDB); catalog at {endpoint}")
    header = f"{'table':<40} {'rows on ' + branch:>16} {'rows on main':>14}  latest snapshot"
    print(header)
    print("-" * len(header))
    for r in reports:
        print(f"{r.identifier:<40} {r.rows_on_branch:>16} {r.rows_on_main:>14}  {r.snapshot_id}")
        for key in SUMMARY_KEYS:
            if key in r.summary:
                print(f"{'':<42}{key} = {r.summary[key]}")
    return 0


def version() -> str:
    """`dativo-ingest <version>` of the installed package."""
    try:
        return f"dativo-ingest {metadata.version('dativo-ingest')}"
    except metadata.PackageNotFoundError:
        return "dativo-ingest (not installed as a package)"


def build_parser() -> argparse.ArgumentParser:
    """The `dativo` argument parser."""
    parser = argparse.ArgumentParser(prog="dativo", description="dativo-ingest operator CLI")
    parser.add_argument("--version", action="version", version=version())
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser("inspect", help="show tables, branch, row counts and latest snapshot")
    add_source_arguments(inspect)
    inspect.add_argument("--branch", help="branch to show (default: the tenant's branch the target writes)")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(func=inspect_command)

    branch = sub.add_parser("branch", help="list branches, diff a branch against main, publish it")
    branch.add_argument("action", choices=["list", "diff", "publish"])
    add_source_arguments(branch)
    branch.add_argument("--branch", help="branch (default: the tenant's branch the target writes)")
    branch.add_argument("--table", action="append", help="namespace.table (repeatable; default: all tables)")
    branch.set_defaults(func=branch_command)
    __import__("target_dativo_iceberg.ops.tables", fromlist=["add_parser"]).add_parser(sub)  # dativo tables
    __import__("target_dativo_iceberg.ops.rejected", fromlist=["add_parser"]).add_parser(
        sub
    )  # dativo rejected
    __import__("target_dativo_iceberg.ops.state", fromlist=["add_parser"]).add_parser(
        sub
    )  # dativo state show
    __import__("target_dativo_iceberg.ops.doctor", fromlist=["add_parser"]).add_parser(sub)  # dativo doctor
    __import__("target_dativo_iceberg.ops.files", fromlist=["add_parser"]).add_parser(sub)  # dativo files
    __import__("target_dativo_iceberg.ops.jobs", fromlist=["add_parser"]).add_parser(sub)  # dativo run
    __import__("target_dativo_iceberg.ops.markdownkv", fromlist=["add_parser"]).add_parser(sub)  # markdown-kv
    __import__("target_dativo_iceberg.ops.runs", fromlist=["add_parser"]).add_parser(sub)  # dativo runs
    __import__("target_dativo_iceberg.ops.maintain", fromlist=["add_parser"]).add_parser(
        sub
    )  # dativo maintain
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point; errors exit 2 with a one-line message. Output is redacted (stdout, stderr, logs)."""
    args = build_parser().parse_args(argv)
    activate()
    out, err = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    code: Any
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):  # type: ignore[arg-type]
        try:
            code = args.func(args)
        except DativoError as exc:
            print(f"dativo: {exc}", file=sys.stderr)
            code = 2
        except Exception as exc:  # a catalog or storage failure: one line, not a traceback
            print(f"dativo: {describe(exc)}", file=sys.stderr)
            code = 2
    sys.exit(code)
