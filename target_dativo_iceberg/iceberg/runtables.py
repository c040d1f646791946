"""The run ledger and schema history tables: `_dativo.ingestion_runs` and `_dativo.schema_history`.

Run facts lived only in the snapshot summaries of successful commits: a failed run left nothing
queryable, and nothing said when a table's schema changed. These two Iceberg tables, in the same
catalog as the data and always on `main` (namespace `_dativo`; `dativo` in catalogs whose namespace
names must start with a letter or digit, such as S3 Tables and SeaweedFS), answer "what loaded, what failed, how many rows, which
files, which schema" with any Iceberg reader. Many runs append to them at once: each append is one
fast append (no rows are rewritten), and a conflict is redone on the new head (`conflicts.py`)
after checking that this append's `dativo.commit-id` did not land already.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    BadRequestError,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import (
    DoubleType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
    TimestamptzType,
)

from target_dativo_iceberg.errors import SchemaChangeError
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.conflicts import retry_conflicts
from target_dativo_iceberg.iceberg.evolution import EvolutionPlan, plan_evolution
from target_dativo_iceberg.iceberg.markers import find_commit
from target_dativo_iceberg.iceberg.retry import RetryPolicy
from target_dativo_iceberg.iceberg.schema import json_default

NAMESPACE = "_dativo"
RUNS_TABLE = (NAMESPACE, "ingestion_runs")
HISTORY_TABLE = (NAMESPACE, "schema_history")
MAIN = "main"
#: Where the tables are: `_dativo`, or `dativo` in catalogs that refuse a leading underscore.
NAMESPACES = (NAMESPACE, NAMESPACE.lstrip("_"))
TABLE_NAMES = (RUNS_TABLE[1], HISTORY_TABLE[1])


def _fields(*specs: tuple[str, Any]) -> list[NestedField]:
    return [NestedField(i, name, kind, required=False) for i, (name, kind) in enumerate(specs, start=1)]


_FILE = StructType(
    NestedField(101, "table", StringType(), required=False),
    NestedField(102, "path", StringType(), required=False),
    NestedField(103, "records", LongType(), required=False),
    NestedField(104, "bytes", LongType(), required=False),
    NestedField(105, "md5", StringType(), required=False),
)
RUNS_SCHEMA = Schema(
    *_fields(
        ("run_id", StringType()),
        ("tenant_id", StringType()),
        ("branch", StringType()),
        ("source", StringType()),
        ("streams", ListType(201, StringType(), element_required=False)),
        ("tables", ListType(202, StringType(), element_required=False)),
        ("started_at", TimestamptzType()),
        ("finished_at", TimestamptzType()),
        ("duration_seconds", DoubleType()),
        ("status", StringType()),
        ("exit_code", IntegerType()),
        ("records_received", LongType()),
        ("records_committed", LongType()),
        ("records_rejected", LongType()),
        ("data_files", LongType()),
        ("bytes_added", LongType()),
        ("files", ListType(203, _FILE, element_required=False)),
        ("snapshot_ids", ListType(204, LongType(), element_required=False)),
        ("error", StringType()),
        ("state", StringType()),
    )
)
HISTORY_SCHEMA = Schema(
    *_fields(
        ("table_name", StringType()),
        ("schema_id", IntegerType()),
        ("columns", ListType(301, StringType(), element_required=False)),
        ("change", StringType()),
        ("detail", StringType()),
        ("stream", StringType()),
        ("run_id", StringType()),
        ("tenant_id", StringType()),
        ("changed_at", TimestamptzType()),
    )
)


@dataclass(frozen=True)
class WrittenFile:
    """A data file a commit added, with the MD5 of its bytes (hex)."""

    table: str
    path: str
    records: int
    bytes: int
    md5: str


@dataclass(frozen=True)
class SchemaChange:
    """One schema version of a table: created, added (columns), widened (types), or blocked."""

    table: str
    schema_id: int | None
    columns: list[str]
    change: str
    detail: str
    stream: str | None
    at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc))


def column_names(schema: Schema) -> list[str]:
    """`name type` per top-level column, `required` marked."""
    return [f"{f.name} {f.field_type}{' required' if f.required else ''}" for f in schema.fields]


def written_files(table: Table, files: Sequence[DataFile], checksums: dict[str, str]) -> list[WrittenFile]:
    """The files a commit added, each with the MD5 computed while writing it (taken out of `checksums`)."""
    name = ".".join(table.name()[-2:])
    return [
        WrittenFile(name, f.file_path, f.record_count, f.file_size_in_bytes, checksums.pop(f.file_path, ""))
        for f in files
    ]


class SchemaRecorder:
    """Collects the run's schema versions (written to `_dativo.schema_history` at the end of the run)
    and emits a `schema_changed` event for each."""

    def __init__(self, events: EventLog) -> None:
        self.events = events
        self.changes: list[SchemaChange] = []
        self._evolved = "added"  # how the last planned commit changes the schema: added or widened

    def plan(self, stream: str, table: Table, incoming: Schema) -> EvolutionPlan:
        """`plan_evolution` against the table's schema; a breaking change is recorded as `blocked`
        before the SchemaChangeError goes on to fail the run."""
        try:
            plan = plan_evolution(stream, table.schema(), incoming, self.events)
        except SchemaChangeError as exc:
            self.blocked(stream, table, incoming, exc)
            raise
        self._evolved = "added" if plan.added else "widened"
        return plan

    def committed(self, stream: str, table: Table, schema_id_before: int) -> None:
        """After a commit: a new schema version when the commit evolved the schema."""
        if table.schema().schema_id != schema_id_before:
            self.changed(stream, table, self._evolved, "schema evolved by a commit")

    def _add(self, stream: str, table: Table, change: str, detail: str, columns: list[str]) -> None:
        name, schema_id = ".".join(table.name()[-2:]), table.schema().schema_id
        self.changes.append(SchemaChange(name, schema_id, columns, change, detail, stream))
        level_detail = detail if change == "blocked" else None
        self.events.emit(
            "schema_changed",
            stream=stream,
            table=name,
            change=change,
            schema_id=schema_id,
            columns=columns,
            error=level_detail,
        )

    def changed(self, stream: str, table: Table, change: str, detail: str) -> None:
        """`table` has a new schema version: created, added (columns) or widened (types)."""
        self._add(stream, table, change, detail, column_names(table.schema()))

    def blocked(self, stream: str, table: Table, incoming: Schema, error: Exception) -> None:
        """A breaking change was refused: recorded as `blocked` with the columns the stream asked for."""
        self._add(stream, table, "blocked", str(error), column_names(incoming))


def history_rows(changes: Sequence[SchemaChange], run_id: str, tenant_id: str) -> list[dict[str, Any]]:
    """Rows of `_dativo.schema_history` for `changes`."""
    return [
        {
            "table_name": c.table,
            "schema_id": c.schema_id,
            "columns": c.columns,
            "change": c.change,
            "detail": c.detail,
            "stream": c.stream,
            "run_id": run_id,
            "tenant_id": tenant_id,
            "changed_at": c.at,
        }
        for c in changes
    ]


def is_ledger_table(identifier: tuple[str, ...]) -> bool:
    """Whether `identifier` is one of the run ledger's tables (`dativo inspect` and the like skip them)."""
    return len(identifier) >= 2 and identifier[-2] in NAMESPACES and identifier[-1] in TABLE_NAMES


def _namespace(catalog: Catalog, namespace: str) -> str:
    """Create `namespace` if needed and return it; a catalog that refuses the name (S3 Tables and
    SeaweedFS want a letter or digit first: HTTP 400) gets it without its leading underscores instead."""
    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        pass
    except BadRequestError:
        plain = namespace.lstrip("_")
        if plain == namespace:
            raise
        return _namespace(catalog, plain)
    except Exception:  # a concurrent writer created it (SQL catalogs raise a unique violation)
        if not catalog.namespace_exists(namespace):
            raise
    return namespace


def ensure(catalog: Catalog, identifier: tuple[str, str], schema: Schema) -> Table:
    """Load the table, creating its namespace (`_namespace`) and the table when absent (racing
    writers: the loser loads what the winner created)."""
    identifier = (_namespace(catalog, identifier[0]), identifier[1])
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    try:
        return catalog.create_table(identifier, schema=schema)
    except TableAlreadyExistsError:
        return catalog.load_table(identifier)
    except Exception:
        try:
            return catalog.load_table(identifier)
        except NoSuchTableError:
            raise


def append_rows(
    catalog: Catalog,
    identifier: tuple[str, str],
    schema: Schema,
    rows: list[dict[str, Any]],
    summary: dict[str, str],
    policy: RetryPolicy,
    events: EventLog,
) -> int:
    """Append `rows` to the table on main in one snapshot; conflicts with concurrent runs are redone.
    Returns the snapshot id."""
    table = ensure(catalog, identifier, schema)
    identifier = (table.name()[-2], table.name()[-1])
    if set(schema.column_names) - set(table.schema().column_names):  # written by an older version
        with table.update_schema() as update:
            update.union_by_name(schema)
    commit_id = str(uuid.uuid4())
    props = {**summary, "dativo.commit-id": commit_id}
    data = pa.Table.from_pylist(rows, schema=table.schema().as_arrow())  # the table's field ids

    def attempt() -> None:
        table.refresh()
        table.append(data, snapshot_properties=props, branch=MAIN)

    def landed() -> bool:
        table.refresh()
        return find_commit(table, MAIN, commit_id) is not None

    retry_conflicts(attempt, landed, policy, events, stream=None, what=f"append to {'.'.join(identifier)}")
    table.refresh()
    snapshot_id = find_commit(table, MAIN, commit_id)
    return snapshot_id or 0


def read_runs(catalog: Catalog) -> list[dict[str, Any]]:
    """Every row of the run ledger (empty when no run has written one yet)."""
    for namespace in NAMESPACES:
        try:
            table = catalog.load_table((namespace, RUNS_TABLE[1]))
        except Exception:  # absent, or a name the catalog refuses
            continue
        return table.scan().to_arrow().to_pylist()
    return []


def state_text(state: dict[str, Any] | None) -> str | None:
    """The committed Singer state as compact JSON (None when no STATE was committed)."""
    if state is None:
        return None
    return json.dumps(state, default=json_default, separators=(",", ":"), sort_keys=True)
