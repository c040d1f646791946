"""target-dativo-iceberg: the Singer target (settings, STATE handling, exit codes).

STATE rule: a STATE line reaches stdout only once every record that came before it, on every
stream, is committed (`delivery.ledger.StateLedger` keeps that promise; `delivery.commits.CommitQueue` runs the
commits; `delivery.shutdown.Shutdown` stops a run on SIGTERM/SIGINT without breaking it).
"""

from __future__ import annotations

import datetime
import re
import sys
import threading
import typing as t
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.plugin_base import PluginBase, _ConfigInput
from singer_sdk.target_base import Target

from target_dativo_iceberg.contracts.contract import Contract, resolve_contracts
from target_dativo_iceberg.delivery.commits import CommitQueue
from target_dativo_iceberg.delivery.ledger import StateLedger
from target_dativo_iceberg.delivery.shutdown import Shutdown, exit_code
from target_dativo_iceberg.errors import DativoError, Interrupted
from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.committer import Committer
from target_dativo_iceberg.intake.reader import BlockReader
from target_dativo_iceberg.ops.preflight import run_preflight
from target_dativo_iceberg.redact import Redactor, activate, mapping_secrets
from target_dativo_iceberg.settings import Settings
from target_dativo_iceberg.settings import config_jsonschema as settings_jsonschema
from target_dativo_iceberg.sink import IcebergSink

#: An SDK enum member as jsonschema quotes it (`<TargetLoadMethods.UPSERT: 'upsert'>`), for messages.
_SDK_ENUM = re.compile(r"<\w+\.\w+: ('[^']*')>")


class TargetDativoIceberg(Target):
    """Singer target that validates records and commits them to Iceberg tables on a branch."""

    name = "target-dativo-iceberg"
    package_name = "dativo-ingest"
    default_sink_class = IcebergSink
    message_reader_class = BlockReader
    message_reader: BlockReader
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        *Target.capabilities,
        PluginCapabilities.ACTIVATE_VERSION,
    ]
    _MAX_PARALLELISM = 1  # commits run one at a time so covered-state bookkeeping stays exact
    partial: t.ClassVar[bool] = False  # set when a run ends with exit code 1 (warn-mode rejections)

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
        self.committer = Committer(self.settings, self.events, self.retry_policy)
        self.contracts = self._load_contracts()
        self.rejected_total = 0
        self.records_committed = 0
        self.quality_failures = 0  # warn mode: run-level contract checks that failed (exit 1)
        self.ending = False  # set at end of input: the next drain is the final one
        self.ingest_date = datetime.datetime.now(datetime.timezone.utc).date()
        self._MAX_RECORD_AGE_IN_MINUTES = self.settings.max_batch_age_seconds / 60
        self.ledger = StateLedger(self.events, self._iceberg_sinks, held=self._staging)
        self.commits = CommitQueue(self.ledger)
        self.message_reader.target = self
        self.max_parallelism = 1  # sinks drain one at a time (the SDK default runs 8 in threads)
        self._hot: dict[str, IcebergSink | None] = {}  # stream → its sink when on the hot path
        self._announced: dict[str, Any] = {}  # stream → the sink whose path was logged

    def _setup_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the run at a safe point (shutdown.py), replacing the SDK's handler,
        which drained sinks from inside the handler and exited 0."""
        self.shutdown = Shutdown()
        if threading.current_thread() is threading.main_thread():
            self.shutdown.install()

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
        self.ending = True
        sinks = [
            s for s in [*self._sinks_to_clear, *self._sinks_active.values()] if isinstance(s, IcebergSink)
        ]
        for sink in sinks:
            sink.release_held()
            if sink.current_size == 0:
                sink.finish_without_batch()
        super().process_endofpipe()
        self.commits.join()
        for sink in sinks:
            sink.publish_overwrite()
        self.ledger.emit()

    # ------------------------------------------------------------------ hot path

    def _process_schema_message(self, message_dict: dict) -> None:
        super()._process_schema_message(message_dict)
        self._hot.clear()  # sinks may have been replaced: decide again
        for name, sink in self._sinks_active.items():
            self._hot[name] = self._hot_decision(name, sink)

    def _hot_decision(self, stream: str, sink: Any) -> IcebergSink | None:
        """The stream's sink if its records can take the hot path; logs why not otherwise."""
        reason = None
        if not isinstance(sink, IcebergSink):
            return None
        if not self.settings.hot_path:
            reason = "hot_path is false"
        elif sink.enforcer is None:
            reason = "no contract (records are checked against the Singer schema one by one)"
        elif sink.include_sdc_metadata_properties:
            reason = "add_record_metadata is on"
        elif self.settings.flattening_enabled:
            reason = "flattening_enabled is on"
        else:
            maps = self.mapper.stream_maps.get(stream, [])
            if (
                len(maps) != 1
                or not isinstance(maps[0], SameRecordTransform)
                or maps[0].stream_alias != stream
            ):
                reason = "stream_maps apply to the stream"
        if self._announced.get(stream) is not sink:  # once per sink, not on every SCHEMA message
            self._announced[stream] = sink
            self.events.emit("record_path", stream=stream, path="record" if reason else "hot", reason=reason)
        return None if reason else sink

    def hot_streams(self) -> bool:
        """Whether any stream is on the hot path (else the reader goes line by line)."""
        return any(sink is not None for sink in self._hot.values())

    def hot_sink(self, stream: str) -> IcebergSink | None:
        """The sink taking `stream`'s records on the hot path, if any."""
        return self._hot.get(stream)

    def record_hints(self) -> pa.StructType:
        """Record fields parsed with a given type rather than inferred (Arrow would turn ISO-looking
        text into timestamps, and decimals into floats); fields hot streams disagree on are inferred."""
        hints: dict[str, pa.DataType | None] = {}
        for sink in self._hot.values():
            for name, kind in (sink.record_types if sink is not None else {}).items():
                hints[name] = kind if hints.get(name, kind) == kind else None
        return pa.struct([(name, kind) for name, kind in hints.items() if kind is not None])

    def after_records(self) -> None:
        """After a hot run: the SDK's batch-age drain, as after each record on the record path; and
        a finished background commit reports (its STATE goes out) without waiting for the next one."""
        self.commits.poll()
        self._handle_max_record_age()

    def on_idle(self) -> float | None:
        """The input is silent: commit what is buffered once `max_batch_age_seconds` has passed
        (the SDK checks only when records arrive), and report a finished background commit.
        Returns the seconds until this is worth calling again (None: nothing pending)."""
        self.commits.poll()
        self._handle_max_record_age()
        if self.commits.busy:
            return 0.1
        sinks = [*self._sinks_to_clear, *self._sinks_active.values()]
        if not any(sink.current_size for sink in sinks) and not self.ledger.behind:
            return None
        age = self._max_record_age_in_minutes * 60
        return max(0.05, self._MAX_RECORD_AGE_IN_MINUTES * 60 - age)

    # ------------------------------------------------------------------ state

    def _iceberg_sinks(self) -> list[IcebergSink]:
        return [
            s for s in [*self._sinks_to_clear, *self._sinks_active.values()] if isinstance(s, IcebergSink)
        ]

    def _staging(self) -> bool:
        """An overwrite is staged: its records are not on the branch until the swap (no STATE yet)."""
        return any(sink.staging for sink in self._iceberg_sinks())

    def _process_state_message(self, message_dict: dict) -> None:
        """Number each new STATE (the ledger) and let sinks settle a pending replay check."""
        self._assert_line_requires(message_dict, requires={"value"})
        state = message_dict["value"]
        digest = self.ledger.receive(state)
        if digest is None:
            return
        self._latest_state = state  # the SDK drains and calls _write_state_message when it is set
        for sink in self._iceberg_sinks():
            sink.on_state(digest)

    def _write_state_message(self, state: dict) -> None:
        """Called by the SDK after a full drain: once the last commit lands, every record so far is."""
        self.commits.join()
        self.ledger.emit()

    # ------------------------------------------------------------------ run

    def run(self, file_input: Any = None) -> int:
        """Listen to the input with job events around it; returns the exit code (0, or 1 for partial)."""
        self.events.emit(
            "job_started",
            branch=self.settings.branch,
            catalog_type=self.settings.catalog_type,
            load_method=self.settings.load_method,
        )
        try:
            with self.shutdown.interruptible():
                run_preflight(self.settings, self.events, self.retry_policy)
            self.listen(file_input)
        except Interrupted as stop:
            return self._stopped(stop.signum)
        except BaseException as exc:
            self.events.emit("job_finished", status="failed", exit_code=2, error=self.events.redact(str(exc)))
            raise
        if self.rejected_total or self.quality_failures:
            self.events.emit(
                "job_finished",
                status="partial",
                exit_code=1,
                records=self.records_committed,
                records_rejected=self.rejected_total,
                quality_failures=self.quality_failures,
            )
            return 1
        self.events.emit("job_finished", status="success", exit_code=0, records=self.records_committed)
        return 0

    def _stopped(self, signum: int) -> int:
        """A stop signal reached a safe point: the commit in flight lands and its STATE is printed;
        buffered records are abandoned (the tap re-sends them from the last printed STATE)."""
        abandoned = sum(sink.current_size for sink in [*self._sinks_to_clear, *self._sinks_active.values()])
        try:
            self.commits.join()
        except Exception as exc:
            self.events.emit("job_finished", status="failed", exit_code=2, error=self.events.redact(str(exc)))
            raise
        code = exit_code(signum)
        self.events.emit(
            "job_finished",
            status="interrupted",
            exit_code=code,
            signal=self.shutdown.name,
            records=self.records_committed,
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
        PluginBase.invoke.__func__(cls, about=about, about_format=about_format)  # type: ignore[attr-defined]
        cls.print_version(print_fn=cls.logger.info)
        config = config or _ConfigInput()
        try:
            target = cls(config=config.config, validate_config=True, parse_env_config=config.parse_env)
            code = target.run(file_input)
        except DativoError as exc:
            cls.logger.error("%s", exc)
            sys.exit(exc.exit_code)
        except ConfigValidationError as exc:  # the SDK's check of the config against config_jsonschema
            activate(Redactor(mapping_secrets(config.config)))  # a message may quote a secret value
            for error in exc.errors:
                cls.logger.error("invalid config: %s", _SDK_ENUM.sub(r"\1", error))
            sys.exit(2)
        except Exception as exc:
            cls.logger.exception("target failed: %s", exc)
            sys.exit(2)
        if code:
            cls.partial = True
            sys.exit(code)


def main() -> None:
    """Console script: failures (including invalid config, which the SDK exits 1 on) exit 2."""
    try:
        TargetDativoIceberg.cli()
    except SystemExit as exc:
        if exc.code == 1 and not TargetDativoIceberg.partial:
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
