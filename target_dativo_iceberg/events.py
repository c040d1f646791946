"""Structured JSON events on stderr (design §5): one line per event, parseable by log shippers.

The SDK's own log lines stay as they are; these carry the contract fields (`event`, `tenant_id`,
`run_id`, `stream`) so operators can follow a run without parsing prose.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from typing import Any, TextIO

from target_dativo_iceberg.redact import Redactor


class EventLog:
    """Emits events tagged with the run's tenant and run id, every value redacted (`redact.Redactor`)."""

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

    def line(self, event: str, **fields: Any) -> str:
        """The JSON line of an event (redacted, no newline)."""
        payload: dict[str, Any] = {
            "ts": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "event": event,
            "tenant_id": self.tenant_id,
            "run_id": self.run_id,
        }
        payload.update({k: self.redactor.value(v) for k, v in fields.items() if v is not None})
        return json.dumps(payload, sort_keys=False)

    def emit(self, event: str, **fields: Any) -> None:
        """Write one JSON line with the event name and the run's identity."""
        out = self._out or sys.stderr
        out.write(self.line(event, **fields) + "\n")
        out.flush()

    def emit_now(self, event: str, **fields: Any) -> None:
        """Write an event with one unbuffered write to fd 2: safe inside a signal handler, which
        may run while the main thread is in the middle of writing to sys.stderr."""
        os.write(2, (self.line(event, **fields) + "\n").encode())
