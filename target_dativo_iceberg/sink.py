"""Per-stream behaviour: buffer a stream's records and commit them to its Iceberg table.

A RECORD's path: intake.reader.BlockReader (stdin in blocks; runs of RECORD lines parsed by Arrow) →
intake.buffer.Intake.add_rows (buffered; record path: Intake.process_record) → IcebergSink.process_batch →
Builders._hot_batch (Validator.validate_arrow; else Enforcer.validate on records) → Committer.commit
on the commit thread (Arrow + one Iceberg transaction) → StateLedger.emit (the STATE this
commit made safe).

A stream with a contract gets its table from the contract (types, required, identifier fields,
partitions, properties); without one, from its Singer SCHEMA.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField
from singer_sdk.sinks import BatchSink

from target_dativo_iceberg import faults
from target_dativo_iceberg.contracts.contract import contract_for_stream
from target_dativo_iceberg.contracts.enforcement import (
    REJECTED_SCHEMA,
    REJECTED_SUFFIX,
    Enforcer,
    rejected_table,
)
from target_dativo_iceberg.delivery.replay import REPLAY_KEY, ReplayGuard, SegmentLog, parse_marker
from target_dativo_iceberg.errors import ConfigError
from target_dativo_iceberg.iceberg.committer import CommitResult, TableSpec, json_state
from target_dativo_iceberg.iceberg.evolution import EvolutionPlan
from target_dativo_iceberg.iceberg.maintenance import expire_old_snapshots
from target_dativo_iceberg.iceberg.markers import stream_marker
from target_dativo_iceberg.iceberg.partitioning import build_spec, parse_terms
from target_dativo_iceberg.iceberg.paths import table_location
from target_dativo_iceberg.iceberg.rows import retire_versions
from target_dativo_iceberg.iceberg.schema import sanitize_name, singer_to_iceberg
from target_dativo_iceberg.iceberg.writer import RollingWriter
from target_dativo_iceberg.intake.buffer import Intake, Piece
from target_dativo_iceberg.intake.builders import Builders, with_ingest_date
from target_dativo_iceberg.memory import release_unused

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from target_dativo_iceberg.target import TargetDativoIceberg

LOAD_METHODS = ("append-only", "upsert", "overwrite")


class IcebergSink(Intake, Builders, BatchSink):
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
            namespace = settings.namespace or (sanitize_name(contract.domain) if contract.domain else None)
            self.identifier = (namespace or settings.default_namespace, contract.table_name())
            location = None
            if contract.domain and contract.data_product:
                parts = (contract.domain, contract.data_product, contract.table_name())
                location = table_location(settings, parts, f"contract {contract.path}")
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
        #: hard_delete: deletion records (`_sdc_deleted_at` set) delete these keys' rows.
        self.delete_keys: list[str] | None = None
        if self.config.get("hard_delete") and self.include_sdc_metadata_properties:
            keys = self.contract.identifier_columns() if self.contract else self.stream_schema.key_columns
            self.delete_keys = list(keys) if keys else None
            if not keys:
                target.events.emit(
                    "deletes_ignored",
                    stream=stream_name,
                    reason="hard_delete needs key_properties or a contract primaryKey; deletion records land as rows",
                )
        self._writer: RollingWriter | None = None  # open files of a long batch (see `spill`)
        self._spilled_rejected: list[dict[str, Any]] = []
        self._spill_ok: bool | None = None
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
        #: Record field → the Arrow type the hot path parses it as (else Arrow infers): Singer
        #: string properties stay strings; contract decimals are parsed exactly (never via a float).
        self.record_types: dict[str, pa.DataType | None] = {
            name: pa.string() if _only_strings(prop) else None
            for name, prop in (self.schema.get("properties") or {}).items()
        }
        if self.enforcer is not None:
            validator = self.enforcer.validator
            for key, arrow_field in zip(validator.keys, validator.arrow_schema, strict=True):
                if pa.types.is_decimal(arrow_field.type):
                    self.record_types[key] = arrow_field.type
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

    # ------------------------------------------------------------------ committing

    def process_batch(self, context: dict) -> None:
        """Validate (with a contract), commit in one Iceberg transaction, then let the target emit STATE."""
        pieces: list[Piece] = context.get("pieces", [])
        if not pieces and self._writer is None:
            return
        faults.reached("drain")
        self.dativo.commits.join()  # one commit in flight at a time: the previous one lands first
        self.dativo.shutdown.check()  # after a stop signal no new commit starts
        started = time.monotonic()
        build, landed, rejected_rows, hot = self._validated(pieces)
        files = None
        if self._writer is not None:  # rows already streamed to open files: the rest joins them
            if landed:
                self._writer.write(build(self.table.schema().as_arrow(), EvolutionPlan()))
            files = self._writer.finish()
            landed, rejected_rows = self._writer.rows, self._spilled_rejected + rejected_rows
            self._writer, self._spilled_rejected = None, []
        if self.enforcer is not None and self.dativo.ending:
            failures = self.enforcer.finish(self.dativo.committer.branch_total_records(self.table) + landed)
            self.dativo.quality_failures += len(failures)
        covered_seq, covered_state = self.dativo.ledger.covered(self)
        if covered_seq == 0 and self.base_state is not None:
            covered_state = self.base_state
        summary = {
            "dativo.run-id": self.dativo.run_id,
            "dativo.tenant": self.dativo.settings.tenant_id,
            "dativo.stream": self.stream_name,
            "dativo.records-rejected": str(len(rejected_rows)),
            "dativo.singer-state": json_state(covered_state),
            REPLAY_KEY: json.dumps([self._candidate(seq) for seq in self.dativo.ledger.resume_points(self)]),
        }
        if rejected_rows:
            self._commit_rejected(rejected_rows, summary)
        table = self.table
        options: dict[str, Any] = {
            "upsert_keys": self.upsert_keys,
            "delete_keys": self.delete_keys,
            "data_files": files,
        }
        if self.load_method == "overwrite":
            if self.staging is None:
                self.staging = f"{self.dativo.settings.table_branch}__overwrite_{self.dativo.run_id[:8]}"
                self._staging_base = self.dativo.committer.create_branch_from(
                    table, self.staging, self.dativo.settings.table_branch
                )
                options["replace_all"] = True
            options["branch"] = self.staging
        schema, committer, path = self.spec.schema, self.dativo.committer, "hot" if hot else "record"

        def work() -> CommitResult:  # on the commit thread, while the next records are parsed
            faults.reached("before_commit")
            result = committer.commit(self.stream_name, table, schema, build, landed, summary, **options)
            release_unused()  # the batch's Arrow buffers and Parquet pages, freed on this thread
            faults.reached("after_commit")
            self._report(result, landed, len(rejected_rows), path, started)
            self._expire(table)
            return result

        def done(result: CommitResult) -> None:  # back on the main thread, in input order
            self.tally_record_written(landed)
            self.dativo.rejected_total += len(rejected_rows)
            self.dativo.records_committed += result.records
            self.dativo.ledger.emit(covered_seq)  # the STATE this commit made safe
            self.segments.prune(self.dativo.ledger.emitted_seq)  # a crash from now on replays from that STATE

        self.first_pending_seq = None  # records arriving from now on belong to the next batch
        self.dativo.commits.submit(covered_seq, work, done)

    def spill(self, context: dict) -> None:
        """A long batch (`batch_size_rows` above `SPILL_ROWS`): validate what is buffered and stream it
        into open Parquet files (rolled at `parquet_target_size_mb`), so memory holds one chunk; the
        files are committed with the rest of the batch."""
        self.dativo.commits.join()  # the commit thread may be using this table object
        self.dativo.shutdown.check()
        if not self._can_spill():
            return
        pieces = context.get("pieces", [])
        build, landed, rejected_rows, _ = self._validated(pieces)
        if self._writer is None:
            target = self.dativo.settings.parquet_target_bytes
            self._writer = RollingWriter(self.table.metadata, self.table.io, target)
        if landed:
            self._writer.write(build(self.table.schema().as_arrow(), EvolutionPlan()))
        self._spilled_rejected.extend(rejected_rows)
        context["pieces"] = []
        faults.reached("after_spill")

    def _can_spill(self) -> bool:
        """Streaming into files needs a batch that never changes earlier rows (no upsert or deletion
        records) and a table whose schema already matches (evolution commits with the data)."""
        if self._spill_ok is None:
            simple = self.load_method != "upsert" and self.delete_keys is None
            self._spill_ok = simple and not self.dativo.committer.needs_evolution(
                self.stream_name, self.table, self.spec.schema
            )
        return self._spill_ok

    def _report(self, result: CommitResult, landed: int, rejected: int, path: str, started: float) -> None:
        """batch_written and commit_success events."""
        ident = ".".join(self.identifier)
        events = self.dativo.events
        events.emit(
            "batch_written",
            stream=self.stream_name,
            table=ident,
            records=landed,
            rejected=rejected,
            path=path,
        )
        events.emit(
            "commit_success",
            stream=self.stream_name,
            table=ident,
            branch=result.branch,
            snapshot_id=result.snapshot_id,
            commit_id=result.commit_id,
            records=result.records,
            records_rejected=rejected,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )

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
        return {**self.segments.marker(from_seq), "first_state": self.dativo.ledger.hashes.get(from_seq + 1)}

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
        self.dativo.commits.join()
        self.dativo.shutdown.check()
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
        summary = {
            "dativo.run-id": self.dativo.run_id,
            "dativo.tenant": self.dativo.settings.tenant_id,
            "dativo.stream": self.stream_name,
            "dativo.operation": f"activate-version {new_version}",
        }
        branch = self.dativo.settings.table_branch
        self.dativo.committer.ensure_branch(table, branch)
        retire_versions(table, branch, new_version, hard, summary)
        self.dativo.events.emit(
            "version_activated",
            stream=self.stream_name,
            version=new_version,
            hard_delete=hard,
            table=".".join(self.identifier),
        )

    def finish_without_batch(self) -> None:
        """End of input with nothing buffered: object-level quality still holds over the table."""
        self.dativo.commits.join()
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

    # ------------------------------------------------------------------ batches


def _only_strings(prop: dict[str, Any]) -> bool:
    """A JSON Schema property whose only non-null type is string (no anyOf, no format surprises)."""
    types = prop.get("type")
    kinds = {types} if isinstance(types, str) else set(types or [])
    return kinds - {"null"} == {"string"} and "anyOf" not in prop
