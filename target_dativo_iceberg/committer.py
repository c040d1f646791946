"""The storage side: catalog, tables, branches and commits with the dativo snapshot summary.

One Committer per target run; it loads the catalog once. A commit appends a batch on the
configured branch in a single Iceberg transaction together with any safe schema evolution, so a
failed batch leaves nothing visible.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import (
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
)

from target_dativo_iceberg.config import Settings
from target_dativo_iceberg.errors import CommitError, ConfigError, RecordError, SchemaChangeError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.markers import find_commit
from target_dativo_iceberg.schema import ColumnKind, StreamSchema, records_to_arrow

MAIN = "main"
SUMMARY_PREFIX = "dativo."
CONFLICT_ATTEMPTS = 10

# (existing, incoming) pairs an Iceberg column may be promoted along.
_PROMOTIONS = {(IntegerType, LongType), (FloatType, DoubleType)}


def json_state(state: dict[str, Any] | None) -> str:
    """Singer state as compact JSON; Decimals (how singer-sdk parses floats) become numbers."""
    from target_dativo_iceberg.schema import _json_default

    return json.dumps(state or {}, default=_json_default, separators=(",", ":"), sort_keys=True)


@dataclass
class CommitResult:
    """What one commit landed."""

    snapshot_id: int
    commit_id: str
    records: int
    branch: str


class Committer:
    """Creates tables and branches and commits Arrow batches to them."""

    def __init__(self, settings: Settings, events: EventLog) -> None:
        if settings.catalog_type == "none":
            raise ConfigError("catalog_type 'none' (Parquet files only) is not implemented yet")
        self.settings = settings
        self.events = events
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        """The catalog, loaded once per run."""
        if self._catalog is None:
            try:
                self._catalog = load_catalog(
                    self.settings.catalog_name, **self.settings.catalog_load_properties()
                )
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
        return self._catalog

    def _load_catalog(self) -> Catalog:
        """Load the catalog; a SQL catalog's first start may race other writers creating its tables."""
        attempts = 10
        for attempt in range(1, attempts + 1):
            try:
                return load_catalog(self.settings.catalog_name, **self.settings.catalog_load_properties())
            except Exception as exc:
                text = str(exc)
                racing = any(
                    m in text for m in ("already exists", "UniqueViolation", "IntegrityError", "is locked")
                )
                if not racing or attempt == attempts:
                    raise
                time.sleep(min(1.0, 0.1 * attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ tables

    def ensure_table(self, stream: str, identifier: tuple[str, str], schema: Schema) -> Table:
        """Load the table, creating namespace and table when absent.

        A new table gets an empty snapshot on main so every branch has main's head as its parent.
        """
        catalog = self.catalog
        namespace, _ = identifier
        with contextlib.suppress(NamespaceAlreadyExistsError):
            catalog.create_namespace(namespace)
        created = False
        try:
            table = catalog.load_table(identifier)
        except NoSuchTableError:
            optional = Schema(*[_optional(f) for f in schema.fields])
            try:
                table = catalog.create_table(identifier, schema=optional)
                created = True
            except TableAlreadyExistsError:  # a concurrent writer won the race
                table = catalog.load_table(identifier)
        if table.metadata.current_snapshot_id is None:
            table.append(
                table.schema().as_arrow().empty_table(),
                snapshot_properties={
                    "dativo.operation": "table-created",
                    "dativo.tenant": self.settings.tenant_id,
                },
            )
        self.events.emit(
            "table_ensured",
            stream=stream,
            table=".".join(identifier),
            created=created,
            location=table.location(),
        )
        return table

    def ensure_branch(self, table: Table, branch: str) -> None:
        """Create `branch` from main's head when it does not exist yet (never an orphan branch)."""
        if branch == MAIN or table.metadata.refs.get(branch) is not None:
            return
        head = table.metadata.current_snapshot_id
        if head is None:
            raise CommitError(f"table {table.name()} has no snapshot on main to branch {branch!r} from")
        try:
            table.manage_snapshots().create_branch(snapshot_id=head, branch_name=branch).commit()
        except Exception as exc:  # a concurrent writer created the branch first: fine
            if not is_commit_conflict(exc):
                raise
            table.refresh()
            if table.metadata.refs.get(branch) is None:
                raise

    # ------------------------------------------------------------------ commits

    def commit_records(
        self,
        stream: str,
        table: Table,
        stream_schema: StreamSchema,
        records: list[dict[str, Any]],
        summary: dict[str, str],
        first_position: int = 1,
    ) -> CommitResult:
        """Evolve the schema if the stream added columns, and append the records, in one transaction.

        A conflict with a concurrent writer (another process committed first) is retried on a
        refreshed table; before each retry the branch is searched for this commit's id, so a commit
        that did land (but whose response was lost) is never applied twice.
        """
        branch = self.settings.branch
        commit_id = str(uuid.uuid4())
        props = {**summary, "dativo.commit-id": commit_id, "dativo.records": str(len(records))}
        required = frozenset(f.name for f in stream_schema.iceberg.fields if f.required)
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                table.refresh()
                self.ensure_branch(table, branch)
                kind, evolve_to = reconcile(stream, table.schema(), stream_schema, self.events)
                with table.transaction() as tx:
                    if evolve_to is not None:
                        with tx.update_schema() as update:
                            update.union_by_name(evolve_to)
                    arrow_schema = tx.table_metadata.schema().as_arrow()
                    data = records_to_arrow(stream, records, kind, arrow_schema, first_position, required)
                    tx.append(data, snapshot_properties=props, branch=branch)
                break
            except (SchemaChangeError, CommitError, RecordError):
                raise
            except Exception as exc:
                if not is_commit_conflict(exc) or attempt == CONFLICT_ATTEMPTS:
                    raise CommitError(self.events.redact(f"commit to {table.name()} failed: {exc}")) from exc
                table.refresh()
                if find_commit(table, branch, commit_id) is not None:
                    break
                self.events.emit(
                    "commit_retry", stream=stream, attempt=attempt, reason=self.events.redact(str(exc))
                )
                time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
        snapshot_id = find_commit(table, branch, commit_id)
        if snapshot_id is None:
            raise CommitError(
                f"commit {commit_id} to {table.name()} is not on branch {branch!r} after committing"
            )
        return CommitResult(snapshot_id, commit_id, len(records), branch)


def is_commit_conflict(exc: BaseException) -> bool:
    """Another writer changed the table between our refresh and our commit (retry on fresh metadata).

    pyiceberg raises CommitFailedException for failed requirements; a stale sequence number shows up
    as a ValueError (SQL catalog) or an HTTP 400 (REST catalog) naming the sequence number.
    """
    if isinstance(exc, CommitFailedException):
        return True
    text = str(exc).lower()
    return "sequence number" in text and "last sequence number" in text


def _optional(field: NestedField) -> NestedField:
    """New tables and new columns are optional: Singer schemas are all-nullable in practice."""
    return NestedField(field.field_id, field.name, field.field_type, required=False, doc=field.doc)


def reconcile(
    stream: str, existing: Schema, incoming: StreamSchema, events: EventLog
) -> tuple[ColumnKind, Schema | None]:
    """Compare the stream's schema with the table's (top-level columns).

    Returns the value conversion to use and, when the stream adds columns or widens types, the
    schema to union into the table. A type the column cannot hold raises SchemaChangeError.
    """
    kind = ColumnKind("struct", children=dict(incoming.kind.children))
    evolve = False
    union_fields: list[NestedField] = []
    by_name = {f.name: f for f in existing.fields}
    for field in incoming.iceberg.fields:
        current = by_name.get(field.name)
        if current is None:
            evolve = True
            union_fields.append(_optional(field))
            continue
        change = _type_change(current.field_type, field.field_type)
        if change in ("same", "narrower-fits"):
            union_fields.append(_optional(field))
        elif change == "widen":
            evolve = True
            union_fields.append(_optional(field))
        elif change == "into-string":
            events.emit(
                "schema_coerced",
                stream=stream,
                column=field.name,
                table_type=str(current.field_type),
                stream_type=str(field.field_type),
                message=f"values of column {field.name!r} are written as strings into the existing column",
            )
            for src, (col, _) in incoming.kind.children.items():
                if col == field.name:
                    kind.children[src] = (col, ColumnKind("string"))
            union_fields.append(_optional(NestedField(field.field_id, field.name, current.field_type)))
        else:
            raise SchemaChangeError(
                f"stream {stream!r}: column {field.name!r} changes type from {current.field_type} "
                f"to {field.field_type}, which the table cannot hold; nothing was committed"
            )
    return kind, (Schema(*union_fields) if evolve else None)


def _type_change(current: IcebergType, incoming: IcebergType) -> str:
    """Classify a column type change (ignoring field ids): same, widen, narrower-fits, into-string, breaking."""
    if isinstance(current, StructType) and isinstance(incoming, StructType):
        existing = {f.name: f.field_type for f in current.fields}
        result = "same"
        for child in incoming.fields:
            if child.name not in existing:
                result = "widen"
                continue
            sub = _type_change(existing[child.name], child.field_type)
            if sub in ("breaking", "into-string"):
                return "breaking"
            if sub == "widen":
                result = "widen"
        return result
    if isinstance(current, ListType) and isinstance(incoming, ListType):
        sub = _type_change(current.element_type, incoming.element_type)
        return "breaking" if sub == "into-string" else sub
    if current == incoming:
        return "same"
    if (type(current), type(incoming)) in _PROMOTIONS:
        return "widen"
    if (type(current), type(incoming)) in {(LongType, IntegerType), (DoubleType, FloatType)}:
        return "narrower-fits"
    if isinstance(current, StringType) and incoming.is_primitive:
        return "into-string"
    return "breaking"
