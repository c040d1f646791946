"""`catalog_type: none`: Parquet files in a Hive-style layout, committed by run manifests.

The sink talks to its committer through the methods of `iceberg/committer.Committer` it uses
(`ensure_table`, `existing_table`, `stream_marker`, `commit`, `branch_total_records`,
`needs_evolution`, `data_io`, `maintain`); `FileCommitter` implements them without a catalog:

- a table is a directory, `{warehouse}/{domain}/{dataProduct}/{table}` (contract) or
  `{warehouse}/{namespace}/{table}`, its files under Hive-style partition directories
  (`ingest_date=2025-11-07/region=EU/...parquet`), written by the same `RollingWriter` (and partition
  transforms) as Iceberg data files, with field ids in the Parquet schema;
- on S3 every file carries object metadata and at most 10 tags (`iceberg/objecttags.py`);
- a commit writes its files, then rewrites the run's manifest (`manifests.py`) naming them with the
  Singer state it covers: the manifest is the commit point, STATE is printed after it;
- the replay marker in the manifest lets a replayed run drop what an earlier run committed, as with
  Iceberg snapshot summaries.

Without table metadata there are no upserts, overwrites, deletes or branches of files: those load
methods fail at start (exit 2); `branch` is a label in manifests and tags. Each run writes files with
the schema of its stream; readers union columns by name.
"""

from __future__ import annotations

import os
import typing as t
import uuid

from pyiceberg.io import FileIO, load_file_io
from pyiceberg.schema import Schema
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

from target_dativo_iceberg.errors import CommitError, ConfigError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.files.manifests import (
    RunManifest,
    Store,
    branch_records,
    manifest_location,
    newest_marker,
)
from target_dativo_iceberg.iceberg.committer import CommitResult, Committer, DataBuilder, TableSpec
from target_dativo_iceberg.iceberg.evolution import EvolutionPlan, optional
from target_dativo_iceberg.iceberg.objecttags import TaggedFileIO, is_s3, run_labels, s3_client
from target_dativo_iceberg.iceberg.partitioning import build_spec
from target_dativo_iceberg.iceberg.retry import RetryPolicy, call_with_retries
from target_dativo_iceberg.iceberg.writer import RollingWriter
from target_dativo_iceberg.settings import Settings


def open_committer(settings: Settings, events: EventLog, retry: RetryPolicy) -> Committer | FileCommitter:
    """The run's committer: Iceberg through a catalog, or Parquet files for `catalog_type: none`."""
    if settings.catalog_type == "none":
        return FileCommitter(settings, events, retry)
    return Committer(settings, events, retry)


def warehouse_root(settings: Settings) -> str:
    """The warehouse as an `s3://` URI or an absolute local path."""
    warehouse = settings.warehouse.rstrip("/")
    if is_s3(warehouse):
        return warehouse
    return os.path.abspath(os.path.expanduser(warehouse.removeprefix("file://")))


class FileTable:
    """One table of `catalog_type: none`: a directory; its metadata exists only in this run."""

    def __init__(self, identifier: tuple[str, str], metadata: TableMetadata, io: FileIO) -> None:
        self.identifier = identifier
        self.metadata = metadata
        self.io = io
        self.manifest: RunManifest | None = None

    def name(self) -> tuple[str, str]:
        return self.identifier

    def schema(self) -> Schema:
        return self.metadata.schema()

    def location(self) -> str:
        return self.metadata.location

    def refresh(self) -> FileTable:
        return self


class FileCommitter:
    """Writes each batch as Parquet files and commits them with the run's manifest."""

    def __init__(self, settings: Settings, events: EventLog, retry: RetryPolicy | None = None) -> None:
        if settings.load_method in ("upsert", "overwrite"):
            raise ConfigError(
                f"load_method {settings.load_method!r} needs a catalog; catalog_type 'none' appends "
                "Parquet files (load_method append-only)"
            )
        self.settings = settings
        self.events = events
        self.retry = retry or RetryPolicy()
        self.root = warehouse_root(settings)
        self.store = Store(lambda: s3_client(settings))
        self._tables: dict[tuple[str, str], FileTable] = {}
        self.written: dict[str, t.Any] = {}  # no branches to publish: `auto_publish` has nothing to do
        self.checksums: dict[str, str] = {}  # data file MD5s (the run ledger needs a catalog: not kept)
        self.loaded = None  # no catalog
        events.emit("committer_initialized", catalog_type="none", warehouse=self.root, branch=settings.branch)

    def _location(self, identifier: tuple[str, str], spec: TableSpec | None) -> str:
        if spec is not None and spec.location:
            location = spec.location
            return location if is_s3(location) else os.path.abspath(location)
        return f"{self.root}/{identifier[0]}/{identifier[1]}"

    def ensure_table(self, stream: str, identifier: tuple[str, str], spec: TableSpec) -> FileTable:
        """The table's in-run metadata (schema, partition spec, location); nothing is written yet."""
        known = self._tables.get(identifier)
        if known is not None and known.schema().as_struct() == spec.schema.as_struct():
            return known
        table = self._open(identifier, spec)
        self._tables[identifier] = table
        self.events.emit(
            "table_ensured",
            stream=stream,
            table=".".join(identifier),
            created=False,
            location=table.location(),
        )
        return table

    def _open(self, identifier: tuple[str, str], spec: TableSpec) -> FileTable:
        schema = spec.schema if spec.keep_required else Schema(*[optional(f) for f in spec.schema.fields])
        location = self._location(identifier, spec)
        properties = {**(spec.properties or {}), "write.data.path": location}
        metadata = new_table_metadata(
            schema, build_spec(schema, list(spec.partitioning)), UNSORTED_SORT_ORDER, location, properties
        )
        io = load_file_io({**self.settings.s3_file_io_properties(), **properties}, location)
        return FileTable(identifier, metadata, io)

    def existing_table(self, identifier: tuple[str, str], spec: TableSpec | None = None) -> FileTable | None:
        """The table directory (it may hold no manifest yet); None without the spec to place it."""
        if identifier in self._tables:
            return self._tables[identifier]
        return self._open(identifier, spec) if spec is not None else None

    def stream_marker(self, table: FileTable, branch: str, stream: str) -> tuple[dict, str] | None:
        """The newest manifest of `stream` on `branch`: covered state and replay marker."""
        return newest_marker(self.store, table.location(), branch, stream)

    def needs_evolution(self, stream: str, table: FileTable, incoming: Schema) -> bool:
        """Always True: batches are never streamed into open files (each commit writes its own)."""
        return True

    def branch_total_records(self, table: FileTable) -> int:
        """Rows committed on the branch over all runs, plus this run's (from the manifests)."""
        return branch_records(self.store, table.location(), self.settings.table_branch)

    def data_io(self, table: FileTable, stream: str) -> FileIO:
        """The FileIO new data files are written with: labelled on S3."""
        if not is_s3(table.location()):
            return table.io
        labels = run_labels(
            self.settings, self.events.run_id, table.metadata.properties, table.identifier[1], stream
        )
        return TaggedFileIO(table.io, self.store.client, labels)

    def maintain(self, table: FileTable, stream: str) -> None:
        """Nothing to expire: there are no snapshots."""

    def ensure_branch(self, table: FileTable, branch: str) -> None:
        raise CommitError(
            f"table {'.'.join(table.identifier)}: catalog_type 'none' has no table versions to retire "
            "(ACTIVATE_VERSION needs a catalog)"
        )

    def commit(
        self,
        stream: str,
        table: FileTable,
        incoming: Schema,
        build: DataBuilder,
        records: int,
        summary: dict[str, str],
        *,
        branch: str | None = None,
        upsert_keys: t.Sequence[str] | None = None,
        replace_all: bool = False,
        delete_keys: t.Sequence[str] | None = None,
        data_files: t.Sequence[t.Any] | None = None,
    ) -> CommitResult:
        """Write the batch's files, then the run manifest naming them (the commit point)."""
        if upsert_keys or replace_all or data_files:  # `data_files=[]`: a commit of the STATE alone
            raise CommitError(f"commit to {'.'.join(table.identifier)}: catalog_type 'none' only appends")
        branch = branch or self.settings.table_branch
        commit_id = str(uuid.uuid4())
        data = build(table.schema().as_arrow(), EvolutionPlan())
        files: list[dict[str, t.Any]] = []
        if data.num_rows:
            writer = RollingWriter(
                table.metadata, self.data_io(table, stream), self.settings.parquet_target_bytes
            )
            writer.write(data)
            for f in writer.finish():
                files.append({"path": f.file_path, "records": f.record_count, "bytes": f.file_size_in_bytes})
        if table.manifest is None:
            table.manifest = RunManifest(
                ".".join(table.identifier), table.location(), self.events.run_id,
                self.settings.tenant_id, branch, stream,
            )  # fmt: skip
        props = {**summary, "dativo.commit-id": commit_id, "dativo.records": str(data.num_rows)}
        table.manifest.add(commit_id, files, props)
        where = manifest_location(table.location(), self.events.run_id)
        document = table.manifest.document()
        try:
            call_with_retries(
                lambda: self.store.put_json(where, document),
                self.retry,
                self.events,
                f"write manifest of {'.'.join(table.identifier)}",
                endpoint=self.settings.connection.s3.endpoint or self.root,
                stream=stream,
            )
        except Exception as exc:
            table.manifest.commits.pop()  # not committed: the next commit's manifest leaves it out
            raise CommitError(self.events.redact(f"manifest {where} could not be written: {exc}")) from exc
        return CommitResult(uuid.UUID(commit_id).int >> 65, commit_id, data.num_rows, branch)
