"""End to end through Meltano: `meltano install` + `meltano run tap-dativo-csv target-dativo-iceberg`.

The project (meltano.yml, plugins/ lock files, examples/, the package sources the `-e
${MELTANO_PROJECT_ROOT}` pip_url installs) is copied into a temporary directory, and Meltano
installs both plugins there, offline from Meltano Hub's point of view (the lock files stand in for
it) with pip and the machine's pip configuration (meltano.yml sets `venv.backend: virtualenv`).

Cost: building the two plugin venvs takes about a minute, so one module-scoped project is
installed once and the runs below share it. The runs build on each other (incremental state),
so they live in one test.
"""

from __future__ import annotations

import collections
import csv
import datetime
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.table import Table

from target_dativo_iceberg.ops.readback import duckdb_connection, duckdb_rows, pyiceberg_rows

UTC = datetime.timezone.utc
TENANT = "acme"  # meltano.yml, environment dev
STATE_ID = "dev:tap-dativo-csv-to-target-dativo-iceberg"
CSV = Path("examples/data/people.csv")
SUMMARY_KEYS = (
    "dativo.run-id",
    "dativo.commit-id",
    "dativo.tenant",
    "dativo.stream",
    "dativo.records",
    "dativo.records-rejected",
    "dativo.singer-state",
)
# Never copied into the temporary project: build outputs, venvs, local state.
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv*",
    ".meltano",
    ".local",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    "build",
    "dist",
    "output",
    "bench",
)


@dataclass
class MeltanoProject:
    root: Path
    env: dict[str, str]
    meltano: str

    def run(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        """Run `meltano <args>` in the project; fail the test with its output when it fails."""
        proc = subprocess.run(
            [self.meltano, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, (
            f"meltano {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-5000:]}\n--- stderr\n{proc.stderr[-15000:]}"
        )
        return proc

    def catalog(self) -> Catalog:
        """The embedded default catalog the dev environment writes to."""
        base = self.root / ".local" / "iceberg"
        return load_catalog(
            "dativo", type="sql", uri=f"sqlite:///{base}/catalog.db", warehouse=(base / "warehouse").as_uri()
        )

    def state(self) -> dict[str, Any]:
        """Meltano's stored state for the tap-to-target pipeline."""
        return json.loads(self.run("state", "get", STATE_ID).stdout)


@pytest.fixture(scope="module")
def project(repo_root: Path, bin_dir: Path, tool_env: dict[str, str], tmp_path_factory) -> MeltanoProject:
    root = tmp_path_factory.mktemp("meltano") / "project"
    shutil.copytree(repo_root, root, ignore=IGNORED)
    env = {**tool_env, "MELTANO_ENVIRONMENT": "dev"}
    proj = MeltanoProject(root, env, str(bin_dir / "meltano"))
    proj.run("install", timeout=1200)
    return proj


def person_table(catalog: Catalog) -> Table:
    """The one table the person stream landed in (namespace: contract domain or tenant)."""
    found = [
        ident
        for ns in catalog.list_namespaces()
        for ident in catalog.list_tables(ns)
        if ident[-1] == "person"
    ]
    assert len(found) == 1, f"expected one `person` table, found {found}"
    return catalog.load_table(found[0])


def _row(values: dict[str, Any]) -> tuple:
    """A comparable row: the contract's types, timestamps as UTC instants."""
    ts = values["updated_at"]
    if isinstance(ts, str):
        ts = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    signup = values["signup_date"]
    if isinstance(signup, str):
        signup = datetime.date.fromisoformat(signup)
    age = values["age"]
    return (
        int(values["id"]),
        values["email"],
        values["first_name"],
        values["last_name"],
        values["status"],
        None if age in (None, "") else int(age),
        values["country"],
        signup,
        ts.astimezone(UTC),
    )


def csv_rows(path: Path) -> list[tuple]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [_row(r) for r in csv.DictReader(fh)]


COLUMNS = "id, email, first_name, last_name, status, age, country, signup_date, updated_at"


def landed(table: Table, branch: str, con: Any) -> tuple[collections.Counter, collections.Counter]:
    """Rows on `branch` as read by pyiceberg and by DuckDB (as multisets: duplicates count)."""
    by_pyiceberg = collections.Counter(_row(r) for r in pyiceberg_rows(table, branch))
    names = [c.strip() for c in COLUMNS.split(",")]
    by_duckdb = collections.Counter(
        _row(dict(zip(names, r, strict=True)))
        for r in duckdb_rows(table, branch, f"SELECT {COLUMNS} FROM t", con)
    )
    return by_pyiceberg, by_duckdb


def bookmark(state: dict[str, Any], path: str) -> dict[str, Any]:
    """The per-file bookmark (partition) of `path` in Meltano's stored state."""
    partitions = state["singer_state"]["bookmarks"]["person"]["partitions"]
    matches = [p for p in partitions if p["context"]["path"] == path]
    assert len(matches) == 1, f"no single bookmark for {path} in {partitions}"
    return matches[0]


def mtime(path: Path) -> datetime.datetime:
    micros = os.stat(path).st_mtime_ns // 1000
    return datetime.datetime(1970, 1, 1, tzinfo=UTC) + datetime.timedelta(microseconds=micros)


def branch_summary(table: Table, branch: str) -> dict[str, str]:
    snap = table.snapshot_by_name(branch)
    assert snap is not None and snap.summary is not None, f"no snapshot on branch {branch}"
    return dict(snap.summary.additional_properties)


def test_meltano_project_lists_job_schedule_and_settings(project: MeltanoProject) -> None:
    assert "csv-to-iceberg" in project.run("job", "list").stdout
    schedules = project.run("schedule", "list").stdout
    assert "daily-csv-to-iceberg" in schedules and "@daily" in schedules
    # Declared settings are what Meltano passes on: nested ones arrive as objects.
    config = json.loads(project.run("config", "print", "target-dativo-iceberg").stdout)
    assert config["tenant_id"] == TENANT
    assert config["assets"] == {"person": "examples/contracts/person.odcs.yaml"}
    tap = json.loads(project.run("config", "print", "tap-dativo-csv").stdout)
    assert tap["files"][0]["path"] == str(CSV)
    assert tap["incremental"] == {"strategy": "file_modified_time", "lookback_days": 0}


def test_meltano_run_incremental(project: MeltanoProject) -> None:
    csv_path = project.root / CSV
    first_file = csv_rows(csv_path)
    assert len(first_file) > 1000

    # Run 1: the whole file lands on the tenant branch; main keeps only the empty table-created snapshot.
    project.run("run", "tap-dativo-csv", "target-dativo-iceberg")
    assert STATE_ID in project.run("state", "list").stdout
    catalog = project.catalog()
    table = person_table(catalog)
    con = duckdb_connection()
    by_pyiceberg, by_duckdb = landed(table, TENANT, con)
    assert by_pyiceberg == collections.Counter(first_file)
    assert by_duckdb == by_pyiceberg
    assert pyiceberg_rows(table, "main") == []
    assert duckdb_rows(table, "main", "SELECT count(*) FROM t", con) in ([], [(0,)])

    state = project.state()
    mark = bookmark(state, str(CSV))
    assert datetime.datetime.fromisoformat(mark["last_modified"].replace("Z", "+00:00")) == mtime(csv_path)

    summary = branch_summary(table, TENANT)
    assert set(SUMMARY_KEYS) <= set(summary), f"missing summary keys: {set(SUMMARY_KEYS) - set(summary)}"
    assert summary["dativo.tenant"] == TENANT
    assert summary["dativo.stream"] == "person"
    assert summary["dativo.records"] == str(len(first_file))
    assert summary["dativo.records-rejected"] == "0"
    # The snapshot carries the very state Meltano stored: the commit and the bookmark agree.
    assert json.loads(summary["dativo.singer-state"]) == state["singer_state"]

    # Run 2 (through the job): the file is unchanged, so nothing new lands and the state holds.
    project.run("run", "csv-to-iceberg")
    table = person_table(project.catalog())
    by_pyiceberg, by_duckdb = landed(table, TENANT, con)
    assert by_pyiceberg == collections.Counter(first_file)
    assert by_duckdb == by_pyiceberg
    assert bookmark(project.state(), str(CSV)) == mark

    # Run 3: append rows and bump the mtime. file_modified_time works per file: a changed file is
    # read again in full, and the default load_method append-only appends it. The branch then
    # holds the first load plus the whole modified file: 2500 + (2500 + 10) rows, every original
    # row twice and each new row once. (Deduplicating on the primary key is load_method upsert.)
    with csv_path.open(encoding="utf-8") as fh:
        template = next(csv.DictReader(fh))
    with csv_path.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(template))
        for i in range(1, 11):
            new_id = len(first_file) + i
            writer.writerow({**template, "id": new_id, "email": f"new.person{new_id}@example.com"})
    later = mtime(csv_path).timestamp() + 5
    os.utime(csv_path, (later, later))
    second_file = csv_rows(csv_path)
    assert len(second_file) == len(first_file) + 10

    project.run("run", "tap-dativo-csv", "target-dativo-iceberg")
    table = person_table(project.catalog())
    by_pyiceberg, by_duckdb = landed(table, TENANT, con)
    assert sum(by_pyiceberg.values()) == 2 * len(first_file) + 10
    assert by_pyiceberg == collections.Counter(first_file) + collections.Counter(second_file)
    assert by_duckdb == by_pyiceberg
    assert pyiceberg_rows(table, "main") == []

    state = project.state()
    mark = bookmark(state, str(CSV))
    assert datetime.datetime.fromisoformat(mark["last_modified"].replace("Z", "+00:00")) == mtime(csv_path)
    summary = branch_summary(table, TENANT)
    assert summary["dativo.records"] == str(len(second_file))
    assert json.loads(summary["dativo.singer-state"]) == state["singer_state"]


def test_meltano_run_is_in_the_run_ledger_and_logs_structured_events(project: MeltanoProject) -> None:
    """`meltano run` with Meltano's JSON log format: the target's events and METRIC points arrive as
    fields of Meltano's own log events (not a JSON string in a log line), with `lag_seconds` from the
    tap's `time_extracted`; the run's ledger row names the extractor Meltano ran."""
    csv_path = project.root / CSV
    later = mtime(csv_path).timestamp() + 60  # the file reads as changed: its rows land again
    os.utime(csv_path, (later, later))
    proc = project.run("--log-format=json", "run", "tap-dativo-csv", "target-dativo-iceberg")
    logs = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    mine = [e for e in logs if e.get("tenant_id") == TENANT and "run_id" in e]
    finished = [e for e in mine if e.get("event") == "job_finished"]
    assert len(finished) == 1 and finished[0]["status"] == "success", proc.stderr[-5000:]
    assert finished[0]["plugin_logger"] == "target_dativo_iceberg.events"
    metrics = [e["metric_info"] for e in logs if isinstance(e.get("metric_info"), dict)]
    lags = [m for m in metrics if m["metric"] == "lag_seconds" and m["tags"]["stream"] == "person"]
    assert lags and all(0 <= m["value"] < 3600 for m in lags)

    catalog = project.catalog()
    runs = {r["run_id"]: r for r in pyiceberg_rows(catalog.load_table("_dativo.ingestion_runs"), "main")}
    row = runs[finished[0]["run_id"]]
    assert (row["status"], row["exit_code"], row["source"], row["tenant_id"]) == (
        "success",
        0,
        "tap-dativo-csv",
        TENANT,
    )
    assert row["records_committed"] == len(csv_rows(csv_path)) and row["data_files"] >= 1
    assert json.loads(row["state"]) == project.state()["singer_state"]
    assert all(r["source"] == "tap-dativo-csv" for r in runs.values())
