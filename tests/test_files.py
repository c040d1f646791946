"""Long batches stream into Parquet files rolled at `parquet_target_size_mb` (compressed bytes on disk)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import PERSON_PROPS, open_catalog, person, run_target, schema_msg, singer_lines

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

CONTRACT = """
apiVersion: v3.0.2
kind: DataContract
id: 0b6f3c4e-0000-4000-8000-0000000000f1
name: events
version: 1.0.0
status: active
domain: lab
schema:
  - name: events
    properties:
      - {name: id, logicalType: integer, physicalType: bigint, required: true, primaryKey: true}
      - {name: payload, logicalType: string, required: true}
"""
ROWS = 250_000
PERSON_CONTRACT = Path(__file__).parents[1] / "examples/contracts/person.odcs.yaml"


def _stream(path: Path) -> None:
    """A SCHEMA, ROWS records with ~60 bytes of incompressible-ish text each, a STATE per 50k."""
    with path.open("w") as out:
        props = {"id": {"type": "integer"}, "payload": {"type": "string"}}
        out.write(json.dumps({"type": "SCHEMA", "stream": "events", "schema": {"properties": props}}) + "\n")
        for i in range(1, ROWS + 1):
            payload = f"{i * 2654435761 % 2**32:08x}{i * 40503 % 65521:05d}{i:07d}" * 2
            out.write(f'{{"type":"RECORD","stream":"events","record":{{"id":{i},"payload":"{payload}"}}}}\n')
            if i % 50_000 == 0:
                out.write(json.dumps({"type": "STATE", "value": {"n": i}}) + "\n")


def _run(root: Path, batch_size_rows: int = 1_000_000, **config: object) -> list:
    root.mkdir(parents=True, exist_ok=True)
    (root / "events.yaml").write_text(CONTRACT)
    _stream(root / "in.jsonl")
    assets = {"events": str(root / "events.yaml")}
    config = {"load_method": "append-only", **config}  # streaming a long batch into files: append
    run = run_target(
        root, (root / "in.jsonl").read_text(), assets=assets, batch_size_rows=batch_size_rows, **config
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.states[-1] == {"n": ROWS}
    commits = run.events("commit_success")
    assert sum(c["records"] for c in commits) == ROWS
    assert len(commits) == -(-ROWS // batch_size_rows)  # one commit per batch
    return commits


def test_files_roll_at_the_target_size_on_disk(tmp_path: Path) -> None:
    _run(tmp_path, parquet_target_size_mb=1)
    table = open_catalog(tmp_path).load_table("acme__lab.events")
    files = table.inspect.files(snapshot_id=table.snapshot_by_name("acme").snapshot_id).to_pylist()
    sizes = sorted(f["file_size_in_bytes"] for f in files)
    assert len(files) >= 3 and sum(f["record_count"] for f in files) == ROWS
    mib = 1024 * 1024  # all but the last file land within ±20% of the target: chunks are split
    assert all(0.8 * mib <= size <= 1.2 * mib for size in sizes[1:]), sizes
    assert sizes[0] <= 1.2 * mib, sizes
    rows = pyiceberg_rows(table, "acme")
    assert len(rows) == ROWS and len({r["id"] for r in rows}) == ROWS
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id), max(id) FROM t") == [
        (ROWS, ROWS, ROWS)
    ]


def test_dictionary_encoding_only_where_values_repeat(tmp_path: Path) -> None:
    """Columns of mostly distinct values are written plain, repeating ones dictionary-encoded; both
    readers get the rows back."""
    messages = [schema_msg("person", PERSON_PROPS, ["id"])]
    messages += [person(i, age=30 + i % 50) for i in range(1, 3001)]
    run = run_target(tmp_path, singer_lines(messages), assets={"person": str(PERSON_CONTRACT)})
    assert run.returncode == 0, run.stderr[-3000:]
    table = open_catalog(tmp_path).load_table("acme__crm.person")
    files = table.inspect.files(snapshot_id=table.snapshot_by_name("acme").snapshot_id).to_pylist()
    assert len(files) == 2 and sum(f["record_count"] for f in files) == 3000  # partitioned by country
    for data_file in files:
        row_group = pq.ParquetFile(data_file["file_path"].removeprefix("file://")).metadata.row_group(0)
        columns = [row_group.column(i) for i in range(row_group.num_columns)]
        dictionary = {c.path_in_schema for c in columns if "RLE_DICTIONARY" in c.encodings}
        assert {"country", "status", "first_name", "age", "signup_date"} <= dictionary, columns
        assert not {"id", "email"} & dictionary, columns
    assert duckdb_rows(table, "acme", "SELECT count(DISTINCT email), count(DISTINCT country) FROM t") == [
        (3000, 2)
    ]
    assert sorted(r["id"] for r in pyiceberg_rows(table, "acme")) == list(range(1, 3001))


def test_partitioned_long_batch_rolls_per_partition(tmp_path: Path) -> None:
    _run(tmp_path, parquet_target_size_mb=1, partitioning=["bucket(2, id)"])
    table = open_catalog(tmp_path).load_table("acme__lab.events")
    files = table.inspect.files(snapshot_id=table.snapshot_by_name("acme").snapshot_id).to_pylist()
    partitions = {json.dumps(f["partition"], sort_keys=True) for f in files}
    assert len(partitions) == 2 and len(files) >= 4
    assert sum(f["record_count"] for f in files) == ROWS
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t") == [(ROWS, ROWS)]


def test_killed_while_streaming_a_long_batch_leaves_nothing_half_committed(tmp_path: Path) -> None:
    """SIGKILL after two chunks went to open files: nothing is committed, no STATE printed; the rerun
    (Meltano restarts the tap from scratch: no STATE was persisted) lands every row exactly once."""
    root = tmp_path
    (root / "events.yaml").write_text(CONTRACT)
    _stream(root / "in.jsonl")
    config = {
        "assets": {"events": str(root / "events.yaml")},
        "batch_size_rows": 1_000_000,
        "load_method": "append-only",
    }
    text = (root / "in.jsonl").read_text()
    killed = run_target(root, text, env={"DATIVO_FAULT": "after_spill:2"}, parquet_target_size_mb=1, **config)
    assert killed.returncode == -9 and killed.stdout == ""
    table = open_catalog(root).load_table("acme__lab.events")
    assert table.snapshot_by_name("acme") is None or pyiceberg_rows(table, "acme") == []
    again = run_target(root, text, parquet_target_size_mb=1, **config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.states[-1] == {"n": ROWS}
    table = open_catalog(root).load_table("acme__lab.events")
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t") == [(ROWS, ROWS)]


@pytest.mark.parametrize("target_mb", [1, 3, 8])
def test_rolling_writer_files_land_within_20_percent_of_any_target(tmp_path: Path, target_mb: int) -> None:
    """Chunks of 100k rows (~2.5 MB of Parquet each) are split where the measured bytes per row say
    the file reaches its target; every file but the last is within ±20%."""
    import pyarrow as pa
    from pyiceberg.catalog import load_catalog

    from target_dativo_iceberg.iceberg.writer import RollingWriter

    catalog = load_catalog("t", type="sql", uri=f"sqlite:///{tmp_path}/c.db", warehouse=tmp_path.as_uri())
    catalog.create_namespace("lab")
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("payload", pa.string())])
    table = catalog.create_table("lab.t", schema=schema)
    target = target_mb * 1024 * 1024
    writer = RollingWriter(table.metadata, table.io, target)
    rows = 0
    for chunk in range(12):
        ids = list(range(chunk * 100_000, (chunk + 1) * 100_000))
        payload = [f"{i * 2654435761 % 2**32:08x}{i:07d}" for i in ids]
        writer.write(pa.table({"id": ids, "payload": payload}, schema=table.schema().as_arrow()))
        rows += len(ids)
    files = writer.finish()
    assert sum(f.record_count for f in files) == rows
    sizes = [f.file_size_in_bytes for f in files]
    assert all(0.8 * target <= size <= 1.2 * target for size in sizes[:-1]), sizes
    assert sizes[-1] <= 1.2 * target, sizes
