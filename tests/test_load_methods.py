"""load_method: upsert (delete-by-key + append in one transaction, last record wins) and overwrite
(content replaced atomically when the stream ends; STATE held back until then)."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import open_catalog, record, run_target, schema_msg, state, target_config
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType

from target_dativo_iceberg.errors import CommitError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg import staging
from target_dativo_iceberg.iceberg.committer import Committer, TableSpec
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows
from target_dativo_iceberg.settings import Settings

PROPS = {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}


def msgs(
    *pairs: tuple[int, str], props: dict | None = None, bookmark: int = 1, **extra: object
) -> list[dict]:
    return [
        schema_msg("items", props or PROPS, ["id"]),
        *[record("items", id=i, v=v, **extra) for i, v in pairs],
        state({"bookmarks": {"items": {"n": bookmark}}}),
    ]


def landed(root: Path, query: str = "SELECT id, v FROM t ORDER BY id") -> list[tuple]:
    table = open_catalog(root).load_table("acme.items")
    duck = duckdb_rows(table, "acme", query)
    py = sorted((r["id"], r["v"]) for r in pyiceberg_rows(table, "acme"))
    if query.startswith("SELECT id, v FROM"):
        assert duck == py
    return duck


def test_upsert_updates_by_key_last_record_wins(tmp_path: Path) -> None:
    run = run_target(tmp_path, msgs((1, "a"), (2, "b"), (3, "c")), load_method="upsert")
    assert run.returncode == 0, run.stderr
    assert "did not match any records" not in run.stderr  # new keys: deleting nothing is normal
    run = run_target(tmp_path, msgs((2, "b1"), (4, "d"), (2, "b2"), bookmark=2), load_method="upsert")
    assert run.returncode == 0, run.stderr
    assert run.states == [{"bookmarks": {"items": {"n": 2}}}]
    assert landed(tmp_path) == [(1, "a"), (2, "b2"), (3, "c"), (4, "d")]
    # After schema evolution (pyiceberg 0.12's own upsert() fails here) upserts keep working.
    props = {**PROPS, "extra": {"type": ["integer", "null"]}}
    run = run_target(
        tmp_path, msgs((3, "c2"), (5, "e"), props=props, bookmark=3, extra=7), load_method="upsert"
    )
    assert run.returncode == 0, run.stderr
    assert landed(tmp_path, "SELECT id, v, extra FROM t ORDER BY id") == [
        (1, "a", None), (2, "b2", None), (3, "c2", 7), (4, "d", None), (5, "e", 7),
    ]  # fmt: skip
    table = open_catalog(tmp_path).load_table("acme.items")
    assert duckdb_rows(table, "main", "SELECT count(*) FROM t") == [(0,)]


def test_upsert_across_batches_in_one_run(tmp_path: Path) -> None:
    run = run_target(
        tmp_path,
        msgs((1, "a"), (2, "b"), (1, "a2"), (3, "c"), (2, "b2")),
        load_method="upsert",
        batch_size_rows=2,
    )
    assert run.returncode == 0, run.stderr
    assert landed(tmp_path) == [(1, "a2"), (2, "b2"), (3, "c")]


def test_upsert_needs_keys(tmp_path: Path) -> None:
    messages = [schema_msg("items", PROPS, []), record("items", id=1, v="a")]
    run = run_target(tmp_path, messages, load_method="upsert")
    assert run.returncode == 2
    assert "load_method upsert needs key_properties" in run.stderr


def test_overwrite_replaces_content_at_end_of_stream(tmp_path: Path) -> None:
    assert run_target(tmp_path, msgs(*[(i, f"old{i}") for i in range(1, 6)])).returncode == 0
    run = run_target(
        tmp_path,
        [
            schema_msg("items", PROPS, ["id"]),
            record("items", id=10, v="new"),
            state({"s": 1}),
            record("items", id=11, v="new"),
            state({"s": 2}),
            record("items", id=12, v="new"),
            state({"s": 3}),
        ],
        load_method="overwrite",
        batch_size_rows=1,
    )
    assert run.returncode == 0, run.stderr
    # Three commits landed on the staging branch, but STATE is printed only after the swap.
    assert len(run.events("commit_success")) == 3
    assert run.states == [{"s": 3}]
    names = [e["event"] for e in run.events()]
    assert names.index("overwrite_published") < names.index("state_emitted")
    assert landed(tmp_path) == [(10, "new"), (11, "new"), (12, "new")]
    table = open_catalog(tmp_path).load_table("acme.items")
    assert set(table.metadata.refs) == {"main", "acme"}  # staging branch removed


def test_failed_overwrite_leaves_content_untouched(tmp_path: Path) -> None:
    assert run_target(tmp_path, msgs((1, "old"), (2, "old"))).returncode == 0
    bad = [
        schema_msg("items", PROPS, ["id"]),
        record("items", id=10, v="new"),
        record("items", id=2**70, v="x"),
    ]
    run = run_target(tmp_path, bad, load_method="overwrite", batch_size_rows=1, validate_records=False)
    assert run.returncode == 2
    assert run.states == []
    assert landed(tmp_path) == [(1, "old"), (2, "old")]


# --------------------------------------------------------------------------- the publish step, in-process

ITEMS = Schema(NestedField(1, "id", LongType()), NestedField(2, "v", StringType()))


def staged(root: Path) -> tuple[Committer, int]:
    """A table whose branch `acme` holds (1, old) and whose staging branch, cut from it, holds (2, new)."""
    settings = Settings.from_config(target_config(root))
    committer = Committer(settings, EventLog("acme", "run", [], stream=io.StringIO()))
    table = committer.ensure_table("items", ("acme", "items"), TableSpec(ITEMS))
    rows = pa.Table.from_pylist([{"id": 1, "v": "old"}], schema=table.schema().as_arrow())
    staging.ensure_branch(table, "acme")
    table.append(rows, branch="acme")
    head = staging.create_branch_from(table, "staging", "acme")
    table.append(pa.Table.from_pylist([{"id": 2, "v": "new"}], schema=rows.schema), branch="staging")
    return committer, head


def test_replace_branch_points_the_branch_at_staging_and_drops_it_in_one_commit(tmp_path: Path) -> None:
    committer, head = staged(tmp_path)
    table = open_catalog(tmp_path).load_table("acme.items")
    staging_head = table.snapshot_by_name("staging").snapshot_id
    metadata_files = len(table.metadata.metadata_log)

    assert staging.replace_branch(table, "acme", "staging", head) == staging_head

    table = open_catalog(tmp_path).load_table("acme.items")
    assert set(table.metadata.refs) == {"main", "acme"}
    assert table.snapshot_by_name("acme").snapshot_id == staging_head
    assert len(table.metadata.metadata_log) == metadata_files + 1  # one catalog commit
    assert landed(tmp_path) == [(1, "old"), (2, "new")]


def test_replace_branch_refuses_when_the_branch_moved(tmp_path: Path) -> None:
    committer, head = staged(tmp_path)
    table = open_catalog(tmp_path).load_table("acme.items")
    table.append(pa.Table.from_pylist([{"id": 3, "v": "theirs"}], schema=ITEMS.as_arrow()), branch="acme")
    moved = table.snapshot_by_name("acme").snapshot_id

    with pytest.raises(CommitError, match="branch 'acme' moved during the run"):
        staging.replace_branch(table, "acme", "staging", head)

    table = open_catalog(tmp_path).load_table("acme.items")
    assert table.snapshot_by_name("acme").snapshot_id == moved
    assert "staging" in table.metadata.refs
