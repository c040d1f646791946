"""Per-stream behaviour: buffer a stream's records and commit them to its Iceberg table.

A RECORD's path: Target._process_record_message → IcebergSink.process_record (buffered) →
IcebergSink.process_batch → (contract: Enforcer.validate) → Committer.commit (Arrow + one Iceberg
transaction) → Target.on_commit (emit the STATE this commit made safe).

A stream with a contract gets its table from the contract (types, required, identifier fields,
partitions, properties); without one, from its Singer SCHEMA.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import And, IsNull, LessThan, Or
from pyiceberg.schema import Schema
from pyiceberg.types import DateType, NestedField
from singer_sdk.sinks import BatchSink

from target_dativo_iceberg import faults
from target_dativo_iceberg.committer import TableSpec, json_state
from target_dativo_iceberg.config import sanitize_identifier
from target_dativo_iceberg.contracts import contract_for_stream
from target_dativo_iceberg.enforcement import REJECTED_SCHEMA, REJECTED_SUFFIX, Enforcer, rejected_table
from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.evolution import EvolutionPlan
from target_dativo_iceberg.maintenance import expire_old_snapshots
from target_dativo_iceberg.markers import stream_marker
from target_dativo_iceberg.partitioning import INGEST_DATE, PartitionTerm, build_spec, parse_terms
from target_dativo_iceberg.replay import REPLAY_KEY, ReplayGuard, SegmentLog, parse_marker
from target_dativo_iceberg.schema import ColumnKind, records_to_arrow, sanitize_name, singer_to_iceberg

LOAD_METHODS = ("append-only", "upsert", "overwrite")

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from target_dativo_iceberg.target import TargetDativoIceberg


def with_ingest_date(schema: Schema, terms: list[PartitionTerm]) -> Schema:
    """Add the target's `ingest_date` column (UTC date of the run) when a partition term uses it."""
    if not any(t.column == INGEST_DATE for t in terms) or INGEST_DATE in schema.column_names:
        return schema
    field = NestedField(schema.highest_field_id + 1, INGEST_DATE, DateType(), required=False)
    return Schema(*schema.fields, field, identifier_field_ids=schema.identifier_field_ids)


def fill_ingest_date(data: pa.Table, day: Any) -> pa.Table:
    """Set `ingest_date` (if the table has it) to the run's date."""
    index = data.schema.get_field_index(INGEST_DATE)
    if index < 0:
        return data
    field = data.schema.field(index)
    return data.set_column(index, field, pa.array([day] * data.num_rows, field.type))


class IcebergSink(BatchSink):
    """Buffers one stream's records and appends each batch to its table on the branch."""

    MAX_SIZE_DEFAULT = 100_000

    def __init__(
        self, target: TargetDativoIceberg, stream_name: str, schema: dict, key_properties: Any
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.dativo = target
        settings = target.settings
        self.stream_schema = singer_to_iceberg(stream_name, self.schema, self.key_properties)
        self.contract = contract_for_stream(target.contracts, stream_name)
        self.enforcer: Enforcer | None = None
        if self.contract is None:
            self.identifier = (settings.default_namespace, sanitize_name(stream_name))
            terms = parse_terms(settings.partitioning or [])
            self.spec = TableSpec(with_ingest_date(self.stream_schema.iceberg, terms), partitioning=terms)
        else:
            contract = self.contract
            self._validator = None  # the contract validates (per batch); the SDK's per-record JSON Schema check would abort warn mode
            self.enforcer = Enforcer(
                stream_name,
                contract,
                self.schema,
                target.validation_mode,
                settings.load_method == "upsert",
                target.events,
            )
            namespace = settings.namespace or (
                sanitize_identifier(contract.domain) if contract.domain else None
            )
            self.identifier = (namespace or settings.default_namespace, contract.table_name())
            location = None
            if contract.domain and contract.data_product:
                location = target.committer.warehouse_location(
                    contract.domain, contract.data_product, contract.table_name()
                )
            terms = parse_terms(
                settings.partitioning if settings.partitioning is not None else contract.partition_columns()
            )
            self.spec = TableSpec(
                with_ingest_date(self._contract_schema(), terms),
                partitioning=terms,
                properties=contract.table_properties(),
                location=location,
                keep_required=True,
            )
        build_spec(self.spec.schema, list(self.spec.partitioning))  # a bad term fails before any data is read
        self.load_method = settings.load_method
        if self.load_method not in LOAD_METHODS:
            raise ConfigError(
                f"load_method must be one of {', '.join(LOAD_METHODS)}, got {self.load_method!r}"
            )
        self.upsert_keys: list[str] | None = None
        if self.load_method == "upsert":
            keys = self.contract.identifier_columns() if self.contract else self.stream_schema.key_columns
            if not keys:
                raise ConfigError(
                    f"stream {stream_name!r}: load_method upsert needs key_properties or a contract primaryKey"
                )
            self.upsert_keys = list(keys)
        #: overwrite: batches land on this staging branch until the stream ends, then replace `branch`.
        self.staging: str | None = None
        self._staging_base: int | None = None
        self._table: Table | None = None
        self._rejected: Table | None = None
        #: Number of STATE messages seen when the first record still buffered arrived (None: empty).
        self.first_pending_seq: int | None = None
        self._position = 0  # records of this stream seen so far, for error messages
        self.segments = SegmentLog()  # per-STATE-segment digests for the commit's replay marker
        self.base_state: dict[str, Any] | None = None  # the committed state a matched replay started from
        self.replay = self._replay_guard()
        target.events.emit(
            "writer_initialized",
            stream=stream_name,
            table=".".join(self.identifier),
            contract=self.contract.path if self.contract else None,
            columns=[f.name for f in self.spec.schema.fields],
        )

    def _contract_schema(self) -> Schema:
        """The contract's schema plus target-added columns: `ingest_date` if partitioned on, `_sdc_*`."""
        assert self.contract is not None
        base = self.contract.iceberg_schema()
        fields = list(base.fields)
        names = {f.name for f in fields}
        next_id = base.highest_field_id + 1
        for f in self._sdc_fields():
            if f.name not in names:
                fields.append(NestedField(next_id, f.name, f.field_type, required=False))
                next_id += 1
        return Schema(*fields, identifier_field_ids=base.identifier_field_ids)

    def _sdc_fields(self) -> list[NestedField]:
        return [f for f in self.stream_schema.iceberg.fields if f.name.startswith("_sdc_")]

    # ------------------------------------------------------------------ buffering

    def _validate_and_parse(self, record: dict) -> dict:
        """With a contract, records stay raw: the contract validator coerces and judges whole batches."""
        if self.enforcer is not None:
            return record
        return super()._validate_and_parse(record)

    @property
    def table(self) -> Table:
        """The stream's table, created on first use and cached for the run."""
        if self._table is None:
            self._table = self.dativo.committer.ensure_table(self.stream_name, self.identifier, self.spec)
        return self._table

    def _replay_guard(self) -> ReplayGuard | None:
        """Arm the replay check when the table's last commit of this stream has a replay marker."""
        if self.load_method == "overwrite":
            return None
        table = self.dativo.committer.existing_table(self.identifier)
        found = stream_marker(table, self.dativo.settings.table_branch, self.stream_name) if table else None
        candidates = parse_marker(found[1]) if found else []
        if found is None or not candidates:
            return None
        self.base_state = found[0]
        return ReplayGuard(candidates)

    def process_record(self, record: dict, context: dict) -> None:
        """Buffer the record; remember which STATE it follows so covered state can be computed.

        While a replay check is armed, the first records are held back until it is known whether
        they are exactly the ones the last run committed (see replay.py).
        """
        seq = self.dativo.state_seq
        if self.first_pending_seq is None:
            self.first_pending_seq = seq
        guard = self.replay
        if guard is not None and not guard.decided:
            self._resolve(guard.offer(seq, record), context)
            return
        self.segments.add(seq, record)
        context.setdefault("records", []).append(record)

    def on_state(self, value_hash: str) -> None:
        """A STATE arrived: it may complete (or refute) a pending replay check."""
        if self.replay is not None and not self.replay.decided:
            self._resolve(self.replay.on_state(value_hash), None)

    def release_held(self) -> None:
        """End of input with the replay check undecided: the held records are new, buffer them."""
        if self.replay is not None and not self.replay.decided:
            self.replay.decided = True
            self._resolve("fresh", None)

    def _resolve(self, verdict: str, context: dict | None) -> None:
        """Act on a replay verdict: drop the held records (replay) or buffer them (fresh)."""
        guard = self.replay
        if guard is None or verdict not in ("replay", "fresh"):
            return
        held, guard.held = guard.held, []
        self.segments = guard.log
        if verdict == "replay":
            self.dativo.events.emit("replay_skipped", stream=self.stream_name, records=len(held))
            if context is None or not context.get("records"):
                self.first_pending_seq = None
            return
        self.base_state = None
        self.dativo.events.emit("replay_mismatch", stream=self.stream_name, records=len(held))
        if not held:
            return
        if context is None:
            context = self._get_context(held[0])
            if self.current_size == 0:
                self.tally_record_read(len(held))
        context.setdefault("records", []).extend(held)

    # ------------------------------------------------------------------ committing

    def process_batch(self, context: dict) -> None:
        """Validate (with a contract), commit in one Iceberg transaction, then let the target emit STATE."""
        records: list[dict[str, Any]] = context.get("records", [])
        if not records:
            return
        first_position = self._position + 1
        self._position += len(records)
        started = time.monotonic()
        rejected_rows: list[dict[str, Any]] = []
        if self.enforcer is None:
            build = self._schema_builder(records, first_position)
            landed = len(records)
        else:
            outcome = self.enforcer.validate(records, first_position)
            rejected_rows = outcome.rejected
            chosen = [records[i] for i in outcome.valid_indices]
            build = self._contract_builder(outcome.valid, chosen)
            landed = outcome.valid.num_rows
            if self.dativo.ending:
                failures = self.enforcer.finish(
                    self.dativo.committer.branch_total_records(self.table) + landed
                )
                self.dativo.quality_failures += len(failures)
        covered_seq, covered_state = self.dativo.covered_state(self)
        if covered_seq == 0 and self.base_state is not None:
            covered_state = self.base_state
        summary = {
            "dativo.run-id": self.dativo.run_id,
            "dativo.tenant": self.dativo.settings.tenant_id,
            "dativo.stream": self.stream_name,
            "dativo.records-rejected": str(len(rejected_rows)),
            "dativo.singer-state": json_state(covered_state),
            REPLAY_KEY: json.dumps([self._candidate(self.dativo.emitted_seq), self._candidate(covered_seq)]),
        }
        if rejected_rows:
            self._commit_rejected(rejected_rows, summary)
        table = self.table
        options: dict[str, Any] = {"upsert_keys": self.upsert_keys}
        if self.load_method == "overwrite":
            if self.staging is None:
                self.staging = f"{self.dativo.settings.table_branch}__overwrite_{self.dativo.run_id[:8]}"
                self._staging_base = self.dativo.committer.create_branch_from(
                    table, self.staging, self.dativo.settings.table_branch
                )
                options["replace_all"] = True
            options["branch"] = self.staging
        faults.reached("before_commit")
        result = self.dativo.committer.commit(
            self.stream_name, table, self.spec.schema, build, landed, summary, **options
        )
        faults.reached("after_commit")
        events = self.dativo.events
        ident = ".".join(self.identifier)
        events.emit(
            "batch_written", stream=self.stream_name, table=ident, records=landed, rejected=len(rejected_rows)
        )
        events.emit(
            "commit_success",
            stream=self.stream_name,
            table=ident,
            branch=result.branch,
            snapshot_id=result.snapshot_id,
            commit_id=result.commit_id,
            records=result.records,
            records_rejected=len(rejected_rows),
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        self.tally_record_written(landed)
        self.dativo.rejected_total += len(rejected_rows)
        self.dativo.records_committed += result.records
        self.first_pending_seq = None
        self.dativo.on_commit(covered_seq)
        self.segments.prune(self.dativo.emitted_seq)  # a crash from now on replays from that STATE
        self._expire(table)

    def _expire(self, table: Table) -> None:
        """Keep metadata small (commit latency flat); a failed expiry is reported, the data has landed."""
        try:
            expired = expire_old_snapshots(table, self.dativo.settings.max_snapshots)
        except Exception as exc:  # maintenance only: the commit above already holds
            self.dativo.events.emit(
                "maintenance_failed", stream=self.stream_name, error=self.dativo.events.redact(str(exc))
            )
            return
        if expired:
            self.dativo.events.emit("snapshots_expired", stream=self.stream_name, count=len(expired))

    def _candidate(self, from_seq: int) -> dict[str, Any]:
        """Replay marker from STATE `from_seq`: records after it, and the first STATE that followed."""
        return {**self.segments.marker(from_seq), "first_state": self.dativo.state_hashes.get(from_seq + 1)}

    def publish_overwrite(self) -> None:
        """overwrite: the stream ended; its staging branch replaces the branch's content atomically."""
        if self.staging is None or self._table is None or self._staging_base is None:
            return
        branch = self.dativo.settings.table_branch
        snapshot_id = self.dativo.committer.replace_branch(
            self._table, branch, self.staging, self._staging_base
        )
        self.dativo.events.emit(
            "overwrite_published",
            stream=self.stream_name,
            table=".".join(self.identifier),
            branch=branch,
            staging_branch=self.staging,
            snapshot_id=snapshot_id,
        )
        self.staging = None

    def activate_version(self, new_version: int) -> None:
        """ACTIVATE_VERSION: rows of older table versions are deleted (`hard_delete`) or marked deleted
        (`_sdc_deleted_at`). Buffered records are committed first: the SDK delivers this message before
        draining the records that preceded it."""
        self.dativo.drain_one(self)
        table = self.table
        table.refresh()
        if "_sdc_table_version" not in table.schema().column_names:
            self.dativo.events.emit(
                "activate_version_ignored",
                stream=self.stream_name,
                version=new_version,
                reason="the table has no _sdc_table_version column (enable add_record_metadata)",
            )
            return
        hard = bool(self.config.get("hard_delete", False))
        old = Or(LessThan("_sdc_table_version", new_version), IsNull("_sdc_table_version"))
        summary = {
            "dativo.run-id": self.dativo.run_id,
            "dativo.tenant": self.dativo.settings.tenant_id,
            "dativo.stream": self.stream_name,
            "dativo.operation": f"activate-version {new_version}",
        }
        branch = self.dativo.settings.table_branch
        self.dativo.committer.ensure_branch(table, branch)
        if hard:
            table.delete(old, snapshot_properties=summary, branch=branch)
        else:
            live = And(old, IsNull("_sdc_deleted_at"))
            snap = table.snapshot_by_name(branch)
            rows = table.scan(row_filter=live, snapshot_id=snap.snapshot_id).to_arrow() if snap else None
            if rows is not None and rows.num_rows:
                index = rows.schema.get_field_index("_sdc_deleted_at")
                now = pa.array(
                    [datetime.datetime.now(datetime.timezone.utc)] * rows.num_rows,
                    rows.schema.field(index).type,
                )
                marked = rows.set_column(index, rows.schema.field(index), now)
                with table.transaction() as tx:
                    tx.delete(live, snapshot_properties=summary, branch=branch)
                    tx.append(marked, snapshot_properties=summary, branch=branch)
        self.dativo.events.emit(
            "version_activated",
            stream=self.stream_name,
            version=new_version,
            hard_delete=hard,
            table=".".join(self.identifier),
        )

    def finish_without_batch(self) -> None:
        """End of input with nothing buffered: object-level quality still holds over the table."""
        if self.enforcer is not None and self._table is not None:
            failures = self.enforcer.finish(self.dativo.committer.branch_total_records(self._table))
            self.dativo.quality_failures += len(failures)

    def _commit_rejected(self, rows: list[dict[str, Any]], summary: dict[str, str]) -> None:
        committer = self.dativo.committer
        ident = (self.identifier[0], self.identifier[1] + REJECTED_SUFFIX)
        if self._rejected is None:
            self._rejected = committer.ensure_table(self.stream_name, ident, TableSpec(REJECTED_SCHEMA))
        data = rejected_table(rows, self.dativo.run_id, self.stream_name, self._rejected.schema().as_arrow())
        rejected_summary = {**summary, "dativo.records-rejected": str(len(rows))}
        committer.commit(
            self.stream_name,
            self._rejected,
            REJECTED_SCHEMA,
            lambda _s, _p: data,
            len(rows),
            rejected_summary,
        )

    def _schema_builder(self, records: list[dict[str, Any]], first_position: int):  # noqa: ANN202
        """Singer-schema path: convert records to the table's Arrow schema after evolution."""
        stream_schema = self.stream_schema
        required = frozenset(f.name for f in stream_schema.iceberg.fields if f.required)

        def build(arrow_schema: pa.Schema, plan: EvolutionPlan) -> pa.Table:
            kind = stream_schema.kind
            if plan.into_string:
                children = {
                    src: (col, ColumnKind("string") if col in plan.into_string else ck)
                    for src, (col, ck) in kind.children.items()
                }
                kind = ColumnKind("struct", children=children)
            data = records_to_arrow(self.stream_name, records, kind, arrow_schema, first_position, required)
            return fill_ingest_date(data, self.dativo.ingest_date)

        return build

    def _contract_builder(self, valid: pa.Table, records: list[dict[str, Any]]):  # noqa: ANN202
        """Contract path: validated columns + target-added ones, aligned to the table's Arrow schema."""
        extras: dict[str, pa.Array] = {}
        sdc = self._sdc_fields()
        if sdc:
            sdc_kind = ColumnKind(
                "struct",
                children={s: v for s, v in self.stream_schema.kind.children.items() if s.startswith("_sdc_")},
            )
            sdc_schema = Schema(*sdc).as_arrow()
            sdc_table = records_to_arrow(self.stream_name, records, sdc_kind, sdc_schema)
            extras.update({name: sdc_table.column(name) for name in sdc_table.column_names})

        def build(arrow_schema: pa.Schema, plan: EvolutionPlan) -> pa.Table:
            arrays = []
            for field in arrow_schema:
                if field.name in valid.column_names:
                    column = valid.column(field.name)
                elif field.name in extras:
                    column = extras[field.name]
                else:
                    column = pa.nulls(valid.num_rows, field.type)
                arrays.append(pc.cast(column, field.type) if column.type != field.type else column)
            return fill_ingest_date(
                pa.Table.from_arrays(arrays, schema=arrow_schema), self.dativo.ingest_date
            )

        return build
