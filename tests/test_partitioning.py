"""Partition specs from the `partitioning` setting: transforms, the target's ingest_date, evolution."""

from __future__ import annotations

import datetime
from pathlib import Path

from helpers import open_catalog, record, run_target, schema_msg, state

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

PROPS = {
    "id": {"type": "integer"},
    "Region": {"type": ["string", "null"]},
    "created_at": {"type": ["string", "null"], "format": "date-time"},
    "name": {"type": ["string", "null"]},
}


def rows(start: int, n: int) -> list[dict]:
    return [
        record(
            "events",
            id=i,
            Region="eu" if i % 2 else "us",
            created_at=f"2025-03-0{1 + i % 3}T10:00:00Z",
            name=f"n{i}",
        )
        for i in range(start, start + n)
    ]


def test_transforms_and_ingest_date(tmp_path: Path) -> None:
    terms = ["ingest_date", "Region", "day(created_at)", "bucket(4, id)", "truncate(1, name)"]
    run = run_target(
        tmp_path, [schema_msg("events", PROPS), *rows(1, 6), state({"s": 1})], partitioning=terms
    )
    assert run.returncode == 0, run.stderr
    table = open_catalog(tmp_path).load_table("acme.events")
    spec = [(f.name, str(f.transform)) for f in table.spec().fields]
    assert spec == [
        ("ingest_date", "identity"),
        ("region", "identity"),
        ("created_at_day", "day"),
        ("id_bucket_4", "bucket[4]"),
        ("name_trunc_1", "truncate[1]"),
    ]
    today = datetime.datetime.now(datetime.timezone.utc).date()
    assert {r["ingest_date"] for r in pyiceberg_rows(table, "acme")} == {today}
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT region) FROM t") == [(6, 2)]
    files = [
        task.file.file_path
        for task in table.scan(snapshot_id=table.snapshot_by_name("acme").snapshot_id).plan_files()
    ]
    assert any(f"ingest_date={today.isoformat()}" in f and "region=eu" in f for f in files)


def test_spec_evolves_when_setting_changes(tmp_path: Path) -> None:
    first = run_target(tmp_path, [schema_msg("events", PROPS), *rows(1, 4)], partitioning=["Region"])
    assert first.returncode == 0, first.stderr
    second = run_target(
        tmp_path, [schema_msg("events", PROPS), *rows(5, 4)], partitioning=["month(created_at)"]
    )
    assert second.returncode == 0, second.stderr
    assert second.events("partition_spec_evolved")
    table = open_catalog(tmp_path).load_table("acme.events")
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [("created_at_month", "month")]
    assert duckdb_rows(table, "acme", "SELECT count(*) FROM t") == [(8,)]


def test_bad_partition_term_exits_2(tmp_path: Path) -> None:
    run = run_target(
        tmp_path, [schema_msg("events", PROPS), *rows(1, 1)], partitioning=["fortnight(created_at)"]
    )
    assert run.returncode == 2
    assert "fortnight(created_at)" in run.stderr
    run = run_target(tmp_path / "b", [schema_msg("events", PROPS), *rows(1, 1)], partitioning=["nope"])
    assert run.returncode == 2
    assert "column 'nope'" in run.stderr
