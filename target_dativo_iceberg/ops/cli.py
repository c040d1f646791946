"""`dativo`: the operator CLI — inspect what landed, branches (list/diff/publish), committed state.

Everything it prints goes through the redaction of the config's secrets (`redact.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.table import Table

from target_dativo_iceberg.errors import DativoError, PublishError
from target_dativo_iceberg.iceberg.branches import branches, diff, publish
from target_dativo_iceberg.iceberg.markers import committed_state
from target_dativo_iceberg.iceberg.retry import describe
from target_dativo_iceberg.redact import RedactingStream, activate, write_data
from target_dativo_iceberg.settings import Settings

SUMMARY_KEYS = ("dativo.run-id", "dativo.records", "dativo.records-rejected", "dativo.singer-state")


def _load_settings(path: str | None) -> Settings:
    config: dict[str, Any] = {}
    if path:
        config = json.loads(Path(path).read_text())
    settings = Settings.from_config(config)
    activate(settings.redactor())
    return settings


def _catalog(settings: Settings) -> Catalog:
    return load_catalog(settings.catalog_name, **settings.catalog_load_properties())


def _tables(catalog: Catalog, names: list[str] | None) -> list[Table]:
    """The named tables (`namespace.table`), or every table in the catalog."""
    if names:
        return [catalog.load_table(name) for name in names]
    return [
        catalog.load_table(ident) for ns in catalog.list_namespaces() for ident in catalog.list_tables(ns)
    ]


def _name(table: Table) -> str:
    return ".".join(table.name()[-2:])


def branch_command(args: argparse.Namespace) -> int:
    """`dativo branch list|diff|publish`."""
    settings = _load_settings(args.config)
    tables = _tables(_catalog(settings), args.table)
    if args.action == "list":
        for table in tables:
            for name in branches(table):
                snap = table.snapshot_by_name(name)
                print(f"{_name(table):<40} {name:<20} {snap.snapshot_id if snap else '-'}")
        return 0
    branch = args.branch or settings.branch
    if args.action == "diff":
        for table in tables:
            change = diff(table, branch)
            if change.branch_snapshot_id is None:
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
    # publish: check every table first so a diverged table stops the publish before any moves.
    with_branch = [t for t in tables if t.snapshot_by_name(branch) is not None]
    if not with_branch:
        raise PublishError(f"no table has a branch {branch!r}")
    blocked = [d for d in (diff(t, branch) for t in with_branch) if not d.fast_forward]
    if blocked:
        raise PublishError(
            "; ".join(
                f"table {d.table}: main (snapshot {d.main_snapshot_id}) is not an ancestor of branch "
                f"{branch!r} (snapshot {d.branch_snapshot_id})"
                for d in blocked
            )
            + ". Nothing was published; main is untouched"
        )
    for table in with_branch:
        change = publish(table, branch)
        print(f"published {change.table}: main -> {change.branch_snapshot_id} (+{change.records_added} rows)")
    return 0


def state_command(args: argparse.Namespace) -> int:
    """`dativo state show`: the newest committed Singer state per table, as `meltano state set` takes it.

    States are printed as data (`redact.write_data`): a tap's own `next_page_token` stays as it is.
    """
    settings = _load_settings(args.config)
    branch = args.branch or settings.branch
    found = []
    for table in _tables(_catalog(settings), args.table):
        committed = committed_state(table, branch)
        if committed is not None:
            found.append(committed)
    if args.json:
        states = [{**c.__dict__, "singer_state": c.state} for c in found]
        write_data(json.dumps(states, indent=2, default=str) + "\n")
        return 0
    for c in found:
        print(f"# {c.table} on {c.branch}: snapshot {c.snapshot_id}, run {c.run_id}, stream {c.stream}")
        write_data(json.dumps({"singer_state": c.state}, sort_keys=True) + "\n")
    if found:
        newest = max(found, key=lambda c: c.timestamp_ms)
        payload = json.dumps({"singer_state": newest.state}, sort_keys=True)
        write_data(f"# newest: meltano state set --force <state-id> '{payload}'\n")
    return 0


def inspect_command(args: argparse.Namespace) -> int:
    """Print every table with its rows on the branch and on main, read back by DuckDB."""
    from target_dativo_iceberg.ops.readback import report

    settings = _load_settings(args.config)
    branch = args.branch or settings.branch
    reports = report(_catalog(settings), branch)
    if args.json:
        print(json.dumps([r.__dict__ for r in reports], indent=2, default=str))
        return 0
    if not reports:
        print(f"no tables in catalog {settings.catalog_name!r} ({settings.catalog_uri})")
        return 0
    print(f"catalog {settings.catalog_name!r} at {settings.catalog_uri} — branch {branch!r} (read by DuckDB)")
    header = f"{'table':<40} {'rows on ' + branch:>16} {'rows on main':>14}  latest snapshot"
    print(header)
    print("-" * len(header))
    for r in reports:
        print(f"{r.identifier:<40} {r.rows_on_branch:>16} {r.rows_on_main:>14}  {r.snapshot_id}")
        for key in SUMMARY_KEYS:
            if key in r.summary:
                print(f"{'':<42}{key} = {r.summary[key]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `dativo` argument parser."""
    parser = argparse.ArgumentParser(prog="dativo", description="dativo-ingest operator CLI")
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser("inspect", help="show tables, branch, row counts and latest snapshot")
    inspect.add_argument(
        "--config", help="target config JSON (catalog settings); defaults apply when omitted"
    )
    inspect.add_argument("--branch", help="branch to show (default: the config's branch / tenant_id)")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.set_defaults(func=inspect_command)

    branch = sub.add_parser("branch", help="list branches, diff a branch against main, publish it")
    branch.add_argument("action", choices=["list", "diff", "publish"])
    branch.add_argument("--config", help="target config JSON (catalog settings)")
    branch.add_argument("--branch", help="branch (default: the config's branch / tenant_id)")
    branch.add_argument("--table", action="append", help="namespace.table (repeatable; default: all tables)")
    branch.set_defaults(func=branch_command)

    state = sub.add_parser("state", help="committed Singer state per table")
    state.add_argument("action", choices=["show"])
    state.add_argument("--config", help="target config JSON (catalog settings)")
    state.add_argument("--branch", help="branch (default: the config's branch / tenant_id)")
    state.add_argument("--table", action="append", help="namespace.table (repeatable; default: all tables)")
    state.add_argument("--json", action="store_true", help="machine-readable output")
    state.set_defaults(func=state_command)
    __import__("target_dativo_iceberg.ops.doctor", fromlist=["add_parser"]).add_parser(sub)  # dativo doctor
    __import__("target_dativo_iceberg.ops.maintain", fromlist=["add_parser"]).add_parser(
        sub
    )  # dativo maintain
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point; errors exit 2 with a one-line message. Output is redacted (stdout, stderr, logs)."""
    args = build_parser().parse_args(argv)
    activate()
    out, err = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
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
