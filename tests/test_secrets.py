"""Secrets given through `${VAR}` never show up in output or in what the target writes.

The target CLI runs on the SeaweedFS REST catalog over S3 and on the PostgreSQL SQL catalog with its
S3 secret / database password in environment variables referenced from the config. Afterwards no
secret value may appear in stdout, stderr, any snapshot summary, table properties, or the tables'
metadata JSON files (current and previous). Failing runs (wrong secret) must not show it either.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from helpers import BIN, PERSON, assert_no_secret, run_target
from helpers import secret_probe_messages as messages

if TYPE_CHECKING:
    from servers import SeaweedFS

pytest_plugins = ["servers"]


def test_rest_s3_secrets_from_env_never_leak(tmp_path: Path, seaweedfs: SeaweedFS, table_bucket: str) -> None:
    from servers import CatalogBackend

    config = seaweedfs.target_settings(table_bucket)
    s3 = config["connection"]["s3"]
    env = {"DATIVO_TEST_S3_KEY": s3["access_key_id"], "DATIVO_TEST_S3_SECRET": s3["secret_access_key"]}
    s3.update(access_key_id="${DATIVO_TEST_S3_KEY}", secret_access_key="${DATIVO_TEST_S3_SECRET}")
    run = run_target(
        tmp_path,
        messages(),
        env=env,
        **config,
        assets={"person": str(PERSON)},
        schema_validation_mode="warn",
    )
    assert run.returncode == 1, run.stderr  # partial: one person rejected
    assert seaweedfs.secret_key not in (tmp_path / "target.json").read_text()  # only the reference
    expanded = {**config, "connection": {"s3": seaweedfs.s3_connection()}}
    catalog = CatalogBackend("rest", expanded).open_catalog(tmp_path)
    assert_no_secret([seaweedfs.secret_key, seaweedfs.access_key], run, catalog)


def test_postgres_password_from_env_never_leaks(tmp_path: Path, postgres_url: str) -> None:
    from servers import CatalogBackend
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    password = str(url.password)
    templated = url.set(password="PLACEHOLDER").render_as_string(hide_password=False)
    templated = templated.replace("PLACEHOLDER", "${DATIVO_TEST_PG_PASSWORD}")
    run = run_target(
        tmp_path,
        messages(),
        env={"DATIVO_TEST_PG_PASSWORD": password},
        catalog_uri=templated,
        assets={"person": str(PERSON)},
        schema_validation_mode="warn",
    )
    assert run.returncode == 1, run.stderr
    catalog = CatalogBackend("postgres", {"catalog_uri": postgres_url}).open_catalog(tmp_path)
    assert_no_secret([password], run, catalog)


def test_wrong_s3_secret_run_shows_neither_secret(
    tmp_path: Path, seaweedfs: SeaweedFS, table_bucket: str
) -> None:
    config = seaweedfs.target_settings(table_bucket)
    wrong = "wrong-" + seaweedfs.secret_key[::-1]
    config["connection"]["s3"]["secret_access_key"] = "${DATIVO_TEST_S3_SECRET}"
    run = run_target(
        tmp_path,
        messages(),
        env={"DATIVO_TEST_S3_SECRET": wrong},
        **config,
        retry_config={"max_retries": 0},
    )
    assert run.returncode == 2, run.stderr
    assert seaweedfs.iceberg_uri in run.stderr or seaweedfs.s3_endpoint in run.stderr
    assert_no_secret([wrong, seaweedfs.secret_key], run)


def test_wrong_postgres_password_run_does_not_show_it(tmp_path: Path, postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    wrong = "not-the-pg-password-0451"
    templated = make_url(postgres_url).set(password="PLACEHOLDER").render_as_string(hide_password=False)
    run = run_target(
        tmp_path,
        messages(),
        env={"DATIVO_TEST_PG_PASSWORD": wrong},
        catalog_uri=templated.replace("PLACEHOLDER", "${DATIVO_TEST_PG_PASSWORD}"),
        retry_config={"max_retries": 0},
    )
    assert run.returncode == 2, run.stderr
    assert "authentication failed" in run.stderr
    assert_no_secret([wrong, str(make_url(postgres_url).password)], run)


def test_secret_settings_are_marked_secret_in_about() -> None:
    proc = subprocess.run(
        [str(BIN / "target-dativo-iceberg"), "--about", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    s3 = json.loads(proc.stdout)["settings"]["properties"]["connection"]["properties"]["s3"]["properties"]
    assert s3["secret_access_key"].get("secret") is True
    assert s3["access_key_id"].get("secret") is True
