"""target-dativo-iceberg: the Singer target (settings, STATE handling, exit codes).

STATE rule: a STATE line reaches stdout only once every record that came before it, on every
stream, is committed (`delivery.ledger.StateLedger` keeps that promise; `delivery.commits.CommitQueue` runs the
commits; `delivery.shutdown.Shutdown` stops a run on SIGTERM/SIGINT without breaking it).
"""

from __future__ import annotations

import datetime
import sys
import threading
import typing as t
import uuid
from pathlib import Path
from typing import Any

from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities, TargetCapabilities

from target_dativo_iceberg.claims import TableClaims
from target_dativo_iceberg.contracts.contract import Contract, resolve_contracts
from target_dativo_iceberg.delivery.commits import CommitQueue
from target_dativo_iceberg.delivery.ledger import StateLedger
from target_dativo_iceberg.delivery.metering import Metering
from target_dativo_iceberg.delivery.runlog import RunLog
from target_dativo_iceberg.delivery.shutdown import Shutdown, exit_code
from target_dativo_iceberg.errors import ConfigError, DativoError, Interrupted
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.files.committer import open_committer
from target_dativo_iceberg.iceberg.publishing import auto_publish, skip_publish
from target_dativo_iceberg.iceberg.upkeep import after_run
from target_dativo_iceberg.intake.reader import RECORD, BlockReader
from target_dativo_iceberg.intake.routes import HotRoutes
from target_dativo_iceberg.ops.preflight import run_preflight
from target_dativo_iceberg.process import run_and_exit
from target_dativo_iceberg.redact import activate
from target_dativo_iceberg.sdk_compat import ConfigInput, SdkTarget
from target_dativo_iceberg.services import RunProgress, RunServices
from target_dativo_iceberg.settings import Settings, describe_config_errors
from target_dativo_iceberg.settings import config_jsonschema as settings_jsonschema
from target_dativo_iceberg.sink import IcebergSink


class TargetDativoIceberg(SdkTarget):
    """Singer target that validates records and commits them to Iceberg tables on a branch."""

    name = "target-dativo-iceberg"
    package_name = "dativo-ingest"
    default_sink_class = IcebergSink
    message_reader_class = BlockReader
    message_reader: BlockReader
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        *SdkTarget.capabilities,
        PluginCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.BATCH,  # BATCH messages (JSONL, Parquet) are read, validated and committed
        TargetCapabilities.SOFT_DELETE,  # by default deletions set _sdc_deleted_at
        TargetCapabilities.HARD_DELETE,  # hard_delete: true deletes the rows
    ]
    partial: t.ClassVar[bool] = False  # set when a run ends with warn_exit_code (warn-mode rejections)

    config_jsonschema = settings_jsonschema()  # every setting is declared once, in settings/model.py

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        activate()  # log lines (config validation errors too) are redacted from the first one
        super().__init__(*args, **kwargs)
        self.settings = Settings.from_config(self.config)
        self.run_id = str(uuid.uuid4())
        self.events = EventLog(self.settings.tenant_id, self.run_id, self.settings.secret_values())
        self.shutdown.events = self.events
        activate(self.events.redactor)  # and from here on with the configured secret values
        self.retry_policy = self.settings.retry_config.policy()
        self.set_max_batch_age(self.settings.max_batch_age_seconds)
        self.max_parallelism = 1  # sinks drain one at a time (the SDK default runs 8 in threads)
        self.progress = RunProgress()
        self.ledger = StateLedger(
            self.events, lambda: [s.buffer for s in self._iceberg_sinks()], held=self._staging
        )
        self.commits = CommitQueue(self.ledger)
        self.routes = HotRoutes(
            self.events,
            enabled=self.settings.hot_path,
            stream_maps=lambda stream: self.mapper.stream_maps.get(stream, []),
        )
        self.message_reader.connect(
            self.routes, self.shutdown, self.on_idle, self.after_records, self._next_position
        )
        committer = open_committer(self.settings, self.events, self.retry_policy)
        self.runlog = RunLog(self.run_id, self.settings, self.events, committer)  # _dativo.ingestion_runs
        reader = self.message_reader
        self.metering = Metering(
            self.events,
            self.settings.progress_interval_seconds,
            reader.freshness.newest,
            lambda: reader.stats[RECORD],
            lambda: self.progress.records_committed,
        )
        self.progress.listeners += [self.runlog.landed, self.metering.landed]
        reader.after_block = self.metering.tick
        try:
            contracts = self._load_contracts()
        except DativoError as exc:  # a failure before any commit is a run too
            self.runlog.finish("failed", exc.exit_code, {}, error=str(exc))
            raise
        self.services = RunServices(
            run_id=self.run_id,
            ingest_date=datetime.datetime.now(datetime.timezone.utc).date(),
            settings=self.settings,
            events=self.events,
            contracts=contracts,
            committer=committer,
            ledger=self.ledger,
            commits=self.commits,
            shutdown=self.shutdown,
            progress=self.progress,
            reader=self.message_reader,
            drain=self.drain_one,
            claims=TableClaims(rejected_tables=self.settings.schema_validation_mode == "warn"),
        )

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the run at a safe point (shutdown.py), replacing the SDK's handler,
        which drained sinks from inside the handler and exited 0."""
        self.shutdown = Shutdown()
        if threading.current_thread() is threading.main_thread():
            self.shutdown.install()

    def invalid_config(self, error: Exception) -> Exception:
        """Settings the SDK found invalid: exit 2 with each bad setting and what it takes."""
        return ConfigError(describe_config_errors(self.config_jsonschema, self.raw_config))

    def _load_contracts(self) -> dict[str, Contract]:
        """Resolve `assets`/`assets_dir` before any input is read: an invalid contract fails the run."""
        contracts = resolve_contracts(self.settings.assets, self.settings.assets_dir, Path.cwd())
        for stream, contract in contracts.items():
            self.events.emit(
                "asset_loaded",
                stream=stream,
                contract=contract.path,
                contract_id=contract.id,
                contract_version=contract.version,
                api_version=contract.api_version,
                flavour=contract.flavour,
                table=contract.table_name(),
                notes=list(contract.notes) or None,
            )
        return contracts

    def process_endofpipe(self) -> None:
        """Final drain: sinks check object-level quality (rowCount) before their last commit."""
        self.progress.ending = True
        sinks = self._iceberg_sinks()
        for sink in sinks:
            sink.buffer.release_held()
            if sink.current_size == 0:
                sink.finish_without_batch()
        super().process_endofpipe()
        self.commits.join()
        for sink in sinks:
            sink.publish_overwrite()
        self._release_state()
        if self.settings.catalog_type != "none":  # upkeep after the last STATE is out
            after_run(self.services.committer, {s.identifier for s in sinks}, self.events, self.run_id)

    # ------------------------------------------------------------------ reading

    def on_schema(self, message: dict) -> None:
        """A SCHEMA may have replaced sinks: decide the hot routes again."""
        self.routes.update(self.active_sinks())
        self.message_reader.freshness.schema(message)

    def after_records(self) -> None:
        """After a hot run: the SDK's batch-age drain, as after each record on the record path; and
        a finished background commit reports (its STATE goes out) without waiting for the next one."""
        self.commits.poll()
        self._release_state()
        self.drain_if_due()

    def on_idle(self) -> float | None:
        """The input is silent: commit what is buffered once `max_batch_age_seconds` has passed
        (the SDK checks only when records arrive), and report a finished background commit.
        Returns the seconds until this is worth calling again (None: nothing pending)."""
        self.commits.poll()
        self._release_state()
        self.drain_if_due()
        self.metering.tick()
        if self.commits.busy:
            return 0.1
        if not any(sink.current_size for sink in self.all_sinks()) and not self.ledger.behind:
            return None
        return max(0.05, self.seconds_until_due())

    # ------------------------------------------------------------------ state

    def _next_position(self, stream: str) -> int | None:
        """Position the stream's next record will have (error messages at read time)."""
        sink = self.active_sinks().get(stream)
        return sink.records_read + 1 if isinstance(sink, IcebergSink) else None

    def _iceberg_sinks(self) -> list[IcebergSink]:
        return [s for s in self.all_sinks() if isinstance(s, IcebergSink)]

    def _staging(self) -> bool:
        """An overwrite is staged: its records are not on the branch until the swap (no STATE yet)."""
        return any(sink.staging for sink in self._iceberg_sinks())

    def on_state(self, state: Any) -> bool:
        """Number each new STATE (the ledger) and let buffers settle a pending replay check."""
        digest = self.ledger.receive(state)
        sinks = self._iceberg_sinks()
        if digest is not None:
            for sink in sinks:
                sink.buffer.on_state(digest)
        for sink in sinks:  # filled just before this STATE (see `IcebergSink.is_full`): commit now
            if sink.current_size >= sink.max_size:
                self.drain_one(sink)
        self.commits.poll()
        self._release_state()
        return digest is not None

    def on_full_drain(self) -> None:
        """Called by the SDK after a full drain: once the last commit lands, every record so far is."""
        self.commits.join()
        self._release_state()

    def _release_state(self) -> None:
        """Print the newest STATE once every record before it is committed — at once, not at the
        next commit. A sink whose last commit ended with records after the STATE known then (its
        `tail`) first commits the STATE (no rows; see delivery/coverage.py), and so does, at the end
        of the input, the sink that committed last when no commit carries the final STATE yet: the
        newest snapshot then holds what Meltano holds (`dativo state show`)."""
        ledger = self.ledger
        final = self.progress.ending and ledger.seq > ledger.carried_seq  # no snapshot has it yet
        if self.commits.busy or not (ledger.behind or final) or not ledger.all_committed() or self._staging():
            return
        carriers = [
            sink for sink in self._iceberg_sinks() if sink.buffer.tail and sink.load_method != "overwrite"
        ]
        last = self.progress.last_sink
        if not carriers and final and last is not None and last.load_method != "overwrite":
            carriers = [last]
        for sink in carriers:
            sink.commit_state()
        if carriers and not self.progress.ending:
            return  # the last STATE commit prints it when it lands (its `done`, on this thread)
        self.commits.join()
        ledger.emit()

    # ------------------------------------------------------------------ run

    def run(self, file_input: Any = None) -> int:
        """Listen to the input with job events around it, then `auto_publish`; returns the exit code
        (0, or `warn_exit_code` for partial)."""
        self.events.emit(
            "job_started",
            branch=self.settings.branch,
            catalog_type=self.settings.catalog_type,
            load_method=self.settings.load_method or "by stream key",
        )
        try:
            with self.shutdown.interruptible():
                run_preflight(self.settings, self.events, self.retry_policy)
            self.listen(file_input)
            progress = self.progress
            audited = not (progress.records_rejected or progress.quality_failures)
            auto_publish(list(self.services.committer.written.values()), self.settings, self.events, audited)
        except Interrupted as stop:
            skip_publish(self.settings, self.events, "the run was stopped by a signal")
            return self._stopped(stop.signum)
        except BaseException as exc:
            error = self.events.redact(str(exc))
            self._record("failed", getattr(exc, "exit_code", 2), str(exc))
            skip_publish(self.settings, self.events, f"the run failed: {error}")
            self.events.emit("job_finished", status="failed", exit_code=2, error=error)
            raise
        if not audited:
            code = self.settings.warn_exit_code
            self._record("partial", code)
            self.events.emit(
                "job_finished",
                status="partial",
                exit_code=code,
                records=progress.records_committed,
                records_rejected=progress.records_rejected,
                quality_failures=progress.quality_failures,
            )
            return code
        self._record("success", 0)
        self.events.emit("job_finished", status="success", exit_code=0, records=progress.records_committed)
        return 0

    def _record(self, status: str, code: int, error: str | None = None) -> None:
        """The run's row in the run ledger (best effort: never changes the outcome)."""
        counts = {
            "received": self.message_reader.stats[RECORD],
            "committed": self.progress.records_committed,
            "rejected": self.progress.records_rejected,
        }
        streams = {sink.stream_name: sink.plan.name for sink in self._iceberg_sinks()}
        self.runlog.finish(
            status, code, counts, error=error, state=self.ledger.emitted_state, streams=streams
        )

    def _stopped(self, signum: int) -> int:
        """A stop signal reached a safe point: the commit in flight lands and its STATE is printed;
        buffered records are abandoned (the tap re-sends them from the last printed STATE)."""
        abandoned = sum(sink.current_size for sink in self.all_sinks())
        try:
            self.commits.join()
        except Exception as exc:
            self._record("failed", 2, str(exc))
            self.events.emit("job_finished", status="failed", exit_code=2, error=self.events.redact(str(exc)))
            raise
        code = exit_code(signum)
        self._record("interrupted", code, f"stopped by {self.shutdown.name}")
        self.events.emit(
            "job_finished",
            status="interrupted",
            exit_code=code,
            signal=self.shutdown.name,
            records=self.progress.records_committed,
            records_abandoned=abandoned,
            state_emitted=self.ledger.emitted_seq > 0,
        )
        return code

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: Any = None,
        file_input: Any = None,
    ) -> None:
        """CLI entry: like the SDK's, with job events and errors mapped to exit code 2."""
        cls.handle_about(about=about, about_format=about_format)
        cls.print_version(print_fn=cls.logger.info)
        config = config or ConfigInput()
        try:
            target = cls(config=config.config, validate_config=True, parse_env_config=config.parse_env)
            code = target.run(file_input)
        except DativoError as exc:
            cls.logger.error("%s", exc)
            sys.exit(exc.exit_code)
        except Exception as exc:
            cls.logger.exception("target failed: %s", exc)
            sys.exit(2)
        if code:
            cls.partial = True
            sys.exit(code)


def cli() -> None:
    """The target's CLI: failures (including invalid config, which the SDK exits 1 on) exit 2."""
    try:
        TargetDativoIceberg.cli()
    except SystemExit as exc:
        if exc.code == 1 and not TargetDativoIceberg.partial:
            sys.exit(2)
        raise


def main() -> None:
    """Console script: the CLI, then an exit without interpreter teardown (process.py)."""
    run_and_exit(cli)


if __name__ == "__main__":
    main()
