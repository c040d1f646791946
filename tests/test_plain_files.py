"""`catalog_type: none`: Parquet files in a Hive-style layout, committed by run manifests (local and
S3 on SeaweedFS), read back by DuckDB (`read_parquet`, hive partitioning) and pyarrow datasets from
the committed file list only; S3 object metadata and tags checked with boto3; crash and rerun land
each row once. Also: object tags on Iceberg data files (`s3_object_tags`) and `connection.s3.bucket`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import PERSON, PERSON_PROPS, crash_pipeline, person, run_target, schema_msg, state, target_config

from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.ops.files import committed_dataset, duckdb_query, table_files
from target_dativo_iceberg.ops.readback import duckdb_connection
from target_dativo_iceberg.settings import Settings

pytest_plugins = ["servers"]

PEOPLE = 6


def _messages(first: int = 1, count: int = PEOPLE) -> list[dict[str, Any]]:
    records = [person(i) for i in range(first, first + count)]
    return [
        schema_msg("person", PERSON_PROPS, ["id"]),
        state({"bookmarks": {"person": {"from": first}}}),
        *records,
        state({"bookmarks": {"person": {"from": first + count}}}),
    ]


def _resumed() -> list[dict[str, Any]]:
    """The tap resumed from the STATE printed before the first run's commit (`from: 1`, printed at
    once: no record came before it): it replays records 1-6 and the STATE after them, without
    echoing the STATE it started from. Re-sending that leading STATE too is a new run (a STATE other
    than the one the commit's replay marker names), whose records land again."""
    return [m for m in _messages() if m != state({"bookmarks": {"person": {"from": 1}}})]


def _none(root: Path, **extra: Any) -> dict[str, Any]:
    return {"catalog_type": "none", "assets": {"person": str(PERSON)}, "partitioning": ["country"], **extra}


def _read_back(settings: Settings, location: str, con: Any = None) -> tuple[list, list]:
    """Rows by DuckDB (committed files, hive partitioning) and by a pyarrow dataset: (id, country)."""
    files = table_files(settings)[location]
    con = con or duckdb.connect()
    by_duckdb = con.sql(f"SELECT id, country FROM ({duckdb_query(files)}) ORDER BY id").fetchall()
    table = committed_dataset(settings, location).to_table(columns=["id", "country"]).sort_by("id")
    return by_duckdb, list(zip(*(c.to_pylist() for c in table.columns), strict=True))


def test_local_files_hive_layout_and_manifest(tmp_path: Path) -> None:
    run = run_target(tmp_path, _messages(), **_none(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.states[-1] == {"bookmarks": {"person": {"from": PEOPLE + 1}}}
    # tenant / domain / dataProduct / table
    table_dir = tmp_path / "warehouse" / "acme" / "crm" / "customers" / "person"
    parquet = sorted(p.relative_to(table_dir).parent.as_posix() for p in table_dir.rglob("*.parquet"))
    assert parquet == ["country=NO", "country=SE"]
    (manifest,) = (table_dir / "_dativo" / "manifests").glob("*.json")
    doc = json.loads(manifest.read_text())
    assert doc["singer_state"] == run.states[-1]
    assert (doc["tenant"], doc["branch"], doc["stream"], doc["records"]) == ("acme", "acme", "person", PEOPLE)

    settings = Settings.from_config(target_config(tmp_path, **_none(tmp_path)))
    expected = [(i, "NO" if i % 2 else "SE") for i in range(1, PEOPLE + 1)]
    assert _read_back(settings, str(table_dir)) == (expected, expected)

    # A file no manifest names (a run that died before its manifest) is not given to readers.
    stray = table_dir / "country=NO" / "stray.parquet"
    pq.write_table(pa.table({"id": [99], "country": ["NO"]}), stray)
    assert str(stray) not in table_files(settings)[str(table_dir)]
    assert _read_back(settings, str(table_dir)) == (expected, expected)


def test_same_input_again_lands_nothing_new(tmp_path: Path) -> None:
    assert run_target(tmp_path, _messages(), **_none(tmp_path)).returncode == 0
    again = run_target(tmp_path, _resumed(), **_none(tmp_path))
    assert again.returncode == 0, again.stderr
    assert '"replay_skipped"' in again.stderr
    settings = Settings.from_config(target_config(tmp_path, **_none(tmp_path)))
    (location,) = table_files(settings)
    ids = [row[0] for row in _read_back(settings, location)[0]]
    assert ids == list(range(1, PEOPLE + 1))
    more = run_target(tmp_path, _messages(PEOPLE + 1, 2), **_none(tmp_path))
    assert more.returncode == 0, more.stderr
    assert [row[0] for row in _read_back(settings, location)[0]] == list(range(1, PEOPLE + 3))


@pytest.mark.parametrize("fault", ["before_commit:2", "after_commit:1", "after_commit:3", "after_state:2"])
def test_kill_and_rerun_lands_each_row_once(tmp_path: Path, fault: str) -> None:
    settings = target_config(tmp_path, batch_size_rows=10, catalog_type="none")
    first = crash_pipeline(tmp_path, settings, ["--records", "40"], None, fault)
    assert first.returncode == -9, f"the fault {fault} was not reached"
    states = [json.loads(line) for line in first.stdout.splitlines() if line.strip()]
    rerun = crash_pipeline(tmp_path, settings, ["--records", "40"], states[-1] if states else None, None)
    assert rerun.returncode == 0, rerun.stderr
    parsed = Settings.from_config(settings)
    (location,) = table_files(parsed)
    files = table_files(parsed)[location]
    assert duckdb.sql(f"SELECT count(*), count(DISTINCT id) FROM ({duckdb_query(files)})").fetchall() == [
        (40, 40)
    ]


def test_load_methods_that_need_a_catalog_are_refused(tmp_path: Path) -> None:
    run = run_target(tmp_path, _messages(), **_none(tmp_path, load_method="upsert"))
    assert run.returncode == 2
    assert "load_method 'upsert' needs a catalog" in run.stderr
    assert not (tmp_path / "warehouse" / "crm").exists()


def test_bucket_becomes_the_warehouse_or_must_agree_with_it() -> None:
    s3 = {"connection": {"s3": {"bucket": "lake"}}}
    assert Settings.from_config(s3).warehouse == "s3://lake"
    assert Settings.from_config({**s3, "warehouse": "s3://lake/prefix"}).warehouse == "s3://lake/prefix"
    with pytest.raises(
        ConfigError, match=r"connection.s3.bucket 'lake' contradicts warehouse 's3://other/w'"
    ):
        Settings.from_config({**s3, "warehouse": "s3://other/w"})
    with pytest.raises(ConfigError, match="contradicts warehouse '/data/wh'"):
        Settings.from_config({**s3, "warehouse": "/data/wh"})


def test_contradicting_bucket_exits_2_naming_both(tmp_path: Path) -> None:
    run = run_target(tmp_path, _messages(), connection={"s3": {"bucket": "lake"}})
    assert run.returncode == 2
    assert "connection.s3.bucket 'lake' contradicts warehouse" in run.stderr


# --------------------------------------------------------------------------- S3 (SeaweedFS)


@pytest.fixture
def s3_bucket(seaweedfs: Any) -> str:
    seaweedfs.start()
    name = f"plain-{uuid.uuid4().hex[:10]}"
    seaweedfs.s3_client().create_bucket(Bucket=name)
    return name


def _objects(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _labels(client: Any, bucket: str, key: str) -> tuple[dict[str, str], dict[str, str]]:
    metadata = client.head_object(Bucket=bucket, Key=key)["Metadata"]
    tags = {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
    return metadata, tags


GOVERNANCE = """
customProperties:
  - property: owner
    value: crm-team@example.com
  - property: retentionDays
    value: 365
"""


def test_s3_files_carry_metadata_and_tags(tmp_path: Path, seaweedfs: Any, s3_bucket: str) -> None:
    contract = tmp_path / "person.odcs.yaml"
    contract.write_text(PERSON.read_text() + GOVERNANCE)
    conn = {"s3": {**seaweedfs.s3_connection(), "bucket": s3_bucket}}
    config = _none(
        tmp_path, warehouse=f"s3://{s3_bucket}/lake", connection=conn, assets={"person": str(contract)}
    )
    run = run_target(tmp_path, _messages(), **config)
    assert run.returncode == 0, run.stderr
    client = seaweedfs.s3_client()
    keys = [k for k in _objects(client, s3_bucket) if k.startswith("lake/acme/crm/")]
    data = [k for k in keys if k.endswith(".parquet")]
    assert [k.rsplit("/", 1)[0] for k in data] == [
        "lake/acme/crm/customers/person/country=NO",
        "lake/acme/crm/customers/person/country=SE",
    ]
    assert [k for k in keys if "/_dativo/manifests/" in k] and len(keys) == 3
    counts = {}
    for key in data:
        metadata, tags = _labels(client, s3_bucket, key)
        assert len(tags) <= 10
        assert tags["dativo-asset"] == "person" and tags["dativo-tenant"] == "acme"
        assert tags["dativo-branch"] == "acme" and tags["dativo-version"] == "1.0.0"
        assert tags["dativo-owner"] == "crm-team@example.com" and tags["dativo-retention-days"] == "365"
        assert tags["dativo-classification"] == "restricted" and tags["dativo-ingested-at"]
        assert metadata["dativo-domain"] == "crm" and metadata["dativo-data-product"] == "customers"
        assert metadata["dativo-records"] == tags["dativo-records"]
        counts[key.split("/")[-2]] = int(tags["dativo-records"])
    assert counts == {"country=NO": 3, "country=SE": 3}

    settings = Settings.from_config(target_config(tmp_path, **config))
    location = f"s3://{s3_bucket}/lake/acme/crm/customers/person"
    expected = [(i, "NO" if i % 2 else "SE") for i in range(1, PEOPLE + 1)]
    assert _read_back(settings, location, duckdb_connection(s3=seaweedfs.s3_connection())) == (
        expected,
        expected,
    )
    again = run_target(tmp_path, _resumed(), **config)
    assert again.returncode == 0, again.stderr
    assert [k for k in _objects(client, s3_bucket) if k.startswith("lake/acme/crm/")] == keys  # nothing new


def test_iceberg_data_files_on_s3_carry_tags(tmp_path: Path, seaweedfs: Any, s3_bucket: str) -> None:
    conn = {"s3": seaweedfs.s3_connection()}
    run = run_target(
        tmp_path,
        _messages(),
        warehouse=f"s3://{s3_bucket}/wh",
        connection=conn,
        assets={"person": str(PERSON)},
        s3_object_tags=True,
    )
    assert run.returncode == 0, run.stderr
    client = seaweedfs.s3_client()
    parquet = [k for k in _objects(client, s3_bucket) if k.endswith(".parquet")]
    data = [k for k in parquet if k.startswith("wh/acme/crm/customers/person/data/")]  # tenant-scoped
    # The rest is the run ledger's own Iceberg tables (`_dativo.ingestion_runs`, ...), untagged.
    assert data and all(k.startswith(("wh/acme/crm/customers/person/data/", "wh/_dativo/")) for k in parquet)
    records = 0
    for key in data:
        metadata, tags = _labels(client, s3_bucket, key)
        assert tags["dativo-asset"] == "person" and tags["dativo-run-id"] == metadata["dativo-run-id"]
        records += int(tags["dativo-records"])
    assert records == PEOPLE
    metadata_files = [k for k in _objects(client, s3_bucket) if k.endswith(".avro")]
    assert metadata_files and not client.get_object_tagging(Bucket=s3_bucket, Key=metadata_files[0])["TagSet"]


def test_warn_mode_rejections_land_beside_the_table(tmp_path: Path) -> None:
    messages = _messages()
    messages.insert(3, person(99, status="unknown"))
    run = run_target(tmp_path, messages, **_none(tmp_path, schema_validation_mode="warn"))
    assert run.returncode == 1, run.stderr
    settings = Settings.from_config(target_config(tmp_path, **_none(tmp_path)))
    found = table_files(settings)
    # `{warehouse}/{namespace}/{table}`: the rejected table is in the tenant-scoped namespace `acme__crm`.
    rejected = str(tmp_path / "warehouse" / "acme__crm" / "person__rejected")
    assert sorted(found) == [str(tmp_path / "warehouse" / "acme" / "crm" / "customers" / "person"), rejected]
    (row,) = duckdb.sql(f"SELECT _stream, _record FROM ({duckdb_query(found[rejected])})").fetchall()
    assert row[0] == "person" and json.loads(row[1])["id"] == 99
