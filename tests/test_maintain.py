"""`dativo maintain` and the target's upkeep: compaction, expiry, orphan cleanup, each end to end."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from helpers import BIN, crash_pipeline, open_catalog, record, run_target, schema_msg, state, target_config
from test_files import CONTRACT

from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.compaction import compact
from target_dativo_iceberg.iceberg.maintenance import expire_old_snapshots, plan_expiry
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

PROPS = {"id": {"type": "integer"}, "region": {"type": "string"}}
DAY = 86400


def dativo(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "dativo"), *args, "--config", str(root / "target.json")],
        capture_output=True, text=True, cwd=root, timeout=300,
    )  # fmt: skip


def _load(root: Path, start: int, n: int, **config: object):
    messages = [schema_msg("ticks", PROPS)]
    for i in range(start, start + n):
        messages += [record("ticks", id=i, region="eu" if i % 2 else "us"), state({"pos": i})]
    run = run_target(root, messages, batch_size_rows=5, partitioning=["region"], **config)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _data_files(table, branch: str = "acme") -> list[dict]:
    return table.inspect.files(snapshot_id=table.snapshot_by_name(branch).snapshot_id).to_pylist()


def _rows(table, branch: str = "acme") -> list[tuple]:
    by_pyiceberg = sorted((r["id"], r["region"]) for r in pyiceberg_rows(table, branch))
    by_duckdb = duckdb_rows(table, branch, "SELECT id, region FROM t ORDER BY id, region")
    assert by_pyiceberg == sorted(by_duckdb)
    return by_pyiceberg


def test_maintain_compacts_each_partition_keeping_rows_state_and_publish(tmp_path: Path) -> None:
    off = {"auto_compact_min_files": 0}
    _load(tmp_path, 1, 40, **off)
    second = _load(tmp_path, 41, 20, **off)
    table = open_catalog(tmp_path).load_table("acme.ticks")
    before_rows, before_files = _rows(table), _data_files(table)
    assert len(before_files) >= 12
    state_before = json.loads(dativo(tmp_path, "state", "show", "--json").stdout)[0]["singer_state"]

    dry = dativo(tmp_path, "maintain", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would compact" in dry.stdout
    assert len(_data_files(open_catalog(tmp_path).load_table("acme.ticks"))) == len(before_files)

    out = dativo(tmp_path, "maintain", "--branch", "acme")
    assert out.returncode == 0, out.stderr
    assert "acme.ticks acme: compacted" in out.stdout
    table = open_catalog(tmp_path).load_table("acme.ticks")
    after = _data_files(table)
    assert sorted(json.dumps(f["partition"]) for f in after) == ['{"region": "eu"}', '{"region": "us"}']
    assert _rows(table) == before_rows and len(before_rows) == 60
    head = table.snapshot_by_name("acme").summary.additional_properties
    assert head["dativo.operation"] == "compaction" and "dativo.singer-state" not in head
    shown = json.loads(dativo(tmp_path, "state", "show", "--json").stdout)[0]["singer_state"]
    # The last printed STATE (60, right behind the last record) is committed and shown.
    assert shown == state_before == second.states[-1] == {"pos": 60}

    # Later loads append on top of the compacted files.
    _load(tmp_path, 61, 10, **off)
    table = open_catalog(tmp_path).load_table("acme.ticks")
    assert [i for i, _ in _rows(table)] == list(range(1, 71))
    diff = dativo(tmp_path, "branch", "diff")
    assert "fast-forward possible" in diff.stdout
    assert dativo(tmp_path, "branch", "publish").returncode == 0
    assert _rows(open_catalog(tmp_path).load_table("acme.ticks"), "main") == _rows(table)


def test_expiry_on_an_unpublished_branch_keeps_publish_and_state_and_deletes_files(tmp_path: Path) -> None:
    n = 80
    messages = [schema_msg("ticks", {"id": {"type": "integer"}})]
    for i in range(1, n + 1):
        messages += [record("ticks", id=i), state({"pos": i})]
    run = run_target(tmp_path, messages, batch_size_rows=1, max_snapshots=10, auto_compact_min_files=0)
    assert run.returncode == 0, run.stderr
    assert run.events("snapshots_expired")
    assert run.states[-1] == {"pos": n}  # the last STATE is printed and committed
    table = open_catalog(tmp_path).load_table("acme.ticks")
    assert len(table.metadata.snapshots) <= 10 + 20 + 2
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t") == [(n, n)]
    table_dir = Path(table.location().removeprefix("file://"))  # not the run ledger's tables
    manifest_lists = list(table_dir.rglob("snap-*.avro"))
    assert len(manifest_lists) == len(table.metadata.snapshots)  # the expired ones' files are gone
    assert json.loads(dativo(tmp_path, "state", "show", "--json").stdout)[0]["singer_state"] == run.states[-1]

    with table.transaction() as tx:  # the metadata log keeps 5 versions: older files are superseded
        tx.set_properties({"write.metadata.previous-versions-max": "5"})
    metadata_dir = Path(table.metadata_location.removeprefix("file://")).parent
    assert len(list(metadata_dir.glob("*.metadata.json"))) > 80
    out = dativo(tmp_path, "maintain")
    assert out.returncode == 0, out.stderr
    assert " 0 superseded metadata files" not in out.stdout, out.stdout
    table = open_catalog(tmp_path).load_table("acme.ticks")
    assert len(table.metadata.snapshots) <= 12
    assert len(list(metadata_dir.glob("*.metadata.json"))) <= 5 + 3  # the log, the current one, newer
    assert "fast-forward possible" in dativo(tmp_path, "branch", "diff").stdout
    published = dativo(tmp_path, "branch", "publish")
    assert published.returncode == 0, published.stderr
    table = open_catalog(tmp_path).load_table("acme.ticks")
    assert duckdb_rows(table, "main", "SELECT count(*), count(DISTINCT id) FROM t") == [(n, n)]
    assert sorted(r["id"] for r in pyiceberg_rows(table, "main")) == list(range(1, n + 1))
    assert json.loads(dativo(tmp_path, "state", "show", "--json").stdout)[0]["singer_state"] == run.states[-1]


def test_upkeep_compacts_touched_partitions_during_and_after_a_run_never_before_state(tmp_path: Path) -> None:
    messages = [schema_msg("ticks", PROPS)]
    for i in range(1, 61):
        messages += [record("ticks", id=i, region="eu" if i % 2 else "us"), state({"pos": i})]
    run = run_target(tmp_path, messages, batch_size_rows=5, partitioning=["region"], auto_compact_min_files=3)
    assert run.returncode == 0, run.stderr[-3000:]
    compacted = run.events("table_compacted")
    assert compacted and all(c["files_before"] >= 4 for c in compacted)
    lines = run.stderr.splitlines()
    for i, line in enumerate(lines):  # each compaction follows the STATE of the commit before it
        if '"table_compacted"' in line:
            commit = max(j for j in range(i) if '"commit_success"' in lines[j])
            assert any('"state_emitted"' in lines[j] for j in range(commit, i)), lines[commit:i]
    assert run.states[-1] == {"pos": 60}
    table = open_catalog(tmp_path).load_table("acme.ticks")
    assert len(_data_files(table)) <= 2 * 4  # at most auto_compact_min_files + 1 per partition
    assert [i for i, _ in _rows(table)] == list(range(1, 61))


def test_end_of_run_compaction_counts_the_small_files_of_earlier_runs(tmp_path: Path) -> None:
    # Each run adds one small file; the fourth run's end finds four (auto_compact_min_files + 1).
    for i in range(1, 5):
        messages = [schema_msg("ticks", PROPS), record("ticks", id=i, region="eu"), state({"pos": i})]
        run = run_target(tmp_path, messages, auto_compact_min_files=3)
        assert run.returncode == 0, run.stderr[-3000:]
        assert bool(run.events("table_compacted")) == (i == 4), (i, run.events("table_compacted"))
    assert run.events("table_compacted")[0]["files_before"] == 4
    table = open_catalog(tmp_path).load_table("acme.ticks")
    assert len(_data_files(table)) == 1
    assert [i for i, _ in _rows(table)] == [1, 2, 3, 4]


def test_end_of_run_compaction_folds_delete_files_in_a_table_of_few_files(tmp_path: Path) -> None:
    keyed = schema_msg("ticks", PROPS, ["id"])
    first = [keyed, *(record("ticks", id=i, region="eu") for i in (1, 2, 3)), state({"pos": 3})]
    assert run_target(tmp_path, first, load_method="upsert").returncode == 0
    second = [keyed, record("ticks", id=2, region="us"), state({"pos": 4})]
    run = run_target(tmp_path, second, load_method="upsert")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.events("commit_success")[-1]["delete_files"] == 1
    assert run.events("table_compacted"), run.stderr[-3000:]  # two files, one of them with deletes
    table = open_catalog(tmp_path).load_table("acme.ticks")
    totals = table.snapshot_by_name("acme").summary.additional_properties
    assert (totals["total-data-files"], totals["total-delete-files"]) == ("1", "0")  # the deletes folded in
    assert _rows(table) == [(1, "eu"), (2, "us"), (3, "eu")]


def test_compaction_keeps_the_delete_files_of_other_partitions_in_their_manifest(tmp_path: Path) -> None:
    # One upsert commit writes a delete manifest with a delete file per partition; compacting one
    # partition drops its delete file and writes the manifest again with the other one, still a
    # delete manifest with its sequence number (else the row it deletes would come back).
    keyed = schema_msg("ticks", PROPS, ["id"])
    config = {"load_method": "upsert", "partitioning": ["region"], "auto_compact_min_files": 0}
    first = [keyed, *(record("ticks", id=i, region="eu" if i % 2 else "us") for i in (1, 2, 3, 4))]
    assert run_target(tmp_path, [*first, state({"pos": 4})], **config).returncode == 0
    second = [
        keyed,
        record("ticks", id=1, region="eu"),
        record("ticks", id=2, region="us"),
        state({"pos": 6}),
    ]
    run = run_target(tmp_path, second, **config)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.events("commit_success")[-1]["delete_files"] == 2
    table = open_catalog(tmp_path).load_table("acme.ticks")
    result = compact(table, "acme", 128 << 20, EventLog("acme", "test", []), partitions=["region=eu"])
    assert result is not None and result.files_before == 2
    table.refresh()
    totals = table.snapshot_by_name("acme").summary.additional_properties
    assert totals["total-delete-files"] == "1"
    head = table.snapshot_by_name("acme")
    contents = sorted(m.content.name for m in head.manifests(table.io))
    assert contents.count("DELETES") == 1, contents
    assert _rows(table) == [(1, "eu"), (2, "us"), (3, "eu"), (4, "us")]


def test_an_expiry_that_finds_another_expiry_was_first_plans_again(tmp_path: Path) -> None:
    _load(tmp_path, 1, 30, auto_compact_min_files=0)
    stale = open_catalog(tmp_path).load_table("acme.ticks")
    other = open_catalog(tmp_path).load_table("acme.ticks")
    assert expire_old_snapshots(other, 2, slack=1) > 0  # deletes the manifest lists it expired
    # the stale copy plans the same expiry, finds those files gone, sees why, and plans again
    assert expire_old_snapshots(stale, 2, slack=1) == 0
    assert [i for i, _ in _rows(stale)] == list(range(1, 31))


def test_a_failed_upkeep_is_an_event_not_a_failed_load(tmp_path: Path) -> None:
    _load(tmp_path, 1, 20, auto_compact_min_files=0)
    table = open_catalog(tmp_path).load_table("acme.ticks")
    for data_file in _data_files(table):  # maintenance will fail to read these
        os.remove(data_file["file_path"].removeprefix("file://"))
    messages = [schema_msg("ticks", PROPS)]
    for i in range(21, 41):
        messages += [record("ticks", id=i, region="eu" if i % 2 else "us"), state({"pos": i})]
    run = run_target(tmp_path, messages, batch_size_rows=5, partitioning=["region"], auto_compact_min_files=2)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.events("maintenance_failed")
    assert run.states[-1] == {"pos": 40}
    assert run.events("job_finished")[-1]["exit_code"] == 0


def test_orphans_of_a_killed_run_are_deleted_only_after_the_window(tmp_path: Path) -> None:
    root = tmp_path
    (root / "events.yaml").write_text(CONTRACT)
    rows = 120_000
    lines = [
        '{"type":"SCHEMA","stream":"events","schema":{"properties":{"id":{"type":"integer"},"payload":{"type":"string"}}}}'
    ]
    lines += [
        f'{{"type":"RECORD","stream":"events","record":{{"id":{i},"payload":"p{i:08d}"}}}}'
        for i in range(1, rows + 1)
    ]
    text = "\n".join(lines) + "\n"
    # Keyed streams default to upsert, which never spills: this test is about appended files.
    config = {
        "assets": {"events": str(root / "events.yaml")},
        "batch_size_rows": 1_000_000,
        "load_method": "append-only",
    }
    killed = run_target(root, text, env={"DATIVO_FAULT": "after_spill:1"}, **config)
    assert killed.returncode == -9 and killed.stdout == ""
    parquet = set((root / "warehouse").rglob("*.parquet"))
    assert parquet  # written, never committed
    table_rows = run_target(root, "\n".join(lines[:101]) + "\n", **config)
    assert table_rows.returncode == 0, table_rows.stderr[-2000:]
    committed = set((root / "warehouse").rglob("*.parquet")) - parquet

    out = dativo(root, "maintain")
    assert out.returncode == 0, out.stderr
    assert "deleted 0 orphan files" in out.stdout and "kept" not in out.stdout
    assert all(p.exists() for p in parquet)  # younger than the 3-day window

    old = time.time() - 4 * DAY
    for p in parquet:
        os.utime(p, (old, old))
    out = dativo(root, "maintain")
    assert out.returncode == 0, out.stderr
    assert f"deleted {len(parquet)} orphan files" in out.stdout
    assert not any(p.exists() for p in parquet)
    assert all(p.exists() for p in committed)
    table = open_catalog(root).load_table("acme__lab.events")  # tenant-scoped namespace
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t") == [(100, 100)]
    assert len(pyiceberg_rows(table, "acme")) == 100


def test_crash_replay_is_still_detected_after_compaction_and_expiry(tmp_path: Path) -> None:
    """Killed after its third commit (STATE not printed), then maintained down to one snapshot per
    branch, the rerun from the last printed STATE still finds the replay marker: exactly the source."""
    settings = target_config(tmp_path, batch_size_rows=10, max_snapshots=1, auto_compact_min_files=0)
    killed = crash_pipeline(tmp_path, settings, ["--records", "70"], None, "after_commit:3")
    assert killed.returncode == -9
    persisted = [json.loads(line) for line in killed.stdout.splitlines() if line.strip()][-1]
    out = dativo(tmp_path, "maintain")
    assert out.returncode == 0, out.stderr
    assert "acme.items acme: compacted 3 files" in out.stdout and "expired" in out.stdout
    again = crash_pipeline(tmp_path, settings, ["--records", "70"], persisted, None)
    assert again.returncode == 0, again.stderr[-3000:]
    assert '"replay_skipped"' in again.stderr
    table = open_catalog(tmp_path).load_table("acme.items")
    assert sorted(r["id"] for r in pyiceberg_rows(table, "acme")) == list(range(1, 71))
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t") == [(70, 70)]


def test_expiry_by_age_keeps_heads_fork_points_and_markers(tmp_path: Path) -> None:
    _load(tmp_path, 1, 30, auto_compact_min_files=0)
    table = open_catalog(tmp_path).load_table("acme.ticks")
    later = int(time.time() * 1000) + 3 * 3600 * 1000
    plan = plan_expiry(table.metadata, 100, max_age_hours=1, now_ms=later)
    kept = {s.snapshot_id for s in table.metadata.snapshots} - set(plan.expire)
    head, main = table.snapshot_by_name("acme"), table.snapshot_by_name("main")
    assert kept == {head.snapshot_id, main.snapshot_id}  # the head carries the newest markers
    assert plan.set_links == {f"dativo.ancestor.{head.snapshot_id}": str(main.snapshot_id)}
    assert plan_expiry(table.metadata, 100, max_age_hours=4, now_ms=later).expire == []
