"""Read landed Iceberg tables back with an independent reader (DuckDB) and with pyiceberg.

Used by `make demo` / `dativo inspect` and by the tests: DuckDB reads the table's
`metadata_location` directly, so a bug in how we write metadata shows up as a mismatch
between the two readers.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from target_dativo_iceberg.errors import DativoError
from target_dativo_iceberg.iceberg.pyiceberg_compat import keep_nested_nulls
from target_dativo_iceberg.iceberg.runtables import is_ledger_table

#: DuckDB and the extension packages it reads Iceberg with (dependencies of dativo-ingest, pinned
#: together in pyproject.toml: an extension loads only into the DuckDB version it was built for).
DUCKDB_PACKAGES = (
    "duckdb==1.5.5",
    "duckdb-extension-iceberg==1.5.5",
    "duckdb-extension-avro==1.5.5",
    "duckdb-extension-httpfs==1.5.5",
)


@dataclass
class TableReport:
    """What landed in one table on one branch."""

    identifier: str
    branch: str
    rows_on_branch: int
    rows_on_main: int
    snapshot_id: int | None
    summary: dict[str, str]
    metadata_location: str


def _import(module_name: str) -> Any:
    """Import DuckDB or an extension package; when missing, say which pip command installs them."""
    try:
        return __import__(module_name)
    except ImportError as exc:
        packages = " ".join(f"'{p}'" for p in DUCKDB_PACKAGES)
        raise DativoError(
            f"reading tables back needs DuckDB and its extension packages ({module_name} is missing): "
            f"pip install {packages}"
        ) from exc


def _extension_path(module_name: str, ext_name: str) -> str:
    module = _import(module_name)
    base = os.path.dirname(module.__file__ or "")
    found = glob.glob(os.path.join(base, "extensions", "*", f"{ext_name}.duckdb_extension"))
    if not found:
        raise RuntimeError(f"DuckDB extension {ext_name!r} not found in package {module_name!r}")
    return found[0]


def duckdb_connection(s3: dict[str, Any] | None = None) -> Any:
    """Open DuckDB with the iceberg and avro extensions loaded offline from their PyPI packages."""
    duckdb = _import("duckdb")
    con = duckdb.connect(
        config={
            "allow_unsigned_extensions": "true",
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
        }
    )
    con.execute(f"LOAD '{_extension_path('duckdb_extension_avro', 'avro')}'")
    con.execute(f"LOAD '{_extension_path('duckdb_extension_iceberg', 'iceberg')}'")
    if s3:
        # `s3` is the target's `connection.s3` (endpoint, access_key_id, secret_access_key, region,
        # session_token, path_style_access); DuckDB's httpfs reads s3:// paths with it.
        endpoint = str(s3.get("endpoint") or "")
        host = endpoint.split("://", 1)[-1].rstrip("/")
        path_style_setting = s3.get("path_style_access", bool(host))  # custom endpoints: path style
        path_style = str(path_style_setting).strip().lower() not in ("false", "0", "no", "off")
        con.execute(f"LOAD '{_extension_path('duckdb_extension_httpfs', 'httpfs')}'")
        options = {
            "KEY_ID": s3.get("access_key_id") or "",
            "SECRET": s3.get("secret_access_key") or "",
            "SESSION_TOKEN": s3.get("session_token") or "",
            "REGION": s3.get("region") or "us-east-1",
            "URL_STYLE": "path" if path_style else "vhost",
        }
        if host:
            options["ENDPOINT"] = host
            options["USE_SSL"] = not endpoint.startswith("http://")
        names = ", ".join(f"{key} ?" for key in options)
        con.execute(f"CREATE SECRET dativo_s3 (TYPE s3, {names})", list(options.values()))
    return con


def branch_snapshot_id(table: Table, branch: str) -> int | None:
    """Snapshot id at the head of `branch`, or None when the branch does not exist."""
    snap = table.snapshot_by_name(branch)
    return snap.snapshot_id if snap else None


def duckdb_rows(table: Table, branch: str = "main", query: str = "SELECT * FROM t", con: Any = None) -> list:
    """Rows of `table` at the head of `branch`, read by DuckDB from the metadata file.

    `query` may refer to the table as `t`.
    """
    con = con or duckdb_connection()
    snap_id = branch_snapshot_id(table, branch)
    if snap_id is None:
        return []
    scan = f"iceberg_scan('{table.metadata_location}', snapshot_from_id={snap_id})"
    return con.execute(f"WITH t AS (SELECT * FROM {scan}) {query}").fetchall()


def pyiceberg_rows(table: Table, branch: str = "main") -> list[dict[str, Any]]:
    """Rows of `table` at the head of `branch`, read by pyiceberg (null lists kept null)."""
    snap_id = branch_snapshot_id(table, branch)
    if snap_id is None:
        return []
    keep_nested_nulls()
    return table.scan(snapshot_id=snap_id).to_arrow().to_pylist()


def report(
    catalog: Catalog, branch: str, con: Any = None, owned: Callable[[str], bool] | None = None
) -> list[TableReport]:
    """Summarize every data table in the catalog (of the namespaces `owned` accepts; not the run
    ledger's tables: `dativo runs` shows those): rows on `branch` and on main, read by DuckDB."""
    con = con or duckdb_connection()
    out: list[TableReport] = []
    for ns in catalog.list_namespaces():
        if owned is not None and not owned(".".join(ns)):
            continue
        for ident in catalog.list_tables(ns):
            if is_ledger_table(ident):
                continue
            table = catalog.load_table(ident)
            snap = table.snapshot_by_name(branch)
            out.append(
                TableReport(
                    identifier=".".join(ident),
                    branch=branch,
                    rows_on_branch=duckdb_rows(table, branch, "SELECT count(*) FROM t", con)[0][0]
                    if snap
                    else 0,
                    rows_on_main=duckdb_rows(table, "main", "SELECT count(*) FROM t", con)[0][0]
                    if table.snapshot_by_name("main")
                    else 0,
                    snapshot_id=snap.snapshot_id if snap else None,
                    summary=dict(snap.summary.additional_properties) if snap and snap.summary else {},
                    metadata_location=table.metadata_location,
                )
            )
    return out
