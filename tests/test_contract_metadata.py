"""Contract streams with `add_record_metadata` on the columnar path land what the record path lands.

The SDK adds the `_sdc_*` columns to every record; on the columnar path they are built as Arrow
columns. Each case runs the target twice on the same input — columnar (the default) and per record
(`hot_path: false`) — and compares the rows read back with pyiceberg and DuckDB. The columns the SDK
fills with the time of arrival (`_sdc_received_at`, `_sdc_batched_at`, `_sdc_sequence`,
`_sdc_sync_started_at`) differ between runs: they must be filled, with the same types.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import lab_contracts, open_catalog, record, run_target, schema_msg, state

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

TIMED = ("_sdc_received_at", "_sdc_batched_at", "_sdc_sequence", "_sdc_sync_started_at")
PROPS = {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}


def _messages(n: int, bad: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    out = [schema_msg("items", PROPS, ["id"])]
    for i in range(1, n + 1):
        message = record("items", id=i, v=f"v{i}" if i % 5 else None)
        if i in bad:
            message["record"]["id"] = None  # parsed by Arrow, refused by the contract
        if i % 3:
            message["time_extracted"] = f"2025-05-01T10:{i % 60:02d}:00+02:00"
        if i % 2:
            message["version"] = 7
        if i % 11 == 0:
            message["record"]["_sdc_deleted_at"] = "2025-05-02T00:00:00Z"
        out.append(message)
        if i % 40 == 0:
            out.append(state({"n": i}))
    return [*out, state({"n": n})]


def _landed(root: Path, messages: list[dict[str, Any]], **config: Any) -> tuple[Any, list, list, Any]:
    root.mkdir(parents=True)
    run = run_target(
        root, messages, assets=lab_contracts(root, ["items"]), add_record_metadata=True, **config
    )
    table = open_catalog(root).load_table("acme__lab.items")
    rows = sorted(pyiceberg_rows(table, "acme"), key=lambda r: r["id"])
    query = f"SELECT * EXCLUDE ({', '.join(TIMED)}) FROM t ORDER BY id"
    return run, rows, duckdb_rows(table, "acme", query), table.schema()


def _same_apart_from_arrival_times(fast: list[dict], slow: list[dict]) -> None:
    assert [{k: v for k, v in r.items() if k not in TIMED} for r in fast] == [
        {k: v for k, v in r.items() if k not in TIMED} for r in slow
    ]
    for row in fast + slow:
        assert isinstance(row["_sdc_received_at"], datetime.datetime) and row["_sdc_received_at"].tzinfo
        assert isinstance(row["_sdc_batched_at"], datetime.datetime) and row["_sdc_batched_at"].tzinfo
        assert isinstance(row["_sdc_sequence"], int) and isinstance(row["_sdc_sync_started_at"], int)


def test_contract_stream_with_record_metadata_takes_the_columnar_path(tmp_path: Path) -> None:
    fast, fast_rows, fast_duck, fast_schema = _landed(tmp_path / "columnar", _messages(200))
    slow, slow_rows, slow_duck, slow_schema = _landed(tmp_path / "record", _messages(200), hot_path=False)
    assert fast.returncode == slow.returncode == 0, fast.stderr[-3000:]
    assert [e["path"] for e in fast.events("record_path")] == ["hot"]
    assert {e["path"] for e in fast.events("batch_written")} == {"hot"}
    assert fast.states == slow.states
    assert fast_schema == slow_schema
    assert len(fast_rows) == 200
    _same_apart_from_arrival_times(fast_rows, slow_rows)
    assert fast_duck == slow_duck
    row = fast_rows[0]  # id 1: extracted at 10:01+02:00, version 7
    assert row["_sdc_extracted_at"] == datetime.datetime(2025, 5, 1, 8, 1, tzinfo=datetime.timezone.utc)
    assert row["_sdc_table_version"] == 7 and row["_sdc_deleted_at"] is None
    assert fast_rows[2]["_sdc_extracted_at"] is None and fast_rows[1]["_sdc_table_version"] is None
    assert fast_rows[10]["_sdc_deleted_at"] == datetime.datetime(2025, 5, 2, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("mode", ["warn", "strict"])
def test_a_batch_taking_the_record_path_keeps_the_metadata(tmp_path: Path, mode: str) -> None:
    """A contract violation sends the batch to the record path: its rows keep the `_sdc_*` values
    they got on arrival (the warn mode's `__rejected` rows aside)."""
    messages = _messages(120, bad=frozenset({50}))
    config = {"schema_validation_mode": mode, "batch_size_rows": 40}
    fast, fast_rows, fast_duck, _ = _landed(tmp_path / "columnar", messages, **config)
    slow, slow_rows, slow_duck, _ = _landed(tmp_path / "record", messages, **config, hot_path=False)
    assert fast.returncode == slow.returncode == (1 if mode == "warn" else 2)
    assert fast.states == slow.states
    _same_apart_from_arrival_times(fast_rows, slow_rows)
    assert fast_duck == slow_duck
    assert len(fast_rows) == (119 if mode == "warn" else 40)
    if mode == "warn":
        assert _rejected(tmp_path / "columnar") == _rejected(tmp_path / "record")


def _rejected(root: Path) -> list[dict[str, Any]]:
    """The `__rejected` records (their `_sdc_*` values of arrival time: filled) and reasons."""
    out = []
    for row in pyiceberg_rows(open_catalog(root).load_table("acme__lab.items__rejected"), "acme"):
        data = json.loads(row["_record"])
        assert all(data.get(name) is not None for name in TIMED), data
        out.append(({k: v for k, v in data.items() if k not in TIMED}, row["_errors"]))
    return out
