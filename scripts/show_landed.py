#!/usr/bin/env python
"""Print what landed in Iceberg, read back by DuckDB (`make demo`'s last step).

Reads the target's configuration (the JSON `meltano config print target-dativo-iceberg` prints, or
a Singer config file), opens the same catalog and reports every table: rows on the tenant branch,
rows on main, the branch's latest snapshot and its `dativo.*` summary keys. Row counts of the
previous call are kept in `.local/show_landed.json` so a repeated `make demo` shows what it added.

    meltano --environment=dev config print target-dativo-iceberg | python scripts/show_landed.py --config -
    python scripts/show_landed.py --config target.json [--branch acme]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pyiceberg.catalog import load_catalog

from target_dativo_iceberg.ops.readback import duckdb_connection, report
from target_dativo_iceberg.settings import Settings

HISTORY = Path(".local/show_landed.json")


def _load_config(source: str | None) -> dict[str, Any]:
    if not source:
        return {}
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    return json.loads(text) if text.strip() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print what landed in the Iceberg catalog.")
    parser.add_argument("--config", help="target config JSON file, or - for stdin")
    parser.add_argument("--branch", help="branch to report (default: the config's branch or tenant_id)")
    args = parser.parse_args(argv)

    settings = Settings.from_config(_load_config(args.config))
    branch = args.branch or settings.branch
    props = settings.catalog_load_properties()
    catalog = load_catalog(settings.catalog_name, **props)
    con = duckdb_connection(settings.connection.s3.given() or None)
    tables = report(catalog, branch, con=con, owned=settings.owns_namespace)

    previous: dict[str, int] = {}
    if HISTORY.exists():
        previous = json.loads(HISTORY.read_text()).get(branch, {})

    print()
    print(f"catalog   {settings.catalog_type} {props.get('uri', '')}")
    print(f"warehouse {props.get('warehouse', '')}")
    print(f"branch    {branch} (tenant {settings.tenant_id})")
    if not tables:
        print("no tables yet")
    for t in tables:
        added = t.rows_on_branch - previous.get(t.identifier, 0)
        print()
        print(f"table {t.identifier}")
        print(f"  rows on {t.branch:<10} {t.rows_on_branch}  (+{added} since the last report)")
        print(f"  rows on {'main':<10} {t.rows_on_main}")
        print(f"  latest snapshot    {t.snapshot_id}")
        for key in sorted(k for k in t.summary if k.startswith("dativo.")):
            value = t.summary[key]
            if len(value) > 160:
                value = value[:157] + "..."
            print(f"    {key:<24} {value}")
    print()

    history = json.loads(HISTORY.read_text()) if HISTORY.exists() else {}
    history[branch] = {t.identifier: t.rows_on_branch for t in tables}
    HISTORY.parent.mkdir(parents=True, exist_ok=True)
    HISTORY.write_text(json.dumps(history, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
