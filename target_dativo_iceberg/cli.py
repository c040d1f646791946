"""`dativo`: the operator CLI. For now: `dativo inspect` shows what landed, read back by DuckDB."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pyiceberg.catalog import load_catalog

from target_dativo_iceberg.config import Settings
from target_dativo_iceberg.errors import DativoError

SUMMARY_KEYS = ("dativo.run-id", "dativo.records", "dativo.records-rejected", "dativo.singer-state")


def _load_settings(path: str | None) -> Settings:
    config: dict[str, Any] = {}
    if path:
        config = json.loads(Path(path).read_text())
    return Settings.from_config(config)


def inspect_command(args: argparse.Namespace) -> int:
    """Print every table with its rows on the branch and on main, read back by DuckDB."""
    from target_dativo_iceberg.inspect import report

    settings = _load_settings(args.config)
    branch = args.branch or settings.branch
    catalog = load_catalog(settings.catalog_name, **settings.catalog_load_properties())
    reports = report(catalog, branch)
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
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point; errors exit 2 with a one-line message."""
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except DativoError as exc:
        print(f"dativo: {exc}", file=sys.stderr)
        sys.exit(2)
