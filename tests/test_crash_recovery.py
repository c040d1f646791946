"""Crash recovery: SIGKILL the target before, during and after commits of a multi-batch load, rerun
with the state Meltano would have persisted (the last STATE line the target printed), and check the
table holds exactly the source rows: no loss, no duplicates (append with a deterministic tap, upsert)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import crash_pipeline, open_catalog, target_config

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

RECORDS = 70  # batch_size_rows 10 → 7 data commits and 7 printed STATEs per clean run; STATE every 7 records

# 21 kill points for append: before a commit, right after it (STATE not yet printed), after the STATE.
APPEND_POINTS = [
    f"{point}:{n}" for point in ("before_commit", "after_commit", "after_state") for n in range(1, 8)
]
UPSERT_POINTS = [
    "before_commit:2",
    "after_commit:1",
    "after_commit:3",
    "after_commit:6",
    "after_state:2",
    "after_state:5",
]


def pipeline(root: Path, state: dict | None, fault: str | None, load_method: str) -> tuple[int, list[dict]]:
    """tap | target with the given input state; returns the target's exit code and STATE lines."""
    settings = target_config(root, batch_size_rows=10, load_method=load_method)
    target = crash_pipeline(root, settings, ["--records", str(RECORDS)], state, fault)
    states = [json.loads(line) for line in target.stdout.splitlines() if line.strip()]
    return target.returncode, states


@pytest.mark.parametrize(
    ("load_method", "fault"),
    [("append-only", p) for p in APPEND_POINTS] + [("upsert", p) for p in UPSERT_POINTS],
)
def test_kill_and_rerun_lands_exactly_the_source(tmp_path: Path, load_method: str, fault: str) -> None:
    code, states = pipeline(tmp_path, None, fault, load_method)
    assert code == -9, f"the fault {fault} was not reached (exit {code})"
    persisted = states[-1] if states else None  # what Meltano would have saved
    code, _ = pipeline(tmp_path, persisted, None, load_method)
    assert code == 0
    table = open_catalog(tmp_path).load_table("acme.items")
    ids = sorted(r["id"] for r in pyiceberg_rows(table, "acme"))
    assert ids == list(range(1, RECORDS + 1)), (
        f"lost {set(range(1, RECORDS + 1)) - set(ids)}, duplicates {len(ids) - len(set(ids))}"
    )
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id), min(v), max(id) FROM t") == [
        (RECORDS, RECORDS, "value-1", RECORDS)
    ]


def test_rereading_the_same_leading_records_is_not_taken_for_a_replay(tmp_path: Path) -> None:
    """A modified file read again in full starts with the records the last run committed; it is a
    new run (its STATE differs, more records follow), so every record lands (append-only: counted)."""
    from helpers import record, run_target, schema_msg, state

    schema = schema_msg("items", {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}, ["id"])
    first = [schema, record("items", id=1, v="a"), record("items", id=2, v="b"), state({"mtime": 1})]
    assert run_target(tmp_path, first, load_method="append-only").returncode == 0
    second = [
        schema,
        record("items", id=1, v="a"),
        record("items", id=2, v="b"),
        record("items", id=3, v="c"),
        state({"mtime": 2}),
    ]
    run = run_target(tmp_path, second, load_method="append-only")
    assert run.returncode == 0, run.stderr
    assert not run.events("replay_skipped")
    table = open_catalog(tmp_path).load_table("acme.items")
    assert duckdb_rows(table, "acme", "SELECT id FROM t ORDER BY id") == [(1,), (1,), (2,), (2,), (3,)]
    # Same records but a different STATE after them: also a new run.
    third = [schema, record("items", id=1, v="a"), record("items", id=2, v="b"), state({"mtime": 3})]
    assert run_target(tmp_path, third, load_method="append-only").returncode == 0
    assert duckdb_rows(table.refresh(), "acme", "SELECT count(*) FROM t") == [(7,)]
