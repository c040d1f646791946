"""Preflight and `dativo doctor`: branch, catalog and storage checked before any input is read.

Good configurations on SQLite, PostgreSQL and the SeaweedFS REST catalog over S3 pass; an
unreachable endpoint, a hung endpoint, a wrong S3 secret and a bad branch name fail within seconds
with the endpoint named and no secret shown. Nessie runs against the fake in tests/servers.py.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import BIN, record, run_target, schema_msg, state, target_config

from target_dativo_iceberg.errors import PreflightError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.retry import RetryPolicy
from target_dativo_iceberg.ops.preflight import (
    branch_name_problem,
    check_all,
    run_preflight,
)
from target_dativo_iceberg.settings import Settings

if TYPE_CHECKING:
    from servers import FakeNessie, SeaweedFS

pytest_plugins = ["servers"]

FAST = RetryPolicy(max_retries=1, retry_delay_seconds=0.1)


class Events:
    """An EventLog into memory with the settings' secrets registered, as the target builds it."""

    def __init__(self, settings: Settings) -> None:
        self.buffer = io.StringIO()
        self.log = EventLog(settings.tenant_id, "run-1", settings.secret_values(), stream=self.buffer)

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e for e in map(json.loads, self.buffer.getvalue().splitlines()) if e["event"] == name]

    @property
    def text(self) -> str:
        return self.buffer.getvalue()


def settings_for(root: Path, **extra: Any) -> Settings:
    return Settings.from_config(target_config(root, **extra))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections but never answers (a hung server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def doctor(root: Path, config: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    cfg = root / "doctor.json"
    root.mkdir(parents=True, exist_ok=True)
    cfg.write_text(json.dumps(config))
    return subprocess.run(
        [str(BIN / "dativo"), "doctor", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )


def check_lines(stdout: str) -> dict[str, str]:
    """`dativo doctor` output: check name → its status word."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("ok", "FAILED"):
            out[parts[1]] = parts[0]
    return out


# --------------------------------------------------------------------------- units


@pytest.mark.parametrize("name", ["acme", "main", "tenant-1", "team/etl", "a.b_c"])
def test_valid_branch_names(name: str) -> None:
    assert branch_name_problem(name) is None
    assert branch_name_problem(name, nessie=True) is None


@pytest.mark.parametrize("name", ["", "  ", "two words", "tab\there", "x" * 256])
def test_invalid_branch_names(name: str) -> None:
    assert branch_name_problem(name) is not None


@pytest.mark.parametrize("name", ["1abc", "-x", "a..b", "a/", "ünïcode", "a//b"])
def test_invalid_nessie_reference_names(name: str) -> None:
    assert branch_name_problem(name, nessie=True) is not None


# --------------------------------------------------------------------------- good configurations


def test_preflight_ok_on_sqlite(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    events = Events(settings)
    run_preflight(settings, events.log)
    [ok] = events.of("preflight_ok")
    assert set(ok["timings_ms"]) == {"branch", "catalog", "storage"}
    assert ok["duration_ms"] >= ok["timings_ms"]["catalog"]
    assert "temporary file" in ok["checks"]["storage"]
    assert list((tmp_path / "warehouse").iterdir()) == []  # the probe is gone


def test_preflight_ok_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    settings = settings_for(tmp_path, catalog_uri=postgres_url)
    events = Events(settings)
    run_preflight(settings, events.log, FAST)
    [ok] = events.of("preflight_ok")
    password = make_url(postgres_url).password
    assert password and password not in events.text
    assert ":***@" in ok["checks"]["catalog"]


def test_preflight_ok_on_rest_over_s3(tmp_path: Path, seaweedfs: SeaweedFS, table_bucket: str) -> None:
    settings = settings_for(tmp_path, **seaweedfs.target_settings(table_bucket))
    events = Events(settings)
    run_preflight(settings, events.log, FAST)
    [ok] = events.of("preflight_ok")
    assert (
        f"s3://{table_bucket}/" in ok["checks"]["storage"]
        and seaweedfs.s3_endpoint in ok["checks"]["storage"]
    )
    assert seaweedfs.secret_key not in events.text
    listed = seaweedfs.s3_client().list_objects_v2(Bucket=table_bucket, Prefix="_dativo_preflight/")
    leftovers = [o["Key"] for o in listed.get("Contents", []) if not o["Key"].endswith("/")]
    assert leftovers == []  # the probe object was deleted (SeaweedFS may keep the empty directory)


def test_preflight_skips_storage_the_catalog_manages(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        catalog_type="rest",
        catalog_uri=f"http://127.0.0.1:{closed_port()}",
        warehouse="analytics",  # a Polaris/Lakekeeper catalog name, not a storage URI
    )
    results = {r.name: r for r in check_all(settings, Events(settings).log)}
    assert results["storage"].ok and results["storage"].skipped
    assert "managed by the catalog" in results["storage"].detail
    vended = settings_for(
        tmp_path,
        catalog_type="rest",
        catalog_uri="http://127.0.0.1:1",
        warehouse="s3://lake/wh",
        catalog_properties={"header.X-Iceberg-Access-Delegation": "vended-credentials"},
    )
    storage = check_all(vended, Events(vended).log)[-1]
    assert storage.skipped and "vends storage credentials" in storage.detail


def test_rest_storage_without_client_keys_is_left_to_the_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without our own storage keys a REST catalog vends them per table: a denied probe is not a failure."""
    from target_dativo_iceberg.ops import preflight

    def denied(warehouse: str, props: dict[str, Any]) -> str:
        raise OSError("AWS Error ACCESS_DENIED during PutObject operation: Access Denied.")

    monkeypatch.setattr(preflight, "_probe_remote", denied)
    base = {"catalog_type": "rest", "catalog_uri": "http://127.0.0.1:1", "warehouse": "s3://lake/wh"}
    settings = settings_for(tmp_path, **base)
    result = preflight.check_storage(settings, Events(settings).log, FAST, None, 5)
    assert result.ok and result.skipped and "vends them per table" in result.detail
    keys = {"access_key_id": "AKIDEXAMPLE0001", "secret_access_key": "not-so-secret-0001"}
    with_keys = settings_for(tmp_path, **base, connection={"s3": keys})
    result = preflight.check_storage(with_keys, Events(with_keys).log, FAST, None, 5)
    assert not result.ok and result.detail.startswith(
        "cannot write to s3://lake/wh: OSError: AWS Error ACCESS_DENIED"
    )
    assert "not-so-secret-0001" not in result.detail


# --------------------------------------------------------------------------- failures


def test_unreachable_rest_catalog_fails_fast_naming_the_endpoint(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    settings = settings_for(tmp_path, catalog_type="rest", catalog_uri=uri)
    events = Events(settings)
    started = time.monotonic()
    with pytest.raises(PreflightError) as raised:
        run_preflight(settings, events.log, FAST)
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert message.startswith("preflight catalog check failed: rest catalog at " + uri)
    assert "Connection refused" in message and "after 2 attempt(s)" in message
    assert [e["attempt"] for e in events.of("retry")] == [1]
    assert events.of("preflight_failed")[0]["check"] == "catalog"
    assert raised.value.exit_code == 2


def test_unreachable_postgres_hides_the_password(tmp_path: Path) -> None:
    url = f"postgresql://dativo:pg-s3cr3t-pw@127.0.0.1:{closed_port()}/lake"
    settings = settings_for(tmp_path, catalog_uri=url)
    with pytest.raises(PreflightError) as raised:
        run_preflight(settings, Events(settings).log, FAST)
    message = str(raised.value)
    assert "pg-s3cr3t-pw" not in message
    assert "postgresql+psycopg2://dativo:***@127.0.0.1" in message and "onnection refused" in message


def test_hung_catalog_times_out(tmp_path: Path, silent_port: int) -> None:
    settings = settings_for(tmp_path, catalog_type="rest", catalog_uri=f"http://127.0.0.1:{silent_port}")
    started = time.monotonic()
    with pytest.raises(
        PreflightError, match=rf"127\.0\.0\.1:{silent_port}.*TimeoutError.*no answer within 1 s"
    ):
        run_preflight(settings, Events(settings).log, timeout=1)
    assert time.monotonic() - started < 5


def test_wrong_s3_secret_fails_without_showing_it(
    tmp_path: Path, seaweedfs: SeaweedFS, table_bucket: str
) -> None:
    config = seaweedfs.target_settings(table_bucket)
    wrong = "wrong-" + seaweedfs.secret_key
    config["connection"]["s3"]["secret_access_key"] = wrong
    settings = settings_for(tmp_path, **config)
    events = Events(settings)
    started = time.monotonic()
    with pytest.raises(PreflightError) as raised:
        run_preflight(settings, events.log, FAST)
    assert time.monotonic() - started < 10  # a bad signature is permanent: no backoff
    message = str(raised.value)
    assert seaweedfs.iceberg_uri in message or seaweedfs.s3_endpoint in message
    assert "signature" in message.lower()
    assert wrong not in message and wrong not in events.text
    assert events.of("retry") == []


def test_invalid_branch_fails_before_contacting_anything(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, branch="two words")
    with pytest.raises(PreflightError, match="preflight branch check failed: branch 'two words'"):
        run_preflight(settings, Events(settings).log)
    assert not (tmp_path / "catalog.db").exists()


# --------------------------------------------------------------------------- Nessie (fake)


def nessie_settings(root: Path, fake: FakeNessie, branch: str = "acme") -> Settings:
    return settings_for(
        root,
        branch=branch,
        catalog_type="nessie",
        catalog_uri="",
        warehouse=str(root / "warehouse"),
        connection={"nessie": {"uri": f"{fake.url}/api/v1"}},
    )


def test_preflight_creates_the_nessie_branch(tmp_path: Path, fake_nessie: FakeNessie) -> None:
    settings = nessie_settings(tmp_path, fake_nessie)
    events = Events(settings)
    run_preflight(settings, events.log)
    assert fake_nessie.refs["acme"] == fake_nessie.refs["main"]
    [ok] = events.of("preflight_ok")
    assert "created from main" in ok["checks"]["branch"]
    assert ("GET", "/iceberg/acme/v1/namespaces", None) in fake_nessie.calls  # catalog on the new ref
    run_preflight(settings, Events(settings).log)  # second run: the reference exists
    assert sorted(fake_nessie.refs) == ["acme", "main"]


def test_doctor_reports_a_missing_nessie_branch_without_creating_it(
    tmp_path: Path, fake_nessie: FakeNessie
) -> None:
    settings = nessie_settings(tmp_path, fake_nessie)
    results = check_all(settings, Events(settings).log, create_branch=False)
    assert all(r.ok for r in results), results
    assert "missing; the target creates it from main" in results[0].detail
    assert "acme" not in fake_nessie.refs
    bad = nessie_settings(tmp_path, fake_nessie, branch="1-not-a-ref")
    with pytest.raises(PreflightError, match="not a valid Nessie reference name"):
        run_preflight(bad, Events(bad).log)


def test_unreachable_nessie_names_its_api(tmp_path: Path) -> None:
    port = closed_port()
    settings = settings_for(
        tmp_path,
        catalog_type="nessie",
        catalog_uri=f"http://127.0.0.1:{port}/api/v1",
        warehouse=str(tmp_path),
    )
    with pytest.raises(
        PreflightError, match=rf"branch check failed: Nessie at http://127.0.0.1:{port}/api/v2"
    ):
        run_preflight(settings, Events(settings).log, FAST)


# --------------------------------------------------------------------------- dativo doctor


def test_doctor_cli_good_sqlite(tmp_path: Path) -> None:
    proc = doctor(tmp_path, target_config(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert check_lines(proc.stdout) == {"config": "ok", "branch": "ok", "catalog": "ok", "storage": "ok"}


def test_doctor_cli_good_postgres(tmp_path: Path, postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    proc = doctor(tmp_path, target_config(tmp_path, catalog_uri=postgres_url))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert check_lines(proc.stdout)["catalog"] == "ok"
    assert make_url(postgres_url).password not in proc.stdout + proc.stderr


def test_doctor_cli_good_rest(tmp_path: Path, seaweedfs: SeaweedFS, table_bucket: str) -> None:
    proc = doctor(tmp_path, target_config(tmp_path, **seaweedfs.target_settings(table_bucket)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert check_lines(proc.stdout) == {"config": "ok", "branch": "ok", "catalog": "ok", "storage": "ok"}
    assert f"s3://{table_bucket}/" in proc.stdout
    assert seaweedfs.secret_key not in proc.stdout + proc.stderr


def test_doctor_cli_unreachable_rest(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    proc = doctor(tmp_path, target_config(tmp_path, catalog_type="rest", catalog_uri=uri))
    assert time.monotonic() - started < 15
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert check_lines(proc.stdout)["catalog"] == "FAILED"
    failed = next(line for line in proc.stdout.splitlines() if line.startswith("FAILED"))
    assert uri in failed and "Connection refused" in failed
    assert "doctor: 1 check(s) failed: catalog" in proc.stdout


def test_doctor_cli_wrong_s3_secret(tmp_path: Path, seaweedfs: SeaweedFS, table_bucket: str) -> None:
    config = seaweedfs.target_settings(table_bucket)
    wrong = "wrong-" + seaweedfs.secret_key
    config["connection"]["s3"]["secret_access_key"] = wrong
    proc = doctor(tmp_path, target_config(tmp_path, **config), "--verbose")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "FAILED" in proc.stdout
    assert wrong not in proc.stdout + proc.stderr and seaweedfs.secret_key not in proc.stdout + proc.stderr


def test_doctor_cli_bad_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATIVO_UNSET_VARIABLE", raising=False)
    proc = doctor(tmp_path, {"catalog_uri": "${DATIVO_UNSET_VARIABLE}"})
    assert proc.returncode == 2
    assert check_lines(proc.stdout) == {"config": "FAILED"}
    assert "DATIVO_UNSET_VARIABLE" in proc.stdout


# --------------------------------------------------------------------------- the target runs it


def test_target_runs_preflight_before_reading_input(tmp_path: Path) -> None:
    messages = [schema_msg("users", {"id": {"type": "integer"}}), record("users", id=1), state({"n": 1})]
    run = run_target(tmp_path, messages)
    assert run.returncode == 0, run.stderr
    names = [e["event"] for e in run.events()]
    assert "preflight_ok" in names and names.index("preflight_ok") < names.index("table_ensured")


def test_target_fails_preflight_before_reading_input(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    run = run_target(
        tmp_path,
        "this is not a Singer message\n",
        catalog_type="rest",
        catalog_uri=uri,
        retry_config={"max_retries": 1, "retry_delay_seconds": 0.1},
    )
    assert time.monotonic() - started < 30
    assert run.returncode == 2
    assert "preflight catalog check failed" in run.stderr and uri in run.stderr
    assert "Unable to parse" not in run.stderr  # failed on the catalog, before the input
    assert run.events("job_finished")[-1]["status"] == "failed"
