"""Maintenance racing a writer on one table and branch, on PostgreSQL and the SeaweedFS REST catalog.

A target process commits small batches (many small files, expiry as it goes) while this process
compacts and expires the same branch in a loop. Whoever loses a commit race redoes its work on the
new head (or the maintenance skips with an event): every record lands exactly once, the writer exits
0 with its last STATE, and pyiceberg and DuckDB read the same rows.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from helpers import Run, record, run_target, schema_msg, singer_lines, start_target, state, target_config
from test_hardening_concurrency import backend_for

from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.cleanup import list_orphans, remove_orphans
from target_dativo_iceberg.iceberg.compaction import compact
from target_dativo_iceberg.iceberg.maintenance import expire_old_snapshots
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

pytest_plugins = ["servers"]

PROPS = {"id": {"type": "integer"}, "region": {"type": "string"}}
ROWS = 300


def _messages(ids: range) -> list[dict]:
    out = [schema_msg("ticks", PROPS)]
    for i in ids:
        out += [record("ticks", id=i, region="eu" if i % 2 else "us"), state({"pos": i})]
    return out


@pytest.mark.parametrize("backend_name", ["postgres", "rest"])
def test_maintenance_racing_a_writer_loses_and_duplicates_nothing(
    tmp_path: Path, backend_name: str, request: pytest.FixtureRequest
) -> None:
    backend = backend_for(backend_name, request)
    settings = {**backend.settings, "partitioning": ["region"], "auto_compact_min_files": 0}
    seed = run_target(tmp_path, _messages(range(1, 41)), batch_size_rows=4, **settings)
    assert seed.returncode == 0, seed.stderr[-3000:]

    config = tmp_path / "target.json"
    config.write_text(json.dumps(target_config(tmp_path, **settings, batch_size_rows=3, max_snapshots=5)))
    writer = start_target(config, tmp_path)
    result: dict[str, Run] = {}

    def feed() -> None:
        out, err = writer.communicate(singer_lines(_messages(range(41, ROWS + 1))), timeout=600)
        result["run"] = Run(writer.returncode, out, err)

    feeding = threading.Thread(target=feed)
    feeding.start()
    table = backend.open_catalog(tmp_path).load_table("acme.ticks")
    events = EventLog("acme", "maintain", [], stream=io.StringIO())
    compactions = expiries = 0
    while feeding.is_alive():
        if compact(table, "acme", 128 * 1024 * 1024, events, min_files=2) is not None:
            compactions += 1
        expiries += bool(expire_old_snapshots(table, 5, slack=1))
    feeding.join()

    run = result["run"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.states[-1] == {"pos": ROWS}
    assert sum(e["records"] for e in run.events("commit_success")) == ROWS - 40
    assert compactions + expiries > 0
    table = backend.open_catalog(tmp_path).load_table("acme.ticks")
    expected = [(i, "eu" if i % 2 else "us") for i in range(1, ROWS + 1)]
    assert sorted((r["id"], r["region"]) for r in pyiceberg_rows(table, "acme")) == expected
    con = backend.duckdb()
    assert duckdb_rows(table, "acme", "SELECT id, region FROM t ORDER BY id", con) == expected
    # Maintenance after the race still finds the committed state and compacts what is left.
    compact(table, "acme", 128 * 1024 * 1024, events, min_files=2)
    table = backend.open_catalog(tmp_path).load_table("acme.ticks")
    assert sorted((r["id"], r["region"]) for r in pyiceberg_rows(table, "acme")) == expected
    files = table.inspect.files(snapshot_id=table.snapshot_by_name("acme").snapshot_id).to_pylist()
    assert len(files) == 2
    # With every writer done, a zero safety window removes whatever nothing references (listed
    # through the table's FileIO: local for PostgreSQL, S3 for REST), and the rows stay readable.
    remove_orphans(table, 0.0)
    assert list_orphans(table) == []
    table = backend.open_catalog(tmp_path).load_table("acme.ticks")
    assert duckdb_rows(table, "acme", "SELECT id, region FROM t ORDER BY id", con) == expected
    assert sorted((r["id"], r["region"]) for r in pyiceberg_rows(table, "acme")) == expected
