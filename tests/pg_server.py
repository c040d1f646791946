"""A throwaway PostgreSQL cluster for the tests (`pg_virtualenv`), see servers.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from procs import LOOPBACK, START_TIMEOUT, free_port, stop_process_group, tail, wait_until

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
    from target_dativo_iceberg.iceberg.catalogs import sql_uri

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
