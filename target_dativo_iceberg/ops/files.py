"""`dativo files`: the committed Parquet files of `catalog_type: none` tables, for readers.

Only files named by a run manifest are committed (files/manifests.py); a reader globbing a table
directory could also see files of a run that died before its manifest. This prints the committed
list per table — plain paths, JSON, or a DuckDB query (`read_parquet([...], hive_partitioning = true)`)
— and `committed_dataset` gives the same files to pyarrow as a Hive-partitioned dataset.
"""

from __future__ import annotations

import argparse
import json
import typing as t
from pathlib import Path

from target_dativo_iceberg.files.committer import warehouse_root
from target_dativo_iceberg.files.manifests import Store, committed_files
from target_dativo_iceberg.iceberg.objecttags import s3_client
from target_dativo_iceberg.redact import activate
from target_dativo_iceberg.settings import Settings


def table_files(settings: Settings, branch: str | None = None) -> dict[str, list[str]]:
    """Table location → its committed files (on `branch`, or every branch), for every table."""
    store = Store(lambda: s3_client(settings))
    return {loc: committed_files(store, loc, branch) for loc in store.tables(warehouse_root(settings))}


def duckdb_query(files: list[str]) -> str:
    """A DuckDB query reading exactly `files`, partition columns from their Hive-style directories."""
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"SELECT * FROM read_parquet([{listed}], hive_partitioning = true, union_by_name = true)"


def committed_dataset(settings: Settings, table_location: str, branch: str | None = None) -> t.Any:
    """A `pyarrow.dataset` of the table's committed files, partition columns from the paths."""
    import pyarrow.dataset as ds
    from pyarrow import fs

    from target_dativo_iceberg.iceberg.objecttags import is_s3, split_s3

    store = Store(lambda: s3_client(settings))
    files = committed_files(store, table_location, branch)
    if is_s3(table_location):
        s3 = settings.connection.s3
        filesystem: t.Any = fs.S3FileSystem(
            access_key=s3.access_key_id,
            secret_key=s3.secret_access_key,
            session_token=s3.session_token,
            region=s3.region or "us-east-1",
            endpoint_override=s3.endpoint,
            force_virtual_addressing=not (s3.path_style_access or s3.endpoint),
        )
        paths = ["/".join(split_s3(f)) for f in files]
        base = "/".join(split_s3(table_location))
    else:
        filesystem, paths, base = fs.LocalFileSystem(), files, table_location
    return ds.dataset(
        paths, filesystem=filesystem, partitioning=_hive(paths, base, filesystem), partition_base_dir=base
    )


def _hive(paths: list[str], base: str, filesystem: t.Any) -> t.Any:
    """Hive partitioning whose keys that are also file columns (identity partitions keep their column
    in the file, as Iceberg does) take the file's type, so the two agree."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    if not paths:
        return ds.partitioning(flavor="hive")
    keys = [p.split("=", 1)[0] for p in paths[0][len(base) :].strip("/").split("/")[:-1] if "=" in p]
    with filesystem.open_input_file(paths[0]) as f:
        in_file = pq.read_schema(f)
    fields = [in_file.field(k) if k in in_file.names else pa.field(k, pa.string()) for k in keys]
    return ds.partitioning(pa.schema(fields), flavor="hive")


def files_command(args: argparse.Namespace) -> int:
    """Print each table's committed files (or a DuckDB query, or JSON)."""
    config = json.loads(Path(args.config).read_text()) if args.config else {}
    settings = Settings.from_config(config)
    activate(settings.redactor())
    found = table_files(settings, args.branch)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for location, files in found.items():
        print(f"# {location}: {len(files)} committed file(s)")
        if args.sql:
            print(duckdb_query(files) + ";" if files else "-- no committed file")
        else:
            for f in files:
                print(f)
    return 0


def add_parser(sub: t.Any) -> None:
    """Register `dativo files`."""
    cmd = sub.add_parser("files", help="committed Parquet files of catalog_type none tables (for readers)")
    cmd.add_argument("--config", help="target config JSON (warehouse, connection.s3)")
    cmd.add_argument("--branch", help="only files committed on this branch (default: all)")
    cmd.add_argument("--sql", action="store_true", help="print a DuckDB read_parquet query per table")
    cmd.add_argument("--json", action="store_true", help="table location → files, as JSON")
    cmd.set_defaults(func=files_command)
