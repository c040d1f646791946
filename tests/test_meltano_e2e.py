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
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
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

    # Run 3: append rows and bump the mtime. The file only grew (its bookmarked bytes hash the
    # same), so the tap reads it from where run 1 stopped: only the 10 new rows land, each once (and
    # the stream is keyed, so it upserts by default: a re-sent row would not double either).
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
    assert sum(by_pyiceberg.values()) == len(first_file) + 10
    assert by_pyiceberg == collections.Counter(second_file)
    assert by_duckdb == by_pyiceberg
    assert pyiceberg_rows(table, "main") == []

    state = project.state()
    mark = bookmark(state, str(CSV))
    assert datetime.datetime.fromisoformat(mark["last_modified"].replace("Z", "+00:00")) == mtime(csv_path)
    assert mark["bytes"] == csv_path.stat().st_size and mark["rows"] == len(second_file)
    summary = branch_summary(table, TENANT)
    assert summary["dativo.records"] == "10"
    assert json.loads(summary["dativo.singer-state"]) == state["singer_state"]


def _jsonl_extractor(name: str, tap: Path) -> dict[str, Any]:
    """A third-party tap (tap-jsonl, already installed) declared as its own extractor `name`."""
    return {
        "name": name,
        "namespace": name.replace("-", "_"),
        "executable": str(tap),
        "capabilities": ["catalog", "discover", "state", "about"],
        "settings": [{"name": "path"}, {"name": "stream_name"}, {"name": "primary_keys", "kind": "array"}],
    }


def test_meltano_run_two_sources_tenants_and_warn_exit_code(project: MeltanoProject, repo_root: Path) -> None:
    """Two extractors with a same-named stream land in their own namespaces (default_target_schema
    = the extractor's load schema, wired in meltano.yml); a second tenant with its own state id lands
    its own tables; warn_exit_code 0 lets `meltano run` succeed on a run whose rejections landed."""
    tap = repo_root / ".venv-taps" / "tap-jsonl" / "bin" / "tap-jsonl"
    assert tap.exists(), f"{tap} missing: run `make taps`"
    data = project.root / "sources"
    for name, rows in (
        ("a", [{"id": 1, "kind": "click"}, {"id": 2, "kind": "view"}]),
        ("b", [{"id": 1, "amount": 2.5, "note": "x"}]),
    ):
        (data / name).mkdir(parents=True)
        (data / name / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    meltano_yml = project.root / "meltano.yml"
    config = yaml.safe_load(meltano_yml.read_text())
    config["plugins"]["extractors"] += [_jsonl_extractor(n, tap) for n in ("tap-jsonl-a", "tap-jsonl-b")]
    extractors = config["environments"][0]["config"]["plugins"]["extractors"]
    for name in ("a", "b"):
        settings = {"path": f"{data / name}/*.jsonl", "stream_name": "events", "primary_keys": ["id"]}
        extractors.append({"name": f"tap-jsonl-{name}", "config": settings})
    meltano_yml.write_text(yaml.safe_dump(config, sort_keys=False))

    project.run("run", "tap-jsonl-a", "target-dativo-iceberg")
    project.run("run", "tap-jsonl-b", "target-dativo-iceberg")
    catalog, con = project.catalog(), duckdb_connection()
    a, b = catalog.load_table("acme__tap_jsonl_a.events"), catalog.load_table("acme__tap_jsonl_b.events")
    assert {"kind"} <= set(a.schema().column_names) and "amount" not in a.schema().column_names
    assert {"amount", "note"} <= set(b.schema().column_names) and "kind" not in b.schema().column_names
    assert sorted((r["id"], r["kind"]) for r in pyiceberg_rows(a, TENANT)) == [(1, "click"), (2, "view")]
    assert duckdb_rows(b, TENANT, "SELECT id, amount, note FROM t", con) == [(1, 2.5, "x")]
    assert a.schema().identifier_field_names() == {"id"}  # key_properties: identifier fields

    # Tenant beta: its own state id (suffix) and its own tables; acme's state and rows stay as they are.
    acme_state = project.run("state", "get", "dev:tap-jsonl-a-to-target-dativo-iceberg").stdout
    project.env["TARGET_DATIVO_ICEBERG_TENANT_ID"] = "beta"
    try:
        project.run("run", "--state-id-suffix", "beta", "tap-jsonl-a", "target-dativo-iceberg")
    finally:
        del project.env["TARGET_DATIVO_ICEBERG_TENANT_ID"]
    assert "dev:tap-jsonl-a-to-target-dativo-iceberg:beta" in project.run("state", "list").stdout
    assert project.run("state", "get", "dev:tap-jsonl-a-to-target-dativo-iceberg").stdout == acme_state
    beta = project.catalog().load_table("beta__tap_jsonl_a.events")
    assert duckdb_rows(beta, "beta", "SELECT count(*) FROM t", con) == [(2,)]  # read from the start
    assert duckdb_rows(
        project.catalog().load_table("acme__tap_jsonl_a.events"), TENANT, "SELECT count(*) FROM t", con
    ) == [(2,)]

    # warn mode, a record without its key: rejected. warn_exit_code 1 (default): the loader "fails".
    (data / "a" / "part-1.jsonl").write_text('{"kind": "nokey"}\n{"id": 3, "kind": "ok"}\n')
    warn_env = {**project.env, "TARGET_DATIVO_ICEBERG_SCHEMA_VALIDATION_MODE": "warn"}
    failed = subprocess.run(
        [project.meltano, "run", "tap-jsonl-a", "target-dativo-iceberg"],
        cwd=project.root,
        env=warn_env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert failed.returncode == 1, failed.stderr[-3000:]
    a = project.catalog().load_table("acme__tap_jsonl_a.events")
    assert duckdb_rows(a, TENANT, "SELECT count(*) FROM t WHERE id = 3", con) == [(1,)]  # yet it landed
    (data / "a" / "part-2.jsonl").write_text('{"kind": "nokey2"}\n{"id": 4, "kind": "ok"}\n')
    project.env.update(
        TARGET_DATIVO_ICEBERG_SCHEMA_VALIDATION_MODE="warn", TARGET_DATIVO_ICEBERG_WARN_EXIT_CODE="0"
    )
    try:
        project.run("run", "tap-jsonl-a", "target-dativo-iceberg")  # exit 0: asserted by run()
    finally:
        del (
            project.env["TARGET_DATIVO_ICEBERG_SCHEMA_VALIDATION_MODE"],
            project.env["TARGET_DATIVO_ICEBERG_WARN_EXIT_CODE"],
        )
    a = project.catalog().load_table("acme__tap_jsonl_a.events")
    assert sorted(r["id"] for r in pyiceberg_rows(a, TENANT)) == [1, 2, 3, 4]
    assert duckdb_rows(a, TENANT, "SELECT count(*) FROM t", con) == [(4,)]
    rejected = project.catalog().load_table("acme__tap_jsonl_a.events__rejected")
    # A run Meltano counts as failed keeps no bookmark there, so the next run re-reads its files:
    # their valid rows upsert, their rejections are recorded again. Every rejection is there.
    assert {json.loads(r["_record"])["kind"] for r in pyiceberg_rows(rejected, TENANT)} == {"nokey", "nokey2"}


def test_meltano_run_json_and_ndjson_sources(project: MeltanoProject) -> None:
    """A JSON array, an NDJSON file and a Markdown-KV document (format from the extension) through
    `meltano run`, then the NDJSON file grows and only its new lines land. Read back by pyiceberg and
    DuckDB."""
    inbox = project.root / "inbox"
    inbox.mkdir()
    orders = [{"order_id": i, "amount": i * 1.25, "paid": i % 2 == 0, "meta": {"k": i}} for i in range(1, 51)]
    (inbox / "orders.json").write_text(json.dumps(orders, indent=1))
    events = inbox / "events.ndjson"
    events.write_text("".join(json.dumps({"event_id": i, "kind": f"k{i % 3}"}) + "\n" for i in range(1, 31)))
    files = [
        {"path": "inbox/orders.json", "object": "orders", "primary_keys": ["order_id"]},
        {"path": "inbox/events.ndjson", "object": "events"},
        {"path": "inbox/runbook.md", "object": "runbook"},
    ]
    (inbox / "runbook.md").write_text("# runbook\n\n## Model\nmodel: gpt-4\nstatus: live\n")
    env = {**project.env, "TAP_DATIVO_CSV_FILES": json.dumps(files), "TAP_DATIVO_CSV_INFER_TYPES": "true"}
    meltano = MeltanoProject(project.root, env, project.meltano)
    run = ("run", "tap-dativo-csv", "target-dativo-iceberg", "--state-id-suffix", "json")
    con = duckdb_connection()

    def table_rows(name: str, columns: str) -> list[tuple]:
        catalog = meltano.catalog()
        found = [
            i
            for ns in catalog.list_namespaces()
            for i in catalog.list_tables(ns)
            if i[-1] == name and i[0] == f"{TENANT}__tap_dativo_csv"  # this extractor's namespace
        ]
        assert len(found) == 1, found
        table = catalog.load_table(found[0])
        names = [c.strip() for c in columns.split(",")]
        by_pyiceberg = sorted(tuple(r[c] for c in names) for r in pyiceberg_rows(table, TENANT))
        assert sorted(duckdb_rows(table, TENANT, f"SELECT {columns} FROM t", con)) == by_pyiceberg
        return by_pyiceberg

    meltano.run(*run)
    assert table_rows("orders", "order_id, amount, paid, meta") == [
        (i, i * 1.25, i % 2 == 0, json.dumps({"k": i}, separators=(",", ":"))) for i in range(1, 51)
    ]
    assert table_rows("events", "event_id, kind") == [(i, f"k{i % 3}") for i in range(1, 31)]
    # Markdown-KV, one row per key-value pair (the default pattern)
    assert table_rows("runbook", "doc_id, section, key, value") == [
        ("runbook", "Model", "model", "gpt-4"),
        ("runbook", "Model", "status", "live"),
    ]

    with events.open("a") as handle:
        handle.writelines(json.dumps({"event_id": i, "kind": "late"}) + "\n" for i in range(31, 36))
    meltano.run(*run)
    assert table_rows("events", "event_id, kind") == sorted(
        [(i, f"k{i % 3}") for i in range(1, 31)] + [(i, "late") for i in range(31, 36)]
    )
    assert len(table_rows("orders", "order_id")) == 50


# --------------------------------------------------------------------------- `dativo` in the project


def dativo(project: MeltanoProject, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`dativo ARGS` run in the project as an operator would: no MELTANO_ENVIRONMENT, no --config."""
    env = {k: v for k, v in project.env.items() if k != "MELTANO_ENVIRONMENT"}
    return subprocess.run(
        [str(Path(project.meltano).parent / "dativo"), *args],
        cwd=cwd or project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


def test_dativo_in_the_project_finds_the_demo_data_with_no_flags(project: MeltanoProject) -> None:
    if not (project.root / ".local/iceberg/catalog.db").exists():  # this test run alone: land the demo first
        project.run("run", "tap-dativo-csv", "target-dativo-iceberg")
    table = person_table(project.catalog())
    name = ".".join(table.name()[-2:])
    rows = duckdb_rows(table, TENANT, "SELECT count(*) FROM t")[0][0]
    assert rows > 1000

    # inspect: settings from Meltano (default environment dev: tenant acme), rows read by DuckDB;
    # the same from a subdirectory of the project.
    for cwd in (project.root, project.root / "examples" / "data"):
        shown = dativo(project, "inspect", cwd=cwd)
        assert shown.returncode == 0, shown.stderr
        assert "catalog 'dativo' (sql), branch 'acme'" in shown.stdout
        line = next(ln for ln in shown.stdout.splitlines() if ln.startswith(name))
        assert line.split()[1:3] == [str(rows), "0"], line
        assert f"Meltano project {project.root} (environment dev" in shown.stderr

    listed = dativo(project, "tables")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith(name))
    assert line.split()[1:3] == [str(rows), "0"], line

    diff = dativo(project, "branch", "diff")
    assert diff.returncode == 0, diff.stderr
    assert f"{name}: " in diff.stdout and "on 'acme' not on main (fast-forward possible)" in diff.stdout

    rejected = dativo(project, "rejected", "person")
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.startswith(f"no rejected rows for {name} in catalog 'dativo' (sql), branch 'acme'")

    # state show: the ready `meltano state set` command with the project's real state id. Running
    # it restores Meltano's state from the lakehouse after the state was lost.
    stored = project.state()
    # Several pipelines load into this project's catalog (the tests before this one): the operator
    # names the pipeline's table, so the newest state shown is this pipeline's.
    shown = dativo(project, "state", "show", "--table", name)
    assert shown.returncode == 0, shown.stderr
    [command] = [
        ln for ln in shown.stdout.splitlines() if ln.startswith("meltano ") and f" {STATE_ID} " in ln
    ]
    assert command.startswith(f"meltano --environment dev state set --force {STATE_ID} '")
    project.run("state", "clear", "--force", STATE_ID)
    assert STATE_ID not in project.run("state", "list").stdout.split()  # (suffixed ids aside)
    project.run(*shlex.split(command)[1:])
    assert project.state() == stored

    # --environment is passed to Meltano: prod's settings come from variables that are not set here.
    prod = dativo(project, "inspect", "--environment", "prod")
    assert prod.returncode == 2
    assert "catalog_type 'rest' needs catalog_uri" in prod.stderr


def test_meltano_run_is_in_the_run_ledger_and_logs_structured_events(project: MeltanoProject) -> None:
    """`meltano run` with Meltano's JSON log format: the target's events and METRIC points arrive as
    fields of Meltano's own log events (not a JSON string in a log line), with `lag_seconds` from the
    tap's `time_extracted`; the run's ledger row names the extractor Meltano ran."""
    csv_path = project.root / CSV
    before = len(csv_rows(csv_path))
    with csv_path.open(encoding="utf-8") as fh:
        template = next(csv.DictReader(fh))
    with csv_path.open("a", newline="", encoding="utf-8") as fh:  # the file grows: its new rows land
        writer = csv.DictWriter(fh, fieldnames=list(template))
        for new_id in range(before + 1, before + 6):
            writer.writerow({**template, "id": new_id, "email": f"ledger.person{new_id}@example.com"})
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
    assert row["records_committed"] == 5 and row["data_files"] >= 1
    assert json.loads(row["state"]) == project.state()["singer_state"]
    assert all(r["source"] for r in runs.values())  # every run names the extractor Meltano ran


def test_dagster_sharded_backfill_through_meltano(
    project: MeltanoProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dativo_dagster`'s sharded_backfill in `meltano` mode: `meltano run --state-id-suffix
    shard-<i>-of-3` per shard with TAP_DATIVO_CSV_SHARD_COUNT/INDEX; every row lands once, each
    shard keeps its own Meltano state, and a second backfill lands nothing."""
    from dativo_dagster.definitions import backfill_job

    inbox = project.root / "backfill"
    inbox.mkdir()
    for k in range(9):
        (inbox / f"part-{k}.csv").write_text("id,name\n" + "".join(f"{10 * k + j},n{j}\n" for j in range(4)))
    files = [{"path": "backfill/*.csv", "object": "backfilled"}]
    for name in ("MELTANO_PROJECT_ROOT", "MELTANO_STATE_BACKEND_URI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**project.env, "TAP_DATIVO_CSV_FILES": json.dumps(files)}.items():
        monkeypatch.setenv(name, value)
    config = {"ops": {"plan_shards": {"config": {"shard_count": 3, "mode": "meltano", "environment": "dev"}}}}
    job = backfill_job(project.root)

    result = job.execute_in_process(run_config=config)

    assert result.success
    shards = result.output_for_node("load_shard")
    assert all(s["exit_code"] == 0 and s["records"] > 0 for s in shards.values()), shards
    assert result.output_for_node("summarise_backfill")["records"] == 36
    catalog = project.catalog()
    [ident] = [
        i for ns in catalog.list_namespaces() for i in catalog.list_tables(ns) if i[-1] == "backfilled"
    ]
    table = catalog.load_table(ident)
    expected = sorted(str(10 * k + j) for k in range(9) for j in range(4))
    assert sorted(r["id"] for r in pyiceberg_rows(table, TENANT)) == expected
    assert duckdb_rows(table, TENANT, "SELECT count(*), count(DISTINCT id) FROM t", duckdb_connection()) == [
        (36, 36)
    ]
    listed = project.run("state", "list").stdout.split()
    assert {f"{STATE_ID}:shard-{i}-of-3" for i in range(3)} <= set(listed), listed

    again = job.execute_in_process(run_config=config)
    assert again.success and again.output_for_node("summarise_backfill")["records"] == 0
