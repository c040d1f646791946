"""Eight concurrent writers on one shared catalog (PostgreSQL, SeaweedFS REST): no commit lost, no row twice.

Scaling out means many `meltano run`s on many machines committing to one catalog. Here eight target
processes start together; each appends its own shard of keys to one shared table (`events`: every
commit races the seven others for the branch head) and writes a table of its own (`own_<w>`: commits
to separate tables must not disturb each other). Their input is closed only when all are ready, so
the commits collide. Conflicts are retried with jittered backoff (iceberg/conflicts.py); every writer
exits 0, prints the STATE of its shard, and every row is read back exactly once by pyiceberg and DuckDB.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import record, run_target, schema_msg, singer_lines, state
from test_hardening_concurrency import backend_for, commits_on_branch, run_together

from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

pytest_plugins = ["servers"]

WRITERS = 8
SHARD_ROWS = 25
ITEMS = {"id": {"type": "integer"}, "shard": {"type": "integer"}}


def shard_ids(w: int) -> range:
    return range(w * SHARD_ROWS, (w + 1) * SHARD_ROWS)


def writer_messages(w: int) -> list[dict[str, Any]]:
    own = f"own_{w}"
    return [
        schema_msg("events", ITEMS),
        schema_msg(own, ITEMS),
        *[record("events", id=i, shard=w) for i in shard_ids(w)],
        *[record(own, id=i, shard=w) for i in range(w + 1)],
        state({"bookmarks": {"events": {"shard": w}, own: {"shard": w}}}),
    ]


@pytest.mark.parametrize("backend_name", ["postgres", "rest"])
def test_eight_writers_lose_nothing_and_duplicate_nothing(
    tmp_path: Path, backend_name: str, request: pytest.FixtureRequest
) -> None:
    backend = backend_for(backend_name, request)
    settings = {**backend.settings, "load_method": "append-only"}
    # The shared table exists first (SeaweedFS's REST catalog cannot tell concurrent creators of one
    # table apart); the per-writer tables are created concurrently.
    seed = run_target(
        tmp_path / "seed", [schema_msg("events", ITEMS), record("events", id=-1, shard=-1)], **settings
    )
    assert seed.returncode == 0, seed.stderr

    runs = run_together(tmp_path, settings, [singer_lines(writer_messages(w)) for w in range(WRITERS)])

    failed = [r.stderr[-3000:] for r in runs if r.returncode != 0]
    assert [r.returncode for r in runs] == [0] * WRITERS, failed
    for w, r in enumerate(runs):
        assert r.states[-1] == {"bookmarks": {"events": {"shard": w}, f"own_{w}": {"shard": w}}}
    retries = [e for r in runs for e in r.events("commit_retry")]
    assert all(1 <= e["attempt"] < e["max_attempts"] and e["delay_seconds"] > 0 for e in retries), retries

    catalog = backend.open_catalog(tmp_path)
    con = backend.duckdb()
    shared = catalog.load_table("acme.events")
    expected = sorted([(-1, -1)] + [(i, w) for w in range(WRITERS) for i in shard_ids(w)])
    assert sorted((r["id"], r["shard"]) for r in pyiceberg_rows(shared, "acme")) == expected
    assert duckdb_rows(shared, "acme", "SELECT id, shard FROM t ORDER BY id", con) == expected
    # One append per writer on the branch: no commit lost, none applied twice.
    commit_ids = {success["commit_id"] for r in runs for success in r.events("commit_success")}
    appends = Counter(
        s.get("dativo.commit-id") for s in commits_on_branch(shared, "acme") if s["operation"] == "append"
    )
    shared_commits = [c for c in appends if c in commit_ids]
    assert len(shared_commits) == WRITERS
    assert all(appends[c] == 1 for c in shared_commits)

    for w in range(WRITERS):
        own = catalog.load_table(f"acme.own_{w}")
        rows = [(i, w) for i in range(w + 1)]
        assert sorted((r["id"], r["shard"]) for r in pyiceberg_rows(own, "acme")) == rows
        assert duckdb_rows(own, "acme", "SELECT id, shard FROM t ORDER BY id", con) == rows
