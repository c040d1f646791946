"""Structured events (design §5) as `logging` records: one JSON object per line on stderr.

Each event carries the contract fields (`event`, `tenant_id`, `run_id`, `stream`) so operators can
follow a run without parsing prose. Events are records of the `target_dativo_iceberg.events` logger,
so the plugin's log level (`LOGLEVEL`, `TARGET_DATIVO_ICEBERG_LOGLEVEL`, or the level Meltano
configures through `SINGER_SDK_LOG_CONFIG`) filters them like any other line: routine detail is
logged at debug (`EVENT_LEVELS`), failures at warning or error.

How a line looks depends on who formats the root logger:
- the SDK's console format (a standalone run) or Meltano's plain format: the event's own JSON object,
  `{"ts": ..., "event": ..., "tenant_id": ..., "run_id": ..., ...}`;
- Meltano's structured logging (a plugin with the `structured-logging` capability: the SDK's
  `StructuredFormatter` on the root logger): the SDK's JSON line with the event name as `message`
  and the other keys under `extra`, which Meltano parses into fields of its own log event (instead of
  showing a JSON string inside its log line). `event` itself is left out there: Meltano's structlog
  logger takes the message as its `event` argument, and a second `event` would break the call.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from typing import Any, TextIO

from singer_sdk.logging import StructuredFormatter

from target_dativo_iceberg.redact import Redactor

LOGGER_NAME = "target_dativo_iceberg.events"

#: Events not logged at info. Routine detail is debug; what an operator should look at is warning.
EVENT_LEVELS = {
    "replay_mismatch": logging.DEBUG,  # a restarted run's records were not committed before: normal
    "run_recorded": logging.DEBUG,
    "commit_retry": logging.WARNING,
    "retry": logging.WARNING,
    "schema_coerced": logging.WARNING,
    "validation_errors": logging.WARNING,
    "deletes_ignored": logging.WARNING,
    "activate_version_ignored": logging.WARNING,
    "run_ledger_failed": logging.WARNING,
    "lineage_failed": logging.WARNING,
    "maintenance_failed": logging.WARNING,
    "signal_received": logging.WARNING,
    "preflight_failed": logging.ERROR,
    "job_aborted": logging.ERROR,
}
_STATUS_LEVELS = {"failed": logging.ERROR, "partial": logging.WARNING, "interrupted": logging.WARNING}
#: Attributes of a LogRecord: event fields with these names are renamed `<name>_` in structured mode.
_RESERVED = {*logging.makeLogRecord({}).__dict__, "message", "asctime"}


def event_level(event: str, fields: dict[str, Any]) -> int:
    """The log level of an event: a failed run or a blocked schema change is an error."""
    if fields.get("status") in _STATUS_LEVELS:
        return _STATUS_LEVELS[fields["status"]]
    if event == "schema_changed" and fields.get("change") == "blocked":
        return logging.ERROR
    return EVENT_LEVELS.get(event, logging.INFO)


def enabled(level: int) -> bool:
    """Whether an event of `level` is logged: the events logger's effective level once logging is
    set up (the CLI sets the root logger up first); info and above before that."""
    if not logging.getLogger().handlers:
        return level >= logging.INFO
    return _logger.isEnabledFor(level)


def structured_logging() -> bool:
    """Whether the root logger's lines are formatted by the SDK's JSON formatter (Meltano's
    structured logging)."""
    return any(isinstance(h.formatter, StructuredFormatter) for h in logging.getLogger().handlers)


class _EventHandler(logging.Handler):
    """Writes an event record as its JSON line; under structured logging, hands it to the root
    logger's handlers with the event's keys as record attributes instead."""

    def emit(self, record: logging.LogRecord) -> None:
        payload: dict[str, Any] = getattr(record, "dativo_event", {})
        if structured_logging():
            attributes = {k if k not in _RESERVED else f"{k}_": v for k, v in payload.items() if k != "event"}
            attributes.update(app_name="target-dativo-iceberg", stream_name=payload.get("stream"))
            flat = logging.makeLogRecord({**record.__dict__, "dativo_event": None, **attributes})
            del flat.__dict__["dativo_event"]
            for handler in logging.getLogger().handlers:
                if record.levelno >= handler.level:
                    handler.handle(flat)
            return
        stream = sys.stderr
        stream.write(json.dumps(payload) + "\n")
        stream.flush()


_logger = logging.getLogger(LOGGER_NAME)
_logger.propagate = False  # the handler decides the format (see the module docstring)
if not _logger.handlers:
    _logger.addHandler(_EventHandler())


class EventLog:
    """Emits events tagged with the run's tenant and run id, every value redacted (`redact.Redactor`).

    With `stream`, events are written to it directly (every level: a buffer a caller inspects).
    """

    def __init__(
        self, tenant_id: str, run_id: str, secrets: list[str] | None = None, stream: TextIO | None = None
    ) -> None:
        self.tenant_id = tenant_id
        self.run_id = run_id
        self.redactor = Redactor(secrets or ())
        self._out = stream

    def redact(self, text: str) -> str:
        """`text` with URI passwords, secret parameters and the run's secret values replaced by `***`."""
        return self.redactor.text(text)

    def payload(self, event: str, **fields: Any) -> dict[str, Any]:
        """The event's keys (redacted values; fields that are None left out)."""
        payload: dict[str, Any] = {
            "ts": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "event": event,
            "tenant_id": self.tenant_id,
            "run_id": self.run_id,
        }
        payload.update({k: self.redactor.value(v) for k, v in fields.items() if v is not None})
        return payload

    def line(self, event: str, **fields: Any) -> str:
        """The JSON line of an event (redacted, no newline)."""
        return json.dumps(self.payload(event, **fields))

    def emit(self, event: str, **fields: Any) -> None:
        """Log the event at its level (`event_level`)."""
        if self._out is not None:
            self._out.write(self.line(event, **fields) + "\n")
            self._out.flush()
            return
        level = event_level(event, fields)
        if not enabled(level):
            return
        record = _logger.makeRecord(LOGGER_NAME, level, __file__, 0, event, (), None)
        record.dativo_event = self.payload(event, **fields)
        _logger.handle(record)

    def emit_now(self, event: str, **fields: Any) -> None:
        """Write an event with one unbuffered write to fd 2: safe inside a signal handler, which
        may run while the main thread is in the middle of writing to sys.stderr."""
        if self._out is None and not enabled(event_level(event, fields)):
            return
        os.write(2, (self.line(event, **fields) + "\n").encode())

    def batch_committed(
        self, stream: str, table: str, result: Any, records: int, rejected: int, hot: bool, elapsed_ms: float
    ) -> None:
        """`batch_written` and `commit_success` for a batch's commit (`result`: a CommitResult)."""
        path = "hot" if hot else "record"
        self.emit("batch_written", stream=stream, table=table, records=records, rejected=rejected, path=path)
        self.emit(
            "commit_success",
            stream=stream,
            table=table,
            branch=result.branch,
            snapshot_id=result.snapshot_id,
            commit_id=result.commit_id,
            records=result.records,
            records_rejected=rejected,
            duration_ms=elapsed_ms,
            **{key.replace("-", "_"): value for key, value in result.deletes.items()},
        )
