"""Run manifests of `catalog_type: none`: which Parquet files are committed, and the Singer state.

Without a catalog, a data file becomes visible only through a manifest: the JSON document
`{table}/_dativo/manifests/{run_id}.json`, one per table and run, rewritten whole after each commit
of the run (its files so far, the Singer state the commit covers and the replay marker) and written
only after the commit's Parquet files are complete. A local manifest is replaced atomically
(`os.replace`), an S3 one by a single PUT, so a reader sees the previous version or the new one,
never a part. Files of a run that died before its manifest named them stay invisible (and can be
deleted by anyone: no manifest names them).

Readers take the committed file list from here (`committed_files`, `dativo files`): DuckDB
`read_parquet([...], hive_partitioning = true)` and `pyarrow.dataset.dataset([...], partitioning="hive")`.
The `_dativo` directory starts with `_`, which Hive-style readers skip when they list a table directory.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from target_dativo_iceberg.iceberg.objecttags import is_s3, split_s3

MANIFEST_DIR = "_dativo/manifests"
FORMAT = "dativo-run-manifest/1"


def manifest_location(table_location: str, run_id: str) -> str:
    """Where a run's manifest of one table lives."""
    return f"{table_location.rstrip('/')}/{MANIFEST_DIR}/{run_id}.json"


@dataclass
class RunManifest:
    """One run's committed files of one table (the document `Store.put_json` writes)."""

    table: str
    location: str
    run_id: str
    tenant: str
    branch: str
    stream: str
    commits: list[dict[str, t.Any]] = field(default_factory=list)

    def add(self, commit_id: str, files: list[dict[str, t.Any]], summary: dict[str, str]) -> None:
        """Record one commit (its files and snapshot-summary-like markers)."""
        self.commits.append({"commit_id": commit_id, "files": files, "summary": summary})

    @property
    def records(self) -> int:
        return sum(f["records"] for c in self.commits for f in c["files"])

    def document(self) -> dict[str, t.Any]:
        last = self.commits[-1]["summary"] if self.commits else {}
        return {
            "format": FORMAT,
            "table": self.table,
            "location": self.location,
            "run_id": self.run_id,
            "tenant": self.tenant,
            "branch": self.branch,
            "stream": self.stream,
            "updated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "records": self.records,
            "singer_state": json.loads(last.get("dativo.singer-state") or "null"),
            "replay": last.get("dativo.replay"),
            "commits": self.commits,
        }


class Store:
    """Reads, writes and lists small objects under a warehouse: local paths or `s3://` (boto3)."""

    def __init__(self, client_factory: t.Callable[[], t.Any]) -> None:
        self._client_factory = client_factory
        self._client: t.Any = None

    @property
    def client(self) -> t.Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def put_json(self, location: str, document: dict[str, t.Any]) -> None:
        """Write the whole document at once (atomic replace locally, one PUT on S3)."""
        data = json.dumps(document, indent=1, sort_keys=True, default=str).encode()
        if is_s3(location):
            bucket, key = split_s3(location)
            self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")
            return
        path = Path(location.removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def manifests(self, table_location: str) -> list[dict[str, t.Any]]:
        """Every run manifest of the table (oldest update first)."""
        prefix = f"{table_location.rstrip('/')}/{MANIFEST_DIR}/"
        docs = []
        if is_s3(prefix):
            bucket, key = split_s3(prefix)
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
            for page in pages:
                for item in page.get("Contents", []):
                    if item["Key"].endswith(".json"):
                        body = self.client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                        docs.append(json.loads(body))
        else:
            folder = Path(prefix.removeprefix("file://"))
            if folder.is_dir():
                docs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
        return sorted(docs, key=lambda d: d.get("updated_at", ""))

    def tables(self, warehouse: str) -> list[str]:
        """Locations of the tables under a warehouse: directories holding `_dativo/manifests/`."""
        root = warehouse.rstrip("/")
        found: set[str] = set()
        if is_s3(root):
            bucket, key = split_s3(root + "/")
            key = "" if key == "/" else key
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
            for page in pages:
                for item in page.get("Contents", []):
                    head, sep, _ = item["Key"].partition(f"/{MANIFEST_DIR}/")
                    if sep:
                        found.add(f"s3://{bucket}/{head}")
        else:
            base = Path(root.removeprefix("file://"))
            for folder in base.glob(f"**/{MANIFEST_DIR}"):
                found.add(str(folder.parent.parent))
        return sorted(found)


def committed_files(store: Store, table_location: str, branch: str | None = None) -> list[str]:
    """The table's committed Parquet files (on `branch`, or all), each once, in commit order."""
    files: dict[str, None] = {}
    for doc in store.manifests(table_location):
        if branch is not None and doc.get("branch") != branch:
            continue
        for commit in doc.get("commits", []):
            for f in commit.get("files", []):
                files.setdefault(f["path"], None)
    return list(files)


def newest_marker(store: Store, table_location: str, branch: str, stream: str) -> tuple[dict, str] | None:
    """The newest manifest of `stream` on `branch`: its covered Singer state and replay marker text."""
    for doc in reversed(store.manifests(table_location)):
        if doc.get("branch") == branch and doc.get("stream") == stream and doc.get("replay"):
            return doc.get("singer_state") or {}, str(doc["replay"])
    return None


def branch_records(store: Store, table_location: str, branch: str) -> int:
    """Rows committed to the table on `branch`, over all runs."""
    return sum(int(d.get("records", 0)) for d in store.manifests(table_location) if d.get("branch") == branch)
