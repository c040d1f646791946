"""Concurrent upserts of overlapping keys to one table and branch, on PostgreSQL and the REST catalog.

Six target processes upsert overlapping key ranges with their own values at the same moment. The
commits conflict (an upsert deletes the rows of its keys: another writer's new rows for those keys
fail pyiceberg's validation); each loser re-reads the branch head and redoes its delete+append, so
every writer exits 0 and the table holds every key exactly once, with the value of the writer that
committed last among those writing the key (the result of running the upserts one after another in
commit order).

The writers are started together and fed their records; their input is closed only once all of them
are ready (`writer_initialized` on stderr), so their commits start at the same time and collide.

In-process, on the embedded catalog, a second committer lands a conflicting upsert in the window
between a commit's read of the head and its commit: the retry's events, its result, the bound on
attempts and the data files of lost attempts are checked deterministically.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from helpers import Run, record, run_target, schema_msg, singer_lines, start_target, state, target_config
from pyiceberg.schema import Schema
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.types import LongType, NestedField, StringType

from target_dativo_iceberg.errors import CommitError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.committer import Committer, TableSpec
from target_dativo_iceberg.iceberg.retry import RetryPolicy
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows
from target_dativo_iceberg.settings import Settings

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from servers import CatalogBackend

pytest_plugins = ["servers"]

ITEMS = {"id": {"type": "integer"}, "val": {"type": ["string", "null"]}}
WRITERS = 6
SPAN, STEP, SEED_KEYS = 12, 4, 40  # writer w upserts ids [STEP*w, STEP*w + SPAN): neighbours overlap


def writer_keys(w: int) -> range:
    return range(STEP * w, STEP * w + SPAN)


def messages(keys: range, value: str, bookmark: str) -> list[dict[str, Any]]:
    return [
        schema_msg("items", ITEMS, ["id"]),
        *[record("items", id=i, val=value) for i in keys],
        state({"bookmarks": {"items": {"writer": bookmark}}}),
    ]


def backend_for(name: str, request: pytest.FixtureRequest) -> CatalogBackend:
    from servers import CatalogBackend

    if name == "postgres":
        return CatalogBackend("postgres", {"catalog_uri": request.getfixturevalue("postgres_url")})
    server = request.getfixturevalue("seaweedfs")
    bucket = request.getfixturevalue("table_bucket")
    return CatalogBackend("rest", server.target_settings(bucket), s3=server.s3_connection())


def run_together(root: Path, settings: dict[str, Any], inputs: list[str]) -> list[Run]:
    """Start one target per input, feed each its messages, close every stdin once all are ready."""
    cfg = root / "target.json"
    cfg.write_text(json.dumps(target_config(root, **settings)))
    procs = [start_target(cfg, root) for _ in inputs]
    ready = [threading.Event() for _ in procs]
    stdout: list[list[str]] = [[] for _ in procs]
    stderr: list[list[str]] = [[] for _ in procs]

    def collect(i: int, stream: Any, lines: list[str], marker: str | None) -> None:
        for line in stream:
            lines.append(line)
            if marker is not None and marker in line:
                ready[i].set()
        ready[i].set()  # the process ended (or never got ready): do not wait for it

    readers = []
    for i, proc in enumerate(procs):
        readers.append(threading.Thread(target=collect, args=(i, proc.stdout, stdout[i], None)))
        readers.append(
            threading.Thread(target=collect, args=(i, proc.stderr, stderr[i], "writer_initialized"))
        )
    for thread in readers:
        thread.start()
    try:
        for proc, text in zip(procs, inputs, strict=True):
            proc.stdin.write(text)  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        for event in ready:
            event.wait(timeout=300)
        for proc in procs:
            proc.stdin.close()  # type: ignore[union-attr]
        for proc in procs:
            proc.wait(timeout=300)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for thread in readers:
            thread.join()
    return [Run(p.returncode, "".join(o), "".join(e)) for p, o, e in zip(procs, stdout, stderr, strict=True)]


def commits_on_branch(table: Table, branch: str) -> list[dict[str, str]]:
    """Snapshot summaries of the branch, oldest first."""
    snaps = list(ancestors_of(table.snapshot_by_name(branch), table.metadata))
    return [
        {"operation": str(s.summary.operation.value), **s.summary.additional_properties}
        for s in reversed(snaps)
        if s.summary is not None
    ]


@pytest.mark.parametrize("backend_name", ["postgres", "rest"])
def test_concurrent_upserts_retry_conflicts(
    tmp_path: Path, backend_name: str, request: pytest.FixtureRequest
) -> None:
    backend = backend_for(backend_name, request)
    settings = {**backend.settings, "load_method": "upsert"}
    # The table exists first: concurrent *commits* are the subject (SeaweedFS's REST catalog cannot
    # tell concurrent creators of one table apart).
    seed = run_target(tmp_path / "seed", messages(range(SEED_KEYS), "seed", "seed"), **settings)
    assert seed.returncode == 0, seed.stderr

    runs = run_together(
        tmp_path, settings, [singer_lines(messages(writer_keys(w), f"w{w}", f"w{w}")) for w in range(WRITERS)]
    )

    failed = [r.stderr[-3000:] for r in runs if r.returncode != 0]
    assert [r.returncode for r in runs] == [0] * WRITERS, failed
    for w, r in enumerate(runs):
        assert r.states == [{"bookmarks": {"items": {"writer": f"w{w}"}}}]
    retries = [e for r in runs for e in r.events("commit_retry")]
    assert retries, "six overlapping upserts committed without a single conflict"
    assert all(e["stream"] == "items" and 1 <= e["attempt"] < e["max_attempts"] for e in retries), retries
    conflicts = (
        "ValidationException: Added data files were found matching the filter",
        "ValidationException: the branch moved since its rows were matched for deletion",
        "CommitFailedException:",
    )
    assert all(e["reason"].startswith(conflicts) for e in retries), retries

    table = backend.open_catalog(tmp_path).load_table("acme.items")
    # Exactly once: each writer's commit id is on the branch in one snapshot (its rows appended and
    # the rows its keys replace deleted by position delete files, together).
    commit_ids = {}
    for w, r in enumerate(runs):
        [success] = r.events("commit_success")
        commit_ids[success["commit_id"]] = w
    history = commits_on_branch(table, "acme")
    snapshots = Counter(s.get("dativo.commit-id") for s in history)
    assert {c: snapshots[c] for c in commit_ids} == dict.fromkeys(commit_ids, 1)
    for commit_id in commit_ids:
        positions = [i for i, s in enumerate(history) if s.get("dativo.commit-id") == commit_id]
        assert positions == list(range(positions[0], positions[-1] + 1)), (commit_id, positions)

    # Every key once, with the value of the last writer (in commit order) that wrote it.
    order = [commit_ids[s["dativo.commit-id"]] for s in history if s.get("dativo.commit-id") in commit_ids]
    order = list(dict.fromkeys(order))
    assert sorted(order) == list(range(WRITERS))
    expected = {i: "seed" for i in range(SEED_KEYS)}
    for w in order:
        expected.update({i: f"w{w}" for i in writer_keys(w)})
    rows = sorted((r["id"], r["val"]) for r in pyiceberg_rows(table, "acme"))
    assert rows == sorted(expected.items())
    con = backend.duckdb()
    assert duckdb_rows(table, "acme", "SELECT id, val FROM t ORDER BY id", con) == sorted(expected.items())
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t", con) == [
        (SEED_KEYS, SEED_KEYS)
    ]


# --------------------------------------------------------------------------- in-process, deterministic

SCHEMA = Schema(NestedField(1, "id", LongType()), NestedField(2, "val", StringType()))
IDENT = ("acme", "items")


class Writer:
    """A committer of its own (catalog, events) on the embedded catalog under `root`."""

    def __init__(self, root: Path, conflict_retries: int = 10) -> None:
        import io

        self.out = io.StringIO()
        settings = Settings.from_config(target_config(root))
        policy = RetryPolicy(max_conflict_retries=conflict_retries, sleep=lambda _seconds: None)
        self.committer = Committer(settings, EventLog("acme", "run", [], stream=self.out), policy)
        self.table = self.committer.ensure_table("items", IDENT, TableSpec(SCHEMA))

    def upsert(self, rows: dict[int, str], before: Any = None) -> Any:
        """Upsert `rows`; `before()` runs each time the batch is built, after the head was read."""

        def build(arrow_schema: pa.Schema, _plan: Any) -> pa.Table:
            if before is not None:
                before()
            return pa.Table.from_pydict({"id": list(rows), "val": list(rows.values())}, schema=arrow_schema)

        return self.committer.commit(
            "items", self.table, SCHEMA, build, len(rows), {"dativo.stream": "items"}, upsert_keys=["id"]
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.out.getvalue().splitlines()]
        return [e for e in lines if e["event"] == name]


def table_rows(root: Path) -> list[tuple[int, str]]:
    table = Writer(root).table
    return sorted((r["id"], r["val"]) for r in pyiceberg_rows(table, "acme"))


def unreferenced_files(root: Path) -> set[str]:
    """Data and delete files in the warehouse that no snapshot of the table references."""
    table = Writer(root).table
    referenced = {
        Path(file.file_path).name
        for snap in table.metadata.snapshots
        for task in table.scan(snapshot_id=snap.snapshot_id).plan_files()
        for file in (task.file, *task.delete_files)
    }
    return {p.name for p in (root / "warehouse").rglob("*.parquet")} - referenced


def test_upsert_redone_on_the_new_head_after_conflicts(tmp_path: Path) -> None:
    Writer(tmp_path).upsert({1: "seed", 2: "seed", 3: "seed"})
    ours, theirs = Writer(tmp_path), Writer(tmp_path)
    builds: list[int] = []

    def interfere() -> None:  # another writer lands keys 3 and 4 after our head was read (twice)
        builds.append(1)
        if len(builds) <= 2:
            theirs.upsert({3: f"theirs{len(builds)}", 4: f"theirs{len(builds)}"})

    result = ours.upsert({2: "ours", 3: "ours"}, before=interfere)

    assert len(builds) == 3
    retries = ours.events("commit_retry")
    assert [(e["attempt"], e["max_attempts"], e["stream"]) for e in retries] == [
        (1, 11, "items"),
        (2, 11, "items"),
    ]
    assert all(e["reason"].startswith("ValidationException: the branch moved since") for e in retries)
    assert all(0 < e["delay_seconds"] <= 10 for e in retries)
    # Recomputed against the new head: key 3 replaced again (it is ours), key 4 of the other writer kept.
    assert table_rows(tmp_path) == [(1, "seed"), (2, "ours"), (3, "ours"), (4, "theirs2")]
    history = commits_on_branch(Writer(tmp_path).table, "acme")
    # one snapshot: the rows appended and the replaced rows' position delete files
    assert [s["operation"] for s in history if s.get("dativo.commit-id") == result.commit_id] == ["overwrite"]
    assert unreferenced_files(tmp_path) == set()  # the lost attempts' files were deleted


def test_conflicts_are_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    Writer(tmp_path).upsert({1: "seed"})
    ours, theirs = Writer(tmp_path, conflict_retries=2), Writer(tmp_path)
    builds: list[int] = []

    def interfere() -> None:  # every attempt loses
        builds.append(1)
        theirs.upsert({1: f"theirs{len(builds)}"})

    with pytest.raises(CommitError) as failure:
        ours.upsert({1: "ours"}, before=interfere)

    assert str(failure.value).startswith(
        "commit to acme.items: still conflicting with concurrent writers after 3 attempts "
        "(retry_config.max_conflict_retries=2): ValidationException: the branch moved since"
    )
    assert len(builds) == 3
    assert [e["attempt"] for e in ours.events("commit_retry")] == [1, 2]
    assert table_rows(tmp_path) == [(1, "theirs3")]  # nothing of the failed commit is visible
    assert unreferenced_files(tmp_path) == set()
