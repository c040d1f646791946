"""`dativo run`: Dativo job files end to end (tap-dativo-csv | target-dativo-iceberg) into the embedded
catalog, Parquet without a catalog (local and SeaweedFS S3 with object tags), state per job, re-runs,
exit codes, malformed jobs and secrets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from target_dativo_iceberg.ops.files import duckdb_query, table_files
from target_dativo_iceberg.ops.jobfile import JobError, load_job
from target_dativo_iceberg.ops.readback import duckdb_connection, duckdb_rows, pyiceberg_rows

pytest_plugins = ["servers"]

REPO = Path(__file__).resolve().parent.parent
DATIVO = str(Path(sys.executable).parent / "dativo")
PEOPLE = 2500  # rows of examples/data/people.csv


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory holding a copy of examples/ (jobs use paths relative to it)."""
    shutil.copytree(REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("*.py"))
    return tmp_path


def dativo_run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "STATE_DIR"}
    return subprocess.run(
        [DATIVO, "run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=600,
    )


def finished(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if '"event": "job_file_finished"' in line]


def write_job(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def test_iceberg_job_lands_once_and_keeps_its_state(workdir: Path) -> None:
    job = "examples/jobs/acme/csv_person_to_iceberg.yaml"
    run = dativo_run(workdir, "--config", job, "--mode", "self_hosted")
    assert run.returncode == 0, run.stderr
    assert '"event": "commit_success"' in run.stderr  # the run's log lines are printed
    state_file = workdir / ".local/state/acme/csv_person_to_iceberg.state.json"
    state = json.loads(state_file.read_text())
    assert state["bookmarks"]["person"]["partitions"][0]["path"] == "examples/data/people.csv"

    from pyiceberg.catalog import load_catalog

    catalog = load_catalog(
        "dativo",
        type="sql",
        uri=f"sqlite:///{workdir}/.local/iceberg/catalog.db",
        warehouse=(workdir / ".local/iceberg/warehouse").as_uri(),
    )
    table = catalog.load_table("acme__crm.person")
    assert len(pyiceberg_rows(table, "acme")) == PEOPLE
    assert duckdb_rows(table, "acme", "SELECT count(DISTINCT id) FROM t") == [(PEOPLE,)]
    snapshots = len(table.metadata.snapshots)

    again = dativo_run(workdir, "--config", job)
    assert again.returncode == 0, again.stderr
    assert '"event": "commit_success"' not in again.stderr
    table.refresh()
    assert len(table.metadata.snapshots) == snapshots
    assert len(pyiceberg_rows(table, "acme")) == PEOPLE


def test_job_dir_runs_every_job_and_returns_the_worst_code(workdir: Path) -> None:
    jobs = workdir / "examples" / "jobs"
    bad = write_job(jobs / "beta" / "broken.yaml", {"tenant_id": "beta", "source": {"files": "people.csv"}})
    run = dativo_run(workdir, "--job-dir", "examples/jobs", env={"STATE_DIR": str(workdir / "states")})
    assert run.returncode == 2, run.stderr
    assert "job examples/jobs/beta/broken.yaml: source.files: must list at least one file entry" in run.stderr
    assert {(e["job"], e["exit_code"]) for e in finished(run.stderr)} == {
        ("examples/jobs/acme/csv_person_to_iceberg.yaml", 0),
        ("examples/jobs/acme/csv_person_to_parquet.yaml", 0),
    }
    assert sorted(p.name for p in (workdir / "states" / "acme").iterdir()) == [
        "csv_person_to_iceberg.state.json",
        "csv_person_to_parquet.state.json",
    ]
    bad.unlink()
    from target_dativo_iceberg.settings import Settings

    settings = Settings.from_config({"catalog_type": "none", "warehouse": str(workdir / ".local/parquet")})
    (files,) = table_files(settings).values()
    assert duckdb.sql(f"SELECT count(DISTINCT id), count(*) FROM ({duckdb_query(files)})").fetchall() == [
        (PEOPLE, PEOPLE)
    ]
    again = dativo_run(workdir, "--job-dir", "examples/jobs", env={"STATE_DIR": str(workdir / "states")})
    assert again.returncode == 0, again.stderr
    assert table_files(settings) == {next(iter(table_files(settings))): files}  # nothing new


def test_warn_mode_rejections_exit_1(workdir: Path) -> None:
    data = workdir / "bad.csv"
    lines = (workdir / "examples/data/people.csv").read_text().splitlines()[:4]
    lines[2] = lines[2].replace(",active,", ",unknown-status,")
    data.write_text("\n".join(lines) + "\n")
    job = {
        "tenant_id": "acme",
        "asset_path": "examples/contracts/person.odcs.yaml",
        "source": {"files": [{"path": "bad.csv", "object": "person"}]},
        "target": {"catalog": {"type": "sql", "uri": f"sqlite:///{workdir}/c.db"}, "warehouse": "wh"},
        "validation": {"mode": "warn"},
    }
    run = dativo_run(workdir, "--config", str(write_job(workdir / "warn.yaml", job)))
    assert run.returncode == 1, run.stderr
    assert finished(run.stderr)[0]["target_exit_code"] == 1


@pytest.mark.parametrize(
    ("doc", "key", "problem"),
    [
        ({"source": {"files": [{"path": "x.csv"}]}}, "tenant_id", "is required"),
        ({"tenant_id": "a", "source": {"files": [{"object": "x"}]}}, "source.files[0].path", "is required"),
        (
            {"tenant_id": "a", "source_connector": "stripe"},
            "source_connector",
            "'stripe' is not a file source",
        ),
        (
            {"tenant_id": "a", "source": {"files": [{"path": "x"}]}, "target": {"colour": 1}},
            "target.colour",
            "",
        ),
        ({"tenant_id": "${NOT_SET_ANYWHERE}"}, "tenant_id", "references ${NOT_SET_ANYWHERE}"),
        (
            {"tenant_id": "a", "asset_path": "missing.yaml"},
            "asset_path",
            "contract file missing.yaml not found",
        ),
        (
            {
                "tenant_id": "a",
                "source": {"files": [{"path": "x"}]},
                "target": {"warehouse": "s3://lake/acme", "connection": {"s3": {"bucket": "other"}}},
            },
            "target",
            "connection.s3.bucket 'other' contradicts warehouse 's3://lake/acme'",
        ),
        ({"tenant_id": "a", "source": {"files": [{"path": "x"}]}, "retry_config": [1]}, "retry_config", ""),
    ],
)
def test_malformed_job_names_file_and_key(tmp_path: Path, doc: dict, key: str, problem: str) -> None:
    path = write_job(tmp_path / "job.yaml", doc)
    with pytest.raises(JobError) as info:
        load_job(path)
    assert str(info.value).startswith(f"job {path}: {key}: {problem}")


def test_malformed_job_exits_2(tmp_path: Path) -> None:
    path = write_job(
        tmp_path / "job.yaml", {"tenant_id": "a", "source": {"files": [{"path": "x"}]}, "target": []}
    )
    run = dativo_run(tmp_path, "--config", str(path))
    assert run.returncode == 2
    assert f"job {path}: target: must be a mapping" in run.stderr


def test_variables_expand_and_secrets_never_show(workdir: Path) -> None:
    secret = "sekrit-" + uuid.uuid4().hex
    job = {
        "tenant_id": "acme",
        "asset_path": "examples/contracts/person.odcs.yaml",
        "source": {"files": [{"path": "${PEOPLE_FILE}", "object": "person"}]},
        "target_connector": "s3",
        "target": {
            "warehouse": "out",
            "connection": {"s3": {"access_key_id": "AKID", "secret_access_key": "${SECRET_KEY}"}},
        },
    }
    path = write_job(workdir / "jobs" / "secret.yaml", job)
    env = {"PEOPLE_FILE": "examples/data/people.csv", "SECRET_KEY": secret}
    assert load_job_env(path, env).tap_config["files"][0]["path"] == "examples/data/people.csv"
    run = dativo_run(workdir, "--config", str(path), env=env)
    assert run.returncode == 0, run.stderr
    written = [p.read_bytes() for p in workdir.rglob("*") if p.is_file() and "examples" not in p.parts]
    assert secret not in run.stdout + run.stderr
    assert not any(secret.encode() in data for data in written)


def load_job_env(path: Path, env: dict[str, str]) -> Any:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return load_job(path)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_parquet_job_on_s3_with_tags_and_state_in_s3(workdir: Path, seaweedfs: Any) -> None:
    seaweedfs.start()
    bucket = f"jobs-{uuid.uuid4().hex[:10]}"
    client = seaweedfs.s3_client()
    client.create_bucket(Bucket=bucket)
    conn = seaweedfs.s3_connection()
    env = {
        "DATIVO_PARQUET_WAREHOUSE": f"s3://{bucket}/lake",
        "S3_ENDPOINT": conn["endpoint"],
        "AWS_ACCESS_KEY_ID": conn["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": conn["secret_access_key"],
        "AWS_REGION": conn["region"],
        "STATE_DIR": f"s3://{bucket}/state",
    }
    job = "examples/jobs/acme/csv_person_to_parquet.yaml"
    run = dativo_run(workdir, "--config", job, env=env)
    assert run.returncode == 0, run.stderr
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, MaxKeys=1000).get("Contents", []))
    data = [k for k in keys if k.endswith(".parquet")]
    assert data and all(k.startswith("lake/acme/crm/customers/person/country=") for k in data)
    assert "state/acme/csv_person_to_parquet.state.json" in keys
    records = 0
    for key in data:
        tags = {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
        assert tags["dativo-asset"] == "person" and tags["dativo-tenant"] == "acme"
        records += int(tags["dativo-records"])
    assert records == PEOPLE
    assert conn["secret_access_key"] not in run.stderr

    again = dativo_run(workdir, "--config", job, env=env)
    assert again.returncode == 0, again.stderr
    after = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, MaxKeys=1000).get("Contents", []))
    assert [k for k in after if k.endswith(".parquet")] == data

    from target_dativo_iceberg.settings import Settings

    settings = Settings.from_config(
        {"catalog_type": "none", "warehouse": f"s3://{bucket}/lake", "connection": {"s3": conn}}
    )
    (files,) = table_files(settings).values()
    con = duckdb_connection(s3=conn)
    assert con.sql(f"SELECT count(DISTINCT id) FROM ({duckdb_query(files)})").fetchall() == [(PEOPLE,)]


def test_a_stopped_target_passes_its_code_and_the_rerun_lands_each_row_once(workdir: Path) -> None:
    job = write_job(
        workdir / "stop.yaml",
        {
            "tenant_id": "acme",
            "asset_path": "examples/contracts/person.odcs.yaml",
            "source": {"files": [{"path": "examples/data/people.csv", "object": "person"}]},
            "target": {"batch_size_rows": 500, "load_method": "append-only"},
        },
    )
    stopped = dativo_run(workdir, "--config", str(job), env={"DATIVO_FAULT": "after_commit:1:term"})
    assert stopped.returncode == 143, stopped.stderr
    assert finished(stopped.stderr)[0]["target_exit_code"] == 143
    rerun = dativo_run(workdir, "--config", str(job))
    assert rerun.returncode == 0, rerun.stderr
    from pyiceberg.catalog import load_catalog

    catalog = load_catalog(
        "dativo",
        type="sql",
        uri=f"sqlite:///{workdir}/.local/iceberg/catalog.db",
        warehouse=(workdir / ".local/iceberg/warehouse").as_uri(),
    )
    table = catalog.load_table("acme__crm.person")
    assert duckdb_rows(table, "acme", "SELECT count(*), count(DISTINCT id) FROM t") == [(PEOPLE, PEOPLE)]
