"""Snapshot expiry keeps metadata bounded without breaking branch ancestry, markers or data."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import BIN, open_catalog, record, run_target, schema_msg, state

from target_dativo_iceberg.iceberg.markers import committed_state
from target_dativo_iceberg.ops.readback import duckdb_rows

PROPS = {"id": {"type": "integer"}}


def test_many_commits_are_expired_and_branch_still_publishes(tmp_path: Path) -> None:
    n = 60
    messages = [schema_msg("ticks", PROPS)]
    for i in range(1, n + 1):
        messages += [record("ticks", id=i), state({"pos": i})]
    run = run_target(tmp_path, messages, batch_size_rows=1, max_snapshots=10)
    assert run.returncode == 0, run.stderr
    assert run.events("snapshots_expired")
    table = open_catalog(tmp_path).load_table("acme.ticks")
    # The unpublished branch is expired too; its fork point and a link to it are kept, so publish
    # still proves main is its ancestor ...
    assert len(table.metadata.snapshots) <= 10 + 20 + 2
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t") == [(n, n)]
    out = subprocess.run(
        [str(BIN / "dativo"), "branch", "publish", "--config", str(tmp_path / "target.json")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # ... and later commits keep both histories bounded.
    more = [schema_msg("ticks", PROPS)]
    for i in range(n + 1, n + 41):
        more += [record("ticks", id=i), state({"pos": i})]
    run = run_target(tmp_path, more, batch_size_rows=1, max_snapshots=10)
    assert run.returncode == 0, run.stderr
    assert run.events("snapshots_expired")
    table = open_catalog(tmp_path).load_table("acme.ticks")
    assert len(table.metadata.snapshots) <= 10 + 20 + 41
    assert len(table.metadata.snapshots) < n + 40
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t") == [(n + 40, n + 40)]
    assert duckdb_rows(table, "main", "SELECT count(*) FROM t") == [(n,)]
    # The last printed STATE (100, right behind the last record) is the committed one.
    assert committed_state(table, "acme").state == run.states[-1] == {"pos": n + 40}
    diff = subprocess.run(
        [str(BIN / "dativo"), "branch", "diff", "--config", str(tmp_path / "target.json")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert "fast-forward possible" in diff.stdout
