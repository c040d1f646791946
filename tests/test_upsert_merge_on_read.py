"""Upsert and hard deletes as merge-on-read (`iceberg/keydeletes.py`): position delete files, only the
data files that can hold a key read, none rewritten — and pyiceberg and DuckDB see the same right rows
after several commits of changed, new and deleted keys, on unpartitioned and partitioned tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from helpers import Run, open_catalog, record, run_target, schema_msg, state
from pyiceberg.manifest import DataFileContent
from pyiceberg.schema import Schema
from pyiceberg.transforms import BucketTransform
from pyiceberg.types import LongType, NestedField, StringType

from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.compaction import compact
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

PROPS = {
    "id": {"type": "integer"},
    "region": {"type": ["string", "null"]},
    "v": {"type": ["string", "null"]},
}
DELETED = "2025-06-01T00:00:00Z"
Model = dict[int, tuple[str, str]]


def _run(root: Path, rows: list[dict[str, Any]], n: int, **config: Any) -> Run:
    """One run of `rows` (upsert on `id`, deletion records hard-delete), as its own commit."""
    messages = [schema_msg("items", PROPS, ["id"]), *[record("items", **row) for row in rows]]
    messages.append(state({"bookmarks": {"items": {"n": n}}}))
    config = {"auto_compact_min_files": 0, **config}  # the head is this run's commit, not a compaction
    run = run_target(
        root, messages, load_method="upsert", hard_delete=True, add_record_metadata=True, **config
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _apply(model: Model, rows: list[dict[str, Any]]) -> None:
    """What the rows should do to the table: last record per key wins, a deletion removes it."""
    for row in rows:
        if row.get("_sdc_deleted_at"):
            model.pop(row["id"], None)
        else:
            model[row["id"]] = (row["region"], row["v"])


def _landed(root: Path) -> list[tuple[int, str, str]]:
    table = open_catalog(root).load_table("acme.items")
    py = sorted((r["id"], r["region"], r["v"]) for r in pyiceberg_rows(table, "acme"))
    duck = duckdb_rows(table, "acme", "SELECT id, region, v FROM t ORDER BY id")
    assert duck == py
    return py


def _head_summary(root: Path) -> dict[str, str]:
    table = open_catalog(root).load_table("acme.items")
    return dict(table.snapshot_by_name("acme").summary.additional_properties)


def _rows(ids: range | list[int], tag: str, region: str = "eu") -> list[dict[str, Any]]:
    return [{"id": i, "region": region, "v": f"{tag}{i}"} for i in ids]


@pytest.mark.parametrize("partitioning", [None, ["region"]], ids=["unpartitioned", "by-region"])
def test_changed_new_and_deleted_keys_over_several_commits(tmp_path: Path, partitioning: list | None) -> None:
    config: dict[str, Any] = {"partitioning": partitioning} if partitioning else {}
    model: Model = {}
    batches = [
        _rows(range(0, 100), "a"),  # commit 1: one data file with ids 0..99
        _rows(range(100, 200), "b", "us"),  # commit 2: ids 100..199, another file (and partition)
        [  # commit 3: changed keys in the first file only, a key moving region, new keys, deletions
            *_rows([3, 7, 50], "c"),
            {"id": 9, "region": "us", "v": "moved"},
            *_rows([300, 301], "new"),
            {"id": 20, "region": "eu", "v": None, "_sdc_deleted_at": DELETED},
            {"id": 21, "region": "eu", "v": "x", "_sdc_deleted_at": DELETED},
            {"id": 21, "region": "eu", "v": "back"},  # re-inserted after its deletion
            *_rows([7], "c2"),  # changed twice in one batch: the last wins
        ],
        [*_rows([7, 150, 300], "d"), {"id": 3, "region": "eu", "v": None, "_sdc_deleted_at": DELETED}],
        [*_rows([301], "e")],  # lives in commit 3's file only (by the files' id bounds)
    ]
    for n, rows in enumerate(batches, 1):
        run = _run(tmp_path, rows, n, **config)
        _apply(model, rows)
        assert _landed(tmp_path) == sorted((k, *v) for k, v in model.items())
    summary = _head_summary(tmp_path)
    # commit 5 changed only id 301: the data files whose id bounds cannot hold it are not read, and
    # none is rewritten
    assert summary["dativo.files-scanned"] == "1"
    assert summary["dativo.files-rewritten"] == "0"
    assert summary["dativo.delete-files"] == "1"
    assert summary["dativo.rows-deleted"] == "1"
    assert int(summary["dativo.files-skipped"]) >= 3
    # id 7 changed in commits 3 and 4: its old rows were deleted once each, never twice
    assert summary["total-position-deletes"] == str(int(summary["total-records"]) - len(model))
    event = run.events("commit_success")[-1]
    assert (event["files_scanned"], event["files_rewritten"], event["delete_files"]) == (1, 0, 1)
    table = open_catalog(tmp_path).load_table("acme.items")
    assert table.metadata.format_version == 2


def test_the_first_commit_of_only_new_keys_writes_no_delete_file(tmp_path: Path) -> None:
    run = _run(tmp_path, _rows(range(10), "a"), 1)
    _run(tmp_path, _rows(range(10, 20), "b"), 2)
    assert _head_summary(tmp_path)["dativo.delete-files"] == "0"
    assert run.events("commit_success")[-1]["delete_files"] == 0
    assert len(_landed(tmp_path)) == 20


def test_bucket_partitions_rule_out_files_holding_other_buckets(tmp_path: Path) -> None:
    bucket = BucketTransform(4).transform(LongType())
    _run(tmp_path, _rows(range(400), "a"), 1, partitioning=["bucket(4, id)"])
    same_bucket = [i for i in range(400) if bucket(i) == bucket(0)][:5]
    _run(tmp_path, _rows(same_bucket, "b"), 2, partitioning=["bucket(4, id)"])
    summary = _head_summary(tmp_path)
    # every bucket's file spans the whole id range: only the partition rules the other three out
    assert (summary["dativo.files-scanned"], summary["dativo.files-skipped"]) == ("1", "3")
    changed = {i: f"b{i}" for i in same_bucket}
    assert _landed(tmp_path) == [(i, "eu", changed.get(i, f"a{i}")) for i in range(400)]


def test_delete_files_are_v2_position_deletes_next_to_their_data_file(tmp_path: Path) -> None:
    _run(tmp_path, _rows(range(50), "a"), 1, partitioning=["region"])
    _run(tmp_path, _rows([1, 2, 3], "b"), 2, partitioning=["region"])
    table = open_catalog(tmp_path).load_table("acme.items")
    tasks = list(table.scan(snapshot_id=table.snapshot_by_name("acme").snapshot_id).plan_files())
    deletes = [d for task in tasks for d in task.delete_files]
    assert len(deletes) == 1 and deletes[0].content == DataFileContent.POSITION_DELETES
    (data_file,) = [t.file for t in tasks if t.delete_files]
    assert deletes[0].file_path.rsplit("/", 1)[0] == data_file.file_path.rsplit("/", 1)[0]  # region=eu/
    written = pq.read_table(deletes[0].file_path.removeprefix("file://"))
    assert written.column_names == ["file_path", "pos"]
    assert written.column("pos").to_pylist() == [1, 2, 3]


def test_a_v1_table_is_upserted_copy_on_write(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path)
    catalog.create_namespace("acme")
    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "region", StringType(), required=False),
        NestedField(3, "v", StringType(), required=False),
        identifier_field_ids=[1],  # keyed on id, as the stream is
    )
    catalog.create_table("acme.items", schema, properties={"format-version": "1"})
    _run(tmp_path, _rows(range(10), "a"), 1)
    _run(tmp_path, _rows([2, 30], "b"), 2)
    table = open_catalog(tmp_path).load_table("acme.items")
    assert table.metadata.format_version == 1  # v1 has no delete files: rows rewritten instead
    assert "dativo.delete-files" not in _head_summary(tmp_path)
    changed = {2: "b2"}
    assert _landed(tmp_path) == [(i, "eu", changed.get(i, f"a{i}")) for i in range(10)] + [(30, "eu", "b30")]


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_activate_version_on_a_table_with_delete_files(tmp_path: Path, hard: bool) -> None:
    """ACTIVATE_VERSION rewrites data files copy-on-write: rows the position deletes removed stay
    removed (pyiceberg's rewrite applies them), for both readers."""

    def versioned(version: int, rows: list[tuple[int, str]]) -> list[dict]:
        return [
            schema_msg("snap", {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}, ["id"]),
            *[
                {"type": "RECORD", "stream": "snap", "record": {"id": i, "v": v}, "version": version}
                for i, v in rows
            ],
            {"type": "ACTIVATE_VERSION", "stream": "snap", "version": version},
            state({"v": version}),
        ]

    config = {"load_method": "upsert", "add_record_metadata": True, "hard_delete": hard}
    for messages in (versioned(1, [(1, "a"), (2, "a"), (3, "a")]), versioned(1, [(2, "b")])):
        assert run_target(tmp_path, messages, **config).returncode == 0
    run = run_target(tmp_path, versioned(2, [(2, "c"), (4, "c")]), **config)
    assert run.returncode == 0, run.stderr[-3000:]
    table = open_catalog(tmp_path).load_table("acme.snap")
    query = "SELECT id, v, _sdc_table_version, _sdc_deleted_at IS NOT NULL FROM t ORDER BY id"
    duck = duckdb_rows(table, "acme", query)
    py = sorted(
        (r["id"], r["v"], r["_sdc_table_version"], r["_sdc_deleted_at"] is not None)
        for r in pyiceberg_rows(table, "acme")
    )
    assert duck == py
    old = [] if hard else [(1, "a", 1, True), (3, "a", 1, True)]
    assert duck == sorted([*old, (2, "c", 2, False), (4, "c", 2, False)])
    # The rewrite left the delete files of the old data files behind; the next compaction drops
    # them (one more small file, so there is something to compact in either case).
    assert int(table.snapshot_by_name("acme").summary.additional_properties["total-delete-files"]) > 0
    more = versioned(2, [(5, "c")])
    assert run_target(tmp_path, [*more[:-2], more[-1]], **config).returncode == 0  # no ACTIVATE_VERSION
    table.refresh()
    assert compact(table, "acme", 128 << 20, EventLog("acme", "test", [])) is not None
    table.refresh()
    assert table.snapshot_by_name("acme").summary.additional_properties["total-delete-files"] == "0"
    assert duckdb_rows(table, "acme", query) == sorted([*duck, (5, "c", 2, False)])


def test_an_overwrite_drops_the_delete_files_of_the_rows_it_replaces(tmp_path: Path) -> None:
    _run(tmp_path, _rows(range(10), "a"), 1)
    _run(tmp_path, _rows([1, 2], "b"), 2)
    assert _head_summary(tmp_path)["total-position-deletes"] == "2"
    messages = [schema_msg("items", PROPS, ["id"]), *[record("items", **r) for r in _rows([5, 6], "c")]]
    run = run_target(
        tmp_path, [*messages, state({"n": 3})], load_method="overwrite", add_record_metadata=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert _landed(tmp_path) == [(5, "eu", "c5"), (6, "eu", "c6")]
    summary = _head_summary(tmp_path)
    # no delete file left pointing at the replaced data files: the live row count adds up
    assert (summary["total-records"], summary["total-position-deletes"], summary["total-delete-files"]) == (
        "2",
        "0",
        "0",
    )
