"""Row operations (`iceberg/rows.py`) on a real table in a SQLite catalog: upsert's last record
wins, deletion records, ACTIVATE_VERSION retiring older versions — read back by pyiceberg and DuckDB."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from helpers import open_catalog
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

from target_dativo_iceberg.iceberg.keydeletes import delete_keys
from target_dativo_iceberg.iceberg.rows import dedupe_last, retire_versions, split_deletions
from target_dativo_iceberg.iceberg.writer import append_table
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

UTC = datetime.timezone.utc
BRANCH = "acme"
SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "region", StringType(), required=False),
    NestedField(3, "name", StringType(), required=False),
    NestedField(4, "_sdc_deleted_at", TimestamptzType(), required=False),
    NestedField(5, "_sdc_table_version", LongType(), required=False),
)
EMPTY = {"region": "eu", "name": None, "_sdc_deleted_at": None, "_sdc_table_version": None}
DELETED = datetime.datetime(2025, 6, 1, tzinfo=UTC)
PROPS = {"dativo.commit-id": "test-commit"}


def _arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows in the table's Arrow schema; columns a row leaves out take `EMPTY`'s values."""
    return pa.Table.from_pylist([{**EMPTY, **row} for row in rows], schema=SCHEMA.as_arrow())


def _table(root: Path, rows: list[dict[str, Any]]) -> Table:
    """`acme.items` with an empty snapshot on main (as the target creates tables) and `rows` on
    the `acme` branch cut from it."""
    catalog = open_catalog(root)
    catalog.create_namespace("acme")
    table = catalog.create_table("acme.items", SCHEMA)
    table.append(_arrow([]))
    table.manage_snapshots().create_branch(table.metadata.current_snapshot_id, BRANCH).commit()
    if rows:
        table.append(_arrow(rows), branch=BRANCH)
    return table


def _landed(table: Table, branch: str = BRANCH) -> list[tuple]:
    """(id, region, name, deleted?, version) on the branch, sorted; both readers must agree."""
    table.refresh()
    rows = sorted(
        (r["id"], r["region"], r["name"], r["_sdc_deleted_at"] is not None, r["_sdc_table_version"])
        for r in pyiceberg_rows(table, branch)
    )
    query = "SELECT id, region, name, _sdc_deleted_at IS NOT NULL, _sdc_table_version FROM t"
    assert sorted(duckdb_rows(table, branch, query)) == rows
    return rows


def _ids(data: pa.Table) -> list[tuple]:
    return list(zip(data.column("id").to_pylist(), data.column("name").to_pylist(), strict=True))


# --------------------------------------------------------------------------- dedupe_last


def test_dedupe_keeps_the_last_record_of_each_key_in_order_of_those_last_records() -> None:
    data = _arrow(
        [
            {"id": 1, "name": "a1"},
            {"id": 2, "name": "b1"},
            {"id": 1, "name": "a2"},
            {"id": 3, "name": "c1"},
            {"id": 2, "name": "b2"},
        ]
    )
    assert _ids(dedupe_last(data, ["id"])) == [(1, "a2"), (3, "c1"), (2, "b2")]


def test_dedupe_on_a_composite_key_keeps_rows_differing_in_one_part() -> None:
    data = _arrow(
        [
            {"id": 1, "region": "eu", "name": "eu-old"},
            {"id": 1, "region": "us", "name": "us"},
            {"id": 1, "region": "eu", "name": "eu-new"},
        ]
    )
    kept = dedupe_last(data, ["id", "region"])
    regions = kept.column("region").to_pylist()
    assert list(zip(regions, kept.column("name").to_pylist(), strict=True)) == [
        ("us", "us"),
        ("eu", "eu-new"),
    ]


def test_dedupe_returns_a_batch_without_duplicates_unchanged() -> None:
    data = _arrow([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    assert dedupe_last(data, ["id"]) is data
    single = _arrow([{"id": 1}])
    assert dedupe_last(single, ["id"]) is single


# --------------------------------------------------------------------------- split_deletions


def _commit(table: Table, batch: pa.Table, keys: list[str]) -> pa.Table:
    """One transaction as the committer runs it: position deletes for the deleted keys, and the rows
    the deletions leave appended, in one snapshot."""
    kept, deleted = split_deletions(batch, keys)
    with table.transaction() as tx:
        assert deleted is not None
        deletes = delete_keys(tx.table_metadata, table.io, BRANCH, deleted)
        append_table(tx, table.io, kept, dict(PROPS), BRANCH, 1 << 27, deletes.delete_files)
    return kept


def test_deletion_records_delete_committed_rows_and_earlier_rows_of_the_batch(tmp_path: Path) -> None:
    table = _table(tmp_path, [{"id": 1, "name": "n1"}, {"id": 2, "name": "n2"}, {"id": 3, "name": "n3"}])
    batch = _arrow(
        [
            {"id": 2, "name": "n2", "_sdc_deleted_at": DELETED},  # deletes the committed row
            {"id": 4, "name": "n4"},
            {"id": 4, "name": "n4", "_sdc_deleted_at": DELETED},  # inserted and deleted in the batch
            {"id": 5, "name": "gone"},
            {"id": 5, "name": None, "_sdc_deleted_at": DELETED},
            {"id": 5, "name": "back"},  # re-inserted after its deletion: lands
            {"id": 6, "name": "n6"},
        ]
    )
    kept = _commit(table, batch, ["id"])
    assert _ids(kept) == [(5, "back"), (6, "n6")]  # no deletion record itself lands
    assert _landed(table) == [
        (1, "eu", "n1", False, None),
        (3, "eu", "n3", False, None),
        (5, "eu", "back", False, None),
        (6, "eu", "n6", False, None),
    ]
    assert _landed(table, "main") == []  # only the branch changed
    head = table.snapshot_by_name(BRANCH)
    assert head.summary.additional_properties["dativo.commit-id"] == "test-commit"


def test_deletion_matches_the_whole_composite_key(tmp_path: Path) -> None:
    table = _table(tmp_path, [{"id": 1, "region": "eu", "name": "a"}, {"id": 1, "region": "us", "name": "b"}])
    _commit(table, _arrow([{"id": 1, "region": "us", "_sdc_deleted_at": DELETED}]), ["id", "region"])
    assert _landed(table) == [(1, "eu", "a", False, None)]


def test_a_batch_without_deletion_records_is_returned_as_is_and_deletes_nothing() -> None:
    batch = _arrow([{"id": 1, "name": "a again"}])
    kept, deleted = split_deletions(batch, ["id"])
    assert kept is batch and deleted is None


# --------------------------------------------------------------------------- retire_versions

VERSIONED = [
    {"id": 1, "name": "v1 live", "_sdc_table_version": 1},
    {"id": 2, "name": "v1 deleted earlier", "_sdc_table_version": 1, "_sdc_deleted_at": DELETED},
    {"id": 3, "name": "no version", "_sdc_table_version": None},
    {"id": 4, "name": "v2", "_sdc_table_version": 2},
    {"id": 5, "name": "v3", "_sdc_table_version": 3},
]


def test_hard_retire_deletes_rows_of_older_and_unknown_versions(tmp_path: Path) -> None:
    table = _table(tmp_path, VERSIONED)
    retire_versions(table, BRANCH, 2, hard=True, summary=dict(PROPS))
    assert _landed(table) == [(4, "eu", "v2", False, 2), (5, "eu", "v3", False, 3)]
    assert table.snapshot_by_name(BRANCH).summary.additional_properties["dativo.commit-id"] == "test-commit"
    assert _landed(table, "main") == []


def test_soft_retire_marks_live_rows_of_older_versions_deleted_and_keeps_earlier_marks(
    tmp_path: Path,
) -> None:
    table = _table(tmp_path, VERSIONED)
    started = datetime.datetime.now(UTC)
    retire_versions(table, BRANCH, 2, hard=False, summary=dict(PROPS))
    assert _landed(table) == [
        (1, "eu", "v1 live", True, 1),
        (2, "eu", "v1 deleted earlier", True, 1),
        (3, "eu", "no version", True, None),
        (4, "eu", "v2", False, 2),
        (5, "eu", "v3", False, 3),
    ]
    marks = {r["id"]: r["_sdc_deleted_at"] for r in pyiceberg_rows(table, BRANCH)}
    assert marks[2] == DELETED  # an earlier deletion keeps its time
    assert marks[1] == marks[3] and marks[1] >= started  # the retired rows: marked now, all at once
    assert table.snapshot_by_name(BRANCH).summary.additional_properties["dativo.commit-id"] == "test-commit"


@pytest.mark.parametrize("hard", [False, True])
def test_retire_with_nothing_older_commits_nothing(tmp_path: Path, hard: bool) -> None:
    table = _table(tmp_path, [{"id": 1, "name": "v2", "_sdc_table_version": 2}])
    before = table.snapshot_by_name(BRANCH).snapshot_id
    retire_versions(table, BRANCH, 2, hard=hard, summary=dict(PROPS))
    table.refresh()
    assert table.snapshot_by_name(BRANCH).snapshot_id == before
    assert _landed(table) == [(1, "eu", "v2", False, 2)]


def test_soft_retire_on_a_branch_without_commits_does_nothing(tmp_path: Path) -> None:
    table = _table(tmp_path, [])
    retire_versions(table, "never-written", 2, hard=False, summary=dict(PROPS))
    table.refresh()
    assert "never-written" not in table.metadata.refs
