"""The sink: one stream's buffer, validated and committed to its Iceberg table batch by batch.

A RECORD's path: intake/reader.py (stdin in blocks; runs of RECORD lines parsed by Arrow) →
intake/buffer.py (`StreamBuffer`: pieces in arrival order) → `IcebergSink.process_batch` →
intake/builders.py (`BatchBuilder`: `Validator.validate_arrow`, else record by record) →
iceberg/committer.py on the commit thread (Arrow + one Iceberg transaction) → delivery/ledger.py
(the STATE this commit made safe is printed). Which table and how: table_plan.py.

The sink gets the run's collaborators (`services.RunServices`), not the target.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from target_dativo_iceberg import faults
from target_dativo_iceberg.contracts.contract import contract_for_stream
from target_dativo_iceberg.contracts.enforcement import (
    REJECTED_SCHEMA,
    REJECTED_SUFFIX,
    Enforcer,
    rejected_table,
    seed_branch_keys,
)
from target_dativo_iceberg.delivery.coverage import coverage
from target_dativo_iceberg.delivery.replay import ReplayGuard, parse_marker
from target_dativo_iceberg.iceberg.committer import CommitResult, TableSpec
from target_dativo_iceberg.iceberg.evolution import EvolutionPlan
from target_dativo_iceberg.iceberg.rows import activate_version
from target_dativo_iceberg.iceberg.schema import singer_to_iceberg
from target_dativo_iceberg.iceberg.staging import create_branch_from, replace_branch
from target_dativo_iceberg.iceberg.writer import RollingWriter
from target_dativo_iceberg.intake.batchfiles import read_batch_file
from target_dativo_iceberg.intake.buffer import StreamBuffer, pieces_of
from target_dativo_iceberg.intake.builders import BatchBuilder
from target_dativo_iceberg.intake.flattening import record_flattener
from target_dativo_iceberg.intake.recordchecks import RecordChecks
from target_dativo_iceberg.intake.routes import parse_types
from target_dativo_iceberg.memory import release_unused
from target_dativo_iceberg.sdk_compat import SdkBatchSink
from target_dativo_iceberg.table_plan import plan_table, sdc_fields

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from target_dativo_iceberg.contracts.odcs.results import RowError
    from target_dativo_iceberg.services import RunServices


class IcebergSink(SdkBatchSink):
    """Buffers one stream's records and appends each batch to its table on the branch."""

    MAX_SIZE_DEFAULT = 100_000

    def __init__(self, target: Any, stream_name: str, schema: dict, key_properties: Any) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        run: RunServices = target.services
        self.run = run
        settings = run.settings
        self.stream_schema = singer_to_iceberg(stream_name, self.schema, self.key_properties)
        self.contract = contract_for_stream(run.contracts, stream_name)
        self.plan = plan_table(stream_name, self.stream_schema, self.contract, settings)
        self.identifier, self.spec = self.plan.identifier, self.plan.spec
        self.enforcer: Enforcer | None = None
        self.checks: RecordChecks | None = None
        if self.contract is None:
            mode, validator = settings.schema_validation_mode, lambda: self.record_validator
            self.checks = RecordChecks(
                stream_name, self.key_properties, mode, run.reader, validator,
                lambda: self.records_read + 1, self.schema, self.parse_timestamps,
            )  # fmt: skip
        else:
            self.skip_record_validation()  # the contract validates whole batches; the SDK's per-record check would abort warn mode
            self.enforcer = Enforcer(
                stream_name,
                self.contract,
                self.schema,
                settings.schema_validation_mode,
                self.plan.load_method == "upsert",
                run.events,
            )
        run.claims.claim(stream_name, self.identifier)  # two streams never share a table
        self.load_method, self.upsert_keys = self.plan.load_method, self.plan.upsert_keys
        if self.enforcer is not None and self.load_method == "append-only":  # re-sent keys are duplicates
            seed_branch_keys(
                self.enforcer, run.committer.existing_table, self.identifier, settings.table_branch
            )
        #: hard_delete: deletion records (`_sdc_deleted_at` set) delete these keys' rows.
        self.delete_keys: list[str] | None = None
        if settings.hard_delete and self.include_sdc_metadata_properties:
            self.delete_keys = self.plan.keys or None
            if not self.plan.keys:
                run.events.emit(
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
        self.buffer = StreamBuffer(
            stream_name,
            self,
            run.ledger,
            run.reader,
            run.events,
            lambda path, encoding: read_batch_file(path, encoding, self.batch_config, stream_name, settings),
            self._replay_guard(),
        )
        flatten = record_flattener(target.mapper.stream_maps.get(stream_name, []), stream_name)
        self.batches = BatchBuilder(
            stream_name,
            self.enforcer,
            self.stream_schema,
            sdc_fields(self.stream_schema),
            run.ingest_date,
            lambda line, position: flatten(run.reader.deserialize_json(line, position=position)),
            self.strip_sdc_metadata,
            run.events,
            self.checks,
            metadata=self.include_sdc_metadata_properties,
        )
        self.record_types = parse_types(self.schema, self.enforcer, self.checks)
        run.events.emit(
            "writer_initialized",
            stream=stream_name,
            table=self.plan.name,
            contract=self.contract.path if self.contract else None,
            columns=[f.name for f in self.spec.schema.fields],
        )

    # ------------------------------------------------------------------ buffering (intake/buffer.py)

    def validate_and_parse(self, record: dict) -> dict:
        """With a contract, records stay raw (the contract validator judges whole batches); without
        one, the record is checked here (the SDK's own check names neither stream nor record)."""
        if self.checks is not None and self.checks.check(record):
            self.parse_timestamps(record)
        return record

    def check_key_properties(self, record: dict) -> None:
        """Key properties: checked in `validate_and_parse` for streams without a contract."""
        if self.checks is None:
            super().check_key_properties(record)

    def take_findings(self) -> list[RowError] | None:
        return self.checks.take_findings() if self.checks is not None else None

    def check_batch_record(self, record: dict) -> None:
        if self.checks is not None:
            self.checks.check_batch_record(record)

    def process_record(self, record: dict, context: dict) -> None:
        """Record path (the SDK calls this): the record joins the buffer."""
        self.buffer.add_record(record, context)

    def add_rows(self, lines: pa.Array, records: pa.Table) -> None:
        """Hot path (the reader calls this): a run of this stream's rows joins the buffer."""
        self.buffer.add_rows(lines, records)

    def process_batch_files(self, encoding: Any, files: Any) -> None:
        """BATCH message (the SDK calls this): the files' rows join the buffer, then it is committed."""
        self.buffer.add_files(encoding, files)

    def count_records(self, count: int) -> None:
        self.record_counter_metric.increment(count)

    def drain(self) -> None:
        self.run.drain(self)

    @property
    def is_full(self) -> bool:
        """Full — unless a STATE follows in the input already read: the drain then waits for it (the
        target drains full sinks after each STATE), so this commit covers that STATE at once."""
        return super().is_full and not self.run.reader.state_follows

    @property
    def table(self) -> Table:
        """The stream's table, created on first use and cached for the run."""
        if self._table is None:
            self._table = self.run.committer.ensure_table(self.stream_name, self.identifier, self.spec)
        return self._table

    def _replay_guard(self) -> tuple[dict[str, Any] | None, ReplayGuard] | None:
        """The replay check (and the state it starts from) when the table's last commit of this
        stream has a replay marker."""
        if self.load_method == "overwrite":
            return None
        committer, branch = self.run.committer, self.run.settings.table_branch
        table = committer.existing_table(self.identifier, self.spec)
        found = committer.stream_marker(table, branch, self.stream_name) if table else None
        candidates = parse_marker(found[1]) if found else []
        if found is None or not candidates:
            return None
        return found[0], ReplayGuard(candidates)

    # ------------------------------------------------------------------ committing

    def process_batch(self, context: dict) -> None:
        """Validate, commit in one Iceberg transaction, then let the target emit STATE. Both run on
        the commit thread while the main thread parses on (a strict failure surfaces when it joins)."""
        pieces = pieces_of(context)
        if not pieces and self._writer is None:
            return
        faults.reached("drain")
        self.run.commits.join()  # one commit in flight at a time: the previous one lands first
        self.run.shutdown.check()  # after a stop signal no new commit starts
        started, ending = time.monotonic(), self.run.progress.ending
        # validated here when the spill writer's open files or a new staging branch are involved,
        # else on the commit thread (which creates the table once a first batch passed)
        main_thread = self._writer is not None or (self.load_method == "overwrite" and self.staging is None)
        cover = coverage(self.run.ledger, self.buffer)
        schema, committer, events = self.spec.schema, self.run.committer, self.run.events
        stream = self.stream_name

        def prepare() -> tuple[Any, int, list[dict[str, Any]], bool, Any, int]:
            batch = self.batches.validated(pieces)
            build, landed, rejected_rows, files = batch.build, batch.landed, batch.rejected, None
            if self._writer is not None:  # rows already streamed to open files: the rest joins them
                if landed:
                    self._writer.write(build(self.table.schema().as_arrow(), EvolutionPlan()))
                files = self._writer.finish()
                landed, rejected_rows = self._writer.rows, self._spilled_rejected + rejected_rows
                self._writer, self._spilled_rejected = None, []
            failed = 0
            if self.enforcer is not None and ending:
                failed = len(self.enforcer.finish(committer.branch_total_records(self.table) + landed))
            return build, landed, rejected_rows, batch.hot, files, failed

        early = prepare() if main_thread else None
        options: dict[str, Any] = {"upsert_keys": self.upsert_keys, "delete_keys": self.delete_keys}
        if self.load_method == "overwrite":
            if self.staging is None:
                self.staging = f"{self.run.settings.table_branch}__overwrite_{self.run.run_id[:8]}"
                self._staging_base = create_branch_from(
                    self.table, self.staging, self.run.settings.table_branch
                )
                options["replace_all"] = True
            options["branch"] = self.staging

        def work() -> tuple[CommitResult, int, int, int, Table]:  # on the commit thread
            build, landed, rejected_rows, hot, files, failed = early or prepare()
            table = self.table
            summary = {**self._identity(), **cover.summary}
            summary["dativo.records-rejected"] = str(len(rejected_rows))
            if rejected_rows:
                self._commit_rejected(rejected_rows, summary)
            faults.reached("before_commit")
            result = committer.commit(
                stream, table, schema, build, landed, summary, data_files=files, **options
            )
            release_unused()  # the batch's Arrow buffers and Parquet pages, freed on this thread
            faults.reached("after_commit")
            elapsed_ms = round((time.monotonic() - started) * 1000, 1)
            events.batch_committed(
                stream, self.plan.name, result, landed, len(rejected_rows), hot, elapsed_ms
            )
            return result, landed, len(rejected_rows), failed, table

        def done(outcome: tuple[CommitResult, int, int, int, Table]) -> None:  # main thread, in order
            result, landed, rejected, failed, table = outcome
            if failed:
                self.run.progress.quality_failed(failed)
            self.tally_record_written(landed)
            self.run.progress.committed(self.stream_name, self.plan.name, result, rejected)
            self.run.progress.last_sink = self
            self.run.ledger.emit(cover.seq)  # the STATE this commit made safe
            self.buffer.segments.prune(self.run.ledger.emitted_seq)  # a resume starts from there
            self.run.committer.maintain(table, self.stream_name)  # upkeep, after the STATE is out

        self.buffer.drained()
        self.buffer.tail = cover.tail
        self.run.commits.submit(cover.seq, work, done)

    def spill(self, context: dict) -> None:
        """A long batch (`batch_size_rows` above `SPILL_ROWS`): validate what is buffered and stream it
        into open Parquet files (rolled at `parquet_target_size_mb`), so memory holds one chunk; the
        files are committed with the rest of the batch."""
        self.run.commits.join()  # the commit thread may be using this table object
        self.run.shutdown.check()
        if not self._can_spill():
            return
        batch = self.batches.validated(pieces_of(context))
        if self._writer is None:
            target, committer = self.run.settings.parquet_target_bytes, self.run.committer
            io = committer.data_io(self.table, self.stream_name)
            self._writer = RollingWriter(self.table.metadata, io, target, committer.checksums)
        if batch.landed:
            self._writer.write(batch.build(self.table.schema().as_arrow(), EvolutionPlan()))
        self._spilled_rejected.extend(batch.rejected)
        context["pieces"] = []
        faults.reached("after_spill")

    def _can_spill(self) -> bool:
        """Streaming into files needs a batch that never changes earlier rows (no upsert or deletion
        records) and a table whose schema already matches (evolution commits with the data)."""
        if self._spill_ok is None:
            simple = self.load_method != "upsert" and self.delete_keys is None
            self._spill_ok = simple and not self.run.committer.needs_evolution(
                self.stream_name, self.table, self.spec.schema
            )
        return self._spill_ok

    def _identity(self) -> dict[str, str]:
        """Summary keys naming the run and the stream of a commit."""
        settings = self.run.settings
        return {
            "dativo.run-id": self.run.run_id,
            "dativo.tenant": settings.tenant_id,
            "dativo.stream": self.stream_name,
        }

    def commit_state(self) -> None:
        """A commit without rows that carries the newest STATE: its records are all committed, but
        no commit of this run says so yet (see `Target._release_state`)."""
        self.run.commits.join()
        cover = coverage(self.run.ledger, self.buffer)
        summary, table, schema = {**self._identity(), **cover.summary}, self.table, self.spec.schema
        committer, stream, events = self.run.committer, self.stream_name, self.run.events

        def work() -> CommitResult:
            result = committer.commit(
                stream, table, schema, lambda *_: pa.table({}), 0, summary, data_files=[]
            )
            events.emit(
                "state_committed", stream=stream, table=self.plan.name, snapshot_id=result.snapshot_id
            )
            return result

        self.buffer.tail = cover.tail
        self.run.commits.submit(cover.seq, work, lambda _result: self.run.ledger.emit(cover.seq))

    def publish_overwrite(self) -> None:
        """overwrite: the stream ended; its staging branch replaces the branch's content atomically."""
        if self.staging is None or self._table is None or self._staging_base is None:
            return
        branch = self.run.settings.table_branch
        snapshot_id = replace_branch(self._table, branch, self.staging, self._staging_base)
        self.run.events.emit(
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
        self.run.drain(self)
        self.run.commits.join()
        self.run.shutdown.check()
        summary = {**self._identity(), "dativo.operation": f"activate-version {new_version}"}
        if activate_version(
            self.table, self.run.committer, self.run.events, self.stream_name, new_version, summary
        ):
            self.run.committer.written[self.plan.name] = self.table

    def finish_without_batch(self) -> None:
        """End of input with nothing buffered: object-level quality still holds over the table."""
        self.run.commits.join()
        if self.enforcer is not None and self._table is not None:
            failures = self.enforcer.finish(self.run.committer.branch_total_records(self._table))
            self.run.progress.quality_failed(len(failures))

    def _commit_rejected(self, rows: list[dict[str, Any]], summary: dict[str, str]) -> None:
        committer = self.run.committer
        ident = (self.identifier[0], self.identifier[1] + REJECTED_SUFFIX)
        if self._rejected is None:
            self._rejected = committer.ensure_table(self.stream_name, ident, TableSpec(REJECTED_SCHEMA))
        data = rejected_table(rows, self.run.run_id, self.stream_name, self._rejected.schema().as_arrow())
        rejected_summary = {**summary, "dativo.records-rejected": str(len(rows))}
        committer.commit(
            self.stream_name,
            self._rejected,
            REJECTED_SCHEMA,
            lambda _s, _p: data,
            len(rows),
            rejected_summary,
        )
