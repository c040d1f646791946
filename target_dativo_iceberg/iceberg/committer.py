"""The storage side: catalog, tables, branches and commits with the dativo snapshot summary.

One Committer per target run; it loads the catalog once. A commit appends a batch on the
configured branch in a single Iceberg transaction together with any safe schema evolution, so a
failed batch leaves nothing visible. Conflicts with concurrent writers are redone on the branch's
new head (`conflicts.py`), after checking that this commit's id is not already on the branch.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.table import Table, Transaction

from target_dativo_iceberg.errors import CommitError, DativoError, SchemaChangeError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.catalogs import catalog_endpoint, load_catalog_retrying
from target_dativo_iceberg.iceberg.conflicts import discard_lost_attempt, is_commit_conflict, retry_conflicts
from target_dativo_iceberg.iceberg.evolution import EvolutionPlan, check_key, optional, plan_evolution
from target_dativo_iceberg.iceberg.keydeletes import DELETE_KEYS, delete_rows
from target_dativo_iceberg.iceberg.markers import find_commit, stream_marker
from target_dativo_iceberg.iceberg.objecttags import TaggedFileIO, is_s3, run_labels, s3_client
from target_dativo_iceberg.iceberg.partitioning import PartitionTerm, build_spec, evolve_spec
from target_dativo_iceberg.iceberg.retry import RetryPolicy, call_with_retries
from target_dativo_iceberg.iceberg.rows import DELETED_AT, dedupe_last, split_deletions
from target_dativo_iceberg.iceberg.runtables import SchemaRecorder, WrittenFile, written_files
from target_dativo_iceberg.iceberg.staging import ensure_branch
from target_dativo_iceberg.iceberg.upkeep import after_commit
from target_dativo_iceberg.iceberg.writer import append_table, fast_append
from target_dativo_iceberg.settings import Settings

MAIN = "main"

#: Builds the batch's Arrow table once the table schema (after evolution) is known.
DataBuilder = Callable[[pa.Schema, EvolutionPlan], pa.Table]


def json_state(state: dict[str, Any] | None) -> str:
    """Singer state as compact JSON; Decimals (how singer-sdk parses floats) become numbers."""
    from target_dativo_iceberg.iceberg.schema import json_default

    return json.dumps(state or {}, default=json_default, separators=(",", ":"), sort_keys=True)


@dataclass
class CommitResult:
    """What one commit landed."""

    snapshot_id: int
    commit_id: str
    records: int
    branch: str
    #: Rows deleted by key (upsert, deletion records): `dativo.files-scanned`, `files-skipped`,
    #: `files-rewritten`, `delete-files`, `rows-deleted` without the prefix; empty when none.
    deletes: dict[str, int] = field(default_factory=dict)
    files: list[WrittenFile] = field(default_factory=list)  # data files the target wrote, with MD5s
    seconds: float = 0.0  # commit latency: from the first attempt to the commit found on the branch


@dataclass
class TableSpec:
    """How to create a table: schema, partition terms, properties, location."""

    schema: Schema
    partitioning: Sequence[PartitionTerm] = ()
    properties: dict[str, str] | None = None
    location: str | None = None
    keep_required: bool = False  # contract schemas keep required columns; Singer-derived are optional


class Committer:
    """Creates tables and branches and commits Arrow batches to them."""

    def __init__(self, settings: Settings, events: EventLog, retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.events = events
        self.retry = retry or RetryPolicy()
        self.loaded: Catalog | None = None  # the catalog, once loaded
        self.checksums: dict[str, str] = {}  # data file path → MD5, filled as files are written
        self.history = SchemaRecorder(events)  # the run's schema versions (schema history)
        self._written: list[DataFile] = []  # data files of the last commit attempt
        #: Tables the run changed (`auto_publish` publishes them), by name.
        self.written: dict[str, Table] = {}
        self._s3: Any = None

    @property
    def catalog(self) -> Catalog:
        """The catalog, loaded once per run."""
        if self.loaded is None:
            try:
                self.loaded = load_catalog_retrying(self.settings, self.events, self.retry)
            except Exception as exc:  # surface as a clear, redacted failure naming the endpoint
                raise CommitError(
                    self.events.redact(
                        f"cannot load {self.settings.catalog_type} catalog at {self.settings.catalog_uri}: {exc}"
                    )
                ) from exc
            self.events.emit(
                "committer_initialized",
                catalog_type=self.settings.catalog_type,
                catalog_uri=self.events.redact(self.settings.catalog_uri),
                branch=self.settings.branch,
            )
        return self.loaded

    # ------------------------------------------------------------------ tables

    def ensure_table(self, stream: str, identifier: tuple[str, str], spec: TableSpec) -> Table:
        """Load the table, creating namespace and table when absent.

        A new table gets an empty snapshot on main so every branch has main's head as its parent.
        """
        catalog = self.catalog
        namespace, _ = identifier
        try:
            catalog.create_namespace(namespace)
        except NamespaceAlreadyExistsError:
            pass
        except Exception:  # a concurrent writer created it (SQL catalogs raise a unique violation)
            if not catalog.namespace_exists(namespace):
                raise
        created = False
        try:
            table = catalog.load_table(identifier)
        except NoSuchTableError:
            try:
                table = self._create(identifier, spec)
                created = True
            except TableAlreadyExistsError:  # a concurrent writer won the race
                table = catalog.load_table(identifier)
        if created:
            self.history.changed(stream, table, "created", "table created")
        if not created:
            check_key(stream, ".".join(identifier), table.schema(), spec.schema)
        if not created and spec.partitioning and evolve_spec(table, list(spec.partitioning)):
            self.events.emit(
                "partition_spec_evolved", stream=stream, table=".".join(identifier), spec=str(table.spec())
            )
        if table.metadata.current_snapshot_id is None:
            try:
                table.append(
                    table.schema().as_arrow().empty_table(),
                    snapshot_properties={
                        "dativo.operation": "table-created",
                        "dativo.tenant": self.settings.tenant_id,
                    },
                )
            except Exception as exc:  # another writer created main's first snapshot first
                if not is_commit_conflict(exc):
                    raise
                table.refresh()
                if table.metadata.current_snapshot_id is None:
                    raise
        self.events.emit(
            "table_ensured",
            stream=stream,
            table=".".join(identifier),
            created=created,
            location=table.location(),
        )
        return table

    def existing_table(self, identifier: tuple[str, str], spec: TableSpec | None = None) -> Table | None:
        """The table if it exists (no side effects; `spec` is for committers without a catalog)."""
        try:
            return self.catalog.load_table(identifier)
        except NoSuchTableError:
            return None

    def stream_marker(self, table: Table, branch: str, stream: str) -> tuple[dict[str, Any], str] | None:
        """The newest commit of `stream` on the branch: covered state and replay marker (markers.py)."""
        return stream_marker(table, branch, stream)

    def data_io(self, table: Table, stream: str) -> FileIO:
        """FileIO for new data files: with `s3_object_tags` on S3, labelled ones (objecttags.py)."""
        if not (self.settings.s3_object_tags and is_s3(table.location())):
            return table.io
        self._s3 = self._s3 or s3_client(self.settings)
        labels = run_labels(self.settings, self.events.run_id, table.properties, table.name()[-1], stream)
        return TaggedFileIO(table.io, self._s3, labels)

    def maintain(self, table: Table, stream: str) -> None:
        """After a commit, once its STATE is out: expiry and compaction when due (upkeep.py; a
        failure is reported, not raised)."""
        after_commit(table, self.settings, self.events, stream, self.events.run_id)

    def _create(self, identifier: tuple[str, str], spec: TableSpec) -> Table:
        keys = spec.schema.identifier_field_ids
        fields = [f if spec.keep_required or f.field_id in keys else optional(f) for f in spec.schema.fields]
        schema = Schema(*fields, identifier_field_ids=keys)
        kwargs: dict[str, Any] = {
            "schema": schema,
            "partition_spec": build_spec(schema, list(spec.partitioning)),
        }
        if spec.properties:
            kwargs["properties"] = spec.properties
        if spec.location:
            kwargs["location"] = spec.location
        return self.catalog.create_table(identifier, **kwargs)

    def _append_files(
        self, table: Table, files: Sequence[DataFile], props: dict[str, str], branch: str, replace_all: bool
    ) -> None:
        """One transaction: (overwrite: delete the branch's rows, then) a fast append of `files`."""
        props["dativo.records"] = str(_records_in(files))
        with table.transaction() as tx:
            if replace_all:
                tx.delete(AlwaysTrue(), snapshot_properties=props, branch=branch)
            fast_append(tx, files, props, branch, drop_deletes=replace_all)

    def needs_evolution(self, stream: str, table: Table, incoming: Schema) -> bool:
        """Whether committing `incoming` would change the table's schema (no events emitted)."""
        table.refresh()
        try:
            plan = plan_evolution(
                stream, table.schema(), incoming, EventLog(self.settings.tenant_id, "", [], io.StringIO())
            )
        except SchemaChangeError:
            return True  # the commit reports it (and records it as blocked)
        return plan.union is not None or bool(plan.into_string)

    def branch_total_records(self, table: Table) -> int:
        """Live rows on the branch head (from the snapshot summary: rows in data files less those
        position delete files delete; 0 when the branch is new)."""
        snap = table.snapshot_by_name(self.settings.table_branch) or table.snapshot_by_name(MAIN)
        props = snap.summary.additional_properties if snap and snap.summary else {}
        return max(0, int(props.get("total-records", 0)) - int(props.get("total-position-deletes", 0)))

    # ------------------------------------------------------------------ commits

    def commit(
        self,
        stream: str,
        table: Table,
        incoming: Schema,
        build: DataBuilder,
        records: int,
        summary: dict[str, str],
        *,
        branch: str | None = None,
        upsert_keys: Sequence[str] | None = None,
        replace_all: bool = False,
        delete_keys: Sequence[str] | None = None,
        data_files: Sequence[DataFile] | None = None,
    ) -> CommitResult:
        """Evolve the schema if needed and append the batch built by `build`, in one transaction.

        `upsert_keys`: the batch is deduplicated on the keys (last record wins) and the branch's rows
        with those keys are deleted in the same snapshot (position delete files, `keydeletes.py`).
        `replace_all`: every row on the branch is deleted first (the first batch of an overwrite, on
        its staging branch). `delete_keys`:
        deletion records (`_sdc_deleted_at` set, `hard_delete`) delete their key's rows instead of
        landing (see `split_deletions`). `data_files`: the batch was already written to these files
        (a long batch streamed by `RollingWriter`): they are appended instead of `build`'s table.

        A conflict with a concurrent writer (another process committed first) is retried by
        `conflicts.retry_conflicts`: the branch head is read again and the whole transaction redone
        (an upsert's deletes are recomputed against what the other writer landed). Before each
        retry — of a conflict or of a transient error — the branch is searched for this commit's
        id, so a commit that did land (but whose response was lost) is never applied twice.
        """
        branch = branch or self.settings.table_branch
        self.written[".".join(table.name()[-2:])] = table
        started = time.monotonic()
        schema_id = table.schema().schema_id
        commit_id = str(uuid.uuid4())
        props = {**summary, "dativo.commit-id": commit_id}
        what = f"commit to {'.'.join(table.name()[-2:])}"

        def landed() -> int | None:  # idempotency: a commit whose response was lost may have landed
            table.refresh()
            return find_commit(table, branch, commit_id)

        def once() -> None:
            self._commit_once(
                stream,
                table,
                incoming,
                build,
                props,
                branch,
                upsert_keys,
                replace_all,
                delete_keys,
                data_files,
            )

        call_with_retries(
            lambda: retry_conflicts(
                once, lambda: landed() is not None, self.retry, self.events, stream=stream, what=what
            ),
            self.retry,
            self.events,
            what,
            endpoint=catalog_endpoint(self.settings.catalog_type, self.settings.catalog_load_properties()),
            stream=stream,
            before_retry=lambda: True if landed() is not None else None,
        )
        snapshot_id = find_commit(table, branch, commit_id)
        if snapshot_id is None:
            raise CommitError(
                f"commit {commit_id} to {table.name()} is not on branch {branch!r} after committing"
            )
        deletes = {k[len("dativo.") :]: int(v) for k, v in props.items() if k in DELETE_KEYS}
        self.history.committed(stream, table, schema_id)
        files, self._written = written_files(table, self._written, self.checksums), []
        landed_records, seconds = int(props.get("dativo.records", records)), time.monotonic() - started
        return CommitResult(snapshot_id, commit_id, landed_records, branch, deletes, files, seconds)

    def _commit_once(
        self,
        stream: str,
        table: Table,
        incoming: Schema,
        build: DataBuilder,
        props: dict[str, str],
        branch: str,
        upsert_keys: Sequence[str] | None,
        replace_all: bool,
        delete_keys: Sequence[str] | None,
        data_files: Sequence[DataFile] | None,
    ) -> None:
        """One transaction on the branch's current head. Conflicts and transient errors propagate to
        the retries; anything else becomes a CommitError."""
        tx: Transaction | None = None
        self._written = []
        try:
            table.refresh()
            ensure_branch(table, branch)
            plan = self.history.plan(stream, table, incoming)  # a breaking change is recorded as blocked
            if data_files is not None:
                self._append_files(table, data_files, props, branch, replace_all)
                self._written = list(data_files)
                return
            with table.transaction() as tx:
                if plan.union is not None:
                    with tx.update_schema() as update:
                        update.union_by_name(plan.union)
                data = build(tx.table_metadata.schema().as_arrow(), plan)
                remove: pa.Table | None = None  # keys whose rows on the branch this commit deletes
                if upsert_keys:  # the rows these keys replace: as of the head read above
                    data = dedupe_last(data, list(upsert_keys))
                    remove = data.select(list(upsert_keys))
                if replace_all:
                    tx.delete(AlwaysTrue(), snapshot_properties=props, branch=branch)
                if delete_keys and DELETED_AT in data.column_names:
                    data, deleted = split_deletions(data, list(delete_keys))
                    remove = deleted if remove is None else remove  # an upsert's keys hold the deleted ones
                delete_files = delete_rows(tx, table.io, remove, props, branch)
                props["dativo.records"] = str(data.num_rows)
                io = self.data_io(table, stream)
                target_bytes = self.settings.parquet_target_bytes
                self._written = append_table(
                    tx, io, data, props, branch, target_bytes, delete_files, replace_all, self.checksums
                )
        except DativoError:
            raise
        except Exception as exc:
            if is_commit_conflict(exc):
                discard_lost_attempt(table, branch, props["dativo.commit-id"], tx)
                raise
            if self.retry.is_transient(exc):
                raise
            raise CommitError(self.events.redact(f"commit to {table.name()} failed: {exc}")) from exc


def _records_in(files: Sequence[DataFile]) -> int:
    return sum(f.record_count for f in files)
