"""`dativo markdown-kv`: rows of a table or a file rendered as Markdown-KV documents.

Each row becomes one document: a level-1 heading with the row's id (`--id` column, default `id`,
else the row number), then one `key: value` line per column. Nulls are left out, a multi-line value
continues on lines indented by two spaces, objects and lists are compact JSON, dates and times ISO
8601. tap-dativo-csv reads it back with `markdown_kv_pattern: row_per_document` (one row per
document, `doc_id` plus the columns as text); values keep no leading or trailing whitespace.

Sources: `--table namespace.table` (an Iceberg table on `--branch`, catalog from `--config`), or
`--file` (Parquet, CSV, JSON array or NDJSON, by extension). `--limit` caps the rows.
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import json
import sys
import typing as t
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa

from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.settings import Settings


def value_text(value: t.Any) -> str:
    """One value as Markdown-KV text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    return str(value)


def render(rows: Iterable[Mapping[str, t.Any]], id_column: str | None = "id") -> str:
    """Markdown-KV documents, one per row."""
    out: list[str] = []
    for number, row in enumerate(rows, start=1):
        doc_id = row.get(id_column) if id_column else None
        heading = value_text(doc_id).replace("\n", " ") if doc_id is not None else str(number)
        out.append(f"# {heading}\n")
        for key, value in row.items():
            if value is None:
                continue
            first, *rest = value_text(value).strip().split("\n")
            out.append(f"{key}: {first}".rstrip())
            out.extend(f"  {line}" for line in rest)
        out.append("")
    return "\n".join(out)


def read_file(path: Path) -> pa.Table:
    """A Parquet, CSV, JSON-array or NDJSON file as an Arrow table."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if suffix in (".csv", ".tsv"):
        import pyarrow.csv as pcsv

        delimiter = "\t" if suffix == ".tsv" else ","
        return pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=delimiter))
    if suffix in (".ndjson", ".jsonl"):
        import pyarrow.json as pjson

        return pjson.read_json(path)
    if suffix == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, list):
            raise ConfigError(f"--file {path}: expected a JSON array of objects")
        return pa.Table.from_pylist(data)
    raise ConfigError(f"--file {path}: expected .parquet, .csv, .tsv, .json, .ndjson or .jsonl")


def read_table(config: str | None, name: str, branch: str | None) -> pa.Table:
    """An Iceberg table's rows on `branch` (default: the config's branch, else main)."""
    from pyiceberg.catalog import load_catalog

    settings = Settings.from_config(json.loads(Path(config).read_text()) if config else {})
    catalog = load_catalog(settings.catalog_name, **settings.catalog_load_properties())
    table = catalog.load_table(name)
    ref = branch or settings.branch
    snapshot = table.snapshot_by_name(ref) or table.snapshot_by_name("main")
    scan = table.scan(snapshot_id=snapshot.snapshot_id) if snapshot else table.scan()
    return scan.to_arrow()


def markdown_kv_command(args: argparse.Namespace) -> int:
    """Render the rows; stdout or `--output`."""
    data = read_file(Path(args.file)) if args.file else read_table(args.config, args.table, args.branch)
    if args.limit is not None:
        data = data.slice(0, args.limit)
    id_column = args.id if args.id in data.column_names else None
    if args.id != "id" and id_column is None:
        raise ConfigError(f"--id {args.id!r}: no such column ({', '.join(data.column_names)})")
    text = render(data.to_pylist(), id_column)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def add_parser(sub: t.Any) -> None:
    """Register `dativo markdown-kv`."""
    cmd = sub.add_parser("markdown-kv", help="render rows of a table or a file as Markdown-KV")
    source = cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", help="namespace.table (Iceberg, catalog from --config)")
    source.add_argument("--file", help="a .parquet, .csv, .tsv, .json or .ndjson file")
    cmd.add_argument("--config", help="target config JSON (catalog settings) for --table")
    cmd.add_argument("--branch", help="branch of --table (default: the config's branch, else main)")
    cmd.add_argument("--id", default="id", help="column whose value heads each document (default: id)")
    cmd.add_argument("--limit", type=int, help="at most this many rows")
    cmd.add_argument("--output", help="write to this file instead of stdout")
    cmd.set_defaults(func=markdown_kv_command)
