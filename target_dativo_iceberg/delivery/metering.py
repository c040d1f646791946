"""Metrics per commit (Singer SDK `METRIC` lines) and a progress event at most every
`progress_interval_seconds`.

The SDK meters only `record_count` and `batch_processing_time`; nothing said how late the data is or
how fast it lands. At each commit of a stream this logs, through the SDK's metrics logger (so
`METRIC: {...}` lines, or `"message": "METRIC"` under structured logging, filtered by the same log
level and metric filters as the SDK's own):

- `lag_seconds`: now minus the `time_extracted` of the stream's last record read (the tap's stamp of
  when it read the record), else minus its replication key's value when that is a timestamp
  (`intake/freshness.py`); absent when neither is known;
- `records_per_second`: records committed by this commit over the time since the stream's previous
  commit (or the start of the run);
- `commit_latency` (a timer, seconds): from the first commit attempt to the commit on the branch;
- `rejection_rate`: rejected records over the batch's records (warn mode).

Each point is tagged with `stream`, `table` and `pid`. A long run also logs a `progress` event with
the rows read and committed, rows/s and the resident memory, so a quiet log does not look stuck.
"""

from __future__ import annotations

import datetime
import enum
import os
import time
import typing as t

from singer_sdk import metrics

from target_dativo_iceberg.memory import resident_mb

if t.TYPE_CHECKING:
    from target_dativo_iceberg.events import EventLog
    from target_dativo_iceberg.services import Landed


class DativoMetric(str, enum.Enum):
    """The target's metrics (named like the SDK's `metrics.Metric`)."""

    LAG_SECONDS = "lag_seconds"
    RECORDS_PER_SECOND = "records_per_second"
    COMMIT_LATENCY = "commit_latency"
    REJECTION_RATE = "rejection_rate"


def lag_seconds(newest: datetime.datetime | None, now: datetime.datetime) -> float | None:
    """Seconds from `newest` to `now` (None when the stream's freshness is unknown)."""
    return None if newest is None else round((now - newest).total_seconds(), 3)


class Metering:
    """Logs the metrics of each commit and the run's progress."""

    def __init__(
        self,
        events: EventLog,
        interval: float,
        newest: dict[str, datetime.datetime],
        received: t.Callable[[], int],
        committed: t.Callable[[], int],
    ) -> None:
        self.events = events
        self.interval = interval
        self.newest = newest  # stream → when its last records were extracted (intake/freshness.py)
        self.received = received
        self.committed = committed
        self.started = time.monotonic()
        self._previous: dict[str, float] = {}  # stream → monotonic time of its previous commit
        self._next_progress = self.started + interval
        self._logger = metrics.get_metrics_logger()

    def landed(self, landed: Landed) -> None:
        """A commit landed (a `RunProgress` listener): its metric points."""
        now = time.monotonic()
        since = max(now - self._previous.get(landed.stream, self.started), 1e-6)
        self._previous[landed.stream] = now
        records, rejected = landed.result.records, landed.rejected
        tags = {"stream": landed.stream, "table": landed.table}
        lag = lag_seconds(self.newest.get(landed.stream), datetime.datetime.now(datetime.timezone.utc))
        if lag is not None:
            self._log("gauge", DativoMetric.LAG_SECONDS, lag, tags)
        self._log("gauge", DativoMetric.RECORDS_PER_SECOND, round(records / since, 1), tags)
        self._log("timer", DativoMetric.COMMIT_LATENCY, round(landed.result.seconds, 4), tags)
        total = records + rejected
        self._log("gauge", DativoMetric.REJECTION_RATE, round(rejected / total, 6) if total else 0.0, tags)

    def _log(self, kind: str, metric: DativoMetric, value: float, tags: dict[str, t.Any]) -> None:
        point = metrics.Point(kind, metric, value, {**tags, metrics.Tag.PID: os.getpid()})  # type: ignore[arg-type]
        metrics.log(self._logger, point)

    def tick(self) -> None:
        """Called after each block of input and while the input is idle: a `progress` event once the
        interval has passed since the last one (never with `progress_interval_seconds` 0)."""
        if not self.interval:
            return
        now = time.monotonic()
        if now < self._next_progress:
            return
        self._next_progress = now + self.interval
        elapsed = max(now - self.started, 1e-6)
        received = self.received()
        self.events.emit(
            "progress",
            records_received=received,
            records_committed=self.committed(),
            records_per_second=round(received / elapsed, 1),
            elapsed_seconds=round(elapsed, 1),
            memory_mb=round(resident_mb(), 1),
        )
