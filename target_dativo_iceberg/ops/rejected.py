"""`dativo rejected TABLE`: the rows warn mode set aside, with every reason, newest first.

In `schema_validation_mode: warn` a record that breaks its contract goes to
`{namespace}.{table}__rejected` (`_rejected_at`, `_run_id`, `_stream`, `_record` JSON, `_errors`
list of {field, rule, message}) while the valid ones commit. This prints them for the person who
fixes the source: when, which run, each field with the rule it broke, and the record itself.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from target_dativo_iceberg.contracts.enforcement import REJECTED_SUFFIX
from target_dativo_iceberg.errors import DativoError
from target_dativo_iceberg.ops.project import (
    add_source_arguments,
    catalog_of,
    chosen_branch,
    load_project,
    where,
)
from target_dativo_iceberg.ops.readback import pyiceberg_rows


def _identifiers(catalog: Catalog, name: str) -> tuple[str, str]:
    """(`namespace.table`, `namespace.table__rejected`) for TABLE given with or without namespace
    or suffix; a bare name is looked up in every namespace."""
    base = name.removesuffix(REJECTED_SUFFIX)
    if "." in base:
        return base, base + REJECTED_SUFFIX
    found = [
        ".".join(ident)
        for ns in catalog.list_namespaces()
        for ident in catalog.list_tables(ns)
        if ident[-1] in (base, base + REJECTED_SUFFIX)
    ]
    namespaces = sorted({f.rsplit(".", 1)[0] for f in found})
    if not namespaces:
        raise DativoError(f"no table {base!r} in any namespace of the catalog (`dativo tables` lists them)")
    if len(namespaces) > 1:
        raise DativoError(f"table {base!r} is in several namespaces ({', '.join(namespaces)}): name one")
    return f"{namespaces[0]}.{base}", f"{namespaces[0]}.{base}{REJECTED_SUFFIX}"


def rejected_command(args: argparse.Namespace) -> int:
    """Print the rejected rows of TABLE on the branch; say so when there are none."""
    project = load_project(args)
    branch = chosen_branch(project, args)
    catalog = catalog_of(project.settings)
    table, rejected = _identifiers(catalog, args.table)
    try:
        rows = pyiceberg_rows(catalog.load_table(rejected), branch)
    except NoSuchTableError:
        if not catalog.table_exists(table):
            raise DativoError(f"no table {table} in {where(project.settings, branch)}") from None
        rows = []
    rows.sort(key=lambda r: (r["_rejected_at"] is not None, r["_rejected_at"]), reverse=True)
    shown = rows[: args.limit] if args.limit else rows
    if args.json:
        print(json.dumps(shown, indent=2, default=str))
        return 0
    if not rows:
        print(f"no rejected rows for {table} in {where(project.settings, branch)}")
        return 0
    more = f", newest {len(shown)} shown (--limit 0 shows all)" if len(shown) < len(rows) else ""
    print(f"{len(rows)} rejected row(s) in {rejected} on {branch!r}{more}")
    for row in shown:
        print(f"\n{row['_rejected_at']}  run {row['_run_id']}  stream {row['_stream']}")
        for error in row["_errors"] or []:
            print(f"  {error.get('field') or '(record)'}: {error.get('rule')}: {error.get('message')}")
        print(f"  record: {row['_record']}")
    return 0


def add_parser(sub: Any) -> None:
    """Register `dativo rejected TABLE` on the `dativo` CLI's subparsers."""
    rejected = sub.add_parser("rejected", help="rows warn mode rejected for TABLE, with their reasons")
    rejected.add_argument("table", help="table as namespace.table (or just table); `__rejected` optional")
    add_source_arguments(rejected)
    rejected.add_argument("--branch", help="branch (default: the tenant's branch the target writes)")
    rejected.add_argument("--limit", type=int, default=20, help="newest rows shown (default 20; 0: all)")
    rejected.add_argument("--json", action="store_true", help="machine-readable output")
    rejected.set_defaults(func=rejected_command)
