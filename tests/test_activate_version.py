"""ACTIVATE_VERSION: after a full re-sync at a new table version, rows of older versions are marked
deleted (`_sdc_deleted_at`) or, with `hard_delete`, removed."""

from __future__ import annotations

from pathlib import Path

from helpers import open_catalog, run_target, schema_msg, state

from target_dativo_iceberg.ops.readback import duckdb_rows

PROPS = {"id": {"type": "integer"}}


def versioned(version: int, ids: list[int]) -> list[dict]:
    return [
        schema_msg("snap", PROPS, ["id"]),
        *[{"type": "RECORD", "stream": "snap", "record": {"id": i}, "version": version} for i in ids],
        {"type": "ACTIVATE_VERSION", "stream": "snap", "version": version},
        state({"v": version}),
    ]


def test_soft_delete_marks_old_version_rows(tmp_path: Path) -> None:
    # append-only: both versions' rows stay (a keyed stream upserts by default: version 2 would replace 2, 3)
    config = {"add_record_metadata": True, "load_method": "append-only"}
    assert run_target(tmp_path, versioned(1, [1, 2, 3]), **config).returncode == 0
    run = run_target(tmp_path, versioned(2, [2, 3, 4]), **config)
    assert run.returncode == 0, run.stderr
    assert run.events("version_activated")
    table = open_catalog(tmp_path).load_table("acme.snap")
    rows = duckdb_rows(
        table,
        "acme",
        "SELECT id, _sdc_table_version, _sdc_deleted_at IS NOT NULL FROM t ORDER BY _sdc_table_version, id",
    )
    assert rows == [(1, 1, True), (2, 1, True), (3, 1, True), (2, 2, False), (3, 2, False), (4, 2, False)]


def test_hard_delete_removes_old_version_rows(tmp_path: Path) -> None:
    assert (
        run_target(tmp_path, versioned(1, [1, 2, 3]), add_record_metadata=True, hard_delete=True).returncode
        == 0
    )
    run = run_target(tmp_path, versioned(2, [2, 4]), add_record_metadata=True, hard_delete=True)
    assert run.returncode == 0, run.stderr
    table = open_catalog(tmp_path).load_table("acme.snap")
    assert duckdb_rows(table, "acme", "SELECT id, _sdc_table_version FROM t ORDER BY id") == [(2, 2), (4, 2)]
