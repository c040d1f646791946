"""Deletion records (`_sdc_deleted_at` set by a log-based tap) with `hard_delete`: rows are deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import open_catalog, record, run_target, schema_msg, state

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}
DELETED = "2025-06-01T00:00:00Z"


def _run(root: Path, rows: list[dict[str, Any]], **config: Any) -> None:
    messages = [schema_msg("items", PROPS, ["id"])]
    messages += [record("items", **row) for row in rows]
    messages.append(state({"bookmarks": {"items": {"n": len(rows)}}}))
    run = run_target(root, messages, add_record_metadata=True, **config)
    assert run.returncode == 0, run.stderr[-3000:]


def _landed(root: Path) -> list[tuple[int, str | None]]:
    table = open_catalog(root).load_table("acme.items")
    rows = sorted((r["id"], r["name"]) for r in pyiceberg_rows(table, "acme"))
    assert sorted(duckdb_rows(table, "acme", "SELECT id, name FROM t")) == rows
    return rows


@pytest.mark.parametrize("load_method", ["append-only", "upsert"])
def test_deletion_records_delete_rows_with_hard_delete(tmp_path: Path, load_method: str) -> None:
    base = {"hard_delete": True, "load_method": load_method}
    _run(tmp_path, [{"id": i, "name": f"n{i}"} for i in (1, 2, 3)], **base)
    _run(
        tmp_path,
        [
            {"id": 2, "name": "n2", "_sdc_deleted_at": DELETED},  # deletes the committed row
            {"id": 4, "name": "n4"},
            {"id": 4, "name": "n4", "_sdc_deleted_at": DELETED},  # deleted within the batch
            {"id": 5, "name": "gone"},
            {"id": 5, "name": None, "_sdc_deleted_at": DELETED},
            {"id": 5, "name": "back"},  # re-inserted after its deletion: the last record wins
        ],
        **base,
    )
    assert _landed(tmp_path) == [(1, "n1"), (3, "n3"), (5, "back")]


def test_without_hard_delete_deletion_records_land_as_marked_rows(tmp_path: Path) -> None:
    records = [{"id": 1, "name": "a"}, {"id": 1, "name": "a", "_sdc_deleted_at": DELETED}]
    _run(tmp_path, records, load_method="append-only")  # upsert (the keyed default) keeps the last one
    table = open_catalog(tmp_path).load_table("acme.items")
    marked = [r["_sdc_deleted_at"] is not None for r in pyiceberg_rows(table, "acme")]
    assert sorted(marked) == [False, True]
