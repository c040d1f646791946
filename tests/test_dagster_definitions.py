"""The Dagster code location: validates from the repository root, mirrors meltano.yml, and its sharded
backfill lands every row of a source exactly once in a PostgreSQL catalog.

The backfill runs in-process (`execute_in_process`: shards one after another; a deployment runs them
in parallel on the multiprocess or a cluster executor) in `direct` mode — tap | target with config
files — so no `meltano install` is needed. A second backfill finds every shard's state and lands nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import target_config

from dativo_dagster.meltano_project import cron_of, load_project
from tap_dativo_csv.shards import shard_of
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows

pytest_plugins = ["servers"]

ROOT = Path(__file__).resolve().parent.parent
FILES, ROWS, SHARDS = 9, 5, 3


def test_definitions_validate_from_the_repository_root() -> None:
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "definitions", "validate"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


def test_definitions_mirror_meltano_yml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dativo_dagster.definitions import build_definitions

    (tmp_path / "meltano.yml").write_text(
        "jobs:\n"
        "- {name: csv-to-iceberg, tasks: [tap-dativo-csv target-dativo-iceberg]}\n"
        "- {name: nightly, tasks: [[tap-a, target-b], tap-c target-d]}\n"
        "schedules:\n"
        "- {name: daily-csv, interval: '@daily', job: csv-to-iceberg}\n"
        "- {name: every-15, interval: '*/15 * * * *', job: nightly}\n"
        "- {name: elt-only, interval: '@hourly', extractor: tap-a, loader: target-b}\n"
    )
    project = load_project(tmp_path)
    assert [(j.name, j.tasks) for j in project.jobs] == [
        ("csv-to-iceberg", ("tap-dativo-csv target-dativo-iceberg",)),
        ("nightly", ("tap-a target-b", "tap-c target-d")),
    ]
    defs = build_definitions(project)
    assert {j.name for j in defs.jobs} == {"csv_to_iceberg", "nightly", "sharded_backfill"}
    schedules = {s.name: (s.cron_schedule, s.job_name) for s in defs.schedules}
    assert schedules == {
        "daily_csv": ("0 0 * * *", "csv_to_iceberg"),
        "every_15": ("*/15 * * * *", "nightly"),
    }
    assert cron_of("@weekly") == "0 0 * * 0"

    monkeypatch.chdir(ROOT)  # the repository's own meltano.yml
    repo = build_definitions()
    assert "csv_to_iceberg" in {j.name for j in repo.jobs}
    assert {s.name for s in repo.schedules} == {"daily_csv_to_iceberg"}


def write_sources(root: Path) -> list[str]:
    """At least `FILES` files, more until every shard has one (a file's shard hashes its whole path,
    and the test's directory differs per run: 9 files leave one of 3 shards empty in ~8% of runs)."""
    ids = []
    root.mkdir(parents=True)
    shards: set[int] = set()
    k = 0
    while k < FILES or len(shards) < SHARDS:
        path = root / f"part-{k:02d}.csv"
        rows = [f"{100 * k + j},file{k}" for j in range(ROWS)]
        path.write_text("id,name\n" + "\n".join(rows) + "\n")
        ids += [str(100 * k + j) for j in range(ROWS)]
        shards.add(shard_of(str(path), SHARDS))
        k += 1
    return sorted(ids)


def test_sharded_backfill_lands_every_row_once_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    from dativo_dagster.definitions import backfill_job

    expected = write_sources(tmp_path / "in")
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(
        json.dumps({"files": [{"path": str(tmp_path / "in" / "*.csv"), "object": "items"}]})
    )
    target_json = tmp_path / "target.json"
    target_json.write_text(json.dumps(target_config(tmp_path, catalog_uri=postgres_url)))
    run_config = {
        "ops": {
            "plan_shards": {
                "config": {
                    "shard_count": SHARDS,
                    "mode": "direct",
                    "tap_config": str(tap_config),
                    "target_config": str(target_json),
                    "state_dir": str(tmp_path / "state"),
                }
            }
        }
    }
    job = backfill_job(ROOT)

    result = job.execute_in_process(run_config=run_config)

    assert result.success
    shards = result.output_for_node("load_shard")
    assert sorted(shards) == [f"shard_{i}" for i in range(SHARDS)]
    assert all(s["exit_code"] == 0 for s in shards.values())
    assert all(s["records"] > 0 for s in shards.values()), "every shard has a file"
    summary = result.output_for_node("summarise_backfill")
    assert summary["records"] == len(expected) and summary["shards"] == SHARDS

    from servers import CatalogBackend

    backend = CatalogBackend("postgres", {"catalog_uri": postgres_url})
    table = backend.open_catalog(tmp_path).load_table("acme.items")
    assert sorted(r["id"] for r in pyiceberg_rows(table, "acme")) == expected
    con = backend.duckdb()
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t", con) == [
        (len(expected), len(expected))
    ]

    # Each shard kept its own state: a second backfill reads nothing again.
    states = sorted(p.name for p in (tmp_path / "state").glob("*.state.json"))
    assert states == [f"shard-{i}-of-{SHARDS}.state.json" for i in range(SHARDS)]
    again = job.execute_in_process(run_config=run_config)
    assert again.success and again.output_for_node("summarise_backfill")["records"] == 0
    table.refresh()
    assert sorted(r["id"] for r in pyiceberg_rows(table, "acme")) == expected
