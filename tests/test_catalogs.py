"""Catalog properties per catalog_type, and the target against real catalogs.

PostgreSQL (pg_virtualenv or DATIVO_TEST_PG_URL) and SeaweedFS (S3 + Iceberg REST catalog) are
started by the fixtures in tests/servers.py. Nessie cannot run here: its URL mapping and the
branch-creation calls are tested against a fake that follows Nessie's REST API v2.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import record, run_target, schema_msg, start_target, state
from procs import wait_until

from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.iceberg.catalogs import (
    catalog_properties,
    ensure_nessie_branch,
    nessie_api_v2_uri,
    nessie_base_uri,
    nessie_iceberg_uri,
    s3_file_io_properties,
)
from target_dativo_iceberg.ops.readback import duckdb_rows, pyiceberg_rows
from target_dativo_iceberg.settings import Settings

if TYPE_CHECKING:  # imported at run time inside the tests, after pytest loaded it as a plugin
    from servers import CatalogBackend, FakeNessie, SeaweedFS

pytest_plugins = ["servers"]

S3 = {
    "endpoint": "http://127.0.0.1:8333",
    "bucket": "lake",
    "access_key_id": "AKIDEXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI",
    "region": "eu-west-1",
    "path_style_access": True,
}

# --------------------------------------------------------------------------- properties


def test_s3_connection_maps_to_file_io_properties() -> None:
    assert s3_file_io_properties(S3) == {
        "s3.endpoint": "http://127.0.0.1:8333",
        "s3.access-key-id": "AKIDEXAMPLE",
        "s3.secret-access-key": "wJalrXUtnFEMI",
        "s3.region": "eu-west-1",
        "s3.force-virtual-addressing": "false",
    }
    # Meltano env vars arrive as strings.
    assert s3_file_io_properties({"path_style_access": "false"}) == {"s3.force-virtual-addressing": "true"}
    assert s3_file_io_properties({"session_token": "tok"}) == {"s3.session-token": "tok"}
    assert s3_file_io_properties({}) == {}


def test_sql_catalog_properties(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    props = Settings.from_config({}).catalog_load_properties()
    assert props == {
        "type": "sql",
        "uri": f"sqlite:///{tmp_path}/.local/iceberg/catalog.db",
        "warehouse": (tmp_path / ".local/iceberg/warehouse").as_uri(),
    }
    assert (tmp_path / ".local/iceberg/warehouse").is_dir()

    pg = "postgresql+psycopg2://u:p@127.0.0.1:5432/lake"
    assert catalog_properties("sql", "postgresql://u:p@127.0.0.1:5432/lake", "s3://b/w")["uri"] == pg
    assert catalog_properties("sql", "jdbc:postgresql://u:p@127.0.0.1:5432/lake", "s3://b/w")["uri"] == pg
    assert catalog_properties("sql", pg, "s3://b/w", s3=S3) == {
        "type": "sql",
        "uri": pg,
        "warehouse": "s3://b/w",
        **s3_file_io_properties(S3),
    }


def test_rest_catalog_properties() -> None:
    base = {"type": "rest", "uri": "https://cat.example/api/catalog", "warehouse": "analytics"}
    # No auth configured: no Authorization header at all (pyiceberg 0.12 would send "Bearer None").
    assert catalog_properties("rest", "https://cat.example/api/catalog/", "analytics") == {
        **base,
        "auth": {"type": "noop"},
    }
    # OAuth2 client credentials / token pass through; user properties win over mapped ones.
    oauth = catalog_properties(
        "rest",
        "https://cat.example/api/catalog",
        "analytics",
        s3=S3,
        user_properties={"credential": "id:secret", "scope": "PRINCIPAL_ROLE:ALL", "s3.region": "us-east-2"},
    )
    assert "auth" not in oauth and oauth["credential"] == "id:secret" and oauth["s3.region"] == "us-east-2"
    assert catalog_properties("rest", "https://c", "w", user_properties={"token": "t"})["token"] == "t"
    custom = {"type": "oauth2", "oauth2": {"client_id": "a", "client_secret": "b", "token_url": "https://t"}}
    assert catalog_properties("rest", "https://c", "w", user_properties={"auth": custom})["auth"] == custom
    # SigV4 (S3 Tables, SeaweedFS): the S3 keys sign catalog requests unless client.* are given.
    sigv4 = catalog_properties(
        "rest", "https://c", "s3://tb/", s3=S3, user_properties={"rest.sigv4-enabled": True}
    )
    assert sigv4["rest.sigv4-enabled"] == "true" and "auth" not in sigv4
    assert sigv4["client.access-key-id"] == "AKIDEXAMPLE"
    assert sigv4["client.secret-access-key"] == "wJalrXUtnFEMI"
    assert sigv4["client.region"] == sigv4["rest.signing-region"] == "eu-west-1"
    # The embedded defaults mean nothing to a REST catalog: the server picks the warehouse.
    settings = Settings.from_config({"catalog_type": "rest", "catalog_uri": "http://127.0.0.1:8181"})
    assert "warehouse" not in settings.catalog_load_properties()
    with pytest.raises(ConfigError, match="catalog_uri"):
        Settings.from_config({"catalog_type": "rest"}).catalog_load_properties()


@pytest.mark.parametrize(
    "uri",
    [
        "http://nessie:19120",
        "http://nessie:19120/",
        "http://nessie:19120/api/v1",
        "http://nessie:19120/api/v2/",
        "http://nessie:19120/api",
        "http://nessie:19120/iceberg",
        "http://nessie:19120/iceberg/main",
    ],
)
def test_nessie_urls(uri: str) -> None:
    assert nessie_base_uri(uri) == "http://nessie:19120"
    assert nessie_iceberg_uri(uri, "acme") == "http://nessie:19120/iceberg/acme"
    assert nessie_api_v2_uri(uri) == "http://nessie:19120/api/v2"


def test_nessie_behind_a_path_prefix() -> None:
    assert (
        nessie_iceberg_uri("https://gw.example/nessie/api/v1", "dev")
        == "https://gw.example/nessie/iceberg/dev"
    )


def test_nessie_catalog_properties() -> None:
    settings = Settings.from_config(
        {
            "tenant_id": "acme",
            "catalog_type": "nessie",
            "catalog_uri": "http://127.0.0.1:19120/api/v1",
            "warehouse": "s3://lake/warehouse",
            "connection": {"s3": S3},
        }
    )
    props = settings.catalog_load_properties()
    assert props["type"] == "rest"
    assert props["uri"] == "http://127.0.0.1:19120/iceberg/acme"  # the branch is the Nessie reference
    assert props["warehouse"] == "s3://lake/warehouse"
    assert props["s3.endpoint"] == "http://127.0.0.1:8333"
    # connection.nessie.uri is used when given (Settings must carry `nessie`; see the report for config.py)
    assert catalog_properties("nessie", "", "", nessie_uri="http://n:19120/api/v2", branch="main")["uri"] == (
        "http://n:19120/iceberg/main"
    )
    with pytest.raises(ConfigError, match="nessie"):
        catalog_properties("nessie", "", "")


def test_glue_and_hive_pass_through() -> None:
    glue = catalog_properties("glue", "", "s3://lake/wh", s3=S3, user_properties={"glue.id": "123456789012"})
    assert (
        glue["type"] == "glue" and glue["glue.id"] == "123456789012" and glue["warehouse"] == "s3://lake/wh"
    )
    assert glue["client.region"] == "eu-west-1" and glue["s3.endpoint"] == S3["endpoint"]
    hive = catalog_properties("hive", "thrift://127.0.0.1:9083", "s3://lake/wh")
    assert hive == {"type": "hive", "uri": "thrift://127.0.0.1:9083", "warehouse": "s3://lake/wh"}


# --------------------------------------------------------------------------- Nessie (fake server, tests/servers.py)


def test_nessie_branch_created_from_main(fake_nessie: FakeNessie) -> None:
    main_hash = fake_nessie.refs["main"]
    assert ensure_nessie_branch(f"{fake_nessie.url}/api/v1", "acme") is True
    assert fake_nessie.refs["acme"] == main_hash
    assert (
        "POST",
        "/api/v2/trees?name=acme&type=BRANCH",
        {"type": "BRANCH", "name": "main", "hash": main_hash},
    ) in (fake_nessie.calls)
    fake_nessie.calls.clear()
    assert ensure_nessie_branch(fake_nessie.url, "acme") is False  # exists: one GET, nothing created
    assert fake_nessie.calls == [("GET", "/api/v2/trees/acme", None)]
    with pytest.raises(RuntimeError, match="source reference 'nope'"):
        ensure_nessie_branch(fake_nessie.url, "other", from_ref="nope")


# --------------------------------------------------------------------------- real catalogs

USERS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}
SUMMARY_KEYS = {
    "dativo.run-id",
    "dativo.commit-id",
    "dativo.tenant",
    "dativo.stream",
    "dativo.records",
    "dativo.singer-state",
}


def _users(first: int, count: int, bookmark: int) -> list[dict[str, Any]]:
    return [
        schema_msg("users", USERS, ["id"]),
        *[record("users", id=i, name=f"user {i}") for i in range(first, first + count)],
        state({"bookmarks": {"users": {"replication_key_value": bookmark}}}),
    ]


def test_target_lands_on_tenant_branch(tmp_path: Path, catalog_backend: CatalogBackend) -> None:
    """Same scenario on SQLite, PostgreSQL and the SeaweedFS REST catalog over S3."""
    run = run_target(tmp_path, _users(1, 3, 3), **catalog_backend.settings)
    assert run.returncode == 0, run.stderr
    assert run.states == [{"bookmarks": {"users": {"replication_key_value": 3}}}]
    run = run_target(tmp_path, _users(4, 2, 5), **catalog_backend.settings)  # the table exists now
    assert run.returncode == 0, run.stderr

    catalog = catalog_backend.open_catalog(tmp_path)
    table = catalog.load_table("acme.users")
    assert sorted(r["id"] for r in pyiceberg_rows(table, "acme")) == [1, 2, 3, 4, 5]
    assert pyiceberg_rows(table, "main") == []  # main untouched: only the empty table-created snapshot
    summary = table.snapshot_by_name("acme").summary
    assert summary is not None
    props = summary.additional_properties
    assert set(props) >= SUMMARY_KEYS, props
    assert props["dativo.tenant"] == "acme" and props["dativo.records"] == "2"
    assert json.loads(props["dativo.singer-state"]) == {"bookmarks": {"users": {"replication_key_value": 5}}}

    con = catalog_backend.duckdb()
    assert duckdb_rows(table, "acme", "SELECT id, name FROM t ORDER BY id", con) == [
        (i, f"user {i}") for i in range(1, 6)
    ]
    assert duckdb_rows(table, "main", "SELECT count(*) FROM t", con) == [(0,)]


def test_postgres_catalog_uses_iceberg_tables(tmp_path: Path, postgres_url: str) -> None:
    """The PostgreSQL catalog holds the JDBC catalog's `iceberg_tables` rows; the target's metadata is there."""
    import sqlalchemy

    run = run_target(tmp_path, _users(1, 2, 2), catalog_uri=postgres_url, catalog_name="lake")
    assert run.returncode == 0, run.stderr
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.connect() as con:
            rows = con.execute(
                sqlalchemy.text(
                    "SELECT catalog_name, table_namespace, table_name, metadata_location FROM iceberg_tables"
                )
            ).all()
    finally:
        engine.dispose()
    assert [r[:3] for r in rows if r[1] != "_dativo"] == [("lake", "acme", "users")]  # not the run ledger
    assert rows[0][3].startswith((tmp_path / "warehouse").as_uri())


def test_postgres_password_not_logged(tmp_path: Path, postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    password = make_url(postgres_url).password
    assert password
    run = run_target(tmp_path, _users(1, 1, 1), catalog_uri=postgres_url)
    assert run.returncode == 0, run.stderr
    assert password not in run.stderr and password not in run.stdout


def test_rest_catalog_writes_to_s3(tmp_path: Path, seaweedfs: SeaweedFS, table_bucket: str) -> None:
    """Data, manifests and metadata sit in the table bucket; DuckDB reads them over S3."""
    from servers import CatalogBackend

    settings = seaweedfs.target_settings(table_bucket)
    run = run_target(tmp_path, _users(1, 3, 3), **settings)
    assert run.returncode == 0, run.stderr
    table = CatalogBackend("rest", settings).open_catalog(tmp_path).load_table("acme.users")
    assert table.metadata_location.startswith(f"s3://{table_bucket}/acme/users/metadata/")
    keys = [
        o["Key"]
        for o in seaweedfs.s3_client().list_objects_v2(Bucket=table_bucket, Prefix="acme/users/")["Contents"]
    ]
    assert any(k.startswith("acme/users/data/") and k.endswith(".parquet") for k in keys), keys
    con = CatalogBackend("rest", settings, s3=seaweedfs.s3_connection()).duckdb()
    rows = con.execute(
        f"SELECT count(*) FROM iceberg_scan('{table.metadata_location}', "
        f"snapshot_from_id={table.snapshot_by_name('acme').snapshot_id})"
    ).fetchall()
    assert rows == [(3,)]
    assert seaweedfs.secret_key not in run.stderr


def test_rest_catalog_wrong_secret_fails_without_leaking_it(
    tmp_path: Path, seaweedfs: SeaweedFS, table_bucket: str
) -> None:
    settings = seaweedfs.target_settings(table_bucket)
    wrong = "wrong-" + seaweedfs.secret_key
    settings["connection"]["s3"]["secret_access_key"] = wrong
    run = run_target(tmp_path, _users(1, 1, 1), **settings)
    assert run.returncode == 2, run.stderr
    assert seaweedfs.iceberg_uri in run.stderr  # the message names the endpoint
    assert wrong not in run.stderr and wrong not in run.stdout
    assert run.states == []


def test_seaweedfs_restart_keeps_tables(tmp_path: Path, seaweedfs: SeaweedFS, table_bucket: str) -> None:
    """The fixture can crash and restart the server on the same endpoints (for retry tests)."""
    from servers import CatalogBackend

    settings = seaweedfs.target_settings(table_bucket)
    assert run_target(tmp_path, _users(1, 2, 2), **settings).returncode == 0
    pid = seaweedfs.pid
    seaweedfs.stop(kill=True)
    assert seaweedfs.pid is None
    seaweedfs.start()
    assert seaweedfs.pid not in (None, pid)
    table = CatalogBackend("rest", settings).open_catalog(tmp_path).load_table("acme.users")
    rows: list[Any] = []

    def readable() -> bool:  # a restarted volume server can answer 500 for a moment (warm-up)
        rows[:] = pyiceberg_rows(table, "acme")
        return True

    wait_until(readable, 30, "reading acme.users after the restart", lambda: None)
    assert sorted(r["id"] for r in rows) == [1, 2]


@pytest.mark.parametrize("backend", ["postgres", "rest"])
def test_concurrent_writers_all_land(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    """Four target processes append to the same table and branch at once: every commit lands once."""
    import subprocess

    from helpers import singer_lines, target_config

    if backend == "postgres":
        settings: dict[str, Any] = {"catalog_uri": request.getfixturevalue("postgres_url")}
    else:
        server = request.getfixturevalue("seaweedfs")
        settings = server.target_settings(request.getfixturevalue("table_bucket"))
    from servers import CatalogBackend

    # Create the table once first: SeaweedFS 4.48's REST catalog can replace a table that several
    # clients create at the same moment (each gets "created", the last one wins), which no client
    # can detect; concurrent *commits* to an existing table are what this test is about.
    seed = run_target(tmp_path / "seed", _users(10_000, 1, 0), **settings)
    assert seed.returncode == 0, seed.stderr
    cfg = tmp_path / "target.json"
    cfg.write_text(json.dumps(target_config(tmp_path, **settings)))
    writers = 4
    procs = [start_target(cfg, tmp_path) for _ in range(writers)]
    threads = []
    results: dict[int, tuple[int, str]] = {}
    for w, proc in enumerate(procs):
        text = singer_lines(_users(1 + 100 * w, 50, w))

        def communicate(w: int = w, proc: subprocess.Popen[str] = proc, text: str = text) -> None:
            _, err = proc.communicate(text, timeout=300)
            results[w] = (proc.returncode, err)

        threads.append(threading.Thread(target=communicate))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failures = [line for _, err in results.values() for line in err.splitlines() if "ERROR" in line]
    assert [results[w][0] for w in range(writers)] == [0] * writers, failures
    table = CatalogBackend(backend, settings).open_catalog(tmp_path).load_table("acme.users")
    ids = [r["id"] for r in pyiceberg_rows(table, "acme")]
    assert len(ids) == len(set(ids)) == 50 * writers + 1
